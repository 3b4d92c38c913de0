"""Identical runs trained and analysed once: the same numbers and analysis arrays as for every
run, for grids with seeds that matter (noisy points, a normal start, minibatches) and seeds
that do not."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from gdbench import tables
from gdbench.analysis import analyse_runs
from gdbench.config import check_config
from gdbench.distinct import analyse_distinct, distinct_runs, distinct_specs
from gdbench.engines import train
from gdbench.experiment import Experiment

NOISY = {"synthetic": {"n": 16, "slope": 2.0, "intercept": 0.5, "noise": 0.5, "x_min": 0.0, "x_max": 3.0}}


def experiment_of(training: dict, optimizers: dict | None = None) -> Experiment:
    config = check_config(
        {
            "datasets": {"tutorial": {"x": [1, 2, 3], "y": [2, 4, 6]}, "noisy": NOISY},
            "optimizers": optimizers or {"sgd": {"sgd": {}}, "heavy_ball": {"sgd": {"momentum": 0.9}}},
            "grid": {
                "dataset": ["tutorial", "noisy"],
                "optimizer": list(optimizers or ["sgd", "heavy_ball"]),
                "lr": [0.001, 0.05, 0.17, 0.19, 0.5],  # slow, converging, both edges, diverging
                "seed": [1, 2, 3],
                "epochs": [300],
                "device": ["cpu"],
            },
            "training": training,
        }
    )
    return Experiment.from_checked(config, ["cpu"])


def trained(training: dict, optimizers: dict | None = None):
    experiment = experiment_of(training, optimizers)
    data, options = experiment.data_source(), experiment.train_options(None)
    return train(list(experiment.runs), data, options), data, options


def assert_same_analysis(a, b) -> None:
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        assert x.dtype == y.dtype and x.shape == y.shape, field.name
        if x.dtype.kind == "f":
            x, y = x.view(np.uint64), y.view(np.uint64)  # bit for bit, NaN included
        assert np.array_equal(x, y), field.name


@pytest.mark.parametrize(
    ("training", "optimizers", "distinct"),
    [
        ({}, None, 2 * 5 + 2 * 5 * 3),  # the lesson's runs share a trajectory over seeds; noisy ones do not
        ({"init": "normal"}, None, 2 * 2 * 5 * 3),  # the start depends on the seed
        ({"batch_size": 2}, None, 2 * 2 * 5 * 3),  # minibatch: the seed orders the batches
        ({}, {"adam": {"adam": {}}}, 5 + 5 * 3),
        ({"dtype": "float64", "record_every": 7}, None, 2 * 5 + 2 * 5 * 3),
    ],
)
def test_analysing_distinct_runs_once_gives_every_run_its_own_analysis(training, optimizers, distinct) -> None:
    """If the grouping joined runs whose analysis differs (a seed that matters), a summary
    column of some run would be another run's: the arrays must equal analysing every run."""
    batch, data, options = trained(training, optimizers)
    first, inverse = distinct_runs(batch, data)
    assert first.size == distinct
    assert np.array_equal(first[inverse][first], first)  # each group's first row stands for itself
    whole = analyse_runs(batch, data, options.optimizers, options.criteria.diverged_factor)
    once = analyse_distinct(batch, data, options.optimizers, options.criteria.diverged_factor)
    assert_same_analysis(whole, once)


def test_a_run_whose_trajectory_differs_is_not_grouped() -> None:
    """Grouping is checked on the numbers, not assumed from the specs: a run of the same spec
    but another trajectory (one changed bit) is analysed on its own."""
    batch, data, options = trained({})
    first, _ = distinct_runs(batch, data)
    other = np.flatnonzero(np.array([r.dataset == "tutorial" and r.seed == 2 for r in batch.runs]))[1]
    batch.W[other, 5] = np.nextafter(batch.W[other, 5], np.float32(np.inf))
    first_after, inverse = distinct_runs(batch, data)
    assert first_after.size == first.size + 1 and other in first_after
    assert first_after[inverse[other]] == other
    assert_same_analysis(
        analyse_runs(batch, data, options.optimizers, options.criteria.diverged_factor),
        analyse_distinct(batch, data, options.optimizers, options.criteria.diverged_factor),
    )


@pytest.mark.parametrize(
    ("training", "optimizers", "distinct"),
    [
        ({}, None, 2 * 5 + 2 * 5 * 3),
        ({"init": "normal"}, None, 2 * 2 * 5 * 3),
        ({"batch_size": 2}, None, 2 * 2 * 5 * 3),
        ({"engine": "loop"}, {"adam": {"adam": {}}}, 5 + 5 * 3),
    ],
)
def test_runs_that_are_one_computation_train_once_and_give_every_run_its_numbers(
    training, optimizers, distinct, monkeypatch
) -> None:
    """A training job trains one run per group of distinct_specs (the grouping by specs finds
    exactly the groups that the trained numbers show), and its tables equal training every
    run: W, b, cost, verdicts and the analysis, bit for bit; only the batch's time per run is
    shared out."""
    from gdbench import pipeline

    batch, data, options = trained(training, optimizers)
    first, inverse = distinct_specs(batch.runs, data)
    assert (first.size, np.array_equal(inverse, distinct_runs(batch, data)[1])) == (distinct, True)
    trained_runs = []

    def counting(runs, *args, **kwargs):
        trained_runs.append(len(runs))
        return train(runs, *args, **kwargs)

    monkeypatch.setattr("gdbench.engines.train", counting)
    experiment = experiment_of(training, optimizers)
    ids = list(range(len(batch)))
    once, _, summary = pipeline.train_runs(experiment, experiment.runs, ids)
    assert trained_runs == [distinct]
    assert [r.seed for r in once.runs] == [r.seed for r in batch.runs]
    for name in ("W", "b", "cost"):
        assert np.array_equal(getattr(once, name).view(np.uint32), getattr(batch, name).view(np.uint32)), name
    whole = tables.summary(batch, analyse_runs(batch, data, options.optimizers, options.criteria.diverged_factor), ids)
    pd.testing.assert_frame_equal(
        summary.drop(columns="batch_seconds_per_run"), whole.drop(columns="batch_seconds_per_run")
    )
