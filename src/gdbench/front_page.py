"""The findings in words: the report's front page (reStructuredText, included by
``workflow/report/workflow.rst``) and the lines the terminal prints at the end of a run.

Everything here is read from the tables (:mod:`gdbench.findings`' findings table, the
summary's run counts, the timing table): nothing is recomputed from the config, and every
number printed is a table's value, rounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from gdbench.findings import GROUP

__all__ = ["front_page", "run_lines", "write_front_page"]


def _lr(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.4g}"


def _epochs(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:g}"


def _ratio(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.5g}"


def _varying(findings: pd.DataFrame, axes: Sequence[str]) -> list[str]:
    """The axes among ``axes`` that take more than one value (they label the rows)."""
    return [a for a in axes if a in findings and findings[a].astype(str).nunique() > 1]


def _group_label(row: pd.Series, axes: Sequence[str]) -> str:
    return ", ".join(f"{a} {row[a]}" for a in axes)


def counts_line(summary: pd.DataFrame) -> str:
    """How many runs converged, diverged or neither, and agree with the theory's verdict."""
    diverged = summary["diverged"].astype(bool)
    converged = summary["converged_at"].notna() & ~diverged
    known = summary["predicted_diverged"].notna()
    agree = known & (summary["predicted_diverged"].fillna(False).astype(bool) == diverged)
    devices = ", ".join(dict.fromkeys(summary["device"].astype(str)))
    return (
        f"{len(summary)} runs on {devices}: {int(converged.sum())} converged, {int(diverged.sum())} diverged, "
        f"{int((~converged & ~diverged).sum())} neither within their epochs; the theory's divergence verdict "
        f"agrees with {int(agree.sum())} of the {int(known.sum())} runs it covers (full batch, SGD family)"
    )


def _best(row: pd.Series, epochs: str = " epochs") -> str:
    """The best lr and its epochs (median, and the range over seeds where they differ)."""
    if pd.isna(row["best_lr"]):
        return "no lr converged on every seed"
    spread = ""
    if row["best_epochs_min"] != row["best_epochs_max"]:
        spread = f", {_epochs(row['best_epochs_min'])}–{_epochs(row['best_epochs_max'])} over seeds"
    return f"{_lr(row['best_lr'])} ({_epochs(row['best_epochs'])}{epochs}{spread})"


