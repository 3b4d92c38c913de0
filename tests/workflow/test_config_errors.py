"""Bad configs through the real workflow: `snakemake` stops before any job with one line.

Each case writes a config into its own temporary working directory and runs
``snakemake -s Snakefile --directory TMP --configfile TMP/config.yaml -n`` (one case without
``-n``). If these fail, a user who mistypes a key or writes ``1e6`` sees a traceback or a
schema dump instead of ``gdbench: config error: KEY = VALUE: what is allowed``, or finds a
half-made ``results/`` directory.

A Snakemake start that fails at the config check costs ~3 s of CPU here (half of it
``import torch`` through ``gdbench``), so the dry runs are started together once per module,
as many at a time as there are cores, and the parametrised tests read their outcomes. The
other bad configs are covered, faster, by tests/test_config.py.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from config_errors import THROUGH_WORKFLOW, BadConfig
from helpers import snakemake_args

pytestmark = pytest.mark.slow

#: The bad configs of the one table (tests/config_errors.py) that go through the workflow.
CASES = THROUGH_WORKFLOW


@dataclass(frozen=True)
class Outcome:
    workdir: Path
    returncode: int
    stdout: str
    stderr: str


def _snakemake(workdir: Path, *extra: str) -> Outcome:
    command = snakemake_args(workdir, *extra)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=workdir)
    return Outcome(workdir, done.returncode, done.stdout, done.stderr)


def _prepare(base: Path, case: BadConfig) -> Path:
    workdir = base / case.id
    workdir.mkdir()
    (workdir / "config.yaml").write_text(case.text + "\n")
    for name, text in case.files:
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text)
    return workdir


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case's `snakemake -n`, run a few at a time."""
    base = tmp_path_factory.mktemp("bad-configs")
    workdirs = {case.id: _prepare(base, case) for case in CASES}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {key: pool.submit(_snakemake, workdir, "-n") for key, workdir in workdirs.items()}
        return {key: future.result() for key, future in futures.items()}


def _assert_refused(outcome: Outcome, line: str) -> None:
    output = outcome.stdout + outcome.stderr
    assert outcome.returncode != 0, output
    errors = [text for text in output.splitlines() if "config error" in text]
    assert len(errors) == 1, output  # one line, said once
    assert errors[0].startswith(f"gdbench: {line}"), output
    assert "Traceback" not in output, output
    assert not (outcome.workdir / "results").exists(), "a refused config left results/ behind"


def test_enough_distinct_cases() -> None:
    """The issue asks for at least 15 distinct bad configs through the workflow."""
    assert len({case.id for case in CASES}) == len(CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_dry_run_refuses_bad_config_with_one_line(case: BadConfig, dry_runs: dict[str, Outcome]) -> None:
    """`snakemake -n` with a bad config exits non-zero, prints one line naming the key and the
    value, and creates no results/."""
    _assert_refused(dry_runs[case.id], f"config error: {case.head}")


def test_hostile_dataset_name_reaches_no_shell(tmp_path: Path) -> None:
    """A dataset named `$(touch pwned)` is refused by a real run (a dry run executes nothing,
    so it could not show this) before any job or shell could run it."""
    case = next(c for c in CASES if c.id == "dataset-name-shell")
    outcome = _snakemake(_prepare(tmp_path, case), "--cores", "1")
    _assert_refused(outcome, f"config error: {case.head}")
    assert not (outcome.workdir / "pwned").exists() and not (Path.cwd() / "pwned").exists()


def test_real_run_refuses_bad_config_before_any_job(tmp_path: Path) -> None:
    """Not only the dry run: `snakemake --cores 1` stops before any job and writes nothing."""
    workdir = _prepare(tmp_path, BadConfig("real", "grid: {lr: [0.1, -0.1]}", ""))
    outcome = _snakemake(workdir, "--cores", "1")
    _assert_refused(outcome, "config error: grid.lr[1] = -0.1: must be a number > 0")


def test_config_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    """A config file holding a list is refused by Snakemake itself, before the workflow runs
    (it cannot name a key: there is none)."""
    workdir = _prepare(tmp_path, BadConfig("list", "- 1\n- 2", ""))
    outcome = _snakemake(workdir, "-n")
    assert outcome.returncode != 0
    assert "Config file must be given as JSON or YAML with keys at top level" in outcome.stdout + outcome.stderr
    assert not (workdir / "results").exists()
