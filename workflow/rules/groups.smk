# Severity groups and analysis populations (k2trial.analysis.groups; results/groups/).


rule assign_groups:
    input:
        subjects=rules.derive_subjects.output.subjects,
        vas=rules.derive_vas.output.vas,
        labs=rules.derive_labs.output.labs,
    output:
        provenance=f"{RESULTS}/provenance/assign_groups.json",
        assignment=f"{RESULTS}/groups/assignment.csv",
        counts=f"{RESULTS}/groups/counts.csv",
    log:
        f"{RESULTS}/logs/assign_groups.log",
    conda:
        CONDA_ENV
    params:
        groups=config["groups"],
        b12_status=config["b12_status"],
        composite_decimals=config["efficacy"]["recording_decimals"]["composite"],
    script:
        "../scripts/assign_groups.py"
