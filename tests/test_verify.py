"""The reproducibility check, in-process: it must see a single flipped bit, say where in one
line, read run specs back from summary rows exactly, and re-train with each run's threads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers import run_spec

from gdbench import io
from gdbench.config import check_config
from gdbench.experiment import Experiment
from gdbench.pipeline import train_runs
from gdbench.runs import RunSpec
from gdbench.verify import failure_message, first_difference, verify

CONFIG = check_config(
    {
        "datasets": {
            "tutorial": {"x": [1, 2, 3], "y": [2, 4, 6]},
            "wide": {"synthetic": {"n": 100000, "slope": 2.0, "intercept": 0.5, "noise": 0.5}},
        },
        "grid": {"dataset": ["tutorial"], "lr": [0.01], "seed": [1], "epochs": [10], "device": ["cpu"]},
    }
)

#: Runs whose summary rows must read back as the same spec: minibatch, normal init, the loop
#: engine, float64, and a mix of them.
RUNS = [
    run_spec("tutorial", 0.05, 3, 40, batch_size=2),
    run_spec("tutorial", 0.1, 4, 30, init="normal"),
    run_spec("tutorial", 0.02, 5, 25, engine="loop"),
    run_spec("tutorial", 0.17, 6, 35, dtype="float64"),
    run_spec("tutorial", 0.03, 7, 20, engine="loop", init="normal", batch_size=1, dtype="float64"),
]
RUN_IDS = [10, 11, 12, 13, 14]


def ex(config):
    """The experiment of a checked config, on the CPU."""
    return Experiment.from_checked(config, ["cpu"])


def sampled(sample: int) -> Experiment:
    """The experiment of :data:`CONFIG` with ``verify.sample`` = ``sample``."""
    return ex({**CONFIG, "verify": {"sample": sample}})


def store(tmp_path: Path, runs: list[RunSpec], run_ids: list[int]) -> tuple[Path, pd.DataFrame]:
    """Train ``runs`` and store their tables as a workflow would."""
    _, traj, summary = train_runs(ex(CONFIG), runs, run_ids)
    path = tmp_path / "trajectories.parquet"
    io.write_parquet(traj, path)
    io.write_parquet(summary, tmp_path / "summary.parquet")
    return path, pd.read_parquet(tmp_path / "summary.parquet")


def flip_bit(path: Path, run_id: int, epoch: int, column: str = "W") -> None:
    """Flip the lowest mantissa bit of one stored number."""
    table = pq.read_table(path)
    values = table.column(column).to_numpy().copy()
    row = (table.column("run_id").to_numpy() == run_id) & (table.column("epoch").to_numpy() == epoch)
    assert row.sum() == 1
    values.view(np.int32 if values.dtype == np.float32 else np.int64)[row] ^= 1
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, pa.array(values)), path)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    return store(tmp_path_factory.mktemp("verify"), RUNS, RUN_IDS)


def test_summary_rows_read_back_as_the_same_run_specs(stored: tuple[Path, pd.DataFrame]) -> None:
    """verify re-trains the spec it reads from a summary row: a minibatch, normal-init, loop or
    float64 run read back as a default run would be re-trained as another run."""
    _, summary = stored
    assert [RunSpec.from_row(row) for row in summary.to_dict("records")] == RUNS


def test_verify_passes_on_untouched_tables(stored: tuple[Path, pd.DataFrame]) -> None:
    """The stored tables as trained: every run re-trains bit for bit."""
    path, summary = stored
    result = verify(sampled(len(RUNS)), path, summary)
    assert result["passed"] and result["runs_checked"] == len(RUNS) == result["runs_identical"]
    assert [c["run_id"] for c in result["runs"]] == RUN_IDS


@pytest.mark.parametrize(("index", "column", "epoch"), [(0, "W", 17), (2, "cost", 0), (3, "b", 35)])
def test_one_flipped_bit_fails_verify_naming_run_and_epoch(
    tmp_path: Path, stored: tuple[Path, pd.DataFrame], index: int, column: str, epoch: int
) -> None:
    """A stored number one bit off (float32 or float64, any epoch, loop or batched) is found,
    and the one-line message names the run and the first differing epoch."""
    path, summary = stored
    tampered = tmp_path / "trajectories.parquet"
    tampered.write_bytes(path.read_bytes())
    run_id, run = RUN_IDS[index], RUNS[index]
    flip_bit(tampered, run_id, epoch, column)
    result = verify(sampled(len(RUNS)), tampered, summary)
    assert not result["passed"] and result["runs_identical"] == len(RUNS) - 1
    bad = [c for c in result["runs"] if not c["identical"]]
    assert [c["run_id"] for c in bad] == [run_id]
    message = failure_message(result)
    prefix = f"run {run_id} ({run.label()}, {run.engine}) is not reproduced: {column} first differs at epoch {epoch} "
    assert message.startswith(prefix) and "\n" not in message, message


def test_first_difference_reports_missing_epochs_and_equal_nans() -> None:
    """A trajectory cut short is a difference; NaN where both are NaN is not."""
    a = pd.DataFrame({"epoch": [0, 1, 2], "W": [1.0, np.nan, 2.0], "b": [0.0] * 3, "cost": [1.0] * 3})
    assert first_difference(a, a.copy()) is None
    assert "3 stored rows, 2 re-run rows" in first_difference(a, a.iloc[:2])
    b = a.copy()
    b.loc[2, "cost"] = 1.5
    assert first_difference(a, b) == "cost first differs at epoch 2 (stored 1.0, re-run 1.5)"


def test_verify_retrains_with_the_threads_a_run_was_trained_with(tmp_path: Path) -> None:
    """The loop engine on n = 100,000 points sums in another order with 2 threads than with 1:
    a run trained with 2 threads re-trains bit for bit only with 2 threads, whatever the
    verifying process's own setting."""
    runs = [run_spec("wide", 0.01, 1, 3, engine="loop"), run_spec("wide", 0.01, 1, 3, engine="batched")]
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        path, summary = store(tmp_path, runs, [0, 1])
    finally:
        torch.set_num_threads(1)
    try:
        recorded = verify(sampled(2), path, summary, threads={0: 2, 1: 2})
        assert recorded["passed"], failure_message(recorded)
        assert [c["threads"] for c in recorded["runs"]] == [2, 2]
        assert torch.get_num_threads() == 1  # the caller's setting is restored
        one_thread = verify(sampled(2), path, summary, threads={0: 1, 1: 1})
        assert not one_thread["passed"]
        expected = "run 0 (wide lr=0.01 seed=1 epochs=3 cpu, loop) is not reproduced"
        assert failure_message(one_thread).startswith(expected)
    finally:
        torch.set_num_threads(previous)


