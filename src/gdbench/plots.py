"""Figures people read: convergence, divergence and timing, drawn from the tidy tables.

Every function takes pandas DataFrames (the contracts of :mod:`gdbench.tables` and the timing
table), writes one PNG (150 dpi) and one SVG atomically, and returns ``None``. All share one
seaborn theme, applied in a context so the caller's matplotlib settings are left as they were.

Conventions (the same in every figure):

* learning rate is a colour on a log scale (a ``LogNorm`` colour bar labelled "learning rate");
* diverged runs are drawn distinctly and clipped at the top of the axis with a marker, so that
  costs of 1e30 do not flatten the curves that converge;
* theory is drawn as labelled reference lines; facets are titled ``dataset = tutorial``.

Figures are built on :class:`matplotlib.figure.Figure` objects, never through pyplot's global
state, so they work under whatever backend the caller chose; when none was chosen (and pyplot is
not imported yet) importing the module selects ``Agg``, which needs no display.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import matplotlib


def _backend_chosen() -> bool:
    try:
        return matplotlib.get_backend(auto_select=False) is not None
    except TypeError:  # matplotlib < 3.10
        from matplotlib import rcsetup

        return dict.__getitem__(matplotlib.rcParams, "backend") is not rcsetup._auto_backend_sentinel


# Agg (no display needed) unless the caller chose a backend, or imported pyplot and so may
# still want interactive figures (pyplot then resolves its backend itself, Agg when headless).
if "matplotlib.pyplot" not in sys.modules and not _backend_chosen():
    matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import BoundaryNorm, Colormap, ListedColormap, LogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, LogFormatter, NullLocator  # noqa: E402

from gdbench.analysis import FLOOR_ULPS, crossover  # noqa: E402
from gdbench.io import atomic_path  # noqa: E402
from gdbench.optimizers import PLAIN_SGD, OptimizerSpec  # noqa: E402

__all__ = ["DPI", "convergence", "divergence", "rate", "timing"]

PathLike = str | os.PathLike[str]

#: Resolution of the PNG files.
DPI = 150
#: Costs of exactly 0 are drawn at this value (or below the smallest positive cost) on log axes.
ZERO_FLOOR = 1e-16
#: The convergence plot's y axis ends at this many times the largest initial cost.
TOP_FACTOR = 3.0
#: Epochs drawn per line at most (the rest are thinned out before aggregating).
MAX_POINTS = 500

#: Above this many epochs the convergence plot's epoch axis is logarithmic beyond epoch 10
#: (fast runs, and every diverging one, change within the first tens of epochs).
_SYMLOG_ABOVE = 100
#: At most this many lr labels at the right end of a facet's lines (more: the colour bar only).
_MAX_END_LABELS = 12

#: Run attributes that split facets into rows when they take more than one value.
_ROW_AXES = ("optimizer", "device", "engine", "init", "batch_size", "dtype", "epochs")
_DEVICE_COLOURS = {"cpu": "#1f77b4", "cuda": "#2ca02c"}
_ENGINE_STYLE = {"loop": ("o", "-"), "batched": ("s", "--")}
_CONVERGED_COLOUR = "#3b5b92"
_DIVERGED_COLOUR = "#c0392b"
_CRITICAL_COLOUR = "#444444"
_FASTEST_COLOUR = "#1a9e77"


# --------------------------------------------------------------------------------------------
# Shared helpers


@contextmanager
def _theme() -> Iterator[None]:
    """The one theme of every figure, applied without touching the caller's rcParams."""
    rc: dict[Any, Any] = {  # matplotlib types the keys as literals
        "svg.fonttype": "none",  # text stays text in the SVG (searchable, smaller)
        "svg.hashsalt": "gdbench",  # stable element ids: the same figure gives the same file
        "savefig.dpi": DPI,
        "axes.titlesize": "medium",
        "legend.frameon": True,
        "legend.framealpha": 0.9,
    }
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85), matplotlib.rc_context(rc):
        yield


def _save(fig: Figure, out_png: PathLike, out_svg: PathLike) -> None:
    """Write the figure as PNG and SVG, each renamed into place only once complete."""
    for ax in fig.axes:
        if hasattr(ax, "_colorbar"):  # the colour bar labels itself (see _lr_colorbar)
            continue
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                _widen(ax, axis)
            if scale in ("log", "symlog") and isinstance(axis.get_major_formatter(), LogFormatter):
                lo, hi = sorted(axis.get_view_interval())
                plain = lo >= 0 and (lo == 0 or lo >= 1e-4) and hi <= 1e4
                axis.set_major_formatter(FuncFormatter(_plain_label if plain else _power_label))
                if lo <= 0 or hi / lo > 100:  # the theme draws no minor ticks; skip computing them
                    axis.set_minor_locator(NullLocator())
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    fig.set_layout_engine("none")  # keep the layout just computed: the SVG gets the same one, faster
    with atomic_path(out_svg) as tmp:
        fig.savefig(tmp, format="svg", metadata={"Date": None})


def _widen(ax: Axes, axis: matplotlib.axis.Axis) -> None:
    """Widen a log axis to at least two decades, so it has labelled ticks (a single point
    otherwise gets an axis with no label, or labels like 1.04e-4 .. 9.6e-5)."""
    lo, hi = axis.get_view_interval()
    if lo > 0 and hi > 0 and max(lo, hi) / min(lo, hi) < 100:
        mid = np.sqrt(lo * hi)
        limits = (mid / 10, mid * 10) if lo < hi else (mid * 10, mid / 10)
        (ax.set_xlim if axis is ax.xaxis else ax.set_ylim)(*limits)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _plain_label(value: float, _pos: object = None) -> str:
    """Tick labels of a log axis that stays within 0.0001..10,000: plain numbers."""
    if value <= 0 or not np.isfinite(value):
        return "0" if value == 0 else ""
    if value >= 1:
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,g}"
    return f"{value:.10f}".rstrip("0")


def _power_label(value: float, _pos: object = None) -> str:
    """Tick labels of a log axis spanning more: powers of ten as Unicode superscripts (cheaper
    than mathtext, and real text in the SVG)."""
    if value <= 0 or not np.isfinite(value):
        return "0" if value == 0 else ""
    exponent = np.log10(value)
    if abs(exponent - round(exponent)) < 1e-9:
        return "10" + str(round(exponent)).translate(_SUPERSCRIPT)
    return f"{value:.0e}"


def _lr_cmap() -> Colormap:
    """A sequential palette for learning rate, without viridis' palest yellow (unreadable on white)."""
    base = matplotlib.colormaps["viridis"]
    return ListedColormap(base(np.linspace(0.0, 0.88, 256)), name="gdbench_lr")


def _lr_norm(lrs: np.ndarray) -> LogNorm:
    lrs = lrs[np.isfinite(lrs) & (lrs > 0)]
    if lrs.size == 0:
        return LogNorm(1e-3, 1.0)
    lo, hi = float(lrs.min()), float(lrs.max())
    if hi / lo < 10:  # a single lr (or a narrow range): widen so colours stay distinct and defined
        mid = np.sqrt(lo * hi)
        lo, hi = min(lo, mid / np.sqrt(10)), max(hi, mid * np.sqrt(10))
    return LogNorm(lo, hi)


def _lr_steps(lrs: np.ndarray) -> tuple[dict[float, tuple], BoundaryNorm, Colormap, np.ndarray]:
    """One colour per distinct learning rate, in equal steps of a many-hued palette (turbo,
    without its darkest and palest ends), so that neighbours such as 0.17, 0.18 and 0.19 differ
    even where a log scale would give them one shade. Returns the colour of each lr, the
    norm and colour map of a stepped colour bar (position i is the i-th smallest lr), and the lrs."""
    distinct = np.unique(lrs[np.isfinite(lrs) & (lrs > 0)])
    n = max(distinct.size, 1)
    colours = matplotlib.colormaps["turbo"](np.linspace(0.05, 0.92, n) if n > 1 else [0.05])
    colour_of = {float(lr): tuple(colours[i]) for i, lr in enumerate(distinct)}
    return colour_of, BoundaryNorm(np.arange(n + 1) - 0.5, n), ListedColormap(colours), distinct


