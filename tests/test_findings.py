"""The findings table, time to target and the performance profile, against tables worked out
by hand: a user reading the report's front page gets exactly these numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gdbench.findings import (
    FINDINGS_COLUMNS,
    PROFILE_COLUMNS,
    findings_table,
    performance_profile,
    predicted_epochs,
    solved_fraction,
    time_to_target,
)
from gdbench.front_page import front_page, run_lines
from gdbench.last_lines import end_of_run_message

NA = pd.NA
TOL = 1e-6

# (optimizer, lr, seed, diverged, converged_at, predicted_rate, predicted_diverged)
RUNS = [
    ("a", 0.1, 1, False, 100, 0.95, False),
    ("a", 0.1, 2, False, 110, 0.95, False),
    ("a", 0.2, 1, False, 50, 0.9, False),
    ("a", 0.2, 2, False, 60, 0.9, True),  # the theory's verdict disagrees once
    ("a", 0.4, 1, True, NA, 1.5, True),
    ("a", 0.4, 2, True, NA, 1.5, True),
    ("b", 0.1, 1, False, 40, np.nan, NA),
    ("b", 0.1, 2, False, NA, np.nan, NA),  # never converged
    ("b", 0.2, 1, False, 30, np.nan, NA),
    ("b", 0.2, 2, False, 30, np.nan, NA),
    ("b", 0.4, 1, True, NA, np.nan, NA),
    ("b", 0.4, 2, False, 20, np.nan, NA),
    ("c", 0.1, 1, False, NA, np.nan, NA),  # c never converges
    ("c", 0.1, 2, False, NA, np.nan, NA),
]
CRITICAL = {"a": 0.5, "b": np.nan, "c": np.nan}
FASTEST = {"a": 0.25, "b": np.nan, "c": np.nan}


def summary_table(runs=RUNS, dataset: str = "d") -> pd.DataFrame:
    rows = []
    for i, (opt, lr, seed, div, conv, rate, pdiv) in enumerate(runs):
        rows.append(
            {
                "run_id": i, "dataset": dataset, "optimizer": opt, "device": "cpu", "engine": "batched", "lr": lr,
                "seed": seed, "epochs": 2000, "init": "zeros", "batch_size": "full", "dtype": "float32",
                "diverged": div, "converged_at": conv, "predicted_rate": rate, "predicted_diverged": pdiv,
                "critical_lr": CRITICAL[opt], "fastest_lr": FASTEST[opt], "lr_ratio": lr / CRITICAL[opt],
            }
        )  # fmt: skip
    df = pd.DataFrame(rows)
    df["converged_at"] = pd.array(df["converged_at"].tolist(), dtype="Int64")
    df["predicted_diverged"] = pd.array(df["predicted_diverged"].tolist(), dtype="boolean")
    for col in ("dataset", "optimizer", "device", "engine", "init", "batch_size", "dtype"):
        df[col] = df[col].astype("category")
    return df


EDGE = pd.DataFrame(
    {
        "dataset": "d", "optimizer": ["a", "a", "b", "b"], "batch_size": "full", "init": "zeros",
        "dtype": "float32", "epochs": 2000, "seed": [1, 2, 1, 2], "edge_lo": [0.30, 0.32, 0.35, 0.36],
        "edge_hi": [0.31, 0.33, 0.37, 0.38], "critical_lr": [0.5, 0.5, np.nan, np.nan],
        "horizon_edge": [0.305, 0.325, np.nan, np.nan],
    }
)  # fmt: skip
THEORY = pd.DataFrame({"dataset": "d", "optimizer": ["a", "b", "c"], "fastest_rate": [0.5, np.nan, np.nan]})


def by_optimizer(df: pd.DataFrame) -> dict[str, dict]:
    return {str(row["optimizer"]): row.to_dict() for _, row in df.iterrows()}


def test_findings_match_the_hand_computed_table() -> None:
    f = findings_table(summary_table(), EDGE, THEORY, TOL)
    assert list(f.columns) == list(FINDINGS_COLUMNS)
    rows = by_optimizer(f)
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert (a["runs"], a["seeds"], a["converged"], a["diverged"]) == (6, 2, 4, 2)
    assert (b["runs"], b["seeds"], b["converged"], b["diverged"]) == (6, 2, 4, 1)
    assert (c["runs"], c["converged"], c["diverged"]) == (2, 0, 0)
    # a: lr 0.2 has the smallest median (55) among lrs where both seeds converged
    assert (a["best_lr"], a["best_epochs"], a["best_epochs_min"], a["best_epochs_max"]) == (0.2, 55, 50, 60)
    # b: 0.1 (a seed never converged) and 0.4 (a seed diverged) do not count, though faster
    assert (b["best_lr"], b["best_epochs"], b["best_epochs_min"], b["best_epochs_max"]) == (0.2, 30, 30, 30)
    assert math.isnan(c["best_lr"]) and math.isnan(c["best_epochs"])
    assert a["best_predicted_epochs"] == math.ceil(math.log(TOL) / math.log(0.9)) == 132
    assert math.isnan(b["best_predicted_epochs"])
    assert (a["theory_lr"], a["theory_epochs"]) == (0.25, math.ceil(math.log(TOL) / math.log(0.5)))
    assert math.isnan(b["theory_lr"]) and math.isnan(b["theory_epochs"])
    assert (a["converged_lr_max"], a["diverged_lr_min"]) == (0.2, 0.4)
    assert (b["converged_lr_max"], b["diverged_lr_min"]) == (0.4, 0.4)
    assert math.isnan(c["converged_lr_max"]) and math.isnan(c["diverged_lr_min"])
    assert a["edge_lo"] == pytest.approx(0.31) and a["edge_hi"] == pytest.approx(0.32)
    assert a["edge_ratio"] == pytest.approx(0.32 / 0.5) and a["horizon_ratio"] == pytest.approx(0.315 / 0.5)
    assert b["edge_hi"] == pytest.approx(0.375) and math.isnan(b["edge_ratio"])
    assert math.isnan(c["edge_hi"])
    assert (a["theory_checked"], a["theory_agree"]) == (6, 5)
    assert (b["theory_checked"], b["theory_agree"]) == (0, 0)
    assert (a["rank"], b["rank"]) == (2, 1) and pd.isna(c["rank"])


def test_findings_read_back_from_csv_are_the_same() -> None:
    """The held-out check recomputes from summary.csv and edge.csv: CSV-typed columns
    (converged_at as floats, predicted_diverged as objects) give the same table."""
    s = summary_table()
    from_csv = pd.read_csv(pd.io.common.StringIO(s.to_csv(index=False)))
    edge_csv = pd.read_csv(pd.io.common.StringIO(EDGE.to_csv(index=False)))
    a = findings_table(s, EDGE, THEORY, TOL)
    b = findings_table(from_csv, edge_csv, THEORY, TOL)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_findings_rank_optimizers_per_dataset_and_without_an_edge_table() -> None:
    s = pd.concat([summary_table(dataset="d"), summary_table(dataset="e")], ignore_index=True)
    s["run_id"] = range(len(s))
    f = findings_table(s, None, None, TOL)
    assert f.groupby("dataset")["rank"].apply(lambda r: sorted(r.dropna().tolist())).to_dict() == {
        "d": [1, 2],
        "e": [1, 2],
    }
    assert f["edge_hi"].isna().all() and f["theory_epochs"].isna().all()


def test_findings_of_an_empty_summary_is_an_empty_table() -> None:
    f = findings_table(summary_table()[:0], EDGE, THEORY, TOL)
    assert f.empty and list(f.columns) == list(FINDINGS_COLUMNS)


def test_time_to_target_counts_and_epochs_per_lr() -> None:
    t = time_to_target(summary_table(), TOL)
    row = t[(t["optimizer"] == "b") & (t["lr"] == 0.4)].iloc[0]
    assert (row["runs"], row["converged"], row["diverged"]) == (2, 1, 1)
    assert (row["epochs_median"], row["epochs_min"], row["epochs_max"]) == (20, 20, 20)
    row = t[(t["optimizer"] == "a") & (t["lr"] == 0.1)].iloc[0]
    assert row["epochs_median"] == 105 and row["predicted_epochs"] == math.ceil(math.log(TOL) / math.log(0.95))
    assert t[(t["optimizer"] == "a") & (t["lr"] == 0.4)]["predicted_epochs"].isna().all()  # rate > 1


def test_predicted_epochs_formula() -> None:
    out = predicted_epochs(np.array([0.5, 0.9, 1.0, 1.2, np.nan, 0.0]), 1e-6)
    assert out[:2].tolist() == [20, 132]
    assert np.isnan(out[2:]).all()


def test_performance_profile_of_a_hand_worked_example() -> None:
    """Problems (d, seed 1), (d, seed 2). Seed 1: a needs 50 (lr 0.2), b 30 (lr 0.2): ratios
    5/3 and 1. Seed 2: a 60 (lr 0.2), b 20 (lr 0.4): 3 and 1. c never converges: inf."""
    p = performance_profile(summary_table())
    assert list(p.columns) == list(PROFILE_COLUMNS)
    got = {(r.seed, r.optimizer): (r.best_lr, r.epochs_to_target, r.ratio) for r in p.itertuples()}
    assert got[(1, "a")] == (0.2, 50, pytest.approx(5 / 3))
    assert got[(1, "b")] == (0.2, 30, 1.0)
    assert got[(2, "a")] == (0.2, 60, 3.0)
    assert got[(2, "b")] == (0.4, 20, 1.0)
    assert math.isnan(got[(1, "c")][0]) and got[(1, "c")][2] == math.inf
    curve = solved_fraction(p, np.array([1.0, 2.0, 3.0]))
    frac = {(r.optimizer, r.tau): r.fraction for r in curve.itertuples()}
    assert frac[("a", 1.0)] == 0 and frac[("a", 2.0)] == 0.5 and frac[("a", 3.0)] == 1.0
    assert frac[("b", 1.0)] == 1.0 and frac[("c", 3.0)] == 0.0


def test_performance_profile_where_no_optimizer_converged_is_nan() -> None:
    runs = [("a", 0.1, 1, True, NA, 2.0, True), ("b", 0.1, 1, False, NA, np.nan, NA)]
    p = performance_profile(summary_table(runs))
    assert p["ratio"].isna().all()
    assert (solved_fraction(p, np.array([1.0, 10.0]))["fraction"] == 0).all()


def test_front_page_and_terminal_lines_state_the_findings() -> None:
    s = summary_table()
    f = findings_table(s, EDGE, THEORY, TOL)
    page = front_page(f, s, "PASSED: 4 of 4", None)
    assert "14 runs on cpu: 8 converged, 3 diverged, 3 neither" in page
    assert "**b** (lr 0.2 (30 epochs))" in page  # the fewest epochs
    assert "fastest at lr 0.2 (55 epochs, 50–60 over seeds)" in page
    assert "the theory's fastest lr 0.25, 20 epochs" in page
    assert "located edge 0.32 = 0.64 × critical lr 0.5" in page
    assert "**c**: no lr converged on every seed; no run diverged" in page
    assert '"d", "a", "0.2", "55", "0.25", "20", "0.2", "0.4", "0.64", "5 / 6"' in page
    assert "**Reproducibility:** PASSED: 4 of 4." in page
    lines = run_lines(f, s)
    assert lines[0].startswith("gdbench: 14 runs on cpu: 8 converged, 3 diverged")
    assert "agrees with 5 of the 6 runs it covers" in lines[0]
    assert lines[1] == (
        "gdbench: best lr on dataset d: a 0.2 (55 epochs, 50–60 over seeds), b 0.2 (30 epochs), "
        "c no lr converged on every seed; fewest epochs: b"
    )


def test_end_of_run_message_skips_stale_findings(tmp_path) -> None:
    (tmp_path / "results" / "tables").mkdir(parents=True)
    (tmp_path / "results" / "findings.txt").write_text("gdbench: 3 runs\n")
    msg = end_of_run_message("gdbench: reproducibility PASSED", tmp_path)
    assert msg.splitlines() == [
        "gdbench: 3 runs",
        "gdbench: reproducibility PASSED",
        "gdbench: build the report with `snakemake --report results/report.html`",
    ]
    summary = tmp_path / "results" / "tables" / "summary.parquet"
    summary.write_bytes(b"")
    import os

    later = (tmp_path / "results" / "findings.txt").stat().st_mtime + 10
    os.utime(summary, (later, later))
    assert "3 runs" not in end_of_run_message("v", tmp_path)
