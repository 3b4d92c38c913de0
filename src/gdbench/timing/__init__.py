"""Timing: seconds per epoch of each engine, on each device, measured as benchmark tools do.

Three parts: :mod:`gdbench.timing.workloads` (what is timed: the data, the learning rates, the
call of each engine), :mod:`gdbench.timing.harness` (how one measurement is taken: warm-up,
blocks, median and IQR, and how much of the time the process had its cores) and
:mod:`gdbench.timing.plans` (which measurements a ``timing:`` config asks for, taken on one
device, disturbed ones again). :mod:`gdbench.timing.results` holds the results and the
published table without torch: this package loads its torch-using parts only when one of the
names below is first used, so tables and plots import the results (and the workflow what
the timing job reads) without paying for torch.

Each with an optimizer (``timing.optimizers``, names of the config's ``optimizers``): the
first is timed at every size and grid size, the others at the lesson's size (``n = 3``) with
one run in the loop engine and the largest grid in the batched engine, so an optimizer costs
two measurements, not a copy of the plan.

From the command line: ``gdbench timing --device cpu --out timing.csv`` (also
``python -m gdbench.timing ...``) takes a config's measurements.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gdbench.timing.harness import device_name, failed_result, measure, measure_safely
    from gdbench.timing.plans import THROUGHPUT_N, PlanItem, measure_plan, plan
    from gdbench.timing.workloads import LOWEST_LR, timing_dataset_spec, timing_lrs

#: The module that holds each name of this package (imported when the name is first used).
_HOME = {
    "device_name": "harness",
    "failed_result": "harness",
    "measure": "harness",
    "measure_safely": "harness",
    "THROUGHPUT_N": "plans",
    "PlanItem": "plans",
    "measure_plan": "plans",
    "plan": "plans",
    "LOWEST_LR": "workloads",
    "timing_dataset_spec": "workloads",
    "timing_lrs": "workloads",
}

__all__ = [
    "LOWEST_LR",
    "THROUGHPUT_N",
    "PlanItem",
    "device_name",
    "failed_result",
    "measure",
    "measure_plan",
    "measure_safely",
    "plan",
    "timing_dataset_spec",
    "timing_lrs",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
