"""The end of a run: the workflow's handlers cancel Snakemake's pending rate-limiter timers, so
the finished process exits at once instead of up to a timespan later; a finished job's process
ends without the interpreter's teardown (end_job)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

from helpers import REPO

from gdbench.shutdown import cancel_pending_timers


def test_pending_timers_are_cancelled_and_never_fire() -> None:
    fired: list[str] = []
    timers = [threading.Timer(30.0, fired.append, args=(str(i),)) for i in range(3)]
    for timer in timers:
        timer.start()
    plain = threading.Thread(target=time.sleep, args=(0.01,))  # not a timer: left alone
    plain.start()
    start = time.monotonic()
    assert cancel_pending_timers() == 3
    assert time.monotonic() - start < 1.0
    assert not any(timer.is_alive() for timer in timers)
    plain.join()
    assert fired == []
    assert cancel_pending_timers() == 0


def test_a_process_with_a_pending_timer_exits_at_once_once_they_are_cancelled() -> None:
    """What the handlers buy: the interpreter joins a pending non-daemon timer at exit."""
    script = textwrap.dedent(
        """
        import sys, threading
        from gdbench.shutdown import cancel_pending_timers
        threading.Timer(2.0, lambda: None).start()
        if sys.argv[1] == "cancel":
            cancel_pending_timers()
        """
    )
    seconds = {}
    for how in ("cancel", "keep"):
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", script, how], check=True)
        seconds[how] = time.monotonic() - start
    assert seconds["keep"] > 1.9
    assert seconds["cancel"] < 1.5


def run_script(body: str, tmp_path) -> subprocess.CompletedProcess[str]:
    """``body`` as a fresh process's script (its stdout a pipe, so print is block-buffered: not
    unbuffered by PYTHONUNBUFFERED)."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(body))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    cmd = [sys.executable, str(script), str(tmp_path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


def test_end_job_ends_at_once_with_status_0_having_run_the_exit_handlers_and_flushed(tmp_path) -> None:
    done = run_script(
        """
        import atexit, logging, sys
        from pathlib import Path
        from gdbench.shutdown import end_job
        out = Path(sys.argv[1])
        logging.basicConfig(filename=out / "job.log", level=logging.INFO)
        logging.info("logged")
        atexit.register(lambda: (out / "atexit.txt").write_text("ran"))
        print("printed, not flushed")
        end_job()
        (out / "after.txt").write_text("end_job returned")
        raise SystemExit(3)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "printed, not flushed\n"
    assert (tmp_path / "atexit.txt").read_text() == "ran"
    assert "logged" in (tmp_path / "job.log").read_text()
    assert not (tmp_path / "after.txt").exists()


def test_end_job_leaves_a_process_with_work_in_another_thread_to_the_interpreter(tmp_path) -> None:
    done = run_script(
        """
        import sys, threading, time
        from pathlib import Path
        from gdbench.shutdown import end_job
        out = Path(sys.argv[1])
        threading.Thread(target=lambda: (time.sleep(0.3), (out / "thread.txt").write_text("done"))).start()
        end_job()
        print("end_job returned")
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "end_job returned\n"
    assert (tmp_path / "thread.txt").read_text() == "done"


def test_every_job_script_ends_with_end_job() -> None:
    """A job's process skips the interpreter's teardown (gdbench.shutdown): its last statement."""
    scripts = sorted((REPO / "workflow" / "scripts").glob("*.py"))
    assert scripts
    for script in scripts:
        last = [line for line in script.read_text().splitlines() if line.strip() and not line.startswith("#")][-1]
        assert last.split("#")[0].strip() == "end_job()", script.name
