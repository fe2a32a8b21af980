# results/index.html: every notebook, figure, table and ADaM dataset with the rule that produced it and its sha256.


rule build_index:
    input:
        dataset=DATASET_FILE,
        validation_report=rules.validate_raw_data.output.report_json,
        figures=[p for r in FIGURE_RULES for p in artifact_outputs(r)],
        tables=artifact_outputs(rules.make_tables),
        notebooks=artifact_outputs(rules.export_notebooks),
        adam=artifact_outputs(rules.write_adam) if ADAM_SPEC else [],
        parameters=[p for p in rules.execute_notebooks.output if p.endswith(".yaml")],
    output:
        provenance=f"{RESULTS}/provenance/build_index.json",
        index=report(
            f"{RESULTS}/index.html",
            caption=caption_file("Index", {"name": "index", **REGISTRY["index"]}),
            category="Index",
        ),
    log:
        f"{RESULTS}/logs/build_index.log",
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        code=CODE_HASHES,
        study=STUDY,
        registry=REGISTRY,
        # why a safety-only study has no efficacy results (None for a study with a diary)
        efficacy_skipped=EFFICACY_SKIPPED,
        producers={
            **{r.rule.name: artifact_outputs(r) for r in FIGURE_RULES},
            "make_tables": artifact_outputs(rules.make_tables),
            "execute_notebooks": [
                str(p) for p in rules.execute_notebooks.output if p.endswith(".yaml")
            ],
            "export_notebooks": artifact_outputs(rules.export_notebooks),
            **(
                {"write_adam": artifact_outputs(rules.write_adam)} if ADAM_SPEC else {}
            ),
        },
    script:
        "../scripts/build_index.py"