def run_lines(findings: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """The terminal's findings lines: the counts, then per group the best lr of each optimizer
    and the one that needs the fewest epochs."""
    lines = [f"gdbench: {counts_line(summary)}"]
    axes = ["dataset", *_varying(findings, [a for a in GROUP if a not in ("dataset", "optimizer")])]
    for _, part in findings.groupby(axes, sort=False):
        first = part.iloc[0]
        winner = part[part["rank"] == 1]["optimizer"].astype(str).tolist()
        tail = f"; fewest epochs: {', '.join(winner)}" if winner else "; no optimizer converged"
        phrases = ", ".join(f"{r['optimizer']} {_best(r)}" for _, r in part.iterrows())
        lines.append(f"gdbench: best lr on {_group_label(first, axes)}: {phrases}{tail}")
    return lines


def _sentence(row: pd.Series) -> str:
    """One optimizer's findings in a sentence."""
    if pd.isna(row["best_lr"]):
        parts = ["no lr converged on every seed"]
    else:
        parts = [f"fastest at lr {_best(row)}"]
        if pd.notna(row["theory_lr"]):
            parts[0] += f"; the theory's fastest lr {_lr(row['theory_lr'])}, {_epochs(row['theory_epochs'])} epochs"
    if pd.notna(row["diverged_lr_min"]):
        parts.append(f"diverged from lr {_lr(row['diverged_lr_min'])} on the grid")
    else:
        parts.append("no run diverged")
    if pd.notna(row["edge_hi"]):
        parts.append(
            f"located edge {_lr(row['edge_hi'])} = {_ratio(row['edge_ratio'])} × critical lr {_lr(row['critical_lr'])}"
        )
    return f"**{row['optimizer']}**: " + "; ".join(parts)


def _table(findings: pd.DataFrame, axes: Sequence[str]) -> list[str]:
    """The compact findings table as an RST csv-table."""
    header = [*axes, "optimizer", "best lr", "epochs (median)", "theory lr", "theory epochs"]
    header += ["largest converged lr", "smallest diverged lr", "edge / critical lr", "agree / checked"]
    lines = [".. csv-table::", "   :header: " + ", ".join(f'"{h}"' for h in header), ""]
    for _, r in findings.iterrows():
        cells = [*(str(r[a]) for a in axes), str(r["optimizer"]), _lr(r["best_lr"]), _epochs(r["best_epochs"])]
        cells += [_lr(r["theory_lr"]), _epochs(r["theory_epochs"]), _lr(r["converged_lr_max"])]
        cells += [_lr(r["diverged_lr_min"]), _ratio(r["edge_ratio"]), f"{r['theory_agree']} / {r['theory_checked']}"]
        lines.append("   " + ", ".join(f'"{c}"' for c in cells))
    return [*lines, ""]


def _grid_line(summary: pd.DataFrame) -> str:
    """What was run, counted from the summary."""

    def values(col: str) -> list[str]:
        return [f"{v:g}" if isinstance(v, float) else str(v) for v in dict.fromkeys(summary[col].tolist())]

    axes = [("dataset", "datasets"), ("optimizer", "optimizers"), ("lr", "learning rates"), ("seed", "seeds")]
    axes += [("epochs", "epoch counts"), ("device", "devices"), ("engine", "engines"), ("batch_size", "batch sizes")]
    parts = [f"{len(values(c))} {name} (``{', '.join(values(c))}``)" for c, name in axes if len(values(c)) > 1]
    single = [f"{c} ``{values(c)[0]}``" for c, _ in axes if len(values(c)) == 1]
    return " × ".join(parts) + (f"; {', '.join(single)}" if single else "")


def front_page(findings: pd.DataFrame, summary: pd.DataFrame, reproducibility: str, crossover: str | None) -> str:
    """The report's findings section in RST: counts, a sentence per optimizer and group, the
    compact table, the reproducibility check and (both devices timed) the crossover."""
    if summary.empty:
        return "**What this grid found:** no runs.\n"
    out = [
        f"**This report's grid** (counted from ``tables/summary.csv``): {_grid_line(summary)}.",
        "",
        f"**What it found** (``tables/findings.csv``; the *Findings* entries define every column): "
        f"{counts_line(summary)}.",
        "",
    ]
    axes = ["dataset", *_varying(findings, [a for a in GROUP if a not in ("dataset", "optimizer")])]
    for _, part in findings.groupby(axes, sort=False):
        winner = part[part["rank"] == 1]
        lead = f"- On **{_group_label(part.iloc[0], axes)}**: "
        if len(winner):
            w = winner.iloc[0]
            lead += f"fewest epochs to the target with **{w['optimizer']}** (lr {_best(w)})."
        else:
            lead += "no optimizer converged on every seed at any lr."
        out += [lead, ""] + [f"  - {_sentence(r)}." for _, r in part.iterrows()] + [""]
    out += ["", *_table(findings, axes)]
    out.append(f"**Reproducibility:** {reproducibility}.")
    if crossover:
        out += ["", f"**CPU vs GPU:** {crossover}."]
    return "\n".join(out) + "\n"


def crossover_sentence(timing: pd.DataFrame | None) -> str | None:
    """Where both devices were timed: the data size from which CUDA beats the CPU."""
    from gdbench.timing.results import crossover_n

    if timing is None or timing.empty or not timing["device"].astype(str).str.startswith("cuda").any():
        return None
    n = crossover_n(timing)
    if n is None:
        return "CUDA did not overtake the CPU at the timed sizes (loop engine, single runs)"
    return f"CUDA is faster than the CPU from about n = {n:,.0f} data points (loop engine, single runs)"


def write_front_page(inputs: Any, output: Any, log_path: str | Path) -> None:
    """The front-page job: ``output.rst`` (included by the report's front page),
    ``output.html`` (the same as a page of the report) and ``output.text`` (the findings lines
    the run prints last), from ``inputs.findings``, ``inputs.summary``, the reproducibility check and
    ``inputs.timing`` where timing ran."""
    from docutils.core import publish_parts  # type: ignore[import-untyped]

    from gdbench import io
    from gdbench.reproducibility import reproducibility_line

    findings = pd.read_csv(inputs.findings)
    summary = pd.read_parquet(inputs.summary)
    timing = pd.read_csv(inputs.timing) if hasattr(inputs, "timing") else None
    reproducibility = reproducibility_line(inputs.reproducibility, [], "snakemake verify").removeprefix(
        "gdbench: reproducibility "
    )
    rst = front_page(findings, summary, reproducibility, crossover_sentence(timing))
    io.write_text(rst, output.rst)
    body = publish_parts(rst, writer_name="html")["html_body"]
    io.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Findings</title></head><body>{body}</body></html>\n",
        output.html,
    )
    lines = run_lines(findings, summary)
    io.write_text("\n".join(lines) + "\n", output.text)
    io.write_text(rst, log_path)
