"""The stability edge: the located bracket holds theory's finite-horizon edge, meets its width,
searches each seed that matters once, says "no divergence" plainly, and the workflow's table
and plot come out with their contract.

The float64 reference here is independent of :mod:`gdbench.horizon`: torch.optim.SGD's update
rule written out step by step on the parameters, with the cost computed from the data, and
checked once against torch.optim.SGD itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image
import pytest
import torch
from helpers import horizon_problem

from gdbench.config import check_config
from gdbench.data import parse_dataset
from gdbench.edge import EDGE_COLUMNS, Case, edge_table, grid_cases, searched_cases
from gdbench.engines import DataSource
from gdbench.experiment import Experiment
from gdbench.horizon import horizon_edges
from gdbench.plots import edge as edge_plot
from gdbench.search import bracket

LESSON = {"x": [1, 2, 3], "y": [2, 4, 6]}
#: A dataset the edge was not tuned on: uneven x, a line with scatter, negative values.
OTHER = {"x": [-1.0, 0.5, 1.25, 2.0, 4.0], "y": [1.5, 0.75, 2.0, 2.5, 5.5]}


def reference_diverges(
    x: np.ndarray,
    y: np.ndarray,
    lrs: np.ndarray,
    epochs: int,
    factor: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> np.ndarray:
    """torch.optim.SGD on (W, b) from zeros, float64, one lr per row: diverged within epochs?"""
    lrs = np.asarray(lrs, dtype=np.float64)
    p = np.zeros((lrs.size, 2))
    buf = None
    out = np.zeros(lrs.size, dtype=bool)
    threshold = None
    with np.errstate(all="ignore"):
        for _ in range(epochs + 1):
            r = p[:, :1] * x[None, :] + p[:, 1:] - y[None, :]
            cost = np.mean(r * r, axis=1)
            if threshold is None:
                threshold = np.where(cost > 0, cost, 1.0) * factor
            out |= ~(cost <= threshold)
            g = np.stack([np.mean(2 * r * x[None, :], axis=1), np.mean(2 * r, axis=1)], axis=1)
            g = g + weight_decay * p
            if momentum:
                buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
                g = g + momentum * buf if nesterov else buf
            p = p - lrs[:, None] * g
    return out


def reference_edge(x: list[float], y: list[float], lo: float, hi: float, epochs: int = 2000, **sgd: float) -> float:
    """The smallest diverging lr in [lo, hi] by the reference, to 1e-9 relative."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    while hi / lo - 1 > 1e-9:
        comb = np.geomspace(lo, hi, 64)
        d = reference_diverges(xs, ys, comb, epochs, 1.0e6, **sgd)
        assert d[-1] and not d[0], "the reference bracket must hold the edge"
        first = int(d.argmax())
        lo, hi = comb[first - 1], comb[first]
    return float(np.sqrt(lo * hi))


def test_the_reference_is_torch_sgd() -> None:
    """The test's own float64 recurrence repeats torch.optim.SGD (heavy ball with dampening and
    weight decay, and Nesterov), so comparing with it compares with torch."""
    x, y = np.asarray(OTHER["x"]), np.asarray(OTHER["y"])
    xt, yt = torch.tensor(x)[:, None], torch.tensor(y)[:, None]
    for sgd in ({"momentum": 0.6, "dampening": 0.2, "weight_decay": 0.05}, {"momentum": 0.7, "nesterov": True}):
        W = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.SGD([W, b], lr=0.05, foreach=False, **sgd)
        for _ in range(50):
            cost = torch.mean((xt * W + b - yt) ** 2)
            opt.zero_grad()
            cost.backward()
            opt.step()
        p = _reference_params(x, y, 0.05, 50, **sgd)
        np.testing.assert_allclose(p, [W.item(), b.item()], rtol=1e-12)


def _reference_params(x: np.ndarray, y: np.ndarray, lr: float, steps: int, **sgd: float) -> list[float]:
    p = np.zeros(2)
    buf = None
    beta, damp = sgd.get("momentum", 0.0), sgd.get("dampening", 0.0)
    for _ in range(steps):
        r = p[0] * x + p[1] - y
        g = np.array([np.mean(2 * r * x), np.mean(2 * r)]) + sgd.get("weight_decay", 0.0) * p
        if beta:
            buf = g.copy() if buf is None else beta * buf + (1 - damp) * g
            g = g + beta * buf if sgd.get("nesterov") else buf
        p = p - lr * g
    return p.tolist()


def test_horizon_numbers_of_the_lesson() -> None:
    """The finite-horizon edges FACTS.md gives for the lesson's data (1e6, 2000 epochs)."""
    x, y = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])
    problems = [
        horizon_problem(x, y),
        horizon_problem(x, y, momentum=0.9),
        horizon_problem(x, y, momentum=0.9, nesterov=True),
    ]
    np.testing.assert_allclose(horizon_edges(problems, 1e-5, 100.0), [0.180607, 0.342579, 0.122482], atol=1e-6)


