# Reviewer tables (k2trial.report.tables): one job writes every table of the registry (workflow/report/registry.yaml)
# as CSV, self-contained HTML and LaTeX,
# plus catalog.json (titles, notes and cells) that the notebooks display without recomputing anything.


rule make_tables:
    input:
        participant_flow=rules.assign_groups.output.participant_flow,
        baseline_characteristics=rules.assign_groups.output.baseline_characteristics,
        descriptives=rules.efficacy_analysis.output.descriptives,
        paired_tests=rules.efficacy_analysis.output.paired_tests,
        friedman=rules.efficacy_analysis.output.friedman,
        responders=rules.efficacy_analysis.output.responders,
        group_comparison=rules.efficacy_analysis.output.group_comparison,
        models=rules.efficacy_analysis.output.models,
        lab_descriptives=rules.safety_analysis.output.lab_descriptives,
        lab_shifts=rules.safety_analysis.output.lab_shifts,
        ctcae_worst=rules.safety_analysis.output.ctcae_worst,
        lab_paired_tests=rules.safety_analysis.output.lab_paired_tests,
        hys_law=rules.safety_analysis.output.hys_law,
        ae_summary=rules.safety_analysis.output.ae_summary,
        ae_by_term=rules.safety_analysis.output.ae_by_term,
        ae_listing=rules.safety_analysis.output.ae_listing,
        safety_conclusion=rules.safety_analysis.output.safety_conclusion,
        codebook=config["codebook"],
        lab_units=config["lab_units"],
        dataset=f"{RAW_DIR}/dataset.yaml",
    output:
        **reported_outputs("tables", "tables", ["csv", "html", "tex"], reported="html"),
        provenance=f"{RESULTS}/provenance/make_tables.json",
        catalog=f"{RESULTS}/tables/catalog.json",
    log:
        f"{RESULTS}/logs/make_tables.log",
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        reporting=config["reporting"],
        efficacy=config["efficacy"],
        safety=config["safety"],
        severe_threshold=config["groups"]["severe_threshold"],
        groups_note=config["groups"].get("note", ""),
        study_title=STUDY["title"],
        vocabulary=VOCABULARY,
        registry=REGISTRY["tables"],
    script:
        "../scripts/make_tables.py"
