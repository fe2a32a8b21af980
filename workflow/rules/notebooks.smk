# Reviewer notebooks: papermill templates (workflow/notebooks/) executed with parameters from a YAML file,
# normalised (no timings, numbered cell ids) and exported to offline HTML (k2trial.notebooks). They display
# precomputed tables (results/tables/catalog.json), figures and analysis tables; they never recompute.
# Every notebook depends on CODE_FILES: its header states the code version.

NOTEBOOK_FIGURES = [path for path in rules.make_figures.output if path.endswith(".png")]
NOTEBOOK_LINKS = {
    "Study summary": "study_summary.html",
    "Data quality": "data_quality.html",
    "Efficacy": "efficacy.html",
    "Safety": "safety.html",
    "Index of every result (figures, tables, notebooks)": "../index.html",
}


rule render_data_quality_notebook:
    input:
        template="workflow/notebooks/data_quality.ipynb",
        dataset=f"{RAW_DIR}/dataset.yaml",
        validation_report=rules.validate_raw_data.output.report_json,
        catalog=rules.make_tables.output.catalog,
        figures=NOTEBOOK_FIGURES,
        code=CODE_FILES,
        row_accounting=rules.clean_raw_data.output.row_accounting,
        audit_log=rules.clean_raw_data.output.audit_log,
        queries=rules.clean_raw_data.output.queries,
    output:
        parameters=f"{RESULTS}/notebooks/data_quality.parameters.yaml",
        ipynb=f"{RESULTS}/notebooks/data_quality.ipynb",
        html=report(
            f"{RESULTS}/notebooks/data_quality.html",
            caption="../report/notebook_data_quality.rst",
            category="Notebooks",
        ),
    log:
        f"{RESULTS}/logs/render_data_quality_notebook.log",
    conda:
        CONDA_ENV
    params:
        title="Data quality: validation and cleaning",
        study=config["study"],
        treatment=config["treatment"],
        reporting=config["reporting"],
        severe_threshold=config["groups"]["severe_threshold"],
        links=NOTEBOOK_LINKS,
    script:
        "../scripts/render_notebook.py"


rule render_efficacy_notebook:
    input:
        template="workflow/notebooks/efficacy.ipynb",
        dataset=f"{RAW_DIR}/dataset.yaml",
        validation_report=rules.validate_raw_data.output.report_json,
        catalog=rules.make_tables.output.catalog,
        figures=NOTEBOOK_FIGURES,
        code=CODE_FILES,
        descriptives=rules.efficacy_analysis.output.descriptives,
        paired_tests=rules.efficacy_analysis.output.paired_tests,
    output:
        parameters=f"{RESULTS}/notebooks/efficacy.parameters.yaml",
        ipynb=f"{RESULTS}/notebooks/efficacy.ipynb",
        html=report(
            f"{RESULTS}/notebooks/efficacy.html",
            caption="../report/notebook_efficacy.rst",
            category="Notebooks",
        ),
    log:
        f"{RESULTS}/logs/render_efficacy_notebook.log",
    conda:
        CONDA_ENV
    params:
        title="Efficacy: symptom VAS over eight weeks",
        study=config["study"],
        treatment=config["treatment"],
        reporting=config["reporting"],
        severe_threshold=config["groups"]["severe_threshold"],
        links=NOTEBOOK_LINKS,
    script:
        "../scripts/render_notebook.py"


rule render_safety_notebook:
    input:
        template="workflow/notebooks/safety.ipynb",
        dataset=f"{RAW_DIR}/dataset.yaml",
        validation_report=rules.validate_raw_data.output.report_json,
        catalog=rules.make_tables.output.catalog,
        figures=NOTEBOOK_FIGURES,
        code=CODE_FILES,
        ae_summary=rules.safety_analysis.output.ae_summary,
        lab_descriptives=rules.safety_analysis.output.lab_descriptives,
        hys_law=rules.safety_analysis.output.hys_law,
        safety_conclusion=rules.safety_analysis.output.safety_conclusion,
    output:
        parameters=f"{RESULTS}/notebooks/safety.parameters.yaml",
        ipynb=f"{RESULTS}/notebooks/safety.ipynb",
        html=report(
            f"{RESULTS}/notebooks/safety.html",
            caption="../report/notebook_safety.rst",
            category="Notebooks",
        ),
    log:
        f"{RESULTS}/logs/render_safety_notebook.log",
    conda:
        CONDA_ENV
    params:
        title="Safety: laboratory tests and adverse events",
        study=config["study"],
        treatment=config["treatment"],
        reporting=config["reporting"],
        severe_threshold=config["groups"]["severe_threshold"],
        links=NOTEBOOK_LINKS,
    script:
        "../scripts/render_notebook.py"


rule render_study_summary_notebook:
    input:
        template="workflow/notebooks/study_summary.ipynb",
        dataset=f"{RAW_DIR}/dataset.yaml",
        validation_report=rules.validate_raw_data.output.report_json,
        catalog=rules.make_tables.output.catalog,
        figures=NOTEBOOK_FIGURES,
        code=CODE_FILES,
        descriptives=rules.efficacy_analysis.output.descriptives,
        ae_summary=rules.safety_analysis.output.ae_summary,
        safety_conclusion=rules.safety_analysis.output.safety_conclusion,
        # The published-claims check: uncomment once the claims rule is included (issue 7).
        # claims=rules.check_claims.output.claims,
    output:
        parameters=f"{RESULTS}/notebooks/study_summary.parameters.yaml",
        ipynb=f"{RESULTS}/notebooks/study_summary.ipynb",
        html=report(
            f"{RESULTS}/notebooks/study_summary.html",
            caption="../report/notebook_study_summary.rst",
            category="Notebooks",
        ),
    log:
        f"{RESULTS}/logs/render_study_summary_notebook.log",
    conda:
        CONDA_ENV
    params:
        title="Study summary",
        study=config["study"],
        treatment=config["treatment"],
        reporting=config["reporting"],
        severe_threshold=config["groups"]["severe_threshold"],
        links=NOTEBOOK_LINKS,
    script:
        "../scripts/render_notebook.py"
