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
include: "workflow/rules/groups.smk"
include: "workflow/rules/efficacy.smk"
include: "workflow/rules/safety.smk"


rule all:
    input:
        rules.derive_subjects.output,
        rules.derive_vas.output,
        rules.derive_labs.output,
        rules.assign_groups.output,
        rules.efficacy_analysis.output,
        rules.safety_analysis.output,
    default_target: True
