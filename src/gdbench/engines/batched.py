"""The batched engine: many runs as one tensor program with a trailing run dimension.

Runs in one call share device, dtype, batch size, number of points and optimizer; they may
differ in lr, seed, init, epochs and dataset. Parameters live in a ``[2, R]`` tensor (row 0 W, row 1 b)
and data in ``[n, 1]`` (one dataset for all) or ``[n, R]`` tensors, so every operation runs
along contiguous memory. Each epoch repeats, for all runs at once, the floating-point
operations that autograd and the optimizer perform in the loop engine (products, sums, then
the optimizer's update of :mod:`gdbench.engines.updates`, in the same order), and sums each
run's terms over contiguous memory, as the loop does. On the CPU this makes every trajectory
bit-identical to the loop engine's, and independent of which other runs share the batch
(so a run re-trained alone reproduces its stored trajectory bit for bit).

Full batch, the cost of each epoch comes from the same forward pass as its gradient (the
cost before the update: the lesson's convention); minibatch, it is the full-data cost at the
epoch's start, computed afterwards for a whole chunk of epochs at once. Every
``chunk_epochs`` epochs, runs that diverged or finished are dropped from the tensors, so
they stop being computed and never overflow into later work.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gdbench.engines.run_setup import DTYPE_OF, check_device, epoch_order, initial_params, shuffle_generator
from gdbench.engines.tracker import VerdictTracker
from gdbench.engines.updates import SGDUpdate, Update, make_update
from gdbench.optimizers import PLAIN_SGD
from gdbench.runs import RunSpec
from gdbench.trajectory import TrajectoryBatch, record_schedule
from gdbench.verdicts import divergence_is_final

if TYPE_CHECKING:  # annotations only
    from gdbench.engines.run_setup import DataSource, TrainOptions

#: Up to this many points, the pairwise tree sum adds in the order the CPU's own reduction
#: does ((x0 + x1) + x2), so the fast point-major layout stays bit-identical to the loop.
_TREE_MATCHES_LOOP_UP_TO = 3

#: Largest number of elements of a temporary residual tensor in the bulk cost.
_COST_BLOCK = 1 << 22


def _grad_scale(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(1 / n) * 2`` rounded as autograd rounds it (mean backward, then pow backward)."""
    return (torch.tensor(1.0, dtype=dtype, device=device) / n) * 2


