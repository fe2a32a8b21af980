# ADaM datasets (issue 16; docs/ADAM.md): ADSL, ADQS, ADLB and ADAE as SAS transport v5 and CDISC Dataset-JSON v1.1,
# and define.json, their metadata, all written from config/adam/spec.yaml (k2trial.adam) into results/adam/.

from k2trial.core.artifacts import artifact_name, delivered_datasets

# ADAM_SPEC: workflow/rules/common.smk (the study config's adam_spec; this file is included only when there is one).
# What write_adam reads: the analysis datasets, the groups and the diary (a study with a diary: ADQS, ADSL's severity
# group and efficacy flag), the safety results and what the lab standards are made of.
WRITE_ADAM_INPUTS = {
    **ALLOCATION,  # a randomised study: each subject's arm (ADSL ARMCD)
    "subjects": rules.derive_subjects.output.subjects,
    **(
        {
            "assignment": rules.assign_groups.output.assignment,
            "vas": rules.derive_vas.output.vas,
            "symptom_diary": rules.clean_raw_data.output.symptom_diary,
        }
        if DIARY
        else {}
    ),
    "labs": rules.derive_labs.output.labs,
}
# and the safety step's grades and AE listing (the rule's inputs below: write_adam runs after the safety step)
ADAM_SAFETY_INPUTS = [
    rules.safety_analysis.output.ctcae_grades,
    rules.safety_analysis.output.ae_listing,
]
# The datasets of the delivery, in the spec's order (lower-case file names): those whose first source this build
# makes (k2trial.core.artifacts.delivered_datasets, as AdamSpec.for_sources in the job; a safety-only study has no
# ADQS). libyaml (read_yaml) reads the spec in 5 ms instead of 50 (every snakemake call parses this).
ADAM_DATASETS = [
    name.lower()
    for name in delivered_datasets(
        {
            name: (dataset.get("sources") or [None])[0]
            for name, dataset in read_yaml(os.path.join(workflow.basedir, ADAM_SPEC))[
                "datasets"
            ].items()
        },
        [artifact_name(p) for p in (*WRITE_ADAM_INPUTS.values(), *ADAM_SAFETY_INPUTS)],
    )
]


rule write_adam:
    input:
        **WRITE_ADAM_INPUTS,
        ctcae_grades=rules.safety_analysis.output.ctcae_grades,
        ae_listing=rules.safety_analysis.output.ae_listing,
        spec=ADAM_SPEC,
        codebook=config["codebook"],
        lab_units=config["lab_units"],
        lab_standards=config["lab_standards"],
        ctcae_criteria=f"{config['ctcae_criteria_dir']}/ctcae_v{config['safety']['ctcae_version']}.yaml",
    output:
        **{
            f"{name}_{fmt}": f"{RESULTS}/adam/{name}.{fmt}"
            for name in ADAM_DATASETS
            for fmt in ("xpt", "json")
        },
        provenance=f"{RESULTS}/provenance/write_adam.json",
        define=f"{RESULTS}/adam/define.json",
    log:
        f"{RESULTS}/logs/write_adam.log",
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        vocabulary=VOCABULARY,
        # what k2trial.adam.parameters_from_config reads: the derivation texts and flags depend on it
        settings={
            key: config[key]
            for key in ("groups", "b12_status", "protocol", "safety")
            if key in config
        },
        # the study's arms (ADSL ARMCD/ARM terms) and its ADaM identity (studyid, name, single arm): config `adam`
        arms=config.get("arms"),
        adam_study=config.get("adam"),
    script:
        "../scripts/write_adam.py"
