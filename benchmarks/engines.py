"""Engine throughput: the lesson's loop vs the batched engine, in run-epochs per second,
per optimizer.

Tutorial data, lr spread over the converging range (below each optimizer's own critical lr
where it has one), 2000 epochs, one CPU thread. Each measurement runs in a fresh subprocess
so its peak memory (max RSS) is its own. The first optimizer gets every grid size and both
recording modes; the others the loop and the batched engine at each grid size, final epoch
recorded.

    python benchmarks/engines.py            # G = 100, 1k, 10k, 100k; sgd, heavy_ball, nesterov, adam
    python benchmarks/engines.py --quick    # G = 100, 1k
    python benchmarks/engines.py --optimizers sgd adam
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

EPOCHS = 2000

#: The optimizers measured (the default config's definitions of these names).
OPTIMIZERS = ["sgd", "heavy_ball", "nesterov", "adam"]


def measure(engine: str, G: int, record_every: int, optimizer: str = "sgd") -> dict:
    import math
    from dataclasses import replace

    import numpy as np
    import torch

    from gdbench import stability
    from gdbench.data import parse_dataset
    from gdbench.engines import train
    from gdbench.experiment import resolve
    from gdbench.lesson import LESSON_SETTINGS
    from gdbench.runs import RunSpec
    from gdbench.theory import analyse

    torch.set_num_threads(1)
    experiment = resolve({}, ["cpu"])
    spec = experiment.optimizer(optimizer)
    data = {"tutorial": parse_dataset("tutorial", {"x": [1, 2, 3], "y": [2, 4, 6]})}
    critical = stability.critical_lr(spec, analyse(data["tutorial"].build()).lambda_max)
    top = min(0.17, 0.95 * critical) if math.isfinite(critical) else 0.17
    lrs = np.geomspace(1e-4, top, G)
    settings = {**LESSON_SETTINGS, "optimizer": optimizer}
    runs = [RunSpec("tutorial", float(lr), 1, EPOCHS, "cpu", engine=engine, **settings) for lr in lrs]
    options = replace(experiment.train_options(record_every=record_every), optimizers={optimizer: spec})
    train(runs[:2], data, options)  # warm-up
    start = time.perf_counter()
    train(runs, data, options)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "engine": engine,
        "optimizer": optimizer,
        "G": G,
        "record_every": record_every,
        "seconds": seconds,
        "run_epochs_per_s": G * (EPOCHS + 1) / seconds,
        "peak_mib": peak_mib,
    }


def in_subprocess(engine: str, G: int, record_every: int, optimizer: str = "sgd") -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--one", engine, str(G), str(record_every), optimizer],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--optimizers", nargs="+", default=OPTIMIZERS, help="names of the default config's optimizers")
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), int(args.one[2]), args.one[3])))
        return
    sizes = [100, 1000] if args.quick else [100, 1000, 10_000, 100_000]
    print(
        f"{'optimizer':10} {'engine':8} {'G':>7} {'record':>7} {'seconds':>8} {'run-epochs/s':>13} {'x loop':>8} "
        f"{'peak MiB':>9}"
    )
    for k, optimizer in enumerate(args.optimizers):
        loop = in_subprocess("loop", 20, 1, optimizer)
        rows = [loop]
        for G in sizes:
            rows.append(in_subprocess("batched", G, 0, optimizer))
            if G <= 10_000 and k == 0:
                rows.append(in_subprocess("batched", G, 1, optimizer))
        for r in rows:
            ratio = r["run_epochs_per_s"] / loop["run_epochs_per_s"]
            record = "all" if r["record_every"] == 1 else "final"
            print(
                f"{optimizer:10} {r['engine']:8} {r['G']:>7} {record:>7} {r['seconds']:>8.3f} "
                f"{r['run_epochs_per_s']:>13.3g} {ratio:>8.0f} {r['peak_mib']:>9.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
