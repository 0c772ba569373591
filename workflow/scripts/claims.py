"""Snakemake entry point of the ``claims`` rule (see bench.reporting.claims)."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 - injected by Snakemake

from bench.reporting.claims import write_claims  # noqa: E402

write_claims(
    Path(snakemake.input.claims),  # noqa: F821
    Path(snakemake.input.summary),  # noqa: F821
    Path(snakemake.output[0]),  # noqa: F821
)
