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
from conftest import snakemake_args

pytestmark = pytest.mark.slow

POINTS_CSV = "hours,score\n1,2.1\n2,3.9\n3,6.2\n"
CSV_GRID = "grid: {dataset: [mine], lr: [0.1], seed: [1], epochs: [10]}\n"


@dataclass(frozen=True)
class Case:
    """A bad config, the line the user must see (after ``gdbench: ``), and files it needs."""

    id: str
    config: str
    line: str
    files: tuple[tuple[str, str], ...] = ()


CASES = [
    Case("lr-negative", "grid: {lr: [0.1, -0.1]}", "config error: grid.lr[1] = -0.1: must be a number > 0"),
    Case("lr-zero", "grid: {lr: [0]}", "config error: grid.lr[0] = 0: must be a number > 0"),
    Case("lr-nan", "grid: {lr: [.nan]}", "config error: grid.lr[0] = .nan: must be a number > 0"),
    Case("lr-not-a-number", "grid: {lr: [fast]}", 'config error: grid.lr[0] = "fast": must be a number > 0'),
    Case(
        "diverged_factor-1e6-string",
        "analysis: {diverged_factor: 1e6}",
        'config error: analysis.diverged_factor = "1e6": must be a number > 1; YAML reads 1e6 as a string',
    ),
    Case("lr-empty", "grid: {lr: []}", "config error: grid.lr = []: must be a non-empty list"),
    Case("device-tpu", "grid: {device: [tpu]}", 'config error: grid.device[0] = "tpu": must be "cpu", "cuda"'),
    Case(
        "dataset-unknown",
        "grid: {dataset: [tutorial, noisey]}",
        'config error: grid.dataset[1] = "noisey": no such dataset; did you mean "noisy"?',
    ),
    Case("key-grid-lrs", "grid: {lrs: [0.1]}", "config error: grid.lrs = [0.1]: unknown key; did you mean grid.lr?"),
    Case(
        "csv-missing",
        "datasets: {mine: {csv: data/missing.csv, x: hours, y: score}}\n" + CSV_GRID,
        'config error: datasets.mine.csv = "data/missing.csv": file not found',
    ),
    Case(
        "csv-wrong-column",
        "datasets: {mine: {csv: data/points.csv, x: hours, y: scores}}\n" + CSV_GRID,
        'config error: datasets.mine.y = "scores": no such column in data/points.csv',
        files=(("data/points.csv", POINTS_CSV),),
    ),
    Case("epochs-zero", "grid: {epochs: [0]}", "config error: grid.epochs[0] = 0: must be an integer from 1"),
    Case("epochs-fractional", "grid: {epochs: [2.5]}", "config error: grid.epochs[0] = 2.5: must be an integer"),
    Case("dtype", "training: {dtype: float16}", 'config error: training.dtype = "float16": must be "float32"'),
    Case("engine", "training: {engine: fast}", 'config error: training.engine = "fast": must be "loop" or "batched"'),
    Case("init", "training: {init: ones}", 'config error: training.init = "ones": must be "zeros" or "normal"'),
    Case("batch-size-0", "training: {batch_size: 0}", 'config error: training.batch_size = 0: must be "full"'),
    Case(
        "dataset-name-shell",
        "datasets: {'$(touch pwned)': {x: [1, 2], y: [2, 4]}}\ngrid: {dataset: ['$(touch pwned)']}",
        'config error: datasets["$(touch pwned)"] = "$(touch pwned)": bad dataset name',
    ),
]


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


def _prepare(base: Path, case: Case) -> Path:
    workdir = base / case.id
    workdir.mkdir()
    (workdir / "config.yaml").write_text(case.config + "\n")
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
def test_dry_run_refuses_bad_config_with_one_line(case: Case, dry_runs: dict[str, Outcome]) -> None:
    """`snakemake -n` with a bad config exits non-zero, prints one line naming the key and the
    value, and creates no results/."""
    _assert_refused(dry_runs[case.id], case.line)


def test_hostile_dataset_name_reaches_no_shell(tmp_path: Path) -> None:
    """A dataset named `$(touch pwned)` is refused by a real run (a dry run executes nothing,
    so it could not show this) before any job or shell could run it."""
    case = next(c for c in CASES if c.id == "dataset-name-shell")
    outcome = _snakemake(_prepare(tmp_path, case), "--cores", "1")
    _assert_refused(outcome, case.line)
    assert not (outcome.workdir / "pwned").exists() and not (Path.cwd() / "pwned").exists()


def test_real_run_refuses_bad_config_before_any_job(tmp_path: Path) -> None:
    """Not only the dry run: `snakemake --cores 1` stops before any job and writes nothing."""
    workdir = _prepare(tmp_path, Case("real", "grid: {lr: [0.1, -0.1]}", ""))
    outcome = _snakemake(workdir, "--cores", "1")
    _assert_refused(outcome, "config error: grid.lr[1] = -0.1: must be a number > 0")


def test_config_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    """A config file holding a list is refused by Snakemake itself, before the workflow runs
    (it cannot name a key: there is none)."""
    workdir = _prepare(tmp_path, Case("list", "- 1\n- 2", ""))
    outcome = _snakemake(workdir, "-n")
    assert outcome.returncode != 0
    assert "Config file must be given as JSON or YAML with keys at top level" in outcome.stdout + outcome.stderr
    assert not (workdir / "results").exists()
