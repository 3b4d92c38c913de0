# Reproducibility: re-train a sample of runs from scratch and compare bit for bit. Rule
# reproduce writes the verdict (PASSED or FAILED) for the report; rule verify fails the run
# on FAILED. (A failed job's outputs are deleted: the verdict must come from a job that succeeds.)


rule reproduce:
    input:
        trajectories=rules.merge_tables.output.trajectories,
        summary=rules.merge_tables.output.summary_parquet,
        meta=shard_outputs("meta.json"),
    output:
        verdict="results/reproducibility.json",
        verdict_html=report(
            "results/reproducibility.html",
            caption="../report/reproducibility.rst",
            category="Reproducibility",
            labels={"result": "reproducibility verdict"},
        ),
        lesson="results/tables/lesson_log.csv",
        lesson_html=report(
            "results/tables/lesson_log.html",
            caption="../report/lesson_log.rst",
            category="Reproducibility",
            labels={"result": "the lesson's log, reproduced"},
        ),
    log:
        "results/logs/reproduce.log",
    benchmark:
        "results/benchmarks/reproduce.tsv"
    conda:
        "../envs/gdbench.yaml"
    threads: EXPERIMENT.training.threads
    params:
        reads=grid_reads("reproduce", VERIFY_READS),
        record=record("reproduce"),
        devices=DEVICES,
    message:
        "Re-training {n} sampled runs and the lesson from scratch".format(
            n=EXPERIMENT.verify_sample
        )
    script:
        "../scripts/reproduce.py"


localrules:
    verify,


rule verify:
    input:
        verdict=rules.reproduce.output.verdict,
    output:
        "results/reproducibility.txt",
    log:
        "results/logs/verify.log",
    benchmark:
        "results/benchmarks/verify.tsv"
    conda:
        "../envs/gdbench.yaml"
    message:
        "Checking the reproducibility verdict"
    script:
        "../scripts/verify.py"
