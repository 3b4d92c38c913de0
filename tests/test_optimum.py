"""Every run measured against its dataset's optimum: the least-squares line in float64,
excess cost, relative convergence, measured vs predicted rate, and where the full-batch theory
does not apply."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import run_spec

from gdbench import plots
from gdbench.config import ConfigError, check_config
from gdbench.data import Dataset, parse_dataset
from gdbench.experiment import Experiment
from gdbench.lesson import tutorial
from gdbench.optimizers import PLAIN_SGD
from gdbench.pipeline import optima, theories, train_runs
from gdbench.plots import divergence_plot
from gdbench.tables import rate_curve_table, theory_table
from gdbench.theory import analyse, eigen, optimum, predicted_rate, predicted_rates, sgd_factor

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
#: Plain SGD alone, by its name (the theory of the lesson's optimizer).
PLAIN = {PLAIN_SGD.name: PLAIN_SGD}


def ex(config):
    """The experiment of a checked config, on the CPU."""
    return Experiment.from_checked(config, ["cpu"])


def points(x, y, name="d") -> Dataset:
    return Dataset(name, np.asarray(x, dtype=float), np.asarray(y, dtype=float))


def grid_config(datasets, optimizers=("sgd",), **training):
    """The default config's grid (lrs, seeds, epochs) on ``datasets``, on the CPU, plain SGD
    unless ``optimizers`` (names from the default config) says otherwise."""
    config = {
        "datasets": {k: DEFAULT["datasets"][k] if isinstance(v, str) else v for k, v in datasets.items()},
        "optimizers": DEFAULT["optimizers"],
        "grid": {**DEFAULT["grid"], "dataset": list(datasets), "device": ["cpu"], "optimizer": list(optimizers)},
        "training": {**DEFAULT["training"], **training},
        "analysis": DEFAULT["analysis"],
    }
    return check_config(config)


@pytest.fixture(scope="module")
def default_grid() -> pd.DataFrame:
    """The summary of the default grid (tutorial and noisy, every lr and seed, full batch)."""
    config = grid_config({"tutorial": "default", "noisy": "default"})
    return train_runs(ex(config), ex(config).runs)[2]


# --- the optimum ------------------------------------------------------------------------------


def test_optimum_of_the_lesson_is_exact():
    """y = 2x exactly: W* = 2, b* = 0, optimal cost 0, with no rounding left over (lstsq
    leaves b* ~ 3e-15 and a cost ~ 1e-30, which would make every excess a little wrong)."""
    opt = optimum(tutorial())
    assert (opt.W_star, opt.b_star, opt.optimal_cost) == (2.0, 0.0, 0.0)


def test_optimum_matches_least_squares_on_noisy_data_per_seed():
    """Noisy points depend on the seed, and so does their optimum."""
    spec = parse_dataset("noisy", DEFAULT["datasets"]["noisy"])
    seen = set()
    for seed in (1, 2, 3):
        data = spec.build(seed=seed)
        slope, intercept = np.polyfit(data.x, data.y, 1)
        opt = optimum(data, seed)
        assert opt.W_star == pytest.approx(slope, rel=1e-12) and opt.b_star == pytest.approx(intercept, rel=1e-12)
        assert opt.optimal_cost == pytest.approx(np.mean((slope * data.x + intercept - data.y) ** 2), rel=1e-12)
        seen.add(opt.optimal_cost)
    assert len(seen) == 3


@pytest.mark.parametrize(("x", "y"), [([2.0], [5.0]), ([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]), ([0.7] * 5, [1, 2, 3, 4, 6])])
def test_singular_design_gives_the_minimum_norm_solution(x, y):
    """One point, or all x equal: infinitely many best lines; the minimum-norm one (as the
    pseudo-inverse gives it) and the cost of the best constant, the variance of y."""
    opt = optimum(points(x, y))
    A = np.stack([x, np.ones(len(x))], axis=1)
    W, b = np.linalg.pinv(A) @ np.asarray(y, dtype=float)
    assert opt.W_star == pytest.approx(W, rel=1e-12) and opt.b_star == pytest.approx(b, rel=1e-12)
    assert opt.optimal_cost == pytest.approx(np.var(y), abs=1e-12)


@pytest.mark.parametrize("x", [[1.0, 1.0, 1.0], [0.7] * 5, [3.3], [1e3] * 4])
def test_singular_hessian_has_lambda_min_exactly_zero(x):
    """lambda_min is 0, not rounding noise (0.7 x 5 gave -1.1e-16), and the fastest lr is
    1/lambda_max (only that direction moves the cost), not the critical lr."""
    t = analyse(points(x, np.zeros(len(x))))
    assert t.lambda_min == 0.0
    assert t.lambda_max == pytest.approx(2 * (x[0] ** 2 + 1), rel=1e-12)
    assert t.fastest_lr == 1.0 / t.lambda_max and t.critical_lr == 2.0 / t.lambda_max


def test_theory_table_has_a_row_per_seed_where_the_points_depend_on_it():
    """theory.csv: tutorial once (seed empty), noisy once per seed, with the optimum."""
    config = grid_config({"tutorial": "default", "noisy": "default"})
    names = ["tutorial", "noisy"]
    table = theory_table(theories(ex(config), names), optima(ex(config), names, [1, 2, 3]), optimizers=PLAIN)
    assert table["dataset"].tolist() == ["tutorial", "noisy", "noisy", "noisy"]
    assert table["seed"].isna().tolist() == [True, False, False, False]
    for col in ("lambda_min", "lambda_max", "critical_lr", "fastest_lr", "W_star", "b_star", "optimal_cost"):
        assert col in table.columns
    assert table["optimal_cost"].iloc[1:].nunique() == 3


# --- predicted rate ---------------------------------------------------------------------------


def test_predicted_rate_counts_only_directions_the_start_has():
    """The max of (1 - lr lambda)^2 over the directions the initial error has a component in;
    a start along one eigenvector contracts at that direction's rate; at the optimum: none."""
    lam, vecs = eigen(tutorial().x)
    lr = 0.1
    both = predicted_rate(lr, lam, vecs, (-2.0, 0.0))
    assert both == pytest.approx(max((1 - lr * lam) ** 2))
    assert predicted_rate(lr, lam, vecs, vecs[:, 1]) == pytest.approx((1 - lr * lam[1]) ** 2)
    assert np.isnan(predicted_rate(lr, lam, vecs, (0.0, 0.0)))


