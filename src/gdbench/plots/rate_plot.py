"""The rate figure: each converging full-batch run's measured rate vs lr / critical lr, over
the rate theory predicts; learning rate is a colour on a log scale."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from gdbench.optimizers import PLAIN_SGD, OptimizerSpec
from gdbench.plots import style

__all__ = ["rate"]

#: At most this many learning rates labelled one by one on a narrow colour bar.
_MAX_LR_TICKS = 12


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


def _lr_colorbar(fig: Figure, axes: list[Axes], norm: LogNorm, cmap: Colormap, lrs: np.ndarray) -> None:
    """The learning-rate colour bar, with a tick mark at each learning rate of the style.grid."""
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.9, pad=0.02, aspect=30)
    bar.set_label("learning rate")
    distinct = np.unique(lrs[np.isfinite(lrs) & (lrs > 0)])
    assert norm.vmin is not None and norm.vmax is not None  # the caller's norm has both limits
    if norm.vmax / norm.vmin < 100 and 0 < distinct.size <= _MAX_LR_TICKS:
        # A narrow range has few or no decades to label: label the learning rates themselves.
        bar.ax.yaxis.set_major_locator(FixedLocator(distinct.tolist()))
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    else:
        plain = norm.vmin >= 1e-4 and norm.vmax <= 1e4
        bar.ax.yaxis.set_major_formatter(FuncFormatter(style.plain_label if plain else style.power_label))
    bar.ax.yaxis.set_minor_locator(NullLocator())
    for lr in distinct:
        if norm.vmin <= lr <= norm.vmax:
            bar.ax.axhline(lr, color="white", lw=0.8, alpha=0.9)


def rate(
    summary: pd.DataFrame,
    theory: pd.DataFrame,
    out_png: style.PathLike,
    out_svg: style.PathLike,
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
    ``optimizers`` gives the specs by name (a name it lacks is a ``KeyError``); without it every
    run is taken for plain SGD.
    Runs whose start lacks a direction follow their own ``predicted_rate`` (open circles).
    """
    runs = _rate_runs(summary)
    names = list(dict.fromkeys(runs["optimizer"]))
    specs = {n: optimizers[n] for n in names} if optimizers is not None else dict.fromkeys(names, PLAIN_SGD)
    styles = {n: _RATE_STYLES[i % len(_RATE_STYLES)] for i, n in enumerate(names)}
    eig = _eigenvalues(theory)
    with style.theme():
        facets = style.make_facets(runs[["dataset"]].drop_duplicates()) if len(runs) else None
        if facets is None or not facets.keys:
            _empty_rate_figure(out_png, out_svg)
            return
        fig, by_key = style.grid(facets, 5.2, 3.9, extra_width=0.9)
        norm, cmap = _lr_norm(runs["lr"].to_numpy()), _lr_cmap()
        drawn: set[str] = set()
        any_measured = plain_drawn = False
        for key, ax in by_key.items():
            part = runs[runs["dataset"].astype(str).to_numpy() == key[0]]
            lam = eig.get(key[0])
            if lam is not None:
                plain_drawn |= _rate_theory(ax, part, lam, specs, styles, drawn)
                _own_predictions(ax, part, lam, specs)
            any_measured |= _measured_rates(ax, part, styles, norm, cmap)
            ax.set(xlim=(0.0, 1.1), ylim=(-0.02, 1.05))
            ax.set_title(facets.title(key))
        style.label_outer(facets, by_key, _RATE_X, _RATE_Y)
        _lr_colorbar(fig, list(by_key.values()), norm, cmap, runs["lr"].to_numpy())
        handles = _rate_legend(names, specs, styles, drawn, plain_drawn, any_measured)
        wide = fig.get_figwidth() >= 10
        fig.legend(handles=handles, loc="outside lower center", ncols=2 if wide else 1, fontsize="small")
        fig.suptitle("Rate: contraction of the excess cost per epoch, measured vs predicted")
        style.save(fig, out_png, out_svg)


