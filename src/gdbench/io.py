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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported where a table is written or read: the timing job writes none
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


class ParquetAppender:
    """A Parquet file written a table at a time (row groups of at most :data:`ROW_GROUP_ROWS`
    rows each), so a writer holds one chunk of rows, never the whole file. Dictionary
    (categorical) columns are written with int32 indices whatever the chunk's own, so chunks
    with other categories append alike.

    With ``background``, each table is encoded and written by one worker thread while the
    caller builds the next (Arrow's writer releases the GIL): at most one table waits, so the
    memory stays that of two chunks. The file is the same either way.
    Use inside :func:`atomic_path`; :meth:`close` finishes the file (and re-raises a failed
    write)."""

    def __init__(self, path: str | os.PathLike[str], background: bool = False) -> None:
        self.path = Path(path)
        self.rows = 0
        self._writer: Any = None
        self._schema: Any = None
        self._pool: Any = None
        self._pending: Any = None
        if background:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer")

    def append(self, table: Any) -> None:
        """Append a pandas DataFrame or a pyarrow Table."""
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        if isinstance(table, pd.DataFrame):
            table = pa.Table.from_pandas(table, preserve_index=False)
        if self._writer is None:
            self._schema = unified_schema(table.schema)
            self._writer = pq.ParquetWriter(self.path, self._schema, **parquet_options(self._schema))
        table = table.cast(self._schema)
        self.rows += table.num_rows
        if self._pool is None:
            self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            return
        self._wait()  # one table in flight at most
        self._pending = self._pool.submit(self._writer.write_table, table, row_group_size=ROW_GROUP_ROWS)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        try:
            self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            if self._writer is not None:
                self._writer.close()


#: Rows per Parquet row group at most (a training job's chunk of runs is one or a few).
ROW_GROUP_ROWS = 1 << 20


def parquet_options(schema: Any) -> dict[str, Any]:
    """How the big tables are written: LZ4 (as fast as Snappy here, files a third the size);
    dictionary pages on the repeated columns (run attributes, ids, epochs), not on the
    per-epoch floats, whose dictionaries cost more to build than they save; min/max
    statistics on ``run_id`` only (a reader skips row groups by run id; on every column they
    cost a third of the writing time)."""
    import pyarrow as pa

    floats = {f.name for f in schema if pa.types.is_floating(f.type)}
    keys = [name for name in schema.names if name not in floats]
    return {"compression": "lz4", "use_dictionary": keys, "write_statistics": [n for n in keys if n == "run_id"]}


def unified_schema(schema: Any) -> Any:
    """``schema`` with every dictionary column as ``dictionary<int32, string>``."""
    import pyarrow as pa

    fields = [
        pa.field(f.name, pa.dictionary(pa.int32(), pa.string())) if pa.types.is_dictionary(f.type) else f
        for f in schema
    ]
    return pa.schema(fields, metadata=schema.metadata)


@contextmanager
def parquet_appender(path: str | os.PathLike[str], background: bool = False) -> Iterator[ParquetAppender]:
    """A :class:`ParquetAppender` to ``path`` (writing in a worker thread with ``background``),
    renamed into place once closed without error."""
    with atomic_path(path) as tmp:
        writer = ParquetAppender(tmp, background)
        try:
            yield writer
        finally:
            writer.close()


#: Cells from which :func:`write_csv` builds the text with pyarrow (below, pandas is cheaper than the import).
FAST_CSV_CELLS = 20_000


def write_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """``df.to_csv(index=False)``, byte for byte; a large table's text built by :mod:`gdbench.csv_text`."""
    from gdbench.csv_text import frame_csv

    text = frame_csv(df) if df.size >= FAST_CSV_CELLS else None
    with atomic_path(path) as tmp:
        if text is None:
            df.to_csv(tmp, index=False)
        else:
            tmp.write_bytes(text.encode())


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
    ``log_path``; returns the joined table. A damaged input stops it with one line naming the file and the
    remedy."""
    import pandas as pd

    from gdbench.inputs import require_readable

    require_readable(paths, log_path)
    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    write_csv(table, out_path)
    write_text(table.to_string(index=False) + "\n", log_path)
    return table
