"""Snakemake entry point of the ``aggregate`` rule (see bench.reporting.aggregate)."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 - injected by Snakemake

from bench.reporting.aggregate import aggregate  # noqa: E402

aggregate(
    snakemake.input.metrics,  # noqa: F821
    benchmarks_root=Path("results/benchmarks"),
    out_dir=Path("results"),
)
