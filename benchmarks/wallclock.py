"""Wall-clock figures that tests must not assert (they depend on the machine's load):

* ``harness``: seconds per epoch of the lesson's own loop (its code, inline) against
  ``gdbench.timing.measure`` of the loop engine at n = 3; a harness that added overhead would
  show a ratio well above 1;
* ``slurm-refusal``: how long a CUDA training job takes to fail on the single-node test
  cluster (``tests/cluster/slurm-up.sh``, which has no GPU): sbatch refuses it at once, so
  this should be seconds, not a wait in the queue. Needs root and Slurm (see the script);
* ``teardown``: what a job process's end costs: a fresh process imports what a job imports
  (torch alone; torch, ``torch._dynamo``, pandas and pyarrow, as the jobs that use
  ``torch.optim`` and write tables; matplotlib, seaborn and pandas, as the plots job) and ends
  either as Python ends (the interpreter's teardown) or with ``gdbench.shutdown.end_job``, the
  two alternating: wall and CPU seconds per side (median) and the difference.

    python benchmarks/wallclock.py harness [--rounds 3]
    python benchmarks/wallclock.py slurm-refusal
    python benchmarks/wallclock.py teardown [--pairs 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from workflow_walltime import timed  # noqa: E402  (a script folder, not a package)


def lessons_loop(epochs: int = 2000) -> float:
    """Seconds per epoch of the lesson's code, as written there."""
    import torch

    x_train = torch.FloatTensor([[1], [2], [3]])
    y_train = torch.FloatTensor([[2], [4], [6]])
    W = torch.zeros(1, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([W, b], lr=0.01)
    start = time.perf_counter()
    for _epoch in range(epochs + 1):
        hypothesis = x_train * W + b
        cost = torch.mean((hypothesis - y_train) ** 2)
        optimizer.zero_grad()
        cost.backward()
        optimizer.step()
    return (time.perf_counter() - start) / (epochs + 1)


def harness(rounds: int) -> None:
    import torch

    from gdbench.timing import measure

    torch.set_num_threads(1)
    lesson, ours = [], []
    for _ in range(rounds):  # interleaved, so that a busy moment of the machine hits both alike
        lesson.append(lessons_loop())
        ours.append(
            measure("cpu", "loop", 3, runs=1, epochs=200, threads=1, repeats=3, min_run_time=0.05).median_s_per_epoch
        )
    a, b = statistics.median(lesson), statistics.median(ours)
    print(f"lesson's loop: {a * 1e6:.1f} us/epoch; gdbench.timing (loop engine): {b * 1e6:.1f} us/epoch")
    print(f"ratio harness / lesson: {b / a:.2f} (median of {rounds} interleaved rounds)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def slurm_refusal() -> None:
    cluster = REPO / "tests" / "cluster"
    work = Path(tempfile.mkdtemp(prefix="gdbench-refusal-"))
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}
    env.update(
        GDBENCH_SLURM_DIR=str(work / "slurm"),
        GDBENCH_SLURMCTLD_PORT=str(free_port()),
        GDBENCH_SLURMD_PORT=str(free_port()),
    )
    up = subprocess.run(["bash", str(cluster / "slurm-up.sh")], env=env, capture_output=True, text=True)
    try:
        if up.returncode != 0:
            sys.exit(f"the test cluster did not start:\n{up.stderr[-2000:]}")
        env["SLURM_CONF"] = str(work / "slurm" / "slurm.conf")
        (work / "config.yaml").write_text(
            "grid: {dataset: [tutorial], lr: [0.01], seed: [1], epochs: [10], device: [cuda]}\n"
            "timing: {enabled: false}\n"
        )
        cmd = ["snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work), "--configfile"]
        cmd += [str(work / "config.yaml"), "--profile", str(REPO / "profiles" / "slurm"), "--workflow-profile"]
        cmd += ["none", "--cores", str(os.cpu_count() or 1), "--slurm-status-command", "squeue"]
        cmd += ["--slurm-init-seconds-before-status-checks", "1", "--until", "train"]
        start = time.perf_counter()
        run = subprocess.run(["timeout", "-k", "10", "120", *cmd], env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        refused = "Requested node configuration is not available" in run.stdout + run.stderr
        print(
            f"CUDA job on a cluster without GPUs: exit {run.returncode} after {seconds:.1f} s; "
            f"refused by sbatch: {refused}"
        )
    finally:
        subprocess.run(["bash", str(cluster / "slurm-down.sh")], env=env, capture_output=True, text=True)


#: What each kind of job imports, for ``teardown``.
JOB_IMPORTS = {
    "torch": "import torch",
    "torch.optim + tables": "import torch, torch._dynamo, pandas, pyarrow.parquet",
    "plots": "import pandas, gdbench.plots",
}


def teardown(pairs: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}  # the package from src/
    print(f"load before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    for label, imports in JOB_IMPORTS.items():
        ends = {"interpreter's exit": imports, "end_job": f"{imports}\nfrom gdbench.shutdown import end_job\nend_job()"}
        seconds: dict[str, list[tuple[float, float]]] = {side: [] for side in ends}
        for i in range(pairs):  # alternating, the first side first in odd pairs
            for side in list(ends)[:: 1 if i % 2 == 0 else -1]:
                seconds[side].append(timed([sys.executable, "-c", ends[side]], REPO, env))
        medians = {side: [statistics.median(s[k] for s in seconds[side]) for k in (0, 1)] for side in ends}
        (wall_a, cpu_a), (wall_b, cpu_b) = medians.values()
        print(
            f"{label:22s} interpreter's exit {wall_a:5.2f} s wall {cpu_a:5.2f} s CPU; end_job {wall_b:5.2f} s wall "
            f"{cpu_b:5.2f} s CPU; saved {wall_a - wall_b:5.2f} s wall {cpu_a - cpu_b:5.2f} s CPU ({pairs} pairs)"
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("harness").add_argument("--rounds", type=int, default=3)
    sub.add_parser("slurm-refusal")
    sub.add_parser("teardown").add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    if args.what == "harness":
        harness(args.rounds)
    elif args.what == "teardown":
        teardown(args.pairs)
    else:
        slurm_refusal()


if __name__ == "__main__":
    main()
