"""Re-train the sampled runs and the lesson from scratch, from the config alone, in this job's
own process (torch threads: the training jobs' count); rule reproduce compares them with the
stored tables once those are joined."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # this checkout's gdbench

from gdbench.warmstart import delegate

delegate("torch")  # a local run's warm process runs this job in a fresh child (gdbench.warmstart)

from gdbench.determinism import set_deterministic
from gdbench.experiment import Experiment
from gdbench.inputs import check_inputs
from gdbench.reads import record_done
from gdbench.shutdown import end_job
from gdbench.verify import retrain_sample


def main(sm):
    with open(sm.log[0], "w") as log:
        sys.stderr = log
        check_inputs(sm.input, log)
        set_deterministic(sm.threads)
        experiment = Experiment.from_checked(sm.config, sm.params.devices)
        ids = [int(i) for i in sm.params.run_ids]
        runs = [experiment.runs[i] for i in ids]  # each as the grid defines it (reproduce checks the stored rows)
        retrained = retrain_sample(experiment, runs, ids, sm.threads)
        retrained.write(sm.output.trajectories, sm.output.lessons)
        for run_id, run in zip(ids, runs, strict=True):
            print(f"run {run_id} {run.label()} {run.engine}: re-trained with {sm.threads} thread(s)", file=log)
        record_done(sm.params.reads, sm.params.record)


main(snakemake)
end_job()  # outputs written and closed: no interpreter teardown (gdbench.shutdown)