@pytest.mark.parametrize(
    "sgd", [{}, {"momentum": 0.75, "dampening": 0.25, "weight_decay": 0.1}, {"momentum": 0.55, "nesterov": True}]
)
def test_horizon_edge_equals_the_independent_reference(sgd: dict) -> None:
    """gdbench.horizon (eigenbasis, matrix powers) and the step-by-step reference agree."""
    h = horizon_edges([horizon_problem(np.array(OTHER["x"]), np.array(OTHER["y"]), **sgd)], 1e-5, 100.0)[0]
    ref = reference_edge(OTHER["x"], OTHER["y"], h * 0.99, h * 1.01, **sgd)
    assert h == pytest.approx(ref, rel=1e-8)


def _ex(config: dict) -> Experiment:
    return Experiment.from_checked(config, ["cpu"])


def _config(datasets: dict, optimizers: dict, **edge: float) -> dict:
    return check_config(
        {
            "datasets": datasets,
            "optimizers": optimizers,
            "grid": {"dataset": list(datasets), "optimizer": list(optimizers), "seed": [1, 2], "lr": [0.1]},
            "edge": {"rel_width": 1.0e-4, **edge},
        }
    )


@pytest.fixture(scope="module")
def located() -> pd.DataFrame:
    """The edge table of the lesson's data and an unseen dataset, for plain SGD and momentum
    values the defaults do not use."""
    optimizers = {
        "sgd": {"sgd": {}},
        "heavy": {"sgd": {"momentum": 0.75}},
        "nag": {"sgd": {"momentum": 0.55, "nesterov": True}},
    }
    return edge_table(_ex(_config({"lesson": LESSON, "other": OTHER}, optimizers)))


@pytest.mark.parametrize("dataset", ["lesson", "other"])
@pytest.mark.parametrize(
    ("optimizer", "sgd"), [("sgd", {}), ("heavy", {"momentum": 0.75}), ("nag", {"momentum": 0.55, "nesterov": True})]
)
def test_located_bracket_holds_the_float64_edge(located: pd.DataFrame, dataset: str, optimizer: str, sgd: dict) -> None:
    """The float32 engines' bracket holds an independent float64 finite-horizon edge within
    1e-3 relative (in fact within float32 rounding), and so does horizon_edge."""
    rows = located[(located.dataset == dataset) & (located.optimizer == optimizer)]
    row = rows.iloc[0]
    data = LESSON if dataset == "lesson" else OTHER
    ref = reference_edge(data["x"], data["y"], row.edge_lo * (1 - 1e-3), row.edge_hi * (1 + 1e-3), **sgd)
    assert row.edge_lo <= ref * (1 + 1e-3) and row.edge_hi >= ref * (1 - 1e-3)
    assert row.edge_lo <= ref * (1 + 1e-5) and row.edge_hi >= ref * (1 - 1e-5)  # closer than asked
    assert row.horizon_edge == pytest.approx(ref, rel=1e-8)
    assert row.critical_lr < ref  # a finite horizon pushes the edge above the asymptotic bound


def test_width_bound_and_columns(located: pd.DataFrame) -> None:
    """Every bracket is at most rel_width wide; the table has the contract's columns, a row per
    case and seed."""
    assert tuple(located.columns) == EDGE_COLUMNS
    assert len(located) == 2 * 3 * 2
    width = located.edge_hi / located.edge_lo - 1
    assert (width > 0).all() and (width <= 1e-4).all()


def test_wider_width_takes_fewer_rounds_and_holds() -> None:
    """rel_width is honoured as configured (here 1e-2) and the bracket still holds the edge."""
    table = edge_table(_ex(_config({"lesson": LESSON}, {"sgd": {"sgd": {}}}, rel_width=1.0e-2)))
    width = table.edge_hi / table.edge_lo - 1
    assert (width <= 1e-2).all() and (width > 1e-4).all()
    assert (table.edge_lo <= 0.180607).all() and (table.edge_hi >= 0.180607).all()


