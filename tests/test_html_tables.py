"""Interactive tables for the report: every row, missing values as empty cells, numeric
columns sorting by value with empty cells last, and nothing fetched from a network."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from gdbench.html_tables import _cells, interactive_table, write_interactive_table


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
