"""Tests of k2trial.data.simulation: calibration to STUDY.md, determinism, the injected mess, the shipped files."""

from __future__ import annotations

import copy
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import read_config, run_snakemake

from k2trial.core.errors import ConfigError
from k2trial.core.io import read_raw_csv
from k2trial.core.vocabulary import study_codebook
from k2trial.data import simulation as sim

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _params(config):
    return sim.build_params(
        config,
        _load(ROOT / config["lab_units"]),
        _load(ROOT / config["lab_standards"]),
        _load(ROOT / config["codebook"]),
    )


#: The raw files' layout the generator takes from the codebook.
LAYOUT = sim.study_layout(_params(read_config()))
DATASET_FILES = (*LAYOUT.files, "dataset.yaml", "SHA256SUMS")


@pytest.fixture(scope="module")
def config():
    return read_config()


@pytest.fixture(scope="module")
def codebook():
    """The codebook with the default study's protocol filled in (k2trial.core.vocabulary.study_codebook)."""
    return study_codebook(_load(ROOT / "data/raw/codebook.yaml"))


@pytest.fixture(scope="module")
def params(config):
    return _params(config)


@pytest.fixture(scope="module")
def shipped(config, params):
    """A fresh generation with the shipped size and seed."""
    return sim.generate_study(config["simulation"]["n_subjects"], config["seed"], params)


@pytest.fixture(scope="module")
def large(params):
    return sim.generate_study(2000, 7, params)


# ---------------------------------------------------------------------------------------------------
# helpers computed independently of the generator


def _composites(diary: pd.DataFrame) -> pd.DataFrame:
    """subject x visit composite (mean of the five symptoms), NaN if any is missing."""
    wide = diary.pivot_table(index=["subject_id", "visit"], columns="symptom", values="vas_cm", dropna=False)
    return wide[list(LAYOUT.symptoms)].mean(axis=1, skipna=False).unstack("visit")


def _standard_values(labs: pd.DataFrame, lab_units: dict) -> pd.Series:
    """Lab results converted to the standard unit (standard = reported x factor); "<x" -> x."""
    number = labs["result"].str.lstrip("<>").astype(float)
    factor = [lab_units["tests"][t]["units"][u] for t, u in zip(labs["test_code"], labs["unit"], strict=True)]
    return number * np.asarray(factor)


def _days(series: pd.Series) -> np.ndarray:
    return pd.to_datetime(series, format="%Y-%m-%d").to_numpy().astype("datetime64[D]").astype(np.int64)


def _lab_frame(study, params) -> pd.DataFrame:
    labs = study.truth["labs.csv"].copy()
    labs["value"] = _standard_values(labs, params["lab_units"])
    subjects = study.truth["subjects.csv"].set_index("subject_id")
    for column in ("sex", "site", "etiology", "prior_b12_therapy"):
        labs[column] = labs["subject_id"].map(subjects[column])
    return labs


def _untreated_b12(subjects: pd.DataFrame) -> pd.Series:
    return subjects["etiology"].isin(["b12_deficiency", "both"]) & (subjects["prior_b12_therapy"] == "no")


# ---------------------------------------------------------------------------------------------------
# small pure functions, by hand


def test_allocate_counts_by_hand():
    assert sim.allocate_counts(30, [17, 7, 6]).tolist() == [17, 7, 6]
    # quotas 1133.33, 466.67, 400: the one leftover goes to the largest remainder
    assert sim.allocate_counts(2000, [17, 7, 6]).tolist() == [1133, 467, 400]
    assert sim.allocate_counts(10, [1, 1, 1]).tolist() == [4, 3, 3]
    assert sim.allocate_counts(0, [1, 2]).tolist() == [0, 0]
    with pytest.raises(ConfigError):
        sim.allocate_counts(5, [0, 0])


def test_formatting_by_hand():
    shortest = sim.format_numbers(np.array([1.05, 1.0, 0.125, 135.0, np.nan]), 2, trim=True)
    assert shortest.tolist() == ["1.05", "1", "0.13", "135", ""]
    fixed = sim.format_numbers(np.array([7.0, 12.25, 0.04]), 1, trim=False)
    assert fixed.tolist() == ["7.0", "12.3", "0.0"]
    per_cell = sim.format_numbers(np.array([0.7, 0.7]), np.array([0, 2]), trim=True)
    assert per_cell.tolist() == ["1", "0.7"]
    day = int((np.datetime64("2013-03-05") - np.datetime64("1970-01-01")).astype(int))
    assert sim.format_dates(np.array([day, day]), np.array([False, True])).tolist() == ["2013-03-05", "05/03/2013"]
    assert sim.subject_ids(np.array([7, 30, 1000]), 3).tolist() == ["K2-007", "K2-030", "K2-1000"]


