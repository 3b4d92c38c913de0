"""The reproducibility check (PASSED or FAILED) as users read it at the end of a run: one line
from the check's JSON file (written by :mod:`gdbench.verify`'s job, which trains; this module only
reads files, so Snakemake's own process can print it without importing torch). The workflow
names the files: result paths belong to it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["reproducibility_line", "results_notice"]


def reproducibility_line(check: str | Path, summaries: Sequence[str | Path], recheck: str) -> str:
    """The reproducibility check in one line (for the end of a run, where users look):
    PASSED or FAILED with its counts and when it was checked, "for earlier results" when
    training ran after it (with ``recheck``, the command that checks again), else "unknown"."""
    check = Path(check)
    trained = max((Path(p).stat().st_mtime for p in summaries if Path(p).exists()), default=0)
    try:
        result = json.loads(check.read_text())
    except (OSError, ValueError):
        return f"gdbench: reproducibility unknown: no {check} yet (to check: `{recheck}`)"
    status = "PASSED" if result.get("passed") else "FAILED"
    if trained > check.stat().st_mtime:
        status += f" for earlier results (the results changed since: `{recheck}` checks them)"
    lesson = "" if result.get("lesson_log_reproduced") else " not"
    when = f"checked {result['checked']}, " if result.get("checked") else ""
    message = f" ({result['message']})" if result.get("message") else ""
    return (
        f"gdbench: reproducibility {status}{message}: {result.get('runs_identical')} of "
        f"{result.get('runs_checked')} re-trained runs bit-identical, the lesson's log{lesson} "
        f"reproduced ({when}{check.with_suffix('.html')})"
    )


def results_notice(provenance: str | Path, config_hash: str, grid: str) -> str | None:
    """A line saying that this grid's folder holds results of another config (whose jobs this
    run replaces where their settings changed), or None."""
    try:
        before = json.loads(Path(provenance).read_text()).get("config_hash")
    except (OSError, ValueError):
        return None
    if before in (None, config_hash):
        return None
    folder = Path(provenance).parent
    return (
        f"gdbench: {folder}/ holds the results of config {before}; the jobs whose settings changed "
        f"rerun there (to keep those results, give this grid its own name: --config name=NEW)"
    )
