# Severity groups and analysis populations (k2trial.analysis.groups), the participant flow and the Table 1
# statistics (k2trial.analysis.baseline); results/groups/.


rule assign_groups:
    input:
        subjects=rules.derive_subjects.output.subjects,
        vas=rules.derive_vas.output.vas,
        labs=rules.derive_labs.output.labs,
        codebook=config["codebook"],
        lab_units=config["lab_units"],
    output:
        provenance=f"{RESULTS}/provenance/assign_groups.json",
        assignment=f"{RESULTS}/groups/assignment.csv",
        counts=f"{RESULTS}/groups/counts.csv",
        participant_flow=f"{RESULTS}/groups/participant_flow.csv",
        baseline_characteristics=f"{RESULTS}/groups/baseline_characteristics.csv",
    log:
        f"{RESULTS}/logs/assign_groups.log",
    # the critical path of a rebuild (bench/run_benchmarks.py prints it): started first when cores are free
    priority: CRITICAL_PATH_PRIORITY
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        groups=config["groups"],
        b12_status=config["b12_status"],
        composite_decimals=config["efficacy"]["recording_decimals"]["composite"],
        vocabulary=VOCABULARY,
    script:
        "../scripts/assign_groups.py"
