"""The optimizers' stability theory (gdbench.stability): critical learning rates, the
recurrence's decay rate and the predicted rate curves."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import OPTIMIZER_SPECS, lesson_lambdas, optimizer_spec

from gdbench import stability
from gdbench.optimizers import PLAIN_SGD, OptimizerSpec


def test_critical_lrs_on_the_lessons_data() -> None:
    """The numbers the lesson's data gives (FACTS.md): plain 2/λmax, heavy ball 2(1+β)/λmax,
    Nesterov 2(1+β)/((1+2β)λmax), as torch.optim.SGD steps them."""
    _, lam_max = lesson_lambdas()
    assert stability.critical_lr(optimizer_spec(), lam_max) == pytest.approx(0.180295, abs=1e-6)
    assert stability.critical_lr(OPTIMIZER_SPECS[1], lam_max) == pytest.approx(0.342560, abs=1e-6)
    assert stability.critical_lr(OPTIMIZER_SPECS[3], lam_max) == pytest.approx(0.122343, abs=1e-6)


@pytest.mark.parametrize("spec", OPTIMIZER_SPECS, ids=[s.name for s in OPTIMIZER_SPECS])
def test_critical_lr_separates_decay_from_growth_in_the_recurrence(spec: OptimizerSpec) -> None:
    """Half a percent below the critical lr the float64 recurrence (torch's steps) decays,
    half a percent above it grows: the closed form is the recurrence's own edge."""
    _, lam_max = lesson_lambdas()
    crit = stability.critical_lr(spec, lam_max)
    below = stability.simulate(spec, 0.995 * crit, lam_max, 20_000)
    above = stability.simulate(spec, 1.005 * crit, lam_max, 20_000)
    assert below[-1] < 1e-3 and above[-1] > 1e3


@pytest.mark.parametrize("spec", OPTIMIZER_SPECS, ids=[s.name for s in OPTIMIZER_SPECS])
@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.7, 0.95, 1.2])
def test_spectral_radius_is_the_recurrence_decay_rate(spec: OptimizerSpec, fraction: float) -> None:
    """torch's steps (the float64 simulation) are the 2x2 iteration matrix, and the error
    along each direction shrinks (grows) per step by the matrix's spectral radius, measured
    over 10,000 steps of the recurrence (renormalised, so no float floor or overflow)."""
    lam_min, lam_max = lesson_lambdas()
    lr = fraction * stability.critical_lr(spec, lam_max)
    for lam, rho in zip((lam_min, lam_max), stability.spectral_radius(spec, lr, [lam_min, lam_max]), strict=True):
        M = stability.iteration_matrix(spec, lr, lam)
        g0 = lam + spec.weight_decay  # the first gradient from e = 1; torch's buffer starts as it
        step = g0 * (1 + spec.momentum if spec.nesterov else 1)
        state, powers = np.array([1.0 - lr * step, g0 if spec.momentum else 0.0]), []
        for _ in range(60):
            state = M @ state
            powers.append(abs(state[0]))
        np.testing.assert_allclose(stability.simulate(spec, lr, lam, 61)[1:], powers, rtol=1e-9, atol=1e-300)
        if rho < 1e-6:
            continue  # the error is gone after a step or two: no rate to measure
        state, log_norm = np.array([1.0, 0.0]), []
        for _ in range(20_000):
            state = M @ state
            size = np.abs(state).max()
            state /= size
            log_norm.append(np.log(size))
        measured = np.exp(np.mean(log_norm[10_000:]))
        assert measured == pytest.approx(rho, abs=2e-3), (lam, rho, measured)


def test_rate_factor_is_squared_radius_and_empty_out_of_scope() -> None:
    """The excess cost shrinks by rho² per epoch; Adam, momentum >= 1 and weight decay have
    no factor (their predicted columns stay empty instead of being wrong)."""
    lam = np.array(lesson_lambdas())
    factor = stability.rate_factor(OPTIMIZER_SPECS[1])
    assert factor is not None
    np.testing.assert_allclose(factor(0.1, lam), stability.spectral_radius(OPTIMIZER_SPECS[1], 0.1, lam) ** 2)
    np.testing.assert_allclose(stability.rate_factor(optimizer_spec())(0.1, lam), (1 - 0.1 * lam) ** 2)
    for spec in (optimizer_spec("a", kind="adam"), optimizer_spec("m", momentum=1.0), OPTIMIZER_SPECS[-1]):
        assert stability.rate_factor(spec) is None
    assert np.isnan(stability.critical_lr(optimizer_spec("a", kind="adam"), lam[1]))


def test_rate_curve_is_each_optimizers_own_theory():
    """The rate plot's theory: plain descent's V (1 at the critical lr); heavy ball flat at
    beta where the slowest direction's roots are complex, and 1 at its own critical lr and at
    lr 0; Adam: none."""
    lam = np.array([0.5, 10.0])
    ratios = np.array([0.0, 0.5, 1.0])
    plain = stability.rate_curve(PLAIN_SGD, lam, ratios)
    np.testing.assert_allclose(plain, np.max((1 - (ratios * 0.2)[:, None] * lam) ** 2, axis=1))
    assert plain[-1] == pytest.approx(1.0)
    hb = optimizer_spec(name="hb", momentum=0.9)
    curve = stability.rate_curve(hb, lam, ratios)
    assert curve[0] == pytest.approx(1.0) and curve[-1] == pytest.approx(1.0)
    assert curve[1] == pytest.approx(0.9)
    assert np.isnan(stability.rate_curve(optimizer_spec(name="a", kind="adam"), lam, ratios)).all()
