"""Tidy tables: trajectories (one row per run per recorded epoch) and summaries (one row per
run), as pandas DataFrames with compact column types.

Run attributes repeat on every trajectory row, so they are stored as categoricals (and as
Parquet dictionaries): a 10,000-run x 2,001-epoch table stays small in memory and on disk.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gdbench import stability
from gdbench.analysis import RunAnalysis
from gdbench.optimizers import OptimizerSpec
from gdbench.runs import RunSpec
from gdbench.theory import Optimum, Theory
from gdbench.trajectory import TrajectoryBatch

if TYPE_CHECKING:
    import pyarrow as pa

#: The grid axes, in the order tables list them.
AXES = ("dataset", "optimizer", "device", "engine", "lr", "seed", "epochs", "init", "batch_size", "dtype")
TRAJECTORY_COLUMNS = ("run_id", *AXES, "epoch", "W", "b", "cost")
SUMMARY_COLUMNS = (
    "run_id",
    *AXES,
    "n_points",
    "final_W",
    "final_b",
    "final_cost",
    "min_cost",
    "optimal_cost",
    "excess_cost",
    "diverged",
    "diverged_at",
    "converged_at",
    "rate",
    "predicted_rate",
    "critical_lr",
    "fastest_lr",
    "lr_ratio",
    "predicted_diverged",
    "batch_seconds_per_run",
    "reached_at",
    "horizon_edge",
    "ms_critical_lr",
    "ms_lr_ratio",
)
_CATEGORICAL = ("dataset", "optimizer", "device", "engine", "init", "batch_size", "dtype")


def run_table(runs: Sequence[RunSpec], run_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per run with its axes (the small table the others are joined from)."""
    ids = np.arange(len(runs)) if run_ids is None else np.asarray(run_ids)
    df = pd.DataFrame(
        {
            "run_id": ids.astype(np.int32),
            "dataset": [r.dataset for r in runs],
            "optimizer": [r.optimizer for r in runs],
            "device": [r.device for r in runs],
            "engine": [r.engine for r in runs],
            "lr": np.array([r.lr for r in runs], dtype=np.float64),
            "seed": np.array([r.seed for r in runs], dtype=np.int32),
            "epochs": np.array([r.epochs for r in runs], dtype=np.int32),
            "init": [r.init for r in runs],
            "batch_size": [r.batch_label for r in runs],
            "dtype": [r.dtype for r in runs],
        }
    )
    for col in _CATEGORICAL:
        df[col] = ordered_categorical(df[col])
    return df


def ordered_categorical(values: pd.Series) -> pd.Categorical:
    """A categorical whose categories keep the order of first appearance (the config's
    order, since runs follow the grid), not alphabetical order."""
    values = values.astype(str)
    return pd.Categorical(values, categories=pd.unique(values))  # unique keeps that order


def trajectories(batch: TrajectoryBatch, run_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """The tidy trajectory table of a batch: each run's own recorded epochs only (as pandas:
    :func:`trajectory_table` converted, the same frame a reader of its Parquet file gets)."""
    return trajectory_table(batch, run_ids).to_pandas()


def trajectory_table(batch: TrajectoryBatch, run_ids: Sequence[int] | None = None) -> pa.Table:
    """:func:`trajectories` as an Arrow table, built from whole arrays: each run's attributes
    repeated over its recorded epochs (categorical axes as ``dictionary<int32, string>`` in
    order of first appearance), epochs and values taken by the recorded mask in row-major
    order (run by run, epoch by epoch). No pandas on the way: a 5,000-run chunk of 2,001
    epochs is 1e7 rows."""
    return _trajectory_rows(batch, _ids(batch, run_ids), batch.recorded_mask(), slice(None))


#: Rows of a trajectory table built at a time at most (~1,000 runs of 2,001 epochs): a piece's
#: columns are fresh memory, whose first touch costs more than building the piece (5,000 runs of
#: 2,001 epochs as one table: 2.7 s; as five: 0.45 s), and pieces of this size reuse theirs.
PIECE_ROWS = 1 << 21


def trajectory_pieces(
    batch: TrajectoryBatch, run_ids: Sequence[int] | None = None, max_rows: int = PIECE_ROWS
) -> Iterator[pa.Table]:
    """:func:`trajectory_table` in pieces of consecutive runs, each at most ``max_rows`` rows (or
    one run): the same rows in the same order, one piece in memory at a time."""
    mask, ids = batch.recorded_mask(), _ids(batch, run_ids)
    ends = np.cumsum(mask.sum(axis=1))
    start = 0
    while start < len(batch):
        base = int(ends[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + max_rows, side="right")))
        yield _trajectory_rows(batch, ids, mask, slice(start, stop))
        start = stop


