"""Cost vs epoch per learning rate, a facet per dataset (and device)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # this checkout's gdbench

import numpy as np
import pandas as pd

from gdbench import plots
from gdbench.tables import AXES

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    summary = pd.read_parquet(snakemake.input.summary)
    # Read only the epochs the plot can draw (it thins to MAX_POINTS per line), plus each
    # run's last and divergence epochs: big grids then never load every row.
    top = int(summary["epochs"].max())
    drawn = np.flatnonzero(plots.kept_epochs(np.arange(top + 1), plots.MAX_POINTS))
    ends = np.concatenate([summary["epochs"].to_numpy(), summary["diverged_at"].dropna().to_numpy()])
    epochs = sorted({int(e) for e in np.concatenate([drawn, ends])})
    columns = ["run_id", *AXES, "epoch", "cost"]
    trajectories = pd.read_parquet(snakemake.input.trajectories, columns=columns, filters=[("epoch", "in", epochs)])
    print(f"{len(trajectories)} trajectory rows read for {len(summary)} runs", file=log)
    plots.convergence(trajectories, summary, snakemake.output.png, snakemake.output.svg)
