"""Warm start: a local run's jobs start from processes that have imported torch already.

Every job of a run is a Python process, and most of a small grid's seconds go into starting
them: ``import torch`` costs 1.0-1.3 s of CPU, pandas and pyarrow 0.3 s more, ``torch._dynamo``
(which ``torch.optim``'s optimizers import when built) another 1.0 s, matplotlib 0.5 s, while a
job of the 70-run first grid trains for a fraction of a second. A local run therefore starts
*warm processes* (``python -m gdbench.warmstart SOCKET KIND``, from the workflow's
``onstart``), one per kind of :data:`KINDS`: ``torch`` for the jobs that train or time,
``plots`` for the plots job. Each imports its set once, the two at once on two cores while
Snakemake starts the run, and then serves jobs: each job's script, started by Snakemake as
usual, asks its kind's process (:func:`delegate`, the script's first statement after its path
line) and that process forks a fresh child that runs the script with the job's working folder,
environment, arguments and standard streams; the job's process waits for that child, passes it
the signals it gets (Snakemake stopping a job), and exits with its status. The child is a new
process that has trained nothing: what it computes does not depend on the other jobs (the
tables are the same bit for bit, as the tests check), and ``snakemake verify`` still
re-trains in a process of its own, started afresh.

Where no warm process serves (not started, not Linux, gone, a peer of another user), a job
runs in its own process as before: the warm start only ever saves time. It is not used by
cluster runs (each job runs where the cluster puts it), with ``--use-conda`` or containers
(another interpreter), for grids with CUDA devices (CUDA cannot start in a forked process), or
with ``GDBENCH_WARM_START=0`` in the environment. The warm processes end when the run ends,
and by themselves when the Snakemake process that started them is gone; the socket folder of a
run killed with SIGKILL, warm processes and all, is removed by the next run's start.

Snakemake's ``benchmark:`` records measure the job's own process, which only waits: a served
job's wall and CPU seconds and peak memory are in its warm process's log instead (one line per
job, from the kernel's account of the child), ``.snakemake/gdbench/warm_start_<kind>.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import socket
import stat
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The environment variable that names the folder of the warm processes' sockets (set for the
#: run's jobs): one socket per kind, ``<kind>.socket``.
SOCKET_ENV = "GDBENCH_WARM_SOCKETS"
#: ``GDBENCH_WARM_START=0`` (or ``off``, ``false``, ``no``): the run starts no warm process.
SWITCH_ENV = "GDBENCH_WARM_START"
#: The kinds of warm process and what each imports before it serves: what its jobs import.
#: Two processes, so that the two sets import at once on two cores while Snakemake starts the
#: run; ``plots`` serves the plots job, which needs no torch, ``torch`` the others.
_TIMING_JOB = (
    "numpy",
    "torch",
    "torch._dynamo",  # torch.optim's optimizers import it when built (the loop engine)
    "gdbench.experiment",
    "gdbench.timing.harness",
    "gdbench.timing.plans",
    "gdbench.timing.results",
)
KINDS: dict[str, tuple[str, ...]] = {
    "torch": (
        *_TIMING_JOB,  # the timing job starts once these are in (EARLY)
        "pandas",
        "pyarrow",
        "pyarrow.parquet",
        "gdbench.edge",
        "gdbench.pipeline",
        "gdbench.reproduce",
        "gdbench.tables",
        "gdbench.verify",
    ),
    "plots": (
        "numpy",
        "pandas",
        "pyarrow",
        "pyarrow.parquet",
        "matplotlib",
        "gdbench.plots",
        "gdbench.plots.style",
        "gdbench.forked",
    ),
}
#: The jobs a warm process starts before its imports are done, by kind: (how many of its
#: modules they need, their scripts). The timing job (on a small grid's critical path: the
#: plots wait for it) imports no pandas: it starts 0.3-0.4 s sooner, and the other jobs,
#: which would share its cores, wait for the rest.
EARLY: dict[str, tuple[int, tuple[str, ...]]] = {"torch": (len(_TIMING_JOB), ("timing.py",))}
#: Imported too where they can be: the code Snakemake puts before each job's script.
OPTIONAL = ("snakemake.script",)
#: The warm processes' log folder, under the run's working folder (``<kind>.log``).
LOG_DIR = Path(".snakemake") / "gdbench"

_MAGIC = b"GDBW"
_HEADER = struct.Struct("!4sI")  # magic, payload length
_INT = struct.Struct("!i")
#: The jobs a warm process runs: child pid -> (the job's connection, its script, its start).
_Jobs = dict[int, tuple[socket.socket, str, float]]
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


#: The socket folders' prefix, in the temporary folder (a socket's path is at most 107 bytes).
FOLDER_PREFIX = "gdbench-warm-"


def remove_stale_folders(where: str | Path | None = None, min_age: float = 60.0) -> list[Path]:
    """Remove this user's socket folders in ``where`` (the temporary folder) that no warm
    process listens at: a run killed with SIGKILL, warm processes and all, leaves its folder
    behind. Kept: a folder changed in the last ``min_age`` seconds (another run's, whose warm
    processes are starting), one with a socket that takes a connection, one with anything but
    sockets in it. Returns the folders removed."""
    removed = []
    for folder in Path(where or tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*"):
        try:
            info = folder.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():  # lstat: no symlink
                continue
            if time.time() - info.st_mtime < min_age:
                continue
            entries = list(folder.iterdir())
            if not all(entry.is_socket() and not _listening(entry) for entry in entries):
                continue
            for entry in entries:
                entry.unlink()
            folder.rmdir()
        except OSError:
            continue
        removed.append(folder)
    return removed


def _listening(path: Path) -> bool:
    """Whether a process listens at the Unix socket ``path`` (a refused connection: none)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True  # e.g. a full queue: someone is there
    return True


