"""Shared test helpers (imported by the tests, not a conftest): the repository's paths,
running the workflow in a temporary directory, workflow runs shared by every pytest-xdist
worker, and skips that CI turns into failures."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import yaml

from gdbench.data import parse_dataset
from gdbench.theory import analyse

if TYPE_CHECKING:
    from gdbench.engines import TrainOptions
    from gdbench.horizon import HorizonProblem
    from gdbench.minibatch import ShuffledProblem
    from gdbench.optimizers import OptimizerSpec
    from gdbench.runs import RunSpec
    from gdbench.verdicts import Criteria

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"


#: The grid name of a workflow run on ``workdir/config.yaml`` (a config file names its grid).
GRID = "config"


def results_of(workdir: Path, grid: str = GRID) -> Path:
    """Where a workflow run in ``workdir`` puts its results: ``results/<grid name>/``."""
    return workdir / "results" / grid


def snakemake_cmd() -> list[str]:
    exe = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    return [exe]


def snakemake_args(workdir: Path, *extra: str | Path) -> list[str]:
    """``snakemake`` on this repository's Snakefile, run in ``workdir`` with its config.yaml."""
    config = ["--configfile", str(workdir / "config.yaml")]
    return [*snakemake_cmd(), "-s", str(SNAKEFILE), "--directory", str(workdir), *config, *map(str, extra)]


def in_ci() -> bool:
    """Whether the tests run in CI (which sets CI=true and installs every tool)."""
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip a test whose tool (Chromium, Playwright, Slurm) is missing here; in CI, where
    `.ci/run` installs them all, a missing tool is a failure, never a silent skip."""
    if in_ci():
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def run_workflow(
    workdir: Path, config: dict | None = None, *args: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` (its results/ land there) with ``config`` written to
    ``workdir/config.yaml`` on top of the default config."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [*snakemake_cmd(), "-s", str(SNAKEFILE), "--directory", str(workdir)]
    if config is not None:
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        cmd += ["--configfile", str(workdir / "config.yaml")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


#: A small grid: both datasets, converging, borderline and diverging learning rates.
SMALL_CONFIG = {
    "grid": {
        "dataset": ["tutorial", "noisy"],
        "lr": [0.001, 0.01, 0.1, 0.17, 0.19, 0.5],
        "seed": [1, 2],
        "epochs": [2000],
        "device": ["cpu"],
    },
    "timing": {
        "enabled": True,
        "sizes": [3, 1000],
        "runs": [1, 100],
        "epochs": 5,
        "repeats": 3,
        "min_run_time": 0.02,
        "quiet_wait": 1,  # the suite runs beside other work
    },
    "verify": {"sample": 4},
    "plots": {"svg": True},  # the workflow's SVGs too (the default draws PNGs only)
    # Two training jobs (a grid this small is one job by default): the tables are joined from shards.
    "sharding": {"min_runs_per_job": 1},
}


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's temporary folder that every pytest-xdist worker sees."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], T]) -> T:
    """``make(folder)`` once for the whole test session, however many pytest-xdist workers
    ask: the first runs it (the others wait on a lock) and records its result; all get that
    result. For workflow runs and reports that several tests read."""
    root = shared_root(tmp_path_factory)
    folder, done = root / name, root / f"{name}.done.json"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            done.write_text(json.dumps({"result": make(folder)}, default=str))
    return json.loads(done.read_text())["result"]


def shared_run(tmp_path_factory: pytest.TempPathFactory, name: str, config: dict, *args: str) -> Path:
    """The workflow run once on ``config`` for the whole test session (see :func:`once`);
    tests that change its files work on a copy."""

    def run(folder: Path) -> str:
        run_workflow(folder, config, "--cores", "2", *args)
        return str(folder)

    return Path(once(tmp_path_factory, name, run))


# Settings objects for unit tests, with the schema's defaults (the schema alone holds them:
# gdbench's dataclasses have none). Keyword arguments override.


def schema_default(section: str, key: str) -> Any:
    """The schema's default of ``section.key`` (for a list, e.g. ``grid.epochs``, its first)."""
    from gdbench.schema_defaults import section_defaults

    value = section_defaults(section)[key]
    return value[0] if isinstance(value, list) else value


def criteria(**overrides: Any) -> Criteria:
    """The verdicts' thresholds: the schema's ``analysis`` defaults."""
    from gdbench.schema_defaults import section_defaults
    from gdbench.verdicts import Criteria

    return Criteria(**{**section_defaults("analysis"), **overrides})


def optimizer_spec(name: str = "sgd", kind: str = "sgd", **arguments: Any) -> OptimizerSpec:
    """An optimizer built in Python: the schema's defaults for the arguments not given."""
    from gdbench.optimizers import ARGUMENT_DEFAULTS, OptimizerSpec

    return OptimizerSpec(name=name, kind=kind, **{**ARGUMENT_DEFAULTS, **arguments})


def train_options(**overrides: Any) -> TrainOptions:
    """How to train: the schema's ``training`` and ``analysis`` defaults, plain SGD as ``sgd``."""
    from gdbench.engines import TrainOptions
    from gdbench.optimizers import PLAIN_SGD

    defaults = {
        "record_every": schema_default("training", "record_every"),
        "criteria": criteria(),
        "chunk_epochs": schema_default("training", "chunk_epochs"),
        "optimizers": {PLAIN_SGD.name: PLAIN_SGD},
    }
    return TrainOptions(**{**defaults, **overrides})


