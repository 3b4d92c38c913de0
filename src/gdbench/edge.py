"""The stability edge: the smallest learning rate whose run diverges within its epochs.

For every point of the grid without its learning rate (a :class:`Case`: dataset, optimizer,
batch size, init, dtype, epochs and seed), :func:`edge_table` brackets the smallest learning
rate whose run diverges, by the grid's own verdict (cost non-finite or above
``analysis.diverged_factor`` x the initial cost, judged by the engines' ``VerdictTracker``),
and sets theory beside it (``critical_lr``, and ``horizon_edge`` from :mod:`gdbench.horizon`).

The search (:func:`bracket`) probes many learning rates per round in one tensor program:

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
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gdbench.optimizers import OptimizerSpec, optimizer_specs
from gdbench.runs import RunSpec, expand_grid

if TYPE_CHECKING:  # torch loads only when something is trained
    from gdbench.engines import DataSource, TrainOptions

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
)

#: Relative width to which the float64 horizon edge is located.
HORIZON_REL_WIDTH = 1.0e-10
#: Learning rates per round of the horizon search (its cost grows with the probes per round).
HORIZON_PER_ROUND = 16
#: A search with a theory guess (the horizon edge) first probes this relative span around it.
GUESS_SPAN = 1.0e-3
#: A search stops after this many rounds whatever the widths (only a float-precision
#: rel_width could need more).
MAX_ROUNDS = 100

#: (search index of each probe [K], learning rates [K]) -> whether each probe's run diverges [K].
Diverges = Callable[[np.ndarray, np.ndarray], np.ndarray]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class EdgeSettings:
    """The config's ``edge:`` section."""

    enabled: bool = True
    lr_min: float = 1.0e-5
    lr_max: float = 100.0
    rel_width: float = 1.0e-4
    lrs_per_round: int = 64

    @staticmethod
    def from_config(config: Mapping[str, Any]) -> EdgeSettings:
        raw = config.get("edge", {})
        names = {f.name for f in dataclasses.fields(EdgeSettings)}
        return EdgeSettings(**{k: v for k, v in raw.items() if k in names})


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


def grid_cases(config: Mapping[str, Any]) -> list[Case]:
    """Every case of a (checked) config's grid, every seed, in the grid's order."""
    probe = {**config, "grid": {**config["grid"], "lr": [1.0]}}
    cases = [
        Case(
            dataset=r.dataset,
            optimizer=r.optimizer,
            batch_size=r.batch_size,
            init=r.init,
            dtype=r.dtype,
            epochs=r.epochs,
            seed=r.seed,
        )
        for r in expand_grid(probe, ["cpu"])
    ]
    return list(dict.fromkeys(cases))


def seed_matters(case: Case, data: DataSource) -> bool:
    """Whether the seed can change this case's runs: noisy synthetic points, a normal init or
    a minibatch order."""
    run = case.run(1.0)
    minibatch = case.batch_size is not None and case.batch_size < data.get(run).n
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


