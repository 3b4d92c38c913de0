"""Theory: the Hessian's eigenvalues, critical and fastest learning rates, and that full-batch
runs diverge exactly where the theory says."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_spec, train_options

from gdbench.data import parse_dataset
from gdbench.engines import train
from gdbench.lesson import tutorial
from gdbench.theory import analyse, hessian


def test_tutorial_numbers() -> None:
    """The numbers quoted in the docs and drawn on the divergence plot."""
    t = analyse(tutorial())
    assert t.lambda_min == pytest.approx(0.240393, abs=1e-6)
    assert t.lambda_max == pytest.approx(11.092940, abs=1e-6)
    assert t.critical_lr == pytest.approx(0.180295, abs=1e-6)
    assert t.fastest_lr == pytest.approx(0.176471, abs=1e-6)
    np.testing.assert_allclose(hessian(tutorial().x), (2 / 3) * np.array([[14.0, 6.0], [6.0, 3.0]]))


def test_verdicts_match_theory_on_synthetic_data() -> None:
    """Every full-batch run at lr <= 0.95 x critical converges (does not diverge) and every one
    at lr >= 1.05 x critical diverges, given enough epochs."""
    spec = parse_dataset(
        "line", {"synthetic": {"n": 50, "slope": -1.5, "intercept": 3.0, "noise": 0.3, "x_min": -1.0, "x_max": 4.0}}
    )
    crit = analyse(spec.build(seed=0)).critical_lr
    ratios = [0.1, 0.5, 0.8, 0.9, 0.95, 1.05, 1.1, 1.5, 3.0]
    runs = [run_spec("line", r * crit, seed, 3000) for r in ratios for seed in (1, 2, 3)]
    batch = train(runs, {"line": spec}, train_options(record_every=0))
    predicted = np.array([run.lr >= crit for run in runs])
    np.testing.assert_array_equal(batch.verdicts.diverged, predicted)


def test_theory_does_not_depend_on_the_seed() -> None:
    """Synthetic x values are evenly spaced, so every seed has the same critical lr."""
    spec = parse_dataset("s", {"synthetic": {"n": 10, "noise": 1.0}})
    assert analyse(spec.build(seed=1)) == analyse(spec.build(seed=2))
