"""Session fixtures: the settings every in-process test trains with and the small workflow
run several tests read. Helpers live in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SMALL_CONFIG, shared_run


@pytest.fixture(scope="session", autouse=True)
def deterministic() -> None:
    """In-process training runs with the settings of the workflow's jobs: deterministic
    algorithms and one torch thread (a test that needs other threads sets and restores them)."""
    from gdbench.determinism import set_deterministic

    set_deterministic(1)


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workflow run once on SMALL_CONFIG; tests inspect its results."""
    return shared_run(tmp_path_factory, "small_run", SMALL_CONFIG)