def test_seeds_that_cannot_change_a_run_are_searched_once() -> None:
    """Zeros init, full batch, seed-free points: one search for all seeds. Noisy points, a
    normal init or a minibatch order: one search per seed."""
    datasets = {
        "lesson": LESSON,
        "noisy": {"synthetic": {"n": 8, "noise": 0.5}},
        "clean": {"synthetic": {"n": 8, "noise": 0.0}},
    }
    config = check_config({"datasets": datasets, "grid": {"dataset": list(datasets), "seed": [1, 2, 3]}})
    data = DataSource({k: parse_dataset(k, v) for k, v in datasets.items()})

    def searches(**training: object) -> dict[str, int]:
        cfg = {
            **config,
            "training": {**config["training"], **training},
            "grid": {**config["grid"], "optimizer": ["sgd"]},
        }
        cases = grid_cases(_ex(cfg))
        searched, answer = searched_cases(cases, data)
        assert all(_reseeded(c, searched[a].seed) == searched[a] for c, a in zip(cases, answer, strict=True))
        return {ds: len({a for c, a in zip(cases, answer, strict=True) if c.dataset == ds}) for ds in datasets}

    assert searches() == {"lesson": 1, "noisy": 3, "clean": 1}
    assert searches(init="normal") == {"lesson": 3, "noisy": 3, "clean": 3}
    assert searches(batch_size=2) == {"lesson": 3, "noisy": 3, "clean": 3}
    assert searches(batch_size=4) == {"lesson": 1, "noisy": 3, "clean": 3}  # 4 >= 3 points: full batch


def _reseeded(case: Case, seed: int) -> Case:
    return Case(case.dataset, case.optimizer, case.batch_size, case.init, case.dtype, case.epochs, seed)


def test_deduplicated_seeds_report_the_same_edge_for_every_seed() -> None:
    """Each seed gets a row; seeds that share a search share its numbers."""
    table = edge_table(_ex(_config({"lesson": LESSON}, {"sgd": {"sgd": {}}}, rel_width=1.0e-2)))
    assert sorted(table.seed) == [1, 2]
    assert table.drop(columns="seed").duplicated(keep=False).all()


def test_no_divergence_below_lr_max_and_divergence_at_lr_min() -> None:
    """Both ends of the range are answers: edge_lo = lr_max with edge_hi empty, and edge_lo
    empty with edge_hi = lr_min."""
    below = edge_table(_ex(_config({"lesson": LESSON}, {"sgd": {"sgd": {}}}, lr_min=0.01, lr_max=0.15)))
    assert (below.edge_lo == 0.15).all() and below.edge_hi.isna().all()
    above = edge_table(_ex(_config({"lesson": LESSON}, {"sgd": {"sgd": {}}}, lr_min=0.2, lr_max=1.0)))
    assert above.edge_lo.isna().all() and (above.edge_hi == 0.2).all()
    assert (above.horizon_edge.isna()).all()  # theory's edge is below the range too


def test_bracket_probes_many_learning_rates_per_call() -> None:
    """Each round is one call with a comb per search; the rounds needed follow from the widths
    (64 probes over 7 decades, then 64, then what is left: 3 rounds to 1e-4)."""
    edges = np.array([0.0123, 0.5, 7.0])
    calls = []

    def diverges(owner: np.ndarray, lrs: np.ndarray) -> np.ndarray:
        calls.append(lrs.size)
        return lrs >= edges[owner]

    lo, hi = bracket(diverges, 3, 1e-5, 100.0, 1e-4, 64)
    assert len(calls) == 3 and calls[0] == 3 * 64
    assert (lo < edges).all() and (hi >= edges).all() and (hi / lo - 1 <= 1e-4).all()


def test_adam_and_minibatch_have_no_theory_but_a_located_edge() -> None:
    """Adam's and minibatch's theory columns are empty (critical_lr too for Adam); the search
    still brackets an edge, or says there is none in the range."""
    config = _config({"lesson": LESSON, "noisy": {"synthetic": {"n": 6, "noise": 0.3}}}, {"adam": {"adam": {}}})
    config["grid"]["epochs"] = [200]
    config["training"]["batch_size"] = [2, "full"]
    table = edge_table(_ex({**config, "edge": {**config["edge"], "rel_width": 1.0e-2}}))
    adam = table[table.optimizer == "adam"]
    assert adam.critical_lr.isna().all() and adam.horizon_edge.isna().all()
    assert (adam.edge_lo.notna() | adam.edge_hi.notna()).all()


def test_edge_plot_draws_every_kind_of_answer(tmp_path: Path) -> None:
    """A table with brackets, no-divergence and lr_min answers and missing theory plots."""
    rows = []
    for opt, lo, hi, crit, hor in [
        ("sgd", 0.1806, 0.18062, 0.1803, 0.18061),
        ("adam", 100.0, np.nan, np.nan, np.nan),
        ("odd", np.nan, 1e-5, 0.5, np.nan),
    ]:
        for seed in (1, 2):
            rows.append(["lesson", opt, "full", "zeros", "float32", 2000, seed, lo, hi, crit, hor, np.nan])
    table = pd.DataFrame(rows, columns=list(EDGE_COLUMNS))
    edge_plot(table, tmp_path / "e.png", tmp_path / "e.svg")
    image = np.asarray(PIL.Image.open(tmp_path / "e.png").convert("L"))
    assert image.shape[0] > 300 and image.std() > 10
    svg = (tmp_path / "e.svg").read_text()
    for text in ("critical_lr", "horizon_edge", "no divergence up to lr_max", "diverges already at lr_min"):
        assert text in svg
    assert "optimizer = " not in svg  # optimizers are the x axis of one facet, not facets of their own


