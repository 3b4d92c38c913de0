"""Tasks spread over forked processes (gdbench.forked, the plots job's figures): every task runs,
in as many processes as asked, failures named, and in the job's own process where forking is
not safe."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from gdbench.forked import TaskFailed, run_tasks, split


def test_split_balances_the_weights_and_keeps_each_group_in_order() -> None:
    names = ["convergence", "rate", "divergence", "edge", "time_to_target", "profile", "timing"]
    groups = split(names, 2, {"convergence": 3.0})
    assert sorted(n for g in groups for n in g) == sorted(names)
    assert [sum(3.0 if n == "convergence" else 1.0 for n in g) for g in groups] in ([5.0, 4.0], [4.0, 5.0])
    for group in groups:
        assert group == [n for n in names if n in group]
    assert split(names, 1, {}) == [names]
    assert split(["a", "b"], 8, {}) == [["a"], ["b"]]  # never an empty group
    assert split(["a", "b", "c"], 2, {"a": 10.0}) == [["a"], ["b", "c"]]
    assert split(["a", "b", "c", "d"], 2, {"d": 2.0}) == [["c", "d"], ["a", "b"]]  # "d" went first


def pid_writer(out: Path, name: str):
    def task() -> None:
        (out / f"{name}.pid").write_text(str(os.getpid()))

    return name, task


def test_two_processes_run_every_task_and_log_each(tmp_path: Path) -> None:
    tasks = [pid_writer(tmp_path, n) for n in ("a", "b", "c", "d")]
    with open(tmp_path / "job.log", "w") as log:
        print("before the fork", file=log)  # buffered: written once, not again by the child
        run_tasks(tasks, 2, log, {"a": 2.0})
    pids = {n: int((tmp_path / f"{n}.pid").read_text()) for n in "abcd"}
    assert len(set(pids.values())) == 2
    assert pids["a"] == os.getpid()  # the heaviest group runs in the job's own process
    lines = (tmp_path / "job.log").read_text().splitlines()
    assert lines.count("before the fork") == 1
    assert sorted(line for line in lines if line.startswith("done: ")) == [f"done: {n}" for n in "abcd"]


def test_one_process_or_a_live_thread_runs_the_tasks_here(tmp_path: Path) -> None:
    for processes in (1, 2):
        stop = threading.Event()
        other = threading.Thread(target=stop.wait)
        if processes == 2:
            other.start()  # a thread of the job's: no fork (its locks would be copied held)
        try:
            with open(tmp_path / "job.log", "w") as log:
                run_tasks([pid_writer(tmp_path, n) for n in "ab"], processes, log)
        finally:
            stop.set()
            if other.is_alive():
                other.join()
        assert {int((tmp_path / f"{n}.pid").read_text()) for n in "ab"} == {os.getpid()}


def failing(name: str):
    def task() -> None:
        raise ValueError(f"{name} broke")

    return name, task


def test_failed_tasks_are_named_and_the_others_still_run(tmp_path: Path) -> None:
    # The weights put "x" (fails) alone in the job's process, "a", "y" (fails) and "b" in the child.
    tasks = [failing("x"), pid_writer(tmp_path, "a"), failing("y"), pid_writer(tmp_path, "b")]
    with open(tmp_path / "job.log", "w") as log, pytest.raises(TaskFailed, match=r"2 of 4 tasks failed: x, y"):
        run_tasks(tasks, 2, log, {"x": 3.0, "a": 0.5, "y": 2.0, "b": 0.5})
    assert (tmp_path / "a.pid").is_file() and (tmp_path / "b.pid").is_file()
    text = (tmp_path / "job.log").read_text()
    assert "ValueError: x broke" in text and "ValueError: y broke" in text


def test_a_child_that_dies_fails_all_its_tasks(tmp_path: Path) -> None:
    def killed() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    tasks = [pid_writer(tmp_path, "a"), ("killed", killed), pid_writer(tmp_path, "c")]
    with open(tmp_path / "job.log", "w") as log, pytest.raises(TaskFailed, match=r"killed"):
        run_tasks(tasks, 2, log, {"a": 5.0})
    assert int((tmp_path / "a.pid").read_text()) == os.getpid()
