"""Validation of raw files: every rule on the minimal fixture (tests/fixtures/minimal) or a damaged copy.

The fixture is valid but messy: 3 subjects (K2-001 and K2-003 at SITE-A, K2-002 at SITE-B, which writes
day-first dates). Spreadsheet rows: subjects 2-4; diary 2-46 (K2-001), 47-91 (K2-002), 92-136 (K2-003),
137 = an exact copy of row 8; labs 2-55 (K2-001: Baseline 2-19, Week 4 20-37, Week 8 38-55), 56-109
(K2-002), 110-163 (K2-003). K2-001: consent 2013-01-02, first dose 2013-01-07, last dose 2013-03-03.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import MINIMAL_WINDOWS

from k2trial.core.errors import InputDataError
from k2trial.core.io import data_version
from k2trial.data import contract as ct
from k2trial.data import raw_files, validation, validation_report

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "minimal"
WINDOWS = MINIMAL_WINDOWS
DIARY, LABS, SUBJECTS, DOSING, AES = "symptom_diary.csv", "labs.csv", "subjects.csv", "dosing.csv", "adverse_events.csv"


@pytest.fixture(scope="module")
def contract() -> ct.Contract:
    return ct.read_contract(ROOT / "data/raw/codebook.yaml", ROOT / "config/lab_units.yaml")


def _paths(contract: ct.Contract, folder: Path) -> dict[str, Path]:
    return {name: folder / name for name in raw_files.input_keys(contract)}


@pytest.fixture
def raw(contract) -> raw_files.RawDataset:
    return raw_files.read_raw_dataset(_paths(contract, FIXTURE), contract)


def _validate(raw: raw_files.RawDataset, contract: ct.Contract) -> validation.ValidationResult:
    return validation.validate_dataset(raw, contract, WINDOWS)


def _set(raw: raw_files.RawDataset, file: str, row: int, column: str, value: str) -> None:
    frame = raw.tables[file]
    assert (frame["_row"] == row).sum() == 1
    frame.loc[frame["_row"] == row, column] = value


def _append_copy(raw: raw_files.RawDataset, file: str, row: int, **changes: str) -> int:
    """Append a copy of a record (with changes) as a new last row; return its spreadsheet row."""
    frame = raw.tables[file]
    new = frame[frame["_row"] == row].copy()
    for column, value in changes.items():
        new[column] = value
    new["_row"] = int(frame["_row"].max()) + 1
    raw.tables[file] = pd.concat([frame, new], ignore_index=True)
    return int(new["_row"].iloc[0])


def _drop(raw: raw_files.RawDataset, file: str, row: int) -> None:
    frame = raw.tables[file]
    raw.tables[file] = frame[frame["_row"] != row].reset_index(drop=True)


def _find(result: validation.ValidationResult, rule: str, file: str | None = None) -> pd.DataFrame:
    problems = result.problems
    hits = problems[problems["rule"] == rule]
    return hits if file is None else hits[hits["file"] == file]


def test_fixture_passes_and_each_mess_is_found_as_fixable(raw, contract):
    result = _validate(raw, contract)
    assert result.status == "passed"
    assert set(result.problems["severity"]) == {"fixable"}
    counts = result.problems.groupby(["file", "rule"]).size().to_dict()
    assert counts[(DIARY, "duplicate_row")] == 1
    assert counts[(DIARY, "day_first_date")] == 45  # every K2-002 diary date
    assert counts[(LABS, "test_code_alias")] == 4  # Hb once, SGPT three times
    assert counts[(SUBJECTS, "subject_id_spelling")] == 1
    duplicate = _find(result, "duplicate_row").iloc[0]
    assert (duplicate["row"], duplicate["column"], duplicate["detail"]) == (137, "*", "duplicate of row 8")
    impossible = _find(result, "value_out_of_range").iloc[0]
    assert (impossible["row"], impossible["column"], impossible["value"]) == (111, "vas_cm", "35")
    assert pd.isna(impossible["new"])
    comma = _find(result, "decimal_comma", LABS).iloc[0]
    assert (comma["row"], comma["value"], comma["new"]) == (142, "7,5", "7.5")


def test_problems_are_sorted_by_file_row_column_rule(raw, contract):
    _set(raw, SUBJECTS, 4, "anticoagulant", "yes")
    problems = _validate(raw, contract).problems
    order = validation.file_order(contract)
    ranks = problems["file"].map(order.index).tolist()
    assert ranks == sorted(ranks)
    diary_rows = problems.loc[problems["file"] == DIARY, "row"].tolist()
    assert diary_rows == sorted(diary_rows)
    subjects = problems[problems["file"] == SUBJECTS]
    assert subjects["row"].tolist() == [3, 3, 3, 3, 3, 3, 3, 3, 4, 4]
    assert subjects["column"].tolist()[:3] == ["subject_id", "sex", "etiology"]  # contract column order


def test_unreadable_files_are_each_one_error_and_the_others_are_still_checked(tmp_path, contract):
    folder = tmp_path / "raw"
    shutil.copytree(FIXTURE, folder)
    (folder / DIARY).unlink()
    (folder / LABS).write_text("")
    (folder / SUBJECTS).write_bytes((folder / SUBJECTS).read_bytes() + "Ménière\n".encode("latin-1"))
    dosing = (folder / DOSING).read_text().splitlines()
    (folder / DOSING).write_text("\n".join([*dosing, "K2-001,Week 8,56"]) + "\n")
    aes = (folder / AES).read_text().replace("subject_id,term,", "subject_id,event,")
    (folder / AES).write_text(aes)
    paths = _paths(contract, folder)
    paths[DIARY] = None
    result = _validate(raw_files.read_raw_dataset(paths, contract), contract)
    errors = result.problems[result.problems["severity"] == "error"]
    found = set(zip(errors["file"], errors["rule"], errors["column"].fillna(""), strict=True))
    assert found == {
        (DIARY, "file_present", ""),
        (LABS, "not_empty", ""),
        (SUBJECTS, "utf8_encoding", ""),
        (DOSING, "rectangular", ""),
        (AES, "column_missing", "term"),
    }
    assert _find(result, "column_unexpected", AES)["column"].tolist() == ["event"]
    utf8 = _find(result, "utf8_encoding").iloc[0]
    assert utf8["row"] == 5  # the line after the three subjects
    assert result.status == "failed"


def test_a_header_without_records_is_an_error_except_for_adverse_events(tmp_path, contract):
    folder = tmp_path / "raw"
    shutil.copytree(FIXTURE, folder)
    for name in (DOSING, AES):
        header = (folder / name).read_text().splitlines()[0]
        (folder / name).write_text(header + "\n")
    result = _validate(raw_files.read_raw_dataset(_paths(contract, folder), contract), contract)
    assert _find(result, "no_records")["file"].tolist() == [DOSING]
    assert _find(result, "no_records", AES).empty


def test_missing_and_unexpected_columns(raw, contract):
    raw.tables[SUBJECTS] = raw.tables[SUBJECTS].drop(columns=["age_years"]).assign(notes="x")
    result = _validate(raw, contract)
    missing = _find(result, "column_missing").iloc[0]
    assert (missing["file"], missing["column"], missing["severity"]) == (SUBJECTS, "age_years", "error")
    extra = _find(result, "column_unexpected").iloc[0]
    assert (extra["file"], extra["column"], extra["severity"]) == (SUBJECTS, "notes", "warning")


@pytest.mark.parametrize(
    ("file", "row", "column", "value", "rule"),
    [
        (SUBJECTS, 2, "consent_date", "", "required_missing"),
        (SUBJECTS, 2, "subject_id", "X-1", "subject_id_invalid"),
        (SUBJECTS, 2, "sex", "X", "category_invalid"),
        (SUBJECTS, 2, "site", "SITE-C", "site_undeclared"),
        (SUBJECTS, 2, "metformin", "maybe", "yes_no_invalid"),
        (SUBJECTS, 2, "weight_kg", "seventy", "number_invalid"),
        (SUBJECTS, 2, "weight_kg", "62.500,0", "number_invalid"),
        (SUBJECTS, 2, "consent_date", "02/01/2013", "date_invalid"),  # day-first at SITE-A: ambiguous
        (DIARY, 2, "assessment_date", "2013-02-30", "date_invalid"),
        (DIARY, 2, "symptom", "itch", "symptom_invalid"),
        (DIARY, 2, "visit", "Week 9", "visit_invalid"),
        (LABS, 3, "visit", "Week 2", "visit_invalid"),  # a diary week, not a clinic visit
        (LABS, 3, "result", "high", "lab_result_invalid"),
        (LABS, 3, "test_code", "XYZ", "test_code_unknown"),
        (LABS, 3, "unit", "furlongs", "unit_unknown"),
        (LABS, 3, "unit", "g/dL", "unit_not_allowed"),  # row 3 is MCV, reported in fL only
        (LABS, 3, "ref_low", "eighty", "number_invalid"),
        (DOSING, 2, "capsules_dispensed", "56.5", "integer_invalid"),
        (AES, 2, "severity", "grade 1", "category_invalid"),
    ],
)
def test_unreadable_values_are_errors_naming_file_row_column_and_value(raw, contract, file, row, column, value, rule):
    _set(raw, file, row, column, value)
    result = _validate(raw, contract)
    hits = _find(result, rule, file)
    hits = hits[(hits["row"] == row) & (hits["column"] == column)]
    assert len(hits) == 1, result.problems[result.problems["severity"] == "error"]
    assert hits.iloc[0]["value"] == value
    assert hits.iloc[0]["severity"] == "error"
    assert result.status == "failed"


def test_messages_name_the_codebook_defaults_when_nothing_is_declared(raw, contract):
    _set(raw, SUBJECTS, 2, "consent_date", "02/01/2013")  # K2-001, SITE-A
    _set(raw, DIARY, 47, "assessment_date", "2013-01-10")  # K2-002 at SITE-B: ISO is accepted from every site
    _set(raw, DIARY, 92, "subject_id", "K2PN-003")
    _set(raw, SUBJECTS, 4, "site", "S1")
    result = _validate(raw, contract)
    assert not result.declared and result.contract.subject_id_source == "codebook.yaml"
    messages = {(p.file, p.row, p.column): p.message for p in result.errors()}
    assert messages[(SUBJECTS, 2, "consent_date")] == (
        "not a date the contract accepts: day-first date from a site not declared day_first (order ambiguous): "
        "site SITE-A has day_first: false in the sites of codebook.yaml (day-first sites: SITE-B); "
        "write the date as YYYY-MM-DD"
    )
    assert messages[(DIARY, 92, "subject_id")] == "not a subject ID: expected an ID like K2-001"
    assert messages[(SUBJECTS, 4, "site")] == (
        "site not declared: expected one of the sites of codebook.yaml: SITE-A, SITE-B"
    )
    assert (DIARY, 47, "assessment_date") not in messages
    assert "declarations" not in validation_report.build_report(result)  # the report is as before


def test_impossible_values_are_fixable_and_set_missing(raw, contract):
    _set(raw, SUBJECTS, 2, "age_years", "17")
    _set(raw, DIARY, 3, "vas_cm", "10.5")
    result = _validate(raw, contract)
    hits = _find(result, "value_out_of_range")
    assert set(zip(hits["file"], hits["row"], hits["column"], strict=True)) == {
        (SUBJECTS, 2, "age_years"),
        (DIARY, 3, "vas_cm"),
        (DIARY, 111, "vas_cm"),
    }
    assert set(hits["severity"]) == {"fixable"}
    assert result.status == "passed"


def test_conflicting_duplicate_keys_are_errors_naming_the_differing_column(raw, contract):
    new_row = _append_copy(raw, DIARY, 2, vas_cm="0.5")
    twin = _append_copy(raw, SUBJECTS, 2, subject_id="K2_001", age_years="46")
    result = _validate(raw, contract)
    conflicts = _find(result, "duplicate_key")
    assert list(zip(conflicts["file"], conflicts["row"], conflicts["column"], strict=True)) == [
        (SUBJECTS, twin, "age_years"),
        (DIARY, new_row, "vas_cm"),
    ]
    assert "row 2 has the same subject_id, visit, symptom with vas_cm = '8.0'" in conflicts.iloc[1]["detail"]


def test_exact_duplicates_after_normalisation_are_fixable(raw, contract):
    copy = _append_copy(raw, DOSING, 2, subject_id="K2_001", visit="Wk 4")
    result = _validate(raw, contract)
    duplicate = _find(result, "duplicate_row", DOSING)
    assert duplicate[["row", "detail"]].values.tolist() == [[copy, "duplicate of row 2"]]
    assert _find(result, "duplicate_key").empty


def test_unknown_subjects(raw, contract):
    new_row = _append_copy(raw, LABS, 2, subject_id="K2-999")
    _set(raw, DOSING, 2, "subject_id", "K2-004")
    result = _validate(raw, contract)
    unknown = _find(result, "subject_unknown")
    assert list(zip(unknown["file"], unknown["row"], unknown["value"], strict=True)) == [
        (LABS, new_row, "K2-999"),
        (DOSING, 2, "K2-004"),
    ]
    assert set(unknown["column"]) == {"subject_id"}


def test_dates_before_consent_or_first_dose_are_errors(raw, contract):
    _set(raw, DIARY, 2, "assessment_date", "2013-01-01")  # baseline before consent (2013-01-02)
    _set(raw, DIARY, 7, "assessment_date", "2013-01-06")  # week 1 before the first dose (2013-01-07)
    _set(raw, SUBJECTS, 2, "last_dose_date", "2013-01-05")  # after consent, before the first dose
    _set(raw, AES, 2, "onset_date", "2013-01-07")  # K2-003 consented 2013-01-08
    result = _validate(raw, contract)
    errors = result.problems[result.problems["severity"] == "error"]
    assert set(zip(errors["file"], errors["row"], errors["column"], errors["rule"], strict=True)) == {
        (SUBJECTS, 2, "last_dose_date", "dose_dates_order"),
        (DIARY, 2, "assessment_date", "date_before_consent"),
        (DIARY, 7, "assessment_date", "before_first_dose"),
        (AES, 2, "onset_date", "date_before_consent"),
    }


def test_visits_outside_their_window_are_warnings(raw, contract):
    _set(raw, DIARY, 7, "assessment_date", "2013-01-18")  # week 1: 2013-01-14 +/- 3 days
    _set(raw, DIARY, 8, "assessment_date", "2013-01-17")  # 3 days late: inside
    _set(raw, DIARY, 2, "assessment_date", "2013-01-08")  # baseline after the first dose
    _set(raw, LABS, 20, "sample_date", "2013-02-12")  # week 4: 2013-02-04 +/- 7 days
    _set(raw, LABS, 56, "sample_date", "05/02/2013")  # K2-002 (day-first site) baseline after first dose
    result = _validate(raw, contract)
    hits = _find(result, "visit_window")
    assert list(zip(hits["file"], hits["row"], strict=True)) == [(DIARY, 2), (DIARY, 7), (LABS, 20), (LABS, 56)]
    assert set(hits["severity"]) == {"warning"}
    assert hits.iloc[1]["detail"] == "expected 2013-01-14 +/- 3 days"
    assert hits.iloc[3]["detail"] == "expected between 2012-12-13 and the first dose on 2013-01-10"


def test_each_clinic_visit_is_checked_at_its_own_target_day_and_window(raw, contract):
    # K2-001's first dose 2013-01-07; the protocol's week-4 visit at day 30 +/- 2 (not 7 x 4 +/- 7): target
    # 2013-02-06, so a sample on 2013-02-12 (6 days late) is outside, one on 2013-02-08 (2 days) inside
    windows = {**WINDOWS, "clinic_visits": [{"week": 0, "day": 0, "window_days": 7},
                                            {"week": 4, "day": 30, "window_days": 2},
                                            {"week": 8, "day": 56, "window_days": 7}]}  # fmt: skip
    _set(raw, LABS, 20, "sample_date", "2013-02-12")
    _set(raw, LABS, 21, "sample_date", "2013-02-08")
    hits = _find(validation.validate_dataset(raw, contract, windows), "visit_window")
    assert list(zip(hits["file"], hits["row"], hits["detail"], strict=True)) == [
        (LABS, 20, "expected 2013-02-06 +/- 2 days")
    ]


def test_missing_baselines_are_warnings_per_subject_and_symptom_or_test(raw, contract):
    _drop(raw, DIARY, 2)  # K2-001 baseline tingling
    _set(raw, DIARY, 3, "vas_cm", "")  # K2-001 baseline numbness without a value
    _drop(raw, LABS, 2)  # K2-001 baseline HGB
    result = _validate(raw, contract)
    hits = _find(result, "baseline_missing")
    assert list(zip(hits["file"], hits["subject_id"], hits["value"], strict=True)) == [
        (DIARY, "K2-001", "tingling"),
        (DIARY, "K2-001", "numbness"),
        (LABS, "K2-001", "HGB"),
    ]
    assert hits["row"].isna().all()
    assert result.status == "passed"


def test_protocol_deviations_and_inconsistencies_are_warnings(raw, contract):
    _set(raw, SUBJECTS, 2, "anticoagulant", "yes")
    _set(raw, SUBJECTS, 4, "status", "withdrawn")
    _set(raw, DOSING, 2, "capsules_returned", "60")
    _set(raw, AES, 2, "end_date", "2013-02-01")
    result = _validate(raw, contract)
    warnings = result.problems[result.problems["severity"] == "warning"]
    assert list(zip(warnings["file"], warnings["row"], warnings["column"], warnings["rule"], strict=True)) == [
        (SUBJECTS, 2, "anticoagulant", "anticoagulant_use"),
        (SUBJECTS, 4, "withdrawal_reason", "withdrawal_reason_missing"),
        (AES, 2, "end_date", "ae_end_before_onset"),
        (DOSING, 2, "capsules_returned", "capsules_returned_exceed_dispensed"),
    ]
    assert result.status == "passed"


def test_dataset_description_keys(raw, contract):
    raw.description = {"name": "x", "simulated": "yes", "description": "d"}
    result = _validate(raw, contract)
    found = (
        _find(result, "dataset_key_missing")["column"].tolist()
        + _find(result, "dataset_value_invalid")["column"].tolist()
    )
    assert found == ["version", "simulated"]
    raw.description = {"name": "x", "version": 1, "simulated": True, "description": "d", "seed": 1}
    assert _find(_validate(raw, contract), "dataset_key_missing")["column"].tolist() == ["generator"]


def test_unreadable_dataset_yaml(tmp_path, contract):
    folder = tmp_path / "raw"
    shutil.copytree(FIXTURE, folder)
    (folder / "dataset.yaml").write_text("name: [unclosed\n")
    result = _validate(raw_files.read_raw_dataset(_paths(contract, folder), contract), contract)
    assert _find(result, "dataset_yaml_invalid")["file"].tolist() == ["dataset.yaml"]


def _write_sums(folder: Path, names: list[str], extra: str = "") -> None:
    lines = [f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}" for n in names]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n" + extra)


def test_checksums_name_the_changed_file(tmp_path, contract):
    folder = tmp_path / "raw"
    shutil.copytree(FIXTURE, folder)
    names = [*contract.table_names, "dataset.yaml"]
    _write_sums(folder, names)
    result = _validate(raw_files.read_raw_dataset(_paths(contract, folder), contract), contract)
    assert not result.problems["rule"].str.startswith("checksum").any()
    (folder / LABS).write_text((folder / LABS).read_text().replace("10.4", "10.5"))
    _write_sums(folder, [n for n in names if n != DOSING], extra="not a checksum line\n")
    (folder / LABS).write_text((folder / LABS).read_text().replace("10.5", "10.6"))  # changed after the sums
    result = _validate(raw_files.read_raw_dataset(_paths(contract, folder), contract), contract)
    mismatch = _find(result, "checksum_mismatch")
    assert mismatch[["file", "severity"]].values.tolist() == [[LABS, "error"]]
    assert _find(result, "checksum_not_listed")["file"].tolist() == [DOSING]
    assert _find(result, "checksum_line_invalid")["row"].tolist() == [6]


def test_data_version_hashes_the_raw_files(tmp_path, contract):
    folder = tmp_path / "raw"
    shutil.copytree(FIXTURE, folder)
    raw = raw_files.read_raw_dataset(_paths(contract, folder), contract)
    files = [folder / n for n in (*contract.table_names, "dataset.yaml")]
    assert raw.data_version == data_version(files)
    assert raw.file_hashes[LABS] == hashlib.sha256((folder / LABS).read_bytes()).hexdigest()
    (folder / "SHA256SUMS").write_text("")  # the checksum file is not data
    assert raw_files.read_raw_dataset(_paths(contract, folder), contract).data_version == raw.data_version


def test_report_counts_are_exact_and_listing_is_limited(raw, contract):
    _set(raw, SUBJECTS, 2, "weight_kg", "seventy")
    result = _validate(raw, contract)
    report = validation_report.build_report(result, limit_per_rule=3)
    assert report["status"] == "failed"
    assert report["counts"]["by_file"][DIARY]["day_first_date"] == 45
    assert report["counts"]["error"] == 1
    assert report["counts"]["total"] == len(result.problems)
    listed = [p for p in report["problems"] if (p["file"], p["rule"]) == (DIARY, "day_first_date")]
    assert [p["row"] for p in listed] == [47, 48, 49]
    assert set(report["problems"][0]) == set(validation.PROBLEM_FIELDS)
    error = next(p for p in report["problems"] if p["severity"] == "error")
    assert error == {
        "file": SUBJECTS,
        "row": 2,
        "column": "weight_kg",
        "value": "seventy",
        "rule": "number_invalid",
        "severity": "error",
        "message": "not a number",
    }
    assert report["data_version"] == raw.data_version
    markdown = validation_report.report_markdown(report, contract)
    assert "**Status: FAILED**" in markdown
    assert "Only the first 3 problems of each file and rule are listed" in markdown
    assert "| subjects.csv | number_invalid | error | 1 |" in markdown
    assert "| 2 | weight_kg | seventy | number_invalid | error | not a number |" in markdown


def test_gate_stops_with_first_errors_and_the_report_path(raw, contract):
    _set(raw, SUBJECTS, 2, "weight_kg", "seventy")
    report = validation_report.build_report(_validate(raw, contract))
    with pytest.raises(InputDataError) as caught:
        validation_report.require_passed(report, report_path="results/validation/report.md")
    message = str(caught.value)
    assert "subjects.csv, row 2, column 'weight_kg'" in message
    assert "Full report: results/validation/report.md" in message
    passed = validation_report.build_report(
        _validate(raw_files.read_raw_dataset(_paths(contract, FIXTURE), contract), contract)
    )
    validation_report.require_passed(passed, report_path="results/validation/report.md")  # no exception
