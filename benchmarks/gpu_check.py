"""The GPU check's Python part (run by ``benchmarks/gpu_check.sh OUTDIR``, after the CUDA tests).

Steps, each recorded as ok / FAILED (reason) / skipped, none stopping the others:

* **agreement**: a small grid (the tutorial data and a noisy synthetic line of 64 points,
  lr 0.001..1.0 including 0.17/0.18/0.19 around the tutorial's critical 0.1803, seeds 1-3,
  2000 epochs) trained with both engines on cpu and on cuda as the workflow trains a grid
  (:func:`gdbench.pipeline.train_runs`), and each run compared with its twin on the other
  device by :func:`gdbench.agreement.device_agreement` (the workflow's own comparison, its
  columns): ``agreement.csv``.
* **timing**: the timing plan (:func:`gdbench.timing.measure_plan`, the workflow's harness and
  its retakes of disturbed measurements) on both devices, sizes n = 3..1e6 for both engines and
  batched grid sizes 1..1e6 runs (1e6 runs on CUDA only), to ``timing_<card>.csv`` (the
  published timing table), written as it goes.
* **bar**: batched run-epochs/s on a 1,000,000-run grid of the tutorial data on CUDA (whole
  call of 2000 epochs, and the steady state per epoch from two epoch counts, which separates
  the fixed per-call cost), against the 5e9 target; the n where CUDA overtakes CPU.

``environment.json`` is the workflow's provenance record (:func:`gdbench.provenance.collect`)
of the check's own config, with the GPU's details. Then ``summary.txt`` and the same short
table on stdout, last. Everything goes under OUTDIR (flat; with the tests' ``pytest_cuda.txt``:
7 files). ``--quick`` makes the CPU part short (for trying the script where there is no GPU);
``--budget`` seconds bounds the whole run: steps that would start after it are skipped and
recorded as such.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from gdbench import provenance, timing
from gdbench.agreement import device_agreement
from gdbench.config import check_config
from gdbench.experiment import Experiment
from gdbench.pipeline import train_runs
from gdbench.timing import results as timing_results

log = logging.getLogger("gpu_check")

REPO = Path(__file__).resolve().parents[1]

AGREEMENT_DATASETS = {
    "tutorial": {"x": [1, 2, 3], "y": [2, 4, 6]},
    "noisy64": {"synthetic": {"n": 64, "slope": 2.0, "intercept": 0.5, "noise": 0.5, "x_min": 0.0, "x_max": 3.0}},
}
AGREEMENT_LRS = [0.001, 0.01, 0.05, 0.1, 0.15, 0.17, 0.18, 0.19, 0.25, 0.5, 1.0]

SIZES = [3, 1000, 100000, 1000000]
GRID_SIZES = [1, 100, 10000, 1000000]
CPU_MAX_RUNS = 10000  # the 1e6-run grid is timed on CUDA only
TIMING_EPOCHS = 20

BAR_RUNS, BAR_EPOCHS, BAR_TARGET = 1_000_000, 2000, 5.0e9
BAR_RESERVE_S = 75  # seconds kept for the bar check while timing


def check_config_of(quick: bool) -> dict[str, Any]:
    """The check's config, through the workflow's schema: the agreement grid and the timing plan."""
    raw = {
        "datasets": AGREEMENT_DATASETS,
        "grid": {
            "dataset": list(AGREEMENT_DATASETS),
            "optimizer": ["sgd"],
            "lr": AGREEMENT_LRS,
            "seed": [1] if quick else [1, 2, 3],
            "epochs": [500 if quick else 2000],
            "device": ["cpu"],
        },
        "training": {"engine": ["loop", "batched"]},
        "timing": {
            "sizes": SIZES[:3] if quick else SIZES,
            "runs": GRID_SIZES,
            "engines": ["loop", "batched"],
            "optimizers": ["sgd"],
            "epochs": 5 if quick else TIMING_EPOCHS,
            "repeats": 3 if quick else 5,
            "min_run_time": 0.05 if quick else 0.2,
            "attempts": 2,  # a disturbed CPU measurement is taken once more, within the budget
            "quiet_wait": 5,
        },
    }
    return check_config(raw)


class Steps:
    """Runs steps under a time budget and records how each went."""

    def __init__(self, budget_s: float) -> None:
        self.start = time.perf_counter()
        self.budget_s = budget_s
        self.rows: list[tuple[str, str, float, str]] = []

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)

    def run(self, name: str, fn: Callable[[], str]) -> None:
        t0 = time.perf_counter()
        log.info("== %s", name)
        try:
            note, status = fn(), "ok"
        except Exception as exc:
            log.exception("step %s failed", name)
            note, status = _reason(exc), "FAILED"
        self.rows.append((name, status, time.perf_counter() - t0, note))

    def skip(self, name: str, why: str) -> None:
        log.info("== %s skipped: %s", name, why)
        self.rows.append((name, "skipped", 0.0, why))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def _fmt(x: float, digits: int = 2) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}e}"


# ----------------------------------------------------------------------------- environment


def environment(config: dict[str, Any], threads: int, quick: bool) -> dict[str, Any]:
    """What the numbers were measured on: the provenance record, and the GPU's details."""
    extra: dict[str, Any] = {"quick": quick, "cpu_threads_used": threads, "loadavg_at_start": list(os.getloadavg())}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        extra.update(
            gpu=torch.cuda.get_device_name(0),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            gpu_capability=f"{props.major}.{props.minor}",
            gpu_count=torch.cuda.device_count(),
        )
        try:
            query = "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit"
            smi = subprocess.run(
                ["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True, timeout=15
            )
            extra["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            extra["nvidia_smi"] = _reason(exc)
    return provenance.collect(config, started=provenance.now(), repo=REPO, extra=extra)


# ----------------------------------------------------------------------------- agreement


def agreement(out: Path, config: dict[str, Any], devices: list[str], steps: Steps) -> str:
    """Both engines on every device, as the workflow trains; twins compared across devices."""
    experiment = Experiment.from_checked(config, devices)
    runs = experiment.runs
    trajectories, summaries, failures = [], [], []
    for device in devices:
        if steps.left() < BAR_RESERVE_S + 60:
            failures.append(f"{device} skipped (budget)")
            continue
        ids = [i for i, run in enumerate(runs) if run.device == device]
        t0 = time.perf_counter()
        try:
            _, traj, summary = train_runs(experiment, [runs[i] for i in ids], ids)
        except Exception as exc:
            log.exception("agreement: %s failed", device)
            failures.append(f"{device} failed ({_reason(exc)})")
            continue
        log.info("agreement: %s trained %d runs in %.1f s", device, len(ids), time.perf_counter() - t0)
        trajectories.append(traj)
        summaries.append(summary)
    if not summaries:
        raise RuntimeError("; ".join(failures))
    summary = pd.concat(summaries, ignore_index=True)
    table = device_agreement(pd.concat(trajectories, ignore_index=True), summary)
    table.to_csv(out / "agreement.csv", index=False)
    notes = []
    for engine, rows in table.groupby("engine", sort=False, observed=True):
        maxima = "/".join(_fmt(rows[f"max_abs_{k}"].max(), 1) for k in ("W", "b", "cost"))
        notes.append(
            f"cpu vs cuda, {engine}: verdicts agree {int(rows.verdict_agrees.sum())}/{len(rows)}, "
            f"largest abs differences W/b/cost {maxima}"
        )
    if table.empty:
        notes.append("one device only: nothing to compare")
    return "\n".join(notes + failures)


# ----------------------------------------------------------------------------- timing


def timing_step(csv: Path, config: dict[str, Any], devices: list[str], threads: int, steps: Steps) -> str:
    """The timing plan, one item at a time (so the budget is checked between them)."""
    results: list[timing_results.TimingResult] = []
    experiment = Experiment.from_checked(config, devices)
    section = experiment.timing
    for device in devices:
        runs = [r for r in section.runs if device.startswith("cuda") or r <= CPU_MAX_RUNS]
        plan = timing.plan(dataclasses.replace(section, runs=tuple(runs)))
        for engine, n, size, name in plan:
            if steps.left() < BAR_RESERVE_S:
                reason = "skipped: time budget"
                log.warning("timing %s %s n=%d runs=%d %s", device, engine, n, size, reason)
                results.append(timing.failed_result(device, engine, n, size, section.epochs, threads, reason))
                continue
            results += timing.measure_plan(experiment, device, threads, items=[(engine, n, size, name)])
            timing_results.timing_table(results).to_csv(csv, index=False)  # partial results survive a kill
    table = timing_results.timing_table(results)
    table.to_csv(csv, index=False)
    failed = [r for r in results if not r.ok]
    note = f"{len(results)} rows, {len(failed)} NaN -> {csv.name}"
    if failed:
        note += "; " + "; ".join(f"{r.device} {r.engine} n={r.n} runs={r.runs}: {r.error}" for r in failed[:3])
    return note


# ----------------------------------------------------------------------------- the bars


def bar_step(out: Path, csv: Path, threads: int, quick: bool, steps: Steps) -> str:
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    runs, epochs = (BAR_RUNS, BAR_EPOCHS) if cuda else (10000, 50 if quick else 200)
    table = pd.read_csv(csv) if csv.is_file() else pd.DataFrame(columns=timing_results.TIMING_COLUMNS)
    short = table[(table.device == device) & (table.engine == "batched") & (table.n == 3) & (table.runs == runs)]
    short = short.dropna(subset=["median_s_per_epoch"])
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    long = timing.measure_safely(device, "batched", 3, runs, epochs, threads, repeats=3, min_run_time=0.2)
    peak_gib = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    if short.empty:
        s = timing.measure_safely(device, "batched", 3, runs, TIMING_EPOCHS, threads, repeats=3, min_run_time=0.2)
        short_epochs, short_s = s.epochs, s.median_s_per_epoch
    else:
        short_epochs, short_s = int(short.epochs.iloc[0]), float(short.median_s_per_epoch.iloc[0])
    t_long = long.median_s_per_epoch * (epochs + 1)
    t_short = short_s * (short_epochs + 1)
    marginal = (t_long - t_short) / (epochs - short_epochs)
    steady = runs / marginal if marginal > 0 else float("nan")
    fixed = t_short - (short_epochs + 1) * marginal
    floor = table[(table.device == device) & (table.engine == "batched") & (table.n == 3) & (table.runs == 1)]
    floor_s = float(floor.median_s_per_epoch.iloc[0]) if len(floor) else float("nan")
    cross = {e: timing_results.crossover_n(table, e) if len(table) else None for e in ("loop", "batched")}
    metrics = [
        ("device", device, timing.device_name(device)),
        ("runs", runs, "tutorial data (the timing line at n=3), lrs 1e-4..critical/2"),
        ("epochs", epochs, "per call (epochs + 1 computed)"),
        ("whole_call_run_epochs_per_s", long.run_epochs_per_s, "runs x (epochs+1) / median call time"),
        ("whole_call_iqr_s_per_epoch", long.iqr_s_per_epoch, f"{long.repeats} repeats"),
        ("steady_state_run_epochs_per_s", steady, f"from calls of {short_epochs} and {epochs} epochs"),
        ("fixed_s_per_call", fixed, "per-call cost outside the epochs (setup over the runs, transfers)"),
        ("launch_floor_s_per_epoch", floor_s, "batched n=3 runs=1 (kernel launches, no work)"),
        ("peak_gpu_memory_gib", peak_gib, "torch.cuda.max_memory_allocated during the long calls"),
        ("target_run_epochs_per_s", BAR_TARGET, "issue 4 bar (H100/H200)"),
        ("whole_call_meets_target", bool(long.run_epochs_per_s >= BAR_TARGET) if cuda else None, ""),
        ("steady_state_meets_target", bool(steady >= BAR_TARGET) if cuda else None, ""),
        ("crossover_n_loop", cross["loop"], "n where CUDA overtakes CPU (loop engine, log-log interpolated)"),
        ("crossover_n_batched", cross["batched"], "same, batched engine with one run"),
    ]
    if long.error:
        metrics.append(("error", long.error, ""))
    pd.DataFrame(metrics, columns=["metric", "value", "note"]).to_csv(out / "bar_check.csv", index=False)
    bar_met = ("PASS" if long.run_epochs_per_s >= BAR_TARGET else "FAIL") if cuda else "not checked (no CUDA)"
    lines = [
        f"batched, {runs:,} runs x {epochs} epochs on {device}: {_fmt(long.run_epochs_per_s)} run-epochs/s whole call, "
        f"{_fmt(steady)} steady state (fixed {fixed:.2f} s/call); target 5e9: {bar_met}",
    ]
    if cuda:
        lines.append(f"launch floor {_fmt(floor_s)} s/epoch; peak GPU memory {peak_gib:.1f} GiB")
    for engine, n in cross.items():
        sizes = table[(table.engine == engine) & (table.runs == 1)].n
        if n is None:
            where = "not within the measured sizes (or no CUDA)"
        elif n <= sizes.min():
            where = f"already at the smallest size measured, n = {n:,.0f}"
        else:
            where = f"n ~ {n:,.0f} (log-log interpolated)"
        lines.append(f"CUDA overtakes CPU ({engine} engine, 1 run): {where}")
    if long.error:
        raise RuntimeError(long.error)
    return "\n".join(lines)


# ----------------------------------------------------------------------------- summary


def pytest_note(path: Path | None, rc: int | None) -> tuple[str, str]:
    if path is None or not path.is_file():
        return ("skipped", "not run")
    lines = [ln.strip("= ").strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    summary = next((ln for ln in reversed(lines) if re.search(r"\d+ (passed|failed|skipped|deselected|error)", ln)), "")
    summary = summary or (lines[-1] if lines else "no output")
    status = "ok" if rc == 0 else ("skipped" if rc == 5 else "FAILED")
    return status, f"{summary} (rc {rc})"


def summary(steps: Steps, env: dict[str, Any], csv: Path, pytest_row: tuple[str, str], pytest_s: float) -> str:
    gpu = env.get("gpu", "no CUDA device")
    lines = [
        f"gdbench GPU check  {env['started']}  {gpu}  |  {env['devices']['cpu']['model']} "
        f"({env['cpu_threads_used']} threads)",
        f"torch {env['versions']['torch']} (CUDA {env['versions']['cuda']}), python {env['versions']['python']}; "
        f"{pytest_s + time.perf_counter() - steps.start:.0f} s in all",
        f"{'step':<10} {'status':<8} {'seconds':>7}  note",
        f"{'pytest':<10} {pytest_row[0]:<8} {pytest_s:7.1f}  {pytest_row[1]}",
    ]
    for name, status, seconds, note in steps.rows:
        first, *rest = note.splitlines() or [""]
        lines.append(f"{name:<10} {status:<8} {seconds:7.1f}  {first}")
        lines += [f"{'':<28}{more}" for more in rest]
    if csv.is_file():
        table = pd.read_csv(csv)
        if len(table):
            is_cuda = table.device.astype(str).str.startswith("cuda")
            lines.append(
                f"{'s/epoch (median)':<18} {'engine':<8} {'n':>8} {'runs':>8} {'cpu':>9} {'cuda':>9}  run-epochs/s"
            )
            for (engine, n, runs), rows in table.groupby(["engine", "n", "runs"], sort=False):
                cpu_s = rows[~is_cuda[rows.index]].median_s_per_epoch.max()
                cuda_s = rows[is_cuda[rows.index]].median_s_per_epoch.max()
                best = rows.run_epochs_per_s.max()
                lines.append(f"{'':<18} {engine:<8} {n:>8} {runs:>8} {_fmt(cpu_s):>9} {_fmt(cuda_s):>9}  {_fmt(best)}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--quick", action="store_true", help="short CPU part (for machines without a GPU)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="CPU threads (all)")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for this script (default 420)")
    parser.add_argument("--pytest-log", type=Path, default=None)
    parser.add_argument("--pytest-rc", type=int, default=None)
    parser.add_argument("--pytest-seconds", type=float, default=0.0)
    args = parser.parse_args(argv)
    out: Path = args.outdir
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stderr), logging.FileHandler(out / "gpu_check.log", mode="a")],
    )
    steps = Steps(args.budget)
    config = check_config_of(args.quick)
    env = environment(config, args.threads, args.quick)
    (out / "environment.json").write_text(json.dumps(env, indent=2, default=str) + "\n")
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    csv = out / f"timing_{_slug(env['gpu']) if 'gpu' in env else 'cpu-only'}.csv"
    log.info(
        "gpu_check: devices %s, %d CPU threads, budget %.0f s, quick=%s", devices, args.threads, args.budget, args.quick
    )

    steps.run("agreement", lambda: agreement(out, config, devices, steps))
    steps.run("timing", lambda: timing_step(csv, config, devices, args.threads, steps))
    if steps.left() > 20:
        steps.run("bar", lambda: bar_step(out, csv, args.threads, args.quick, steps))
    else:
        steps.skip("bar", "time budget")

    text = summary(steps, env, csv, pytest_note(args.pytest_log, args.pytest_rc), args.pytest_seconds)
    (out / "summary.txt").write_text(text + "\n")
    print(text, flush=True)
    failed = [s for s in steps.rows if s[1] == "FAILED"] or (args.pytest_rc not in (None, 0, 5))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
