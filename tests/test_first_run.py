"""A newcomer's first run: dry runs without a profile, readable rerun reasons, quiet output."""

from __future__ import annotations

from pathlib import Path

from conftest import run_workflow


def test_a_dry_run_needs_no_cores(tmp_path: Path) -> None:
    """`snakemake -n --workflow-profile none` plans the run instead of asking for --cores."""
    proc = run_workflow(tmp_path, {"grid": {"device": ["cpu"]}}, "-n", "--workflow-profile", "none")
    assert "Timing the engines on cpu (1 torch thread(s); 1 core(s) reserved)" in proc.stdout


def test_the_timing_job_reserves_every_core_given(tmp_path: Path) -> None:
    """With --cores 3 the timing job holds all 3, so nothing runs beside its measurements."""
    proc = run_workflow(tmp_path, {"grid": {"device": ["cpu"]}}, "-n", "--cores", "3")
    assert "Timing the engines on cpu (1 torch thread(s); 3 core(s) reserved)" in proc.stdout
