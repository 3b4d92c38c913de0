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
from typing import TypeVar

import pytest
import yaml

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
