"""Optimizers as a grid axis: their config, both engines' arithmetic, and their theory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from gdbench.config import ConfigError, check_config
from gdbench.data import parse_dataset
from gdbench.engines import TrainOptions, train
from gdbench.optimizers import PLAIN_SGD, OptimizerError, OptimizerSpec, optimizer_specs, parse_optimizer
from gdbench.runs import RunSpec, expand_grid

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
    specs = optimizer_specs(config)
    assert specs["sgd"] == OptimizerSpec("sgd")
    heavy_ball = {"momentum": 0.9, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0}
    assert specs["heavy_ball"].arguments() == heavy_ball
    assert specs["nesterov"].nesterov and specs["nesterov"].describe() == "sgd(momentum=0.9, nesterov=True)"
    assert specs["adam"].arguments() == {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False}
    runs = expand_grid(config, ["cpu"])
    assert [r.optimizer for r in runs[:: len(runs) // 4]] == ["sgd", "heavy_ball", "nesterov", "adam"]


def test_default_grid_has_plain_sgd_and_momentum() -> None:
    """The default grid shows the lesson (plain SGD) beside momentum, whose stable range differs."""
    specs = optimizer_specs(check_config({}))
    names = check_config({})["grid"]["optimizer"]
    assert specs[names[0]] == OptimizerSpec("sgd") and any(specs[n].momentum > 0 for n in names)


def test_no_optimizers_means_plain_sgd() -> None:
    """A config or spec that names no optimizer trains the lesson's optim.SGD(params, lr)."""
    assert optimizer_specs({}) == {"sgd": PLAIN_SGD}
    assert TrainOptions().optimizer(RunSpec("t", 0.1, 1, 1)) == PLAIN_SGD
    with pytest.raises(KeyError, match=r"'nope' .* not defined"):
        TrainOptions().optimizer(RunSpec("t", 0.1, 1, 1, optimizer="nope"))


BAD_OPTIMIZERS = [
    ("optimizers: {x: {sgd: {nesterov: true}}}", "optimizers.x.sgd.nesterov = true", "needs momentum > 0"),
    (
        "optimizers: {x: {sgd: {nesterov: true, momentum: 0.9, dampening: 0.1}}}",
        "optimizers.x.sgd.nesterov = true",
        "needs dampening 0",
    ),
    ("optimizers: {x: {sgd: {momentum: -0.9}}}", "optimizers.x.sgd.momentum = -0.9", "must be a number >= 0"),
    ("optimizers: {x: {sgd: {weight_decay: -1}}}", "optimizers.x.sgd.weight_decay = -1", ">= 0"),
    ("optimizers: {x: {sgd: {momentum: 1e-1}}}", "optimizers.x.sgd.momentum", "write 1.0e-1"),
    ("optimizers: {x: {adam: {eps: -1.0}}}", "optimizers.x.adam.eps = -1.0", ">= 0"),
    ("optimizers: {x: {adam: {betas: [0.9]}}}", "optimizers.x.adam.betas = [0.9]", "two numbers"),
    ("optimizers: {x: {adam: {betas: [0.9, 1.0]}}}", "optimizers.x.adam.betas[1] = 1.0", "< 1"),
    ("optimizers: {x: {adam: {momentum: 0.9}}}", "optimizers.x.adam.momentum = 0.9", "betas, eps"),
    ("optimizers: {x: {adamw: {}}}", "optimizers.x.adamw", "did you mean optimizers.x.adam?"),
    ("optimizers: {x: {}}", "optimizers.x = {}", "one key"),
    ("optimizers: {x: {sgd: {}, adam: {}}}", "optimizers.x", "one key"),
    ("grid: {optimizer: [sgd, heavy-ball]}", 'grid.optimizer[1] = "heavy-ball"', 'did you mean "heavy_ball"?'),
    ("optimizers: {mine: {sgd: {}}}", 'grid.optimizer[0] = "sgd"', "grid.optimizer was not given"),
    ("grid: {optimizer: []}", "grid.optimizer = []", "non-empty"),
]


@pytest.mark.parametrize(("text", "head", "words"), BAD_OPTIMIZERS, ids=[b[1] for b in BAD_OPTIMIZERS])
def test_bad_optimizer_gets_one_line_naming_key_and_fix(text: str, head: str, words: str) -> None:
    """torch would refuse these (or they make no sense): the user sees one line naming the
    key and what to write, before any job runs, not a traceback from inside a training job."""
    with pytest.raises(ConfigError) as info:
        check_config(yaml.safe_load(text))
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"config error: {head}"), message
    assert words in message, message


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
