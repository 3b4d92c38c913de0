"""A batched engine call's fixed cost: seconds per call of 10,000 runs on the lesson's 3 points
at 0, 20 and 200 epochs (the timing job's workload, `gdbench.timing.workloads`), median of 7
calls after a warm-up. The 0-epoch call is the setup alone (run keys, the shape check, the
references, the learning rates and ends as tensors); the timing job's default measurement is
20 epochs per call, so a setup of the same order would be most of what it measures.

    python benchmarks/engine_setup.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # this checkout's gdbench

import torch  # noqa: E402

from gdbench.determinism import set_deterministic  # noqa: E402
from gdbench.timing import workloads  # noqa: E402


def per_call(runs: int, epochs: int, calls: int = 7) -> float:
    call = workloads.workload(torch.device("cpu"), "batched", 3, runs, epochs)
    call()  # warm-up
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    set_deterministic(1)
    for epochs in (0, 20, 200):
        print(f"{args.runs} runs, {epochs:3d} epochs: {per_call(args.runs, epochs) * 1e3:7.1f} ms per call")


if __name__ == "__main__":
    main()