class _Stepper:
    """Gradient steps for R runs on m points, with preallocated temporaries.

    ``X``, ``Y``: ``[m, 1]`` (shared by all runs) or ``[m, R]``; ``update``: the optimizer's
    update of the R runs (a ``[R]`` tensor of ``-lr`` stands for plain SGD).

    A run's numbers must not depend on which runs share its batch (``snakemake verify``
    re-trains runs in other company). Point-major data (``[m, R]``: every operation runs
    along the runs, vectorised and coalesced) with sums over points as a fixed pairwise tree
    of elementwise additions (:func:`_tree_sum`, whose order depends on m alone) serve CUDA,
    and the CPU up to 3 points, where the tree adds in the loop's own order. On the CPU with
    more points, every tensor is run-major (``[R, m]``; the data transposed once) so that each
    run's products and sums run along contiguous memory, the sums in the order of the loop's
    own reduction, for any number of runs.
    """

    def __init__(
        self, X: torch.Tensor, Y: torch.Tensor, update: Update | torch.Tensor, run_major: bool | None = None
    ) -> None:
        if isinstance(update, torch.Tensor):
            update = SGDUpdate(PLAIN_SGD, update)
        m, R = X.shape[0], _runs(update)
        self.X, self.Y, self.update = X, Y, update
        self.scale = _grad_scale(m, X.dtype, X.device)
        if run_major is None:  # on the CPU up to 3 points, the tree's order is the loop's own
            run_major = X.device.type == "cpu" and m > _TREE_MATCHES_LOOP_UP_TO
        self.run_major = run_major
        like: dict[str, Any] = {"dtype": X.dtype, "device": X.device}
        self.grad = torch.empty((2, R), **like)
        if run_major:  # every tensor [R, m] (data [1 or R, m]): each run's points contiguous
            self.XT, self.YT = X.T.contiguous(), Y.T.contiguous()
            self.d = torch.empty((R, m), **like)
            self.sq = torch.empty((R, m), **like)
            self.t = torch.empty((R, m), **like)
        else:
            self.XA = torch.stack([X, torch.ones_like(X)])  # [2, m, 1 or R]
            self.d = torch.empty((m, R), **like)
            self.sq = torch.empty((m, R), **like)
            self.t = torch.empty((2, m, R), **like)

    def __call__(self, P: torch.Tensor, out: torch.Tensor, cost: torch.Tensor | None = None) -> None:
        """``out`` = one optimizer step from parameters ``P`` ``[2, R]`` (``P - lr * grad(P)``
        for plain SGD); ``cost`` [R], when given, receives the cost at ``P`` (the forward
        pass: ``mean((x W + b - y)^2)``)."""
        d = self.d
        if self.run_major:  # autograd's order: ((x * W) + b) - y, then * 2/n
            torch.mul(self.XT, P[0, :, None], out=d)
            d.add_(P[1, :, None]).sub_(self.YT)
            if cost is not None:
                torch.mul(d, d, out=self.sq)
                torch.mean(self.sq, 1, out=cost)
            d.mul_(self.scale)
            torch.mul(d, self.XT, out=self.t)
            torch.sum(self.t, 1, out=self.grad[0])
            torch.sum(d, 1, out=self.grad[1])  # b's input gradient is d * 1 = d, exactly
        else:
            torch.mul(self.X, P[0], out=d)
            d.add_(P[1]).sub_(self.Y)
            if cost is not None:
                torch.mul(d, d, out=self.sq)
                torch.div(_tree_sum(self.sq, 0), self.X.shape[0], out=cost)
            d.mul_(self.scale)
            torch.mul(d, self.XA, out=self.t)
            self.grad.copy_(_tree_sum(self.t, 1))
        self.update(P, self.grad, out)


def _runs(update: Update) -> int:
    return (update.neg_lr if isinstance(update, SGDUpdate) else update.lr).shape[0]


