"""Verdicts per run: final values, best cost, divergence and convergence epochs, and the
float floor below which an excess is rounding.

Both engines feed every epoch's cost (recorded or not) through
:class:`gdbench.engines.tracker.VerdictTracker`, with
each run's float64 optimal cost (:func:`gdbench.theory.optimum`) and float floor
(:func:`float_floor`), so the verdicts do not depend on ``record_every`` or the engine and are
defined in one place. All comparisons are against float64 bounds, exactly (the tracker rounds
each bound to the cost's dtype in the direction that keeps the comparison exact):

* ``initial_cost``: epoch 0's cost (its forward pass, at the initial W and b); the
  *excess* of an epoch is ``cost - optimal_cost`` and the initial excess ``E0`` is epoch 0's;
  ``optimal_cost`` is the cost at the point the run's optimizer converges to (the regularised
  optimum with weight decay), of its points as rounded to its dtype;
* an epoch is *above* when its cost is not finite or above ``diverged_factor`` x the initial
  cost (x 1 when the initial cost is 0); ``diverged_at`` is the first epoch from which every
  epoch to the run's end is above (none: not diverged). SGD runs stop at their first epoch
  above; runs whose divergence is final (:func:`divergence_is_final`: Adam) stop only at a
  non-finite cost and train on through an overshoot;
* an epoch is *within tolerance* when ``|excess| <= converged_below x |E0|``;
  ``converged_at`` is the first epoch from which every epoch to the run's end is within
  tolerance (-1: the run ends outside it, a diverged run included); ``reached_at`` the first
  epoch within it. Everything is within tolerance when ``|E0| <= floor`` (the run starts at the
  optimum as far as its dtype can tell: converged at 0) and nothing is when
  ``converged_below x |E0| < floor``: below the floor the excess is rounding, and a run is
  never called converged through rounding;
* ``final_*``: W and b after the last computed epoch's update, and that epoch's cost (its
  forward pass before that update; the epoch of divergence for a stopped run);
* ``min_cost``: the smallest finite cost seen.

The **float floor** of a run is ``FLOOR_ULPS x (spacing(C*) + 2 sqrt(C*) u + u^2)`` with
``spacing`` the gap between adjacent numbers of the run's dtype (numpy.spacing), ``C*`` the
optimal cost and ``u = spacing(max(max|y|, |b*|))``: a few ulps of the optimal cost, where the
cost's own rounding leaves the excess, plus the residuals' rounding (each residual is rounded
to about ``u``, which moves the mean of squares linearly by up to ``2 sqrt(C*) u``, and by
``u^2`` for data a line fits exactly).

The measured rate is :mod:`gdbench.rates`'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The float floor is this many ulps (spacings) of the optimal cost, plus the residuals' part.
FLOOR_ULPS = 4


@dataclass(frozen=True)
class Criteria:
    """Thresholds for the verdicts (config ``analysis:``; its defaults are the schema's, and an
    experiment builds these: :attr:`gdbench.experiment.Experiment.criteria`)."""

    converged_below: float
    diverged_factor: float


@dataclass
class Verdicts:
    """Per-run verdict arrays (length R). Missing epochs are -1."""

    final_W: np.ndarray
    final_b: np.ndarray
    final_cost: np.ndarray
    min_cost: np.ndarray
    diverged: np.ndarray
    diverged_at: np.ndarray
    converged_at: np.ndarray
    reached_at: np.ndarray
    last_epoch: np.ndarray
    initial_cost: np.ndarray
    optimal_cost: np.ndarray
    floor: np.ndarray

    @staticmethod
    def concat(parts: list[Verdicts], order: np.ndarray | None = None) -> Verdicts:
        fields = Verdicts.__dataclass_fields__
        out = {k: np.concatenate([getattr(p, k) for p in parts]) for k in fields}
        if order is not None:
            out = {k: v[order] for k, v in out.items()}
        return Verdicts(**out)


def divergence_is_final(kind: str) -> bool:
    """Whether a run of an optimizer of ``kind`` is judged diverged by its end rather than stopped at its first
    epoch above the threshold: Adam, whose first steps (sign steps of size lr) may overshoot
    far above it and come back."""
    return kind == "adam"


def float_floor(optimal_cost: float, scale: float, dtype: str) -> float:
    """The smallest excess cost ``dtype`` resolves for data whose optimal cost is
    ``optimal_cost`` and whose residuals are computed from values up to ``scale`` (the largest
    ``|y|`` or ``|b*|``): ``FLOOR_ULPS x (spacing(C*) + 2 sqrt(C*) u + u^2)`` with ``u =
    spacing(scale)`` (see the module docstring)."""
    t = np.dtype(dtype).type
    ulp_cost = float(np.spacing(t(abs(optimal_cost))))
    u = float(np.spacing(t(abs(scale))))
    return FLOOR_ULPS * (ulp_cost + 2.0 * math.sqrt(max(optimal_cost, 0.0)) * u + u * u)