def _fmt(x: float) -> str:
    """A number with 3 significant digits, keeping trailing zeros (0.180, not 0.18)."""
    if not np.isfinite(x):
        return str(x)
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return np.format_float_positional(x, precision=3, unique=False, fractional=False, trim="k")
    return f"{x:.2e}"


def _fmt_int(x: float) -> str:
    return f"{x:,.0f}" if x >= 1 else f"{x:.2g}"


def _fmt_sig(x: float) -> str:
    """Two significant digits with thousands separators (215179 -> 220,000)."""
    if not np.isfinite(x) or x <= 0:
        return str(x)
    return _fmt_int(float(f"{x:.2g}"))


def _excess(cost: np.ndarray, optimal: np.ndarray | None, dtype: np.ndarray | None) -> tuple[np.ndarray, str | None]:
    """Excess cost ``cost - optimal`` (float64; ``cost`` itself without an optimum). Where
    the optimum is > 0, finite values below the float floor (``FLOOR_ULPS`` ulps of the
    optimal cost in the run's dtype, where rounding scatters converged runs, even below 0)
    are drawn at it; returns the values and a note when any was raised."""
    cost = np.asarray(cost, dtype=np.float64)
    if optimal is None:
        return cost.copy(), None
    optimal = np.asarray(optimal, dtype=np.float64)
    excess = cost - optimal
    floor = np.zeros_like(excess)
    dtypes = np.asarray(dtype).astype(str) if dtype is not None else np.full(excess.shape, "float64")
    for name in np.unique(dtypes):
        sel = dtypes == name
        kind = np.dtype(name if name in ("float32", "float64", "float16") else "float64").type
        floor[sel] = FLOOR_ULPS * np.spacing(optimal[sel].astype(kind)).astype(np.float64)
    low = np.isfinite(excess) & (optimal > 0) & (excess < floor)
    excess[low] = floor[low]
    note = f"excess within {FLOOR_ULPS} ulps of the optimum (rounding) drawn there"
    return excess, note if low.any() else None


@dataclass
class _Facets:
    """The facet grid: one column per dataset, one row per combination of the other axes that
    vary (device, engine, ...); a single row of many datasets wraps."""

    keys: list[tuple[str, tuple]]  # (dataset, row key) in drawing order
    row_axes: list[str]
    positions: dict[tuple[str, tuple], tuple[int, int]] = field(default_factory=dict)
    nrows: int = 1
    ncols: int = 1

    def title(self, key: tuple[str, tuple]) -> str:
        parts = [f"dataset = {key[0]}"] + [f"{a} = {v}" for a, v in zip(self.row_axes, key[1], strict=True)]
        return " | ".join(parts)


