"""The reproducibility check written and enforced: what was re-trained compared with the stored
tables (:func:`gdbench.verify.compare`, or :func:`gdbench.verify.verify` where it re-trains),
the check's files (its JSON, its page for the report, the lesson's log next to ours), and the
gate that fails a run on FAILED.

Rule reproduce and the gate run inside Snakemake's own process (pandas and pyarrow only, no
torch: they start no Python process); rule verify, which re-trains, runs
:func:`write_check` in its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from gdbench import io
from gdbench.inputs import require_readable
from gdbench.provenance import now
from gdbench.verify import Retrained, compare, failure_message

__all__ = ["CheckFailed", "gate", "reproduce", "stored_threads", "write_check"]


class CheckFailed(Exception):
    """The reproducibility check FAILED; the message is the one line for users."""


def stored_threads(meta: Sequence[str | Path]) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """The training jobs' records (their ``meta.json``) and the torch thread count each run was
    trained with (run id -> count)."""
    jobs = [json.loads(Path(p).read_text()) for p in meta]
    return jobs, {run_id: job["threads"] for job in jobs for run_id in job["run_ids"]}


def write_check(
    result: dict[str, Any],
    jobs: Sequence[Mapping[str, Any]],
    summary_path: str | Path,
    devices: Sequence[str],
    paths: Mapping[str, str | Path],
    log: TextIO,
) -> dict[str, Any]:
    """Complete ``result`` (its one-line message, when it was checked, when the checked results
    were trained and where they are, the device of the lesson's log shown) and write the check's
    files ``paths`` (keys ``check``, ``check_html``, ``lesson``, ``lesson_html``); a line per
    checked run and the verdict go to ``log``."""
    for run in result["runs"]:
        status = "identical" if run["identical"] else f"DIFFERS: {run['problem']}"
        print(f"run {run['run_id']} {run['run']} {run['engine']}: {status}", file=log)
    print(f"lesson log reproduced: {result['lesson_log_reproduced']}", file=log)
    result["message"] = "" if result["passed"] else failure_message(result)
    result["checked"] = now()
    result["trained"] = max(job["finished"] for job in jobs)
    result["results"] = str(Path(summary_path).parent.parent)
    result["lesson_device"] = devices[0]
    lesson = pd.DataFrame(result.pop("lesson")[devices[0]])
    status = "PASSED" if result["passed"] else "FAILED"
    io.write_csv(lesson, paths["lesson"])
    io.write_html_table(
        lesson,
        paths["lesson_html"],
        "The lesson's printed log next to ours",
        f"Both engines on {devices[0]}; *_matches is True where our line equals the lesson's character for character.",
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
    print(f"{status} {result['message']}".strip(), file=log)
    return result


def reproduce(
    inputs: Mapping[str, Any],
    paths: Mapping[str, str | Path],
    run_ids: Sequence[int],
    devices: Sequence[str],
    log_path: str | Path,
) -> dict[str, Any]:
    """Rule reproduce: compare the runs and the lesson re-trained by rule retrain (``inputs``:
    ``retrained``, ``lessons``, ``trajectories``, ``summary``, ``meta``) with the stored tables
    and write the check's files, PASSED or FAILED (the gate decides what a FAILED does). A
    damaged input stops it with :class:`gdbench.inputs.JobInputError`, writing nothing."""
    meta = list(inputs["meta"])
    named = [inputs["trajectories"], inputs["summary"], inputs["retrained"], inputs["lessons"], *meta]
    require_readable(named, log_path)
    with open(log_path, "a") as log:
        jobs, threads = stored_threads(meta)
        summary = pd.read_parquet(inputs["summary"])
        retrained = Retrained.read(inputs["retrained"], inputs["lessons"])
        result = compare(retrained, inputs["trajectories"], summary, threads, [int(i) for i in run_ids])
        return write_check(result, jobs, inputs["summary"], devices, paths, log)


def gate(check: str | Path, passed: str | Path, log_path: str | Path) -> None:
    """Fail on a FAILED check (:class:`CheckFailed`, its message the one line naming the run
    and the epoch; the check's files stay, so the report shows it); on PASSED write the PASSED
    line to ``passed``."""
    require_readable([check], log_path)
    result = json.loads(Path(check).read_text())
    with open(log_path, "a") as log:
        if not result["passed"]:
            print(f"FAILED: {result['message']}", file=log)
            raise CheckFailed(f"gdbench verify: FAILED: {result['message']}")
        line = f"PASSED: {result['runs_identical']} of {result['runs_checked']} re-trained runs bit-identical"
        print(line, file=log)
    io.write_text(f"{line}; the lesson's log reproduced\n", passed)
