"""A job's input files checked before it reads them: a damaged or unreadable Parquet, CSV or
JSON file (a disk that filled up, a copy that broke) stops the job with one line naming the
file and the remedy, and the reader's traceback goes to the job's log.

Files under the workflow's ``results/`` folder are made by its jobs, so the remedy is to delete
the file and rerun: Snakemake makes a missing file again, and what depends on it. Other files
(a dataset's CSV) are the user's to repair.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

__all__ = ["DamagedInput", "JobInputError", "check_inputs", "check_readable", "remedy", "require_readable"]


class DamagedInput(Exception):
    """An input file that cannot be read as what its name says it is."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class JobInputError(Exception):
    """A job stopped on a damaged input; the message is the one line for users."""


def remedy(path: str | os.PathLike[str], command: str = "the same snakemake command") -> str:
    """What to do about a damaged ``path``: delete and rerun where the workflow makes it."""
    parts = Path(path).parts
    if "results" in parts:
        return f"delete it and run {command} again: Snakemake makes it again, and what depends on it"
    return "repair or replace it (the workflow does not make it)"


def check_readable(path: str | os.PathLike[str]) -> None:
    """Read ``path`` enough to know it is whole (a Parquet file's footer and schema, a CSV or
    JSON file in full); raise :class:`DamagedInput` naming it if not."""
    path = Path(path)
    kind = path.suffix.lower()
    try:
        if path.stat().st_size == 0:
            raise ValueError("the file is empty")
        if kind == ".parquet":
            import pyarrow.parquet as pq

            pq.ParquetFile(path).schema_arrow  # noqa: B018 (reading the footer is the check)
        elif kind == ".csv":
            import pandas as pd

            pd.read_csv(path)
        elif kind == ".json":
            json.loads(path.read_text(encoding="utf-8"))
    except Exception as exc:  # any reader's failure means the same to the user
        what = {".parquet": "Parquet", ".csv": "CSV", ".json": "JSON"}.get(kind, "file")
        raise DamagedInput(path, f"damaged or unreadable as {what} ({type(exc).__name__}: {exc})") from exc


def _first_damaged(paths: Iterable[str | os.PathLike[str]], log: TextIO) -> str | None:
    """The one line about the first damaged file of ``paths`` (its traceback and the line
    written to ``log``), or None."""
    for path in paths:
        try:
            check_readable(path)
        except DamagedInput as exc:
            traceback.print_exc(file=log)
            cause = str(exc.__cause__ or exc).strip().splitlines() or [""]
            line = f"gdbench: input {exc.path} is damaged or unreadable ({cause[0][:100]}): {remedy(exc.path)}"
            print(line, file=log, flush=True)
            return line
    return None


def require_readable(paths: Iterable[str | os.PathLike[str]], log_path: str | os.PathLike[str]) -> None:
    """For jobs that run inside Snakemake's process (``run:``): raise :class:`DamagedInput`
    whose message is the one line (Snakemake shows it), the traceback in ``log_path``."""
    with open(log_path, "w") as log:
        line = _first_damaged(paths, log)
    if line is not None:
        raise JobInputError(line)


def check_inputs(paths: Iterable[str | os.PathLike[str]], log: TextIO) -> None:
    """Check every input of a job; on the first damaged one, write the traceback to ``log``,
    print one line naming the file and the remedy where the user looks (the terminal), and
    exit non-zero (no output is written)."""
    line = _first_damaged(paths, log)
    if line is not None:
        print(line, file=sys.__stderr__, flush=True)
        raise SystemExit(1)
