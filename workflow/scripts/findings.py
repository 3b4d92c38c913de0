"""The findings, time-to-target and performance-profile tables, from the summary, theory and
edge tables (gdbench.findings defines every column). Their figures are drawn by the plots job
(this job imports no plotting library)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # this checkout's gdbench

import pandas as pd

from gdbench.experiment import Experiment
from gdbench.findings import write_findings
from gdbench.reads import record_done


def main(config, inputs, output, params, log_path):
    with open(log_path, "w") as log:
        sys.stderr = log
        converged_below = Experiment.from_checked(config, ["cpu"]).criteria.converged_below
        edge = pd.read_csv(inputs.edge) if hasattr(inputs, "edge") else None
        write_findings(pd.read_parquet(inputs.summary), edge, pd.read_csv(inputs.theory), converged_below, output, log)
        record_done(params.reads, params.record)


main(snakemake.config, snakemake.input, snakemake.output, snakemake.params, snakemake.log[0])
