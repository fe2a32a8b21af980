"""results/sdtm/ (rule sdtm, outside the default target): the clean raw tables written as SDTM, every domain as SAS
transport v5 (.xpt) and CDISC Dataset-JSON v1.1 (.json), with a dataset.yaml that reads the folder back
(`format: sdtm`) and SHA256SUMS (k2trial.data.sdtm_io.export_sdtm; data/raw/SDTM.md).

The tables are the clean ones: SDTM holds canonical values, so the CRF-export variants of the raw files are
repaired first (results/clean/audit_log.csv says how). The creation datetime of every file is the data's last
date, not the clock, so the same data give the same bytes.
"""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
import logging
from pathlib import Path

import pandas as pd
import yaml

from k2trial.core.io import read_yaml, write_text
from k2trial.data import sdtm
from k2trial.data.sdtm_io import CHECKSUMS, RAW_TABLES, checksums_text, export_description, export_sdtm
from k2trial.runtime.step import lab_units, run_step

logger = logging.getLogger("k2trial.export_sdtm")
#: The file types written; dataset.yaml reads the first back.
FILE_TYPES = ("xpt", "json")


def main(smk):
    mapping = sdtm.load_mapping(smk.input.mapping)
    tables = {
        name: pd.read_csv(getattr(smk.input, name.split(".")[0]), dtype=str, keep_default_na=False).drop(
            columns="raw_row"
        )
        for name in RAW_TABLES
    }
    domains, created = export_sdtm(tables, mapping, smk.params.study, lab_units(smk))
    folder = Path(smk.output.folder)
    folder.mkdir(parents=True, exist_ok=True)
    studyid = str(domains["DM"]["STUDYID"].iloc[0]) if len(domains["DM"]) else None
    for fmt in FILE_TYPES:
        sdtm.write_sdtm(domains, folder, fmt=fmt, created=created, mapping=mapping, study_oid=studyid)
    description = export_description(read_yaml(smk.input.dataset) or {}, FILE_TYPES[0], smk.params.study)
    write_text(yaml.safe_dump(description, sort_keys=False, allow_unicode=True, width=100), folder / "dataset.yaml")
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != CHECKSUMS}
    write_text(checksums_text(files), folder / CHECKSUMS)
    logger.info(
        "SDTM of %s: %s", created.date().isoformat(), ", ".join(f"{n} {len(f)}" for n, f in sorted(domains.items()))
    )


run_step(snakemake, main)
