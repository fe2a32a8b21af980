# Published-claims check (k2trial.analysis.claims; results/claims/): each claim of config/claims.yaml evaluated against the
# analysis artifacts it names. The input names below are the artifact names the claims spec uses.


rule check_claims:
    input:
        **ARM_CLAIM_INPUTS,
        claims=config["claims"],
        dataset=DATASET_FILE,
        subjects=rules.derive_subjects.output.subjects,
        vas=rules.derive_vas.output.vas,
        assignment=rules.assign_groups.output.assignment,
        counts=rules.assign_groups.output.counts,
        descriptives=rules.efficacy_analysis.output.descriptives,
        paired_tests=rules.efficacy_analysis.output.paired_tests,
        safety_conclusion=rules.safety_analysis.output.safety_conclusion,
        hys_law=rules.safety_analysis.output.hys_law,
        ae_summary=rules.safety_analysis.output.ae_summary,
    output:
        provenance=f"{RESULTS}/provenance/check_claims.json",
        claims=f"{RESULTS}/claims/claims.csv",
        summary=f"{RESULTS}/claims/claims_summary.json",
    log:
        f"{RESULTS}/logs/check_claims.log",
    # the critical path of a rebuild (bench/run_benchmarks.py prints it): started first when cores are free
    priority: CRITICAL_PATH_PRIORITY
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        # Substituted into the claims' definitions (the statistic column) so the table states the rules in force.
        definitions={
            "severe_threshold": config["groups"]["severe_threshold"],
            "adequate_b12_from": config["b12_status"]["adequate_from"],
            "confidence": config["efficacy"]["confidence"],
        },
    script:
        "../scripts/check_claims.py"