def test_derive_rng_depends_on_seed_and_name_only():
    a = sim.derive_rng(1, "vas").integers(0, 1 << 62, size=4)
    assert (a == sim.derive_rng(1, "vas").integers(0, 1 << 62, size=4)).all()
    assert not (a == sim.derive_rng(2, "vas").integers(0, 1 << 62, size=4)).all()
    assert not (a == sim.derive_rng(1, "labs").integers(0, 1 << 62, size=4)).all()


# ---------------------------------------------------------------------------------------------------
# calibration of the shipped-size dataset (STUDY.md, "Calibration targets")


def test_cohort_counts(shipped):
    subjects = shipped.truth["subjects.csv"]
    assert len(subjects) == 30
    assert subjects["subject_id"].tolist() == [f"K2-{i:03d}" for i in range(1, 31)]
    assert subjects["etiology"].value_counts().to_dict() == {"b12_deficiency": 17, "diabetes": 7, "both": 6}
    deficient = subjects["etiology"].isin(["b12_deficiency", "both"])
    residual = deficient & (subjects["prior_b12_therapy"] == "yes")
    assert residual.sum() == 10 and (subjects.loc[~deficient, "prior_b12_therapy"] == "no").all()
    assert (subjects["status"] == "completed").all() and subjects["withdrawal_reason"].isna().all()
    assert subjects["age_years"].between(30, 70).all()
    assert set(subjects["sex"]) == {"F", "M"} and set(subjects["site"]) == {"SITE-A", "SITE-B"}
    assert (subjects["anticoagulant"] == "no").all()
    diabetic = subjects["etiology"].isin(["diabetes", "both"])
    assert (subjects.loc[~diabetic, "metformin"] == "no").all()
    assert (subjects.loc[diabetic, "metformin"] == "yes").sum() == 11  # 85 % of 13
    assert subjects.loc[diabetic, "diabetes_duration_years"].between(1, 15).all()
    assert subjects.loc[~diabetic, "diabetes_duration_years"].isna().all()
    bmi = subjects["weight_kg"] / (subjects["height_cm"] / 100) ** 2
    assert bmi.between(13, 45).all()


def test_baseline_vas(shipped):
    diary = shipped.truth["symptom_diary.csv"]
    base = diary[diary["visit"] == "Baseline"].pivot(index="subject_id", columns="symptom", values="vas_cm")
    assert base[["tingling", "numbness"]].stack().between(7.0, 9.5).all()
    assert base[["weakness", "fatigue", "cramps"]].stack().between(5.0, 8.5).all()
    composite = base[list(LAYOUT.symptoms)].mean(axis=1)
    assert composite.between(6.0, 9.0).all()
    severe = composite >= 8.0
    assert severe.sum() == 15  # severe_fraction 0.5 of 30
    assert composite[~severe].between(6.0, 7.9).all() and composite[severe].between(8.0, 9.0).all()


def test_vas_course(shipped):
    diary = shipped.truth["symptom_diary.csv"]
    values = diary["vas_cm"].dropna()
    assert values.between(0.0, 10.0).all()
    assert np.allclose(values * 10, np.round(values * 10))  # one decimal
    assert diary["visit"].value_counts().to_dict() == {v: 150 for v in LAYOUT.diary_visits}
    composite = _composites(diary)
    severe = composite["Baseline"] >= 8.0
    for group in (severe, ~severe):
        assert 3.5 <= composite.loc[group, "Week 4"].median() <= 5.0
        assert 1.0 <= composite.loc[group, "Week 8"].median() <= 2.0
    assert composite["Week 4"].between(3.0, 5.5).all()
    assert composite["Week 8"].between(1.0, 2.0).all()
    assert ((composite["Baseline"] > composite["Week 4"]) & (composite["Week 4"] > composite["Week 8"])).all()
    by = diary.pivot_table(index=["subject_id", "symptom"], columns="visit", values="vas_cm").reset_index()
    tn = by["symptom"].isin(["tingling", "numbness"])
    assert by.loc[tn, "Week 8"].between(0.5, 1.5).all() and abs(by.loc[tn, "Week 8"].mean() - 1.0) < 0.25
    assert by.loc[~tn, "Week 8"].between(1.5, 2.5).all()
    fall = by["Baseline"] - by["Week 8"]
    assert fall[tn].mean() - fall[~tn].mean() >= 2.0  # tingling and numbness fall clearly more


def test_one_impossible_vas_away_from_analysed_visits(shipped):
    diary = shipped.truth["symptom_diary.csv"]
    missing = diary[diary["vas_cm"].isna()]
    assert len(missing) == 1 and missing["visit"].iloc[0] not in ("Baseline", "Week 4", "Week 8")
    assert _composites(diary)[["Baseline", "Week 4", "Week 8"]].notna().all().all()


