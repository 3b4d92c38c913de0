"""Independent tasks of one job spread over processes forked from it, so that what the job has
imported (pandas, matplotlib and seaborn: ~1 s of CPU in the plots job) is imported once and
shared, and the tasks still run on as many cores as the job was given.

The plots job draws its figures this way (``threads: 2`` in rule plots): at the end of a big
grid's run it is the last job, alone on one core while the other one idles, and its figures
are independent. Where the job has one core, or the platform cannot fork, the tasks run one
after another in the job's own process.

Fork before the job starts threads of its own: :func:`run_tasks` refuses to fork while another
Python thread is alive and runs the tasks in the job's process instead.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

__all__ = ["TaskFailed", "run_tasks", "split"]

#: A named task: what it is called in the log and the error, and the call that does it.
Task = tuple[str, Callable[[], object]]


class TaskFailed(RuntimeError):
    """One or more tasks failed; the message names them (their tracebacks are in the log)."""


def split(names: Sequence[str], groups: int, weights: Mapping[str, float]) -> list[list[str]]:
    """``names`` in at most ``groups`` groups of nearly equal total weight (the heaviest first,
    each to the lightest group so far; a name without a weight weighs 1), no group empty, each
    group in the order of ``names``."""
    groups = max(1, min(groups, len(names)))
    load = [0.0] * groups
    members: list[list[str]] = [[] for _ in range(groups)]
    for name in sorted(names, key=lambda n: -weights.get(n, 1.0)):
        lightest = load.index(min(load))
        members[lightest].append(name)
        load[lightest] += weights.get(name, 1.0)
    order = {name: i for i, name in enumerate(names)}
    return [sorted(group, key=order.__getitem__) for group in members if group]


def _run(tasks: Sequence[Task], log: TextIO) -> list[str]:
    """Run ``tasks`` here, each logged as done; the names of those that failed (tracebacks logged)."""
    failed = []
    for name, call in tasks:
        try:
            call()
        except Exception:
            print(f"{name} failed (pid {os.getpid()}):\n{traceback.format_exc()}", file=log, flush=True)
            failed.append(name)
        else:
            print(f"done: {name}", file=log, flush=True)
    return failed


def run_tasks(tasks: Sequence[Task], processes: int, log: TextIO, weights: Mapping[str, float] | None = None) -> None:
    """Run every task of ``tasks``, in up to ``processes`` processes: this one and children
    forked from it, the tasks split by :func:`split` on ``weights``. The log says how many
    processes run them and each task that ends (``done: NAME``); every task runs even when
    another fails, and then :class:`TaskFailed` names the failed ones."""
    by_name = dict(tasks)
    groups = split([name for name, _ in tasks], processes, weights or {})
    can_fork = hasattr(os, "fork") and threading.active_count() == 1
    # Flushed: nothing buffered at the fork, or the children would write it again.
    print(f"{len(tasks)} tasks in {len(groups) if can_fork else 1} process(es)", file=log, flush=True)
    if len(groups) <= 1 or not can_fork:
        failed = _run(tasks, log)
    else:
        children = {}
        for group in groups[1:]:
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: its tasks, then out at once (no parent's code, no teardown)
                os.close(read_end)
                code = 1
                try:
                    names = _run([(n, by_name[n]) for n in group], log)
                    os.write(write_end, "\n".join(names).encode())
                    code = 0
                finally:
                    os._exit(code)
            os.close(write_end)
            children[pid] = (group, read_end)
        failed = _run([(n, by_name[n]) for n in groups[0]], log)
        for pid, (group, read_end) in children.items():
            with os.fdopen(read_end, "rb") as fh:
                reported = [n for n in fh.read().decode().split("\n") if n]
            _, status = os.waitpid(pid, 0)
            # A child that died (killed, out of memory) reported nothing: all its tasks count as failed.
            failed += reported if os.waitstatus_to_exitcode(status) == 0 else group
    if failed:
        raise TaskFailed(f"{len(failed)} of {len(tasks)} tasks failed: {', '.join(failed)} (see the log)")
