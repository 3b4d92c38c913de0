"""Changing one config key reruns exactly the jobs that read it, each with one short line that
says what changed (the workflow's rerun params come from each job's declared reads:
gdbench.reads). Dry runs (``snakemake -n``) on the shared small workflow run."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import GRID, SMALL_CONFIG, SNAKEFILE, snakemake_cmd

pytestmark = pytest.mark.slow

#: Jobs by the start of their message.
TRAIN0, TRAIN1 = "Training shard cpu-000", "Training shard cpu-001"
THEORY, EDGE, TIMING = "Computing the Hessian", "Locating the stability edge", "Timing the engines"
REPRODUCE, PROVENANCE = "Re-training", "Recording provenance"  # REPRODUCE: rule retrain
JOBS = (TRAIN0, TRAIN1, THEORY, EDGE, TIMING, REPRODUCE, PROVENANCE)
DEFAULT_OPTIMIZERS = {
    "sgd": {"sgd": {}},
    "heavy_ball": {"sgd": {"momentum": 0.9}},
    "nesterov": {"sgd": {"momentum": 0.9, "nesterov": True}},
    "adam": {"adam": {"betas": [0.9, 0.999], "eps": 1.0e-8}},
}
DEFAULT_DATASETS = {
    "tutorial": {"x": [1, 2, 3], "y": [2, 4, 6]},
    "noisy": {"synthetic": {"n": 64, "slope": 2.0, "intercept": 0.5, "noise": 0.5, "x_min": 0.0, "x_max": 3.0}},
}


def reasons(workdir: Path, config: dict, tmp_path: Path) -> dict[str, str]:
    """Job (of :data:`JOBS`) -> its rerun reason, from a dry run with ``config``."""
    path = tmp_path / "changed.yaml"
    # the same grid (its results folder), changed: named as the run's own config file names it
    path.write_text(yaml.safe_dump({"name": GRID, **config}, sort_keys=False))
    cmd = [*snakemake_cmd(), "-s", str(SNAKEFILE), "--directory", str(workdir), "--configfile", str(path), "-n"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout
    found = {}
    for message, reason in re.findall(r"Job \d+: (.*)\nReason: (.*)", out):
        job = next((j for j in JOBS if message.startswith(j)), None)
        if job:
            found[job] = reason
    return found


def changed(key: str, value: object, **sections: object) -> dict:
    config = copy.deepcopy(SMALL_CONFIG)
    config.update(copy.deepcopy(sections))
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return config


CASES = [
    # key, value, extra sections, jobs whose params changed, the change they name
    # the re-training of the reproducibility check samples a run of lr 0.5: it re-trains as 0.4
    ("grid.lr", [0.001, 0.01, 0.1, 0.17, 0.19, 0.4], {}, {TRAIN0, TRAIN1, REPRODUCE}, "grid.lr: 0.5 -> 0.4"),
    ("analysis.converged_below", 1.0e-5, {}, {TRAIN0, TRAIN1}, "analysis.converged_below: 1e-06 -> 1e-05"),
    (
        "datasets.noisy.synthetic.noise",
        0.4,
        {"datasets": DEFAULT_DATASETS},
        {TRAIN0, TRAIN1, THEORY, EDGE, REPRODUCE},  # the jobs split by cost: both train noisy runs
        "datasets.noisy.synthetic.noise: 0.5 -> 0.4",
    ),
    # ... and only the first one the lesson's (a job never reruns for a dataset it does not train)
    (
        "datasets.tutorial.y",
        [2, 4, 7],
        {"datasets": DEFAULT_DATASETS},
        {TRAIN0, THEORY, EDGE, REPRODUCE},
        "datasets.tutorial.y",
    ),
    ("edge.rel_width", 1.0e-3, {}, {EDGE, PROVENANCE}, "edge.rel_width: 0.0001 -> 0.001"),
    ("verify.sample", 3, {}, {REPRODUCE, PROVENANCE}, "verify.sample: 4 -> 3"),
    ("timing.epochs", 4, {}, {TIMING, PROVENANCE}, "timing.epochs: 5 -> 4"),
    ("datasets.extra", {"x": [1, 2], "y": [3, 4]}, {"datasets": DEFAULT_DATASETS}, {PROVENANCE}, "datasets.extra.x"),
    (
        "optimizers.adam.adam.eps",
        1.0e-7,
        {"optimizers": DEFAULT_OPTIMIZERS},
        {TIMING, PROVENANCE},
        "eps",
    ),
]


@pytest.mark.parametrize(("key", "value", "sections", "expected", "says"), CASES, ids=[c[0] for c in CASES])
def test_one_changed_key_reruns_exactly_the_jobs_that_read_it(
    small_run: Path, tmp_path: Path, key: str, value: object, sections: dict, expected: set, says: str
) -> None:
    """E.g. analysis.converged_below reruns training (and what reads its tables), never the
    theory or edge jobs; an unused dataset reruns no job but the provenance record; Adam's eps
    reruns timing (which times adam) and no training job (the grid trains sgd only)."""
    found = reasons(small_run, changed(key, value, **sections), tmp_path)
    params = {job for job, reason in found.items() if reason.startswith("Params have changed")}
    assert params == expected, found
    assert not set(found) & ({THEORY, EDGE, TIMING} - expected), found  # not rerun for any reason
    for job in expected:
        now = found[job].split(" now: ")[-1]
        assert says in now and len(now) < 200 and "\n" not in now, now
