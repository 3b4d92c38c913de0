"""gdbench: reproducible benchmarks of gradient descent on linear regression.

The package is the pipeline's core and works without Snakemake. Data flows one way:
config -> run specs (:mod:`gdbench.runs`) -> engine (:mod:`gdbench.engines`) ->
trajectories and verdicts (:mod:`gdbench.verdicts`) -> tables (:mod:`gdbench.tables`) ->
plots (:mod:`gdbench.plots`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Dataset", "DatasetError", "DatasetSpec", "RunSpec", "load_dataset"]
__version__ = "0.1.0"

#: Where each name of the package's surface lives: imported on first use, so that importing
#: one module of the package (a job's first line, :mod:`gdbench.warmstart`) imports no other.
_LAZY = {
    "Dataset": "gdbench.data",
    "DatasetError": "gdbench.data",
    "DatasetSpec": "gdbench.data",
    "load_dataset": "gdbench.data",
    "RunSpec": "gdbench.runs",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gdbench' has no attribute {name!r}")
