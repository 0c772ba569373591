# Uncertainty-aware fine-tuning benchmark: the table of contents.
#
#   config (validated) -> features -> fit -> posthoc / ensemble -> score -> aggregate
#     -> leaderboards (statistics, every format) -> claims, figures
#
# Run the default offline grid:   snakemake --cores 2
# On a SLURM GPU cluster:         snakemake --profile slurm --configfile config/<grid>.yaml
# Tables and figures only, from stored predictions (never refits):  snakemake --cores 2 reports
# Browsable report afterwards:    snakemake --report report.html

from snakemake.utils import min_version

min_version("9.0")


# A grid given with --configfile replaces the default one: Snakemake would otherwise merge
# the two key by key, and the paper grid would also run the default grid's tasks.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



include: "workflow/rules/common.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        all_targets(),


rule reports:
    input:
        all_reports(),
