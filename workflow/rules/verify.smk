# Reproducibility: re-train a sample of runs from scratch and compare bit for bit. Rule
# reproduce writes the verdict (PASSED or FAILED) for the report, and rule verdict fails the
# default target's run on FAILED (a failed job's outputs are deleted: the verdict must come
# from a job that succeeds). Rule verify, asked for by name, re-checks afresh every time.


rule reproduce:
    input:
        trajectories=rules.merge_tables.output.trajectories,
        summary=rules.merge_tables.output.summary_parquet,
        meta=shard_outputs("meta.json"),
    output:
        **verdict_outputs(),
    log:
        f"{RESULTS}/logs/reproduce.log",
    benchmark:
        f"{RESULTS}/benchmarks/reproduce.tsv"
    conda:
        "../envs/gdbench.yaml"
    threads: EXPERIMENT.training.threads
    params:
        reads=grid_reads("reproduce", VERIFY_READS),
        record=record("reproduce"),
        run_ids=VERIFY_IDS,
        devices=DEVICES,
    message:
        f"Re-training {len(VERIFY_IDS)} sampled runs and the lesson's log from scratch"
    script:
        "../scripts/reproduce.py"


localrules:
    verdict,


rule verdict:
    input:
        verdict=rules.reproduce.output.verdict,
    output:
        f"{RESULTS}/reproducibility.txt",
    log:
        f"{RESULTS}/logs/verdict.log",
    benchmark:
        f"{RESULTS}/benchmarks/verdict.tsv"
    conda:
        "../envs/gdbench.yaml"
    message:
        "Checking the reproducibility verdict"
    script:
        "../scripts/verify.py"


# No outputs: Snakemake runs it every time it is asked for (`snakemake verify`), after the
# results it checks are up to date. It rewrites the verdict's files (the report then shows it).
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
        paths=verdict_paths(),
        passed_line=rules.verdict.output[0],
    message:
        f"Re-training {len(VERIFY_IDS)} sampled runs and the lesson's log from scratch"
    script:
        "../scripts/reproduce.py"