def bracket(
    diverges: Diverges,
    n: int,
    lr_min: float,
    lr_max: float,
    rel_width: float,
    per_round: int,
    progress: Progress | None = None,
    guess: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bracket, for each of ``n`` searches, the smallest learning rate in ``[lr_min, lr_max]``
    at which ``diverges`` says its run diverges (see the module docstring), with combs of
    ``per_round`` probes (fewer in a last round that needs fewer). Each round makes one call of
    ``diverges`` with every probe of every open search. Returns ``(lo, hi)`` arrays: ``lo`` did not diverge,
    ``hi`` did; ``hi`` is NaN when nothing diverged up to ``lr_max`` (then ``lo = lr_max``),
    ``lo`` is NaN when ``lr_min`` diverged already.

    ``guess`` (per search, NaN for none): where the edge should lie (the float64 horizon
    edge). Round 0 then probes, for that search, a comb spanning ``guess / (1 + GUESS_SPAN)``
    to ``guess x (1 + GUESS_SPAN)`` (both included) just fine enough to meet ``rel_width``; it
    is a bracket only if its first probe did not diverge and a later one did (both measured),
    else the search starts over with the full comb in the next round."""
    # One function on purpose (~80 lines): every round narrows all searches at once (one
    # tensor program per round), and the per-search bookkeeping (guess accepted or not, range
    # answers, final brackets) reads best next to the loop that updates it.
    if not (0 < lr_min < lr_max and math.isfinite(lr_max)):
        raise ValueError(f"edge search: need 0 < lr_min < lr_max, got {lr_min!r}, {lr_max!r}")
    if per_round < 2 or not rel_width > 0:
        raise ValueError("edge search: need lrs_per_round >= 2 and rel_width > 0")
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    step = math.log1p(rel_width)
    idx = np.arange(n)
    full = np.geomspace(lr_min, lr_max, per_round)
    full[0], full[-1] = lr_min, lr_max
    combs = [full] * n
    informed = np.zeros(n, dtype=bool)
    if guess is not None:
        for i in np.flatnonzero(np.isfinite(guess) & (guess > 0)):
            g = float(guess[i])
            a, b = max(lr_min, g / (1 + GUESS_SPAN)), min(lr_max, g * (1 + GUESS_SPAN))
            if not a < b:
                continue
            m = int(min(per_round, math.ceil(math.log(b / a) / step * (1 + 1e-9)) + 1))
            combs[i] = np.geomspace(a, b, max(m, 2))
            combs[i][0], combs[i][-1] = a, b
            informed[i] = True
    for round_no in range(MAX_ROUNDS):
        if idx.size == 0:
            break
        clock = time.perf_counter()
        owner = np.repeat(idx, [c.size for c in combs])
        d = np.asarray(diverges(owner, np.concatenate(combs)), dtype=bool)
        restart = []
        for i, comb, hits in zip(idx, combs, np.split(d, np.cumsum([c.size for c in combs])[:-1]), strict=True):
            if informed[i]:
                informed[i] = False
                if not hits.any() or hits[0]:  # the guess missed: no bracket measured, search it all
                    restart.append(i)
                    continue
            if hits.any():
                first = int(hits.argmax())
                hi[i] = comb[first]
                if first > 0:
                    lo[i] = comb[first - 1]
            else:
                lo[i] = comb[-1]
        open_ = np.isfinite(lo) & np.isfinite(hi) & (hi / lo - 1 > rel_width)
        if progress and restart:
            progress(f"edge search round {round_no}: the theory's guess missed for {len(restart)} searches")
        if progress:
            width = hi[idx] / lo[idx] - 1
            widest = float(np.nanmax(width)) if np.isfinite(width).any() else 0.0
            progress(
                f"edge search round {round_no}: {idx.size} searches, {owner.size} runs (one tensor program per "
                f"engine group) in {time.perf_counter() - clock:.2f} s; widest bracket now {widest:.3g} relative, "
                f"{int(open_.sum())} still wider than {rel_width:g}"
            )
        idx = np.flatnonzero(open_)
        combs = []
        for i in idx:
            log_width = math.log(hi[i] / lo[i])
            m = int(min(per_round, max(1, math.ceil(log_width / step * (1 + 1e-9)) - 1)))
            combs.append(lo[i] * np.exp(log_width * np.arange(1, m + 1) / (m + 1)))
        idx = np.concatenate([idx, np.asarray(restart, dtype=np.int64)])
        combs += [full] * len(restart)
    return lo, hi


def _located(cases: Sequence[Case], data: DataSource, options: TrainOptions) -> Diverges:
    """The engines' verdict: every (case, lr) as a run, all in one :func:`gdbench.engines.train`."""
    from gdbench.engines import train

    def diverges(owner: np.ndarray, lrs: np.ndarray) -> np.ndarray:
        runs = [cases[i].run(float(lr)) for i, lr in zip(owner, lrs, strict=True)]
        return train(runs, data, options).verdicts.diverged

    return diverges


def _theory(
    cases: Sequence[Case],
    data: DataSource,
    optimizers: Mapping[str, OptimizerSpec],
    settings: EdgeSettings,
    factor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``critical_lr`` and ``horizon_edge`` per case: full-batch cases only (horizon: the SGD
    family only); empty for minibatch cases, which the full-batch theory does not bound."""
    from gdbench.engines.common import initial_params
    from gdbench.horizon import Recurrence, horizon_edges
    from gdbench.stability import critical_lr
    from gdbench.theory import analyse

    critical = np.full(len(cases), np.nan)
    problems: list[Recurrence] = []
    where: list[int] = []
    for i, case in enumerate(cases):
        run = case.run(1.0)
        points = data.get(run)
        optimizer = optimizers[case.optimizer]
        if case.batch_size is not None and case.batch_size < points.n:
            continue  # full-batch theory does not bound minibatch runs
        critical[i] = critical_lr(optimizer, analyse(points).lambda_max)
        if optimizer.kind != "sgd":
            continue
        W0, b0 = initial_params(run)
        problems.append(Recurrence(points.x, points.y, W0, b0, case.epochs, factor, **optimizer.arguments()))
        where.append(i)
    horizon = np.full(len(cases), np.nan)
    horizon[where] = horizon_edges(problems, settings.lr_min, settings.lr_max, HORIZON_REL_WIDTH, HORIZON_PER_ROUND)
    return critical, horizon


def edge_table(config: Mapping[str, Any], base_dir: str | Path = ".", progress: Progress | None = None) -> pd.DataFrame:
    """The edge table of a checked config: one row per case (every seed), :data:`EDGE_COLUMNS`."""
    from gdbench.engines import DataSource
    from gdbench.pipeline import dataset_specs, train_options

    settings = EdgeSettings.from_config(config)
    cases = grid_cases(config)
    data = DataSource(dataset_specs(config), base_dir)
    searched, answer = searched_cases(cases, data)
    if progress:
        progress(
            f"edge search: {len(cases)} cases, {len(searched)} searched (seeds that cannot change a run "
            f"share one search), lr in [{settings.lr_min:g}, {settings.lr_max:g}], width {settings.rel_width:g}"
        )
    options = dataclasses.replace(train_options(config), record_every=0, progress=progress)
    critical, horizon = _theory(searched, data, optimizer_specs(config), settings, options.criteria.diverged_factor)
    lo, hi = bracket(
        _located(searched, data, options),
        len(searched),
        settings.lr_min,
        settings.lr_max,
        settings.rel_width,
        settings.lrs_per_round,
        progress,
        guess=horizon,
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
            "horizon_edge": horizon[pick],
        },
        columns=list(EDGE_COLUMNS),
    )
