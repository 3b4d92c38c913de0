"""The workflow end to end: contract files, values, lint, format, DAG size, faults."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import REPO, SMALL_CONFIG, SNAKEFILE, results_of, run_workflow, snakemake_cmd

from gdbench.config import config_hash
from gdbench.experiment import resolve
from gdbench.tables import SUMMARY_COLUMNS, TRAJECTORY_COLUMNS
from gdbench.timing import plan as timing_plan

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_contract_tables(small_run: Path) -> None:
    """Every contract table exists with its columns; users script against them."""
    tables = results_of(small_run) / "tables"
    traj = pd.read_parquet(tables / "trajectories.parquet")
    assert list(traj.columns) == list(TRAJECTORY_COLUMNS)
    summary_csv = pd.read_csv(tables / "summary.csv")
    summary = pd.read_parquet(tables / "summary.parquet")
    assert list(summary.columns) == list(SUMMARY_COLUMNS) == list(summary_csv.columns)
    assert len(summary) == 2 * 6 * 2 and summary["run_id"].is_unique
    assert traj.groupby("run_id").size().min() >= 2
    # One theory row per dataset, and per seed where the points depend on it (noisy's do).
    theory = pd.read_csv(tables / "theory.csv")
    assert list(zip(theory["dataset"], theory["seed"].fillna(0), strict=True)) == [
        ("tutorial", 0),
        ("noisy", 1),
        ("noisy", 2),
    ]
    timed = resolve({"timing": SMALL_CONFIG["timing"]}).timing
    assert len(pd.read_csv(tables / "timing.csv")) == len(timing_plan(timed))
    assert pd.read_csv(tables / "lesson_log.csv")["epoch"].tolist() == list(range(0, 2001, 100))


def test_findings_are_recomputable_from_the_published_tables(small_run: Path) -> None:
    """If this fails, findings.csv (and the front page and last lines made from it) says
    something the published summary.csv, edge.csv and theory.csv do not: a reader
    recomputing it gets other numbers."""
    from gdbench.findings import findings_table

    tables = results_of(small_run) / "tables"
    published = pd.read_csv(tables / "findings.csv")
    recomputed = findings_table(
        pd.read_csv(tables / "summary.csv"), pd.read_csv(tables / "edge.csv"), pd.read_csv(tables / "theory.csv"), 1e-6
    )
    pd.testing.assert_frame_equal(published, recomputed, check_dtype=False)
    tutorial = published[published.dataset == "tutorial"].iloc[0]
    assert (tutorial.best_lr, tutorial.best_epochs, tutorial.diverged_lr_min) == (0.17, 100, 0.19)
    lines = (results_of(small_run) / "findings.txt").read_text().splitlines()
    assert lines[0].startswith("gdbench: 24 runs on cpu:"), lines
    assert "gdbench: best lr on dataset tutorial: sgd 0.17 (100 epochs)" in lines[1], lines
    assert "fastest at lr 0.17 (100 epochs)" in (results_of(small_run) / "front_page.rst").read_text()
    for name in ("time_to_target.csv", "profile.csv", "findings.html"):
        assert (tables / name).stat().st_size > 100, name


def test_lesson_values_and_divergence(small_run: Path) -> None:
    """The lesson's run ends at W 1.997, b 0.006; tutorial runs at lr >= 0.19 diverge."""
    s = pd.read_parquet(results_of(small_run) / "tables" / "summary.parquet")
    tut = s[s["dataset"] == "tutorial"]
    lesson = tut[np.isclose(tut["lr"], 0.01)]
    assert (lesson["final_W"].round(3) == 1.997).all() and (lesson["final_b"].round(3) == 0.006).all()
    assert tut.loc[tut["lr"] >= 0.19, "diverged"].all()
    assert not tut.loc[tut["lr"] <= 0.17, "diverged"].any()
    assert (tut["predicted_diverged"] == tut["diverged"]).all()
    assert tut["critical_lr"].round(6).eq(0.180295).all()
    diverged = s[s["diverged"]]
    assert diverged["diverged_at"].notna().all() and s.loc[~s["diverged"], "diverged_at"].isna().all()
    # Measured against the optimum of theory.csv: the lesson's run converges (README: 1732).
    theory = pd.read_csv(results_of(small_run) / "tables" / "theory.csv")
    assert {"W_star", "b_star", "optimal_cost"} <= set(theory.columns)
    assert (lesson["optimal_cost"] == 0).all() and (lesson["converged_at"] == 1732).all()
    assert (lesson["rate"] - lesson["predicted_rate"]).abs().max() < 1e-3