def _ids(batch: TrajectoryBatch, run_ids: Sequence[int] | None) -> np.ndarray:
    """The run ids of ``batch``'s rows (their positions when None)."""
    return np.arange(len(batch)) if run_ids is None else np.asarray(run_ids)


def _trajectory_rows(batch: TrajectoryBatch, ids: np.ndarray, mask: np.ndarray, rows: slice) -> pa.Table:
    """The trajectory table of runs ``rows`` of ``batch`` (``ids``: its run ids, ``mask``: its
    recorded mask)."""
    import pyarrow as pa

    runs = run_table(batch.runs[rows], ids[rows].tolist())
    mask = mask[rows]
    counts = mask.sum(axis=1)
    columns: dict[str, pa.Array] = {}
    for col in runs.columns:
        if col in _CATEGORICAL:
            cat = runs[col].cat
            codes = _repeated(cat.codes.to_numpy().astype(np.int32), counts)  # valid by construction:
            dictionary = pa.array(list(cat.categories), pa.string())  # no check of 1e7 indices
            columns[col] = pa.DictionaryArray.from_arrays(codes, dictionary, safe=False)
        else:
            columns[col] = pa.array(_repeated(runs[col].to_numpy(), counts))
    columns["epoch"] = pa.array(np.broadcast_to(batch.epochs.astype(np.int32), mask.shape)[mask])
    for col in ("W", "b", "cost"):
        columns[col] = pa.array(getattr(batch, col)[rows][mask])
    return pa.Table.from_arrays(
        [columns[c] for c in TRAJECTORY_COLUMNS], schema=_trajectory_schema(runs, batch.W.dtype)
    )


