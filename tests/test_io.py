"""Writes are atomic: a writer interrupted mid-way (an exception, or SIGKILL) leaves either
the old complete file or none, never a half-written one under the target's name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gdbench import io


def test_an_exception_mid_write_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "table.csv"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("run_id,W\n0,1.5\n")
        raise RuntimeError("disk full")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # the temporary file is gone too


def test_an_exception_mid_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    io.write_csv(pd.DataFrame({"a": [1, 2]}), target)
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("a\n9\n")
        raise RuntimeError("interrupted")
    assert pd.read_csv(target)["a"].tolist() == [1, 2]


def test_a_killed_writer_leaves_no_target_and_the_rerun_clears_its_leftover(tmp_path: Path) -> None:
    """SIGKILL mid-write (no Python cleanup runs): the target does not exist, only a hidden
    temp file that no reader takes for the result; the next write of the target removes it."""
    target = tmp_path / "summary.parquet"
    script = (
        "import os, signal, sys\n"
        "from gdbench import io\n"
        "with io.atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'PAR1 half a file')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(target)], env={**os.environ}, check=False)
    assert proc.returncode == -signal.SIGKILL
    left = list(tmp_path.iterdir())
    assert not target.exists() and len(left) == 1
    assert left[0].name.startswith(".summary.parquet.") and left[0].name.endswith(".tmp")
    io.write_parquet(pd.DataFrame({"x": [1.0]}), target)
    assert [p.name for p in tmp_path.iterdir()] == ["summary.parquet"]
    assert pd.read_parquet(target)["x"].tolist() == [1.0]


def test_written_files_are_readable_by_everyone_the_umask_allows(tmp_path: Path) -> None:
    """mkstemp makes 0600 files; results are shared (a cluster's other users, a web server)."""
    previous = os.umask(0o022)
    try:
        io.write_text("x", tmp_path / "a.txt")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
