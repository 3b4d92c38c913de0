"""The lines a workflow run ends with: what it found (written by the front-page job, see
:mod:`gdbench.front_page`), the reproducibility verdict and how to build the report. Only
reads a file, so Snakemake's own process prints them without importing pandas or torch.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["FINDINGS_TEXT", "REPORT_COMMAND", "end_of_run_message"]

#: What builds the report, as the README says.
REPORT_COMMAND = "snakemake --report results/report.html"
#: The findings lines of the last run, relative to the workflow's working directory.
FINDINGS_TEXT = "results/findings.txt"


def end_of_run_message(verdict: str, root: str | Path = ".") -> str:
    """The last lines of a run: the findings lines of :data:`FINDINGS_TEXT` (unless the
    summary is newer: then they are stale), the reproducibility verdict and the command that
    builds the report."""
    path, summary = Path(root) / FINDINGS_TEXT, Path(root) / "results/tables/summary.parquet"
    fresh = path.exists() and (not summary.exists() or path.stat().st_mtime >= summary.stat().st_mtime)
    lines = path.read_text().splitlines() if fresh else []
    return "\n".join([*lines, verdict, f"gdbench: build the report with `{REPORT_COMMAND}`"])
