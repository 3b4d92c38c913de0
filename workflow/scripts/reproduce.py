"""The reproducibility check (PASSED or FAILED, naming the first run that differs and the
epoch): the sampled runs and the lesson re-trained from scratch, compared with the stored
tables. Rule `reproduce` compares what rule `retrain` re-trained and writes the check for the
report; rule `verify` (asked for by name) re-trains here, afresh, and fails the run on FAILED."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # this checkout's gdbench

import json

import pandas as pd

from gdbench import io
from gdbench.experiment import Experiment
from gdbench.inputs import check_inputs
from gdbench.provenance import now
from gdbench.reads import record_done
from gdbench.verify import Retrained, compare, failure_message, verify


def write_check(result, lesson, paths):
    status = "PASSED" if result["passed"] else "FAILED"
    device = result["lesson_device"]
    io.write_csv(lesson, paths["lesson"])
    io.write_html_table(
        lesson,
        paths["lesson_html"],
        "The lesson's printed log next to ours",
        f"Both engines on {device}; *_matches is True where our line equals the lesson's character for character.",
    )
    io.write_json(result, paths["check"])
    io.write_html_table(
        pd.DataFrame(result["runs"]),
        paths["check_html"],
        f"Reproducibility: {status}",
        (f"{result['message']}. " if result["message"] else "")
        + f"{result['runs_identical']} of {result['runs_checked']} re-trained runs bit-identical to the stored "
        f"trajectories of {result['results']} (trained until {result['trained']}; checked {result['checked']}); "
        f"the lesson's log reproduced: {result['lesson_log_reproduced']}.",
    )


def main(sm, paths):
    with open(sm.log[0], "w") as log:
        sys.stderr = log
        check_inputs(sm.input, log)
        summary = pd.read_parquet(sm.input.summary)
        jobs = [json.loads(Path(p).read_text()) for p in sm.input.meta]
        threads = {run_id: job["threads"] for job in jobs for run_id in job["run_ids"]}  # as each run was trained
        devices = list(sm.params.devices)
        if hasattr(sm.input, "retrained"):  # rule reproduce: re-trained by rule retrain
            retrained = Retrained.read(sm.input.retrained, sm.input.lessons)
            result = compare(retrained, sm.input.trajectories, summary, threads, sm.params.run_ids)
        else:  # rule verify: re-trained here, each run with the threads it was trained with
            from gdbench.determinism import set_deterministic  # torch: only where something is trained

            set_deterministic(sm.threads)
            experiment = Experiment.from_checked(sm.config, devices)
            result = verify(experiment, sm.input.trajectories, summary, threads=threads, run_ids=sm.params.run_ids)
        for run in result["runs"]:
            status = "identical" if run["identical"] else f"DIFFERS: {run['problem']}"
            print(f"run {run['run_id']} {run['run']} {run['engine']}: {status}", file=log)
        print(f"lesson log reproduced: {result['lesson_log_reproduced']}", file=log)
        result["message"] = "" if result["passed"] else failure_message(result)
        result["checked"] = now()
        result["trained"] = max(job["finished"] for job in jobs)
        result["results"] = str(Path(sm.input.summary).parent.parent)
        result["lesson_device"] = devices[0]
        lesson = pd.DataFrame(result.pop("lesson")[devices[0]])
        write_check(result, lesson, paths)
        if hasattr(sm.params, "record"):  # rule reproduce: its rerun record (rule verify runs whenever asked)
            record_done(sm.params.reads, sm.params.record)
        status = "PASSED" if result["passed"] else "FAILED"
        print(f"{status} {result['message']}".strip(), file=log)
    sys.stderr = sys.__stderr__  # the FAILED line below goes to the terminal
    return result


# Rule reproduce declares the check's files as its outputs; rule verify (no outputs: it runs
# whenever it is asked for) writes the same files, named in its params.
outputs = dict(snakemake.output.items()) or dict(snakemake.params.paths)
result = main(snakemake, outputs)
if not snakemake.output:  # rule verify: the PASSED line goes (or stays) only with a pass
    line = Path(snakemake.params.passed_line)
    if not result["passed"]:
        line.unlink(missing_ok=True)
        sys.exit(f"gdbench verify: FAILED: {result['message']}")
    io.write_text(
        f"PASSED: {result['runs_identical']} of {result['runs_checked']} re-trained runs bit-identical; "
        "the lesson's log reproduced\n",
        line,
    )
