"""Fail the run, in one line naming the run and the epoch, when the reproducibility check
FAILED (its JSON and HTML stay, so the report shows it); on PASSED, write the PASSED line."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))  # this checkout's gdbench

import json

from gdbench.inputs import check_inputs

with open(snakemake.log[0], "w") as log:
    check_inputs(snakemake.input, log)
    result = json.loads(Path(snakemake.input.check).read_text())
    if not result["passed"]:
        print(f"FAILED: {result['message']}", file=log)
        sys.exit(f"gdbench verify: FAILED: {result['message']}")
    line = f"PASSED: {result['runs_identical']} of {result['runs_checked']} re-trained runs bit-identical"
    print(line, file=log)
    Path(snakemake.output[0]).write_text(f"{line}; the lesson's log reproduced\n")
