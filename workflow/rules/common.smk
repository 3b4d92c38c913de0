# Imports, config validation, and the small helpers the rules call (job code lives in the
# package: run: blocks call gdbench functions).
import functools
import os
import re
import sys
from pathlib import Path

# The workflow runs the gdbench of its own checkout (so do its scripts: see their first lines).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from gdbench.config import ConfigError, check_config, config_hash
from gdbench.edge import EDGE_READS
from gdbench.experiment import Experiment
from gdbench.findings import FINDINGS_READS
from gdbench.last_lines import end_of_run_message, report_command
from gdbench.pipeline import THEORY_READS, job_values, shard_values
from gdbench.provenance import PROVENANCE_READS
from gdbench.reads import param_line
from gdbench.reproducibility import reproducibility_line, results_notice
from gdbench.runs import cuda_present, resolve_devices
from gdbench.shutdown import cancel_pending_timers
from gdbench.timing.plans import TIMING_READS, reserved_slots
from gdbench.verify import COMPARE_READS, retrain_values
from gdbench.verify_sample import sample_run_ids

# Check the config before any job runs: one readable line and a non-zero exit on error.
# check_config validates against ../schemas/config.schema.yaml (the same file) as written and
# again with its defaults filled in. Snakemake's own validate() would repeat that: 0.2 s of
# CPU (its first call, measured in-process) at every start, while nothing runs beside it.
# tests/test_config.py keeps the schema valid for validate() all the same.
try:
    config.update(check_config(config, base_dir=Path.cwd()))
except ConfigError as exc:
    sys.exit(f"gdbench: {exc}")


def grid_name():
    """The folder name of this grid's results: `name:` from the config or the command line,
    else the stem of the last --configfile (my-grid.yaml: my-grid), else `default`. So a
    second grid never overwrites the first one's results."""
    if config.get("name"):
        return config["name"]
    own = Path(workflow.basedir, "config", "config.yaml").resolve()
    files = [Path(f) for f in workflow.overwrite_configfiles or []]
    files = [f for f in files if f.resolve() != own]
    if not files:
        return "default"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", files[-1].stem).strip("-") or "default"


# Every result path starts here (results/<grid name>/); the package names no paths.
GRID = grid_name()
RESULTS = f"results/{GRID}"
config["name"] = GRID  # the report and provenance name the grid they show


# `auto` is resolved here, without importing torch: see gdbench.runs.cuda_present for the rule.
_device_setting = lookup(dpath="grid/device", within=config)
DEVICES = resolve_devices(
    _device_setting, cuda_present() if _device_setting == "auto" else False
)
EXPERIMENT = Experiment.from_checked(config, DEVICES)
RUNS, SHARDS = EXPERIMENT.runs, EXPERIMENT.shards
TIMING = EXPERIMENT.timing.enabled
# The runs verify re-trains (its job message and its check count the same runs).
VERIFY_IDS = sample_run_ids(
    config, RUNS, list(range(len(RUNS))), EXPERIMENT.verify_sample
)
# Each job's rerun record (gdbench.reads): the values it read, the line it last ran with;
# kept beside Snakemake's own state, so a dry run writes nothing under results/.
RECORDS = f".snakemake/gdbench/reads/{GRID}"


wildcard_constraints:
    shard=r"(cpu|cuda(:\d+)?)-\d{3}",
    device=r"cpu|cuda(:\d+)?",


def offer_gpu():
    """CUDA jobs ask for gpu=1. A local run whose grid has CUDA jobs offers one GPU unless
    --resources says otherwise, so at most one CUDA job runs at a time on a one-GPU machine; a
    grid without CUDA jobs offers none (the terminal names no GPU where there is none), and a
    cluster run leaves GPUs to the cluster (a global gpu=1 would allow one CUDA job in all).
    """
    cuda = any(d.startswith("cuda") for d in DEVICES)
    if cuda and workflow.local_exec and "gpu" not in workflow.global_resources:
        workflow.register_resource("gpu", 1)


# The rules whose scripts a local run's warm processes serve, by kind (gdbench.warmstart). Not
# the script of `snakemake verify`, which re-trains in a process of its own, started afresh.
WARM_RULES = {
    "train": "torch",
    "edge": "torch",
    "timing": "torch",
    "retrain": "torch",
    "plots": "plots",
}
WARM = []  # the run's warm processes, once started


