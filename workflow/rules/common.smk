# Imports, config validation, and the small helpers the rules call (job code lives in the
# package: run: blocks call gdbench functions).
import sys
from pathlib import Path

# The workflow runs the gdbench of its own checkout (so do its scripts: see their first lines).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from snakemake.utils import validate

from gdbench.config import ConfigError, check_config, config_hash
from gdbench.edge import EDGE_READS
from gdbench.experiment import TIMING_READS, Experiment
from gdbench.findings import FINDINGS_READS
from gdbench.last_lines import end_of_run_message
from gdbench.pipeline import THEORY_READS, job_values, shard_values
from gdbench.reads import param_line
from gdbench.reproducibility import verdict_message
from gdbench.runs import cuda_present, resolve_devices
from gdbench.verify import VERIFY_READS

# Check the config before any job runs: one readable line and a non-zero exit on error.
try:
    config.update(check_config(config, base_dir=Path.cwd()))
except ConfigError as exc:
    sys.exit(f"gdbench: {exc}")
validate(config, schema="../schemas/config.schema.yaml")


# `auto` is resolved here, without importing torch: see gdbench.runs.cuda_present for the rule.
_device_setting = lookup(dpath="grid/device", within=config)
DEVICES = resolve_devices(
    _device_setting, cuda_present() if _device_setting == "auto" else False
)
EXPERIMENT = Experiment.from_checked(config, DEVICES)
RUNS, SHARDS = EXPERIMENT.runs, EXPERIMENT.shards
TIMING = EXPERIMENT.timing.enabled
# Each job's rerun record (gdbench.reads): the values it read, the line it last ran with.
RECORDS = "results/logs/reads"


wildcard_constraints:
    shard=r"(cpu|cuda(:\d+)?)-\d{3}",
    device=r"cpu|cuda(:\d+)?",


def startup_message():
    return (
        f"gdbench: {len(RUNS)} runs on {', '.join(DEVICES)} in {len(SHARDS)} training jobs; "
        f"config {config_hash(config)}"
    )


def reads_param(job, values):
    """A job's rerun param, from what its code declares it reads (gdbench.reads): one short
    line saying what changed since its last run, ending in a digest of the values."""
    return param_line(values, record(job))


def record(job):
    """Where a job's rerun record is kept (the job writes it when it succeeds)."""
    return f"{RECORDS}/{job}"


def shard_reads(wildcards):
    """A training job's param: its runs and what it trains them with (the script re-derives
    them from the config and checks the digest)."""
    return reads_param(
        f"train/{wildcards.shard}", shard_values(EXPERIMENT, wildcards.shard)
    )


def grid_reads(job, reads):
    """The param of a job that reads ``reads`` for the whole grid's runs."""
    return lambda wildcards: reads_param(job, job_values(EXPERIMENT, reads))


def timing_reads(wildcards):
    """The timing job's param: its settings and the optimizers it times."""
    used = {"optimizers": EXPERIMENT.timing.optimizers}
    return reads_param(f"timing/{wildcards.device}", TIMING_READS.values(config, used))


def timing_cores():
    """Cores the timing job asks for: timing.threads, or every core with timing.alone
    (without --cores, as in a dry run or a cluster profile without cores, timing.threads).
    """
    threads = EXPERIMENT.timing.threads
    if EXPERIMENT.timing.alone:
        return workflow.resource_settings.cores or threads
    return threads


def shard_csv_files(wildcards):
    """CSV files the shard reads: inputs, so editing one re-trains its runs."""
    names = sorted({run.dataset for run in SHARDS[wildcards.shard]})
    return [
        config["datasets"][n]["csv"] for n in names if "csv" in config["datasets"][n]
    ]


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
        "results/plots/rate.png",
        "results/plots/time_to_target.png",
        "results/plots/profile.png",
        "results/provenance.json",
    ]
    if TIMING:
        outputs += ["results/tables/timing.csv", "results/plots/timing.png"]
    outputs += ["results/reproducibility.txt", "results/tables/lesson_log.csv"]
    if EXPERIMENT.edge.enabled:
        outputs += ["results/tables/edge.csv", "results/plots/edge.png"]
    if len(DEVICES) > 1:
        outputs.append("results/tables/device_agreement.csv")
    outputs += ["results/tables/findings.csv", "results/front_page.rst"]
    return outputs


def findings_inputs(wildcards):
    """The tables the findings are computed from (the edge table where the search runs)."""
    inputs = {
        "summary": rules.merge_tables.output.summary_parquet,
        "theory": rules.theory.output.csv,
    }
    if EXPERIMENT.edge.enabled:
        inputs["edge"] = rules.edge.output.csv
    return inputs


def front_page_inputs(wildcards):
    """What the front page states: the findings, the run counts, the verdict, the timing."""
    inputs = {
        "findings": rules.findings.output.findings,
        "summary": rules.merge_tables.output.summary_parquet,
        "verdict": rules.reproduce.output.verdict,
    }
    if TIMING:
        inputs["timing"] = rules.join_timing.output[0]
    return inputs


def figure(name, caption, category, label):
    """A figure's two outputs: the PNG (shown in the report) and the SVG."""
    return {
        f"{name}_png": report(
            f"results/plots/{name}.png",
            caption=f"../report/{caption}",
            category=category,
            labels={"result": label},
        ),
        f"{name}_svg": f"results/plots/{name}.svg",
    }


def figures():
    outputs = {
        **figure("convergence", "convergence.rst", "Convergence", "cost vs epoch"),
        **figure(
            "rate", "rate.rst", "Convergence", "epochs per decade vs lr / critical lr"
        ),
        **figure(
            "time_to_target",
            "time_to_target.rst",
            "Findings",
            "time to target: epochs to converge vs lr",
        ),
        **figure(
            "profile",
            "profile.rst",
            "Findings",
            "optimizers compared (performance profile)",
        ),
        **figure(
            "divergence",
            "divergence.rst",
            "Divergence",
            "final cost vs learning rate",
        ),
    }
    if TIMING:
        outputs.update(
            figure(
                "timing",
                "timing.rst",
                "Timing",
                "seconds per epoch and throughput",
            )
        )
    return outputs


def figure_inputs(wildcards):
    inputs = {
        "trajectories": rules.merge_tables.output.trajectories,
        "summary": rules.merge_tables.output.summary_parquet,
        "theory": rules.theory.output.csv,
        "curve": rules.theory.output.curve,
        "findings": rules.findings.output.findings,
        "time_to_target": rules.findings.output.time_to_target,
        "profile": rules.findings.output.profile,
    }
    if TIMING:
        inputs["timing"] = rules.join_timing.output[0]
    return inputs


def edge_csv_files(wildcards):
    """CSV files of the grid's datasets: inputs, so editing one re-runs the search."""
    return [
        config["datasets"][n]["csv"]
        for n in config["grid"]["dataset"]
        if "csv" in config["datasets"][n]
    ]
