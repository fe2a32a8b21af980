# Versioned artifacts: the manifest of every artifact with its producing rule, the software versions,
# and (target `archive`, outside the default) a citable archive with an RO-Crate description.


rule manifest:
    input:
        records=PROVENANCE_RECORDS,
        validation_report=rules.validate_raw_data.output.report_json,
        lock=LOCK,
    output:
        manifest=f"{RESULTS}/MANIFEST.json",
        software_versions=f"{RESULTS}/software_versions.yml",
    log:
        f"{RESULTS}/logs/manifest.log",
    conda:
        CONDA_ENV
    params:
        code=CODE_HASHES,
    script:
        "../scripts/write_manifest.py"


rule archive:
    input:
        unpack(archive_inputs),
        manifest=rules.manifest.output.manifest,
        software_versions=rules.manifest.output.software_versions,
    output:
        archive_dir=directory(f"{RESULTS}/archive"),
    log:
        f"{RESULTS}/logs/archive.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/pack_archive.py"
