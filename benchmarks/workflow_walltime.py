"""The workflow against a hand-written single-process script, measured in alternating pairs.

    python benchmarks/workflow_walltime.py                 # 70-run lesson grid, 3 pairs, --cores 4
    python benchmarks/workflow_walltime.py --pairs 5       # more pairs
    python benchmarks/workflow_walltime.py --grid default  # the default grid (config/config.yaml, cpu)
    python benchmarks/workflow_walltime.py --keep DIR      # keep the last workflow run's results in DIR

The first comparison is the first run a newcomer makes: a 70-run grid of the lesson's data
(14 lrs x 5 seeds x 2000 epochs, cpu, every other setting the default: timing, edge, rate,
reproduce, verify and plots included), `snakemake --cores N` from a fresh folder against
`handwritten.py` on the same grid. The two sides alternate (workflow first in odd pairs, the
script first in even ones, so a drift of the machine's speed affects both alike); each side's
figures are the whole process tree's wall and CPU seconds. Printed: the machine's load before
and after (and a warning when it was too high to trust), the host's speed before and after
(`import torch` and the lesson's loop in a fresh process: a host's speed drifts), every run, wall and CPU per side
(median, min, max), the paired ratios workflow / script (median, min, max), and the seconds of
each job of the last workflow run (its `benchmark:` records: wall, CPU, peak memory).
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # this checkout's gdbench (for its warm processes' logs)

from gdbench import warmstart  # noqa: E402

#: The 70-run lesson grid of the first-run comparison (14 learning rates, 5 seeds).
LESSON_GRID = (
    "datasets:\n  tutorial: {x: [1, 2, 3], y: [2, 4, 6]}\n"
    "grid:\n  dataset: [tutorial]\n"
    "  lr: [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.05, 0.1, 0.15, 0.17, 0.18, 0.19, 0.25, 0.5]\n"
    "  seed: [1, 2, 3, 4, 5]\n  epochs: [2000]\n  device: [cpu]\n"
)

#: A 1-minute load average above this share of the cores makes the figures untrustworthy.
MAX_LOAD_PER_CORE = 0.25


def load() -> tuple[float, str]:
    """The 1-minute load average and `uptime`'s line."""
    try:
        line = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        line = ""
    return os.getloadavg()[0], line


