"""The finite-horizon edge in closed form: the smallest learning rate whose full-batch run of
the SGD family (plain, heavy ball, Nesterov; dampening and weight decay included) passes its
divergence threshold ``K C0`` (``K`` = ``diverged_factor``) within ``T`` = ``epochs`` epochs,
as a formula instead of :func:`gdbench.horizon.horizon_edges`' bisection of the recurrence.

Along an eigen-direction of the Hessian (eigenvalue ``lam``, ``lam' = lam + wd``, ``h = lr
lam'``) the error ``e`` from the regularised optimum (``delta = -wd q / lam'`` from the
least-squares one, :mod:`gdbench.horizon`) follows, as ``torch.optim.SGD`` steps it::

    heavy ball:  e_{k+1} = (1 + beta - (1 - d) h) e_k - beta e_{k-1},        e_1 = (1 - h) e_0
    Nesterov:    e_{k+1} = (1 + beta)(1 - h) e_k - beta (1 - h) e_{k-1},      e_1 = (1 - (1 + beta) h) e_0

(plain SGD: heavy ball with ``beta = 0``; the first step starts the buffer at the gradient).
Just above the critical lr the roots are real, the dominant one ``-rho`` (``rho > 1``), the
other ``z2``; parametrised by ``rho``, exactly:

* heavy ball: ``(1 - d) h = 1 + beta + rho + beta / rho``, ``z2 = -beta / rho``;
* Nesterov: ``h = 1 + rho^2 / ((1 + beta) rho + beta)``, ``z2 = beta rho / ((1 + beta) rho + beta)``;

and ``e_k = A (-rho)^k + (e_0 - A) z2^k`` with ``A = (e_1 / e_0 - z2) / (-rho - z2) e_0``. The
cost at epoch ``k`` is ``C* + sum lam (e_k + delta)^2 / 2``; near the edge it is dominated by
``E rho^(2k)``, ``E = lam A^2 / 2``, and grows with ``k``, so the run first passes the threshold
at its last epoch. **First order**: ``A`` taken at the critical lr (``rho = 1``: ``A = (1 + beta)
/ (1 - beta) e_0`` for heavy ball without dampening, ``(1 + beta)(1 + 2 beta) / (1 + 3 beta) e_0``
for Nesterov, ``e_0`` for plain SGD) and ``E rho^(2T) = K C0 - C*`` give ``rho = ((K C0 - C*) /
E)^(1 / (2T))`` and the learning rate from ``h(rho)`` above, per direction; the edge is the
smallest over the directions (plain SGD: ``lr_T = (1 + R^(1/(2T))) / lam_max``). **Refined**
(:data:`REFINE_STEPS`): Newton steps in ``ln rho`` on ``ln (C_k(lr) - C*) = ln (K C0 - C*)``
with the exact cost ``C_k`` (both roots, both directions, weight decay's offset; its slope by a
complex step) at epoch ``k = T``, and at ``T - 1`` (weight decay's offset alternates in sign,
so the last epoch need not be the largest); the smaller lr is the edge.

Measured against an independent float64 bisection of torch's steps
(tests/test_horizon_formula.py: the lesson's points, two points far apart, synthetic lines of
condition numbers ~1 and ~1e3, momentum 0.5, 0.9 and 0.99, heavy ball and Nesterov, heavy ball
with dampening 0.3 and 0.5, weight decay 0 and 0.05): the first-order form within 2.7e-5
(relative) at ``T = 300`` and 2.6e-7 at ``T = 3000``, the refined one within 1.1e-13; on the
default grid within 3e-11 of :func:`gdbench.horizon.horizon_edges` (1e-10).

**Where there is no closed form** (NaN): below the critical lr a run's error can grow for a
while before it contracts (heavy ball's amplitude near the critical lr is ``(1 + beta) / (1 -
beta)``), so a threshold below that transient is passed early, not at the last epoch. The
formula is given only where ``K C0 - C*`` exceeds :data:`TRANSIENT_MARGIN` x a bound on every
transient, ``sum lam (sqrt(G) |e_0| + |delta|)^2 / 2``, ``G = max(A_crit^2, (1 + beta)^2)``
(the largest ``|e_k / e_0|`` of a stable run, squared, reached at the critical lr; measured):
with the default ``diverged_factor`` 1e6, momentum up to about 0.99. Also NaN for no initial
excess, ``epochs`` 0, and outside the SGD family's theory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gdbench.horizon import HorizonProblem, Modes, modes_of_problem

#: A stack of 2x2 matrices as its entries ``(a, b, c, d)`` = ``[[a, b], [c, d]]``.
Matrix = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
#: Newton steps on the exact cost, at most (0: the first-order form alone); they stop once no
#: ``rho`` moves by more than :data:`CONVERGED` (relative; below it moves by rounding): 2-6
#: steps at 300 to 3000 epochs (the most at momentum 0.99).
REFINE_STEPS = 12
CONVERGED = 1.0e-13
#: The threshold's excess must exceed this multiple of the transient bound for a closed form.
TRANSIENT_MARGIN = 1.5
#: Relative imaginary step of the complex-step derivative in the refinement.
COMPLEX_STEP = 1.0e-20


def closed_form_edge(problem: HorizonProblem, refine: int = REFINE_STEPS) -> float:
    """:func:`closed_form_edges` of one problem."""
    return float(closed_form_edges([problem], refine=refine)[0])


def closed_form_edges(
    problems: Sequence[HorizonProblem], modes: Sequence[Modes] | None = None, refine: int = REFINE_STEPS
) -> np.ndarray:
    """Per problem, the finite-horizon edge in closed form (module docstring), NaN where there
    is none; ``refine`` steps on the exact cost (0: first order). All problems at once."""
    if not problems:
        return np.zeros(0)
    modes = [modes_of_problem(p) for p in problems] if modes is None else list(modes)
    c = _Constants(problems, modes)
    edge = np.full(len(problems), np.nan)
    for k in (c.T, c.T - 1):
        lr = _edge_at(c, k, refine)
        edge = np.fmin(edge, np.where(k >= 1, lr, np.nan))
    return np.where(c.certified, edge, np.nan)


class _Constants:
    """The problems' constants as arrays: ``[P]`` per problem, ``[P, 2]`` per direction."""

    def __init__(self, problems: Sequence[HorizonProblem], modes: Sequence[Modes]) -> None:
        def col(name: str) -> np.ndarray:
            return np.array([float(getattr(p, name)) for p in problems])[:, None]

        self.beta, self.wd = col("momentum"), col("weight_decay")
        self.keep = np.where(self.beta > 0, 1.0 - col("dampening"), 1.0)
        self.nesterov = np.array([bool(p.nesterov) for p in problems])[:, None]
        self.T = np.array([int(p.epochs) for p in problems])
        self.lam = np.stack([m.lam for m in modes])
        self.lam_eff = self.lam + self.wd
        u0, q = np.stack([m.u0 for m in modes]), np.stack([m.q for m in modes])
        self.c_star = np.array([m.c_star for m in modes])
        with np.errstate(all="ignore"):
            self.delta = np.where(self.lam_eff > 0, -self.wd * q / self.lam_eff, 0.0)
            self.e0 = u0 - self.delta
            c0 = self.c_star + 0.5 * (self.lam * u0 * u0).sum(axis=1)
            self.R = np.where(c0 > 0, c0, 1.0) * col("diverged_factor")[:, 0] - self.c_star
            self.live = (self.lam > 0) & (self.e0 != 0)
            a_crit = _critical_amplitude(self)
            gain = np.maximum(a_crit**2, (1.0 + self.beta) ** 2)
            transient = (0.5 * self.lam * (np.sqrt(gain) * np.abs(self.e0) + np.abs(self.delta)) ** 2).sum(axis=1)
            self.energy = np.where(self.live, 0.5 * self.lam * (a_crit * self.e0) ** 2, np.nan)
        self.certified = self.live.any(axis=1) & (self.T >= 1) & (TRANSIENT_MARGIN * transient < self.R)


