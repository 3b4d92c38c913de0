"""Run specs: one training run per point of the grid, and how runs are split into jobs.

A :class:`RunSpec` names everything that decides a run's trajectory. An experiment's grid
(:class:`gdbench.experiment.Grid`) lists its runs in a stable order; :func:`shard` splits
them into a few jobs per device so that a grid is a handful of tensor programs, never one
process per run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

ENGINES = ("loop", "batched")
#: How tables and configs write a full batch.
FULL_BATCH = "full"
INITS = ("zeros", "normal")
DTYPES = ("float32", "float64")


@dataclass(frozen=True, order=True)
class RunSpec:
    """One training run. ``batch_size`` is ``None`` for full batch (the lesson); ``optimizer``
    names one of the config's optimizers (:mod:`gdbench.optimizers`). No field has a default:
    an experiment expands its grid into these (the schema holds the defaults)."""

    dataset: str
    lr: float
    seed: int
    epochs: int
    device: str
    init: str
    batch_size: int | None
    dtype: str
    engine: str
    optimizer: str

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
        if not (isinstance(self.optimizer, str) and self.optimizer):
            raise ValueError(f"run {self.label()}: optimizer must be the name of an optimizer")

    @property
    def batch_label(self) -> str:
        """The batch size as tables write it: ``full`` or the integer."""
        return FULL_BATCH if self.batch_size is None else str(self.batch_size)

    def is_minibatch(self, n_points: int) -> bool:
        """Whether the run steps on minibatches of its ``n_points`` points (a batch size at
        least ``n_points`` is full-batch gradient descent)."""
        return self.batch_size is not None and self.batch_size < n_points

    def label(self) -> str:
        """A short human-readable name, e.g. ``tutorial lr=0.01 seed=1 epochs=2000 cpu``
        (the optimizer is named when it is not plain ``sgd``)."""
        opt = "" if self.optimizer == "sgd" else f" {self.optimizer}"
        return f"{self.dataset}{opt} lr={self.lr:g} seed={self.seed} epochs={self.epochs} {self.device}"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in _FIELDS}  # asdict's dict (every field is a scalar), faster

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunSpec:
        """The run of a table row or of :meth:`to_dict` (other keys are ignored): the one
        converter from rows to specs (``batch_size`` may be ``full``, text or an integer)."""
        return cls(
            dataset=str(row["dataset"]),
            lr=float(row["lr"]),
            seed=int(row["seed"]),
            epochs=int(row["epochs"]),
            device=str(row["device"]),
            init=str(row["init"]),
            batch_size=batch_size_value(row["batch_size"]),
            dtype=str(row["dtype"]),
            engine=str(row["engine"]),
            optimizer=str(row["optimizer"]),
        )


#: RunSpec's fields, in order.
_FIELDS = fields(RunSpec)


def as_list(value: Any) -> list[Any]:
    """A config value that may be a scalar or a list, as a list."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def batch_size_value(value: Any) -> int | None:
    """Config ``batch_size`` (``full`` or an integer) as a RunSpec value."""
    return None if value is None or value == FULL_BATCH else int(value)


#: Files that exist where an NVIDIA driver is loaded (Linux).
NVIDIA_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl")


def cuda_present(driver_files: Sequence[str] = NVIDIA_DRIVER_FILES) -> bool:
    """Whether ``device: auto`` adds cuda, decided without importing torch (which takes seconds).

    The rule: the installed torch is a CUDA build (its ``lib`` folder holds the
    ``torch_cuda`` library, which CPU-only wheels lack), an NVIDIA driver is loaded (one of
    ``driver_files`` exists), and ``CUDA_VISIBLE_DEVICES`` does not hide every device (empty or
    ``-1``). Where this says yes but torch still sees no device (e.g. a driver too old for the
    build), the CUDA jobs fail with torch's reason and the CPU jobs finish.
    """
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    libs = [Path(folder) / "lib" for folder in spec.submodule_search_locations]
    if not any(any(lib.glob("*torch_cuda*")) for lib in libs if lib.is_dir()):
        return False
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return any(Path(f).exists() for f in driver_files)


def resolve_devices(value: Any, cuda_available: bool) -> list[str]:
    """``auto`` means cpu, plus cuda when CUDA is available; a list is taken as written."""
    if value == "auto" or value == ["auto"]:
        return ["cpu", "cuda"] if cuda_available else ["cpu"]
    return list(dict.fromkeys(as_list(value)))


