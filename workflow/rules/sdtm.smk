# SDTM in and out (issues 15 and 16; data/raw/SDTM.md, k2trial.data.sdtm_io). The parse-time part (SDTM_INPUT,
# read_inputs, sdtm_inputs) is in sdtm_inputs.smk.
#
# import_sdtm runs when raw_dir's dataset.yaml says `format: sdtm`: it writes the raw tables of the CSV layout into
# results/raw_from_sdtm/, which validation, cleaning and derivation read; rule sdtm (outside the default target,
# `snakemake --cores 2 sdtm`) writes the clean raw tables as SDTM into results/sdtm/.


rule import_sdtm:
    input:
        unpack(sdtm_inputs),
        mapping=SDTM_MAPPING,
    output:
        **{name.split(".")[0]: f"{SDTM_READ_DIR}/{name}" for name in RAW_TABLES},
        provenance=f"{RESULTS}/provenance/import_sdtm.json",
        dataset=f"{SDTM_READ_DIR}/dataset.yaml",
        report=f"{SDTM_READ_DIR}/import.json",
    log:
        f"{RESULTS}/logs/import_sdtm.log",
    conda:
        CONDA_ENV
    params:
        # no data version yet: validation computes it from what this rule writes
        provenance={"lock": LOCK},
        source=SDTM_INPUT.as_dict() if SDTM_INPUT else None,
        # the study config's `dataset` when raw_dir has no dataset.yaml (else None: the input file)
        description=config["dataset"] if DESCRIBED_BY_CONFIG else None,
    script:
        "../scripts/import_sdtm.py"


rule sdtm:
    input:
        unpack(
            lambda wildcards: {
                name.split(".")[0]: rules.clean_raw_data.output[name.split(".")[0]]
                for name in RAW_TABLES
            }
        ),
        dataset=f"{RAW_DIR}/dataset.yaml",
        mapping=SDTM_MAPPING,
        codebook=config["codebook"],
        lab_units=config["lab_units"],
    output:
        provenance=f"{RESULTS}/provenance/sdtm.json",
        folder=directory(f"{RESULTS}/sdtm"),
    log:
        f"{RESULTS}/logs/sdtm.log",
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        study=SDTM_EXPORT_STUDY,
        # the study's protocol: its declared lab panel, if any (k2trial.runtime.step.lab_units)
        vocabulary=VOCABULARY,
    script:
        "../scripts/export_sdtm.py"
