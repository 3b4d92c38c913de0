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
    excess is measured against and the smallest excess the run's dtype resolves."""

    def __init__(
        self,
        n_runs: int,
        criteria: Criteria,
        device: torch.device | str = "cpu",
        optimal_cost: np.ndarray | None = None,
        floor: np.ndarray | None = None,
    ) -> None:
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
        # One function on purpose (~70 lines): the common chunk (nothing diverged or converged)
        # must cost a handful of tensor operations, and its fast path and the float64 path share
        # the masks computed here.
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
    r = x.to(dtype)
    wrong = r.to(torch.float64) > x if down else r.to(torch.float64) < x
    step = torch.full_like(r, -float("inf") if down else float("inf"))
    return torch.where(wrong, torch.nextafter(r, step), r).to(torch.float64)
