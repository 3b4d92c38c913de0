"""Workflow wall time against a hand-written single-process script, and a 10,000-run grid.

    python benchmarks/workflow_walltime.py            # 70-run lesson grid and default grid vs hand-written, then 10k
    python benchmarks/workflow_walltime.py --skip-10k --skip-default
    python benchmarks/workflow_walltime.py --keep DIR # keep the workflow's results (and its per-job benchmarks) in DIR

The first comparison is the first run a newcomer makes: a 70-run grid of the lesson's data
(14 lrs x 5 seeds x 2000 epochs, cpu, every other setting the default, timing included),
`snakemake --cores N` against `handwritten.py` on the same grid. The per-job seconds come from
the rules' `benchmark:` files (results/<grid>/benchmarks/*.tsv). Each figure comes from one run on
this machine: rerun to see the spread.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], cwd: Path) -> float:
    return timed_cpu(cmd, cwd)[0]


def timed_cpu(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (the command and every process it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def snakemake(workdir: Path, configfile: Path, cores: int) -> list[str]:
    exe = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    return [
        exe,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        "--cores",
        str(cores),
    ]


#: The 70-run lesson grid of the first-run comparison (14 learning rates, 5 seeds).
LESSON_GRID = (
    "datasets:\n  tutorial: {x: [1, 2, 3], y: [2, 4, 6]}\n"
    "grid:\n  dataset: [tutorial]\n"
    "  lr: [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.05, 0.1, 0.15, 0.17, 0.18, 0.19, 0.25, 0.5]\n"
    "  seed: [1, 2, 3, 4, 5]\n  epochs: [2000]\n  device: [cpu]\n"
)


def benchmarks_dir(workdir: Path) -> Path:
    """The run's benchmark records: results/<grid name>/benchmarks (one grid per workdir)."""
    (found,) = (workdir / "results").glob("*/benchmarks")
    return found


def job_seconds(workdir: Path) -> list[tuple[str, float, float]]:
    """Wall and CPU seconds per job, from the rules' benchmark files (longest first). Jobs that
    run inside Snakemake (``run:``) report the CPU time of the Snakemake process itself."""
    root = benchmarks_dir(workdir)
    rows = []
    for tsv in sorted(root.rglob("*.tsv")):
        with tsv.open() as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        rows.append((str(tsv.relative_to(root).with_suffix("")), float(row["s"]), float(row["cpu_time"])))
    return sorted(rows, key=lambda r: -r[1])


def peak_rss_mib(workdir: Path) -> tuple[float, float]:
    """Largest single job's max RSS, and the sum over training jobs (they may overlap)."""
    peaks, train = [], 0.0
    for tsv in benchmarks_dir(workdir).rglob("*.tsv"):
        with tsv.open() as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        rss = float(row["max_rss"]) if row["max_rss"] not in ("", "NA", "-") else 0.0
        peaks.append(rss)
        if "train" in tsv.parts:
            train += rss
    return max(peaks, default=0.0), train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-10k", action="store_true")
    parser.add_argument("--skip-default", action="store_true", help="skip the default grid's comparison")
    parser.add_argument("--cores", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="keep the lesson grid's workflow results in this folder")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gdbench-bench-"))

    lesson_cfg = tmp / "lesson70.yaml"
    lesson_cfg.write_text(LESSON_GRID)
    lesson_dir = args.keep or tmp / "lesson70"
    shutil.rmtree(lesson_dir / "results", ignore_errors=True)
    shutil.rmtree(lesson_dir / ".snakemake", ignore_errors=True)
    load = os.getloadavg()[0]
    wf, wf_cpu = timed_cpu(snakemake(lesson_dir, lesson_cfg, args.cores), REPO)
    hand, hand_cpu = timed_cpu(
        [sys.executable, str(REPO / "benchmarks" / "handwritten.py"), str(lesson_cfg), str(tmp / "hand")], REPO
    )
    print(f"load average before: {load:.1f}, after: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs)")
    print(f"lesson grid (70 runs, cpu), snakemake --cores {args.cores}: {wf:.1f} s ({wf_cpu:.1f} s CPU)")
    print(f"lesson grid, hand-written single-process script:   {hand:.1f} s ({hand_cpu:.1f} s CPU)")
    print(f"ratio workflow / hand-written: {wf / hand:.2f} (bar <= 0.5, goal 0.3)")
    print("seconds per job (results/<grid>/benchmarks: wall, CPU):")
    for name, seconds, cpu in job_seconds(lesson_dir):
        print(f"  {name:32s} {seconds:6.2f} {cpu:6.2f}")
    default_cfg = REPO / "config" / "config.yaml"
    cpu_cfg = tmp / "cpu.yaml"
    cpu_cfg.write_text((REPO / "config" / "config.yaml").read_text().replace("device: auto", "device: [cpu]"))

    no_timing_cfg = tmp / "no-timing.yaml"
    no_timing_cfg.write_text(cpu_cfg.read_text() + "\ntiming: {enabled: false}\n")  # the last key wins

    if not args.skip_default:
        wf = timed(snakemake(tmp / "workflow", cpu_cfg, args.cores), REPO)
        wf_nt = timed(snakemake(tmp / "workflow-no-timing", no_timing_cfg, args.cores), REPO)
        hand = timed(
            [sys.executable, str(REPO / "benchmarks" / "handwritten.py"), str(default_cfg), str(tmp / "hand")], REPO
        )
        print(f"default grid (config/config.yaml, cpu), snakemake --cores {args.cores}: {wf:.1f} s")
        print(f"  the same without the timing benchmark: {wf_nt:.1f} s")
        print(f"default grid, hand-written single-process script:   {hand:.1f} s")
        print(f"ratio workflow / hand-written: {wf / hand:.2f}; without the timing benchmark {wf_nt / hand:.2f}")
        peak, _ = peak_rss_mib(tmp / "workflow")
        print(f"largest job's peak memory: {peak:.0f} MiB")

    if not args.skip_10k:
        big = tmp / "big.yaml"
        lrs = [round(1e-4 * (0.19 / 1e-4) ** (i / 99), 8) for i in range(100)]
        big.write_text(
            "datasets:\n  tutorial: {x: [1, 2, 3], y: [2, 4, 6]}\n"
            "grid:\n  dataset: [tutorial]\n"
            f"  lr: {lrs}\n  seed: {list(range(1, 101))}\n  epochs: [2000]\n  device: [cpu]\n  optimizer: [sgd]\n"
            "timing: {enabled: false}\n"
        )
        t = timed(snakemake(tmp / "big", big, args.cores), REPO)
        peak, train = peak_rss_mib(tmp / "big")
        print(f"10,000-run grid (100 lrs x 100 seeds, 2000 epochs, cpu) end to end: {t:.1f} s (bar <= 120 s)")
        print(f"  peak memory: largest job {peak:.0f} MiB, training jobs together {train:.0f} MiB (bar <= 4096)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
