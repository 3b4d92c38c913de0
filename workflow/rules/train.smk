# Training: each job trains one shard of the grid as one tensor program.


rule train:
    input:
        csv=shard_csv_files,
    output:
        trajectories=f"{RESULTS}/shards/{{shard}}/trajectories.parquet",
        summary=f"{RESULTS}/shards/{{shard}}/summary.parquet",
        meta=f"{RESULTS}/shards/{{shard}}/meta.json",
    log:
        f"{RESULTS}/logs/train/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{shard}}.tsv"
    # After the timing, before the other jobs that read the config alone (edge, retrain): the
    # joined tables, and the findings and plots after them, wait for every training job.
    priority: 10
    conda:
        "../envs/gdbench.yaml"
    threads: EXPERIMENT.training.threads
    resources:
        gpu=gpu_count,
    params:
        reads=shard_reads,
        record=lambda wildcards: record(f"train/{wildcards.shard}"),
        devices=DEVICES,
    message:
        "Training shard {wildcards.shard} ({threads} thread(s))"
    script:
        "../scripts/train.py"
