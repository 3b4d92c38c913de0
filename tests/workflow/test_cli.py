"""The `gdbench` command line: train a grid spec, theory, and clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from gdbench.tables import SUMMARY_COLUMNS, TRAJECTORY_COLUMNS

pytestmark = pytest.mark.slow  # each test starts the CLI in a fresh interpreter (imports torch)


def gdbench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gdbench.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_train_writes_trajectories_and_summary(tmp_path: Path) -> None:
    """`gdbench train SPEC -o OUT.parquet` writes the trajectory table and a summary."""
    spec = tmp_path / "grid.yaml"
    spec.write_text("grid: {dataset: [tutorial], lr: [0.01, 0.5], seed: [1], epochs: [300], device: [cpu]}\n")
    proc = gdbench("train", str(spec), "-o", str(tmp_path / "out.parquet"), "--summary", str(tmp_path / "s.csv"))
    assert proc.returncode == 0, proc.stderr
    traj = pd.read_parquet(tmp_path / "out.parquet")
    summary = pd.read_csv(tmp_path / "s.csv")
    assert list(traj.columns) == list(TRAJECTORY_COLUMNS) and list(summary.columns) == list(SUMMARY_COLUMNS)
    assert summary["diverged"].tolist() == [False, True]
    assert "trained 2 runs (1 diverged)" in proc.stderr


def test_train_refuses_a_bad_spec_in_one_line(tmp_path: Path) -> None:
    """A bad spec prints one line naming the key and writes nothing."""
    spec = tmp_path / "grid.yaml"
    spec.write_text("grid: {lr: [-0.1]}\n")
    proc = gdbench("train", str(spec), "-o", str(tmp_path / "out.parquet"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "grid.lr[0]" in proc.stderr
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error seen without CUDA; CUDA is present here")
def test_missing_device_is_one_clear_line(tmp_path: Path) -> None:
    """Asking for CUDA where torch sees none names the device and what torch sees."""
    proc = gdbench("tutorial", "--device", "cuda")
    assert proc.returncode == 2
    assert "device 'cuda' requested but torch" in proc.stderr and proc.stderr.strip().count("\n") == 0


def test_theory_prints_the_critical_lr() -> None:
    """`gdbench theory` prints the lesson's critical learning rate."""
    proc = gdbench("theory")
    assert proc.returncode == 0 and "0.180295" in proc.stdout
