"""Run specs, devices and how a grid is split into jobs."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_spec

from gdbench.config import check_config, load_config
from gdbench.experiment import Experiment
from gdbench.runs import STEP_POINTS, RunSpec, resolve_devices, shard, shard_count, training_cost


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
    [(70, 1), (594, 1), (10_000, 1), (19_999, 1), (20_000, 2), (100_000, 2), (100_001, 3), (250_000, 5)],
)
def test_a_small_grid_is_one_training_job(n_runs: int, expected: int) -> None:
    """With the default sharding (2 jobs per device, 10,000 to 50,000 runs a job), a grid the
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


def _block_costs(shards: dict[str, list[RunSpec]], cost) -> list[float]:
    return [sum(cost(r) for r in shards[k]) for k in sorted(shards)]


def test_shards_of_a_small_and_a_big_dataset_hold_equal_training_cost() -> None:
    """Runs of a 3-point dataset, then of a 64-point one: split by count, the second job would
    hold ~3.7x the first one's work and run on long after it; split by cost, the jobs' costs
    differ by less than one run's, and every run is still in exactly one job, in order."""
    points = {"small": 3, "big": 64}
    runs = [run_spec(name, 0.001 * (i + 1), 1, 100) for name in ("small", "big") for i in range(50)]

    def cost(run: RunSpec) -> float:
        return training_cost(run, points[run.dataset])

    by_count = _block_costs(shard(runs, jobs_per_device=2, max_runs_per_job=1000), cost)
    assert by_count[1] / by_count[0] > 3.5
    shards = shard(runs, jobs_per_device=2, max_runs_per_job=1000, cost=cost)
    assert [r for k in sorted(shards) for r in shards[k]] == runs
    by_cost = _block_costs(shards, cost)
    assert abs(by_cost[0] - by_cost[1]) <= cost(runs[-1])
    assert {r.dataset for r in shards["cpu-001"]} == {"big"} and len(shards["cpu-000"]) > 50


def test_runs_of_equal_cost_split_as_by_count() -> None:
    """Where every run costs the same, the cost split is the count split (old results' jobs
    keep their runs), including blocks that do not divide evenly."""
    for n_runs, jobs in ((10, 3), (7, 2), (5, 4), (9, 2)):
        runs = [run_spec("t", 0.01 * (i + 1), 1, 10) for i in range(n_runs)]
        assert shard(runs, jobs, 1000, cost=lambda r: 7.0) == shard(runs, jobs, 1000)


def test_a_costly_run_never_leaves_a_job_empty() -> None:
    """One run costing more than all others together: each job still holds a run, all covered."""
    runs = [run_spec("t", 0.01 * (i + 1), 1, 10) for i in range(6)]
    shards = shard(runs, jobs_per_device=4, max_runs_per_job=1000, cost=lambda r: 1e9 if r.lr == 0.01 else 1.0)
    assert all(shards.values()) and len(shards) == 4
    assert [r for k in sorted(shards) for r in shards[k]] == runs


def test_training_cost_counts_points_and_update_steps() -> None:
    """Full batch: one step an epoch; minibatch: one per batch (a batch at least the data is full)."""
    full = run_spec("t", 0.01, 1, 99)
    assert training_cost(full, 64) == 100 * (64 + STEP_POINTS)
    assert training_cost(RunSpec(**{**full.to_dict(), "batch_size": 10}), 64) == 100 * (64 + 7 * STEP_POINTS)
    assert training_cost(RunSpec(**{**full.to_dict(), "batch_size": 64}), 64) == 100 * (64 + STEP_POINTS)


def test_the_experiment_splits_its_grid_by_the_datasets_points() -> None:
    """The default grid's two datasets (the lesson's 3 points, the noisy line's 64) on two jobs:
    the jobs' costs are nearly equal, so the first job takes the lesson's runs and some of the
    noisy line's."""
    config = check_config({"grid": {"device": ["cpu"]}, "sharding": {"min_runs_per_job": 1}})
    experiment = Experiment.from_checked(config, ["cpu"])
    points = {"tutorial": 3, "noisy": 64}

    def cost(run: RunSpec) -> float:
        return training_cost(run, points[run.dataset])

    first, second = (experiment.shards[k] for k in sorted(experiment.shards))
    assert {r.dataset for r in first} == {"tutorial", "noisy"} and {r.dataset for r in second} == {"noisy"}
    costs = [sum(map(cost, first)), sum(map(cost, second))]
    assert abs(costs[0] - costs[1]) <= max(map(cost, experiment.runs))
    assert [*first, *second] == list(experiment.runs)


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
