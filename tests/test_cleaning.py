"""Cleaning: canonical clean tables, audit log, queries and row accounting on the minimal fixture.

Fixture rows (see tests/test_validation.py): diary 137 is an exact copy of row 8; diary 111 holds an
impossible VAS (35); diary 35 a decimal comma ("3,0"); labs 9 the result "<0.2", labs 142 "7,5".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import MINIMAL_WINDOWS

from k2trial.core import schema
from k2trial.core.errors import InputDataError
from k2trial.core.io import csv_bytes, write_csv
from k2trial.core.values import subject_numbers
from k2trial.data import cleaning, raw_files, validation
from k2trial.data import contract as ct

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "minimal"
WINDOWS = MINIMAL_WINDOWS


@pytest.fixture(scope="module")
def contract() -> ct.Contract:
    return ct.read_contract(ROOT / "data/raw/codebook.yaml", ROOT / "config/lab_units.yaml")


def _raw(contract: ct.Contract) -> raw_files.RawDataset:
    return raw_files.read_raw_dataset({n: FIXTURE / n for n in raw_files.input_keys(contract)}, contract)


def _clean(raw: raw_files.RawDataset, contract: ct.Contract) -> cleaning.CleanDataset:
    return cleaning.clean_dataset(validation.validate_dataset(raw, contract, WINDOWS), contract)


@pytest.fixture(scope="module")
def clean(contract) -> cleaning.CleanDataset:
    return _clean(_raw(contract), contract)


def test_row_accounting_holds_for_every_file(clean):
    accounting = clean.row_accounting
    assert accounting.to_dict("records") == [
        {"file": "subjects.csv", "rows_in": 3, "rows_out": 3, "rows_removed": 0, "removal_reasons": ""},
        {
            "file": "symptom_diary.csv",
            "rows_in": 136,
            "rows_out": 135,
            "rows_removed": 1,
            "removal_reasons": "duplicate_row: 1",
        },
        {"file": "labs.csv", "rows_in": 162, "rows_out": 162, "rows_removed": 0, "removal_reasons": ""},
        {"file": "adverse_events.csv", "rows_in": 1, "rows_out": 1, "rows_removed": 0, "removal_reasons": ""},
        {"file": "dosing.csv", "rows_in": 6, "rows_out": 6, "rows_removed": 0, "removal_reasons": ""},
    ]
    assert (accounting["rows_in"] == accounting["rows_out"] + accounting["rows_removed"]).all()
    for row in accounting.itertuples():
        assert len(clean.tables[row.file]) == row.rows_out


def test_clean_tables_have_raw_row_then_contract_columns(clean, contract):
    for name, spec in contract.tables.items():
        assert list(clean.tables[name].columns) == ["raw_row", *spec.column_names]


def test_subjects_are_canonical(clean):
    subject = clean.tables["subjects.csv"].set_index("subject_id").loc["K2-002"]
    assert subject["raw_row"] == 3
    assert (subject["site"], subject["sex"], subject["etiology"]) == ("SITE-B", "M", "diabetes")
    assert (subject["metformin"], subject["anticoagulant"]) == ("yes", "no")
    assert (subject["consent_date"], subject["first_dose_date"], subject["last_dose_date"]) == (
        "2013-01-05",
        "2013-01-10",
        "2013-03-06",
    )
    assert subject["age_years"] == 58.0
    assert clean.tables["subjects.csv"]["subject_id"].tolist() == ["K2-001", "K2-002", "K2-003"]


def test_diary_fixes_removes_the_duplicate_and_sorts(clean, contract):
    diary = clean.tables["symptom_diary.csv"]
    assert 137 not in diary["raw_row"].tolist() and diary["raw_row"].tolist().count(8) == 1
    by_row = diary.set_index("raw_row")
    assert np.isnan(by_row.loc[111, "vas_cm"])  # "35": impossible, set missing
    assert by_row.loc[35, "vas_cm"] == 3.0  # "3,0"
    assert by_row.loc[47, ["subject_id", "visit", "assessment_date", "symptom"]].tolist() == [
        "K2-002",
        "Baseline",
        "2013-01-10",
        "tingling",
    ]
    assert by_row.loc[7, "comment"] == "slept badly"
    weeks = ct.visit_weeks(diary["visit"], contract)
    symptoms = ct.category_order(diary["symptom"], contract.symptoms)
    numbers = subject_numbers(diary["subject_id"])
    keys = list(zip(numbers, weeks, symptoms, strict=True))
    assert keys == sorted(keys) and len(set(keys)) == len(keys) == 135


def test_labs_keep_result_text_and_canonical_units(clean):
    labs = clean.tables["labs.csv"].set_index("raw_row")
    assert labs.loc[9, ["test_code", "result", "unit"]].tolist() == ["TBIL", "<0.2", "mg/dL"]
    assert labs.loc[142, ["test_code", "result"]].tolist() == ["HBA1C", "7.5"]
    assert labs.loc[20, ["test_code", "unit"]].tolist() == ["HGB", "g/dL"]  # "Hb", "g/dl"
    assert labs.loc[65, ["test_code", "unit", "sample_date"]].tolist() == ["CREAT", "umol/L", "2013-01-08"]
    assert labs.loc[2, ["ref_low", "ref_high"]].tolist() == [12.0, 15.5]
    assert labs.loc[114, "test_code"] == "ALT"  # "SGPT"


def test_clean_csv_bytes_are_exact(clean):
    dosing = clean.tables["dosing.csv"].drop(columns="raw_row")
    assert csv_bytes(dosing).decode() == (
        "subject_id,visit,capsules_dispensed,capsules_returned\n"
        "K2-001,Week 4,56,2\nK2-001,Week 8,56,4\nK2-002,Week 4,56,0\nK2-002,Week 8,56,1\n"
        "K2-003,Week 4,60,3\nK2-003,Week 8,60,6\n"
    )
    adverse = clean.tables["adverse_events.csv"].drop(columns="raw_row")
    assert (
        csv_bytes(adverse).decode().splitlines()[1]
        == "K2-003,Headache,2013-02-02,2013-02-03,mild,no,unlikely,none,recovered"
    )


def test_audit_log_has_one_row_per_change_and_per_removed_row(clean, contract):
    audit = clean.audit_log
    assert list(audit.columns) == schema.columns("clean/audit_log")
    records = audit.astype(object).where(audit.notna(), None).values.tolist()
    assert [
        "symptom_diary.csv",
        137,
        "K2-001",
        "*",
        "K2-001,Week 1,2013-01-14,numbness,6.7,",
        "",
        "duplicate_row",
    ] in records
    assert ["symptom_diary.csv", 111, "K2-003", "vas_cm", "35", "", "value_out_of_range"] in records
    assert ["symptom_diary.csv", 35, "K2-001", "vas_cm", "3,0", "3", "decimal_comma"] in records
    assert ["subjects.csv", 3, "K2-002", "consent_date", "05/01/2013", "2013-01-05", "day_first_date"] in records
    assert ["labs.csv", 65, "K2-002", "unit", "µmol/L", "umol/L", "unit_spelling"] in records
    result = validation.validate_dataset(_raw(contract), contract, WINDOWS)
    assert len(audit) == int((result.problems["severity"] == "fixable").sum())


def test_problems_on_a_removed_duplicate_are_not_logged_twice(contract):
    raw = _raw(contract)
    frame = raw.tables["dosing.csv"]
    copy = frame[frame["_row"] == 2].assign(_row=8, subject_id="K2_001")
    raw.tables["dosing.csv"] = pd.concat([frame, copy], ignore_index=True)
    audit = _clean(raw, contract).audit_log
    on_copy = audit[(audit["file"] == "dosing.csv") & (audit["raw_row"] == 8)]
    assert on_copy[["column", "rule"]].values.tolist() == [["*", "duplicate_row"]]


def test_queries_list_impossible_values_and_warnings(contract):
    raw = _raw(contract)
    subjects = raw.tables["subjects.csv"]
    subjects.loc[subjects["_row"] == 4, "anticoagulant"] = "yes"
    queries = _clean(raw, contract).queries
    assert list(queries.columns) == schema.columns("clean/queries")
    assert queries[["query_id", "file", "raw_row", "subject_id", "column", "value", "rule"]].values.tolist() == [
        ["Q0001", "subjects.csv", 4, "K2-003", "anticoagulant", "yes", "anticoagulant_use"],
        ["Q0002", "symptom_diary.csv", 111, "K2-003", "vas_cm", "35", "value_out_of_range"],
    ]
    assert queries["question"].iloc[1].endswith("(outside the plausible range 0 to 10)")


def test_cleaning_refuses_data_with_errors(contract):
    raw = _raw(contract)
    raw.tables["labs.csv"].loc[0, "unit"] = "furlongs"
    result = validation.validate_dataset(raw, contract, WINDOWS)
    with pytest.raises(InputDataError, match=r"labs.csv, row 2, column 'unit'"):
        cleaning.clean_dataset(result, contract)


def test_clean_tables_read_back_with_their_types(tmp_path, clean, contract):
    for name, spec in contract.tables.items():
        path = tmp_path / name
        write_csv(clean.tables[name], path)
        back = cleaning.read_clean_table(path, spec)
        pd.testing.assert_frame_equal(
            back.astype(object).where(back.notna(), None),
            clean.tables[name].astype(object).where(clean.tables[name].notna(), None),
            check_dtype=False,
        )
    labs = cleaning.read_clean_table(tmp_path / "labs.csv", contract.tables["labs.csv"])
    assert "NA" in set(labs["test_code"])  # the sodium code survives reading
