"""The warm start (gdbench.warmstart): a job served by a warm process runs in a fresh child of
it with the job's arguments, folder, environment and standard streams, exits with the job's
status, passes on the signals the job's process gets, and runs in its own process where no warm
process serves. Real processes and sockets throughout (a warm process that imports only
``json``, so that each test starts one in milliseconds)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import REPO

from gdbench import warmstart

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the warm start is for Linux")

#: A job's script: what a workflow script does first (delegate), then report where it runs.
SCRIPT = """\
import json, os, sys, time
from gdbench.warmstart import delegate
delegate("light")
if os.environ.get("JOB_SLEEP"):
    print("sleeping", flush=True)
    time.sleep(float(os.environ["JOB_SLEEP"]))
if os.environ.get("JOB_RAISE"):
    raise RuntimeError("the job's own error")
print(json.dumps({
    "pid": os.getpid(), "ppid": os.getppid(), "argv": sys.argv, "cwd": os.getcwd(),
    "value": os.environ.get("JOB_VALUE"), "stdin": sys.stdin.read(),
    "socket_env": os.environ.get("GDBENCH_WARM_SOCKETS"), "path0": sys.path[0],
}))
sys.stderr.write("to stderr\\n")
sys.exit(int(os.environ.get("JOB_EXIT", "0")))
"""


class Warm:
    """A warm process of kind ``light`` serving from ``folder``; its log."""

    def __init__(self, folder: Path, log: Path) -> None:
        self.folder, self.log = folder, log
        path = str(warmstart.socket_path(folder, "light"))
        code = f"from gdbench import warmstart; warmstart.serve({path!r}, ['json'], ())"
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        )
        deadline = time.monotonic() + 20
        while "serving at" not in log.read_text():
            assert time.monotonic() < deadline and self.process.poll() is None, log.read_text()
            time.sleep(0.01)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(10)


#: The tests' socket folders' prefix: short (a socket's path is at most 107 bytes), and not the
#: runs' own (``start()`` sweeps stale folders of that one).
TEST_PREFIX = "gdbench-wtest-"


def dead_socket(path: Path) -> None:
    """A socket file that no one listens at (connect is refused): what a killed warm process leaves."""
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound.bind(str(path))
    bound.close()


@pytest.fixture
def warm(tmp_path: Path) -> Iterator[Warm]:
    folder = Path(tempfile.mkdtemp(prefix=TEST_PREFIX))
    served = Warm(folder, tmp_path / "warm.log")
    yield served
    served.stop()
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def job(
    tmp_path: Path, folder: Path | None, *, stdin: str = "", wait: bool = True, **env: str
) -> subprocess.Popen | subprocess.CompletedProcess:
    """Run the job's script as Snakemake would: its own process, in its own folder."""
    script = tmp_path / "scripts" / "job.py"
    script.parent.mkdir(exist_ok=True)
    script.write_text(SCRIPT)
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    environ = {**os.environ, "PYTHONPATH": str(REPO / "src"), **env}
    environ.pop(warmstart.SOCKET_ENV, None)
    if folder is not None:
        environ[warmstart.SOCKET_ENV] = str(folder)
    cmd = [sys.executable, str(script), "first", "second arg"]
    if not wait:
        return subprocess.Popen(
            cmd, cwd=workdir, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(cmd, cwd=workdir, env=environ, input=stdin, capture_output=True, text=True, timeout=60)


def report(proc: subprocess.CompletedProcess) -> dict:
    import json

    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_served_job_runs_in_a_child_of_the_warm_process_with_the_jobs_arguments_folder_env_and_streams(
    warm: Warm, tmp_path: Path
) -> None:
    proc = job(tmp_path, warm.folder, stdin="what the job reads", JOB_VALUE="42", JOB_EXIT="3")
    assert proc.returncode == 3, proc.stderr
    got = report(proc)
    assert got["ppid"] == warm.process.pid  # forked by the warm process, not run where started
    assert got["argv"] == [str(tmp_path / "scripts" / "job.py"), "first", "second arg"]
    assert got["cwd"] == str(tmp_path / "work")
    assert got["value"] == "42"
    assert got["stdin"] == "what the job reads"
    assert got["socket_env"] is None  # what the job starts runs in processes of its own
    assert got["path0"] == str(tmp_path / "scripts")  # as `python SCRIPT` has it
    assert proc.stderr == "to stderr\n"
    log = warm.log.read_text()
    assert f"job job.py (pid {got['pid']}): started" in log
    assert f"job job.py (pid {got['pid']}): exit 3," in log and "MiB peak" in log


def test_a_served_jobs_uncaught_exception_is_printed_and_exits_1(warm: Warm, tmp_path: Path) -> None:
    proc = job(tmp_path, warm.folder, JOB_RAISE="1")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "RuntimeError: the job's own error" in proc.stderr


def test_two_jobs_get_two_fresh_children(warm: Warm, tmp_path: Path) -> None:
    first, second = (report(job(tmp_path, warm.folder)) for _ in range(2))
    assert first["ppid"] == second["ppid"] == warm.process.pid
    assert first["pid"] != second["pid"]


@pytest.mark.parametrize("case", ["no folder", "no socket of its kind", "socket but nobody listening"])
def test_where_no_warm_process_serves_the_job_runs_in_its_own_process(tmp_path: Path, case: str) -> None:
    folder = None
    if case != "no folder":
        folder = Path(tempfile.mkdtemp(prefix=TEST_PREFIX))
    if case == "socket but nobody listening":
        assert folder is not None
        dead_socket(warmstart.socket_path(folder, "light"))
    try:
        proc = job(tmp_path, folder, stdin="in", JOB_EXIT="5")
        assert proc.returncode == 5, proc.stderr
        got = report(proc)
        assert got["ppid"] == os.getpid()  # the test's own child: not served
        assert got["stdin"] == "in"
    finally:
        if folder is not None:
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()


def test_a_signal_to_the_jobs_process_reaches_the_child_and_its_status_comes_back(warm: Warm, tmp_path: Path) -> None:
    proc = job(tmp_path, warm.folder, wait=False, JOB_SLEEP="60")
    assert isinstance(proc, subprocess.Popen) and proc.stdout is not None
    assert proc.stdout.readline().strip() == "sleeping"  # the child runs
    proc.send_signal(signal.SIGTERM)  # how Snakemake stops a job
    assert proc.wait(20) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10
    while "exit -15" not in warm.log.read_text():
        assert time.monotonic() < deadline, warm.log.read_text()
        time.sleep(0.02)


def test_a_killed_jobs_process_takes_its_child_with_it(warm: Warm, tmp_path: Path) -> None:
    proc = job(tmp_path, warm.folder, wait=False, JOB_SLEEP="60")
    assert isinstance(proc, subprocess.Popen) and proc.stdout is not None
    assert proc.stdout.readline().strip() == "sleeping"
    proc.kill()  # no signal to forward: the warm process sees the connection close
    proc.wait(10)
    deadline = time.monotonic() + 10
    while "its job's process is gone; stopped" not in warm.log.read_text():
        assert time.monotonic() < deadline, warm.log.read_text()
        time.sleep(0.02)
    assert warm.process.poll() is None  # still serving the run's other jobs


def test_the_warm_process_ends_when_told_and_ends_its_jobs(warm: Warm, tmp_path: Path) -> None:
    proc = job(tmp_path, warm.folder, wait=False, JOB_SLEEP="60")
    assert isinstance(proc, subprocess.Popen) and proc.stdout is not None
    assert proc.stdout.readline().strip() == "sleeping"
    warm.process.terminate()
    assert warm.process.wait(20) == 0
    assert proc.wait(20) == 128 + signal.SIGTERM  # its child was stopped, not left behind
    assert "stopped" in warm.log.read_text().splitlines()[-1]
    assert not warmstart.socket_path(warm.folder, "light").exists()


def test_start_serves_the_kinds_asked_for_and_stop_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(warmstart.KINDS, "light", ("json",))
    monkeypatch.delenv(warmstart.SOCKET_ENV, raising=False)
    with pytest.raises(ValueError, match="no warm process of kind nope"):
        warmstart.start(["nope"], REPO / "src", tmp_path)
    # the warm process is `python -m gdbench.warmstart`: a kind it knows from KINDS
    started = warmstart.start(["plots"], REPO / "src", tmp_path)
    try:
        assert os.environ[warmstart.SOCKET_ENV] == str(started.folder)
        assert warmstart.socket_path(started.folder, "plots").exists()
        assert oct(started.folder.stat().st_mode & 0o777) == "0o700"  # another user cannot connect
        log = tmp_path / warmstart.LOG_DIR / "warm_start_plots.log"
        deadline = time.monotonic() + 20  # it binds its socket first, then logs that it started
        while "started (pid" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
    finally:
        started.stop()
    assert warmstart.SOCKET_ENV not in os.environ
    assert not started.folder.exists()
    assert all(process.poll() is not None for process in started.processes.values())


@pytest.mark.parametrize(("value", "on"), [(None, True), ("1", True), ("0", False), ("off", False), (" No ", False)])
def test_gdbench_warm_start_switches_it_off(value: str | None, on: bool) -> None:
    environ = {} if value is None else {warmstart.SWITCH_ENV: value}
    assert warmstart.enabled(environ) is on


def test_the_workflow_scripts_hand_their_job_over_before_importing_anything_heavy() -> None:
    """delegate must come before torch, pandas or matplotlib: what a script imports before it
    is imported again in every job's own process, the cost the warm start removes."""
    scripts = REPO / "workflow" / "scripts"
    kinds = {"train": "torch", "edge": "torch", "timing": "torch", "retrain": "torch", "plots": "plots"}
    for name, kind in kinds.items():
        lines = (scripts / f"{name}.py").read_text().splitlines()
        imports = [i for i, line in enumerate(lines) if line.startswith(("import ", "from "))]
        call = next(i for i, line in enumerate(lines) if line.startswith(f'delegate("{kind}")'))
        before = {lines[i].split()[1].split(".")[0] for i in imports if i < call}
        assert before - set(sys.stdlib_module_names) == {"gdbench"}, name
        gdbench_imports = [lines[i] for i in imports if i < call and "gdbench" in lines[i]]
        assert gdbench_imports == ["from gdbench.warmstart import delegate"], name
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    for name, kind in kinds.items():
        assert f'"{name}": "{kind}"' in common, name
    assert "delegate" not in (scripts / "reproduce.py").read_text()  # `snakemake verify`: afresh, its own process


def test_an_early_job_starts_before_the_rest_is_imported_and_the_others_after(tmp_path: Path) -> None:
    """``early``: the timing job forks once its modules are in; the others wait for the rest
    (their children then have it: they do not import it again)."""
    modules = tmp_path / "modules"
    modules.mkdir()
    for name in ("slow_first", "slow_rest"):
        (modules / f"{name}.py").write_text("import time\ntime.sleep(3)\n")  # long beside a job process start
    folder = Path(tempfile.mkdtemp(prefix=TEST_PREFIX))
    path = str(warmstart.socket_path(folder, "light"))
    code = (
        "from gdbench import warmstart; "
        f"warmstart.serve({path!r}, ['slow_first', 'slow_rest'], (), early=(1, ('early.py',)))"
    )
    log = tmp_path / "warm.log"
    pythonpath = os.pathsep.join([str(REPO / "src"), str(modules)])
    server = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": pythonpath},
    )
    try:
        deadline = time.monotonic() + 20
        while "started (pid" not in log.read_text():  # bound and importing slow_first
            assert time.monotonic() < deadline and server.poll() is None, log.read_text()
            time.sleep(0.01)
        script = (
            "from gdbench.warmstart import delegate\ndelegate('light')\nimport sys\nprint('slow_rest' in sys.modules)\n"
        )
        environ = {**os.environ, "PYTHONPATH": str(REPO / "src"), warmstart.SOCKET_ENV: str(folder)}
        jobs = {}
        for name in ("late.py", "early.py"):
            (tmp_path / name).write_text(script)
            jobs[name] = subprocess.Popen(
                [sys.executable, str(tmp_path / name)], env=environ, stdout=subprocess.PIPE, text=True
            )
        seen = {name: job.communicate(timeout=30)[0].strip() for name, job in jobs.items()}
        assert seen == {"early.py": "False", "late.py": "True"}, log.read_text()
        lines = log.read_text().splitlines()
        order = [
            next(i for i, line in enumerate(lines) if text in line)
            for text in ("job early.py", "imported slow_rest", "job late.py")
        ]
        assert order == sorted(order), lines
    finally:
        server.terminate()
        server.wait(10)
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()


