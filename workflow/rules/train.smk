# Training: each job trains one shard of the grid as one tensor program.


rule train:
    input:
        csv=shard_csv_files,
    output:
        trajectories="results/shards/{shard}/trajectories.parquet",
        summary="results/shards/{shard}/summary.parquet",
        meta="results/shards/{shard}/meta.json",
    log:
        "results/logs/train/{shard}.log",
    benchmark:
        "results/benchmarks/train/{shard}.tsv"
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
