"""Minibatch theory (gdbench.minibatch) against references written here: the mean-square bound
against the second moment propagated exactly over every possible batch, and the shuffled
horizon edge against a direct simulation of torch's steps on the engines' own permutations,
searched by its own bisection. If these fail, the edge table's ``ms_critical_lr`` or its
minibatch ``horizon_edge`` say something other than what they claim."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from helpers import run_spec, shuffled_problem

from gdbench.config import check_config
from gdbench.edge import edge_table, shuffle_orders
from gdbench.experiment import Experiment
from gdbench.minibatch import ShuffledProblem, batch_factor, ms_bound, ms_critical_lr, shuffled_diverges, shuffled_edges
from gdbench.theory import hessian

X6 = np.array([-1.5, -0.2, 0.4, 1.1, 2.0, 3.3])
Y6 = np.array([2.9, 1.0, 0.2, -1.6, -2.7, -5.5])
ISSUE_LINE = {"synthetic": {"n": 200, "slope": -4.0, "intercept": 7.0, "noise": 1.0, "x_min": -4.0, "x_max": 4.0}}


def exact_map(x: np.ndarray, lr: float, batch: int, wd: float = 0.0) -> list[np.ndarray]:
    """The step matrices ``A_S = I - lr (H_S + wd I)`` of every B-subset S (each equally likely)."""
    a = np.stack([x, np.ones_like(x)], axis=1)
    out = []
    for subset in itertools.combinations(range(x.size), batch):
        h = 2.0 * a[list(subset)].T @ a[list(subset)] / batch
        out.append(np.eye(2) - lr * (h + wd * np.eye(2)))
    return out


def second_moment_growth(x: np.ndarray, lr: float, batch: int, wd: float = 0.0, steps: int = 3000) -> float:
    """Per-step growth of ``trace E[e e^T]`` after ``steps`` steps of ``M -> mean_S A_S M A_S``
    (the homogeneous part: no noise), from ``M = I`` and rescaled to trace 1 each step:
    below 1 the second moment contracts, above 1 it grows."""
    mats = exact_map(x, lr, batch, wd)
    M = np.eye(2) / 2
    growth = 1.0
    for _ in range(steps):
        M = sum(A @ M @ A.T for A in mats) / len(mats)
        growth = float(np.trace(M))
        M /= growth
    return growth


def reference_ms_edge(x: np.ndarray, batch: int, wd: float = 0.0) -> float:
    """The smallest lr whose spectral radius of the exact subset-averaged ``E[A (x) A]`` reaches
    1: a fine scan from 0 for the first crossing, then bisection."""
    mats = exact_map(x, 1.0, batch, wd)  # A_S(lr) = I - lr K_S: rebuild per lr from K_S

    def rho(lr: float) -> float:
        T = sum(np.kron(np.eye(2) - lr * (np.eye(2) - A), np.eye(2) - lr * (np.eye(2) - A)) for A in mats) / len(mats)
        return float(np.max(np.abs(np.linalg.eigvals(T))))

    grid = np.linspace(1e-6, 4.0 / np.linalg.eigvalsh(hessian(x) + wd * np.eye(2)).max(), 4000)
    first = next(i for i, lr in enumerate(grid) if rho(lr) >= 1.0)
    lo, hi = grid[first - 1], grid[first]
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if rho(mid) < 1.0 else (lo, mid)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize(("batch", "wd"), [(1, 0.0), (2, 0.0), (3, 0.0), (5, 0.0), (2, 0.3)])
def test_ms_bound_equals_the_exact_second_moment_over_every_batch(batch: int, wd: float) -> None:
    """The closed form (c_B Sigma_h) equals the map averaged over all B-subsets, and the
    exactly propagated second moment contracts just below the bound and grows just above."""
    bound = ms_critical_lr(X6, batch, wd)
    assert bound == pytest.approx(reference_ms_edge(X6, batch, wd), rel=1e-9)
    assert second_moment_growth(X6, bound * 0.99, batch, wd) < 1.0 < second_moment_growth(X6, bound * 1.01, batch, wd)


def test_ms_bound_is_the_full_batch_critical_lr_at_full_batch_and_falls_with_the_batch() -> None:
    lam_max = float(np.linalg.eigvalsh(hessian(X6)).max())
    assert ms_critical_lr(X6, X6.size) == pytest.approx(2.0 / lam_max, rel=1e-12)
    bounds = [ms_critical_lr(X6, b) for b in range(1, X6.size + 1)]
    assert all(a < b for a, b in itertools.pairwise(bounds))
    assert batch_factor(6, 6) == 0.0 and batch_factor(6, 1) == 1.0


def test_ms_bound_of_equal_x_is_the_full_batch_one_and_it_covers_plain_sgd_only() -> None:
    x = np.full(5, 2.0)
    assert ms_critical_lr(x, 2) == pytest.approx(2.0 / 10.0)
    assert math.isnan(ms_bound("sgd", 0.9, 0.0, X6, 2))  # momentum: not derived
    assert math.isnan(ms_bound("adam", 0.0, 0.0, X6, 2))
    assert math.isnan(ms_bound("sgd", 0.0, 0.0, X6, None)) and math.isnan(ms_bound("sgd", 0.0, 0.0, X6, 6))
    assert ms_bound("sgd", 0.0, 0.1, X6, 2) == ms_critical_lr(X6, 2, 0.1)


def simulate_diverges(x, y, orders, batch, lr, epochs, factor=1.0e6, momentum=0.0, nesterov=False, wd=0.0) -> bool:
    """torch.optim.SGD's minibatch steps written out point by point (float64), on the given
    permutations; diverged when a full-data MSE at an epoch's start passes factor x the first."""
    W = b = 0.0
    buf = None
    c0 = float(np.mean((W * x + b - y) ** 2))
    for k in range(epochs + 1):
        c = float(np.mean((W * x + b - y) ** 2))
        if not c <= factor * c0:
            return True
        if k == epochs:
            return False
        order = orders[k]
        for start in range(0, x.size, batch):
            idx = order[start : start + batch]
            r = W * x[idx] + b - y[idx]
            g = np.array([np.mean(2 * r * x[idx]), np.mean(2 * r)]) + wd * np.array([W, b])
            if momentum:
                buf = g.copy() if buf is None else momentum * buf + g
                g = g + momentum * buf if nesterov else buf
            W, b = W - lr * g[0], b - lr * g[1]
    return False


