"""The timing plan: which measurements an experiment's timing settings ask for, and taking them all on
one device, when the machine has a core free for them.

:func:`plan` lists the (engine, n, runs, optimizer) items; :func:`measure_plan` measures
them with :func:`gdbench.timing.harness.measure_safely` (a failed measurement, e.g. out of
memory, becomes a row of NaN with its reason logged). The timing job goes first in a run and
reserves the cores that keep the jobs beside it off its CPUs (:func:`reserved_slots`); before
it measures, it still waits (up to
``quiet_wait`` seconds in all, retakes included) until no more processes are runnable than
leave its cores free. A CPU
measurement whose process still had its cores less than ``min_cpu_share`` of the time is
taken again, once the machine is quiet, up to ``attempts`` times in all; the least disturbed
one is kept and the table says how disturbed it was (``cpu_share``) and how many were taken
(``attempts``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from gdbench.experiment import Experiment, TimingSettings
from gdbench.reads import Reads
from gdbench.timing.results import TimingResult

log = logging.getLogger("gdbench.timing")

#: What the timing job reads (:func:`measure_plan`; this module imports torch only
#: when it measures, so the workflow reads this at parse time without it): its settings and the
#: optimizers it times (``enabled`` only decides whether it runs).
TIMING_READS = Reads(
    (
        "optimizers.*",
        "timing.sizes",
        "timing.runs",
        "timing.engines",
        "timing.optimizers",
        "timing.epochs",
        "timing.repeats",
        "timing.min_run_time",
        "timing.threads",
        "timing.quiet_wait",
        "timing.min_cpu_share",
        "timing.attempts",
    )
)

#: Data size of the throughput panel (batched grid sizes): the lesson's three points.
THROUGHPUT_N = 3

#: A plan item: (engine, n, runs, optimizer name).
PlanItem = tuple[str, int, int, str]


def plan(settings: TimingSettings) -> list[PlanItem]:
    """The (engine, n, runs, optimizer) measurements of an experiment's timing settings
    (:attr:`gdbench.experiment.Experiment.timing`), in a stable order. With the first of
    ``optimizers``:

    * ``loop`` at each size with one run;
    * ``batched`` at each size with one run (the seconds-per-epoch vs n panel);
    * ``batched`` at ``n = 3`` for each grid size in ``runs`` (the throughput panel).

    With each other optimizer, at ``n = 3``: ``loop`` with one run and ``batched`` with the
    largest grid size (the optimizer panel: each optimizer's cost in the lesson's loop and in
    a big batch). Never the cross product of sizes and grid sizes (n=1e6 x 10,000 runs would
    not fit), nor of optimizers and sizes.
    """
    first, *others = settings.optimizers
    items: list[PlanItem] = []
    if "loop" in settings.engines:
        items += [("loop", n, 1, first) for n in settings.sizes]
    if "batched" in settings.engines:
        items += [("batched", n, 1, first) for n in settings.sizes]
        items += [("batched", THROUGHPUT_N, r, first) for r in settings.runs]
    for name in others:
        if "loop" in settings.engines:
            items.append(("loop", THROUGHPUT_N, 1, name))
        if "batched" in settings.engines:
            items.append(("batched", THROUGHPUT_N, max(settings.runs), name))
    return list(dict.fromkeys(items))


def reserved_slots(cores: int, cpus: int, threads: int, alone: bool) -> int:
    """Snakemake core slots the timing job reserves of a local run's ``--cores``: all of them
    with ``alone`` (nothing runs beside it), else as many as keep the jobs beside it (one slot
    each at least) from taking its ``threads`` of the machine's ``cpus``.

    ``--cores 4`` on 2 CPUs with 1 thread: 3 slots, so one other job runs beside the timing
    (its quiet criterion, :func:`wait_for_quiet`, holds from the start and it measures at
    once); ``--cores 16`` on 16 CPUs: 1. Never fewer than ``threads`` (Snakemake lowers a
    job's threads to ``--cores``), never more than ``cores``.
    """
    if alone:
        return cores
    beside = max(0, cpus - threads)  # CPUs the other jobs may have
    return min(cores, max(threads, cores - beside))


def runnable_processes() -> int | None:
    """Processes running or waiting for a core right now (Linux's /proc/loadavg), this one
    included; ``None`` where the system does not say."""
    try:
        with open("/proc/loadavg") as fh:
            return int(fh.read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None


def wait_for_quiet(threads: int, timeout: float, poll: float = 0.05) -> bool:
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


def _disturbed(result: TimingResult, settings: TimingSettings) -> bool:
    return result.ok and not result.device.startswith("cuda") and result.cpu_share < settings.min_cpu_share


def measure_plan(
    experiment: Experiment,
    device: str,
    threads: int | None = None,
    items: Iterable[PlanItem] | None = None,
    progress: Callable[[TimingResult], None] | None = None,
) -> list[TimingResult]:
    """Take every measurement of an experiment's timing plan (or ``items``) on one device with
    ``threads`` torch threads (default ``timing.threads``), a disturbed CPU one again later (see
    the module's docstring).

    The device and the optimizer names are checked first: a missing device raises
    :class:`gdbench.engines.DeviceError` (the job fails with one line), a name the experiment
    does not define ``KeyError``. After that, each failed measurement becomes a NaN row with
    its reason logged, and the others go on.
    """
    from gdbench.engines import check_device
    from gdbench.timing import harness

    cfg = experiment.timing
    threads = cfg.threads if threads is None else threads
    check_device(device)
    todo = plan(cfg) if items is None else list(items)
    specs = {name: experiment.optimizer(name) for name in dict.fromkeys(item[3] for item in todo)}
    args = (cfg.epochs, threads, cfg.repeats, cfg.min_run_time)
    results: list[TimingResult | None] = [None] * len(todo)
    deadline = time.monotonic() + cfg.quiet_wait  # one wait for all rounds: a busy machine costs it once
    for attempt in range(1, cfg.attempts + 1):
        again = [i for i, result in enumerate(results) if result is None or _disturbed(result, cfg)]
        if not again:
            break
        left = max(0.0, deadline - time.monotonic())
        quiet = wait_for_quiet(threads, left) if not device.startswith("cuda") else True
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
            _log(device, result)
        if progress:
            progress(result)
    return done


def _log(device: str, result: TimingResult) -> None:
    """One measurement in the job's log."""
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
