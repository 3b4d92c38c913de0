"""The timing harness: one measurement of one workload, taken as benchmark tools take them.

1. the thread count is fixed with ``torch.set_num_threads(threads)`` (and recorded);
2. one untimed warm-up call (CUDA context, allocator, lazy initialisation);
3. a block-size search, as ``torch.utils.benchmark``'s ``blocked_autorange`` does it (a second
   warm-up): the fewest calls, 1, 10, 100, ..., that take at least ``min_run_time / 1000`` (and
   1 ms) together, so that reading the clock is a negligible part of a block;
4. blocks of that many calls are timed until ``min_run_time`` seconds are spent and there are
   at least ``repeats`` of them;
5. on CUDA the clock synchronises the measured device before every reading, so queued kernels
   are inside the block they belong to;
6. median and interquartile range over the blocks (seconds per call), the machine's CPU or GPU
   name recorded, and the process's CPU time over the blocks' wall time (``cpu_share``, per
   thread): 1 when the timed process had its cores throughout, less when other processes took
   turns on them (the measurement's disturbance, measured). On CUDA the share counts the
   waits for the device too, so it says nothing there.
"""

from __future__ import annotations

import logging
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from gdbench.engines import check_device
from gdbench.optimizers import DEFAULT_NAME, PLAIN_SGD, OptimizerSpec
from gdbench.provenance import cpu_model
from gdbench.runs import ENGINES
from gdbench.timing import workloads
from gdbench.timing.results import TimingResult

log = logging.getLogger("gdbench.timing")

#: A block of calls takes at least this long (and min_run_time / 1000), so the clock's own
#: overhead (~0.1 us) stays below 1e-4 of it.
MIN_BLOCK_SECONDS = 1.0e-3


def device_name(device: str | torch.device) -> str:
    """The CPU model (:func:`gdbench.provenance.cpu_model`) or the GPU's name."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return cpu_model()


def device_clock(device: torch.device) -> Callable[[], float]:
    """The clock blocks are timed with: on CUDA it first waits for ``device``'s queued kernels."""
    if device.type != "cuda":
        return timeit.default_timer

    def clock() -> float:
        torch.cuda.synchronize(device)
        return timeit.default_timer()

    return clock


@dataclass(frozen=True)
class Blocks:
    """Timed blocks of one workload: seconds per call of each block, and the process's CPU
    seconds and the wall seconds over all of them."""

    number: int
    per_call: tuple[float, ...]
    cpu_seconds: float
    wall_seconds: float

    @property
    def median(self) -> float:
        return float(np.median(self.per_call))

    @property
    def iqr(self) -> float:
        q25, q75 = np.percentile(self.per_call, [25, 75])
        return float(q75 - q25)

    def cpu_share(self, threads: int) -> float:
        """CPU seconds per wall second and thread: 1 undisturbed, less where others took turns."""
        return self.cpu_seconds / (self.wall_seconds * threads) if self.wall_seconds > 0 else float("nan")


def time_blocks(
    call: Callable[[], object],
    clock: Callable[[], float],
    min_run_time: float,
    repeats: int,
    cpu_clock: Callable[[], float] = time.process_time,
) -> Blocks:
    """Warm up, find the block size, then time blocks until ``min_run_time`` seconds and
    ``repeats`` blocks (steps 2-4 of the module's list)."""

    def block(number: int) -> float:
        start = clock()
        for _ in range(number):
            call()
        return clock() - start

    call()  # warm-up, untimed
    clock()
    number = 1
    while (seconds := block(number)) < max(min_run_time / 1000, MIN_BLOCK_SECONDS) and number < 10**9:
        if seconds > min_run_time:
            break
        number *= 10
    per_call: list[float] = []
    spent = 0.0
    cpu_start, wall_start = cpu_clock(), clock()
    while spent < min_run_time or len(per_call) < repeats:
        seconds = block(number)
        spent += seconds
        per_call.append(seconds / number)
    wall = clock() - wall_start
    return Blocks(number, tuple(per_call), cpu_clock() - cpu_start, wall)


