"""Damaged inputs: a truncated Parquet file, an empty or broken CSV, a cut JSON file are named
in one line with the remedy, and the reader's traceback goes to the job's log."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from gdbench.inputs import DamagedInput, check_inputs, check_readable, remedy

REBUILT = "Snakemake makes it again, and what depends on it"


def _files(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "results" / "default" / "shards" / "cpu-000"
    folder.mkdir(parents=True)
    good = folder / "summary.parquet"
    pd.DataFrame({"run_id": [0, 1], "cost": [1.0, 2.0]}).to_parquet(good)
    cut = folder / "cut.parquet"
    cut.write_bytes(good.read_bytes()[:-20])  # a copy that broke, a disk that filled up
    csv = tmp_path / "results" / "default" / "timing.csv"
    csv.write_text("device,s\ncpu,1.5\n")
    return {"good": good, "cut": cut, "csv": csv}


def test_whole_files_pass_and_damaged_ones_are_named(tmp_path: Path) -> None:
    """If this fails, a truncated Parquet file, an empty CSV or a cut JSON file reaches a reader
    that fails with a raw exception (or a whole file is refused)."""
    files = _files(tmp_path)
    for path in (files["good"], files["csv"]):
        check_readable(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    cut_json = tmp_path / "meta.json"
    cut_json.write_text('{"threads": 1, "run_')
    for bad, kind in ((files["cut"], "Parquet"), (empty, "CSV"), (cut_json, "JSON")):
        with pytest.raises(DamagedInput) as info:
            check_readable(bad)
        assert info.value.path == bad and f"unreadable as {kind}" in str(info.value)


def test_a_damaged_input_stops_the_job_with_one_line_and_the_traceback_in_its_log(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """If this fails, a job that meets a damaged file ends with a raw exception and an empty
    log, and nothing says which file or what to do."""
    files = _files(tmp_path)
    log = io.StringIO()
    with pytest.raises(SystemExit) as info:
        check_inputs([files["good"], files["cut"], files["csv"]], log)
    assert info.value.code == 1
    terminal = capfd.readouterr().err.strip().splitlines()
    assert len(terminal) == 1
    assert terminal[0].startswith(f"gdbench: input {files['cut']} is damaged or unreadable (")
    assert terminal[0].endswith(": delete it and run the same snakemake command again: " + REBUILT)
    assert "Traceback" in log.getvalue() and log.getvalue().rstrip().endswith(terminal[0])


def test_remedy_is_to_rebuild_what_the_workflow_makes_and_repair_the_rest() -> None:
    assert remedy("results/default/tables/summary.parquet").startswith("delete it and run")
    assert remedy("data/points.csv") == "repair or replace it (the workflow does not make it)"