def test_dates_within_windows(shipped, config):
    subjects = shipped.truth["subjects.csv"].set_index("subject_id")
    consent, first, last = (_days(subjects[c]) for c in ("consent_date", "first_dose_date", "last_dose_date"))
    assert ((first - consent >= 0) & (first - consent <= 7)).all()
    assert (last - first == 55).all()
    first_of = pd.Series(first, index=subjects.index)
    consent_of = pd.Series(consent, index=subjects.index)
    diary = shipped.truth["symptom_diary.csv"]
    week = diary["visit"].map({v: k for k, v in enumerate(LAYOUT.diary_visits)}).to_numpy()
    offset = _days(diary["assessment_date"]) - first_of[diary["subject_id"]].to_numpy() - 7 * week
    assert (offset[week == 0] == 0).all()
    assert (np.abs(offset) <= min(2, config["protocol"]["diary"]["window_days"])).all()
    labs = shipped.truth["labs.csv"]
    lab_week = labs["visit"].map(dict(zip(LAYOUT.clinic_visits, LAYOUT.clinic_weeks, strict=True))).to_numpy()
    sample = _days(labs["sample_date"])
    lab_offset = sample - first_of[labs["subject_id"]].to_numpy() - 7 * lab_week
    assert (np.abs(lab_offset) <= 3).all() and (lab_offset[lab_week == 0] <= 0).all()
    assert (sample >= consent_of[labs["subject_id"]].to_numpy()).all()
    # one sample date per subject and visit
    assert (labs.groupby(["subject_id", "visit"])["sample_date"].nunique() == 1).all()


def test_lab_panel_complete_and_safe(shipped, params):
    labs = _lab_frame(shipped, params)
    tests = list(params["lab_units"]["tests"])
    assert len(tests) == 18 and len(labs) == 30 * 3 * 18
    per_visit = labs.groupby(["subject_id", "visit"])["test_code"].apply(list)
    assert all(codes == tests for codes in per_visit)
    standards = params["lab_standards"]["tests"]
    organ = ["WBC", "PLT", "ALT", "AST", "ALP", "TBIL", "ALB", "CREAT", "UREA", "NA", "K", "PT", "INR"]
    for test in organ:
        rows = labs[labs["test_code"] == test]
        spec = standards[test]["range"]
        low = rows["sex"].map(lambda s, spec=spec: (spec[s] if isinstance(spec, dict) else spec)[0])
        high = rows["sex"].map(lambda s, spec=spec: (spec[s] if isinstance(spec, dict) else spec)[1])
        assert (rows["value"] >= low - 1e-9).all() and (rows["value"] <= high + 1e-9).all(), test
        # no meaningful change: within-subject spread well inside the range width
        spread = rows.groupby("subject_id")["value"].agg(lambda v: v.max() - v.min())
        assert (spread <= 0.5 * (high.max() - low.min())).all(), test


def test_b12_haematology_and_glycaemia(shipped, params):
    labs = _lab_frame(shipped, params)
    subjects = shipped.truth["subjects.csv"].set_index("subject_id")
    untreated = _untreated_b12(subjects)
    assert untreated.sum() == 13
    wide = labs.pivot_table(index="subject_id", columns=["test_code", "visit"], values="value")
    b12 = wide["B12"]
    assert b12.loc[untreated, "Baseline"].between(80, 190).all()
    assert b12.loc[untreated, ["Week 4", "Week 8"]].stack().between(300, 900).all()
    assert b12.loc[~untreated].stack().between(300, 900).all()
    lln = subjects["sex"].map({"F": 12.0, "M": 13.0})
    hgb, mcv = wide["HGB"], wide["MCV"]
    assert (hgb.loc[untreated, "Baseline"] < lln[untreated]).all()
    assert (mcv.loc[untreated, "Baseline"] > 100).all()
    assert (hgb.loc[untreated, "Week 8"] > hgb.loc[untreated, "Baseline"]).all()
    assert (mcv.loc[untreated, "Week 8"] < mcv.loc[untreated, "Baseline"]).all()
    assert (hgb.loc[~untreated].ge(lln[~untreated], axis=0)).all().all()
    assert mcv.loc[~untreated].stack().between(80, 100).all()
    diabetic = subjects["etiology"].isin(["diabetes", "both"])
    assert wide["HBA1C"].loc[diabetic].stack().between(7.0, 9.0).all()
    assert wide["GLUCF"].loc[diabetic].stack().between(130, 200).all()
    assert wide["HBA1C"].loc[~diabetic].stack().between(4.0, 5.6).all()
    assert wide["GLUCF"].loc[~diabetic].stack().between(70, 100).all()


