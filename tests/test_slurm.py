"""The workflow on a real single-node SLURM cluster, through profiles/slurm (issue 5).

``tests/cluster/slurm-up.sh`` starts munged, slurmctld and slurmd on localhost (installing Debian's
packages when missing; needs root) with its slurm.conf in a private folder of this test run and on
two free ports picked for it, and the module's fixture always stops them again with
``slurm-down.sh``. Where the cluster cannot start (not root, no apt-get, no network for apt), every
test here is skipped with the script's message; under CI=true (``.ci/run`` installs Slurm) that is
a failure instead. How long a refused GPU request takes is measured by
``python benchmarks/wallclock.py slurm-refusal``, not asserted here.

Run alone with ``pytest -m slurm``. The whole module takes well under 3 minutes.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, skip_or_fail, snakemake_args

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

CLUSTER = REPO / "tests" / "cluster"
PROFILE = REPO / "profiles" / "slurm"

CONFIG = """\
datasets:
  tutorial: {x: [1, 2, 3], y: [2, 4, 6]}
grid: {dataset: [tutorial], lr: [0.01, 0.1, 0.5], seed: [1, 2], epochs: [200], device: [cpu]}
training: {engine: batched}
sharding: {jobs_per_device: 2, min_runs_per_job: 1, max_runs_per_job: 5000}
timing: {enabled: false}
"""

#: How docs/cluster.md says to run on a cluster: the cluster profile, without the local-run
#: workflow profile (profiles/default), which Snakemake would otherwise merge on top of it.
CLUSTER_ARGS = ["--profile", PROFILE, "--workflow-profile", "none"]

#: Test-only overrides on top of the profile: squeue for job status (this cluster has no
#: accounting database, and sacct would make the run hang), a first status check after 1 s
#: instead of the profile's 20 s, the SLURM logs of successful jobs kept for post-mortems, and
#: --cores capped at this machine's CPUs (the profile's group job would otherwise ask for more
#: CPUs than the test node has, and wait forever in the queue).
SLURM_TEST_ARGS = [
    "--cores",
    str(os.cpu_count() or 1),
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--slurm-keep-successful-logs",
]

#: "Job 3 has been submitted with SLURM jobid 7 (log: /.../.snakemake/slurm_logs/rule_train/...)."
SUBMITTED = re.compile(r"Job \S+ has been submitted with SLURM jobid (\d+) \(log: (\S+?)\)")

TABLES = ("results/tables/trajectories.parquet", "results/tables/summary.csv", "results/plots/convergence.png")


class _Run:
    """``cmd`` started under ``timeout -k 10 timeout_s`` (a SLURM run that loses track of its jobs
    waits forever and ignores SIGTERM), its stdout and stderr going to ``log``."""

    def __init__(self, cmd: list[str | Path], env: dict[str, str], log: Path, timeout_s: int) -> None:
        self.cmd = ["timeout", "-k", "10", str(timeout_s), *map(str, cmd)]
        self.log = log
        self.start = time.monotonic()
        with log.open("w") as fh:
            fh.write(f"$ {' '.join(self.cmd)}\n")
            fh.flush()
            self.proc = subprocess.Popen(self.cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, text=True)
        self.end = self.start
        self.waiter = threading.Thread(target=self._wait, daemon=True)
        self.waiter.start()

    def _wait(self) -> None:
        self.proc.wait()
        self.end = time.monotonic()

    def wait(self) -> tuple[int, str, float]:
        """(exit code, output, seconds it ran); the exit code is 124 when the run timed out."""
        self.waiter.join()
        rc, seconds = self.proc.returncode, self.end - self.start
        if rc in (137, -9):  # killed after ignoring SIGTERM (timeout -k kills its own group too)
            rc = 124
        with self.log.open("a") as fh:
            fh.write(f"\n[exit {rc} after {seconds:.1f} s]\n")
        return rc, self.log.read_text(), seconds


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _workdir(root: Path, name: str, config: str) -> Path:
    d = root / name
    d.mkdir()
    (d / "config.yaml").write_text(config)
    return d


def _snakemake(workdir: Path, *extra: str | Path) -> list[str]:
    return snakemake_args(workdir, *extra)


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def slurm_env() -> Iterator[dict[str, str]]:
    """Environment for talking to the local test cluster (SLURM_CONF set); the cluster runs
    for the duration of the module, in a folder and on ports of this test run, and is always
    stopped afterwards."""
    if shutil.which("snakemake") is None:
        skip_or_fail("snakemake is not installed (pip install -e '.[workflow]')")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        skip_or_fail("the SLURM executor plugin is not installed (pip install -e '.[cluster]')")

    env = os.environ.copy()
    env.pop("SLURM_CONF", None)
    ctld_port = free_port()
    slurmd_port = next(p for p in iter(free_port, None) if p != ctld_port)
    env.update(
        # Not under pytest's own folder: that one is private to root, and munged runs as munge.
        GDBENCH_SLURM_DIR=tempfile.mkdtemp(prefix="gdbench-slurm-", dir="/tmp"),
        GDBENCH_SLURMCTLD_PORT=str(ctld_port),
        GDBENCH_SLURMD_PORT=str(slurmd_port),
    )
    etc_conf_before = Path("/etc/slurm/slurm.conf").exists()
    try:
        up = subprocess.run(
            ["bash", str(CLUSTER / "slurm-up.sh")], env=env, capture_output=True, text=True, timeout=300, check=False
        )
    except subprocess.TimeoutExpired:
        up = None
    try:
        if up is None or up.returncode != 0:
            lines = [] if up is None else up.stderr.strip().splitlines()
            reason = next((line for line in lines if "ERROR" in line), lines[-1] if lines else "timed out after 300 s")
            skip_or_fail(f"local SLURM cluster could not start: {reason}")
        for line in up.stdout.splitlines():
            m = re.fullmatch(r"export (\w+)=(.*)", line.strip())
            if m:
                env[m.group(1)] = m.group(2)
        assert "SLURM_CONF" in env, f"slurm-up.sh printed no SLURM_CONF line:\n{up.stdout}"
        yield env
    finally:
        down = subprocess.run(
            ["bash", str(CLUSTER / "slurm-down.sh")], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        # Nothing may be left behind that makes Slurm's client tools (and with them every later
        # `snakemake` start, through the plugin's import) wait ~9 s for a controller that is gone.
        assert down.returncode == 0, f"slurm-down.sh failed:\n{down.stderr}"
        assert not Path("/run/slurm/conf").exists(), "slurm-down.sh left /run/slurm/conf behind"
        if not etc_conf_before:
            assert not Path("/etc/slurm/slurm.conf").exists(), "/etc/slurm/slurm.conf was left behind"


def _squeue_all(env: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Every job SLURM still knows (finished ones for MinJobAge): id -> (state, comment)."""
    out = subprocess.run(
        ["squeue", "--states=all", "-h", "-o", "%i|%T|%k"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    jobs = {}
    for line in out.splitlines():
        jobid, state, comment = line.strip().split("|", 2)
        jobs[jobid] = (state, comment)
    return jobs


def test_workflow_runs_through_slurm_like_locally(slurm_env: dict[str, str], tmp_path: Path) -> None:
    import pandas as pd

    on_slurm = _workdir(tmp_path, "slurm", CONFIG)
    local = _workdir(tmp_path, "local", CONFIG)

    # The local reference run goes alongside: the SLURM run mostly waits on status checks.
    local_env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}
    local_run = _Run(_snakemake(local, "--cores", "2"), local_env, tmp_path / "local.log", 170)
    rc, out, seconds = _Run(
        _snakemake(on_slurm, *CLUSTER_ARGS, *SLURM_TEST_ARGS), slurm_env, tmp_path / "slurm.log", 170
    ).wait()
    assert rc == 0, f"SLURM run failed (exit {rc}, {seconds:.0f} s):\n{_tail(out)}"
    for rel in TABLES:
        assert (on_slurm / rel).is_file(), f"SLURM run did not write {rel}"

    # The training jobs went through SLURM: Snakemake logged their SLURM job ids, and SLURM
    # knows them as completed jobs of rule train.
    submitted = {jobid: log for jobid, log in SUBMITTED.findall(out)}
    train_ids = sorted(jobid for jobid, log in submitted.items() if "/rule_train/" in log)
    assert train_ids, f"no training job was submitted to SLURM:\n{_tail(out)}"
    known = _squeue_all(slurm_env)
    for jobid in train_ids:
        assert jobid in known, f"SLURM does not know job {jobid}; squeue --states=all: {known}"
        state, comment = known[jobid]
        assert state == "COMPLETED", f"SLURM job {jobid}: {state}"
        assert comment.startswith("rule_train"), f"SLURM job {jobid} has comment {comment!r}"
    show = subprocess.run(
        ["scontrol", "show", "job", train_ids[0]], env=slurm_env, capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert "JobState=COMPLETED" in show and f"WorkDir={on_slurm}" in show, show

    # The same tables as a local run of the same config.
    rc, out, seconds = local_run.wait()
    assert rc == 0, f"local run failed (exit {rc}, {seconds:.0f} s):\n{_tail(out)}"

    def summary(d: Path) -> pd.DataFrame:
        df = pd.read_csv(d / "results/tables/summary.csv").drop(columns=["train_seconds"], errors="ignore")
        return df.sort_values(list(df.columns)).reset_index(drop=True)

    a, b = summary(on_slurm), summary(local)
    assert len(a) == 6, f"expected 6 runs (3 lr x 2 seeds), got {len(a)}"
    pd.testing.assert_frame_equal(a, b)

    def trajectories(d: Path) -> pd.DataFrame:
        df = pd.read_parquet(d / "results/tables/trajectories.parquet")
        return df.sort_values([c for c in df.columns if c not in ("W", "b", "cost")]).reset_index(drop=True)

    pd.testing.assert_frame_equal(trajectories(on_slurm), trajectories(local))


def test_gpu_request_is_refused_at_submission(slurm_env: dict[str, str], tmp_path: Path) -> None:
    """CUDA training jobs ask SLURM for a GPU; this cluster has none, so sbatch refuses them at
    once and Snakemake reports SLURM's message instead of waiting."""
    workdir = _workdir(tmp_path, "gpu", CONFIG.replace("device: [cpu]", "device: [cuda]"))
    # Only the training jobs (--until train): other jobs submitted alongside would be waited for.
    rc, out, seconds = _Run(
        _snakemake(workdir, *CLUSTER_ARGS, *SLURM_TEST_ARGS, "--until", "train"),
        slurm_env,
        tmp_path / "gpu.log",
        60,
    ).wait()
    assert rc not in (0, 124), f"expected a failure, got exit {rc} after {seconds:.0f} s:\n{_tail(out)}"
    assert "Requested node configuration is not available" in out, _tail(out)
    calls = [line for line in out.splitlines() if line.strip().startswith("sbatch ") and "rule_train" in line]
    assert calls, f"no sbatch call of a training job in the output:\n{_tail(out)}"
    assert all(re.search(r"--gpus[= ]\S*1\b|--gres[= ]\S*gpu", call) for call in calls), calls


def test_cluster_profile_sizes_jobs_for_a_scheduler(tmp_path: Path) -> None:
    """With the cluster profile a 10,000-run grid becomes tens of training jobs (500 runs each),
    not the 2 of a local run (a dry run; no cluster needed)."""
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        skip_or_fail("the SLURM executor plugin is not installed (pip install -e '.[cluster]')")
    lrs = ", ".join(f"{0.001 * (i + 1):.3f}" for i in range(100))
    config = CONFIG.replace(
        "lr: [0.01, 0.1, 0.5], seed: [1, 2]", f"lr: [{lrs}], seed: [{', '.join(map(str, range(1, 101)))}]"
    )
    workdir = _workdir(tmp_path, "big", config)
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}

    def train_jobs(*args: str | Path) -> int:
        rc, out, _ = _Run(_snakemake(workdir, "-n", *args), env, tmp_path / "dry.log", 120).wait()
        assert rc == 0, _tail(out)
        counts = re.findall(r"^train\s+(\d+)$", out, flags=re.M)
        assert counts, _tail(out)
        return int(counts[0])

    assert train_jobs(*CLUSTER_ARGS) == 20
    assert train_jobs("--workflow-profile", "none") == 2
