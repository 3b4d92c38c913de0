"""The reduction behind the convergence figure, with pandas and numpy only (no matplotlib):
which epochs are drawn (``kept_epochs``, at most ``MAX_POINTS`` per line), which trajectory rows
to read for them (``read_drawn``), and seeds reduced to one line per (facet, lr)
(``aggregate_lines``: median, min and max of the excess cost, or of its upper envelope:
``envelope``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gdbench.verdicts import FLOOR_ULPS

#: Costs of exactly 0 are drawn at this value (or below the smallest positive cost) on log axes.
ZERO_FLOOR = 1e-16
#: Epochs drawn per line at most (the rest are thinned out before aggregating).
MAX_POINTS = 500
#: Run attributes that split facets into rows when they take more than one value.
ROW_AXES = ("optimizer", "device", "engine", "init", "batch_size", "dtype", "epochs")


def excess(cost: np.ndarray, optimal: np.ndarray | None, dtype: np.ndarray | None) -> tuple[np.ndarray, str | None]:
    """Excess cost ``cost - optimal`` (float64; ``cost`` itself without an optimum). Where
    the optimum is > 0, finite values below the float floor (``FLOOR_ULPS`` ulps of the
    optimal cost in the run's dtype, where rounding scatters converged runs, even below 0)
    are drawn at it; returns the values and a note when any was raised."""
    cost = np.asarray(cost, dtype=np.float64)
    if optimal is None:
        return cost.copy(), None
    optimal = np.asarray(optimal, dtype=np.float64)
    return _floored(cost - optimal, optimal, ulp_floor(optimal, dtype))


def ulp_floor(optimal: np.ndarray, dtype: np.ndarray | None) -> np.ndarray:
    """``FLOOR_ULPS`` ulps of each optimal cost in its dtype (``dtype``: names; float64 when None)."""
    floor = np.zeros_like(optimal)
    dtypes = np.asarray(dtype).astype(str) if dtype is not None else np.full(optimal.shape, "float64")
    for name in np.unique(dtypes):
        sel = dtypes == name
        kind = np.dtype(name if name in ("float32", "float64", "float16") else "float64").type
        floor[sel] = FLOOR_ULPS * np.spacing(optimal[sel].astype(kind)).astype(np.float64)
    return floor


def _floored(excess: np.ndarray, optimal: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``excess`` with finite values below ``floor`` raised to it where ``optimal`` > 0, and the
    note saying so when any was."""
    low = np.isfinite(excess) & (optimal > 0) & (excess < floor)
    excess[low] = floor[low]
    note = f"excess within {FLOOR_ULPS} ulps of the optimum (rounding) drawn there"
    return excess, note if low.any() else None


def ordered(col: pd.Series) -> list[str]:
    """Distinct values as strings, in categorical order when the column has one."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = set(col.astype(str).unique())
        return [str(c) for c in col.cat.categories if str(c) in present]
    return sorted(col.astype(str).unique())


@dataclass
class Lines:
    """Per-line aggregates of a trajectory table, small enough to draw."""

    lines: pd.DataFrame  # one row per line: facet, lr, n_runs, n_diverged, diverged_epochs
    epoch: np.ndarray  # [P] the points of all lines, sorted by (line, epoch)
    median: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    start: np.ndarray  # [L + 1] offsets of each line's points
    floor: float
    had_zero: bool
    notes: list[str]


def kept_epochs(epoch: np.ndarray, max_points: int) -> np.ndarray:
    """A lookup table (indexed by epoch) of the epochs to draw: all when there are few, else a
    linear grid plus a geometric one (early epochs are where most curves change)."""
    top = int(epoch.max()) if epoch.size else 0
    present = np.flatnonzero(np.bincount(epoch, minlength=top + 1))
    keep = np.zeros(top + 1, dtype=bool)
    if present.size <= max_points:
        keep[present] = True
        return keep
    n_lin = max(2, int(max_points * 0.8))
    lin = np.round(np.linspace(0, present.size - 1, n_lin)).astype(np.int64)
    geo = np.round(np.geomspace(1, present.size, max_points - n_lin)).astype(np.int64) - 1
    keep[present[np.union1d(lin, geo)]] = True
    return keep


def read_drawn(path: str | os.PathLike[str], summary: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The rows of a trajectory table (parquet at ``path``) that the convergence figure can
    draw: the epochs ``kept_epochs`` keeps, plus each run's last and divergence epochs, so that
    big grids never load every row. Columns that are run attributes in ``summary`` (e.g. the
    axes) are left out: :func:`aggregate_lines` takes them from the summary by run id (repeated
    on every row, they would cost most of the read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    top = int(summary["epochs"].max()) if len(summary) else 0
    drawn = np.flatnonzero(kept_epochs(np.arange(top + 1), MAX_POINTS))
    ends = np.concatenate([summary["epochs"].to_numpy(), summary["diverged_at"].dropna().to_numpy()])
    per_row = [c for c in columns if c not in summary.columns and c not in ("run_id", "epoch")]
    read = ["run_id", "epoch", *per_row]
    wanted = np.zeros(top + 2, dtype=bool)  # the last entry stands for every epoch past the summary's
    wanted[drawn] = True
    wanted[ends[(ends >= 0) & (ends <= top)].astype(np.int64)] = True
    source, parts = pq.ParquetFile(path), []
    for group in range(source.num_row_groups):  # a row group at a time: its memory is reused
        part = source.read_row_group(group, columns=read)
        epoch = part.column("epoch").to_numpy()
        parts.append(part.filter(pa.array(wanted[np.minimum(epoch, top + 1)])))
    table = pa.concat_tables(parts) if parts else source.schema_arrow.empty_table().select(read)
    return table.to_pandas()[[c for c in columns if c in read]]


def envelope(code: np.ndarray, epoch: np.ndarray, cost: np.ndarray, grows: np.ndarray) -> np.ndarray:
    """Each run's upper envelope of ``cost`` over its own points (``code``: the run of each
    point, ``grows[code]``: whether that run diverged): the largest value from that epoch on
    for a run that did not diverge (its excess never again exceeds it: an oscillating momentum
    run reads as the decay of its peaks), the largest so far for one that did (its growth).
    Both are monotone; a monotone curve is its own envelope. NaN points stay NaN."""
    order = np.lexsort((epoch, code))
    c, k = cost[order], code[order]
    values = pd.Series(c)
    ahead = values.groupby(k, sort=False).cummax().to_numpy()
    behind = values[::-1].groupby(k[::-1], sort=False).cummax().to_numpy()[::-1]
    out = np.empty_like(cost)
    out[order] = np.where(grows[k], ahead, behind)
    return out


def aggregate_lines(
    trajectories: pd.DataFrame, summary: pd.DataFrame, max_lines: int, *, upper_envelope: bool = False
) -> Lines:
    """Thin epochs, then reduce seeds to one line per (facet, lr): median, min and max of the
    excess cost, or with ``upper_envelope`` of each run's :func:`envelope` of it. A run's
    attributes (dataset, lr, the row axes) come from ``trajectories``, or from ``summary`` by run
    id where ``trajectories`` lacks them (as :func:`read_drawn` reads it). The lines are chosen
    first; only the points of the runs drawn are reduced."""
    notes: list[str] = []
    if len(trajectories) == 0:
        empty = np.empty(0)
        return Lines(pd.DataFrame(), empty, empty, empty, empty, np.zeros(1, np.int64), ZERO_FLOOR, False, notes)
    epoch = trajectories["epoch"].to_numpy().astype(np.int64, copy=False)
    rid_codes, rid_uniques = pd.factorize(trajectories["run_id"].to_numpy(), sort=False)
    rid_codes = rid_codes.astype(np.int32, copy=False)
    stop = _stop_epochs(rid_uniques, summary)
    in_summary = _summary_rows(summary, rid_uniques)

    # The rows drawn: the thinned epochs, and each run's divergence and last epoch.
    keep = kept_epochs(epoch, MAX_POINTS)[epoch]
    keep |= epoch == stop[rid_codes]
    if "epochs" in trajectories.columns:
        keep |= epoch == trajectories["epochs"].to_numpy()
    elif "epochs" in summary.columns:
        ends = np.where(in_summary >= 0, summary["epochs"].to_numpy()[np.maximum(in_summary, 0)], -1)
        keep |= epoch == ends[rid_codes]
    rows = np.flatnonzero(keep)
    del keep
    k_code = rid_codes[rows]

    # The lines first (from the runs' attributes): then only the drawn runs' points are reduced.
    runs = _run_table(trajectories, summary, rows, rid_codes, in_summary, k_code)
    line_notes: list[str] = []
    per_line, line_of_code = _lines_of(runs, len(rid_uniques), max_lines, line_notes)
    drawn = line_of_code[k_code] >= 0
    rows, k_code = rows[drawn], k_code[drawn]
    k_epoch = epoch[rows]
    k_cost = trajectories["cost"].to_numpy()[rows].astype(np.float64)
    k_cost = _excess_of_runs(k_cost, k_code, in_summary, summary, notes)
    notes += line_notes
    _line_divergences(per_line, runs, line_of_code, _diverged_at(stop, k_code, k_epoch, k_cost))
    if upper_envelope:  # diverged: the summary's verdict
        k_cost = envelope(k_code, k_epoch, k_cost, stop >= 0)

    # Costs: non-finite is overflow (+inf, drawn off the top); exact zeros are floored for the log axis.
    k_line = line_of_code[k_code]
    k_cost[~np.isfinite(k_cost)] = np.inf
    positive = k_cost[(k_cost > 0) & np.isfinite(k_cost)]
    floor = min(ZERO_FLOOR, float(positive.min()) / 10) if positive.size else ZERO_FLOOR
    zero = k_cost <= 0
    k_cost[zero] = floor

    span = int(k_epoch.max(initial=0)) + 1
    agg = pd.Series(k_cost).groupby(k_line * span + k_epoch, sort=True).agg(["median", "min", "max"])
    keys = agg.index.to_numpy()
    # Lines are numbered 0..L-1 in per_line order (see _lines_of), so offsets index them directly.
    start = np.searchsorted(keys // span, np.arange(len(per_line) + 1))
    return Lines(
        lines=per_line,
        epoch=keys % span,
        median=agg["median"].to_numpy(),
        lo=agg["min"].to_numpy(),
        hi=agg["max"].to_numpy(),
        start=start,
        floor=floor,
        had_zero=bool(zero.any()),
        notes=notes,
    )


def _summary_rows(summary: pd.DataFrame, rid_uniques: np.ndarray) -> np.ndarray:
    """The summary's row of each run ``rid_uniques`` (-1: not in it)."""
    if "run_id" not in summary.columns:
        return np.full(len(rid_uniques), -1, dtype=np.intp)
    return pd.Index(summary["run_id"].to_numpy()).get_indexer(rid_uniques)


