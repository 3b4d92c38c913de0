"""The stability-edge figure, drawn from the edge table (:mod:`gdbench.edge`).

One facet per dataset (and per batch size, init, dtype, epochs where those vary), titled
``dataset = tutorial``; along x the optimizers, along y the learning rate on a log axis. Per
optimizer: the located edge (median over seeds of each bracket's geometric middle; bars from the
lowest ``edge_lo`` to the highest ``edge_hi`` over seeds), theory's asymptotic ``critical_lr``
as a dashed segment and its finite-horizon edge ``horizon_edge`` as a dotted one, each labelled,
and the located edge written out with its ratio to ``critical_lr`` (the two differ by a fraction
of a percent, which no log axis shows). Searches that found no divergence up to ``lr_max``, or
divergence already at ``lr_min``, are triangles at that end of the range.

It uses the shared theme and helpers of :mod:`gdbench.plots.style` (PNG at 150 dpi and SVG).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gdbench.plots import style

__all__ = ["edge"]

_EDGE_COLOUR = "#3b5b92"
_SLOT = 0.36  # half-width of an optimizer's critical_lr segment, in x units
_OFFSET = 0.12  # located edge left of the slot's centre, horizon_edge right of it

_HANDLES = {
    "located": Line2D(
        [], [], ls="none", marker="o", ms=7, color=_EDGE_COLOUR,
        label="located edge: smallest diverging lr (median over seeds; bars: edge_lo to edge_hi over seeds)",
    ),
    "none": Line2D([], [], ls="none", marker="^", ms=8, color=_EDGE_COLOUR, label="no divergence up to lr_max"),
    "all": Line2D([], [], ls="none", marker="v", ms=8, color=style.DIVERGED_COLOUR, label="diverges already at lr_min"),
    "critical": Line2D([], [], color=style.CRITICAL_COLOUR, ls="--", lw=1.4, label="critical_lr: asymptotic theory"),
    "horizon": Line2D(
        [], [], ls="none", marker="D", ms=6, mfc="none", mew=1.6, color=style.FASTEST_COLOUR,
        label="horizon_edge: theory's edge within the same epochs (float64)",
    ),
}  # fmt: skip


def edge(table: pd.DataFrame, out_png: style.PathLike, out_svg: style.PathLike) -> None:
    """The edge plot of an edge table (one row per case and seed)."""
    df = table.copy()
    for col in ("dataset", "optimizer", "batch_size", "init", "dtype", "epochs"):
        if col in df.columns:  # in the table's order (the config's), not alphabetical
            values = df[col].astype(str)
            df[col] = pd.Categorical(values, categories=list(dict.fromkeys(values)))
    for col in ("edge_lo", "edge_hi", "critical_lr", "horizon_edge"):
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
        style.label_outer(facets, by_key, "optimizer", "learning rate")
        legend = [h for kind, h in _HANDLES.items() if kind in drawn]
        fig.legend(
            handles=legend, loc="outside lower center", ncols=2 if fig.get_figwidth() >= 10 else 1, fontsize="small"
        )
        fig.suptitle("Stability edge: the smallest learning rate that diverges within the run's epochs")
        style.save(fig, out_png, out_svg)


def _facet(ax: Axes, part: pd.DataFrame, optimizers: list[str]) -> set[str]:
    """One facet: per optimizer, the located edge and the theory; returns what it drew."""
    drawn: set[str] = set()
    values: list[float] = []
    for x, name in enumerate(optimizers):
        rows = part[part["optimizer"].astype(str) == name]
        if rows.empty:
            continue
        lo, hi = rows["edge_lo"].to_numpy(), rows["edge_hi"].to_numpy()
        both = np.isfinite(lo) & np.isfinite(hi)
        crit = _first(rows["critical_lr"])
        horizon = _first(rows["horizon_edge"])
        if np.isfinite(crit):
            ax.hlines(crit, x - _SLOT, x + _SLOT, colors=style.CRITICAL_COLOUR, linestyles="--", lw=1.4)
            drawn.add("critical")
            values.append(crit)
        if np.isfinite(horizon):
            look = _HANDLES["horizon"]
            ax.plot(
                [x + _OFFSET], [horizon], ls="none", marker=look.get_marker(), ms=look.get_markersize(),
                mfc="none", mew=1.6, color=look.get_color(), zorder=4,
            )  # fmt: skip
            drawn.add("horizon")
            values.append(horizon)
        if both.any():
            values += _located(ax, x, lo[both], hi[both], crit, horizon)
            drawn.add("located")
        none_hit = ~np.isfinite(hi) & np.isfinite(lo)  # no divergence up to lr_max
        if none_hit.any():
            ax.plot([x], [lo[none_hit].max()], ls="none", marker="^", ms=8, color=_EDGE_COLOUR, zorder=3)
            drawn.add("none")
            values.append(float(lo[none_hit].max()))
        all_hit = ~np.isfinite(lo) & np.isfinite(hi)  # diverges already at lr_min
        if all_hit.any():
            ax.plot([x], [hi[all_hit].min()], ls="none", marker="v", ms=8, color=style.DIVERGED_COLOUR, zorder=3)
            drawn.add("all")
            values.append(float(hi[all_hit].min()))
    ax.set_yscale("log")
    ax.set_xticks(range(len(optimizers)), optimizers)
    ax.set_xlim(-0.6, len(optimizers) - 0.4)
    v = np.asarray([a for a in values if np.isfinite(a) and a > 0])
    if v.size:
        ax.set_ylim(v.min() / 2.5, v.max() * 4)
    else:
        style.empty_note(ax, "no edge")
    return drawn


def _located(ax: Axes, x: int, lo: np.ndarray, hi: np.ndarray, crit: float, horizon: float) -> list[float]:
    """The located edge of one optimizer (brackets ``lo``..``hi`` over seeds), written out with
    theory's edges and its ratio to ``critical_lr``; returns the y values it drew."""
    mid = np.sqrt(lo * hi)
    centre = float(np.median(mid))
    low, high = float(lo.min()), float(hi.max())
    ax.errorbar(
        [x - _OFFSET], [centre], yerr=[[centre - low], [high - centre]], ls="none", marker="o", ms=7,
        color=_EDGE_COLOUR, mec="white", mew=0.6, elinewidth=1.4, capsize=4, zorder=3,
    )  # fmt: skip
    lines = [f"located {centre:.6g}"]
    if np.isfinite(horizon):
        lines.append(f"horizon {horizon:.6g}")
    if np.isfinite(crit):
        lines.append(f"critical {crit:.6g}")
        lines.append(f"located/critical {centre / crit:.4f}")
    top = max(high, horizon) if np.isfinite(horizon) else high
    ax.annotate("\n".join(lines), (x, top), xytext=(0, 9), textcoords="offset points", ha="center", fontsize="x-small")
    return [low, high]


def _first(col: pd.Series) -> float:
    finite = col[np.isfinite(col.to_numpy())]
    return float(finite.iloc[0]) if len(finite) else float("nan")
