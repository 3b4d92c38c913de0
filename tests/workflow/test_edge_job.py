"""The edge job in the workflow: its table, plot and log in a real run, and its place in the
DAG (it needs the config only, and can be switched off)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import REPO, planned_jobs, results_of, run_workflow

from gdbench.config import check_config
from gdbench.edge import EDGE_COLUMNS, grid_cases
from gdbench.experiment import Experiment


@pytest.mark.slow
def test_workflow_writes_the_edge_table_and_plot(small_run: Path) -> None:
    """The default target locates the edge: a table with the contract's columns, a row per
    grid point and seed, a plot, a log with progress lines."""
    table = pd.read_csv(results_of(small_run) / "tables" / "edge.csv")
    assert tuple(table.columns) == EDGE_COLUMNS
    cases = grid_cases(Experiment.from_checked(check_config(yaml_config(small_run)), ["cpu"]))
    assert len(table) == len(cases)
    for name in ("edge.png", "edge.svg"):
        assert (results_of(small_run) / "plots" / name).stat().st_size > 10_000
    log = (results_of(small_run) / "logs" / "edge.log").read_text()
    assert "edge search round 0" in log
    assert (results_of(small_run) / "benchmarks" / "edge.tsv").is_file()


def yaml_config(workdir: Path) -> dict:
    import yaml

    return yaml.safe_load((workdir / "config.yaml").read_text())


@pytest.mark.slow
def test_edge_job_needs_no_training_and_can_be_switched_off(tmp_path: Path) -> None:
    """The edge job depends on the config only (it runs beside training, never after it); the
    plots job draws its figure; edge.enabled: false drops it from the default target."""
    config = {"grid": {"dataset": ["tutorial"], "lr": [0.1], "seed": [1], "device": ["cpu"]}}
    proc = run_workflow(tmp_path, config, "-n", "results/config/tables/edge.csv", "--quiet", "rules")
    assert planned_jobs(proc) == {"edge": 1}
    # its figure is the plots job's (the edge job imports no plotting library)
    proc = run_workflow(tmp_path, config, "-n", "results/config/plots/edge.png", "--quiet", "rules")
    assert {"edge", "plots"} <= set(planned_jobs(proc))
    proc = run_workflow(tmp_path, {**config, "edge": {"enabled": False}}, "-n", "--quiet", "rules")
    assert "edge" not in planned_jobs(proc)


@pytest.mark.slow
def test_the_check_retrains_beside_training_and_one_plots_job_draws_every_figure(tmp_path: Path) -> None:
    """The reproducibility check's re-training depends on the config only (it runs beside the
    training jobs); every figure (the joined tables', the findings', the timing's) is drawn by
    the one plots job, after the findings, which run inside Snakemake and import no plotting
    library (nor torch); the timing goes
    first (the highest priority of the run), so the plots do not wait for it at the end."""
    config = {"grid": {"dataset": ["tutorial"], "lr": [0.1], "seed": [1], "device": ["cpu"]}}
    proc = run_workflow(tmp_path, config, "-n", "results/config/verify/retrained.parquet", "--quiet", "rules")
    assert planned_jobs(proc) == {"retrain": 1}
    for figure in ("convergence", "time_to_target", "timing"):
        proc = run_workflow(tmp_path, config, "-n", f"results/config/plots/{figure}.png", "--quiet", "rules")
        assert {"plots", "findings", "timing"} <= set(planned_jobs(proc)), figure
    proc = run_workflow(tmp_path, config, "-n", "results/config/tables/findings.csv", "--quiet", "rules")
    assert "plots" not in planned_jobs(proc) and "timing" not in planned_jobs(proc)
    # The findings, the comparison and the gate run inside Snakemake's process: no plotting
    # library, no torch (seconds of imports at the start of every run's Snakemake).
    probe = "import sys, gdbench.findings, gdbench.reproduce; print(sorted({'matplotlib', 'torch'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert loaded.stdout.strip() == "[]"


@pytest.mark.slow
def test_one_core_runs_the_timing_then_the_training_then_the_edge_then_the_re_training(tmp_path: Path) -> None:
    """The jobs that read the config alone are ready at once; their priorities order them:
    the timing first (it measures while the training runs, not at the end), the training next
    (the joined tables, the findings and the plots wait for it), then the edge search (the
    findings and the plots wait for it too), the re-training last (only the comparison waits
    for it). On one core the order is exactly that."""
    config = {
        "grid": {"dataset": ["tutorial"], "lr": [0.1], "seed": [1], "epochs": [20], "device": ["cpu"]},
        "timing": {"sizes": [3], "runs": [1], "optimizers": ["sgd"], "epochs": 3, "repeats": 3, "min_run_time": 0.01},
        "verify": {"sample": 1},
    }
    proc = run_workflow(tmp_path, config, "--cores", "1")
    out = proc.stdout + proc.stderr
    starts = {
        "timing": "Timing the engines on cpu",
        "train": "Training shard cpu-000",
        "edge": "Locating the stability edge",
        "retrain": "Re-training 1 sampled runs",
    }
    lines = [line for line in out.splitlines() if re.match(r"^Job \d+: ", line)]
    order = [job for line in lines for job, start in starts.items() if start in line]
    assert order == list(starts), "\n".join(lines)
