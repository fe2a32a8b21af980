"""Write results/index.html: every notebook, figure and table of the registry and every file of the ADaM delivery
(titles from its define.json) with its producing rule and sha256."""

import k2trial.runtime.start_job  # first: the run's preloaded job server runs this job if it can

# isort: split
import json
import os
from pathlib import Path

import yaml

import k2trial
from k2trial.core.io import sha256_file, write_text
from k2trial.report import page, site
from k2trial.report.index_hashes import RecordedHashes
from k2trial.report.notebooks import version_info_from_hashes
from k2trial.runtime.step import run_step

#: Sections of the index and the registry lists they show.
SECTIONS = {"Notebooks": "notebooks", "Figures": "figures", "Tables": "tables"}


def define_file(paths):
    """The delivery metadata among the ADaM outputs."""
    return next(p for p in paths if os.path.basename(p) == "define.json")


def main(smk):
    index_dir = os.path.dirname(smk.output.index) or "."
    registry = smk.params.registry
    titles = {section: {e["name"]: e["title"] for e in registry[key]} for section, key in SECTIONS.items()}
    # the ADaM files' sha256 as write_adam recorded them in define.json, where they are unchanged since
    recorded = RecordedHashes()
    if smk.input.adam:  # a study without an ADaM spec has no ADaM delivery (config adam_spec)
        define = define_file(smk.input.adam)
        titles["ADaM"] = site.adam_titles(json.loads(Path(define).read_text(encoding="utf-8")))
        recorded.add_define(define)
    artifacts = []
    for rule, outputs in sorted(smk.params.producers.items()):
        for path in outputs:
            section = site.section_of(path)
            if section is None:
                continue  # catalog.json and other helpers are not reviewer artifacts
            item = site.item_name(path)
            known = recorded.recorded(path)  # None: hashed here
            size, sha256 = known if known is not None else (os.path.getsize(path), sha256_file(path))
            artifacts.append(
                site.Artifact(
                    section=section,
                    item=item,
                    title=titles[section].get(item, item),
                    path=Path(os.path.relpath(path, index_dir)).as_posix(),
                    rule=rule,
                    sha256=sha256,
                    size=size,
                )
            )
    with open(smk.input.dataset, encoding="utf-8") as handle:
        dataset = yaml.safe_load(handle) or {}
    with open(smk.input.validation_report, encoding="utf-8") as handle:
        data_version = json.load(handle).get("data_version")
    versions = version_info_from_hashes(smk.params.code, smk.config, k2trial.__version__)
    study = smk.params.study
    header = page.header_html(
        study["title"],
        study["reference"],
        study["registry"],
        str(dataset.get("name", "unnamed dataset")),
        str(dataset.get("version", "?")),
        bool(dataset.get("simulated", False)),
        data_version,
        versions["code_version"],
        versions["analysis_version"],
    )
    order = {section: tuple(titles[section]) for section in titles}
    skipped = [smk.params.efficacy_skipped] if smk.params.efficacy_skipped else []
    html = site.index_html(artifacts, header, f"{study['short_title']}: results", order, skipped)
    write_text(html, smk.output.index)


run_step(snakemake, main)