def test_predicted_rate_ignores_the_flat_direction_of_a_singular_hessian():
    """Along lambda = 0 the cost does not change: it carries no excess, so it cannot set the
    rate (it would say 1: never converging)."""
    lam, vecs = eigen(np.array([2.0, 2.0]))
    assert predicted_rate(0.1, lam, vecs, (1.0, 0.3)) == pytest.approx((1 - 0.1 * lam[1]) ** 2)


def test_predicted_rates_of_many_runs_are_each_runs_own():
    """predicted_rates (the analysis's, one call per dataset and optimizer) gives each run the
    rate predicted_rate gives it alone, with the factor evaluated once per distinct lr:
    repeated and unsorted lrs, a start at the optimum (NaN), a start along one eigenvector."""
    lam, vecs = eigen(tutorial().x)
    lrs = np.array([0.1, 0.02, 0.1, 0.3, 0.02, 0.07])
    errors = np.array([(-2.0, 0.0), (0.5, -1.0), (0.0, 0.0), tuple(vecs[:, 1]), (3.0, 1e-3), (-1.0, 4.0)])
    seen = []

    def factor(lr, eigenvalues):
        seen.append(lr)
        return (1.0 - lr * np.asarray(eigenvalues)) ** 2 + lr

    batched = predicted_rates(lrs, lam, vecs, errors, factor)
    one = [predicted_rate(lr, lam, vecs, e, factor) for lr, e in zip(lrs, errors, strict=True)]
    np.testing.assert_array_equal(batched, one)
    assert np.isnan(batched[2]) and np.isfinite(np.delete(batched, 2)).all()
    assert batched[3] == (1 - 0.3 * lam[1]) ** 2 + 0.3 and batched[0] != batched[1]
    assert seen[:4] == [0.02, 0.07, 0.1, 0.3] and len(seen) == 4 + len(lrs)  # once per distinct lr


