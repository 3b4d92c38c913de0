"""What every figure shares: the seaborn theme, saving (PNG at 150 dpi and SVG, atomically),
log-axis tick labels, the colours of the conventions, and the facet grid.

Conventions (the same in every figure):

* diverged runs are drawn distinctly (red) and clipped at the top of the axis with a marker, so
  that costs of 1e30 do not flatten the curves that converge;
* theory is drawn as labelled reference lines (critical lr dashed, fastest lr dotted);
* facets are titled ``dataset = tutorial`` (and ``| device = cpu`` ... where those vary).

Figures are built on :class:`matplotlib.figure.Figure` objects, never through pyplot's global
state, so they work under whatever backend the caller chose; when none was chosen (and pyplot is
not imported yet) importing this module selects ``Agg``, which needs no display.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
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


def _import_seaborn() -> Any:
    """seaborn, imported without ``scipy.stats`` and ``scipy.cluster`` where nothing has
    imported them yet; afterwards both import as usual.

    * seaborn only takes its KDE from ``scipy.stats`` (with a copy of its own as fallback) and
      no figure here draws a KDE, while ``scipy.stats`` costs ~1 s of every plotting job's
      start (``import seaborn`` 2.7 s with it, 1.7 s without, on a 2-core machine).
    * ``seaborn.matrix`` imports ``scipy.cluster.hierarchy`` for ``clustermap``, which no
      figure here draws: 0.3 s of CPU (this module's import, 1.27-1.35 s with it against
      0.98-1.01 s without). seaborn is then handed a stand-in that imports the real module
      on first use, so a later ``clustermap`` clusters with scipy as usual."""
    if "seaborn" in sys.modules or "scipy.stats" in sys.modules:
        import seaborn

        return seaborn
    blocked = [name for name in ("scipy.stats", "scipy.cluster") if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # an import of it raises ImportError
    try:
        import seaborn
        import seaborn.matrix
    finally:
        for name in blocked:
            del sys.modules[name]
    if "scipy.cluster" in blocked and importlib.util.find_spec("scipy") is not None:
        seaborn.matrix.hierarchy = _Hierarchy()
        seaborn.matrix._no_scipy = False
    return seaborn


class _Hierarchy:
    """``scipy.cluster.hierarchy`` for ``seaborn.matrix``, imported on first use."""

    def __getattr__(self, name: str) -> Any:
        import seaborn.matrix
        from scipy.cluster import hierarchy

        seaborn.matrix.hierarchy = hierarchy
        return getattr(hierarchy, name)


import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sns = _import_seaborn()
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colorbar import Colorbar  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.textpath import text_to_path  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogFormatter, NullLocator  # noqa: E402

from gdbench.io import atomic_path  # noqa: E402
from gdbench.plots.reduction import ROW_AXES, ordered  # noqa: E402

PathLike = str | os.PathLike[str]

#: Resolution of the PNG files.
DPI = 150

CONVERGED_COLOUR = "#3b5b92"
DIVERGED_COLOUR = "#c0392b"
CRITICAL_COLOUR = "#444444"
FASTEST_COLOUR = "#1a9e77"


@dataclass(frozen=True)
class OptimizerStyle:
    """How one optimizer is drawn in every figure that compares optimizers."""

    colour: str
    marker: str
    dashes: tuple[float, float]


#: Optimizer styles in order of appearance (colour-blind-safe colours, a marker each).
_OPTIMIZER_STYLES = (
    OptimizerStyle("#444444", "o", (4.0, 2.0)),
    OptimizerStyle("#7b3294", "s", (6.0, 2.0)),
    OptimizerStyle("#e66101", "^", (2.0, 1.5)),
    OptimizerStyle("#0571b0", "D", (8.0, 2.0)),
    OptimizerStyle("#5aae61", "v", (3.0, 1.0)),
    OptimizerStyle("#b2182b", "P", (5.0, 1.5)),
)


def optimizer_styles(names: list[str]) -> dict[str, OptimizerStyle]:
    """Each optimizer's style, by its position in ``names`` (the grid's order)."""
    return {name: _OPTIMIZER_STYLES[i % len(_OPTIMIZER_STYLES)] for i, name in enumerate(names)}


# --------------------------------------------------------------------------------------------
# The learning-rate colour scale

#: Up to this many distinct learning rates, each gets its own colour step (a block of the
#: colour bar, every one labelled); more get colours on a continuous log scale.
STEPPED_LRS = 24
#: Relative luminance at most this (turbo's pale yellow-greens darkened), so that every line
#: and label stands out on the white background.
_MAX_LUMINANCE = 0.65


def _lr_palette(t: np.ndarray) -> np.ndarray:
    """Colours (RGB, [..., 3]) at positions ``t`` in [0, 1]: turbo without its darkest and
    palest ends, many hues, so neighbouring steps differ in hue; too-light ones darkened."""
    t = np.asarray(t, dtype=float)
    rgb = np.asarray(matplotlib.colormaps["turbo"](0.05 + 0.87 * np.clip(t.ravel(), 0, 1)))[:, :3].reshape(*t.shape, 3)
    luminance = rgb @ np.array([0.2126, 0.7152, 0.0722])
    return rgb * np.minimum(1.0, _MAX_LUMINANCE / np.maximum(luminance, 1e-9))[..., None]


@dataclass(frozen=True)
class LrScale:
    """The one learning-rate colour scale of every figure that colours by lr.

    With at most :data:`STEPPED_LRS` distinct learning rates, the i-th smallest gets the i-th of
    equal steps along the palette (so 0.17, 0.18 and 0.19 of an 11-step grid differ as much as
    0.0001 and 0.001 do) and the colour bar has a labelled block per lr; with more (a grid of
    100 lrs), the colour follows log(lr) continuously and the bar is a log scale."""

    lrs: np.ndarray  # the distinct positive learning rates, ascending

    @property
    def stepped(self) -> bool:
        return self.lrs.size <= STEPPED_LRS

    def position(self, lr: float) -> float:
        """Where ``lr`` sits on the palette, in [0, 1]."""
        n = self.lrs.size
        if n <= 1 or not np.isfinite(lr) or lr <= 0:
            return 0.0
        if self.stepped:
            return float(np.clip(np.searchsorted(self.lrs, lr), 0, n - 1)) / (n - 1)
        lo, hi = np.log(self.lrs[0]), np.log(self.lrs[-1])
        return float(np.clip((np.log(lr) - lo) / (hi - lo), 0, 1))

    def colour(self, lr: float) -> tuple[float, float, float, float]:
        """The colour of ``lr`` (grey for a learning rate that is not a positive number)."""
        if not np.isfinite(lr) or lr <= 0:
            return (0.5, 0.5, 0.5, 1.0)
        r, g, b = _lr_palette(np.array(self.position(lr)))
        return (float(r), float(g), float(b), 1.0)

    def colorbar(self, fig: Figure, axes: list[Axes]) -> Colorbar:
        """The colour bar, labelled "learning rate", beside ``axes``."""
        n = self.lrs.size
        if self.stepped:
            cmap = ListedColormap(_lr_palette(np.linspace(0, 1, n) if n > 1 else np.zeros(1)))
            mappable = ScalarMappable(norm=BoundaryNorm(np.arange(n + 1) - 0.5, max(n, 1)), cmap=cmap)
        else:
            cmap = ListedColormap(_lr_palette(np.linspace(0, 1, 256)))
            mappable = ScalarMappable(norm=LogNorm(self.lrs[0], self.lrs[-1]), cmap=cmap)
        bar = fig.colorbar(mappable, ax=axes, shrink=0.9, pad=0.02, aspect=30)
        bar.set_label("learning rate")
        if self.stepped:
            bar.set_ticks(list(range(n)), labels=[f"{lr:g}" for lr in self.lrs])
            bar.ax.yaxis.set_minor_locator(NullLocator())
        bar.ax.tick_params(labelsize="small")
        return bar


def lr_scale(lrs: np.ndarray | pd.Series | list[float]) -> LrScale:
    """The learning-rate scale of a grid's learning rates (any order, repeats and NaN allowed)."""
    values = np.asarray(lrs, dtype=float)
    return LrScale(np.unique(values[np.isfinite(values) & (values > 0)]))


