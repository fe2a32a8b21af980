# results/index.html: every notebook, figure and table with the rule that produced it and its sha256.


rule build_index:
    input:
        dataset=f"{RAW_DIR}/dataset.yaml",
        validation_report=rules.validate_raw_data.output.report_json,
        catalog=rules.make_tables.output.catalog,
        code=CODE_FILES,
        figures=list(rules.make_figures.output),
        tables=list(rules.make_tables.output),
        notebooks=list(rules.export_notebooks.output),
        parameters=[p for p in rules.execute_notebooks.output if p.endswith(".yaml")],
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
            "make_figures": [str(p) for p in rules.make_figures.output],
            "make_tables": [str(p) for p in rules.make_tables.output],
            "execute_notebooks": [
                str(p) for p in rules.execute_notebooks.output if p.endswith(".yaml")
            ],
            "export_notebooks": [str(p) for p in rules.export_notebooks.output],
        },
    script:
        "../scripts/build_index.py"
