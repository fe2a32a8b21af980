# Reproducible analysis of the vitamin K2-7 neuropathy pilot (Kulkarni et al., 2013).
# Full rebuild: snakemake --cores 4        Another dataset: snakemake --cores 4 --config raw_dir=DIR
from snakemake.utils import min_version, validate


min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/clean.smk"
include: "workflow/rules/derive.smk"


rule all:
    input:
        ANALYSIS_TARGETS,
    default_target: True
