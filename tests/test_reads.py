"""What each job reads: declarations that resolve on every config, values flattened to their
leaves, and a rerun line that says what changed, stays one short line and is stable once the
job has run with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gdbench.config import check_config
from gdbench.edge import EDGE_READS
from gdbench.experiment import Experiment
from gdbench.findings import FINDINGS_READS
from gdbench.pipeline import THEORY_READS, TRAIN_READS, job_values, shard_values
from gdbench.provenance import PROVENANCE_READS
from gdbench.reads import Reads, describe_changes, digest, param_line, record_done
from gdbench.timing.plans import TIMING_READS
from gdbench.verify import COMPARE_READS, RETRAIN_READS, VERIFY_READS

DECLARED = {
    "train": TRAIN_READS,
    "theory": THEORY_READS,
    "edge": EDGE_READS,
    "reproduce": VERIFY_READS,  # rule verify's
    "retrain": RETRAIN_READS,
    "compare": COMPARE_READS,
    "findings": FINDINGS_READS,
    "timing": TIMING_READS,
    "provenance": PROVENANCE_READS,
}


@pytest.mark.parametrize("job", DECLARED)
def test_every_declared_path_is_a_key_of_the_checked_config(job: str) -> None:
    """A declaration naming a key the config does not have would fail every workflow start."""
    config = check_config({})
    values = DECLARED[job].values(config, {"datasets": ["tutorial"], "optimizers": ["sgd"]})
    assert values and all(isinstance(k, str) and "*" not in k for k in values)


def test_values_are_leaves_and_only_the_used_definitions() -> None:
    """``datasets.*`` is the definitions the job uses, flattened: editing another reruns nothing."""
    config = check_config({})
    values = Reads(("datasets.*", "edge")).values(config, {"datasets": ["noisy"]})
    assert values["datasets.noisy.synthetic.noise"] == 0.5
    assert not any(k.startswith("datasets.tutorial") for k in values)
    assert values["edge.rel_width"] == config["edge"]["rel_width"]


def test_the_provenance_job_reads_the_whole_config() -> None:
    """Its record holds every key: every leaf of the checked config is among its values, so a
    change anywhere reruns it (with a line naming the key, not the whole config)."""
    config = check_config({})
    values = PROVENANCE_READS.values(config)
    assert values == Reads(tuple(config)).values(config)
    assert values["analysis.converged_below"] == 1.0e-6 and "datasets.tutorial.x" in values
    changed = check_config({"analysis": {"converged_below": 1.0e-5}})
    assert describe_changes(values, PROVENANCE_READS.values(changed)) == "analysis.converged_below: 1e-06 -> 1e-05"


def test_the_edge_and_theory_jobs_do_not_read_the_convergence_threshold() -> None:
    """analysis.converged_below judges convergence only: training and verify read it, the
    theory and edge jobs do not (so changing it reruns neither)."""
    experiment = Experiment.from_checked(check_config({}), ["cpu"])
    assert "analysis.converged_below" in job_values(experiment, TRAIN_READS)
    assert "analysis.converged_below" in job_values(experiment, VERIFY_READS)
    assert "analysis.converged_below" not in job_values(experiment, THEORY_READS)
    assert "analysis.converged_below" not in job_values(experiment, EDGE_READS)
    assert "analysis.diverged_factor" in job_values(experiment, EDGE_READS)


def test_a_shard_reads_its_own_runs_only() -> None:
    """A training job's values name its runs' axes and datasets, not the other shard's (the
    jobs split by training cost: the first takes the lesson's runs and some of the noisy line's)."""
    config = check_config(
        {"grid": {"dataset": ["tutorial", "noisy"], "device": ["cpu"]}, "sharding": {"min_runs_per_job": 1}}
    )
    experiment = Experiment.from_checked(config, ["cpu"])
    first, second = (shard_values(experiment, s) for s in sorted(experiment.shards))
    assert first["grid.dataset"] == ["noisy", "tutorial"] and "datasets.tutorial.x" in first
    assert second["grid.dataset"] == ["noisy"] and "datasets.tutorial.x" not in second


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ({"grid.lr": [0.01, 0.05]}, {"grid.lr": [0.01, 0.03]}, "grid.lr: 0.05 -> 0.03"),
        ({"edge.rel_width": 0.01}, {"edge.rel_width": 0.02}, "edge.rel_width: 0.01 -> 0.02"),
        ({"grid.seed": [1]}, {"grid.seed": [1, 2]}, "grid.seed: [1] -> [1, 2]"),
        ({"a": 1}, {"a": 1, "b": 2}, "b: added 2"),
        ({"grid.lr": [0.1, 0.2], "runs.specs": "x"}, {"grid.lr": [0.1, 0.3], "runs.specs": "y"}, "grid.lr: 0.2 -> 0.3"),
        ({"runs.specs": "x"}, {"runs.specs": "y"}, "runs.specs: x -> y"),
    ],
)
def test_a_change_is_named_by_its_key_and_values(old: dict, new: dict, line: str) -> None:
    assert describe_changes(old, new) == line


def test_a_change_of_a_long_list_stays_one_short_line() -> None:
    """A 1,000-value lr list with one value replaced, and 200 keys changed at once: one line."""
    lrs = [i * 1e-4 for i in range(1, 1001)]
    line = describe_changes({"grid.lr": lrs}, {"grid.lr": [*lrs[:-1], 0.5]})
    assert line == "grid.lr: 0.1 -> 0.5"
    many = describe_changes({f"k{i}": i for i in range(200)}, {f"k{i}": -i for i in range(1, 201)})
    assert "\n" not in many and len(many) <= 200 and many.endswith("more")
    grown = describe_changes({"grid.lr": lrs[:10]}, {"grid.lr": lrs})
    assert grown == "grid.lr: 10 values 0.0001..0.001 -> 1000 values 0.0001..0.1"


def test_the_rerun_line_says_what_changed_and_is_stable_once_run(tmp_path: Path) -> None:
    """No record: a summary; after the job ran with it, the same values give the same line
    (no rerun); changed values name the change; reverted values give the last run's line."""
    folder = tmp_path / "edge"
    first = param_line({"edge.rel_width": 0.01}, folder)
    assert first.startswith("reads edge") and first.endswith(f"[{digest({'edge.rel_width': 0.01})}]")
    assert param_line({"edge.rel_width": 0.01}, folder) == first  # nothing ran: still the same
    record_done(first, folder)
    assert param_line({"edge.rel_width": 0.01}, folder) == first
    changed = param_line({"edge.rel_width": 0.02}, folder)
    assert changed == f"edge.rel_width: 0.01 -> 0.02 [{digest({'edge.rel_width': 0.02})}]"
    record_done(changed, folder)
    assert param_line({"edge.rel_width": 0.02}, folder) == changed  # ran: stable, no rerun
    assert param_line({"edge.rel_width": 0.01}, folder).startswith("edge.rel_width: 0.02 -> 0.01 [")