def test_predicted_rate_takes_the_optimizer_factor_as_a_plug():
    """Other optimizers plug in their own per-eigenvalue factor."""
    lam, vecs = eigen(tutorial().x)
    seen = []

    def factor(lr, eigenvalues):
        seen.append((lr, tuple(eigenvalues)))
        return np.array([0.25, 0.5])

    assert predicted_rate(0.05, lam, vecs, (-2.0, 0.0), factor) == 0.5
    assert seen == [(0.05, tuple(lam))]
    np.testing.assert_allclose(sgd_factor(0.05, lam), (1 - 0.05 * lam) ** 2)


# --- the default grid -------------------------------------------------------------------------


def test_rate_agrees_with_prediction_on_the_tutorial_default_grid(default_grid):
    """Measured and predicted contraction per epoch within 1e-3 on every converging
    full-batch run of the default grid on the lesson's data."""
    tut = default_grid[default_grid["dataset"] == "tutorial"]
    converged = tut[tut["converged_at"].notna()]
    assert len(converged) >= 5 * 3  # lr 0.01 ... 0.17, three seeds
    assert converged["rate"].notna().all()
    np.testing.assert_allclose(converged["rate"], converged["predicted_rate"], atol=1e-3)
    neither = tut["converged_at"].isna() & ~tut["diverged"]
    assert neither.any() and tut.loc[neither, "rate"].isna().all()


def test_diverged_runs_have_their_growth_rate_beside_the_prediction(default_grid):
    """A diverged full-batch plain-SGD run's ``rate`` is the growth of its excess per epoch
    before the divergence epoch: above 1, within 1e-3 (relative) of ``predicted_rate``."""
    tut = default_grid[(default_grid["dataset"] == "tutorial") & (default_grid["optimizer"] == "sgd")]
    grown = tut[tut["diverged"]]
    assert len(grown) >= 3 * 3 and (grown["rate"] > 1).all()
    np.testing.assert_allclose(grown["rate"], grown["predicted_rate"], rtol=1e-3)


@pytest.fixture(scope="module")
def momentum_grid() -> pd.DataFrame:
    """The summary of the default grid's momentum optimizers on the tutorial data."""
    config = grid_config({"tutorial": "default"}, optimizers=("heavy_ball", "nesterov"))
    return train_runs(ex(config), ex(config).runs)[2]


def test_momentum_rate_agrees_with_prediction_on_the_tutorial_default_grid(momentum_grid):
    """Heavy ball and Nesterov (beta 0.9): where the envelope fit gives a rate, it is the
    spectral radius squared within 1e-3 (measured: 3.5e-4); it gives one for most converging
    heavy-ball runs and for Nesterov's slow ones, and none for a run that has not converged."""
    conv = momentum_grid[momentum_grid["converged_at"].notna()]
    fitted = conv[conv["rate"].notna()]
    np.testing.assert_allclose(fitted["rate"], fitted["predicted_rate"], atol=1e-3)
    counts = fitted.groupby("optimizer")["lr"].nunique()
    assert counts["heavy_ball"] >= 6 and counts["nesterov"] >= 2
    assert np.isclose(fitted["predicted_rate"].astype(float), 0.9).sum() >= 5 * 3  # complex roots: |z|^2 = beta
    neither = momentum_grid["converged_at"].isna() & ~momentum_grid["diverged"]
    assert momentum_grid.loc[neither, "rate"].isna().all()


def test_the_lessons_run_converges_at_the_epoch_the_readme_states(default_grid):
    """tutorial, lr 0.01, 2000 epochs: converged at epoch 1732 (README)."""
    lesson = default_grid.query("dataset == 'tutorial' and lr == 0.01 and seed == 1").iloc[0]
    assert lesson["converged_at"] == 1732
    assert "1732" in (ROOT / "README.md").read_text()


