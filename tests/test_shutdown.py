"""The end of a run: the workflow's handlers cancel Snakemake's pending rate-limiter timers, so
the finished process exits at once instead of up to a timespan later."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

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
