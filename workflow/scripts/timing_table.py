"""Join the per-device timing tables."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # this checkout's gdbench


import pandas as pd

from gdbench import io

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    table = pd.concat([pd.read_csv(p) for p in snakemake.input], ignore_index=True)
    io.write_csv(table, snakemake.output[0])
    print(table.to_string(index=False), file=log)
