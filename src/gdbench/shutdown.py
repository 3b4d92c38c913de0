"""The end of a Snakemake run: nothing keeps the finished process waiting.

Snakemake's job rate limiter (``--max-jobs-per-timespan``, default 100 per 1 s) starts a
non-daemon :class:`threading.Timer` of its timespan whenever its scheduler waits for running
jobs; the interpreter joins such threads at exit, so a finished run stays up to a whole
timespan (1 s of a 10 s first run) after its last job. The workflow's ``onsuccess`` and
``onerror`` handlers cancel them (:func:`cancel_pending_timers`): the run is over, and the
timer's only action (waking the scheduler) has nothing left to wake.
"""

from __future__ import annotations

import threading


def cancel_pending_timers() -> int:
    """Cancel every :class:`threading.Timer` of this process that has not fired yet and wait for
    each to end; how many were cancelled."""
    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t.is_alive()]
    for timer in timers:
        timer.cancel()
    for timer in timers:
        timer.join()
    return len(timers)
