"""Engine throughput: the lesson's loop vs the batched engine, in run-epochs per second.

Tutorial data, lr spread over the converging range, 2000 epochs, one CPU thread. Each
measurement runs in a fresh subprocess so its peak memory (max RSS) is its own.

    python benchmarks/engines.py            # G = 100, 1k, 10k, 100k
    python benchmarks/engines.py --quick    # G = 100, 1k
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

EPOCHS = 2000


def measure(engine: str, G: int, record_every: int) -> dict:
    import numpy as np
    import torch

    from gdbench.data import parse_dataset
    from gdbench.engines import TrainOptions, train
    from gdbench.runs import RunSpec

    torch.set_num_threads(1)
    data = {"tutorial": parse_dataset("tutorial", {"x": [1, 2, 3], "y": [2, 4, 6]})}
    lrs = np.geomspace(1e-4, 0.17, G)
    runs = [RunSpec("tutorial", float(lr), 1, EPOCHS, engine=engine) for lr in lrs]
    train(runs[:2], data, TrainOptions(record_every=record_every))  # warm-up
    start = time.perf_counter()
    train(runs, data, TrainOptions(record_every=record_every))
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "engine": engine,
        "G": G,
        "record_every": record_every,
        "seconds": seconds,
        "run_epochs_per_s": G * (EPOCHS + 1) / seconds,
        "peak_mib": peak_mib,
    }


def in_subprocess(engine: str, G: int, record_every: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--one", engine, str(G), str(record_every)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), int(args.one[2]))))
        return
    sizes = [100, 1000] if args.quick else [100, 1000, 10_000, 100_000]
    loop = in_subprocess("loop", 20, 1)
    rows = [loop]
    for G in sizes:
        rows.append(in_subprocess("batched", G, 0))
        if G <= 10_000:
            rows.append(in_subprocess("batched", G, 1))
    print(f"{'engine':8} {'G':>7} {'record':>7} {'seconds':>8} {'run-epochs/s':>13} {'x loop':>8} {'peak MiB':>9}")
    for r in rows:
        ratio = r["run_epochs_per_s"] / loop["run_epochs_per_s"]
        record = "all" if r["record_every"] == 1 else "final"
        print(
            f"{r['engine']:8} {r['G']:>7} {record:>7} {r['seconds']:>8.3f} {r['run_epochs_per_s']:>13.3g} "
            f"{ratio:>8.0f} {r['peak_mib']:>9.0f}"
        )


if __name__ == "__main__":
    main()
