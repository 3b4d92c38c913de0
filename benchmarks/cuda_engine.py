"""The batched engine on CUDA: throughput on large grids (CUDA graphs on and off) and
reproducibility within the device (a run alone equals the same run inside a batch).

    PYTHONPATH=src python benchmarks/cuda_engine.py [--runs 1000000]

Steady-state throughput comes from two calls of different lengths (E1 < E2 epochs):
(runs x (E2 - E1)) / (t2 - t1), which removes the fixed per-call cost (setup over the runs).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from gdbench.data import parse_dataset
from gdbench.determinism import set_deterministic
from gdbench.engines import TrainOptions, train
from gdbench.experiment import default_experiment
from gdbench.lesson import LESSON_SETTINGS
from gdbench.runs import RunSpec

DATA = {
    "tutorial": parse_dataset("tutorial", {"x": [1, 2, 3], "y": [2, 4, 6]}),
    "noisy": parse_dataset(
        "noisy", {"synthetic": {"n": 64, "slope": 2.0, "intercept": 0.5, "noise": 0.5, "x_min": 0.0, "x_max": 3.0}}
    ),
}


def timed(runs: list[RunSpec], options: TrainOptions) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    train(runs, DATA, options)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def throughput(R: int, graphs: bool, e1: int = 200, e2: int = 2000) -> tuple[float, float, float]:
    lrs = np.geomspace(1e-4, 0.09, R)
    options = replace(default_experiment().train_options(record_every=0), cuda_graphs=graphs)
    short = [RunSpec("tutorial", float(lr), 1, e1, "cuda", engine="batched", **LESSON_SETTINGS) for lr in lrs]
    long = [RunSpec("tutorial", float(lr), 1, e2, "cuda", engine="batched", **LESSON_SETTINGS) for lr in lrs]
    timed(short[:1000], options)  # warm-up
    t1 = min(timed(short, options) for _ in range(2))
    t2 = min(timed(long, options) for _ in range(2))
    steady = R * (e2 - e1) / (t2 - t1)
    return steady, R * (e2 + 1) / t2, t2 - (e2 + 1) * (t2 - t1) / (e2 - e1)


def alone_equals_batch() -> bool:
    ok = True
    options = default_experiment().train_options()
    for name, bs in (("tutorial", None), ("noisy", None), ("noisy", 8)):
        settings = {**LESSON_SETTINGS, "batch_size": bs}
        runs = [
            RunSpec(name, lr, s, 150, "cuda", engine="batched", **settings)
            for lr in (0.01, 0.1, 0.19, 0.5)
            for s in (1, 2, 3)
        ]
        together = train(runs, DATA, options)
        for i in (0, 5, len(runs) - 1):
            alone = train([runs[i]], DATA, options)
            same = all(
                np.array_equal(a, b, equal_nan=True)
                for a, b in zip(alone.run_trajectory(0), together.run_trajectory(i), strict=True)
            )
            print(f"alone == in batch, cuda, {name} batch={bs} run {i}: {same}")
            ok &= same
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[10_000, 1_000_000])
    args = parser.parse_args()
    set_deterministic()
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    rows = []
    for R in args.runs:
        for graphs in (True, False):
            rows.append((R, graphs, *throughput(R, graphs)))
    ok = alone_equals_batch()
    print(f"{'runs':>9} {'graphs':>6} {'steady run-epochs/s':>20} {'whole-call':>12} {'fixed s':>8}")
    for R, graphs, steady, whole, fixed in rows:
        print(f"{R:>9} {graphs!s:>6} {steady:>20.3g} {whole:>12.3g} {fixed:>8.2f}")
    print(f"reproducible within CUDA (alone == in batch): {ok}")


if __name__ == "__main__":
    main()
