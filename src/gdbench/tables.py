"""Tidy tables: trajectories (one row per run per recorded epoch) and summaries (one row per
run), as pandas DataFrames with compact column types.

Run attributes repeat on every trajectory row, so they are stored as categoricals (and as
Parquet dictionaries): a 10,000-run x 2,001-epoch table stays small in memory and on disk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from gdbench import stability
from gdbench.optimizers import DEFAULT_NAME, PLAIN_SGD, OptimizerSpec
from gdbench.runs import RunSpec
from gdbench.theory import Optimum, Theory
from gdbench.trajectory import TrajectoryBatch

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
    "train_seconds",
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
    return pd.Categorical(values, categories=list(dict.fromkeys(values)))


def trajectories(batch: TrajectoryBatch, run_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """The tidy trajectory table of a batch: each run's own recorded epochs only."""
    runs = run_table(batch.runs, run_ids)
    ri, ti = np.nonzero(batch.recorded_mask())
    out = {col: runs[col].to_numpy()[ri] if col not in _CATEGORICAL else None for col in runs.columns}
    for col in _CATEGORICAL:
        cat = runs[col].cat
        out[col] = pd.Categorical.from_codes(cat.codes.to_numpy()[ri], categories=cat.categories)
    out["epoch"] = batch.epochs[ti].astype(np.int32)
    out["W"] = batch.W[ri, ti]
    out["b"] = batch.b[ri, ti]
    out["cost"] = batch.cost[ri, ti]
    return pd.DataFrame(out, columns=list(TRAJECTORY_COLUMNS))


