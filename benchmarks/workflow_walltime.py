"""Workflow wall time against a hand-written single-process script, and a 10,000-run grid.

    python benchmarks/workflow_walltime.py            # default grid vs hand-written, then 10k grid
    python benchmarks/workflow_walltime.py --skip-10k

Each figure comes from one run on this machine: rerun to see the spread.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


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


def peak_rss_mib(workdir: Path) -> tuple[float, float]:
    """Largest single job's max RSS, and the sum over training jobs (they may overlap)."""
    peaks, train = [], 0.0
    for tsv in (workdir / "results" / "benchmarks").rglob("*.tsv"):
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
    parser.add_argument("--cores", type=int, default=4)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gdbench-bench-"))
    default_cfg = REPO / "config" / "config.yaml"
    cpu_cfg = tmp / "cpu.yaml"
    cpu_cfg.write_text((REPO / "config" / "config.yaml").read_text().replace("device: auto", "device: [cpu]"))

    no_timing_cfg = tmp / "no-timing.yaml"
    no_timing_cfg.write_text(cpu_cfg.read_text() + "\ntiming: {enabled: false}\n")  # the last key wins

    wf = timed(snakemake(tmp / "workflow", cpu_cfg, args.cores), REPO)
    wf_nt = timed(snakemake(tmp / "workflow-no-timing", no_timing_cfg, args.cores), REPO)
    hand = timed(
        [sys.executable, str(REPO / "benchmarks" / "handwritten.py"), str(default_cfg), str(tmp / "hand")], REPO
    )
    print(f"default grid (66 runs, cpu), snakemake --cores {args.cores}: {wf:.1f} s")
    print(f"  the same without the timing benchmark (whose job runs alone): {wf_nt:.1f} s")
    print(f"default grid, hand-written single-process script:   {hand:.1f} s")
    print(
        f"ratio workflow / hand-written: {wf / hand:.2f}; without the timing benchmark {wf_nt / hand:.2f} (bar <= 0.5)"
    )
    peak, _ = peak_rss_mib(tmp / "workflow")
    print(f"largest job's peak memory: {peak:.0f} MiB")

    if not args.skip_10k:
        big = tmp / "big.yaml"
        lrs = [round(1e-4 * (0.19 / 1e-4) ** (i / 99), 8) for i in range(100)]
        big.write_text(
            "grid:\n  dataset: [tutorial]\n"
            f"  lr: {lrs}\n  seed: {list(range(1, 101))}\n  epochs: [2000]\n  device: [cpu]\n"
            "timing: {enabled: false}\n"
        )
        t = timed(snakemake(tmp / "big", big, args.cores), REPO)
        peak, train = peak_rss_mib(tmp / "big")
        print(f"10,000-run grid (100 lrs x 100 seeds, 2000 epochs, cpu) end to end: {t:.1f} s (bar <= 120 s)")
        print(f"  peak memory: largest job {peak:.0f} MiB, training jobs together {train:.0f} MiB (bar <= 4096)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
