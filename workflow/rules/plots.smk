# Plots: convergence, divergence and rate from the tables (timing has its own rules).


rule plot_convergence:
    input:
        trajectories=rules.merge_tables.output.trajectories,
        summary=rules.merge_tables.output.summary_parquet,
    output:
        png=report(
            "results/plots/convergence.png",
            caption="../report/convergence.rst",
            category="Convergence",
            labels={"result": "cost vs epoch"},
        ),
        svg="results/plots/convergence.svg",
    log:
        "results/logs/plot_convergence.log",
    benchmark:
        "results/benchmarks/plot_convergence.tsv"
    conda:
        "../envs/gdbench.yaml"
    message:
        "Plotting cost vs epoch"
    script:
        "../scripts/plot_convergence.py"


rule plot_divergence:
    input:
        summary=rules.merge_tables.output.summary_parquet,
        theory=rules.theory.output.csv,
    output:
        png=report(
            "results/plots/divergence.png",
            caption="../report/divergence.rst",
            category="Divergence",
            labels={"result": "final cost vs learning rate"},
        ),
        svg="results/plots/divergence.svg",
    log:
        "results/logs/plot_divergence.log",
    benchmark:
        "results/benchmarks/plot_divergence.tsv"
    conda:
        "../envs/gdbench.yaml"
    message:
        "Plotting final cost vs learning rate with the critical learning rate"
    script:
        "../scripts/plot_divergence.py"


rule plot_rate:
    input:
        summary=rules.merge_tables.output.summary_parquet,
        theory=rules.theory.output.csv,
    output:
        png=report(
            "results/plots/rate.png",
            caption="../report/rate.rst",
            category="Convergence",
            labels={"result": "rate vs learning rate"},
        ),
        svg="results/plots/rate.svg",
    log:
        "results/logs/plot_rate.log",
    benchmark:
        "results/benchmarks/plot_rate.tsv"
    conda:
        "../envs/gdbench.yaml"
    message:
        "Plotting the measured rate of each converging run against the predicted rate"
    script:
        "../scripts/plot_rate.py"
