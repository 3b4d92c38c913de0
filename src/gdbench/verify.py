"""The reproducibility check: re-train a sample of stored runs from scratch and demand
bit-identical trajectories, and re-run the lesson and demand its exact printed log. (Torch
loads when something is re-trained: the workflow reads :data:`RETRAIN_READS` and
:data:`COMPARE_READS` at parse time.)

A run is re-trained with the torch thread count it was trained with: the loop engine's sums
follow torch's thread-dependent reductions once a dataset is large enough to be split among
threads (the batched engine's do not).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from gdbench.data import parse_dataset
from gdbench.experiment import Experiment
from gdbench.lesson import LOG_EVERY, REFERENCE_LOG, TUTORIAL_DATASET, lesson_lines, lesson_spec, parse_log
from gdbench.pipeline import TRAIN_READS, job_values, train_runs
from gdbench.reads import Reads
from gdbench.runs import RunSpec, runs_by_axis, specs_digest
from gdbench.verify_sample import sample_run_ids

#: What :func:`verify` reads (``snakemake verify``, which runs whenever it is asked and so
#: declares no rerun param): what its runs are trained with, and the sample.
VERIFY_READS = Reads((*TRAIN_READS.paths, "verify.sample"))
#: What a re-trained trajectory depends on (the workflow's retrain job, besides its runs: see
#: :func:`retrain_values`): no analysis or log setting, which change no W, b or cost.
RETRAIN_READS = Reads(
    (*(p for p in TRAIN_READS.paths if not p.startswith(("analysis.", "training.log_"))), "verify.sample")
)
#: What the reproduce job's comparison reads besides its tables: the sample.
COMPARE_READS = Reads(("verify.sample",))


def retrain_values(experiment: Experiment, run_ids: Sequence[int]) -> dict[str, Any]:
    """What the retrain job of runs ``run_ids`` reads: :data:`RETRAIN_READS` and those runs by
    axis with the digest of their specs and ids (a run the grid now defines otherwise, with the
    same id, is re-trained again)."""
    ids = [int(i) for i in run_ids]
    runs = [experiment.runs[i] for i in ids]
    return {
        **runs_by_axis(runs),
        "runs.ids": ids,
        "runs.specs": specs_digest(runs, ids),
        **job_values(experiment, RETRAIN_READS, runs),
    }


def lesson_comparison(device: str = "cpu") -> pd.DataFrame:
    """The lesson's 21 printed rows next to ours, from both engines."""
    from gdbench.engines import train
    from gdbench.experiment import default_experiment

    ours = {}
    data = {"tutorial": parse_dataset("tutorial", TUTORIAL_DATASET)}
    options = default_experiment().train_options(record_every=LOG_EVERY)
    for engine in ("loop", "batched"):
        batch = train([lesson_spec(engine, device)], data, options)
        ours[engine] = parse_log("\n".join(lesson_lines(batch, LOG_EVERY)))
    ref = parse_log(REFERENCE_LOG)
    table = ref.rename(columns={c: f"lesson_{c}" for c in ("W", "b", "cost")})
    for engine, df in ours.items():
        table = table.merge(df.rename(columns={c: f"{engine}_{c}" for c in ("W", "b", "cost")}), on="epoch", how="left")
        same = np.ones(len(table), dtype=bool)
        for c in ("W", "b", "cost"):
            same &= (table[f"lesson_{c}"] == table[f"{engine}_{c}"]).to_numpy()
        table[f"{engine}_matches"] = same
    return table


