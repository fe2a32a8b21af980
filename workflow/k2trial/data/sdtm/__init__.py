"""SDTM in and out (issues 15 and 16): read SDTM domains, check them, map them to the project's raw tables, and
write raw tables back as SDTM; XPT v5 and CDISC Dataset-JSON v1.1 files.

Pure functions; paths appear only in the file functions (`read_sdtm`, `read_domain`, `write_sdtm`, `write_xpt`,
`write_dataset_json`, `load_mapping`). The mapping is data: config/sdtm_mapping.yaml (which domain and variable
feeds which raw table and column, value maps, unit factors, partial-date rules, writer metadata), plus a study-level
mapping dict passed by the caller (k2trial.data.sdtm.study: its keys are listed there and in data/raw/SDTM.md;
`CDISC_PILOT_STUDY` and `K2_STUDY` are the worked examples).

    domains = read_sdtm("../shared/cdisc_pilot/sdtm")            # {"AE": frame, "DM": frame, ...}
    mapping = load_mapping("config/sdtm_mapping.yaml")
    problems = check_domains(domains, mapping, CDISC_PILOT_STUDY)  # [Problem(file="LB", column=..., ...)]
    tables = sdtm_to_raw(domains, mapping, CDISC_PILOT_STUDY)     # {"subjects.csv": frame, "labs.csv": ...}
    sdtm = raw_to_sdtm(tables, mapping, K2_STUDY, lab_units)       # the inverse, for our own data
    write_sdtm(sdtm, out_dir, fmt="xpt", created=datetime(2013, 10, 1))

Decisions (see data/raw/SDTM.md): subjects get arm (ARMCD), actual_arm (ACTARMCD), stratum; status from the DS
disposition event (COMPLETED -> completed, SCREEN FAILURE -> not treated, else withdrawn with DSTERM as the reason
and DSDECOD as withdrawal_reason_code); lab results in standard (LBSTRESN/LBSTRESU, default) or original units,
every test kept; visits kept as SDTM VISIT/VISITNUM/--DY (analysis visits come from windows downstream); AE
partial dates imputed by admiral's ADAE-template rules with the SDTM text and the imputation level kept; other
partial dates leave the date empty with a warning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from k2trial.data.sdtm.checks import RULES, check_domains, errors
from k2trial.data.sdtm.common import impute_dtc, natural_key, parse_dtc
from k2trial.data.sdtm.files import (
    dataset_json_bytes,
    dataset_json_document,
    read_dataset_json,
    read_domain,
    read_sdtm,
    read_xpt,
    set_xpt_timestamps,
    write_dataset_json,
    write_sdtm,
    write_xpt,
    xpt_bytes,
)
from k2trial.data.sdtm.from_raw import raw_tables_as_text, raw_to_sdtm
from k2trial.data.sdtm.study import (
    CDISC_PILOT_STUDY,
    K2_STUDY,
    STUDY_KEYS,
    declare_lab_panel,
    declare_lab_standards,
    normalise_study,
    windows_between,
)
from k2trial.data.sdtm.to_raw import RAW_FILES, sdtm_to_raw, table_columns

__all__ = [
    "CDISC_PILOT_STUDY",
    "K2_STUDY",
    "RAW_FILES",
    "RULES",
    "STUDY_KEYS",
    "check_domains",
    "declare_lab_panel",
    "declare_lab_standards",
    "dataset_json_bytes",
    "dataset_json_document",
    "errors",
    "impute_dtc",
    "load_mapping",
    "natural_key",
    "normalise_study",
    "parse_dtc",
    "raw_tables_as_text",
    "raw_to_sdtm",
    "read_dataset_json",
    "read_domain",
    "read_sdtm",
    "read_xpt",
    "sdtm_to_raw",
    "set_xpt_timestamps",
    "table_columns",
    "write_dataset_json",
    "write_sdtm",
    "windows_between",
    "write_xpt",
    "xpt_bytes",
]


def load_mapping(path: str | Path) -> dict[str, Any]:
    """config/sdtm_mapping.yaml as a dict."""
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)
