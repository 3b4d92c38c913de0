"""Verdicts per run: final values, best cost, divergence and convergence epochs.

Both engines feed every epoch's cost (recorded or not) through :class:`VerdictTracker`, so
the verdicts do not depend on ``record_every`` and are defined in one place:

* ``diverged``: some epoch's cost is non-finite or above ``diverged_factor`` x the initial
  (epoch-0) cost (x 1 when the initial cost is 0); ``diverged_at`` is the first such epoch and
  training of that run stops there;
* ``converged_at``: the first epoch whose cost is <= ``converged_below`` (-1 when never);
* ``final_*``: W and b after the last computed epoch's update, and that epoch's cost
  (the epoch of divergence for a diverged run);
* ``min_cost``: the smallest finite cost seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # tables and plots use Verdicts without paying for torch's import
    import torch

DEFAULT_CONVERGED_BELOW = 1.0e-6
DEFAULT_DIVERGED_FACTOR = 1.0e6


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

    @staticmethod
    def concat(parts: list[Verdicts], order: np.ndarray | None = None) -> Verdicts:
        fields = Verdicts.__dataclass_fields__
        out = {k: np.concatenate([getattr(p, k) for p in parts]) for k in fields}
        if order is not None:
            out = {k: v[order] for k, v in out.items()}
        return Verdicts(**out)


class VerdictTracker:
    """Accumulates verdicts over chunks of epochs for a set of runs (on any device)."""

    def __init__(self, n_runs: int, criteria: Criteria, device: torch.device | str = "cpu") -> None:
        import torch

        self.criteria = criteria
        f64: dict[str, Any] = dict(dtype=torch.float64, device=device)
        i64: dict[str, Any] = dict(dtype=torch.int64, device=device)
        self.threshold = torch.full((n_runs,), float("nan"), **f64)
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
        if first_epoch == 0:
            c0 = cost[0].to(torch.float64)
            self.threshold[idx] = torch.where(c0 > 0, c0, torch.ones_like(c0)) * self.criteria.diverged_factor
        threshold = self.threshold[idx].to(cost.dtype)
        # NaN fails every comparison and inf exceeds any threshold: one test catches all three.
        bad = ~(cost <= threshold)
        has_bad = bad.any(0)
        cols = torch.arange(idx.shape[0], device=cost.device)
        if bool(has_bad.any()):
            first_bad = torch.where(has_bad, bad.to(torch.int8).argmax(0), K - 1)
            counted = torch.arange(K, device=cost.device)[:, None] <= first_bad[None, :]
            finite = counted & torch.isfinite(cost)
            chunk_min = torch.where(finite, cost, torch.inf).min(0).values
            self.diverged_at[idx] = torch.where(has_bad, first_bad + first_epoch, self.diverged_at[idx])
            last_pos = first_bad
        else:
            counted = None
            chunk_min = cost.min(0).values
            last_pos = torch.full_like(cols, K - 1)
        self.min_cost[idx] = torch.minimum(self.min_cost[idx], chunk_min.to(torch.float64))
        conv = cost <= self.criteria.converged_below
        if counted is not None:
            conv &= counted
        new_conv = conv.any(0) & (self.converged_at[idx] < 0)
        if bool(new_conv.any()):
            conv_at = conv.to(torch.int8).argmax(0) + first_epoch
            self.converged_at[idx] = torch.where(new_conv, conv_at, self.converged_at[idx])
        self.final_cost[idx] = cost[last_pos, cols].to(torch.float64)
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
        )


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
