"""Snakemake entry point of the ``leaderboards`` rule (see bench.reporting.report)."""

import sys
import tempfile
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 - injected by Snakemake

from bench.reporting.report import build_reports  # noqa: E402
from bench.reporting.summary import write_expected  # noqa: E402

settings = snakemake.params.settings  # noqa: F821
with tempfile.TemporaryDirectory() as folder:
    expected = Path(folder) / "expected.json"
    write_expected(expected, list(snakemake.params.expected), dict(snakemake.params.skipped))  # noqa: F821
    build_reports(
        Path("results"),
        expected,
        reference=snakemake.params.reference,  # noqa: F821
        n_boot=settings["bootstrap_samples"],
        seed=settings["bootstrap_seed"],
        level=settings["confidence_level"],
        alpha=settings["alpha"],
    )
