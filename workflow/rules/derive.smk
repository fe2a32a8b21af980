# Analysis datasets (workflow/DATASETS.md, results/analysis/): one rule per dataset, so that each reruns
# alone when only its inputs or parameters change.


rule derive_subjects:
    input:
        subjects=rules.clean_raw_data.output.subjects,
        dosing=rules.clean_raw_data.output.dosing,
        symptom_diary=rules.clean_raw_data.output.symptom_diary,
        codebook=config["codebook"],
        lab_units=config["lab_units"],
    output:
        provenance=f"{RESULTS}/provenance/derive_subjects.json",
        subjects=f"{RESULTS}/analysis/subjects.csv",
    log:
        f"{RESULTS}/logs/derive_subjects.log",
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        vocabulary=VOCABULARY,
        treatment=TREATMENT,
        composite=VOCABULARY["composite"],
    script:
        "../scripts/derive_subjects.py"


# The diary's VAS (a study with a diary only: DIARY, workflow/rules/common.smk).
if DIARY:

    rule derive_vas:
        input:
            symptom_diary=rules.clean_raw_data.output.symptom_diary,
            codebook=config["codebook"],
            lab_units=config["lab_units"],
        output:
            provenance=f"{RESULTS}/provenance/derive_vas.json",
            vas=f"{RESULTS}/analysis/vas.csv",
        log:
            f"{RESULTS}/logs/derive_vas.log",
        # the critical path of a rebuild (bench/run_benchmarks.py prints it): started first when cores are free
        priority: CRITICAL_PATH_PRIORITY
        conda:
            CONDA_ENV
        params:
            provenance=PROVENANCE,
            vocabulary=VOCABULARY,
            composite=VOCABULARY["composite"],
        script:
            "../scripts/derive_vas.py"


rule derive_labs:
    input:
        labs=rules.clean_raw_data.output.labs,
        subjects=rules.clean_raw_data.output.subjects,
        codebook=config["codebook"],
        lab_units=config["lab_units"],
    output:
        provenance=f"{RESULTS}/provenance/derive_labs.json",
        labs=f"{RESULTS}/analysis/labs.csv",
    log:
        f"{RESULTS}/logs/derive_labs.log",
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        vocabulary=VOCABULARY,
    script:
        "../scripts/derive_labs.py"
