"""The benchmark scripts measure the grids they name: the 70-run lesson grid (one training job)
and the 100,000- and 10,000-run grids, whose configs pass the workflow's own check."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gdbench.config import check_config
from gdbench.experiment import Experiment

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import big_grids  # noqa: E402  (a script folder, not a package)
import workflow_walltime  # noqa: E402


@pytest.mark.parametrize(
    ("text", "runs", "jobs"),
    [
        (workflow_walltime.LESSON_GRID, 70, 1),
        (big_grids.GRIDS["10k"][0], 10_000, 1),
        (big_grids.GRIDS["100k"][0], 100_000, 2),
    ],
    ids=["lesson-70", "10k", "100k"],
)
def test_the_benchmarked_grids_are_what_they_say(text: str, runs: int, jobs: int) -> None:
    """A benchmark quoted as "the 100,000-run grid" must train 100,000 runs, in the number of
    training jobs the default sharding makes."""
    experiment = Experiment.from_checked(check_config(yaml.safe_load(text)), ["cpu"])
    assert len(experiment.runs) == runs and len(experiment.shards) == jobs
    assert {run.optimizer for run in experiment.runs} == {"sgd"}


def test_the_big_grids_record_every_tenth_epoch_and_time_nothing() -> None:
    """The 100,000-run grid keeps every 10th epoch; neither big grid runs the timing job."""
    big = check_config(yaml.safe_load(big_grids.GRIDS["100k"][0]))
    small = check_config(yaml.safe_load(big_grids.GRIDS["10k"][0]))
    assert big["training"]["record_every"] == 10 and small["training"]["record_every"] == 1
    assert not big["timing"]["enabled"] and not small["timing"]["enabled"]


def test_paired_figures_are_summarised_as_median_min_max() -> None:
    """The walltime benchmark prints each side and each ratio as median, min and max."""
    assert workflow_walltime.spread([3.0, 1.0, 2.0]) == "median   2.00, min   1.00, max   3.00"


def test_the_host_speed_probe_reports_torchs_import_and_the_lessons_loop() -> None:
    """The benchmarks print the host's speed beside their figures (a host's speed drifts)."""
    line = workflow_walltime.host_speed()
    match = re.fullmatch(r"import torch (\d+\.\d\d) s CPU, the lesson's loop (\d+) us/epoch", line)
    assert match, line
    assert float(match[1]) > 0 and int(match[2]) > 0


def test_the_engine_setup_benchmark_prints_its_three_lines() -> None:
    """benchmarks/engine_setup.py runs (on a small grid here) and prints ms per call at 0, 20
    and 200 epochs."""
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "engine_setup.py"), "--runs", "50"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert re.findall(r"^50 runs, +(\d+) epochs: +[\d.]+ ms per call$", out, flags=re.M) == ["0", "20", "200"]


def test_a_benchmark_record_of_na_is_read_as_nan(tmp_path: Path) -> None:
    """Snakemake writes NA where it never read a job's process (one that ended at once): the
    benchmarks' job table must still print."""
    records = tmp_path / "results" / "grid" / "benchmarks"
    records.mkdir(parents=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (records / "quick.tsv").write_text(header + "0.0500\t0:00:00\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n")
    (records / "slow.tsv").write_text(header + "2.0000\t0:00:02\t27.5\t1\t1\t1\t0\t0\t1\t0.20\n")
    rows = workflow_walltime.job_seconds(tmp_path)
    assert [r[0] for r in rows] == ["slow", "quick"]
    assert rows[0][1:3] == (2.0, 0.2) and rows[1][2] != rows[1][2]  # NaN