def _tree_sum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum over ``dim`` by halving: ``x[:h] + x[h:2h]``, an odd last element added onto the
    first, repeated. Elementwise additions only, so the order depends on the size of ``dim``
    alone, never on the other dimensions (for 3 points: ``(x0 + x1) + x2``)."""
    while x.shape[dim] > 1:
        m = x.shape[dim]
        h = m // 2
        s = x.narrow(dim, 0, h) + x.narrow(dim, h, h)
        if m % 2:
            s.narrow(dim, 0, 1).add_(x.narrow(dim, 2 * h, 1))
        x = s
    return x.squeeze(dim)


class _FullBatchChunks:
    """K full-batch epochs at a time for a fixed set of runs.

    On CUDA the K steps are captured once as a CUDA graph and replayed per chunk, so a chunk
    costs one launch instead of ~9 per epoch (launches, not arithmetic, bound small grids).
    Only for updates that repeat the same computation every step (``update.stateless``: SGD
    without momentum); the others (momentum buffers, Adam's step count) run eagerly.
    """

    def __init__(self, X: torch.Tensor, Y: torch.Tensor, update: Update, K: int, graph: bool) -> None:
        R = _runs(update)
        self.K = K
        self.step = _Stepper(X, Y, update)
        self.buf = torch.zeros((K + 1, 2, R), dtype=X.dtype, device=X.device)
        self.cost = torch.empty((K, R), dtype=X.dtype, device=X.device)
        self.graph = None
        if graph:
            side = torch.cuda.Stream(X.device)
            side.wait_stream(torch.cuda.current_stream(X.device))
            with torch.cuda.stream(side):
                self._steps()  # warm-up outside the capture
            torch.cuda.current_stream(X.device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self._steps()

    def _steps(self) -> None:
        for k in range(self.K):
            self.step(self.buf[k], self.buf[k + 1], self.cost[k])

    def __call__(self, P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters ``[K+1, 2, R]`` (from ``P``) and costs ``[K, R]``; reused buffers."""
        self.buf[0].copy_(P)
        if self.graph is not None:
            self.graph.replay()
        else:
            self._steps()
        return self.buf, self.cost


def bulk_cost(params: torch.Tensor, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """MSE cost ``[K, R]`` at parameters ``[K, 2, R]`` for data ``[n, 1 or R]`` (residuals
    run-major, so each run's mean runs over contiguous memory, as in :class:`_Stepper`)."""
    K, _, R = params.shape
    n = X.shape[0]
    XT, YT = X.T.contiguous(), Y.T.contiguous()  # [1 or R, n]
    step = max(1, _COST_BLOCK // max(1, R * n))
    out = torch.empty((K, R), dtype=params.dtype, device=params.device)
    for k0 in range(0, K, step):
        p = params[k0 : k0 + step]
        if params.device.type == "cpu":
            d = XT * p[:, 0, :, None] + p[:, 1, :, None] - YT
            torch.mean(d * d, dim=2, out=out[k0 : k0 + step])
        else:  # point-major and a fixed summation tree, as in _Stepper on CUDA
            d = X * p[:, 0:1, :] + p[:, 1:2, :] - Y
            torch.div(_tree_sum(d * d, 1), n, out=out[k0 : k0 + step])
    return out


def _minibatch_epoch(
    P: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, update: Update, order: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """One epoch of minibatch steps for all runs; ``order`` [n, R] holds each run's permutation."""
    n, R = order.shape
    Xp = torch.gather(X.expand(n, R), 0, order)
    Yp = torch.gather(Y.expand(n, R), 0, order)
    for start in range(0, n, batch_size):
        step = _Stepper(Xp[start : start + batch_size], Yp[start : start + batch_size], update)
        out = torch.empty_like(P)
        step(P, out)
        P = out
    return P


def train_batched(runs: list[RunSpec], data: DataSource, options: TrainOptions) -> TrajectoryBatch:
    """Train runs of one device, dtype, batch size, size of data and optimizer together."""
    # One function on purpose (~95 lines): the chunk loop shares a dozen tensors (parameters,
    # optimizer state, the active set, records) whose re-gathering when runs drop out is the
    # subtle part; split across helpers, that state would travel through every signature.
    # The setup is array work, not a Python pass per run where it can be: a timed call of
    # 10,000 runs spent more in per-run Python than in 20 epochs of training.
    first = runs[0]
    n = data.get(first).n
    R = len(runs)
    keys = [data.key(r) for r in runs]
    firsts = dict(zip(keys, runs, strict=True))  # a run of each set of points, in order of first use
    shared = {(r.device, r.dtype, r.batch_size, r.optimizer) for r in runs}
    if len(shared) != 1 or any(data.get(r).n != n for r in firsts.values()):
        raise ValueError("train_batched: runs must share device, dtype, batch_size, optimizer and number of points")
    device = check_device(first.device)
    dtype = DTYPE_OF[first.dtype]
    start_time = time.perf_counter()
    row_of = {k: i for i, k in enumerate(firsts)}
    # Data as [n, D] columns; runs pick their column (or share the only one).
    X_cols = torch.tensor(np.stack([data.get(r).x for r in firsts.values()], axis=1), dtype=dtype, device=device)
    Y_cols = torch.tensor(np.stack([data.get(r).y for r in firsts.values()], axis=1), dtype=dtype, device=device)
    cols_np = np.fromiter((row_of[k] for k in keys), dtype=np.int64, count=R)
    cols = torch.from_numpy(cols_np).to(device)
    spec = options.optimizer(first)
    update = make_update(spec, np.fromiter((r.lr for r in runs), dtype=np.float64, count=R), dtype, device)
    ends_np = np.fromiter((r.epochs for r in runs), dtype=np.int64, count=R)
    ends_all = torch.from_numpy(ends_np).to(device)
    if all(r.init == "zeros" for r in runs):
        P = torch.zeros((2, R), dtype=dtype, device=device)
    else:
        P = torch.tensor([initial_params(r) for r in runs], dtype=dtype).T.contiguous().to(device)

    minibatch = first.is_minibatch(n)
    step = first.batch_size or n  # points per update
    if minibatch:
        seeds = sorted({r.seed for r in runs})
        seed_pos = {seed: i for i, seed in enumerate(seeds)}
        seed_idx_all = torch.from_numpy(np.fromiter((seed_pos[r.seed] for r in runs), np.int64, R)).to(device)
        generators = [shuffle_generator(s) for s in seeds]

    schedule = record_schedule(ends_np, options.record_every)
    rec = torch.full((3, schedule.size, R), float("nan"), dtype=dtype, device=device)
    final = np.full(R, divergence_is_final(spec.kind))
    # The runs share their optimizer and dtype: their references differ by their points only.
    optimal, floor = data.references(list(firsts.values()), lambda _run: spec)
    tracker = VerdictTracker(R, options.criteria, device, optimal[cols_np], floor[cols_np], final)
    boundaries = (np.unique(ends_np) + 1).tolist()
    max_epoch = boundaries[-1] - 1

    active = torch.arange(R, device=device)
    e = 0
    last_report = time.perf_counter()
    chunks: _FullBatchChunks | None = None
    changed = True  # the active runs changed: gather their data and learning rates again
    while active.numel() > 0:
        if changed:
            X = X_cols if X_cols.shape[1] == 1 else X_cols[:, cols[active]]
            Y = Y_cols if Y_cols.shape[1] == 1 else Y_cols[:, cols[active]]
            seed_idx = seed_idx_all[active] if minibatch else None
        K = min(options.chunk_epochs, next(b for b in boundaries if b > e) - e)
        if minibatch:
            buf = torch.empty((K + 1, 2, active.numel()), dtype=dtype, device=device)
            buf[0] = P
            for k in range(K):
                perms = torch.stack([epoch_order(g, n) for g in generators], dim=1).to(device)
                buf[k + 1] = _minibatch_epoch(buf[k], X, Y, update, perms[:, seed_idx], step)
            cost = bulk_cost(buf[:K], X, Y)
        else:
            # Same runs and chunk length as the last chunk: reuse its buffers (and graph).
            if chunks is None or chunks.K != K or changed:
                graph = device.type == "cuda" and options.cuda_graphs and update.stateless
                chunks = _FullBatchChunks(X, Y, update, K, graph=graph)
            buf, cost = chunks(P)
        done = tracker.update(active, e, cost, buf[1:, 0], buf[1:, 1], ends_all[active])
        in_chunk = (schedule >= e) & (schedule < e + K)
        if in_chunk.any():
            t_idx = torch.from_numpy(np.nonzero(in_chunk)[0]).to(device)
            pos = torch.from_numpy(schedule[in_chunk] - e).to(device)
            values = torch.stack([buf[pos + 1, 0], buf[pos + 1, 1], cost[pos]])
            if active.numel() == R:  # nobody dropped yet: a plain index along time
                rec.index_copy_(1, t_idx, values)
            else:
                rec[:, t_idx[:, None], active[None, :]] = values
        changed = bool(done.any())
        P = buf[K][:, ~done] if changed else buf[K].clone()
        if changed:
            update.keep(~done)
        active = active[~done] if changed else active
        e += K
        if options.progress and time.perf_counter() - last_report > 5:
            last_report = time.perf_counter()
            options.progress(f"batched engine: epoch {e}/{max_epoch}, {active.numel()}/{R} runs still training")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start_time
    rec_np = rec.transpose(1, 2).cpu().numpy()
    out = TrajectoryBatch(
        runs, schedule, rec_np[0], rec_np[1], rec_np[2], tracker.result(), np.full(R, elapsed / R), options.record_every
    )
    out.blank_after_stop()
    return out
