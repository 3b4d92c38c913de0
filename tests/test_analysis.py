"""The per-run analysis against independent float64 references: sustained convergence for
momentum, the regularised optimum of weight decay, the optimum of dtype-rounded points, Adam's
overshoot, and no full-batch theory on minibatch rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import LESSON_AND_NOISY, OPTIMIZER_SPECS, criteria, lesson_lambdas, optimizer_spec, run_spec, train_options

from gdbench import stability, tables
from gdbench.analysis import analyse_runs
from gdbench.config import check_config
from gdbench.engines import DataSource, train
from gdbench.experiment import Experiment
from gdbench.pipeline import train_runs
from gdbench.theory import analyse


def summary_of(datasets, optimizers, lrs, epochs, dtype="float64", batch_size="full", seeds=(1,)):
    config = check_config(
        {
            "datasets": datasets,
            "optimizers": optimizers,
            "grid": {
                "dataset": list(datasets),
                "optimizer": list(optimizers),
                "lr": list(lrs),
                "seed": list(seeds),
                "epochs": [epochs],
                "device": ["cpu"],
            },
            "training": {"dtype": dtype, "batch_size": batch_size},
        }
    )
    batch, traj, summary = train_runs(experiment := Experiment.from_checked(config, ["cpu"]), experiment.runs)
    return batch, traj, summary


def sustained(excess: np.ndarray, tol: float) -> int:
    """The reference: the first epoch from which |excess| <= tol to the end (-1: none)."""
    outside = np.flatnonzero(~(np.abs(excess) <= tol))
    if outside.size == 0:
        return 0
    return -1 if outside[-1] == excess.size - 1 else int(outside[-1] + 1)


def heavy_ball_reference(x, y, lr, beta, epochs):
    """torch.optim.SGD(momentum=beta) on the MSE of a line, simulated in float64 numpy: costs."""
    p, buf, costs = np.zeros(2), None, []
    for _ in range(epochs + 1):
        r = p[0] * x + p[1] - y
        costs.append(np.mean(r * r))
        g = np.array([np.mean(2 * r * x), np.mean(2 * r)])
        buf = g.copy() if buf is None else beta * buf + g
        p = p - lr * buf
    return np.array(costs)


@pytest.mark.parametrize(
    ("points", "lr", "first", "held"),
    [(([2.0, 2, 2], [1.0, 3, 5]), 0.0038, 9, 132), (([-3.0, 5], [7.0, -9]), 0.027839, 7, 59)],
)
def test_momentum_converged_at_is_sustained_not_the_first_dip(points, lr, first, held):
    """Heavy ball 0.9 dips below the tolerance and climbs out again: ``converged_at`` is the
    epoch from which its excess stays within (the reference's own simulation), ``reached_at``
    the first dip; nesterov on the second dataset likewise."""
    x, y = (np.asarray(v) for v in points)
    optimizers = {"hb": {"sgd": {"momentum": 0.9}}, "nag": {"sgd": {"momentum": 0.9, "nesterov": True}}}
    _, traj, summary = summary_of({"d": {"x": list(x), "y": list(y)}}, optimizers, [lr], 3000)
    hb = summary[summary["optimizer"] == "hb"].iloc[0]
    costs = heavy_ball_reference(x, y, lr, 0.9, 3000)
    A = np.stack([x, np.ones_like(x)], 1)
    c_star = float(np.mean((A @ np.linalg.lstsq(A, y, rcond=None)[0] - y) ** 2))
    excess = costs - c_star
    tol = 1e-6 * excess[0]
    assert hb["converged_at"] == sustained(excess, tol)
    assert hb["reached_at"] == int(np.argmax(np.abs(excess) <= tol))
    assert hb["reached_at"] < hb["converged_at"]
    # and from the trajectory table alone, for every optimizer: the recorded costs agree
    for _, row in summary.iterrows():
        cost = traj.loc[traj["run_id"] == row["run_id"], "cost"].to_numpy(np.float64)
        ref = sustained(cost - row["optimal_cost"], 1e-6 * (cost[0] - row["optimal_cost"]))
        assert row["converged_at"] == ref
    nag = summary[summary["optimizer"] == "nag"].iloc[0]
    if x.size == 2:
        assert (nag["reached_at"], nag["converged_at"]) == (first, held)
    else:
        assert (hb["reached_at"], hb["converged_at"]) == (first, held)


def test_weight_decay_is_measured_against_the_regularised_optimum():
    """Plain SGD with weight decay 0.05 settles at the minimum of C + (wd/2)|p|^2 (reference: a
    float64 numpy solve and a long simulation of torch's update): ``optimal_cost`` is the cost
    there, and ``converged_at`` is where the run settles there, not a passing crossing of the
    least-squares optimum."""
    x, y, wd, lr = np.array([2.0, 2, 2]), np.array([1.0, 3, 5]), 0.05, 0.1791
    _, traj, summary = summary_of(
        {"d": {"x": list(x), "y": list(y)}}, {"wd": {"sgd": {"weight_decay": wd}}}, [lr], 3000
    )
    row = summary.iloc[0]
    A = np.stack([x, np.ones_like(x)], 1)
    H = 2 * A.T @ A / x.size
    p_wd = np.linalg.solve(H + wd * np.eye(2), 2 * A.T @ y / x.size)
    c_wd = float(np.mean((A @ p_wd - y) ** 2))
    p = np.zeros(2)
    for _ in range(5000):  # torch: grad + wd p, then p -= lr (grad + wd p)
        p = p - lr * (2 * A.T @ (A @ p - y) / x.size + wd * p)
    np.testing.assert_allclose(p, p_wd, rtol=1e-12)
    assert row["optimal_cost"] == pytest.approx(c_wd, rel=1e-12)
    cost = traj["cost"].to_numpy(np.float64)
    assert row["converged_at"] == sustained(cost - c_wd, 1e-6 * (cost[0] - c_wd))
    assert row["converged_at"] > 23  # the passing crossing of the least-squares optimum
    assert abs(row["excess_cost"]) <= 1e-6 * (cost[0] - c_wd)
    assert np.isnan(row["predicted_rate"]) and np.isnan(row["rate"])


def test_float32_runs_are_measured_against_their_rounded_points():
    """Large |y| in float32: the optimum of the float32 points, not of the float64 ones; the
    converged runs' final excess then lies within the floor's reach instead of -9.5e-3."""
    data = {"big": {"synthetic": {"n": 200, "slope": 1500.0, "intercept": -40000.0, "noise": 25.0,
                                  "x_min": -2.0, "x_max": 5.0}}}  # fmt: skip
    batch, _, summary = summary_of(data, {"sgd": {"sgd": {}}}, [0.1], 3000, dtype="float32")
    x, y = (np.asarray(a, dtype=np.float32).astype(np.float64) for a in _points(data, 1))
    A = np.stack([x, np.ones_like(x)], 1)
    c32 = float(np.mean((A @ np.linalg.lstsq(A, y, rcond=None)[0] - y) ** 2))
    row = summary.iloc[0]
    assert row["optimal_cost"] == pytest.approx(c32, rel=1e-12)
    assert row["converged_at"] >= 0 and abs(row["excess_cost"]) <= batch.verdicts.floor[0]


def _points(data, seed):
    from gdbench.data import parse_dataset

    ((name, raw),) = data.items()
    d = parse_dataset(name, raw).build(seed=seed)
    return d.x, d.y


def test_adam_overshoot_that_comes_back_is_not_divergence():
    """Default Adam on a 15-point line: lr 930 and 5000 pass 1e6 x the initial cost in their
    first epoch and converge later; they are not diverged, in both engines alike."""
    data = {"d": {"synthetic": {"n": 15, "slope": -2.5, "intercept": 0.7, "x_min": 0.1, "x_max": 1.5}}}
    frames = []
    for engine in ("batched", "loop"):
        config = check_config(
            {
                "datasets": data,
                "optimizers": {"adam": {"adam": {}}},
                "grid": {"dataset": ["d"], "optimizer": ["adam"], "lr": [900.0, 930.0, 5000.0], "seed": [1],
                         "epochs": [300], "device": ["cpu"]},
                "training": {"dtype": "float64", "engine": engine},
            }
        )  # fmt: skip
        _, traj, summary = train_runs(experiment := Experiment.from_checked(config, ["cpu"]), experiment.runs)
        frames.append((traj, summary))
    (traj, summary), (traj_loop, summary_loop) = frames
    assert not summary["diverged"].any() and (summary["converged_at"] > 0).all()
    assert traj.groupby("run_id")["epoch"].max().eq(300).all()  # trained on through the overshoot
    c0 = traj[traj["epoch"] == 0].set_index("run_id")["cost"]
    peak = traj[traj["epoch"] == 1].set_index("run_id")["cost"]
    assert (peak.iloc[1:] > 1e6 * c0.iloc[1:]).all()  # they did overshoot
    pd.testing.assert_frame_equal(traj.drop(columns="engine"), traj_loop.drop(columns="engine"))
    verdict = ["diverged", "diverged_at", "converged_at", "reached_at", "final_cost"]
    pd.testing.assert_frame_equal(summary[verdict], summary_loop[verdict])


def test_minibatch_rows_get_no_full_batch_theory():
    """Minibatch rows: critical_lr, fastest_lr, lr_ratio, predicted_rate, predicted_diverged
    empty; the full-batch rows of the same grid keep them."""
    data = {"s": {"synthetic": {"n": 200, "slope": -4.0, "intercept": 7.0, "noise": 1.0, "x_min": -4.0,
                                "x_max": 4.0}}}  # fmt: skip
    _, _, summary = summary_of(data, {"sgd": {"sgd": {}}}, [0.05, 0.15], 20, batch_size=[1, 10, "full"])
    mini = summary["batch_size"].astype(str) != "full"
    assert mini.sum() == 4
    for col in ("critical_lr", "fastest_lr", "lr_ratio", "predicted_rate"):
        assert summary.loc[mini, col].isna().all() and summary.loc[~mini, col].notna().all()
    assert summary.loc[mini, "predicted_diverged"].isna().all()
    assert summary.loc[~mini, "predicted_diverged"].notna().all()


def first_diverging_lr(x, y, epochs, factor, lo, hi):
    """An independent reference: bisection of plain SGD simulated in float64 numpy (the cost
    before each update, as the engines record it)."""

    def diverges(lr):
        p = np.zeros(2)
        r = p[0] * x + p[1] - y
        c0 = np.mean(r * r)
        for _ in range(epochs + 1):
            r = p[0] * x + p[1] - y
            if not np.mean(r * r) <= factor * c0:
                return True
            p = p - lr * np.array([np.mean(2 * r * x), np.mean(2 * r)])
        return False

    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if diverges(mid) else (mid, hi)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("epochs", [300, 2000])
def test_horizon_edge_in_closed_form_and_predicted_diverged_per_horizon(epochs):
    """Plain SGD on the lesson's data: ``horizon_edge`` (closed form) equals an independent
    float64 bisection within 1e-9 relative; ``predicted_diverged`` is the run's own horizon's:
    1.01 x critical at 300 epochs neither diverges nor is predicted to, at 2000 epochs both."""
    x, y = np.array([1.0, 2, 3]), np.array([2.0, 4, 6])
    lam_max = float(np.linalg.eigvalsh(2 * np.stack([x, np.ones(3)], 1).T @ np.stack([x, np.ones(3)], 1) / 3)[-1])
    critical = 2 / lam_max
    _, _, summary = summary_of(
        {"t": {"x": list(x), "y": list(y)}}, {"sgd": {"sgd": {}}}, [0.99 * critical, 1.01 * critical], epochs
    )
    reference = first_diverging_lr(x, y, epochs, 1e6, critical, 1.1 * critical)
    np.testing.assert_allclose(summary["horizon_edge"], reference, rtol=1e-9)
    assert summary["predicted_diverged"].tolist() == summary["diverged"].tolist()
    assert summary["predicted_diverged"].tolist() == [False, epochs == 2000]
    assert (summary["predicted_rate"].iloc[1] > 1) and (summary["lr_ratio"].iloc[1] > 1)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_horizon_edge_and_predicted_diverged_from_the_closed_form(nesterov):
    """Heavy ball and Nesterov (0.9) on the lesson's data, 300 epochs, float64: the summary's
    ``horizon_edge`` equals an independent float64 bisection of torch's steps within 1e-9, and
    runs 1e-6 below and above it are predicted (and found) not to diverge and to diverge; just
    above the critical lr (1.0001 x) a run of 300 epochs does not diverge, nor is predicted to."""
    from test_horizon_formula import critical, reference_edges

    x, y = np.array([1.0, 2, 3]), np.array([2.0, 4, 6])
    setting = [(0.9, nesterov, 0.0, 0.0)]
    edge = reference_edges(x, y, 0.0, 0.0, 300, setting)[0]
    crit = critical(x, setting)[0]
    optimizer = {"m": {"sgd": {"momentum": 0.9, "nesterov": nesterov}}}
    lrs = [1.0001 * crit, edge * (1 - 1e-6), edge * (1 + 1e-6)]
    _, _, summary = summary_of({"t": {"x": list(x), "y": list(y)}}, optimizer, lrs, 300)
    np.testing.assert_allclose(summary["horizon_edge"], edge, rtol=1e-9)
    assert summary["predicted_diverged"].tolist() == summary["diverged"].tolist() == [False, False, True]


def test_summary_theory_is_per_run_optimizer_and_engines_agree_with_it() -> None:
    """The summary's critical_lr, lr_ratio and predicted_diverged are the run's optimizer's;
    full-batch float64 runs just below / above each critical lr converge / diverge as
    predicted; Adam's theory columns are empty."""
    _, lam_max = lesson_lambdas()
    specs = {
        s.name: s
        for s in (optimizer_spec("sgd"), OPTIMIZER_SPECS[2], OPTIMIZER_SPECS[4], optimizer_spec("adam", kind="adam"))
    }
    runs = []
    for name, spec in specs.items():
        crit = stability.critical_lr(spec, lam_max) if spec.kind == "sgd" else 0.2
        runs += [run_spec("tutorial", f * crit, 1, 3000, dtype="float64", optimizer=name) for f in (0.97, 1.03)]
    batch = train(runs, LESSON_AND_NOISY, train_options(optimizers=specs))
    table = tables.summary(batch, analyse_runs(batch, DataSource(LESSON_AND_NOISY), specs, criteria().diverged_factor))
    sgd_like = table[table["optimizer"] != "adam"]
    assert sgd_like["predicted_diverged"].tolist() == sgd_like["diverged"].tolist() == [False, True] * 3
    np.testing.assert_allclose(sgd_like["lr_ratio"], [0.97, 1.03] * 3)
    assert sgd_like["critical_lr"].nunique() == 3
    adam = table[table["optimizer"] == "adam"]
    assert adam["critical_lr"].isna().all() and adam["predicted_diverged"].isna().all()
    theory = tables.theory_table({"tutorial": analyse(LESSON_AND_NOISY["tutorial"].build(seed=0))}, optimizers=specs)
    assert theory["optimizer"].tolist() == list(specs) and theory["critical_lr"].isna().tolist() == [0, 0, 0, 1]
