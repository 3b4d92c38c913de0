"""The theory table: curvature and critical learning rates per dataset of the grid."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # this checkout's gdbench


from gdbench import io
from gdbench.pipeline import theories
from gdbench.tables import theory_table

with open(snakemake.log[0], "w") as log:
    sys.stderr = log
    table = theory_table(theories(snakemake.params.config, snakemake.params.datasets))
    io.write_csv(table, snakemake.output.csv)
    note = "Full-batch gradient descent converges iff lr < critical_lr."
    io.write_html_table(table, snakemake.output.html, "Theory per dataset", note)
    print(table.to_string(index=False), file=log)
