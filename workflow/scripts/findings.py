"""The findings, time-to-target and performance-profile tables, from the summary, theory and
edge tables (gdbench.findings defines every column), and the two figures drawn from them (read
back from the files written: figures read tables only). Drawn here, not by the plots job, so
that the plots job starts as soon as the tables are joined, and without a process of their own
(matplotlib's import costs more than drawing them)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # this checkout's gdbench

import pandas as pd

from gdbench import plots
from gdbench.experiment import Experiment
from gdbench.findings import write_findings
from gdbench.reads import record_done


def main(config, inputs, output, params, log_path):
    with open(log_path, "w") as log:
        sys.stderr = log
        converged_below = Experiment.from_checked(config, ["cpu"]).criteria.converged_below
        edge = pd.read_csv(inputs.edge) if hasattr(inputs, "edge") else None
        write_findings(pd.read_parquet(inputs.summary), edge, pd.read_csv(inputs.theory), converged_below, output, log)
        # Epochs to converge vs lr per optimizer, the best lr starred, the theory dashed.
        findings, to_target = pd.read_csv(output.findings), pd.read_csv(output.time_to_target)
        plots.time_to_target(to_target, findings, output.time_to_target_png, output.time_to_target_svg)
        print("drew time_to_target", file=log, flush=True)
        # The optimizers' performance profile (ranked bars for a single problem).
        plots.profile(pd.read_csv(output.profile), output.profile_png, output.profile_svg)
        print("drew profile", file=log, flush=True)
        record_done(params.reads, params.record)


main(snakemake.config, snakemake.input, snakemake.output, snakemake.params, snakemake.log[0])