def others_running(samples: int = 5) -> int:
    """Processes other than this one running or waiting for a core now (Linux's /proc/loadavg,
    median of a few readings 50 ms apart); 0 where the system does not say."""
    counts = []
    for _ in range(samples):
        try:
            with open("/proc/loadavg") as fh:
                counts.append(int(fh.read().split()[3].split("/")[0]) - 1)
        except (OSError, IndexError, ValueError):
            return 0
        time.sleep(0.05)
    return int(statistics.median(counts))


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (the command and every process it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def snakemake(workdir: Path, configfile: Path, cores: int) -> list[str]:
    # The snakemake beside this interpreter first, as the script side runs sys.executable itself:
    # a version manager's shim on PATH (pyenv's costs ~0.3-0.6 s of shell) would be timed on one side only.
    beside = Path(sys.executable).with_name("snakemake")
    exe = str(beside) if beside.exists() else shutil.which("snakemake") or "snakemake"
    where = ["-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", str(configfile)]
    return [exe, *where, "--cores", str(cores)]


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def job_seconds(workdir: Path) -> list[tuple[str, float, float, str]]:
    """Wall and CPU seconds and peak RSS (MiB) per job, from the rules' benchmark files
    (longest first). Jobs that run inside Snakemake (``run:``) report its process."""
    (root,) = (workdir / "results").glob("*/benchmarks")  # results/<grid name>/benchmarks
    rows = []
    for tsv in sorted(root.rglob("*.tsv")):
        with tsv.open() as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        name = str(tsv.relative_to(root).with_suffix(""))
        rows.append((name, _number(row["s"]), _number(row["cpu_time"]), row["max_rss"]))
    return sorted(rows, key=lambda r: -r[1] if r[1] == r[1] else 0.0)


def _number(text: str) -> float:
    """A benchmark record's figure; NaN for Snakemake's ``NA`` (a process that ended before the
    first reading of it, e.g. a job's process that a warm process served at once)."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


#: Said under every per-job listing: a ``run:`` job's record is the Snakemake process's.
JOB_NOTE = (
    "jobs that run inside the Snakemake process (the rules with run:, e.g. merge_tables, theory, provenance)"
    " record that whole process's CPU and peak RSS, not their own; a job a warm process served records its"
    " waiting process only: its own figures follow, from the warm processes' logs"
)


def print_jobs(workdir: Path, indent: str = "  ") -> None:
    """The last run's jobs: their ``benchmark:`` records, then what the warm processes'
    logs say of the jobs they served (wall, CPU, peak RSS with the shared pages) and of their
    own imports."""
    for name, seconds, cpu, rss in job_seconds(workdir):
        print(f"{indent}{name:28s} {seconds:6.2f} {cpu:6.2f} {rss:>8s}")
    print(f"{indent}({JOB_NOTE})")
    served = warmstart.served_jobs(workdir)
    if served:
        print(f"{indent}served by the warm processes (wall, CPU, peak RSS MiB):")
        for job in sorted(served, key=lambda j: -j.wall_s):
            name = f"{job.kind}: {job.script}"
            print(f"{indent}  {name:26s} {job.wall_s:6.2f} {job.cpu_s:6.2f} {job.peak_mib:8.0f}")
        imports = ", ".join(f"{kind} {cpu:.2f} s" for kind, cpu in warmstart.import_seconds(workdir).items())
        print(f"{indent}  the warm processes' imports (CPU): {imports}")


#: The host's speed for what a run spends its time on, in a fresh process: importing torch
#: (every job that trains pays it) and the lesson's loop (what the hand-written script runs;
#: ``wallclock.lessons_loop``, the lesson's code as written there).
HOST_PROBE = f"""
import sys, time
sys.path.insert(0, {str(REPO / "benchmarks")!r})
start = time.process_time()
import torch
imported = time.process_time() - start
torch.set_num_threads(1)
from wallclock import lessons_loop
print(f"import torch {{imported:.2f}} s CPU, the lesson's loop {{lessons_loop() * 1e6:.0f}} us/epoch")
"""


def host_speed() -> str:
    """What :data:`HOST_PROBE` prints: how fast this host is now, so that figures taken at
    different times or on different hosts can be set side by side (a host's speed drifts)."""
    done = subprocess.run([sys.executable, "-c", HOST_PROBE], capture_output=True, text=True, check=False)
    return done.stdout.strip() or f"(the probe failed: {done.stderr.strip()[-200:]})"


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):6.2f}, min {min(values):6.2f}, max {max(values):6.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="workflow/script pairs (at least 3)")
    parser.add_argument("--cores", type=int, default=4)
    parser.add_argument("--grid", choices=["lesson", "default"], default="lesson")
    parser.add_argument("--keep", type=Path, help="run the workflow in this folder (its last run's results stay)")
    args = parser.parse_args()
    pairs = max(3, args.pairs)
    tmp = Path(tempfile.mkdtemp(prefix="gdbench-bench-"))
    config = tmp / "grid.yaml"
    if args.grid == "lesson":
        config.write_text(LESSON_GRID)
    else:
        config.write_text((REPO / "config" / "config.yaml").read_text().replace("device: auto", "device: [cpu]"))
    workdir = args.keep or tmp / "workflow"
    workflow_cmd = snakemake(workdir, config, args.cores)
    script_cmd = [sys.executable, str(REPO / "benchmarks" / "handwritten.py"), str(config), str(tmp / "hand")]

    cores = os.cpu_count() or 1
    load_before, uptime_before = load()
    print(f"before: {uptime_before} ({cores} CPUs)")
    print(f"host speed before: {host_speed()}")
    runs: dict[str, list[tuple[float, float]]] = {"workflow": [], "script": []}
    busy: list[int] = []
    for pair in range(pairs):
        order = ["workflow", "script"] if pair % 2 == 0 else ["script", "workflow"]
        for side in order:
            busy.append(others_running())
            if side == "workflow":
                fresh(workdir)
                wall, cpu = timed(workflow_cmd, REPO)
            else:
                fresh(tmp / "hand")
                wall, cpu = timed(script_cmd, REPO)
            runs[side].append((wall, cpu))
            print(
                f"pair {pair + 1} {side:8s}: {wall:6.2f} s wall, {cpu:6.2f} s CPU "
                f"(other processes running before it: {busy[-1]}; load {os.getloadavg()[0]:.2f})"
            )
    _, uptime_after = load()
    print(f"after:  {uptime_after} (the averages include these runs' own load)")
    print(f"host speed after: {host_speed()}")

    grid = "70-run lesson grid" if args.grid == "lesson" else "default grid (cpu)"
    print(f"\n{grid}, snakemake --cores {args.cores} vs handwritten.py, {pairs} alternating pairs:")
    for side, values in runs.items():
        print(f"  {side:8s} wall: {spread([w for w, _ in values])} s;  CPU: {spread([c for _, c in values])} s")
    wall_ratios = [w[0] / s[0] for w, s in zip(runs["workflow"], runs["script"], strict=True)]
    cpu_ratios = [w[1] / s[1] for w, s in zip(runs["workflow"], runs["script"], strict=True)]
    print(f"  ratio workflow / script, wall: {spread(wall_ratios)}  (bar <= 0.5, goal 0.3)")
    print(f"  ratio workflow / script, CPU:  {spread(cpu_ratios)}  (goal <= 1)")
    print("\nseconds per job of the last workflow run (results/benchmarks: wall, CPU, peak RSS MiB):")
    print_jobs(workdir)
    if load_before > MAX_LOAD_PER_CORE * cores or max(busy) > 0:
        print(
            f"\nWARNING: the machine was not idle (load average {load_before:.2f} on {cores} CPUs before, limit "
            f"{MAX_LOAD_PER_CORE * cores:.2f}; up to {max(busy)} other processes running between runs): other work "
            "shared the cores, so these figures are not to be trusted; rerun on an idle machine"
        )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