def test_site_units_and_reference_ranges(shipped, params):
    labs = _lab_frame(shipped, params)
    site_b = params["simulation"]["sites"]["SITE-B"]
    standard_unit = {t: spec["unit"] for t, spec in params["lab_units"]["tests"].items()}
    expected_unit = np.where(
        labs["site"] == "SITE-B",
        labs["test_code"].map(lambda t: site_b["units"].get(t, standard_unit[t])),
        labs["test_code"].map(standard_unit),
    )
    assert (labs["unit"].to_numpy() == expected_unit).all()
    assert (labs.loc[labs["test_code"] == "HGB", "unit"].isin(["g/dL", "g/L"])).all()
    # SI results at a realistic precision: integers for umol/L, g/L and pmol/L
    si_integers = labs[(labs["site"] == "SITE-B") & labs["test_code"].isin(["TBIL", "CREAT", "HGB", "B12"])]
    assert si_integers["result"].str.fullmatch(r"\d+").all()
    blank = labs["ref_low"].isna()
    assert (blank == labs["ref_high"].isna()).all()
    assert not blank[labs["site"] == "SITE-A"].any()
    b_rows = labs["site"] == "SITE-B"
    assert (blank[b_rows] == labs.loc[b_rows, "test_code"].isin(site_b["tests_without_reference_range"])).all()
    assert (labs.loc[~blank, "ref_low"] < labs.loc[~blank, "ref_high"]).all()


def test_dosing_and_adverse_events(shipped):
    dosing = shipped.truth["dosing.csv"]
    assert dosing.groupby("subject_id")["visit"].apply(list).map(lambda v: v == ["Week 4", "Week 8"]).all()
    assert (dosing["capsules_dispensed"] == 60).all()
    taken = dosing.groupby("subject_id").apply(lambda d: (d["capsules_dispensed"] - d["capsules_returned"]).sum())
    compliance = 100 * taken / (2 * 56)
    assert compliance.between(90, 100).all()
    assert shipped.truth["adverse_events.csv"].empty
    assert sim.raw_csv_bytes(shipped.raw["adverse_events.csv"]) == (
        b"subject_id,term,onset_date,end_date,severity,serious,related,action,outcome\n"
    )


def test_dataset_meta(shipped, config):
    meta = shipped.dataset_meta
    assert meta["simulated"] is True and meta["seed"] == config["seed"] and meta["n_subjects"] == 30
    assert meta["generator"] == f"k2trial.simulation {sim.GENERATOR_VERSION}"
    assert "SIMULATED" in meta["description"] and "Kulkarni" in meta["description"]


# ---------------------------------------------------------------------------------------------------
# the mess


def _normalise(kind: str, column: str, value: str, codebook: dict, lab_units: dict, site_day_first: bool) -> str:
    """An independent reading of the contract: the canonical text a cleaning step must produce."""
    v = value.strip()
    if column == "subject_id":
        match = re.fullmatch(codebook["subject_id"]["accepted_pattern"], v, flags=re.IGNORECASE)
        return f"K2-{int(match.group(1)):0{codebook['subject_id']['pad_width']}d}"
    if column == "visit":
        key = re.sub(r"\s+", " ", v.lower())
        if key in codebook["visits"]["baseline_aliases"]:
            return "Baseline"
        match = re.fullmatch(codebook["visits"]["week_pattern"], key)
        return f"Week {int(match.group(1))}"
    if column == "symptom":
        key = v.lower()
        synonyms = codebook["symptoms"]["synonyms"]
        return key if key in codebook["symptoms"]["canonical"] else next(s for s, a in synonyms.items() if key in a)
    if column in ("metformin", "prior_b12_therapy", "anticoagulant"):
        return next(level for level, spellings in codebook["yes_no"].items() if v.lower() in spellings)
    if column == "sex":
        synonyms = codebook["files"]["subjects.csv"]["columns"]["sex"]["synonyms"]
        return v if v in synonyms else next(s for s, a in synonyms.items() if v.lower() in a)
    if column == "unit":
        key = re.sub(r"\s+", "", v).lower()
        return lab_units["unit_aliases"][key]
    if column == "test_code":
        return next(code for code, t in lab_units["tests"].items() if v.upper() in [code, *t["aliases"]])
    if column.endswith("_date"):
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            return v
        assert site_day_first, value
        day, month, year = re.fullmatch(r"(\d{2})[/-](\d{2})[/-](\d{4})", v).groups()
        return f"{year}-{month}-{day}"
    if column in ("vas_cm", "result"):
        text = v.replace(",", ".")
        if column == "vas_cm" and not 0.0 <= float(text) <= 10.0:
            return ""  # impossible: missing after cleaning
        return text
    raise AssertionError(f"no reading for {kind} in {column}")


