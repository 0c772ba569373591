# One tidy table of every cell x split x metric, then every leaderboard and the claims
# table rendered from it. None of these rules reads predictions or refits anything.


rule aggregate:
    input:
        metrics=all_metrics(),
    output:
        table="results/tables/runs.parquet",
        costs="results/tables/costs.parquet",
        csv="results/leaderboard/leaderboard.csv",
    log:
        "results/logs/aggregate/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate/aggregate.tsv"
    script:
        "../scripts/aggregate.py"


rule leaderboards:
    input:
        table="results/tables/runs.parquet",
        costs="results/tables/costs.parquet",
        examples=all_examples(),
    output:
        summary="results/tables/summary.parquet",
        markdown=report(
            "results/leaderboard/leaderboard.md",
            caption="../report/leaderboard.rst",
            category="Leaderboard",
        ),
        html=report(
            "results/leaderboard/index.html",
            caption="../report/leaderboard_html.rst",
            category="Leaderboard",
        ),
        readme="results/leaderboard/README.md",
    params:
        expected=EXPECTED_CELLS,
        skipped=SKIPPED_TASKS,
        reference=GRID.config["reference_method"],
        settings=GRID.config["report"],
    log:
        "results/logs/leaderboards/leaderboards.log",
    benchmark:
        "results/benchmarks/leaderboards/leaderboards.tsv"
    script:
        "../scripts/leaderboards.py"


rule claims:
    input:
        summary="results/tables/summary.parquet",
        claims=GRID.config["report"]["claims"],
    output:
        report(
            "results/leaderboard/claims.md",
            caption="../report/claims.rst",
            category="Leaderboard",
        ),
    log:
        "results/logs/claims/claims.log",
    script:
        "../scripts/claims.py"


# WiSE-FT's per-alpha table (grids that list <method>+wise): every run's wise_curve.csv.
rule wise_ft_table:
    input:
        curves=[f"{d}/wise_curve.csv" for d in wise_run_dirs()],
    output:
        markdown="results/leaderboard/wise_ft.md",
        csv="results/leaderboard/wise_ft.csv",
    params:
        run_dirs=wise_run_dirs(),
    log:
        "results/logs/wise_ft_table/wise_ft_table.log",
    script:
        "../scripts/wise_ft_table.py"