# --------------------------------------------------------------------------------------------
# Shared helpers


@contextmanager
def theme() -> Iterator[None]:
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


def save(fig: Figure, out_png: PathLike, out_svg: PathLike | None) -> None:
    """Write the figure as PNG and (unless ``out_svg`` is None) SVG, each renamed into place
    only once complete."""
    for ax in fig.axes:
        if hasattr(ax, "_colorbar"):  # the colour bar labels itself (see _lr_colorbar)
            continue
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                _widen(ax, axis)
            if scale in ("log", "symlog") and isinstance(axis.get_major_formatter(), LogFormatter):
                lo, hi = sorted(axis.get_view_interval())
                plain = lo >= 0 and (lo == 0 or lo >= 1e-4) and hi <= 1e4
                axis.set_major_formatter(FuncFormatter(plain_label if plain else power_label))
                if lo <= 0 or hi / lo > 100:  # the theme draws no minor ticks; skip computing them
                    axis.set_minor_locator(NullLocator())
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    if out_svg is None:
        return
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


def plain_label(value: float, _pos: object = None) -> str:
    """Tick labels of a log axis that stays within 0.0001..10,000: plain numbers."""
    if value <= 0 or not np.isfinite(value):
        return "0" if value == 0 else ""
    if value >= 1:
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,g}"
    return f"{value:.10f}".rstrip("0")


