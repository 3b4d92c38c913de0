"""The end of a process: nothing keeps a finished one waiting or busy.

Snakemake's job rate limiter (``--max-jobs-per-timespan``, default 100 per 1 s) starts a
non-daemon :class:`threading.Timer` of its timespan whenever its scheduler waits for running
jobs; the interpreter joins such threads at exit, so a finished run stays up to a whole
timespan (1 s of a 10 s first run) after its last job. The workflow's ``onsuccess`` and
``onerror`` handlers cancel them (:func:`cancel_pending_timers`): the run is over, and the
timer's only action (waking the scheduler) has nothing left to wake.

A finished job's process ends with :func:`end_job`: its outputs are written and closed, so
the interpreter's teardown (freeing every module's objects one by one) has nothing left to do
but costs CPU: 0.3 s in a process that imported torch, 0.6 s with ``torch._dynamo`` (which
``torch.optim`` imports) and pandas (``python benchmarks/wallclock.py teardown``), more in a job
that holds its data; the 70-run first grid's five job processes spend 2.5-3.3 s less CPU in
all. The atexit handlers still run (logging's flush among them) and standard output and error
are flushed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
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


def end_job() -> None:
    """End this finished process at once with status 0, without the interpreter's teardown.

    Call it last, once every output is written and closed. The atexit handlers run first and
    the standard streams are flushed. Where another non-daemon thread is still alive (work
    that may not be done), it returns instead, and the interpreter's own exit waits for it.
    """
    main = threading.main_thread()
    if any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return
    atexit._run_exitfuncs()  # what the interpreter's exit runs first (logging.shutdown among them)
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):  # a log file already closed
                stream.flush()
    os._exit(0)
