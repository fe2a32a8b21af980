# Reproducible analysis of the vitamin K2-7 neuropathy studies (Kulkarni et al., 2013, and the studies of its programme).
# Full rebuild of the default study: snakemake --cores 4       Another dataset: snakemake --cores 4 --config raw_dir=DIR
# Another study: snakemake --cores 4 --configfile config/studies/<name>.yaml (builds into its results_dir)
import gc
import os

from snakemake.utils import min_version

from k2trial.core.vocabulary import DEFAULT_STUDY_CONFIG
from k2trial.runtime.config_check import validate_config

min_version("9.0")


# Cross-study conventions and analysis choices; a study config given with --configfile is merged over them.
configfile: "config/config.yaml"


# The default study only when no study config was given: Snakemake merges config files key by key, so loading it
# under another study would leave its entries (a diary item, a population) in that study's config.
if "study" not in config:
    workflow.configfile(DEFAULT_STUDY_CONFIG)


report: "workflow/report/workflow.rst"


# The merged config against its schema (as snakemake.utils.validate, the schema read by libyaml: k2trial.runtime.config_check).
validate_config(
    config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml")
)


include: "workflow/rules/common.smk"
include: "workflow/rules/sdtm_inputs.smk"
include: "workflow/rules/sdtm.smk"


# The simulated dataset of a study with a simulation calibration (config `simulation`; real data has none).
if "simulation" in config:

    include: "workflow/rules/simulate.smk"


include: "workflow/rules/validate.smk"
include: "workflow/rules/clean.smk"
include: "workflow/rules/derive.smk"


# The VAS, severity groups, efficacy analyses and claims: a study with a diary (DIARY; not a safety-only study).
if DIARY:

    include: "workflow/rules/groups.smk"
    include: "workflow/rules/efficacy.smk"


include: "workflow/rules/safety.smk"


if DIARY:

    include: "workflow/rules/claims.smk"


# The ADaM delivery when the study has an ADaM spec (config adam_spec; the default study's: config/adam/spec.yaml).
if ADAM_SPEC:

    include: "workflow/rules/adam.smk"


include: "workflow/rules/figures.smk"


# A randomised study (config `arms`): allocation, summaries and figures by arm; a single-arm study has none.
if ARMS:

    include: "workflow/rules/arms.smk"


include: "workflow/rules/tables.smk"
include: "workflow/rules/notebooks.smk"
include: "workflow/rules/site.smk"


# The jobs of the default target; each writes a provenance record that the manifest collects.
PIPELINE_RULES = [
    *([rules.import_sdtm] if SDTM_INPUT else []),
    rules.validate_raw_data,
    rules.clean_raw_data,
    rules.derive_subjects,
    *([rules.derive_vas] if DIARY else []),
    rules.derive_labs,
    *([rules.assign_groups, rules.efficacy_analysis] if DIARY else []),
    rules.safety_analysis,
    *([rules.check_claims] if DIARY else []),
    *([rules.write_adam] if ADAM_SPEC else []),
    *([rules.make_figures] if DIARY else []),
    rules.make_lab_figures,
    *([rules.make_efficacy_figures] if DIARY else []),
    rules.make_tables,
    rules.execute_notebooks,
    rules.export_notebooks,
    rules.build_index,
    *ARM_RULES,
]
PROVENANCE_RECORDS = [r.output.provenance for r in PIPELINE_RULES]


include: "workflow/rules/provenance.smk"
include: "workflow/rules/planning.smk"


# What Snakemake has imported and parsed lives as long as the run: exempt it from the cycle collector (gc.freeze),
# whose passes over it would otherwise recur during the run and end every run with a collection of it all (0.2 s).
# Objects made later are collected as usual; end_run (onsuccess/onerror) freezes the run's (the DAG, the jobs) too.
gc.freeze()


rule all:
    default_target: True
    input:
        # every output but the notebooks' pre-rendered pages, temp() files deleted once export_notebooks used them
        [p for r in PIPELINE_RULES for p in r.output if p not in NOTEBOOK_PAGES],
        rules.build_index.output,
        rules.manifest.output,


# Local jobs start by fork from one preloaded interpreter (workflow/rules/common.smk, start_job_server).
onstart:
    start_job_server()


# The run is over: stop the job server and let the process exit at once (workflow/rules/common.smk, end_run).
onsuccess:
    end_run()


onerror:
    end_run()
