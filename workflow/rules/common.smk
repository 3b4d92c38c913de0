# Imports, config validation, and the small helpers the rules call.
import sys
from pathlib import Path

# The workflow runs the gdbench of its own checkout (so do its scripts: see their first lines).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from snakemake.utils import validate

from gdbench.config import ConfigError, check_config, config_hash
from gdbench.runs import expand_grid, resolve_devices, shard

# Check the config before any job runs: one readable line and a non-zero exit on error.
try:
    config.update(check_config(config, base_dir=Path.cwd()))
except ConfigError as exc:
    sys.exit(f"gdbench: {exc}")
validate(config, schema="../schemas/config.schema.yaml")


def _cuda_visible():
    """Whether CUDA is visible here (torch is imported only when `auto` needs it)."""
    import torch

    return torch.cuda.is_available()


_device_setting = lookup(dpath="grid/device", within=config)
DEVICES = resolve_devices(
    _device_setting, _cuda_visible() if _device_setting == "auto" else False
)
RUNS = expand_grid(config, DEVICES)
RUN_IDS = {run: i for i, run in enumerate(RUNS)}
SHARDS = shard(
    RUNS,
    lookup(dpath="sharding/jobs_per_device", within=config),
    lookup(dpath="sharding/max_runs_per_job", within=config),
)
TIMING = lookup(dpath="timing/enabled", within=config)


wildcard_constraints:
    shard=r"(cpu|cuda(:\d+)?)-\d{3}",
    device=r"cpu|cuda(:\d+)?",


def startup_message():
    return (
        f"gdbench: {len(RUNS)} runs on {', '.join(DEVICES)} in {len(SHARDS)} training jobs; "
        f"config {config_hash(config)}"
    )


def shard_runs(wildcards):
    """The run specs (as plain dicts) of one training job: its params, so a change re-runs it."""
    return [run.to_dict() for run in SHARDS[wildcards.shard]]


def results_config(names):
    """What training needs of the config for the datasets ``names``: their definitions and
    the training and analysis settings (so editing an unused dataset re-runs nothing).
    """
    training = {k: v for k, v in config["training"].items() if k != "threads"}
    return {
        "datasets": {name: config["datasets"][name] for name in sorted(names)},
        "training": training,
        "analysis": config["analysis"],
    }


def shard_config(wildcards):
    """A training job's params: the config it trains with (its own datasets only)."""
    return results_config({run.dataset for run in SHARDS[wildcards.shard]})


def grid_config(wildcards):
    """The config the whole grid trains with (only the datasets the grid uses)."""
    return results_config({run.dataset for run in RUNS})


def shard_csv_files(wildcards):
    """CSV files the shard reads: inputs, so editing one re-trains its runs."""
    names = sorted({run.dataset for run in SHARDS[wildcards.shard]})
    return [
        config["datasets"][n]["csv"] for n in names if "csv" in config["datasets"][n]
    ]


def shard_run_ids(wildcards):
    return [RUN_IDS[run] for run in SHARDS[wildcards.shard]]


def device_of(name):
    return name.rsplit("-", 1)[0]


def gpu_count(wildcards):
    """CUDA jobs ask for a GPU (local runs serialise them; clusters request one)."""
    name = getattr(wildcards, "shard", None) or wildcards.device
    return 1 if device_of(name).startswith("cuda") else 0


def shard_outputs(kind):
    return expand(f"results/shards/{{shard}}/{kind}", shard=sorted(SHARDS))


def all_outputs():
    outputs = [
        "results/tables/trajectories.parquet",
        "results/tables/summary.csv",
        "results/tables/summary.parquet",
        "results/tables/theory.csv",
        "results/plots/convergence.png",
        "results/plots/divergence.png",
        "results/provenance.json",
    ]
    if TIMING:
        outputs += ["results/tables/timing.csv", "results/plots/timing.png"]
    outputs += ["results/reproducibility.txt", "results/tables/lesson_log.csv"]
    if len(DEVICES) > 1:
        outputs.append("results/tables/device_agreement.csv")
    return outputs


def write_theory(dataset_config, datasets, csv_path, html_path, log_path):
    """The theory table of the grid's datasets, as CSV and as HTML for the report."""
    from gdbench import io
    from gdbench.pipeline import theories
    from gdbench.tables import theory_table

    table = theory_table(theories(dataset_config, datasets))
    io.write_csv(table, csv_path)
    note = "Full-batch gradient descent converges iff lr < critical_lr."
    io.write_html_table(table, html_path, "Theory per dataset", note)
    io.write_text(table.to_string(index=False) + "\n", log_path)


def join_csv(paths, out_path, log_path):
    """Concatenate CSV tables (one per device) into one."""
    import pandas as pd

    from gdbench import io

    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    io.write_csv(table, out_path)
    io.write_text(table.to_string(index=False) + "\n", log_path)
