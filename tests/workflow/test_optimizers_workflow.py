"""A grid over optimizers through the whole workflow."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.mark.slow
def test_workflow_with_optimizers_end_to_end(tmp_path) -> None:
    """A grid over optimizers through Snakemake: every table has the optimizer, theory per
    optimizer, timing per optimizer, and `snakemake verify` re-trains momentum and Adam runs
    bit for bit (their state is per run, whatever job and batch they were trained in)."""
    import pandas as pd
    from helpers import results_of, run_workflow

    config = {
        "optimizers": {"sgd": {"sgd": {}}, "hb": {"sgd": {"momentum": 0.7}}, "adam": {"adam": {}}},
        "grid": {
            "dataset": ["tutorial"],
            "optimizer": ["sgd", "hb", "adam"],
            "lr": [0.01, 0.2, 0.4],
            "seed": [1],
            "epochs": [300],
            "device": ["cpu"],
        },
        "timing": {"sizes": [3], "runs": [1, 10], "epochs": 3, "repeats": 3, "min_run_time": 0.01},
        "edge": {"enabled": False},  # the edge search over optimizers: tests/test_edge.py
        "verify": {"sample": 9},
    }
    run_workflow(tmp_path, config, "--cores", "2")
    tables = results_of(tmp_path) / "tables"
    summary = pd.read_csv(tables / "summary.csv")
    assert summary["optimizer"].tolist() == ["sgd"] * 3 + ["hb"] * 3 + ["adam"] * 3
    assert summary["diverged"].tolist() == [False, True, True, False, False, True] + [False] * 3
    assert summary["predicted_diverged"].tolist()[:6] == summary["diverged"].tolist()[:6]
    np.testing.assert_allclose(summary["critical_lr"][:6], [0.180295] * 3 + [0.306501] * 3, atol=2e-6)
    assert summary["critical_lr"][6:].isna().all()
    theory = pd.read_csv(tables / "theory.csv")
    assert theory["optimizer"].tolist() == ["sgd", "hb", "adam"]
    # timing.optimizers left out: those of sgd, heavy_ball, adam that optimizers defines
    assert pd.read_csv(tables / "timing.csv")["optimizer"].tolist() == ["sgd"] * 3 + ["adam"] * 2
    assert "optimizer" in pd.read_parquet(tables / "trajectories.parquet", columns=["optimizer"]).columns
    check = json.loads((results_of(tmp_path) / "reproducibility.json").read_text())
    assert check["passed"] is True and check["runs_identical"] == check["runs_checked"] >= 9, check
