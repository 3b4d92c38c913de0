"""Theory of full-batch gradient descent on the MSE cost of a line: curvature, the optimum,
and the rate at which the excess cost shrinks.

The cost ``C(W, b) = mean((W x + b - y)^2)`` is quadratic with Hessian
``H = (2/n) * sum_i [[x_i^2, x_i], [x_i, 1]]`` (the same at every point; it depends on x
only, never on the seed). Full-batch gradient descent with a constant learning rate converges
iff ``0 < lr < 2 / lambda_max(H)`` (the critical learning rate) and contracts fastest at
``lr = 2 / (lambda_max + lambda_min)``. When all x are equal (one point, say) H is singular:
``lambda_min`` is exactly 0, only the direction of ``lambda_max`` moves the cost, and the
fastest step is ``1 / lambda_max`` (it removes that direction's error in one step). These
bounds are for full-batch gradient descent only: minibatch SGD adds noise and its stable
range differs.

**The optimum** (:func:`optimum`, float64): the least-squares line ``W*``, ``b*`` from the
centred normal equations, ``W* = Sxy / Sxx`` and ``b* = mean(y) - W* mean(x)`` with
``Sxx = sum((x - mean x)^2)``, ``Sxy = sum((x - mean x)(y - mean y))``; when all x are equal
(``Sxx`` has no meaning) the minimum-norm solution ``(W*, b*) = mean(y) / (x0^2 + 1) * (x0, 1)``.
``optimal_cost = mean((W* x + b* - y)^2)``.

**The regularised optimum** (``weight_decay`` ``wd > 0``: torch adds ``wd p`` to the
gradient, so a run converges to the minimum of ``C(p) + (wd/2) |p|^2``): the solution of
``(H + wd I) p = (2/n) sum_i (x_i, 1) y_i``, by Cramer's rule on the 2x2 system (``H + wd I``
is positive definite), and ``optimal_cost`` is the MSE there (above the least-squares cost).

**Rounded points** (``dtype``): a float32 run trains on its points rounded to float32, so its
optimum is that of the rounded points (computed in float64 from them).

**The rate.** With ``e = (W - W*, b - b*)`` and eigenpairs ``(lambda_i, v_i)`` of H, the
excess cost is ``C - C* = (1/2) sum_i lambda_i (v_i . e)^2`` and one gradient step multiplies
``v_i . e`` by ``(1 - lr lambda_i)``. So the excess of a run that starts from error ``e0``
contracts per epoch, asymptotically, by the largest per-direction factor
``(1 - lr lambda_i)^2`` over the directions that carry excess cost: ``lambda_i > 0`` and a
component ``|v_i . e0| > COMPONENT_TOL * |e0|`` (:func:`predicted_rate`). A rate above 1 is
growth (divergence); exactly 1 (``lr = critical_lr`` when the steepest direction is present)
neither converges nor diverges: that direction's error flips sign each epoch at constant size.
The per-eigenvalue factor is a pluggable function (``factor``): other optimizers (momentum,
Nesterov, ...) bring their own ``factor(lr, eigenvalues) -> per-direction contraction of the
excess per epoch``; :func:`sgd_factor` is plain gradient descent's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gdbench.data import Dataset

#: A direction counts for the predicted rate when the initial error's component along it
#: exceeds this fraction of the error's length (smaller is rounding of a zero component).
COMPONENT_TOL = 1.0e-9

#: The optimizer's per-eigenvalue piece: ``(lr, eigenvalues [k]) -> [k]`` factors by which
#: the excess cost along each eigen-direction shrinks per epoch.
RateFactor = Callable[[float, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Theory:
    """Curvature of one dataset's cost and the learning rates it implies.

    ``eigenvectors``: unit vectors in (W, b) coordinates, in the order of
    ``(lambda_min, lambda_max)``; not a column of the theory table."""

    dataset: str
    n: int
    lambda_min: float
    lambda_max: float
    critical_lr: float
    fastest_lr: float
    eigenvectors: tuple[tuple[float, float], tuple[float, float]] = field(default=((1.0, 0.0), (0.0, 1.0)), repr=False)

    def to_dict(self) -> dict[str, float | int | str]:
        return {k: getattr(self, k) for k in ("dataset", "n", "lambda_min", "lambda_max", "critical_lr", "fastest_lr")}

    def predicted_rates(
        self, lrs: np.ndarray, initial_errors: np.ndarray, factor: RateFactor | None = None
    ) -> np.ndarray:
        """:func:`predicted_rates` for this dataset's Hessian."""
        lam = np.array([self.lambda_min, self.lambda_max])
        return predicted_rates(lrs, lam, np.array(self.eigenvectors).T, initial_errors, factor or sgd_factor)


@dataclass(frozen=True)
class Optimum:
    """The least-squares line of one dataset (of one seed, where the points depend on it):
    ``seed`` is None when they do not."""

    dataset: str
    seed: int | None
    W_star: float
    b_star: float
    optimal_cost: float

    def to_dict(self) -> dict[str, float | int | str | None]:
        return {"seed": self.seed, "W_star": self.W_star, "b_star": self.b_star, "optimal_cost": self.optimal_cost}


