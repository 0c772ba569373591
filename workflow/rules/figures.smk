# Paper figures per (task, backbone): reliability diagrams, risk-coverage curves,
# accuracy/ECE across shift severities, OOD ROC curves (PDF + PNG).


rule figures:
    input:
        table="results/tables/runs.parquet",
        metrics=task_backbone_metrics,
    output:
        report(
            directory("paper_figures/{task}/{backbone}"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
            subcategory="{task} · {backbone}",
        ),
    params:
        run_dirs=task_backbone_run_dirs,
    log:
        "results/logs/figures/{task}/{backbone}.log",
    benchmark:
        "results/benchmarks/figures/{task}/{backbone}.tsv"
    script:
        "../scripts/figures.py"


localrules:
    posthoc,
    ensemble,
    score,
    aggregate,
    figures,
