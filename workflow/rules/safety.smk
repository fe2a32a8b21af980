# Safety: laboratory flags, CTCAE grades (the criteria file of config safety.ctcae_version), Hy's law and eDISH, lab
# paired tests, adverse-event tables and the safety conclusion (results/safety/). config/lab_standards.yaml and the
# CTCAE criteria are inputs of the safety rules only, so a change of a reference range or a CTCAE criterion reruns
# the safety analysis and what depends on it, nothing upstream.


rule safety_analysis:
    input:
        labs=rules.derive_labs.output.labs,
        subjects=rules.derive_subjects.output.subjects,
        adverse_events=rules.clean_raw_data.output.adverse_events,
        codebook=config["codebook"],
        lab_units=config["lab_units"],
        lab_standards=config["lab_standards"],
        ctcae_criteria=f"{config['ctcae_criteria_dir']}/ctcae_v{config['safety']['ctcae_version']}.yaml",
    output:
        provenance=f"{RESULTS}/provenance/safety_analysis.json",
        lab_flags=f"{RESULTS}/safety/lab_flags.csv",
        lab_descriptives=f"{RESULTS}/safety/lab_descriptives.csv",
        lab_shifts=f"{RESULTS}/safety/lab_shifts.csv",
        lab_categories=f"{RESULTS}/safety/lab_categories.csv",
        ctcae_grades=f"{RESULTS}/safety/ctcae_grades.csv",
        ctcae_worst=f"{RESULTS}/safety/ctcae_worst.csv",
        hys_law=f"{RESULTS}/safety/hys_law.csv",
        edish=f"{RESULTS}/safety/edish.csv",
        lab_paired_tests=f"{RESULTS}/safety/lab_paired_tests.csv",
        ae_summary=f"{RESULTS}/safety/ae_summary.csv",
        ae_by_term=f"{RESULTS}/safety/ae_by_term.csv",
        ae_listing=f"{RESULTS}/safety/ae_listing.csv",
        safety_conclusion=f"{RESULTS}/safety/safety_conclusion.csv",
    log:
        f"{RESULTS}/logs/safety_analysis.log",
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        vocabulary=VOCABULARY,
        safety=config["safety"],
        b12_status=config["b12_status"],
    script:
        "../scripts/safety_analysis.py"
