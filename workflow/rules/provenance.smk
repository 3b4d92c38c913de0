# Provenance: versions, machine, config and its hash, commit, start and end times.


localrules:
    provenance,


rule provenance:
    input:
        meta=shard_outputs("meta.json"),
        # Not read: it only orders the job after the tables are merged, so the record's
        # "finished" time comes after every table is written.
        summary=rules.merge_tables.output.summary_parquet,
    output:
        json=f"{RESULTS}/provenance.json",
        html=report(
            f"{RESULTS}/provenance.html",
            caption="../report/provenance.rst",
            category="Reproducibility",
            labels={"result": "provenance"},
        ),
    log:
        f"{RESULTS}/logs/provenance.log",
    benchmark:
        f"{RESULTS}/benchmarks/provenance.tsv"
    # No conda: a run: block runs inside the Snakemake process, in its environment. It starts
    # no process, so it takes no core of --cores: the jobs it feeds need not wait for one.
    threads: 0
    params:
        reads=lambda wildcards: reads_param(
            "provenance", PROVENANCE_READS.values(config)
        ),
        record=record("provenance"),
        repo=workflow.basedir,
        devices=DEVICES,
    message:
        "Recording provenance"
    run:
        # Cheap (no torch, pandas already loaded): runs inside Snakemake, no Python start.
        from gdbench.provenance import write_provenance
        from gdbench.reads import record_done

        write_provenance(
            config,
            input.meta,
            output.json,
            output.html,
            log[0],
            params.repo,
            params.devices,
        )
        record_done(params.reads, params.record)