def test_noisy_runs_converge_in_the_order_of_their_learning_rates(default_grid):
    """On noisy data (optimum ~0.2-0.3), runs from lr 0.01 to 0.25 converge; up to the fastest
    lr (0.249) a larger lr converges sooner."""
    noisy = default_grid[default_grid["dataset"] == "noisy"]
    ok = noisy[(noisy["lr"] >= 0.01) & (noisy["lr"] <= 0.25)]
    assert ok["converged_at"].notna().all()
    fastest = float(noisy["fastest_lr"].iloc[0])
    below = ok[ok["lr"] <= fastest].groupby("lr")["converged_at"].max()
    assert below.is_monotonic_decreasing and below.is_unique
    assert (ok["excess_cost"] < 1e-6).all()


def lstsq_cost(x, y) -> float:
    """An independent float64 reference: numpy's least squares on (x, 1) and its MSE."""
    A = np.stack([x, np.ones_like(x)], axis=1)
    p = np.linalg.lstsq(A, y, rcond=None)[0]
    return float(np.mean((A @ p - y) ** 2))


def test_summary_columns_of_the_optimum(default_grid):
    """optimal_cost is the optimum of the run's points as rounded to its dtype (float32 on the
    default grid), not of the float64 points; excess_cost = final_cost - optimal_cost."""
    config = grid_config({"noisy": "default"})
    spec = parse_dataset("noisy", config["datasets"]["noisy"])
    rounded = {
        s: lstsq_cost(*(np.asarray(a, dtype=np.float32).astype(np.float64) for a in (d.x, d.y)))
        for s, d in ((s, spec.build(seed=s)) for s in (1, 2, 3))
    }
    noisy = default_grid[default_grid["dataset"] == "noisy"]
    np.testing.assert_allclose(noisy["optimal_cost"], noisy["seed"].map(rounded), rtol=1e-13)
    float64 = {o.seed: o.optimal_cost for o in optima(ex(config), ["noisy"], [1, 2, 3])}
    assert (np.abs(noisy["optimal_cost"] - noisy["seed"].map(float64)) > 1e-9).all()  # the rounding matters
    excess = default_grid["final_cost"] - default_grid["optimal_cost"]
    np.testing.assert_array_equal(default_grid["excess_cost"], excess)
    assert (default_grid.loc[default_grid["dataset"] == "tutorial", "optimal_cost"] == 0).all()


def test_predicted_diverged_is_empty_where_the_theory_does_not_apply():
    """Minibatch runs, and runs that start at the optimum, get no prediction (NA, not False);
    full-batch runs do, and a start at the optimum has converged at epoch 0."""
    config = grid_config({"noisy": "default", "flat": {"x": [1, 2, 3], "y": [0, 0, 0]}}, batch_size=[8, "full"])
    config["grid"]["lr"] = [0.01, 0.5]
    config["grid"]["seed"] = [1]
    config["grid"]["epochs"] = [50]
    runs = ex(config).runs
    summary = train_runs(ex(config), runs)[2]
    pd_ = summary["predicted_diverged"]
    mini = summary["batch_size"].astype(str) == "8"
    flat = summary["dataset"].astype(str) == "flat"
    assert pd_[mini & ~flat].isna().all() and pd_[flat].isna().all()
    full = summary[~mini & ~flat]
    assert full["predicted_diverged"].tolist() == [False, True]
    assert (summary.loc[flat, "converged_at"] == 0).all()
    assert summary.loc[mini, "rate"].isna().all() and summary.loc[mini, "predicted_rate"].isna().all()


# --- non-finite initial cost ------------------------------------------------------------------


def test_initial_cost_that_overflows_the_dtype_is_a_config_error():
    """y ~ 3e19: y^2 overflows float32 at epoch 0; one line naming the dataset, no run."""
    config = {
        "datasets": {"huge": {"x": [1, 2, 3], "y": [3e19, 1, 2]}},
        "grid": {"dataset": ["huge"], "lr": [0.01], "seed": [1], "epochs": [10], "device": ["cpu"]},
    }
    with pytest.raises(ConfigError) as info:
        check_config(config)
    message = str(info.value)
    assert "\n" not in message and "datasets.huge" in message and "float32" in message
    config["training"] = {"dtype": "float64"}
    check_config(config)  # fine in float64