def _step_of(beta: np.ndarray, keep: np.ndarray, nesterov: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """``h = lr lam'`` at which the dominant root is ``-rho`` (arrays that broadcast)."""
    heavy = (1.0 + beta + rho + beta / rho) / keep
    nest = 1.0 + rho * rho / ((1.0 + beta) * rho + beta)
    return np.where(nesterov, nest, heavy)


def _critical_amplitude(c: _Constants) -> np.ndarray:
    """``A / e_0`` at the critical lr (``rho = 1``; per direction): ``(e_1 / e_0 - z2) / (-1 -
    z2)`` with ``z2 = -beta`` (heavy ball) or ``beta / (1 + 2 beta)`` (Nesterov)."""
    b, h = c.beta, _step_of(c.beta, c.keep, c.nesterov, np.ones_like(c.lam))
    z2 = np.where(c.nesterov, b / (1.0 + 2.0 * b), -b)
    first = np.where(c.nesterov, 1.0 - (1.0 + b) * h, 1.0 - h)  # e_1 / e_0
    return (first - z2) / (-1.0 - z2)


def _edge_at(c: _Constants, k: np.ndarray, refine: int) -> np.ndarray:
    """The smallest lr whose cost at epoch ``k`` (per problem) reaches ``K C0``: first order,
    then ``refine`` steps on the exact cost."""
    kk = np.maximum(k, 1)
    with np.errstate(all="ignore"):
        rho = (c.R[:, None] / c.energy) ** (1.0 / (2.0 * kk[:, None]))
        lrs = _step_of(c.beta, c.keep, c.nesterov, rho) / c.lam_eff
        lrs = np.where(c.live & (rho > 1), lrs, np.inf)
        top = np.argmin(lrs, axis=1)  # the direction that passes first
        rows = np.arange(len(top))
        rho, lam_eff = rho[rows, top], c.lam_eff[rows, top]
        lr = lrs[rows, top]
        beta, keep, nesterov = c.beta[:, 0], c.keep[:, 0], c.nesterov[:, 0]
        for _ in range(refine):
            # Newton on ln C_T - ln R in ln rho, the slope by a complex step (exact, no cancellation).
            tiny = COMPLEX_STEP * rho
            excess = exact_cost(c, _step_of(beta, keep, nesterov, rho + 1j * tiny) / lam_eff, kk) - c.c_star
            slope = rho * (excess.imag / tiny) / excess.real
            better = rho * np.exp(-(np.log(excess.real) - np.log(c.R)) / slope)
            ok = np.isfinite(better) & (better > 1)
            moved = np.abs(better / rho - 1.0)
            rho = np.where(ok, better, rho)
            if not np.any(ok & (moved > CONVERGED)):
                break
        lr = np.where(np.isfinite(lr), _step_of(beta, keep, nesterov, rho) / lam_eff, lr)
    return np.where(np.isfinite(lr), lr, np.nan)


def exact_cost(c: _Constants, lr: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The cost at epoch ``k`` (per problem, ``>= 1``) of each problem's run at ``lr``, from the
    recurrence in closed form: ``(e_k, e_{k-1}) = C^(k-1) (e_1, e_0)`` with the companion
    matrix ``C = [[tr, -det], [1, 0]]``, its power by repeated squaring."""
    b, h = c.beta, lr[:, None] * c.lam_eff
    tr = np.where(c.nesterov, (1.0 + b) * (1.0 - h), 1.0 + b - c.keep * h)
    det = np.where(c.nesterov, b * (1.0 - h), b)
    first = np.where(c.nesterov, 1.0 - (1.0 + b) * h, 1.0 - h) * c.e0
    one, zero = np.ones_like(h), np.zeros_like(h)
    base: Matrix = (tr, -det, one, zero)
    row = (one, zero)  # the first row of C^(bits so far): all that e_k needs
    n = (k - 1)[:, None]
    bit = 1
    with np.errstate(all="ignore"):
        while bit <= int(n.max(initial=0)):
            take = (n & bit) != 0
            row = (
                np.where(take, row[0] * base[0] + row[1] * base[2], row[0]),
                np.where(take, row[0] * base[1] + row[1] * base[3], row[1]),
            )
            base = _times(base, base)
            bit <<= 1
        e_k = row[0] * first + row[1] * c.e0
        return c.c_star + (0.5 * c.lam * (e_k + c.delta) ** 2).sum(axis=1)


def _times(m: Matrix, n: Matrix) -> Matrix:
    """The product of two stacks of 2x2 matrices (elementwise: far faster than ``matmul`` on
    many tiny matrices)."""
    return (m[0] * n[0] + m[1] * n[2], m[0] * n[1] + m[1] * n[3], m[2] * n[0] + m[3] * n[2], m[2] * n[1] + m[3] * n[3])
