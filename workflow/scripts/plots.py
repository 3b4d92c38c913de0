"""The figures of rule plots' `<name>_png` outputs: a function per figure (the joined tables',
the findings', the timing's), drawn in the job's threads count of processes forked after the
imports (gdbench.forked). Figures read the tables only (never the config)."""

import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # this checkout's gdbench

from gdbench.warmstart import delegate

delegate("plots")  # a local run's warm process runs this job in a fresh child (gdbench.warmstart)

import pandas as pd

from gdbench import plots
from gdbench.forked import run_tasks
from gdbench.inputs import check_inputs
from gdbench.plots import reduction
from gdbench.shutdown import end_job
from gdbench.tables import AXES


def convergence(inputs, png, svg, log):
    """Cost vs epoch per learning rate, a facet per dataset (and device)."""
    summary = pd.read_parquet(inputs.summary)
    columns = ["run_id", *AXES, "epoch", "cost"]
    trajectories = reduction.read_drawn(inputs.trajectories, summary, columns)  # the drawable epochs only
    print(f"convergence: {len(trajectories)} trajectory rows read for {len(summary)} runs", file=log)
    plots.convergence(trajectories, summary, png, svg)


def rate(inputs, png, svg, log):
    """Measured and predicted epochs per decade of the excess vs lr / critical_lr."""
    summary, curve, theory = pd.read_parquet(inputs.summary), pd.read_csv(inputs.curve), pd.read_csv(inputs.theory)
    plots.rate(summary, curve, theory, png, svg)


def divergence(inputs, png, svg, log):
    """Final cost vs learning rate, with the critical and the fastest learning rate."""
    plots.divergence(pd.read_parquet(inputs.summary), pd.read_csv(inputs.theory), png, svg)


def edge(inputs, png, svg, log):
    """The located edge per grid point and seed against the theory's critical lr and horizon."""
    plots.edge(pd.read_csv(inputs.edge), png, svg)


def time_to_target(inputs, png, svg, log):
    """Epochs to converge vs lr per optimizer, the best lr starred, the theory dashed."""
    plots.time_to_target(pd.read_csv(inputs.time_to_target), pd.read_csv(inputs.findings), png, svg)


def profile(inputs, png, svg, log):
    """The optimizers' performance profile (ranked bars for a single problem)."""
    plots.profile(pd.read_csv(inputs.profile), png, svg)


def timing(inputs, png, svg, log):
    """Seconds per epoch vs n, and batched throughput vs grid size."""
    plots.timing(pd.read_csv(inputs.timing), png, svg)


#: Relative cost of a figure when the figures are split over processes (others: 1): the
#: convergence figure reads the trajectories and draws a line per run.
WEIGHTS = {"convergence": 3.0}

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    check_inputs(snakemake.input, log)
    out = dict(snakemake.output.items())
    names = [key[: -len("_png")] for key in out if key.endswith("_png")]
    draw = globals()
    tasks = [(n, partial(draw[n], snakemake.input, out[f"{n}_png"], out.get(f"{n}_svg"), log)) for n in names]
    run_tasks(tasks, snakemake.threads, log, WEIGHTS)
end_job()  # outputs written and closed: no interpreter teardown (gdbench.shutdown)