def test_synthetic_overflow_is_a_config_error_when_trained():
    """Synthetic points are drawn when trained: there the same error, naming the dataset."""
    config = check_config(
        {
            "datasets": {"steep": {"synthetic": {"n": 8, "slope": 1.0e20, "noise": 0.0}}},
            "grid": {"dataset": ["steep"], "lr": [0.01], "seed": [1], "epochs": [10], "device": ["cpu"]},
        }
    )
    with pytest.raises(ConfigError, match=r"datasets\.steep.*not finite"):
        train_runs(ex(config), [run_spec("steep", 0.01, 1, 10)])


# --- words and plots --------------------------------------------------------------------------


def test_final_cost_is_described_as_the_cost_before_the_last_update():
    """final_cost is the last epoch's forward pass, before that epoch's update (the lesson's
    log): the summary caption and the divergence legend must not say "after"."""
    caption = (ROOT / "workflow" / "report" / "summary.rst").read_text()
    legend = divergence_plot._DIVERGENCE_HANDLES["stable"].get_label()
    for text in (caption, legend):
        assert "cost after the last epoch" not in text
        assert "before" in text


def test_rate_plot_draws_measured_points_over_the_predicted_curve(default_grid, tmp_path):
    """The rate plot: labelled axes, one panel per dataset, the predicted curve (from the
    theory job's curve table) and the fastest/critical lines in the legend; also with no
    converged run."""
    config = grid_config({"tutorial": "default", "noisy": "default"})
    th = theories(ex(config), ["tutorial", "noisy"])
    theory = theory_table(th, optima(ex(config), ["tutorial", "noisy"], [1, 2, 3]), optimizers=PLAIN)
    curve = rate_curve_table(th, PLAIN)
    png, svg = tmp_path / "rate.png", tmp_path / "rate.svg"
    plots.rate(default_grid, curve, theory, png, svg)
    text = svg.read_text()
    labels = ("learning rate / critical learning rate", "dataset = tutorial", "dataset = noisy", "(1 − lr·λ)²")
    for label in (*labels, "fastest lr (plain SGD)", "critical lr"):
        assert label in text, label
    assert png.stat().st_size > 10_000
    none = default_grid.assign(rate=np.nan)
    plots.rate(none, curve, theory, png, svg)
    assert "no measured rate" in svg.read_text()


def test_rate_plot_draws_each_optimizers_own_predicted_curve(momentum_grid, tmp_path):
    """With momentum the theory curve is the optimizer's own (rho^2 of its 2x2 step over lr /
    its own critical lr), not plain descent's: heavy ball's is flat at beta = 0.9 (about 21.9
    epochs per decade) where its measured points sit; plain descent's V and fastest lr are not
    drawn for them."""
    from matplotlib.figure import Figure

    config = grid_config({"tutorial": "default"}, optimizers=("heavy_ball", "nesterov"))
    specs = ex(config).optimizers
    th = theories(ex(config), ["tutorial"])
    theory = theory_table(th, optimizers=specs)
    curve = rate_curve_table(th, {n: specs[n] for n in ("heavy_ball", "nesterov")})
    png, svg = tmp_path / "rate.png", tmp_path / "rate.svg"
    drawn: list = []
    original = Figure.savefig
    try:
        Figure.savefig = lambda self, *a, **k: (drawn.append(self), original(self, *a, **k))[1]
        plots.rate(momentum_grid, curve, theory, png, svg)
    finally:
        Figure.savefig = original
    text = svg.read_text()
    for label in ("heavy_ball: predicted", "nesterov: predicted", "ρ²"):
        assert label in text, label
    assert "(1 − lr·λ)²" not in text and "fastest lr" not in text
    curves = [ln for ln in drawn[0].axes[0].get_lines() if ln.get_linestyle() == "--"]
    assert len(curves) == 4  # each optimizer's curve in two pieces, either side of x = 1
    x, y = curves[0].get_xdata(), curves[0].get_ydata()
    flat = y[(x > 0.2) & (x < 0.9)]
    np.testing.assert_allclose(flat, np.log(10) / -np.log(0.9), rtol=1e-9)