def _facets(runs: pd.DataFrame, max_cols: int = 3) -> _Facets:
    """Facets of a run table (one row per run, with ``dataset`` and any of the row axes)."""
    row_axes = [a for a in _ROW_AXES if a in runs.columns and runs[a].nunique(dropna=False) > 1]
    datasets = _ordered(runs["dataset"]) if "dataset" in runs.columns else ["all"]
    if row_axes:
        # In each axis' own order (categorical: the config's; e.g. sgd before heavy_ball).
        rank = [{v: i for i, v in enumerate(_ordered(runs[a]))} for a in row_axes]
        row_keys = sorted(
            {tuple(r) for r in runs[row_axes].astype(str).itertuples(index=False, name=None)},
            key=lambda key: tuple(rank[i].get(v, len(rank[i])) for i, v in enumerate(key)),
        )
    else:
        row_keys = [()]
    facets = _Facets(keys=[], row_axes=row_axes)
    if len(row_keys) == 1:
        facets.ncols = min(max_cols, len(datasets))
        facets.nrows = -(-len(datasets) // facets.ncols)
        for i, ds in enumerate(datasets):
            key = (ds, row_keys[0])
            facets.keys.append(key)
            facets.positions[key] = divmod(i, facets.ncols)
    else:
        facets.nrows, facets.ncols = len(row_keys), len(datasets)
        for r, rk in enumerate(row_keys):
            for c, ds in enumerate(datasets):
                key = (ds, rk)
                facets.keys.append(key)
                facets.positions[key] = (r, c)
    return facets


def _ordered(col: pd.Series) -> list[str]:
    """Distinct values as strings, in categorical order when the column has one."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = set(col.astype(str).unique())
        return [str(c) for c in col.cat.categories if str(c) in present]
    return sorted(col.astype(str).unique())


def _facet_of(runs: pd.DataFrame, facets: _Facets) -> list[tuple[str, tuple]]:
    """Each run's facet key."""
    ds = runs["dataset"].astype(str) if "dataset" in runs.columns else pd.Series("all", index=runs.index)
    if facets.row_axes:
        rows = list(runs[facets.row_axes].astype(str).itertuples(index=False, name=None))
    else:
        rows = [()] * len(runs)
    return list(zip(ds, rows, strict=True))


def _grid(facets: _Facets, width: float, height: float, extra_width: float = 0.0) -> tuple[Figure, dict]:
    size = (max(width * facets.ncols + extra_width, 7.5), height * facets.nrows + 1.2)
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(facets.nrows, facets.ncols, squeeze=False)
    by_key = {key: axes[r][c] for key, (r, c) in facets.positions.items()}
    used = set(facets.positions.values())
    for r in range(facets.nrows):
        for c in range(facets.ncols):
            if (r, c) not in used:
                axes[r][c].set_visible(False)
    return fig, by_key


def _empty_note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def _label_outer(facets: _Facets, by_key: dict, xlabel: str, ylabel: str) -> None:
    """Axis labels on the left column and on the lowest axes of each column only."""
    lowest: dict[int, int] = {}
    for r, c in facets.positions.values():
        lowest[c] = max(lowest.get(c, -1), r)
    for key, ax in by_key.items():
        r, c = facets.positions[key]
        ax.set_ylabel(ylabel if c == 0 else "")
        ax.set_xlabel(xlabel if lowest[c] == r else "")


# --------------------------------------------------------------------------------------------
# Convergence


@dataclass
class _Lines:
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


def _aggregate_lines(trajectories: pd.DataFrame, summary: pd.DataFrame, max_lines: int) -> _Lines:
    """Thin epochs, then reduce seeds to one line per (facet, lr): median, min and max of cost."""
    notes: list[str] = []
    if len(trajectories) == 0:
        empty = np.empty(0)
        return _Lines(pd.DataFrame(), empty, empty, empty, empty, np.zeros(1, np.int64), ZERO_FLOOR, False, notes)
    run_id = trajectories["run_id"].to_numpy()
    epoch = trajectories["epoch"].to_numpy().astype(np.int64, copy=False)
    rid_codes, rid_uniques = pd.factorize(run_id, sort=False)
    rid_codes = rid_codes.astype(np.int32, copy=False)

    # Each run's stop epoch (divergence) from the summary, so that the last point is always kept.
    stop = np.full(len(rid_uniques), -1, dtype=np.int64)
    if len(summary) and {"run_id", "diverged", "diverged_at"} <= set(summary.columns):
        s = summary[summary["diverged"].fillna(False).astype(bool)]
        pos = pd.Index(rid_uniques).get_indexer(s["run_id"].to_numpy())
        at = s["diverged_at"].astype("Float64").fillna(-1).to_numpy(dtype=np.float64).astype(np.int64)
        ok = pos >= 0
        stop[pos[ok]] = at[ok]

    keep = kept_epochs(epoch, MAX_POINTS)[epoch]
    keep |= epoch == stop[rid_codes]
    if "epochs" in trajectories.columns:
        keep |= epoch == trajectories["epochs"].to_numpy()
    rows = np.flatnonzero(keep)
    del keep

    k_code = rid_codes[rows]
    k_epoch = epoch[rows]
    k_cost = trajectories["cost"].to_numpy()[rows].astype(np.float64)
    # The excess over each run's optimal cost (from the summary), when it has one.
    if len(summary) and {"run_id", "optimal_cost"} <= set(summary.columns):
        pos = pd.Index(summary["run_id"].to_numpy()).get_indexer(rid_uniques)
        optimal = np.where(pos >= 0, summary["optimal_cost"].to_numpy(dtype=np.float64)[pos], 0.0)
        dtypes = summary["dtype"].astype(str).to_numpy()[pos] if "dtype" in summary.columns else None
        k_cost, note = _excess(k_cost, optimal[k_code], None if dtypes is None else dtypes[k_code])
        if note:
            notes.append(note)

    # The run table: one row per run, its facet and lr (first kept row of each run).
    first = rows[np.unique(k_code, return_index=True)[1]]
    axes_cols = [c for c in ("run_id", "dataset", "lr", *_ROW_AXES) if c in trajectories.columns]
    runs = trajectories.iloc[first][axes_cols].reset_index(drop=True)
    runs["code"] = rid_codes[first]
    # Divergence: the summary's verdict, or a non-finite cost in the trajectory itself.
    nonfinite = ~np.isfinite(k_cost)
    bad_runs = np.unique(k_code[nonfinite])
    div_at = stop.copy()
    if bad_runs.size:
        first_bad = pd.Series(k_epoch[nonfinite]).groupby(k_code[nonfinite]).min()
        fill = div_at[first_bad.index.to_numpy()] < 0
        div_at[first_bad.index.to_numpy()[fill]] = first_bad.to_numpy()[fill]
    runs["diverged_at"] = div_at[runs["code"].to_numpy()]

    # Lines: (facet, lr); cap the number of lrs per facet.
    facet_cols = [c for c in ("dataset", *_ROW_AXES) if c in runs.columns]
    for c in facet_cols:  # as strings, in the table's own order (categorical, else first seen)
        text = runs[c].astype(str)
        order = _ordered(runs[c]) if isinstance(runs[c].dtype, pd.CategoricalDtype) else list(dict.fromkeys(text))
        runs[c] = pd.Categorical(text, categories=order)
    runs["line"] = runs.groupby([*facet_cols, "lr"], sort=True, observed=True, dropna=False).ngroup()
    per_line = runs.sort_values("line", kind="stable").drop_duplicates("line").set_index("line")[[*facet_cols, "lr"]]
    by_line = runs.groupby("line", sort=True)["diverged_at"]
    per_line["n_runs"] = by_line.size()
    per_line["n_diverged"] = by_line.agg(lambda s: int((s >= 0).sum()))
    per_line["diverged_epochs"] = by_line.agg(lambda s: sorted({int(v) for v in s if v >= 0}))
    shown = np.ones(len(per_line), dtype=bool)
    for idx in per_line.groupby(facet_cols, sort=False, observed=True).indices.values():
        lrs = per_line["lr"].to_numpy()[idx]
        if lrs.size > max_lines:
            by_lr = np.argsort(lrs, kind="stable")
            pick = np.unique(np.round(np.linspace(0, lrs.size - 1, max_lines)).astype(np.int64))
            drop = np.setdiff1d(np.arange(lrs.size), pick)
            shown[idx[by_lr[drop]]] = False
            notes.append(f"{len(pick)} of {lrs.size} learning rates drawn (evenly spaced)")
    line_of_code = np.full(len(rid_uniques), -1, dtype=np.int64)
    line_of_code[runs["code"].to_numpy()] = np.where(shown[runs["line"].to_numpy()], runs["line"].to_numpy(), -1)
    per_line = per_line[shown]

    # Costs: non-finite is overflow (+inf, drawn off the top); exact zeros are floored for the log axis.
    k_line = line_of_code[k_code]
    sel = k_line >= 0
    k_line, k_epoch, k_cost = k_line[sel], k_epoch[sel], k_cost[sel]
    k_cost[~np.isfinite(k_cost)] = np.inf
    positive = k_cost[(k_cost > 0) & np.isfinite(k_cost)]
    floor = min(ZERO_FLOOR, float(positive.min()) / 10) if positive.size else ZERO_FLOOR
    zero = k_cost <= 0
    had_zero = bool(zero.any())
    k_cost[zero] = floor

    key = k_line * (int(k_epoch.max(initial=0)) + 1) + k_epoch
    agg = pd.Series(k_cost).groupby(key, sort=True).agg(["median", "min", "max"])
    keys = agg.index.to_numpy()
    span = int(k_epoch.max(initial=0)) + 1
    p_line, p_epoch = keys // span, keys % span
    # Renumber lines 0..L-1 in per_line order so that offsets index them directly.
    renumber = np.full(len(shown), -1, dtype=np.int64)
    renumber[per_line.index.to_numpy()] = np.arange(len(per_line))
    p_line = renumber[p_line]
    start = np.searchsorted(p_line, np.arange(len(per_line) + 1))
    per_line = per_line.reset_index(drop=True)
    return _Lines(
        lines=per_line,
        epoch=p_epoch,
        median=agg["median"].to_numpy(),
        lo=agg["min"].to_numpy(),
        hi=agg["max"].to_numpy(),
        start=start,
        floor=floor,
        had_zero=had_zero,
        notes=notes,
    )


def convergence(
    trajectories: pd.DataFrame,
    summary: pd.DataFrame,
    out_png: PathLike,
    out_svg: PathLike,
    *,
    max_lines: int = 40,
) -> None:
    """Excess cost vs epoch on a log axis, one line per learning rate, a facet per dataset
    (and device). The excess is each run's cost minus its optimal cost (the summary's
    ``optimal_cost``; the cost itself when the summary has none), so noisy data, whose best
    line keeps a cost above 0, read like noise-free data; values within the float floor of a
    positive optimum are drawn at that floor (noted).

    Each line is the median over seeds, with a band from the smallest to the largest seed.
    Learning rate is the line's colour (log colour bar). The y axis is clipped to
    ``TOP_FACTOR`` x the largest initial excess of the facet's dataset, so diverging runs leave
    at the top; lines whose every seed diverged are dashed, and every divergence is marked
    with an ``x`` on the top edge at its epoch. Excesses of exactly 0 are drawn at a floor
    (noted under the plot). Large tables are thinned to at most ``MAX_POINTS`` epochs per line
    and ``max_lines`` learning rates per facet before anything is drawn.
    """
    agg = _aggregate_lines(trajectories, summary, max_lines)
    lines = agg.lines
    with _theme():
        if lines.empty:
            fig = Figure(figsize=(6, 4), layout="constrained")
            ax = fig.subplots()
            ax.set(xlabel="epoch", ylabel=_EXCESS_LABEL, yscale="log", title="Convergence")
            _empty_note(ax, "no trajectories to draw")
            _save(fig, out_png, out_svg)
            return
        facets = _facets(lines)
        line_keys = _facet_of(lines, facets)
        fig, by_key = _grid(facets, 5.2, 3.7, extra_width=0.9)
        colour_of, step_norm, step_cmap, distinct = _lr_steps(lines["lr"].to_numpy(dtype=float))
        ranges = _cost_ranges(agg, line_keys)

        tops: dict[tuple, list[tuple[int, tuple, float]]] = {}
        ends: dict[tuple, list[tuple[float, float, tuple]]] = {}
        for i, row in enumerate(lines.itertuples(index=False)):
            key = line_keys[i]
            ax = by_key[key]
            sl = slice(agg.start[i], agg.start[i + 1])
            x = agg.epoch[sl]
            if x.size == 0:
                continue
            top = ranges[key[0]][1]
            med, lo, hi = (np.minimum(v[sl], top * 10) for v in (agg.median, agg.lo, agg.hi))
            colour = colour_of.get(float(row.lr), (0.5, 0.5, 0.5, 1.0))
            rank = float(np.searchsorted(distinct, row.lr)) / max(distinct.size, 1)
            all_diverged = row.n_diverged == row.n_runs
            style = {"color": colour, "lw": 1.2 if all_diverged else 1.6, "ls": (0, (4, 2)) if all_diverged else "-"}
            if x.size == 1:
                style.update(marker="o", ms=4)
            if row.n_runs > 1 and np.any(hi > lo):
                ax.fill_between(x, lo, hi, color=colour, alpha=0.15, lw=0, zorder=1)
            ax.plot(x, med, zorder=2 + rank, **style)
            tops.setdefault(key, []).extend((e, colour, float(row.lr)) for e in row.diverged_epochs)
            if not all_diverged and np.isfinite(med[-1]) and med[-1] < top:
                ends.setdefault(key, []).append((float(row.lr), float(med[-1]), colour))
        max_epoch = int(agg.epoch.max(initial=0))
        for key, ax in by_key.items():
            bottom, top, _ = ranges.get(key[0], (1e-3, 1.0, False))
            ax.set_yscale("log")
            ax.set_ylim(bottom, top)
            if max_epoch > _SYMLOG_ABOVE:
                ax.set_xscale("symlog", linthresh=10, linscale=0.6)
            ax.set_xlim(0, max(max_epoch, 1))
            marks = tops.get(key, [])
            # Room above the top edge for the divergence markers and their learning rates.
            ax.set_title(facets.title(key), pad=34 if marks else 10)
            for e, colour, _lr in marks:
                ax.plot([e], [top], marker="x", ms=8, mew=2, color=colour, clip_on=False, zorder=10, ls="none")
            _divergence_labels(ax, marks, top)
            _end_labels(ax, ends.get(key, []), bottom, top)
            if not ax.has_data():
                _empty_note(ax, "no runs")
        xlabel = "epoch (log scale beyond 10)" if max_epoch > _SYMLOG_ABOVE else "epoch"
        _label_outer(facets, by_key, xlabel, _EXCESS_LABEL)
        _lr_step_colorbar(fig, list(by_key.values()), step_norm, step_cmap, distinct)

        handles = [Line2D([], [], color="0.3", lw=1.6, label="median over seeds, band: min–max")]
        if any(tops.values()):
            handles.append(
                Line2D(
                    [],
                    [],
                    color="0.3",
                    lw=1.2,
                    ls=(0, (4, 2)),
                    marker="x",
                    ms=7,
                    mew=2,
                    markevery=[-1],
                    label="diverged (× on the top edge at its divergence epoch, labelled with its lr)",
                )
            )
        if any(r[2] for r in ranges.values()):
            handles.append(
                Line2D(
                    [],
                    [],
                    ls="none",
                    label=f"y axis ends at {TOP_FACTOR:g}× the initial excess: diverging runs leave the top",
                )
            )
        if agg.had_zero:
            handles.append(Line2D([], [], ls="none", label=f"excess exactly 0 drawn at {agg.floor:.0e} (log axis)"))
        handles += [Line2D([], [], ls="none", label=n) for n in dict.fromkeys(agg.notes)]
        wide = fig.get_figwidth() >= 10
        fig.legend(handles=handles, loc="outside lower center", ncols=2 if wide else 1, fontsize="small")
        fig.suptitle("Convergence: excess cost (cost − optimal cost) vs epoch, one line per learning rate")
        _save(fig, out_png, out_svg)


_EXCESS_LABEL = "excess cost (MSE − optimal MSE)"


def _cost_ranges(agg: _Lines, line_keys: list[tuple[str, tuple]]) -> dict[str, tuple[float, float, bool]]:
    """One y range per dataset, ``(bottom, top, clipped)``.

    The top is ``TOP_FACTOR`` x the dataset's largest initial (first drawn) cost, so that
    diverging runs leave through it (``clipped``) and do not flatten the rest; when every run of
    the dataset diverged there is nothing to flatten and the top takes in their whole rise. The
    bottom is below the smallest drawn cost, at least 3 decades under the top."""
    datasets = np.array([k[0] for k in line_keys])
    counts = np.diff(agg.start)
    all_diverged = (agg.lines["n_diverged"] == agg.lines["n_runs"]).to_numpy() if len(agg.lines) else np.zeros(0, bool)
    ranges = {}
    for ds in dict.fromkeys(datasets):
        idx = np.flatnonzero((datasets == ds) & (counts > 0))
        init = agg.hi[agg.start[idx]]
        init = init[np.isfinite(init) & (init > 0)]
        pts = np.concatenate([agg.lo[agg.start[i] : agg.start[i + 1]] for i in idx]) if idx.size else np.empty(0)
        pts = pts[np.isfinite(pts) & (pts > 0)]
        highs = np.concatenate([agg.hi[agg.start[i] : agg.start[i + 1]] for i in idx]) if idx.size else np.empty(0)
        highs = highs[np.isfinite(highs) & (highs > 0)]
        if idx.size and all_diverged[idx].all() and highs.size:
            top, clipped = TOP_FACTOR * float(highs.max()), False
        elif init.size:
            top = TOP_FACTOR * float(init.max())
            clipped = bool(highs.size and highs.max() > top) or bool(np.any(~np.isfinite(agg.hi[agg.start[idx]])))
        else:
            top, clipped = (TOP_FACTOR * float(pts.max()) if pts.size else 1.0), False
        bottom = float(pts.min()) / 3 if pts.size else top
        ranges[ds] = (
            min(bottom, top * 1e-3),
            top,
            clipped or bool(all_diverged[idx].any() and not all_diverged[idx].all()),
        )
    return ranges


def _end_labels(ax: Axes, ends: list[tuple[float, float, tuple]], bottom: float, top: float) -> None:
    """Label the right end of each line with its learning rate: lines ending at the same
    height share one label, and labels are spread apart (with leader lines) so none overlap."""
    if not ends:
        return
    span = np.log10(top) - np.log10(bottom)
    pts = sorted(
        (float(np.clip((np.log10(max(y, bottom)) - np.log10(bottom)) / span, 0, 1)), lr, c) for lr, y, c in ends
    )
    groups: list[list[tuple[float, float, tuple]]] = [[pts[0]]]
    for p in pts[1:]:
        if p[0] - groups[-1][-1][0] < 0.015:
            groups[-1].append(p)
        else:
            groups.append([p])
    if len(groups) > _MAX_END_LABELS:
        return
    gap = 0.075
    want = [float(np.mean([p[0] for p in g])) for g in groups]
    pos = list(want)
    for i in range(1, len(pos)):
        pos[i] = max(pos[i], pos[i - 1] + gap)
    pos[-1] = min(pos[-1], 1.0)
    for i in range(len(pos) - 2, -1, -1):
        pos[i] = min(pos[i], pos[i + 1] - gap)
    for g, y0, y1 in zip(groups, want, pos, strict=True):
        lrs = sorted(p[1] for p in g)
        text = ", ".join(f"{v:g}" for v in lrs) if len(lrs) <= 3 else f"{lrs[0]:g} … {lrs[-1]:g} ({len(lrs)} lrs)"
        colour = sorted(g, key=lambda p: p[1])[len(g) // 2][2]
        ax.annotate(
            text,
            xy=(1.0, y0),
            xycoords="axes fraction",
            xytext=(1.04, y1),
            textcoords="axes fraction",
            va="center",
            ha="left",
            fontsize="x-small",
            color=colour,
            annotation_clip=False,
            arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.7, "shrinkA": 0, "shrinkB": 1},
        )


def _divergence_labels(ax: Axes, marks: list[tuple[int, tuple, float]], top: float) -> None:
    """Label the divergence markers of each learning rate with the lr, above its first marker
    (slanted, so labels of neighbouring epochs do not run into each other)."""
    first: dict[float, tuple[int, tuple]] = {}
    for e, colour, lr in sorted(marks, key=lambda m: m[0]):
        first.setdefault(lr, (e, colour))
    for lr, (e, colour) in sorted(first.items(), key=lambda item: item[1][0]):
        ax.annotate(
            f"{lr:g}",
            xy=(e, top),
            xytext=(2, 7),
            textcoords="offset points",
            rotation=40,
            ha="left",
            va="bottom",
            fontsize="x-small",
            color=colour,
            annotation_clip=False,
        )


def _lr_step_colorbar(fig: Figure, axes: list[Axes], norm: BoundaryNorm, cmap: Colormap, lrs: np.ndarray) -> None:
    """A stepped learning-rate colour bar: one block per learning rate of the grid, each labelled
    (every k-th when there are many)."""
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.9, pad=0.02, aspect=30)
    bar.set_label("learning rate")
    every = max(1, int(np.ceil(lrs.size / 24)))
    ticks = list(range(0, lrs.size, every))
    bar.set_ticks(ticks, labels=[f"{lrs[i]:g}" for i in ticks])
    bar.ax.yaxis.set_minor_locator(NullLocator())
    bar.ax.tick_params(labelsize="small")


