"""Static checks of the package: its types hold (it ships ``py.typed``, so users' type checkers
read its hints and trust them)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import REPO


@pytest.mark.slow
def test_mypy_finds_no_type_errors_in_the_package() -> None:
    """A wrong hint misleads every user's type checker; mypy (configured in pyproject.toml,
    over src/) must report nothing."""
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
