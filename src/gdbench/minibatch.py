"""Theory of minibatch SGD: a mean-square stability bound, and the float64 horizon edge of the
shuffled recurrence a run actually follows.

**How the engines sample.** Each epoch a run draws a permutation of its ``n`` points (from its
seed: :func:`gdbench.engines.run_setup.shuffle_generator`) and steps on its consecutive slices of
``B`` points (the last one holds ``n mod B`` points when ``B`` does not divide ``n``); each step's
gradient is the mean over its slice, ``g_S(p) = (2/m) sum_{i in S} a_i (a_i . p - y_i)`` with
``a_i = (x_i, 1)`` and ``m = |S|``.

**The mean-square bound** (:func:`ms_critical_lr`), a *bound of a model*, not of that sampling:
it takes every step's batch to be a uniformly random ``B``-subset of the points, drawn
independently of the other steps (within an epoch the engines' batches are disjoint, so they
are not independent; the last batch's smaller size is ignored). With ``e = p - p*`` (``p*``
the optimum, regularised with weight decay ``wd``) one step is
``e' = (I - lr (H_S + wd I)) e - lr n_S`` with ``H_S = (2/m) sum_S a_i a_i^T`` and a noise
``n_S`` of mean zero. The error's second moment ``M = E[e e^T]`` then obeys an affine recursion
whose linear part is ``M -> E[A_S M A_S]``, ``A_S = I - lr (H_S + wd I)``; on ``vec M``

    T(lr) = I(x)I - lr (H'(x)I + I(x)H') + lr^2 (H'(x)H' + c_B Sigma_h),   H' = H + wd I,

with ``c_B = (n - B) / (B (n - 1))`` (the variance factor of a mean of ``B`` of ``n`` values
drawn without replacement) and ``Sigma_h`` the covariance of the per-point Hessians
``h_i = 2 a_i a_i^T``, ``Sigma_h[(ij),(kl)] = mean_i (h_i - H)[i,k] (h_i - H)[j,l]``. The second
moment stays bounded iff the spectral radius ``rho(T(lr)) < 1``; ``ms_critical_lr`` is the
smallest ``lr > 0`` where it reaches 1. ``T`` maps positive semi-definite matrices to positive
semi-definite ones, so ``rho(T)`` is itself an eigenvalue (Perron-Frobenius for cones) with a
symmetric eigenvector: the crossing is ``det(T(lr) - I) = lr^3 det(lr Q - L) = 0`` on the
3-dimensional space of symmetric ``M`` (``L``, ``Q`` the terms of ``lr`` and ``lr^2``), so
``ms_critical_lr = 1 / mu_max`` with ``mu_max`` the largest real eigenvalue of ``L^-1 Q``: exact,
no search. At ``B = n`` (``c_B = 0``) it is the full-batch ``2 / (lambda_max + wd)``; below,
smaller. It says where the *mean* square error starts to grow; a single run's error grows at
its Lyapunov rate, which is at most half the log of ``rho(T)`` per step (Jensen), so a run
need not diverge just above it, and with a finite horizon even less so: the located edge is
expected at or above the bound, not at it. Plain SGD (with or without weight decay) only:
momentum makes the map 16-dimensional on (error, buffer) with a root at ``lr = 0``, not
derived here (NaN).

**The shuffled horizon edge** (:func:`shuffled_edges`): the recurrence a run follows, replayed
exactly in float64 on its own permutations (``orders``, one row per epoch, the integers the
engines' generator draws: the caller draws them, this module imports no torch), for any
optimizer of the SGD family as torch.optim.SGD steps it (weight decay, momentum buffer that
starts as the first gradient, dampening, Nesterov). A probe diverges at the first epoch
``k = 0 .. epochs`` whose full-data cost (before that epoch's update; ``C* + e^T H e / 2``) is
not ``<=`` ``diverged_factor x C_0``, as in the engines. Divergence need not be monotone in
``lr`` here, so the edge is the *first divergence* that the same comb search as the located
edge sees (:func:`gdbench.search.bracket`): no probe below it diverged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gdbench.data import Dataset
from gdbench.horizon import HorizonProblem
from gdbench.search import bracket
from gdbench.theory import hessian, optimum, singular

#: Orthonormal basis of the symmetric 2x2 matrices, as columns of vec (row-major) [4, 3].
_SYM = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0 / math.sqrt(2.0)], [0.0, 0.0, 1.0 / math.sqrt(2.0)], [0.0, 1.0, 0.0]])
#: An eigenvalue of ``L^-1 Q`` counts as real when its imaginary part is below this fraction.
_REAL_TOL = 1.0e-9


def batch_factor(n: int, batch_size: int | None) -> float:
    """``c_B = (n - B) / (B (n - 1))``: the variance of a mean of ``B`` of ``n`` values drawn
    without replacement, per unit of the values' (population) variance; 0 at ``B >= n``."""
    if batch_size is None or batch_size >= n or n < 2:
        return 0.0
    return (n - batch_size) / (batch_size * (n - 1.0))


