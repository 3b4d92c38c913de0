"""Verdicts per run: final values, best cost, divergence and convergence epochs, and the
measured rate at which the excess cost shrinks.

Both engines feed every epoch's cost (recorded or not) through :class:`VerdictTracker`, with
each run's float64 optimal cost (:func:`gdbench.theory.optimum`) and float floor
(:func:`float_floor`), so the verdicts do not depend on ``record_every`` or the engine and are
defined in one place. All comparisons are in float64, on the recorded costs converted exactly
(a float32 cost is a float64 number):

* ``initial_cost``: epoch 0's cost (its forward pass, at the initial W and b); the
  *excess* of an epoch is ``cost - optimal_cost`` and the initial excess ``E0`` is epoch 0's;
* ``diverged``: some epoch's cost is not finite or is above ``diverged_factor`` x the initial
  cost (x 1 when the initial cost is 0): ``not isfinite(cost) or cost > threshold``;
  ``diverged_at`` is the first such epoch and training of that run stops there;
* ``converged_at``: the first epoch whose excess is <= ``converged_below`` x ``E0``
  (a relative tolerance). Epoch 0 when ``E0 <= floor`` (the run starts at the optimum as far
  as its dtype can tell, an initial excess of 0 included). Never (-1) when
  ``converged_below x E0 < floor``: below the floor the excess is rounding, and a run is never
  called converged through rounding;
* ``final_*``: W and b after the last computed epoch's update, and that epoch's cost (its
  forward pass before that update; the epoch of divergence for a diverged run);
* ``min_cost``: the smallest finite cost seen.

The **float floor** of a run is ``FLOOR_ULPS x (spacing(optimal_cost) + spacing(max|y|)^2)``
with ``spacing`` the gap between adjacent numbers of the run's dtype (numpy.spacing): a few
ulps of the optimal cost, where the cost's own rounding leaves the excess (plus, for data a
line fits exactly, the square of the residuals' rounding). In float32 the noisy default
dataset's costs scatter within +-1 ulp of its optimum (~3e-8) once converged.

The **measured rate** (:func:`measured_rate`) fits the asymptotic contraction of the excess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # tables and plots use Verdicts without paying for torch's import
    import torch

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


def float_floor(optimal_cost: float, y_scale: float, dtype: str) -> float:
    """The smallest excess cost ``dtype`` resolves for data whose optimal cost is
    ``optimal_cost`` and whose largest ``|y|`` is ``y_scale`` (see the module docstring)."""
    t = np.dtype(dtype).type
    ulp_cost = float(np.spacing(t(abs(optimal_cost))))
    ulp_y = float(np.spacing(t(abs(y_scale))))
    return FLOOR_ULPS * (ulp_cost + ulp_y * ulp_y)


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


def _fit(t: np.ndarray, x: np.ndarray) -> float:
    """``exp(slope)`` of the least-squares line of ``ln x`` against ``t``."""
    y = np.log(x)
    t0 = t - t.mean()
    return float(np.exp(np.sum(t0 * (y - y.mean())) / np.sum(t0 * t0)))


class VerdictTracker:
    """Accumulates verdicts over chunks of epochs for a set of runs (on any device).

    ``optimal_cost`` and ``floor`` (float64, one per run; zeros when not given) are what the
    excess is measured against and the smallest excess the run's dtype resolves."""

    def __init__(
        self,
        n_runs: int,
        criteria: Criteria,
        device: torch.device | str = "cpu",
        optimal_cost: np.ndarray | None = None,
        floor: np.ndarray | None = None,
    ) -> None:
        import torch

        self.criteria = criteria
        f64: dict[str, Any] = dict(dtype=torch.float64, device=device)
        i64: dict[str, Any] = dict(dtype=torch.int64, device=device)
        zeros = np.zeros(n_runs)
        self.optimal_cost = torch.tensor(zeros if optimal_cost is None else optimal_cost, **f64)
        self.floor = torch.tensor(zeros if floor is None else floor, **f64)
        self.threshold = torch.full((n_runs,), float("nan"), **f64)
        self.conv_threshold = torch.full((n_runs,), float("nan"), **f64)
        self.div_screen = torch.full((n_runs,), float("nan"), **f64)
        self.conv_screen = torch.full((n_runs,), float("nan"), **f64)
        self.initial_cost = torch.full((n_runs,), float("nan"), **f64)
        self.final_W = torch.full((n_runs,), float("nan"), **f64)
        self.final_b = torch.full((n_runs,), float("nan"), **f64)
        self.final_cost = torch.full((n_runs,), float("nan"), **f64)
        self.min_cost = torch.full((n_runs,), float("inf"), **f64)
        self.diverged_at = torch.full((n_runs,), -1, **i64)
        self.converged_at = torch.full((n_runs,), -1, **i64)
        self.last_epoch = torch.full((n_runs,), -1, **i64)

    def update(
        self,
        idx: torch.Tensor,
        first_epoch: int,
        cost: torch.Tensor,
        W: torch.Tensor,
        b: torch.Tensor,
        end_epoch: torch.Tensor,
    ) -> torch.Tensor:
        """Take epochs ``first_epoch .. first_epoch+K-1`` of runs ``idx``.

        ``cost``, ``W``, ``b`` are ``[K, len(idx)]`` (W, b after each epoch's update); every
        epoch of the chunk must be within each run's ``end_epoch`` (callers end chunks at
        run ends). Returns a bool mask over ``idx`` of runs that are finished (diverged or at
        their last epoch) and should stop being computed. The common case (nothing diverged
        in the chunk) costs a handful of tensor operations.
        """
        import torch

        K = cost.shape[0]
        optimal = self.optimal_cost[idx]
        if first_epoch == 0:
            c0 = cost[0].to(torch.float64)
            self.initial_cost[idx] = c0
            self.threshold[idx] = torch.where(c0 > 0, c0, torch.ones_like(c0)) * self.criteria.diverged_factor
            e0, floor = c0 - optimal, self.floor[idx]
            relative = self.criteria.converged_below * e0
            never = torch.full_like(e0, -float("inf"))
            self.conv_threshold[idx] = torch.where(
                e0 <= floor, torch.full_like(e0, float("inf")), torch.where(relative >= floor, relative, never)
            )
            # Screens in the cost's own dtype (cheap), never stricter than the float64 tests:
            # a chunk none of whose costs passes them is decided without float64 work.
            limit = self.threshold[idx].clamp(max=torch.finfo(cost.dtype).max)
            self.div_screen[idx] = _rounded(limit, cost.dtype, down=True)
            bound = optimal + self.conv_threshold[idx]
            self.conv_screen[idx] = _rounded(bound + bound.abs() * 1e-6, cost.dtype, down=False)
        fresh = self.converged_at[idx] < 0
        candidates = ~(cost <= self.div_screen[idx].to(cost.dtype)) | (
            (cost <= self.conv_screen[idx].to(cost.dtype)) & fresh
        )
        cols = torch.arange(idx.shape[0], device=cost.device)
        if not bool(candidates.any()):  # no divergence and no new convergence in this chunk
            last = torch.full_like(cols, K - 1)
            self.min_cost[idx] = torch.minimum(self.min_cost[idx], cost.min(0).values.to(torch.float64))
            self.final_cost[idx] = cost[K - 1].to(torch.float64)
            self.final_W[idx] = W[K - 1].to(torch.float64)
            self.final_b[idx] = b[K - 1].to(torch.float64)
            self.last_epoch[idx] = last + first_epoch
            return end_epoch < first_epoch + K
        c64 = cost.to(torch.float64)
        finite = torch.isfinite(c64)
        bad = ~finite | (c64 > self.threshold[idx])
        has_bad = bad.any(0)
        conv = finite & (c64 - optimal <= self.conv_threshold[idx])
        if bool(has_bad.any()):
            first_bad = torch.where(has_bad, bad.to(torch.int8).argmax(0), K - 1)
            counted = torch.arange(K, device=cost.device)[:, None] <= first_bad[None, :]
            chunk_min = torch.where(counted & finite, c64, torch.inf).min(0).values
            self.diverged_at[idx] = torch.where(has_bad, first_bad + first_epoch, self.diverged_at[idx])
            last_pos = first_bad
            conv &= counted
        else:
            chunk_min = c64.min(0).values
            last_pos = torch.full_like(cols, K - 1)
        self.min_cost[idx] = torch.minimum(self.min_cost[idx], chunk_min)
        new_conv = conv.any(0) & (self.converged_at[idx] < 0)
        if bool(new_conv.any()):
            conv_at = conv.to(torch.int8).argmax(0) + first_epoch
            self.converged_at[idx] = torch.where(new_conv, conv_at, self.converged_at[idx])
        self.final_cost[idx] = c64[last_pos, cols]
        self.final_W[idx] = W[last_pos, cols].to(torch.float64)
        self.final_b[idx] = b[last_pos, cols].to(torch.float64)
        self.last_epoch[idx] = last_pos + first_epoch
        return has_bad | (end_epoch < first_epoch + K)

    def result(self) -> Verdicts:
        def np_(t: torch.Tensor) -> np.ndarray:
            return t.cpu().numpy()

        min_cost = np_(self.min_cost)
        min_cost[np.isinf(min_cost)] = np.nan
        diverged_at = np_(self.diverged_at)
        return Verdicts(
            final_W=np_(self.final_W),
            final_b=np_(self.final_b),
            final_cost=np_(self.final_cost),
            min_cost=min_cost,
            diverged=diverged_at >= 0,
            diverged_at=diverged_at,
            converged_at=np_(self.converged_at),
            last_epoch=np_(self.last_epoch),
            initial_cost=np_(self.initial_cost),
            optimal_cost=np_(self.optimal_cost),
            floor=np_(self.floor),
        )