def test_trajectories_end_at_divergence(small_run: Path) -> None:
    """Diverged runs have no rows after their divergence epoch; others keep every epoch."""
    tables = results_of(small_run) / "tables"
    traj = pd.read_parquet(tables / "trajectories.parquet", columns=["run_id", "epoch", "cost"])
    s = pd.read_parquet(tables / "summary.parquet").set_index("run_id")
    last = traj.groupby("run_id")["epoch"].max()
    expected = s["diverged_at"].fillna(s["epochs"]).astype(int)
    pd.testing.assert_series_equal(
        last, expected.loc[last.index], check_names=False, check_index_type=False, check_dtype=False
    )


def test_plots_are_real_images(small_run: Path) -> None:
    """PNGs and SVGs for convergence, rate, divergence and timing exist and are images."""
    plots = results_of(small_run) / "plots"
    for name in ("convergence", "rate", "divergence", "timing"):
        png = (plots / f"{name}.png").read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 20_000, name
        assert "<svg" in (plots / f"{name}.svg").read_text()[:2000], name


def test_the_plots_job_draws_its_figures_in_two_processes(small_run: Path) -> None:
    """Rule plots (threads: 2, the run's --cores 2) splits its figures over two processes
    (gdbench.forked): its log says so and names every figure drawn."""
    log = (results_of(small_run) / "logs" / "plots.log").read_text().splitlines()
    figures = sorted(p.stem for p in (results_of(small_run) / "plots").glob("*.png"))
    assert f"{len(figures)} tasks in 2 process(es)" in log
    assert sorted(line.removeprefix("done: ") for line in log if line.startswith("done: ")) == figures


def test_provenance(small_run: Path) -> None:
    """Provenance names versions, machine, config (and hash), commit and times."""
    p = json.loads((results_of(small_run) / "provenance.json").read_text())
    for key in ("python", "torch", "snakemake", "pandas", "numpy"):
        assert p["versions"][key], key
    assert p["devices"]["cpu"]["model"]
    assert [job["threads"] for job in p["training_jobs"]] == [1, 1]  # two shards, training.threads 1
    assert sum(job["runs"] for job in p["training_jobs"]) == 24
    assert p["config"]["grid"]["lr"] == [0.001, 0.01, 0.1, 0.17, 0.19, 0.5]
    assert p["config_hash"] == config_hash(p["config"]) and p["host"] and p["started"] <= p["finished"]
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert p["git"]["commit"] == head.stdout.strip() and isinstance(p["git"]["dirty"], bool)
    assert p["deterministic"]["torch.are_deterministic_algorithms_enabled"] is True


def test_verify_passed(small_run: Path) -> None:
    """The reproducibility check re-trained the lesson's run and a sample, bit-identical."""
    r = json.loads((results_of(small_run) / "reproducibility.json").read_text())
    assert r["passed"] and r["lesson_log_reproduced"]
    assert r["runs_checked"] == 5 and r["runs_identical"] == r["runs_checked"]  # sample 4 + the lesson
    assert any("tutorial lr=0.01 seed=1 epochs=2000" in c["run"] for c in r["runs"])
    assert (results_of(small_run) / "reproducibility.txt").read_text().startswith("PASSED: 5 of 5")


def flip_one_bit(trajectories: Path, run_id: int, epoch: int) -> None:
    """Flip the lowest mantissa bit of one stored W (a change no tolerance would see)."""
    table = pq.read_table(trajectories)
    W = table.column("W").to_numpy().copy()
    rows = (table.column("run_id").to_numpy() == run_id) & (table.column("epoch").to_numpy() == epoch)
    assert rows.sum() == 1
    W.view(np.int32 if W.dtype == np.float32 else np.int64)[rows] ^= 1
    table = table.set_column(table.schema.get_field_index("W"), "W", pa.array(W))
    pq.write_table(table, trajectories)


