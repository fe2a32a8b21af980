# Cleaning: the gate on the validation report, then deterministic fixes with an audit log, data queries
# and row accounting (workflow/DATASETS.md, results/clean/).


rule clean_raw_data:
    input:
        unpack(read_inputs),
        report_json=rules.validate_raw_data.output.report_json,
        report_md=rules.validate_raw_data.output.report_md,
        codebook=config["codebook"],
        lab_units=config["lab_units"],
    output:
        provenance=f"{RESULTS}/provenance/clean_raw_data.json",
        subjects=f"{RESULTS}/clean/subjects.csv",
        symptom_diary=f"{RESULTS}/clean/symptom_diary.csv",
        labs=f"{RESULTS}/clean/labs.csv",
        adverse_events=f"{RESULTS}/clean/adverse_events.csv",
        dosing=f"{RESULTS}/clean/dosing.csv",
        audit_log=f"{RESULTS}/clean/audit_log.csv",
        audit_summary=f"{RESULTS}/clean/audit_summary.csv",
        queries=f"{RESULTS}/clean/queries.csv",
        row_accounting=f"{RESULTS}/clean/row_accounting.csv",
    log:
        f"{RESULTS}/logs/clean_raw_data.log",
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        vocabulary=VOCABULARY,
        visit_windows=VISIT_WINDOWS,
    script:
        "../scripts/clean_raw_data.py"
