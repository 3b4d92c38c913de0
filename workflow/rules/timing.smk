# Timing: seconds per epoch by device, engine, data size and grid size.


rule timing:
    output:
        f"{RESULTS}/timing/{{device}}.csv",
    log:
        f"{RESULTS}/logs/timing/{{device}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/timing/{{device}}.tsv"
    conda:
        "../envs/gdbench.yaml"
    # torch uses timing.threads (recorded in the table), and the job asks for as many cores: it
    # runs beside the other jobs, measures how much of each measurement's time it had its cores
    # (cpu_share) and takes a disturbed measurement again later. With timing.alone it reserves
    # every core (--cores), so nothing runs beside it.
    threads: timing_cores()
    resources:
        gpu=gpu_count,
    params:
        reads=timing_reads,
        record=lambda wildcards: record(f"timing/{wildcards.device}"),
    message:
        "Timing the engines on {wildcards.device} (%d torch thread(s); {threads} core(s) reserved)"
        % EXPERIMENT.timing.threads
    script:
        "../scripts/timing.py"


localrules:
    join_timing,


rule join_timing:
    input:
        expand(rules.timing.output[0], device=DEVICES),
    output:
        csv=f"{RESULTS}/tables/timing.csv",
        html=report(
            f"{RESULTS}/tables/timing.html",
            caption="../report/timing_table.rst",
            category="Timing",
            labels={"result": "timing"},
        ),
    log:
        f"{RESULTS}/logs/join_timing.log",
    benchmark:
        f"{RESULTS}/benchmarks/join_timing.tsv"
    # No conda: a run: block runs inside the Snakemake process, in its environment.
    message:
        "Joining the timing measurements"
    run:
        # Cheap: runs inside Snakemake instead of starting a Python process.
        from gdbench.html_tables import write_interactive_table
        from gdbench.io import join_csv

        table = join_csv(input, output.csv, log[0])
        note = "One row per measurement (results/tables/timing.csv). Click a header to sort."
        write_interactive_table(table, output.html, "Timing", note)


# Its figure, in its own job: the plots job does not wait for the measurements (they come last).
rule timing_figure:
    input:
        timing=rules.join_timing.output.csv,
    output:
        **timing_figures(),
    log:
        f"{RESULTS}/logs/timing_figure.log",
    benchmark:
        f"{RESULTS}/benchmarks/timing_figure.tsv"
    conda:
        "../envs/gdbench.yaml"
    message:
        "Plotting timing"
    script:
        "../scripts/plots.py"
