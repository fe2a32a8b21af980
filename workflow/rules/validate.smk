# Validation of the raw files against the contract (data/raw/README.md, codebook.yaml, lab_units.yaml).
# The job succeeds whenever it wrote the report; errors stop the run in clean_raw_data (the gate).


rule validate_raw_data:
    input:
        unpack(read_inputs),
        codebook=config["codebook"],
        lab_units=config["lab_units"],
    output:
        provenance=f"{RESULTS}/provenance/validate_raw_data.json",
        report_json=f"{RESULTS}/validation/report.json",
        report_md=f"{RESULTS}/validation/report.md",
    log:
        f"{RESULTS}/logs/validate_raw_data.log",
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        vocabulary=VOCABULARY,
        visit_windows=VISIT_WINDOWS,
        validation=config["validation"],
    script:
        "../scripts/validate_raw_data.py"
