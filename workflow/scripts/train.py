"""Train one shard of the grid: its runs as one tensor program; tables and a log out."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # this checkout's gdbench

import time

from gdbench import io
from gdbench.config import ConfigError
from gdbench.determinism import set_deterministic
from gdbench.engines import DeviceError
from gdbench.experiment import Experiment
from gdbench.pipeline import train_runs, training_log
from gdbench.provenance import now, runtime
from gdbench.runs import specs_digest


def main(config, shard, params, output, threads, log_path):
    with open(log_path, "w") as log:

        def say(message):
            print(message, file=log, flush=True)

        experiment = Experiment.from_checked(config, params.devices)
        runs = experiment.shards[shard]
        run_ids = experiment.run_ids(runs)
        if f"[{specs_digest(runs, run_ids)}]" not in params.runs:  # the runs Snakemake planned
            sys.exit(f"gdbench: shard {shard} re-derived other runs than planned ({params.runs})")
        started = now()
        set_deterministic(threads)
        say(f"{started} training {len(runs)} runs with {threads} thread(s)")
        clock = time.perf_counter()
        try:
            batch, traj, summary = train_runs(experiment, runs, run_ids, progress=say)
        except (DeviceError, ConfigError) as exc:  # no usable device; data that overflow the dtype
            say(f"error: {exc}")
            sys.exit(f"gdbench: {exc}")
        elapsed = time.perf_counter() - clock
        for line in training_log(batch, experiment.training.log_every, run_ids):
            say(line)
        say(f"{now()} trained {len(runs)} runs in {elapsed:.3f} s ({int(summary['diverged'].sum())} diverged)")
        io.write_parquet(traj, output.trajectories)
        io.write_parquet(summary, output.summary)
        meta = {"started": started, "finished": now(), "seconds": elapsed, "threads": threads, "runs": len(runs)}
        meta["run_ids"] = list(run_ids)  # verify re-trains each run with its job's thread count
        io.write_json({**meta, "runtime": runtime()}, output.meta)


main(
    snakemake.config, snakemake.wildcards.shard, snakemake.params, snakemake.output, snakemake.threads, snakemake.log[0]
)
