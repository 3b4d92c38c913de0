"""The experiment: a checked config resolved once into the objects every layer works with.

:func:`gdbench.config.check_config` checks a config and fills in the schema's defaults (the
schema is the only place defaults live); :meth:`Experiment.from_checked` then resolves it,
once, into a frozen :class:`Experiment`: the parsed datasets, the complete optimizer map,
the grid's axes, its runs (a run's id is its index) and their split into training jobs per
device, the training options, the analysis criteria, the edge settings, the timing plan's
settings, the verify sample and whether the figures are also drawn as SVG. The pipeline, the
edge search, timing, verify and the command line take an ``Experiment``; none of them reads a
config section again.

An optimizer or dataset name the experiment does not define is an error
(:meth:`Experiment.optimizer`), never a silent fallback to plain SGD.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gdbench.data import DatasetSpec, parse_dataset
from gdbench.optimizers import OptimizerSpec, parse_optimizer
from gdbench.runs import RunSpec, as_list, batch_size_value, resolve_devices, shard, training_cost
from gdbench.verdicts import Criteria

if TYPE_CHECKING:  # the engines (and torch) load only when something is trained
    from gdbench.engines import DataSource, TrainOptions
    from gdbench.engines.run_setup import Progress


@dataclass(frozen=True)
class Grid:
    """The axes of the run grid: ``grid:`` plus the ``training:`` keys that may be lists.
    Every run is one point of their product (:meth:`runs`)."""

    dataset: tuple[str, ...]
    optimizer: tuple[str, ...]
    lr: tuple[float, ...]
    seed: tuple[int, ...]
    epochs: tuple[int, ...]
    init: tuple[str, ...]
    batch_size: tuple[int | None, ...]
    dtype: tuple[str, ...]
    engine: tuple[str, ...]

    def runs(self, devices: Sequence[str]) -> list[RunSpec]:
        """Every run on ``devices``, in a stable order (device, dataset, optimizer, lr, seed,
        epochs, init, batch size, dtype, engine), each once."""
        axes = (
            self.dataset,
            self.optimizer,
            self.lr,
            self.seed,
            self.epochs,
            self.init,
            self.batch_size,
            self.dtype,
            self.engine,
        )
        runs = [
            RunSpec(ds, lr, seed, ep, device=dev, init=init, batch_size=bs, dtype=dt, engine=en, optimizer=op)
            for dev, ds, op, lr, seed, ep, init, bs, dt, en in itertools.product(list(devices), *axes)
        ]
        return list(dict.fromkeys(runs))


@dataclass(frozen=True)
class Training:
    """The config's ``training:`` settings that are not grid axes."""

    record_every: int
    log_every: int
    log_runs: int
    threads: int
    chunk_epochs: int


@dataclass(frozen=True)
class Sharding:
    """The config's ``sharding:`` section: how each device's runs are split into training
    jobs, and how many runs a job trains and writes at a time."""

    jobs_per_device: int
    min_runs_per_job: int
    max_runs_per_job: int
    runs_per_chunk: int


@dataclass(frozen=True)
class EdgeSettings:
    """The config's ``edge:`` section (see :mod:`gdbench.edge`)."""

    enabled: bool
    lr_min: float
    lr_max: float
    rel_width: float
    lrs_per_round: int


@dataclass(frozen=True)
class TimingSettings:
    """The config's ``timing:`` section, its optimizer names resolved: those of
    ``timing.optimizers`` that the experiment defines when the user left it out (else
    plain ``sgd``); as written otherwise (see :mod:`gdbench.timing`)."""

    enabled: bool
    sizes: tuple[int, ...]
    runs: tuple[int, ...]
    engines: tuple[str, ...]
    optimizers: tuple[str, ...]
    epochs: int
    repeats: int
    min_run_time: float
    threads: int
    alone: bool
    quiet_wait: float
    min_cpu_share: float
    attempts: int


