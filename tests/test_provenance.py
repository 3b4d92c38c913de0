"""Provenance records what produced a set of results: the config and its hash, the
deterministic settings the training ran under, and the git state of the code."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch

from gdbench.config import check_config, config_hash
from gdbench.determinism import set_deterministic
from gdbench.provenance import collect, deterministic_settings, flatten, git_commit


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_git_state_names_the_commit_and_a_dirty_tree(tmp_path: Path) -> None:
    """If this fails, results made from uncommitted changes read as made from a clean commit
    (or no commit is recorded at all)."""
    git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", "code.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert git_commit(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "untracked.txt").write_text("not code\n")
    assert git_commit(tmp_path) == {"commit": head, "dirty": False}  # untracked files are not changes
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == {"commit": head, "dirty": True}


def test_git_state_outside_a_repository_is_none(tmp_path: Path) -> None:
    """Results made from a copy without git say so (None), instead of failing."""
    assert git_commit(tmp_path) is None


def test_record_holds_the_config_its_hash_and_the_deterministic_settings(tmp_path: Path) -> None:
    """If this fails, provenance.json cannot tell two configs apart, or does not say whether
    deterministic kernels were on when the numbers were made."""
    config = check_config({"grid": {"lr": [0.01, 0.1]}})
    other = check_config({"grid": {"lr": [0.01, 0.2]}})
    set_deterministic(1)
    record = collect(config, started="2026-01-01T00:00:00+00:00", repo=tmp_path)
    assert record["config"] == config and record["config_hash"] == config_hash(config)
    assert len(record["config_hash"]) == 16 and int(record["config_hash"], 16) >= 0
    assert config_hash(other) != record["config_hash"] and config_hash(dict(config)) == record["config_hash"]
    det = record["deterministic"]
    assert det["torch.are_deterministic_algorithms_enabled"] is True
    assert det["cudnn.deterministic"] is True and det["cudnn.benchmark"] is False
    assert det["env"]["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert record["devices"]["cpu"]["torch_threads"] == torch.get_num_threads() == 1
    assert record["git"] is None and record["started"] <= record["finished"]
    keys = dict(flatten(record))
    assert keys["deterministic.cudnn.benchmark"] == "false" and keys["config.grid.lr"] == "[0.01, 0.1]"


def test_recorded_settings_are_the_training_jobs_not_this_process() -> None:
    """The provenance job does not train: the settings it records must be the ones a training
    job recorded, passed in as ``recorded``."""
    job = {"versions": {"torch": "x"}, "devices": {"cpu": {}}, "deterministic": {"flag": "as the job saw it"}}
    record = collect({"grid": {}}, recorded=job)
    assert record["deterministic"] == {"flag": "as the job saw it"} and record["versions"] == {"torch": "x"}
    assert deterministic_settings()["torch.are_deterministic_algorithms_enabled"] is True
