# Plots: every figure is drawn by one job (one Python start for all of them: the imports of
# pandas, matplotlib and seaborn cost more than drawing), from the joined tables, the findings
# and the timing (which measures first, so it is done by then). It draws them in two processes
# (the second forked after the imports, gdbench.forked): at the end of a big grid's run it is
# the last job, and one core would otherwise idle. To add a figure: add its outputs to
# figures() in common.smk (<name>_png wrapped in report(), <name>_svg with plots.svg), the
# tables it reads to figure_inputs(), and a function `<name>` in workflow/scripts/plots.py.


rule plots:
    input:
        unpack(figure_inputs),
    output:
        **figures(),
    log:
        f"{RESULTS}/logs/plots.log",
    benchmark:
        f"{RESULTS}/benchmarks/plots.tsv"
    conda:
        "../envs/gdbench.yaml"
    threads: 2
    message:
        "Plotting "
        + ", ".join(k[: -len("_png")] for k in figures() if k.endswith("_png"))
    script:
        "../scripts/plots.py"
