"""Stability and asymptotic rate of each optimizer: full batch, constant learning rate, on a
quadratic cost, per Hessian eigenvalue.

Along an eigenvector of the Hessian (eigenvalue ``lambda``) the gradient is ``g = lambda e``,
with ``e`` the error from the optimum, and each optimizer is a linear recurrence in ``e``
(weight decay ``wd`` adds ``wd p`` to the gradient: the same recurrence with ``lambda + wd``,
around the regularised optimum instead). As ``torch.optim.SGD`` does it, with momentum
``beta``, dampening ``d`` and ``h = lr (lambda + wd)``:

* plain gradient descent: ``e' = (1 - h) e``; stable iff ``0 < h < 2``;
* heavy ball (``buf' = beta buf + (1 - d) g``, ``p' = p - lr buf'``; torch starts the buffer
  at the first gradient, a transient that changes no asymptotics): on ``(e, buf)`` the
  matrix ``[[1 - (1 - d) h, -lr beta], [(1 - d)(lambda + wd), beta]]``, characteristic
  polynomial ``z^2 - (1 + beta - (1 - d) h) z + beta``; by the Jury conditions stable iff
  ``0 < (1 - d) h < 2 (1 + beta)``;
* Nesterov (``buf' = beta buf + g``, ``p' = p - lr (g + beta buf')``; torch needs ``d = 0``):
  ``[[1 - (1 + beta) h, -lr beta^2], [lambda + wd, beta]]``, polynomial
  ``z^2 - (1 + beta - (1 + beta) h) z + beta (1 - h)``; stable iff
  ``0 < h < 2 (1 + beta) / (1 + 2 beta)``.

So the critical learning rate is ``c / (lambda_max + wd)`` with ``c`` = 2, ``2 (1 + beta) /
(1 - d)`` or ``2 (1 + beta) / (1 + 2 beta)`` (:func:`critical_lr`). The error along each
direction shrinks asymptotically by the spectral radius ``rho`` of its matrix per step, the
excess cost by ``rho^2`` per epoch (plain descent: ``(1 - h)^2``); :func:`rate_factor` gives
that per-eigenvalue factor in the form :mod:`gdbench.theory`'s predicted rate takes.

Out of scope (NaN: empty columns): Adam (not linear; no closed form), momentum >= 1 (never
stable), dampening >= 1 (the buffer stops learning), and the rate of runs with weight decay
(their cost tends to the regularised optimum's, not to the least-squares optimum the excess
cost is measured from; their critical lr is given). :func:`simulate` runs the recurrences
as torch steps them, in float64, to check all of this.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gdbench.optimizers import OptimizerSpec

#: ``(lr, eigenvalues [k]) -> [k]``: per-epoch contraction factor of the excess cost along
#: each eigen-direction (the shape :mod:`gdbench.theory`'s predicted rate takes).
RateFactor = Callable[[float, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Stability:
    """The stable range of one optimizer on one dataset's Hessian (NaN: no closed form)."""

    dataset: str
    optimizer: str
    kind: str
    momentum: float
    nesterov: bool
    lambda_max: float
    critical_lr: float
    fastest_lr: float

    def to_dict(self) -> dict[str, float | str | bool]:
        return {
            "dataset": self.dataset,
            "optimizer": self.optimizer,
            "kind": self.kind,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "critical_lr": self.critical_lr,
            "fastest_lr": self.fastest_lr,
        }


def has_theory(spec: OptimizerSpec) -> bool:
    """Whether the stable range has a closed form: SGD with momentum < 1, dampening < 1."""
    return spec.kind == "sgd" and spec.momentum < 1 and spec.dampening < 1


def critical_factor(spec: OptimizerSpec) -> float:
    """``c`` of the stable range ``0 < lr (lambda_max + wd) < c``; NaN without a theory."""
    if not has_theory(spec):
        return math.nan
    beta = spec.momentum
    if beta == 0:
        return 2.0
    if spec.nesterov:
        return 2.0 * (1.0 + beta) / (1.0 + 2.0 * beta)
    return 2.0 * (1.0 + beta) / (1.0 - spec.dampening)


def critical_rule(spec: OptimizerSpec) -> str:
    """The critical lr as a formula, for tables and plot labels: ``2/λmax``,
    ``2(1+β)/λmax (β=0.9)``, ...; empty without a theory."""
    if not has_theory(spec):
        return ""
    beta, d, wd = spec.momentum, spec.dampening, spec.weight_decay
    lam = "(λmax+wd)" if wd else "λmax"
    if beta == 0:
        rule = f"2/{lam}"
    elif spec.nesterov:
        rule = f"2(1+β)/((1+2β){lam})"
    elif d:
        rule = f"2(1+β)/((1-d){lam})"
    else:
        rule = f"2(1+β)/{lam}"
    given = [f"β={beta:g}"] * (beta != 0) + [f"d={d:g}"] * (d != 0) + [f"wd={wd:g}"] * (wd != 0)
    return rule + (f" ({', '.join(given)})" if given else "")


def critical_lr(spec: OptimizerSpec, lambda_max: float) -> float:
    """The smallest learning rate at which full-batch runs diverge (NaN without a theory)."""
    return critical_factor(spec) / (lambda_max + spec.weight_decay)