def _lr_colorbar(fig: Figure, axes: list[Axes], norm: LogNorm, cmap: Colormap, lrs: np.ndarray) -> None:
    """The learning-rate colour bar, with a tick mark at each learning rate of the grid."""
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.9, pad=0.02, aspect=30)
    bar.set_label("learning rate")
    distinct = np.unique(lrs[np.isfinite(lrs) & (lrs > 0)])
    assert norm.vmin is not None and norm.vmax is not None  # the caller's norm has both limits
    if norm.vmax / norm.vmin < 100 and 0 < distinct.size <= _MAX_END_LABELS:
        # A narrow range has few or no decades to label: label the learning rates themselves.
        bar.ax.yaxis.set_major_locator(FixedLocator(distinct.tolist()))
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    else:
        plain = norm.vmin >= 1e-4 and norm.vmax <= 1e4
        bar.ax.yaxis.set_major_formatter(FuncFormatter(_plain_label if plain else _power_label))
    bar.ax.yaxis.set_minor_locator(NullLocator())
    for lr in distinct:
        if norm.vmin <= lr <= norm.vmax:
            bar.ax.axhline(lr, color="white", lw=0.8, alpha=0.9)


# --------------------------------------------------------------------------------------------
# Divergence


def divergence(summary: pd.DataFrame, theory: pd.DataFrame, out_png: PathLike, out_svg: PathLike) -> None:
    """Final excess cost vs learning rate on log-log axes, with the theory's critical and
    fastest lr.

    The final cost is the last epoch's cost (its forward pass, before that epoch's update: the
    lesson's convention), minus the run's ``optimal_cost`` when the summary has it (values
    within the float floor of a positive optimum drawn at that floor, noted). A facet per
    dataset (and per optimizer, device, engine, ... when they vary). Runs that did not diverge
    are drawn as the median over seeds with min–max error bars; diverged runs as red crosses
    at the excess of their divergence epoch (what the summary's ``final_cost`` holds for
    them); a cost that overflowed to inf or NaN is drawn as a triangle on the top edge. Per
    dataset and optimizer a dashed line marks the critical lr (``2/λmax`` for plain gradient
    descent, the theory table's ``critical_rule`` for momentum; beyond it, shaded, theory
    predicts divergence) and a dotted line the fastest step ``2/(λmax+λmin)`` where there is
    one; an optimizer without a closed form (Adam) says so. Exact zeros are drawn at a floor
    (noted).
    """
    runs = summary.copy()
    runs["final_cost"] = pd.to_numeric(runs["final_cost"], errors="coerce").astype(float)
    runs["diverged"] = runs["diverged"].fillna(False).astype(bool) if "diverged" in runs else False
    lines = _theory_lines(runs, theory)
    optimal = runs["optimal_cost"].to_numpy(dtype=np.float64) if "optimal_cost" in runs.columns else None
    dtypes = runs["dtype"].astype(str).to_numpy() if "dtype" in runs.columns else None
    cost, floor_note = _excess(runs["final_cost"].to_numpy(), optimal, dtypes)
    finite = np.isfinite(cost)
    positive = cost[finite & (cost > 0)]
    floor = min(ZERO_FLOOR, float(positive.min()) / 10) if positive.size else ZERO_FLOOR
    had_zero = bool((finite & (cost <= 0)).any())
    runs["plot_cost"] = np.where(finite & (cost <= 0), floor, cost)
    with _theme():
        if runs.empty:
            fig = Figure(figsize=(6, 4), layout="constrained")
            ax = fig.subplots()
            ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel=_FINAL_LABEL, title="Divergence")
            _empty_note(ax, "no runs to draw")
            _save(fig, out_png, out_svg)
            return
        for c in ("dataset", *_ROW_AXES):
            if c in runs.columns:
                runs[c] = runs[c].astype(str) if not isinstance(runs[c].dtype, pd.CategoricalDtype) else runs[c]
        facets = _facets(runs)
        runs["_facet"] = _facet_of(runs, facets)
        fig, by_key = _grid(facets, 5.2, 3.9)
        y_ranges = {
            ds: _log_range(g["plot_cost"].to_numpy())
            for ds, g in runs.groupby(runs["dataset"].astype(str), sort=False, observed=True)
        }
        rows_of: dict[tuple, list[int]] = {}
        for i, k in enumerate(runs["_facet"]):
            rows_of.setdefault(k, []).append(i)
        drawn: set[str] = set()
        only = _ordered(runs["optimizer"]) if "optimizer" in runs.columns else []
        for key, ax in by_key.items():
            part = runs.iloc[rows_of.get(key, [])]
            if "optimizer" in facets.row_axes:
                optimizer: str | None = key[1][facets.row_axes.index("optimizer")]
            else:
                optimizer = only[0] if len(only) == 1 else None
            theory_key = (key[0], optimizer) if (key[0], optimizer) in lines else (key[0], None)
            facet_lines = lines.get(theory_key, _NO_THEORY)
            drawn |= _divergence_facet(ax, part, y_ranges.get(key[0], (1e-3, 1e3)), facet_lines)
            ax.set_title(facets.title(key))
        _label_outer(facets, by_key, "learning rate", _FINAL_LABEL)
        legend = [handle for kind, handle in _DIVERGENCE_HANDLES.items() if kind in drawn]
        if had_zero:
            legend.append(Line2D([], [], ls="none", label=f"excess exactly 0 drawn at {floor:.0e} (log axis)"))
        if floor_note:
            legend.append(Line2D([], [], ls="none", label=floor_note))
        wide = fig.get_figwidth() >= 10
        fig.legend(handles=legend, loc="outside lower center", ncols=2 if wide else 1, fontsize="small")
        fig.suptitle("Divergence: final excess cost vs learning rate, with the theory's critical learning rate")
        _save(fig, out_png, out_svg)


