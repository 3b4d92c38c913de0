"""The stability edge: the smallest learning rate whose run diverges within its epochs.

For every point of the grid without its learning rate (a :class:`Case`: dataset, optimizer,
batch size, init, dtype, epochs and seed), :func:`edge_table` brackets the smallest learning
rate whose run diverges, by the grid's own verdict (cost non-finite or above
``analysis.diverged_factor`` x the initial cost, judged by the engines' ``VerdictTracker``),
and sets theory beside it: for full-batch cases ``critical_lr`` and ``horizon_edge`` from
:mod:`gdbench.horizon`; for minibatch cases ``ms_critical_lr`` (a mean-square bound) and, as
``horizon_edge``, the first divergence of the case's own shuffled recurrence in float64
(:mod:`gdbench.minibatch`, on the permutations the engines draw for its seed, searched with the
located search's range and combs; never used as a guess, so the located search stays a
measurement of its own).

The search (:func:`gdbench.search.bracket`) probes many learning rates per round in one tensor program:

* round 0 probes a log-spaced comb of ``lrs_per_round`` learning rates from ``lr_min`` to
  ``lr_max`` (both included) for every case at once, as one call of the batched engine with
  nothing recorded but verdicts; a case's bracket becomes [the probe below its first diverging
  probe, its first diverging probe];
* each later round probes a comb strictly inside every bracket still wider than
  ``rel_width`` (relative: ``(hi - lo) / lo``), narrowing it to the first diverging probe. A
  round shrinks a bracket's log-width ``lrs_per_round + 1`` fold (the last one probes only as
  many as it needs); the defaults take 3 rounds;
* where the full-batch theory gives the float64 horizon edge (:mod:`gdbench.horizon`), round 0
  probes instead a comb over ``horizon / (1 + GUESS_SPAN)`` .. ``horizon x (1 + GUESS_SPAN)``
  just fine enough for ``rel_width``: a bracket only if its first probe did not diverge and a
  later one did (the engines' verdicts, as for every probe), else that search restarts with
  the full comb. On the default grid every guess holds: one round instead of three.

Answers, in ``edge_lo`` and ``edge_hi``:

* ``edge_lo < edge_hi``, ``(edge_hi - edge_lo) / edge_lo <= rel_width``: the run at
  ``edge_lo`` did not diverge, the run at ``edge_hi`` did, and no probe below ``edge_lo``
  diverged (where divergence is not monotone in the learning rate, as it need not be for
  minibatch SGD or Adam, this is the first divergence the combs saw);
* ``edge_lo = lr_max``, ``edge_hi`` empty (NaN): no divergence up to ``lr_max``;
* ``edge_lo`` empty (NaN), ``edge_hi = lr_min``: the run diverges already at ``lr_min``.

A seed that cannot change a run (zeros init, full batch, points that do not depend on the seed:
:attr:`gdbench.data.DatasetSpec.seed_dependent`) is searched once, with the grid's first seed,
and its answer is reported for every seed. The search runs on the CPU with the batched engine
(on the CPU bit-identical to the loop engine, whichever the grid uses).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gdbench.experiment import EdgeSettings, Experiment
from gdbench.reads import Reads
from gdbench.runs import RunSpec
from gdbench.search import Diverges, bracket

if TYPE_CHECKING:  # torch loads only when something is trained
    from gdbench.engines import DataSource, TrainOptions
    from gdbench.engines.run_setup import Progress

#: Columns of the edge table, in order.
EDGE_COLUMNS = (
    "dataset",
    "optimizer",
    "batch_size",
    "init",
    "dtype",
    "epochs",
    "seed",
    "edge_lo",
    "edge_hi",
    "critical_lr",
    "horizon_edge",
    "ms_critical_lr",
)

#: What the edge job reads (:func:`edge_table`): the grid without its learning rates and
#: devices, the definitions it uses, how it trains and judges divergence, the search's settings.
EDGE_READS = Reads(
    (
        "datasets.*",
        "optimizers.*",
        "grid.dataset",
        "grid.optimizer",
        "grid.seed",
        "grid.epochs",
        "training.init",
        "training.batch_size",
        "training.dtype",
        "training.chunk_epochs",
        "analysis.diverged_factor",
        "edge.lr_min",
        "edge.lr_max",
        "edge.rel_width",
        "edge.lrs_per_round",
    )
)

#: Relative width to which the float64 horizon edge is located.
HORIZON_REL_WIDTH = 1.0e-10
#: Learning rates per round of the horizon search (its cost grows with the probes per round).
HORIZON_PER_ROUND = 16
#: A minibatch case's shuffled horizon edge is computed up to this many steps (epochs x
#: batches per epoch) and this many permuted points (epochs x n); beyond, it is left empty.
SHUFFLED_MAX_STEPS = 1_000_000
SHUFFLED_MAX_POINTS = 20_000_000


@dataclass(frozen=True)
class Case:
    """A grid point without its learning rate: what one edge is searched for."""

    dataset: str
    optimizer: str
    batch_size: int | None
    init: str
    dtype: str
    epochs: int
    seed: int

    def run(self, lr: float) -> RunSpec:
        """The CPU, batched-engine run of this case at ``lr``."""
        return RunSpec(
            dataset=self.dataset,
            lr=lr,
            seed=self.seed,
            epochs=self.epochs,
            device="cpu",
            init=self.init,
            batch_size=self.batch_size,
            dtype=self.dtype,
            engine="batched",
            optimizer=self.optimizer,
        )


def grid_cases(experiment: Experiment) -> list[Case]:
    """Every case of the experiment's grid, every seed, in the grid's order."""
    g = experiment.grid
    axes = (g.dataset, g.optimizer, g.seed, g.epochs, g.init, g.batch_size, g.dtype)
    cases = [
        Case(dataset=ds, optimizer=op, batch_size=bs, init=init, dtype=dt, epochs=ep, seed=seed)
        for ds, op, seed, ep, init, bs, dt in itertools.product(*axes)
    ]
    return list(dict.fromkeys(cases))


def seed_matters(case: Case, data: DataSource) -> bool:
    """Whether the seed can change this case's runs: noisy synthetic points, a normal init or
    a minibatch order."""
    run = case.run(1.0)
    minibatch = run.is_minibatch(data.get(run).n)
    return data.specs[case.dataset].seed_dependent or case.init == "normal" or minibatch


def searched_cases(cases: Sequence[Case], data: DataSource) -> tuple[list[Case], list[int]]:
    """The cases actually searched (one per seed only where the seed matters) and, for each
    of ``cases``, the index of the searched case that answers it."""
    searched: dict[Case, int] = {}
    answer = []
    for case in cases:
        key = case if seed_matters(case, data) else dataclasses.replace(case, seed=-1)
        if key not in searched:
            searched[key] = len(searched)
        answer.append(searched[key])
    firsts: dict[int, Case] = {}
    for case, i in zip(cases, answer, strict=True):
        firsts.setdefault(i, case)
    return [firsts[i] for i in range(len(searched))], answer


def _located(cases: Sequence[Case], data: DataSource, options: TrainOptions) -> Diverges:
    """The engines' verdict: every (case, lr) as a run, all in one :func:`gdbench.engines.train`."""
    from gdbench.engines import train

    def diverges(owner: np.ndarray, lrs: np.ndarray) -> np.ndarray:
        runs = [cases[i].run(float(lr)) for i, lr in zip(owner, lrs, strict=True)]
        return train(runs, data, options).verdicts.diverged

    return diverges