def test_verify_fails_on_one_flipped_bit_and_the_report_says_failed(small_run: Path, tmp_path: Path) -> None:
    """One stored number changed by one bit: `snakemake verify` fails naming the run and the
    epoch, and the report built afterwards shows the check FAILED (not a missing file)."""
    work = tmp_path / "run"
    shutil.copytree(small_run, work, symlinks=True)
    config = ("--configfile", str(work / "config.yaml"))
    # Up to date, `snakemake verify` still re-trains its sample afresh and ends with its result.
    again = run_workflow(work, None, *config, "--cores", "2", "verify")
    out = again.stdout + again.stderr
    assert "Nothing to be done" not in out and "Re-training 5 sampled runs and the lesson's log from scratch" in out
    assert "gdbench: reproducibility PASSED: 5 of 5 re-trained runs bit-identical" in out
    summary = pd.read_parquet(results_of(work) / "tables" / "summary.parquet")
    lesson = summary[(summary["dataset"] == "tutorial") & np.isclose(summary["lr"], 0.01) & (summary["seed"] == 1)]
    run_id = int(lesson["run_id"].iloc[0])
    flip_one_bit(results_of(work) / "tables" / "trajectories.parquet", run_id, 1234)
    proc = run_workflow(work, None, *config, "--cores", "2", "verify", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    run = f"run {run_id} (tutorial lr=0.01 seed=1 epochs=2000 cpu, batched)"
    line = f"{run} is not reproduced: W first differs at epoch 1234 (stored 1.9834039, re-run 1.983404)"
    assert f"gdbench verify: FAILED: {line}" in out
    check = json.loads((results_of(work) / "reproducibility.json").read_text())
    assert not check["passed"] and check["message"] == line and check["runs_identical"] == 4
    assert not (results_of(work) / "reproducibility.txt").exists()
    run_workflow(work, None, *config, "--report", "results/config/report.html")
    page = (results_of(work) / "reproducibility.html").read_text()
    assert "Reproducibility: FAILED" in page and line in html.unescape(page)
    assert "Reproducibility: FAILED" in embedded_files(results_of(work) / "report.html")


def test_the_default_target_fails_on_one_flipped_bit_and_keeps_the_check(small_run: Path, tmp_path: Path) -> None:
    """The default target's comparison and gate (run inside Snakemake): a stored number one bit
    off makes the run fail with the line naming the run and the epoch, after the check's FAILED
    files are written (the report shows them); the PASSED line is gone."""
    work = tmp_path / "run"
    shutil.copytree(small_run, work, symlinks=True)
    summary = pd.read_parquet(results_of(work) / "tables" / "summary.parquet")
    run_id = int(summary["run_id"].iloc[0])
    check = json.loads((results_of(work) / "reproducibility.json").read_text())
    assert check["passed"] and run_id in [r["run_id"] for r in check["runs"]]
    flip_one_bit(results_of(work) / "tables" / "trajectories.parquet", run_id, 100)
    target = str(results_of(work).relative_to(work) / "reproducibility.txt")
    proc = run_workflow(work, None, "--configfile", str(work / "config.yaml"), "--cores", "2", target, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Comparing the 5 re-trained runs" in out and "Re-training" not in out  # the re-training stood
    check = json.loads((results_of(work) / "reproducibility.json").read_text())
    assert not check["passed"] and "W first differs at epoch 100" in check["message"]
    assert f"gdbench verify: FAILED: {check['message']}" in out and check["message"].startswith(f"run {run_id} (")
    assert "Reproducibility: FAILED" in (results_of(work) / "reproducibility.html").read_text()
    assert not (results_of(work) / "reproducibility.txt").exists()


def test_a_damaged_shard_stops_the_merge_with_one_line_naming_it(small_run: Path, tmp_path: Path) -> None:
    """If this fails, a truncated shard (a disk that filled up) ends the run with a raw
    ArrowInvalid inside Snakemake's traceback and an empty log, naming no file and no remedy."""
    work = tmp_path / "run"
    shutil.copytree(small_run, work, symlinks=True)
    shard = results_of(work) / "shards" / "cpu-000" / "summary.parquet"
    shard.write_bytes(shard.read_bytes()[:100])
    proc = run_workflow(work, None, "--configfile", str(work / "config.yaml"), "--cores", "2", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    line = f"gdbench: input {shard.relative_to(work)} is damaged or unreadable ("
    said = {text for text in out.splitlines() if text.startswith(line)}  # its line (and its log, shown)
    assert len(said) == 1, out
    said = said.pop()
    assert said.endswith(
        "delete it and run the same snakemake command again: Snakemake makes it again, and what depends on it"
    )
    log = (results_of(work) / "logs" / "merge_tables.log").read_text()
    assert "Traceback" in log and said in log


def embedded_files(report: Path) -> str:
    """The text of every file the report embeds (as base64 data URIs), joined."""
    found = re.findall(r"data:text/html;[^,]*base64,([A-Za-z0-9+/=]+)", report.read_text())
    return "\n".join(base64.b64decode(b).decode("utf-8", "replace") for b in found)


def test_loop_engine_on_two_threads_passes_verify(tmp_path: Path) -> None:
    """The loop engine with `threads: 2` on n = 100,000 points sums in torch's 2-thread order;
    verify must re-train those runs with 2 threads (as their job recorded) and pass."""
    config = {
        "datasets": {"wide": {"synthetic": {"n": 100000, "slope": 2.0, "intercept": 0.5, "noise": 0.5}}},
        "grid": {"dataset": ["wide"], "lr": [0.01, 0.02], "seed": [1], "epochs": [3], "device": ["cpu"]},
        "training": {"engine": "loop", "threads": 2},
        "sharding": {"jobs_per_device": 1},
        "timing": {"enabled": False},
        "verify": {"sample": 2},
    }
    run_workflow(tmp_path, config, "--cores", "2", "verify")
    meta = json.loads((results_of(tmp_path) / "shards" / "cpu-000" / "meta.json").read_text())
    assert meta["threads"] == 2 and meta["run_ids"] == [0, 1]
    r = json.loads((results_of(tmp_path) / "reproducibility.json").read_text())
    assert r["passed"] and r["runs_identical"] == 2
    assert [(c["engine"], c["threads"]) for c in r["runs"]] == [("loop", 2), ("loop", 2)]


def test_training_logs_print_lesson_lines(small_run: Path) -> None:
    """Training logs show the lesson-style line every 100 epochs for each run."""
    logs = "".join(p.read_text() for p in (results_of(small_run) / "logs" / "train").glob("*.log"))
    assert "Epoch    0/2000 W: 0.187, b: 0.080 Cost: 18.666666" in logs
    assert "Epoch 2000/2000 W: 1.997, b: 0.006 Cost: 0.000005" in logs
    assert "diverged at epoch" in logs


def test_every_rule_has_log_and_benchmark(small_run: Path) -> None:
    """Each job of the run leaves its own log and benchmark record (counted from the jobs
    Snakemake plans for this config, so a job that writes neither is caught)."""
    proc = run_workflow(small_run, None, "--configfile", str(small_run / "config.yaml"), "-n", "-F", "--quiet", "rules")
    counts = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("all", "total"):
            counts[parts[0]] = int(parts[1])
    jobs = sum(counts.values())
    # two training shards, timing and its join, merge, theory, plots, edge, provenance,
    # retrain, reproduce, verify, findings and the front page
    assert counts["train"] == 2 and jobs == 14, counts
    results = results_of(small_run)
    assert len(list((results / "benchmarks").rglob("*.tsv"))) == jobs
    assert len(list((results / "logs").rglob("*.log"))) == jobs


def test_lint_is_clean() -> None:
    """`snakemake --lint` finds nothing to complain about."""
    proc = subprocess.run([*snakemake_cmd(), "--lint"], cwd=REPO, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Lints for" not in out, out


def test_snakefmt_is_clean() -> None:
    """The Snakefile and rules are formatted with snakefmt."""
    proc = subprocess.run(["snakefmt", "--check", "Snakefile", "workflow"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_is_clean() -> None:
    """Python sources pass ruff's checks."""
    proc = subprocess.run(["ruff", "check", "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_default_dag_has_a_handful_of_training_jobs(tmp_path: Path) -> None:
    """The default grid (66 runs per device) is a few training jobs, not one per run."""
    proc = run_workflow(tmp_path, None, "--configfile", str(REPO / "config" / "config.yaml"), "-n", "--quiet", "rules")
    counts = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    assert 1 <= counts["train"] <= 8, proc.stdout
    assert not (tmp_path / "results").exists()


def test_absent_device_fails_its_job_and_keeps_the_others(tmp_path: Path) -> None:
    """Asking for CUDA where there is none fails those jobs with one clear line; under
    --keep-going the CPU shards still finish."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    config = {
        "grid": {"dataset": ["tutorial"], "lr": [0.01, 0.5], "seed": [1], "epochs": [100], "device": ["cpu", "cuda"]},
        "timing": {"enabled": False},
    }
    shards = [f"results/config/shards/{device}-000/summary.parquet" for device in ("cpu", "cuda")]
    proc = run_workflow(tmp_path, config, "--cores", "2", "--keep-going", *shards, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "device 'cuda' requested but torch" in out and "sees no CUDA device" in out
    assert (results_of(tmp_path) / "shards" / "cpu-000" / "summary.parquet").exists()
    assert not (results_of(tmp_path) / "shards" / "cuda-000" / "summary.parquet").exists()


def test_killed_run_resumes_to_identical_tables(tmp_path: Path) -> None:
    """SIGKILL mid-run, then rerun: no half-written file is taken as complete, and the final
    tables equal an uninterrupted run's bit for bit."""
    config = {
        "grid": {
            "dataset": ["tutorial", "noisy"],
            "lr": [0.001, 0.01, 0.1, 0.5],
            "seed": [1, 2, 3],
            "epochs": [3000],
            "device": ["cpu"],
        },
        "sharding": {"jobs_per_device": 4, "min_runs_per_job": 1},
        "timing": {"enabled": False},
        "edge": {"enabled": False},
        "verify": {"sample": 2},
    }
    # The training shards and the tables joined from them: what a kill can leave half-made.
    tables = [f"results/config/tables/{name}" for name in ("trajectories.parquet", "summary.parquet")]
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [
        *snakemake_cmd(),
        "-s",
        str(SNAKEFILE),
        "--directory",
        str(killed),
        "--configfile",
        str(killed / "config.yaml"),
        "--cores",
        "2",
        *tables,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    shards = results_of(killed) / "shards"
    while time.time() < deadline and not list(shards.glob("*/summary.parquet")) and proc.poll() is None:
        time.sleep(0.2)
    still_running = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = list(shards.glob("*/summary.parquet"))
    # Killed mid-way: the run was still going, some shards were done and the tables were not.
    assert still_running, "the run ended before it could be killed"
    assert 1 <= len(finished) < 4, f"{len(finished)} of 4 shards finished before the kill"
    assert not (results_of(killed) / "tables" / "summary.parquet").exists(), "killed too late to test anything"
    run_workflow(killed, None, "--configfile", str(killed / "config.yaml"), "--unlock")
    run_workflow(killed, None, "--configfile", str(killed / "config.yaml"), "--cores", "2", *tables)
    clean = tmp_path / "clean"
    run_workflow(clean, config, "--cores", "2", *tables)
    for name in ("trajectories.parquet", "summary.parquet"):
        a = pd.read_parquet(results_of(killed) / "tables" / name).drop(columns="batch_seconds_per_run", errors="ignore")
        b = pd.read_parquet(results_of(clean) / "tables" / name).drop(columns="batch_seconds_per_run", errors="ignore")
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    leftovers = [p for p in (results_of(killed)).rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


def test_all_diverged_grid_builds_tables_plots_and_report(tmp_path: Path) -> None:
    """A grid where every run diverges (inf and NaN costs): tables, plots and the report
    still build. (The plots' other edge grids, none diverged and a single run, are drawn by
    tests/test_plots.py from real tables.)"""
    config = {
        "grid": {"dataset": ["tutorial"], "lr": [0.5, 1.0], "seed": [1, 2], "epochs": [500], "device": ["cpu"]},
        "sharding": {"jobs_per_device": 1},
        "timing": {"enabled": False},
        "edge": {"enabled": False},
        "verify": {"sample": 1},
    }
    run_workflow(tmp_path, config, "--cores", "2")
    run_workflow(
        tmp_path, None, "--configfile", str(tmp_path / "config.yaml"), "--report", "results/config/report.html"
    )
    s = pd.read_parquet(results_of(tmp_path) / "tables" / "summary.parquet")
    assert len(s) == 4 and s["diverged"].all()
    for name in ("convergence", "divergence"):
        assert (results_of(tmp_path) / "plots" / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
    assert "Reproducibility: PASSED" in embedded_files(results_of(tmp_path) / "report.html")
