"""The baseline the workflow is measured against: the lesson's loop over a grid in one
process, a pandas table, and three seaborn plots — what a person would write by hand.

    python benchmarks/handwritten.py config/config.yaml OUTDIR
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
import yaml

from gdbench.data import parse_dataset


def lesson(x_train, y_train, lr, seed, epochs):
    torch.manual_seed(seed)
    W = torch.zeros(1, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([W, b], lr=lr)
    rows = []
    for epoch in range(epochs + 1):
        hypothesis = x_train * W + b
        cost = torch.mean((hypothesis - y_train) ** 2)
        optimizer.zero_grad()
        cost.backward()
        optimizer.step()
        rows.append((epoch, W.item(), b.item(), cost.item()))
    return rows


def main(config_path: str, out: str) -> None:
    torch.set_num_threads(1)
    config = yaml.safe_load(Path(config_path).read_text())
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    timings = []
    for name in config["grid"]["dataset"]:
        spec = parse_dataset(name, config["datasets"][name])
        for seed in config["grid"]["seed"]:
            ds = spec.build(seed=seed)
            x, y = ds.tensors()
            for lr in config["grid"]["lr"]:
                for epochs in config["grid"]["epochs"]:
                    start = time.perf_counter()
                    rows = lesson(x, y, lr, seed, epochs)
                    timings.append({"dataset": name, "lr": lr, "seed": seed, "seconds": time.perf_counter() - start})
                    records += [(name, lr, seed, *r) for r in rows]
    df = pd.DataFrame(records, columns=["dataset", "lr", "seed", "epoch", "W", "b", "cost"])
    df.to_parquet(out_dir / "trajectories.parquet")
    final = df.groupby(["dataset", "lr", "seed"]).last().reset_index()
    final.to_csv(out_dir / "summary.csv", index=False)
    sns.relplot(data=df[df["cost"] < 1e6], x="epoch", y="cost", hue="lr", col="dataset", kind="line", errorbar=None)
    plt.yscale("log")
    plt.savefig(out_dir / "convergence.png", dpi=150)
    sns.relplot(data=final, x="lr", y="cost", col="dataset")
    plt.xscale("log")
    plt.yscale("log")
    plt.savefig(out_dir / "divergence.png", dpi=150)
    sns.relplot(data=pd.DataFrame(timings), x="lr", y="seconds", col="dataset")
    plt.savefig(out_dir / "timing.png", dpi=150)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
