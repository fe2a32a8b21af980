"""Execute one notebook template with papermill, normalise it and export offline HTML.

The parameters go through a YAML file (an output of the rule, so what the notebook was given is on disk).
"""

import json
import os
from pathlib import Path

import yaml

import k2trial
from k2trial import notebooks
from k2trial.step import run_step
from k2trial.tabular import _atomic_write_bytes as write_bytes
from k2trial.tabular import write_text

#: Input names that are not analysis tables handed to the notebook.
NOT_DATA = {"template", "dataset", "validation_report", "catalog", "code", "figures"}


def relative(path):
    return Path(path).as_posix()


def main(smk):
    with open(smk.input.dataset, encoding="utf-8") as handle:
        dataset = yaml.safe_load(handle) or {}
    with open(smk.input.validation_report, encoding="utf-8") as handle:
        data_version = json.load(handle).get("data_version")
    code_files = {relative(p): Path(p).read_bytes() for p in smk.input.code}
    versions = notebooks.version_info(code_files, smk.config, k2trial.__version__)
    inputs = {key: relative(value) for key, value in smk.input.items() if key not in NOT_DATA}
    inputs["validation_report"] = relative(smk.input.validation_report)
    parameters = {
        "title": smk.params.title,
        "study": dict(smk.params.study),
        "treatment": dict(smk.params.treatment),
        "dataset": {k: dataset.get(k) for k in ("name", "version", "simulated", "description")},
        "data_version": data_version,
        "code_version": versions["code_version"],
        "analysis_version": versions["analysis_version"],
        "decimals": dict(smk.params.reporting["decimals"]),
        "severe_threshold": float(smk.params.severe_threshold),
        "inputs": inputs,
        "figures": {Path(p).stem: relative(p) for p in smk.input.figures if p.endswith(".png")},
        "tables_catalog": relative(smk.input.catalog),
        "links": dict(smk.params.links),
    }
    write_text(yaml.safe_dump(parameters, sort_keys=True, allow_unicode=True), smk.output.parameters)
    with open(smk.output.parameters, encoding="utf-8") as handle:
        parameters = yaml.safe_load(handle)
    executed = notebooks.execute_notebook(smk.input.template, parameters, cwd=os.getcwd())
    normalised = notebooks.normalise_notebook(executed)
    write_bytes(Path(smk.output.ipynb), notebooks.notebook_bytes(normalised))
    write_text(notebooks.notebook_html(normalised, smk.params.title), smk.output.html)


run_step(snakemake, main)
