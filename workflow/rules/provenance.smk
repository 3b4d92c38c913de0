# Provenance: versions, machine, config and its hash, commit, start and end times.


rule provenance:
    input:
        meta=shard_outputs("meta.json"),
        # Not read: it only orders the job after the tables are merged, so the record's
        # "finished" time comes after every table is written.
        summary=rules.merge_tables.output.summary_parquet,
    output:
        json="results/provenance.json",
        html=report(
            "results/provenance.html",
            caption="../report/provenance.rst",
            category="Reproducibility",
            labels={"result": "provenance"},
        ),
    log:
        "results/logs/provenance.log",
    benchmark:
        "results/benchmarks/provenance.tsv"
    conda:
        "../envs/gdbench.yaml"
    params:
        config=config,
        repo=workflow.basedir,
        devices=DEVICES,
    message:
        "Recording provenance"
    script:
        "../scripts/provenance.py"
