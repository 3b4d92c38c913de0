"""Datasets: every kind builds, and every bad input gets one clear error naming the dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gdbench.data import DatasetError, load_dataset, parse_dataset


def test_inline_csv_and_synthetic(tmp_path: Path) -> None:
    """The three kinds a config can name build the points users expect."""
    assert load_dataset("t", {"x": [1, 2, 3], "y": [2, 4, 6]}).n == 3
    (tmp_path / "p.csv").write_text("hours,score\n1,2\n2,4.5\n")
    ds = load_dataset("c", {"csv": "p.csv", "x": "hours", "y": "score"}, base_dir=tmp_path)
    np.testing.assert_array_equal(ds.y, [2.0, 4.5])
    syn = {"synthetic": {"n": 5, "slope": 2.0, "intercept": 1.0, "noise": 0.0, "x_min": 0.0, "x_max": 4.0}}
    s = load_dataset("s", syn, seed=1)
    np.testing.assert_allclose(s.x, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(s.y, [1, 3, 5, 7, 9])


def test_synthetic_noise_follows_the_seed() -> None:
    """Same seed, same points (reproducible); another seed, other noise."""
    raw = {"synthetic": {"n": 20, "noise": 0.5}}
    a, b, c = (load_dataset("s", raw, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, c.y)


BAD = [
    ("lengths", {"x": [1, 2, 3], "y": [1, 2]}, "x has 3 values but y has 2"),
    ("empty", {"x": [], "y": []}, "must not be empty"),
    ("non-numeric", {"x": [1, "two", 3], "y": [1, 2, 3]}, "x[1] = 'two' is not a number"),
    ("not-a-list", {"x": "1,2,3", "y": [1, 2, 3]}, "x must be a list"),
    ("nan", {"x": [1, float("nan")], "y": [1, 2]}, "not finite"),
    ("n-zero", {"synthetic": {"n": 0}}, "n must be an integer >= 1"),
    ("n-missing", {"synthetic": {"slope": 1.0}}, "synthetic needs n"),
    ("synthetic-typo", {"synthetic": {"n": 3, "slop": 1.0}}, "unknown synthetic key"),
    ("negative-noise", {"synthetic": {"n": 3, "noise": -1.0}}, "noise must be >= 0"),
    ("unknown-kind", {"points": [1, 2]}, "give inline points"),
    ("not-a-mapping", [1, 2, 3], "expected a mapping"),
    ("csv-no-columns", {"csv": "p.csv"}, "need 'x: COLUMN'"),
]


@pytest.mark.parametrize(("raw", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_dataset_raises_clear_error(raw, message: str) -> None:
    """A user's typo in a dataset must say which dataset and what is wrong, in one line."""
    with pytest.raises(DatasetError) as err:
        load_dataset("mine", raw)
    text = str(err.value)
    assert "dataset 'mine'" in text and message in text and "\n" not in text


def test_missing_csv_file(tmp_path: Path) -> None:
    """A missing CSV names the file."""
    with pytest.raises(DatasetError, match=r"dataset 'mine': CSV file .*nope.csv' not found"):
        load_dataset("mine", {"csv": "nope.csv", "x": "a", "y": "b"}, base_dir=tmp_path)


def test_missing_csv_column(tmp_path: Path) -> None:
    """A wrong column name lists the columns that exist."""
    (tmp_path / "p.csv").write_text("hours,score\n1,2\n")
    with pytest.raises(DatasetError, match=r"column 'hrs' not in .*columns: hours, score"):
        load_dataset("mine", {"csv": "p.csv", "x": "hrs", "y": "score"}, base_dir=tmp_path)


def test_non_numeric_csv_cell(tmp_path: Path) -> None:
    """A bad cell names its line and column."""
    (tmp_path / "p.csv").write_text("hours,score\n1,2\n2,lots\n")
    with pytest.raises(DatasetError, match=r"line 3, column 'score': 'lots' is not a number"):
        load_dataset("mine", {"csv": "p.csv", "x": "hours", "y": "score"}, base_dir=tmp_path)


def test_empty_csv(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("hours,score\n")
    with pytest.raises(DatasetError, match="has no data rows"):
        load_dataset("mine", {"csv": "p.csv", "x": "hours", "y": "score"}, base_dir=tmp_path)


@pytest.mark.parametrize("name", ["a; rm -rf /", "$(touch x)", "1abc", "", "a b"])
def test_unsafe_dataset_names_are_refused(name: str) -> None:
    """Dataset names reach file names and wildcards: shell metacharacters are refused."""
    with pytest.raises(DatasetError, match="name must start with a letter"):
        parse_dataset(name, {"x": [1], "y": [1]})


def test_csv_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    """Spreadsheet programs save CSV with a UTF-8 byte order mark; the first column must still
    be found by its name."""
    (tmp_path / "p.csv").write_bytes("\ufeffhours,score\r\n1,2\r\n2,4.5\r\n".encode())
    ds = load_dataset("c", {"csv": "p.csv", "x": "hours", "y": "score"}, base_dir=tmp_path)
    assert ds.x.tolist() == [1.0, 2.0] and ds.y.tolist() == [2.0, 4.5]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("1,2\n2,\n", r"line 3, column 'score': '' is not a number"),
        ("1,2\n,4\n", r"line 3, column 'hours': '' is not a number"),
        ("1,2\n2,NaN\n", r"line 3, column 'score': 'NaN' is not finite"),
        ("1,2\n2,nan\n", r"line 3, column 'score': 'nan' is not finite"),
        ("1,inf\n", r"line 2, column 'score': 'inf' is not finite"),
    ],
    ids=["empty-y", "empty-x", "NaN", "nan", "inf"],
)
def test_csv_empty_cells_and_nan_are_refused_naming_the_line(tmp_path: Path, rows: str, message: str) -> None:
    """An empty cell or a NaN would train to NaN silently: refused, naming line and column."""
    (tmp_path / "p.csv").write_text("hours,score\n" + rows)
    with pytest.raises(DatasetError, match=message):
        load_dataset("mine", {"csv": "p.csv", "x": "hours", "y": "score"}, base_dir=tmp_path)


@pytest.mark.slow
def test_csv_dataset_trains_end_to_end(tmp_path: Path) -> None:
    """`gdbench train` on a CSV dataset (with a BOM and an extra column) learns its line."""
    import subprocess
    import sys

    import pandas as pd

    points = "".join(f"{x},{2 * x + 1},note\n" for x in (0.0, 0.5, 1.0, 1.5, 2.0))
    (tmp_path / "pts.csv").write_bytes(("\ufeffhours,score,comment\n" + points).encode())
    (tmp_path / "grid.yaml").write_text(
        "datasets: {pts: {csv: pts.csv, x: hours, y: score}}\n"
        "grid: {dataset: [pts], lr: [0.1], seed: [1], epochs: [3000], device: [cpu]}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "gdbench.cli", "train", "grid.yaml", "-o", "t.parquet", "--summary", "s.csv"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(tmp_path / "s.csv")
    assert summary["n_points"].tolist() == [5] and not summary["diverged"].any()
    assert abs(summary["final_W"].iloc[0] - 2.0) < 1e-3 and abs(summary["final_b"].iloc[0] - 1.0) < 1e-3