def socket_path(folder: str | Path, kind: str) -> Path:
    """Where the warm process of ``kind`` listens, in the run's socket folder."""
    return Path(folder) / f"{kind}.socket"


def delegate(kind: str) -> None:
    """Run this job's script in a child of the warm process of ``kind`` (a key of
    :data:`KINDS`) and exit with its status; return at once (the script then runs here, as
    without a warm start) where none serves.

    Call it first in a workflow script, after the line that puts this checkout's ``src`` on
    the path: it imports nothing heavy.
    """
    folder = os.environ.get(SOCKET_ENV)
    if _SERVING_JOB or not folder or not hasattr(socket, "send_fds"):
        return
    path = socket_path(folder, kind)
    if not path.exists():  # this kind was not started for the run
        return
    request = json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
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
    """The run's started warm processes: their socket folder (in :data:`SOCKET_ENV` for the
    run's jobs) and :meth:`stop`."""

    def __init__(self, processes: dict[str, Any], folder: Path, logs: Path) -> None:
        self.processes = processes
        self.folder = folder
        self.logs = logs

    def stop(self, timeout: float = 5.0) -> None:
        """End the warm processes (they wait for no job: the run's are done) and remove their
        sockets."""
        import subprocess

        if os.environ.get(SOCKET_ENV) == str(self.folder):
            del os.environ[SOCKET_ENV]
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for kind in self.processes:
            with contextlib.suppress(OSError):
                socket_path(self.folder, kind).unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()


def start(kinds: Sequence[str], src: str | Path, workdir: str | Path = ".") -> WarmStart:
    """Start a warm process of each of ``kinds`` (this interpreter, ``src`` first on its path)
    and name their socket folder in :data:`SOCKET_ENV`, which the jobs this process starts
    inherit. They import at once, each on a core of its own where there are two (the
    plots' set is done before the timing job measures), while the first jobs connect: those
    wait for them."""
    import subprocess

    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"no warm process of kind {', '.join(unknown)} (kinds: {', '.join(KINDS)})")
    remove_stale_folders()
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX))  # private (0700): the sockets' place
    logs = Path(workdir) / LOG_DIR
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    processes = {}
    for kind in kinds:
        with (logs / f"warm_start_{kind}.log").open("w") as fh:
            processes[kind] = subprocess.Popen(
                [sys.executable, "-m", "gdbench.warmstart", str(socket_path(folder, kind)), kind],
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=workdir,
            )
    # a job may come before a process has bound its socket: wait for the sockets (a few ms)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and not all(
        socket_path(folder, kind).exists() or processes[kind].poll() is not None for kind in kinds
    ):
        time.sleep(0.002)
    warm = WarmStart(processes, folder, logs)
    os.environ[SOCKET_ENV] = str(folder)
    return warm


