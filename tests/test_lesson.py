"""The lesson, reproduced: its printed log and its two side lessons."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gdbench.lesson import REFERENCE_LOG, manual_seed_lesson, zero_grad_lesson


@pytest.mark.parametrize(("command", "engine"), [("lesson", "loop"), ("lesson", "batched"), ("tutorial", "loop")])
def test_lesson_prints_the_lessons_log_exactly(command: str, engine: str) -> None:
    """`gdbench lesson` (and its first name, `gdbench tutorial`) must print the lesson's 21
    lines (epochs 0..2000) character for character; otherwise users cannot trust the pipeline reproduces the lesson."""
    out = subprocess.run(
        [sys.executable, "-m", "gdbench.cli", command, "--engine", engine],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines() == REFERENCE_LOG.splitlines()
    assert len(out.splitlines()) == 21
    assert out.splitlines()[-1] == "Epoch 2000/2000 W: 1.997, b: 0.006 Cost: 0.000005"


def test_gradients_accumulate_without_zero_grad() -> None:
    """Without zero_grad, w.grad grows 2, 4, ..., 42 over epochs 0..20 (the lesson's point)."""
    assert zero_grad_lesson(20, zero_grad=False) == [2.0 * k for k in range(1, 22)]


def test_zero_grad_resets_gradients() -> None:
    """With zero_grad, every epoch sees the true gradient 2.0."""
    assert zero_grad_lesson(20, zero_grad=True) == [2.0] * 21


@pytest.mark.parametrize(("seed", "expected"), [(3, [0.0043, 0.1056]), (5, [0.8303, 0.1261])])
def test_manual_seed_gives_the_lessons_numbers(seed: int, expected: list[float]) -> None:
    """The same seed gives the same random numbers, the ones printed in the lesson."""
    assert [round(v, 4) for v in manual_seed_lesson(seed)] == expected
    assert manual_seed_lesson(seed) == manual_seed_lesson(seed)
