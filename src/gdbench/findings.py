"""What a grid found, computed once from its tables: the findings table (one row per dataset
x optimizer x the other non-lr axes, over seeds), the time-to-target table (one row per such
group and lr) and the optimizers' performance profile (one row per problem and optimizer).

Every column is a function of ``summary`` (one row per run), ``edge`` (one row per edge case)
and the theory table's ``fastest_rate``, with the convergence tolerance
``analysis.converged_below``: config/README.md, section *Findings*, defines each one. The
verdicts are the summary's own columns (``diverged``, ``converged_at``,
``predicted_diverged``), never derived again here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from gdbench.reads import Reads

#: What the findings job reads besides its tables: the convergence threshold (the target of
#: the time-to-target table).
FINDINGS_READS = Reads(("analysis.converged_below",))

#: The axes a findings row is taken over (every axis of a run but its lr and seed).
GROUP = ("dataset", "optimizer", "device", "engine", "epochs", "init", "batch_size", "dtype")
#: The axes of one problem of the performance profile (a group without its optimizer, per seed).
PROBLEM = ("dataset", "device", "engine", "epochs", "init", "batch_size", "dtype", "seed")
#: The axes of edge.csv a findings row is joined on (the edge does not depend on the device
#: or the engine).
EDGE_KEYS = ("dataset", "optimizer", "batch_size", "init", "dtype", "epochs")

FINDINGS_COLUMNS = (
    *GROUP,
    "runs",
    "seeds",
    "converged",
    "diverged",
    "best_lr",
    "best_epochs",
    "best_epochs_min",
    "best_epochs_max",
    "best_predicted_epochs",
    "theory_lr",
    "theory_epochs",
    "converged_lr_max",
    "diverged_lr_min",
    "critical_lr",
    "edge_lo",
    "edge_hi",
    "edge_ratio",
    "horizon_ratio",
    "theory_checked",
    "theory_agree",
    "rank",
)
TARGET_COLUMNS = (
    *GROUP,
    "lr",
    "lr_ratio",
    "runs",
    "converged",
    "diverged",
    "epochs_median",
    "epochs_min",
    "epochs_max",
    "predicted_epochs",
)
PROFILE_COLUMNS = (*PROBLEM, "optimizer", "best_lr", "epochs_to_target", "ratio")


def predicted_epochs(rate: np.ndarray | pd.Series, converged_below: float) -> np.ndarray:
    """Epochs for an excess cost shrinking by ``rate`` per epoch to fall to ``converged_below``
    x its initial value: ``ceil(ln(converged_below) / ln(rate))`` where ``0 < rate < 1``,
    NaN elsewhere (no prediction, or no contraction)."""
    r = np.asarray(rate, dtype=np.float64)
    out = np.full(r.shape, np.nan)
    ok = np.isfinite(r) & (r > 0) & (r < 1)
    out[ok] = np.ceil(math.log(converged_below) / np.log(r[ok]))
    return out


def _converged(summary: pd.DataFrame) -> np.ndarray:
    """A run converged: its ``converged_at`` is filled and it did not diverge."""
    return summary["converged_at"].notna().to_numpy() & ~summary["diverged"].to_numpy(dtype=bool)


def _plain(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """``columns`` of ``df`` as plain strings (categoricals, CSV-read labels) or numbers, so
    tables read from Parquet and from CSV group and join alike."""
    out = df.copy()
    for col in columns:
        if col in out and col not in ("epochs", "seed", "lr"):
            out[col] = out[col].astype(str)
    return out


def time_to_target(summary: pd.DataFrame, converged_below: float) -> pd.DataFrame:
    """One row per group and lr: run counts, ``converged_at`` over the converged runs (median,
    min, max) and the median over the runs of their predicted epochs."""
    df = _plain(summary, GROUP)
    df["_converged"] = _converged(summary)
    df["_epochs"] = np.where(df["_converged"], summary["converged_at"].astype("float64"), np.nan)
    df["_predicted"] = predicted_epochs(df["predicted_rate"], converged_below)
    grouped = df.groupby([*GROUP, "lr"], sort=False, observed=True)
    out = grouped.agg(
        lr_ratio=("lr_ratio", "first"),
        runs=("run_id", "size"),
        converged=("_converged", "sum"),
        diverged=("diverged", "sum"),
        epochs_median=("_epochs", "median"),
        epochs_min=("_epochs", "min"),
        epochs_max=("_epochs", "max"),
        predicted_epochs=("_predicted", "median"),
    ).reset_index()
    for col in ("runs", "converged", "diverged"):
        out[col] = out[col].astype(np.int64)
    out["_group"] = out.groupby(list(GROUP), sort=False, observed=True).ngroup()  # the summary's order
    out = out.sort_values(["_group", "lr"], kind="stable")
    return out[list(TARGET_COLUMNS)].reset_index(drop=True)


def _best(target: pd.DataFrame) -> pd.DataFrame:
    """Per group, the row of the fastest lr at which every run converged (ties: smaller lr)."""
    full = target[(target["converged"] == target["runs"]) & (target["runs"] > 0)]
    full = full.sort_values([*GROUP, "epochs_median", "lr"], kind="stable")
    return full.groupby(list(GROUP), sort=False, observed=True).head(1)


def _edge_columns(edge: pd.DataFrame | None) -> pd.DataFrame:
    """Per edge group: the medians over seeds of ``edge_lo``, ``edge_hi``, ``horizon_edge``."""
    cols = [*EDGE_KEYS, "edge_lo", "edge_hi", "horizon_edge"]
    if edge is None or edge.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c in EDGE_KEYS else float) for c in cols})
    df = _plain(edge, EDGE_KEYS)
    return df.groupby(list(EDGE_KEYS), sort=False)[["edge_lo", "edge_hi", "horizon_edge"]].median().reset_index()[cols]


def findings_table(
    summary: pd.DataFrame, edge: pd.DataFrame | None, theory: pd.DataFrame | None, converged_below: float
) -> pd.DataFrame:
    """The findings: one row per group of ``summary``, :data:`FINDINGS_COLUMNS` (empty cells
    where a quantity is not defined; config/README.md, *Findings*, says when)."""
    if summary.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in FINDINGS_COLUMNS})
    df = _plain(summary, GROUP)
    df["_converged"] = _converged(summary)
    known = summary["predicted_diverged"].notna().to_numpy()
    agree = known & (summary["predicted_diverged"].fillna(False).to_numpy(dtype=bool) == df["diverged"].to_numpy())
    df["_known"], df["_agree"] = known, agree
    df["_conv_lr"] = df["lr"].where(df["_converged"])
    df["_div_lr"] = df["lr"].where(df["diverged"].astype(bool))
    out = (
        df.groupby(list(GROUP), sort=False, observed=True)
        .agg(
            runs=("run_id", "size"),
            seeds=("seed", "nunique"),
            converged=("_converged", "sum"),
            diverged=("diverged", "sum"),
            theory_lr=("fastest_lr", "first"),
            converged_lr_max=("_conv_lr", "max"),
            diverged_lr_min=("_div_lr", "min"),
            critical_lr=("critical_lr", "first"),
            theory_checked=("_known", "sum"),
            theory_agree=("_agree", "sum"),
        )
        .reset_index()
    )
    best = _best(time_to_target(summary, converged_below))
    best = best[[*GROUP, "lr", "epochs_median", "epochs_min", "epochs_max", "predicted_epochs"]].rename(
        columns={
            "lr": "best_lr",
            "epochs_median": "best_epochs",
            "epochs_min": "best_epochs_min",
            "epochs_max": "best_epochs_max",
            "predicted_epochs": "best_predicted_epochs",
        }
    )
    out = out.merge(best, on=list(GROUP), how="left", sort=False)
    out = out.merge(_fastest_rate(theory), on=["dataset", "optimizer"], how="left", sort=False)
    out["theory_epochs"] = predicted_epochs(out.pop("fastest_rate"), converged_below)
    out.loc[out["theory_lr"].isna(), "theory_epochs"] = np.nan
    out = out.merge(_edge_columns(edge), on=list(EDGE_KEYS), how="left", sort=False)
    out["edge_ratio"] = out["edge_hi"] / out["critical_lr"]
    out["horizon_ratio"] = out.pop("horizon_edge") / out["critical_lr"]
    others = [c for c in GROUP if c != "optimizer"]
    out["rank"] = out.groupby(others, sort=False)["best_epochs"].rank(method="min").astype("Int64")
    for col in ("runs", "seeds", "converged", "diverged", "theory_checked", "theory_agree"):
        out[col] = out[col].astype(np.int64)
    return out[list(FINDINGS_COLUMNS)]


def _fastest_rate(theory: pd.DataFrame | None) -> pd.DataFrame:
    """The theory table's ``fastest_rate`` per dataset and optimizer (empty without one; its
    minibatch rows, which have none, do not count)."""
    if theory is None or "fastest_rate" not in theory:
        return pd.DataFrame({"dataset": pd.Series(dtype=str), "optimizer": pd.Series(dtype=str), "fastest_rate": []})
    df = theory[["dataset", "optimizer", "fastest_rate"]].astype({"dataset": str, "optimizer": str})
    return df.dropna(subset=["fastest_rate"]).drop_duplicates(["dataset", "optimizer"])


def performance_profile(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per problem (:data:`PROBLEM`) and optimizer: the optimizer's epochs to target
    at its best lr on that problem (the smallest ``converged_at`` of its converged runs there;
    ties: the smaller lr), that lr, and ``ratio`` = those epochs / the fewest any optimizer
    needed on the problem (inf: the optimizer never converged there; NaN: none did)."""
    df = _plain(summary, (*PROBLEM, "optimizer"))
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in PROFILE_COLUMNS})
    df["_epochs"] = np.where(_converged(summary), summary["converged_at"].astype("float64"), np.inf)
    keys = [*PROBLEM, "optimizer"]
    df = df.sort_values([*keys, "_epochs", "lr"], kind="stable")
    best = df.groupby(keys, sort=False, observed=True).head(1).copy()
    best["best_lr"] = best["lr"].where(np.isfinite(best["_epochs"]))
    best["epochs_to_target"] = best["_epochs"].where(np.isfinite(best["_epochs"]))
    fewest = best.groupby(list(PROBLEM), sort=False)["_epochs"].transform("min")
    with np.errstate(invalid="ignore"):
        best["ratio"] = np.where(np.isfinite(fewest), best["_epochs"] / fewest, np.nan)
    order = list(dict.fromkeys(summary["optimizer"].astype(str)))
    best["_order"] = best["optimizer"].map({name: i for i, name in enumerate(order)})
    best = best.sort_values([*PROBLEM, "_order"], kind="stable")
    return best[list(PROFILE_COLUMNS)].reset_index(drop=True)