def test_every_mess_kind_in_shipped_files(shipped):
    mess = shipped.mess
    assert list(mess.columns) == sim.MESS_COLUMNS
    assert set(mess["kind"]) == set(sim.MESS_KINDS)
    assert (mess["kind"] == "duplicate_row").sum() == 1 and (mess["kind"] == "impossible_vas").sum() == 1
    text = {name: sim.raw_csv_bytes(shipped.raw[name]).decode("utf-8") for name in LAYOUT.files}
    assert re.search(r',"\d+,\d+",', text["symptom_diary.csv"])  # a quoted decimal comma
    assert ",SGPT," in text["labs.csv"] and ",<0.2,mg/dL," in text["labs.csv"]
    assert re.search(r",\d{2}/\d{2}/\d{4},", text["labs.csv"])
    lines = text["symptom_diary.csv"].splitlines()
    duplicate_row = int(mess.loc[mess["kind"] == "duplicate_row", "raw_row"].iloc[0])
    assert lines[duplicate_row - 1] == lines[duplicate_row - 2]  # row numbers count the header as row 1
    assert len(lines) == len(set(lines)) + 1


@pytest.mark.parametrize("study_name", ["shipped", "large"])
def test_mess_explains_every_raw_cell(study_name, request):
    """raw = truth written as text, except exactly the cells listed in `mess` (and the duplicated record)."""
    study = request.getfixturevalue(study_name)
    mess = study.mess
    for name in LAYOUT.files:
        raw = study.raw[name]
        truth = study.truth[name]
        duplicates = mess.loc[(mess["file"] == name) & (mess["kind"] == "duplicate_row"), "raw_row"].to_numpy()
        keep = ~np.isin(np.arange(len(raw)) + 2, duplicates)
        raw_rows = np.arange(len(raw))[keep] + 2
        raw = raw[keep].reset_index(drop=True)
        assert len(raw) == len(truth), name
        for column in LAYOUT.columns[name]:
            values = truth[column]
            if column == "vas_cm":
                expected = values.map(lambda x: "" if np.isnan(x) else f"{x:.1f}")
            elif pd.api.types.is_numeric_dtype(values):
                expected = values.map(lambda x: "" if pd.isna(x) else f"{x:.12g}")
            else:
                expected = values.fillna("")
            expected = expected.to_numpy(dtype=object, copy=True)  # never write into the study
            cells = mess[(mess["file"] == name) & (mess["column"] == column)].drop_duplicates(["raw_row"])
            position = np.searchsorted(raw_rows, cells["raw_row"].to_numpy())
            assert (raw_rows[position] == cells["raw_row"].to_numpy()).all()
            assert (expected[position] == cells["clean_value"].to_numpy(dtype=object)).all(), (name, column)
            expected[position] = cells["raw_value"].to_numpy(dtype=object)
            mismatch = np.flatnonzero(raw[column].to_numpy(dtype=object) != expected)
            assert not len(mismatch), (name, column, raw[column].iloc[mismatch[:3]].tolist())


def test_mess_variants_are_accepted_by_the_contract(shipped, large, codebook, params):
    for study in (shipped, large):
        subjects = study.truth["subjects.csv"].set_index("subject_id")["site"]
        day_first = {site: bool(spec["day_first"]) for site, spec in codebook["sites"].items()}
        cells = study.mess[study.mess["column"] != "*"]
        cells = cells.drop_duplicates(["file", "raw_row", "column"])
        raw_subject = {name: study.raw[name]["subject_id"].to_numpy() for name in LAYOUT.files}
        for row in cells.itertuples(index=False):
            subject = _normalise("", "subject_id", raw_subject[row.file][row.raw_row - 2], codebook, {}, False)
            got = _normalise(
                row.kind, row.column, row.raw_value, codebook, params["lab_units"], day_first[subjects[subject]]
            )
            assert got == row.clean_value, row


def test_site_date_order_agrees_with_the_codebook(params, codebook):
    sites = params["simulation"]["sites"]
    assert {name: spec["day_first"] for name, spec in sites.items()} == {
        name: spec["day_first"] for name, spec in codebook["sites"].items()
    }


def test_mess_rates_stay_small_for_large_n(large):
    counts = large.mess["kind"].value_counts()
    cells = sum(table.size for table in large.truth.values())  # about 1.45 million
    random_kinds = [k for k in sim.MESS_KINDS if k not in ("day_first_date", "si_unit")]
    assert set(random_kinds) <= set(counts.index)
    assert counts[random_kinds].sum() < 0.005 * cells
    assert counts["duplicate_row"] == 45  # 0.0005 x 90,000 diary records
    # systematic kinds: every SITE-B date and every SI unit
    site_b = (large.truth["subjects.csv"]["site"] == "SITE-B").sum()
    assert counts["day_first_date"] == site_b * (3 + 45 + 54)
    assert counts["si_unit"] == site_b * 3 * 5


# ---------------------------------------------------------------------------------------------------
# size, determinism, files


