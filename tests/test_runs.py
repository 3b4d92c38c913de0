"""Run specs, devices and how a grid is split into jobs."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_spec

from gdbench.config import check_config, load_config
from gdbench.experiment import Experiment
from gdbench.runs import RunSpec, resolve_devices, shard, shard_count


def ex(config):
    """The experiment of a checked config, on the CPU."""
    return Experiment.from_checked(config, ["cpu"])


def test_auto_devices() -> None:
    """`device: auto` is cpu, plus cuda when CUDA is visible; a list is taken as written."""
    assert resolve_devices("auto", cuda_available=False) == ["cpu"]
    assert resolve_devices("auto", cuda_available=True) == ["cpu", "cuda"]
    assert resolve_devices(["cuda", "cpu", "cuda"], cuda_available=False) == ["cuda", "cpu"]


def test_default_grid_expands_in_config_order() -> None:
    """The default grid: 2 datasets x 3 optimizers x 11 lrs x 3 seeds per device, datasets
    and optimizers in config order (the runs of one optimizer stay together, so they batch)."""
    config = check_config(load_config(Path(__file__).parents[1] / "config" / "config.yaml"))
    runs = ex(config).runs
    assert len(runs) == 198 and len(set(runs)) == 198
    assert [r.dataset for r in runs[:1]] == ["tutorial"] and runs[-1].dataset == "noisy"
    assert [r.optimizer for r in runs[::33]] == ["sgd", "heavy_ball", "nesterov"] * 2


def test_a_grid_without_optimizer_trains_plain_sgd() -> None:
    """A grid (or run spec) that names no optimizer is the lesson's plain SGD, as before."""
    checked = check_config({"grid": {"dataset": ["tutorial"], "lr": [0.1], "seed": [1]}})
    assert [r.optimizer for r in ex(checked).runs] == ["sgd"]
    assert run_spec("t", 0.1, 1, 10).optimizer == "sgd"
    run = run_spec("t", 0.1, 1, 10, batch_size=8, optimizer="adam")
    assert RunSpec.from_row(run.to_dict()) == run
    assert RunSpec.from_row({**run.to_dict(), "batch_size": "8", "run_id": 3}) == run


@pytest.mark.parametrize(
    ("n_runs", "jobs", "max_runs", "expected"),
    [(66, 2, 5000, 2), (10_000, 2, 5000, 2), (10_000, 2, 500, 20), (1, 4, 5000, 1), (0, 2, 10, 0), (7, 2, 3, 3)],
)
def test_shard_count(n_runs: int, jobs: int, max_runs: int, expected: int) -> None:
    """A grid is a few jobs per device (tens on a cluster), never one per run."""
    assert shard_count(n_runs, jobs, max_runs) == expected


@pytest.mark.parametrize(
    ("n_runs", "expected"),
    [(70, 1), (594, 1), (10_000, 1), (19_999, 1), (20_000, 2), (100_000, 4), (100_001, 5)],
)
def test_a_small_grid_is_one_training_job(n_runs: int, expected: int) -> None:
    """With the default sharding (2 jobs per device, 10,000 to 25,000 runs a job), a grid the
    size of the lesson's is one job: a second would pay torch's import and a join of its
    table for less training than that costs; big grids still fill the cores."""
    sharding = check_config({})["sharding"]
    counts = (sharding["jobs_per_device"], sharding["max_runs_per_job"], sharding["min_runs_per_job"])
    assert shard_count(n_runs, *counts) == expected


def test_shards_cover_every_run_once_per_device() -> None:
    """Every run lands in exactly one job of its device, in contiguous, nearly equal blocks."""
    runs = [run_spec("t", lr, s, 10, device=d) for d in ("cpu", "cuda") for lr in (0.1, 0.2, 0.3) for s in (1, 2, 3)]
    shards = shard(runs, jobs_per_device=2, max_runs_per_job=4)
    assert sorted(shards) == ["cpu-000", "cpu-001", "cpu-002", "cuda-000", "cuda-001", "cuda-002"]
    flat = [r for key in sorted(shards) for r in shards[key]]
    assert flat == runs
    assert all({r.device for r in shards[k]} == {k.split("-")[0]} for k in shards)
    assert max(len(v) for v in shards.values()) - min(len(v) for v in shards.values()) <= 1


@pytest.mark.parametrize(("n_runs", "jobs", "sizes"), [(10, 3, [3, 4, 3]), (7, 2, [4, 3]), (5, 4, [1, 1, 2, 1])])
def test_uneven_shards_keep_every_run_in_order(n_runs: int, jobs: int, sizes: list[int]) -> None:
    """A split that does not divide evenly still covers every run once, in order, in blocks
    that differ by at most one run (a lost or doubled run would be missing from the tables)."""
    runs = [run_spec("t", 0.01 * (i + 1), 1, 10) for i in range(n_runs)]
    shards = shard(runs, jobs_per_device=jobs, max_runs_per_job=1000)
    assert [len(shards[k]) for k in sorted(shards)] == sizes
    assert [r for k in sorted(shards) for r in shards[k]] == runs


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.0},
        {"lr": float("nan")},
        {"epochs": -1},
        {"init": "ones"},
        {"dtype": "float16"},
        {"engine": "jax"},
        {"batch_size": 0},
        {"optimizer": ""},
    ],
)
def test_bad_run_spec(kwargs: dict) -> None:
    """A run spec built in Python (not from a checked config) still refuses nonsense."""
    base = {"lr": 0.1, "seed": 1, "epochs": 10, **kwargs}
    with pytest.raises(ValueError, match="run t"):
        run_spec("t", base.pop("lr"), base.pop("seed"), base.pop("epochs"), **base)
