"""Cost vs epoch per learning rate, a facet per dataset (and device)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # this checkout's gdbench


import pandas as pd

from gdbench import plots
from gdbench.tables import AXES

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    columns = ["run_id", *AXES, "epoch", "cost"]
    trajectories = pd.read_parquet(snakemake.input.trajectories, columns=columns)
    summary = pd.read_parquet(snakemake.input.summary)
    plots.convergence(trajectories, summary, snakemake.output.png, snakemake.output.svg)
