"""Interactive tables for the report: every row, missing values as empty cells, numeric
columns sorting by value with empty cells last, and nothing fetched from a network."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from gdbench.html_tables import _cells, interactive_table, shown_rows, write_interactive_table


def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": pd.Categorical(["tutorial", "noisy", "tutorial"]),
            "lr": [0.17, 0.001, 0.18029485097507342],
            "converged_at": pd.array([100, pd.NA, 12], dtype="Int64"),
            "predicted_diverged": pd.array([False, pd.NA, True], dtype="boolean"),
            "rate": [0.92, np.nan, 1.5e-7],
        }
    )


def test_cells_show_six_digits_and_empty_for_missing() -> None:
    shown, numeric = _cells(table())
    assert numeric == [1, 2, 4]
    assert shown["lr"].tolist() == ["0.17", "0.001", "0.180295"]
    assert shown["converged_at"].tolist() == ["100", "", "12"]
    assert shown["rate"].tolist() == ["0.92", "", "1.5e-07"]
    assert shown["predicted_diverged"].tolist() == [False, "", True]
    assert shown["dataset"].tolist() == ["tutorial", "noisy", "tutorial"]


def test_page_is_self_contained_and_sorts_numbers_with_empty_cells_last(tmp_path) -> None:
    page = interactive_table(table(), "Summary", "a note")
    assert "<h3>Summary</h3>" in page and "a note" in page
    # the DataTables bundle is embedded (base64), never loaded from a CDN
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=[\"']?https?:", page)
    assert "unpkg" not in page and len(page) > 500_000
    assert "Infinity" in page  # empty numeric cells sort as infinity: after every number
    path = tmp_path / "t.html"
    write_interactive_table(table(), path, "Summary")
    assert path.read_text() == interactive_table(table(), "Summary")


def test_a_big_table_shows_the_runs_of_its_smallest_seeds_and_says_so() -> None:
    df = pd.DataFrame({"lr": np.repeat([0.1, 0.2, 0.3], 4), "seed": np.tile([3, 1, 2, 7], 3)})
    rows, which = shown_rows(df, 9)
    assert sorted(set(rows["seed"])) == [1, 2, 3] and len(rows) == 9
    rest = "(of 12); every row is in the table's CSV and Parquet files."
    assert which == f"Shown: the 9 rows of the 3 smallest seeds (1 to 3) {rest}"
    whole, none = shown_rows(df, 12)
    assert whole is df and none == ""
    one, which = shown_rows(df, 3)
    assert set(one["seed"]) == {1} and "of seed 1 " in which


def test_a_big_table_without_seeds_shows_rows_spread_evenly_and_the_page_names_them() -> None:
    df = pd.DataFrame({"x": np.arange(10.0)})
    rows, which = shown_rows(df, 4)
    assert rows["x"].tolist() == [0.0, 3.0, 6.0, 9.0] and which.startswith("Shown: 4 rows spread evenly (of 10)")
    page = interactive_table(df, "T", "a note", max_rows=4)
    assert "a note Shown: 4 rows spread evenly" in page
    assert '[[\\"0\\"], [\\"3\\"], [\\"6\\"], [\\"9\\"]]' in page  # the cells shown
