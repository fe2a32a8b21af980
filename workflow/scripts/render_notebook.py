"""Notebooks in two steps, so that executing and rendering them overlaps with drawing the figures.

rule execute_notebooks: write each notebook's parameters to YAML, run the templates with papermill in this process
(k2trial.report.notebooks.execute_notebooks: no Jupyter kernel), normalise, and keep the executed notebooks and their
offline HTML pages (nbconvert), with figure placeholders at this point. papermill injects one parameter, `view`
(k2trial.report.notebook_view): the parameters file, the vocabulary's sources and the further artifacts the view
reads (inputs named view_<artifact>).
rule export_notebooks: embed the PNG figures as data URIs in the executed notebooks and in their pages (a text
substitution, no nbconvert: the page is the one rendering the embedded notebook gives) and write the final
.ipynb and .html.
"""

import k2trial.runtime.start_job  # first: the run's preloaded job server runs this job if it can

# isort: split
import json
import os
from pathlib import Path

import yaml

import k2trial
from k2trial.core.io import write_bytes, write_text
from k2trial.report import notebooks
from k2trial.runtime.step import run_step, start_in_child

#: What running the notebooks imports later (k2trial.report.notebooks, the templates' cells): imported ahead by the
#: run's job server (k2trial.runtime.job_server.PRELOAD).
PRELOAD = (
    "nbformat",
    "papermill",
    "nbconvert",
    "IPython.core.interactiveshell",
    "ipykernel.compiler",
    "k2trial.report.notebook_view",
)
#: Inputs of execute_notebooks that are not analysis artifacts listed in the parameters file.
NOT_DATA = {"dataset", "catalog", "codebook", "lab_units"}
#: Prefix of the inputs the view reads beyond those the parameters file lists.
VIEW_INPUT = "view_"


def posix(path):
    return Path(path).as_posix()


def execute(smk):
    names = list(smk.params.titles)
    with open(smk.input.dataset, encoding="utf-8") as handle:
        dataset = yaml.safe_load(handle) or {}
    with open(smk.input.validation_report, encoding="utf-8") as handle:
        data_version = json.load(handle).get("data_version")
    versions = notebooks.version_info_from_hashes(smk.params.code, smk.config, k2trial.__version__)
    listed = {
        key: posix(value)
        for key, value in smk.input.items()
        if key not in NOT_DATA and not key.endswith("_template") and not key.startswith(VIEW_INPUT)
    }
    common = {
        "study": dict(smk.params.study),
        "treatment": dict(smk.params.treatment),
        "dataset": {k: dataset.get(k) for k in ("name", "version", "simulated", "description")},
        "data_version": data_version,
        "code_version": versions["code_version"],
        "analysis_version": versions["analysis_version"],
        "decimals": dict(smk.params.reporting["decimals"]),
        "severe_threshold": smk.params.severe_threshold,
        "inputs": listed,
        "figures": {Path(p).stem: posix(p) for p in smk.params.figures},
        # each figure's registry title, in the study's words: the notebooks' figure captions
        "figure_titles": dict(smk.params.figure_titles),
        "tables_catalog": posix(smk.input.catalog),
        "links": [list(pair) for pair in smk.params.links],
        # the figures and tables of the registry this study's build does not make, and why (none: no key)
        **({"omitted": dict(smk.params.omitted)} if smk.params.omitted else {}),
    }
    view = {
        "vocabulary": {
            "codebook": posix(smk.input.codebook),
            "lab_units": posix(smk.input.lab_units),
            **{k: v for k, v in dict(smk.params.vocabulary).items()},
        },
        "inputs": {
            key.removeprefix(VIEW_INPUT): posix(value) for key, value in smk.input.items() if key.startswith(VIEW_INPUT)
        },
        "coagulation_test": str(smk.params.reporting["coagulation_test"]),
    }
    parameters = {}
    for name in names:
        path = getattr(smk.output, f"{name}_parameters")
        write_text(yaml.safe_dump({**common, "title": smk.params.titles[name]}, sort_keys=True), path)
        parameters[name] = {"view": {**view, "parameters_file": posix(path)}}
    templates = {
        name: notebooks.specialise_template(
            getattr(smk.input, f"{name}_template"),
            randomised=smk.params.randomised,
            words=smk.params.protocol_words,
            diary=smk.params.diary,
        )
        for name in names
    }

    def run(subset):
        executed = notebooks.execute_notebooks({n: templates[n] for n in subset}, parameters, cwd=os.getcwd())
        for name, notebook in executed.items():
            normalised = notebooks.normalise_notebook(notebook)
            write_bytes(notebooks.notebook_bytes(normalised), getattr(smk.output, f"{name}_executed"))
            html = notebooks.notebook_html(normalised, smk.params.titles[name])
            write_text(html, getattr(smk.output, f"{name}_page"))

    # The notebooks are independent (each runs in a new shell and only reads artifacts): with two threads, every
    # second one runs in a forked child, side by side with the others.
    here, there = (names[0::2], names[1::2]) if smk.threads > 1 else (names, [])
    done = start_in_child(lambda: run(there), "the notebooks " + ", ".join(there)) if there else (lambda: None)
    run(here)
    done()


def export(smk):
    import nbformat

    pngs = {posix(p): Path(p).read_bytes() for p in smk.input.figures}
    for name, title in smk.params.titles.items():
        executed = nbformat.read(getattr(smk.input, f"{name}_executed"), as_version=4)
        final = notebooks.embed_figures(executed, pngs)
        write_bytes(notebooks.notebook_bytes(final), getattr(smk.output, f"{name}_ipynb"))
        page = Path(getattr(smk.input, f"{name}_page")).read_text(encoding="utf-8")
        write_text(notebooks.embed_figures_in_page(page, pngs, title), getattr(smk.output, f"{name}_html"))


run_step(snakemake, {"execute_notebooks": execute, "export_notebooks": export}[snakemake.rule])
