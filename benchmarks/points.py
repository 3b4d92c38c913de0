"""The batched engine's throughput against the number of points (full batch, plain SGD, CPU).

    python benchmarks/points.py                 # n = 3, 16, 64, 256, 1024; 5,000 runs; 200 epochs
    python benchmarks/points.py --runs 1000 --epochs 500

Each run has its own noisy line (a seed per run, as the default config's `noisy` dataset), lrs
spread over the converging range; one CPU thread. Printed: run-epochs per second per n (the best
of 3 calls, after a warm-up call), and the load before and after.
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--points", type=int, nargs="+", default=[3, 16, 64, 256, 1024])
    args = parser.parse_args()

    import torch

    from gdbench.config import check_config
    from gdbench.experiment import Experiment

    torch.set_num_threads(1)
    print(f"before: load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    print(f"{'n':>6} {'run-epochs/s':>14}  ({args.runs} runs x {args.epochs} epochs, one thread, best of 3)")
    for n in args.points:
        line = {"synthetic": {"n": n, "slope": 2.0, "intercept": 0.5, "noise": 0.5, "x_min": 0.0, "x_max": 3.0}}
        seeds = list(range(1, args.runs // 10 + 1))
        config = {
            "datasets": {"line": line},
            "grid": {
                "dataset": ["line"],
                "lr": [0.01 * (i + 1) for i in range(10)],
                "seed": seeds,
                "epochs": [args.epochs],
                "device": ["cpu"],
            },
            "training": {"record_every": 0},
        }
        experiment = Experiment.from_checked(check_config(config), ["cpu"])
        from gdbench.engines import train

        runs, data, options = list(experiment.runs), experiment.data_source(), experiment.train_options(None)
        train(runs, data, options)  # warm-up
        best = min(_seconds(train, runs, data, options) for _ in range(3))
        print(f"{n:>6} {len(runs) * args.epochs / best:>14.3g}")
    print(f"after: load average {os.getloadavg()[0]:.2f}")


def _seconds(train, runs, data, options) -> float:
    start = time.perf_counter()
    train(runs, data, options)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
