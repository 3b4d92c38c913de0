"""What both engines share: options, devices, seeds, initial parameters and data lookup.

Sharing these is what makes the two engines comparable: the same run spec gets the same
data, the same initial W and b and the same minibatch order in either engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gdbench.data import Dataset, DatasetSpec
from gdbench.optimizers import OptimizerSpec
from gdbench.runs import RunSpec
from gdbench.theory import Optimum, optimum
from gdbench.verdicts import Criteria, float_floor

#: torch dtype of each RunSpec dtype name (gdbench.runs.DTYPES).
DTYPE_OF = {"float32": torch.float32, "float64": torch.float64}

#: A progress callback: (message) -> None.
Progress = Callable[[str], None]


class DeviceError(RuntimeError):
    """A run asks for a device this process cannot use."""


@dataclass(frozen=True)
class TrainOptions:
    """How to train (not what: that is the run spec).

    ``record_every``: keep every k-th epoch (plus each run's last) in the trajectories; 0
    keeps only the last. ``chunk_epochs``: how often the batched engine checks for diverged
    or finished runs and stops computing them. ``cuda_graphs``: replay each chunk of
    full-batch epochs on CUDA from a captured graph (one launch per chunk). ``optimizers``:
    the optimizer each run names (``RunSpec.optimizer``), by name. The settings of the config
    have no defaults here (the schema holds them): an experiment builds these
    (:meth:`gdbench.experiment.Experiment.train_options`).
    """

    record_every: int
    criteria: Criteria
    chunk_epochs: int
    optimizers: Mapping[str, OptimizerSpec]
    progress: Progress | None = None
    cuda_graphs: bool = True

    def optimizer(self, run: RunSpec) -> OptimizerSpec:
        """The optimizer ``run`` names."""
        spec = self.optimizers.get(run.optimizer)
        if spec is None:
            raise KeyError(
                f"optimizer {run.optimizer!r} of run {run.label()} is not defined; known: {sorted(self.optimizers)}"
            )
        return spec


def check_device(device: str) -> torch.device:
    """The torch device for a run's ``device``, or one clear error when it is not usable."""
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {device!r} requested but torch {torch.__version__} sees no CUDA device "
                f"(torch.cuda.is_available() is False; CUDA build: {torch.version.cuda or 'none'}); "
                "use device: [cpu] or device: auto"
            )
        return torch.device(device)
    raise DeviceError(f"device {device!r} is not supported; use cpu or cuda")


def stream_seed(seed: int, stream: str) -> int:
    """An independent 63-bit seed for one random stream of a run (e.g. ``shuffle``)."""
    digest = hashlib.sha256(f"{stream}:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def initial_params(run: RunSpec) -> tuple[float, float]:
    """Initial (W, b): zeros (the lesson) or standard normal draws from ``Generator(seed)``."""
    if run.init == "zeros":
        return 0.0, 0.0
    generator = torch.Generator().manual_seed(run.seed)
    wb = torch.randn(2, generator=generator, dtype=DTYPE_OF[run.dtype])
    return float(wb[0]), float(wb[1])


def shuffle_generator(seed: int) -> torch.Generator:
    """The CPU generator whose ``randperm(n)`` per epoch orders a run's minibatches."""
    return torch.Generator().manual_seed(stream_seed(seed, "shuffle"))


def epoch_order(generator: torch.Generator, n: int) -> torch.Tensor:
    """The next epoch's order of a run's ``n`` points (from its :func:`shuffle_generator`):
    the one place the engines and the edge's float64 replay draw a minibatch permutation."""
    return torch.randperm(n, generator=generator)


class DataSource:
    """Builds (and caches) each run's dataset from the config's dataset specs."""

    def __init__(self, specs: Mapping[str, DatasetSpec], base_dir: str | Path = ".") -> None:
        self.specs = dict(specs)
        self.base_dir = Path(base_dir)
        self._cache: dict[tuple[str, int], Dataset] = {}
        self._optima: dict[tuple[str, int, str, float], Optimum] = {}
        self._seeded = {name: spec.seed_dependent for name, spec in self.specs.items()}

    def key(self, run: RunSpec) -> tuple[str, int]:
        """Runs with equal keys train on the same points."""
        try:
            seeded = self._seeded[run.dataset]
        except KeyError:
            self._spec(run.dataset)
            raise
        return (run.dataset, run.seed if seeded else 0)

    def get(self, run: RunSpec) -> Dataset:
        key = self.key(run)
        if key not in self._cache:
            self._cache[key] = self._spec(run.dataset).build(seed=key[1], base_dir=self.base_dir)
        return self._cache[key]

    def initial(self, run: RunSpec) -> tuple[float, float]:
        """The run's initial (W, b) (:func:`initial_params`)."""
        return initial_params(run)

    def optimum(self, run: RunSpec, weight_decay: float = 0.0) -> Optimum:
        """The float64 optimum of the run's points as rounded to its dtype (per seed where they
        depend on it): the least-squares line, or the regularised one for ``weight_decay``."""
        key = (*self.key(run), run.dtype, float(weight_decay))
        if key not in self._optima:
            seed = key[1] if self._seeded[run.dataset] else None
            self._optima[key] = optimum(self.get(run), seed, weight_decay, run.dtype)
        return self._optima[key]

    def references(
        self, runs: Sequence[RunSpec], optimizer: Callable[[RunSpec], OptimizerSpec] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each run's float64 optimal cost and float floor (what its verdicts measure the
        excess cost against; see :mod:`gdbench.verdicts`): the optimum its ``optimizer`` (by
        run; plain SGD when not given) converges to, on its points as rounded to its dtype,
        computed once per such set of points."""
        per_key: dict[tuple, tuple[float, float]] = {}
        keys = []
        for r in runs:
            wd = optimizer(r).weight_decay if optimizer is not None else 0.0
            key = (self.key(r), r.dtype, wd)
            keys.append(key)
            if key not in per_key:
                best = self.optimum(r, wd)
                scale = max(float(np.max(np.abs(self.get(r).y))), abs(best.b_star))
                per_key[key] = (best.optimal_cost, float_floor(best.optimal_cost, scale, r.dtype))
        pairs = [per_key[k] for k in keys]
        return np.array([p[0] for p in pairs], dtype=np.float64), np.array([p[1] for p in pairs], dtype=np.float64)

    def _spec(self, name: str) -> DatasetSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise KeyError(f"dataset {name!r} is not defined; known: {sorted(self.specs)}") from None
