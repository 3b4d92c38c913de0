# Reproducibility: re-train a sample of runs from scratch and compare bit for bit. Rule
# retrain re-trains the sample and the lesson in its own process (in a local run, a fresh
# child of a warm process that has trained nothing: gdbench.warmstart), from the config alone (so
# any free core will do; it has the default priority, below the jobs the plots wait for:
# timing, train, edge); rule reproduce compares them with the joined tables and writes the
# check (PASSED or FAILED) for the report, and rule reproducibility_gate fails the default
# target's run on FAILED (a failed job's outputs are deleted: the check must come from a job
# that succeeds). Both run inside Snakemake's process (gdbench.reproduce). Rule verify, asked
# for by name, re-trains and re-checks afresh every time, in its own process.


rule retrain:
    input:
        csv=grid_csv_files,
    output:
        trajectories=f"{RESULTS}/verify/retrained.parquet",
        lessons=f"{RESULTS}/verify/retrained.json",
    log:
        f"{RESULTS}/logs/retrain.log",
    benchmark:
        f"{RESULTS}/benchmarks/retrain.tsv"
    conda:
        "../envs/gdbench.yaml"
    threads: EXPERIMENT.training.threads
    params:
        reads=retrain_reads,
        record=record("retrain"),
        run_ids=VERIFY_IDS,
        devices=DEVICES,
    message:
        f"Re-training {len(VERIFY_IDS)} sampled runs and the lesson's log from scratch"
    script:
        "../scripts/retrain.py"


localrules:
    reproduce,


rule reproduce:
    input:
        trajectories=rules.merge_tables.output.trajectories,
        summary=rules.merge_tables.output.summary_parquet,
        meta=shard_outputs("meta.json"),
        retrained=rules.retrain.output.trajectories,
        lessons=rules.retrain.output.lessons,
    output:
        **reproducibility_outputs(),
    log:
        f"{RESULTS}/logs/reproduce.log",
    benchmark:
        f"{RESULTS}/benchmarks/reproduce.tsv"
    # No conda: a run: block runs inside the Snakemake process, in its environment. It starts
    # no process, so it takes no core of --cores: the jobs it feeds need not wait for one.
    threads: 0
    params:
        reads=grid_reads("reproduce", COMPARE_READS),
        record=record("reproduce"),
        run_ids=VERIFY_IDS,
        devices=DEVICES,
    message:
        f"Comparing the {len(VERIFY_IDS)} re-trained runs and the lesson's log with the stored tables"
    run:
        # pandas and pyarrow only, already loaded: no Python start at the end of the run.
        from gdbench.reads import record_done
        from gdbench.reproduce import reproduce

        reproduce(input, output, params.run_ids, params.devices, log[0])
        record_done(params.reads, params.record)


localrules:
    reproducibility_gate,


rule reproducibility_gate:
    input:
        check=rules.reproduce.output.check,
    output:
        f"{RESULTS}/reproducibility.txt",
    log:
        f"{RESULTS}/logs/reproducibility_gate.log",
    benchmark:
        f"{RESULTS}/benchmarks/reproducibility_gate.tsv"
    # No conda: a run: block runs inside the Snakemake process, in its environment. It starts
    # no process, so it takes no core of --cores: the jobs it feeds need not wait for one.
    threads: 0
    message:
        "Failing the run if the reproducibility check FAILED"
    run:
        from gdbench.reproduce import gate

        gate(input.check, output[0], log[0])


# No outputs: Snakemake runs it every time it is asked for (`snakemake verify`), after the
# results it checks are up to date. It rewrites the check's files (the report then shows it).
rule verify:
    input:
        trajectories=rules.merge_tables.output.trajectories,
        summary=rules.merge_tables.output.summary_parquet,
        meta=shard_outputs("meta.json"),
    log:
        f"{RESULTS}/logs/verify.log",
    conda:
        "../envs/gdbench.yaml"
    threads: lookup(dpath="training/threads", within=config, default=1)
    params:
        run_ids=VERIFY_IDS,
        devices=DEVICES,
        paths=reproducibility_paths(),
        passed_line=rules.reproducibility_gate.output[0],
    message:
        f"Re-training {len(VERIFY_IDS)} sampled runs and the lesson's log from scratch"
    script:
        "../scripts/reproduce.py"