def test_the_check_of_runs_re_trained_elsewhere_names_a_spec_or_thread_count_that_differs(
    tmp_path: Path, stored: tuple[Path, pd.DataFrame]
) -> None:
    """The workflow re-trains its sample from the config in a job of its own (rule retrain) and
    compares afterwards (rule reproduce): a round trip through its files changes nothing; a run
    the grid defines otherwise than its stored row, or re-trained with another thread count
    than it was trained with, fails the check with one line saying which."""
    import dataclasses

    from gdbench.verify import Retrained, compare, retrain_sample

    path, summary = stored
    experiment = sampled(len(RUNS))
    fresh = retrain_sample(experiment, RUNS, RUN_IDS, 1)
    fresh.write(tmp_path / "r.parquet", tmp_path / "r.json")
    again = Retrained.read(tmp_path / "r.parquet", tmp_path / "r.json")
    ok = compare(again, path, summary, {i: 1 for i in RUN_IDS}, RUN_IDS)
    assert ok["passed"] and ok["runs_identical"] == len(RUNS), failure_message(ok)

    other = [dataclasses.replace(RUNS[1], lr=0.2), *RUNS[2:]]  # run 11 as the grid would now define it
    moved = compare(retrain_sample(experiment, other, RUN_IDS[1:], 1), path, summary, None, RUN_IDS[1:])
    assert not moved["passed"] and moved["runs_identical"] == len(RUNS) - 2
    assert failure_message(moved) == (
        f"run 11 ({RUNS[1].label()}, batched) is not reproduced: re-trained as {other[0].label()}, "
        f"but stored as {RUNS[1].label()}"
    )
    threads = compare(again, path, summary, {**{i: 1 for i in RUN_IDS}, 12: 2}, RUN_IDS)
    assert not threads["passed"] and [c["run_id"] for c in threads["runs"] if not c["identical"]] == [12]
    assert failure_message(threads).endswith("is not reproduced: trained with 2 thread(s), re-trained with 1")


