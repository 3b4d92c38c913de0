"""The rate figure: how fast each full-batch run's excess cost shrinks (below the critical lr)
or grows (above it) per epoch, measured and predicted, against lr / critical lr.

The y axis is **epochs per decade**, ``ln 10 / |ln rate|``, on a log axis: the epochs the
excess needs to shrink (or grow) tenfold. Rates near 1 are the slow runs, and there a
difference of 1e-3 in the rate is a visible factor (0.999 is 2,301 epochs per decade, 0.998
1,150), where a linear rate axis would show two equal points; lower is faster on both sides.
Everything drawn is read from tables: the summary (``rate``, ``predicted_rate``,
``lr_ratio``), the theory job's ``rate_curve.csv`` and the theory table's ``fastest_lr``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gdbench.plots import style

__all__ = ["epochs_per_decade", "rate"]

_RATE_X = "learning rate / critical learning rate"
_RATE_Y = "epochs per decade, ln 10 / |ln rate|"
#: Rates this close to 1 are drawn at the axis' top (a decade would take forever).
_NEAR_ONE = 1e-12


def epochs_per_decade(rate: np.ndarray | pd.Series) -> np.ndarray:
    """``ln 10 / |ln rate|``: epochs for the excess to change tenfold (NaN where the rate is
    not a positive number or is 1)."""
    r = np.asarray(rate, dtype=np.float64)
    out = np.full(r.shape, np.nan)
    ok = np.isfinite(r) & (r > 0) & (np.abs(r - 1) > _NEAR_ONE)
    out[ok] = math.log(10) / np.abs(np.log(r[ok]))
    return out


def rate(
    summary: pd.DataFrame,
    curve: pd.DataFrame | None,
    theory: pd.DataFrame | None,
    out_png: style.PathLike,
    out_svg: style.PathLike | None,
) -> None:
    """Measured and predicted epochs per decade vs lr / critical lr (log-log), a panel per
    dataset (and row axis but the optimizer), a colour and marker per optimizer.

    Filled markers: the summary's ``rate`` below 1 (a converging run's contraction, fitted on
    its tail); open markers: ``rate`` above 1 (a diverged run's measured growth, where the
    summary has one). Dashed: each optimizer's predicted curve (``rate_curve.csv``), which
    rises to infinity at x = 1 (the critical lr: rate 1) from both sides. Grey open circles:
    a run's own ``predicted_rate`` where it is off the curve (its start lacks a direction).
    """
    runs = _rate_runs(summary)
    curve = _curve(curve)
    names = list(dict.fromkeys([*runs["optimizer"], *curve["optimizer"]]))
    styles = style.optimizer_styles(names)
    with style.theme():
        facets = style.make_facets(summary[["dataset"]].drop_duplicates()) if len(runs) else None
        if facets is None or not facets.keys:
            _empty_rate_figure(out_png, out_svg)
            return
        fig, by_key = style.grid(facets, 5.4, 4.0)
        drawn: dict[str, set[str]] = {}
        fastest_drawn = False
        for key, ax in by_key.items():
            part = runs[runs["dataset"].to_numpy() == key[0]]
            own = curve[curve["dataset"] == key[0]]
            _curves(ax, own, part, styles, drawn)
            fastest_drawn |= _fastest_line(ax, theory, key[0], set(part["optimizer"]))
            _measured(ax, part, styles, drawn)
            _off_curve(ax, part, own, drawn)
            ax.axvline(1.0, color=style.DIVERGED_COLOUR, lw=0.9, alpha=0.7, zorder=1)
            ax.set_xscale("log")
            ax.set_yscale("log")
            if not np.isfinite(part["rate"]).any():
                style.empty_note(ax, "no measured rate (no converging full-batch run)")
            ax.set_title(facets.title(key))
        style.label_outer(facets, by_key, _RATE_X, _RATE_Y)
        handles = _legend(names, styles, drawn, fastest_drawn, curve)
        ncols = 2 if fig.get_figwidth() >= 10 else 1
        fig.legend(handles=handles, loc="outside lower center", ncols=ncols, fontsize="small")
        fig.suptitle(
            "Rate: epochs per decade of the excess cost (lower is faster), contraction left of 1, growth right"
        )
        style.save(fig, out_png, out_svg)


def _rate_runs(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's columns the figure reads, as numbers (absent ones as NaN)."""
    runs = summary.copy()
    for col in ("rate", "predicted_rate", "lr_ratio", "lr"):
        runs[col] = pd.to_numeric(runs[col], errors="coerce").astype(float) if col in runs else np.nan
    runs["dataset"] = runs["dataset"].astype(str) if "dataset" in runs else "all"
    runs["optimizer"] = runs["optimizer"].astype(str) if "optimizer" in runs else "sgd"
    return runs