@dataclass(frozen=True)
class Experiment:
    """A checked config, resolved once (see the module docstring).

    ``config`` is the checked config itself (with every default), for its hash and the
    provenance record; nothing below the workflow reads its sections."""

    config: Mapping[str, Any] = field(repr=False, compare=False)
    base_dir: Path
    datasets: Mapping[str, DatasetSpec]
    optimizers: Mapping[str, OptimizerSpec]
    grid: Grid
    devices: tuple[str, ...]
    runs: tuple[RunSpec, ...]
    shards: Mapping[str, tuple[RunSpec, ...]]
    training: Training
    sharding: Sharding
    criteria: Criteria
    edge: EdgeSettings
    timing: TimingSettings
    verify_sample: int
    svg: bool
    _ids: Mapping[RunSpec, int] = field(repr=False, compare=False)

    @staticmethod
    def from_checked(
        config: Mapping[str, Any], devices: Sequence[str] | None = None, base_dir: str | Path = "."
    ) -> Experiment:
        """Resolve a config checked by :func:`gdbench.config.check_config`. ``devices``
        overrides ``grid.device`` (the workflow resolves ``auto`` once, without torch, and
        passes the result); absent, ``auto`` asks torch whether CUDA is available."""
        if devices is None:
            cuda = False
            if config["grid"]["device"] == "auto":
                import torch

                cuda = torch.cuda.is_available()
            devices = resolve_devices(config["grid"]["device"], cuda)
        grid = _grid(config["grid"], config["training"])
        runs = grid.runs(devices)
        sharding = _section(Sharding, config["sharding"])
        datasets = {name: parse_dataset(name, raw) for name, raw in config["datasets"].items()}
        shards = shard(
            runs,
            sharding.jobs_per_device,
            sharding.max_runs_per_job,
            sharding.min_runs_per_job,
            _cost_of(datasets, Path(base_dir)),
        )
        a = config["analysis"]
        return Experiment(
            config=config,
            base_dir=Path(base_dir),
            datasets=datasets,
            optimizers={name: parse_optimizer(name, raw) for name, raw in config["optimizers"].items()},
            grid=grid,
            devices=tuple(devices),
            runs=tuple(runs),
            shards={key: tuple(value) for key, value in shards.items()},
            training=_section(Training, config["training"]),
            sharding=sharding,
            criteria=Criteria(converged_below=float(a["converged_below"]), diverged_factor=float(a["diverged_factor"])),
            edge=_section(EdgeSettings, config["edge"]),
            timing=_section(TimingSettings, config["timing"]),
            verify_sample=int(config["verify"]["sample"]),
            svg=bool(config["plots"]["svg"]),
            _ids={run: i for i, run in enumerate(runs)},
        )

    def run_ids(self, runs: Sequence[RunSpec]) -> list[int]:
        """The id (index in :attr:`runs`) of each of ``runs``; a run not in the grid is an error."""
        try:
            return [self._ids[run] for run in runs]
        except KeyError as exc:
            raise KeyError(f"run {exc.args[0].label()} is not a run of this experiment's grid") from None

    def optimizer(self, name: str) -> OptimizerSpec:
        """The optimizer called ``name``; an undefined name is an error (no fallback)."""
        try:
            return self.optimizers[name]
        except KeyError:
            raise KeyError(f"optimizer {name!r} is not defined; defined: {', '.join(self.optimizers)}") from None

    def dataset(self, name: str) -> DatasetSpec:
        """The dataset called ``name``; an undefined name is an error."""
        try:
            return self.datasets[name]
        except KeyError:
            raise KeyError(f"dataset {name!r} is not defined; defined: {', '.join(self.datasets)}") from None

    def data_source(self) -> DataSource:
        """The engines' data lookup over this experiment's datasets (imports torch)."""
        from gdbench.engines import DataSource

        return DataSource(self.datasets, self.base_dir)

    def train_options(self, progress: Progress | None = None, record_every: int | None = None) -> TrainOptions:
        """How this experiment trains (imports torch); ``record_every`` overrides the config's."""
        from gdbench.engines import TrainOptions

        return TrainOptions(
            record_every=self.training.record_every if record_every is None else record_every,
            criteria=self.criteria,
            chunk_epochs=self.training.chunk_epochs,
            progress=progress,
            optimizers=self.optimizers,
        )


def load_experiment(path: str | Path, devices: Sequence[str] | None = None) -> Experiment:
    """Load, check and resolve a config file (relative paths in it are relative to its folder)."""
    from gdbench.config import load_config

    return resolve(load_config(path), devices, Path(path).resolve().parent)


@cache
def default_experiment() -> Experiment:
    """The experiment of an empty config (every setting the schema's default), on the CPU: what
    the lesson's run and the timing workloads train with, whatever the grid."""
    return resolve({}, devices=["cpu"])


def resolve(config: Mapping[str, Any], devices: Sequence[str] | None = None, base_dir: str | Path = ".") -> Experiment:
    """Check a config (:func:`gdbench.config.check_config`: one-line errors, the schema's
    defaults) and resolve it."""
    from gdbench.config import check_config

    return Experiment.from_checked(check_config(config, base_dir=base_dir), devices, base_dir)


def _cost_of(datasets: Mapping[str, DatasetSpec], base_dir: Path) -> Callable[[RunSpec], float]:
    """:func:`gdbench.runs.training_cost` of a run on its dataset's points (each dataset's
    count taken once, and only when a device's runs are split at all)."""
    points: dict[str, int] = {}

    def cost(run: RunSpec) -> float:
        if run.dataset not in points:
            points[run.dataset] = datasets[run.dataset].n_points(base_dir)
        return training_cost(run, points[run.dataset])

    return cost


def _grid(g: Mapping[str, Any], t: Mapping[str, Any]) -> Grid:
    """The grid's axes from the checked ``grid`` and ``training`` sections."""
    return Grid(
        dataset=tuple(as_list(g["dataset"])),
        optimizer=tuple(as_list(g["optimizer"])),
        lr=tuple(float(v) for v in as_list(g["lr"])),
        seed=tuple(int(v) for v in as_list(g["seed"])),
        epochs=tuple(int(v) for v in as_list(g["epochs"])),
        init=tuple(as_list(t["init"])),
        batch_size=tuple(batch_size_value(v) for v in as_list(t["batch_size"])),
        dtype=tuple(as_list(t["dtype"])),
        engine=tuple(as_list(t["engine"])),
    )


#: How a checked config value becomes a settings field, by the field's annotation.
_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "int": int,
    "float": float,
    "bool": bool,
    "tuple[int, ...]": lambda v: tuple(int(n) for n in v),
    "tuple[str, ...]": lambda v: tuple(str(n) for n in v),
}

_Settings = TypeVar("_Settings")


def _section(cls: type[_Settings], section: Mapping[str, Any]) -> _Settings:
    """A settings dataclass (:class:`Training`, :class:`Sharding`, :class:`EdgeSettings`,
    :class:`TimingSettings`) from its checked config section: each field is the key of its name,
    converted by the field's type."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    return cls(**{f.name: _CONVERTERS[str(f.type)](section[f.name]) for f in fields})