def solved_fraction(profile: pd.DataFrame, taus: np.ndarray) -> pd.DataFrame:
    """The performance profile's curves: per optimizer and ``tau``, the fraction of problems
    it solved within ``tau`` x the fewest epochs (``ratio <= tau``; problems no optimizer
    solved count as unsolved for all)."""
    rows = []
    problems = profile.groupby(list(PROBLEM), sort=False).ngroups if not profile.empty else 0
    for name, part in profile.groupby("optimizer", sort=False):
        ratio = part["ratio"].to_numpy(dtype=np.float64)
        for tau in taus:
            solved = int(np.sum(np.isfinite(ratio) & (ratio <= tau)))
            rows.append({"optimizer": name, "tau": float(tau), "solved": solved, "problems": problems})
    out = pd.DataFrame(rows, columns=["optimizer", "tau", "solved", "problems"])
    out["fraction"] = out["solved"] / out["problems"].where(out["problems"] > 0)
    return out


def findings_job(inputs: Any, output: Any, converged_below: float, log_path: str | Path) -> None:
    """Rule findings (inside Snakemake's process): read ``inputs.summary`` (Parquet),
    ``inputs.theory`` and, where the edge search runs, ``inputs.edge`` (CSV), and write
    :func:`write_findings`'s tables. A damaged input stops it with
    :class:`gdbench.inputs.JobInputError` naming the file, writing nothing."""
    from gdbench.inputs import require_readable

    edge_path = getattr(inputs, "edge", None)
    require_readable([inputs.summary, inputs.theory, *([edge_path] if edge_path else [])], log_path)
    edge = pd.read_csv(edge_path) if edge_path else None
    with open(log_path, "a") as log:
        write_findings(pd.read_parquet(inputs.summary), edge, pd.read_csv(inputs.theory), converged_below, output, log)


def write_findings(
    summary: pd.DataFrame,
    edge: pd.DataFrame | None,
    theory: pd.DataFrame | None,
    converged_below: float,
    output: Any,
    log: TextIO,
) -> None:
    """The findings job: ``output.findings``, ``output.time_to_target`` and ``output.profile``
    (CSV), and ``output.findings_html`` (the findings table for the report); the findings as
    text to ``log``."""
    from gdbench import io
    from gdbench.html_tables import write_interactive_table

    table = findings_table(summary, edge, theory, converged_below)
    io.write_csv(table, output.findings)
    io.write_csv(time_to_target(summary, converged_below), output.time_to_target)
    io.write_csv(performance_profile(summary), output.profile)
    note = (
        "One row per dataset x optimizer x the other non-lr axes, over seeds (results/tables/findings.csv); "
        "its description defines every column. Click a header to sort; type in Search to filter."
    )
    write_interactive_table(table, output.findings_html, "Findings", note)
    print(table.to_string(index=False), file=log)
