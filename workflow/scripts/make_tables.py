"""Write every display table (CSV, self-contained HTML, LaTeX) and their catalog in one process.

The tables are those of the registry (params.registry, workflow/report/registry.yaml); every other input but the
vocabulary files and dataset.yaml is an analysis artifact a table formats (k2trial.report.tables.BUILDERS).
"""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
from k2trial.core import schema
from k2trial.core.io import read_yaml, write_csv, write_json, write_text
from k2trial.report import render, tables
from k2trial.runtime.step import run_step, vocabulary

#: Inputs that are not artifacts a table formats.
NOT_ARTIFACTS = ("codebook", "lab_units", "dataset")


def main(smk):
    settings = tables.TableSettings.from_config(
        smk.params.reporting,
        smk.params.efficacy,
        smk.params.safety,
        smk.params.severe_threshold,
        vocabulary(smk),
        smk.params.registry,
        groups_note=smk.params.groups_note,
    )
    data = {
        key: schema.read_artifact(path, schema.artifact_name(path))
        for key, path in smk.input.items()
        if key not in NOT_ARTIFACTS
    }
    dataset = read_yaml(smk.input.dataset) or {}
    simulated = bool(dataset.get("simulated", False))
    subtitle = f"{smk.params.study_title}. Dataset: {dataset.get('name', '?')} version {dataset.get('version', '?')}."
    catalog = []
    for table in tables.build_all_tables(data, settings):
        write_csv(render.to_csv_frame(table), getattr(smk.output, f"{table.name}_csv"))
        html = render.to_html_document(table, simulated=simulated, subtitle=subtitle)
        write_text(html, getattr(smk.output, f"{table.name}_html"))
        write_text(render.to_latex(table, simulated=simulated), getattr(smk.output, f"{table.name}_tex"))
        catalog.append(render.catalog_entry(table, simulated=simulated))
    write_json({"simulated": simulated, "tables": catalog}, smk.output.catalog)


run_step(snakemake, main)
