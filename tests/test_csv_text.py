"""The CSV tables are pandas' text, byte for byte, however they are built: :mod:`gdbench.csv_text`
formats a large table with pyarrow and must write exactly what ``to_csv(index=False)`` writes
(floats in repr's notation, True/False, empty fields for missing values, quoting as the csv
module quotes), or step aside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gdbench import io
from gdbench.csv_text import frame_csv


def _same(text: str | bytes | None, expected: str | bytes) -> None:
    """``text == expected``, a failure naming the first line that differs (pytest's diff of two
    large texts takes minutes)."""
    assert text is not None
    if text != expected:
        pairs = zip(text.splitlines(), expected.splitlines(), strict=False)
        line, (got, want) = next(((i, p) for i, p in enumerate(pairs) if p[0] != p[1]), (-1, ("", "")))
        pytest.fail(f"line {line}: {got!r} where pandas writes {want!r} (lengths {len(text)}, {len(expected)})")


def _edges() -> np.ndarray:
    """Values at and around every boundary of either notation (arrow's and repr's)."""
    bounds = [1e-6, 1e-5, 1e-4, 1.0, 1e10, 1e15, 1e16]
    near = [np.nextafter(b, to) for b in bounds for to in (0.0, np.inf)]
    special = [0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]
    whole = [1.0, 2000.0, -3.0, 123456789.0, 9999999999.0, 1e12, 2.0**53, 2.0**60]
    values = np.array(bounds + near + special + whole, dtype=np.float64)
    return np.concatenate([values, -values])


def _floats(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scaled = rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)
    from_float32 = rng.standard_normal(n).astype(np.float32).astype(np.float64)  # W and b are float32 runs'
    decimal = rng.integers(1, 10**6, n) / 10.0 ** rng.integers(0, 9, n)  # a config's lrs, 0.01 and the like
    return np.concatenate([scaled, from_float32, decimal, _edges()])


def test_floats_of_every_magnitude_are_written_as_pandas_writes_them() -> None:
    values = _floats(60_000, seed=1)
    table = pd.DataFrame({"v": values, "w": values[::-1].copy()})
    _same(frame_csv(table), table.to_csv(index=False))


def test_every_column_type_of_the_tables_is_written_as_pandas_writes_it() -> None:
    n = 3_000
    rng = np.random.default_rng(2)
    missing = rng.random(n) < 0.3
    table = pd.DataFrame(
        {
            "run_id": np.arange(n, dtype=np.int64),
            "seed": rng.integers(-5, 5, n).astype(np.int32),
            "epochs": pd.array(np.where(missing, None, rng.integers(0, 2000, n)), dtype="Int64"),
            "final_cost": np.where(missing, np.nan, rng.standard_normal(n)),
            "diverged": rng.random(n) < 0.5,
            "reached": pd.array(np.where(missing, None, rng.random(n) < 0.5), dtype="boolean"),
            "dataset": pd.Categorical(np.where(missing, None, rng.choice(["tutorial", "noisy"], n))),
            "batch_size": pd.Categorical(rng.choice(["full", "32"], n)),
            "sizes": pd.Categorical(rng.choice([8, 32], n)),
            "note": rng.choice(["plain", "with, comma", 'a "quote"', "two\nlines", ""], n).astype(object),
            'odd "name", here': rng.random(n),
        }
    )
    _same(frame_csv(table), table.to_csv(index=False))


@pytest.mark.parametrize(
    "table",
    [
        pd.DataFrame({"v": [1.5, 2.5]}),  # one column: the csv module quotes an empty field there
        pd.DataFrame({"a": [], "b": []}),
        pd.DataFrame({"a": [1.0, 2.0], "b": ["x\ry", "z"]}),
        pd.DataFrame({"a": [1.0, 2.0], "b": ["x", None]}),
        pd.DataFrame({"a": [1.0, 2.0], "b": pd.Series(["x", None], dtype=object)}),
        pd.DataFrame({"a": np.array([0.1, 0.2], dtype=np.float32), "b": [1, 2]}),
        pd.DataFrame({"a": [1.0, 2.0], "b": pd.to_datetime(["2026-01-01", "2026-01-02"])}),
        pd.DataFrame({"a": [1.0, 2.0], "b": pd.Categorical([0.5, 1.5])}),
    ],
    ids=[
        "one-column",
        "no-rows",
        "carriage-return",
        "missing-text",
        "missing-object",
        "float32",
        "datetime",
        "floats",
    ],
)
def test_a_table_it_cannot_write_exactly_is_left_to_pandas(table: pd.DataFrame, tmp_path: Path) -> None:
    assert frame_csv(table) is None
    if table.empty:
        return
    rows = io.FAST_CSV_CELLS // table.shape[1] + 1
    big = table.iloc[np.arange(rows) % len(table)].reset_index(drop=True)
    io.write_csv(big, tmp_path / "t.csv")
    _same((tmp_path / "t.csv").read_bytes(), big.to_csv(index=False).encode())


def test_write_csv_of_a_large_table_is_pandas_text_and_reads_back_equal(tmp_path: Path) -> None:
    n = io.FAST_CSV_CELLS
    rng = np.random.default_rng(3)
    table = pd.DataFrame({"run_id": np.arange(n), "lr": _floats(n // 3, seed=3)[:n], "diverged": rng.random(n) < 0.1})
    assert table.size >= io.FAST_CSV_CELLS
    path = tmp_path / "summary.csv"
    io.write_csv(table, path)
    _same(path.read_bytes(), table.to_csv(index=False).encode())
    back = pd.read_csv(path, float_precision="round_trip")
    pd.testing.assert_frame_equal(back, table)


def test_write_csv_builds_a_large_table_without_pandas_formatter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = pd.DataFrame({"run_id": np.arange(io.FAST_CSV_CELLS), "lr": np.full(io.FAST_CSV_CELLS, 0.01)})
    expected = table.to_csv(index=False).encode()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pandas' formatter was used for a large table")

    monkeypatch.setattr(pd.DataFrame, "to_csv", refuse)
    io.write_csv(table, tmp_path / "summary.csv")
    _same((tmp_path / "summary.csv").read_bytes(), expected)
