# The stability edge: per grid point without its lr, the smallest diverging lr, located by
# search. It needs only the config, so it runs beside the training jobs; the plots job draws
# its figure (so this job starts no plotting libraries).


rule edge:
    input:
        csv=grid_csv_files,
    output:
        csv=f"{RESULTS}/tables/edge.csv",
        html=report(
            f"{RESULTS}/tables/edge.html",
            caption="../report/edge_table.rst",
            category="Divergence",
            labels={"result": "stability edge (table)"},
        ),
    log:
        f"{RESULTS}/logs/edge.log",
    benchmark:
        f"{RESULTS}/benchmarks/edge.tsv"
    # Before rule retrain: the findings and the plots wait for this table, only the
    # reproducibility check for that one.
    priority: 5
    conda:
        "../envs/gdbench.yaml"
    threads: 1
    params:
        reads=grid_reads("edge", EDGE_READS),
        record=record("edge"),
    message:
        "Locating the stability edge of every grid point (many learning rates per round, one tensor program)"
    script:
        "../scripts/edge.py"
