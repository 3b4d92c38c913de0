# Tables: the shards joined into the contract tables, and the theory per dataset.


localrules:
    merge_tables,


rule merge_tables:
    input:
        trajectories=shard_outputs("trajectories.parquet"),
        summaries=shard_outputs("summary.parquet"),
    output:
        trajectories=f"{RESULTS}/tables/trajectories.parquet",
        # The report shows a preview page: a browser cannot show Parquet, and embedding the
        # whole table would make the report as large as the grid's trajectories.
        trajectories_html=report(
            f"{RESULTS}/tables/trajectories.html",
            caption="../report/trajectories.rst",
            category="Convergence",
            labels={"result": "trajectories (preview of the Parquet table)"},
        ),
        summary_csv=f"{RESULTS}/tables/summary.csv",
        # The report shows the table itself (sortable, filterable), not a CSV download.
        summary_html=report(
            f"{RESULTS}/tables/summary.html",
            caption="../report/summary.rst",
            category="Divergence",
            labels={"result": "summary (one row per run)"},
        ),
        summary_parquet=f"{RESULTS}/tables/summary.parquet",
    log:
        f"{RESULTS}/logs/merge_tables.log",
    benchmark:
        f"{RESULTS}/benchmarks/merge_tables.tsv"
    # No conda: a run: block runs inside the Snakemake process, in its environment. It starts
    # no process, so it takes no core of --cores: the jobs it feeds need not wait for one.
    threads: 0
    message:
        f"Joining {len(SHARDS)} training shards into {RESULTS}/tables"
    run:
        # Streams row groups with pyarrow, which Snakemake has loaded: no Python start.
        from gdbench.pipeline import write_merged_tables

        write_merged_tables(
            input.trajectories,
            input.summaries,
            output.trajectories,
            output.trajectories_html,
            output.summary_csv,
            output.summary_parquet,
            log[0],
            output.summary_html,
        )


localrules:
    theory,


rule theory:
    output:
        csv=f"{RESULTS}/tables/theory.csv",
        curve=f"{RESULTS}/tables/rate_curve.csv",
        html=report(
            f"{RESULTS}/tables/theory.html",
            caption="../report/theory.rst",
            category="Reproducibility",
            labels={"result": "theory (critical learning rates)"},
        ),
    log:
        f"{RESULTS}/logs/theory.log",
    benchmark:
        f"{RESULTS}/benchmarks/theory.tsv"
    # No conda: a run: block runs inside the Snakemake process, in its environment. It starts
    # no process, so it takes no core of --cores: the jobs it feeds need not wait for one.
    threads: 0
    params:
        reads=grid_reads("theory", THEORY_READS),
        record=record("theory"),
    message:
        "Computing the Hessian's eigenvalues, critical learning rates and each dataset's optimum"
    run:
        # Cheap: runs inside Snakemake instead of starting a Python process.
        from gdbench.pipeline import write_theory
        from gdbench.reads import record_done

        write_theory(EXPERIMENT, output.csv, output.html, log[0], output.curve)
        record_done(params.reads, params.record)


rule device_agreement:
    input:
        trajectories=rules.merge_tables.output.trajectories,
        summary=rules.merge_tables.output.summary_parquet,
    output:
        report(
            f"{RESULTS}/tables/device_agreement.csv",
            caption="../report/device_agreement.rst",
            # Whether a run gives the same numbers on another device: a reproducibility
            # question (beside the reproducibility check), not a speed one.
            category="Reproducibility",
            labels={"result": "CPU vs CUDA agreement"},
        ),
    log:
        f"{RESULTS}/logs/device_agreement.log",
    benchmark:
        f"{RESULTS}/benchmarks/device_agreement.tsv"
    conda:
        "../envs/gdbench.yaml"
    message:
        "Comparing runs trained on different devices"
    script:
        "../scripts/device_agreement.py"


localrules:
    findings,


rule findings:
    input:
        unpack(findings_inputs),
    output:
        findings=f"{RESULTS}/tables/findings.csv",
        findings_html=report(
            f"{RESULTS}/tables/findings.html",
            caption="../report/findings_table.rst",
            category="Findings",
            labels={"result": "findings (one row per dataset x optimizer)"},
        ),
        time_to_target=f"{RESULTS}/tables/time_to_target.csv",
        profile=f"{RESULTS}/tables/profile.csv",
    log:
        f"{RESULTS}/logs/findings.log",
    benchmark:
        f"{RESULTS}/benchmarks/findings.tsv"
    # No conda: a run: block runs inside the Snakemake process, in its environment. It starts
    # no process, so it takes no core of --cores: the jobs it feeds need not wait for one.
    threads: 0
    params:
        reads=grid_reads("findings", FINDINGS_READS),
        record=record("findings"),
    message:
        "Computing the findings (best learning rates, edges, optimizers compared)"
    run:
        # pandas only, already loaded (the figures are the plots job's): no Python start.
        from gdbench.findings import findings_job
        from gdbench.reads import record_done

        findings_job(input, output, EXPERIMENT.criteria.converged_below, log[0])
        record_done(params.reads, params.record)


localrules:
    front_page,


rule front_page:
    input:
        unpack(front_page_inputs),
    output:
        rst=f"{RESULTS}/front_page.rst",
        html=report(
            f"{RESULTS}/front_page.html",
            caption="../report/front_page.rst",
            category="Findings",
            labels={"result": "findings in words (the front page)"},
        ),
        text=f"{RESULTS}/findings.txt",
    log:
        f"{RESULTS}/logs/front_page.log",
    benchmark:
        f"{RESULTS}/benchmarks/front_page.tsv"
    # No conda: a run: block runs inside the Snakemake process, in its environment. It starts
    # no process, so it takes no core of --cores: the jobs it feeds need not wait for one.
    threads: 0
    message:
        "Writing the findings in words (the report's front page and the run's last lines)"
    run:
        # Cheap (pandas only, already loaded): runs inside Snakemake, no Python start.
        from gdbench.front_page import write_front_page

        write_front_page(input, output, log[0])