def run_spec(dataset: str, lr: float, seed: int, epochs: int, **overrides: Any) -> RunSpec:
    """One run on the CPU with the schema's ``training`` defaults and its first optimizer."""
    from gdbench.runs import RunSpec, batch_size_value

    defaults = {
        "device": "cpu",
        "init": schema_default("training", "init"),
        "batch_size": batch_size_value(schema_default("training", "batch_size")),
        "dtype": schema_default("training", "dtype"),
        "engine": schema_default("training", "engine"),
        "optimizer": schema_default("grid", "optimizer"),
    }
    return RunSpec(dataset, lr, seed, epochs, **{**defaults, **overrides})


def _recurrence_defaults() -> dict[str, Any]:
    """A float64 recurrence's settings: from the origin (the schema's ``init``), over the
    schema's first ``grid.epochs``, with its ``diverged_factor`` and plain SGD's arguments."""
    from gdbench.schema_defaults import def_defaults

    return {
        "W0": 0.0,
        "b0": 0.0,
        "epochs": schema_default("grid", "epochs"),
        "diverged_factor": schema_default("analysis", "diverged_factor"),
        **def_defaults("sgd_arguments"),
    }


def horizon_problem(x: Any, y: Any, **overrides: Any) -> HorizonProblem:
    """A float64 full-batch problem with the schema's defaults (:func:`_recurrence_defaults`)."""
    from gdbench.horizon import HorizonProblem

    return HorizonProblem(x, y, **{**_recurrence_defaults(), **overrides})


def shuffled_problem(x: Any, y: Any, orders: Any, batch_size: int, **overrides: Any) -> ShuffledProblem:
    """A float64 minibatch problem with the schema's defaults (:func:`_recurrence_defaults`)."""
    from gdbench.minibatch import ShuffledProblem

    return ShuffledProblem(x, y, **{**_recurrence_defaults(), **overrides}, orders=orders, batch_size=batch_size)


# Data and optimizers shared by the unit tests of several modules.

#: The default config's two datasets (the lesson's three points and the noisy line), parsed.
LESSON_AND_NOISY = {
    "tutorial": parse_dataset("tutorial", {"x": [1, 2, 3], "y": [2, 4, 6]}),
    "noisy": parse_dataset(
        "noisy", {"synthetic": {"n": 64, "slope": 2.0, "intercept": 0.5, "noise": 0.5, "x_min": 0.0, "x_max": 3.0}}
    ),
}

#: One of each code path: plain, heavy ball, nesterov, dampening with weight decay, Adam,
#: Adam with every option. Momentum values are not the defaults on purpose.
OPTIMIZERS = {
    "sgd": {"sgd": {}},
    "heavy_ball": {"sgd": {"momentum": 0.8}},
    "nesterov": {"sgd": {"momentum": 0.6, "nesterov": True}},
    "damped": {"sgd": {"momentum": 0.5, "dampening": 0.3, "weight_decay": 0.01}},
    "adam": {"adam": {}},
    "amsgrad": {"adam": {"betas": [0.8, 0.99], "eps": 1.0e-6, "weight_decay": 0.05, "amsgrad": True}},
}


def lesson_lambdas() -> tuple[float, float]:
    """The smallest and largest eigenvalue of the cost's Hessian on the lesson's data."""
    t = analyse(LESSON_AND_NOISY["tutorial"].build(seed=0))
    return t.lambda_min, t.lambda_max


#: SGD-family optimizers with closed-form theory (momentum values not the defaults on purpose).
OPTIMIZER_SPECS = [
    optimizer_spec("sgd"),
    optimizer_spec("hb", momentum=0.9),
    optimizer_spec("hb37", momentum=0.37),
    optimizer_spec("nesterov", momentum=0.9, nesterov=True),
    optimizer_spec("nesterov95", momentum=0.95, nesterov=True),
    optimizer_spec("damped", momentum=0.6, dampening=0.4),
    optimizer_spec("decayed", momentum=0.5, weight_decay=0.3),
]


def draw_figure(fn: Callable[..., Any], *args: Any, tmp_path: Path, name: str) -> str:
    """Draw a figure with warnings as errors; check the PNG is a real image; return the SVG's text."""
    import warnings

    import matplotlib.image

    png, svg = tmp_path / f"{name}.png", tmp_path / f"{name}.svg"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn(*args, png, svg)
    image = matplotlib.image.imread(png)
    assert image.shape[1] >= 900 and image.shape[0] >= 500, f"{name}.png is {image.shape}"
    assert image[..., :3].std() > 0.05, f"{name}.png is blank"
    return svg.read_text()


def figure_tables(grid: dict[str, Any], datasets: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train a small cpu grid and return the tables the figures read: trajectories, summary,
    theory and rate curve."""
    from gdbench import tables
    from gdbench.config import check_config
    from gdbench.experiment import Experiment
    from gdbench.pipeline import theories, train_runs

    config = check_config({"grid": grid} if datasets is None else {"datasets": datasets, "grid": grid})
    experiment = Experiment.from_checked(config, ["cpu"])
    _, trajectories, summary = train_runs(experiment, experiment.runs)
    theory = theories(experiment, list(grid["dataset"]))
    specs = dict(experiment.optimizers)
    return {
        "trajectories": trajectories,
        "summary": summary,
        "theory": tables.theory_table(theory, optimizers=specs),
        "curve": tables.rate_curve_table(theory, specs),
    }


def convergence_axes() -> tuple[Any, Any]:
    """A figure and an axes scaled as a convergence panel (symlog epochs, log excess)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set_xscale("symlog", linthresh=10, linscale=0.6)
    ax.set_xlim(0, 2000)
    ax.set_yscale("log")
    ax.set_ylim(1e-16, 1e3)
    return fig, ax


def planned_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count of a dry run's ``--quiet rules`` table."""
    jobs = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            jobs[parts[0]] = int(parts[1])
    return jobs
