# Reproducibility: re-train a sample of runs from scratch and compare bit for bit.


rule verify:
    # The shards, not the joined tables: verify starts as soon as training ends.
    input:
        trajectories=shard_outputs("trajectories.parquet"),
        summary=shard_outputs("summary.parquet"),
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
        "results/logs/verify.log",
    benchmark:
        "results/benchmarks/verify.tsv"
    conda:
        "../envs/gdbench.yaml"
    params:
        config=grid_config,
        sample=lookup(dpath="verify/sample", within=config),
        devices=DEVICES,
    message:
        "Re-training {params.sample} sampled runs and the lesson from scratch"
    script:
        "../scripts/verify.py"
