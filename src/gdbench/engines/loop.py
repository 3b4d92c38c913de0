"""The loop engine: the lesson's code path, one run at a time.

``W`` and ``b`` are tensors with ``requires_grad=True``, the run's torch optimizer
(``optim.SGD`` in the lesson, or ``optim.Adam``) updates them, and each epoch does
``zero_grad(); backward(); step()`` for ``range(epochs + 1)``. It is the reference the batched
engine is checked against, and the baseline it is timed against.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from gdbench.engines.run_setup import DTYPE_OF, check_device, epoch_order, initial_params, shuffle_generator
from gdbench.engines.tracker import VerdictTracker
from gdbench.optimizers import PLAIN_SGD, OptimizerSpec
from gdbench.runs import RunSpec
from gdbench.trajectory import TrajectoryBatch, record_schedule
from gdbench.verdicts import divergence_is_final

if TYPE_CHECKING:  # annotations only
    from gdbench.engines.run_setup import DataSource, TrainOptions


def torch_optimizer(spec: OptimizerSpec, params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """The real torch.optim object of ``spec``, its implementation pinned to the single-tensor
    loop (``foreach=False, fused=False``). torch picks ``foreach`` by itself on CUDA and may
    pick ``fused`` kernels; those compute the same update with other operations in another
    order (Adam's multi-tensor path may multiply the gradient by ``1 - beta2`` before squaring
    it, and divides the denominator by ``step_size`` when capturable), so results would depend
    on the device's default. Pinned, every device runs the one implementation whose
    elementwise operations the batched engine repeats (:mod:`gdbench.engines.updates`)."""
    if spec.kind == "adam":
        return torch.optim.Adam(params, lr=lr, **spec.arguments(), foreach=False, fused=False)
    return torch.optim.SGD(params, lr=lr, **spec.arguments(), foreach=False, fused=False)


def lesson_run(
    run: RunSpec,
    x: torch.Tensor,
    y: torch.Tensor,
    diverged_factor: float = float("inf"),
    optimizer_spec: OptimizerSpec = PLAIN_SGD,
) -> tuple[list[float], list[float], list[float]]:
    """Train one run exactly as the lesson does; returns per-epoch (W, b, cost) lists.
    ``optimizer_spec`` is the optimizer ``run.optimizer`` names (the lesson's plain SGD by
    default).

    Training stops after the first epoch whose cost is non-finite or above
    ``diverged_factor`` x the initial cost (see :mod:`gdbench.verdicts`). Minibatch runs
    shuffle with their seed and report, per epoch, the full-data cost at the epoch's start."""
    torch.manual_seed(run.seed)
    w0, b0 = initial_params(run)
    W = torch.tensor([w0], dtype=x.dtype, device=x.device, requires_grad=True)
    b = torch.tensor([b0], dtype=x.dtype, device=x.device, requires_grad=True)
    optimizer = torch_optimizer(optimizer_spec, [W, b], run.lr)
    Ws: list[float] = []
    bs: list[float] = []
    costs: list[float] = []
    n = x.shape[0]
    minibatch = run.is_minibatch(n)
    step = run.batch_size or n  # points per update
    generator = shuffle_generator(run.seed) if minibatch else None
    limit = float("inf")
    for _epoch in range(run.epochs + 1):
        if generator is None:
            hypothesis = x * W + b
            cost = torch.mean((hypothesis - y) ** 2)
            optimizer.zero_grad()
            cost.backward()
            optimizer.step()
            epoch_cost = cost.item()
        else:
            with torch.no_grad():
                epoch_cost = torch.mean((x * W + b - y) ** 2).item()
            order = epoch_order(generator, n).to(x.device)
            for start in range(0, n, step):
                batch = order[start : start + step]
                cost = torch.mean((x[batch] * W + b - y[batch]) ** 2)
                optimizer.zero_grad()
                cost.backward()
                optimizer.step()
        Ws.append(W.item())
        bs.append(b.item())
        costs.append(epoch_cost)
        if not np.isfinite(epoch_cost) or epoch_cost > limit:
            break
        if _epoch == 0:
            limit = diverged_factor * (epoch_cost if epoch_cost > 0 else 1.0)
    return Ws, bs, costs


def train_loop(runs: list[RunSpec], data: DataSource, options: TrainOptions) -> TrajectoryBatch:
    """Train ``runs`` one after another with :func:`lesson_run`."""
    epochs = record_schedule([r.epochs for r in runs], options.record_every)
    dtype = np.result_type(*[np.dtype(r.dtype) for r in runs])
    shape = (len(runs), epochs.size)
    W = np.full(shape, np.nan, dtype=dtype)
    b = np.full(shape, np.nan, dtype=dtype)
    cost = np.full(shape, np.nan, dtype=dtype)
    seconds = np.zeros(len(runs))
    final = np.array([divergence_is_final(options.optimizer(r).kind) for r in runs], dtype=bool)
    tracker = VerdictTracker(len(runs), options.criteria, "cpu", *data.references(runs, options.optimizer), final)
    for i, run in enumerate(runs):
        device = check_device(run.device)
        x, y = data.get(run).tensors(DTYPE_OF[run.dtype], device)
        start = time.perf_counter()
        factor = float("inf") if final[i] else options.criteria.diverged_factor  # Adam stops only at non-finite
        Ws, bs, cs = lesson_run(run, x, y, factor, options.optimizer(run))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds[i] = time.perf_counter() - start
        t = lambda v: torch.tensor(v, dtype=torch.float64)[:, None]  # noqa: E731
        tracker.update(torch.tensor([i]), 0, t(cs), t(Ws), t(bs), torch.tensor([run.epochs]))
        done = len(cs)
        cols = epochs < done
        W[i, cols] = np.asarray(Ws)[epochs[cols]]
        b[i, cols] = np.asarray(bs)[epochs[cols]]
        cost[i, cols] = np.asarray(cs)[epochs[cols]]
        if options.progress and (i + 1) % max(1, len(runs) // 10) == 0:
            options.progress(f"loop engine: {i + 1}/{len(runs)} runs done")
    verdicts = tracker.result()
    out = TrajectoryBatch(runs, epochs, W, b, cost, verdicts, seconds, options.record_every)
    out.blank_after_stop()
    return out
