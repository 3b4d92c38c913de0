"""The time-to-target figure (learning-rate sensitivity): epochs to converge against lr,
log-log, a line per optimizer, a panel per dataset (and row axis but the optimizer); the
findings' best lr starred; runs that diverged or never converged in strips at the top; the
theory's ``ceil(ln tol / ln predicted_rate)`` dashed. Reads the findings job's
``time_to_target.csv`` and ``findings.csv`` only."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.transforms import blended_transform_factory

from gdbench.plots import style

__all__ = ["time_to_target"]

_X = "learning rate"
_Y = "epochs to converge (median over seeds)"
#: Where the strips sit, in axes fractions from the bottom: diverged, then not converged.
_STRIPS = {"diverged": 0.94, "not converged": 0.86}
#: The data keep below this fraction of the panel's height (the strips are above).
_DATA_TOP = 0.8


def time_to_target(
    target: pd.DataFrame, findings: pd.DataFrame, out_png: style.PathLike, out_svg: style.PathLike | None
) -> None:
    """Draw the figure from the time-to-target and findings tables (see the module)."""
    target = _numbers(target)
    with style.theme():
        if target.empty:
            fig = Figure(figsize=(7.5, 4.5), layout="constrained")
            ax = fig.subplots()
            ax.set(xlabel=_X, ylabel=_Y, title="Time to target")
            style.empty_note(ax, "no runs to draw")
            style.save(fig, out_png, out_svg)
            return
        facets = style.make_facets(target.drop(columns="optimizer"))
        names = list(dict.fromkeys(target["optimizer"]))
        styles = style.optimizer_styles(names)
        fig, by_key = style.grid(facets, 5.4, 4.2, extra_width=1.0)
        keys = style.facet_of(target, facets)
        fkeys = style.facet_of(findings, facets) if len(findings) else []
        drawn: set[str] = set()
        for key, ax in by_key.items():
            part = target[[k == key for k in keys]]
            best = findings[[k == key for k in fkeys]] if len(findings) else findings
            _panel(ax, part, best, names, styles, drawn)
            ax.set_title(facets.title(key))
        style.label_outer(facets, by_key, _X, _Y)
        handles = _legend(names, styles, drawn)
        ncols = 3 if fig.get_figwidth() >= 11 else 2  # three of its labels are wider than a 7.5-inch figure
        fig.legend(handles=handles, loc="outside lower center", ncols=ncols, fontsize="small")
        fig.suptitle("Time to target: epochs to converge vs learning rate (best lr starred)")
        style.save(fig, out_png, out_svg)


def _numbers(target: pd.DataFrame) -> pd.DataFrame:
    out = target.copy()
    for col in ("lr", "epochs_median", "epochs_min", "epochs_max", "predicted_epochs"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    for col in ("runs", "converged", "diverged"):
        out[col] = pd.to_numeric(out[col], errors="coerce").fillna(0).astype(int)
    out["optimizer"] = out["optimizer"].astype(str)
    names = out["dataset"].astype(str)
    out["dataset"] = pd.Categorical(names, categories=list(dict.fromkeys(names)))  # the table's order
    return out


def _panel(
    ax: Axes,
    part: pd.DataFrame,
    best: pd.DataFrame,
    names: list[str],
    styles: dict[str, style.OptimizerStyle],
    drawn: set[str],
) -> None:
    """One panel: the lines, the theory, the strips and the best lrs."""
    ys: list[float] = []
    measured = False
    for i, name in enumerate(names):
        rows = part[part["optimizer"] == name].sort_values("lr")
        if rows.empty:
            continue
        measured |= _line(ax, rows, styles[name], name, ys, drawn)
        _strips(ax, rows, styles[name], 0.018 * (i - (len(names) - 1) / 2), drawn)
    for _, row in best.iterrows():
        name = str(row["optimizer"])
        if pd.notna(row["best_lr"]) and name in styles:
            ax.scatter([row["best_lr"]], [row["best_epochs"]], marker="*", s=260, c=styles[name].colour,
                       edgecolors="black", linewidths=0.8, zorder=5)  # fmt: skip
            drawn.add("best")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _limits(ax, part, ys)
    ax.add_patch(Rectangle((0, _DATA_TOP + 0.02), 1, 1, transform=ax.transAxes, color="0.95", zorder=0))
    for label, y in _STRIPS.items():
        ax.text(1.01, y, label, transform=ax.transAxes, fontsize="x-small", va="center", ha="left", color="0.3")
    if not measured:
        style.empty_note(ax, "no run converged")


def _line(ax: Axes, rows: pd.DataFrame, s: style.OptimizerStyle, name: str, ys: list[float], drawn: set[str]) -> bool:
    """One optimizer's measured line (median, bars: range over seeds) and its theory; whether
    any run converged. The values drawn are added to ``ys`` (for the limits)."""
    ok = rows[rows["converged"] > 0]
    if len(ok):
        err = np.vstack([ok["epochs_median"] - ok["epochs_min"], ok["epochs_max"] - ok["epochs_median"]])
        many = len(rows) > style.STEPPED_LRS  # a dense grid of lrs: smaller markers, no caps
        ax.errorbar(ok["lr"], ok["epochs_median"], yerr=err, color=s.colour, marker=s.marker, ms=2.5 if many else 5,
                    lw=1.4, capsize=0 if many else 2.5, elinewidth=0.9, zorder=3)  # fmt: skip
        partial = ok[ok["converged"] < ok["runs"]]
        if len(partial):
            ax.scatter(partial["lr"], partial["epochs_median"], marker=s.marker, s=24 if many else 60,
                       facecolors="white", edgecolors=s.colour, zorder=4)  # fmt: skip
            drawn.add("partial")
        ys += [*ok["epochs_min"], *ok["epochs_max"]]
        drawn.add(f"{name}:measured")
    theory = rows[np.isfinite(rows["predicted_epochs"])]
    if len(theory):
        ax.plot(theory["lr"], theory["predicted_epochs"], ls="--", dashes=s.dashes, color=s.colour, lw=1.1,
                alpha=0.8, zorder=2)  # fmt: skip
        ys += list(theory["predicted_epochs"])
        drawn.add(f"{name}:theory")
    return bool(len(ok))


def _strips(ax: Axes, rows: pd.DataFrame, s: style.OptimizerStyle, offset: float, drawn: set[str]) -> None:
    """The lrs at which some run diverged (x) or did not converge (open marker), at the top."""
    strip = blended_transform_factory(ax.transData, ax.transAxes)
    size = 10 if len(rows) > style.STEPPED_LRS else 30  # a dense grid of lrs: smaller marks
    diverged = rows["diverged"] > 0
    stalled = rows["runs"] - rows["converged"] - rows["diverged"] > 0
    for label, sel in (("diverged", diverged), ("not converged", stalled)):
        if not sel.any():
            continue
        y = np.full(int(sel.sum()), _STRIPS[label] + offset)
        if label == "diverged":
            ax.scatter(rows["lr"][sel], y, transform=strip, marker="x", s=size, c=s.colour, linewidths=1.2,
                       zorder=4, clip_on=False)  # fmt: skip
        else:
            ax.scatter(rows["lr"][sel], y, transform=strip, marker=s.marker, s=size, facecolors="none",
                       edgecolors=s.colour, linewidths=1.2, zorder=4, clip_on=False)  # fmt: skip
        drawn.add(label)


def _limits(ax: Axes, part: pd.DataFrame, ys: list[float]) -> None:
    """Log limits with room at the top for the strips (the data below :data:`_DATA_TOP`)."""
    lrs = part["lr"].to_numpy()
    lrs = lrs[np.isfinite(lrs) & (lrs > 0)]
    if lrs.size:
        ax.set_xlim(float(lrs.min()) / 1.6, float(lrs.max()) * 1.6)
    y = np.asarray([v for v in ys if np.isfinite(v) and v > 0], dtype=float)
    lo, hi = (max(float(y.min()) / 1.6, 0.5), float(y.max()) * 1.6) if y.size else (1.0, 1e3)
    if hi / lo < 100:
        mid = np.sqrt(lo * hi)
        lo, hi = max(mid / 10, 0.5), mid * 10
    top = np.exp(np.log(lo) + (np.log(hi) - np.log(lo)) / _DATA_TOP)
    ax.set_ylim(lo, top)
    decades = 10.0 ** np.arange(np.floor(np.log10(lo)), np.ceil(np.log10(hi)) + 1)
    ax.set_yticks([d for d in decades if lo <= d <= hi])  # no ticks in the strips
    ax.set_ylim(lo, top)


def _legend(names: list[str], styles: dict[str, style.OptimizerStyle], drawn: set[str]) -> list[Line2D]:
    """Handles for what was drawn only."""
    handles = []
    for name in names:
        s = styles[name]
        if f"{name}:measured" in drawn:
            handles.append(
                Line2D([], [], color=s.colour, marker=s.marker, ms=5, label=f"{name}: measured (bars: seeds' range)")
            )
        if f"{name}:theory" in drawn:
            label = f"{name}: theory, ⌈ln(tol) / ln(predicted_rate)⌉"
            handles.append(Line2D([], [], ls="--", dashes=s.dashes, color=s.colour, label=label))
    if "best" in drawn:
        handles.append(
            Line2D([], [], ls="none", marker="*", ms=13, color="0.5", mec="black", label="best lr (findings.csv)")
        )
    if "partial" in drawn:
        handles.append(
            Line2D([], [], ls="none", marker="o", mfc="white", color="0.3", label="some seeds did not converge")
        )
    if "diverged" in drawn:
        handles.append(Line2D([], [], ls="none", marker="x", color="0.3", label="top strip: diverged (some seed)"))
    if "not converged" in drawn:
        handles.append(
            Line2D(
                [], [], ls="none", marker="o", mfc="none", color="0.3", label="strip: not converged within its epochs"
            )
        )
    return handles