def test_2000_subjects_same_structure(large, params):
    assert {k: len(v) for k, v in large.truth.items()} == {
        "subjects.csv": 2000,
        "symptom_diary.csv": 90000,
        "labs.csv": 108000,
        "adverse_events.csv": 0,
        "dosing.csv": 4000,
    }
    assert len(large.raw["symptom_diary.csv"]) == 90045
    subjects = large.truth["subjects.csv"]
    assert subjects["etiology"].value_counts()[["b12_deficiency", "diabetes", "both"]].tolist() == [1133, 467, 400]
    deficient = subjects["etiology"].isin(["b12_deficiency", "both"])
    # residual 10/23 of the 1533 B12-deficient = 666.5 -> 667 (largest remainder)
    assert (deficient & (subjects["prior_b12_therapy"] == "yes")).sum() == 667
    assert subjects["subject_id"].iloc[[0, 999, 1999]].tolist() == ["K2-001", "K2-1000", "K2-2000"]
    composite = _composites(large.truth["symptom_diary.csv"])
    assert composite["Baseline"].between(6.0, 9.0).all() and composite["Week 8"].between(1.0, 2.0).all()
    assert (composite["Baseline"] >= 8.0).sum() == 1000
    for name in LAYOUT.files:
        assert list(large.raw[name].columns) == list(LAYOUT.columns[name])
        assert list(large.truth[name].columns) == list(LAYOUT.columns[name])
        assert all(str(dtype) == "str" for dtype in large.raw[name].dtypes)


def test_same_seed_same_bytes_other_seed_other_bytes(shipped, config, params):
    again = sim.dataset_file_bytes(sim.generate_study(30, config["seed"], params))
    first = sim.dataset_file_bytes(shipped)
    assert again == first
    other = sim.dataset_file_bytes(sim.generate_study(30, config["seed"] + 1, params))
    for name in ("subjects.csv", "symptom_diary.csv", "labs.csv", "dosing.csv"):
        assert other[name] != first[name]


def test_write_raw_dataset_round_trip(shipped, tmp_path):
    digests = sim.write_raw_dataset(shipped, tmp_path)
    expected = sim.dataset_file_bytes(shipped)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(DATASET_FILES)
    for name in DATASET_FILES:
        data = (tmp_path / name).read_bytes()
        assert data == expected[name], name
        assert digests[name] == hashlib.sha256(data).hexdigest()
    sums = (tmp_path / "SHA256SUMS").read_text().splitlines()
    assert [line.split("  ")[1] for line in sums] == sorted(n for n in DATASET_FILES if n != "SHA256SUMS")
    for line in sums:
        digest, name = line.split("  ")
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest
    for name in LAYOUT.files:  # `raw` is exactly what a reader of the file sees
        read = read_raw_csv(tmp_path / name).drop(columns="_row")
        pd.testing.assert_frame_equal(read, shipped.raw[name], check_dtype=False)
    meta = _load(tmp_path / "dataset.yaml")
    assert meta == shipped.dataset_meta


def test_shipped_files_equal_a_fresh_generation(shipped):
    """The committed data/raw files cannot drift from the generator and the config seed."""
    fresh = sim.dataset_file_bytes(shipped)
    for name in DATASET_FILES:
        assert (ROOT / "data/raw" / name).read_bytes() == fresh[name], f"data/raw/{name} differs: regenerate it"


@pytest.mark.workflow
def test_regenerate_shipped_data_rewrites_the_same_files(workflow_dir):
    """The rule recognises the shipped dataset as its own (dataset.yaml names the generator) and rewrites it
    byte for byte; real data (another generator) it refuses to overwrite."""
    result = run_snakemake(workflow_dir, "regenerate_shipped_data")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in DATASET_FILES:
        assert (workflow_dir / "data/raw" / name).read_bytes() == (ROOT / "data/raw" / name).read_bytes(), name
    meta = workflow_dir / "data/raw/dataset.yaml"
    meta.write_text(meta.read_text().replace(sim.GENERATOR_NAME, "a site's export"))
    refused = run_snakemake(workflow_dir, "regenerate_shipped_data", "--forceall")
    assert refused.returncode != 0 and "refusing to overwrite" in refused.stderr + refused.stdout


#: What workflow/scripts/simulate_dataset.py does (rule simulate_dataset), run in a process of its own.
WRITE_DATASET = """
import sys
from pathlib import Path
import yaml
from k2trial.data import simulation
root, out = Path(sys.argv[1]), Path(sys.argv[2])
load = lambda p: yaml.safe_load((root / p).read_text())
config = {**load("config/config.yaml"), **load("config/studies/pilot2013.yaml")}
files = (load(config["lab_units"]), load(config["lab_standards"]), load(config["codebook"]))
params = simulation.build_params(config, *files)
study = simulation.generate_study(12, 5, params)
simulation.write_raw_dataset(study, out / "raw")
simulation.write_truth_tables(study, out / "t")
"""


