"""Re-train a sample of runs and the lesson; write the verdict (PASSED or FAILED, naming the
first run that differs and the epoch). Rule `verify` then fails the run on FAILED."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # this checkout's gdbench

import json

import pandas as pd

from gdbench import io
from gdbench.determinism import set_deterministic
from gdbench.experiment import Experiment
from gdbench.reads import record_done
from gdbench.verify import failure_message, verify

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    set_deterministic(snakemake.threads)
    summary = pd.read_parquet(snakemake.input.summary)
    jobs = [json.loads(Path(p).read_text()) for p in snakemake.input.meta]
    threads = {run_id: job["threads"] for job in jobs for run_id in job["run_ids"]}  # as each run was trained
    experiment = Experiment.from_checked(snakemake.config, snakemake.params.devices)
    devices = experiment.devices
    result = verify(experiment, snakemake.input.trajectories, summary, threads=threads)
    for run in result["runs"]:
        status = "identical" if run["identical"] else f"DIFFERS: {run['problem']}"
        print(f"run {run['run_id']} {run['run']} {run['engine']}: {status}", file=log)
    print(f"lesson log reproduced: {result['lesson_log_reproduced']}", file=log)
    verdict = "PASSED" if result["passed"] else "FAILED"
    result["message"] = "" if result["passed"] else failure_message(result)
    print(f"{verdict} {result['message']}".strip(), file=log)
    lesson = pd.DataFrame(result.pop("lesson")[devices[0]])
    io.write_csv(lesson, snakemake.output.lesson)
    io.write_html_table(
        lesson,
        snakemake.output.lesson_html,
        "The lesson's printed log next to ours",
        f"Both engines on {devices[0]}; *_matches is True where our line equals the lesson's character for character.",
    )
    io.write_json(result, snakemake.output.verdict)
    io.write_html_table(
        pd.DataFrame(result["runs"]),
        snakemake.output.verdict_html,
        f"Reproducibility: {verdict}",
        (f"{result['message']}. " if result["message"] else "")
        + f"{result['runs_identical']} of {result['runs_checked']} re-trained runs bit-identical to the stored "
        f"trajectories; the lesson's log reproduced: {result['lesson_log_reproduced']}.",
    )
    record_done(snakemake.params.reads, snakemake.params.record)
