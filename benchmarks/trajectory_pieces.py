"""Building a training job's trajectory pieces (``gdbench.tables.trajectory_pieces``) on the
10,000-run lesson grid of ``big_grids.py`` (19.8 M rows): run attributes that are one value
across a piece filled from a cached array (``tables._repeated``, the code) against
``np.repeat`` into fresh memory for every column (the construction it replaced). Each side
runs as a training job does: a fresh process that trains the grid and builds every piece once
(only the building is timed); the sides alternate, CPU and wall seconds per side.

    python benchmarks/trajectory_pieces.py            # 5 alternating pairs, a process per side
    python benchmarks/trajectory_pieces.py --pairs 9
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from big_grids import GRIDS
from workflow_walltime import MAX_LOAD_PER_CORE, load

from gdbench import tables
from gdbench.determinism import set_deterministic
from gdbench.experiment import load_experiment
from gdbench.pipeline import train_chunks


def build_all(chunks: list, fill: bool) -> tuple[float, float, int]:
    """Wall and CPU seconds to build every piece of every chunk, and the rows built."""
    original = tables._repeated
    if not fill:
        tables._repeated = np.repeat  # the construction before the cached fill
    try:
        wall, cpu, rows = time.perf_counter(), time.process_time(), 0
        for batch, ids in chunks:
            for piece in tables.trajectory_pieces(batch, ids):
                rows += piece.num_rows
        return time.perf_counter() - wall, time.process_time() - cpu, rows
    finally:
        tables._repeated = original


def once(fill: bool) -> None:
    """Train the grid, build its pieces once, print wall and CPU seconds and rows."""
    set_deterministic(1)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "10k.yaml"
        config.write_text(GRIDS["10k"][0])
        experiment = load_experiment(config)
    runs = list(experiment.runs)
    chunks = [(batch, ids) for ids, batch, _, _ in train_chunks(experiment, runs, list(range(len(runs))))]
    print(*build_all(chunks, fill))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--side", choices=["fill", "repeat"], help=argparse.SUPPRESS)  # one side, in this process
    args = parser.parse_args()
    if args.side:
        once(args.side == "fill")
        return
    before, line = load()
    print(f"before: {line}")
    sides: dict[str, list[tuple[float, float]]] = {"fill": [], "repeat": []}
    for pair in range(args.pairs):
        for side in ("fill", "repeat") if pair % 2 == 0 else ("repeat", "fill"):
            out = subprocess.run([sys.executable, __file__, "--side", side], capture_output=True, text=True, check=True)
            wall, cpu, rows = out.stdout.split()
            sides[side].append((float(wall), float(cpu)))
            print(f"pair {pair + 1} {NAMES[side]}: {float(wall):.2f} s wall, {float(cpu):.2f} s CPU", flush=True)
    print(f"\n{int(rows):,} rows, {args.pairs} alternating pairs (median, min-max):")
    for side, name in NAMES.items():
        walls, cpus = zip(*sides[side], strict=True)
        print(
            f"  {name}: wall {statistics.median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f}) s, "
            f"CPU {statistics.median(cpus):.2f} ({min(cpus):.2f}-{max(cpus):.2f}) s"
        )
    print(f"after: {load()[1]}")
    if before > MAX_LOAD_PER_CORE * 2:
        print(f"WARNING: load average {before:.2f} before the runs: not idle, rerun on an idle machine")


NAMES = {"fill": "cached fill", "repeat": "np.repeat  "}


if __name__ == "__main__":
    main()