def test_written_dataset_is_independent_of_hash_seed(tmp_path, config, params):
    env = dict(os.environ, PYTHONHASHSEED="123")
    subprocess.run([sys.executable, "-c", WRITE_DATASET, str(ROOT), str(tmp_path)], cwd=ROOT, env=env, check=True)
    expected = sim.dataset_file_bytes(sim.generate_study(12, 5, params))
    for name in DATASET_FILES:
        assert (tmp_path / "raw" / name).read_bytes() == expected[name], name
    truth = read_raw_csv(tmp_path / "t" / "mess.csv")
    assert len(truth) == len(sim.generate_study(12, 5, params).mess)


def test_inconsistent_parameters_are_config_errors(params):
    wide = copy.deepcopy(params)
    wide["simulation"]["diary_jitter_days"] = wide["visit_windows"]["diary_days"] + 1
    with pytest.raises(ConfigError, match="diary_jitter_days"):
        sim.generate_study(10, 1, wide)
    impossible = copy.deepcopy(params)
    impossible["simulation"]["vas"]["baseline_composite"]["severe"] = [8.95, 9.0]
    with pytest.raises(ConfigError, match="incompatible"):
        sim.generate_study(10, 1, impossible)
    alias = copy.deepcopy(params)
    alias["simulation"]["mess"]["test_code_aliases"] = {"ALT": "SGOT"}
    with pytest.raises(ConfigError, match="SGOT"):
        sim.generate_study(10, 1, alias)
    with pytest.raises(ConfigError, match="n_subjects"):
        sim.generate_study(0, 1, params)


def test_generator_layout_is_the_contracts():
    # the generator writes the files, columns, visits and symptoms of data/raw/codebook.yaml, in its order
    from k2trial.data.contract import read_contract

    contract = read_contract(ROOT / "data/raw/codebook.yaml", ROOT / "config/lab_units.yaml")
    assert LAYOUT.files == contract.table_names
    for name in contract.table_names:
        assert LAYOUT.columns[name] == contract.tables[name].column_names, name
    assert LAYOUT.diary_visits == tuple(v.label for v in contract.diary_visits)
    assert (LAYOUT.clinic_visits, LAYOUT.clinic_weeks) == (contract.clinic_visits, (0, 4, 8))
    assert LAYOUT.symptoms == contract.symptoms


# ---------------------------------------------------------------------------------------------------
# the trajectory model's between-subject spread (simulation.vas.between_subject)

SPREAD = {
    "model": "trajectory",
    "anchors": {0: [4.5, 5.5], 4: [4.0, 5.0], 8: [5.5, 6.5], 12: [5.0, 6.0]},
    "between_subject": {
        "sd": {"baseline": 1.0, "follow_up": 1.2},
        "correlation": {"baseline_follow_up": 0.5, "follow_up": 0.7, "items": 0.4},
    },
    "noise_sd": 0.15,
}
WEEKS = list(range(13))


def test_clipped_normal_mean_is_the_integral_of_the_clipped_values():
    from scipy import integrate, stats

    for mu, sd in ((9.0, 1.5), (1.0, 2.0), (5.0, 0.5), (11.0, 1.0)):
        inside = integrate.quad(lambda x, m=mu, s=sd: x * stats.norm.pdf(x, m, s), 0.0, 10.0)[0]
        expected = inside + 10.0 * stats.norm.sf(10.0, mu, sd)  # below 0 contributes 0 x P
        assert sim._clipped_normal_mean(mu, sd, 0.0, 10.0) == pytest.approx(expected, abs=1e-9), (mu, sd)
    # a mean of 9 recorded on 0-10 with SD 1.5 needs a latent mean above 9 (a quarter of the values clip at 10)
    latent = sim._latent_mean(9.0, 1.5)
    assert 9.2 < latent < 9.4
    assert sim._clipped_normal_mean(latent, 1.5, 0.0, 10.0) == pytest.approx(9.0, abs=1e-9)
    assert sim._latent_mean(9.0, 0.0) == 9.0
    with pytest.raises(ConfigError, match="between-subject SD of 0"):
        sim._latent_mean(10.0, 1.0)


