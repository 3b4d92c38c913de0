"""Timing: seconds per epoch of each engine, on each device, measured as benchmark tools do.

What is timed:

* the ``loop`` engine: :func:`gdbench.engines.lesson_run`, the lesson's own loop, for one run
  (``runs`` is always 1) of ``epochs`` epochs on a noise-free synthetic line of ``n`` points;
* the ``batched`` engine: one :func:`gdbench.engines.train_batched` call training ``runs`` runs
  of ``epochs`` epochs on the same line, learning rates spread over a converging range
  (``geomspace(1e-4, critical/2)``) so that no run drops out early, and
  ``TrainOptions(record_every=0)`` so only the final epoch is recorded.

Each with an optimizer (``timing.optimizers``, names of the config's ``optimizers``): the
first is timed at every size and grid size, the others at the lesson's size (``n = 3``) with
one run in the loop engine and the largest grid in the batched engine, so an optimizer costs
two measurements, not a copy of the plan.

The line is ``y = 2x`` on ``x`` in ``[1, 3]``: at ``n = 3`` it is exactly the lesson's data.
Both engines compute ``epochs + 1`` epochs per call (epochs ``0..epochs``, as the lesson's
``range(epochs + 1)``), so seconds per epoch is a call's time divided by ``epochs + 1``.

How (the way ``torch.utils.benchmark``, pytest-benchmark and asv measure):

1. the thread count is fixed with ``torch.set_num_threads(threads)`` (and recorded);
2. one untimed warm-up call (CUDA context, allocator, lazy initialisation);
3. ``torch.utils.benchmark.Timer.blocked_autorange(min_run_time)`` picks how many calls make one
   measurement (its block-size search is a second warm-up) and measures until ``min_run_time``
   seconds are spent; more measurements are taken until there are at least ``repeats``;
4. on CUDA the clock synchronises the measured device before every reading, so queued kernels
   are inside the measurement they belong to;
5. median and interquartile range over the measurements, the machine's CPU or GPU name recorded.

:func:`plan` lists what a timing config asks for, :func:`measure` takes one measurement,
:func:`measure_plan` takes a config's measurements on one device (a failed measurement, e.g.
out of memory, becomes a row of NaN with its reason logged), and :func:`gdbench.timing_results.timing_table`
makes the published table. ``python -m gdbench.timing --device cpu --out timing.csv`` runs a config's
timing from the command line.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import timeit
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gdbench import stability
from gdbench.config import ConfigError
from gdbench.data import DatasetSpec, parse_dataset
from gdbench.engines import DataSource, TrainOptions, check_device, lesson_run, train_batched
from gdbench.experiment import Experiment, TimingSettings, load_experiment, resolve
from gdbench.lesson import LESSON_LR
from gdbench.optimizers import DEFAULT_NAME, PLAIN_SGD, OptimizerSpec
from gdbench.provenance import cpu_model
from gdbench.runs import ENGINES, RunSpec
from gdbench.theory import analyse
from gdbench.timing_results import TimingResult, timing_table

log = logging.getLogger(__name__)

# torch.utils.benchmark imports torch.utils.cpp_extension, which on a CUDA build of torch
# without a usable GPU warns "No CUDA runtime is found" where a CUDA toolkit is installed. It
# concerns compiling C++ extensions, which timing never does: keep it out of the logs.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils.benchmark import Measurement, Timer  # noqa: E402  (after the line above)

#: Data size of the throughput panel (batched grid sizes): the lesson's three points.
THROUGHPUT_N = 3

#: Learning rates of a timed batch: from this to half the critical learning rate.
LOWEST_LR = 1.0e-4

#: A plan item: (engine, n, runs, optimizer name).
PlanItem = tuple[str, int, int, str]


# ----------------------------------------------------------------------------- the machine


def device_name(device: str | torch.device) -> str:
    """The CPU model (:func:`gdbench.provenance.cpu_model`) or the GPU's name."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return cpu_model()


def _device_clock(device: torch.device) -> Callable[[], float]:
    """The clock the Timer reads: on CUDA it first waits for ``device``'s queued kernels.

    (``Timer``'s own default synchronises only the *current* accelerator, and does so on
    CPU-only measurements too; this one is explicit about which device it waits for.)
    """
    if device.type != "cuda":
        return timeit.default_timer

    def clock() -> float:
        torch.cuda.synchronize(device)
        return timeit.default_timer()

    return clock


# ----------------------------------------------------------------------------- the workloads


def timing_dataset_spec(n: int) -> DatasetSpec:
    """The timed data: ``n`` evenly spaced points of ``y = 2x`` on ``[1, 3]`` (at n=3 the
    lesson's ``x = [1, 2, 3]``, ``y = [2, 4, 6]``)."""
    return parse_dataset(
        "line", {"synthetic": {"n": int(n), "slope": 2.0, "intercept": 0.0, "noise": 0.0, "x_min": 1.0, "x_max": 3.0}}
    )


def timing_lrs(runs: int, critical_lr: float) -> np.ndarray:
    """Learning rates of a timed grid of ``runs`` runs, all converging: one run uses the
    lesson's 0.01, more spread geometrically over ``[1e-4, critical_lr / 2]``."""
    top = 0.5 * critical_lr
    if runs == 1:
        return np.array([min(LESSON_LR, top)])
    return np.geomspace(min(LOWEST_LR, top / 10), top, runs)


