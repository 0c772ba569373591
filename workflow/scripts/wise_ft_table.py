"""Snakemake entry point of the ``wise_ft_table`` rule (see bench.reporting.wise)."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 - injected by Snakemake

from bench.reporting.wise import write_wise_tables  # noqa: E402

write_wise_tables(
    [Path(d) for d in snakemake.params.run_dirs],  # noqa: F821
    Path(snakemake.output.markdown),  # noqa: F821
    Path(snakemake.output.csv),  # noqa: F821
)