def first_difference(stored: pd.DataFrame, rerun: pd.DataFrame) -> str | None:
    """Where two trajectories of one run first differ (bit for bit), or None."""
    if len(stored) != len(rerun) or not np.array_equal(stored["epoch"].to_numpy(), rerun["epoch"].to_numpy()):
        return f"recorded epochs differ ({len(stored)} stored rows, {len(rerun)} re-run rows)"
    for col in ("W", "b", "cost"):
        a = stored[col].to_numpy()
        b = rerun[col].to_numpy()
        differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        if differ.any():
            i = int(np.argmax(differ))
            return f"{col} first differs at epoch {int(stored['epoch'].iloc[i])} (stored {a[i]!s}, re-run {b[i]!s})"
    return None


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with torch's CPU thread count set to ``threads`` (None: unchanged)."""
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def retrain(
    experiment: Experiment,
    runs: Sequence[RunSpec],
    ids: Sequence[int],
    threads: Mapping[int, int] | None = None,
) -> pd.DataFrame:
    """The trajectory table of ``runs`` trained afresh, each with the thread count it was
    trained with (``threads``: run id -> count; a run not in it uses the current count)."""
    groups: dict[int | None, list[int]] = {}
    for i, run_id in enumerate(ids):
        groups.setdefault(None if threads is None else threads.get(run_id), []).append(i)
    parts = []
    for count, members in groups.items():
        with torch_threads(count):
            _, table, _ = train_runs(experiment, [runs[i] for i in members], [ids[i] for i in members])
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


@dataclass
class Retrained:
    """A sample of runs and the lesson trained afresh: what :func:`compare` checks stored
    tables against (written by the workflow's retrain job, read by its reproduce job)."""

    trajectories: pd.DataFrame  # the sample's trajectory table (run attributes on every row)
    threads: dict[int, int]  # run id -> the torch thread count it was re-trained with
    lessons: dict[str, pd.DataFrame]  # device -> the lesson's log next to ours (lesson_comparison)

    def write(self, trajectories_path: str | Path, json_path: str | Path) -> None:
        from gdbench import io

        io.write_parquet(self.trajectories, trajectories_path)
        lessons = {d: t.to_dict("records") for d, t in self.lessons.items()}
        io.write_json({"threads": {str(k): v for k, v in self.threads.items()}, "lessons": lessons}, json_path)

    @classmethod
    def read(cls, trajectories_path: str | Path, json_path: str | Path) -> Retrained:
        import json

        data = json.loads(Path(json_path).read_text())
        threads = {int(k): v for k, v in data["threads"].items()}
        lessons = {d: pd.DataFrame(rows) for d, rows in data["lessons"].items()}
        return cls(pd.read_parquet(trajectories_path), threads, lessons)


def retrain_sample(
    experiment: Experiment, runs: Sequence[RunSpec], ids: Sequence[int], threads: Mapping[int, int] | int | None
) -> Retrained:
    """``runs`` (run ids ``ids``) and the lesson on each of the experiment's devices, trained
    afresh; each run with ``threads`` torch threads (a count for all, or run id -> count as each
    was trained; None or a run not in it: the current count)."""
    import torch

    current = torch.get_num_threads()
    if threads is None or isinstance(threads, int):
        used = {i: threads or current for i in ids}
    else:
        used = {i: threads.get(i, current) for i in ids}
    table = retrain(experiment, runs, ids, used) if runs else pd.DataFrame(columns=["run_id"])
    return Retrained(table, used, {device: lesson_comparison(device) for device in experiment.devices})


def sample_of(
    experiment: Experiment, summary: pd.DataFrame, run_ids: Sequence[int] | None
) -> tuple[list[RunSpec], list[int]]:
    """The runs ``run_ids`` as the summary stores them (else :func:`gdbench.verify_sample.sample_run_ids`
    of the summary's runs: the sample spread over the grid and the lesson's own run)."""
    if run_ids is None:
        specs = [RunSpec.from_row(r) for r in summary.to_dict("records")]
        all_ids = summary["run_id"].astype(int).tolist()
        run_ids = sample_run_ids(experiment.config, specs, all_ids, experiment.verify_sample)
    ids = [int(i) for i in run_ids]
    rows = summary.set_index("run_id").loc[ids].reset_index()
    return [RunSpec.from_row(r) for r in rows.to_dict("records")], ids


