"""What an engine returns: recorded trajectories and verdicts for a batch of runs.

Arrays only; turning them into tables is :mod:`gdbench.tables`' job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gdbench.runs import RunSpec
from gdbench.verdicts import Verdicts


def record_schedule(end_epochs: list[int] | np.ndarray, record_every: int) -> np.ndarray:
    """Epochs recorded for a batch: every ``record_every``-th epoch from 0, plus each run's
    last epoch. ``record_every`` 0 records only the last epochs."""
    ends = np.unique(np.asarray(end_epochs, dtype=np.int64))
    if record_every > 0:
        grid = np.arange(0, int(ends.max()) + 1, record_every, dtype=np.int64)
        return np.union1d(grid, ends)
    return ends


@dataclass
class TrajectoryBatch:
    """Trajectories of R runs on a shared epoch schedule.

    ``W``, ``b``, ``cost`` are ``[R, T]`` for the epochs in ``epochs`` ([T]); W and b are
    after that epoch's update, cost is that epoch's forward pass before it (the lesson's
    convention). Entries a run did not compute (past its end or its divergence epoch, or not
    on its own schedule) are NaN; :meth:`recorded_mask` says which entries are the run's.
    """

    runs: list[RunSpec]
    epochs: np.ndarray
    W: np.ndarray
    b: np.ndarray
    cost: np.ndarray
    verdicts: Verdicts
    seconds: np.ndarray
    record_every: int

    def __len__(self) -> int:
        return len(self.runs)

    def recorded_mask(self, rows: slice | np.ndarray | None = None) -> np.ndarray:
        """``[R, T]`` bool (or the given rows): the entries that belong to each run's own
        trajectory."""
        rows = slice(None) if rows is None else rows
        ends = np.array([r.epochs for r in self.runs], dtype=np.int64)[rows]
        stop = self.verdicts.last_epoch[rows][:, None]
        return self.on_schedule(ends) & (self.epochs[None, :] <= stop)

    def on_schedule(self, ends: np.ndarray) -> np.ndarray:
        """``[len(ends), T]`` bool: the epochs on the own schedule of a run of ``ends`` epochs
        (every ``record_every``-th and its last), whether or not it got there."""
        e = self.epochs[None, :]
        every = (e % self.record_every == 0) if self.record_every > 0 else np.zeros(e.shape, dtype=bool)
        return (e == np.asarray(ends, dtype=np.int64)[:, None]) | every

    def blank_after_stop(self) -> None:
        """Set entries after a run's last computed epoch to NaN (a stopped run has none)."""
        late = self.epochs[None, :] > self.verdicts.last_epoch[:, None]
        if not late.any():
            return
        for arr in (self.W, self.b, self.cost):
            arr[late] = np.nan

    def run_trajectory(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(epochs, W, b, cost) of run ``i``, its own entries only."""
        mask = self.recorded_mask(np.array([i]))[0]
        return self.epochs[mask], self.W[i, mask], self.b[i, mask], self.cost[i, mask]

    def take(self, rows: np.ndarray) -> TrajectoryBatch:
        """The runs ``rows`` (in that order) on the same epochs."""
        rows = np.asarray(rows, dtype=np.int64)
        return TrajectoryBatch(
            [self.runs[int(i)] for i in rows],
            self.epochs,
            self.W[rows],
            self.b[rows],
            self.cost[rows],
            Verdicts.concat([self.verdicts], rows),
            self.seconds[rows],
            self.record_every,
        )

    @staticmethod
    def concat(parts: list[TrajectoryBatch], order: np.ndarray | None = None) -> TrajectoryBatch:
        """Join batches (re-gridding onto the union of their schedules)."""
        if len(parts) == 1 and order is None:
            return parts[0]
        epochs = np.unique(np.concatenate([p.epochs for p in parts]))
        dtype = np.result_type(*[p.W.dtype for p in parts])
        R = sum(len(p) for p in parts)
        arrays = {k: np.full((R, epochs.size), np.nan, dtype=dtype) for k in ("W", "b", "cost")}
        row = 0
        for p in parts:
            cols = np.searchsorted(epochs, p.epochs)
            for k in arrays:
                arrays[k][row : row + len(p)][:, cols] = getattr(p, k)
            row += len(p)
        runs = [r for p in parts for r in p.runs]
        seconds = np.concatenate([p.seconds for p in parts])
        verdicts = Verdicts.concat([p.verdicts for p in parts])
        record_every = parts[0].record_every
        if order is not None:
            arrays = {k: v[order] for k, v in arrays.items()}
            runs = [runs[i] for i in order]
            seconds = seconds[order]
            verdicts = Verdicts.concat([verdicts], order)
        return TrajectoryBatch(runs, epochs, verdicts=verdicts, seconds=seconds, record_every=record_every, **arrays)
