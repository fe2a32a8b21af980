"""Validate the raw files against the contract; write results/validation/report.json and report.md.

The job succeeds whenever it could write the report, also when the data have errors: the report must
survive (Snakemake deletes the outputs of failed jobs). The gate is the first step of clean_raw_data.
For an SDTM input (rule import_sdtm), the findings of the import (input `sdtm_import`) are part of the report
(k2trial.data.sdtm_io.add_to_report).
"""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
import json
import logging
from pathlib import Path

from k2trial.core.io import write_json, write_text
from k2trial.data import raw_files, sdtm_io, validation, validation_report
from k2trial.runtime.step import contract as study_contract
from k2trial.runtime.step import run_step

logger = logging.getLogger("k2trial.validate_raw_data")


def main(smk):
    contract = study_contract(smk)
    paths = {name: getattr(smk.input, key, None) for name, key in raw_files.input_keys(contract).items()}
    raw = raw_files.read_raw_dataset(paths, contract, categorical=True)
    result = validation.validate_dataset(raw, contract, smk.params.visit_windows)
    report = validation_report.build_report(result, limit_per_rule=smk.params.validation["report_limit_per_rule"])
    markdown_tail = ""
    if getattr(smk.input, "sdtm_import", None):
        imported = json.loads(Path(smk.input.sdtm_import).read_text(encoding="utf-8"))
        report = sdtm_io.add_to_report(report, imported)
        markdown_tail = sdtm_io.sdtm_markdown(report)
    write_json(report, smk.output.report_json)
    write_text(validation_report.report_markdown(report, contract) + markdown_tail, smk.output.report_md)
    counts = report["counts"]
    logger.info(
        "validation %s: %d error(s), %d fixable, %d warning(s); report %s",
        report["status"],
        counts["error"],
        counts["fixable"],
        counts["warning"],
        smk.output.report_md,
    )


run_step(snakemake, main)
