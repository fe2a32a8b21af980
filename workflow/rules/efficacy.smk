# Efficacy: paired tests, Friedman, descriptives, responders, group comparisons, models and weekly
# trajectories of the VAS diary, in one job (k2trial.analysis.efficacy; results/efficacy/); in a randomised study
# also the between-arm comparisons (k2trial.analysis.between_arm; efficacy/between_arm.csv).


rule efficacy_analysis:
    input:
        **ALLOCATION,
        assignment=rules.assign_groups.output.assignment,
        vas=rules.derive_vas.output.vas,
        codebook=config["codebook"],
        lab_units=config["lab_units"],
    output:
        **({"between_arm": f"{RESULTS}/efficacy/between_arm.csv"} if ARMS else {}),
        provenance=f"{RESULTS}/provenance/efficacy_analysis.json",
        paired_tests=f"{RESULTS}/efficacy/paired_tests.csv",
        friedman=f"{RESULTS}/efficacy/friedman.csv",
        descriptives=f"{RESULTS}/efficacy/descriptives.csv",
        responders=f"{RESULTS}/efficacy/responders.csv",
        group_comparison=f"{RESULTS}/efficacy/group_comparison.csv",
        models=f"{RESULTS}/efficacy/models.csv",
        weekly=f"{RESULTS}/efficacy/weekly.csv",
        symptom_ranking=f"{RESULTS}/efficacy/symptom_ranking.csv",
        analysis_choices=f"{RESULTS}/efficacy/analysis_choices.json",
    log:
        f"{RESULTS}/logs/efficacy_analysis.log",
    # the critical path of a rebuild (bench/run_benchmarks.py prints it): started first when cores are free
    priority: CRITICAL_PATH_PRIORITY
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        efficacy=config["efficacy"],
        groups=config["groups"],
        b12_status=config["b12_status"],
        vocabulary=VOCABULARY,
        arms=ARMS,
    script:
        "../scripts/efficacy_analysis.py"