def _repeated(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``np.repeat(values, counts)``; where every value is the same (most run attributes of a
    piece: one dataset, optimizer, device ...), a read-only slice of one filled array kept
    for that value, so a piece does not write (and first touch) a fresh array per column."""
    bits = np.ascontiguousarray(values).view(f"u{values.itemsize}")  # bit for bit: -0.0 is not 0.0
    if bits.size and (bits == bits[0]).all():
        size = int(counts.sum())
        return _filled(values.dtype.str, bits[0].item(), max(size, PIECE_ROWS))[:size]
    return np.repeat(values, counts)


@functools.lru_cache(maxsize=32)
def _filled(dtype: str, bits: int, size: int) -> np.ndarray:
    """A read-only array of ``size`` values of type ``dtype`` whose bits are ``bits``."""
    kind = np.dtype(dtype)
    full = np.full(size, bits, dtype=f"u{kind.itemsize}").view(kind)
    full.flags.writeable = False
    return full


def _trajectory_schema(runs: pd.DataFrame, dtype: np.dtype) -> pa.Schema:
    """The trajectory table's Arrow schema, with the pandas metadata ``DataFrame.to_parquet``
    would write for it (so readers get the same frame as from a pandas-written file)."""
    import pyarrow as pa

    from gdbench.io import unified_schema

    empty = runs.iloc[:0].copy()
    empty["epoch"] = np.zeros(0, dtype=np.int32)
    for col in ("W", "b", "cost"):
        empty[col] = np.zeros(0, dtype=dtype)
    return unified_schema(pa.Schema.from_pandas(empty[list(TRAJECTORY_COLUMNS)], preserve_index=False))


def summary(batch: TrajectoryBatch, analysis: RunAnalysis, run_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per run: axes, verdicts, optimum, the derived quantities of ``analysis``
    (:func:`gdbench.analysis.analyse_runs`: rates, theory) and training time."""
    df = run_table(batch.runs, run_ids)
    v = batch.verdicts
    df["n_points"] = analysis.n_points
    df["final_W"] = v.final_W
    df["final_b"] = v.final_b
    df["final_cost"] = v.final_cost
    df["min_cost"] = v.min_cost
    df["optimal_cost"] = v.optimal_cost
    df["excess_cost"] = v.final_cost - v.optimal_cost
    df["diverged"] = v.diverged.astype(bool)
    df["diverged_at"] = _epochs(v.diverged_at)
    df["converged_at"] = _epochs(v.converged_at)
    df["reached_at"] = _epochs(v.reached_at)
    df["rate"] = analysis.rate
    df["predicted_rate"] = analysis.predicted_rate
    df["critical_lr"] = analysis.critical_lr
    df["fastest_lr"] = analysis.fastest_lr
    df["lr_ratio"] = analysis.lr_ratio
    predicted_diverged = pd.array(analysis.predicted_diverged, dtype="boolean")
    predicted_diverged[~analysis.known] = pd.NA
    df["predicted_diverged"] = predicted_diverged
    df["batch_seconds_per_run"] = batch.seconds
    df["horizon_edge"] = analysis.horizon_edge
    df["ms_critical_lr"] = analysis.ms_critical_lr
    df["ms_lr_ratio"] = analysis.ms_lr_ratio
    return df[list(SUMMARY_COLUMNS)]


def _epochs(values: np.ndarray) -> pd.arrays.IntegerArray:
    """An epoch column: nullable integers, empty where ``values`` is -1 (never)."""
    out = pd.array(np.where(values >= 0, values, 0), dtype="Int64")
    out[values < 0] = pd.NA
    return out


def theory_table(
    theories: Mapping[str, Theory],
    optima: Sequence[Optimum] = (),
    *,
    optimizers: Mapping[str, OptimizerSpec],
) -> pd.DataFrame:
    """One row per dataset and optimizer (``optimizers``, by name): n, eigenvalues,
    the optimizer's settings, its critical learning rate and that as a formula, its fastest
    learning rate and the rate predicted there (empty where there is no closed form); with ``optima`` one such
    row per dataset, seed (where the points depend on it) and optimizer, with the optimum
    ``W_star``, ``b_star``, ``optimal_cost`` (``seed`` empty where it does not matter)."""
    specs = optimizers
    rows = []
    for t in theories.values():
        for spec in specs.values():
            s = stability.stable_range(t.dataset, spec, t.lambda_min, t.lambda_max)
            rows.append(
                {
                    "dataset": t.dataset,
                    "optimizer": spec.name,
                    "settings": spec.describe(),
                    "n": t.n,
                    "lambda_min": t.lambda_min,
                    "lambda_max": t.lambda_max,
                    "critical_lr": s.critical_lr,
                    "critical_rule": stability.critical_rule(spec),
                    "fastest_lr": s.fastest_lr,
                    "fastest_rate": fastest_rate(spec, s.fastest_lr, t.lambda_min, t.lambda_max),
                }
            )
    df = pd.DataFrame(rows)
    if not optima:
        return df
    points = pd.DataFrame([{"dataset": o.dataset, **o.to_dict()} for o in optima])
    points["seed"] = pd.array(points["seed"].tolist(), dtype="Int64")
    df = points.merge(df, on="dataset", how="left", sort=False)
    first = ["dataset", "seed", "optimizer"]
    return df[first + [c for c in df.columns if c not in first]]


#: The theory table's full-batch columns, empty on its minibatch rows.
FULL_BATCH_THEORY = ("critical_lr", "critical_rule", "fastest_lr", "fastest_rate")


def theory_by_batch_size(
    table: pd.DataFrame,
    batch_sizes: Sequence[int | None],
    points: Mapping[str, np.ndarray],
    optimizers: Mapping[str, OptimizerSpec],
) -> pd.DataFrame:
    """The theory table (:func:`theory_table`) once per batch size, ``batch_size`` after
    ``optimizer`` (``full`` or the integer, as the summary writes it) and ``ms_critical_lr``
    last. Rows where the batch size is below the dataset's ``n`` (``points``: its x) are
    minibatch rows: the full-batch columns empty, ``ms_critical_lr`` the mean-square bound of
    :mod:`gdbench.minibatch` (empty for optimizers it does not cover); on full-batch rows
    ``ms_critical_lr`` is empty (their ``critical_lr`` is exact)."""
    from gdbench.minibatch import ms_bound

    frames = []
    where = list(table.columns).index("optimizer") + 1
    for size in dict.fromkeys(batch_sizes):
        part = table.copy()
        part.insert(where, "batch_size", "full" if size is None else str(size))
        bounds = [
            ms_bound(spec.kind, spec.momentum, spec.weight_decay, points[str(ds)], size)
            for ds, spec in zip(part["dataset"], (optimizers[str(o)] for o in part["optimizer"]), strict=True)
        ]
        mini = np.array([size is not None and size < points[str(ds)].size for ds in part["dataset"]], dtype=bool)
        for col in FULL_BATCH_THEORY:
            if col in part:
                part[col] = part[col].where(~mini, "" if col == "critical_rule" else np.nan)
        part["ms_critical_lr"] = np.array(bounds, dtype=np.float64)
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


#: The lr / critical_lr at which the rate curves are tabulated: log-spaced over both sides of
#: the critical lr (1 itself included), for figures on a log axis.
CURVE_RATIOS = np.unique(np.concatenate([np.logspace(-6.0, 1.0, 701), [1.0]]))
CURVE_COLUMNS = ("dataset", "optimizer", "lr_ratio", "lr", "predicted_rate", "rate_formula")


def rate_curve_table(theories: Mapping[str, Theory], optimizers: Mapping[str, OptimizerSpec]) -> pd.DataFrame:
    """Each optimizer's predicted rate over lr / its critical lr, per dataset (one row per
    point of :data:`CURVE_RATIOS`, and the fastest lr's ratio where there is one): the max
    over the directions with lambda > 0 of the excess cost's factor per epoch
    (:func:`gdbench.stability.rate_curve`), for a start with error along every direction.
    Optimizers without a closed form (Adam) have no rows: plots read this table, not theory."""
    specs = optimizers
    frames = []
    for t in theories.values():
        lam = np.array([t.lambda_min, t.lambda_max])
        for spec in specs.values():
            s = stability.stable_range(t.dataset, spec, t.lambda_min, t.lambda_max)
            if stability.rate_factor(spec) is None or not np.isfinite(s.critical_lr):
                continue
            ratios = CURVE_RATIOS
            if np.isfinite(s.fastest_lr):
                ratios = np.unique(np.concatenate([ratios, [s.fastest_lr / s.critical_lr]]))
            plain = spec.kind == "sgd" and spec.momentum == 0
            frames.append(
                pd.DataFrame(
                    {
                        "dataset": t.dataset,
                        "optimizer": spec.name,
                        "lr_ratio": ratios,
                        "lr": ratios * s.critical_lr,
                        "predicted_rate": stability.rate_curve(spec, lam, ratios),
                        "rate_formula": "(1 − lr·λ)²" if plain else "ρ² (spectral radius of its 2×2 step)",
                    }
                )
            )
    if not frames:
        return pd.DataFrame({c: [] for c in CURVE_COLUMNS})
    return pd.concat(frames, ignore_index=True)[list(CURVE_COLUMNS)]


def fastest_rate(spec: OptimizerSpec, lr: float, lambda_min: float, lambda_max: float) -> float:
    """The excess cost's predicted contraction per epoch at ``lr`` (the fastest lr), over the
    eigen-directions with ``lambda > 0``: NaN where ``lr`` is NaN or there is no closed form."""
    lam = np.array([v for v in (lambda_min, lambda_max) if v > 0])
    if not np.isfinite(lr) or not lam.size:
        return float("nan")
    return stability.run_rate(spec, lr, lam)


def concat_parquet(paths: Sequence[str], out: str) -> int:
    """Concatenate Parquet tables row group by row group into ``out`` (atomically), never
    holding more than one row group (a training job's chunk of runs) in memory; categorical
    columns are unified to one dictionary type. A single table is copied as it is (the
    training job wrote it with that type already). Returns the number of rows written."""
    import shutil

    import pyarrow.parquet as pq

    from gdbench.io import atomic_path, parquet_appender, unified_schema

    if len(paths) == 1:
        source = pq.ParquetFile(paths[0])
        if source.schema_arrow.equals(unified_schema(source.schema_arrow)):
            with atomic_path(out) as tmp:
                shutil.copyfile(paths[0], tmp)
            return int(source.metadata.num_rows)
    with parquet_appender(out) as writer:
        for path in paths:
            source = pq.ParquetFile(path)
            for group in range(source.num_row_groups):
                writer.append(source.read_row_group(group))
    return writer.rows


def concat_tables(paths: Sequence[str]) -> pd.DataFrame:
    """Small tables (summaries) read and concatenated, sorted by run id."""
    return concat_frames([pd.read_parquet(p) for p in paths])


def concat_frames(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Tables of the same columns concatenated, sorted by run id, their categorical columns
    in order of first appearance."""
    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values("run_id", kind="stable").reset_index(drop=True)
    for col in _CATEGORICAL:
        if col in df:
            df[col] = ordered_categorical(df[col])
    return df
