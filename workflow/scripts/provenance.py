"""Record what produced the results: versions, machine, config, commit, times."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # this checkout's gdbench

import json

import pandas as pd

from gdbench import io
from gdbench.provenance import collect, flatten

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    jobs = [json.loads(Path(p).read_text()) for p in snakemake.input.meta]
    record = collect(
        snakemake.config,
        started=min(job["started"] for job in jobs),
        repo=snakemake.params.repo,
        recorded=jobs[0]["runtime"],  # as the training job saw it (no torch import here)
        extra={
            "grid_devices": list(snakemake.params.devices),
            "training_jobs": [
                {
                    **{k: job[k] for k in ("started", "finished", "seconds", "threads", "runs")},
                    "cuda_devices": job["runtime"]["devices"]["cuda"],
                }
                for job in jobs
            ],
        },
    )
    io.write_json(record, snakemake.output.json)
    table = pd.DataFrame(flatten(record), columns=["key", "value"])
    io.write_html_table(table, snakemake.output.html, "Provenance", "What produced these results.")
