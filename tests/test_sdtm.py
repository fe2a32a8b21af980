"""SDTM in and out (k2trial.data.sdtm): the CDISC pilot read and mapped to the raw tables, domain checks on
malformed SDTM, the Dataset-JSON and XPT writers, and the round trip raw tables -> SDTM -> raw tables.

The CDISC pilot is read from ../shared/cdisc_pilot (never copied into the repository); its tests are skipped
when the folder is absent.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import read_config

from k2trial.core.errors import ConfigError, InputDataError, Problem
from k2trial.data import sdtm, simulation
from k2trial.data.sdtm.files import xpt_timestamp

ROOT = Path(__file__).resolve().parents[1]
#: ../shared beside the repository (CI); K2TRIAL_SHARED names another folder (a git worktree elsewhere).
SHARED = Path(os.environ.get("K2TRIAL_SHARED") or Path(__file__).resolve().parents[2] / "shared")
PILOT = SHARED / "cdisc_pilot"
SCHEMA = SHARED / "schemas" / "dataset-json-1.1.schema.json"
WHEN = dt.datetime(2013, 10, 1, 9, 30, 15)

needs_pilot = pytest.mark.skipif(
    not (PILOT / "sdtm").is_dir(), reason=f"CDISC pilot data not present at {PILOT} (CI has ../shared/cdisc_pilot)"
)
needs_schema = pytest.mark.skipif(not SCHEMA.is_file(), reason=f"Dataset-JSON schema not present at {SCHEMA}")


def _yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def mapping():
    return sdtm.load_mapping(ROOT / "config" / "sdtm_mapping.yaml")


@pytest.fixture(scope="module")
def lab_units():
    return _yaml(ROOT / "config" / "lab_units.yaml")


@pytest.fixture(scope="module")
def pilot():
    if not (PILOT / "sdtm").is_dir():
        pytest.skip(f"CDISC pilot data not present at {PILOT}")
    start = time.perf_counter()
    domains = sdtm.read_sdtm(PILOT / "sdtm")
    seconds = time.perf_counter() - start
    print(f"\nread the CDISC pilot SDTM ({sum(len(f) for f in domains.values()):,} records) in {seconds:.2f} s")
    return domains, seconds


@pytest.fixture(scope="module")
def pilot_raw(pilot, mapping):
    start = time.perf_counter()
    tables = sdtm.sdtm_to_raw(pilot[0], mapping, sdtm.CDISC_PILOT_STUDY)
    print(f"\nmapped the CDISC pilot to the raw tables in {time.perf_counter() - start:.2f} s")
    return tables


def _k2_truth() -> dict[str, pd.DataFrame]:
    """Clean truth of a small simulated study as text, with a few records the simulator does not make (AEs, a
    withdrawal, a subject never dosed, a diary comment, a missing weight) so that every mapping is exercised."""
    params = simulation.build_params(
        read_config(),
        _yaml(ROOT / "config" / "lab_units.yaml"),
        _yaml(ROOT / "config" / "lab_standards.yaml"),
    )
    truth = sdtm.raw_tables_as_text(simulation.generate_study(24, 11, params).truth)
    subjects = truth["subjects.csv"]
    ids = subjects.subject_id.tolist()
    subjects.loc[2, ["status", "withdrawal_reason"]] = ["withdrawn", "WITHDRAWAL BY SUBJECT"]
    subjects.loc[4, ["status", "withdrawal_reason"]] = ["withdrawn", "moved to another city"]
    subjects.loc[5, ["first_dose_date", "last_dose_date"]] = ["", ""]
    subjects.loc[6, "weight_kg"] = ""
    truth["symptom_diary.csv"].loc[7, "comment"] = "felt better, slept well"
    ae_columns = list(truth["adverse_events.csv"].columns)
    events = [
        [ids[0], "Headache", "2012-09-03", "2012-09-04", "mild", "no", "unlikely", "none", "recovered"],
        [ids[0], "Nausea", "2012-09-10", "", "moderate", "no", "possible", "", ""],
        [ids[3], "Rash", "2012-10-01", "2012-10-20", "severe", "yes", "not related", "drug withdrawn", "recovered"],
        [ids[9], "Dizziness", "2012-11-05", "2012-11-05", "mild", "no", "probable", "", "recovered"],
        [ids[9], "Cramp, calf", "2012-11-06", "", "mild", "no", "definite", "", "not recovered"],
    ]
    truth["adverse_events.csv"] = pd.DataFrame(events, columns=ae_columns).astype("str")
    return truth


@pytest.fixture(scope="module")
def k2_truth():
    return _k2_truth()


@pytest.fixture(scope="module")
def k2_sdtm(k2_truth, mapping, lab_units):
    return sdtm.raw_to_sdtm(k2_truth, mapping, sdtm.K2_STUDY, lab_units)


def _contract(tables, mapping):
    return {name: tables[name][mapping["raw_tables"][name]["columns"]] for name in tables}


def _rules(problems: list[Problem]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for p in problems:
        out[(p.file, p.rule)] = out.get((p.file, p.rule), 0) + 1
    return out


# --------------------------------------------------------------------------------------------------
# The mapping file


def test_mapping_raw_tables_follow_the_codebook(mapping):
    from k2trial.core.vocabulary import study_codebook

    # the default (single-arm) study's files: a randomised study's arm and stratum columns are not in them
    codebook = study_codebook(_yaml(ROOT / "data" / "raw" / "codebook.yaml"))
    for name, spec in mapping["raw_tables"].items():
        assert spec["columns"] == list(codebook["files"][name]["columns"]), name
        assert not set(spec["columns"]) & set(spec["extra_columns"]), name
        assert spec["extra_columns"][-1] == "source_record", name
    assert set(mapping["raw_tables"]) == set(sdtm.RAW_FILES)


def test_writer_labels_fit_xpt_v5(mapping):
    labels = mapping["writer"]["labels"]
    for domain, spec in mapping["writer"]["domains"].items():
        assert len(spec["label"]) <= 40, domain
        for variable in spec["variables"]:
            assert len(variable) <= 8 and variable in labels, (domain, variable)
    assert all(len(label) <= 40 for label in labels.values())


def test_study_mapping_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="unknown key"):
        sdtm.normalise_study({"randomized": True})
    with pytest.raises(ConfigError, match="medications"):
        sdtm.normalise_study({"medications": {"aspirin": {"domain": "CM", "where": {"CMTRT": ["ASPIRIN"]}}}})
    with pytest.raises(ConfigError, match="lab_result"):
        sdtm.normalise_study({"lab_result": "si"})
    assert sdtm.normalise_study(sdtm.K2_STUDY) == sdtm.K2_STUDY


# --------------------------------------------------------------------------------------------------
# Dates


@pytest.mark.parametrize(
    ("value", "kind", "date"),
    [
        ("2014-01-02", "full", "2014-01-02"),
        ("2014-01-02T10:15", "full", "2014-01-02"),
        ("2014-01-02T10:15:30.5+01:00", "full", "2014-01-02"),
        ("2013-05", "partial", ""),
        ("2013", "partial", ""),
        ("2003---15", "partial", ""),
        ("", "empty", ""),
        ("2013-02-30", "invalid", ""),
        ("02/01/2014", "invalid", ""),
        ("2014-01-02T25:00", "invalid", ""),
    ],
)
def test_parse_dtc(value, kind, date):
    parsed = sdtm.parse_dtc(value)
    assert (parsed.kind, parsed.date) == (kind, date)


@pytest.mark.parametrize(
    ("value", "rule", "bounds", "expected"),
    [
        ("2014-01-02T10:15", "first", [], ("2014-01-02", "")),
        ("2013-05", "first", [], ("2013-05-01", "D")),
        ("2013", "first", [], ("2013-01-01", "M")),
        ("2013-05", "last", [], ("2013-05-31", "D")),
        ("2012-02", "last", [], ("2012-02-29", "D")),
        ("2013", "last", [], ("2013-12-31", "M")),
        ("2003---15", "first", [], ("2003-01-01", "M")),
        # admiral's min_dates: the first dose inside the partial date's range is the earliest possible onset
        ("2014-03", "first", ["2014-03-15"], ("2014-03-15", "D")),
        ("2014-03", "first", ["2014-04-15"], ("2014-03-01", "D")),
        # max_dates: death or end of study inside the range caps the imputed end
        ("2014-03", "last", ["2014-03-10"], ("2014-03-10", "D")),
        ("2014-03", "none", [], ("", "")),
        ("", "first", [], ("", "")),
    ],
)
def test_impute_dtc_follows_admiral(value, rule, bounds, expected):
    if rule == "last":
        assert sdtm.impute_dtc(value, rule, "M", not_after=bounds) == expected
    else:
        assert sdtm.impute_dtc(value, rule, "M", not_before=bounds) == expected


def test_impute_dtc_highest_level_d_leaves_year_only_dates():
    assert sdtm.impute_dtc("2013", "first", "D") == ("", "")
    assert sdtm.impute_dtc("2013-05", "first", "D") == ("2013-05-01", "D")


def test_natural_subject_order():
    ids = ["K2-100", "K2-010", "K2-1000", "K2-002", "01-701-1023", "01-701-1015"]
    assert sorted(ids, key=sdtm.natural_key) == ["01-701-1015", "01-701-1023", "K2-002", "K2-010", "K2-100", "K2-1000"]


# --------------------------------------------------------------------------------------------------
# The CDISC pilot


@needs_pilot
def test_pilot_record_counts_and_types(pilot):
    domains, seconds = pilot
    counts = {name: len(frame) for name, frame in domains.items()}
    assert counts["DM"] == 306
    assert counts["AE"] == 1191
    assert counts["LB"] == 59_580
    assert (counts["EX"], counts["SV"], counts["MH"], counts["DS"]) == (591, 3559, 1818, 850)
    lb = domains["LB"]
    assert lb["LBSEQ"].dtype == "float64" and lb["LBSTRESN"].dtype == "float64" and lb["VISITNUM"].dtype == "float64"
    assert pd.api.types.is_string_dtype(lb["LBSTRESC"].dtype) and pd.api.types.is_string_dtype(lb["USUBJID"].dtype)
    assert domains["DM"]["AGE"].dtype == "float64"
    assert not lb["USUBJID"].isna().any() and (lb["LBORRES"] != "").all()
    assert (
        lb.attrs["source_file"] == "lb.xpt" and domains["DM"].attrs["labels"]["USUBJID"] == "Unique Subject Identifier"
    )
    assert seconds < 120, f"reading the pilot took {seconds:.1f} s"


@needs_pilot
def test_pilot_subjects(pilot_raw, mapping):
    subjects = pilot_raw["subjects.csv"]
    assert list(subjects.columns) == sdtm.table_columns(mapping, "subjects.csv")
    assert len(subjects) == 306 and subjects.subject_id.is_unique
    assert (subjects.first_dose_date != "").sum() == 254
    assert subjects.arm.value_counts().to_dict() == {"Pbo": 86, "Xan_Hi": 84, "Xan_Lo": 84, "Scrnfail": 52}
    treated = subjects[subjects.first_dose_date != ""]
    assert treated.actual_arm.value_counts().to_dict() == {"Xan_Lo": 96, "Pbo": 86, "Xan_Hi": 72}
    assert set(subjects.arm_name) == {"Placebo", "Xanomeline Low Dose", "Xanomeline High Dose", "Screen Failure"}
    assert subjects.status.value_counts().to_dict() == {"withdrawn": 144, "completed": 110, "not treated": 52}
    withdrawn = subjects[subjects.status == "withdrawn"]
    assert (withdrawn.withdrawal_reason != "").all() and (withdrawn.withdrawal_reason_code != "").all()
    assert (subjects[subjects.status == "completed"].withdrawal_reason == "").all()
    one = subjects.set_index("subject_id").loc["01-701-1015"]
    assert (one.site, one.sex, one.age_years, one.first_dose_date, one.last_dose_date) == (
        "701",
        "F",
        "63",
        "2014-01-02",
        "2014-07-02",
    )
    # not collected in the pilot: empty, never guessed
    for column in ("weight_kg", "height_cm", "etiology", "metformin", "anticoagulant", "consent_date", "stratum"):
        assert (subjects[column] == "").all(), column
    assert subjects.source_record.iloc[0] == "DM USUBJID=01-701-1015"


@needs_pilot
def test_pilot_labs_keep_every_record_test_and_key(pilot_raw, mapping):
    labs = pilot_raw["labs.csv"]
    assert list(labs.columns) == sdtm.table_columns(mapping, "labs.csv")
    assert len(labs) == 59_580
    assert (labs.lbseq != "").all() and not labs.duplicated(["subject_id", "lbseq"]).any()
    assert labs.source_record.iloc[0] == f"LB USUBJID={labs.subject_id.iloc[0]} LBSEQ={labs.lbseq.iloc[0]}"
    assert labs.test_code.nunique() == 47
    assert {"COLOR", "KETONES", "URATE", "CK", "GGT", "BILI", "VITB12"} <= set(labs.test_code)
    assert all(isinstance(v, str) for v in labs.result.head(100))
    color = labs[labs.test_code == "COLOR"]  # a character-only result is no number: kept apart, as text
    assert set(color.result) == {""} and set(color.result_text) == {"N"} and set(color.unit) == {"1"}
    assert (labs.result == "<3.42").sum() == 5  # censored, from LBSTRESC
    assert labs.sample_date.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert labs.sample_dtc.str.len().max() == 16  # the date-time stays in sample_dtc
    first = labs.iloc[0]
    assert (first.test_code, first.result, first.unit, first.ref_low, first.ref_high) == (
        "ALB",
        "38",
        "g/L",
        "33",
        "49",
    )
    # analysis visits by the study's windows; the SDTM visit is kept beside them
    assert (first.visit, first.sdtm_visit, first.visitnum, first.study_day) == ("Baseline", "SCREENING 1", "1", "-7")
    assert {"BASELINE", "WEEK 2", "RETRIEVAL", "UNSCHEDULED 1.1"} <= set(labs.sdtm_visit)
    assert set(labs.visit) == {"Baseline", *(f"Week {w}" for w in (2, 4, 6, 8, 12, 16, 20, 24, 26))}


@needs_pilot
def test_pilot_labs_are_the_records_admiral_graded(pilot_raw):
    adlb = pd.read_csv(PILOT / "adam_reference" / "adlb.csv.gz", dtype=str, keep_default_na=False)
    adlb = adlb[adlb.DTYPE == ""]
    ours = pilot_raw["labs.csv"]
    keys = set(zip(ours.subject_id, ours.lbseq, strict=True))
    theirs = set(zip(adlb.USUBJID, adlb.LBSEQ.map(lambda s: f"{float(s):.12g}"), strict=True))
    assert keys == theirs
    merged = ours.merge(
        adlb.assign(lbseq=adlb.LBSEQ.map(lambda s: f"{float(s):.12g}")),
        left_on=["subject_id", "lbseq"],
        right_on=["USUBJID", "lbseq"],
    )
    numeric = merged[merged.AVAL != ""]
    assert np.allclose(numeric.result.astype(float), numeric.AVAL.astype(float))


@needs_pilot
def test_pilot_adverse_events_keep_aeseq_and_partial_dates(pilot_raw, mapping):
    ae = pilot_raw["adverse_events.csv"]
    assert list(ae.columns) == sdtm.table_columns(mapping, "adverse_events.csv")
    assert len(ae) == 1191 and (ae.aeseq != "").all() and not ae.duplicated(["subject_id", "aeseq"]).any()
    assert set(ae.severity) == {"mild", "moderate", "severe"}
    assert set(ae.related) == {"not related", "unlikely", "possible", "probable", ""}
    assert set(ae.serious) == {"yes", "no"}
    partial = ae[ae.onset_dtc.str.len() < 10]
    assert len(partial) == 26 and set(partial.onset_date_imputed) == {"D", "M"}
    row = ae[(ae.subject_id == "01-701-1118") & (ae.aeseq == "1")].iloc[0]
    assert (row.onset_dtc, row.onset_date, row.onset_date_imputed) == ("2003", "2003-01-01", "M")
    assert (ae.onset_date != "").all()  # every AESTDTC of the pilot has at least a year


@needs_pilot
def test_pilot_ae_dates_equal_admiral_adae(pilot_raw):
    """Treatment-emergence needs the dates admiral derives: ASTDT/AENDT of its ADAE, imputation included."""
    adae = pd.read_csv(PILOT / "adam_reference" / "adae.csv", dtype=str, keep_default_na=False)
    adae["aeseq"] = adae.AESEQ.map(lambda s: f"{float(s):.12g}")
    merged = pilot_raw["adverse_events.csv"].merge(
        adae, left_on=["subject_id", "aeseq"], right_on=["USUBJID", "aeseq"], how="outer", indicator=True
    )
    assert (merged._merge == "both").all()
    assert (merged.onset_date == merged.ASTDT).all()
    assert (merged.end_date == merged.AENDT).all()


@needs_pilot
def test_pilot_checks_find_no_errors(pilot, mapping):
    problems = sdtm.check_domains(pilot[0], mapping, sdtm.CDISC_PILOT_STUDY)
    assert sdtm.errors(problems) == []
    rules = _rules(problems)
    assert rules[("AE", "partial_date_imputed")] == 26
    assert rules[("AE", "value_missing")] == 4  # four AEs without AEREL
    assert rules[("DM", "value_missing")] == 1  # RFICDTC empty for every subject: no consent date
    assert all(p.row is None for p in problems)
    example = next(p for p in problems if p.rule == "partial_date_imputed")
    assert example.message.startswith("USUBJID 01-701-1118, AESEQ 1: AESTDTC '2003' is a partial date")


# --------------------------------------------------------------------------------------------------
# Malformed SDTM


def _messages(problems, rule):
    return [p for p in problems if p.rule == rule]


def test_k2_sdtm_passes_the_checks(k2_sdtm, mapping):
    assert sdtm.check_domains(k2_sdtm, mapping, sdtm.K2_STUDY) == []


def test_missing_usubjid_is_an_error_naming_domain_and_variable(k2_sdtm, mapping):
    domains = dict(k2_sdtm)
    domains["LB"] = k2_sdtm["LB"].drop(columns="USUBJID")
    problems = sdtm.check_domains(domains, mapping, sdtm.K2_STUDY)
    found = _messages(problems, "variable_missing")
    assert [(p.file, p.column, p.severity) for p in found] == [("LB", "USUBJID", "error")]
    assert found[0].message.startswith("LB: variable USUBJID is missing")
    # an empty USUBJID in one record is named by its --SEQ
    lb = k2_sdtm["LB"].copy()
    lb.loc[5, "USUBJID"] = ""
    problems = sdtm.check_domains({**k2_sdtm, "LB": lb}, mapping, sdtm.K2_STUDY)
    found = _messages(problems, "usubjid_missing")
    assert len(found) == 1 and found[0].file == "LB" and found[0].column == "USUBJID"
    assert found[0].message.startswith(f"USUBJID (empty), LBSEQ {int(lb.LBSEQ[5])}:")


def test_numeric_lab_result_without_unit_is_an_error(k2_sdtm, mapping):
    for mode, unit_var, result_var in (("standard", "LBSTRESU", "LBSTRESN"), ("original", "LBORRESU", "LBORRES")):
        study = {**sdtm.K2_STUDY, "lab_result": mode}
        lb = k2_sdtm["LB"].copy()
        lb.loc[7, unit_var] = ""
        problems = sdtm.check_domains({**k2_sdtm, "LB": lb}, mapping, study)
        found = _messages(problems, "lab_unit_missing")
        assert len(found) == 1 and found[0].severity == "error"
        p = found[0]
        assert (p.file, p.column, p.row) == ("LB", unit_var, None)
        assert p.message.startswith(f"USUBJID {lb.USUBJID[7]}, LBSEQ {int(lb.LBSEQ[7])}: LBTESTCD {lb.LBTESTCD[7]}")
        assert result_var in p.message
        # a test listed as unitless by the study is no error
        allowed = {**study, "lab_unitless_tests": [lb.LBTESTCD[7]]}
        assert not _messages(sdtm.check_domains({**k2_sdtm, "LB": lb}, mapping, allowed), "lab_unit_missing")


@needs_pilot
def test_pilot_lab_result_without_unit_is_an_error(pilot, mapping):
    domains = dict(pilot[0])
    lb = domains["LB"].copy()
    row = int(np.flatnonzero((lb.LBTESTCD == "ALT").to_numpy())[0])
    lb.loc[row, ["LBSTRESU", "LBORRESU"]] = ""
    domains["LB"] = lb
    found = _messages(sdtm.check_domains(domains, mapping, sdtm.CDISC_PILOT_STUDY), "lab_unit_missing")
    assert len(found) == 1
    assert found[0].message.startswith(f"USUBJID {lb.USUBJID[row]}, LBSEQ {int(lb.LBSEQ[row])}: LBTESTCD ALT")


def test_dm_without_arm_in_a_randomised_study_is_an_error(k2_sdtm, mapping):
    dm = k2_sdtm["DM"].drop(columns=["ARM", "ARMCD"])
    randomised = {**sdtm.K2_STUDY, "randomised": True}
    found = _messages(sdtm.check_domains({**k2_sdtm, "DM": dm}, mapping, randomised), "variable_missing")
    assert sorted((p.file, p.column, p.severity) for p in found) == [("DM", "ARM", "error"), ("DM", "ARMCD", "error")]
    assert "randomised" in found[0].message
    assert not _messages(sdtm.check_domains({**k2_sdtm, "DM": dm}, mapping, sdtm.K2_STUDY), "variable_missing")
    # a subject without an arm code and without ARMNRS
    dm = k2_sdtm["DM"].copy()
    dm.loc[1, ["ARMCD", "ARM", "ARMNRS"]] = ""
    found = _messages(sdtm.check_domains({**k2_sdtm, "DM": dm}, mapping, randomised), "arm_missing")
    assert len(found) == 1 and found[0].message.startswith(f"USUBJID {dm.USUBJID[1]}:")


def test_record_of_a_subject_not_in_dm_is_an_error(k2_sdtm, mapping):
    ae = k2_sdtm["AE"].copy()
    ae.loc[1, "USUBJID"] = "K2-999"
    found = _messages(sdtm.check_domains({**k2_sdtm, "AE": ae}, mapping, sdtm.K2_STUDY), "subject_not_in_dm")
    assert len(found) == 1
    p = found[0]
    assert (p.file, p.column, p.value, p.severity) == ("AE", "USUBJID", "K2-999", "error")
    assert p.message.startswith(f"USUBJID K2-999, AESEQ {int(ae.AESEQ[1])}: USUBJID K2-999 is not in DM")
    assert "AE" in p.describe() and "AESEQ" in p.describe()


def test_duplicate_seq_missing_domain_and_bad_dates(k2_sdtm, mapping):
    lb = k2_sdtm["LB"].copy()
    lb.loc[1, "LBSEQ"] = lb.LBSEQ[0]
    lb.loc[2, "LBDTC"] = "12/09/2012"
    domains = {**k2_sdtm, "LB": lb}
    del domains["DS"]
    problems = sdtm.check_domains(domains, mapping, sdtm.K2_STUDY)
    dup = _messages(problems, "seq_duplicate")
    assert [p.message.split(":")[0] for p in dup] == [f"USUBJID {lb.USUBJID[0]}, LBSEQ 1"] * 2
    bad = _messages(problems, "dtc_invalid")
    assert len(bad) == 1 and (bad[0].column, bad[0].value) == ("LBDTC", "12/09/2012")
    missing = _messages(problems, "domain_missing")
    assert [(p.file, p.severity) for p in missing] == [("DS", "error")]
    no_dm = {k: v for k, v in k2_sdtm.items() if k != "DM"}
    assert [p.file for p in _messages(sdtm.check_domains(no_dm, mapping, sdtm.K2_STUDY), "domain_missing")] == ["DM"]


def test_unmapped_ae_relationship_is_an_error(k2_sdtm, mapping):
    ae = k2_sdtm["AE"].copy()
    ae.loc[0, "AEREL"] = "REMOTE"
    found = _messages(sdtm.check_domains({**k2_sdtm, "AE": ae}, mapping, sdtm.K2_STUDY), "value_unmapped")
    assert len(found) == 1 and found[0].column == "AEREL" and "ae_relationship" in found[0].message
    study = {**sdtm.K2_STUDY, "ae_relationship": {**sdtm.K2_STUDY["ae_relationship"], "REMOTE": "unlikely"}}
    assert not _messages(sdtm.check_domains({**k2_sdtm, "AE": ae}, mapping, study), "value_unmapped")
    assert sdtm.sdtm_to_raw({**k2_sdtm, "AE": ae}, mapping, study)["adverse_events.csv"].related[0] == "unlikely"


def test_partial_ae_dates_without_imputation_stay_empty_and_are_reported(k2_sdtm, mapping):
    ae = k2_sdtm["AE"].copy()
    ae.loc[0, "AESTDTC"] = "2012-09"
    study = {**sdtm.K2_STUDY, "partial_dates": {"onset_date": {"rule": "none"}}}
    table = sdtm.sdtm_to_raw({**k2_sdtm, "AE": ae}, mapping, study)["adverse_events.csv"]
    assert (table.onset_date[0], table.onset_dtc[0], table.onset_date_imputed[0]) == ("", "2012-09", "")
    found = _messages(sdtm.check_domains({**k2_sdtm, "AE": ae}, mapping, study), "partial_date")
    assert len(found) == 1 and found[0].value == "2012-09" and found[0].severity == "warning"
    imputed = sdtm.sdtm_to_raw({**k2_sdtm, "AE": ae}, mapping, sdtm.K2_STUDY)["adverse_events.csv"]
    assert (imputed.onset_date[0], imputed.onset_date_imputed[0]) == ("2012-09-01", "D")


# --------------------------------------------------------------------------------------------------
# Reading a folder


def test_read_folder_detects_format_per_file_and_any_case(k2_sdtm, mapping, tmp_path):
    sdtm.write_xpt(k2_sdtm["DM"], tmp_path / "DM.XPT", name="DM", created=WHEN, label="Demographics")
    sdtm.write_dataset_json(k2_sdtm["LB"], tmp_path / "Lb.json", name="LB", label="Lab", creation_datetime=WHEN)
    sdtm.write_dataset_json(k2_sdtm["AE"], tmp_path / "ae.ndjson", name="AE", label="AE", creation_datetime=WHEN)
    (tmp_path / "define.xml").write_text("<ODM/>", encoding="utf-8")
    domains = sdtm.read_sdtm(tmp_path)
    assert sorted(domains) == ["AE", "DM", "LB"]
    for name in domains:
        pd.testing.assert_frame_equal(domains[name], k2_sdtm[name])
    assert sorted(sdtm.read_sdtm(tmp_path, domains=["dm"])) == ["DM"]
    sdtm.write_xpt(k2_sdtm["LB"], tmp_path / "lb.xpt", name="LB", created=WHEN)
    with pytest.raises(InputDataError) as error:
        sdtm.read_sdtm(tmp_path)
    assert error.value.problems[0].rule == "domain_duplicate" and error.value.problems[0].file == "LB"
    (tmp_path / "lb.xpt").unlink()
    (tmp_path / "vs.xpt").write_bytes(b"not a transport file")
    with pytest.raises(InputDataError) as error:
        sdtm.read_sdtm(tmp_path)
    assert (error.value.problems[0].file, error.value.problems[0].rule) == ("VS", "domain_unreadable")


# --------------------------------------------------------------------------------------------------
# Writers


def _schema_validator():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft201909Validator(schema, format_checker=jsonschema.FormatChecker())


def _pilot_or_k2(pilot_available: bool, k2_sdtm):
    if pilot_available:
        domains = sdtm.read_sdtm(PILOT / "sdtm", domains=["DM", "AE", "LB"])
        return domains
    return {name: k2_sdtm[name] for name in ("DM", "AE", "LB")}


@needs_schema
@pytest.mark.parametrize("suffix", [".json", ".ndjson"])
def test_dataset_json_is_valid_deterministic_and_reads_back_equal(k2_sdtm, mapping, tmp_path, suffix):
    validator = _schema_validator()
    domains = {**_pilot_or_k2((PILOT / "sdtm").is_dir(), k2_sdtm), "QS": k2_sdtm["QS"], "CM": k2_sdtm["CM"]}
    for name, frame in domains.items():
        path = tmp_path / f"{name.lower()}{suffix}"
        meta = {
            "name": name,
            "label": sdtm.files.dataset_label(name, frame, mapping),
            "creation_datetime": WHEN,
            "keys": ["USUBJID"],
            "column_labels": {
                c: mapping["writer"]["labels"][c] for c in frame.columns if c in mapping["writer"]["labels"]
            },
            "study_oid": "STUDY.TEST",
            "originator": "k2trial",
            "source_system": ("k2trial", "0.1.0"),
        }
        sdtm.write_dataset_json(frame, path, **meta)
        data = path.read_bytes()
        if suffix == ".json":
            document = json.loads(data)
        else:
            lines = data.decode("utf-8").splitlines()
            document = {**json.loads(lines[0]), "rows": [json.loads(line) for line in lines[1:]]}
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, f"{name}: {errors[0].message}"
        assert list(document)[:2] == ["datasetJSONCreationDateTime", "datasetJSONVersion"]
        assert document["datasetJSONCreationDateTime"] == "2013-10-01T09:30:15"
        assert document["records"] == len(frame) == len(document["rows"])
        assert sdtm.dataset_json_bytes(frame, ndjson=suffix == ".ndjson", **meta) == data  # deterministic
        back = sdtm.read_domain(path)
        pd.testing.assert_frame_equal(back, sdtm.files.normalise_frame(frame))
        assert back.attrs["labels"]["USUBJID"] == "Unique Subject Identifier"
    with pytest.raises(ValueError, match="ISO 8601"):
        sdtm.dataset_json_bytes(k2_sdtm["DM"], name="DM", label="DM", creation_datetime="2013-10-01")
    with pytest.raises(TypeError):
        sdtm.dataset_json_bytes(k2_sdtm["DM"], name="DM", label="DM")  # no clock time by default


def test_xpt_writer_gives_identical_bytes_and_reads_back_equal(k2_sdtm, tmp_path):
    domains = _pilot_or_k2((PILOT / "sdtm").is_dir(), k2_sdtm)
    for run in (1, 2):
        for name, frame in domains.items():
            sdtm.write_xpt(
                frame, tmp_path / f"{name}{run}.xpt", name=name, created=WHEN, label=frame.attrs.get("label", name)
            )
        if run == 1:
            time.sleep(1.1)  # the clock pyreadstat writes into the header has moved on
    stamp = xpt_timestamp(WHEN)
    assert stamp == b"01OCT13:09:30:15"
    for name, frame in domains.items():
        data = (tmp_path / f"{name}1.xpt").read_bytes()
        assert data == (tmp_path / f"{name}2.xpt").read_bytes(), name
        descriptor = data.find(b"HEADER RECORD*******DSCRPTR HEADER RECORD")
        for offset in (144, 160, descriptor + 144, descriptor + 160):
            assert data[offset : offset + 16] == stamp
        back = sdtm.read_xpt(tmp_path / f"{name}1.xpt")
        pd.testing.assert_frame_equal(back, sdtm.files.normalise_frame(frame))
        assert back.attrs["name"] == name
        other = dt.datetime(2020, 2, 29, 23, 59, 59)
        assert sdtm.set_xpt_timestamps(data, other) != data
        assert sdtm.set_xpt_timestamps(sdtm.set_xpt_timestamps(data, other), WHEN) == data
    with pytest.raises(ValueError, match="XPT"):
        sdtm.set_xpt_timestamps(b"not an xpt file" * 20, WHEN)


def test_xpt_writer_refuses_what_v5_cannot_hold(k2_sdtm, tmp_path):
    with pytest.raises(ValueError, match="XPT v5"):
        sdtm.write_xpt(
            k2_sdtm["DM"].rename(columns={"USUBJID": "UNIQUESUBJECTID"}), tmp_path / "x.xpt", name="DM", created=WHEN
        )
    with pytest.raises(ValueError, match="200"):
        sdtm.write_xpt(k2_sdtm["DM"].assign(RACE="x" * 201), tmp_path / "x.xpt", name="DM", created=WHEN)
    with pytest.raises(ValueError, match="label"):
        sdtm.write_xpt(k2_sdtm["DM"], tmp_path / "x.xpt", name="DM", created=WHEN, label="x" * 41)


def _haven_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(["Rscript", "-e", "library(haven)"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _haven_available(), reason="bonus: needs Rscript with haven (Debian r-cran-haven)")
def test_xpt_reads_in_r_with_haven(k2_sdtm, mapping, tmp_path):
    written = sdtm.write_sdtm({n: k2_sdtm[n] for n in ("DM", "LB", "QS")}, tmp_path, created=WHEN, mapping=mapping)
    for name, file in written.items():
        script = (
            f'd <- haven::read_xpt("{file}"); '
            f'write.csv(d, "{name}.csv", row.names = FALSE, na = ""); '
            f'writeLines(vapply(d, function(x) attr(x, "label"), ""), "{name}.labels")'
        )
        subprocess.run(["Rscript", "-e", script], cwd=tmp_path, check=True, capture_output=True)
        theirs = pd.read_csv(tmp_path / f"{name}.csv", dtype=str, keep_default_na=False)
        ours = sdtm.raw_tables_as_text({name: k2_sdtm[name]})[name]
        assert list(theirs.columns) == list(ours.columns)
        for column in ours.columns:
            if pd.api.types.is_numeric_dtype(k2_sdtm[name][column].dtype):
                a = pd.to_numeric(theirs[column].replace("", np.nan)).to_numpy(dtype=float)
                assert np.allclose(a, k2_sdtm[name][column].to_numpy(dtype=float), equal_nan=True), (name, column)
            else:
                assert (theirs[column] == ours[column]).all(), (name, column)
        labels = (tmp_path / f"{name}.labels").read_text(encoding="utf-8").splitlines()
        assert labels == [mapping["writer"]["labels"][c] for c in ours.columns]


# --------------------------------------------------------------------------------------------------
# Round trip: raw tables -> SDTM -> raw tables


def test_round_trip_of_the_simulated_truth_in_memory(k2_truth, k2_sdtm, mapping):
    back = sdtm.sdtm_to_raw(k2_sdtm, mapping, sdtm.K2_STUDY)
    assert set(back) == set(k2_truth)
    for name, truth in k2_truth.items():
        assert list(back[name].columns) == sdtm.table_columns(mapping, name)
        pd.testing.assert_frame_equal(_contract(back, mapping)[name], truth, obj=name)
    labs = back["labs.csv"]
    assert (labs.groupby("subject_id").lbseq.apply(lambda s: list(s) == [str(i) for i in range(1, len(s) + 1)])).all()
    assert back["adverse_events.csv"].aeseq.tolist() == ["1", "2", "1", "1", "2"]
    subjects = back["subjects.csv"]
    assert subjects.arm.unique().tolist() == ["MK7"]
    assert subjects.actual_arm[5] == ""  # never dosed
    assert back["dosing.csv"].daseq[0] == "1;2"


@pytest.mark.parametrize("fmt", ["xpt", "json", "ndjson"])
def test_round_trip_through_files(k2_truth, k2_sdtm, mapping, tmp_path, fmt):
    written = sdtm.write_sdtm(k2_sdtm, tmp_path, fmt=fmt, created=WHEN, mapping=mapping)
    assert sorted(written) == sorted(k2_sdtm)
    domains = sdtm.read_sdtm(tmp_path)
    for name, frame in k2_sdtm.items():
        pd.testing.assert_frame_equal(domains[name], frame, obj=name)
    back = _contract(sdtm.sdtm_to_raw(domains, mapping, sdtm.K2_STUDY), mapping)
    for name, truth in k2_truth.items():
        pd.testing.assert_frame_equal(back[name], truth, obj=name)
    again = tmp_path / "again"
    sdtm.write_sdtm(k2_sdtm, again, fmt=fmt, created=WHEN, mapping=mapping)
    for file in written.values():
        assert (again / file).read_bytes() == (tmp_path / file).read_bytes(), file


def test_k2_sdtm_content(k2_sdtm, k2_truth):
    assert sorted(k2_sdtm) == ["AE", "CM", "CO", "DA", "DM", "DS", "EX", "LB", "MH", "QS", "SV", "VS"]
    dm = k2_sdtm["DM"]
    assert dm.USUBJID.tolist() == k2_truth["subjects.csv"].subject_id.tolist()
    assert (dm.ARMNRS[5], dm.ACTARMCD[5]) == ("ASSIGNED, NOT TREATED", "")
    ds = k2_sdtm["DS"].set_index("USUBJID")
    ids = dm.USUBJID
    assert ds.loc[ids[2], ["DSDECOD", "DSTERM"]].tolist() == ["WITHDRAWAL BY SUBJECT", "WITHDRAWAL BY SUBJECT"]
    assert ds.loc[ids[4], ["DSDECOD", "DSTERM"]].tolist() == ["OTHER", "moved to another city"]
    mh = k2_sdtm["MH"]
    assert set(mh.MHPRESP) == {"Y"} and set(mh.MHOCCUR) == {"Y", "N"}
    assert mh[mh.MHDUR != ""].MHDUR.str.fullmatch(r"P\d+(\.\d+)?Y").all()
    cm = k2_sdtm["CM"]
    assert len(cm) == 3 * len(dm) and set(cm.CMOCCUR) <= {"Y", "N"}
    assert k2_sdtm["CO"].COVAL.tolist() == ["felt better, slept well"]
    assert set(k2_sdtm["DA"].DATESTCD) == {"DISPAMT", "RETAMT"}
    assert k2_sdtm["LB"].LBSEQ.dtype == "float64" and k2_sdtm["QS"].QSSTRESU.iloc[0] == "cm"
    assert (k2_sdtm["SV"].groupby("USUBJID").size() == 9).all()


def test_k2_sdtm_in_standard_units(k2_sdtm, k2_truth, mapping, lab_units):
    """Read in standard units, a SITE-B result reported in SI units comes back converted (lab_units.yaml)."""
    study = {**sdtm.K2_STUDY, "lab_result": "standard"}
    labs = sdtm.sdtm_to_raw(k2_sdtm, mapping, study)["labs.csv"]
    original = k2_truth["labs.csv"]
    si = (original.test_code == "CREAT") & (original.unit == "umol/L")
    assert si.any()
    assert set(labs.unit[si]) == {"mg/dL"}
    i = int(np.flatnonzero(si.to_numpy())[0])
    factor = lab_units["tests"]["CREAT"]["units"]["umol/L"]
    assert float(labs.result[i]) == pytest.approx(round(float(original.result[i]) * factor, 2))
    censored = original.result.str.startswith("<")
    assert (labs.result[censored].str.startswith("<")).all()


def test_round_trip_with_suppdm_etiology_medications_and_stratum(k2_truth, mapping, lab_units):
    """The other way a study may record the subject-level fields: SUPPDM qualifiers with value maps."""
    yes_no = {"Y": "yes", "N": "no"}
    study = {
        **sdtm.K2_STUDY,
        "expected_domains": ["DS", "EX", "LB", "AE", "VS", "SUPPDM"],
        "etiology": {
            "domain": "SUPPDM",
            "qnam": "ETIOL",
            "label": "Etiology of Neuropathy",
            "value_map": {"B12": "b12_deficiency", "DM": "diabetes", "BOTH": "both"},
        },
        "diabetes_duration": {"domain": "SUPPDM", "qnam": "DIABDUR", "type": "number"},
        "medications": {
            name: {"domain": "SUPPDM", "qnam": qnam, "value_map": yes_no}
            for name, qnam in (
                ("metformin", "METFORM"),
                ("prior_b12_therapy", "PRIORB12"),
                ("anticoagulant", "ANTICOAG"),
            )
        },
        "stratum": {"domain": "SUPPDM", "qnam": "STRATUM"},
    }
    truth = {**k2_truth, "subjects.csv": k2_truth["subjects.csv"].assign(stratum="")}
    truth["subjects.csv"].loc[:, "stratum"] = [
        "SITE-A/B12" if i % 2 else "SITE-B/DM" for i in range(len(truth["subjects.csv"]))
    ]
    domains = sdtm.raw_to_sdtm(truth, mapping, study, lab_units)
    assert "MH" not in domains and "CM" not in domains
    supp = domains["SUPPDM"]
    assert set(supp.QNAM) == {"ETIOL", "DIABDUR", "METFORM", "PRIORB12", "ANTICOAG", "STRATUM"}
    assert set(supp.QVAL[supp.QNAM == "METFORM"]) <= {"Y", "N"} and set(supp.RDOMAIN) == {"DM"}
    assert sdtm.check_domains(domains, mapping, study) == []
    back = sdtm.sdtm_to_raw(domains, mapping, study)
    for name in k2_truth:
        pd.testing.assert_frame_equal(_contract(back, mapping)[name], k2_truth[name], obj=name)
    assert back["subjects.csv"].stratum.tolist() == truth["subjects.csv"].stratum.tolist()
