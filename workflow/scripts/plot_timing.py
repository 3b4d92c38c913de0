"""Seconds per epoch vs n, and batched throughput vs grid size."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # this checkout's gdbench


import pandas as pd

from gdbench import plots

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    plots.timing(pd.read_csv(snakemake.input[0]), snakemake.output.png, snakemake.output.svg)
