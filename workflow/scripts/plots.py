"""Every figure in one process: a function per figure, called for each `<name>_png` output."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # this checkout's gdbench

import pandas as pd

from gdbench import plots
from gdbench.experiment import Experiment
from gdbench.plots import lines
from gdbench.tables import AXES


def convergence(inputs, png, svg, log):
    """Cost vs epoch per learning rate, a facet per dataset (and device)."""
    summary = pd.read_parquet(inputs.summary)
    columns = ["run_id", *AXES, "epoch", "cost"]
    trajectories = lines.read_drawn(inputs.trajectories, summary, columns)  # the drawable epochs only
    print(f"convergence: {len(trajectories)} trajectory rows read for {len(summary)} runs", file=log)
    plots.convergence(trajectories, summary, png, svg)


def rate(inputs, png, svg, log):
    """Measured rate of the excess cost vs lr / critical_lr, over the predicted rate."""
    specs = Experiment.from_checked(snakemake.config, ["cpu"]).optimizers  # each optimizer's own theory curve
    plots.rate(pd.read_parquet(inputs.summary), pd.read_csv(inputs.theory), png, svg, optimizers=specs)


def divergence(inputs, png, svg, log):
    """Final cost vs learning rate, with the critical and the fastest learning rate."""
    plots.divergence(pd.read_parquet(inputs.summary), pd.read_csv(inputs.theory), png, svg)


def timing(inputs, png, svg, log):
    """Seconds per epoch vs n, and batched throughput vs grid size."""
    plots.timing(pd.read_csv(inputs.timing), png, svg)


with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    for key, png in snakemake.output.items():
        if key.endswith("_png"):
            name = key[: -len("_png")]
            globals()[name](snakemake.input, png, snakemake.output[f"{name}_svg"], log)
            print(f"drew {name}", file=log, flush=True)
