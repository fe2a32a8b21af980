"""Execute the notebook templates with papermill, normalise them and export offline HTML.

Each notebook's parameters go through a YAML file (an output, so what a notebook was given is on disk).
The kernels run side by side in threads: most of a kernel's start-up and of each cell's round trip is waiting.
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

import k2trial
from k2trial import notebooks
from k2trial.step import run_step
from k2trial.tabular import _atomic_write_bytes as write_bytes
from k2trial.tabular import write_text

#: Inputs that are not analysis tables handed to the notebooks.
NOT_DATA = {"dataset", "catalog", "code", "figures"}


def posix(path):
    return Path(path).as_posix()


def main(smk):
    names = list(smk.params.titles)
    with open(smk.input.dataset, encoding="utf-8") as handle:
        dataset = yaml.safe_load(handle) or {}
    with open(smk.input.validation_report, encoding="utf-8") as handle:
        data_version = json.load(handle).get("data_version")
    code_files = {posix(p): Path(p).read_bytes() for p in smk.input.code}
    versions = notebooks.version_info(code_files, smk.config, k2trial.__version__)
    inputs = {
        key: posix(value) for key, value in smk.input.items() if key not in NOT_DATA and not key.endswith("_template")
    }
    common = {
        "study": dict(smk.params.study),
        "treatment": dict(smk.params.treatment),
        "dataset": {k: dataset.get(k) for k in ("name", "version", "simulated", "description")},
        "data_version": data_version,
        "code_version": versions["code_version"],
        "analysis_version": versions["analysis_version"],
        "decimals": dict(smk.params.reporting["decimals"]),
        "severe_threshold": float(smk.params.severe_threshold),
        "inputs": inputs,
        "figures": {Path(p).stem: posix(p) for p in smk.input.figures},
        "tables_catalog": posix(smk.input.catalog),
        "links": dict(smk.params.links),
    }
    parameters = {}
    for name in names:
        path = smk.output[f"{name}_parameters"]
        write_text(yaml.safe_dump({**common, "title": smk.params.titles[name]}, sort_keys=True), path)
        with open(path, encoding="utf-8") as handle:
            parameters[name] = yaml.safe_load(handle)

    def execute(name):
        return notebooks.execute_notebook(smk.input[f"{name}_template"], parameters[name], cwd=os.getcwd())

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        executed = dict(zip(names, pool.map(execute, names), strict=True))
    for name in names:
        normalised = notebooks.normalise_notebook(executed[name])
        write_bytes(Path(smk.output[f"{name}_ipynb"]), notebooks.notebook_bytes(normalised))
        write_text(notebooks.notebook_html(normalised, smk.params.titles[name]), smk.output[f"{name}_html"])


run_step(snakemake, main)
