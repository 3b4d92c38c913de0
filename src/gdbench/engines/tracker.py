"""The engines' verdict bookkeeping: :class:`VerdictTracker` accumulates each run's verdicts
(defined in :mod:`gdbench.verdicts`) over chunks of epochs, on the run's own device, in torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gdbench.verdicts import Criteria, Verdicts


class VerdictTracker:
    """Accumulates verdicts over chunks of epochs for a set of runs (on any device).

    ``optimal_cost`` and ``floor`` (float64, one per run; zeros when not given) are what the
    excess is measured against and the smallest excess the run's dtype resolves.
    ``final_divergence`` (bool per run; none when not given) marks the runs whose divergence
    is judged at their end (:func:`gdbench.verdicts.divergence_is_final`): they stop only at a
    non-finite cost. Every test runs in the cost's own dtype against float64 bounds rounded
    to it (exact: a cost ``c`` of that dtype is ``<= t`` iff it is ``<=`` t rounded down), so
    a chunk costs a handful of elementwise operations and reductions."""

    def __init__(
        self,
        n_runs: int,
        criteria: Criteria,
        device: torch.device | str = "cpu",
        optimal_cost: np.ndarray | None = None,
        floor: np.ndarray | None = None,
        final_divergence: np.ndarray | None = None,
    ) -> None:
        self.criteria = criteria
        f64: dict[str, Any] = dict(dtype=torch.float64, device=device)
        i64: dict[str, Any] = dict(dtype=torch.int64, device=device)
        zeros = np.zeros(n_runs)
        self.optimal_cost = torch.tensor(zeros if optimal_cost is None else optimal_cost, **f64)
        self.floor = torch.tensor(zeros if floor is None else floor, **f64)
        final = np.zeros(n_runs, dtype=bool) if final_divergence is None else np.asarray(final_divergence, dtype=bool)
        self.any_final = bool(final.any())
        self.final_divergence = torch.tensor(final, dtype=torch.bool, device=device)
        nan = float("nan")
        self.ok_bound = torch.full((n_runs,), nan, **f64)  # cost <= this: finite and not above the threshold
        self.conv_lo = torch.full((n_runs,), nan, **f64)  # within tolerance: conv_lo <= cost <= conv_hi
        self.conv_hi = torch.full((n_runs,), nan, **f64)
        self.initial_cost = torch.full((n_runs,), nan, **f64)
        self.final_W = torch.full((n_runs,), nan, **f64)
        self.final_b = torch.full((n_runs,), nan, **f64)
        self.final_cost = torch.full((n_runs,), nan, **f64)
        self.min_cost = torch.full((n_runs,), float("inf"), **f64)
        self.last_ok = torch.full((n_runs,), -1, **i64)  # last epoch not above the threshold
        self.last_outside = torch.full((n_runs,), -1, **i64)  # last epoch outside the tolerance
        self.reached_at = torch.full((n_runs,), -1, **i64)  # first epoch within the tolerance
        self.last_epoch = torch.full((n_runs,), -1, **i64)

    def _start(self, idx: torch.Tensor, c0: torch.Tensor, dtype: torch.dtype) -> None:
        """Epoch 0 of runs ``idx``: the thresholds, and their bounds rounded to ``dtype``."""
        self.initial_cost[idx] = c0
        threshold = torch.where(c0 > 0, c0, torch.ones_like(c0)) * self.criteria.diverged_factor
        optimal, floor = self.optimal_cost[idx], self.floor[idx]
        e0 = (c0 - optimal).abs()
        relative = self.criteria.converged_below * e0
        inf = torch.full_like(e0, float("inf"))
        tol = torch.where(e0 <= floor, inf, torch.where(relative >= floor, relative, -inf))
        self.ok_bound[idx] = _rounded(threshold.clamp(max=torch.finfo(dtype).max), dtype, down=True)
        self.conv_lo[idx] = _rounded(optimal - tol, dtype, down=False)
        self.conv_hi[idx] = _rounded(optimal + tol, dtype, down=True)

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
        run ends). Returns a bool mask over ``idx`` of runs that are finished (stopped by
        divergence or at their last epoch) and should stop being computed.
        """
        K = cost.shape[0]
        if first_epoch == 0:
            self._start(idx, cost[0].to(torch.float64), cost.dtype)
        ok = cost <= self.ok_bound[idx].to(cost.dtype)
        inside = (cost >= self.conv_lo[idx].to(cost.dtype)) & (cost <= self.conv_hi[idx].to(cost.dtype))
        cols = torch.arange(idx.shape[0], device=cost.device)
        epoch = torch.arange(K, device=cost.device)[:, None]
        if bool(ok.all()):  # the common chunk: nothing stops
            stop = torch.zeros_like(cols, dtype=torch.bool)
            last_pos = torch.full_like(cols, K - 1)
            self.min_cost[idx] = torch.minimum(self.min_cost[idx], cost.min(0).values.to(torch.float64))
            self.last_ok[idx] = last_pos + first_epoch
            outside, reach = ~inside, inside
        else:
            bad = ~ok
            if self.any_final:
                bad &= ~self.final_divergence[idx] | ~torch.isfinite(cost)
            stop = bad.any(0)
            last_pos = torch.where(stop, bad.to(torch.int8).argmax(0), K - 1)
            counted = epoch <= last_pos[None, :]  # the epochs after a stop are not the run's
            chunk_min = torch.where(counted & torch.isfinite(cost), cost, torch.inf).min(0).values
            self.min_cost[idx] = torch.minimum(self.min_cost[idx], chunk_min.to(torch.float64))
            self.last_ok[idx] = torch.maximum(self.last_ok[idx], _last(ok & counted, epoch + first_epoch))
            outside, reach = ~inside & counted, inside & counted
        if bool(outside.any()):
            self.last_outside[idx] = torch.maximum(self.last_outside[idx], _last(outside, epoch + first_epoch))
        fresh = self.reached_at[idx] < 0
        if bool(fresh.any()) and bool(reach.any()):
            hit = reach.any(0) & fresh
            self.reached_at[idx] = torch.where(hit, reach.to(torch.int8).argmax(0) + first_epoch, self.reached_at[idx])
        self.final_cost[idx] = cost[last_pos, cols].to(torch.float64)
        self.final_W[idx] = W[last_pos, cols].to(torch.float64)
        self.final_b[idx] = b[last_pos, cols].to(torch.float64)
        self.last_epoch[idx] = last_pos + first_epoch
        return stop | (end_epoch < first_epoch + K)

    def result(self) -> Verdicts:
        def np_(t: torch.Tensor) -> np.ndarray:
            return t.cpu().numpy()

        min_cost = np_(self.min_cost)
        min_cost[np.isinf(min_cost)] = np.nan
        last_epoch, last_ok, last_outside = np_(self.last_epoch), np_(self.last_ok), np_(self.last_outside)
        diverged = last_ok < last_epoch  # the run ends above the threshold (or not finite)
        converged = ~diverged & (last_outside < last_epoch)
        return Verdicts(
            final_W=np_(self.final_W),
            final_b=np_(self.final_b),
            final_cost=np_(self.final_cost),
            min_cost=min_cost,
            diverged=diverged,
            diverged_at=np.where(diverged, last_ok + 1, -1),
            converged_at=np.where(converged, last_outside + 1, -1),
            reached_at=np_(self.reached_at),
            last_epoch=last_epoch,
            initial_cost=np_(self.initial_cost),
            optimal_cost=np_(self.optimal_cost),
            floor=np_(self.floor),
        )


def _last(mask: torch.Tensor, epoch: torch.Tensor) -> torch.Tensor:
    """Per column of ``mask`` ``[K, R]``, the ``epoch`` ``[K, 1]`` of its last true row (-1
    where none)."""
    return torch.where(mask, epoch, -1).max(0).values


def _rounded(x: torch.Tensor, dtype: torch.dtype, down: bool) -> torch.Tensor:
    """float64 ``x`` rounded to ``dtype`` towards -inf (``down``) or +inf, as float64."""
    r = x.to(dtype)
    wrong = r.to(torch.float64) > x if down else r.to(torch.float64) < x
    step = torch.full_like(r, -float("inf") if down else float("inf"))
    return torch.where(wrong, torch.nextafter(r, step), r).to(torch.float64)
