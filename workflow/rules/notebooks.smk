# Reviewer notebooks (k2trial.report.notebooks, k2trial.report.notebook_view): the papermill templates of the registry
# (workflow/report/registry.yaml) in workflow/notebooks/, parameters in results/notebooks/<name>.parameters.yaml.
# They display precomputed tables (results/tables/catalog.json), figures and analysis artifacts and never
# recompute; inputs named view_<artifact> are read by the view beyond those the parameters file lists. Two steps so
# that executing and rendering overlap with drawing the figures: execute_notebooks runs them in its own process (no
# Jupyter kernel) and renders their offline HTML (figures are placeholders), export_notebooks embeds the PNGs as data
# URIs in both (a text substitution, light enough to follow the figures at once) and writes the normalised .ipynb and
# the .html. The header of each notebook states the code version, so the hashes of CODE_FILES are a parameter.

NOTEBOOK_TITLES = {entry["name"]: entry["title"] for entry in REGISTRY["notebooks"]}
NOTEBOOK_LINKS = [
    [entry["link"], f"{entry['name']}.html"] for entry in REGISTRY["notebooks"]
] + [[REGISTRY["index"]["title"], "../index.html"]]


# What the notebooks read, in the order their parameters list it; the efficacy results and the claims only in a study
# with a diary (DIARY).
NOTEBOOK_INPUTS = {
    "dataset": DATASET_FILE,
    "validation_report": rules.validate_raw_data.output.report_json,
    "catalog": rules.make_tables.output.catalog,
    "codebook": config["codebook"],
    "lab_units": config["lab_units"],
    **{
        key: rules.clean_raw_data.output[key]
        for key in ("row_accounting", "audit_log", "queries")
    },
    **(
        {
            key: rules.efficacy_analysis.output[key]
            for key in ("descriptives", "paired_tests")
        }
        if DIARY
        else {}
    ),
    **{
        key: rules.safety_analysis.output[key]
        for key in ("ae_summary", "lab_descriptives", "hys_law", "safety_conclusion")
    },
    **(
        {
            "claims": rules.check_claims.output.claims,
            "claims_summary": rules.check_claims.output.summary,
        }
        if DIARY
        else {}
    ),
    "view_audit_summary": rules.clean_raw_data.output.audit_summary,
    **(
        {"view_symptom_ranking": rules.efficacy_analysis.output.symptom_ranking}
        if DIARY
        else {}
    ),
}


rule execute_notebooks:
    input:
        **{
            f"{name}_template": f"workflow/notebooks/{name}.ipynb"
            for name in registry_names("notebooks")
        },
        **ARM_NOTEBOOK_INPUTS,
        **NOTEBOOK_INPUTS,
    output:
        **{
            key: path
            for name in registry_names("notebooks")
            for key, path in (
                (
                    f"{name}_parameters",
                    f"{RESULTS}/notebooks/{name}.parameters.yaml",
                ),
                (
                    f"{name}_executed",
                    temp(f"{RESULTS}/notebooks/executed/{name}.ipynb"),
                ),
                (
                    f"{name}_page",
                    temp(f"{RESULTS}/notebooks/executed/{name}.html"),
                ),
            )
        },
        provenance=f"{RESULTS}/provenance/execute_notebooks.json",
    log:
        f"{RESULTS}/logs/execute_notebooks.log",
    # the critical path of a rebuild (bench/run_benchmarks.py prints it): started first when cores are free
    priority: CRITICAL_PATH_PRIORITY
    conda:
        CONDA_ENV
    # half of the notebooks run in a forked child (workflow/scripts/render_notebook.py)
    threads: 2
    params:
        provenance=PROVENANCE,
        code=CODE_HASHES,
        titles=NOTEBOOK_TITLES,
        figures=FIGURE_PNGS,
        figure_titles={entry["name"]: entry["title"] for entry in REGISTRY["figures"]},
        study=STUDY,
        treatment=TREATMENT,
        reporting=config["reporting"],
        severe_threshold=SEVERE_THRESHOLD,
        vocabulary=VOCABULARY,
        links=NOTEBOOK_LINKS,
        # the templates' design-specific and protocol-worded cells (k2trial.report.notebooks.specialise_template)
        randomised=bool(ARMS),
        diary=DIARY,
        omitted=OMITTED_OUTPUTS,
        protocol_words=PROTOCOL_WORDS,
    script:
        "../scripts/render_notebook.py"


# The offline pages rendered before the figures exist: intermediates of export_notebooks, not results.
NOTEBOOK_PAGES = [
    rules.execute_notebooks.output[f"{name}_page"]
    for name in registry_names("notebooks")
]


rule export_notebooks:
    input:
        **{
            f"{name}_{step}": rules.execute_notebooks.output[f"{name}_{step}"]
            for name in registry_names("notebooks")
            for step in ("executed", "page")
        },
        figures=FIGURE_PNGS,
    output:
        **reported_outputs("notebooks", "notebooks", ["ipynb", "html"], reported="html"),
        provenance=f"{RESULTS}/provenance/export_notebooks.json",
    log:
        f"{RESULTS}/logs/export_notebooks.log",
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        titles=NOTEBOOK_TITLES,
    script:
        "../scripts/render_notebook.py"
