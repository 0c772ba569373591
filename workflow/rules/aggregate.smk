# One tidy table of every cell x split x metric, and the leaderboards rendered from it.


rule aggregate:
    input:
        metrics=all_metrics(),
    output:
        table="results/tables/runs.parquet",
        csv="results/leaderboard/leaderboard.csv",
        markdown=report(
            "results/leaderboard/leaderboard.md",
            caption="../report/leaderboard.rst",
            category="Leaderboard",
        ),
    params:
        reference=GRID.config["reference_method"],
    log:
        "results/logs/aggregate/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate/aggregate.tsv"
    script:
        "../scripts/aggregate.py"
