"""Reproducibility benchmark for uncertainty-aware fine-tuning of foundation models.

The package is importable without Snakemake and without torch: heavy imports live
inside the functions and modules that need them so that DAG construction stays fast.
"""

__version__ = "0.1.0"
