# Reviewer figures (k2trial.report.figures): one job draws every figure of the registry (workflow/report/registry.yaml),
# PNG for reading and SVG for print.
# Interpreter start and imports dominate a small study, so one job (forking once to use its two threads)
# beats one job per figure.


rule make_figures:
    input:
        subjects=rules.derive_subjects.output.subjects,
        vas=rules.derive_vas.output.vas,
        labs=rules.derive_labs.output.labs,
        assignment=rules.assign_groups.output.assignment,
        participant_flow=rules.assign_groups.output.participant_flow,
        weekly=rules.efficacy_analysis.output.weekly,
        paired_tests=rules.efficacy_analysis.output.paired_tests,
        responders=rules.efficacy_analysis.output.responders,
        lab_descriptives=rules.safety_analysis.output.lab_descriptives,
        edish=rules.safety_analysis.output.edish,
        codebook=config["codebook"],
        lab_units=config["lab_units"],
        lab_standards=config["lab_standards"],
        dataset=f"{RAW_DIR}/dataset.yaml",
    output:
        **reported_outputs("figures", "figures", ["png", "svg"], reported="png"),
        provenance=f"{RESULTS}/provenance/make_figures.json",
    log:
        f"{RESULTS}/logs/make_figures.log",
    conda:
        CONDA_ENV
    threads: 2
    params:
        provenance=PROVENANCE,
        reporting=config["reporting"],
        seed=config["seed"],
        severe_threshold=config["groups"]["severe_threshold"],
        b12_status=config["b12_status"],
        vocabulary=VOCABULARY,
        registry=REGISTRY["figures"],
    script:
        "../scripts/make_figures.py"
