"""Run specs: one training run per point of the grid, and how runs are split into jobs.

A :class:`RunSpec` names everything that decides a run's trajectory. :func:`expand_grid`
turns a (validated) config into the list of runs, in a stable order; :func:`shard` splits
them into a few jobs per device so that a grid is a handful of tensor programs, never one
process per run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

ENGINES = ("loop", "batched")
INITS = ("zeros", "normal")
DTYPES = ("float32", "float64")


@dataclass(frozen=True, order=True)
class RunSpec:
    """One training run. ``batch_size`` is ``None`` for full batch (the lesson)."""

    dataset: str
    lr: float
    seed: int
    epochs: int
    device: str = "cpu"
    init: str = "zeros"
    batch_size: int | None = None
    dtype: str = "float32"
    engine: str = "batched"

    def __post_init__(self) -> None:
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"run {self.label()}: lr must be a finite number > 0")
        if self.epochs < 0:
            raise ValueError(f"run {self.label()}: epochs must be >= 0")
        if self.init not in INITS:
            raise ValueError(f"run {self.label()}: init must be one of {INITS}")
        if self.dtype not in DTYPES:
            raise ValueError(f"run {self.label()}: dtype must be one of {DTYPES}")
        if self.engine not in ENGINES:
            raise ValueError(f"run {self.label()}: engine must be one of {ENGINES}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"run {self.label()}: batch_size must be >= 1 or full")

    @property
    def batch_label(self) -> str:
        return "full" if self.batch_size is None else str(self.batch_size)

    def label(self) -> str:
        """A short human-readable name, e.g. ``tutorial lr=0.01 seed=1 cpu``."""
        return f"{self.dataset} lr={self.lr:g} seed={self.seed} epochs={self.epochs} {self.device}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunSpec:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


def as_list(value: Any) -> list[Any]:
    """A config value that may be a scalar or a list, as a list."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def batch_size_value(value: Any) -> int | None:
    """Config ``batch_size`` (``full`` or an integer) as a RunSpec value."""
    return None if value in (None, "full") else int(value)


def resolve_devices(value: Any, cuda_available: bool) -> list[str]:
    """``auto`` means cpu, plus cuda when CUDA is available; a list is taken as written."""
    if value == "auto" or value == ["auto"]:
        return ["cpu", "cuda"] if cuda_available else ["cpu"]
    return list(dict.fromkeys(as_list(value)))


def expand_grid(config: Mapping[str, Any], devices: Sequence[str] | None = None) -> list[RunSpec]:
    """All runs of a checked config's grid, in a stable order (device, dataset, then the rest).

    ``devices`` overrides ``grid.device`` (the workflow resolves ``auto`` once, where the DAG
    is built, and passes the result).
    """
    grid, training = config["grid"], config["training"]
    if devices is None:
        import torch

        devices = resolve_devices(grid["device"], torch.cuda.is_available())
    axes = [
        list(devices),
        as_list(grid["dataset"]),
        [float(v) for v in as_list(grid["lr"])],
        [int(v) for v in as_list(grid["seed"])],
        [int(v) for v in as_list(grid["epochs"])],
        as_list(training["init"]),
        [batch_size_value(v) for v in as_list(training["batch_size"])],
        as_list(training["dtype"]),
        as_list(training["engine"]),
    ]
    runs = [
        RunSpec(dataset=ds, lr=lr, seed=seed, epochs=ep, device=dev, init=init, batch_size=bs, dtype=dt, engine=en)
        for dev, ds, lr, seed, ep, init, bs, dt, en in itertools.product(*axes)
    ]
    return list(dict.fromkeys(runs))


def shard_count(n_runs: int, jobs_per_device: int, max_runs_per_job: int) -> int:
    """How many jobs a device's runs are split into: at least ``jobs_per_device`` (to fill
    the cores), more when a job would exceed ``max_runs_per_job``; never more than runs."""
    if n_runs == 0:
        return 0
    return min(n_runs, max(jobs_per_device, math.ceil(n_runs / max_runs_per_job)))


def shard(runs: Iterable[RunSpec], jobs_per_device: int, max_runs_per_job: int) -> dict[str, list[RunSpec]]:
    """Split runs into jobs, per device: keys ``"{device}-{i}"`` with runs in contiguous,
    nearly equal blocks (contiguous keeps runs of one dataset together, so they batch)."""
    by_device: dict[str, list[RunSpec]] = {}
    for run in runs:
        by_device.setdefault(run.device, []).append(run)
    shards: dict[str, list[RunSpec]] = {}
    for device, dev_runs in by_device.items():
        count = shard_count(len(dev_runs), jobs_per_device, max_runs_per_job)
        bounds = [round(i * len(dev_runs) / count) for i in range(count + 1)]
        for i in range(count):
            shards[f"{device}-{i:03d}"] = dev_runs[bounds[i] : bounds[i + 1]]
    return shards