def start_warm_process():
    """A local run about to start two or more jobs of WARM_RULES starts a warm process of each
    kind they need: they fork from it instead of each importing torch or matplotlib
    (gdbench.warmstart says why and when not)."""
    from gdbench import warmstart

    # not with conda or containers (another Python), nor CUDA (it cannot start in a fork)
    if not (
        warmstart.enabled()
        and sys.platform.startswith("linux")
        and workflow.local_exec
        and workflow.is_main_process
        and not workflow.touch
        and not workflow.deployment_settings.deployment_method
        and all(device == "cpu" for device in DEVICES)
    ):
        return
    needed = [
        WARM_RULES[job.rule.name]
        for job in workflow.dag.needrun_jobs()
        if job.rule.name in WARM_RULES
    ]
    if len(needed) >= 2:
        kinds = [kind for kind in warmstart.KINDS if kind in needed]
        WARM.append(warmstart.start(kinds, Path(workflow.basedir) / "src"))


def stop_warm_process():
    while WARM:
        WARM.pop().stop()


def startup_message():
    lines = [
        f"gdbench: grid {GRID}: {len(RUNS)} runs on {', '.join(DEVICES)} in {len(SHARDS)} "
        f"training jobs; config {config_hash(config)}; results in {RESULTS}/"
    ]
    notice = results_notice(f"{RESULTS}/provenance.json", config_hash(config), GRID)
    return "\n".join(lines + ([notice] if notice else []))


def config_options():
    """The command-line options that select this grid (its --configfile, a --config name)."""
    words = [f"--configfile {f}" for f in workflow.overwrite_configfiles or []]
    if "name" in (workflow.config_settings.overwrite_config or {}):
        words.append(f"--config name={GRID}")
    return " ".join(words)


def recheck_command():
    """The command that re-checks this grid's reproducibility."""
    return " ".join(w for w in ("snakemake", config_options(), "verify") if w)


def last_lines_paths():
    """What the end of a run reads: the findings lines, the summary, the report command."""
    return (
        f"{RESULTS}/findings.txt",
        f"{RESULTS}/tables/summary.parquet",
        report_command(RESULTS, config_options()),
    )


def reproducibility_message():
    """The reproducibility line for the end of a run (read from the check's file)."""
    return reproducibility_line(
        reproducibility_paths()["check"],
        shard_outputs("summary.parquet"),
        recheck_command(),
    )


def reproducibility_paths():
    """The reproducibility check's files: written by rule reproduce, and again by rule verify."""
    return {
        "check": f"{RESULTS}/reproducibility.json",
        "check_html": f"{RESULTS}/reproducibility.html",
        "lesson": f"{RESULTS}/tables/lesson_log.csv",
        "lesson_html": f"{RESULTS}/tables/lesson_log.html",
    }


def reproducibility_outputs():
    """Rule reproduce's outputs: the check's files, the pages marked for the report."""
    paths = reproducibility_paths()
    return {
        **paths,
        "check_html": report(
            paths["check_html"],
            caption="../report/reproducibility.rst",
            category="Reproducibility",
            labels={"result": "reproducibility check"},
        ),
        "lesson_html": report(
            paths["lesson_html"],
            caption="../report/lesson_log.rst",
            category="Reproducibility",
            labels={"result": "the lesson's log, reproduced"},
        ),
    }


def digest(value):
    """A short fingerprint of a value (its canonical JSON): params that change when it does."""
    return config_hash(value)[:12]


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
    return _shard_reads(wildcards.shard)


@functools.cache  # Snakemake asks more than once; a digest of 25,000 runs takes ~0.4 s
def _shard_reads(shard):
    return reads_param(f"train/{shard}", shard_values(EXPERIMENT, shard))


def grid_reads(job, reads):
    """The param of a job that reads ``reads`` for the whole grid's runs."""
    return lambda wildcards: reads_param(job, job_values(EXPERIMENT, reads))


def retrain_reads(wildcards):
    """The retrain job's param: its runs (by id and spec) and what their trajectories depend on."""
    return reads_param("retrain", retrain_values(EXPERIMENT, VERIFY_IDS))


def timing_reads(wildcards):
    """The timing job's param: its settings and the optimizers it times."""
    used = {"optimizers": EXPERIMENT.timing.optimizers}
    return reads_param(f"timing/{wildcards.device}", TIMING_READS.values(config, used))


