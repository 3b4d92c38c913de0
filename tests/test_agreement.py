"""The CPU-vs-CUDA agreement table, on hand-made tables whose differences are known: runs
relabelled as trained on a second device, with chosen perturbations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gdbench.agreement import COLUMNS, device_agreement

AXES = {
    "dataset": "tutorial",
    "engine": "batched",
    "optimizer": "sgd",
    "seed": 1,
    "epochs": 2,
    "init": "zeros",
    "batch_size": "full",
}


def summary_row(run_id: int, device: str, lr: float, diverged: bool, diverged_at: float) -> dict:
    return {"run_id": run_id, "device": device, "lr": lr, "dtype": "float32", **AXES, "diverged": diverged,
            "diverged_at": diverged_at}  # fmt: skip


def rows(run_id: int, W: list[float], b: list[float], cost: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"run_id": run_id, "epoch": range(len(W)), "W": W, "b": b, "cost": cost})


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run 0 (cpu) and its twin 10 (cuda): W differs by 1 at epoch 2 (4 vs 5), b never, cost
    by 1 at epoch 2 (2 vs 1). Run 1 (cpu) diverged at epoch 1, its twin 11 did not. Run 2 has
    no twin (another lr on cuda)."""
    summary = pd.DataFrame(
        [
            summary_row(0, "cpu", 0.1, False, math.nan),
            summary_row(1, "cpu", 0.5, True, 1),
            summary_row(2, "cpu", 0.2, False, math.nan),
            summary_row(10, "cuda", 0.1, False, math.nan),
            summary_row(11, "cuda", 0.5, False, math.nan),
            summary_row(12, "cuda", 0.3, False, math.nan),
        ]
    )
    summary["batch_size"] = summary["batch_size"].astype("category")  # as the stored tables have it
    traj = pd.concat(
        [
            rows(0, [1.0, 2.0, 4.0], [0.0, 0.5, 0.5], [8.0, 4.0, 2.0]),
            rows(10, [1.0, 2.0, 5.0], [0.0, 0.5, 0.5], [8.0, 4.0, 1.0]),
            rows(1, [1.0, 3.0], [1.0, 1.0], [8.0, 16.0]),
            rows(11, [1.0, 3.0, 2.0], [1.0, 1.5, 1.0], [8.0, 16.0, 4.0]),
            rows(2, [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
            rows(12, [9.0, 9.0, 9.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]),
        ],
        ignore_index=True,
    )
    return traj, summary


def test_agreement_gives_the_largest_differences_of_each_twin_pair() -> None:
    """If this fails, the table that says how far CUDA drifts from the CPU understates it
    (e.g. the smallest difference instead of the largest) or pairs the wrong runs."""
    traj, summary = tables()
    full = device_agreement(traj, summary)
    assert tuple(full.columns) == COLUMNS
    table = full.set_index("run_id_a")
    assert sorted(table.index) == [0, 1] and table.loc[0, "run_id_b"] == 10 and table.loc[1, "run_id_b"] == 11
    first = table.loc[0]
    assert first["epochs_compared"] == 3
    assert (first["max_abs_W"], first["max_rel_W"]) == (1.0, 1.0 / 5.0)
    assert (first["max_abs_b"], first["max_rel_b"]) == (0.0, 0.0)
    assert (first["max_abs_cost"], first["max_rel_cost"]) == (1.0, 1.0 / 2.0)
    assert first["verdict_agrees"] and math.isnan(first["diverged_at_diff"])
    second = table.loc[1]
    assert second["epochs_compared"] == 2  # the epochs both recorded
    assert (second["max_abs_W"], second["max_abs_b"], second["max_rel_b"]) == (0.0, 0.5, 0.5 / 1.5)
    assert not second["verdict_agrees"] and bool(second["diverged_a"]) and not bool(second["diverged_b"])


def test_one_device_gives_an_empty_table_with_the_columns() -> None:
    """A CPU-only grid has no pairs: an empty table (never an error), with the same columns."""
    traj, summary = tables()
    cpu = summary[summary["device"] == "cpu"]
    table = device_agreement(traj[traj["run_id"] < 10], cpu)
    assert table.empty and tuple(table.columns) == COLUMNS


def test_agreement_handles_float32_tables_like_the_stored_ones() -> None:
    """Stored W, b and cost are float32: differences are taken in float64, exactly."""
    traj, summary = tables()
    for col in ("W", "b", "cost"):
        traj[col] = traj[col].astype(np.float32)
    traj.loc[(traj["run_id"] == 10) & (traj["epoch"] == 1), "W"] = np.float32(2.0) + np.float32(2.0**-22)
    table = device_agreement(traj, summary).set_index("run_id_a")
    assert table.loc[0, "max_abs_W"] == 1.0  # epoch 2 still the largest
    traj.loc[(traj["run_id"] == 10) & (traj["epoch"] == 2), "W"] = np.float32(4.0)
    table = device_agreement(traj, summary).set_index("run_id_a")
    assert table.loc[0, "max_abs_W"] == 2.0**-22 and table.loc[0, "max_rel_W"] == 2.0**-22 / (2.0 + 2.0**-22)
