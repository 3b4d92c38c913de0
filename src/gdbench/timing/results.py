"""Timing results and what is read from them, without torch (tables and plots use them):
one measurement (:class:`TimingResult`), the published table (:func:`timing_table`,
:data:`TIMING_COLUMNS`; :func:`write_timing_csv` writes it without pandas, which the timing
job then never imports) and where CUDA overtakes the CPU (:func:`crossover`, :func:`crossover_n`).
:mod:`gdbench.timing` takes the measurements.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from gdbench.optimizers import DEFAULT_NAME

if TYPE_CHECKING:
    import pandas as pd

#: The published table's columns, in order (``results/tables/timing.csv``).
TIMING_COLUMNS = (
    "device",
    "device_name",
    "engine",
    "optimizer",
    "n",
    "runs",
    "epochs",
    "threads",
    "median_s_per_epoch",
    "iqr_s_per_epoch",
    "repeats",
    "run_epochs_per_s",
    "cpu_share",
    "attempts",
)
_INTS = ("n", "runs", "epochs", "threads", "repeats", "attempts")
_FLOATS = ("median_s_per_epoch", "iqr_s_per_epoch", "run_epochs_per_s", "cpu_share")


@dataclass
class TimingResult:
    """One timing measurement: seconds per epoch of one engine and optimizer on one device and
    problem size.

    ``median_s_per_epoch`` and ``iqr_s_per_epoch`` are over ``repeats`` measurements (each the
    mean of one or more calls, as ``torch.utils.benchmark`` blocks them); ``run_epochs_per_s``
    is ``runs / median_s_per_epoch``. ``cpu_share`` is the timed process's CPU seconds per
    wall second and thread over the measurement (1: it had its cores throughout; less: other
    processes took turns on them), ``attempts`` how many measurements were taken to keep the
    least disturbed one. A failed measurement has NaN values, ``repeats`` 0 and its reason in
    ``error`` (which is not a column of the published table).
    """

    device: str
    device_name: str
    engine: str
    n: int
    runs: int
    epochs: int
    threads: int
    median_s_per_epoch: float
    iqr_s_per_epoch: float
    repeats: int
    run_epochs_per_s: float
    error: str = ""
    optimizer: str = DEFAULT_NAME
    cpu_share: float = math.nan
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """Whether the measurement succeeded."""
        return not self.error and math.isfinite(self.median_s_per_epoch)


def timing_table(results: Sequence[TimingResult]) -> pd.DataFrame:
    """The published timing table: exactly :data:`TIMING_COLUMNS`, one row per measurement."""
    import pandas as pd

    rows = [{k: v for k, v in asdict(r).items() if k in TIMING_COLUMNS} for r in results]
    table = pd.DataFrame(rows, columns=list(TIMING_COLUMNS))
    return table.astype({**dict.fromkeys(_INTS, "int64"), **dict.fromkeys(_FLOATS, "float64")})


def write_timing_csv(results: Sequence[TimingResult], path: str | os.PathLike[str]) -> None:
    """:func:`timing_table` as a CSV file (:func:`timing_csv`), renamed into place once complete."""
    from gdbench.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        timing_csv(results, fh)


def timing_csv(results: Sequence[TimingResult], out: TextIO) -> None:
    """:func:`timing_table` as CSV text, byte for byte what its ``to_csv(index=False)`` writes
    (integers as integers, floats in their shortest round-trip form, NaN as an empty field),
    but with the standard library: the timing job's process imports no pandas (~0.3 s of CPU
    on the workflow's critical path)."""

    def field(name: str, value: Any) -> Any:
        if name in _INTS:
            return int(value)
        if name in _FLOATS:
            return "" if math.isnan(value) else repr(float(value))
        return value

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TIMING_COLUMNS)
    for result in results:
        values = asdict(result)
        writer.writerow([field(name, values[name]) for name in TIMING_COLUMNS])


def crossover_n(table: pd.DataFrame, engine: str = "loop") -> float | None:
    """The data size n from which CUDA is faster than CPU for ``engine`` (single runs).

    Interpolated log-log between the two measured sizes around the crossing; the smallest
    size when CUDA is faster at every size; ``None`` when either device is missing or CUDA
    never overtakes (faster at the largest size and every size above the crossing).
    """
    import pandas as pd

    rows = table[(table.engine == engine) & (table.runs == 1)].dropna(subset=["median_s_per_epoch"])
    if "optimizer" in rows.columns and len(rows):  # the first optimizer, timed at every size
        rows = rows[rows.optimizer == rows.optimizer.iloc[0]]
    is_cuda = rows.device.astype(str).str.startswith("cuda")
    cpu = rows[~is_cuda].groupby("n").median_s_per_epoch.median()
    cuda = rows[is_cuda].groupby("n").median_s_per_epoch.median()
    both = pd.concat({"cpu": cpu, "cuda": cuda}, axis=1).dropna().sort_index()
    n, _ = crossover(both.index.to_numpy(), both.cpu.to_numpy(), both.cuda.to_numpy())
    return n


def crossover(n: np.ndarray, slow: np.ndarray, fast: np.ndarray) -> tuple[float | None, str]:
    """Where ``fast`` times (e.g. CUDA) drop below ``slow`` ones (e.g. CPU) and stay below,
    over sizes ``n`` (ascending): interpolated on log-log axes between the two sizes around
    the last crossing. Returns ``(n, "crosses")``, ``(smallest n, "always")`` when ``fast``
    wins at every size, ``(None, "never")`` when it does not win at the largest size, and
    ``(None, "unmeasured")`` without sizes."""
    if len(n) == 0:
        return None, "unmeasured"
    n = np.asarray(n, dtype=float)
    d = np.log(np.asarray(fast, dtype=float)) - np.log(np.asarray(slow, dtype=float))  # < 0: fast wins
    if d[-1] >= 0:
        return None, "never"
    slower = np.flatnonzero(d >= 0)
    if slower.size == 0:
        return float(n[0]), "always"
    i = int(slower[-1]) + 1
    x0, x1 = np.log(n[i - 1]), np.log(n[i])
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(np.exp(x0 + t * (x1 - x0))), "crosses"
