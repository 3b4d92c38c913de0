"""Which runs the reproducibility check re-trains: ``verify.sample`` runs spread evenly over
the grid, plus the lesson's own run wherever the grid holds it.

The lesson's run is the lesson's exactly: its three points, plain ``optim.SGD`` (no momentum,
dampening or weight decay), lr 0.01, seed 1, 2000 epochs, zero init, full batch, float32, on
any device and engine. A heavy-ball run at lr 0.01 is not it.

This module needs no torch: the workflow computes the sample when it builds its jobs, so the
job's message and the check count the same runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from gdbench.lesson import LESSON_EPOCHS, LESSON_LR, LESSON_SEED, TUTORIAL_X, TUTORIAL_Y
from gdbench.optimizers import PLAIN_SGD, OptimizerSpec, parse_optimizer
from gdbench.runs import RunSpec

__all__ = ["is_lesson_run", "lesson_datasets", "plain_optimizers", "sample_run_ids"]


def lesson_datasets(datasets: Mapping[str, Any]) -> set[str]:
    """The names of the config's datasets that are the lesson's three points, inline."""
    lesson = ([float(v) for v in TUTORIAL_X], [float(v) for v in TUTORIAL_Y])
    return {
        name
        for name, raw in datasets.items()
        if isinstance(raw, Mapping)
        and set(raw) == {"x", "y"}
        and ([float(v) for v in raw["x"]], [float(v) for v in raw["y"]]) == lesson
    }


def plain_optimizers(specs: Mapping[str, OptimizerSpec]) -> set[str]:
    """The names of the optimizers that are the lesson's plain ``optim.SGD(params, lr)``."""
    return {name for name, spec in specs.items() if replace(spec, name=PLAIN_SGD.name) == PLAIN_SGD}


def is_lesson_run(run: RunSpec, lesson_data: set[str], plain: set[str]) -> bool:
    """Whether ``run`` is the lesson's run (on any device and engine)."""
    return (
        run.dataset in lesson_data
        and run.optimizer in plain
        and math.isclose(run.lr, LESSON_LR)
        and run.seed == LESSON_SEED
        and run.epochs == LESSON_EPOCHS
        and run.init == "zeros"
        and run.batch_size is None
        and run.dtype == "float32"
    )


def sample_run_ids(
    config: Mapping[str, Any], runs: Sequence[RunSpec], run_ids: Sequence[int], sample: int
) -> list[int]:
    """The ids of the runs to re-train, sorted: ``sample`` of ``runs`` (ordered by id) spread
    evenly from the first to the last, plus every one of them that is the lesson's run."""
    order = sorted(range(len(runs)), key=lambda i: run_ids[i])
    chosen: set[int] = set()
    if sample and order:
        picks = {round(k * (len(order) - 1) / max(sample - 1, 1)) for k in range(sample)} if sample > 1 else {0}
        chosen = {int(run_ids[order[p]]) for p in picks}
    lesson_data = lesson_datasets(config["datasets"])
    plain = plain_optimizers({name: parse_optimizer(name, raw) for name, raw in config["optimizers"].items()})
    chosen |= {int(run_ids[i]) for i in order if is_lesson_run(runs[i], lesson_data, plain)}
    return sorted(chosen)