def _workload(
    device: torch.device, engine: str, n: int, runs: int, epochs: int, optimizer: OptimizerSpec = PLAIN_SGD
) -> Callable[[], Any]:
    """A zero-argument call that trains once; everything else is prepared here, untimed."""
    data = DataSource({"line": timing_dataset_spec(n)})
    name = optimizer.name
    probe = RunSpec("line", LESSON_LR, 1, epochs, device=str(device), engine=engine, optimizer=name)
    dataset = data.get(probe)
    theory = analyse(dataset)
    # Below the optimizer's own critical lr where it has one (Nesterov's is lower), so no run stops.
    critical = min(theory.critical_lr, stability.critical_lr(optimizer, theory.lambda_max))
    lrs = timing_lrs(runs, critical if math.isfinite(critical) else theory.critical_lr)
    specs = [RunSpec("line", float(lr), 1, epochs, device=str(device), engine=engine, optimizer=name) for lr in lrs]
    if engine == "loop":
        x, y = dataset.tensors(torch.float32, device)
        return partial(lesson_run, specs[0], x, y, optimizer_spec=optimizer)
    return partial(train_batched, specs, data, TrainOptions(record_every=0, optimizers={name: optimizer}))


# ----------------------------------------------------------------------------- measuring


def _check_args(engine: str, n: int, runs: int, epochs: int, threads: int, repeats: int, min_run_time: float) -> None:
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
    _check_args(engine, n, runs, epochs, threads, repeats, min_run_time)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        call = _workload(dev, engine, n, runs, epochs, optimizer)
        clock = _device_clock(dev)
        call()  # warm-up, untimed
        clock()
        timer = Timer(
            stmt="call()",
            globals={"call": call},
            timer=clock,
            num_threads=threads,
            label="gdbench timing",
            sub_label=f"{engine} {optimizer.name} n={n} runs={runs} epochs={epochs}",
            description=str(dev),
        )
        first = timer.blocked_autorange(min_run_time=min_run_time)
        raw = list(first.raw_times)
        while len(raw) < repeats:  # top up with more blocks of the same size
            raw.append(timer._timeit(first.number_per_run))
        result = Measurement(first.number_per_run, raw, first.task_spec)
        per_call, iqr_call = result.median, result.iqr
    finally:
        torch.set_num_threads(previous_threads)
    calls_epochs = epochs + 1
    per_epoch = per_call / calls_epochs
    return TimingResult(
        device=str(device),
        device_name=device_name(dev),
        engine=engine,
        n=int(n),
        runs=int(runs),
        epochs=int(epochs),
        threads=int(threads),
        median_s_per_epoch=per_epoch,
        iqr_s_per_epoch=iqr_call / calls_epochs,
        repeats=len(raw),
        run_epochs_per_s=runs / per_epoch,
        optimizer=optimizer.name,
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


# ----------------------------------------------------------------------------- plans and tables


def plan(settings: TimingSettings) -> list[PlanItem]:
    """The (engine, n, runs, optimizer) measurements of an experiment's timing settings
    (:attr:`gdbench.experiment.Experiment.timing`), in a stable order. With the first of
    ``optimizers``:

    * ``loop`` at each size with one run;
    * ``batched`` at each size with one run (the seconds-per-epoch vs n panel);
    * ``batched`` at ``n = 3`` for each grid size in ``runs`` (the throughput panel).

    With each other optimizer, at ``n = 3``: ``loop`` with one run and ``batched`` with the
    largest grid size (the optimizer panel: each optimizer's cost in the lesson's loop and in
    a big batch). Never the cross product of
    sizes and grid sizes (n=1e6 x 10,000 runs would not fit), nor of optimizers and sizes.
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


def measure_plan(
    experiment: Experiment,
    device: str,
    items: Iterable[PlanItem] | None = None,
    progress: Callable[[TimingResult], None] | None = None,
) -> list[TimingResult]:
    """Take every measurement of an experiment's timing plan (or ``items``) on one device,
    with ``timing.threads`` torch threads.

    The device and the optimizer names are checked first: a missing device raises
    :class:`gdbench.engines.DeviceError` (the job fails with one line), a name the experiment
    does not define ``KeyError``. After that, each failed measurement becomes a NaN row with
    its reason logged, and the others go on.
    """
    cfg = experiment.timing
    check_device(device)
    todo = plan(cfg) if items is None else list(items)
    specs = {name: experiment.optimizer(name) for name in dict.fromkeys(item[3] for item in todo)}
    results = []
    for engine, n, runs, name in todo:
        result = measure_safely(
            device, engine, n, runs, cfg.epochs, cfg.threads, cfg.repeats, cfg.min_run_time, specs[name]
        )
        if result.ok:
            log.info(
                "timing %s %s %s n=%d runs=%d: %.3g s/epoch (IQR %.2g, %d repeats), %.3g run-epochs/s",
                device,
                engine,
                name,
                n,
                runs,
                result.median_s_per_epoch,
                result.iqr_s_per_epoch,
                result.repeats,
                result.run_epochs_per_s,
            )
        if progress:
            progress(result)
        results.append(result)
    return results


# ----------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gdbench.timing``: a config's timing measurements to a CSV."""
    parser = argparse.ArgumentParser(prog="python -m gdbench.timing", description=main.__doc__)
    parser.add_argument("--config", default="config/config.yaml", help="config file with a timing: section")
    parser.add_argument("--device", action="append", help="cpu or cuda (repeatable; default cpu)")
    parser.add_argument("--out", default="-", help="CSV to write (default: stdout)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        experiment = load_experiment(args.config) if Path(args.config).is_file() else resolve({})
    except ConfigError as exc:
        print(f"gdbench.timing: {exc}", file=sys.stderr)
        return 2
    results = []
    for device in args.device or ["cpu"]:
        results += measure_plan(experiment, device)
    table = timing_table(results)
    if args.out == "-":
        table.to_csv(sys.stdout, index=False)
    else:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
