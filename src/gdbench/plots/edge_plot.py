"""The stability-edge figure, drawn from the edge table (:mod:`gdbench.edge`).

One facet per dataset (and per batch size, init, dtype, epochs where those vary), titled
``dataset = tutorial``; along x the optimizers, along y the learning rate **as a multiple of the
optimizer's critical lr** on a linear axis around 1, where the located edge and the theory's
edges differ by a fraction of a percent (1.0017 for plain SGD on the lesson's data, 2,000
epochs): no log axis of learning rates shows that. Per optimizer: the located edge
(``edge_hi / critical_lr``, median over seeds; bars from the lowest ``edge_lo`` to the highest
``edge_hi`` over seeds), labelled with that ratio (the findings table's ``edge_ratio``), and
``horizon_edge / critical_lr`` (the finite-horizon theory; ``horizon_ratio``). An optimizer
without a critical lr (Adam) has no ratio: its tick says so, and the edge table holds its
edge. Searches that found no divergence up to ``lr_max``, or divergence already at
``lr_min``, are triangles at the top or bottom of the panel. Minibatch cases have no critical
lr: where the table gives their mean-square bound ``ms_critical_lr`` (plain SGD), their points
are drawn over it instead (the dashed line at 1 is then that bound, which runs exceed), without
a printed ratio; their ``horizon_edge`` is their own shuffled recurrence's.

It uses the shared theme and helpers of :mod:`gdbench.plots.style` (PNG at 150 dpi and SVG).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from gdbench.plots import style

__all__ = ["edge"]

_EDGE_COLOUR = "#3b5b92"
_SLOT = 0.36  # half-width of an optimizer's critical_lr segment, in x units
_OFFSET = 0.12  # located edge left of the slot's centre, horizon_edge right of it

_HANDLES = {
    "located": Line2D(
        [], [], ls="none", marker="o", ms=7, color=_EDGE_COLOUR,
        label="located edge / critical_lr (edge_hi, median over seeds; bars: edge_lo to edge_hi over seeds)",
    ),
    "none": Line2D([], [], ls="none", marker="^", ms=8, color=_EDGE_COLOUR, label="no divergence up to lr_max"),
    "all": Line2D([], [], ls="none", marker="v", ms=8, color=style.DIVERGED_COLOUR, label="diverges already at lr_min"),
    "critical": Line2D([], [], color=style.CRITICAL_COLOUR, ls="--", lw=1.2, label="critical_lr (ratio 1)"),
    "ms": Line2D([], [], color=style.CRITICAL_COLOUR, ls="--", lw=1.2,
                 label="minibatch panels: over ms_critical_lr, the mean-square bound (ratio 1)"),
    "horizon": Line2D(
        [], [], ls="none", marker="D", ms=6, mfc="none", mew=1.6, color=style.FASTEST_COLOUR,
        label="horizon_edge / critical_lr: theory's edge within the same epochs (float64)",
    ),
}  # fmt: skip


def edge(table: pd.DataFrame, out_png: style.PathLike, out_svg: style.PathLike | None) -> None:
    """The edge plot of an edge table (one row per case and seed)."""
    df = table.copy()
    for col in ("dataset", "optimizer", "batch_size", "init", "dtype", "epochs"):
        if col in df.columns:  # in the table's order (the config's), not alphabetical
            values = df[col].astype(str)
            df[col] = pd.Categorical(values, categories=list(dict.fromkeys(values)))
    if "ms_critical_lr" not in df.columns:
        df["ms_critical_lr"] = np.nan
    for col in ("edge_lo", "edge_hi", "critical_lr", "horizon_edge", "ms_critical_lr"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    with style.theme():
        if df.empty:
            fig = Figure(figsize=(6, 4), layout="constrained")
            ax = fig.subplots()
            ax.set(yscale="log", ylabel="learning rate", title="Stability edge")
            style.empty_note(ax, "no edge searched")
            style.save(fig, out_png, out_svg)
            return
        by_case = df.drop(columns="optimizer")  # optimizers share a facet: they are its x axis
        facets = style.make_facets(by_case)
        df["_facet"] = style.facet_of(by_case, facets)
        fig, by_key = style.grid(facets, 1.2 + 1.5 * df["optimizer"].nunique(), 4.2)
        drawn: set[str] = set()
        for key, ax in by_key.items():
            part = df[[k == key for k in df["_facet"]]]
            drawn |= _facet(ax, part, [str(o) for o in df["optimizer"].cat.categories])
            ax.set_title(facets.title(key))
        over = "learning rate / critical_lr" + (" (minibatch: / ms_critical_lr)" if "ms" in drawn else "")
        style.label_outer(facets, by_key, "optimizer", over)
        legend = [h for kind, h in _HANDLES.items() if kind in drawn]
        fig.legend(
            handles=legend, loc="outside lower center", ncols=2 if fig.get_figwidth() >= 10 else 1, fontsize="small"
        )
        fig.suptitle("Stability edge over the critical lr: the smallest lr that diverges within the run's epochs")
        style.save(fig, out_png, out_svg)


def _facet(ax: Axes, part: pd.DataFrame, optimizers: list[str]) -> set[str]:
    """One facet: per optimizer, the located edge and the horizon edge over the critical lr;
    returns what it drew."""
    drawn: set[str] = set()
    values: list[float] = [1.0]
    ticks = []
    ends: list[tuple[int, str]] = []
    for x, name in enumerate(optimizers):
        rows = part[part["optimizer"].astype(str) == name]
        crit = _first(rows["critical_lr"]) if len(rows) else float("nan")
        bound = not np.isfinite(crit) and len(rows) > 0 and np.isfinite(_first(rows["ms_critical_lr"]))
        if bound:  # minibatch: over its mean-square bound
            crit = _first(rows["ms_critical_lr"])
        lo, hi = rows["edge_lo"].to_numpy(), rows["edge_hi"].to_numpy()
        both = np.isfinite(lo) & np.isfinite(hi)
        none_hit = (~np.isfinite(hi) & np.isfinite(lo)).any()  # no divergence up to lr_max
        all_hit = (~np.isfinite(lo) & np.isfinite(hi)).any()  # diverges already at lr_min
        if not np.isfinite(crit):
            what = "no divergence up to lr_max" if none_hit else "diverges already at lr_min" if all_hit else ""
            ticks.append(f"{name}\n(no critical lr{': ' + what if what else ''})")
            continue
        ticks.append(f"{name}\n(over ms_critical_lr)" if bound else name)
        drawn.add("ms" if bound else "critical")
        horizon = _first(rows["horizon_edge"])
        if np.isfinite(horizon):
            look = _HANDLES["horizon"]
            ax.plot([x + _OFFSET], [horizon / crit], ls="none", marker=look.get_marker(), ms=look.get_markersize(),
                    mfc="none", mew=1.6, color=look.get_color(), zorder=4)  # fmt: skip
            drawn.add("horizon")
            values.append(horizon / crit)
        if both.any():
            values += _located(ax, x, lo[both] / crit, hi[both] / crit, label=not bound)
            drawn.add("located")
        ends += [(x, "none")] * bool(none_hit) + [(x, "all")] * bool(all_hit)
    if "ms" not in drawn:
        drawn.add("critical")
    ax.axhline(1.0, color=style.CRITICAL_COLOUR, ls="--", lw=1.2, zorder=1)
    _limits(ax, values)
    for x, kind in ends:  # beyond the panel's range: a triangle at its edge
        y, marker, colour = (0.97, "^", _EDGE_COLOUR) if kind == "none" else (0.03, "v", style.DIVERGED_COLOUR)
        ax.plot([x], [y], transform=ax.get_xaxis_transform(), ls="none", marker=marker, ms=8, color=colour, zorder=3)
        drawn.add(kind)
    ax.set_xticks(range(len(optimizers)), ticks)
    ax.set_xlim(-0.6, len(optimizers) - 0.4)
    return drawn


def _limits(ax: Axes, values: list[float]) -> None:
    """A linear axis around 1 holding every ratio drawn, with room for the labels."""
    v = np.asarray([a for a in values if np.isfinite(a)])
    lo, hi = float(v.min()), float(v.max())
    pad = max((hi - lo) * 0.25, 2e-4)
    ax.set_ylim(lo - pad, hi + pad)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda val, _pos: f"{val:.4f}"))


def _located(ax: Axes, x: int, lo: np.ndarray, hi: np.ndarray, label: bool = True) -> list[float]:
    """The located edge of one optimizer over its critical lr (brackets ``lo``..``hi`` over
    seeds, as ratios), labelled with its ratio (the findings' ``edge_ratio``) when ``label``;
    returns the values drawn."""
    centre = float(np.median(hi))  # the smallest lr found to diverge: edge.csv's edge_hi
    low, high = float(lo.min()), float(hi.max())
    ax.errorbar(
        [x - _OFFSET], [centre], yerr=[[centre - low], [high - centre]], ls="none", marker="o", ms=7,
        color=_EDGE_COLOUR, mec="white", mew=0.6, elinewidth=1.4, capsize=4, zorder=3,
    )  # fmt: skip
    if label:
        ax.annotate(f"{centre:.5g}", (x - _OFFSET, centre), xytext=(-8, 0), textcoords="offset points", ha="right",
                    va="center", fontsize="small", color=_EDGE_COLOUR)  # fmt: skip
    return [low, high]


def _first(col: pd.Series) -> float:
    finite = col[np.isfinite(col.to_numpy())]
    return float(finite.iloc[0]) if len(finite) else float("nan")