@pytest.mark.parametrize(("guess", "rounds"), [(0.30003, 1), (0.2, 4), (0.5, 4), (np.nan, 3)])
def test_a_guess_is_only_a_first_comb_that_must_measure_its_bracket(guess, rounds):
    """A theory guess near the edge brackets it in one round (lo measured stable, hi measured
    diverging); a guess that misses (all its probes stable, or all diverging) restarts that
    search with the full comb, which still finds the edge to the width."""
    calls = []

    def diverges(owner, lrs):
        calls.append(lrs.size)
        return lrs >= 0.3

    lo, hi = bracket(diverges, 1, 1e-5, 100.0, 1e-4, 64, guess=np.array([guess]))
    assert lo[0] < 0.3 <= hi[0] and hi[0] / lo[0] - 1 <= 1e-4 * (1 + 1e-9)
    assert len(calls) == rounds


def test_plain_sgd_horizon_in_closed_form_matches_the_recurrence() -> None:
    """The float64 horizon of plain SGD is decided in closed form (the cost is convex in the
    epoch, so its largest value is at epoch 1 or the last): on thousands of learning rates
    around and far from the edge, for noisy lines, the lesson's data, a direction without
    initial error (u0 = 0 along it: no spurious overflow) and a run of 0 epochs, it gives the
    recurrence's verdicts; a mixed list keeps each problem's own answer."""
    from gdbench.data import parse_dataset
    from gdbench.horizon import _plain_diverges, _recurrence_diverges, diverges, modes_of_problem

    line = {"synthetic": {"n": 64, "slope": 2.0, "intercept": 0.5, "noise": 0.5, "x_min": 0.0, "x_max": 3.0}}
    problems = [horizon_problem(d.x, d.y) for d in (parse_dataset("n", line).build(seed=s) for s in range(1, 9))]
    x, y = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])
    problems += [horizon_problem(x, y), horizon_problem(x, y, W0=2.0, b0=0.0), horizon_problem(x, y, epochs=0)]
    problems.append(horizon_problem(x, y, epochs=5, diverged_factor=10.0))
    rng = np.random.default_rng(0)
    lrs = np.geomspace(1e-5, 100, 300)[None, :] * rng.uniform(0.995, 1.005, (len(problems), 300))
    modes = [modes_of_problem(p) for p in problems]
    closed = _plain_diverges(problems, lrs, modes)
    assert np.array_equal(closed, _recurrence_diverges(problems, lrs, modes, 32))
    assert closed.any() and not closed.all()
    heavy = horizon_problem(x, y, momentum=0.9)
    mixed = diverges([problems[0], heavy], lrs[:2])
    assert np.array_equal(mixed[0], closed[0])
    assert np.array_equal(mixed[1], _recurrence_diverges([heavy], lrs[1:2], [modes_of_problem(heavy)], 32)[0])


def test_eigen_modes_are_each_problems_own_when_problems_share_data() -> None:
    """The eigen-modes are computed once per data set and start (a grid's runs share them), yet
    each problem gets those of its own points and start: the initial error along each direction
    is Q^T (p0 - p*), computed here from the theory's optimum and eigenpairs."""
    from gdbench.data import Dataset
    from gdbench.horizon import modes_of_problem
    from gdbench.theory import eigen, optimum

    x = np.array([1.0, 2.0, 3.0])
    cases = [
        (np.array([2.0, 4.0, 6.0]), 0.0, 0.0),
        (np.array([2.0, 4.0, 6.0]), 2.0, -1.0),
        (np.array([1.0, 0.0, 5.0]), 0.0, 0.0),
    ]
    seen = []
    for y, w0, b0 in cases:
        for _ in range(2):  # the second call is served from the cache
            modes = modes_of_problem(horizon_problem(x, y, W0=w0, b0=b0))
            best = optimum(Dataset("", x, y))
            lam, Q = eigen(x)
            expected = Q.T @ (np.array([w0, b0]) - np.array([best.W_star, best.b_star]))
            np.testing.assert_allclose(modes.u0, expected, rtol=0, atol=1e-12)
            np.testing.assert_array_equal(modes.lam, lam)
            assert modes.c_star == best.optimal_cost
        seen.append(tuple(modes.u0))
    assert len(set(seen)) == len(cases)