def test_the_timing_jobs_early_modules_are_what_its_script_imports() -> None:
    """The timing job starts before pandas is imported: its script and what it imports must
    need nothing outside EARLY's modules (else it imports them itself, on the critical path)."""
    count, scripts = warmstart.EARLY["torch"]
    assert scripts == ("timing.py",)
    early = warmstart.KINDS["torch"][:count]
    lines = [line for line in (REPO / "workflow" / "scripts" / "timing.py").read_text().splitlines()]
    imports = "\n".join(line for line in lines if line.startswith(("import ", "from ")))
    probe = f"import sys\nfor m in {list(early)!r}: __import__(m)\nbefore = set(sys.modules)\n{imports}\n"
    probe += (
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in ('pandas', 'pyarrow', 'matplotlib')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        check=True,
    ).stdout
    assert out.strip() == "[]"


def test_start_removes_the_socket_folders_of_killed_runs_only(tmp_path: Path) -> None:
    """A run SIGKILLed with its warm processes leaves its socket folder: the next start()
    removes it, and keeps a live one, a fresh one, one with other files, another prefix's."""
    old = time.time() - 3600

    def folder(name: str, *sockets: str, age: float = old) -> Path:
        path = tmp_path / name
        path.mkdir()
        for entry in sockets:
            dead_socket(path / entry)
        os.utime(path, (age, age))
        return path

    dead = folder("gdbench-warm-dead", "torch.socket", "plots.socket")
    empty = folder("gdbench-warm-empty")
    fresh = folder("gdbench-warm-fresh", "torch.socket", age=time.time())
    other = folder("gdbench-warm-other", "torch.socket")
    (other / "notes.txt").write_text("not ours to remove")
    os.utime(other, (old, old))
    foreign = folder("unrelated-warm-x", "torch.socket")
    live = tmp_path / "gdbench-warm-live"
    live.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(live / "torch.socket"))
        listener.listen(1)
        os.utime(live, (old, old))
        removed = warmstart.remove_stale_folders(tmp_path)
    assert sorted(removed) == sorted([dead, empty])
    assert not dead.exists() and not empty.exists()
    assert fresh.exists() and other.exists() and foreign.exists() and live.exists()


def test_start_sweeps_the_temporary_folder_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep is part of a run's start: a killed run's folder is gone after the next start()."""
    monkeypatch.delenv(warmstart.SOCKET_ENV, raising=False)
    stale = Path(tempfile.mkdtemp(prefix=warmstart.FOLDER_PREFIX))
    dead_socket(stale / "torch.socket")
    os.utime(stale, (time.time() - 3600,) * 2)
    warmstart.start(["plots"], REPO / "src", tmp_path).stop()
    assert not stale.exists()
