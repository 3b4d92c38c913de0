"""Glue between an experiment and the core: datasets, theory, training a list of runs into
tables, and the training jobs' logs. The CLI and the workflow's rule scripts call these, so a
shard trained by Snakemake and a grid trained by ``gdbench train`` go through the same code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from gdbench import tables
from gdbench.analysis import RunAnalysis, analyse_runs
from gdbench.config import ConfigError
from gdbench.distinct import distinct_specs
from gdbench.experiment import Experiment
from gdbench.lesson import lesson_lines
from gdbench.reads import Reads
from gdbench.runs import RunSpec, runs_by_axis, specs_digest
from gdbench.theory import Optimum, Theory, analyse, optimum
from gdbench.trajectory import TrajectoryBatch

if TYPE_CHECKING:  # the engines (and torch) load only when something is trained
    import pyarrow as pa

    from gdbench.engines.run_setup import Progress

#: What a training job reads besides its runs (:func:`train_runs`, :func:`training_log`): the
#: definitions of its runs' datasets and optimizers, how it trains and judges.
TRAIN_READS = Reads(
    (
        "datasets.*",
        "optimizers.*",
        "training.record_every",
        "training.chunk_epochs",
        "training.log_every",
        "training.log_runs",
        "analysis.converged_below",
        "analysis.diverged_factor",
    )
)

#: What the theory job reads (:func:`write_theory`): the grid's datasets, optimizers and seeds.
THEORY_READS = Reads(
    ("datasets.*", "optimizers.*", "grid.dataset", "grid.optimizer", "grid.seed", "training.batch_size")
)


def job_values(experiment: Experiment, reads: Reads, runs: Sequence[RunSpec] | None = None) -> dict[str, Any]:
    """The values a job declared in ``reads`` reads, for ``runs`` (default: the grid's):
    their datasets and optimizers stand for ``datasets.*`` and ``optimizers.*``."""
    chosen = experiment.runs if runs is None else runs
    used = {"datasets": sorted({r.dataset for r in chosen}), "optimizers": [r.optimizer for r in chosen]}
    return reads.values(experiment.config, used)


def shard_values(experiment: Experiment, shard: str) -> dict[str, Any]:
    """What training job ``shard`` reads: :data:`TRAIN_READS`, and its runs by axis with the
    digest of their specs and ids (so a change of its runs reruns it, and names the axis)."""
    runs = experiment.shards[shard]
    ids = experiment.run_ids(runs)
    return {
        **runs_by_axis(runs),
        "runs.ids": f"{ids[0]}..{ids[-1]}" if ids else "none",
        "runs.specs": specs_digest(runs, ids),
        **job_values(experiment, TRAIN_READS, runs),
    }


def theories(experiment: Experiment, names: Sequence[str] | None = None) -> dict[str, Theory]:
    """Theory per dataset (x values do not depend on the seed, so neither does the theory);
    every defined dataset when ``names`` is None."""
    names = list(experiment.datasets) if names is None else list(dict.fromkeys(names))
    return {name: analyse(experiment.dataset(name).build(seed=0, base_dir=experiment.base_dir)) for name in names}


def optima(experiment: Experiment, names: Sequence[str], seeds: Sequence[int]) -> list[Optimum]:
    """The optimum of each dataset ``names``; of each (dataset, seed) where the points depend
    on the seed (synthetic noise)."""
    out = []
    for name in dict.fromkeys(names):
        spec = experiment.dataset(name)
        if spec.seed_dependent:
            out += [optimum(spec.build(seed=s, base_dir=experiment.base_dir), s) for s in dict.fromkeys(seeds)]
        else:
            out.append(optimum(spec.build(seed=0, base_dir=experiment.base_dir)))
    return out


def train_runs(
    experiment: Experiment,
    runs: Sequence[RunSpec],
    run_ids: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> tuple[TrajectoryBatch, pd.DataFrame, pd.DataFrame]:
    """Train ``runs`` and return (batch, trajectory table, summary table)."""
    batch, summary = _train_and_analyse(experiment, runs, run_ids, progress)
    return batch, tables.trajectories(batch, run_ids), summary


def _train_distinct(
    experiment: Experiment, runs: Sequence[RunSpec], progress: Progress | None
) -> tuple[TrajectoryBatch, RunAnalysis]:
    """Train and analyse ``runs``, which are distinct computations
    (:func:`gdbench.distinct.distinct_specs`)."""
    from gdbench.engines import train

    data = experiment.data_source()
    options = experiment.train_options(progress)
    batch = train(list(runs), data, options)
    v = batch.verdicts
    for bad in np.flatnonzero(~np.isfinite(v.initial_cost)):
        run = runs[int(bad)]
        raise ConfigError(
            f"the initial cost of a {run.dtype} run is not finite ({v.initial_cost[bad]}): its values overflow "
            f"{run.dtype}; scale the data down or use dtype float64",
            ("datasets", run.dataset),
        )
    return batch, analyse_runs(batch, data, options.optimizers, options.criteria.diverged_factor)


def _tables_of(
    batch: TrajectoryBatch,
    analysed: RunAnalysis,
    rows: np.ndarray,
    runs: Sequence[RunSpec],
    run_ids: Sequence[int] | None,
    seconds: float | None,
) -> tuple[TrajectoryBatch, pd.DataFrame]:
    """Runs ``runs`` given the numbers of rows ``rows`` of ``batch``, their representatives
    (the same computations), each under its own spec, with ``seconds`` of training each (None:
    the runs are those rows themselves, with their own times): their batch and summary table."""
    if not (rows.size == len(batch) and np.array_equal(rows, np.arange(len(batch)))):
        batch, analysed = batch.take(rows), analysed.take(rows)
    if seconds is not None:
        batch = dataclasses.replace(batch, runs=list(runs), seconds=np.full(len(runs), seconds))
    return batch, tables.summary(batch, analysed, run_ids)


def _train_and_analyse(
    experiment: Experiment, runs: Sequence[RunSpec], run_ids: Sequence[int] | None, progress: Progress | None
) -> tuple[TrajectoryBatch, pd.DataFrame]:
    """Train ``runs`` (one of each group that is the same computation); the batch and its summary table."""
    first, inverse = distinct_specs(runs, experiment.data_source())
    batch, analysed = _train_distinct(experiment, [runs[int(i)] for i in first], progress)
    seconds = None if first.size == len(runs) else batch.seconds.sum() / len(runs)
    return _tables_of(batch, analysed, inverse, runs, run_ids, seconds)


def train_chunks(
    experiment: Experiment,
    runs: Sequence[RunSpec],
    run_ids: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> Iterator[tuple[list[int], TrajectoryBatch, Iterator[pa.Table], pd.DataFrame]]:
    """:func:`train_runs` over ``runs`` ``sharding.runs_per_chunk`` at a time, yielding each
    chunk's (run ids, batch, trajectory table as Arrow tables of consecutive runs
    (:func:`gdbench.tables.trajectory_pieces`), summary table): a caller that writes each chunk
    before asking for the next holds one chunk in memory, whatever the number of runs. A run's
    numbers do not depend on the runs trained beside it, so chunks change nothing.
    Runs that are the same computation train once per job when all of its distinct ones fit in
    a chunk (100 seeds of the lesson's data and start are one computation), else once per chunk."""
    ids = list(range(len(runs))) if run_ids is None else [int(i) for i in run_ids]
    size = experiment.sharding.runs_per_chunk
    first, inverse = distinct_specs(runs, experiment.data_source())
    whole = None
    if first.size <= size:  # trained once, shared out chunk by chunk
        whole = _train_distinct(experiment, [runs[int(i)] for i in first], progress)
    for start in range(0, len(runs), size):
        stop = min(start + size, len(runs))
        part, own = ids[start:stop], inverse[start:stop]
        if whole is not None:
            (batch, analysed), rows = whole, own
            seconds = batch.seconds.sum() / len(runs)
        else:
            needed = np.unique(own)  # this chunk's representatives
            batch, analysed = _train_distinct(experiment, [runs[int(i)] for i in first[needed]], progress)
            rows, seconds = np.searchsorted(needed, own), batch.seconds.sum() / (stop - start)
        if np.array_equal(first[own], np.arange(start, stop)):  # each run is its own representative
            seconds = None
        batch, summary = _tables_of(batch, analysed, rows, runs[start:stop], part, seconds)
        yield part, batch, tables.trajectory_pieces(batch, part), summary


def describe_verdict(batch: TrajectoryBatch, i: int) -> str:
    """One line saying how run ``i`` ended."""
    v = batch.verdicts
    if v.diverged[i]:
        return f"diverged at epoch {v.diverged_at[i]} (cost {v.final_cost[i]:.3g})"
    conv = f", converged at epoch {v.converged_at[i]}" if v.converged_at[i] >= 0 else ""
    return f"final W {v.final_W[i]:.6f}, b {v.final_b[i]:.6f}, cost {v.final_cost[i]:.3g}{conv}"


def training_log(
    batch: TrajectoryBatch, every: int, run_ids: Sequence[int] | None = None, detailed: Container[int] | None = None
) -> Iterator[str]:
    """The log a training job writes: per run in ``detailed`` (positions in ``batch``; all when
    None), a header, lesson-style lines and how it ended; per other run, one line (its header and
    how it ended)."""
    ids = np.arange(len(batch)) if run_ids is None else np.asarray(run_ids)
    for i, run in enumerate(batch.runs):
        header = f"# run {ids[i]}: {run.label()} engine={run.engine} init={run.init} batch={run.batch_label}"
        if detailed is None or i in detailed:
            yield header
            yield from lesson_lines(batch, every, i)
            yield f"# run {ids[i]}: {describe_verdict(batch, i)}"
        else:
            yield f"{header}: {describe_verdict(batch, i)}"


def logged_runs(total: int, limit: int) -> frozenset[int]:
    """Which of a job's ``total`` runs (positions) its log shows in full: ``limit`` of them, spread
    evenly, the first and the last among them (all when ``limit >= total``)."""
    if limit >= total:
        return frozenset(range(total))
    if limit <= 0:
        return frozenset()
    return frozenset(np.linspace(0, total - 1, limit).round().astype(int).tolist())


def write_theory(
    experiment: Experiment,
    csv_path: str | Path,
    html_path: str | Path,
    log_path: str | Path,
    curve_path: str | Path | None = None,
) -> None:
    """The theory table of the grid's datasets (and seeds, where the points depend on them) and
    optimizers, with each dataset's optimum, as CSV, as HTML for the report and as text to
    ``log_path``; with ``curve_path``, each optimizer's predicted rate curve (the table the rate
    figure draws, :func:`gdbench.tables.rate_curve_table`) as CSV."""
    from gdbench import io

    table = theory_table(experiment)
    io.write_csv(table, csv_path)
    if curve_path is not None:
        specs = {name: experiment.optimizer(name) for name in experiment.grid.optimizer}
        curves = tables.rate_curve_table(theories(experiment, experiment.grid.dataset), specs)
        io.write_csv(curves, curve_path)
    note = (
        "Full-batch runs of each optimizer converge iff lr < critical_lr (empty: no "
        "closed form, e.g. Adam); optimal_cost is the least-squares cost (W_star, b_star). Minibatch rows "
        "(batch_size below n) have no full-batch columns: ms_critical_lr is a mean-square stability bound "
        "of a model of independent random batches instead."
    )
    io.write_html_table(table, html_path, "Theory per dataset", note)
    io.write_text(table.to_string(index=False) + "\n", log_path)


def theory_table(
    experiment: Experiment, datasets: Sequence[str] | None = None, optimizers: Sequence[str] | None = None
) -> pd.DataFrame:
    """The theory table of ``datasets`` and ``optimizers`` (default: the grid's) over the grid's
    seeds and batch sizes (minibatch rows: the mean-square bound instead of the full-batch
    columns, :func:`gdbench.tables.theory_by_batch_size`)."""
    names = list(experiment.grid.dataset) if datasets is None else list(datasets)
    specs = {
        name: experiment.optimizer(name) for name in (experiment.grid.optimizer if optimizers is None else optimizers)
    }
    table = tables.theory_table(
        theories(experiment, names), optima(experiment, names, experiment.grid.seed), optimizers=specs
    )
    xs = {name: experiment.dataset(name).build(seed=0, base_dir=experiment.base_dir).x for name in names}
    return tables.theory_by_batch_size(table, experiment.grid.batch_size, xs, specs)


#: Rows of the trajectory table shown on the report's preview page.
PREVIEW_ROWS = 20


def write_merged_tables(
    trajectory_shards: Sequence[str],
    summary_shards: Sequence[str],
    trajectories_path: str | Path,
    preview_path: str | Path,
    summary_csv: str | Path,
    summary_parquet: str | Path,
    log_path: str | Path,
    summary_html: str | Path | None = None,
) -> None:
    """The training jobs' shards joined into the published tables: the trajectories streamed
    row group by row group, the summaries (one row per run) as Parquet and CSV (and, with
    ``summary_html``, as the report's interactive table), and an HTML preview of the
    trajectories' first rows; a line of counts to ``log_path``. A damaged shard stops it with
    one line naming the file and the remedy (its traceback in ``log_path``)."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet as pq

    from gdbench import io
    from gdbench.html_tables import write_interactive_table
    from gdbench.inputs import require_readable

    require_readable([*trajectory_shards, *summary_shards], log_path)

    # The trajectories (pyarrow, which releases the GIL) are joined while the summary (pandas) is written.
    with ThreadPoolExecutor(1) as pool:
        joined = pool.submit(tables.concat_parquet, list(trajectory_shards), str(trajectories_path))
        summary = tables.concat_tables(list(summary_shards))
        io.write_parquet(summary, summary_parquet)
        io.write_csv(summary, summary_csv)
        if summary_html is not None:
            note = "One row per run (results/tables/summary.csv). Click a header to sort; type in Search to filter."
            write_interactive_table(summary, summary_html, "Summary", note)
        rows = joined.result()
    head = next(pq.ParquetFile(trajectory_shards[0]).iter_batches(batch_size=PREVIEW_ROWS), None)
    io.write_html_table(
        head.to_pandas() if head is not None else pd.DataFrame(),
        preview_path,
        "The trajectory table (first rows)",
        f"{rows:,} rows for {len(summary):,} runs in {trajectories_path}; "
        f"the first {PREVIEW_ROWS} rows are shown here.",
    )
    io.write_text(f"{rows} trajectory rows, {len(summary)} runs\n", log_path)
