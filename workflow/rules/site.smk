# results/index.html: every notebook, figure and table with the rule that produced it and its sha256.


rule build_index:
    input:
        dataset=f"{RAW_DIR}/dataset.yaml",
        validation_report=rules.validate_raw_data.output.report_json,
        catalog=rules.make_tables.output.catalog,
        code=CODE_FILES,
        figures=rules.make_figures.output,
        tables=rules.make_tables.output,
        study_summary=rules.render_study_summary_notebook.output,
        data_quality=rules.render_data_quality_notebook.output,
        efficacy=rules.render_efficacy_notebook.output,
        safety=rules.render_safety_notebook.output,
    output:
        index=report(
            f"{RESULTS}/index.html",
            caption="../report/index.rst",
            category="Index",
        ),
    log:
        f"{RESULTS}/logs/build_index.log",
    conda:
        CONDA_ENV
    params:
        study=config["study"],
        producers={
            "make_figures": [str(path) for path in rules.make_figures.output],
            "make_tables": [str(path) for path in rules.make_tables.output],
            "render_study_summary_notebook": list(
                rules.render_study_summary_notebook.output
            ),
            "render_data_quality_notebook": list(
                rules.render_data_quality_notebook.output
            ),
            "render_efficacy_notebook": [str(path) for path in rules.render_efficacy_notebook.output],
            "render_safety_notebook": [str(path) for path in rules.render_safety_notebook.output],
        },
    script:
        "../scripts/build_index.py"
