"""Write every display table (CSV, self-contained HTML, LaTeX) and their catalog in one process."""

import pandas as pd
import yaml

from k2trial.core.io import write_csv, write_json, write_text
from k2trial.report import tables
from k2trial.runtime.step import run_step

#: Analysis inputs read as tables (every one but subjects, vas and the YAML files).
TABLE_INPUTS = (
    "assignment",
    "descriptives",
    "paired_tests",
    "friedman",
    "responders",
    "group_comparison",
    "models",
    "lab_descriptives",
    "lab_shifts",
    "ctcae_worst",
    "lab_paired_tests",
    "hys_law",
    "ae_summary",
    "ae_by_term",
    "ae_listing",
    "safety_conclusion",
)


def read(path, **kwargs):
    # "NA" is the sodium test code: only empty cells are missing.
    return pd.read_csv(path, keep_default_na=False, na_values=[""], **kwargs)


def main(smk):
    reporting = smk.params.reporting
    with open(smk.input.lab_units, encoding="utf-8") as handle:
        tests = tables.lab_tests_from_units(yaml.safe_load(handle))
    with open(smk.input.dataset, encoding="utf-8") as handle:
        dataset = yaml.safe_load(handle) or {}
    settings = tables.TableSettings(
        decimals=tables.Decimals.from_config(reporting["decimals"]),
        severe_threshold=float(smk.params.severe_threshold),
        tests=tests,
    )
    data = {name: read(smk.input[name]) for name in TABLE_INPUTS}
    data["subjects"] = read(smk.input.subjects)
    data["vas"] = read(smk.input.vas, usecols=["subject_id", "param", "visit", "aval"], dtype={"param": "category"})
    simulated = bool(dataset.get("simulated", False))
    subtitle = f"{smk.params.study_title}. Dataset: {dataset.get('name', '?')} version {dataset.get('version', '?')}."
    catalog = []
    for table in tables.build_all_tables(data, settings):
        write_csv(tables.to_csv_frame(table), smk.output[f"{table.name}_csv"])
        write_text(
            tables.to_html_document(table, simulated=simulated, subtitle=subtitle), smk.output[f"{table.name}_html"]
        )
        write_text(tables.to_latex(table, simulated=simulated), smk.output[f"{table.name}_tex"])
        catalog.append(tables.catalog_entry(table, simulated=simulated))
    write_json({"simulated": simulated, "tables": catalog}, smk.output.catalog)


run_step(snakemake, main)
