"""Join the training shards into the contract tables."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # this checkout's gdbench


import pyarrow.parquet as pq

from gdbench import io
from gdbench.html_tables import write_interactive_table
from gdbench.tables import concat_parquet, concat_tables

PREVIEW_ROWS = 20

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    rows = concat_parquet(snakemake.input.trajectories, snakemake.output.trajectories)
    summary = concat_tables(snakemake.input.summaries)
    io.write_parquet(summary, snakemake.output.summary_parquet)
    io.write_csv(summary, snakemake.output.summary_csv)
    note = "One row per run (results/tables/summary.csv). Click a header to sort; type in Search to filter."
    write_interactive_table(summary, snakemake.output.summary_html, "Summary", note)
    print(f"{rows} trajectory rows, {len(summary)} runs", file=log)
    head = pq.ParquetFile(snakemake.input.trajectories[0]).iter_batches(batch_size=PREVIEW_ROWS)
    io.write_html_table(
        next(head).to_pandas(),
        snakemake.output.trajectories_html,
        "The trajectory table (first rows)",
        f"{rows:,} rows for {len(summary):,} runs in results/tables/trajectories.parquet; "
        f"the first {PREVIEW_ROWS} rows are shown here.",
    )