def _stop_epochs(rid_uniques: np.ndarray, summary: pd.DataFrame) -> np.ndarray:
    """Each run's divergence epoch from the summary (-1: none), so that its last point is kept."""
    stop = np.full(len(rid_uniques), -1, dtype=np.int64)
    if len(summary) and {"run_id", "diverged", "diverged_at"} <= set(summary.columns):
        s = summary[summary["diverged"].fillna(False).astype(bool)]
        pos = pd.Index(rid_uniques).get_indexer(s["run_id"].to_numpy())
        at = s["diverged_at"].astype("Float64").fillna(-1).to_numpy(dtype=np.float64).astype(np.int64)
        ok = pos >= 0
        stop[pos[ok]] = at[ok]
    return stop


def _excess_of_runs(
    k_cost: np.ndarray, k_code: np.ndarray, pos: np.ndarray, summary: pd.DataFrame, notes: list[str]
) -> np.ndarray:
    """The excess over each run's optimal cost (from its summary row ``pos``), when it has one."""
    if not (len(summary) and {"run_id", "optimal_cost"} <= set(summary.columns)):
        return k_cost
    optimal = np.where(pos >= 0, summary["optimal_cost"].to_numpy(dtype=np.float64)[pos], 0.0)
    dtypes = summary["dtype"].astype(str).to_numpy()[pos] if "dtype" in summary.columns else None
    floor = ulp_floor(optimal, dtypes)  # per run, then per point
    k_cost, note = _floored(k_cost - optimal[k_code], optimal[k_code], floor[k_code])
    if note:
        notes.append(note)
    return k_cost


