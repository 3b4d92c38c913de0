"""Theory's finite-horizon stability edge: full-batch gradient descent simulated in float64.

The asymptotic bound (``critical_lr``: ``2 / lambda_max`` for plain SGD) says where the error
starts to grow; how far it grows within a run's ``epochs`` is another matter. Just above the
bound it grows by ``|1 - lr lambda_max|`` per epoch, so a finite run only *diverges* (cost
non-finite or above ``diverged_factor`` x its initial cost: :mod:`gdbench.verdicts`) a little
above it. This module computes that finite-horizon edge exactly enough to compare a located
edge with: the recurrence of full-batch SGD, heavy ball or Nesterov as ``torch.optim.SGD``
does them, in float64, with the exact quadratic cost.

The cost of a line is ``C(p) = C* + (p - p*)^T (H / 2) (p - p*)`` for ``p = (W, b)``, the
Hessian ``H`` (:func:`gdbench.theory.hessian`), a least-squares solution ``p*`` and its cost
``C*`` (computed from the data in float64); the gradient is ``H (p - p*)``. In the eigenbasis
of ``H`` the directions decouple, so each epoch updates two independent coordinates ``u``
(error along an eigenvector, eigenvalue ``lam``) as torch's SGD does::

    g   = (lam + wd) u + wd q                        (q: p* in the eigenbasis; wd: weight decay)
    buf = g at the first step, else momentum buf + (1 - dampening) g
    u  -= lr (g + momentum buf  if nesterov  else  buf)      (plain SGD: u -= lr g)

and epoch ``k``'s cost is that of the parameters before its update (the lesson's convention),
for ``k = 0 .. epochs``. A run diverges at the first epoch whose cost is not ``<=`` the
threshold ``diverged_factor x C_0`` (``x 1`` when ``C_0 = 0``), as in the engines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from gdbench.data import Dataset
from gdbench.search import bracket
from gdbench.theory import eigen, optimum


@dataclass(frozen=True)
class HorizonProblem:
    """One full-batch problem: the data, the initial point, the optimizer's constants and the
    horizon; :func:`diverges` evaluates it at many learning rates at once."""

    x: np.ndarray
    y: np.ndarray
    W0: float
    b0: float
    epochs: int
    diverged_factor: float
    momentum: float
    dampening: float
    nesterov: bool
    weight_decay: float


@dataclass(frozen=True)
class Modes:
    """A problem in the eigenbasis of its Hessian: per direction ``lam``, ``u0``, ``q``."""

    lam: np.ndarray  # [2]
    u0: np.ndarray  # [2] initial error p0 - p*
    q: np.ndarray  # [2] p* (for weight decay)
    c_star: float


def modes_of_problem(problem: HorizonProblem) -> Modes:
    """The problem in the Hessian's eigen-directions, from the theory's optimum and eigenpairs
    (so the recurrence and the summary's theory agree, singular designs included)."""
    x = np.asarray(problem.x, dtype=np.float64)
    y = np.asarray(problem.y, dtype=np.float64)
    return _modes_of(x.tobytes(), y.tobytes(), float(problem.W0), float(problem.b0))


@lru_cache(maxsize=8192)
def _modes_of(x_bytes: bytes, y_bytes: bytes, W0: float, b0: float) -> Modes:
    """:func:`modes_of_problem` of one data set and start, computed once (a grid's runs share them: every
    learning rate and seed of a data set from the same start)."""
    x, y = np.frombuffer(x_bytes), np.frombuffer(y_bytes)
    best = optimum(Dataset("", x, y))
    p_star = np.array([best.W_star, best.b_star])
    lam, Q = eigen(x)
    p0 = np.array([W0, b0], dtype=np.float64)
    return Modes(lam=lam, u0=Q.T @ (p0 - p_star), q=Q.T @ p_star, c_star=best.optimal_cost)


def _maps(
    lam: np.ndarray,
    wd: np.ndarray,
    wd_q: np.ndarray,
    lr: np.ndarray,
    beta: np.ndarray,
    keep: np.ndarray,
    nesterov: np.ndarray,
    plain: np.ndarray,
) -> np.ndarray:
    """Per row and direction, the affine map of one epoch after the first on the state
    ``(u, buf, 1)``, as ``[rows, 2, 3, 3]`` matrices. With ``g = a u + c`` (``a = lam + wd``,
    ``c = wd q``) and ``buf' = beta buf + keep g``:

    * plain SGD: ``u' = u - lr g`` (no buffer);
    * heavy ball: ``u' = u - lr buf'``;
    * Nesterov: ``u' = u - lr (g + beta buf')``.
    """
    a = lam + wd[:, None]
    c = wd_q
    lr_, beta_, keep_ = lr[:, None], beta[:, None], keep[:, None]
    M = np.zeros((*a.shape, 3, 3))
    M[..., 1, 0] = keep_ * a
    M[..., 1, 1] = beta_
    M[..., 1, 2] = keep_ * c
    M[..., 2, 2] = 1.0
    heavy = (1 - lr_ * keep_ * a, -lr_ * beta_ + 0 * a, -lr_ * keep_ * c)
    nest = (1 - lr_ * a * (1 + beta_ * keep_), -lr_ * beta_ * beta_ + 0 * a, -lr_ * c * (1 + beta_ * keep_))
    simple = (1 - lr_ * a, 0 * a, -lr_ * c)
    for col in range(3):
        M[..., 0, col] = np.where(plain[:, None], simple[col], np.where(nesterov[:, None], nest[col], heavy[col]))
    return M


def _is_plain(problem: HorizonProblem) -> bool:
    return problem.momentum == 0 and problem.weight_decay == 0


def diverges(
    problems: list[HorizonProblem], lrs: np.ndarray, chunk: int = 32, modes: Sequence[Modes] | None = None
) -> np.ndarray:
    """Whether each problem diverges within its epochs at each learning rate.

    ``lrs`` is ``[len(problems), L]``; returns a bool array of the same shape. Plain SGD
    without weight decay in closed form (:func:`_plain_diverges`); the others as one
    vectorised float64 recurrence: the first epoch as torch does it (the momentum buffer
    starts as the first gradient), every later one as an affine map ``M`` on ``(u, buf, 1)``,
    applied ``chunk`` epochs at a time through the powers ``M^0 .. M^(chunk-1)``. ``modes``:
    the problems' :func:`modes_of_problem`, where the caller has them already.
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    P, L = lrs.shape
    if len(problems) != P:
        raise ValueError(f"diverges: {len(problems)} problems but {P} rows of learning rates")
    modes = [modes_of_problem(p) for p in problems] if modes is None else list(modes)
    plain = np.array([_is_plain(p) for p in problems], dtype=bool)
    out = np.empty((P, L), dtype=bool)
    for mask, solve in ((plain, _plain_diverges), (~plain, _recurrence_diverges)):
        if mask.any():
            rows = np.flatnonzero(mask)
            out[rows] = solve([problems[i] for i in rows], lrs[rows], [modes[i] for i in rows], chunk)
    return out


def _plain_diverges(problems: list[HorizonProblem], lrs: np.ndarray, modes: list[Modes], chunk: int = 0) -> np.ndarray:
    """:func:`diverges` for plain SGD without weight decay, in closed form: along each
    direction ``u_k = (1 - lr lam)^k u_0``, so the cost ``C* + sum lam u_0^2 r^k / 2`` with
    ``r = (1 - lr lam)^2 >= 0`` is a sum of geometric terms, convex in ``k``: its largest
    value over epochs ``1..epochs`` is at the first or the last, and the run diverges iff the
    cost at epoch 0, 1 or ``epochs`` is not ``<=`` the threshold. (The same verdicts as the
    recurrence, but for learning rates within float64 rounding, ~1e-13 relative, of an edge.)"""
    lam = np.stack([m.lam for m in modes])[:, None, :]  # [P, 1, 2]
    u0 = np.stack([m.u0 for m in modes])[:, None, :]
    c_star = np.array([m.c_star for m in modes])[:, None]
    factor = np.array([float(p.diverged_factor) for p in problems])[:, None]
    epochs = np.array([int(p.epochs) for p in problems])[:, None, None]
    with np.errstate(all="ignore"):
        cost0 = c_star + 0.5 * (lam * u0 * u0).sum(axis=2)  # [P, 1]
        threshold = np.where(cost0 > 0, cost0, 1.0) * factor
        r = (1.0 - lrs[:, :, None] * lam) ** 2  # [P, L, 2]
        weight = np.where(u0 == 0, 0.0, 0.5 * lam * u0 * u0)  # a direction without error stays without
        out = ~(cost0 <= threshold)
        for k in (np.ones_like(epochs), epochs):
            grown = np.where(weight == 0, 0.0, weight * r ** np.where(epochs > 0, k, 0))
            cost = c_star + grown.sum(axis=2)
            out = out | (~(cost <= threshold) & (epochs[:, :, 0] > 0))
    return out


def _recurrence_diverges(problems: list[HorizonProblem], lrs: np.ndarray, modes: list[Modes], chunk: int) -> np.ndarray:
    """:func:`diverges` by the float64 recurrence (any optimizer of the SGD family)."""
    P, L = lrs.shape

    def per_row(values: Sequence[float | bool]) -> np.ndarray:  # [P] -> [P*L]
        return np.repeat(np.asarray(values), L)

    def per_dir(values: list[np.ndarray]) -> np.ndarray:  # [P][2] -> [P*L, 2]
        return np.repeat(np.stack(values), L, axis=0)

    lam = per_dir([m.lam for m in modes])
    wd = per_row([float(p.weight_decay) for p in problems])
    wd_q = wd[:, None] * per_dir([m.q for m in modes])
    beta = per_row([float(p.momentum) for p in problems])
    nesterov = per_row([bool(p.nesterov) for p in problems])
    plain = per_row([p.momentum == 0 for p in problems])
    c_star = per_row([m.c_star for m in modes])
    ends = per_row([int(p.epochs) for p in problems])
    lr = lrs.reshape(-1)
    u0 = per_dir([m.u0 for m in modes])
    keep = 1.0 - per_row([float(p.dampening) for p in problems])
    with np.errstate(all="ignore"):
        cost0 = c_star + 0.5 * (lam * u0 * u0).sum(axis=1)
        threshold = np.where(cost0 > 0, cost0, 1.0) * per_row([float(p.diverged_factor) for p in problems])
        out = ~(cost0 <= threshold)
        # Epoch 0's update: the buffer starts as the first gradient (no dampening).
        g0 = (lam + wd[:, None]) * u0 + wd_q
        buf = g0
        step = np.where(plain[:, None], g0, np.where(nesterov[:, None], g0 + beta[:, None] * buf, buf))
        state = np.stack([u0 - lr[:, None] * step, buf, np.ones_like(u0)], axis=-1)  # [rows, 2, 3]
        M = _maps(lam, wd, wd_q, lr, beta, keep, nesterov, plain)
        powers = np.empty((chunk, *M.shape))
        powers[0] = np.eye(3)
        for j in range(1, chunk):
            powers[j] = powers[j - 1] @ M
        M_chunk = powers[-1] @ M
        half_lam = 0.5 * lam
        epoch = np.arange(chunk)[:, None]
        for k0 in range(1, int(ends.max()) + 1, chunk):
            u = np.einsum("krdij,rdj->krd", powers[:, :, :, 0:1, :], state)  # u at epochs k0 ..
            cost = c_star + (half_lam * u * u).sum(axis=2)
            counted = (k0 + epoch) <= ends
            out |= (~(cost <= threshold) & counted).any(axis=0)
            state = np.einsum("rdij,rdj->rdi", M_chunk, state)
            if out.all():
                break
    return out.reshape(P, L)


def horizon_edges(
    problems: list[HorizonProblem], lr_min: float, lr_max: float, rel_width: float = 1.0e-10, per_round: int = 128
) -> np.ndarray:
    """Per problem, the smallest learning rate in ``[lr_min, lr_max]`` at which it diverges
    within its epochs, to ``rel_width`` (the geometric middle of the final bracket). NaN where
    it does not diverge up to ``lr_max`` or diverges already at ``lr_min``. Located by the same
    search as the engines' edge (:func:`gdbench.search.bracket`), all problems at once."""
    if not problems:
        return np.zeros(0)
    modes = [modes_of_problem(p) for p in problems]  # once, not in every round

    def verdicts(owner: np.ndarray, lrs: np.ndarray) -> np.ndarray:
        # The probes come as contiguous equal-sized combs per problem (the sizes are equal).
        rows, counts = np.unique(owner, return_counts=True)
        grid = lrs.reshape(rows.size, -1) if (counts == counts[0]).all() else None
        if grid is None:
            return np.concatenate(
                [diverges([problems[r]], lrs[owner == r][None, :], modes=[modes[r]])[0] for r in rows]
            )
        return diverges([problems[r] for r in rows], grid, modes=[modes[r] for r in rows]).reshape(-1)

    lo, hi = bracket(verdicts, len(problems), lr_min, lr_max, rel_width, per_round)
    return np.sqrt(lo * hi)
