# ADaM datasets (issue 16; docs/ADAM.md): ADSL, ADQS, ADLB and ADAE as SAS transport v5 and CDISC Dataset-JSON v1.1,
# and define.json, their metadata, all written from config/adam/spec.yaml (k2trial.adam) into results/adam/.

# ADAM_SPEC: workflow/rules/common.smk (the study config's adam_spec; this file is included only when there is one).
# The datasets of the delivery, in the spec's order (lower-case file names); the C loader reads the spec in 5 ms
# instead of 50 (every snakemake call parses this).
# A safety-only study (no diary) makes none of the diary's artifacts, so a dataset made from them (its first source:
# ADQS) is not delivered (k2trial.adam.spec.AdamSpec.for_sources; write_adam checks the files it wrote are these).
DIARY_ARTIFACTS = {"analysis/vas", "groups/assignment", "clean/symptom_diary"}
with open(os.path.join(workflow.basedir, ADAM_SPEC), encoding="utf-8") as handle:
    ADAM_DATASETS = [
        name.lower()
        for name, dataset in yaml.load(
            handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )["datasets"].items()
        if DIARY or dataset["sources"][0] not in DIARY_ARTIFACTS
    ]


rule write_adam:
    input:
        **ALLOCATION,  # a randomised study: each subject's arm (ADSL ARMCD)
        **(
            {
                "assignment": rules.assign_groups.output.assignment,
                "vas": rules.derive_vas.output.vas,
                "symptom_diary": rules.clean_raw_data.output.symptom_diary,
            }
            if DIARY
            else {}
        ),
        subjects=rules.derive_subjects.output.subjects,
        # the diary and the groups (a study with a diary: ADQS, ADSL's severity group and efficacy flag)
        labs=rules.derive_labs.output.labs,
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
