"""Verdicts per run: final values, best cost, divergence and convergence epochs, and the
measured rate at which the excess cost shrinks.

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

The **measured rate** (:func:`measured_rate`) fits the asymptotic contraction of the excess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_CONVERGED_BELOW = 1.0e-6
DEFAULT_DIVERGED_FACTOR = 1.0e6

#: The float floor is this many ulps (spacings) of the optimal cost, plus the residuals' part.
FLOOR_ULPS = 4
#: The rate is fitted where the excess is at most this fraction of the initial excess ...
RATE_BELOW_START = 1.0e-3
#: ... and above this multiple of the float floor; the fit takes the window's last
#: RATE_TAIL_FACTOR (its lowest decade) ...
RATE_ABOVE_FLOOR = 1.0e2
RATE_TAIL_FACTOR = 10.0
#: ... and above the square of this many ulps of the largest |y| (where the residuals' rounding,
#: 2 sqrt(excess) ulp(y), is 0.2% of the excess: it matters for data a line fits exactly) ...
RATE_RESIDUAL_ULPS = 1.0e3
#: ... on at least this many recorded epochs.
RATE_MIN_POINTS = 3
#: An oscillating excess (momentum) is fitted through its peaks, on at least 2 x
#: RATE_MIN_POINTS of them, and only where the fits of their first and last half agree
#: within this (else its rate is NaN).
RATE_PEAKS_AGREE = 2.0e-3


@dataclass(frozen=True)
class Criteria:
    """Thresholds for the verdicts (config ``analysis:``)."""

    converged_below: float = DEFAULT_CONVERGED_BELOW
    diverged_factor: float = DEFAULT_DIVERGED_FACTOR


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


def rate_window_bottom(floor: float, y_scale: float, dtype: str) -> float:
    """The smallest excess :func:`measured_rate` fits: ``RATE_ABOVE_FLOOR x floor +
    (RATE_RESIDUAL_ULPS x spacing(max|y|))^2`` in the run's dtype."""
    ulp_y = float(np.spacing(np.dtype(dtype).type(abs(y_scale))))
    return RATE_ABOVE_FLOOR * floor + (RATE_RESIDUAL_ULPS * ulp_y) ** 2


def measured_rate(
    epochs: np.ndarray, excess: np.ndarray, initial_excess: float, bottom: float, monotone: bool = True
) -> float:
    """The asymptotic contraction factor per epoch of a run's excess cost, or NaN.

    ``monotone`` (plain gradient descent): the *window* is the recorded epochs before the
    first one whose excess does not fall below the previous recorded epoch's (in exact
    arithmetic gradient descent's excess falls every epoch: a rise or a repeat is rounding,
    e.g. steps too small to move float32 parameters) whose excess ``E`` satisfies
    ``bottom < E <= RATE_BELOW_START x initial_excess`` (``bottom`` from
    :func:`rate_window_bottom`); the fit takes the window's lowest decade, the epochs with
    ``E <= RATE_TAIL_FACTOR x min E in the window``, where faster directions have died out
    longest, and returns ``exp(slope)`` of the least-squares line of ``ln E`` against epoch.

    Not ``monotone`` (momentum: the excess may oscillate, its envelope contracts): the
    window is the epochs whose *envelope* ``M_t = max E_s over s >= t`` (the excess's
    running maximum from the end) satisfies the same bounds, so a dip of an oscillation
    ends nothing. Where the excess falls every epoch of that window the fit is the one
    above; otherwise it is the least-squares line of ``ln E`` through the window's peaks
    (epochs whose excess is at least both neighbours'), which lie on the envelope.

    NaN with fewer than ``RATE_MIN_POINTS`` epochs (or peaks) to fit."""
    e = np.asarray(epochs, dtype=np.float64)
    x = np.asarray(excess, dtype=np.float64)
    upper = RATE_BELOW_START * float(initial_excess)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(x) & (x > 0)
        if monotone:
            window = ok & (x > bottom) & (x <= upper)
            stalled = np.flatnonzero(~(x[1:] < x[:-1]))
            if stalled.size:
                window[stalled[0] + 1 :] = False
        else:
            envelope = np.maximum.accumulate(np.where(ok, x, 0.0)[::-1])[::-1]
            window = ok & (envelope > bottom) & (envelope <= upper)
    if window.sum() < RATE_MIN_POINTS:
        return float("nan")
    idx = np.flatnonzero(window)
    falls = bool(np.all(x[idx[1:]] < x[idx[:-1]])) and bool(np.all(np.diff(idx) == 1))
    if monotone or falls:
        tail = window & (x <= RATE_TAIL_FACTOR * float(x[window].min()))
    else:
        inner = idx[(idx > 0) & (idx < len(x) - 1)]
        peaks = inner[(x[inner] >= x[inner - 1]) & (x[inner] >= x[inner + 1])]
        tail = np.zeros_like(window)
        tail[peaks] = True
    if tail.sum() < RATE_MIN_POINTS:
        return float("nan")
    rate = _fit(e[tail], x[tail])
    if not monotone:
        # the peaks sample the envelope at whole epochs, off its crest by a phase that varies,
        # and momentum's directions can contract at close rates, the slowest taking over late:
        # where the fits of the first and the last half of the points disagree, so does the fit
        at = np.flatnonzero(tail)
        half = at.size // 2
        if half < RATE_MIN_POINTS:
            return float("nan")
        first, last = _fit(e[at[:half]], x[at[:half]]), _fit(e[at[-half:]], x[at[-half:]])
        if abs(first - last) > RATE_PEAKS_AGREE:
            return float("nan")
    return rate


def growth_rate(epochs: np.ndarray, excess: np.ndarray, monotone: bool = True) -> float:
    """The factor per epoch by which a diverging run's excess grows, or NaN: fitted as
    :func:`measured_rate` fits a contraction, on the epochs before the divergence epoch
    (``epochs``, ``excess``) whose excess is at least ``RATE_BELOW_START`` x the largest of
    them, where the fastest-growing direction dominates (the least-squares line of ``ln E``
    against epoch; through the peaks where the excess oscillates, not ``monotone``). NaN with
    fewer than ``RATE_MIN_POINTS`` epochs (or peaks) to fit."""
    e = np.asarray(epochs, dtype=np.float64)
    x = np.asarray(excess, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(x) & (x > 0)
        if not ok.any():
            return float("nan")
        window = ok & (x >= RATE_BELOW_START * float(x[ok].max()))
    idx = np.flatnonzero(window)
    rises = bool(np.all(x[idx[1:]] > x[idx[:-1]])) and bool(np.all(np.diff(idx) == 1))
    if not (monotone or rises):
        inner = idx[(idx > 0) & (idx < len(x) - 1)]
        idx = inner[(x[inner] >= x[inner - 1]) & (x[inner] >= x[inner + 1])]
    if idx.size < RATE_MIN_POINTS:
        return float("nan")
    return _fit(e[idx], x[idx])


def _fit(t: np.ndarray, x: np.ndarray) -> float:
    """``exp(slope)`` of the least-squares line of ``ln x`` against ``t``."""
    y = np.log(x)
    t0 = t - t.mean()
    return float(np.exp(np.sum(t0 * (y - y.mean())) / np.sum(t0 * t0)))
