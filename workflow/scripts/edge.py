"""Locate the stability edge of every grid point and seed and write its table (the plots job
draws it)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # this checkout's gdbench

from gdbench.warmstart import delegate

delegate("torch")  # a local run's warm process runs this job in a fresh child (gdbench.warmstart)

import time

from gdbench import io
from gdbench.determinism import set_deterministic
from gdbench.edge import edge_table
from gdbench.experiment import Experiment
from gdbench.html_tables import write_interactive_table
from gdbench.inputs import check_inputs
from gdbench.reads import record_done
from gdbench.shutdown import end_job


def main(config, params, output, threads, log_path):
    with open(log_path, "w") as log:
        sys.stderr = log
        check_inputs(snakemake.input, log)

        def say(message):
            print(message, file=log, flush=True)

        set_deterministic(threads)
        clock = time.perf_counter()
        table = edge_table(Experiment.from_checked(config, ["cpu"]), progress=say)
        say(f"located {len(table)} edges in {time.perf_counter() - clock:.2f} s")
        say(table.to_string(index=False))
        io.write_csv(table, output.csv)
        note = "One row per grid point without its lr, and seed (results/tables/edge.csv). Click a header to sort."
        write_interactive_table(table, output.html, "The stability edge", note)
        record_done(params.reads, params.record)


main(snakemake.config, snakemake.params, snakemake.output, snakemake.threads, snakemake.log[0])
end_job()  # outputs written and closed: no interpreter teardown (gdbench.shutdown)
