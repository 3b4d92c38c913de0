"""Big grids end to end: the 100,000-run and the 10,000-run grid, wall, CPU and peak memory.

    python benchmarks/big_grids.py                  # both grids, --cores 2
    python benchmarks/big_grids.py --grid 10k       # one of them
    python benchmarks/big_grids.py --keep DIR       # keep the runs' results in DIR/<grid>

The 100,000-run grid: the tutorial data and the noisy line of the default config, 100 learning
rates (1e-4 to 0.19, geometric) x 500 seeds, plain SGD, 2000 epochs, `record_every: 10`, timing
off. The 10,000-run grid: the tutorial data, the same 100 learning rates x 100 seeds, plain SGD,
2000 epochs, every other setting the default (timing off). Each runs `snakemake --cores N` from a
fresh folder. Printed: the load and the host's speed (`workflow_walltime.host_speed`) before
and after, wall and CPU seconds, the peak resident memory
of the largest process (what `/usr/bin/time -v` reports as its maximum resident set size) and of
all the run's processes together (sampled every 50 ms), each job's `benchmark:` record, and the
bars (100,000 runs: <= 40 s and 2 GiB; 10,000 runs: <= 15 s).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
from workflow_walltime import (
    MAX_LOAD_PER_CORE,
    REPO,
    fresh,
    host_speed,
    load,
    others_running,
    print_jobs,
    snakemake,
)

LRS = [round(1e-4 * (0.19 / 1e-4) ** (i / 99), 8) for i in range(100)]
TUTORIAL = "  tutorial: {x: [1, 2, 3], y: [2, 4, 6]}\n"
NOISY = "  noisy: {synthetic: {n: 64, slope: 2.0, intercept: 0.5, noise: 0.5, x_min: 0.0, x_max: 3.0}}\n"

GRIDS = {
    "100k": (
        f"datasets:\n{TUTORIAL}{NOISY}grid:\n  dataset: [tutorial, noisy]\n  optimizer: [sgd]\n  lr: {LRS}\n"
        f"  seed: {list(range(1, 501))}\n  epochs: [2000]\n  device: [cpu]\n"
        "training: {record_every: 10}\ntiming: {enabled: false}\n",
        40.0,
    ),
    "10k": (
        f"datasets:\n{TUTORIAL}grid:\n  dataset: [tutorial]\n  optimizer: [sgd]\n  lr: {LRS}\n"
        f"  seed: {list(range(1, 101))}\n  epochs: [2000]\n  device: [cpu]\ntiming: {{enabled: false}}\n",
        15.0,
    ),
}

#: The 100,000-run grid's memory bar, MiB.
MEMORY_BAR_MIB = 2048


def run(cmd: list[str]) -> tuple[float, float, float, float]:
    """Wall and CPU seconds, the largest process's peak RSS and the peak RSS of the whole
    process tree (MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent, tree_peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            tree_peak = max(tree_peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"snakemake failed (exit {proc.returncode}): {' '.join(cmd)}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss / 1024, tree_peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=[*GRIDS, "both"], default="both")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="run in DIR/<grid> (the results stay)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gdbench-big-"))
    cores = os.cpu_count() or 1
    load_before, uptime = load()
    busy = others_running()
    print(f"before: {uptime} ({cores} CPUs; {busy} other processes running)")
    print(f"host speed before: {host_speed()}")
    for name in GRIDS if args.grid == "both" else [args.grid]:
        text, bar = GRIDS[name]
        config = tmp / f"{name}.yaml"
        config.write_text(text)
        workdir = fresh((args.keep or tmp) / name)
        wall, cpu, largest, tree = run(snakemake(workdir, config, args.cores))
        head = f"{name}-run grid, snakemake --cores {args.cores}"
        print(f"\n{head}: {wall:.1f} s wall (bar <= {bar:.0f} s), {cpu:.1f} s CPU")
        memory_bar = f" (bar <= {MEMORY_BAR_MIB} MiB)" if name == "100k" else ""
        print(f"  peak memory: largest process {largest:.0f} MiB{memory_bar}; all processes together {tree:.0f} MiB")
        print("  seconds per job (results/benchmarks: wall, CPU, peak RSS MiB):")
        print_jobs(workdir, indent="    ")
    print(f"\nafter: {load()[1]} (the averages include these runs' own load)")
    print(f"host speed after: {host_speed()}")
    if load_before > MAX_LOAD_PER_CORE * cores or busy > 0:
        print(
            f"WARNING: the machine was not idle (load average {load_before:.2f} on {cores} CPUs, {busy} other "
            "processes running): these figures are not to be trusted; rerun on an idle machine"
        )
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
