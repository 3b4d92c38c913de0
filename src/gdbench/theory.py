"""Theory of full-batch gradient descent on the MSE cost of a line.

The cost ``C(W, b) = mean((W x + b - y)^2)`` is quadratic with Hessian
``H = (2/n) * sum_i [[x_i^2, x_i], [x_i, 1]]``. Full-batch gradient descent with a constant
learning rate converges iff ``0 < lr < 2 / lambda_max(H)`` (the critical learning rate) and
contracts fastest at ``lr = 2 / (lambda_max + lambda_min)``. These bounds are for full-batch
gradient descent only: minibatch SGD adds noise and its stable range differs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from gdbench.data import Dataset


@dataclass(frozen=True)
class Theory:
    """Curvature of one dataset's cost and the learning rates it implies."""

    dataset: str
    n: int
    lambda_min: float
    lambda_max: float
    critical_lr: float
    fastest_lr: float

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def hessian(x: np.ndarray) -> np.ndarray:
    """The 2x2 Hessian of the MSE cost in (W, b)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    return (2.0 / n) * np.array([[np.sum(x * x), np.sum(x)], [np.sum(x), float(n)]])


def analyse(dataset: Dataset) -> Theory:
    """Eigenvalues of the Hessian, the critical and the fastest learning rate."""
    lam = np.linalg.eigvalsh(hessian(dataset.x))
    lam_min, lam_max = float(lam[0]), float(lam[-1])
    return Theory(
        dataset=dataset.name,
        n=dataset.n,
        lambda_min=lam_min,
        lambda_max=lam_max,
        critical_lr=2.0 / lam_max,
        fastest_lr=2.0 / (lam_max + lam_min),
    )
