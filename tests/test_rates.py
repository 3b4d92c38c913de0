"""The measured rate: the recurrence fit (gdbench.rates) on hand-built float64 error sequences
and on real runs, against the theory's rate computed independently here."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pytest

from gdbench import analysis
from gdbench.analysis import _moving_directions
from gdbench.config import check_config
from gdbench.experiment import Experiment
from gdbench.pipeline import train_runs
from gdbench.rates import (
    _envelope,
    direction_bottoms,
    direction_rates,
    fit_window,
    recurrence_rate,
    recurrence_rates,
    window_bottom,
)


def heavy_ball_errors(lam: float, lr: float, beta: float, steps: int, e0: float = 1.0) -> np.ndarray:
    """The error along one eigen-direction under torch's heavy ball (buffer = first gradient)."""
    e, buf, out = e0, None, []
    for _ in range(steps):
        g = lam * e
        buf = g if buf is None else beta * buf + g
        e = e - lr * buf
        out.append(e)
    return np.array(out)


def spectral_radius_squared(lam: float, lr: float, beta: float) -> float:
    """The theory's rate, from the roots of z^2 - (1 + beta - lr lam) z + beta (independent of
    gdbench.stability)."""
    return float(np.max(np.abs(np.roots([1.0, -(1.0 + beta - lr * lam), beta]))) ** 2)


def test_slowly_beating_momentum_gets_its_rate():
    """Complex roots with an argument of 0.0125 rad (a beat of ~500 epochs): a window of a
    fraction of the beat still gives |z|^2 (the log-slope of the excess does not)."""
    beta = 0.9
    lr = 0.5
    lam = (1 + beta - 2 * np.sqrt(beta) * np.cos(0.0125)) / lr  # roots sqrt(beta) e^(+-0.0125 i)
    rate = spectral_radius_squared(lam, lr, beta)
    roots = np.roots([1.0, -(1.0 + beta - lr * lam), beta])
    assert 0.005 < abs(np.angle(roots[0])) < 0.05  # slowly beating
    e = heavy_ball_errors(lam, lr, beta, 120)
    assert recurrence_rate(np.arange(120), e[:, None], 2) == pytest.approx(rate, abs=1e-9)


def test_fast_plain_descent_gets_its_rate():
    """Plain SGD contracting by 0.05 per epoch in excess: 8 clean epochs suffice."""
    t = np.arange(8)
    e = np.stack([0.7 * (1 - 0.776) ** t, 0.3 * (1 - 0.2) ** t], axis=1)  # two directions
    assert direction_rates(t, e, np.zeros(2), np.zeros(2), 1) == pytest.approx(0.8**2, abs=1e-12)
    assert recurrence_rate(t, e[:, :1], 1) == pytest.approx(0.224**2, abs=1e-12)


def test_guards_give_nan():
    """Too few epochs, uneven spacing, or errors the recurrence does not describe: NaN."""
    assert np.isnan(recurrence_rate(np.arange(2), np.ones((2, 1)), 1))
    assert np.isnan(recurrence_rate(np.arange(4), np.ones((4, 2)), 2))  # 2 equations per unknown
    assert np.isnan(recurrence_rate(np.array([0, 1, 3, 4, 5, 6]), np.ones((6, 1)), 1))
    noise = np.random.default_rng(0).normal(size=(50, 1))
    assert np.isnan(recurrence_rate(np.arange(50), noise, 1))
    # a direction that carries excess but cannot be fitted makes the run's rate NaN
    e = np.stack([0.5 ** np.arange(20), np.r_[1.0, np.zeros(19)]], axis=1)
    assert np.isnan(direction_rates(np.arange(20), e, np.array([1e-9, 1e-9]), np.array([1e-9, 1e-9]), 1))