def iteration_matrix(spec: OptimizerSpec, lr: float, lam: float) -> np.ndarray:
    """The 2x2 matrix of one step on ``(e, buf)`` along eigenvalue ``lam`` (plain descent:
    ``[[1 - lr lam, 0], [0, 0]]``)."""
    if not has_theory(spec):
        raise ValueError(f"optimizer {spec.name!r} ({spec.describe()}) has no linear recurrence here")
    beta, d, lam = spec.momentum, spec.dampening, lam + spec.weight_decay
    h = lr * lam
    if beta == 0:
        return np.array([[1.0 - h, 0.0], [0.0, 0.0]])
    if spec.nesterov:
        return np.array([[1.0 - (1.0 + beta) * h, -lr * beta * beta], [lam, beta]])
    return np.array([[1.0 - (1.0 - d) * h, -lr * beta], [(1.0 - d) * lam, beta]])


def spectral_radius(spec: OptimizerSpec, lr: float, eigenvalues: np.ndarray) -> np.ndarray:
    """Per eigenvalue, the factor by which the error shrinks per step, asymptotically
    (NaN without a theory)."""
    lam = np.atleast_1d(np.asarray(eigenvalues, dtype=np.float64))
    if not has_theory(spec):
        return np.full(lam.shape, np.nan)
    return np.array([np.max(np.abs(np.linalg.eigvals(iteration_matrix(spec, lr, float(v))))) for v in lam])


def rate_factor(spec: OptimizerSpec) -> RateFactor | None:
    """The per-eigenvalue contraction of the excess cost per epoch (``rho^2``), or None
    where the theory does not give one (no closed form, or weight decay)."""
    if not has_theory(spec) or spec.weight_decay != 0:
        return None

    def factor(lr: float, eigenvalues: np.ndarray) -> np.ndarray:
        return spectral_radius(spec, lr, eigenvalues) ** 2

    return factor


def run_rate(spec: OptimizerSpec, lr: float, eigenvalues: np.ndarray) -> float:
    """The slowest direction's excess-cost factor per epoch: ``max rho^2`` (NaN without)."""
    factor = rate_factor(spec)
    return math.nan if factor is None else float(np.max(factor(lr, eigenvalues)))


def rate_curve(spec: OptimizerSpec, eigenvalues: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """The predicted rate of a start with error along every direction with ``lambda > 0``
    (``max rho^2`` over them), at each ``lr = ratio x critical_lr``: for the rate plot's
    theory curve (plain descent: a V reaching 1 at ratio 1; heavy ball: flat at ``beta`` over
    the range where the slowest direction's roots are complex). NaN where the theory gives
    no rate (:func:`rate_factor` is None)."""
    ratios = np.asarray(ratios, dtype=np.float64)
    lam = np.asarray(eigenvalues, dtype=np.float64)
    pos = lam[lam > 0]
    factor = rate_factor(spec)
    if factor is None or not pos.size:
        return np.full(ratios.shape, np.nan)
    crit = critical_lr(spec, float(pos.max()))
    return np.array([float(np.max(factor(float(r) * crit, pos))) for r in ratios])


def fastest_lr(spec: OptimizerSpec, lambda_min: float, lambda_max: float) -> float:
    """The learning rate of the fastest worst-case contraction: ``2 / (lambda_min +
    lambda_max + 2 wd)`` for plain descent; NaN for momentum (whose rate is flat, ``sqrt
    beta``, over a whole range of learning rates) and without a theory."""
    if not has_theory(spec) or spec.momentum != 0:
        return math.nan
    lo, hi = lambda_min + spec.weight_decay, lambda_max + spec.weight_decay
    return 1.0 / hi if lo == 0 else 2.0 / (lo + hi)


def stable_range(dataset: str, optimizer: OptimizerSpec, lambda_min: float, lambda_max: float) -> Stability:
    """The stable range of ``optimizer`` on a Hessian with these extreme eigenvalues."""
    return Stability(
        dataset=dataset,
        optimizer=optimizer.name,
        kind=optimizer.kind,
        momentum=optimizer.momentum if optimizer.kind == "sgd" else math.nan,
        nesterov=optimizer.nesterov,
        lambda_max=lambda_max,
        critical_lr=critical_lr(optimizer, lambda_max),
        fastest_lr=fastest_lr(optimizer, lambda_min, lambda_max),
    )


def simulate(spec: OptimizerSpec, lr: float, lam: float, steps: int, e0: float = 1.0) -> np.ndarray:
    """``|e|`` after each of ``steps`` full-batch steps along eigenvalue ``lam`` from error
    ``e0`` (optimum at 0), stepped as torch.optim.SGD steps (buffer = first gradient), in
    float64; inf from the step where ``|e|`` passes 1e150. With weight decay the optimum is
    the regularised one, also at 0."""
    if spec.kind != "sgd":
        raise ValueError(f"optimizer {spec.name!r}: simulate covers torch.optim.SGD only")
    e, buf = float(e0), None
    out = np.full(steps, math.inf)
    for t in range(steps):
        g = lam * e + spec.weight_decay * e
        if spec.momentum != 0:
            buf = g if buf is None else spec.momentum * buf + (1 - spec.dampening) * g
            g = g + spec.momentum * buf if spec.nesterov else buf
        e = e - lr * g
        if not abs(e) < 1e150:  # diverged: the rest is inf (no overflow into NaN)
            break
        out[t] = abs(e)
    return out
