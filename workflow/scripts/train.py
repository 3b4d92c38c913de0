"""Train one shard of the grid: its runs as one tensor program; tables and a log out."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # this checkout's gdbench

from gdbench.warmstart import delegate

delegate("torch")  # a local run's warm process runs this job in a fresh child (gdbench.warmstart)

import time

from gdbench import io
from gdbench.config import ConfigError
from gdbench.determinism import set_deterministic
from gdbench.engines import DeviceError
from gdbench.experiment import Experiment
from gdbench.inputs import check_inputs
from gdbench.pipeline import logged_runs, shard_values, train_chunks, training_log
from gdbench.provenance import now, runtime
from gdbench.reads import digest, record_done
from gdbench.shutdown import end_job
from gdbench.tables import concat_frames


def main(config, shard, params, output, threads, log_path):
    with open(log_path, "w") as log:
        check_inputs(snakemake.input, log)

        def say(message):
            print(message, file=log, flush=True)

        experiment = Experiment.from_checked(config, params.devices)
        runs = experiment.shards[shard]
        run_ids = experiment.run_ids(runs)
        if not params.reads.endswith(f"[{digest(shard_values(experiment, shard))}]"):  # as Snakemake planned
            sys.exit(f"gdbench: shard {shard} re-derived other runs or settings than planned ({params.reads})")
        started = now()
        set_deterministic(threads)
        say(f"{started} training {len(runs)} runs with {threads} thread(s)")
        clock = time.perf_counter()
        every, summaries, diverged, done = experiment.training.log_every, [], 0, 0
        logged = logged_runs(len(runs), experiment.training.log_runs)  # the runs shown in full
        try:
            # Chunk by chunk: a worker thread writes each piece of a chunk's trajectories while the
            # next is built, and the last while the log is formatted and the next chunk trains.
            with io.parquet_appender(output.trajectories, background=True) as trajectories:
                for chunk_ids, batch, pieces, summary in train_chunks(experiment, runs, run_ids, progress=say):
                    for piece in pieces:
                        trajectories.append(piece)
                    shown = {p - done for p in logged if done <= p < done + len(chunk_ids)}
                    log.write("".join(f"{line}\n" for line in training_log(batch, every, chunk_ids, shown)))
                    done += len(chunk_ids)
                    summaries.append(summary)
                    diverged += int(summary["diverged"].sum())
                    del batch, pieces, piece  # before the next chunk is trained (a chunk has at least one piece)
        except (DeviceError, ConfigError) as exc:  # no usable device; data that overflow the dtype
            say(f"error: {exc}")
            sys.exit(f"gdbench: {exc}")
        elapsed = time.perf_counter() - clock
        say(f"{now()} trained {len(runs)} runs in {elapsed:.3f} s ({diverged} diverged)")
        io.write_parquet(concat_frames(summaries), output.summary)
        meta = {"started": started, "finished": now(), "seconds": elapsed, "threads": threads, "runs": len(runs)}
        meta["run_ids"] = list(run_ids)  # verify re-trains each run with its job's thread count
        io.write_json({**meta, "runtime": runtime()}, output.meta)
        record_done(params.reads, params.record)


main(
    snakemake.config, snakemake.wildcards.shard, snakemake.params, snakemake.output, snakemake.threads, snakemake.log[0]
)
end_job()  # outputs written and closed: no interpreter teardown (gdbench.shutdown)
