"""Training in chunks and writing per chunk: the same tables as training all runs at once,
bit for bit, with a job holding one chunk at a time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from gdbench import io
from gdbench.config import check_config
from gdbench.experiment import Experiment
from gdbench.pipeline import train_chunks, train_runs
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


def test_chunks_train_the_same_numbers_as_one_batch(tmp_path: Path) -> None:
    """A job that trains and writes 3 runs at a time gives the trajectory and summary tables
    of training its 16 runs together (train_seconds aside), so runs_per_chunk changes no result."""
    experiment = Experiment.from_checked(check_config(CONFIG), ["cpu"])
    runs = experiment.runs
    ids = list(range(100, 100 + len(runs)))
    _, whole_traj, whole_summary = train_runs(experiment, runs, ids)
    chunks = list(train_chunks(experiment, runs, ids))
    assert [len(c[0]) for c in chunks] == [3, 3, 3, 3, 3, 1]
    assert [i for c in chunks for i in c[0]] == ids
    path = tmp_path / "t.parquet"
    with io.parquet_appender(path) as out:
        for _, _, traj, _ in chunks:
            out.append(traj)
    assert pq.ParquetFile(path).num_row_groups == len(chunks)
    pd.testing.assert_frame_equal(pd.read_parquet(path), whole_traj)
    summary = concat_frames([c[3] for c in chunks]).drop(columns="train_seconds")
    pd.testing.assert_frame_equal(summary, whole_summary.drop(columns="train_seconds"))


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
