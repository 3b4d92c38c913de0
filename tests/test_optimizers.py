"""Optimizers as a grid axis: their config, both engines' arithmetic, and their theory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gdbench import stability, tables
from gdbench.analysis import analyse_runs
from gdbench.config import ConfigError, check_config, load_config
from gdbench.data import parse_dataset
from gdbench.engines import DataSource, TrainOptions, train
from gdbench.experiment import Experiment, resolve
from gdbench.optimizers import PLAIN_SGD, OptimizerError, OptimizerSpec, parse_optimizer
from gdbench.runs import RunSpec
from gdbench.theory import analyse

DATASETS = {
    "tutorial": parse_dataset("tutorial", {"x": [1, 2, 3], "y": [2, 4, 6]}),
    "noisy": parse_dataset(
        "noisy", {"synthetic": {"n": 64, "slope": 2.0, "intercept": 0.5, "noise": 0.5, "x_min": 0.0, "x_max": 3.0}}
    ),
}

#: One of each code path: plain, heavy ball, nesterov, dampening with weight decay, Adam,
#: Adam with every option. Momentum values are not the defaults on purpose.
OPTIMIZERS = {
    "sgd": {"sgd": {}},
    "heavy_ball": {"sgd": {"momentum": 0.8}},
    "nesterov": {"sgd": {"momentum": 0.6, "nesterov": True}},
    "damped": {"sgd": {"momentum": 0.5, "dampening": 0.3, "weight_decay": 0.01}},
    "adam": {"adam": {}},
    "amsgrad": {"adam": {"betas": [0.8, 0.99], "eps": 1.0e-6, "weight_decay": 0.05, "amsgrad": True}},
}
OPTIONS = TrainOptions(optimizers={name: parse_optimizer(name, raw) for name, raw in OPTIMIZERS.items()})
#: Converging, borderline and diverging for some optimizer (8 runs with two seeds: the
#: [2, R] update has a vectorised body and a scalar tail on the CPU).
LRS = [0.01, 0.1, 0.17, 0.3, 0.6]


def ex(config):
    """The experiment of a checked config, on the CPU."""
    return Experiment.from_checked(config, ["cpu"])


def runs_of(optimizer: str, engine: str, dataset: str, **kw) -> list[RunSpec]:
    epochs = kw.pop("epochs", 200)
    seeds = kw.pop("seeds", (1, 2))
    return [RunSpec(dataset, lr, s, epochs, engine=engine, optimizer=optimizer, **kw) for lr in LRS for s in seeds]


def assert_bit_identical(a, b) -> None:
    for key in ("W", "b", "cost"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    np.testing.assert_array_equal(a.verdicts.diverged_at, b.verdicts.diverged_at)


# --------------------------------------------------------------------------------------------
# config


def test_the_issue_example_parses_to_torch_arguments() -> None:
    """The names a user writes are torch.optim's own; the engines get exactly those."""
    config = check_config(
        yaml.safe_load(
            """
            optimizers:
              sgd: {sgd: {}}
              heavy_ball: {sgd: {momentum: 0.9}}
              nesterov: {sgd: {momentum: 0.9, nesterov: true}}
              adam: {adam: {betas: [0.9, 0.999], eps: 1.0e-8}}
            grid: {dataset: [tutorial], optimizer: [sgd, heavy_ball, nesterov, adam]}
            """
        )
    )
    specs = ex(config).optimizers
    assert specs["sgd"] == OptimizerSpec("sgd")
    heavy_ball = {"momentum": 0.9, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0}
    assert specs["heavy_ball"].arguments() == heavy_ball
    assert specs["nesterov"].nesterov and specs["nesterov"].describe() == "sgd(momentum=0.9, nesterov=True)"
    assert specs["adam"].arguments() == {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False}
    runs = ex(config).runs
    assert [r.optimizer for r in runs[:: len(runs) // 4]] == ["sgd", "heavy_ball", "nesterov", "adam"]


def test_default_grid_has_plain_sgd_and_momentum() -> None:
    """The default grid (config/config.yaml) shows the lesson (plain SGD) beside momentum,
    whose stable range differs."""
    config = check_config(load_config(Path(__file__).parents[1] / "config" / "config.yaml"))
    specs, names = ex(config).optimizers, config["grid"]["optimizer"]
    assert specs[names[0]] == OptimizerSpec("sgd") and any(specs[n].momentum > 0 for n in names)


def test_no_optimizers_means_plain_sgd() -> None:
    """A config or spec that names no optimizer trains the lesson's optim.SGD(params, lr); a
    name nothing defines is an error, never plain SGD in disguise."""
    assert ex(check_config({})).optimizer("sgd") == PLAIN_SGD
    assert TrainOptions().optimizer(RunSpec("t", 0.1, 1, 1)) == PLAIN_SGD
    with pytest.raises(KeyError, match=r"'nope' .* not defined"):
        TrainOptions().optimizer(RunSpec("t", 0.1, 1, 1, optimizer="nope"))
    with pytest.raises(KeyError, match=r"'nope' is not defined"):
        ex(check_config({})).optimizer("nope")
    with pytest.raises(KeyError, match=r"'sgd' .* not defined"):
        TrainOptions(optimizers={"adam": OptimizerSpec("adam", kind="adam")}).optimizer(RunSpec("t", 0.1, 1, 1))


def test_optimizer_spec_refuses_what_torch_refuses() -> None:
    """A spec built in Python (not from a checked config) is checked the same way."""
    for kwargs in ({"nesterov": True}, {"momentum": -1.0}, {"kind": "rmsprop"}, {"betas": (0.9, 1.0)}):
        with pytest.raises(OptimizerError):
            OptimizerSpec("x", **kwargs)
    with pytest.raises(OptimizerError, match="takes momentum"):
        parse_optimizer("x", {"sgd": {"betas": [0.9, 0.99]}})


# --------------------------------------------------------------------------------------------
# engines


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize(
    ("dataset", "kw"),
    [
        ("tutorial", {}),
        ("noisy", {"batch_size": 8, "epochs": 25}),
        ("noisy", {"dtype": "float64", "init": "normal", "epochs": 120}),
    ],
    ids=["tutorial-full", "noisy-batch8", "noisy-float64-normal"],
)
def test_batched_equals_loop_bit_for_bit(optimizer: str, dataset: str, kw: dict) -> None:
    """The batched engine repeats torch.optim's single-tensor arithmetic for all runs at once:
    on the CPU every W, b and cost equals the loop engine's (the real torch.optim object)."""
    loop = train(runs_of(optimizer, "loop", dataset, **kw), DATASETS, OPTIONS)
    batched = train(runs_of(optimizer, "batched", dataset, **kw), DATASETS, OPTIONS)
    assert_bit_identical(loop, batched)


@pytest.mark.parametrize("optimizer", ["heavy_ball", "nesterov", "damped", "amsgrad"])
@pytest.mark.parametrize("batch_size", [None, 8])
def test_a_run_alone_equals_the_same_run_in_a_batch(optimizer: str, batch_size: int | None) -> None:
    """Optimizer state is per run: `snakemake verify` re-trains a run alone and must get its
    stored trajectory back, whichever runs shared its batch (and dropped out of it)."""
    runs = runs_of(optimizer, "batched", "noisy", batch_size=batch_size, epochs=90, seeds=(1, 2, 3))
    together = train(runs, DATASETS, TrainOptions(chunk_epochs=16, optimizers=OPTIONS.optimizers))
    assert together.verdicts.diverged.any() or optimizer == "amsgrad"
    for i in (0, 7, len(runs) - 1):
        alone = train([runs[i]], DATASETS, OPTIONS)
        for a, b in zip(alone.run_trajectory(0), together.run_trajectory(i), strict=True):
            np.testing.assert_array_equal(a, b)


def test_optimizers_in_one_call_train_apart_and_keep_their_order() -> None:
    """A grid mixing optimizers: each run gets its own optimizer and its place in the output."""
    mixed = [RunSpec("tutorial", 0.1, 1, 300, optimizer=name) for name in ("heavy_ball", "sgd", "adam", "heavy_ball")]
    batch = train(mixed, DATASETS, OPTIONS)
    assert [r.optimizer for r in batch.runs] == ["heavy_ball", "sgd", "adam", "heavy_ball"]
    for i, run in enumerate(mixed):
        alone = train([run], DATASETS, OPTIONS)
        np.testing.assert_array_equal(alone.cost[0], batch.cost[i][: alone.cost.shape[1]])
    assert batch.cost[0, 50] != batch.cost[1, 50] != batch.cost[2, 50]


def test_loop_engine_is_torch_optim_itself() -> None:
    """The loop engine is the reference: it must be torch.optim's own step, with the
    config's arguments passed through (a forgotten momentum would pass the other tests if
    the batched engine forgot it too)."""
    x = torch.tensor([1.0, 2.0, 3.0])
    y = torch.tensor([2.0, 4.0, 6.0])
    for name, make in (
        ("nesterov", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.6, nesterov=True)),
        ("amsgrad", lambda p: torch.optim.Adam(p, 0.1, (0.8, 0.99), 1e-6, weight_decay=0.05, amsgrad=True)),
    ):
        W = torch.zeros(1, requires_grad=True)
        b = torch.zeros(1, requires_grad=True)
        opt = make([W, b])
        Ws = []
        for _ in range(51):
            cost = torch.mean((x * W + b - y) ** 2)
            opt.zero_grad()
            cost.backward()
            opt.step()
            Ws.append(W.item())
        batch = train([RunSpec("tutorial", 0.1, 1, 50, engine="loop", optimizer=name)], DATASETS, OPTIONS)
        np.testing.assert_array_equal(batch.W[0], np.array(Ws, dtype=np.float32))


# --------------------------------------------------------------------------------------------
# theory


def lesson_lambdas() -> tuple[float, float]:
    t = analyse(DATASETS["tutorial"].build(seed=0))
    return t.lambda_min, t.lambda_max


SPECS = [
    OptimizerSpec("sgd"),
    OptimizerSpec("hb", momentum=0.9),
    OptimizerSpec("hb37", momentum=0.37),
    OptimizerSpec("nesterov", momentum=0.9, nesterov=True),
    OptimizerSpec("nesterov95", momentum=0.95, nesterov=True),
    OptimizerSpec("damped", momentum=0.6, dampening=0.4),
    OptimizerSpec("decayed", momentum=0.5, weight_decay=0.3),
]


def test_critical_lrs_on_the_lessons_data() -> None:
    """The numbers the lesson's data gives (FACTS.md): plain 2/λmax, heavy ball 2(1+β)/λmax,
    Nesterov 2(1+β)/((1+2β)λmax), as torch.optim.SGD steps them."""
    _, lam_max = lesson_lambdas()
    assert stability.critical_lr(OptimizerSpec(), lam_max) == pytest.approx(0.180295, abs=1e-6)
    assert stability.critical_lr(SPECS[1], lam_max) == pytest.approx(0.342560, abs=1e-6)
    assert stability.critical_lr(SPECS[3], lam_max) == pytest.approx(0.122343, abs=1e-6)


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_critical_lr_separates_decay_from_growth_in_the_recurrence(spec: OptimizerSpec) -> None:
    """Half a percent below the critical lr the float64 recurrence (torch's steps) decays,
    half a percent above it grows: the closed form is the recurrence's own edge."""
    _, lam_max = lesson_lambdas()
    crit = stability.critical_lr(spec, lam_max)
    below = stability.simulate(spec, 0.995 * crit, lam_max, 20_000)
    above = stability.simulate(spec, 1.005 * crit, lam_max, 20_000)
    assert below[-1] < 1e-3 and above[-1] > 1e3


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
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
    factor = stability.rate_factor(SPECS[1])
    assert factor is not None
    np.testing.assert_allclose(factor(0.1, lam), stability.spectral_radius(SPECS[1], 0.1, lam) ** 2)
    np.testing.assert_allclose(stability.rate_factor(OptimizerSpec())(0.1, lam), (1 - 0.1 * lam) ** 2)
    for spec in (OptimizerSpec("a", kind="adam"), OptimizerSpec("m", momentum=1.0), SPECS[-1]):
        assert stability.rate_factor(spec) is None
    assert np.isnan(stability.critical_lr(OptimizerSpec("a", kind="adam"), lam[1]))


def test_summary_theory_is_per_run_optimizer_and_engines_agree_with_it() -> None:
    """The summary's critical_lr, lr_ratio and predicted_diverged are the run's optimizer's;
    full-batch float64 runs just below / above each critical lr converge / diverge as
    predicted; Adam's theory columns are empty."""
    _, lam_max = lesson_lambdas()
    specs = {s.name: s for s in (OptimizerSpec("sgd"), SPECS[2], SPECS[4], OptimizerSpec("adam", kind="adam"))}
    runs = []
    for name, spec in specs.items():
        crit = stability.critical_lr(spec, lam_max) if spec.kind == "sgd" else 0.2
        runs += [RunSpec("tutorial", f * crit, 1, 3000, dtype="float64", optimizer=name) for f in (0.97, 1.03)]
    batch = train(runs, DATASETS, TrainOptions(optimizers=specs))
    table = tables.summary(batch, analyse_runs(batch, DataSource(DATASETS), specs))
    sgd_like = table[table["optimizer"] != "adam"]
    assert sgd_like["predicted_diverged"].tolist() == sgd_like["diverged"].tolist() == [False, True] * 3
    np.testing.assert_allclose(sgd_like["lr_ratio"], [0.97, 1.03] * 3)
    assert sgd_like["critical_lr"].nunique() == 3
    adam = table[table["optimizer"] == "adam"]
    assert adam["critical_lr"].isna().all() and adam["predicted_diverged"].isna().all()
    theory = tables.theory_table({"tutorial": analyse(DATASETS["tutorial"].build(seed=0))}, optimizers=specs)
    assert theory["optimizer"].tolist() == list(specs) and theory["critical_lr"].isna().tolist() == [0, 0, 0, 1]


# --------------------------------------------------------------------------------------------
# plots


def test_plots_facet_by_optimizer_with_each_ones_theory(tmp_path) -> None:
    """With several optimizers the reader sees one row of facets per optimizer, each with
    its own critical lr (heavy ball's is about twice plain SGD's), and Adam's facet says it
    has none, instead of every optimizer drawn against plain SGD's line."""
    from gdbench import plots

    specs = {s.name: s for s in (OptimizerSpec("sgd"), SPECS[1], OptimizerSpec("adam", kind="adam"))}
    runs = [RunSpec("tutorial", lr, 1, 100, optimizer=name) for name in specs for lr in (0.01, 0.1, 0.3)]
    batch = train(runs, DATASETS, TrainOptions(optimizers=specs))
    theories = {"tutorial": analyse(DATASETS["tutorial"].build(seed=0))}
    summary = tables.summary(batch, analyse_runs(batch, DataSource(DATASETS), specs))
    plots.divergence(summary, tables.theory_table(theories, optimizers=specs), tmp_path / "d.png", tmp_path / "d.svg")
    svg = (tmp_path / "d.svg").read_text()
    for text in (
        "dataset = tutorial | optimizer = sgd",
        "dataset = tutorial | optimizer = hb",
        "critical lr 2/λmax = 0.180",
        "critical lr 2(1+β)/λmax (β=0.9) = 0.343",
        "no closed-form critical lr",
    ):
        assert text in svg, text
    assert svg.index("optimizer = sgd") < svg.index("optimizer = hb") < svg.index("optimizer = adam")
    plots.convergence(tables.trajectories(batch), summary, tmp_path / "c.png", tmp_path / "c.svg")
    assert "dataset = tutorial | optimizer = adam" in (tmp_path / "c.svg").read_text()


# --------------------------------------------------------------------------------------------
# timing


def test_timing_has_an_optimizer_axis_at_two_measurements_each(tmp_path) -> None:
    """timing.csv says what each optimizer costs in both engines, without re-timing every
    size per optimizer (the timing job runs on every default run), and the plot shows it."""
    from gdbench import plots, timing
    from gdbench.timing import results as timing_results

    config = {"sizes": [3, 50], "runs": [1, 20], "epochs": 3, "repeats": 3, "min_run_time": 0.005}
    config["optimizers"] = ["sgd", "heavy_ball", "adam"]
    items = timing.plan(resolve({"timing": config}).timing)
    extra = [i for i in items if i[3] != "sgd"]
    pairs = (("loop", 1), ("batched", 20))
    assert extra == [(engine, 3, runs, name) for name in ("heavy_ball", "adam") for engine, runs in pairs]
    defined = {name: OPTIMIZERS[name] for name in ("sgd", "heavy_ball", "adam")}
    table = timing_results.timing_table(timing.measure_plan(resolve({"optimizers": defined, "timing": config}), "cpu"))
    assert table["optimizer"].tolist() == [i[3] for i in items] and (table["median_s_per_epoch"] > 0).all()
    with pytest.raises(ConfigError, match="nesterov"):
        resolve({"optimizers": defined, "timing": {**config, "optimizers": ["sgd", "nesterov"]}})
    plots.timing(table, tmp_path / "t.png", tmp_path / "t.svg")
    svg = (tmp_path / "t.svg").read_text()
    assert "optimizers at n = 3" in svg and "heavy_ball" in svg and "cpu, batched, 20 runs" in svg


# --------------------------------------------------------------------------------------------
# CUDA (run by benchmarks/gpu_check.sh with the other `cuda` tests; not yet run on a GPU)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("optimizer", ["heavy_ball", "nesterov", "damped", "adam", "amsgrad"])
@pytest.mark.parametrize("batch_size", [None, 8])
def test_cuda_optimizers_alone_equal_batch_and_agree_with_cpu(optimizer: str, batch_size: int | None) -> None:
    """On CUDA too a run alone equals the same run in a batch (`snakemake verify`), and the
    batched engine on CUDA agrees with the loop engine on the CPU within float32 tolerance
    (verdicts equal; converging runs' trajectories within 1e-5 relative)."""
    runs = runs_of(optimizer, "batched", "noisy", batch_size=batch_size, epochs=150, device="cuda")
    together = train(runs, DATASETS, OPTIONS)
    for i in (0, 5, len(runs) - 1):
        alone = train([runs[i]], DATASETS, OPTIONS)
        for a, b in zip(alone.run_trajectory(0), together.run_trajectory(i), strict=True):
            np.testing.assert_array_equal(a, b)
    cpu = train(runs_of(optimizer, "loop", "noisy", batch_size=batch_size, epochs=150), DATASETS, OPTIONS)
    np.testing.assert_array_equal(cpu.verdicts.diverged, together.verdicts.diverged)
    for i in np.nonzero(~cpu.verdicts.diverged)[0]:
        np.testing.assert_allclose(together.cost[i], cpu.cost[i], rtol=1e-5, atol=1e-7, equal_nan=True)


# --------------------------------------------------------------------------------------------
# the workflow


def test_rate_curve_is_each_optimizers_own_theory():
    """The rate plot's theory: plain descent's V (1 at the critical lr); heavy ball flat at
    beta where the slowest direction's roots are complex, and 1 at its own critical lr and at
    lr 0; Adam: none."""
    lam = np.array([0.5, 10.0])
    ratios = np.array([0.0, 0.5, 1.0])
    plain = stability.rate_curve(PLAIN_SGD, lam, ratios)
    np.testing.assert_allclose(plain, np.max((1 - (ratios * 0.2)[:, None] * lam) ** 2, axis=1))
    assert plain[-1] == pytest.approx(1.0)
    hb = OptimizerSpec(name="hb", momentum=0.9)
    curve = stability.rate_curve(hb, lam, ratios)
    assert curve[0] == pytest.approx(1.0) and curve[-1] == pytest.approx(1.0)
    assert curve[1] == pytest.approx(0.9)
    assert np.isnan(stability.rate_curve(OptimizerSpec(name="a", kind="adam"), lam, ratios)).all()
