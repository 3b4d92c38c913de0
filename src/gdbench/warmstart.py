"""Warm start: a local run's jobs start from one process that has imported torch already.

Every job of a run is a Python process, and most of a small grid's seconds go into starting
them: ``import torch`` costs 1.0-1.3 s of CPU, pandas and pyarrow 0.3 s more, ``torch._dynamo``
(which ``torch.optim``'s first ``step`` imports) another 1.0 s, while a job of the 70-run first
grid trains for a fraction of a second. A local run therefore starts one *warm process*
(``python -m gdbench.warmstart``, from the workflow's ``onstart``) that imports all of that
once and then serves the run's jobs: each job's script, started by Snakemake as usual, asks it
(:func:`delegate`, the script's first statement after its path line) and the warm process forks
a fresh child that runs the script with the job's working folder, environment, arguments and
standard streams; the job's process waits for that child, passes it the signals it gets
(Snakemake stopping a job), and exits with its status. The child is a new process that has
trained nothing: what it computes does not depend on the other jobs (the tables are the same
bit for bit, as the tests check), and ``snakemake verify`` still re-trains in a process of its
own, started afresh.

Where the warm process cannot serve (not started, not Linux, gone, a peer of another user), a
job runs in its own process as before: the warm start only ever saves time. It is not used by
cluster runs (each job runs where the cluster puts it), with ``--use-conda`` or containers
(another interpreter), for grids with CUDA devices (CUDA cannot start in a forked process), or
with ``GDBENCH_WARM_START=0`` in the environment. The warm process ends when the run ends, and
by itself when the Snakemake process that started it is gone.

Snakemake's ``benchmark:`` records measure the job's own process, which only waits: a served
job's CPU seconds and peak memory are in the warm process's log instead (one line per job,
from the kernel's account of the child), ``.snakemake/gdbench/warm_start.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The environment variable that names the warm process's socket (set for the run's jobs).
SOCKET_ENV = "GDBENCH_WARM_SOCKET"
#: ``GDBENCH_WARM_START=0`` (or ``off``, ``false``, ``no``): the run starts no warm process.
SWITCH_ENV = "GDBENCH_WARM_START"
#: What the warm process imports before it serves: what the jobs import (the plots job's
#: matplotlib and seaborn too: one job, so importing them there costs the same).
PRELOAD = (
    "numpy",
    "pandas",
    "pyarrow",
    "pyarrow.parquet",
    "torch",
    "torch._dynamo",
    "gdbench.edge",
    "gdbench.experiment",
    "gdbench.pipeline",
    "gdbench.reproduce",
    "gdbench.tables",
    "gdbench.timing",
    "gdbench.verify",
)
#: Imported too where they can be: the code Snakemake puts before each job's script.
OPTIONAL = ("snakemake.script",)
#: The log of the warm process, under the run's working folder.
LOG = Path(".snakemake") / "gdbench" / "warm_start.log"

_MAGIC = b"GDBW"
_HEADER = struct.Struct("!4sI")  # magic, payload length
_INT = struct.Struct("!i")
#: True in a process the warm process forked for a job: :func:`delegate` returns at once there.
_SERVING_JOB = False


def enabled(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether this environment allows a warm start (``GDBENCH_WARM_START`` not switched off)."""
    return environ.get(SWITCH_ENV, "1").strip().lower() not in {"0", "off", "false", "no"}


# --- the job's side -------------------------------------------------------------------------


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def delegate() -> None:
    """Run this job's script in a child of the warm process and exit with its status; return
    at once (the script then runs here, as without a warm start) where none serves.

    Call it first in a workflow script, after the line that puts this checkout's ``src`` on
    the path: it imports nothing heavy.
    """
    path = os.environ.get(SOCKET_ENV)
    if _SERVING_JOB or not path or not hasattr(socket, "send_fds"):
        return
    request = json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        socket.send_fds(sock, [_HEADER.pack(_MAGIC, len(request))], [0, 1, 2])
        sock.sendall(request)
        answer = _recv_exact(sock, _INT.size)  # waits while the warm process is still importing
    except OSError:
        answer = None
    if answer is None:  # not served: run here
        sock.close()
        return
    (child,) = _INT.unpack(answer)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    try:
        status = _recv_exact(sock, _INT.size)
    except OSError:
        status = None
    if status is None:
        sys.stderr.write("gdbench: the warm process ended before this job's process did; rerun the workflow\n")
        sys.stderr.flush()
        os._exit(1)
    (code,) = _INT.unpack(status)
    os._exit(code if code >= 0 else 128 - code)  # killed by a signal: the shell's convention


# --- the run's side (the Snakemake process) -------------------------------------------------


class WarmStart:
    """A started warm process: its socket (in :data:`SOCKET_ENV` for the run's jobs) and
    :meth:`stop`."""

    def __init__(self, process: Any, folder: Path, log: Path) -> None:
        self.process = process
        self.folder = folder
        self.socket = folder / "socket"
        self.log = log

    def stop(self, timeout: float = 5.0) -> None:
        """End the warm process (it waits for no job: the run's are done) and remove its socket."""
        import subprocess

        if os.environ.get(SOCKET_ENV) == str(self.socket):
            del os.environ[SOCKET_ENV]
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            self.socket.unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()


def start(src: str | Path, workdir: str | Path = ".") -> WarmStart:
    """Start the warm process (this interpreter, ``src`` first on its path) and name its socket
    in :data:`SOCKET_ENV`, which the jobs this process starts inherit. It imports while the
    first jobs connect: they wait for it."""
    import subprocess

    folder = Path(tempfile.mkdtemp(prefix="gdbench-warm-"))  # private (0700): the socket's place
    log = Path(workdir) / LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        process = subprocess.Popen(
            [sys.executable, "-m", "gdbench.warmstart", str(folder / "socket")],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))},
            cwd=workdir,
        )
    warm = WarmStart(process, folder, log)
    os.environ[SOCKET_ENV] = str(warm.socket)
    return warm


