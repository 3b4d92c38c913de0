"""Shared test helpers: the repository's paths, running the workflow in a temporary
directory, the settings every in-process test trains with, and skips that CI turns into
failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"


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


@pytest.fixture(scope="session", autouse=True)
def deterministic() -> None:
    """In-process training runs with the settings of the workflow's jobs: deterministic
    algorithms and one torch thread (a test that needs other threads sets and restores them)."""
    from gdbench.determinism import set_deterministic

    set_deterministic(1)


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


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workflow run once on SMALL_CONFIG; tests inspect its results."""
    workdir = tmp_path_factory.mktemp("small_run")
    run_workflow(workdir, SMALL_CONFIG, "--cores", "2")
    return workdir
