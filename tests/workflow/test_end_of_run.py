"""The end of a run: the Snakefile's handlers cancel Snakemake's pending rate-limiter timers
(gdbench.shutdown), so the finished process exits at once, not a timespan after its last job."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import run_workflow


@pytest.mark.slow
def test_a_finished_run_exits_without_waiting_out_the_rate_limiter(tmp_path: Path) -> None:
    """With a 20 s timespan a run of one quick job would stay ~20 s after it (the interpreter
    joins the limiter's pending timer); cancelled by onsuccess, it ends in a few seconds."""
    config = {"grid": {"dataset": ["tutorial"], "lr": [0.1], "seed": [1], "device": ["cpu"]}}
    start = time.monotonic()
    run_workflow(
        tmp_path, config, "--cores", "1", "--max-jobs-per-timespan", "100/20s", "results/config/tables/theory.csv"
    )
    assert time.monotonic() - start < 15.0
    assert (tmp_path / "results" / "config" / "tables" / "theory.csv").stat().st_size > 0