def _theory_edges(
    cases: Sequence[Case], data: DataSource, experiment: Experiment, settings: EdgeSettings
) -> tuple[np.ndarray, np.ndarray]:
    """``critical_lr`` and ``horizon_edge`` per case: full-batch cases only (horizon: the SGD
    family only); empty for minibatch cases, which the full-batch theory does not bound."""
    from gdbench.engines.run_setup import initial_params
    from gdbench.horizon import HorizonProblem, horizon_edges
    from gdbench.stability import critical_lr
    from gdbench.theory import analyse

    critical = np.full(len(cases), np.nan)
    problems: list[HorizonProblem] = []
    where: list[int] = []
    for i, case in enumerate(cases):
        run = case.run(1.0)
        points = data.get(run)
        optimizer = experiment.optimizer(case.optimizer)
        if run.is_minibatch(points.n):
            continue  # full-batch theory does not bound minibatch runs
        critical[i] = critical_lr(optimizer, analyse(points).lambda_max)
        if optimizer.kind != "sgd":
            continue
        W0, b0 = initial_params(run)
        factor = experiment.criteria.diverged_factor
        problems.append(HorizonProblem(points.x, points.y, W0, b0, case.epochs, factor, **optimizer.arguments()))
        where.append(i)
    horizon = np.full(len(cases), np.nan)
    horizon[where] = horizon_edges(problems, settings.lr_min, settings.lr_max, HORIZON_REL_WIDTH, HORIZON_PER_ROUND)
    return critical, horizon


def shuffle_orders(seed: int, n: int, epochs: int) -> np.ndarray:
    """The permutations the engines draw for a minibatch run of ``seed`` on ``n`` points: row
    ``k`` is epoch ``k``'s order (``randperm(n)`` of the run's shuffle generator, in turn)."""
    from gdbench.engines.run_setup import epoch_order, shuffle_generator

    generator = shuffle_generator(seed)
    return np.stack([epoch_order(generator, n).numpy() for _ in range(epochs)]).astype(np.int64)


