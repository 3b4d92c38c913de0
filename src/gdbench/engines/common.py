"""What both engines share: options, devices, seeds, initial parameters and data lookup.

Sharing these is what makes the two engines comparable: the same run spec gets the same
data, the same initial W and b and the same minibatch order in either engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gdbench.analysis import Criteria
from gdbench.data import Dataset, DatasetSpec
from gdbench.runs import RunSpec

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
    full-batch epochs on CUDA from a captured graph (one launch per chunk).
    """

    record_every: int = 1
    criteria: Criteria = field(default_factory=Criteria)
    chunk_epochs: int = 64
    progress: Progress | None = None
    cuda_graphs: bool = True


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


class DataSource:
    """Builds (and caches) each run's dataset from the config's dataset specs."""

    def __init__(self, specs: Mapping[str, DatasetSpec], base_dir: str | Path = ".") -> None:
        self.specs = dict(specs)
        self.base_dir = Path(base_dir)
        self._cache: dict[tuple[str, int], Dataset] = {}
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

    def _spec(self, name: str) -> DatasetSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise KeyError(f"dataset {name!r} is not defined; known: {sorted(self.specs)}") from None
