"""Writing files so that a killed process never leaves one that looks complete.

Every writer goes through :func:`atomic_path`: the data is written to a temporary file in the
target's folder and renamed over the target only once it is complete (rename is atomic on
POSIX file systems).
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it to ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A writer killed mid-way (SIGKILL, node failure) leaves its temp file behind; the rerun
    # that replaces the target clears it (one job writes a target at a time).
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; results are for everyone
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a table as Parquet or CSV, by the file's suffix."""
    (write_csv if str(path).endswith(".csv") else write_parquet)(df, path)


def write_html_table(df: pd.DataFrame, path: str | os.PathLike[str], title: str, note: str = "") -> None:
    """A table as a small self-contained HTML page (for the report, where CSVs only download)."""
    body = df.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.6g}", border=0, classes="gdbench")
    style = (
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;font-size:13px}"
        "th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}th{background:#f3f3f3}"
    )
    html = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head>"
        f"<body><h3>{title}</h3><p>{note}</p>{body}</body></html>\n"
    )
    write_text(html, path)


def write_json(data: Any, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def join_csv(
    paths: Sequence[str | os.PathLike[str]], out_path: str | os.PathLike[str], log_path: str | os.PathLike[str]
) -> pd.DataFrame:
    """Concatenate CSV tables (e.g. one per device) into one, and the joined table as text to
    ``log_path``; returns the joined table."""
    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    write_csv(table, out_path)
    write_text(table.to_string(index=False) + "\n", log_path)
    return table