def test_measured_rate_matches_the_theory_on_real_runs():
    """Heavy ball 0.9 on a dataset whose slow roots beat slowly (float32, seed 3), plain SGD
    fast runs and Nesterov: every filled rate within 1e-3 of predicted_rate, and filled for the
    review's slowly beating heavy-ball run (lr 0.0431914) and for plain SGD below rate 0.32."""
    config = check_config(
        {
            "datasets": {"beat": {"synthetic": {"n": 50, "slope": -0.5, "intercept": 3.0, "noise": 0.3,
                                                "x_min": 3.0, "x_max": 6.0}}},
            "optimizers": {"sgd": {"sgd": {}}, "hb": {"sgd": {"momentum": 0.9}},
                           "nag": {"sgd": {"momentum": 0.9, "nesterov": True}}},
            "grid": {"dataset": ["beat"], "optimizer": ["sgd", "hb", "nag"],
                     "lr": [0.001, 0.005, 0.02, 0.0431914, 0.06, 0.07], "seed": [3], "epochs": [3000],
                     "device": ["cpu"]},
            "training": {"dtype": ["float32", "float64"]},
        }
    )  # fmt: skip
    summary = train_runs(experiment := Experiment.from_checked(config, ["cpu"]), experiment.runs)[2]
    conv = summary[summary["converged_at"].notna() & ~summary["diverged"]]
    filled = conv[conv["rate"].notna()]
    assert len(filled) >= 0.9 * len(conv)
    np.testing.assert_allclose(filled["rate"], filled["predicted_rate"], atol=1e-3)
    beat = summary[(summary["optimizer"] == "hb") & (summary["lr"] == 0.0431914) & (summary["dtype"] == "float32")]
    assert beat["rate"].iloc[0] == pytest.approx(beat["predicted_rate"].iloc[0], abs=1e-3)
    fast_config = check_config(
        {
            "datasets": {"round": {"x": [-1.0, 1.0, 0.5], "y": [0.0, 2.0, 1.0]}},
            "grid": {"dataset": ["round"], "lr": [0.45, 0.5], "seed": [1], "epochs": [200], "device": ["cpu"]},
            "training": {"dtype": ["float32", "float64"]},
        }
    )
    fast = train_runs(fast_run := Experiment.from_checked(fast_config, ["cpu"]), fast_run.runs)[2]
    assert (fast["predicted_rate"] < 0.32).all() and fast.loc[fast["dtype"] == "float64", "rate"].notna().all()
    fitted = fast[fast["rate"].notna()]
    np.testing.assert_allclose(fitted["rate"], fitted["predicted_rate"], atol=1e-3)


def test_batched_fits_give_each_series_its_own_rate_and_guards() -> None:
    """recurrence_rates (one SVD and eigenvalue call per window length) agrees with
    recurrence_rate series by series to rounding, NaN where it gives NaN: geometric and
    momentum errors with noise, uneven spacing, too few records, a non-finite record, noise."""
    rng = np.random.default_rng(0)
    series = []
    for k in range(60):
        T = int(rng.integers(3, 80))
        t = np.arange(T) * int(rng.integers(1, 4))
        if k % 2:
            e = heavy_ball_errors(0.3, float(rng.uniform(0.1, 2)), float(rng.uniform(0, 0.9)), T)
        else:
            e = float(rng.uniform(0.5, 0.99)) ** t * (1 + 1e-6 * rng.standard_normal(T))
        series.append((t, e))
    series.append((np.array([0, 1, 3, 4, 5, 6]), np.ones(6)))  # uneven
    series.append((np.arange(6), np.array([1.0, 0.5, np.inf, 0.1, 0.05, 0.02])))  # not finite
    series.append((np.arange(50), rng.standard_normal(50)))  # noise: no recurrence
    for order in (1, 2):
        batched = recurrence_rates(series, order)
        one = np.array([recurrence_rate(t, e[:, None], order) for t, e in series])
        assert np.array_equal(np.isnan(batched), np.isnan(one))
        assert np.isfinite(one).sum() > 20
        # 1e-9: an order-2 fit of a one-mode geometric series is ill-conditioned (its two
        # regressors nearly collinear), where two SVD routines agree to ~1e-11 only
        np.testing.assert_allclose(batched, one, rtol=1e-9 if order == 2 else 1e-13, equal_nan=True)
        assert np.isnan(batched[-3:]).all()