_FINAL_LABEL = "final excess cost (MSE − optimal MSE)"

_DIVERGENCE_HANDLES = {
    "stable": Line2D(
        [], [], ls="none", marker="o", ms=6, color=_CONVERGED_COLOUR,
        label="did not diverge: last epoch's cost (before its update), median over seeds, bars: min–max",
    ),
    "diverged": Line2D(
        [], [], ls="none", marker="X", ms=8, color=_DIVERGED_COLOUR, label="diverged: cost at the divergence epoch"
    ),
    "overflow": Line2D(
        [], [], ls="none", marker="^", ms=8, color=_DIVERGED_COLOUR,
        label="diverged, cost overflowed (inf/NaN): drawn on the top edge",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class _TheoryLines:
    """A facet's theory: critical and fastest lr (NaN: none) and the critical lr's rule."""

    critical: float = np.nan
    fastest: float = np.nan
    rule: str = "2/λmax"
    closed_form: bool = True


_NO_THEORY = _TheoryLines()


def _divergence_facet(ax: Axes, part: pd.DataFrame, y_range: tuple[float, float], theory: _TheoryLines) -> set[str]:
    """One facet of the divergence plot; returns the kinds of marker it drew."""
    drawn = set()
    y_lo, y_hi = y_range
    overflow = ~np.isfinite(part["plot_cost"].to_numpy())
    for kind, diverged in (("stable", False), ("diverged", True)):
        sel = part[(part["diverged"].to_numpy() == diverged) & ~overflow]
        if not len(sel):
            continue
        drawn.add(kind)
        stats = sel.groupby("lr", sort=True)["plot_cost"].agg(["median", "min", "max"])
        med = stats["median"].to_numpy()
        style = _DIVERGENCE_HANDLES[kind]
        ax.errorbar(
            stats.index.to_numpy(dtype=float), med, yerr=np.vstack([med - stats["min"], stats["max"] - med]),
            ls="none", marker=style.get_marker(), ms=style.get_markersize(), color=style.get_color(),
            mec="white", mew=0.6, elinewidth=1.2, capsize=2.5, zorder=3,
        )  # fmt: skip
    if overflow.any():
        drawn.add("overflow")
        lrs = np.unique(part["lr"].to_numpy(dtype=float)[overflow])
        ax.plot(
            lrs, np.full(lrs.size, y_hi), ls="none", marker="^", ms=8, color=_DIVERGED_COLOUR, clip_on=False, zorder=4
        )
    crit, fast = theory.critical, theory.fastest
    lrs = part["lr"].to_numpy(dtype=float)
    xs = np.concatenate([lrs[np.isfinite(lrs) & (lrs > 0)], [v for v in (crit, fast) if np.isfinite(v) and v > 0]])
    x_lo, x_hi = (xs.min() / 2, xs.max() * 2) if xs.size else (1e-3, 1.0)
    ax.set(xscale="log", yscale="log", xlim=(x_lo, x_hi), ylim=(y_lo, y_hi))
    handles: list[Line2D | Patch] = []
    if np.isfinite(crit) and crit > 0:
        ax.axvspan(crit, x_hi, color=_DIVERGED_COLOUR, alpha=0.07, lw=0, zorder=0)
        label = f"critical lr {theory.rule} = {_fmt(crit)}"
        handles.append(ax.axvline(crit, color=_CRITICAL_COLOUR, ls="--", lw=1.3, label=label))
    if np.isfinite(fast) and fast > 0:
        singular = np.isfinite(crit) and np.isclose(fast, crit / 2, rtol=1e-12)  # lambda_min = 0
        label = f"fastest {'1/λmax' if singular else '2/(λmax+λmin)'} = {_fmt(fast)}"
        handles.append(ax.axvline(fast, color=_FASTEST_COLOUR, ls=":", lw=1.8, label=label))
    if handles:
        if np.isfinite(crit) and crit > 0:
            handles.append(Patch(color=_DIVERGED_COLOUR, alpha=0.12, label="theory: diverges (lr > critical)"))
        ax.legend(handles=handles, loc="best", fontsize="x-small")
    elif not theory.closed_form:
        _corner_note(ax, "no closed-form critical lr")
    if not len(part):
        _empty_note(ax, "no runs")
    return drawn


def _log_range(values: np.ndarray) -> tuple[float, float]:
    """Log-axis limits around the finite positive values, at least two decades wide."""
    v = values[np.isfinite(values) & (values > 0)]
    if v.size == 0:
        return 1e-3, 1e3
    lo, hi = float(v.min()) / 5, float(v.max()) * 20
    if hi / lo < 100:
        mid = np.sqrt(lo * hi)
        lo, hi = mid / 10, mid * 10
    return lo, hi


def _theory_lines(summary: pd.DataFrame, theory: pd.DataFrame) -> dict[tuple[str, str | None], _TheoryLines]:
    """The theory per (dataset, optimizer) (optimizer None: the table has no such column),
    from the theory table, else from the summary."""
    out: dict[tuple[str, str | None], _TheoryLines] = {}
    for frame in (summary, theory):  # theory last: it wins
        if frame is None or not {"dataset", "critical_lr"} <= set(frame.columns):
            continue
        keys = [frame["dataset"].astype(str)]
        if "optimizer" in frame.columns:
            keys.append(frame["optimizer"].astype(str))
        cols = [c for c in ("critical_lr", "fastest_lr", "critical_rule") if c in frame.columns]
        first = frame.groupby(keys, sort=False, observed=True)[cols].first()
        for key, row in first.iterrows():
            ds, opt = (key, None) if len(keys) == 1 else key
            crit = float(row["critical_lr"]) if pd.notna(row["critical_lr"]) else np.nan
            fast = float(row["fastest_lr"]) if "fastest_lr" in row and pd.notna(row["fastest_lr"]) else np.nan
            rule = str(row["critical_rule"]) if "critical_rule" in row and pd.notna(row["critical_rule"]) else "2/λmax"
            lines = _TheoryLines(crit, fast, rule, closed_form=bool(np.isfinite(crit)))
            out[(str(ds), opt)] = lines
            out.setdefault((str(ds), None), lines)  # the first optimizer stands for the dataset
    return out


def _corner_note(ax: Axes, text: str) -> None:
    ax.text(
        0.02, 0.98, text, transform=ax.transAxes, va="top", ha="left", fontsize="x-small", color="0.3",
        bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "0.8", "alpha": 0.9},
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Rate


def rate(
    summary: pd.DataFrame,
    theory: pd.DataFrame,
    out_png: PathLike,
    out_svg: PathLike,
    optimizers: dict[str, OptimizerSpec] | None = None,
) -> None:
    """Measured rate vs lr / critical_lr (linear axes), over the rate theory predicts, a facet
    per dataset.

    Points: the summary's ``rate`` of each converging full-batch run (the contraction factor
    of its excess cost per epoch, fitted on the tail), coloured by learning rate, a marker per
    optimizer. Dashed curves: each optimizer's predicted rate (:func:`gdbench.stability.rate_curve`,
    ``max over lambda > 0 of rho^2``; plain descent's ``(1 - lr lambda)^2``) from the theory
    table's eigenvalues, for a start with error along every eigen-direction, over lr / its own
    critical lr: plain descent's V has its bottom at the fastest lr (dotted) and reaches 1 at
    the critical lr (x = 1), heavy ball's is flat at beta where its roots are complex.
    ``optimizers`` gives the specs by name (plain SGD for a name it lacks, or without it).
    Runs whose start lacks a direction follow their own ``predicted_rate`` (open circles).
    """
    from gdbench import stability

    runs = summary.copy()
    for col in ("rate", "predicted_rate", "lr_ratio", "lr"):
        runs[col] = pd.to_numeric(runs[col], errors="coerce").astype(float) if col in runs else np.nan
    if "dataset" not in runs:
        runs["dataset"] = "all"
    if "optimizer" not in runs:
        runs["optimizer"] = PLAIN_SGD.name
    runs["optimizer"] = runs["optimizer"].astype(str)
    names = list(dict.fromkeys(runs["optimizer"]))
    specs = {n: (optimizers or {}).get(n, PLAIN_SGD) for n in names}
    styles = {n: _RATE_STYLES[i % len(_RATE_STYLES)] for i, n in enumerate(names)}
    drawn: set[str] = set()
    eig = _eigenvalues(theory)
    with _theme():
        facets = _facets(runs[["dataset"]].drop_duplicates()) if len(runs) else None
        if facets is None or not facets.keys:
            fig = Figure(figsize=(6, 4), layout="constrained")
            ax = fig.subplots()
            ax.set(xlabel=_RATE_X, ylabel=_RATE_Y, title="Rate")
            _empty_note(ax, "no runs to draw")
            _save(fig, out_png, out_svg)
            return
        fig, by_key = _grid(facets, 5.2, 3.9, extra_width=0.9)
        norm, cmap = _lr_norm(runs["lr"].to_numpy()), _lr_cmap()
        any_measured = False
        plain_drawn = False
        for key, ax in by_key.items():
            part = runs[runs["dataset"].astype(str).to_numpy() == key[0]]
            lam = eig.get(key[0])
            if lam is not None:
                x = np.unique(np.concatenate([np.linspace(0.0, 1.0, 401), [_fastest_ratio(lam)]]))
                for name in dict.fromkeys(part["optimizer"]):
                    curve = stability.rate_curve(specs[name], lam, x)
                    if np.isfinite(curve).any():
                        colour, dashes, _ = styles[name]
                        ax.plot(x, curve, ls="--", dashes=dashes, color=colour, lw=1.3, zorder=2)
                        drawn.add(name)
                    plain_drawn |= specs[name].kind == "sgd" and specs[name].momentum == 0
                if plain_drawn:
                    ax.axvline(_fastest_ratio(lam), color=_FASTEST_COLOUR, ls=":", lw=1.8, zorder=1)
                ax.axvline(1.0, color=_DIVERGED_COLOUR, ls="-", lw=0.8, alpha=0.6, zorder=1)
            own = part[np.isfinite(part["predicted_rate"]) & np.isfinite(part["rate"])]
            if lam is not None and len(own):
                pos = lam[lam > 0]
                generic = np.array(
                    [stability.run_rate(specs[o], lr, pos) for o, lr in zip(own["optimizer"], own["lr"], strict=True)]
                )
                odd = ~np.isclose(own["predicted_rate"].to_numpy(), generic, rtol=1e-9, atol=1e-12)
                if odd.any():
                    sel = own[odd]
                    ax.scatter(
                        sel["lr_ratio"], sel["predicted_rate"], s=60, facecolors="none", edgecolors="0.3", zorder=3
                    )
            measured = part[np.isfinite(part["rate"])]
            if len(measured):
                any_measured = True
                for name, group in measured.groupby("optimizer", sort=False):
                    ax.scatter(
                        group["lr_ratio"], group["rate"], c=cmap(norm(group["lr"].to_numpy())),
                        marker=styles[str(name)][2], s=28, edgecolors="white", linewidths=0.5, zorder=4,
                    )  # fmt: skip
            else:
                _empty_note(ax, "no converging full-batch run")
            ax.set(xlim=(0.0, 1.1), ylim=(-0.02, 1.05))
            ax.set_title(facets.title(key))
        _label_outer(facets, by_key, _RATE_X, _RATE_Y)
        _lr_colorbar(fig, list(by_key.values()), norm, cmap, runs["lr"].to_numpy())
        several = len(names) > 1
        handles = []
        for name in names:
            colour, dashes, marker = styles[name]
            who = f"{name}: " if several else ""
            handles.append(
                Line2D([], [], ls="none", marker=marker, color="0.3", label=f"measured, {who}fit to the excess cost")
            )
            if name in drawn:
                plain = specs[name].kind == "sgd" and specs[name].momentum == 0
                formula = "(1 − lr·λ)²" if plain else "ρ² (spectral radius of its 2×2 step)"
                label = f"predicted, {who}max over λ > 0 of {formula}"
                handles.append(Line2D([], [], ls="--", dashes=dashes, color=colour, label=label))
        if plain_drawn:
            handles.append(Line2D([], [], ls=":", color=_FASTEST_COLOUR, lw=1.8, label="fastest lr (plain SGD)"))
        critical = "critical lr of each optimizer (rate 1)"
        handles.append(Line2D([], [], ls="-", color=_DIVERGED_COLOUR, alpha=0.6, label=critical))
        if not any_measured:
            handles.append(Line2D([], [], ls="none", label="no run converged with full batches: no measured rate"))
        wide = fig.get_figwidth() >= 10
        fig.legend(handles=handles, loc="outside lower center", ncols=2 if wide else 1, fontsize="small")
        fig.suptitle("Rate: contraction of the excess cost per epoch, measured vs predicted")
        _save(fig, out_png, out_svg)


#: (colour, dash pattern, marker) of each optimizer in the rate plot, in order of appearance.
_RATE_STYLES: list[tuple[str, tuple[float, float], str]] = [
    (_CRITICAL_COLOUR, (4.0, 2.0), "o"),
    ("#7b3294", (6.0, 2.0), "s"),
    ("#e66101", (2.0, 1.5), "^"),
    ("#0571b0", (8.0, 2.0), "D"),
]


_RATE_X = "learning rate / critical learning rate"
_RATE_Y = "rate (excess cost ratio per epoch)"


def _eigenvalues(theory: pd.DataFrame) -> dict[str, np.ndarray]:
    """(lambda_min, lambda_max) per dataset from the theory table."""
    if theory is None or not {"dataset", "lambda_min", "lambda_max"} <= set(theory.columns):
        return {}
    first = theory.groupby(theory["dataset"].astype(str), sort=False)[["lambda_min", "lambda_max"]].first()
    return {str(ds): row.to_numpy(dtype=np.float64) for ds, row in first.iterrows()}


def _fastest_ratio(lam: np.ndarray) -> float:
    """The fastest lr as a fraction of the critical lr (1/2 when lambda_min is 0)."""
    lam_min, lam_max = float(lam.min()), float(lam.max())
    fastest = 1.0 / lam_max if lam_min == 0 else 2.0 / (lam_max + lam_min)
    return fastest * lam_max / 2.0


# --------------------------------------------------------------------------------------------
# Timing


def timing(timing_df: pd.DataFrame, out_png: PathLike, out_svg: PathLike) -> None:
    """Two panels from the timing table (one row per measurement).

    Left: median seconds per epoch vs data size n on log-log axes, colour by device, marker and
    line style by engine, IQR error bars; batched rows use the smallest grid size measured
    (``runs``). Where both cpu and cuda were measured for an engine, the n where CUDA overtakes
    CPU (log-log interpolation) is marked with a vertical line and labelled. Right: batched
    throughput, run-epochs per second vs grid size, one line per device (and n). Rows with
    missing or non-positive medians (failed measurements) are skipped. The title names the
    machine (``device_name``) and CPU threads.

    With an ``optimizer`` column, these two panels show the first optimizer of the table
    (timed at every size) and a third panel compares the optimizers at n = 3: run-epochs per
    second of each (device, engine, grid size) measured for more than one optimizer.
    """
    df = timing_df.copy()
    for col in ("n", "runs", "threads", "median_s_per_epoch", "iqr_s_per_epoch", "run_epochs_per_s"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for col in ("device", "engine"):
        df[col] = df[col].astype(str) if col in df.columns else "?"
    if "runs" not in df.columns:
        df["runs"] = 1.0
    ok = np.isfinite(df["median_s_per_epoch"]) & (df["median_s_per_epoch"] > 0) & np.isfinite(df["n"]) & (df["n"] > 0)
    devices = _device_order(df["device"])
    everything = df
    optimizers: list[str] = []
    if "optimizer" in df.columns:
        df["optimizer"] = df["optimizer"].astype(str)
        optimizers = list(dict.fromkeys(df["optimizer"]))
        first = df["optimizer"] == optimizers[0] if optimizers else np.ones(len(df), dtype=bool)
        df, ok = df[first], ok[first]
    good = df[ok]
    compare = len(optimizers) > 1
    with _theme():
        fig = Figure(figsize=(18.0 if compare else 12.5, 5.0), layout="constrained")
        panels = fig.subplots(1, 3 if compare else 2)
        _timing_left(panels[0], good, devices)
        _timing_right(panels[1], df, devices)
        if compare:
            _timing_optimizers(panels[2], everything, devices, optimizers)
        title = _machine_title(everything, devices)
        if compare:
            title += f" — left and middle: optimizer {optimizers[0]}"
        fig.suptitle(title)
        _save(fig, out_png, out_svg)


def _device_order(col: pd.Series) -> list[str]:
    seen = list(dict.fromkeys(col.astype(str)))
    return sorted(seen, key=lambda d: (not d.startswith("cpu"), d))


def _device_colour(device: str, devices: list[str]) -> str:
    base = device.split(":")[0]
    if base in _DEVICE_COLOURS and sum(d.split(":")[0] == base for d in devices) == 1:
        return _DEVICE_COLOURS[base]
    palette = sns.color_palette("colorblind", max(len(devices), 3)).as_hex()
    return palette[devices.index(device) % len(palette)]


def _timing_left(ax: Axes, good: pd.DataFrame, devices: list[str]) -> None:
    ax.set(xscale="log", yscale="log", xlabel="data points n", ylabel="seconds per epoch (median)")
    ax.set_title("time per epoch vs data size (batched: smallest grid)")
    if good.empty:
        _empty_note(ax, "no successful measurements")
        return
    # Batched rows: the smallest grid size measured for each device/engine.
    smallest = good.groupby(["device", "engine"])["runs"].transform("min")
    rows = good[(good["runs"] == smallest) | good["runs"].isna()]
    curves: dict[tuple[str, str], pd.DataFrame] = {}
    for (device, engine), g in rows.groupby(["device", "engine"], sort=False):
        g = g.groupby("n", sort=True).agg(med=("median_s_per_epoch", "median"), iqr=("iqr_s_per_epoch", "median"))
        curves[(device, engine)] = g
        n, med = g.index.to_numpy(dtype=float), g["med"].to_numpy()
        iqr = g["iqr"].fillna(0).clip(lower=0).to_numpy()
        yerr = np.vstack([np.minimum(iqr / 2, med * 0.9), iqr / 2])
        marker, ls = _ENGINE_STYLE.get(engine, ("D", ":"))
        runs = rows[(rows["device"] == device) & (rows["engine"] == engine)]["runs"]
        label = f"{device}, {engine}" + (f" (runs={runs.min():.0f})" if engine != "loop" and runs.notna().any() else "")
        colour = _device_colour(device, devices)
        ax.errorbar(n, med, yerr=yerr, marker=marker, ls=ls, color=colour, ms=6, capsize=3, lw=1.6, label=label)
    # Crossovers: where the fastest CUDA curve first drops below CPU, per engine.
    cpu = [d for d in devices if d.startswith("cpu")]
    gpu = [d for d in devices if d.startswith("cuda")]
    notes = []
    for engine in dict.fromkeys(e for _, e in curves):
        if not cpu or not gpu or (cpu[0], engine) not in curves or (gpu[0], engine) not in curves:
            continue
        a, b = curves[(cpu[0], engine)]["med"], curves[(gpu[0], engine)]["med"]
        n_star, text = _crossover(a, b)
        if n_star is None:
            notes.append(f"crossover ({engine}): {text}")
            continue
        ls = _ENGINE_STYLE.get(engine, ("D", ":"))[1]
        ax.axvline(n_star, color="0.3", ls=ls, lw=1.1)
        ax.text(
            n_star, 0.97, f" crossover ({engine}): {text} ", rotation=90, transform=ax.get_xaxis_transform(),
            ha="right", va="top", fontsize="x-small", color="0.2",
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
        )  # fmt: skip
    if notes:
        ax.text(
            0.02,
            0.98,
            "\n".join(notes),
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize="x-small",
            bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "0.8", "alpha": 0.9},
        )
    ax.legend(loc="lower right", fontsize="small")


def _crossover(cpu: pd.Series, gpu: pd.Series) -> tuple[float | None, str]:
    """Where ``gpu`` seconds (indexed by n) drop below ``cpu`` and stay below (see
    :func:`gdbench.analysis.crossover`), or ``None``, and the words for the plot."""
    both = pd.concat({"cpu": cpu, "gpu": gpu}, axis=1).dropna()
    n = both.index.to_numpy(dtype=float)
    at, status = crossover(n, both["cpu"].to_numpy(), both["gpu"].to_numpy())
    if status == "unmeasured":
        return None, "no size n measured on both devices"
    if status == "never":
        return None, f"CUDA not faster up to n = {_fmt_int(n[-1])}"
    if status == "always":
        return None, f"CUDA faster already at n = {_fmt_int(n[0])}"
    assert at is not None  # status "crosses" comes with the crossing's n
    return at, f"CUDA faster from n ≈ {_fmt_sig(at)}"


def _timing_right(ax: Axes, df: pd.DataFrame, devices: list[str]) -> None:
    ax.set(xscale="log", yscale="log", xlabel="grid size (runs trained together)", ylabel="run-epochs per second")
    ax.set_title("batched throughput vs grid size")
    if "run_epochs_per_s" not in df.columns:
        _empty_note(ax, "no throughput measured")
        return
    rows = df[(df["engine"] == "batched") & np.isfinite(df["run_epochs_per_s"]) & (df["run_epochs_per_s"] > 0)]
    rows = rows[np.isfinite(rows["runs"]) & (rows["runs"] > 0)]
    if rows.empty:
        _empty_note(ax, "no batched throughput measured")
        return
    sizes = sorted(rows["n"].dropna().unique())
    styles = ["-", "--", ":", "-."]
    markers = ["s", "o", "^", "D", "v"]
    for device in devices:
        for j, n in enumerate(sizes):
            g = rows[(rows["device"] == device) & (rows["n"] == n)]
            if g.empty:
                continue
            g = g.groupby("runs", sort=True)["run_epochs_per_s"].median()
            ax.plot(
                g.index.to_numpy(dtype=float),
                g.to_numpy(),
                color=_device_colour(device, devices),
                ls=styles[j % len(styles)],
                marker=markers[j % len(markers)],
                ms=6,
                lw=1.6,
                label=f"{device}, n = {_fmt_int(n)}",
            )
    ax.legend(loc="best", fontsize="small", ncols=2 if len(sizes) * len(devices) > 6 else 1)


def _timing_optimizers(ax: Axes, df: pd.DataFrame, devices: list[str], optimizers: list[str]) -> None:
    """Run-epochs per second by optimizer at n = 3: one line per (device, engine, grid size)
    measured with more than one optimizer."""
    ax.set(yscale="log", xlabel="optimizer", ylabel="run-epochs per second (median)")
    ax.set_title("optimizers at n = 3 (the lesson's data)")
    rows = df[(df["n"] == 3) & np.isfinite(df["run_epochs_per_s"]) & (df["run_epochs_per_s"] > 0)]
    x = {name: i for i, name in enumerate(optimizers)}
    series = rows.groupby(["device", "engine", "runs"], sort=False)
    drawn = 0
    for (device, engine, runs), g in series:
        g = g.groupby("optimizer", sort=False)["run_epochs_per_s"].median()
        if len(g) < 2:
            continue
        order = sorted(g.index, key=lambda name: x.get(name, len(x)))
        marker, ls = _ENGINE_STYLE.get(engine, ("D", ":"))
        big = runs > 1
        ax.plot(
            [x[name] for name in order], g[order].to_numpy(), marker=marker, ls=ls, ms=7 if big else 6,
            mfc=_device_colour(device, devices) if big else "white", color=_device_colour(device, devices), lw=1.6,
            label=f"{device}, {engine}, {_fmt_int(runs)} run{'s' if runs != 1 else ''}",
        )  # fmt: skip
        drawn += 1
    ax.set_xticks(range(len(optimizers)), optimizers)
    ax.set_xlim(-0.5, len(optimizers) - 0.5)
    if drawn:
        ax.legend(loc="best", fontsize="small")
    else:
        _empty_note(ax, "no optimizer measured twice at n = 3")


def _machine_title(df: pd.DataFrame, devices: list[str]) -> str:
    parts = []
    for device in devices:
        g = df[df["device"] == device]
        names = [str(v) for v in g.get("device_name", pd.Series(dtype=object)).dropna().unique() if str(v)]
        threads = g["threads"].dropna().unique() if "threads" in g.columns else []
        desc = ", ".join(names) or device
        if device.startswith("cpu") and len(threads):
            desc += f" ({'/'.join(f'{t:.0f}' for t in sorted(threads))} thread{'s' if max(threads) != 1 else ''})"
        parts.append(f"{device}: {desc}")
    return "Timing on " + ("; ".join(parts) if parts else "an unknown machine")