def verify(
    experiment: Experiment,
    trajectories_path: str | Path,
    summary: pd.DataFrame,
    threads: Mapping[int, int] | None = None,
    run_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Re-train the experiment's sample of runs (:attr:`~gdbench.experiment.Experiment.verify_sample`)
    and the lesson on each of its devices; return the check's result (``passed`` True/False) with one
    entry per checked run. Never raises on a mismatch: the caller decides.

    ``threads`` maps run ids to the torch thread count each was trained with (the training
    jobs record it); each run is re-trained with its own count.

    The runs are ``run_ids`` (the workflow computes them when it builds its jobs, so its message
    and the check count the same runs), else :func:`gdbench.verify_sample.sample_run_ids` of
    the summary's runs: the sample spread over the grid and the lesson's own (plain SGD) run.
    Each is re-trained as its summary row states it. :func:`compare` is the check itself."""
    runs, ids = sample_of(experiment, summary, run_ids)
    return compare(retrain_sample(experiment, runs, ids, threads), trajectories_path, summary, threads, ids)


def compare(
    retrained: Retrained,
    trajectories_path: str | Path,
    summary: pd.DataFrame,
    threads: Mapping[int, int] | None,
    run_ids: Sequence[int],
) -> dict[str, Any]:
    """The check of runs ``run_ids``: each must have been re-trained as its summary row states
    it, with the thread count it was trained with (``threads``: run id -> count, from the
    training jobs; None: not checked), and its stored trajectory must equal the re-trained one
    bit for bit; and the lesson's log must be reproduced on every device."""
    ids = [int(i) for i in run_ids]
    rows = summary[summary["run_id"].isin(ids)].to_dict("records")  # the sampled rows only
    stored_specs = {int(r["run_id"]): RunSpec.from_row(r) for r in rows}
    rerun = retrained.trajectories
    checked: list[dict[str, Any]] = []
    if ids:
        # Only what is compared, and only the row groups holding the sampled runs (each holds a
        # contiguous block of run ids, so the filter skips the others by their statistics).
        columns = ["run_id", "epoch", "W", "b", "cost"]
        stored = pq.read_table(trajectories_path, columns=columns, filters=[("run_id", "in", ids)]).to_pandas()
        for run_id in ids:
            a = stored[stored["run_id"] == run_id].sort_values("epoch")
            b = rerun[rerun["run_id"] == run_id].sort_values("epoch")
            run = stored_specs.get(run_id)
            again = RunSpec.from_row(b.iloc[0]) if len(b) else None
            trained_with = None if threads is None else threads.get(run_id)
            problem: str | None
            if run is None:
                problem = "no row in the summary"
            elif again != run:
                problem = f"re-trained as {again.label() if again else 'nothing'}, but stored as {run.label()}"
            elif trained_with is not None and trained_with != retrained.threads.get(run_id):
                problem = f"trained with {trained_with} thread(s), re-trained with {retrained.threads.get(run_id)}"
            else:
                problem = first_difference(a, b)
            shown = run or again
            checked.append(
                {
                    "run_id": run_id,
                    "run": shown.label() if shown else "?",
                    "engine": shown.engine if shown else "?",
                    "threads": trained_with,
                    "identical": problem is None,
                    "epochs_compared": len(a),
                    "problem": problem,
                }
            )
    lessons = retrained.lessons
    lesson_ok = bool(lessons) and all(
        bool(t[["loop_matches", "batched_matches"]].all().all()) for t in lessons.values()
    )
    return {
        "passed": lesson_ok and all(c["identical"] for c in checked),
        "lesson_log_reproduced": lesson_ok,
        "runs_checked": len(checked),
        "runs_identical": sum(c["identical"] for c in checked),
        "runs": checked,
        "lesson": {d: t.to_dict("records") for d, t in lessons.items()},
    }


def failure_message(result: Mapping[str, Any]) -> str:
    """One line naming what failed first: the run and the epoch where it first differs."""
    for c in result["runs"]:
        if not c["identical"]:
            return f"run {c['run_id']} ({c['run']}, {c['engine']}) is not reproduced: {c['problem']}"
    if not result["lesson_log_reproduced"]:
        return "the lesson's printed log is not reproduced (see tables/lesson_log.csv)"
    return "reproducibility check failed"