def timing_cores():
    """Cores the timing job asks for in a local run: every one of --cores with timing.alone,
    else enough that the jobs beside it leave its timing.threads CPUs free (--cores 4 on 2
    CPUs: 3, so one job runs beside it and it measures at once). A cluster run, or one
    without --cores (a dry run), asks for timing.threads.
    """
    timing = EXPERIMENT.timing
    cores = workflow.resource_settings.cores
    if not workflow.local_exec or not cores:
        return timing.threads
    return reserved_slots(cores, os.cpu_count() or 1, timing.threads, timing.alone)


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
    return expand(f"{RESULTS}/shards/{{shard}}/{kind}", shard=sorted(SHARDS))


def all_outputs():
    outputs = [
        f"{RESULTS}/tables/trajectories.parquet",
        f"{RESULTS}/tables/summary.csv",
        f"{RESULTS}/tables/summary.parquet",
        f"{RESULTS}/tables/theory.csv",
        *map(
            str, figures().values()
        ),  # each figure's PNG (and SVG with plots.svg), unflagged
        f"{RESULTS}/provenance.json",
    ]
    if TIMING:
        outputs.append(f"{RESULTS}/tables/timing.csv")
    outputs += [f"{RESULTS}/reproducibility.txt", f"{RESULTS}/tables/lesson_log.csv"]
    if EXPERIMENT.edge.enabled:
        outputs.append(f"{RESULTS}/tables/edge.csv")
    if len(DEVICES) > 1:
        outputs.append(f"{RESULTS}/tables/device_agreement.csv")
    outputs += [f"{RESULTS}/tables/findings.csv", f"{RESULTS}/front_page.rst"]
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
    """What the front page states: the findings, the run counts, the reproducibility, the timing."""
    inputs = {
        "findings": rules.findings.output.findings,
        "summary": rules.merge_tables.output.summary_parquet,
        "reproducibility": rules.reproduce.output.check,
    }
    if TIMING:
        inputs["timing"] = rules.join_timing.output[0]
    return inputs


def figure(name, category, label):
    """A figure's outputs: the PNG (shown in the report, captioned by report/<name>.rst) and,
    with plots.svg, the SVG."""
    png = report(
        f"{RESULTS}/plots/{name}.png",
        caption=f"../report/{name}.rst",
        category=category,
        labels={"result": label},
    )
    svg = {f"{name}_svg": f"{RESULTS}/plots/{name}.svg"} if EXPERIMENT.svg else {}
    return {f"{name}_png": png, **svg}


def figures():
    """The figures the plots job draws, all in one process (matplotlib's and seaborn's import
    costs more than drawing): the joined tables', the findings', the timing's."""
    edge = [("edge", "Divergence", "stability edge, located and theory")]
    timing = [("timing", "Timing", "seconds per epoch and throughput")]
    drawn = [
        ("convergence", "Convergence", "cost vs epoch"),
        ("rate", "Convergence", "epochs per decade vs lr / critical lr"),
        ("divergence", "Divergence", "final cost vs learning rate"),
        *(edge if EXPERIMENT.edge.enabled else []),
        ("time_to_target", "Findings", "time to target: epochs to converge vs lr"),
        ("profile", "Findings", "optimizers compared (performance profile)"),
        *(timing if TIMING else []),
    ]
    return {key: path for spec in drawn for key, path in figure(*spec).items()}


def figure_inputs(wildcards):
    """The tables the figures are drawn from (plots read tables only)."""
    inputs = {
        "trajectories": rules.merge_tables.output.trajectories,
        "summary": rules.merge_tables.output.summary_parquet,
        "theory": rules.theory.output.csv,
        "curve": rules.theory.output.curve,
        "findings": rules.findings.output.findings,
        "time_to_target": rules.findings.output.time_to_target,
        "profile": rules.findings.output.profile,
    }
    if EXPERIMENT.edge.enabled:
        inputs["edge"] = rules.edge.output.csv
    if TIMING:
        # Locally the timing job starts first and runs beside the training (timing.smk).
        inputs["timing"] = rules.join_timing.output.csv
    return inputs


def grid_csv_files(wildcards):
    """CSV files of the grid's datasets: inputs, so editing one re-runs the edge search and
    the reproducibility check's re-training."""
    return [
        config["datasets"][n]["csv"]
        for n in config["grid"]["dataset"]
        if "csv" in config["datasets"][n]
    ]
