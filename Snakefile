# gdbench: gradient descent on linear regression, benchmarked across a grid.
# This file is the table of contents; rules live in workflow/rules/.
from snakemake.utils import min_version

min_version("9.0")


# load configuration
configfile: "config/config.yaml"


# the report's front page
report: "workflow/report/workflow.rst"


# load rules
include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/timing.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/verify.smk"
include: "workflow/rules/edge.smk"


# messages
onstart:
    offer_gpu()
    print(startup_message())
    start_warm_process()


onsuccess:
    print(end_of_run_message(reproducibility_message(), *last_lines_paths()))
    stop_warm_process()
    cancel_pending_timers()


onerror:
    print(reproducibility_message())
    print(
        f"gdbench: a job failed; see its log under {RESULTS}/logs (finished jobs' outputs are kept)"
    )
    stop_warm_process()
    cancel_pending_timers()


# target rules
rule all:
    default_target: True
    input:
        all_outputs(),