def reference_shuffled_edge(x, y, orders, batch, epochs, lr_min, lr_max, **kw) -> float:
    """The first lr on a log scan of [lr_min, lr_max] that diverges, narrowed by bisection."""
    grid = np.geomspace(lr_min, lr_max, 200)
    first = next(i for i, lr in enumerate(grid) if simulate_diverges(x, y, orders, batch, lr, epochs, **kw))
    lo, hi = grid[first - 1], grid[first]
    while hi / lo - 1 > 1e-9:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if simulate_diverges(x, y, orders, batch, mid, epochs, **kw) else (mid, hi)
    return math.sqrt(lo * hi)


def _problem(batch: int, kw: dict, epochs: int = 60) -> tuple[ShuffledProblem, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = np.linspace(-2.0, 3.0, 11)
    y = 1.5 - 0.7 * x + 0.4 * rng.standard_normal(x.size)
    orders = np.stack([rng.permutation(x.size) for _ in range(epochs)])
    options = {"momentum": kw.get("momentum", 0.0), "nesterov": kw.get("nesterov", False)}
    problem = shuffled_problem(x, y, orders, batch, epochs=epochs, weight_decay=kw.get("wd", 0.0), **options)
    return problem, x, y, orders


@pytest.mark.parametrize(("batch", "kw"), [(1, {}), (4, {}), (3, {"momentum": 0.6}), (2, {"wd": 0.2})])
def test_shuffled_edge_equals_a_direct_simulation_on_the_same_permutations(batch: int, kw: dict) -> None:
    problem, x, y, orders = _problem(batch, kw)
    edge = float(shuffled_edges([problem], 1e-3, 10.0, rel_width=1e-10)[0])
    assert edge == pytest.approx(reference_shuffled_edge(x, y, orders, batch, 60, 1e-3, 10.0, **kw), rel=1e-7)
    below, above = shuffled_diverges([problem], np.array([[edge * (1 - 1e-6), edge * (1 + 1e-6)]]))[0]
    assert not below and above


def test_where_divergence_is_not_monotone_the_edge_is_the_first_divergence_the_combs_see() -> None:
    """Nesterov on these permutations diverges on [0.2172, 0.2233], not on [0.2233, 0.2240],
    and again above: the first comb's probe at 0.2236 falls in the gap, so the search's edge
    (like the located edge's, with the same combs) is the second window's start. The direct
    simulation confirms the boundary and that no probe of the first comb below it diverges."""
    kw = {"momentum": 0.5, "nesterov": True}
    problem, x, y, orders = _problem(2, kw)
    edge = float(shuffled_edges([problem], 1e-3, 10.0, rel_width=1e-10, per_round=64)[0])
    assert not simulate_diverges(x, y, orders, 2, edge * (1 - 1e-7), 60, **kw)
    assert simulate_diverges(x, y, orders, 2, edge * (1 + 1e-7), 60, **kw)
    comb = np.geomspace(1e-3, 10.0, 64)
    assert not any(simulate_diverges(x, y, orders, 2, lr, 60, **kw) for lr in comb[comb < edge])
    assert simulate_diverges(x, y, orders, 2, 0.22, 60, **kw) and edge > 0.22  # an earlier window, between probes
    assert reference_shuffled_edge(x, y, orders, 2, 60, 1e-3, 10.0, **kw) < 0.22


def _issue_config(batch_sizes: list, epochs: int = 100, seeds: tuple = (1, 2)) -> dict:
    return check_config(
        {
            "datasets": {"line": ISSUE_LINE},
            "grid": {"dataset": ["line"], "seed": list(seeds), "lr": [0.1], "epochs": [epochs], "device": ["cpu"]},
            "training": {"batch_size": batch_sizes, "dtype": "float64"},
            "timing": {"enabled": False},
        }
    )


def test_the_replayed_permutations_are_the_engines(tmp_path) -> None:
    """A float64 minibatch run trained by the engine diverges just above the shuffled horizon
    edge and not just below: the permutations replayed are the ones the engine drew."""
    from gdbench.engines import train

    experiment = Experiment.from_checked(_issue_config([10]), ["cpu"])
    data = experiment.data_source()
    for seed in (1, 2):
        points = data.get(run_spec(dataset="line", lr=0.1, seed=seed, epochs=60, batch_size=10))
        problem = shuffled_problem(points.x, points.y, shuffle_orders(seed, points.n, 60), 10, epochs=60)
        edge = float(shuffled_edges([problem], 1e-3, 10.0)[0])
        runs = [
            run_spec(dataset="line", lr=lr, seed=seed, epochs=60, batch_size=10, dtype="float64")
            for lr in (edge * (1 - 1e-7), edge * (1 + 1e-7))
        ]
        assert list(train(runs, data, experiment.train_options(record_every=0)).verdicts.diverged) == [False, True]


@pytest.mark.slow
def test_edge_table_minibatch_rows_hold_the_bound_and_the_shuffled_edge() -> None:
    """On the data where batch size 1 diverges below the full-batch bound: every minibatch
    row has the bound and a shuffled horizon edge, the located bracket holds that edge, the
    bound lies below it, and the full-batch columns are empty there."""
    table = edge_table(Experiment.from_checked(_issue_config([1, 10, "full"]), ["cpu"]))
    mini = table[table.batch_size != "full"]
    assert len(mini) == 4 and mini.critical_lr.isna().all()
    assert (mini.edge_lo < mini.horizon_edge).all() and (mini.horizon_edge <= mini.edge_hi).all()
    assert (mini.ms_critical_lr < mini.edge_lo).all()
    full = table[table.batch_size == "full"]
    assert full.ms_critical_lr.isna().all() and full.critical_lr.notna().all()
    ones = mini[mini.batch_size == "1"]
    assert (ones.edge_hi < full.critical_lr.to_numpy()).all()  # batch size 1 diverges below the full-batch bound


def test_summary_minibatch_rows_carry_the_bound_and_full_batch_rows_do_not() -> None:
    """Per run: ms_critical_lr (the bound of its dataset and batch size; Monte-Carlo-free, the
    exact subset reference above covers its value) and ms_lr_ratio on minibatch SGD rows;
    empty on full-batch rows and for momentum."""
    from gdbench.pipeline import train_runs

    config = _issue_config([1, 10, "full"], epochs=5, seeds=(1,))
    config["optimizers"] = {"sgd": {"sgd": {}}, "hb": {"sgd": {"momentum": 0.5}}}
    config["grid"]["optimizer"] = ["sgd", "hb"]
    config["grid"]["lr"] = [0.01, 0.02]
    experiment = Experiment.from_checked(check_config(config), ["cpu"])
    _, _, summary = train_runs(experiment, experiment.runs)
    x = experiment.data_source().get(experiment.runs[0]).x
    sgd_mini = (summary.batch_size.astype(str) != "full") & (summary.optimizer.astype(str) == "sgd")
    for size in (1, 10):
        rows = summary[sgd_mini & (summary.batch_size.astype(str) == str(size))]
        assert len(rows) == 2 and np.allclose(rows.ms_critical_lr, ms_critical_lr(x, size), rtol=1e-15)
        assert np.allclose(rows.ms_lr_ratio, rows.lr / rows.ms_critical_lr)
    assert summary.loc[~sgd_mini, ["ms_critical_lr", "ms_lr_ratio"]].isna().all().all()


def test_theory_table_has_a_row_per_batch_size_with_the_bound_on_minibatch_rows() -> None:
    from gdbench.pipeline import theory_table

    config = _issue_config([1, 10, "full"], seeds=(1,))
    config["datasets"]["tiny"] = {"x": [1.0, 2.0, 3.0], "y": [2.0, 4.0, 6.0]}
    config["grid"]["dataset"] = ["line", "tiny"]
    table = theory_table(Experiment.from_checked(check_config(config), ["cpu"]))
    assert (
        list(table.columns[:4]) == ["dataset", "seed", "optimizer", "batch_size"]
        and table.columns[-1] == "ms_critical_lr"
    )
    line = table[table.dataset == "line"].set_index("batch_size")
    assert line.loc[["1", "10"], "critical_lr"].isna().all() and (line.loc[["1", "10"], "critical_rule"] == "").all()
    assert line.loc["1", "ms_critical_lr"] < line.loc["10", "ms_critical_lr"] < line.loc["full", "critical_lr"]
    assert np.isnan(line.loc["full", "ms_critical_lr"])
    tiny = table[table.dataset == "tiny"]  # 3 points: batch sizes 10 and full are full batch, 1 is not
    assert tiny.set_index("batch_size").loc[["10", "full"], "critical_lr"].notna().all()
    assert tiny.set_index("batch_size").loc["1", "ms_critical_lr"] > 0


def test_edge_figure_draws_minibatch_cases_over_their_mean_square_bound(tmp_path) -> None:
    """A minibatch case with a bound is drawn over it (its tick and the legend say so, no ratio
    is printed for it); one without (momentum) still says it has no critical lr."""
    import pandas as pd

    from gdbench.edge import EDGE_COLUMNS
    from gdbench.plots import edge as edge_plot

    rows = []
    for seed in (1, 2, 3):
        rows.append(["line", "sgd", "10", "zeros", "float32", 300, seed, 0.1999, 0.2001, np.nan, 0.2, 0.1722])
        rows.append(["line", "hb", "10", "zeros", "float32", 300, seed, 0.05, 0.0501, np.nan, 0.0502, np.nan])
        rows.append(["line", "sgd", "full", "zeros", "float32", 300, seed, 0.18786, 0.18788, 0.18563, 0.18787, np.nan])
    edge_plot(pd.DataFrame(rows, columns=list(EDGE_COLUMNS)), tmp_path / "e.png", tmp_path / "e.svg")
    svg = (tmp_path / "e.svg").read_text()
    assert "over ms_critical_lr" in svg and "the mean-square bound" in svg and "no critical lr" in svg
    assert f"{0.2001 / 0.1722:.5g}" not in svg  # no ratio printed that no table holds
    assert f"{0.18788 / 0.18563:.5g}" in svg
