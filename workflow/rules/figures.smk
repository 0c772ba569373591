# Paper figures per (task, backbone), PDF + PNG + caption file each (docs/figures.md).

from bench.reporting.figures import FIGURE_DESCRIPTIONS  # noqa: E402


rule figures:
    input:
        table="results/tables/runs.parquet",
        costs="results/tables/costs.parquet",
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
        # The report shows each figure's description (caption files hold the full text).
        descriptions=FIGURE_DESCRIPTIONS,
        config=RESOLVED_CONFIG,
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
    leaderboards,
    claims,
    wise_ft_table,
    figures,
    reports,
