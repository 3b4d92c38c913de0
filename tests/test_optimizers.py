"""Optimizers: the config's named definitions, parsed and checked as torch.optim's arguments
(their arithmetic in the engines: tests/test_engines.py; their theory: tests/test_stability.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import optimizer_spec, run_spec, train_options

from gdbench.config import check_config, load_config
from gdbench.experiment import Experiment
from gdbench.optimizers import PLAIN_SGD, OptimizerError, parse_optimizer


def ex(config):
    """The experiment of a checked config, on the CPU."""
    return Experiment.from_checked(config, ["cpu"])


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
    assert specs["sgd"] == optimizer_spec("sgd")
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
    assert specs[names[0]] == optimizer_spec("sgd") and any(specs[n].momentum > 0 for n in names)


def test_no_optimizers_means_plain_sgd() -> None:
    """A config or spec that names no optimizer trains the lesson's optim.SGD(params, lr); a
    name nothing defines is an error, never plain SGD in disguise."""
    assert ex(check_config({})).optimizer("sgd") == PLAIN_SGD
    assert train_options().optimizer(run_spec("t", 0.1, 1, 1)) == PLAIN_SGD
    with pytest.raises(KeyError, match=r"'nope' .* not defined"):
        train_options().optimizer(run_spec("t", 0.1, 1, 1, optimizer="nope"))
    with pytest.raises(KeyError, match=r"'nope' is not defined"):
        ex(check_config({})).optimizer("nope")
    with pytest.raises(KeyError, match=r"'sgd' .* not defined"):
        train_options(optimizers={"adam": optimizer_spec("adam", kind="adam")}).optimizer(run_spec("t", 0.1, 1, 1))


def test_optimizer_spec_refuses_what_torch_refuses() -> None:
    """A spec built in Python (not from a checked config) is checked the same way."""
    for kwargs in ({"nesterov": True}, {"momentum": -1.0}, {"kind": "rmsprop"}, {"betas": (0.9, 1.0)}):
        with pytest.raises(OptimizerError):
            optimizer_spec("x", **kwargs)
    with pytest.raises(OptimizerError, match="takes momentum"):
        parse_optimizer("x", {"sgd": {"betas": [0.9, 0.99]}})