def _curve(curve: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["dataset", "optimizer", "lr_ratio", "predicted_rate", "rate_formula"]
    if curve is None or not set(cols) <= set(curve.columns):
        return pd.DataFrame(
            {c: pd.Series(dtype=str if c in ("dataset", "optimizer", "rate_formula") else float) for c in cols}
        )
    out = curve[cols].copy()
    out["dataset"], out["optimizer"] = out["dataset"].astype(str), out["optimizer"].astype(str)
    return out


def _empty_rate_figure(out_png: style.PathLike, out_svg: style.PathLike | None) -> None:
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.set(xlabel=_RATE_X, ylabel=_RATE_Y, title="Rate")
    style.empty_note(ax, "no runs to draw")
    style.save(fig, out_png, out_svg)


def _x_range(part: pd.DataFrame) -> tuple[float, float]:
    """The panel's lr / critical lr range (the runs', widened a little), for the curves."""
    x = part["lr_ratio"].to_numpy()
    x = x[np.isfinite(x) & (x > 0)]
    if not x.size:
        return 1e-3, 3.0
    return float(x.min()) / 1.5, max(float(x.max()) * 1.5, 1.5)


def _curves(
    ax: Axes, own: pd.DataFrame, part: pd.DataFrame, styles: dict[str, style.OptimizerStyle], drawn: dict
) -> None:
    """Each optimizer of the panel's predicted curve, over the runs' range of lr / critical lr."""
    lo, hi = _x_range(part)
    for name in dict.fromkeys(part["optimizer"]):
        c = own[(own["optimizer"] == name) & own["lr_ratio"].between(lo, hi)]
        y = epochs_per_decade(c["predicted_rate"])
        if not np.isfinite(y).any():
            continue
        s = styles[name]
        below = c["lr_ratio"].to_numpy() < 1
        for side in (below, ~below):  # two pieces: the curve goes to infinity at x = 1
            ax.plot(c["lr_ratio"].to_numpy()[side], y[side], ls="--", dashes=s.dashes, color=s.colour, lw=1.3, zorder=2)
        drawn.setdefault(name, set()).add("predicted")


def _fastest_line(ax: Axes, theory: pd.DataFrame | None, dataset: str, names: set[str]) -> bool:
    """The fastest lr (plain SGD's, from the theory table) as a dotted line; whether drawn."""
    if theory is None or not {"dataset", "optimizer", "fastest_lr", "critical_lr"} <= set(theory.columns):
        return False
    rows = theory[(theory["dataset"].astype(str) == dataset) & theory["optimizer"].astype(str).isin(names)]
    ratio = (rows["fastest_lr"] / rows["critical_lr"]).dropna()
    if ratio.empty:
        return False
    ax.axvline(float(ratio.iloc[0]), color=style.FASTEST_COLOUR, ls=":", lw=1.8, zorder=1)
    return True


def _measured(ax: Axes, part: pd.DataFrame, styles: dict[str, style.OptimizerStyle], drawn: dict) -> None:
    """Measured rates: filled markers for contraction (rate < 1), open for growth (> 1)."""
    measured = part[np.isfinite(part["rate"]) & np.isfinite(part["lr_ratio"])]
    for name, group in measured.groupby("optimizer", sort=False):
        s = styles[str(name)]
        y = epochs_per_decade(group["rate"])
        growth = group["rate"].to_numpy() > 1
        for sel, what in ((~growth, "contraction"), (growth, "growth")):
            if not (sel & np.isfinite(y)).any():
                continue
            face = s.colour if what == "contraction" else "white"
            ax.scatter(group["lr_ratio"].to_numpy()[sel], y[sel], marker=s.marker, s=34, facecolors=face,
                       edgecolors=s.colour, linewidths=1.1, zorder=4)  # fmt: skip
            drawn.setdefault(str(name), set()).add(what)


def _off_curve(ax: Axes, part: pd.DataFrame, own: pd.DataFrame, drawn: dict) -> None:
    """Grey open circles at the runs' own predicted rate where it is off their optimizer's
    curve (their start lacks an eigen-direction: a slower direction carries no excess)."""
    pred = part[np.isfinite(part["predicted_rate"]) & np.isfinite(part["lr_ratio"]) & (part["lr_ratio"] > 0)]
    odd = np.zeros(len(pred), dtype=bool)
    for name, idx in pred.groupby("optimizer", sort=False).indices.items():
        c = own[own["optimizer"] == name].sort_values("lr_ratio")
        if c.empty:
            continue
        # On the curve, a run's rate lies near the curve's values at the tabulated ratios around
        # its own: within their interval, widened by its width on each side (a kink of the
        # curve, e.g. Nesterov's minimum, may lie between two tabulated points).
        xs, ys = c["lr_ratio"].to_numpy(), c["predicted_rate"].to_numpy()
        j = np.clip(np.searchsorted(xs, pred["lr_ratio"].to_numpy()[idx]), 1, len(xs) - 1)
        lo, hi = np.minimum(ys[j - 1], ys[j]), np.maximum(ys[j - 1], ys[j])
        r = pred["predicted_rate"].to_numpy()[idx]
        slack = (hi - lo) + 1e-9 * hi
        odd[idx] = (r < lo - slack) | (r > hi + slack)
    if odd.any():
        sel = pred[odd]
        ax.scatter(sel["lr_ratio"], epochs_per_decade(sel["predicted_rate"]), s=70, facecolors="none",
                   edgecolors="0.45", linewidths=0.9, zorder=3)  # fmt: skip
        drawn.setdefault("", set()).add("own")


def _legend(
    names: list[str], styles: dict[str, style.OptimizerStyle], drawn: dict, fastest: bool, curve: pd.DataFrame
) -> list[Line2D]:
    """Handles for what was drawn only."""
    formulas = dict(zip(curve["optimizer"], curve["rate_formula"], strict=True)) if len(curve) else {}
    handles = []
    for name in names:
        s, what = styles[name], drawn.get(name, set())
        if "contraction" in what:
            handles.append(
                Line2D([], [], ls="none", marker=s.marker, color=s.colour, label=f"{name}: measured rate < 1")
            )
        if "growth" in what:
            handles.append(
                Line2D(
                    [],
                    [],
                    ls="none",
                    marker=s.marker,
                    mfc="white",
                    color=s.colour,
                    label=f"{name}: measured growth > 1",
                )
            )
        if "predicted" in what:
            label = f"{name}: predicted, max over λ > 0 of {formulas.get(name, 'the theory')}"
            handles.append(Line2D([], [], ls="--", dashes=s.dashes, color=s.colour, label=label))
    if "own" in drawn.get("", set()):
        handles.append(Line2D([], [], ls="none", marker="o", mfc="none", color="0.45", ms=8,
                              label="a run's own prediction (its start lacks a direction)"))  # fmt: skip
    if fastest:
        handles.append(Line2D([], [], ls=":", color=style.FASTEST_COLOUR, lw=1.8, label="fastest lr (plain SGD)"))
    handles.append(Line2D([], [], color=style.DIVERGED_COLOUR, alpha=0.7, label="critical lr (rate 1: x = 1)"))
    return handles
