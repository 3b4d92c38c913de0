"""Figures people read, drawn from the tidy tables: one module per figure, sharing
:mod:`gdbench.plots.style` (theme, saving, facets, colours).

* :func:`convergence` (``convergence_plot``): excess cost (its upper envelope) vs epoch, one
  line per learning rate coloured on the one learning-rate scale (``style.LrScale``);
  its reduction of seeds to lines is :mod:`gdbench.plots.reduction` (pandas only, no matplotlib);
* :func:`divergence` (``divergence_plot``): final excess cost vs lr / critical lr (stretched
  around 1, the grid's lrs on top), with theory; against lr where there is no critical lr;
* :func:`rate` (``rate_plot``): measured vs predicted rate of the excess cost, both sides of
  the critical lr;
* :func:`time_to_target` (``target_plot``): epochs to converge vs lr per optimizer;
* :func:`profile` (``profile_plot``): the optimizers' performance profile (or ranked bars);
* :func:`timing` (``timing_plot``): seconds per epoch and throughput from the timing table;
* :func:`edge` (``edge_plot``): the located stability edge vs theory, per optimizer.

Every figure function takes pandas DataFrames, writes one PNG (150 dpi) and one SVG atomically
and returns ``None``. The names below are imported on first use, so ``import gdbench.plots``
costs nothing until a figure is drawn (and ``gdbench.plots.reduction`` never loads matplotlib).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ imports on first use
    from gdbench.plots.convergence_plot import TOP_FACTOR, convergence
    from gdbench.plots.divergence_plot import divergence
    from gdbench.plots.edge_plot import edge
    from gdbench.plots.profile_plot import profile
    from gdbench.plots.rate_plot import rate
    from gdbench.plots.reduction import MAX_POINTS
    from gdbench.plots.style import DPI
    from gdbench.plots.target_plot import time_to_target
    from gdbench.plots.timing_plot import timing

__all__ = [
    "DPI",
    "MAX_POINTS",
    "TOP_FACTOR",
    "convergence",
    "divergence",
    "edge",
    "profile",
    "rate",
    "time_to_target",
    "timing",
]

#: Each public name and the module that defines it.
_HOME = {
    "DPI": "style",
    "MAX_POINTS": "reduction",
    "TOP_FACTOR": "convergence_plot",
    "convergence": "convergence_plot",
    "divergence": "divergence_plot",
    "edge": "edge_plot",
    "profile": "profile_plot",
    "rate": "rate_plot",
    "timing": "timing_plot",
    "time_to_target": "target_plot",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
