"""Snakemake entry point of the ``leaderboards`` rule (see bench.reporting.report)."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 - injected by Snakemake

from bench.reporting.report import build_reports  # noqa: E402

settings = snakemake.params.settings  # noqa: F821
build_reports(
    Path("results"),
    list(snakemake.params.expected),  # noqa: F821
    reference=snakemake.params.reference,  # noqa: F821
    n_boot=settings["bootstrap_samples"],
    seed=settings["bootstrap_seed"],
    level=settings["confidence_level"],
    alpha=settings["alpha"],
    skipped=dict(snakemake.params.skipped),  # noqa: F821
)