def _run_table(
    trajectories: pd.DataFrame,
    summary: pd.DataFrame,
    rows: np.ndarray,
    rid_codes: np.ndarray,
    in_summary: np.ndarray,
    k_code: np.ndarray,
) -> pd.DataFrame:
    """One row per run: its facet and lr (first kept row of each run, or its summary row
    ``in_summary[code]`` for an attribute the trajectories lack) and its ``code``."""
    at = np.flatnonzero(~pd.Series(k_code).duplicated().to_numpy())  # each run's first kept row
    first = rows[at[np.argsort(k_code[at], kind="stable")]]  # by code
    wanted = ("run_id", "dataset", "lr", *ROW_AXES)
    own = [c for c in wanted if c in trajectories.columns]
    runs = trajectories[own].iloc[first].reset_index(drop=True)
    runs["code"] = rid_codes[first]
    looked_up = [c for c in wanted if c not in own and c in summary.columns]
    if looked_up:
        pos = in_summary[runs["code"].to_numpy()]
        for col in looked_up:
            runs[col] = summary[col].iloc[pos].reset_index(drop=True)
    return runs[[*[c for c in wanted if c in runs.columns], "code"]]


def _diverged_at(stop: np.ndarray, k_code: np.ndarray, k_epoch: np.ndarray, k_cost: np.ndarray) -> np.ndarray:
    """The epoch each run diverged at (-1: never): the summary's verdict, or the first
    non-finite cost among its points (``k_code``: their runs)."""
    nonfinite = ~np.isfinite(k_cost)
    div_at = stop.copy()
    if nonfinite.any():
        first_bad = pd.Series(k_epoch[nonfinite]).groupby(k_code[nonfinite]).min()
        fill = div_at[first_bad.index.to_numpy()] < 0
        div_at[first_bad.index.to_numpy()[fill]] = first_bad.to_numpy()[fill]
    return div_at


