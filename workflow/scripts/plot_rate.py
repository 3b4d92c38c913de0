"""Measured rate of the excess cost vs lr / critical_lr, over the predicted rate."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # this checkout's gdbench


import pandas as pd

from gdbench import plots

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    summary = pd.read_parquet(snakemake.input.summary)
    theory = pd.read_csv(snakemake.input.theory)
    plots.rate(summary, theory, snakemake.output.png, snakemake.output.svg)