def _rounded(x: torch.Tensor, dtype: torch.dtype, down: bool) -> torch.Tensor:
    """float64 ``x`` rounded to ``dtype`` towards -inf (``down``) or +inf, as float64."""
    import torch

    r = x.to(dtype)
    wrong = r.to(torch.float64) > x if down else r.to(torch.float64) < x
    step = torch.full_like(r, -float("inf") if down else float("inf"))
    return torch.where(wrong, torch.nextafter(r, step), r).to(torch.float64)


def crossover(n: np.ndarray, slow: np.ndarray, fast: np.ndarray) -> tuple[float | None, str]:
    """Where ``fast`` times (e.g. CUDA) drop below ``slow`` ones (e.g. CPU) and stay below,
    over sizes ``n`` (ascending): interpolated on log-log axes between the two sizes around
    the last crossing. Returns ``(n, "crosses")``, ``(smallest n, "always")`` when ``fast``
    wins at every size, ``(None, "never")`` when it does not win at the largest size, and
    ``(None, "unmeasured")`` without sizes."""
    if len(n) == 0:
        return None, "unmeasured"
    n = np.asarray(n, dtype=float)
    d = np.log(np.asarray(fast, dtype=float)) - np.log(np.asarray(slow, dtype=float))  # < 0: fast wins
    if d[-1] >= 0:
        return None, "never"
    slower = np.flatnonzero(d >= 0)
    if slower.size == 0:
        return float(n[0]), "always"
    i = int(slower[-1]) + 1
    x0, x1 = np.log(n[i - 1]), np.log(n[i])
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(np.exp(x0 + t * (x1 - x0))), "crosses"
