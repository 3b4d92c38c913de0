"""Runs that are the same computation, trained and analysed once.

A grid often holds runs that differ only by a seed they never read: full-batch runs of a data
set whose points do not depend on the seed (the lesson's), from a start that does not either
(``init: zeros``), train the same trajectory bit for bit, and every quantity of
:func:`gdbench.analysis.analyse_runs` is a function of a run's points, start, settings,
verdicts and trajectory. :func:`distinct_specs` finds such groups from the specs, so a training
job trains one run of each and gives its numbers to every member (a run's numbers never depend
on the runs trained beside it; ``verify`` re-trains members from scratch in their own process).
:func:`analyse_distinct` analyses one run of each group of a batch and gives its result to every
member: the same arrays as analysing them all, at the cost of the distinct ones (100 seeds of
the lesson's data: a hundredth).

Two runs are grouped when their points (:meth:`~gdbench.engines.DataSource.key`), start
(:meth:`~gdbench.engines.DataSource.initial`) and every setting but the seed are equal, both
are full batch, and their verdicts and recorded W, b and cost are equal bit for bit (checked,
not assumed: a run that differs stays on its own). Minibatch runs are never grouped: their
seed orders their minibatches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Protocol

import numpy as np

from gdbench.analysis import Points, RunAnalysis, analyse_runs
from gdbench.optimizers import OptimizerSpec
from gdbench.runs import RunSpec
from gdbench.trajectory import TrajectoryBatch


class KeyedPoints(Points, Protocol):
    """A :class:`~gdbench.analysis.Points` that also says which runs train on the same
    points (the engines' :class:`~gdbench.engines.DataSource`)."""

    def key(self, run: RunSpec) -> Hashable: ...


def analyse_distinct(
    batch: TrajectoryBatch,
    points: KeyedPoints,
    optimizers: Mapping[str, OptimizerSpec],
    diverged_factor: float,
) -> RunAnalysis:
    """:func:`gdbench.analysis.analyse_runs` of ``batch``, each group of identical runs
    (module docstring) analysed once."""
    first, inverse = distinct_runs(batch, points)
    if first.size == len(batch):
        return analyse_runs(batch, points, optimizers, diverged_factor)
    analysed = analyse_runs(batch.take(first), points, optimizers, diverged_factor)
    return analysed.take(inverse)


def distinct_specs(runs: Sequence[RunSpec], points: KeyedPoints) -> tuple[np.ndarray, np.ndarray]:
    """``(first, inverse)`` of the runs that are the same computation by their specs (module
    docstring: the same points, start and settings but the seed, full batch), as
    :func:`distinct_runs` gives them: what to train, and each run's representative. Trained
    on one engine, device and dtype, such runs compute the same numbers bit for bit (a run's
    numbers never depend on the runs trained beside it)."""
    label = _spec_labels(runs, points)
    first, inverse = np.unique(label, return_index=True, return_inverse=True)[1:]
    return _in_order(first, inverse)


def _spec_labels(runs: Sequence[RunSpec], points: KeyedPoints) -> np.ndarray:
    """Per run, a group number: equal for runs whose specs make them the same computation."""
    groups: dict[Hashable, int] = {}
    label = np.empty(len(runs), dtype=np.int64)
    for i, run in enumerate(runs):
        data = points.get(run)
        if run.is_minibatch(data.n):
            key: Hashable = ("own", i)
        else:
            key = (points.key(run), points.initial(run), dataclasses.replace(run, seed=0))
        label[i] = groups.setdefault(key, len(groups))
    return label


def _in_order(first: np.ndarray, inverse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique``'s (first, inverse) renumbered so that groups come in order of first row."""
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return first[order], rank[inverse]


def distinct_runs(batch: TrajectoryBatch, points: KeyedPoints) -> tuple[np.ndarray, np.ndarray]:
    """``(first, inverse)``: the rows of ``batch`` that start a group of identical runs (in
    order) and, per row, the index into ``first`` of its group, so ``first[inverse]`` is each
    row's representative."""
    label = _spec_labels(batch.runs, points)
    groups = int(label.max()) + 1 if label.size else 0
    rep = np.empty(groups, dtype=np.int64)
    rep[label[::-1]] = np.arange(len(batch))[::-1]  # each group's first row
    same = _equal_rows(batch, rep[label])
    label[~same] = groups + np.arange(int((~same).sum()))  # differs from its group's first: its own
    first, inverse = np.unique(label, return_index=True, return_inverse=True)[1:]
    return _in_order(first, inverse)


def _equal_rows(batch: TrajectoryBatch, rep: np.ndarray) -> np.ndarray:
    """Whether each row's verdicts and recorded trajectory equal row ``rep``'s bit for bit."""
    same = np.ones(len(batch), dtype=bool)
    for name in ("W", "b", "cost"):
        values = getattr(batch, name)
        bits = values.view(np.uint32 if values.dtype == np.float32 else np.uint64)
        same &= (bits == bits[rep]).all(axis=1)
    for f in dataclasses.fields(batch.verdicts):
        values = np.asarray(getattr(batch.verdicts, f.name))
        if values.dtype.kind == "f":
            values = values.view(np.uint64 if values.dtype.itemsize == 8 else np.uint32)
        same &= values == values[rep]
    return same