def shard_count(n_runs: int, jobs_per_device: int, max_runs_per_job: int, min_runs_per_job: int = 1) -> int:
    """How many jobs a device's runs are split into: up to ``jobs_per_device`` (to fill the
    cores) while each job keeps at least ``min_runs_per_job`` runs (a job pays seconds of
    start-up, so a small grid is one job), more when a job would exceed ``max_runs_per_job``;
    at least one, never more than runs."""
    if n_runs == 0:
        return 0
    filling = min(jobs_per_device, max(1, n_runs // max(1, min_runs_per_job)))
    return min(n_runs, max(filling, math.ceil(n_runs / max_runs_per_job)))


#: What one update step costs beyond its points, in points' worth, for :func:`training_cost`:
#: the batched engine's per-run work of a step (the update, the verdict's bookkeeping, the
#: recorded rows). Measured on the 100,000-run grid's jobs (25,000 runs x 2,000 epochs each):
#: 2.1 s of CPU for 3 points a run, 7.8 s for 64 (imports left out), i.e. n + ~20.
STEP_POINTS = 20


def training_cost(run: RunSpec, n_points: int) -> float:
    """A run's training CPU cost relative to other runs: its ``epochs + 1`` epochs of
    ``n_points`` points and ``STEP_POINTS`` per update step (one a full-batch epoch, one per
    minibatch otherwise). Early stops (a diverged run) are not foreseen."""
    steps = math.ceil(n_points / run.batch_size) if run.is_minibatch(n_points) and run.batch_size else 1
    return float((run.epochs + 1) * (n_points + STEP_POINTS * steps))


def shard(
    runs: Iterable[RunSpec],
    jobs_per_device: int,
    max_runs_per_job: int,
    min_runs_per_job: int = 1,
    cost: Callable[[RunSpec], float] | None = None,
) -> dict[str, list[RunSpec]]:
    """Split runs into jobs, per device: keys ``"{device}-{i}"`` with runs in contiguous
    blocks (contiguous keeps runs of one dataset together, so they batch), nearly equal in
    number, or with ``cost`` (e.g. :func:`training_cost`) nearly equal in cost, so that a job of
    a big dataset's runs does not run on long after the others have ended. Runs of equal
    cost split as without it."""
    by_device: dict[str, list[RunSpec]] = {}
    for run in runs:
        by_device.setdefault(run.device, []).append(run)
    shards: dict[str, list[RunSpec]] = {}
    for device, dev_runs in by_device.items():
        count = shard_count(len(dev_runs), jobs_per_device, max_runs_per_job, min_runs_per_job)
        bounds = [round(i * len(dev_runs) / count) for i in range(count + 1)]
        if cost is not None and count > 1:
            bounds = _cost_bounds([cost(r) for r in dev_runs], count) or bounds
        for i in range(count):
            shards[f"{device}-{i:03d}"] = dev_runs[bounds[i] : bounds[i + 1]]
    return shards


def _cost_bounds(costs: list[float], count: int) -> list[int] | None:
    """Block bounds of ``count`` contiguous, non-empty blocks of nearly equal total cost (each
    bound where the running total comes nearest its share); None when every run costs the same
    (the equal-count split is that already)."""
    if len(set(costs)) <= 1:
        return None
    cumulative = list(itertools.accumulate(costs, initial=0.0))
    total, bounds, j = cumulative[-1], [0], 0
    for i in range(1, count):
        target = total * i / count
        while j < len(costs) and cumulative[j + 1] <= target:
            j += 1
        nearest = j + 1 if j < len(costs) and cumulative[j + 1] - target < target - cumulative[j] else j
        # Each block keeps at least one run: after the previous bound, before the ones still to come.
        bounds.append(min(max(nearest, bounds[-1] + 1), len(costs) - (count - i)))
    bounds.append(len(costs))
    return bounds


#: The config key each RunSpec field comes from.
AXIS_KEYS = {
    "dataset": "grid.dataset",
    "lr": "grid.lr",
    "seed": "grid.seed",
    "epochs": "grid.epochs",
    "device": "grid.device",
    "init": "training.init",
    "batch_size": "training.batch_size",
    "dtype": "training.dtype",
    "engine": "training.engine",
    "optimizer": "grid.optimizer",
}


def runs_by_axis(runs: Sequence[RunSpec]) -> dict[str, Any]:
    """The values each axis takes in ``runs``, sorted, keyed by the config key it comes from
    (``grid.lr``; batch size ``full`` for a full batch): what a job's runs are, for its rerun
    params."""
    out: dict[str, Any] = {}
    for field in fields(RunSpec):
        values = sorted({getattr(r, field.name) for r in runs}, key=lambda v: (v is None, v))
        out[AXIS_KEYS[field.name]] = [FULL_BATCH if v is None else v for v in values]
    return out


def describe_runs(runs: Sequence[RunSpec]) -> str:
    """A short summary of runs for people, one clause per axis: ``35 runs: dataset tutorial;
    lr 0.0001..0.5 (14 values); seed 1..5 (5 values); ...``."""
    clauses = []
    for field in fields(RunSpec):
        values = sorted({getattr(r, field.name) for r in runs}, key=lambda v: (v is None, v))
        shown = [
            "full" if v is None and field.name == "batch_size" else f"{v:g}" if isinstance(v, float) else str(v)
            for v in values
        ]
        if len(shown) <= 2:
            clauses.append(f"{field.name} {', '.join(shown)}")
        else:
            clauses.append(f"{field.name} {shown[0]}..{shown[-1]} ({len(shown)} values)")
    return f"{len(runs)} runs: " + "; ".join(clauses)


def specs_digest(runs: Sequence[RunSpec], run_ids: Sequence[int]) -> str:
    """12 hex digits of the sha256 of the runs' specs and ids: a job's params carry it, so a
    change of its runs re-runs it, and its script checks that it re-derived the same runs."""
    text = json.dumps([[int(i), r.to_dict()] for i, r in zip(run_ids, runs, strict=True)], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
