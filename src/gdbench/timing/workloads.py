"""What is timed: the data, the learning rates and the call of each engine.

* the ``loop`` engine: :func:`gdbench.engines.lesson_run`, the lesson's own loop, for one run
  (``runs`` is always 1) of ``epochs`` epochs on a noise-free synthetic line of ``n`` points;
* the ``batched`` engine: one :func:`gdbench.engines.train_batched` call training ``runs`` runs
  of ``epochs`` epochs on the same line, learning rates spread over a converging range
  (``geomspace(1e-4, critical/2)``) so that no run drops out early, and
  options with ``record_every=0`` (the schema's other training settings) so only the final epoch is recorded.

The line is ``y = 2x`` on ``x`` in ``[1, 3]``: at ``n = 3`` it is exactly the lesson's data.
Both engines compute ``epochs + 1`` epochs per call (epochs ``0..epochs``, as the lesson's
``range(epochs + 1)``), so seconds per epoch is a call's time divided by ``epochs + 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import torch

from gdbench import stability
from gdbench.data import DatasetSpec, parse_dataset
from gdbench.engines import DataSource, lesson_run, train_batched
from gdbench.experiment import default_experiment
from gdbench.lesson import LESSON_LR, LESSON_SETTINGS
from gdbench.optimizers import PLAIN_SGD, OptimizerSpec
from gdbench.runs import RunSpec
from gdbench.theory import analyse

#: Learning rates of a timed batch: from this to half the critical learning rate.
LOWEST_LR = 1.0e-4


def timing_dataset_spec(n: int) -> DatasetSpec:
    """The timed data: ``n`` evenly spaced points of ``y = 2x`` on ``[1, 3]`` (at n=3 the
    lesson's ``x = [1, 2, 3]``, ``y = [2, 4, 6]``)."""
    return parse_dataset(
        "line", {"synthetic": {"n": int(n), "slope": 2.0, "intercept": 0.0, "noise": 0.0, "x_min": 1.0, "x_max": 3.0}}
    )


def timing_lrs(runs: int, critical_lr: float) -> np.ndarray:
    """Learning rates of a timed grid of ``runs`` runs, all converging: one run uses the
    lesson's 0.01, more spread geometrically over ``[1e-4, critical_lr / 2]``."""
    top = 0.5 * critical_lr
    if runs == 1:
        return np.array([min(LESSON_LR, top)])
    return np.geomspace(min(LOWEST_LR, top / 10), top, runs)


def workload(
    device: torch.device, engine: str, n: int, runs: int, epochs: int, optimizer: OptimizerSpec = PLAIN_SGD
) -> Callable[[], Any]:
    """A zero-argument call that trains once; everything else is prepared here, untimed."""
    data = DataSource({"line": timing_dataset_spec(n)})
    name = optimizer.name
    settings = {**LESSON_SETTINGS, "optimizer": name}
    probe = RunSpec("line", LESSON_LR, 1, epochs, device=str(device), engine=engine, **settings)
    dataset = data.get(probe)
    theory = analyse(dataset)
    # Below the optimizer's own critical lr where it has one (Nesterov's is lower), so no run stops.
    critical = min(theory.critical_lr, stability.critical_lr(optimizer, theory.lambda_max))
    lrs = timing_lrs(runs, critical if math.isfinite(critical) else theory.critical_lr)
    specs = [RunSpec("line", float(lr), 1, epochs, device=str(device), engine=engine, **settings) for lr in lrs]
    if engine == "loop":
        x, y = dataset.tensors(torch.float32, device)
        return partial(lesson_run, specs[0], x, y, optimizer_spec=optimizer)
    options = replace(default_experiment().train_options(record_every=0), optimizers={name: optimizer})
    return partial(train_batched, specs, data, options)