def power_label(value: float, _pos: object = None) -> str:
    """Tick labels of a log axis spanning more: powers of ten as Unicode superscripts (cheaper
    than mathtext, and real text in the SVG)."""
    if value <= 0 or not np.isfinite(value):
        return "0" if value == 0 else ""
    exponent = np.log10(value)
    if abs(exponent - round(exponent)) < 1e-9:
        return "10" + str(round(exponent)).translate(_SUPERSCRIPT)
    return f"{value:.0e}"


@dataclass
class Facets:
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


def make_facets(runs: pd.DataFrame, max_cols: int = 3) -> Facets:
    """Facets of a run table (one row per run, with ``dataset`` and any of the row axes)."""
    row_axes = [a for a in ROW_AXES if a in runs.columns and runs[a].nunique(dropna=False) > 1]
    datasets = ordered(runs["dataset"]) if "dataset" in runs.columns else ["all"]
    if row_axes:
        # In each axis' own order (categorical: the config's; e.g. sgd before heavy_ball).
        rank = [{v: i for i, v in enumerate(ordered(runs[a]))} for a in row_axes]
        row_keys = sorted(
            {tuple(r) for r in runs[row_axes].astype(str).itertuples(index=False, name=None)},
            key=lambda key: tuple(rank[i].get(v, len(rank[i])) for i, v in enumerate(key)),
        )
    else:
        row_keys = [()]
    facets = Facets(keys=[], row_axes=row_axes)
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


def facet_of(runs: pd.DataFrame, facets: Facets) -> list[tuple[str, tuple]]:
    """Each run's facet key."""
    ds = runs["dataset"].astype(str) if "dataset" in runs.columns else pd.Series("all", index=runs.index)
    if facets.row_axes:
        rows = list(runs[facets.row_axes].astype(str).itertuples(index=False, name=None))
    else:
        rows = [()] * len(runs)
    return list(zip(ds, rows, strict=True))


def grid(facets: Facets, width: float, height: float, extra_width: float = 0.0) -> tuple[Figure, dict]:
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


def text_width_pt(text: str, size: str = "x-small") -> float:
    """The width of ``text`` in points at the theme's font size ``size`` (call within
    :func:`theme`): what a label will take on the figure, to keep labels apart."""
    font = FontProperties(size=size)
    return _text_width(text, font.get_family()[0], font.get_size_in_points())


@lru_cache(maxsize=4096)
def _text_width(text: str, family: str, points: float) -> float:
    width, _, _ = text_to_path.get_text_width_height_descent(text, FontProperties(family=family, size=points), False)
    return float(width)


def empty_note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def label_outer(facets: Facets, by_key: dict, xlabel: str, ylabel: str) -> None:
    """Axis labels on the left column and on the lowest axes of each column only."""
    lowest: dict[int, int] = {}
    for r, c in facets.positions.values():
        lowest[c] = max(lowest.get(c, -1), r)
    for key, ax in by_key.items():
        r, c = facets.positions[key]
        ax.set_ylabel(ylabel if c == 0 else "")
        ax.set_xlabel(xlabel if lowest[c] == r else "")


def corner_note(ax: Axes, text: str) -> None:
    ax.text(
        0.02, 0.98, text, transform=ax.transAxes, va="top", ha="left", fontsize="x-small", color="0.3",
        bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "0.8", "alpha": 0.9},
    )  # fmt: skip
