# Reviewer tables (k2trial.report.tables): one job writes every table of the registry (workflow/report/registry.yaml)
# as CSV, self-contained HTML and LaTeX,
# plus catalog.json (titles, notes and cells) that the notebooks display without recomputing anything.


rule make_tables:
    input:
        **ARM_TABLE_INPUTS,
        **(
            {
                **{
                    key: rules.assign_groups.output[key]
                    for key in ("participant_flow", "baseline_characteristics")
                },
                **{
                    key: rules.efficacy_analysis.output[key]
                    for key in (
                        "descriptives",
                        "paired_tests",
                        "friedman",
                        "responders",
                        "group_comparison",
                        "models",
                    )
                },
            }
            if DIARY
            else {}
        ),
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
        dataset=DATASET_FILE,
    output:
        **reported_outputs("tables", "tables", ["csv", "html", "tex"], reported="html"),
        provenance=f"{RESULTS}/provenance/make_tables.json",
        catalog=f"{RESULTS}/tables/catalog.json",
    log:
        f"{RESULTS}/logs/make_tables.log",
    # the critical path of a rebuild (bench/run_benchmarks.py prints it): started first when cores are free
    priority: CRITICAL_PATH_PRIORITY
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        reporting=config["reporting"],
        efficacy=config["efficacy"],
        safety=config["safety"],
        severe_threshold=SEVERE_THRESHOLD,
        groups_note=config.get("groups", {}).get("note", ""),
        study_title=STUDY["title"],
        vocabulary=VOCABULARY,
        registry=REGISTRY["tables"],
    script:
        "../scripts/make_tables.py"