def _lines_of(runs: pd.DataFrame, n_codes: int, max_lines: int, notes: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The lines, one per (facet, lr), at most ``max_lines`` lrs per facet (evenly spaced); and
    each run code's line (0..L-1 in the lines' order; -1: not drawn)."""
    facet_cols = [c for c in ("dataset", *ROW_AXES) if c in runs.columns]
    for c in facet_cols:  # as strings, in the table's own order (categorical, else first seen)
        text = runs[c].astype(str)
        order = ordered(runs[c]) if isinstance(runs[c].dtype, pd.CategoricalDtype) else list(dict.fromkeys(text))
        runs[c] = pd.Categorical(text, categories=order)
    runs["line"] = runs.groupby([*facet_cols, "lr"], sort=True, observed=True, dropna=False).ngroup()
    per_line = runs.sort_values("line", kind="stable").drop_duplicates("line").set_index("line")[[*facet_cols, "lr"]]
    shown = np.ones(len(per_line), dtype=bool)
    for idx in per_line.groupby(facet_cols, sort=False, observed=True).indices.values():
        lrs = per_line["lr"].to_numpy()[idx]
        if lrs.size > max_lines:
            by_lr = np.argsort(lrs, kind="stable")
            pick = np.unique(np.round(np.linspace(0, lrs.size - 1, max_lines)).astype(np.int64))
            drop = np.setdiff1d(np.arange(lrs.size), pick)
            shown[idx[by_lr[drop]]] = False
            notes.append(f"{len(pick)} of {lrs.size} learning rates drawn (evenly spaced)")
    renumber = np.where(shown, np.cumsum(shown) - 1, -1)  # shown lines as 0..L-1, in order
    line_of_code = np.full(n_codes, -1, dtype=np.int64)
    line_of_code[runs["code"].to_numpy()] = renumber[runs["line"].to_numpy()]
    return per_line[shown].reset_index(drop=True), line_of_code


def _line_divergences(per_line: pd.DataFrame, runs: pd.DataFrame, line_of_code: np.ndarray, div_at: np.ndarray) -> None:
    """Add each line's run and divergence counts and its runs' divergence epochs (``div_at``:
    per run code) to ``per_line``."""
    codes = runs["code"].to_numpy()
    line = line_of_code[codes]
    drawn = line >= 0
    by_line = pd.Series(div_at[codes[drawn]]).groupby(line[drawn], sort=True)
    per_line["n_runs"] = by_line.size().reindex(per_line.index).to_numpy()
    per_line["n_diverged"] = by_line.agg(lambda s: int((s >= 0).sum())).reindex(per_line.index).to_numpy()
    per_line["diverged_epochs"] = by_line.agg(lambda s: sorted({int(v) for v in s if v >= 0})).reindex(per_line.index)
