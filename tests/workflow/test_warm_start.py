"""A local run's jobs are served by warm processes (gdbench.warmstart), and what they write is
what jobs in processes of their own write: the tables bit for bit."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import SMALL_CONFIG, results_of, run_workflow

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the warm start is for Linux")


def served(workdir: Path, kind: str) -> list[str]:
    """The scripts a run's warm process of ``kind`` ran, each with exit 0 (its log's lines)."""
    log = workdir / ".snakemake" / "gdbench" / f"warm_start_{kind}.log"
    lines = log.read_text().splitlines()
    return [line.split()[2] for line in lines if ": exit 0, " in line]


def test_the_small_run_was_served_by_its_warm_processes(small_run: Path) -> None:
    torch_jobs = served(small_run, "torch")
    assert sorted(set(torch_jobs)) == ["edge.py", "retrain.py", "timing.py", "train.py"]
    assert torch_jobs.count("train.py") == 2  # the small grid's two shards
    assert served(small_run, "plots") == ["plots.py"]


def test_a_run_without_the_warm_start_writes_the_same_tables(
    small_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GDBENCH_WARM_START", "0")
    tables = ["trajectories.parquet", "summary.parquet", "edge.csv"]
    results = results_of(tmp_path)
    targets = (str((results / "tables" / name).relative_to(tmp_path)) for name in tables)
    run_workflow(tmp_path, SMALL_CONFIG, "--cores", "2", *targets)
    assert not list(tmp_path.glob(".snakemake/gdbench/warm_start_*.log"))  # no warm process was started
    warm = results_of(small_run) / "tables"
    pd.testing.assert_frame_equal(
        pd.read_parquet(results / "tables" / "trajectories.parquet"),
        pd.read_parquet(warm / "trajectories.parquet"),
        check_exact=True,
    )
    timed = "batch_seconds_per_run"  # the only column that is a measurement of time
    pd.testing.assert_frame_equal(
        pd.read_parquet(results / "tables" / "summary.parquet").drop(columns=timed),
        pd.read_parquet(warm / "summary.parquet").drop(columns=timed),
        check_exact=True,
    )
    assert (results / "tables" / "edge.csv").read_bytes() == (warm / "edge.csv").read_bytes()