def measured_rates_run_by_run(batch, points, optimizers) -> np.ndarray:
    """The reference: :func:`gdbench.analysis.measured_rates` run by run and direction by
    direction (each run's recorded entries, fit window and direction series found on their
    own, each direction's end by its envelope)."""
    v, rate, recorded = batch.verdicts, np.full(len(batch), np.nan), batch.recorded_mask()
    for i, run in enumerate(batch.runs):
        spec, data = optimizers[run.optimizer], points.get(run)
        if (run.batch_size is not None and run.batch_size < data.n) or spec.kind != "sgd" or spec.weight_decay:
            continue
        if v.converged_at[i] < 0 and not v.diverged[i]:
            continue
        epochs, cost = batch.epochs[recorded[i]], batch.cost[i, recorded[i]]
        best = points.optimum(run)
        errors = np.stack([batch.W[i, recorded[i]] - best.W_star, batch.b[i, recorded[i]] - best.b_star], axis=1)
        lam, moving = _moving_directions(data)
        components, excess = errors @ moving, cost.astype(np.float64) - v.optimal_cost[i]
        if v.diverged[i]:
            window = fit_window(excess, 0.0, int(np.searchsorted(epochs, v.diverged_at[i])))
            bottoms = resolved = np.zeros(lam.size)
        else:
            y_scale = max(float(np.max(np.abs(data.y))), abs(best.b_star))
            window = fit_window(excess, window_bottom(v.floor[i], y_scale, run.dtype))
            p_scale = max(abs(best.W_star), abs(best.b_star))
            bottoms, resolved = direction_bottoms(run.lr, lam, v.floor[i], y_scale, p_scale, run.dtype)
        t, u = epochs[window], components[window]
        rates = []
        for j in range(u.shape[1]):
            keep = np.flatnonzero(_envelope(np.abs(u[:, j])) > bottoms[j])
            order = 1 if spec.is_plain else 2
            r = recurrence_rates([(t[: keep[-1] + 1], u[: keep[-1] + 1, j])], order)[0] if keep.size else np.nan
            above = bool(u.shape[0]) and float(np.max(np.abs(u[:, j]))) > resolved[j]
            if not np.isfinite(r) and above:
                break
            rates.append(r)
        else:
            finite = [r for r in rates if np.isfinite(r)]
            rate[i] = max(finite) if finite else np.nan
    return rate


@pytest.mark.parametrize("record_every", [1, 7])
def test_measured_rates_as_one_array_program_equal_the_run_by_run_reference(record_every) -> None:
    """measured_rates (runs grouped by x, order, epochs and dtype, each group one array
    program, in blocks) gives every run the rate the run-by-run reference gives, bit for bit:
    converged, diverged and stalled runs, plain SGD and heavy ball, float32 and float64, two
    run lengths whose schedules differ (record_every 7: 300 is not on the 2000-epoch runs'),
    seed-dependent data, Adam and weight decay left empty, in blocks of a few runs."""
    config = check_config(
        {
            "datasets": {"tutorial": {"x": [1, 2, 3], "y": [2, 4, 6]},
                         "noisy": {"synthetic": {"n": 20, "slope": 2.0, "intercept": 0.5, "noise": 0.5}}},
            "optimizers": {"sgd": {"sgd": {}}, "hb": {"sgd": {"momentum": 0.9}},
                           "wd": {"sgd": {"weight_decay": 0.01}}, "adam": {"adam": {}}},
            "grid": {"dataset": ["tutorial", "noisy"], "optimizer": ["sgd", "hb", "wd", "adam"],
                     "lr": [1e-4, 0.003, 0.03, 0.1, 0.19, 0.3], "seed": [1, 2], "epochs": [300, 2000],
                     "device": ["cpu"]},
            "training": {"dtype": ["float32", "float64"], "record_every": record_every},
        }
    )  # fmt: skip
    experiment = Experiment.from_checked(config, ["cpu"])
    batch = train_runs(experiment, experiment.runs)[0]
    data, optimizers = experiment.data_source(), experiment.train_options(None).optimizers
    reference = measured_rates_run_by_run(batch, data, optimizers)
    v = batch.verdicts
    assert np.isfinite(reference[v.diverged]).sum() > 5 and np.isfinite(reference[~v.diverged]).sum() > 20
    assert np.isnan(reference).sum() > 20  # Adam, weight decay, runs without a verdict
    for block in (1 << 20, 3000):  # all runs at once; a few runs per block
        with patch.object(analysis, "_FIT_BLOCK", block):
            batched = analysis.measured_rates(batch, data, optimizers)
        assert np.array_equal(batched, reference, equal_nan=True)
