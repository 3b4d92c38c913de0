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
    # First: the joined tables, and the plots after them, wait for every training job, while
    # the jobs that read the config alone (edge, retrain) fill the cores the training leaves.
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
