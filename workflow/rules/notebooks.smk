# Reviewer notebooks (k2trial.report.notebooks): papermill templates in workflow/notebooks/, parameters passed through
# results/notebooks/<name>.parameters.yaml. They display precomputed tables (results/tables/catalog.json), figures
# and analysis tables and never recompute. Two steps so that executing overlaps with drawing the figures:
# execute_notebooks runs them on two kernels side by side (figures are placeholders), export_notebooks embeds the
# PNGs as data URIs and writes the normalised .ipynb and the offline .html. The header of each notebook states
# the code version, so CODE_FILES are inputs.

NOTEBOOK_FIGURES = [path for path in rules.make_figures.output if path.endswith(".png")]


rule execute_notebooks:
    input:
        study_summary_template="workflow/notebooks/study_summary.ipynb",
        data_quality_template="workflow/notebooks/data_quality.ipynb",
        efficacy_template="workflow/notebooks/efficacy.ipynb",
        safety_template="workflow/notebooks/safety.ipynb",
        dataset=f"{RAW_DIR}/dataset.yaml",
        validation_report=rules.validate_raw_data.output.report_json,
        catalog=rules.make_tables.output.catalog,
        code=CODE_FILES,
        row_accounting=rules.clean_raw_data.output.row_accounting,
        audit_log=rules.clean_raw_data.output.audit_log,
        queries=rules.clean_raw_data.output.queries,
        descriptives=rules.efficacy_analysis.output.descriptives,
        paired_tests=rules.efficacy_analysis.output.paired_tests,
        ae_summary=rules.safety_analysis.output.ae_summary,
        lab_descriptives=rules.safety_analysis.output.lab_descriptives,
        hys_law=rules.safety_analysis.output.hys_law,
        safety_conclusion=rules.safety_analysis.output.safety_conclusion,
        claims=rules.check_claims.output.claims,
        claims_summary=rules.check_claims.output.summary,
    output:
        provenance=f"{RESULTS}/provenance/execute_notebooks.json",
        study_summary_parameters=f"{RESULTS}/notebooks/study_summary.parameters.yaml",
        study_summary_executed=temp(f"{RESULTS}/notebooks/executed/study_summary.ipynb"),
        data_quality_parameters=f"{RESULTS}/notebooks/data_quality.parameters.yaml",
        data_quality_executed=temp(f"{RESULTS}/notebooks/executed/data_quality.ipynb"),
        efficacy_parameters=f"{RESULTS}/notebooks/efficacy.parameters.yaml",
        efficacy_executed=temp(f"{RESULTS}/notebooks/executed/efficacy.ipynb"),
        safety_parameters=f"{RESULTS}/notebooks/safety.parameters.yaml",
        safety_executed=temp(f"{RESULTS}/notebooks/executed/safety.ipynb"),
    log:
        f"{RESULTS}/logs/execute_notebooks.log",
    conda:
        CONDA_ENV
    params:
        titles={
            "study_summary": "Study summary",
            "data_quality": "Data quality: validation and cleaning",
            "efficacy": "Efficacy: symptom VAS over eight weeks",
            "safety": "Safety: laboratory tests and adverse events",
        },
        figures=[str(path) for path in NOTEBOOK_FIGURES],
        study=config["study"],
        treatment=config["treatment"],
        reporting=config["reporting"],
        severe_threshold=config["groups"]["severe_threshold"],
        links=[
            ["Study summary", "study_summary.html"],
            ["Data quality", "data_quality.html"],
            ["Efficacy", "efficacy.html"],
            ["Safety", "safety.html"],
            ["Index of every result (figures, tables, notebooks)", "../index.html"],
        ],
    script:
        "../scripts/render_notebook.py"


rule export_notebooks:
    input:
        study_summary_executed=rules.execute_notebooks.output.study_summary_executed,
        data_quality_executed=rules.execute_notebooks.output.data_quality_executed,
        efficacy_executed=rules.execute_notebooks.output.efficacy_executed,
        safety_executed=rules.execute_notebooks.output.safety_executed,
        figures=NOTEBOOK_FIGURES,
    output:
        provenance=f"{RESULTS}/provenance/export_notebooks.json",
        study_summary_ipynb=f"{RESULTS}/notebooks/study_summary.ipynb",
        study_summary_html=report(
            f"{RESULTS}/notebooks/study_summary.html",
            caption="../report/notebook_study_summary.rst",
            category="Notebooks",
        ),
        data_quality_ipynb=f"{RESULTS}/notebooks/data_quality.ipynb",
        data_quality_html=report(
            f"{RESULTS}/notebooks/data_quality.html",
            caption="../report/notebook_data_quality.rst",
            category="Notebooks",
        ),
        efficacy_ipynb=f"{RESULTS}/notebooks/efficacy.ipynb",
        efficacy_html=report(
            f"{RESULTS}/notebooks/efficacy.html",
            caption="../report/notebook_efficacy.rst",
            category="Notebooks",
        ),
        safety_ipynb=f"{RESULTS}/notebooks/safety.ipynb",
        safety_html=report(
            f"{RESULTS}/notebooks/safety.html",
            caption="../report/notebook_safety.rst",
            category="Notebooks",
        ),
    log:
        f"{RESULTS}/logs/export_notebooks.log",
    conda:
        CONDA_ENV
    params:
        titles={
            "study_summary": "Study summary",
            "data_quality": "Data quality: validation and cleaning",
            "efficacy": "Efficacy: symptom VAS over eight weeks",
            "safety": "Safety: laboratory tests and adverse events",
        },
    script:
        "../scripts/render_notebook.py"
