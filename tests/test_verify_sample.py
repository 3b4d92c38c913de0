"""Which runs verify re-trains: the sample spread over the grid and the lesson's own run,
plain SGD only, computed the same way where the workflow builds its jobs and in the job."""

from __future__ import annotations

from helpers import run_spec

from gdbench.config import check_config
from gdbench.experiment import Experiment
from gdbench.runs import RunSpec
from gdbench.verify_sample import sample_run_ids

CONFIG = check_config(
    {
        "datasets": {"tutorial": {"x": [1, 2, 3], "y": [2, 4, 6]}, "other": {"x": [1, 2], "y": [3, 1]}},
        "grid": {
            "dataset": ["tutorial", "other"],
            "optimizer": ["sgd", "heavy_ball", "nesterov", "adam"],
            "lr": [0.001, 0.01, 0.1],
            "seed": [1, 2],
            "epochs": [2000],
            "device": ["cpu"],
        },
    }
)
RUNS = list(Experiment.from_checked(CONFIG, ["cpu"]).runs)
IDS = list(range(len(RUNS)))


def lesson_ids(config, runs) -> list[int]:
    return sample_run_ids(config, runs, list(range(len(runs))), 0)


def test_the_lessons_run_is_plain_sgd_on_the_lessons_data() -> None:
    """If this fails, verify calls a heavy-ball, Nesterov or Adam run at lr 0.01 "the lesson's
    run" (and its count of re-trained runs disagrees with what it announced)."""
    (only,) = lesson_ids(CONFIG, RUNS)
    assert RUNS[only] == run_spec("tutorial", 0.01, 1, 2000, optimizer="sgd")


def test_no_lessons_run_where_the_names_hide_other_data_or_momentum() -> None:
    """If this fails, a dataset called tutorial with other points, or an optimizer called sgd
    with momentum, is re-trained as the lesson's run."""
    other_data = check_config({**CONFIG, "datasets": {**CONFIG["datasets"], "tutorial": {"x": [1, 2], "y": [2, 5]}}})
    assert lesson_ids(other_data, RUNS) == []
    momentum = check_config({**CONFIG, "optimizers": {**CONFIG["optimizers"], "sgd": {"sgd": {"momentum": 0.5}}}})
    assert lesson_ids(momentum, RUNS) == []
    renamed = check_config({**CONFIG, "optimizers": {**CONFIG["optimizers"], "plain": {"sgd": {}}}})
    runs = [*RUNS, run_spec("tutorial", 0.01, 1, 2000, optimizer="plain")]
    assert [runs[i].optimizer for i in lesson_ids(renamed, runs)] == ["sgd", "plain"]
    for changed in ({"epochs": 1000}, {"seed": 2}, {"dtype": "float64"}, {"batch_size": 2}, {"init": "normal"}):
        run = RunSpec(**{**run_spec("tutorial", 0.01, 1, 2000).to_dict(), **changed})
        assert lesson_ids(CONFIG, [run]) == [], changed


def test_sample_spreads_evenly_from_first_to_last_and_adds_the_lesson() -> None:
    """If this fails, verify re-trains fewer or other runs than `verify.sample` says, or
    misses the grid's ends."""
    lesson = lesson_ids(CONFIG, RUNS)
    assert sample_run_ids(CONFIG, RUNS, IDS, 1) == sorted({0, *lesson})
    assert sample_run_ids(CONFIG, RUNS, IDS, 3) == sorted({0, 24, 47, *lesson})  # 47 / 2 rounds to even
    assert sample_run_ids(CONFIG, RUNS, IDS, 100) == IDS
    shifted = [i + 10 for i in IDS][::-1]  # ids out of order: the sample follows the ids
    assert sample_run_ids(CONFIG, RUNS[::-1], shifted, 2) == [10, 12, 57]  # 12: the lesson's run
