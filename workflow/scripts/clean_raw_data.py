"""Clean the raw data: canonical tables, audit log, data queries and row accounting (results/clean/).

First the gate: when validation failed, stop with the first errors and the report's path, before any
output is written, so nothing downstream runs.
"""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
import json
import logging
from pathlib import Path

from k2trial.core import schema
from k2trial.core.errors import InputDataError
from k2trial.core.io import write_csv
from k2trial.data import cleaning, raw_files, validation, validation_report
from k2trial.runtime.step import contract as study_contract
from k2trial.runtime.step import run_step

logger = logging.getLogger("k2trial.clean_raw_data")


def main(smk):
    report = json.loads(Path(smk.input.report_json).read_text(encoding="utf-8"))
    validation_report.require_passed(report, report_path=smk.input.report_md)
    contract = study_contract(smk)
    paths = {name: getattr(smk.input, key, None) for name, key in raw_files.input_keys(contract).items()}
    raw = raw_files.read_raw_dataset(paths, contract, categorical=True)
    if raw.data_version != report["data_version"]:
        raise InputDataError(
            [validation_report.stale_report_problem(smk.input.report_json)], report_path=smk.input.report_md
        )
    result = validation.validate_dataset(raw, contract, smk.params.visit_windows)
    if result.status != "passed":
        raise InputDataError(result.errors(), report_path=smk.input.report_md)
    clean = cleaning.clean_dataset(result, contract, text_as_categorical=True)
    for name, table in clean.tables.items():
        write_csv(table, getattr(smk.output, raw_files.input_keys(contract)[name]))
    schema.write_artifact(clean.audit_log, smk.output.audit_log, "clean/audit_log")
    schema.write_artifact(cleaning.audit_summary(clean.audit_log), smk.output.audit_summary, "clean/audit_summary")
    schema.write_artifact(clean.queries, smk.output.queries, "clean/queries")
    schema.write_artifact(clean.row_accounting, smk.output.row_accounting, "clean/row_accounting")
    logger.info(
        "clean tables written; %d audit row(s), %d query(ies)\n%s",
        len(clean.audit_log),
        len(clean.queries),
        clean.row_accounting.to_string(index=False),
    )


run_step(snakemake, main)
