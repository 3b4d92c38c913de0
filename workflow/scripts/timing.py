"""Time the engines on one device (seconds per epoch, after warm-up, over repeats)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # this checkout's gdbench

from gdbench.warmstart import delegate

delegate("torch")  # a local run's warm process runs this job in a fresh child (gdbench.warmstart)

import logging

from gdbench.determinism import set_deterministic
from gdbench.engines import DeviceError
from gdbench.experiment import Experiment
from gdbench.reads import record_done
from gdbench.shutdown import end_job
from gdbench.timing import measure_plan
from gdbench.timing.results import write_timing_csv

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=log, force=True)
    experiment = Experiment.from_checked(snakemake.config, [snakemake.wildcards.device])
    set_deterministic(experiment.timing.threads)
    try:
        results = measure_plan(experiment, snakemake.wildcards.device)
    except DeviceError as exc:
        print(f"error: {exc}", file=log)
        sys.exit(f"gdbench: {exc}")
    write_timing_csv(results, snakemake.output[0])  # no pandas in this process
    record_done(snakemake.params.reads, snakemake.params.record)
end_job()  # outputs written and closed: no interpreter teardown (gdbench.shutdown)
