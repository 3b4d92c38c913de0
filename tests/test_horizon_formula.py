"""The finite-horizon edge in closed form (gdbench.horizon_formula) against an independent
float64 reference: torch.optim.SGD's steps simulated here in plain numpy on the points
themselves (not the eigenbasis), and a bisection of their divergence verdict (not the
package's search), for heavy ball, Nesterov and plain SGD, with and without weight decay."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import horizon_problem

from gdbench.horizon import diverges
from gdbench.horizon_formula import closed_form_edges

K = 1.0e6
RNG = np.random.default_rng(17)
_WELL = RNG.normal(0.0, 1.0, 40)  # condition number ~1
_ILL = RNG.normal(5.0, 0.2, 40)  # condition number ~1e3
#: (x, y, W0, b0): the lesson's points, two points far apart, two synthetic lines
DATASETS = {
    "lesson": (np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]), 0.0, 0.0),
    "two_points": (np.array([-3.0, 5.0]), np.array([7.0, -9.0]), 0.0, 0.0),
    "well_conditioned": (_WELL, 1.5 * _WELL - 2.0 + 0.3 * RNG.normal(size=40), 1.0, -2.0),
    "ill_conditioned": (_ILL, -0.5 * _ILL + 3.0 + 0.3 * RNG.normal(size=40), 0.0, 0.0),
}
#: (momentum, nesterov, weight_decay, dampening)
SETTINGS = [(b, n, wd, 0.0) for b in (0.5, 0.9, 0.99) for n in (False, True) for wd in (0.0, 0.05)]
SETTINGS += [(0.0, False, 0.05, 0.0), (0.9, False, 0.0, 0.3), (0.5, False, 0.05, 0.5)]


def reference_diverges(x, y, W0, b0, T, settings, lrs, factor=K):
    """Per row (``settings[i]``, ``lrs[i]``): whether torch's SGD passes ``factor x`` the
    initial cost at any epoch ``0..T`` (the cost of the parameters before each update)."""
    beta = np.array([s[0] for s in settings])[:, None]
    nest = np.array([s[1] for s in settings])[:, None]
    wd = np.array([s[2] for s in settings])[:, None]
    keep = 1.0 - np.array([s[3] for s in settings])[:, None]
    lr = np.asarray(lrs)[:, None]
    p = np.tile([W0, b0], (len(lrs), 1)).astype(np.float64)
    buf = None
    c0 = np.mean((W0 * x + b0 - y) ** 2)
    out = np.zeros(len(lrs), dtype=bool)
    with np.errstate(all="ignore"):
        for k in range(T + 1):
            r = p[:, :1] * x + p[:, 1:] - y
            out |= ~(np.mean(r * r, axis=1) <= factor * c0)
            if k == T:
                break
            g = np.stack([np.mean(2 * r * x, axis=1), np.mean(2 * r, axis=1)], axis=1) + wd * p
            buf = g.copy() if buf is None else beta * buf + keep * g
            step = np.where(beta == 0, g, np.where(nest, g + beta * buf, buf))
            p = p - lr * step
    return out


def critical(x, settings):
    """The asymptotic critical lr of each setting (the stability theory's c / (lambda_max + wd))."""
    A = np.stack([x, np.ones_like(x)], 1)
    lam = float(np.linalg.eigvalsh(2 * A.T @ A / x.size)[-1])
    out = []
    for beta, nest, wd, damp in settings:
        c = 2.0 if beta == 0 else (2 * (1 + beta) / (1 + 2 * beta) if nest else 2 * (1 + beta) / (1 - damp))
        out.append(c / (lam + wd))
    return np.array(out)


def reference_edges(x, y, W0, b0, T, settings, rel=1e-12, comb=33):
    """The smallest diverging lr of each setting, bracketed to ``rel`` by combs of ``comb``
    learning rates between 0.95 and 1.2 x critical (all settings at once)."""
    lo, hi = 0.95 * critical(x, settings), 1.2 * critical(x, settings)
    rows = [s for s in settings for _ in range(comb)]
    while np.max(hi / lo - 1) > rel:
        lrs = np.exp(np.linspace(np.log(lo), np.log(hi), comb).T)  # [settings, comb]
        d = reference_diverges(x, y, W0, b0, T, rows, lrs.reshape(-1)).reshape(lrs.shape)
        assert not d[:, 0].any() and d[:, -1].all(), "the reference bracket must hold the edge"
        first = np.argmax(d, axis=1)
        idx = np.arange(len(settings))
        lo, hi = lrs[idx, first - 1], lrs[idx, first]
    return np.sqrt(lo * hi)


def setting_problem(x, y, W0, b0, T, factor, setting):
    """The float64 problem of one (momentum, nesterov, weight decay, dampening) setting."""
    b, n, wd, d = setting
    settings = {"momentum": b, "nesterov": n, "weight_decay": wd, "dampening": d}
    return horizon_problem(x, y, W0=W0, b0=b0, epochs=T, diverged_factor=factor, **settings)


def formula_edges(x, y, W0, b0, T, settings, refine=None):
    problems = [setting_problem(x, y, W0, b0, T, K, setting) for setting in settings]
    return closed_form_edges(problems) if refine is None else closed_form_edges(problems, refine=refine)


#: The first-order form's tolerance (relative) per horizon; the refined form's.
FIRST_ORDER = {300: 1.2e-4, 3000: 1.2e-6}
REFINED = 1.0e-9


@pytest.mark.parametrize("T", [300, pytest.param(3000, marks=pytest.mark.slow)])
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_closed_form_edge_equals_an_independent_bisection(dataset, T):
    """Heavy ball and Nesterov (momentum 0.5, 0.9, 0.99), heavy ball with dampening and plain
    SGD, with and without weight decay: the first-order form within 1.2e-4 of the float64 edge
    at 300 epochs and 1.2e-6 at 3000, the refined one within 1e-9. A user comparing optimizers
    by ``horizon_edge`` would otherwise read a wrong stability edge for momentum."""
    x, y, W0, b0 = DATASETS[dataset]
    reference = reference_edges(x, y, W0, b0, T, SETTINGS)
    first = formula_edges(x, y, W0, b0, T, SETTINGS, refine=0)
    refined = formula_edges(x, y, W0, b0, T, SETTINGS)
    np.testing.assert_allclose(first, reference, rtol=FIRST_ORDER[T], atol=0)
    np.testing.assert_allclose(refined, reference, rtol=REFINED, atol=0)
    assert (reference > critical(x, SETTINGS)).all()  # a finite horizon diverges above critical


def test_verdicts_by_the_edge_equal_the_recurrence_away_from_it():
    """``lr >= horizon_edge`` (how the summary predicts divergence for momentum) gives the
    float64 recurrence's verdict at every lr from 0.001 to 10 x critical, at horizons of 5 to
    300 epochs and thresholds of 1.5 to 1e6, wherever the closed form is given."""
    given = 0
    for x, y, W0, b0 in DATASETS.values():
        cases = list(itertools.product(SETTINGS, [1.5, 10.0, 1e3, 1e6], [5, 50, 300]))
        problems = [setting_problem(x, y, W0 + 0.5, b0 - 1.0, T, f, setting) for setting, f, T in cases]
        edges = closed_form_edges(problems)
        keep = np.flatnonzero(np.isfinite(edges))
        given += keep.size
        crit = critical(x, [cases[i][0] for i in keep])[:, None]
        steps = np.geomspace(1e-9, 0.1, 20)
        edge = edges[keep][:, None]
        lrs = np.concatenate([np.geomspace(1e-3, 10, 200) * crit, edge * (1 + steps), edge * (1 - steps)], axis=1)
        truth = diverges([problems[i] for i in keep], lrs)
        far = np.abs(lrs / edge - 1) > 1e-10
        assert np.array_equal((lrs >= edge)[far], truth[far])
    assert given > 300


@pytest.mark.parametrize(("beta", "factor", "ratio"), [(0.9, 3.0, 0.99), (0.999, 1e6, 1 - 1e-7)])
def test_no_closed_form_where_a_transient_passes_the_threshold_first(beta, factor, ratio):
    """Heavy ball's error grows up to (1 + beta) / (1 - beta) x before it contracts below the
    critical lr: with a threshold below that transient (a small ``diverged_factor``, or momentum
    0.999) the run diverges *below* the critical lr, at an early epoch; the closed form, which
    assumes the last epoch decides, is empty there rather than wrong."""
    x, y, W0, b0 = DATASETS["lesson"]
    crit = critical(x, [(beta, False, 0.0, 0.0)])[0]
    assert reference_diverges(x, y, W0, b0, 3000, [(beta, False, 0.0, 0.0)], [ratio * crit], factor).all()
    problem = horizon_problem(x, y, W0=W0, b0=b0, epochs=3000, diverged_factor=factor, momentum=beta)
    assert np.isnan(closed_form_edges([problem])[0])