def _rate_runs(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's columns the figure reads, as numbers (absent ones as NaN)."""
    runs = summary.copy()
    for col in ("rate", "predicted_rate", "lr_ratio", "lr"):
        runs[col] = pd.to_numeric(runs[col], errors="coerce").astype(float) if col in runs else np.nan
    if "dataset" not in runs:
        runs["dataset"] = "all"
    if "optimizer" not in runs:
        runs["optimizer"] = PLAIN_SGD.name
    runs["optimizer"] = runs["optimizer"].astype(str)
    return runs


def _empty_rate_figure(out_png: style.PathLike, out_svg: style.PathLike) -> None:
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    ax.set(xlabel=_RATE_X, ylabel=_RATE_Y, title="Rate")
    style.empty_note(ax, "no runs to draw")
    style.save(fig, out_png, out_svg)


def _rate_theory(
    ax: Axes,
    part: pd.DataFrame,
    lam: np.ndarray,
    specs: dict[str, OptimizerSpec],
    styles: dict[str, tuple[str, tuple[float, float], str]],
    drawn: set[str],
) -> bool:
    """Each optimizer's predicted curve in one facet (names drawn are added to ``drawn``), the
    fastest lr where plain SGD is among them, and x = 1; returns whether plain SGD was."""
    from gdbench import stability

    x = np.unique(np.concatenate([np.linspace(0.0, 1.0, 401), [_fastest_ratio(lam)]]))
    plain_drawn = False
    for name in dict.fromkeys(part["optimizer"]):
        curve = stability.rate_curve(specs[name], lam, x)
        if np.isfinite(curve).any():
            colour, dashes, _ = styles[name]
            ax.plot(x, curve, ls="--", dashes=dashes, color=colour, lw=1.3, zorder=2)
            drawn.add(name)
        plain_drawn |= specs[name].is_plain
    if plain_drawn:
        ax.axvline(_fastest_ratio(lam), color=style.FASTEST_COLOUR, ls=":", lw=1.8, zorder=1)
    ax.axvline(1.0, color=style.DIVERGED_COLOUR, ls="-", lw=0.8, alpha=0.6, zorder=1)
    return plain_drawn


def _own_predictions(ax: Axes, part: pd.DataFrame, lam: np.ndarray, specs: dict[str, OptimizerSpec]) -> None:
    """Open circles at the runs' own predicted rate where it is not the curve's (their start
    lacks an eigen-direction)."""
    from gdbench import stability

    own = part[np.isfinite(part["predicted_rate"]) & np.isfinite(part["rate"])]
    if not len(own):
        return
    pos = lam[lam > 0]
    generic = np.array(
        [stability.run_rate(specs[o], lr, pos) for o, lr in zip(own["optimizer"], own["lr"], strict=True)]
    )
    odd = ~np.isclose(own["predicted_rate"].to_numpy(), generic, rtol=1e-9, atol=1e-12)
    if odd.any():
        sel = own[odd]
        ax.scatter(sel["lr_ratio"], sel["predicted_rate"], s=60, facecolors="none", edgecolors="0.3", zorder=3)


def _measured_rates(
    ax: Axes,
    part: pd.DataFrame,
    styles: dict[str, tuple[str, tuple[float, float], str]],
    norm: LogNorm,
    cmap: Colormap,
) -> bool:
    """The measured rates of one facet, a marker per optimizer; returns whether there were any."""
    converging = ~part["diverged"].fillna(False).astype(bool) if "diverged" in part else True
    measured = part[np.isfinite(part["rate"]) & converging]  # a diverged run's rate is its growth
    if not len(measured):
        style.empty_note(ax, "no converging full-batch run")
        return False
    for name, group in measured.groupby("optimizer", sort=False):
        ax.scatter(
            group["lr_ratio"], group["rate"], c=cmap(norm(group["lr"].to_numpy())),
            marker=styles[str(name)][2], s=28, edgecolors="white", linewidths=0.5, zorder=4,
        )  # fmt: skip
    return True


def _rate_legend(
    names: list[str],
    specs: dict[str, OptimizerSpec],
    styles: dict[str, tuple[str, tuple[float, float], str]],
    drawn: set[str],
    plain_drawn: bool,
    any_measured: bool,
) -> list[Line2D]:
    several = len(names) > 1
    handles = []
    for name in names:
        colour, dashes, marker = styles[name]
        who = f"{name}: " if several else ""
        handles.append(
            Line2D([], [], ls="none", marker=marker, color="0.3", label=f"measured, {who}fit to the excess cost")
        )
        if name in drawn:
            formula = "(1 − lr·λ)²" if specs[name].is_plain else "ρ² (spectral radius of its 2×2 step)"
            label = f"predicted, {who}max over λ > 0 of {formula}"
            handles.append(Line2D([], [], ls="--", dashes=dashes, color=colour, label=label))
    if plain_drawn:
        handles.append(Line2D([], [], ls=":", color=style.FASTEST_COLOUR, lw=1.8, label="fastest lr (plain SGD)"))
    critical = "critical lr of each optimizer (rate 1)"
    handles.append(Line2D([], [], ls="-", color=style.DIVERGED_COLOUR, alpha=0.6, label=critical))
    if not any_measured:
        handles.append(Line2D([], [], ls="none", label="no run converged with full batches: no measured rate"))
    return handles


#: (colour, dash pattern, marker) of each optimizer in the rate plot, in order of appearance.
_RATE_STYLES: list[tuple[str, tuple[float, float], str]] = [
    (style.CRITICAL_COLOUR, (4.0, 2.0), "o"),
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
