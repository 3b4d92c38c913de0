"""Rule verify (asked for by name): re-train the sampled runs and the lesson here, afresh, in
this job's own process, compare them with the stored tables, write the check's files (the
report then shows it) and fail the run on FAILED. (Rule reproduce, in the default target,
compares what rule retrain re-trained, inside Snakemake: gdbench.reproduce.)"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # this checkout's gdbench

import pandas as pd

from gdbench import io
from gdbench.determinism import set_deterministic
from gdbench.experiment import Experiment
from gdbench.inputs import check_inputs
from gdbench.reproduce import stored_threads, write_check
from gdbench.shutdown import end_job
from gdbench.verify import verify


def main(sm):
    with open(sm.log[0], "w") as log:
        sys.stderr = log
        check_inputs(sm.input, log)
        jobs, threads = stored_threads(sm.input.meta)  # each run re-trained with the threads it was trained with
        summary = pd.read_parquet(sm.input.summary)
        devices = list(sm.params.devices)
        set_deterministic(sm.threads)
        experiment = Experiment.from_checked(sm.config, devices)
        result = verify(experiment, sm.input.trajectories, summary, threads=threads, run_ids=sm.params.run_ids)
        write_check(result, jobs, sm.input.summary, devices, sm.params.paths, log)
    sys.stderr = sys.__stderr__  # the FAILED line below goes to the terminal
    return result


# No outputs (it runs whenever it is asked for): the check's files and the PASSED line are
# named in its params; the PASSED line goes (or stays) only with a pass.
result = main(snakemake)
line = Path(snakemake.params.passed_line)
if not result["passed"]:
    line.unlink(missing_ok=True)
    sys.exit(f"gdbench verify: FAILED: {result['message']}")
io.write_text(
    f"PASSED: {result['runs_identical']} of {result['runs_checked']} re-trained runs bit-identical; "
    "the lesson's log reproduced\n",
    line,
)
end_job()  # outputs written and closed: no interpreter teardown (gdbench.shutdown)
