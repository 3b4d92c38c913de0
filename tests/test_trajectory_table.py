"""The trajectory table built from whole arrays (Arrow, no pandas) and written chunk by chunk,
in the foreground or by a worker thread: the same frame, schema and file contents as the
pandas construction it replaced, row for row and bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from gdbench import io, tables
from gdbench.config import check_config
from gdbench.engines import train
from gdbench.experiment import Experiment
from gdbench.trajectory import TrajectoryBatch


def reference(batch: TrajectoryBatch, run_ids) -> pd.DataFrame:
    """The table as a pandas frame, index by index (the construction the Arrow one replaced)."""
    runs = tables.run_table(batch.runs, run_ids)
    ri, ti = np.nonzero(batch.recorded_mask())
    out = {col: runs[col].to_numpy()[ri] for col in runs.columns if col not in tables._CATEGORICAL}
    for col in tables._CATEGORICAL:
        cat = runs[col].cat
        out[col] = pd.Categorical.from_codes(cat.codes.to_numpy()[ri], categories=cat.categories)
    out["epoch"] = batch.epochs[ti].astype(np.int32)
    for col in ("W", "b", "cost"):
        out[col] = getattr(batch, col)[ri, ti]
    return pd.DataFrame(out, columns=list(tables.TRAJECTORY_COLUMNS))


def trained(dtype: str = "float32"):
    config = check_config(
        {
            "datasets": {
                "tutorial": {"x": [1, 2, 3], "y": [2, 4, 6]},
                "noisy": {"synthetic": {"n": 8, "slope": 2.0, "intercept": 0.5, "noise": 0.5}},
            },
            "optimizers": {"sgd": {"sgd": {}}, "adam": {"adam": {}}},
            "grid": {
                "dataset": ["tutorial", "noisy"],
                "optimizer": ["sgd", "adam"],
                "lr": [0.01, 0.19, 3.0],  # converging, slowly and quickly diverging (runs stop early)
                "seed": [1, 2],
                "epochs": [40, 25],  # runs of other lengths on one schedule
                "device": ["cpu"],
            },
            "training": {"record_every": 3, "dtype": dtype},
            "sharding": {"runs_per_chunk": 7},
        }
    )
    experiment = Experiment.from_checked(config, ["cpu"])
    return experiment, train(list(experiment.runs), experiment.data_source(), experiment.train_options(None))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_arrow_table_is_the_pandas_one(tmp_path: Path, dtype: str) -> None:
    """Same frame (values, dtypes, category order) and the same file when written: a reader
    of trajectories.parquet sees no change of construction."""
    _, batch = trained(dtype)
    ids = list(range(50, 50 + len(batch)))
    assert batch.verdicts.diverged.any() and (batch.verdicts.last_epoch < 40).any()
    ref, table = reference(batch, ids), tables.trajectory_table(batch, ids)
    pd.testing.assert_frame_equal(table.to_pandas(), ref, check_exact=True)
    pd.testing.assert_frame_equal(tables.trajectories(batch, ids), ref, check_exact=True)
    with io.parquet_appender(tmp_path / "ref.parquet") as out:
        out.append(ref)
    with io.parquet_appender(tmp_path / "arrow.parquet") as out:
        out.append(table)
    a, b = pq.ParquetFile(tmp_path / "ref.parquet"), pq.ParquetFile(tmp_path / "arrow.parquet")
    assert a.schema_arrow.equals(b.schema_arrow, check_metadata=True)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "arrow.parquet"), ref, check_exact=True)


@pytest.mark.parametrize("chunk", [1, 5, 7, 1000])
def test_chunks_written_in_the_background_make_the_file_of_one_write(tmp_path: Path, chunk: int) -> None:
    """Chunk boundaries anywhere (one run, a chunk per dataset, one chunk for all) and a
    worker thread writing while the next chunk is built: the file reads back as the whole
    table, with one row group per chunk, and the row count is the table's."""
    _, batch = trained()
    ids = np.arange(len(batch))
    whole = tables.trajectories(batch, ids)
    for background in (False, True):
        path = tmp_path / f"t{int(background)}.parquet"
        with io.parquet_appender(path, background=background) as out:
            for start in range(0, len(batch), chunk):
                rows = np.arange(start, min(start + chunk, len(batch)))
                out.append(tables.trajectory_table(batch.take(rows), ids[rows]))
        assert out.rows == len(whole)
        assert pq.ParquetFile(path).num_row_groups == -(-len(batch) // chunk)
        pd.testing.assert_frame_equal(pd.read_parquet(path), whole, check_exact=True, check_categorical=False)
        got = pd.read_parquet(path)
        for col in tables._CATEGORICAL:  # categories in order of first appearance over the chunks
            assert list(got[col].cat.categories) == list(dict.fromkeys(whole[col].astype(str)))


@pytest.mark.parametrize("max_rows", [1, 30, 100, 10**9])
def test_pieces_are_the_table_cut_at_run_boundaries(tmp_path: Path, max_rows: int) -> None:
    """A chunk's table built in pieces (fresh memory is reused piece by piece) is the whole
    table: the same rows in order when written, each piece whole runs, at most ``max_rows`` rows
    unless a single run is longer, as few pieces as that allows."""
    _, batch = trained()
    ids = list(range(50, 50 + len(batch)))
    counts = batch.recorded_mask().sum(axis=1)
    pieces = list(tables.trajectory_pieces(batch, ids, max_rows))
    assert all(p.num_rows <= max_rows or len(set(p.column("run_id").to_pylist())) == 1 for p in pieces)
    starts = [p.column("run_id")[0].as_py() for p in pieces]
    for a, b in zip(
        starts, [*starts[1:], 50 + len(batch)], strict=True
    ):  # a piece ends where the next run would overflow
        assert b == 50 + len(batch) or counts[a - 50 : b - 50 + 1].sum() > max_rows
    with io.parquet_appender(tmp_path / "t.parquet") as out:
        for piece in pieces:
            out.append(piece)
    got = pd.read_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(got, reference(batch, ids), check_exact=True, check_categorical=False)
    assert (len(pieces) == 1) == (max_rows >= counts.sum())


def test_a_failed_background_write_fails_the_file(tmp_path: Path) -> None:
    """A chunk whose write fails in the worker thread (a full disk) raises at the next append
    or at close, and leaves no file that looks complete."""
    _, batch = trained()
    table = tables.trajectory_table(batch)
    path = tmp_path / "t.parquet"

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"), io.parquet_appender(path, background=True) as out:
        out.append(table)
        out._writer.write_table = full_disk
        out.append(table)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_each_run_records_its_own_schedule_and_last_epoch() -> None:
    """Runs of 10 and 13 epochs at record_every 5 share the schedule 0, 5, 10, 13: each run's
    own entries are every 5th epoch and its own last one (13 is not the 10-epoch run's, 10 is
    the 13-epoch run's as a multiple of 5), and the table holds exactly those rows."""
    config = check_config(
        {
            "datasets": {"d": {"x": [1, 2, 3], "y": [2, 4, 6]}},
            "grid": {"dataset": ["d"], "lr": [0.01], "seed": [1], "epochs": [10, 13], "device": ["cpu"]},
            "training": {"record_every": 5},
        }
    )
    experiment = Experiment.from_checked(config, ["cpu"])
    batch = train(list(experiment.runs), experiment.data_source(), experiment.train_options(None))
    assert batch.epochs.tolist() == [0, 5, 10, 13]
    by_epochs = {run.epochs: row for run, row in zip(batch.runs, batch.recorded_mask(), strict=True)}
    assert by_epochs[10].tolist() == [True, True, True, False]
    assert by_epochs[13].tolist() == [True, True, True, True]
    table = tables.trajectories(batch, [0, 1])
    assert sorted(table.groupby("epochs")["epoch"].apply(list).to_dict().items()) == [
        (10, [0, 5, 10]),
        (13, [0, 5, 10, 13]),
    ]


def test_repeated_columns_are_np_repeat_bit_for_bit() -> None:
    """A column whose runs share one value is filled from a cached array, others repeated:
    both give ``np.repeat``'s bits (-0.0 is not 0.0), at every length, and the cached arrays
    cannot be written to."""
    counts = np.array([3, 0, 5])
    cases = [
        np.array([2000, 2000, 2000], dtype=np.int32),
        np.array([0.01, 0.01, 0.01]),
        np.array([0.0, -0.0, 0.0]),
        np.array([-0.0, -0.0, -0.0]),
        np.array([1, 2, 1], dtype=np.int32),
    ]
    assert counts.sum() * 300_000 > tables.PIECE_ROWS
    for values in cases:
        for scale in (1, 300_000):  # shorter than a cached array (PIECE_ROWS), then longer
            got = tables._repeated(values, counts * scale)
            want = np.repeat(values, counts * scale)
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    filled = tables._repeated(cases[0], counts)
    assert not filled.flags.writeable
    with pytest.raises(ValueError):
        filled[0] = 1