# --- the warm process -----------------------------------------------------------------------


def _preload(modules: Sequence[str], optional: Sequence[str], say: Any) -> None:
    import importlib

    started = time.process_time()
    for name in modules:
        importlib.import_module(name)
    for name in optional:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    say(f"imported {', '.join([*modules, *optional])}: {time.process_time() - started:.2f} s CPU")


def _peer_uid(conn: socket.socket) -> int | None:
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """A job's request (arguments, folder, environment) and its three standard streams."""
    conn.settimeout(10.0)
    head, fds, _flags, _addr = socket.recv_fds(conn, _HEADER.size, 3)
    if len(head) < _HEADER.size:
        head += _recv_exact(conn, _HEADER.size - len(head)) or b""
    if len(fds) != 3 or len(head) != _HEADER.size:
        for fd in fds:
            os.close(fd)
        return None
    magic, size = _HEADER.unpack(head)
    payload = _recv_exact(conn, size) if magic == _MAGIC else None
    if payload is None:
        for fd in fds:
            os.close(fd)
        return None
    conn.settimeout(None)
    return json.loads(payload), fds


def _run_job(request: dict[str, Any], fds: list[int]) -> int:
    """In the forked child: become the job's process and run its script; its exit status."""
    import runpy
    import traceback

    global _SERVING_JOB
    _SERVING_JOB = True
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.pop(SOCKET_ENV, None)  # what this job starts runs in its own processes
    sys.argv = list(request["argv"])
    sys.path[0] = str(Path(sys.argv[0]).resolve().parent)  # as ``python SCRIPT`` has it
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # what the interpreter prints for an uncaught exception
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    return code


def serve(path: str, modules: Sequence[str] = PRELOAD, optional: Sequence[str] = OPTIONAL) -> None:
    """The warm process: listen at ``path``, import ``modules``, then fork a child per job
    request until told to stop (SIGTERM) or its parent is gone."""
    import gc
    import threading

    def say(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the jobs; Snakemake ends this one
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)  # at once: jobs that come while this imports wait in the queue
    listener.listen(128)
    _preload(modules, optional, say)
    if threading.active_count() != 1:
        say("a thread is running after the imports: no fork is safe here; the jobs run in their own processes")
        listener.close()
        return
    gc.freeze()  # the imported objects stay where they are: the children share their pages
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a child's end wakes the loop
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    jobs: dict[int, tuple[socket.socket, str, float]] = {}  # child pid -> (job's connection, script, start)
    say(f"serving at {path}")
    while not stopping and os.getppid() == parent:
        for key, _events in selector.select(timeout=1.0):
            if key.fileobj is listener:
                with contextlib.suppress(BlockingIOError):
                    conn, _ = listener.accept()
                    _accept(conn, listener, selector, jobs, wake_r, wake_w, say)
            elif key.fileobj == wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
            else:  # a job's process went away (Snakemake killed it): so does its child
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                for child, (job_conn, script, _) in jobs.items():
                    if job_conn is conn:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(child, signal.SIGKILL)
                        say(f"job {script} (pid {child}): its job's process is gone; stopped")
                selector.unregister(conn)
        _reap(jobs, selector, say)
    for child in jobs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
    while jobs:
        _reap(jobs, selector, say, block=True)
    say("stopped" if stopping else "the run's Snakemake process is gone: stopped")
    listener.close()
    with contextlib.suppress(OSError):
        os.unlink(path)


def _accept(conn, listener, selector, jobs, wake_r, wake_w, say) -> None:  # type: ignore[no-untyped-def]
    if _peer_uid(conn) not in (None, os.getuid()):
        conn.close()
        return
    try:
        received = _receive(conn)
    except (OSError, ValueError):
        received = None
    if received is None:
        conn.close()
        return
    request, fds = received
    script = Path(request["argv"][0]).name if request.get("argv") else "?"
    child = os.fork()
    if child == 0:  # the job's process from here on
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGTERM):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            selector.close()
            for fd in (wake_r, wake_w):
                os.close(fd)
            listener.close()
            for other, _, _ in jobs.values():
                other.close()
            conn.close()
            code = _run_job(request, fds)
        finally:
            os._exit(code)
    for fd in fds:
        os.close(fd)
    conn.sendall(_INT.pack(child))
    jobs[child] = (conn, script, time.monotonic())
    selector.register(conn, selectors.EVENT_READ)


def _reap(jobs, selector, say, block: bool = False) -> None:  # type: ignore[no-untyped-def]
    while jobs:
        try:
            child, status, usage = os.wait4(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if child == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        entry = jobs.pop(child, None)
        if entry is None:
            continue
        conn, script, started = entry
        say(
            f"job {script} (pid {child}): exit {code}, {time.monotonic() - started:.2f} s wall, "
            f"{usage.ru_utime + usage.ru_stime:.2f} s CPU, {usage.ru_maxrss / 1024:.0f} MiB peak"
        )
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(conn)
        with contextlib.suppress(OSError):
            conn.sendall(_INT.pack(code))
        conn.close()
        if block:
            return


if __name__ == "__main__":
    # As gdbench.warmstart, not __main__: the jobs' scripts import that module, whose
    # _SERVING_JOB their forked process must see.
    from gdbench import warmstart

    warmstart.serve(sys.argv[1])