def hessian(x: np.ndarray) -> np.ndarray:
    """The 2x2 Hessian of the MSE cost in (W, b)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    return (2.0 / n) * np.array([[np.sum(x * x), np.sum(x)], [np.sum(x), float(n)]])


def singular(x: np.ndarray) -> bool:
    """Whether the Hessian is singular: all x equal (one point included)."""
    x = np.asarray(x, dtype=np.float64)
    return bool(np.all(x == x[0]))


def eigen(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending, ``[2]``) and unit eigenvectors (columns, ``[2, 2]``) of the
    Hessian; for a singular one ``lambda_min`` is exactly 0 and its eigenvector spans
    ``(1, -x0)`` (the direction along which the cost does not change)."""
    x = np.asarray(x, dtype=np.float64)
    if singular(x):
        x0 = float(x[0])
        norm = np.hypot(x0, 1.0)
        vecs = np.array([[1.0, x0], [-x0, 1.0]]) / norm  # columns: (1, -x0), (x0, 1)
        return np.array([0.0, 2.0 * (x0 * x0 + 1.0)]), vecs
    lam, vecs = np.linalg.eigh(hessian(x))
    return lam, vecs


def analyse(dataset: Dataset) -> Theory:
    """Eigenvalues of the Hessian, the critical and the fastest learning rate."""
    lam, vecs = eigen(dataset.x)
    lam_min, lam_max = float(lam[0]), float(lam[-1])
    return Theory(
        dataset=dataset.name,
        n=dataset.n,
        lambda_min=lam_min,
        lambda_max=lam_max,
        critical_lr=2.0 / lam_max,
        fastest_lr=1.0 / lam_max if lam_min == 0.0 else 2.0 / (lam_max + lam_min),
        eigenvectors=(
            (float(vecs[0, 0]), float(vecs[1, 0])),
            (float(vecs[0, 1]), float(vecs[1, 1])),
        ),
    )


def optimum(dataset: Dataset, seed: int | None = None, weight_decay: float = 0.0, dtype: str = "float64") -> Optimum:
    """The least-squares line (minimum norm when all x are equal) and its cost, in float64;
    with ``weight_decay`` the regularised optimum; of the points rounded to ``dtype``."""
    x = np.asarray(dataset.x, dtype=dtype).astype(np.float64)
    y = np.asarray(dataset.y, dtype=dtype).astype(np.float64)
    if weight_decay > 0:
        W, b = _regularised(x, y, float(weight_decay))
        cost = float(np.mean((W * x + b - y) ** 2))
        return Optimum(dataset.name, seed, W, b, cost)
    y_mean = float(np.mean(y))
    if singular(x):
        x0 = float(x[0])
        scale = y_mean / (x0 * x0 + 1.0)
        W, b = scale * x0, scale
    else:
        dx = x - np.mean(x)
        W = float(np.sum(dx * (y - y_mean)) / np.sum(dx * dx))
        b = y_mean - W * float(np.mean(x))
    cost = float(np.mean((W * x + b - y) ** 2))
    return Optimum(dataset.name, seed, float(W), float(b), cost)


def _regularised(x: np.ndarray, y: np.ndarray, wd: float) -> tuple[float, float]:
    """``(W, b)`` solving ``(H + wd I) p = (2/n) sum (x_i, 1) y_i`` (Cramer's rule)."""
    n = x.size
    a, c, d = 2.0 * np.sum(x * x) / n + wd, 2.0 * np.sum(x) / n, 2.0 + wd
    r_w, r_b = 2.0 * np.sum(x * y) / n, 2.0 * np.sum(y) / n
    det = a * d - c * c
    return float((d * r_w - c * r_b) / det), float((a * r_b - c * r_w) / det)


def sgd_factor(lr: float, eigenvalues: np.ndarray) -> np.ndarray:
    """Plain gradient descent: the excess along eigenvalue ``lambda`` shrinks by
    ``(1 - lr lambda)^2`` per epoch."""
    return (1.0 - lr * np.asarray(eigenvalues, dtype=np.float64)) ** 2


def predicted_rate(
    lr: float,
    eigenvalues: np.ndarray,
    eigvecs: np.ndarray,
    initial_error: tuple[float, float] | np.ndarray,
    factor: RateFactor = sgd_factor,
) -> float:
    """Asymptotic contraction factor per epoch of the excess cost of full-batch descent.

    ``eigenvalues`` ``[k]`` and ``eigvecs`` (columns, ``[2, k]``) of the Hessian,
    ``initial_error`` = ``(W0 - W*, b0 - b*)``. The max of ``factor(lr, eigenvalues)`` over
    the directions with ``lambda > 0`` whose component ``|v . e0|`` exceeds
    ``COMPONENT_TOL * |e0|``; NaN when there is none (the run starts at an optimum).
    """
    e0 = np.asarray(initial_error, dtype=np.float64)[None, :]
    return float(predicted_rates(np.array([lr], dtype=np.float64), eigenvalues, eigvecs, e0, factor)[0])


def predicted_rates(
    lrs: np.ndarray,
    eigenvalues: np.ndarray,
    eigvecs: np.ndarray,
    initial_errors: np.ndarray,
    factor: RateFactor = sgd_factor,
) -> np.ndarray:
    """:func:`predicted_rate` of G runs on one Hessian: ``lrs`` ``[G]``, ``initial_errors``
    ``[G, 2]``; ``factor`` evaluated once per distinct learning rate."""
    e0 = np.asarray(initial_errors, dtype=np.float64).reshape(-1, 2)
    lam = np.asarray(eigenvalues, dtype=np.float64)
    comp = np.abs(e0 @ np.asarray(eigvecs, dtype=np.float64))  # [G, k]
    counts = (lam > 0) & (comp > COMPONENT_TOL * np.sqrt(np.sum(e0 * e0, axis=1))[:, None])
    distinct, which = np.unique(np.asarray(lrs, dtype=np.float64), return_inverse=True)
    factors = np.array([np.asarray(factor(float(lr), lam), dtype=np.float64) for lr in distinct]).reshape(-1, lam.size)
    with np.errstate(invalid="ignore"):
        best = np.max(np.where(counts, factors[which.ravel()], -np.inf), axis=1, initial=-np.inf)
    return np.where(counts.any(axis=1), best, np.nan)
