"""The lines a workflow run ends with: what it found (written by the front-page job, see
:mod:`gdbench.front_page`), the reproducibility check and how to build the report. Only
reads a file, so Snakemake's own process prints them without importing pandas or torch.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["end_of_run_message", "report_command"]


def report_command(results: str, options: str = "") -> str:
    """What builds the report of the grid whose results are in ``results``."""
    return " ".join(["snakemake", *([options] if options else []), f"--report {results}/report.html"])


def end_of_run_message(reproducibility: str, findings: str | Path, summary: str | Path, report: str) -> str:
    """The last lines of a run: the findings lines the front-page job wrote to ``findings``
    (unless ``summary`` is newer: then they are stale), the reproducibility line and
    ``report``, the command that builds the report. The workflow names the files."""
    path, summary = Path(findings), Path(summary)
    fresh = path.exists() and (not summary.exists() or path.stat().st_mtime >= summary.stat().st_mtime)
    lines = path.read_text().splitlines() if fresh else []
    return "\n".join([*lines, reproducibility, f"gdbench: build the report with `{report}`"])
