"""Per-run analysis: every quantity derived from a run's trajectory, its verdicts and the
theory, computed here once, between the theory (:mod:`gdbench.theory`,
:mod:`gdbench.stability`, :mod:`gdbench.horizon`) and verdicts (:mod:`gdbench.verdicts`) on
one side and the tables (:mod:`gdbench.tables`, which only assemble columns) on the other.

Per run (arrays of length R, NaN where a quantity has no meaning):

* ``rate``: the measured factor by which the excess cost changes per epoch, from the linear
  recurrence the theory predicts fitted to the recorded parameters (:mod:`gdbench.rates`): the
  contraction of a converging run, the growth of a diverged one before its divergence epoch;
  below 1 contracts, above 1 grows. For full-batch SGD (any momentum) without weight decay;
  empty for Adam (no linear recurrence) and where the fit's guards fail;
* ``predicted_rate``: the full-batch theory's asymptotic factor (``max rho^2`` over the
  directions the initial error has; :mod:`gdbench.stability`), from the error to the run's own
  optimum; empty for minibatch runs, without a closed form (Adam) and with weight decay (the
  excess against the regularised optimum is not a sum of squares: it changes sign);
* ``critical_lr``, ``fastest_lr``, ``lr_ratio = lr / critical_lr``: the run's optimizer's
  full-batch stable range on its dataset's Hessian; empty for minibatch runs (full-batch
  theory does not bound them: they can diverge below ``critical_lr`` and survive above it);
* ``predicted_diverged``: whether the full-batch theory predicts divergence *within the run's
  own epochs*: its cost passes the run's divergence threshold by its last epoch. For momentum
  and weight decay ``lr >= horizon_edge`` (the closed form below; the same verdicts as the
  float64 recurrence but within ~1e-12 relative of the edge), for plain SGD and where the
  closed form is empty the float64 recurrence of the run's optimizer from its initial point
  (:func:`gdbench.horizon.diverges`, in closed form for plain SGD). Not ``predicted_rate > 1``:
  just above the critical lr the error grows so slowly that a finite run does not diverge
  (1.01 x critical at 300 epochs). Unknown (``known`` false) for minibatch runs, Adam, and runs
  that start at the optimum;
* ``horizon_edge``: full-batch SGD of any momentum (plain, heavy ball, Nesterov, dampening and
  weight decay included), the smallest lr whose run of the same start and epochs diverges, in
  closed form (:func:`gdbench.horizon_formula.closed_form_edges`: within ~1e-12 of the float64
  bisection); empty where a transient below the critical lr could pass the threshold first
  (momentum near 1 or a small ``diverged_factor``);
* ``ms_critical_lr``, ``ms_lr_ratio = lr / ms_critical_lr``: minibatch runs of plain SGD
  (weight decay allowed) only, the mean-square stability bound of :mod:`gdbench.minibatch` (a
  bound of a model of independent random batches; empty for full-batch runs, whose
  ``critical_lr`` is exact, and for momentum).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

from gdbench import stability
from gdbench.data import Dataset
from gdbench.horizon import HorizonProblem, diverges
from gdbench.horizon_formula import closed_form_edges
from gdbench.minibatch import ms_bound
from gdbench.optimizers import OptimizerSpec
from gdbench.rates import DirectionFits, direction_bottoms, window_bottom, window_lengths
from gdbench.runs import RunSpec
from gdbench.theory import Optimum, Theory, analyse, eigen
from gdbench.trajectory import TrajectoryBatch


class Points(Protocol):
    """Where a run's points, optimum and initial parameters come from (the engines'
    :class:`gdbench.engines.DataSource`)."""

    def get(self, run: RunSpec) -> Dataset: ...

    def optimum(self, run: RunSpec, weight_decay: float = 0.0) -> Optimum: ...

    def initial(self, run: RunSpec) -> tuple[float, float]: ...


@dataclass(frozen=True)
class RunAnalysis:
    """The derived quantities of R runs (see the module docstring)."""

    n_points: np.ndarray
    full_batch: np.ndarray
    rate: np.ndarray
    predicted_rate: np.ndarray
    critical_lr: np.ndarray
    fastest_lr: np.ndarray
    lr_ratio: np.ndarray
    predicted_diverged: np.ndarray
    known: np.ndarray  # where predicted_diverged means something
    horizon_edge: np.ndarray
    ms_critical_lr: np.ndarray
    ms_lr_ratio: np.ndarray

    def take(self, rows: np.ndarray) -> RunAnalysis:
        """The analysis of the runs ``rows`` (in that order)."""
        return RunAnalysis(**{f.name: getattr(self, f.name)[rows] for f in dataclasses.fields(self)})


def analyse_runs(
    batch: TrajectoryBatch,
    points: Points,
    optimizers: Mapping[str, OptimizerSpec],
    diverged_factor: float,
) -> RunAnalysis:
    """Every derived quantity of the runs of ``batch`` (``optimizers``: every optimizer its runs
    name, by name; ``diverged_factor``: the verdicts' threshold)."""
    runs = batch.runs
    R = len(runs)
    theories: dict[str, Theory] = {}
    n_points = np.array([points.get(r).n for r in runs], dtype=np.int64)
    full = np.array([r.batch_size is None or r.batch_size >= n for r, n in zip(runs, n_points, strict=True)])
    critical, fastest, predicted = (np.full(R, np.nan) for _ in range(3))
    groups: dict[tuple[str, str], list[int]] = {}  # full-batch runs by dataset and optimizer
    for i in np.flatnonzero(full):
        groups.setdefault((runs[i].dataset, runs[i].optimizer), []).append(int(i))
    for (dataset, name), members in groups.items():
        spec = optimizers[name]
        if dataset not in theories:
            theories[dataset] = analyse(points.get(runs[members[0]]))
        theory = theories[dataset]
        ranges = stability.stable_range(dataset, spec, theory.lambda_min, theory.lambda_max)
        critical[members], fastest[members] = ranges.critical_lr, ranges.fastest_lr
        predicted[members] = _predicted_rates([runs[i] for i in members], spec, theory, points)
    rate = measured_rates(batch, points, optimizers)
    lr = np.array([r.lr for r in runs], dtype=np.float64)
    theory_applies = [i for i, run in enumerate(runs) if full[i] and stability.has_theory(optimizers[run.optimizer])]
    problems = {i: _problem(runs[i], optimizers[runs[i].optimizer], points, diverged_factor) for i in theory_applies}
    started = np.isfinite(predicted) | np.array([optimizers[r.optimizer].weight_decay != 0 for r in runs])
    known = np.zeros(R, dtype=bool)
    known[theory_applies] = True
    known &= started
    edge = np.full(R, np.nan)
    edge[theory_applies] = closed_form_edges([problems[i] for i in theory_applies])
    predicted_diverged = np.zeros(R, dtype=bool)
    predicted_diverged[known] = _predicted_diverged(problems, np.flatnonzero(known), lr, edge)
    ms = ms_bounds(runs, points, optimizers, full)
    return RunAnalysis(
        n_points=n_points,
        full_batch=full,
        rate=rate,
        predicted_rate=predicted,
        critical_lr=critical,
        fastest_lr=fastest,
        lr_ratio=lr / critical,
        predicted_diverged=predicted_diverged,
        known=known,
        horizon_edge=edge,
        ms_critical_lr=ms,
        ms_lr_ratio=lr / ms,
    )


def ms_bounds(
    runs: list[RunSpec], points: Points, optimizers: Mapping[str, OptimizerSpec], full: np.ndarray
) -> np.ndarray:
    """Each minibatch run's mean-square bound (:func:`gdbench.minibatch.ms_bound`; NaN for
    full-batch runs), once per dataset, batch size and optimizer (x does not depend on the seed)."""
    out = np.full(len(runs), np.nan)
    cache: dict[tuple[str, int | None, str], float] = {}
    for i, run in enumerate(runs):
        if full[i]:
            continue
        key = (run.dataset, run.batch_size, run.optimizer)
        if key not in cache:
            spec = optimizers[run.optimizer]
            cache[key] = ms_bound(spec.kind, spec.momentum, spec.weight_decay, points.get(run).x, run.batch_size)
        out[i] = cache[key]
    return out


def _predicted_diverged(
    problems: Mapping[int, HorizonProblem], rows: np.ndarray, lr: np.ndarray, edge: np.ndarray
) -> np.ndarray:
    """Per row, whether its run diverges within its epochs by the full-batch theory: for
    momentum or weight decay ``lr >= horizon_edge`` where the closed form is given (the same
    verdicts as the recurrence but within ~1e-12 relative of the edge, far cheaper), else the
    float64 recurrence (:func:`gdbench.horizon.diverges`: plain SGD in closed form there)."""
    out = np.zeros(rows.size, dtype=bool)
    plain = np.array([problems[int(i)].momentum == 0 and problems[int(i)].weight_decay == 0 for i in rows], dtype=bool)
    by_edge = ~plain & np.isfinite(edge[rows])
    out[by_edge] = lr[rows[by_edge]] >= edge[rows[by_edge]]
    rest = rows[~by_edge]
    if rest.size:
        out[~by_edge] = diverges([problems[int(i)] for i in rest], lr[rest][:, None])[:, 0]
    return out


def _problem(run: RunSpec, spec: OptimizerSpec, points: Points, diverged_factor: float) -> HorizonProblem:
    """The run as the float64 full-batch recurrence of :mod:`gdbench.horizon`."""
    data = points.get(run)
    w0, b0 = points.initial(run)
    return HorizonProblem(data.x, data.y, w0, b0, run.epochs, diverged_factor, **spec.arguments())


def _predicted_rates(runs: list[RunSpec], spec: OptimizerSpec, theory: Theory, points: Points) -> np.ndarray:
    """The full-batch theory's rate of each of ``runs`` (one dataset and optimizer ``spec``)
    from its error to its own optimum (NaN where the theory gives none:
    :func:`gdbench.stability.rate_factor`)."""
    factor = stability.rate_factor(spec)
    if factor is None:
        return np.full(len(runs), np.nan)
    errors = []
    for run in runs:
        best = points.optimum(run, spec.weight_decay)
        w0, b0 = points.initial(run)
        errors.append((w0 - best.W_star, b0 - best.b_star))
    lrs = np.array([run.lr for run in runs], dtype=np.float64)
    return theory.predicted_rates(lrs, np.array(errors, dtype=np.float64), None if spec.is_plain else factor)


def _moving_directions(data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The Hessian's positive eigenvalues and their eigenvectors as columns (``[2, 2]``, or
    ``[2, 1]`` when all x are equal: the error along the null direction never changes and
    carries no excess). Computed once per data set (a grid's runs share their points)."""
    return _moving_directions_of(np.asarray(data.x, dtype=np.float64).tobytes())


@lru_cache(maxsize=8192)
def _moving_directions_of(x_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
    lam, vecs = eigen(np.frombuffer(x_bytes))
    lam, vecs = lam[lam > 0], vecs[:, lam > 0]
    lam.flags.writeable = vecs.flags.writeable = False  # shared by every run of the data set
    return lam, vecs


#: Entries (runs x recorded epochs) of one array program of :func:`measured_rates`.
_FIT_BLOCK = 1 << 20


def measured_rates(batch: TrajectoryBatch, points: Points, optimizers: Mapping[str, OptimizerSpec]) -> np.ndarray:
    """The measured ``rate`` of each full-batch SGD run without weight decay that converged or
    diverged (NaN for the others).

    Per run: the error ``p - p*`` along each eigen-direction of the Hessian with ``lambda > 0``
    over the run's recorded epochs; the fit window (:func:`gdbench.rates.fit_window`): up to the
    last epoch whose excess is above the window's bottom (:func:`gdbench.rates.window_bottom`;
    0 for a diverged run, whose window ends before its divergence epoch); per direction, the
    entries above its bottoms (:func:`gdbench.rates.direction_bottoms`); then every run's
    recurrences fitted together (:class:`gdbench.rates.DirectionFits`). Runs that share their
    points' x, optimizer order, epochs and dtype are one array program per block of runs (a
    grid's runs form a few such groups), each run's numbers its own."""
    v = batch.verdicts
    rate = np.full(len(batch), np.nan)
    groups: dict[tuple[int, int, str, bytes], list[int]] = {}
    y_max = np.full(len(batch), np.nan)
    # per data set (held, so that ids stay theirs): its x as bytes (the group key) and max |y|
    of_data: dict[int, tuple[Dataset, bytes, float]] = {}
    for i, run in enumerate(batch.runs):
        spec = optimizers[run.optimizer]
        data = points.get(run)
        minibatch = run.batch_size is not None and run.batch_size < data.n
        if minibatch or spec.kind != "sgd" or spec.weight_decay != 0:
            continue
        if v.converged_at[i] < 0 and not v.diverged[i]:
            continue
        if id(data) not in of_data:
            x = np.asarray(data.x, dtype=np.float64).tobytes()
            of_data[id(data)] = (data, x, float(np.max(np.abs(data.y))))
        _, x_bytes, y_max[i] = of_data[id(data)]
        groups.setdefault((1 if spec.is_plain else 2, run.epochs, run.dtype, x_bytes), []).append(i)
    block = max(1, _FIT_BLOCK // max(1, batch.epochs.size))  # runs per array program: bounded memory
    for (order, _, dtype, _), members in groups.items():
        lam, moving = _moving_directions(points.get(batch.runs[members[0]]))
        for start in range(0, len(members), block):
            rows = np.asarray(members[start : start + block])
            fits = DirectionFits(order)
            fits.add_many(*_fit_inputs(batch, rows, points, y_max[rows], lam, moving, dtype))
            rate[rows] = fits.rates()
    return rate


def _fit_inputs(
    batch: TrajectoryBatch,
    rows: np.ndarray,
    points: Points,
    y_max: np.ndarray,
    lam: np.ndarray,
    moving: np.ndarray,
    dtype: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For runs ``rows`` of one epochs, dtype and x (``y_max``: their data's largest ``|y|``):
    their recorded epochs ``[T]``, error components ``[G, T, k]`` along ``moving``, fit window
    lengths ``[G]`` and each direction's bottoms and resolution ``[G, k]``, the arguments of
    :meth:`gdbench.rates.DirectionFits.add_many` (:func:`measured_rates`)."""
    v = batch.verdicts
    cols = np.flatnonzero(batch.on_schedule(np.array([batch.runs[int(rows[0])].epochs]))[0])
    epochs = batch.epochs[cols]
    recorded = np.searchsorted(epochs, v.last_epoch[rows], side="right")  # a prefix of them: to the run's stop
    W, b, cost = (a[rows][:, cols] for a in (batch.W, batch.b, batch.cost))
    runs = [batch.runs[i] for i in rows]
    best = [points.optimum(r) for r in runs]
    W_star, b_star = (np.array([getattr(o, f) for o in best], dtype=np.float64) for f in ("W_star", "b_star"))
    # the trajectories' own dtype: a float32 record minus its optimum rounds in float32
    errors = np.stack([W - W_star.astype(W.dtype)[:, None], b - b_star.astype(b.dtype)[:, None]], axis=2)
    components = errors @ moving  # [G, T, k]: the error along each eigen-direction with lambda > 0
    excess = cost.astype(np.float64) - v.optimal_cost[rows][:, None]
    diverged = v.diverged[rows]
    stop = np.where(diverged, np.minimum(np.searchsorted(epochs, v.diverged_at[rows]), recorded), recorded)
    y_scale = np.maximum(y_max, np.abs(b_star))
    p_scale = np.maximum(np.abs(W_star), np.abs(b_star))
    bottom = np.array(
        [0.0 if d else window_bottom(f, y, dtype) for d, f, y in zip(diverged, v.floor[rows], y_scale, strict=True)]
    )
    lengths = window_lengths(excess, bottom, stop)
    bottoms, resolved = np.zeros((rows.size, lam.size)), np.zeros((rows.size, lam.size))
    for g in np.flatnonzero(~diverged):
        bottoms[g], resolved[g] = direction_bottoms(
            runs[g].lr, lam, float(v.floor[rows[g]]), float(y_scale[g]), float(p_scale[g]), dtype
        )
    return epochs, components, lengths, bottoms, resolved