@dataclass(frozen=True)
class ServedJob:
    """A job a warm process ran, as its log records it: the kernel's account of the child."""

    kind: str
    script: str
    exit_code: int
    wall_s: float
    cpu_s: float
    peak_mib: float


_SERVED = re.compile(
    r"job (?P<script>\S+) \(pid \d+\): exit (?P<code>-?\d+), (?P<wall>[\d.]+) s wall, "
    r"(?P<cpu>[\d.]+) s CPU, (?P<peak>[\d.]+) MiB peak"
)


def _logs(workdir: str | Path) -> Iterator[tuple[str, str]]:
    """(kind, text) of each warm process's log of the last run in ``workdir``."""
    for log in sorted((Path(workdir) / LOG_DIR).glob("warm_start_*.log")):
        yield log.stem.removeprefix("warm_start_"), log.read_text()


def served_jobs(workdir: str | Path = ".") -> list[ServedJob]:
    """The jobs the last run in ``workdir`` had served, from its warm processes' logs (what
    the jobs' ``benchmark:`` records cannot show: those measure the waiting process)."""
    return [
        ServedJob(kind, m["script"], int(m["code"]), float(m["wall"]), float(m["cpu"]), float(m["peak"]))
        for kind, text in _logs(workdir)
        for m in _SERVED.finditer(text)
    ]


def import_seconds(workdir: str | Path = ".") -> dict[str, float]:
    """CPU seconds each warm process of the last run in ``workdir`` spent importing (its log)."""
    return {
        kind: sum(map(float, re.findall(r"imported .*: ([\d.]+) s CPU$", text, flags=re.M)))
        for kind, text in _logs(workdir)
    }


# --- the warm process -----------------------------------------------------------------------


def _preload(modules: Sequence[str], optional: Sequence[str], say: Callable[[str], None]) -> None:
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


def serve(
    path: str, modules: Sequence[str], optional: Sequence[str] = OPTIONAL, early: tuple[int, Sequence[str]] = (0, ())
) -> None:
    """The warm process: listen at ``path``, import ``modules``, then fork a child per job
    request until told to stop (SIGTERM) or its parent is gone.

    ``early`` = (k, scripts): the jobs of ``scripts`` are served once the first k of
    ``modules`` (and ``optional``) are imported, the others once all are; the rest are
    imported one at a time between the loop's turns (:data:`EARLY`).
    """
    import gc
    import importlib
    import threading

    def say(message: str) -> None:
        now = time.time()
        print(f"{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now % 1 * 1000):03d} {message}", flush=True)

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
    say(f"started (pid {os.getpid()})")
    count, early_scripts = early
    first, pending = (list(modules[:count]), list(modules[count:])) if early_scripts else (list(modules), [])

    def fork_safe() -> bool:
        """After an import: no thread runs (a fork would copy its locks held), and the imported
        objects are frozen where they are (the children share their pages)."""
        if threading.active_count() != 1:
            say("a thread is running after the imports: no fork is safe here; the jobs run in their own processes")
            return False
        gc.freeze()
        return True

    _preload(first, optional, say)
    server = _Server(listener, say)
    later = f" ({', '.join(early_scripts)}; the others after {len(pending)} more imports)" if pending else ""
    say(f"serving at {path}{later}")
    started = time.process_time()
    safe = fork_safe()
    while safe and not stopping and os.getppid() == parent:
        server.turn(timeout=0.0 if pending else 1.0, ready=lambda script: not pending or script in early_scripts)
        if pending:
            importlib.import_module(pending.pop(0))
            if not pending:
                say(f"imported {', '.join(modules[count:])}: {time.process_time() - started:.2f} s CPU")
            safe = fork_safe()
    server.close(stopping)
    with contextlib.suppress(OSError):
        os.unlink(path)


def _script_name(path: str) -> str:
    """A job's script as its log line names it: ``train.py`` for Snakemake's copy of it,
    ``.snakemake/scripts/tmpXXXXXXXX.train.py``."""
    name = Path(path).name
    prefix, _, rest = name.partition(".")
    return rest if prefix.startswith("tmp") and "." in rest else name


