"""Agreement between devices: the same run trained on CPU and on CUDA, compared.

A run's twin on another device has every axis equal except ``device``. For each pair the
table gives the largest absolute and relative differences of W, b and cost over the epochs
both recorded, and whether their verdicts agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gdbench.tables import AXES

PAIR_KEYS = [a for a in AXES if a != "device"]
COLUMNS = (
    *PAIR_KEYS,
    "device_a",
    "device_b",
    "run_id_a",
    "run_id_b",
    "epochs_compared",
    *(f"max_{kind}_{v}" for v in ("W", "b", "cost") for kind in ("abs", "rel")),
    "diverged_a",
    "diverged_b",
    "verdict_agrees",
    "diverged_at_diff",
)


def pairs(summary: pd.DataFrame, reference: str = "cpu") -> pd.DataFrame:
    """Run id pairs (reference device, other device) with equal axes but the device."""
    s = summary.copy()
    for col in [*PAIR_KEYS, "device"]:
        s[col] = s[col].astype(str) if isinstance(s[col].dtype, pd.CategoricalDtype) else s[col]
    ref = s[s["device"] == reference]
    other = s[s["device"] != reference]
    cols = [*PAIR_KEYS, "device", "run_id", "diverged", "diverged_at"]
    return ref[cols].merge(other[cols], on=PAIR_KEYS, suffixes=("_a", "_b"))


def device_agreement(trajectories: pd.DataFrame, summary: pd.DataFrame, reference: str = "cpu") -> pd.DataFrame:
    """One row per pair of twin runs (see module doc); empty when only one device ran."""
    p = pairs(summary, reference)
    if p.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    traj = trajectories[["run_id", "epoch", "W", "b", "cost"]]
    a = traj.merge(p[["run_id_a", "run_id_b"]], left_on="run_id", right_on="run_id_a").drop(columns="run_id")
    both = a.merge(traj, left_on=["run_id_b", "epoch"], right_on=["run_id", "epoch"], suffixes=("_a", "_b"))
    for v in ("W", "b", "cost"):
        x = both[f"{v}_a"].to_numpy(np.float64)
        y = both[f"{v}_b"].to_numpy(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = np.abs(x - y)
            both[f"abs_{v}"] = diff
            both[f"rel_{v}"] = np.where(diff == 0, 0.0, diff / np.maximum(np.abs(x), np.abs(y)))
    agg = {f"max_{k}_{v}": (f"{k}_{v}", "max") for v in ("W", "b", "cost") for k in ("abs", "rel")}
    stats = both.groupby(["run_id_a", "run_id_b"]).agg(epochs_compared=("epoch", "size"), **agg).reset_index()
    out = p.merge(stats, on=["run_id_a", "run_id_b"], how="left")
    out["verdict_agrees"] = out["diverged_a"] == out["diverged_b"]
    out["diverged_at_diff"] = (out["diverged_at_a"] - out["diverged_at_b"]).abs()
    return out[list(COLUMNS)]