def check_args(engine: str, n: int, runs: int, epochs: int, threads: int, repeats: int, min_run_time: float) -> None:
    """One clear ``ValueError`` for an argument no measurement can take."""
    if engine not in ENGINES:
        raise ValueError(f"timing: engine must be one of {ENGINES}, got {engine!r}")
    for name, value in (("n", n), ("runs", runs), ("threads", threads), ("repeats", repeats)):
        if int(value) != value or value < 1:
            raise ValueError(f"timing: {name} must be an integer >= 1, got {value!r}")
    if int(epochs) != epochs or epochs < 0:
        raise ValueError(f"timing: epochs must be an integer >= 0, got {epochs!r}")
    if not min_run_time > 0:
        raise ValueError(f"timing: min_run_time must be > 0 seconds, got {min_run_time!r}")
    if engine == "loop" and runs != 1:
        raise ValueError(f"timing: the loop engine is timed one run at a time (runs=1), got runs={runs}")


def measure(
    device: str,
    engine: str,
    n: int,
    runs: int = 1,
    epochs: int = 20,
    threads: int = 1,
    repeats: int = 5,
    min_run_time: float = 0.2,
    optimizer: OptimizerSpec = PLAIN_SGD,
) -> TimingResult:
    """Seconds per epoch of ``engine`` training ``runs`` runs on ``n`` points on ``device``
    with ``optimizer``.

    Raises :class:`gdbench.engines.DeviceError` (one line naming the device and what torch
    sees) when ``device`` is not usable, ``ValueError`` for bad arguments; any error of the
    measurement itself (e.g. out of memory) propagates: :func:`measure_safely` turns it into
    a NaN row.
    """
    dev = check_device(device)
    check_args(engine, n, runs, epochs, threads, repeats, min_run_time)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        call = workloads.workload(dev, engine, n, runs, epochs, optimizer)
        blocks = time_blocks(call, device_clock(dev), min_run_time, repeats)
    finally:
        torch.set_num_threads(previous_threads)
    calls_epochs = epochs + 1
    per_epoch = blocks.median / calls_epochs
    return TimingResult(
        device=str(device),
        device_name=device_name(dev),
        engine=engine,
        n=int(n),
        runs=int(runs),
        epochs=int(epochs),
        threads=int(threads),
        median_s_per_epoch=per_epoch,
        iqr_s_per_epoch=blocks.iqr / calls_epochs,
        repeats=len(blocks.per_call),
        run_epochs_per_s=runs / per_epoch,
        optimizer=optimizer.name,
        cpu_share=blocks.cpu_share(threads),
    )


def failed_result(
    device: str, engine: str, n: int, runs: int, epochs: int, threads: int, reason: str, optimizer: str = DEFAULT_NAME
) -> TimingResult:
    """A NaN row for a measurement that could not be taken (``reason`` kept in ``error``)."""
    try:
        name = device_name(device)
    except Exception:  # the device itself may be what failed
        name = "unknown"
    nan = float("nan")
    return TimingResult(
        str(device), name, engine, int(n), int(runs), int(epochs), int(threads), nan, nan, 0, nan, reason, optimizer
    )


def measure_safely(
    device: str,
    engine: str,
    n: int,
    runs: int = 1,
    epochs: int = 20,
    threads: int = 1,
    repeats: int = 5,
    min_run_time: float = 0.2,
    optimizer: OptimizerSpec = PLAIN_SGD,
) -> TimingResult:
    """:func:`measure`, but a failure becomes a NaN row and a logged warning with the reason."""
    try:
        return measure(device, engine, n, runs, epochs, threads, repeats, min_run_time, optimizer)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
        log.warning(
            "timing %s %s %s n=%d runs=%d failed; row left NaN: %s", device, engine, optimizer.name, n, runs, reason
        )
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return failed_result(device, engine, n, runs, epochs, threads, reason, optimizer.name)
