"""Training in chunks and writing per chunk: the same tables as training all runs at once,
bit for bit, with a job holding one chunk at a time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from gdbench import engines, io
from gdbench.config import check_config
from gdbench.experiment import Experiment
from gdbench.pipeline import logged_runs, train_chunks, train_runs, training_log
from gdbench.tables import concat_frames, concat_parquet

CONFIG = {
    "grid": {
        "dataset": ["tutorial", "noisy"],
        "optimizer": ["sgd", "heavy_ball"],
        "lr": [0.01, 0.19],
        "seed": [1, 2],
        "epochs": [50],
        "device": ["cpu"],
    },
    "sharding": {"runs_per_chunk": 3},
}


@pytest.mark.parametrize(
    ("per_chunk", "sizes", "trained"),
    [
        # 12 distinct computations (the tutorial's 2 seeds are one) do not fit in a chunk: each
        # chunk trains its own representatives (a pair split by a chunk boundary trains twice)
        (3, [3, 3, 3, 3, 3, 1], [2, 2, 2, 3, 3, 1]),
        (12, [12, 4], [12]),  # they fit: trained once for the job (one call), shared out chunk by chunk
    ],
)
def test_chunks_train_the_same_numbers_as_one_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_chunk: int, sizes: list[int], trained: list[int]
) -> None:
    """A job that trains and writes a few runs at a time gives the trajectory and summary tables
    of training its 16 runs together (batch_seconds_per_run aside), so runs_per_chunk changes no
    result; runs that are the same computation train once per job when all distinct ones fit in
    a chunk."""
    experiment = Experiment.from_checked(check_config({**CONFIG, "sharding": {"runs_per_chunk": per_chunk}}), ["cpu"])
    runs = experiment.runs
    ids = list(range(100, 100 + len(runs)))
    _, whole_traj, whole_summary = train_runs(experiment, runs, ids)
    counted: list[int] = []
    real_train = engines.train
    monkeypatch.setattr(engines, "train", lambda rs, *a, **k: counted.append(len(rs)) or real_train(rs, *a, **k))
    chunks = list(train_chunks(experiment, runs, ids))
    assert counted == trained  # the runs each engine call trained
    assert [len(c[0]) for c in chunks] == sizes
    assert [i for c in chunks for i in c[0]] == ids
    path = tmp_path / "t.parquet"
    with io.parquet_appender(path) as out:
        for _, _, pieces, _ in chunks:
            for piece in pieces:
                out.append(piece)
    assert pq.ParquetFile(path).num_row_groups == len(chunks)
    pd.testing.assert_frame_equal(pd.read_parquet(path), whole_traj)
    summary = concat_frames([c[3] for c in chunks]).drop(columns="batch_seconds_per_run")
    pd.testing.assert_frame_equal(summary, whole_summary.drop(columns="batch_seconds_per_run"))


def test_joining_shards_streams_row_groups_and_copies_a_single_shard(tmp_path: Path) -> None:
    """The joined table is the shards' rows in order, its categories unified (one shard per
    dataset); a single shard comes out unchanged."""
    experiment = Experiment.from_checked(check_config(CONFIG), ["cpu"])
    _, traj, _ = train_runs(experiment, experiment.runs)
    half = traj["dataset"] == "tutorial"
    paths = []
    for i, part in enumerate((traj[half], traj[~half])):
        paths.append(tmp_path / f"s{i}.parquet")
        with io.parquet_appender(paths[-1]) as out:
            out.append(part.reset_index(drop=True))
    assert concat_parquet([str(p) for p in paths], str(tmp_path / "all.parquet")) == len(traj)
    joined = pd.read_parquet(tmp_path / "all.parquet")
    pd.testing.assert_frame_equal(joined, traj, check_categorical=False)
    assert concat_parquet([str(paths[0])], str(tmp_path / "one.parquet")) == int(half.sum())
    assert (tmp_path / "one.parquet").read_bytes() == paths[0].read_bytes()


def test_logged_runs_spreads_the_full_logs_over_a_job_with_its_first_and_last() -> None:
    assert logged_runs(5, 100) == frozenset(range(5))
    assert logged_runs(1000, 0) == frozenset()
    shown = logged_runs(1000, 5)
    assert shown == frozenset({0, 250, 500, 749, 999}) and len(logged_runs(1000, 100)) == 100


def test_a_run_outside_the_logged_ones_gets_one_line_saying_how_it_ended() -> None:
    """Runs in ``detailed`` print their header, lesson lines every 25 epochs and verdict; the
    others one line: the header and the same verdict."""
    experiment = Experiment.from_checked(check_config(CONFIG), ["cpu"])
    runs = experiment.runs[:3]
    batch, _, _ = train_runs(experiment, runs, [7, 8, 9])
    full = list(training_log(batch, 25, [7, 8, 9]))
    short = list(training_log(batch, 25, [7, 8, 9], detailed={1}))
    assert len(full) == 3 * (2 + 3)  # header, epochs 0, 25, 50, verdict
    assert short[1:6] == full[5:10]  # run 8 in full
    for i, line in ((0, short[0]), (2, short[6])):
        header, verdict = full[5 * i], full[5 * i + 4]
        assert line == f"{header}: {verdict.split(': ', 1)[1]}"
    assert len(short) == 7
