"""A local run's jobs are served by warm processes (gdbench.warmstart), and what they write is
what jobs in processes of their own write: the tables bit for bit."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import REPO, SMALL_CONFIG, results_of, run_workflow

from gdbench import warmstart

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the warm start is for Linux")


def test_the_small_run_was_served_by_its_warm_processes(small_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = warmstart.served_jobs(small_run)
    assert all(job.exit_code == 0 and job.cpu_s > 0 and job.peak_mib > 0 for job in jobs)
    torch_jobs = [job.script for job in jobs if job.kind == "torch"]
    assert sorted(set(torch_jobs)) == ["edge.py", "retrain.py", "timing.py", "train.py"]
    assert torch_jobs.count("train.py") == 2  # the small grid's two shards
    assert [job.script for job in jobs if job.kind == "plots"] == ["plots.py"]
    seconds = warmstart.import_seconds(small_run)
    assert set(seconds) == {"torch", "plots"} and all(cpu > 0 for cpu in seconds.values())
    # the benchmarks print the served jobs' own figures beside their benchmark: records
    sys.path.insert(0, str(REPO / "benchmarks"))
    import workflow_walltime

    workflow_walltime.print_jobs(small_run)
    printed = capsys.readouterr().out
    assert "served by the warm processes" in printed and "torch: timing.py" in printed and "plots: plots.py" in printed


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