def _minibatch_theory(
    cases: Sequence[Case], data: DataSource, experiment: Experiment, settings: EdgeSettings
) -> tuple[np.ndarray, np.ndarray]:
    """``ms_critical_lr`` and the shuffled horizon edge per case: minibatch cases only (the
    bound: plain SGD; the horizon: the SGD family, up to :data:`SHUFFLED_MAX_STEPS`), NaN
    elsewhere. Each case's permutations come from the engines' own generator
    (:func:`shuffle_orders`); the recurrence is :mod:`gdbench.minibatch`'s float64 one."""
    from gdbench.engines.run_setup import initial_params
    from gdbench.minibatch import ShuffledProblem, ms_bound, shuffled_edges

    bound = np.full(len(cases), np.nan)
    problems: list[ShuffledProblem] = []
    # The recurrence is float64 whatever the case's dtype: one problem for a case's dtypes, except
    # with a normal init, whose start is drawn in the dtype.
    slot: dict[Case, int] = {}
    where: list[tuple[int, int]] = []
    for i, case in enumerate(cases):
        run = case.run(1.0)
        points = data.get(run)
        if not run.is_minibatch(points.n) or case.batch_size is None:
            continue
        spec = experiment.optimizer(case.optimizer)
        bound[i] = ms_bound(spec.kind, spec.momentum, spec.weight_decay, points.x, case.batch_size)
        steps = case.epochs * -(-points.n // case.batch_size)
        if spec.kind != "sgd" or steps > SHUFFLED_MAX_STEPS or case.epochs * points.n > SHUFFLED_MAX_POINTS:
            continue
        key = case if case.init == "normal" else dataclasses.replace(case, dtype="float64")
        if key not in slot:
            slot[key] = len(problems)
            orders = shuffle_orders(case.seed, points.n, case.epochs)
            W0, b0 = initial_params(run)
            factor = experiment.criteria.diverged_factor
            arguments = spec.arguments()
            problems.append(
                ShuffledProblem(
                    points.x,
                    points.y,
                    W0,
                    b0,
                    case.epochs,
                    factor,
                    **arguments,
                    orders=orders,
                    batch_size=case.batch_size,
                )
            )
        where.append((i, slot[key]))
    # The located search's range and combs: divergence need not be monotone in lr here, and with
    # the same probes both searches see the same first divergence (the float64 one narrows on).
    edges = shuffled_edges(problems, settings.lr_min, settings.lr_max, HORIZON_REL_WIDTH, settings.lrs_per_round)
    horizon = np.full(len(cases), np.nan)
    for i, j in where:
        horizon[i] = edges[j]
    return bound, horizon


def edge_table(experiment: Experiment, progress: Progress | None = None) -> pd.DataFrame:
    """The edge table of an experiment: one row per case (every seed), :data:`EDGE_COLUMNS`."""
    settings = experiment.edge
    cases = grid_cases(experiment)
    data = experiment.data_source()
    searched, answer = searched_cases(cases, data)
    if progress:
        progress(
            f"edge search: {len(cases)} cases, {len(searched)} searched (seeds that cannot change a run "
            f"share one search), lr in [{settings.lr_min:g}, {settings.lr_max:g}], width {settings.rel_width:g}"
        )
    options = experiment.train_options(progress, record_every=0)
    critical, horizon = _theory_edges(searched, data, experiment, settings)
    bound, shuffled = _minibatch_theory(searched, data, experiment, settings)
    lo, hi = bracket(
        _located(searched, data, options),
        len(searched),
        settings.lr_min,
        settings.lr_max,
        settings.rel_width,
        settings.lrs_per_round,
        progress,
        guess=horizon,  # the full-batch edges only: a minibatch search stays independent of its theory
    )
    pick = np.asarray(answer, dtype=np.int64)
    return pd.DataFrame(
        {
            "dataset": [c.dataset for c in cases],
            "optimizer": [c.optimizer for c in cases],
            "batch_size": ["full" if c.batch_size is None else str(c.batch_size) for c in cases],
            "init": [c.init for c in cases],
            "dtype": [c.dtype for c in cases],
            "epochs": [c.epochs for c in cases],
            "seed": [c.seed for c in cases],
            "edge_lo": lo[pick],
            "edge_hi": hi[pick],
            "critical_lr": critical[pick],
            "horizon_edge": np.where(np.isfinite(horizon), horizon, shuffled)[pick],
            "ms_critical_lr": bound[pick],
        },
        columns=list(EDGE_COLUMNS),
    )
