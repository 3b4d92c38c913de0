"""Training engines. :func:`train` is the entry point: it groups runs by what must be shared
within one tensor program (device, dtype, batch size, size of data, optimizer) and hands each
group to its engine.

* ``loop``: :mod:`gdbench.engines.loop`, the lesson's code, one run at a time;
* ``batched``: :mod:`gdbench.engines.batched`, all runs of a group as one tensor program.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from gdbench.data import DatasetSpec
from gdbench.engines.batched import train_batched
from gdbench.engines.loop import lesson_run, train_loop
from gdbench.engines.run_setup import DataSource, DeviceError, TrainOptions, check_device
from gdbench.runs import RunSpec
from gdbench.trajectory import TrajectoryBatch

__all__ = [
    "DataSource",
    "DeviceError",
    "TrainOptions",
    "check_device",
    "lesson_run",
    "train",
    "train_batched",
    "train_loop",
]


def train(
    runs: list[RunSpec],
    datasets: Mapping[str, DatasetSpec] | DataSource,
    options: TrainOptions,
    base_dir: str | Path = ".",
) -> TrajectoryBatch:
    """Train runs with the engine each names; results come back in the order of ``runs``."""
    if not runs:
        raise ValueError("train: no runs given")
    data = datasets if isinstance(datasets, DataSource) else DataSource(datasets, base_dir)
    groups: dict[tuple, list[int]] = {}
    for i, run in enumerate(runs):
        key = (run.engine, run.device, run.dtype, run.batch_size, data.get(run).n, run.optimizer)
        groups.setdefault(key, []).append(i)
    parts = []
    order = []
    for key, idx in groups.items():
        group = [runs[i] for i in idx]
        engine = train_loop if key[0] == "loop" else train_batched
        parts.append(engine(group, data, options))
        order.extend(idx)
    inverse = np.argsort(np.asarray(order))
    return TrajectoryBatch.concat(parts, None if order == sorted(order) else inverse)
