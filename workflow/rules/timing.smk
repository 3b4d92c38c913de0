# Timing: seconds per epoch by device, engine, data size and grid size.


rule timing:
    output:
        f"{RESULTS}/timing/{{device}}.csv",
    log:
        f"{RESULTS}/logs/timing/{{device}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/timing/{{device}}.tsv"
    # First, with the cores it reserves (timing_cores): what runs beside it leaves its
    # timing.threads CPUs free, so it measures while the training starts instead of waiting
    # for the run to end. Each measurement records how much of its time it had its cores
    # (cpu_share; a disturbed one is taken again). With timing.alone it reserves every core
    # (--cores), so nothing runs beside it.
    priority: 20
    conda:
        "../envs/gdbench.yaml"
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
    # No conda: a run: block runs inside the Snakemake process, in its environment. It starts
    # no process, so it takes no core of --cores: the jobs it feeds need not wait for one.
    threads: 0
    message:
        "Joining the timing measurements"
    run:
        # Cheap: runs inside Snakemake instead of starting a Python process.
        from gdbench.html_tables import write_interactive_table
        from gdbench.io import join_csv

        table = join_csv(input, output.csv, log[0])
        note = "One row per measurement (results/tables/timing.csv). Click a header to sort."
        write_interactive_table(table, output.html, "Timing", note)