class _Server:
    """A warm process's loop: its socket, the jobs it runs, the requests that wait for the
    imports of their kind."""

    def __init__(self, listener: socket.socket, say: Callable[[str], None]) -> None:
        self.listener, self.say = listener, say
        listener.setblocking(False)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a child's end wakes the loop
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.jobs: _Jobs = {}
        self.waiting: list[tuple[socket.socket, dict[str, Any], list[int], str]] = []

    def turn(self, timeout: float, ready: Callable[[str], bool]) -> None:
        """Accept what came, start the jobs that ``ready`` lets go (the others wait), reap."""
        self._start(ready)
        for key, _events in self.selector.select(timeout=timeout):
            if key.fileobj is self.listener:
                while True:  # every job that has come: an early one may be behind a later one
                    try:
                        conn, _ = self.listener.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    self._accept(conn)
            elif key.fileobj == self.wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 512)
            else:  # a job's process went away (Snakemake killed it): so does its child
                gone = key.fileobj
                for child, (job_conn, script, _) in self.jobs.items():
                    if job_conn is gone:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(child, signal.SIGKILL)
                        self.say(f"job {script} (pid {child}): its job's process is gone; stopped")
                self.selector.unregister(gone)
        self._start(ready)
        self._reap()

    def _start(self, ready: Callable[[str], bool]) -> None:
        waiting, self.waiting = self.waiting, []
        for conn, request, fds, script in waiting:
            if ready(script):
                self._fork(conn, request, fds, script)
            else:
                self.waiting.append((conn, request, fds, script))

    def _accept(self, conn: socket.socket) -> None:
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
        script = _script_name(request["argv"][0]) if request.get("argv") else "?"
        self.waiting.append((conn, request, fds, script))

    def _fork(self, conn: socket.socket, request: dict[str, Any], fds: list[int], script: str) -> None:
        child = os.fork()
        if child == 0:  # the job's process from here on
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                for signum in (signal.SIGCHLD, signal.SIGTERM):
                    signal.signal(signum, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                self.selector.close()
                for fd in (self.wake_r, self.wake_w):
                    os.close(fd)
                self.listener.close()
                for other, _, _ in self.jobs.values():
                    other.close()
                for other, _, other_fds, _ in self.waiting:
                    if other is not conn:
                        other.close()
                        for fd in other_fds:
                            os.close(fd)
                conn.close()
                code = _run_job(request, fds)
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        try:
            conn.sendall(_INT.pack(child))
        except OSError:  # its job's process is gone already
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            conn.close()
            return
        self.jobs[child] = (conn, script, time.monotonic())
        self.say(f"job {script} (pid {child}): started")
        self.selector.register(conn, selectors.EVENT_READ)

    def refuse(self) -> None:
        """Serve no more: the waiting jobs run in their own processes (no answer is theirs)."""
        for conn, _request, fds, _script in self.waiting:
            for fd in fds:
                os.close(fd)
            conn.close()
        self.waiting = []
        self.listener.close()

    def close(self, told: bool) -> None:
        """Stop the jobs still running (the run is over) and the waiting ones."""
        for child in self.jobs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
        while self.jobs:
            self._reap(block=True)
        self.refuse()
        self.say("stopped" if told else "the run's Snakemake process is gone: stopped")

    def _reap(self, block: bool = False) -> None:
        """Answer each ended child's job with its exit status (and log its figures)."""
        while self.jobs:
            try:
                child, status, usage = os.wait4(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return
            if child == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            entry = self.jobs.pop(child, None)
            if entry is None:
                continue
            conn, script, started = entry
            self.say(
                f"job {script} (pid {child}): exit {code}, {time.monotonic() - started:.2f} s wall, "
                f"{usage.ru_utime + usage.ru_stime:.2f} s CPU, {usage.ru_maxrss / 1024:.0f} MiB peak"
            )
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(conn)
            with contextlib.suppress(OSError):
                conn.sendall(_INT.pack(code))
            conn.close()
            if block:
                return


if __name__ == "__main__":
    # As gdbench.warmstart, not __main__: the jobs' scripts import that module, whose
    # _SERVING_JOB their forked process must see.
    from gdbench import warmstart

    warmstart.serve(sys.argv[1], warmstart.KINDS[sys.argv[2]], early=warmstart.EARLY.get(sys.argv[2], (0, ())))
