"""Glue between a config and the core: datasets, theory, training a list of runs into
tables, and the training jobs' logs. The CLI and the workflow's rule scripts call these, so a
shard trained by Snakemake and a grid trained by ``gdbench train`` go through the same code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gdbench import tables
from gdbench.analysis import Criteria
from gdbench.data import DatasetSpec, parse_dataset
from gdbench.lesson import lesson_lines
from gdbench.runs import RunSpec
from gdbench.theory import Theory, analyse
from gdbench.trajectory import TrajectoryBatch

if TYPE_CHECKING:  # the engines (and torch) load only when something is trained
    from gdbench.engines import TrainOptions
    from gdbench.engines.common import Progress


def dataset_specs(config: Mapping[str, Any]) -> dict[str, DatasetSpec]:
    """The config's datasets, parsed."""
    return {name: parse_dataset(name, raw) for name, raw in config["datasets"].items()}


def theories(
    config: Mapping[str, Any], names: Sequence[str] | None = None, base_dir: str | Path = "."
) -> dict[str, Theory]:
    """Theory per dataset (x values do not depend on the seed, so neither does the theory)."""
    specs = dataset_specs(config)
    names = list(specs) if names is None else list(dict.fromkeys(names))
    return {name: analyse(specs[name].build(seed=0, base_dir=base_dir)) for name in names}


def train_options(config: Mapping[str, Any], progress: Progress | None = None) -> TrainOptions:
    """How a checked config (:func:`gdbench.config.check_config`, which fills the defaults) trains."""
    from gdbench.engines import TrainOptions

    training, analysis = config["training"], config["analysis"]
    return TrainOptions(
        record_every=int(training["record_every"]),
        criteria=Criteria(
            converged_below=float(analysis["converged_below"]),
            diverged_factor=float(analysis["diverged_factor"]),
        ),
        chunk_epochs=int(training["chunk_epochs"]),
        progress=progress,
    )


def train_runs(
    config: Mapping[str, Any],
    runs: Sequence[RunSpec],
    run_ids: Sequence[int] | None = None,
    base_dir: str | Path = ".",
    progress: Progress | None = None,
) -> tuple[TrajectoryBatch, pd.DataFrame, pd.DataFrame]:
    """Train ``runs`` and return (batch, trajectory table, summary table)."""
    from gdbench.engines import DataSource, train

    data = DataSource(dataset_specs(config), base_dir)
    batch = train(list(runs), data, train_options(config, progress))
    theory = theories(config, [r.dataset for r in runs], base_dir)
    n_points = [data.get(r).n for r in runs]
    return (
        batch,
        tables.trajectories(batch, run_ids),
        tables.summary(batch, theory, run_ids, n_points),
    )


def describe_verdict(batch: TrajectoryBatch, i: int) -> str:
    """One line saying how run ``i`` ended."""
    v = batch.verdicts
    if v.diverged[i]:
        return f"diverged at epoch {v.diverged_at[i]} (cost {v.final_cost[i]:.3g})"
    conv = f", converged at epoch {v.converged_at[i]}" if v.converged_at[i] >= 0 else ""
    return f"final W {v.final_W[i]:.6f}, b {v.final_b[i]:.6f}, cost {v.final_cost[i]:.3g}{conv}"


def training_log(batch: TrajectoryBatch, every: int, run_ids: Sequence[int] | None = None) -> Iterator[str]:
    """The log a training job writes: per run, a header, lesson-style lines and the verdict."""
    ids = np.arange(len(batch)) if run_ids is None else np.asarray(run_ids)
    for i, run in enumerate(batch.runs):
        yield f"# run {ids[i]}: {run.label()} engine={run.engine} init={run.init} batch={run.batch_label}"
        yield from lesson_lines(batch, every, i)
        yield f"# run {ids[i]}: {describe_verdict(batch, i)}"
