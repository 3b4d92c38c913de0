"""The divergence figure: final excess cost vs learning rate **over the critical lr**, where
the full-batch theory gives one, with the theory's critical and fastest learning rate per
dataset and optimizer.

Where a facet has a critical lr, its x axis is ``lr / critical_lr`` on a log axis stretched
around 1: position ``sign(ln r) · ln(1 + |ln r| / 0.03)``, linear in ``r`` near the edge (where
0.17, 0.18 and 0.19 of the lesson's grid sit, and the critical 0.180 and fastest 0.176 lines)
and logarithmic in the decades far from it, so the edge gets room instead of a sliver at the
right of a 1e-4..1 axis. Its top axis gives the grid's learning rates themselves (as many as
fit, those nearest the edge first), in their colour of :class:`gdbench.plots.style.LrScale`.
A facet without a critical lr (Adam, minibatch runs) is drawn against lr on a log axis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from gdbench.plots import style
from gdbench.plots.reduction import ROW_AXES, ZERO_FLOOR, excess, ordered

__all__ = ["divergence"]


def _three_digits(x: float) -> str:
    """A number with 3 significant digits, keeping trailing zeros (0.180, not 0.18)."""
    if not np.isfinite(x):
        return str(x)
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return np.format_float_positional(x, precision=3, unique=False, fractional=False, trim="k")
    return f"{x:.2e}"


def divergence(
    summary: pd.DataFrame, theory: pd.DataFrame, out_png: style.PathLike, out_svg: style.PathLike | None
) -> None:
    """Final excess cost (log) vs lr / critical_lr (the stretched axis of the module), with
    the theory's critical and fastest lr; against lr where a facet has no critical lr.

    The final cost is the last epoch's cost (its forward pass, before that epoch's update: the
    lesson's convention), minus the run's ``optimal_cost`` when the summary has it (values
    within the float floor of a positive optimum drawn at that floor, noted). A facet per
    dataset (and per optimizer, device, engine, ... when they vary). Runs that did not diverge
    are drawn as the median over seeds with min–max error bars; diverged runs as red crosses
    at the excess of their divergence epoch (what the summary's ``final_cost`` holds for
    them); a cost that overflowed to inf or NaN is drawn as a triangle on the top edge. Per
    dataset and optimizer a dashed line marks the critical lr at x = 1 (``2/λmax`` for plain
    gradient descent, the theory table's ``critical_rule`` for momentum; beyond it, shaded,
    theory predicts divergence) and a dotted line the fastest step ``2/(λmax+λmin)`` where
    there is one; a facet of an optimizer without a closed form (Adam) or of minibatch runs
    (the full-batch theory does not bound them) is drawn against lr and says so. Exact zeros
    are drawn at a floor (noted).
    """
    runs = summary.copy()
    runs["final_cost"] = pd.to_numeric(runs["final_cost"], errors="coerce").astype(float)
    runs["diverged"] = runs["diverged"].fillna(False).astype(bool) if "diverged" in runs else False
    lines = _theory_lines(runs, theory)
    notes = _plot_costs(runs)
    with style.theme():
        if runs.empty:
            fig = Figure(figsize=(6, 4), layout="constrained")
            ax = fig.subplots()
            ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel=_FINAL_LABEL, title="Divergence")
            style.empty_note(ax, "no runs to draw")
            style.save(fig, out_png, out_svg)
            return
        for c in ("dataset", *ROW_AXES):
            if c in runs.columns:
                runs[c] = runs[c].astype(str) if not isinstance(runs[c].dtype, pd.CategoricalDtype) else runs[c]
        facets = style.make_facets(runs)
        runs["_facet"] = style.facet_of(runs, facets)
        fig, by_key = style.grid(facets, 5.2, 4.1)
        scale = style.lr_scale(runs["lr"])
        y_ranges = {
            ds: _log_range(g["plot_cost"].to_numpy())
            for ds, g in runs.groupby(runs["dataset"].astype(str), sort=False, observed=True)
        }
        rows_of: dict[tuple, list[int]] = {}
        for i, k in enumerate(runs["_facet"]):
            rows_of.setdefault(k, []).append(i)
        drawn: set[str] = set()
        ratio_axis: dict[tuple, bool] = {}
        for key, ax in by_key.items():
            part = runs.iloc[rows_of.get(key, [])]
            facet_theory = (
                _MINIBATCH if _minibatch(part) else lines.get(_theory_key(key, facets, runs, lines), _NO_THEORY)
            )
            drawn |= _divergence_facet(ax, part, y_ranges.get(key[0], (1e-3, 1e3)), facet_theory, scale)
            ratio_axis[key] = _has_critical(facet_theory)
            ax.set_title(facets.title(key), pad=4)
        _x_labels(facets, by_key, ratio_axis)
        legend = [handle for kind, handle in _DIVERGENCE_HANDLES.items() if kind in drawn]
        if any(ratio_axis.values()):
            legend.append(Line2D([], [], ls="none", label=_TOP_AXIS_NOTE))
        legend += [Line2D([], [], ls="none", label=note) for note in notes]
        wide = fig.get_figwidth() >= 10
        fig.legend(handles=legend, loc="outside lower center", ncols=2 if wide else 1, fontsize="small")
        over = " over the theory's critical learning rate" if any(ratio_axis.values()) else ""
        fig.suptitle(f"Divergence: final excess cost vs learning rate{over}")
        style.save(fig, out_png, out_svg)


def _theory_key(key: tuple, facets: style.Facets, runs: pd.DataFrame, lines: dict) -> tuple[str, str | None]:
    """The key of a facet's theory: its dataset and optimizer (the grid's only optimizer when
    optimizers do not split rows)."""
    if "optimizer" in facets.row_axes:
        optimizer: str | None = key[1][facets.row_axes.index("optimizer")]
    else:
        only = ordered(runs["optimizer"]) if "optimizer" in runs.columns else []
        optimizer = only[0] if len(only) == 1 else None
    return (key[0], optimizer) if (key[0], optimizer) in lines else (key[0], None)


def _x_labels(facets: style.Facets, by_key: dict, ratio_axis: dict[tuple, bool]) -> None:
    """Y labels on the left column; an x label under each facet that is the lowest of its
    column or whose x axis differs from the facet below it (lr / critical lr, or lr)."""
    at = {pos: key for key, pos in facets.positions.items()}
    for key, ax in by_key.items():
        r, c = facets.positions[key]
        below = at.get((r + 1, c))
        ax.set_ylabel(_FINAL_LABEL if c == 0 else "")
        if below is None or ratio_axis[below] != ratio_axis[key]:
            ax.set_xlabel(_RATIO_LABEL if ratio_axis[key] else "learning rate (no critical lr)")


def _plot_costs(runs: pd.DataFrame) -> list[str]:
    """Add ``plot_cost``, the final excess cost as drawn: exact zeros at a floor below the
    smallest positive one; returns the notes for the legend (that floor, the float floor)."""
    optimal = runs["optimal_cost"].to_numpy(dtype=np.float64) if "optimal_cost" in runs.columns else None
    dtypes = runs["dtype"].astype(str).to_numpy() if "dtype" in runs.columns else None
    cost, floor_note = excess(runs["final_cost"].to_numpy(), optimal, dtypes)
    finite = np.isfinite(cost)
    positive = cost[finite & (cost > 0)]
    floor = min(ZERO_FLOOR, float(positive.min()) / 10) if positive.size else ZERO_FLOOR
    zero = finite & (cost <= 0)
    runs["plot_cost"] = np.where(zero, floor, cost)
    notes = [f"excess exactly 0 drawn at {floor:.0e} (log axis)"] if zero.any() else []
    return notes + ([floor_note] if floor_note else [])


_FINAL_LABEL = "final excess cost (MSE − optimal MSE)"
_TOP_AXIS_NOTE = "top axis: the grid's learning rates (coloured as in the convergence figure)"
_RATIO_LABEL = "learning rate / critical lr (axis stretched around 1)"

_DIVERGENCE_HANDLES = {
    "stable": Line2D(
        [], [], ls="none", marker="o", ms=6, color=style.CONVERGED_COLOUR,
        label="did not diverge: last epoch's cost (before its update), median over seeds, bars: min–max",
    ),
    "diverged": Line2D(
        [], [], ls="none", marker="X", ms=8, color=style.DIVERGED_COLOUR, label="diverged: cost at the divergence epoch"
    ),
    "overflow": Line2D(
        [], [], ls="none", marker="^", ms=8, color=style.DIVERGED_COLOUR,
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
    note: str = "no closed-form critical lr"


_NO_THEORY = _TheoryLines()
#: Minibatch runs: the full-batch critical lr does not bound them (they can diverge below it
#: and survive above it), so none is drawn.
_MINIBATCH = _TheoryLines(closed_form=False, note="minibatch: the full-batch bound does not apply")


def _minibatch(part: pd.DataFrame) -> bool:
    """Whether every run of a facet is a minibatch run (``batch_size`` other than full)."""
    if "batch_size" not in part.columns or not len(part):
        return False
    return bool((part["batch_size"].astype(str) != "full").all())


def _has_critical(theory: _TheoryLines) -> bool:
    return bool(np.isfinite(theory.critical) and theory.critical > 0)


def _divergence_facet(
    ax: Axes, part: pd.DataFrame, y_range: tuple[float, float], theory: _TheoryLines, scale: style.LrScale
) -> set[str]:
    """One facet of the divergence plot; returns the kinds of marker it drew."""
    drawn = set()
    y_lo, y_hi = y_range
    crit, fast = theory.critical, theory.fastest
    ratio = _has_critical(theory)
    unit = crit if ratio else 1.0  # x = lr / critical lr, or lr itself
    overflow = ~np.isfinite(part["plot_cost"].to_numpy())
    for kind, diverged in (("stable", False), ("diverged", True)):
        sel = part[(part["diverged"].to_numpy() == diverged) & ~overflow]
        if not len(sel):
            continue
        drawn.add(kind)
        stats = sel.groupby("lr", sort=True)["plot_cost"].agg(["median", "min", "max"])
        med = stats["median"].to_numpy()
        look = _DIVERGENCE_HANDLES[kind]
        ax.errorbar(
            stats.index.to_numpy(dtype=float) / unit, med, yerr=np.vstack([med - stats["min"], stats["max"] - med]),
            ls="none", marker=look.get_marker(), ms=look.get_markersize(), color=look.get_color(),
            mec="white", mew=0.6, elinewidth=1.2, capsize=2.5, zorder=3,
        )  # fmt: skip
    if overflow.any():
        drawn.add("overflow")
        lrs = np.unique(part["lr"].to_numpy(dtype=float)[overflow])
        ax.plot(lrs / unit, np.full(lrs.size, y_hi), ls="none", marker="^", ms=8, color=style.DIVERGED_COLOUR,
                clip_on=False, zorder=4)  # fmt: skip
    lrs = part["lr"].to_numpy(dtype=float)
    lrs = np.unique(lrs[np.isfinite(lrs) & (lrs > 0)])
    xs = np.concatenate([lrs / unit, [v / unit for v in (crit, fast) if np.isfinite(v) and v > 0]])
    ax.set(yscale="log", ylim=(y_lo, y_hi))
    if ratio:
        x_lo, x_hi = _stretched_axis(ax, xs)
        _lr_ticks_on_top(ax, lrs, crit, scale)
    else:
        x_lo, x_hi = (xs.min() / 2, xs.max() * 2) if xs.size else (1e-3, 1.0)
        ax.set(xscale="log", xlim=(x_lo, x_hi))
    handles: list[Line2D | Patch] = []
    if ratio:
        ax.axvspan(1.0, x_hi, color=style.DIVERGED_COLOUR, alpha=0.07, lw=0, zorder=0)
        label = f"critical lr {theory.rule} = {_three_digits(crit)} (x = 1)"
        handles.append(ax.axvline(1.0, color=style.CRITICAL_COLOUR, ls="--", lw=1.3, label=label))
    if ratio and np.isfinite(fast) and fast > 0:
        singular = np.isclose(fast, crit / 2, rtol=1e-12)  # lambda_min = 0
        label = f"fastest {'1/λmax' if singular else '2/(λmax+λmin)'} = {_three_digits(fast)}"
        handles.append(ax.axvline(fast / crit, color=style.FASTEST_COLOUR, ls=":", lw=1.8, label=label))
    if handles:
        handles.append(Patch(color=style.DIVERGED_COLOUR, alpha=0.12, label="theory: diverges (lr > critical)"))
        ax.legend(handles=handles, loc="best", fontsize="x-small")
    elif not theory.closed_form:
        style.corner_note(ax, f"{theory.note}; drawn against lr")
        _mean_square_bound(ax, part)
    if not len(part):
        style.empty_note(ax, "no runs")
    return drawn


def _mean_square_bound(ax: Axes, part: pd.DataFrame) -> None:
    """On a panel drawn against lr: the summary's ``ms_critical_lr`` (minibatch plain SGD's
    mean-square stability bound, a bound of a model: runs may survive above it), dash-dotted."""
    if "ms_critical_lr" not in part.columns:
        return
    bound = pd.to_numeric(part["ms_critical_lr"], errors="coerce").dropna()
    bound = bound[np.isfinite(bound) & (bound > 0)]
    if bound.empty or bound.nunique() > 1:  # one panel, one bound (else it is not one line)
        return
    value = float(bound.iloc[0])
    lo, hi = ax.get_xlim()
    ax.set_xlim(min(lo, value / 2), max(hi, value * 2))  # in view: a legend lists what is drawn
    label = f"mean-square bound ms_critical_lr = {_three_digits(value)}"
    line = ax.axvline(value, color=style.CRITICAL_COLOUR, ls="-.", lw=1.3, label=label)
    ax.legend(handles=[line], loc="best", fontsize="x-small")


#: The stretch of the lr / critical lr axis: linear within ~3% of 1, log-of-decades beyond.
_STRETCH = 0.03


def _stretch(r: np.ndarray) -> np.ndarray:
    """Axis position of lr / critical lr: ``sign(ln r) · ln(1 + |ln r| / _STRETCH)``."""
    log_r = np.log(np.maximum(np.asarray(r, dtype=float), 1e-300))
    return np.sign(log_r) * np.log1p(np.abs(log_r) / _STRETCH)


def _unstretch(u: np.ndarray) -> np.ndarray:
    u = np.clip(np.asarray(u, dtype=float), -7.0, 7.0)  # beyond: lr ratios of e^±110, never drawn
    return np.exp(np.sign(u) * _STRETCH * np.expm1(np.abs(u)))


#: Tick candidates of the lr / critical lr axis, the most wanted first.
_RATIO_TICKS = (1.0, 0.1, 10.0, 0.01, 100.0, 1e-3, 1e3, 1e-4, 1e-5, 0.5, 2.0, 0.9, 1.1, 0.8, 1.25, 0.95, 1.05, 5.0)


def _stretched_axis(ax: Axes, xs: np.ndarray) -> tuple[float, float]:
    """The stretched lr / critical lr axis around the values ``xs``; returns its limits."""
    ax.set_xscale("function", functions=(_stretch, _unstretch))
    xs = xs[np.isfinite(xs) & (xs > 0)]
    u = _stretch(xs) if xs.size else np.array([-1.0, 1.0])
    u_lo, u_hi = min(float(u.min()), -0.5), max(float(u.max()), 0.5)
    pad = 0.06 * (u_hi - u_lo)
    x_lo, x_hi = (float(v) for v in _unstretch(np.array([u_lo - pad, u_hi + pad])))
    ax.set_xlim(x_lo, x_hi)
    ticks = _fitting([t for t in _RATIO_TICKS if x_lo <= t <= x_hi], ax, lambda t: _ratio_label(t))
    ax.xaxis.set_major_locator(FixedLocator(sorted(ticks)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _ratio_label(v)))
    ax.xaxis.set_minor_locator(NullLocator())
    return x_lo, x_hi


def _ratio_label(v: float) -> str:
    return style.power_label(v) if v < 1e-3 or v > 1e3 else f"{v:g}"


def _fitting(candidates: list[float], ax: Axes, text: Callable[[float], str], gap_pt: float = 4.0) -> list[float]:
    """The candidates (in order of preference) whose labels fit on the x axis without touching
    a label already kept: label widths as drawn (small type), the axis as wide as its panel."""
    root = ax.get_figure(root=True)
    fig_width = root.get_figwidth() if root is not None else 6.0
    width_pt = ax.get_position().width * fig_width * 72.0 * 0.9  # constrained layout shrinks it a little
    lo, hi = (float(v) for v in _stretch(np.array(ax.get_xlim())))
    kept: list[tuple[float, float]] = []  # (centre, half width) in points
    out = []
    for value in candidates:
        centre = (float(_stretch(np.array(value))) - lo) / (hi - lo) * width_pt
        half = style.text_width_pt(text(value), "small") / 2
        if all(abs(centre - c) >= half + h + gap_pt for c, h in kept):
            kept.append((centre, half))
            out.append(value)
    return out


def _lr_ticks_on_top(ax: Axes, lrs: np.ndarray, crit: float, scale: style.LrScale) -> None:
    """A top axis with the grid's learning rates at their lr / critical lr: those nearest the
    edge first, as many as fit, each in its colour of the learning-rate scale."""
    top = ax.twiny()
    top.set_xscale("function", functions=(_stretch, _unstretch))
    top.set_xlim(ax.get_xlim())
    top.grid(False)
    order = np.argsort(np.abs(np.log(lrs / crit)), kind="stable") if lrs.size else np.zeros(0, np.int64)
    shown = _fitting([float(lrs[i]) / crit for i in order], top, lambda r: f"{r * crit:g}")
    top.xaxis.set_major_locator(FixedLocator(sorted(shown)))
    top.xaxis.set_minor_locator(NullLocator())
    top.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{float(lrs[np.argmin(np.abs(lrs / crit - v))]):g}"))
    top.tick_params(axis="x", labelsize="small", pad=1, length=3)
    for label, r in zip(top.get_xticklabels(), sorted(shown), strict=True):
        label.set_color(scale.colour(float(lrs[np.argmin(np.abs(lrs / crit - r))])))


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