def test_the_default_targets_check_writes_its_files_and_the_gate_fails_on_one_flipped_bit(
    tmp_path: Path, stored: tuple[Path, pd.DataFrame]
) -> None:
    """Rule reproduce and the gate (inside Snakemake's process): the check's four files are
    written PASSED or FAILED; the gate writes the PASSED line only on a pass and fails on
    FAILED with the one line naming the run and the epoch (the check's files stay, so the
    report shows it); a damaged input stops the comparison naming the file, writing nothing."""
    import json

    from gdbench.inputs import JobInputError
    from gdbench.reproduce import CheckFailed, gate, reproduce
    from gdbench.verify import retrain_sample

    path, summary = stored
    retrain_sample(sampled(len(RUNS)), RUNS, RUN_IDS, 1).write(tmp_path / "r.parquet", tmp_path / "r.json")
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"threads": 1, "run_ids": RUN_IDS, "finished": "2026-12-03T08:00:00+00:00"}))
    tampered = tmp_path / "trajectories.parquet"
    tampered.write_bytes(path.read_bytes())
    io.write_parquet(summary, tmp_path / "summary.parquet")
    inputs = {
        "trajectories": tampered,
        "summary": tmp_path / "summary.parquet",
        "meta": [meta],
        "retrained": tmp_path / "r.parquet",
        "lessons": tmp_path / "r.json",
    }
    names = {"check": "check.json", "check_html": "check.html", "lesson": "lesson.csv", "lesson_html": "lesson.html"}
    paths = {key: tmp_path / "out" / name for key, name in names.items()}
    passed = tmp_path / "out" / "reproducibility.txt"

    result = reproduce(inputs, paths, RUN_IDS, ["cpu"], tmp_path / "reproduce.log")
    assert result["passed"] and all(p.exists() for p in paths.values())
    assert json.loads(paths["check"].read_text())["trained"] == "2026-12-03T08:00:00+00:00"
    assert "Reproducibility: PASSED" in paths["check_html"].read_text()
    gate(paths["check"], passed, tmp_path / "gate.log")
    both = f"{len(RUNS)} of {len(RUNS)}"
    assert passed.read_text() == f"PASSED: {both} re-trained runs bit-identical; the lesson's log reproduced\n"

    passed.unlink()
    flip_bit(tampered, RUN_IDS[1], 7)
    failed = reproduce(inputs, paths, RUN_IDS, ["cpu"], tmp_path / "reproduce.log")
    line = failure_message(failed)
    assert not failed["passed"] and json.loads(paths["check"].read_text())["message"] == line
    assert "Reproducibility: FAILED" in paths["check_html"].read_text()
    with pytest.raises(CheckFailed) as raised:
        gate(paths["check"], passed, tmp_path / "gate.log")
    assert str(raised.value) == f"gdbench verify: FAILED: {line}" and line.startswith(f"run {RUN_IDS[1]} (")
    assert "W first differs at epoch 7" in line and not passed.exists() and paths["check"].exists()

    for p in paths.values():
        p.unlink()
    (tmp_path / "r.json").write_text("{")
    with pytest.raises(JobInputError, match=r"^gdbench: input .*r\.json is damaged or unreadable"):
        reproduce(inputs, paths, RUN_IDS, ["cpu"], tmp_path / "reproduce.log")
    assert not any(p.exists() for p in paths.values())
