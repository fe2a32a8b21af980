"""The CDISC pilot (CDISCPILOT01, ../shared/cdisc_pilot) read from its SDTM, validated, cleaned, derived and graded
at library level, and checked against the pharmaverse package admiral's ADaM of the same data
(../shared/cdisc_pilot/adam_reference: ADLB's ATOXGRL/ATOXGRH under CTCAE v4.03, ADAE's TRTEMFL, ADSL's TRT01A).

What the pilot needs beyond config/sdtm_mapping.yaml and k2trial.data.sdtm.CDISC_PILOT_STUDY (arms, control arm,
CTCAE version, subject-ID pattern and sites, fields not collected, lab panel, record keys) is its study config,
config/studies/cdiscpilot.yaml, read here as the pipeline reads it; tests/test_cdisc_pilot_workflow.py builds the
pilot with Snakemake. Skipped when the pilot is absent (CI has it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from k2trial.analysis.safety import adverse_events
from k2trial.analysis.safety.conclusion import SafetySettings, analyse_safety
from k2trial.analysis.safety.ctcae import criteria_file, grade_records, load_ctcae_criteria
from k2trial.analysis.safety.standards import load_lab_standards
from k2trial.core.errors import ConfigError
from k2trial.core.io import read_yaml
from k2trial.core.values import compare
from k2trial.core.vocabulary import visit_windows
from k2trial.data import sdtm
from k2trial.data.cleaning import clean_dataset
from k2trial.data.contract import load_contract, normalise_test_codes
from k2trial.data.derivation import derive_labs
from k2trial.data.raw_files import RawDataset
from k2trial.data.validation import validate_dataset

ROOT = Path(__file__).resolve().parents[1]
#: ../shared beside the repository (CI); K2TRIAL_SHARED names another folder (a git worktree elsewhere).
SHARED = Path(os.environ.get("K2TRIAL_SHARED") or Path(__file__).resolve().parents[2] / "shared")
PILOT = SHARED / "cdisc_pilot"
ADAM = PILOT / "adam_reference"
#: The pilot's study config: every fact of the pilot the pipeline and these tests use (arms, lab panel, record keys,
#: fields not collected, visit schedule, CTCAE version, the dataset description of the SDTM folder).
STUDY = read_yaml(ROOT / "config" / "studies" / "cdiscpilot.yaml")
PROTOCOL, ARMS = STUDY["protocol"], STUDY["arms"]
CONFIG = read_yaml(ROOT / "config" / "config.yaml")

needs_pilot = pytest.mark.skipif(
    not (PILOT / "sdtm").is_dir(), reason=f"CDISC pilot data not present at {PILOT} (CI has ../shared/cdisc_pilot)"
)


def _key(lbseq: pd.Series) -> pd.Series:
    """--SEQ as the raw tables write it (%.12g): "12" for 12.0."""
    return pd.to_numeric(lbseq).map(lambda v: f"{v:.12g}")


@pytest.fixture(scope="module")
def mapping():
    return sdtm.load_mapping(ROOT / "config" / "sdtm_mapping.yaml")


@pytest.fixture(scope="module")
def domains():
    return sdtm.read_sdtm(PILOT / "sdtm")


@pytest.fixture(scope="module")
def raw(domains, mapping):
    return sdtm.sdtm_to_raw(domains, mapping, sdtm.CDISC_PILOT_STUDY)


def pilot_weeks() -> list[int]:
    """The weeks of the pilot's scheduled visits (day 7 x week + 1, CDISC_PILOT_STUDY `visits`)."""
    return [(int(v["VISITDY"]) - 1) // 7 for v in sdtm.CDISC_PILOT_STUDY["visits"]]


def test_the_study_config_schedules_the_visits_of_the_sdtm_mapping():
    assert PROTOCOL["diary"]["weeks"] == pilot_weeks() == [int(v["week"]) for v in PROTOCOL["clinic_visits"]]


@pytest.fixture(scope="module")
def contract(raw):
    """The pilot's contract as the pipeline builds it from the study config (k2trial.data.contract.load_contract):
    the fields it does not collect not required, its disposition levels, no diary and no capsule counts (safety
    only), its scheduled visits as the clinic visits, the SDTM record keys (lbseq, aeseq) as key columns, its arms
    (with the actual arm) and its declared lab panel."""
    codebook = read_yaml(ROOT / "data" / "raw" / "codebook.yaml")
    return load_contract(codebook, read_yaml(ROOT / "config" / "lab_units.yaml"), PROTOCOL, ARMS)


@pytest.fixture(scope="module")
def pipeline(raw, contract):
    """Validation, cleaning and lab derivation of the pilot's raw tables, timed."""
    tables = {}
    for name, table in raw.items():
        frame = table[[c for c in contract.tables[name].column_names if c in table.columns]].copy()
        frame.insert(0, "_row", np.arange(len(frame)) + 2)
        tables[name] = frame
    seconds = {}
    start = time.perf_counter()
    # the study config describes the SDTM folder (its dataset.yaml): subject-ID pattern and sites (ISO dates)
    raw_dataset = RawDataset(tables=tables, description=STUDY["dataset"])
    result = validate_dataset(raw_dataset, contract, visit_windows(PROTOCOL))
    seconds["validation"] = time.perf_counter() - start
    start = time.perf_counter()
    clean = clean_dataset(result, contract)
    seconds["cleaning"] = time.perf_counter() - start
    start = time.perf_counter()
    labs = derive_labs(clean.tables["labs.csv"], clean.tables["subjects.csv"], contract)
    seconds["derivation"] = time.perf_counter() - start
    print(f"\nCDISC pilot: {', '.join(f'{k} {v:.2f} s' for k, v in seconds.items())}")
    return result, clean, labs, seconds


@pytest.fixture(scope="module")
def adlb():
    frame = pd.read_csv(ADAM / "adlb.csv.gz", dtype=str, keep_default_na=False)
    frame = frame[frame["DTYPE"] == ""].copy()
    frame["lbseq"] = _key(frame["LBSEQ"])
    return frame


# --------------------------------------------------------------------------------------------------------------
# Reading the pilot into the raw contract
# --------------------------------------------------------------------------------------------------------------
@needs_pilot
def test_every_pilot_lab_test_is_in_the_panel_in_its_reported_unit(raw, contract):
    labs = raw["labs.csv"]
    codes = normalise_test_codes(labs["test_code"], contract).row_text()
    assert (codes != None).all()  # noqa: E711  every test of the pilot is a test of the contract
    assert set(labs["test_code"]) == set(PROTOCOL["lab_panel"])
    assert labs["test_code"].nunique() == 47
    # aliases of config/lab_units.yaml, and the urine pH recoded by the study mapping
    assert {c: contract.lab_tests[k].code for c, k in zip(labs["test_code"], codes, strict=True)}.items() >= {
        ("BILI", "TBIL"), ("PLAT", "PLT"), ("SODIUM", "NA"), ("VITB12", "B12")
    }  # fmt: skip
    uph = labs[labs["test_code"] == "UPH"]
    assert len(uph) == 874 and set(uph["sdtm_test_code"]) == {"PH"} and set(uph["category"]) == {"URINALYSIS"}
    # the panel's factors are the pilot's own conversions: LBORRES (g/dL, %) / LBSTRESN (mmol/L, fraction)
    lb = sdtm.read_sdtm(PILOT / "sdtm", domains=["LB"])["LB"]
    for code in ("HGB", "HBA1C"):
        rows = lb[lb["LBTESTCD"] == code]
        ratio = pd.to_numeric(rows["LBORRES"]) / rows["LBSTRESN"]
        assert np.allclose(ratio, PROTOCOL["lab_panel"][code]["factor"], rtol=1e-6), code
        assert contract.lab_tests[code].units[contract.lab_tests[code].unit] == 1.0
    # the one text result (urine colour "N") is kept apart, never read as a number
    color = labs[labs["test_code"] == "COLOR"]
    assert (color["result"] == "").all() and set(color["result_text"]) == {"N"} and (color["unit"] == "1").all()
    assert (labs.loc[labs["test_code"] != "COLOR", "result_text"] == "").all()


@needs_pilot
def test_screening_unscheduled_and_retrieval_visits_get_the_window_of_their_study_day(raw):
    labs = raw["labs.csv"]
    windows = sdtm.CDISC_PILOT_STUDY["visit_windows"]["labs"]
    day = pd.to_numeric(labs["study_day"])
    scheduled = {v["VISIT"]: v["label"] for v in sdtm.CDISC_PILOT_STUDY["visits"]}
    listed = labs["sdtm_visit"].isin(list(scheduled))
    assert (labs.loc[listed, "visit"] == labs.loc[listed, "sdtm_visit"].map(scheduled)).all()
    for window in windows:
        inside = ~listed & (day >= (window["from"] or -np.inf)) & (day <= (window["to"] or np.inf))
        assert (labs.loc[inside, "visit"] == window["label"]).all()
    assert set(labs["visit"]) == {v["label"] for v in sdtm.CDISC_PILOT_STUDY["visits"]}
    # every screening record is before the first dose, so it is a baseline candidate
    screening = labs["sdtm_visit"] == "SCREENING 1"
    assert screening.sum() == 9233 and (labs.loc[screening, "visit"] == "Baseline").all()
    moved = labs[~listed]
    assert moved["sdtm_visit"].str.startswith(("SCREENING", "UNSCHEDULED", "RETRIEVAL", "AMBUL ECG")).all()
    assert (moved.set_index("sdtm_visit").loc["RETRIEVAL", "visit"] == "Week 24").all()  # day 170


def test_windows_between_the_scheduled_visits():
    visits = [
        {"label": "Baseline", "VISITDY": 1},
        {"label": "Week 2", "VISITDY": 15},
        {"label": "Week 4", "VISITDY": 29},
    ]
    assert sdtm.windows_between(visits) == [
        {"label": "Baseline", "from": None, "to": 1},
        {"label": "Week 2", "from": 2, "to": 22},
        {"label": "Week 4", "from": 23, "to": None},
    ]


@needs_pilot
def test_the_pilot_validates_cleans_and_derives_without_errors(pipeline, raw, adlb):
    result, clean, labs, seconds = pipeline
    problems = result.problems
    assert result.status == "passed" and (problems["severity"] != "error").all()
    counts = problems.groupby(["file", "rule"]).size().to_dict()
    # fixable: the pilot's test-code aliases (BILI, PLAT, SODIUM, VITB12) and unit spellings (GI/L, TI/L, "1")
    aliased = raw["labs.csv"]["test_code"].isin(["BILI", "PLAT", "SODIUM", "VITB12"])
    assert counts[("labs.csv", "test_code_alias")] == aliased.sum()
    assert set(problems.loc[problems["rule"] == "unit_spelling", "value"]) == {"GI/L", "TI/L", "1"}
    assert set(problems["rule"]) <= {"test_code_alias", "unit_spelling", "visit_window", "baseline_missing"}
    assert {name: len(t) for name, t in clean.tables.items()} == {
        "subjects.csv": 306, "symptom_diary.csv": 0, "labs.csv": 59_580, "adverse_events.csv": 1191, "dosing.csv": 0
    }  # fmt: skip
    assert len(labs) == 59_580
    assert max(seconds.values()) < 5, seconds
    # traceability: every clean lab record keeps its LBSEQ, so every one is an LB record admiral derived from
    ours = clean.tables["labs.csv"]
    keys = set(zip(ours["subject_id"], _key(ours["lbseq"]), strict=True))
    assert keys == set(zip(adlb["USUBJID"], adlb["lbseq"], strict=True))
    # the analysis dataset carries LBSEQ too: every derived record is one LB record, with its reported value
    assert labs["lbseq"].notna().all() and not labs.duplicated(["subject_id", "lbseq"]).any()
    derived = labs.assign(lbseq=_key(labs["lbseq"])).merge(adlb, left_on=["subject_id", "lbseq"],
                                                           right_on=["USUBJID", "lbseq"], validate="1:1")  # fmt: skip
    assert len(derived) == 59_580
    numeric = derived[derived["AVAL"] != ""]
    assert np.allclose(numeric["reported_value"], numeric["AVAL"].astype(float))
    # one baseline: ours (the last non-missing value on or before the first dose) is admiral's, record for record
    ours_base = derived[derived["baseline_record"] & derived["reported_value"].notna()]
    theirs_base = derived[derived["ABLFL"] == "Y"]
    assert set(zip(ours_base["subject_id"], ours_base["lbseq"], strict=True)) == set(
        zip(theirs_base["subject_id"], theirs_base["lbseq"], strict=True)
    )
    assert len(theirs_base) == 9159  # (subject, test) pairs with a baseline


# --------------------------------------------------------------------------------------------------------------
# CTCAE v4.03 against admiral's ADLB (ATOXGRL / ATOXGRH), record by record and term by term
# --------------------------------------------------------------------------------------------------------------
#: Where admiral and we do not both grade a (record, term): what differs, and the CTCAE v4.03 text that decides.
#: (term, test) -> (records, admiral's grades, ours, why). "-" = the term is not graded for that test.
NOT_BOTH_GRADED = {
    ("Anemia", "HGB"): (
        1809,
        "no grade",
        "graded",
        'CTCAE v4.03 Anemia gives mmol/L limits itself: "Hgb <LLN - 6.2 mmol/L" (1), "<6.2 - 4.9 mmol/L" (2), '
        '"<4.9 mmol/L" (3). The pilot reports haemoglobin in mmol/L; admiral\'s SI metadata has g/L only, so '
        "it grades none.",
    ),
    ("Hemoglobin increased", "HGB"): (
        1809,
        "no grade",
        "no grade",
        'CTCAE v4.03 "Increase in >2 gm/dL above ULN or above baseline if baseline is above ULN" is in g/dL only: a '
        "value in mmol/L is not graded (reason unit_not_graded), never converted; admiral has no mmol/L limit either.",
    ),
    ("CD4 lymphocytes decreased", "LYM"): (
        1796,
        "graded",
        "-",
        "admiral's ADLB template maps LBTESTCD LYM (Lymphocytes, all lymphocytes) to CD4 lymphocytes decreased; CTCAE "
        'v4.03 "CD4 lymphocytes decreased" is the CD4 count ("<LLN - 500/mm3"), which the pilot does not measure. '
        'We grade LYM as "Lymphocyte count decreased" / "Lymphocyte count increased" (rows below).',
    ),
    ("Lymphocyte count decreased", "LYM"): (
        1796,
        "-",
        "graded",
        'CTCAE v4.03 "Lymphocyte count decreased": "<LLN - 800/mm3; <LLN - 0.8 x 10e9 /L" ... "<200/mm3"',
    ),
    ("Lymphocyte count increased", "LYM"): (
        1796,
        "-",
        "graded",
        'CTCAE v4.03 "Lymphocyte count increased": ">4000/mm3 - 20,000/mm3" (2), ">20,000/mm3" (3)',
    ),
    ("Blood bilirubin increased", "TBIL"): (
        5,
        "no grade",
        "graded",
        'Censored results (LBSTRESC "<3.42" umol/L, LBSTRESN empty): admiral\'s AVAL is empty, so no grade; the safety '
        "step grades a censored value at its limit: below ULN, grade 0, which holds for any value under 3.42.",
    ),
    ("Hyperglycemia", "GLUC"): (
        1,
        "no grade",
        "graded",
        'A censored result (LBSTRESC "<2.2204" mmol/L): graded at its limit, grade 0 (CTCAE v4.03 Hyperglycemia '
        'grade 3 is ">13.9 - 27.8 mmol/L"), which holds for any lower value.',
    ),
    ("Hypoglycemia", "GLUC"): (
        1,
        "no grade",
        "graded",
        'The same censored glucose "<2.2204" mmol/L: at its limit CTCAE v4.03 Hypoglycemia "<3.0 - 2.2 mmol/L", '
        'grade 2; the value may be lower ("<2.2 - 1.7 mmol/L", grade 3), so grade 2 is a lower bound.',
    ),
    ("Hyperuricemia", "URATE"): (
        1828,
        "-",
        "graded",
        'CTCAE v4.03 "Hyperuricemia": ">ULN - 10 mg/dL (0.59 mmol/L) without physiologic consequences" (1), '
        '">ULN - 10 mg/dL (0.59 mmol/L) with physiologic consequences" (3), ">10 mg/dL; >0.59 mmol/L" (4); admiral\'s '
        "ADLB template gives URATE no term.",
    ),
}


def _grades_with_baseline(clean: dict, labs: pd.DataFrame, criteria) -> pd.DataFrame:
    """Our CTCAE grades of every clean lab record (value, unit and range as reported) with the baseline of the
    derivation (the record that gives `base`: its reported value, and LOW/NORMAL/HIGH against its own range, as
    admiral's BNRIND), keyed by subject, LBSEQ and term."""
    records = clean["labs.csv"]
    value = pd.to_numeric(records["result"].astype("str").str.lstrip("<>"), errors="coerce")
    base = labs[labs["baseline_record"]].set_index(["subject_id", "param"])
    key = pd.MultiIndex.from_arrays([records["subject_id"], records["test_code"]])
    base_value = base["reported_value"].reindex(key).to_numpy(dtype=float)
    low = base["reported_ref_low"].reindex(key).to_numpy(dtype=float)
    high = base["reported_ref_high"].reindex(key).to_numpy(dtype=float)
    indicator = np.where(
        np.isnan(base_value),
        "",
        np.where(compare(base_value, low, "<"), "LOW", np.where(compare(base_value, high, ">"), "HIGH", "NORMAL")),
    )
    start = time.perf_counter()
    graded = grade_records(
        criteria, test=records["test_code"], value=value, unit=records["unit"], lln=records["ref_low"],
        uln=records["ref_high"], baseline=base_value, baseline_indicator=indicator,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    graded["subject_id"] = records["subject_id"].to_numpy(dtype=object)[graded["record"]]
    graded["lbseq"] = _key(records["lbseq"]).to_numpy(dtype=object)[graded["record"]]
    graded.attrs["seconds"] = seconds
    return graded


def _admiral_long(adlb: pd.DataFrame) -> pd.DataFrame:
    """One row per ADLB record and graded term (ATOXDSCL -> ATOXGRL, ATOXDSCH -> ATOXGRH)."""
    low = adlb.assign(term=adlb["ATOXDSCL"], admiral=adlb["ATOXGRL"])
    high = adlb.assign(term=adlb["ATOXDSCH"], admiral=adlb["ATOXGRH"])
    out = pd.concat([low, high], ignore_index=True)
    out = out[out["term"] != ""]
    return out[["USUBJID", "lbseq", "LBTESTCD", "term", "admiral"]].rename(columns={"USUBJID": "subject_id"})


@needs_pilot
def test_ctcae_v403_grades_of_the_pilot_agree_with_admiral(pipeline, adlb):
    _, clean, labs, _ = pipeline
    criteria = load_ctcae_criteria(criteria_file(ROOT / CONFIG["ctcae_criteria_dir"], STUDY["safety"]["ctcae_version"]))
    assert criteria.version == "4.03"
    ours = _grades_with_baseline(clean.tables, labs, criteria)
    assert ours.attrs["seconds"] < 5  # 59,580 records, vectorised
    merged = ours.merge(_admiral_long(adlb), on=["subject_id", "lbseq", "term"], how="outer", indicator=True)
    merged["ours"] = merged["grade"].astype("Float64")
    merged["admiral"] = pd.to_numeric(merged["admiral"], errors="coerce")
    both = merged[(merged["_merge"] == "both") & merged["ours"].notna() & merged["admiral"].notna()]
    disagree = both[both["ours"] != both["admiral"]]
    assert disagree.empty, "disagreements with admiral:\n" + disagree.to_string()
    assert len(both) == 38_095  # records and terms both grade: every one the same grade
    # the records and terms not graded by both, class by class
    test = merged["test"].fillna(merged["LBTESTCD"].replace({"PLAT": "PLT", "BILI": "TBIL", "SODIUM": "NA"}))

    def status(column: str, side: str) -> pd.Series:
        present = merged["_merge"].isin([side, "both"])
        return pd.Series(np.where(~present, "-", np.where(merged[column].notna(), "graded", "no grade")))

    classes = pd.DataFrame({"term": merged["term"], "test": test, "a": status("admiral", "right_only"),
                            "o": status("ours", "left_only")})  # fmt: skip
    classes = classes[~((classes["a"] == "graded") & (classes["o"] == "graded"))]
    # (the grade frame's texts are categoricals: value_counts lists every combination of categories, most with 0)
    counts = classes.value_counts(["term", "test", "a", "o"])
    found = {(t, p): (n, a, o) for (t, p, a, o), n in counts.items() if n}
    expected = {k: v[:3] for k, v in NOT_BOTH_GRADED.items()}
    assert found == expected
    censored = merged[merged["test"].isin(["TBIL", "GLUC"]) & merged["admiral"].isna() & merged["ours"].notna()]
    assert censored.groupby("term")["ours"].agg(lambda g: sorted(g.astype(int))).to_dict() == {
        "Blood bilirubin increased": [0] * 5, "Hyperglycemia": [0], "Hypoglycemia": [2]
    }  # fmt: skip
    # what we grade where admiral does not: haemoglobin in mmol/L against CTCAE's own mmol/L limits
    anemia = merged[(merged["term"] == "Anemia")]["ours"].value_counts().to_dict()
    assert anemia == {0: 1682, 1: 126, 2: 1}
    # the urine pH is no blood pH: no acidosis / alkalosis grade
    assert not ours["test"].eq("UPH").any()


#: The CTCAE terms graded on the pilot's panel, as CTCAE spells them: every term of the version's criteria whose
#: test the pilot reports (v5.0 grades no hyperglycaemia or hypophosphataemia from a value, and adds eosinophilia).
PANEL_TERMS = {
    "4.03": {
        "Anemia", "Leukocytosis", "Alanine aminotransferase increased", "Aspartate aminotransferase increased",
        "Alkaline phosphatase increased", "GGT increased", "Blood bilirubin increased", "Cholesterol high",
        "CPK increased", "Creatinine increased", "Hemoglobin increased", "Lymphocyte count decreased",
        "Lymphocyte count increased", "Platelet count decreased", "White blood cell decreased", "Hypercalcemia",
        "Hypocalcemia", "Hyperglycemia", "Hypoglycemia", "Hyperkalemia", "Hypokalemia", "Hypernatremia",
        "Hyponatremia", "Hypophosphatemia", "Hyperuricemia", "Hypoalbuminemia",
    },
}  # fmt: skip
PANEL_TERMS["5.0"] = (PANEL_TERMS["4.03"] - {"Hyperglycemia", "Hypophosphatemia"}) | {"Eosinophilia"}


@needs_pilot
@pytest.mark.parametrize("version", ["4.03", "5.0"])
def test_both_versions_grade_every_term_of_the_panel(pipeline, version):
    _, clean, labs, _ = pipeline
    criteria = load_ctcae_criteria(criteria_file(ROOT / CONFIG["ctcae_criteria_dir"], version))
    ours = _grades_with_baseline(clean.tables, labs, criteria)
    assert set(ours["term"]) == PANEL_TERMS[version]
    assert set(ours["term"]) == {
        t.term for t in criteria.terms if set(t.tests) & set(clean.tables["labs.csv"]["test_code"])
    }
    assert ours.attrs["seconds"] < 5
    if version == "5.0":  # eosinophilia grade 1: above ULN and above baseline, counted here independently
        records = clean.tables["labs.csv"]
        eos = ours[ours["term"] == "Eosinophilia"]
        rows = records.iloc[eos["record"].to_numpy()]
        value, uln = rows["result"].astype(float).to_numpy(), rows["ref_high"].to_numpy()
        base = labs[labs["baseline_record"] & (labs["param"] == "EOS")].set_index("subject_id")["reported_value"]
        above = (value > uln) & (value > rows["subject_id"].map(base).to_numpy(dtype=float))
        assert (eos["grade"] == 1).sum() == above.sum() > 0
        assert set(eos["grade"].dropna().astype(int)) == {0, 1}  # grade 3 is clinical only


# --------------------------------------------------------------------------------------------------------------
# The safety step itself (k2trial.analysis.safety.conclusion.analyse_safety) on the pilot
# --------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def safety(pipeline, contract):
    """Every safety table of the pilot, as the safety step computes them, with CTCAE v4.03 and the study's panel
    (no default range for a test config/lab_standards.yaml does not know: the lab's own limits)."""
    _, clean, labs, _ = pipeline
    lab_units = sdtm.declare_lab_panel(read_yaml(ROOT / "config" / "lab_units.yaml"), PROTOCOL["lab_panel"])
    lab_standards = sdtm.declare_lab_standards(
        read_yaml(ROOT / "config" / "lab_standards.yaml"), lab_units, PROTOCOL["lab_panel"]
    )
    criteria = load_ctcae_criteria(criteria_file(ROOT / CONFIG["ctcae_criteria_dir"], STUDY["safety"]["ctcae_version"]))
    standards = load_lab_standards(lab_units, lab_standards, criteria)
    settings = SafetySettings.from_config(
        {
            **CONFIG["safety"],
            "ctcae_version": STUDY["safety"]["ctcae_version"],
            "grade_with_default_ranges": False,
            "paired_visits": STUDY["safety"]["paired_visits"],
        },
        CONFIG["b12_status"],
    )
    subjects = clean.tables["subjects.csv"]
    subjects = subjects.assign(saffl=subjects["first_dose_date"].notna(), anticoagulant=False)
    start = time.perf_counter()
    tables = analyse_safety(labs, subjects, clean.tables["adverse_events.csv"], standards, settings,
                            contract.tables["adverse_events.csv"])  # fmt: skip
    tables["seconds"] = time.perf_counter() - start
    print(f"\nCDISC pilot: safety step {tables['seconds']:.2f} s")
    return tables


@needs_pilot
def test_the_safety_step_grades_the_pilot_as_admiral_with_lbseq(safety, adlb):
    grades = safety["ctcae_grades"]
    assert grades["lbseq"].notna().all() and set(grades["ctcae_version"]) == {"4.03"}
    assert safety["seconds"] < 60
    ours = grades.assign(subject_id=grades["subject_id"].astype("str"), lbseq=_key(grades["lbseq"]),
                         term=grades["term"].astype("str"))  # fmt: skip
    merged = ours.merge(_admiral_long(adlb), on=["subject_id", "lbseq", "term"], how="inner", validate="1:1")
    merged["admiral"] = pd.to_numeric(merged["admiral"], errors="coerce")
    both = merged[merged["grade"].notna() & merged["admiral"].notna()]
    assert len(both) == 38_095 and (both["grade"].astype(int) == both["admiral"].astype(int)).all()
    # worst grades by baseline grade are tabulated for every graded term of the panel
    assert set(safety["ctcae_worst"]["term"]) == PANEL_TERMS["4.03"]


@needs_pilot
def test_the_safety_step_summarises_every_test_of_the_panel(safety, raw):
    descriptives = safety["lab_descriptives"]
    summarised = set(descriptives["param"])
    # every test of the panel, known to config/lab_units.yaml or declared; COLOR (text only) with no value
    aliases = {"BILI": "TBIL", "PLAT": "PLT", "SODIUM": "NA", "VITB12": "B12"}
    assert summarised == {aliases.get(c, c) for c in PROTOCOL["lab_panel"]} | {"EGFR"}
    assert (descriptives.loc[descriptives["param"] == "COLOR", "n"] == 0).all()
    tsh = descriptives[(descriptives["param"] == "TSH") & (descriptives["visit"] == "baseline")].iloc[0]
    assert (
        tsh["unit"] == "mU/L"
        and tsh["n"] == raw["labs.csv"].query("test_code == 'TSH' and visit == 'Baseline'").shape[0]
    )
    # AE tables by the safety step: the treatment-emergent subjects of the safety set
    summary = safety["ae_summary"].set_index("category")
    assert summary.loc["any", "n_subjects"] == 65 + 68 + 84 and summary.loc["any", "denominator"] == 254


# --------------------------------------------------------------------------------------------------------------
# Treatment-emergent adverse events against admiral's ADAE
# --------------------------------------------------------------------------------------------------------------
@needs_pilot
def test_treatment_emergent_subjects_by_arm_equal_admiral(pipeline, contract, raw):
    _, clean, _, _ = pipeline
    subjects = clean.tables["subjects.csv"]
    # the actual arm (DM.ACTARMCD, admiral's TRTA): 12 subjects planned on Xan_Hi took the low dose
    actual = raw["subjects.csv"].set_index("subject_id")["actual_arm"]
    planned = raw["subjects.csv"].set_index("subject_id")["arm"]
    assert (actual != planned).sum() == 12
    prepared = subjects.assign(
        arm=subjects["subject_id"].map(actual), saffl=subjects["first_dose_date"].notna(), anticoagulant=False
    )
    safety = CONFIG["safety"]
    listing = adverse_events.adverse_event_listing(
        clean.tables["adverse_events.csv"], prepared, related_levels=safety["related_levels"],
        withdrawal_actions=safety["withdrawal_actions"], spec=contract.tables["adverse_events.csv"],
        window_days=safety["treatment_emergent_window_days"],
    )  # fmt: skip
    assert len(listing) == 1191 and listing["aeseq"].notna().all()
    adae = pd.read_csv(ADAM / "adae.csv", dtype=str, keep_default_na=False)
    adsl = pd.read_csv(ADAM / "adsl.csv", dtype=str, keep_default_na=False)
    adae = adae.merge(adsl[["USUBJID", "TRT01A"]], on="USUBJID", how="left")
    # every event: our flag is admiral's TRTEMFL
    adae["aeseq"] = pd.to_numeric(adae["AESEQ"]).astype("Int64")
    both = listing.merge(adae, left_on=["subject_id", "aeseq"], right_on=["USUBJID", "aeseq"], how="outer",
                         indicator=True)  # fmt: skip
    assert (both["_merge"] == "both").all()
    assert (both["treatment_emergent"] == (both["TRTEMFL"] == "Y")).all()
    # subjects by arm (TRTA = the actual treatment, ADSL TRT01A; our actual_arm, labelled by the study's arms)
    emergent = listing[listing["treatment_emergent"] & listing["in_safety_set"]]
    ours = emergent.groupby(emergent["arm"].map(ARMS["labels"]))["subject_id"].nunique().to_dict()
    theirs = adae[adae["TRTEMFL"] == "Y"].groupby("TRT01A")["USUBJID"].nunique().to_dict()
    assert ours == theirs == {"Placebo": 65, "Xanomeline High Dose": 68, "Xanomeline Low Dose": 84}
    assert set(ARMS["codes"]) == set(actual) - set(ARMS["not_randomised"]) and ARMS["control"] in ARMS["codes"]


# --------------------------------------------------------------------------------------------------------------
# Malformed SDTM: problems naming domain, variable and record
# --------------------------------------------------------------------------------------------------------------
def _rule(problems, rule):
    return [p for p in problems if p.rule == rule]


@needs_pilot
def test_pilot_without_usubjid_names_domain_and_variable(domains, mapping):
    broken = {**domains, "AE": domains["AE"].drop(columns="USUBJID")}
    found = _rule(sdtm.check_domains(broken, mapping, sdtm.CDISC_PILOT_STUDY), "variable_missing")
    assert [(p.file, p.column, p.severity) for p in found] == [("AE", "USUBJID", "error")]
    lb = domains["LB"].copy()
    lb.loc[10, "USUBJID"] = ""
    found = _rule(sdtm.check_domains({**domains, "LB": lb}, mapping, sdtm.CDISC_PILOT_STUDY), "usubjid_missing")
    assert [(p.file, p.column) for p in found] == [("LB", "USUBJID")]
    assert found[0].message.startswith(f"USUBJID (empty), LBSEQ {lb.LBSEQ[10]:.12g}:")


@needs_pilot
def test_pilot_lab_test_without_unit_names_the_record(domains, mapping):
    lb = domains["LB"].copy()
    row = int(np.flatnonzero((lb["LBTESTCD"] == "CK").to_numpy())[3])
    lb.loc[row, ["LBSTRESU", "LBORRESU"]] = ""
    found = _rule(sdtm.check_domains({**domains, "LB": lb}, mapping, sdtm.CDISC_PILOT_STUDY), "lab_unit_missing")
    assert [(p.file, p.column, p.severity) for p in found] == [("LB", "LBSTRESU", "error")]
    assert found[0].message.startswith(f"USUBJID {lb.USUBJID[row]}, LBSEQ {lb.LBSEQ[row]:.12g}: LBTESTCD CK")


@needs_pilot
def test_pilot_dm_without_arm_is_an_error_in_a_randomised_study(domains, mapping):
    dm = domains["DM"].drop(columns=["ARM", "ARMCD"])
    found = _rule(sdtm.check_domains({**domains, "DM": dm}, mapping, sdtm.CDISC_PILOT_STUDY), "variable_missing")
    assert sorted((p.file, p.column, p.severity) for p in found) == [("DM", "ARM", "error"), ("DM", "ARMCD", "error")]
    assert all("randomised" in p.message for p in found)
    dm = domains["DM"].copy()
    dm.loc[4, ["ARMCD", "ARM"]] = ""
    found = _rule(sdtm.check_domains({**domains, "DM": dm}, mapping, sdtm.CDISC_PILOT_STUDY), "arm_missing")
    assert [(p.file, p.column) for p in found] == [("DM", "ARMCD")]
    assert found[0].message.startswith(f"USUBJID {dm.USUBJID[4]}:")


@needs_pilot
def test_pilot_record_of_a_subject_not_in_dm_names_the_record(domains, mapping):
    ae = domains["AE"].copy()
    ae.loc[7, "USUBJID"] = "01-799-9999"
    found = _rule(sdtm.check_domains({**domains, "AE": ae}, mapping, sdtm.CDISC_PILOT_STUDY), "subject_not_in_dm")
    assert [(p.file, p.column, p.value, p.severity) for p in found] == [("AE", "USUBJID", "01-799-9999", "error")]
    assert found[0].message.startswith(
        f"USUBJID 01-799-9999, AESEQ {ae.AESEQ[7]:.12g}: USUBJID 01-799-9999 is not in DM"
    )


# --------------------------------------------------------------------------------------------------------------
# The lab panel declaration
# --------------------------------------------------------------------------------------------------------------
def test_declare_lab_panel():
    lab_units = read_yaml(ROOT / "config" / "lab_units.yaml")
    declared = sdtm.declare_lab_panel(
        lab_units, {"TSH": {"unit": "mU/L", "name": "Thyrotropin"}, "PLAT": {"unit": "GI/L"}}
    )
    tsh = {"name": "Thyrotropin", "aliases": [], "unit": "mU/L", "units": {"mU/L": 1.0}, "decimals": 0}
    assert declared["tests"]["TSH"] == tsh
    assert declared["tests"]["PLT"] == lab_units["tests"]["PLT"]  # an alias, in a unit it accepts: unchanged
    assert list(declared["tests"]) == ["PLT", "TSH"]  # the panel's tests only
    assert "TSH" not in lab_units["tests"]  # the input is not changed
    standards = sdtm.declare_lab_standards(
        read_yaml(ROOT / "config" / "lab_standards.yaml"), declared, {"TSH": {"unit": "mU/L", "direction": "high"}}
    )
    assert standards["tests"] == {"PLT": {"range": [150.0, 450.0], "direction": "low"},
                                  "TSH": {"range": None, "direction": "high"}}  # fmt: skip
    assert standards["panels"] == {"haematology": ["PLT"]} and standards["significant_shift"]["margins"] == {}
    with pytest.raises(ConfigError, match="HGB is not accepted in mmol/L.*factor"):
        sdtm.declare_lab_panel(lab_units, {"HGB": {"unit": "mmol/L"}})
    with pytest.raises(ConfigError, match="lab panel X: needs `unit`"):
        sdtm.declare_lab_panel(lab_units, {"X": {"units": "g/L"}})


def test_the_sdtm_record_key_is_an_optional_column():
    from k2trial.core import schema
    from k2trial.core.errors import ArtifactError

    plain = schema.columns("analysis/labs")
    assert "lbseq" not in plain and schema.columns("analysis/labs", present=["lbseq"]) == [*plain, "lbseq"]
    schema.check_columns("analysis/labs", plain)  # CSV input: the artifact keeps its columns (and bytes)
    schema.check_columns("analysis/labs", [*plain, "lbseq"])
    with pytest.raises(ArtifactError, match="lbseq"):
        schema.check_columns("analysis/labs", ["lbseq", *plain])
    grades = schema.columns("safety/ctcae_grades")
    schema.check_columns("safety/ctcae_grades", [*grades, "lbseq"])


@pytest.mark.parametrize("version", ["4.03", "5.0"])
def test_a_unit_one_term_of_the_test_grades_is_accepted(version):
    # haemoglobin in mmol/L: CTCAE's Anemia gives mmol/L limits, Hemoglobin increased only g/dL ("Increase in
    # >2 gm/dL"): the standards load, and such values get no Hemoglobin increased grade (unit_not_graded)
    lab_units = sdtm.declare_lab_panel(
        read_yaml(ROOT / "config" / "lab_units.yaml"), {"HGB": PROTOCOL["lab_panel"]["HGB"]}
    )
    lab_standards = sdtm.declare_lab_standards(read_yaml(ROOT / "config" / "lab_standards.yaml"), lab_units, {})
    for code in ("ALT", "AST", "TBIL", "ALP", "CREAT"):  # Hy's law and eGFR need these
        lab_units["tests"][code] = read_yaml(ROOT / "config" / "lab_units.yaml")["tests"][code]
        lab_standards["tests"][code] = read_yaml(ROOT / "config" / "lab_standards.yaml")["tests"][code]
    criteria = load_ctcae_criteria(criteria_file(ROOT / CONFIG["ctcae_criteria_dir"], version))
    standards = load_lab_standards(lab_units, lab_standards, criteria)
    assert "mmol/L" in standards.test("HGB").test.units
    graded = grade_records(criteria, test=["HGB"], value=[4.5], unit=["mmol/L"], lln=[7.0])
    assert graded.set_index("term").loc["Anemia", "grade"] == 3  # < 4.9 mmol/L
    assert graded.set_index("term").loc["Hemoglobin increased", "reason"] == "unit_not_graded"
    # a unit no term of the test grades is still a configuration error
    lab_units["tests"]["HGB"]["units"]["mg/L"] = 0.0001
    with pytest.raises(ConfigError, match="cannot grade HGB reported in mg/L"):
        load_lab_standards(lab_units, lab_standards, criteria)
