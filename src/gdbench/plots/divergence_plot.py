"""The divergence figure: final excess cost vs learning rate, with the theory's critical and
fastest learning rate per dataset and optimizer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

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


def divergence(summary: pd.DataFrame, theory: pd.DataFrame, out_png: style.PathLike, out_svg: style.PathLike) -> None:
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
    one; an optimizer without a closed form (Adam) says so, and so does a facet of minibatch
    runs (the full-batch theory does not bound them; nothing is drawn). Exact zeros are drawn
    at a floor (noted).
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
        fig, by_key = style.grid(facets, 5.2, 3.9)
        y_ranges = {
            ds: _log_range(g["plot_cost"].to_numpy())
            for ds, g in runs.groupby(runs["dataset"].astype(str), sort=False, observed=True)
        }
        rows_of: dict[tuple, list[int]] = {}
        for i, k in enumerate(runs["_facet"]):
            rows_of.setdefault(k, []).append(i)
        drawn: set[str] = set()
        only = ordered(runs["optimizer"]) if "optimizer" in runs.columns else []
        for key, ax in by_key.items():
            if "optimizer" in facets.row_axes:
                optimizer: str | None = key[1][facets.row_axes.index("optimizer")]
            else:
                optimizer = only[0] if len(only) == 1 else None
            theory_key = (key[0], optimizer) if (key[0], optimizer) in lines else (key[0], None)
            part = runs.iloc[rows_of.get(key, [])]
            facet_theory = _MINIBATCH if _minibatch(part) else lines.get(theory_key, _NO_THEORY)
            drawn |= _divergence_facet(ax, part, y_ranges.get(key[0], (1e-3, 1e3)), facet_theory)
            ax.set_title(facets.title(key))
        style.label_outer(facets, by_key, "learning rate", _FINAL_LABEL)
        legend = [handle for kind, handle in _DIVERGENCE_HANDLES.items() if kind in drawn]
        legend += [Line2D([], [], ls="none", label=note) for note in notes]
        wide = fig.get_figwidth() >= 10
        fig.legend(handles=legend, loc="outside lower center", ncols=2 if wide else 1, fontsize="small")
        fig.suptitle("Divergence: final excess cost vs learning rate, with the theory's critical learning rate")
        style.save(fig, out_png, out_svg)


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
_MINIBATCH = _TheoryLines(closed_form=False, note="minibatch: no full-batch theory drawn")


def _minibatch(part: pd.DataFrame) -> bool:
    """Whether every run of a facet is a minibatch run (``batch_size`` other than full)."""
    if "batch_size" not in part.columns or not len(part):
        return False
    return bool((part["batch_size"].astype(str) != "full").all())


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
        look = _DIVERGENCE_HANDLES[kind]
        ax.errorbar(
            stats.index.to_numpy(dtype=float), med, yerr=np.vstack([med - stats["min"], stats["max"] - med]),
            ls="none", marker=look.get_marker(), ms=look.get_markersize(), color=look.get_color(),
            mec="white", mew=0.6, elinewidth=1.2, capsize=2.5, zorder=3,
        )  # fmt: skip
    if overflow.any():
        drawn.add("overflow")
        lrs = np.unique(part["lr"].to_numpy(dtype=float)[overflow])
        ax.plot(
            lrs,
            np.full(lrs.size, y_hi),
            ls="none",
            marker="^",
            ms=8,
            color=style.DIVERGED_COLOUR,
            clip_on=False,
            zorder=4,
        )
    crit, fast = theory.critical, theory.fastest
    lrs = part["lr"].to_numpy(dtype=float)
    xs = np.concatenate([lrs[np.isfinite(lrs) & (lrs > 0)], [v for v in (crit, fast) if np.isfinite(v) and v > 0]])
    x_lo, x_hi = (xs.min() / 2, xs.max() * 2) if xs.size else (1e-3, 1.0)
    ax.set(xscale="log", yscale="log", xlim=(x_lo, x_hi), ylim=(y_lo, y_hi))
    handles: list[Line2D | Patch] = []
    if np.isfinite(crit) and crit > 0:
        ax.axvspan(crit, x_hi, color=style.DIVERGED_COLOUR, alpha=0.07, lw=0, zorder=0)
        label = f"critical lr {theory.rule} = {_three_digits(crit)}"
        handles.append(ax.axvline(crit, color=style.CRITICAL_COLOUR, ls="--", lw=1.3, label=label))
    if np.isfinite(fast) and fast > 0:
        singular = np.isfinite(crit) and np.isclose(fast, crit / 2, rtol=1e-12)  # lambda_min = 0
        label = f"fastest {'1/λmax' if singular else '2/(λmax+λmin)'} = {_three_digits(fast)}"
        handles.append(ax.axvline(fast, color=style.FASTEST_COLOUR, ls=":", lw=1.8, label=label))
    if handles:
        if np.isfinite(crit) and crit > 0:
            handles.append(Patch(color=style.DIVERGED_COLOUR, alpha=0.12, label="theory: diverges (lr > critical)"))
        ax.legend(handles=handles, loc="best", fontsize="x-small")
    elif not theory.closed_form:
        style.corner_note(ax, theory.note)
    if not len(part):
        style.empty_note(ax, "no runs")
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
