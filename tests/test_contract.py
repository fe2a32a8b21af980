"""The raw-data contract: loading the YAML files and the normalisers of each column type."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from k2trial.core.values import subject_numbers
from k2trial.data import contract as ct

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def contract() -> ct.Contract:
    return ct.read_contract(ROOT / "data/raw/codebook.yaml", ROOT / "config/lab_units.yaml")


def _table(column: ct.NormalisedColumn) -> list[tuple]:
    """(raw, status, canonical text) per row."""
    return list(zip(column.row_raw(), column.row_status(), column.row_text(), strict=True))


def test_contract_lists_files_columns_and_lab_tests_in_order(contract):
    assert contract.table_names == ("subjects.csv", "symptom_diary.csv", "labs.csv", "adverse_events.csv", "dosing.csv")
    assert contract.tables["labs.csv"].key == ("subject_id", "visit", "test_code")
    assert contract.tables["symptom_diary.csv"].column_names == (
        "subject_id",
        "visit",
        "assessment_date",
        "symptom",
        "vas_cm",
        "comment",
    )
    assert list(contract.lab_tests)[:3] == ["HGB", "MCV", "WBC"]
    assert "NA" in contract.lab_tests  # the sodium code, not a missing value
    assert contract.lab_tests["CREAT"].units["umol/L"] == pytest.approx(1 / 88.4)
    assert contract.site_day_first == {"SITE-A": False, "SITE-B": True}
    assert contract.visit("Week 4").code == "week4"
    assert contract.tables["adverse_events.csv"].may_be_empty


def test_subject_ids_accept_documented_spellings(contract):
    column = ct.normalise_subject_ids(["K2-001", " K2_002", "k2-3", "K2 010", "K2004", "K2-0100", "X-1", ""], contract)
    assert _table(column) == [
        ("K2-001", "ok", "K2-001"),
        (" K2_002", "subject_id_spelling", "K2-002"),
        ("k2-3", "subject_id_spelling", "K2-003"),
        ("K2 010", "subject_id_spelling", "K2-010"),
        ("K2004", "subject_id_spelling", "K2-004"),
        ("K2-0100", "subject_id_spelling", "K2-100"),
        ("X-1", "invalid", None),
        ("", "missing", None),
    ]


def test_a_declared_pattern_replaces_the_k2_normaliser(contract):
    declared = ct.apply_declarations(contract, {"name": "x", "subject_id": {"pattern": "^K2PN-[0-9]{3}$"}})
    assert declared.subject_id_declared and declared.subject_id_source == "dataset.yaml"
    assert declared.site_day_first == contract.site_day_first  # sites not declared: the codebook's
    raw = ["K2PN-101", "K2PN-102 ", " k2pn-103", "K2PN_104", "K2PN-1050", "K2-001", "k2pn 106", ""]
    assert _table(ct.normalise_subject_ids(raw, declared)) == [
        ("K2PN-101", "ok", "K2PN-101"),
        ("K2PN-102 ", "whitespace", "K2PN-102"),
        (" k2pn-103", "subject_id_spelling", "K2PN-103"),  # trimmed and upper-cased, nothing else
        ("K2PN_104", "invalid", None),
        ("K2PN-1050", "invalid", None),  # the whole ID must match
        ("K2-001", "invalid", None),  # no K2- normaliser under a declared pattern
        ("k2pn 106", "invalid", None),
        ("", "missing", None),
    ]
    # unanchored, the pattern still has to match the whole ID
    loose = ct.apply_declarations(contract, {"subject_id": {"pattern": "[A-Z]+-[0-9]+"}})
    assert list(ct.normalise_subject_ids(["AB-12", "AB-12x"], loose).row_text()) == ["AB-12", None]


def test_declared_sites_replace_the_codebook_sites(contract):
    declared = ct.apply_declarations(contract, {"sites": {"S1": {"day_first": False}, "S2": {"day_first": True}}})
    assert declared.site_day_first == {"S1": False, "S2": True} and declared.sites_source == "dataset.yaml"
    assert not declared.subject_id_declared
    site = declared.tables["subjects.csv"].column("site")
    column = ct.normalise_column(["S1", " s2", "SITE-A", ""], site, declared)
    assert _table(column) == [
        ("S1", "ok", "S1"),
        (" s2", "category_spelling", "S2"),
        ("SITE-A", "invalid", None),
        ("", "missing", None),
    ]
    assert column.detail[2] == "expected one of the sites of dataset.yaml: S1, S2"
    # the codebook's sites by default
    default = ct.normalise_column(["SITE-B", "S1"], site, contract)
    assert list(default.row_text()) == ["SITE-B", None]
    assert default.detail[1] == "expected one of the sites of codebook.yaml: SITE-A, SITE-B"


def test_declarations_record_names_the_source_of_each(contract):
    declared = ct.apply_declarations(contract, {"sites": {"S1": {"day_first": True}}})
    record = ct.declarations_record(declared)
    assert record["sites"] == {"declared_in": "dataset.yaml", "sites": {"S1": {"day_first": True}}}
    assert record["subject_id"]["declared_in"] == "codebook.yaml"
    assert record["subject_id"]["pattern"] == "^K2-[0-9]{3,}$"
    assert ct.apply_declarations(contract, {"name": "no declarations"}) is contract


def test_visits_depend_on_the_file_kind(contract):
    raw = ["Baseline", "BL", "Base line", "W0", "Wk 4", "week4", "Week 04", "wk-8", " Week 8", "Week 2"]
    clinic = ct.normalise_visits(raw, contract, "clinic_visit")
    assert list(clinic.row_text()) == [
        "Baseline",
        "Baseline",
        "Baseline",
        "Baseline",
        "Week 4",
        "Week 4",
        "Week 4",
        "Week 8",
        "Week 8",
        None,
    ]
    assert list(clinic.row_status())[-2:] == ["whitespace", "invalid"]
    assert ct.normalise_visits(["Week 2"], contract, "diary_visit").row_text()[0] == "Week 2"
    assert ct.normalise_visits(["Baseline"], contract, "dosing_visit").row_status()[0] == "invalid"


def test_labels_symptoms_and_yes_no(contract):
    sex = ct.normalise_labels(
        ["F", "female", " M", "Male", "x"], ["F", "M"], {"F": ["f", "female"], "M": ["m", "male"]}
    )
    assert list(sex.row_text()) == ["F", "F", "M", "M", None]
    assert list(sex.row_status()) == ["ok", "category_spelling", "whitespace", "category_spelling", "invalid"]
    symptoms = ct.normalise_symptoms(["Pins and needles", "numb", "TIREDNESS", "itch"], contract)
    assert list(symptoms.row_text()) == ["tingling", "numbness", "fatigue", None]
    yes_no = ct.normalise_yes_no(["yes", "Y", "0", "true", "maybe"], contract)
    assert list(yes_no.row_text()) == ["yes", "yes", "no", "yes", None]


def test_numbers_decimal_comma_range_and_integers():
    column = ct.normalise_numbers(["7.5", "7,5", " 8 ", "1.000,5", "abc", "", "-0.1", "10.1", "10"], 0.0, 10.0)
    assert list(column.row_status()) == [
        "ok",
        "decimal_comma",
        "whitespace",
        "invalid",
        "invalid",
        "missing",
        "value_out_of_range",
        "value_out_of_range",
        "ok",
    ]
    values = column.row_values()
    assert values[:3].tolist() == [7.5, 7.5, 8.0]
    assert values[6] == -0.1  # out-of-range values stay readable (for the report); text is None
    assert column.row_text()[6] is None
    counts = ct.normalise_numbers(["30", "30.0", "30.5"], 0, 1000, integer=True)
    assert list(counts.row_status()) == ["ok", "ok", "invalid"]


def test_dates_day_first_only_at_day_first_sites():
    raw = ["2013-01-05", "05/01/2013", "05-01-2013", "05/01/2013", "2013-02-30", "31/02/2013", "2013/01/05", ""]
    day_first = [False, True, True, False, False, True, False, False]
    column = ct.normalise_dates(raw, day_first)
    assert list(column.row_text()) == ["2013-01-05", "2013-01-05", "2013-01-05", None, None, None, None, None]
    assert list(column.row_status()) == [
        "ok",
        "day_first_date",
        "day_first_date",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "missing",
    ]
    assert "not declared day_first" in column.detail[column.codes[3]]
    assert column.row_values()[1] == np.datetime64("2013-01-05")


def test_lab_results_keep_censoring_and_canonical_text():
    column = ct.normalise_lab_results(["7.5", "<0,2", "< 0.2", ">100", "13,50", "abc", ""])
    assert list(column.row_text()) == ["7.5", "<0.2", "<0.2", ">100", "13.50", None, None]
    assert list(column.row_status()) == [
        "ok",
        "decimal_comma",
        "whitespace",
        "ok",
        "decimal_comma",
        "invalid",
        "missing",
    ]
    value, censored = ct.parse_lab_results(["7.5", "<0.2", ">100", None])
    assert value[:3].tolist() == [7.5, 0.2, 100.0] and np.isnan(value[3])
    assert censored.tolist() == [False, True, True, False]


def test_test_codes_and_units(contract):
    codes = ct.normalise_test_codes(["HGB", "hb", "SGPT", "Vit B12", "NA", "XYZ"], contract)
    assert list(codes.row_text()) == ["HGB", "HGB", "ALT", "B12", "NA", None]
    units = ct.normalise_units(["g/dL", "g/dl", "µmol/L", "x10e9/L", "IU/L", "mg / dl", "furlongs"], contract)
    assert list(units.row_text()) == ["g/dL", "g/dL", "umol/L", "10^9/L", "U/L", "mg/dL", None]
    factors = ct.lab_factors(["CREAT", "GLUCF", "HGB", "HGB"], ["umol/L", "mmol/L", "g/L", "mg/dL"], contract)
    assert factors[:3] == pytest.approx([1 / 88.4, 18.016, 0.1])
    assert np.isnan(factors[3])  # haemoglobin is never reported in mg/dL: no factor


def test_sort_helpers(contract):
    assert subject_numbers(["K2-010", "K2-002", "K2-100", None]).tolist() == [10, 2, 100, -1]
    assert ct.visit_weeks(["Baseline", "Week 4", "Week 8", "bogus"], contract).tolist() == [0, 4, 8, -1]
    assert list(ct.visit_codes(["Baseline", "Week 1"], contract)) == ["baseline", "week1"]
    assert ct.category_order(["cramps", "tingling", "other"], contract.symptoms).tolist() == [4, 0, 5]
