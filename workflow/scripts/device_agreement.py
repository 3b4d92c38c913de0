"""CPU vs CUDA: the same runs on two devices, compared."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # this checkout's gdbench


import pandas as pd

from gdbench import io
from gdbench.agreement import device_agreement
from gdbench.inputs import check_inputs
from gdbench.shutdown import end_job

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    check_inputs(snakemake.input, log)
    summary = pd.read_parquet(snakemake.input.summary)
    traj = pd.read_parquet(snakemake.input.trajectories, columns=["run_id", "epoch", "W", "b", "cost"])
    table = device_agreement(traj, summary)
    io.write_csv(table, snakemake.output[0])
    agree = int(table["verdict_agrees"].sum()) if len(table) else 0
    print(f"{len(table)} run pairs compared, {agree} with equal verdicts", file=log)
end_job()  # outputs written and closed: no interpreter teardown (gdbench.shutdown)
