"""The reproducibility verdict as users read it at the end of a run: one line from
``results/reproducibility.json`` (written by :mod:`gdbench.verify`, which trains; this module
only reads files, so Snakemake's own process can print it without importing torch).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["VERDICT", "verdict_message"]

#: The verify job's verdict, relative to the workflow's working directory.
VERDICT = "results/reproducibility.json"


def verdict_message(root: str | Path = ".") -> str:
    """The reproducibility verdict in one line (for the end of a run, where users look), read
    under ``root``: PASSED or FAILED with its counts, "for earlier results" when training ran
    after the verdict, verify's own error line when it stopped the run, else "unknown"."""
    root = Path(root)
    verdict_path, log = root / VERDICT, root / "results/logs/verify.log"
    trained = max((p.stat().st_mtime for p in (root / "results/shards").glob("*/summary.parquet")), default=0)
    try:
        result = json.loads(verdict_path.read_text())
    except (OSError, ValueError):
        if log.exists() and log.stat().st_mtime >= trained:
            errors = [line for line in log.read_text().splitlines() if line.startswith("error: ")]
            if errors:  # verify stopped the run: its one-line reason
                return f"gdbench: reproducibility FAILED: {errors[-1][7:]} (see {log.relative_to(root)})"
        return f"gdbench: reproducibility unknown: no {VERDICT} (see results/logs/verify.log)"
    verdict = "PASSED" if result.get("passed") else "FAILED"
    lesson = "" if result.get("lesson_log_reproduced") else " not"
    if trained > verdict_path.stat().st_mtime:
        verdict += " for earlier results (the results changed since: run `snakemake verify`)"
    return (
        f"gdbench: reproducibility {verdict}: {result.get('runs_identical')} of "
        f"{result.get('runs_checked')} re-trained runs bit-identical, the lesson's log{lesson} "
        f"reproduced (results/reproducibility.html)"
    )