def test_between_subject_spread_has_the_configured_means_sds_and_correlations():
    # far from the scale's ends (4 SDs) nothing clips: the recorded values have the configured moments
    n = 20000
    vas = sim.simulate_vas_tenths(sim.derive_rng(3, "vas"), np.zeros(n, bool), SPREAD, ["a", "b"], WEEKS) / 10.0
    assert vas.shape == (n, 13, 2)
    for week, (low, high) in SPREAD["anchors"].items():
        # centred within the group: the mean is the range's midpoint up to the rounding to 0.1
        assert np.abs(vas[:, week, :].mean(axis=0) - (low + high) / 2).max() < 0.002, week
        sd = 1.0 if week == 0 else 1.2
        assert np.abs(vas[:, week, :].std(axis=0, ddof=1) - sd).max() < 0.03, week
    corr = np.corrcoef(vas[:, [0, 4, 8, 12], 0].T)
    assert corr[0, 1:] == pytest.approx([0.5] * 3, abs=0.02)
    assert [corr[1, 2], corr[1, 3], corr[2, 3]] == pytest.approx([0.7] * 3, abs=0.02)
    assert np.corrcoef(vas[:, 8, 0], vas[:, 8, 1])[0, 1] == pytest.approx(0.4, abs=0.02)
    # (week 0, item a) with (week 8, item b): the weeks' correlation times the items'
    assert np.corrcoef(vas[:, 0, 0], vas[:, 8, 1])[0, 1] == pytest.approx(0.5 * 0.4, abs=0.02)
    # between anchors: linear in the subject's anchor values plus the weekly noise (SD 0.15)
    middle = (vas[:, 8, :] + vas[:, 12, :]) / 2
    assert (vas[:, 10, :] - middle).std() == pytest.approx(0.15, abs=0.01)


def test_between_subject_group_mean_survives_clipping_and_values_stay_on_the_scale():
    from scipy import stats

    n = 20000
    spread = {"sd": {"baseline": 1.5, "follow_up": 2.0}, "correlation": {"baseline_follow_up": 0.5, "follow_up": 0.7}}
    vas = dict(SPREAD, between_subject=spread, anchors={0: [8.4, 9.6], 4: [5.0, 6.5], 8: [3.0, 4.2], 12: [1.4, 2.6]})
    tenths = sim.simulate_vas_tenths(sim.derive_rng(4, "vas"), np.zeros(n, bool), vas, ["pain"], WEEKS)
    assert tenths.min() == 0 and tenths.max() == 100  # clipped at both ends, whole tenths
    recorded = tenths / 10.0
    # the recorded (clipped) mean is the midpoint: 9.0 at baseline although a third of the values are 10.0 (the
    # latent normal above 9.95)
    at_top = stats.norm.sf(9.95, sim._latent_mean(9.0, 1.5), 1.5)
    assert 0.3 < at_top < 0.36
    assert (recorded[:, 0, 0] == 10.0).mean() == pytest.approx(at_top, abs=0.01)
    for week, target in ((0, 9.0), (4, 5.75), (8, 3.6), (12, 2.0)):
        assert recorded[:, week, 0].mean() == pytest.approx(target, abs=0.02), week


def test_between_subject_groups_and_errors():
    # by group: each group's own mean; the shared spread
    vas = dict(
        SPREAD, anchors_by="arm", anchors={"T": {0: [8.0, 9.0], 12: [2.0, 3.0]}, "C": {0: [8.0, 9.0], 12: [7.0, 8.0]}}
    )
    groups = np.array(["T", "C"] * 2000, dtype=object)
    tenths = sim.simulate_vas_tenths(sim.derive_rng(5, "vas"), np.zeros(4000, bool), vas, ["pain"], WEEKS, groups)
    assert tenths[groups == "T", 12, 0].mean() / 10 == pytest.approx(2.5, abs=0.03)
    assert tenths[groups == "C", 12, 0].mean() / 10 == pytest.approx(7.5, abs=0.03)
    # without between_subject every subject is uniform in the anchor's range (the earlier model, unchanged)
    uniform = {"model": "trajectory", "anchors": {0: [8.0, 9.0], 12: [2.0, 3.0]}, "noise_sd": 0.15}
    old = sim.simulate_vas_tenths(sim.derive_rng(5, "vas"), np.zeros(500, bool), uniform, ["pain"], WEEKS)
    assert old[:, 0, 0].min() >= 80 and old[:, 0, 0].max() <= 90
    bad = copy.deepcopy(SPREAD)
    bad["between_subject"]["correlation"] = {"baseline_follow_up": 0.95, "follow_up": 0.1, "items": 0.4}
    with pytest.raises(ConfigError, match="not a valid correlation matrix"):
        sim.simulate_vas_tenths(sim.derive_rng(1, "vas"), np.zeros(10, bool), bad, ["a"], WEEKS)
    no_items = copy.deepcopy(SPREAD)
    del no_items["between_subject"]["correlation"]["items"]
    with pytest.raises(ConfigError, match="correlation.items"):
        sim.simulate_vas_tenths(sim.derive_rng(1, "vas"), np.zeros(10, bool), no_items, ["a", "b"], WEEKS)
    sim.simulate_vas_tenths(sim.derive_rng(1, "vas"), np.zeros(10, bool), no_items, ["a"], WEEKS)  # one item: none