def hessian_covariance(x: np.ndarray) -> np.ndarray:
    """``Sigma_h`` ``[4, 4]``: the covariance of the per-point Hessians ``h_i = 2 a_i a_i^T``,
    ``[(ij), (kl)] = mean_i (h_i - H)[i, k] (h_i - H)[j, l]`` (row-major pairs, as ``np.kron``)."""
    x = np.asarray(x, dtype=np.float64)
    a = np.stack([x, np.ones_like(x)], axis=1)
    d = 2.0 * np.einsum("mi,mj->mij", a, a) - hessian(x)
    return np.einsum("mik,mjl->ijkl", d, d).reshape(4, 4) / x.size


def map_terms(x: np.ndarray, batch_size: int | None, weight_decay: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(L, Q)`` ``[4, 4]`` of the second-moment map ``T(lr) = I - lr L + lr^2 Q`` (module
    docstring), for plain SGD with ``weight_decay``."""
    x = np.asarray(x, dtype=np.float64)
    h = hessian(x) + weight_decay * np.eye(2)
    eye = np.eye(2)
    L = np.kron(h, eye) + np.kron(eye, h)
    Q = np.kron(h, h) + batch_factor(x.size, batch_size) * hessian_covariance(x)
    return L, Q


def second_moment_map(x: np.ndarray, lr: float, batch_size: int | None, weight_decay: float = 0.0) -> np.ndarray:
    """``T(lr)`` ``[4, 4]``: ``vec E[e' e'^T]`` from ``vec E[e e^T]`` (linear part) in the
    model of independent uniformly random ``B``-subsets."""
    L, Q = map_terms(x, batch_size, weight_decay)
    return np.eye(4) - lr * L + lr * lr * Q


def ms_critical_lr(x: np.ndarray, batch_size: int | None, weight_decay: float = 0.0) -> float:
    """The smallest ``lr > 0`` at which the mean-square map's spectral radius reaches 1 (plain
    SGD, the model of the module docstring): ``1 / mu_max`` over the symmetric matrices. When
    all x are equal every point has the same Hessian (``Sigma_h = 0``): the full-batch
    ``2 / (lambda_max + wd)`` along the only direction that moves."""
    x = np.asarray(x, dtype=np.float64)
    if singular(x):
        return 2.0 / (2.0 * (float(x[0]) ** 2 + 1.0) + weight_decay)
    L, Q = map_terms(x, batch_size, weight_decay)
    Ls, Qs = _SYM.T @ L @ _SYM, _SYM.T @ Q @ _SYM
    mu = np.linalg.eigvals(np.linalg.solve(Ls, Qs))
    real = mu.real[(np.abs(mu.imag) <= _REAL_TOL * np.abs(mu)) & (mu.real > 0)]
    return 1.0 / float(real.max()) if real.size else math.nan


def ms_bound(kind: str, momentum: float, weight_decay: float, x: np.ndarray, batch_size: int | None) -> float:
    """:func:`ms_critical_lr` of a minibatch run of an optimizer (``kind``, ``momentum``,
    ``weight_decay``: its settings); NaN for full-batch runs (``batch_size`` None or at least
    the number of points: their ``critical_lr`` is exact) and where it does not apply."""
    n = np.asarray(x).size
    if batch_size is None or batch_size >= n or not applies(kind, momentum):
        return math.nan
    return ms_critical_lr(x, batch_size, weight_decay)


@dataclass(frozen=True)
class ShuffledProblem(HorizonProblem):
    """One minibatch run as its float64 recurrence: a full-batch problem's points, start,
    horizon, divergence threshold and optimizer constants (torch.optim.SGD's), and the
    permutation of each epoch (``orders`` ``[>= epochs, n]`` integers) and the batch size."""

    orders: np.ndarray
    batch_size: int


@dataclass(frozen=True)
class _Sums:
    """Per epoch and batch the sums a step's gradient needs: ``[epochs, batches]`` each."""

    sx: np.ndarray
    sxx: np.ndarray
    sy: np.ndarray
    sxy: np.ndarray
    m: np.ndarray  # [batches] points per batch


def _sums(problem: ShuffledProblem) -> _Sums:
    x = np.asarray(problem.x, dtype=np.float64)
    y = np.asarray(problem.y, dtype=np.float64)
    orders = np.asarray(problem.orders)[: problem.epochs]
    if orders.shape != (problem.epochs, x.size):
        raise ValueError(f"shuffled problem: orders {orders.shape}, need ({problem.epochs}, {x.size})")
    starts = np.arange(0, x.size, problem.batch_size)
    xs, ys = x[orders], y[orders]

    def add(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, starts, axis=1) if values.size else values

    m = np.diff(np.append(starts, x.size)).astype(np.float64)
    return _Sums(add(xs), add(xs * xs), add(ys), add(xs * ys), m)


def shuffled_diverges(problems: Sequence[ShuffledProblem], lrs: np.ndarray) -> np.ndarray:
    """Whether each problem diverges within its epochs at each learning rate (``lrs``
    ``[len(problems), L]``; a bool array of that shape), by the float64 recurrence."""
    lrs = np.asarray(lrs, dtype=np.float64)
    out = np.empty(lrs.shape, dtype=bool)
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, p in enumerate(problems):
        groups.setdefault((np.asarray(p.x).size, int(p.batch_size), int(p.epochs)), []).append(i)
    for rows in groups.values():
        out[rows] = _group_diverges([problems[i] for i in rows], lrs[rows])
    return out


def _column(values: Sequence[float | bool]) -> np.ndarray:
    """Per-problem values as a ``[P, 1]`` column (broadcast along the probes)."""
    return np.asarray(values, dtype=np.float64)[:, None]


def _cost_function(problems: list[ShuffledProblem]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The full-data cost ``C* + e^T H e / 2`` of each problem at ``(W, b)`` ``[P, L]``."""
    best = [optimum(Dataset("", np.asarray(p.x, np.float64), np.asarray(p.y, np.float64))) for p in problems]
    hs = np.stack([hessian(p.x) for p in problems])
    w_star, b_star = _column([o.W_star for o in best]), _column([o.b_star for o in best])
    c_star = _column([o.optimal_cost for o in best])
    hww, hwb, hbb = hs[:, 0, 0][:, None], hs[:, 0, 1][:, None], hs[:, 1, 1][:, None]

    def cost(W: np.ndarray, b: np.ndarray) -> np.ndarray:
        dw, db = W - w_star, b - b_star
        return c_star + 0.5 * (hww * dw * dw + 2.0 * hwb * dw * db + hbb * db * db)

    return cost


def _group_diverges(problems: list[ShuffledProblem], lr: np.ndarray) -> np.ndarray:
    """:func:`shuffled_diverges` for problems of one size, batch size and horizon, stepped
    together (every probe of every problem in one array per operation), as torch.optim.SGD
    steps: gradient, plus ``wd p``; the buffer a copy of the first gradient, then
    ``beta buf + (1 - d) g``; the step ``buf`` (heavy ball) or ``g + beta buf`` (Nesterov)."""
    sums = [_sums(p) for p in problems]
    sx, sxx, sy, sxy = (np.stack([getattr(s, f) for s in sums], axis=1)[..., None] for f in ("sx", "sxx", "sy", "sxy"))
    m = sums[0].m
    beta, keep = _column([p.momentum for p in problems]), _column([1.0 - p.dampening for p in problems])
    wd, nesterov = _column([p.weight_decay for p in problems]), _column([p.nesterov for p in problems]) != 0
    W = np.broadcast_to(_column([p.W0 for p in problems]), lr.shape).copy()
    b = np.broadcast_to(_column([p.b0 for p in problems]), lr.shape).copy()
    cost = _cost_function(problems)
    momentum = bool((beta != 0).any())
    buf_w, buf_b = np.zeros_like(W), np.zeros_like(b)
    epochs = problems[0].epochs
    out = np.zeros(lr.shape, dtype=bool)
    with np.errstate(all="ignore"):
        c0 = cost(W, b)
        threshold = np.where(c0 > 0, c0, 1.0) * _column([p.diverged_factor for p in problems])
        for k in range(epochs + 1):
            out |= ~(cost(W, b) <= threshold)
            if k == epochs or out.all():
                break
            for j in range(m.size):
                gw = (2.0 / m[j]) * (sxx[k, :, j] * W + sx[k, :, j] * b - sxy[k, :, j]) + wd * W
                gb = (2.0 / m[j]) * (sx[k, :, j] * W + m[j] * b - sy[k, :, j]) + wd * b
                if momentum:
                    first = k == 0 and j == 0
                    buf_w = gw.copy() if first else beta * buf_w + keep * gw
                    buf_b = gb.copy() if first else beta * buf_b + keep * gb
                    gw = np.where(beta != 0, np.where(nesterov, gw + beta * buf_w, buf_w), gw)
                    gb = np.where(beta != 0, np.where(nesterov, gb + beta * buf_b, buf_b), gb)
                W = W - lr * gw
                b = b - lr * gb
    return out


def shuffled_edges(
    problems: Sequence[ShuffledProblem],
    lr_min: float,
    lr_max: float,
    rel_width: float = 1.0e-10,
    per_round: int = 64,
) -> np.ndarray:
    """Per problem, the smallest learning rate in ``[lr_min, lr_max]`` at which its shuffled
    float64 recurrence diverges within its epochs, as the comb search finds it (the first
    divergence its probes see; the geometric middle of the final bracket, ``rel_width``
    wide). NaN where it does not diverge up to ``lr_max`` or diverges already at ``lr_min``."""
    if not problems:
        return np.zeros(0)

    def verdicts(owner: np.ndarray, lrs: np.ndarray) -> np.ndarray:
        out = np.empty(owner.size, dtype=bool)
        rows, counts = np.unique(owner, return_counts=True)
        for size in np.unique(counts):  # probes of equal count per problem go in one array
            same = rows[counts == size]
            picks = [np.flatnonzero(owner == r) for r in same]
            grid = np.stack([lrs[p] for p in picks])
            answer = shuffled_diverges([problems[r] for r in same], grid)
            for p, a in zip(picks, answer, strict=True):
                out[p] = a
        return out

    lo, hi = bracket(verdicts, len(problems), lr_min, lr_max, rel_width, per_round)
    return np.sqrt(lo * hi)


def applies(kind: str, momentum: float) -> bool:
    """Whether :func:`ms_critical_lr` covers an optimizer: plain SGD (weight decay allowed)."""
    return kind == "sgd" and momentum == 0
