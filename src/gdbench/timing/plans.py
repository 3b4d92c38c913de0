"""The timing plan: which measurements a ``timing:`` config asks for, and taking them all on
one device, when the machine has a core free for them.

:func:`plan` lists the (engine, n, runs, optimizer) items; :func:`measure_plan` measures
them with :func:`gdbench.timing.harness.measure_safely` (a failed measurement, e.g. out of
memory, becomes a row of NaN with its reason logged). The timing job runs beside the other
jobs of a run (it imports and prepares meanwhile); before it measures, it waits (up to
``quiet_wait`` seconds) until no more processes are runnable than leave its cores free. A CPU
measurement whose process still had its cores less than ``min_cpu_share`` of the time is
taken again, once the machine is quiet, up to ``attempts`` times in all; the least disturbed
one is kept and the table says how disturbed it was (``cpu_share``) and how many were taken
(``attempts``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from gdbench.config import ConfigError, check_config
from gdbench.engines import check_device
from gdbench.optimizers import DEFAULT_NAME, PLAIN_SGD, OptimizerSpec, default_specs
from gdbench.timing import harness
from gdbench.timing_results import TimingResult

log = logging.getLogger("gdbench.timing")

#: Data size of the throughput panel (batched grid sizes): the lesson's three points.
THROUGHPUT_N = 3

#: A plan item: (engine, n, runs, optimizer name).
PlanItem = tuple[str, int, int, str]


def checked(timing_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """A ``timing:`` section checked by the config's schema, with its defaults filled in.

    The schema is the only source of the defaults and of what is valid; a bad value raises
    :class:`gdbench.config.ConfigError` (a ``ValueError``) naming the key. ``optimizers``
    names the caller's optimizers (which this section alone cannot define): checked here as
    a non-empty list of distinct names only; :func:`measure_plan` looks them up.
    """
    section = dict(timing_config or {})
    names = section.pop("optimizers", None)
    result = check_config({"timing": section})["timing"]
    if names is not None:
        if not (isinstance(names, (list, tuple)) and names and all(isinstance(n, str) and n for n in names)):
            raise ConfigError("must be a non-empty list of optimizer names", ("timing", "optimizers"), names)
        result["optimizers"] = list(dict.fromkeys(names))
    return result


def plan(timing_config: Mapping[str, Any] | None) -> list[PlanItem]:
    """The (engine, n, runs, optimizer) measurements a ``timing:`` config asks for, in a
    stable order. With the first of ``optimizers``:

    ``timing_config`` is a config's ``timing:`` section, whole or in part: the config's schema
    checks it and fills in the rest.

    * ``loop`` at each size with one run;
    * ``batched`` at each size with one run (the seconds-per-epoch vs n panel);
    * ``batched`` at ``n = 3`` for each grid size in ``runs`` (the throughput panel).

    With each other optimizer, at ``n = 3``: ``loop`` with one run and ``batched`` with the
    largest grid size (the optimizer panel: each optimizer's cost in the lesson's loop and in
    a big batch). Never the cross product of sizes and grid sizes (n=1e6 x 10,000 runs would
    not fit), nor of optimizers and sizes.
    """
    cfg = checked(timing_config)
    first, *others = cfg["optimizers"]
    items: list[PlanItem] = []
    if "loop" in cfg["engines"]:
        items += [("loop", n, 1, first) for n in cfg["sizes"]]
    if "batched" in cfg["engines"]:
        items += [("batched", n, 1, first) for n in cfg["sizes"]]
        items += [("batched", THROUGHPUT_N, r, first) for r in cfg["runs"]]
    for name in others:
        if "loop" in cfg["engines"]:
            items.append(("loop", THROUGHPUT_N, 1, name))
        if "batched" in cfg["engines"]:
            items.append(("batched", THROUGHPUT_N, max(cfg["runs"]), name))
    return list(dict.fromkeys(items))


def runnable_processes() -> int | None:
    """Processes running or waiting for a core right now (Linux's /proc/loadavg), this one
    included; ``None`` where the system does not say."""
    try:
        with open("/proc/loadavg") as fh:
            return int(fh.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None


def wait_for_quiet(threads: int, timeout: float, poll: float = 0.1) -> bool:
    """Wait (up to ``timeout`` seconds) until the processes wanting a core leave ``threads``
    cores free for this one, three readings in a row; whether they did (True at once where the
    system does not say)."""
    cores = os.cpu_count() or 1
    quiet, deadline = 0, time.monotonic() + timeout
    while True:
        running = runnable_processes()
        if running is None:
            return True
        quiet = quiet + 1 if running <= max(1, cores - threads + 1) else 0
        if quiet >= 3:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def _specs(todo: list[PlanItem], optimizers: Mapping[str, OptimizerSpec] | None) -> dict[str, OptimizerSpec]:
    defined = default_specs() if optimizers is None else dict(optimizers)
    specs = {}
    for name in dict.fromkeys(item[3] for item in todo):
        if name not in defined and name != DEFAULT_NAME:
            raise KeyError(f"timing.optimizers: {name!r} is not defined in optimizers ({', '.join(defined)})")
        specs[name] = defined.get(name, PLAIN_SGD)
    return specs


def _disturbed(result: TimingResult, cfg: Mapping[str, Any]) -> bool:
    return result.ok and not result.device.startswith("cuda") and result.cpu_share < cfg["min_cpu_share"]


def measure_plan(
    timing_config: Mapping[str, Any] | None,
    device: str,
    threads: int = 1,
    items: Iterable[PlanItem] | None = None,
    progress: Callable[[TimingResult], None] | None = None,
    optimizers: Mapping[str, OptimizerSpec] | None = None,
) -> list[TimingResult]:
    """Take every measurement of a ``timing:`` config (or ``items``) on one device, a
    disturbed CPU one again later (see the module's docstring).

    ``optimizers`` defines the names ``timing.optimizers`` uses (absent: the schema's default
    optimizers). The device and the names are checked first: a missing device raises
    :class:`gdbench.engines.DeviceError` (the job fails with one line), an undefined name
    ``KeyError``. After that, each failed measurement becomes a NaN row with its reason
    logged, and the others go on.
    """
    cfg = checked(timing_config)
    check_device(device)
    todo = plan(cfg) if items is None else list(items)
    specs = _specs(todo, optimizers)
    args = (cfg["epochs"], threads, cfg["repeats"], cfg["min_run_time"])
    results: list[TimingResult | None] = [None] * len(todo)
    for attempt in range(1, cfg["attempts"] + 1):
        again = [i for i, result in enumerate(results) if result is None or _disturbed(result, cfg)]
        if not again:
            break
        quiet = wait_for_quiet(threads, cfg["quiet_wait"]) if not device.startswith("cuda") else True
        if attempt > 1 and not quiet:
            log.info("timing: the machine stayed busy; %d disturbed measurements kept as they are", len(again))
            break
        for i in again:
            engine, n, runs, name = todo[i]
            result = harness.measure_safely(device, engine, n, runs, *args, specs[name])
            previous = results[i]
            if previous is not None and not (result.ok and result.cpu_share > previous.cpu_share):
                result = previous
            results[i] = replace(result, attempts=attempt)
    done = [result for result in results if result is not None]
    for result in done:
        if result.ok:
            log.info(
                "timing %s %s %s n=%d runs=%d: %.3g s/epoch (IQR %.2g, %d repeats, cpu share %.2f, attempts %d), "
                "%.3g run-epochs/s",
                device,
                result.engine,
                result.optimizer,
                result.n,
                result.runs,
                result.median_s_per_epoch,
                result.iqr_s_per_epoch,
                result.repeats,
                result.cpu_share,
                result.attempts,
                result.run_epochs_per_s,
            )
        if progress:
            progress(result)
    return done