def summary(
    batch: TrajectoryBatch,
    theories: Mapping[str, Theory],
    run_ids: Sequence[int] | None = None,
    n_points: Sequence[int] | None = None,
    optimizers: Mapping[str, OptimizerSpec] | None = None,
    *,
    rate: np.ndarray | None = None,
    predicted_rate: np.ndarray | None = None,
    full_batch: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per run: axes, verdicts, optimum, rates, theory and training time.

    ``theories`` maps dataset name to its :class:`~gdbench.theory.Theory`; ``rate`` and
    ``predicted_rate`` (NaN where not defined) and ``full_batch`` are per run (absent: NaN,
    and every run full batch). ``predicted_diverged`` (``predicted_rate > 1``) is empty where
    the full-batch theory does not apply: minibatch runs and runs without a predicted rate
    (their initial error has no component with excess cost, i.e. an initial excess of 0);
    without ``predicted_rate`` it is ``lr >= critical_lr``. ``optimizers`` maps optimizer name
    to its spec (absent: plain SGD): the theory columns are the run's optimizer's
    (:mod:`gdbench.stability`), empty where it has no closed form (Adam)."""
    df = run_table(batch.runs, run_ids)
    v = batch.verdicts
    ranges = stability_by_run(batch.runs, theories, optimizers)
    critical = np.array([s.critical_lr for s in ranges])
    fastest = np.array([s.fastest_lr for s in ranges])
    lr = df["lr"].to_numpy()
    df["n_points"] = (
        np.asarray(n_points, dtype=np.int64) if n_points is not None else [theories[r.dataset].n for r in batch.runs]
    )
    df["final_W"] = v.final_W
    df["final_b"] = v.final_b
    df["final_cost"] = v.final_cost
    df["min_cost"] = v.min_cost
    df["optimal_cost"] = v.optimal_cost
    df["excess_cost"] = v.final_cost - v.optimal_cost
    df["diverged"] = v.diverged.astype(bool)
    df["diverged_at"] = pd.array(np.where(v.diverged_at >= 0, v.diverged_at, 0), dtype="Int64")
    df.loc[v.diverged_at < 0, "diverged_at"] = pd.NA
    df["converged_at"] = pd.array(np.where(v.converged_at >= 0, v.converged_at, 0), dtype="Int64")
    df.loc[v.converged_at < 0, "converged_at"] = pd.NA
    nan = np.full(len(df), np.nan)
    df["rate"] = nan if rate is None else np.asarray(rate, dtype=np.float64)
    df["predicted_rate"] = nan if predicted_rate is None else np.asarray(predicted_rate, dtype=np.float64)
    df["critical_lr"] = critical
    df["fastest_lr"] = fastest
    df["lr_ratio"] = lr / critical
    full = np.ones(len(df), dtype=bool) if full_batch is None else np.asarray(full_batch, dtype=bool)
    if predicted_rate is None:  # no rates given: the critical lr decides
        predicted_diverged = pd.array(lr >= critical, dtype="boolean")
        known = full & np.isfinite(critical)
    else:
        predicted_diverged = pd.array(df["predicted_rate"].to_numpy() > 1, dtype="boolean")
        known = full & np.isfinite(df["predicted_rate"].to_numpy())
    predicted_diverged[~known] = pd.NA
    df["predicted_diverged"] = predicted_diverged
    df["train_seconds"] = batch.seconds
    return df[list(SUMMARY_COLUMNS)]


def stability_by_run(
    runs: Sequence[RunSpec], theories: Mapping[str, Theory], optimizers: Mapping[str, OptimizerSpec] | None = None
) -> list[stability.Stability]:
    """The stable range of each run's optimizer on its dataset (computed once per pair)."""
    cache: dict[tuple[str, str], stability.Stability] = {}
    out = []
    for run in runs:
        key = (run.dataset, run.optimizer)
        if key not in cache:
            cache[key] = stability.analyse(
                run.dataset,
                optimizer_of(run.optimizer, optimizers),
                theories[run.dataset].lambda_min,
                theories[run.dataset].lambda_max,
            )
        out.append(cache[key])
    return out


def optimizer_of(name: str, optimizers: Mapping[str, OptimizerSpec] | None) -> OptimizerSpec:
    """The spec named ``name`` (a name ``optimizers`` lacks is an error); without
    ``optimizers``, every run is plain SGD's ``sgd``."""
    if optimizers is None and name == DEFAULT_NAME:
        return PLAIN_SGD
    if optimizers is None or name not in optimizers:
        raise KeyError(f"optimizer {name!r} is not defined; known: {sorted(optimizers or {})}")
    return optimizers[name]


def theory_table(
    theories: Mapping[str, Theory],
    optima: Sequence[Optimum] = (),
    optimizers: Mapping[str, OptimizerSpec] | None = None,
) -> pd.DataFrame:
    """One row per dataset and optimizer (plain SGD when none are given): n, eigenvalues,
    the optimizer's settings, its critical learning rate and that as a formula, and its
    fastest learning rate (empty where there is no closed form); with ``optima`` one such
    row per dataset, seed (where the points depend on it) and optimizer, with the optimum
    ``W_star``, ``b_star``, ``optimal_cost`` (``seed`` empty where it does not matter)."""
    specs = optimizers or {DEFAULT_NAME: PLAIN_SGD}
    rows = []
    for t in theories.values():
        for spec in specs.values():
            s = stability.analyse(t.dataset, spec, t.lambda_min, t.lambda_max)
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


def concat_parquet(paths: Sequence[str], out: str) -> int:
    """Concatenate Parquet tables shard by shard into ``out`` (atomically), never holding more
    than one shard in memory; categorical columns are unified to one dictionary type.
    Returns the number of rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gdbench.io import atomic_path

    def unified(schema: pa.Schema) -> pa.Schema:
        return pa.schema(
            [
                pa.field(f.name, pa.dictionary(pa.int32(), pa.string())) if pa.types.is_dictionary(f.type) else f
                for f in schema
            ],
            metadata=schema.metadata,
        )

    rows = 0
    with atomic_path(out) as tmp:
        writer = None
        try:
            for path in paths:
                table = pq.read_table(path)
                if writer is None:
                    schema = unified(table.schema)
                    writer = pq.ParquetWriter(tmp, schema)
                writer.write_table(table.cast(schema))
                rows += table.num_rows
        finally:
            if writer is not None:
                writer.close()
    return rows


def concat_tables(paths: Sequence[str]) -> pd.DataFrame:
    """Small tables (summaries) read and concatenated, sorted by run id."""
    frames = [pd.read_parquet(p) for p in paths]
    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values("run_id", kind="stable").reset_index(drop=True)
    for col in _CATEGORICAL:
        if col in df:
            df[col] = ordered_categorical(df[col])
    return df
