"""Snakemake entry point of the ``figures`` rule (see bench.reporting.figures)."""

import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 - injected by Snakemake

from bench.io import atomic_write_bytes  # noqa: E402
from bench.reporting.figures import make_figures  # noqa: E402

task, backbone = snakemake.wildcards.task, snakemake.wildcards.backbone  # noqa: F821
make_figures(
    Path(snakemake.input.table),  # noqa: F821
    [Path(d) for d in snakemake.params.run_dirs],  # noqa: F821
    Path("paper_figures"),
    only=[(task, backbone)],
    index_path=Path(snakemake.output[0]) / "index.md",  # noqa: F821
    costs_path=Path(snakemake.input.costs),  # noqa: F821
)

# Name the grid that produced these figures (paper_figures/README.md promises it).
index = Path(snakemake.output[0]) / "index.md"  # noqa: F821
text = index.read_text().rstrip("\n")
text += (
    f"\n\nProduced by the `figures` rule from the grid `{snakemake.params.config}`"  # noqa: F821
    " (the resolved config every job of this run read).\n"
)
atomic_write_bytes(index, text.encode())
