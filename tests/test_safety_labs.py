"""Laboratory safety (k2trial.analysis.safety: standards, lab_table, kidney, lab_grades, hepatic,
lab_summaries): unit conversions, standards, flags, CTCAE v5.0 grade boundaries, eGFR,
B12 status, shifts, descriptives with censored values, Hy's law and eDISH.

Expected values are worked by hand from CLINICAL.md (safety section) and the CTCAE v5.0 tables; they are written
out in the tests, not recomputed with the code under test.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from k2trial.analysis.safety import hepatic, kidney, lab_grades, lab_summaries, lab_table, standards
from k2trial.analysis.safety.ctcae import grade_records, load_ctcae_criteria
from k2trial.core import schema, values
from k2trial.core.errors import ConfigError, InputDataError

ROOT = Path(__file__).resolve().parents[1]
LAB_UNITS = yaml.safe_load((ROOT / "config/lab_units.yaml").read_text())
LAB_STANDARDS = yaml.safe_load((ROOT / "config/lab_standards.yaml").read_text())
CTCAE_V5 = load_ctcae_criteria(ROOT / "config/ctcae/ctcae_v5.0.yaml")
STANDARDS = standards.load_lab_standards(LAB_UNITS, LAB_STANDARDS, CTCAE_V5)
VISIT_OF_WEEK = {0: "baseline", 4: "week4", 8: "week8"}


# ------------------------------------------------------------------------------------------------------------------
# Builders: one subject per case, in the formats of workflow/DATASETS.md
# ------------------------------------------------------------------------------------------------------------------
def case(
    subject: str,
    param: str,
    values: dict[int, float],
    *,
    ref: tuple[float, float] | None = None,
    censored: tuple[int, ...] = (),
    first_date: str = "2013-01-10",
) -> list[dict]:
    """Rows of labs.csv for one subject and test, reported in the standard unit; `values` by study week; base = the
    week-0 value (sampled on the first-dose day, the baseline record)."""
    unit = LAB_UNITS["tests"][param]["unit"]
    base = values.get(0, np.nan)
    start = pd.Timestamp(first_date)
    return [
        {
            "subject_id": subject,
            "visit": VISIT_OF_WEEK[week],
            "week": week,
            "sample_date": (start + pd.Timedelta(days=7 * week)).strftime("%Y-%m-%d"),
            "param": param,
            "aval": value,
            "unit": unit,
            "ref_low": ref[0] if ref else np.nan,
            "ref_high": ref[1] if ref else np.nan,
            "reported_value": value,
            "reported_unit": unit,
            "reported_ref_low": ref[0] if ref else np.nan,
            "reported_ref_high": ref[1] if ref else np.nan,
            "censored": week in censored,
            "base": base,
            "chg": value - base,
            "baseline_record": week == 0,
        }
        for week, value in values.items()
    ]


def subjects_frame(spec: dict[str, tuple[str, int, bool]], never_dosed: tuple[str, ...] = ()) -> pd.DataFrame:
    """subjects.csv columns the safety step reads; spec: id -> (sex, age, anticoagulant)."""
    return pd.DataFrame(
        [
            {
                "subject_id": sid,
                "sex": sex,
                "age_years": age,
                "anticoagulant": anticoagulant,
                "saffl": sid not in never_dosed,
                "first_dose_date": "" if sid in never_dosed else "2013-01-10",
                "last_dose_date": "" if sid in never_dosed else "2013-03-06",
            }
            for sid, (sex, age, anticoagulant) in spec.items()
        ]
    )


def annotate(rows: list[dict], subjects: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    prepared = lab_table.prepare_subjects(subjects)
    annotated = lab_table.annotate_labs(
        pd.DataFrame(rows), prepared, STANDARDS, b12_deficient_below=200, b12_adequate_from=300, b12_test="B12"
    )
    return annotated, prepared


def grades_by(rows: list[dict], subjects: pd.DataFrame) -> dict[tuple[str, str, int, str], int | None]:
    annotated, prepared = annotate(rows, subjects)
    g = lab_grades.ctcae_grades(annotated, prepared, STANDARDS, use_default_ranges=True)
    return {
        (r.subject_id, r.param, int(r.week), r.term): None if pd.isna(r.grade) else int(r.grade)
        for r in g.itertuples(index=False)
    }


def term(name: str) -> standards.GradedTerm:
    return next(t for t in STANDARDS.terms if t.term == name)


def grade_values(
    name: str,
    values: list[float],
    *,
    lln: float = np.nan,
    uln: float = np.nan,
    base: float = np.nan,
    baseline_abnormal: bool = False,
    anticoagulant: bool = False,
) -> list[int | None]:
    """CTCAE v5.0 grades of values of one term's test in its standard unit (grade_records, as the safety step calls
    it); the baseline indicator is HIGH/LOW (in the term's direction) when `baseline_abnormal`, else NORMAL."""
    t = term(name)
    n = len(values)
    abnormal = "HIGH" if t.direction == "high" else "LOW"
    graded = grade_records(
        CTCAE_V5,
        test=[t.param] * n,
        value=np.array(values, float),
        unit=[STANDARDS.test(t.param).unit] * n,
        lln=np.full(n, lln),
        uln=np.full(n, uln),
        baseline=np.full(n, base),
        baseline_indicator=[abnormal if baseline_abnormal else "NORMAL"] * n,
        anticoagulated=[anticoagulant] * n,
        term=[name] * n,
    )
    return [None if pd.isna(g) else int(g) for g in graded["grade"]]


# ------------------------------------------------------------------------------------------------------------------
# Unit conversions of config/lab_units.yaml (standard = reported x factor), against CLINICAL.md constants
# ------------------------------------------------------------------------------------------------------------------
# Every (test, non-standard unit) the contract accepts, with the factor CLINICAL.md implies. A new unit in
# lab_units.yaml without an entry here fails test_every_accepted_unit_has_a_reference_factor.
CLINICAL_FACTORS = {
    ("HGB", "g/L"): 1 / 10,  # g/dL = g/L / 10
    ("ALB", "g/L"): 1 / 10,
    ("WBC", "10^3/uL"): 1.0,  # 10^3/uL = 10^9/L
    ("PLT", "10^3/uL"): 1.0,
    ("TBIL", "umol/L"): 1 / 17.1,  # mg/dL = umol/L / 17.1
    ("CREAT", "umol/L"): 1 / 88.4,  # mg/dL = umol/L / 88.4
    ("GLUCF", "mmol/L"): 18.016,  # mg/dL = mmol/L x 18.016
    ("B12", "pmol/L"): 1 / 0.7378,  # pmol/L = pg/mL x 0.7378
}
# (test, unit, reported value, standard value) worked by hand
WORKED_CONVERSIONS = [
    ("CREAT", "umol/L", 88.4, 1.0),
    ("CREAT", "umol/L", 106.08, 1.2),
    ("TBIL", "umol/L", 17.1, 1.0),
    ("TBIL", "umol/L", 34.2, 2.0),
    ("GLUCF", "mmol/L", 5.0, 90.08),
    ("GLUCF", "mmol/L", 7.0, 126.112),
    ("HGB", "g/L", 75.0, 7.5),
    ("ALB", "g/L", 42.0, 4.2),
    ("B12", "pmol/L", 147.56, 200.0),  # 200 pg/mL x 0.7378
    ("B12", "pmol/L", 221.34, 300.0),
    ("PLT", "10^3/uL", 250.0, 250.0),
]


def test_every_accepted_unit_has_a_reference_factor():
    accepted = {
        (code, unit) for code, spec in LAB_UNITS["tests"].items() for unit in spec["units"] if unit != spec["unit"]
    }
    assert accepted == set(CLINICAL_FACTORS)
    for code, spec in LAB_UNITS["tests"].items():
        assert spec["units"][spec["unit"]] == 1.0, code


@pytest.mark.parametrize(("code", "unit"), sorted(CLINICAL_FACTORS))
def test_conversion_factor_matches_clinical_constant_both_ways(code, unit):
    factor = LAB_UNITS["tests"][code]["units"][unit]
    assert factor == pytest.approx(CLINICAL_FACTORS[(code, unit)], rel=1e-12)
    reported = np.array([0.1, 1.0, 7.5, 88.4, 250.0, 1234.5])
    standard = reported * factor
    assert standard / factor == pytest.approx(reported, rel=1e-12)  # and back


@pytest.mark.parametrize(("code", "unit", "reported", "standard"), WORKED_CONVERSIONS)
def test_worked_conversions(code, unit, reported, standard):
    factor = LAB_UNITS["tests"][code]["units"][unit]
    assert reported * factor == pytest.approx(standard, rel=1e-9)
    assert standard / factor == pytest.approx(reported, rel=1e-9)


# ------------------------------------------------------------------------------------------------------------------
# Standards
# ------------------------------------------------------------------------------------------------------------------
def test_standards_cover_every_test_in_lab_order():
    assert STANDARDS.lab_params == tuple(LAB_UNITS["tests"])
    assert STANDARDS.all_params[-1] == "EGFR"
    assert STANDARDS.test("HGB").ranges == {"F": (12.0, 15.5), "M": (13.0, 17.0)}
    assert STANDARDS.test("NA").shift_margin == 0.02
    assert STANDARDS.test("ALT").shift_margin == 0.10
    assert STANDARDS.test("INR").panel == "coagulation"
    assert STANDARDS.ctcae_version == "5.0"


def test_graded_terms_are_those_of_the_criteria_for_the_study_tests():
    # by test in lab_units order, then in the criteria file's order; hypokalaemia and hyponatraemia both graded
    assert [(t.term, t.param) for t in STANDARDS.terms[:4]] == [
        ("Anemia", "HGB"), ("Hemoglobin increased", "HGB"), ("Leukocytosis", "WBC"),
        ("White blood cell decreased", "WBC"),
    ]  # fmt: skip
    assert {t.param for t in STANDARDS.terms} == {"HGB", "WBC", "PLT", "ALT", "AST", "ALP", "TBIL", "ALB", "CREAT",
                                                   "NA", "K", "GLUCF", "INR"}  # fmt: skip
    assert term("Hypokalemia").direction == "low" and term("Hyponatremia").direction == "low"
    v4 = standards.load_lab_standards(
        LAB_UNITS, LAB_STANDARDS, load_ctcae_criteria(ROOT / "config/ctcae/ctcae_v4.03.yaml")
    )
    assert v4.ctcae_version == "4.03" and ("Hyperglycemia", "GLUCF") in [(t.term, t.param) for t in v4.terms]


def test_a_unit_the_criteria_cannot_grade_is_a_config_error():
    units = yaml.safe_load((ROOT / "config/lab_units.yaml").read_text())
    units["tests"]["GLUCF"]["units"]["mg/L"] = 0.1  # accepted by the contract, no CTCAE limit in mg/L
    with pytest.raises(ConfigError, match="Hypoglycemia cannot grade GLUCF reported in mg/L"):
        standards.load_lab_standards(units, LAB_STANDARDS, CTCAE_V5)
    with pytest.raises(ConfigError, match="'ctcae' section is no longer read"):
        standards.load_lab_standards(LAB_UNITS, {**LAB_STANDARDS, "ctcae": {}}, CTCAE_V5)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["tests"].pop("K"), "test K has no default reference range"),
        (lambda s: s["tests"]["ALT"].update(range=[40.0, 7.0]), "low < high"),
        (lambda s: s["hys_law"].update(bilirubin="BILI"), "hys_law names unknown test"),
    ],
)
def test_inconsistent_standards_are_config_errors(edit, message):
    broken = yaml.safe_load((ROOT / "config/lab_standards.yaml").read_text())
    edit(broken)
    with pytest.raises(ConfigError, match=message):
        standards.load_lab_standards(LAB_UNITS, broken, CTCAE_V5)


# ------------------------------------------------------------------------------------------------------------------
# Comparison of a value with a limit: as recorded, at 15 significant digits
# ------------------------------------------------------------------------------------------------------------------
def test_exactly_three_times_uln_is_not_above_it_despite_float_noise():
    # 1.15 x 3 is 3.4499999999999997 in binary floating point: a naive comparison calls 3.45 "> 3 x ULN"
    assert 3.45 > 3 * 1.15
    assert not values.compare([3.45], [3 * 1.15], ">")[0]
    assert values.compare([3.46], [3 * 1.15], ">")[0]
    assert values.compare([3.45], [3 * 1.15], ">=")[0]
    # a value is compared with the digits it was recorded with: 3.451 is above 3.45
    assert values.compare([3.451], [3.45], ">")[0]
    assert not values.compare([np.nan], [1.0], "<")[0]


def test_round_half_up():
    # the rounding the safety step uses (converted values, changes): halves away from zero on both sides, decimal
    # halves that binary floats hold just below the half, missing stays missing
    rounded = values.round_half_away(
        [0.5, 1.5, 2.5, 2.675, 0.285, 1.005, -2.5, -0.25, -1.005, np.nan], [0, 0, 0, 2, 2, 2, 0, 1, 2, 0]
    )
    assert rounded[:-1].tolist() == [1.0, 2.0, 3.0, 2.68, 0.29, 1.01, -3.0, -0.3, -1.01]
    assert np.isnan(rounded[-1])


# ------------------------------------------------------------------------------------------------------------------
# CTCAE v5.0 grade boundaries (CLINICAL.md); values on each side of every boundary
# ------------------------------------------------------------------------------------------------------------------
def test_alt_baseline_normal_boundaries():
    values = [40, 41, 119, 120, 121, 200, 201, 800, 801]
    assert grade_values("Alanine aminotransferase increased", values, uln=40) == [0, 1, 1, 1, 2, 2, 3, 3, 4]


def test_ast_uses_the_same_criteria():
    values = [40, 41, 120, 121, 200, 201, 800, 801]
    assert grade_values("Aspartate aminotransferase increased", values, uln=40) == [0, 1, 1, 2, 2, 3, 3, 4]


def test_alt_baseline_abnormal_grades_multiples_of_baseline():
    # baseline 60 U/L (ULN 40): G1 1.5-3 x BL (90 inclusive), G2 > 3-5 x BL, G3 > 5-20 x BL, G4 > 20 x BL
    values = [60, 89, 90, 180, 181, 300, 301, 1200, 1201]
    grades = grade_values("Alanine aminotransferase increased", values, uln=40, base=60, baseline_abnormal=True)
    assert grades == [0, 0, 1, 1, 2, 2, 3, 3, 4]
    # the same values with a normal baseline are graded against the ULN
    assert grade_values("Alanine aminotransferase increased", [89, 181, 201], uln=40, base=30) == [1, 2, 3]


def test_alp_boundaries_normal_and_abnormal_baseline():
    values = [130, 131, 325, 326, 650, 651, 2600, 2601]
    assert grade_values("Alkaline phosphatase increased", values, uln=130) == [0, 1, 1, 2, 2, 3, 3, 4]
    # baseline abnormal 150: G1 2.0-2.5 x BL (300 inclusive), G2 > 2.5 x BL (375)
    abnormal = grade_values(
        "Alkaline phosphatase increased", [299, 300, 375, 376, 751], uln=130, base=150, baseline_abnormal=True
    )
    assert abnormal == [0, 1, 1, 2, 3]


def test_bilirubin_boundaries_normal_and_abnormal_baseline():
    values = [1.20, 1.21, 1.80, 1.81, 3.60, 3.61, 12.00, 12.01]
    assert grade_values("Blood bilirubin increased", values, uln=1.2) == [0, 1, 1, 2, 2, 3, 3, 4]
    # baseline abnormal 1.5: G1 > 1-1.5 x BL (strictly above baseline), G2 > 1.5-3 x, G3 > 3-10 x
    abnormal = grade_values(
        "Blood bilirubin increased", [1.50, 1.51, 2.25, 2.26, 4.50, 4.51], uln=1.2, base=1.5, baseline_abnormal=True
    )
    assert abnormal == [0, 1, 1, 2, 2, 3]


def test_creatinine_takes_the_worse_of_baseline_and_uln_criteria():
    # baseline 0.90, ULN 1.30: 1.35 = 1.5 x BL exactly (not above) and > ULN -> G1; 1.36 > 1.5 x BL -> G2;
    # 2.70 = 3 x BL -> G2 (also 2.08 x ULN: G2); 2.71 > 3 x BL -> G3; 7.81 > 6 x ULN -> G4
    values = [1.30, 1.35, 1.36, 2.70, 2.71, 7.80, 7.81]
    assert grade_values("Creatinine increased", values, uln=1.3, base=0.9) == [0, 1, 2, 2, 3, 3, 4]
    # without a baseline value only the ULN criteria apply: 1.95 = 1.5 x ULN -> G1, 1.96 -> G2, 3.91 -> G3
    assert grade_values("Creatinine increased", [1.95, 1.96, 3.90, 3.91], uln=1.3) == [1, 2, 2, 3]
    # the baseline record itself: value = baseline is never > 1.5 x baseline; 2.0 > 1.5 x ULN 1.3 is grade 2
    assert grade_values("Creatinine increased", [2.0], uln=1.3, base=2.0) == [2]


def test_anaemia_boundaries():
    values = [12.0, 11.9, 10.0, 9.9, 8.0, 7.9, 7.5]
    assert grade_values("Anemia", values, lln=12.0) == [0, 1, 1, 2, 2, 3, 3]


def test_platelet_and_white_cell_boundaries():
    platelets = [150, 149, 75, 74, 50, 49, 25, 24]
    assert grade_values("Platelet count decreased", platelets, lln=150) == [0, 1, 1, 2, 2, 3, 3, 4]
    wbc = [4.0, 3.9, 3.0, 2.9, 2.0, 1.9, 1.0, 0.9]
    assert grade_values("White blood cell decreased", wbc, lln=4.0) == [0, 1, 1, 2, 2, 3, 3, 4]


def test_inr_without_anticoagulant_is_absolute():
    values = [1.20, 1.21, 1.50, 1.51, 1.80, 2.50, 2.51]
    assert grade_values("INR increased", values, uln=1.2, base=1.0) == [0, 1, 1, 2, 2, 2, 3]


def test_inr_with_anticoagulant_is_multiples_of_baseline():
    # baseline 2.00 on a vitamin K antagonist: G1 > 1-1.5 x BL, G2 > 1.5-2.5 x BL, G3 > 2.5 x BL
    values = [2.00, 2.01, 3.00, 3.01, 5.00, 5.01]
    assert grade_values("INR increased", values, uln=1.2, base=2.0, anticoagulant=True) == [0, 1, 1, 2, 2, 3]
    # the baseline record is graded by the same rule (1 x baseline: grade 0, as admiral); without a baseline value
    # the INR of a patient on anticoagulation cannot be graded (CTCAE grades it against baseline only)
    assert grade_values("INR increased", [2.5], uln=1.2, base=2.5, anticoagulant=True) == [0]
    assert grade_values("INR increased", [2.6], uln=1.2, anticoagulant=True) == [None]


def test_chemistry_boundaries():
    assert grade_values("Hyponatremia", [135, 134, 130, 129, 120, 119], lln=135) == [0, 1, 1, 3, 3, 4]
    assert grade_values("Hypernatremia", [145, 146, 150, 151, 155, 156, 160, 161], uln=145) == [0, 1, 1, 2, 2, 3, 3, 4]
    assert grade_values("Hyperkalemia", [5.1, 5.2, 5.5, 5.6, 6.0, 6.1, 7.0, 7.1], uln=5.1) == [0, 1, 1, 2, 2, 3, 3, 4]
    # hypokalaemia < LLN - 3.0 is grade 1 or 2 by symptoms: worst case grade 2, as hyponatraemia (issue 12, item 7)
    assert grade_values("Hypokalemia", [3.5, 3.4, 3.0, 2.9, 2.5, 2.4], lln=3.5) == [0, 2, 2, 3, 3, 4]
    assert grade_values("Hypoglycemia", [70, 69, 55, 54, 40, 39, 30, 29], lln=70) == [0, 1, 1, 2, 2, 3, 3, 4]
    assert grade_values("Hypoalbuminemia", [3.5, 3.4, 3.0, 2.9, 2.0, 1.9], lln=3.5) == [0, 1, 1, 2, 2, 3]


def test_missing_value_is_not_graded():
    assert grade_values("Anemia", [np.nan], lln=12.0) == [None]


def test_pipeline_detects_abnormal_baseline_and_anticoagulant_from_the_data():
    rows = (
        case("K2-001", "ALT", {0: 60, 4: 89, 8: 90})  # default ULN 40: baseline abnormal
        + case("K2-002", "ALT", {0: 30, 4: 89, 8: 121})  # baseline normal
        + case("K2-003", "INR", {0: 2.5, 4: 2.6, 8: 3.8})  # anticoagulated: 1.04 and 1.52 x BL
        + case("K2-004", "INR", {0: 1.0, 4: 1.8})  # not anticoagulated
        + case("K2-005", "TBIL", {0: 0.35, 8: 1.05}, ref=(0.1, 0.35))  # exactly 3 x the lab's ULN
    )
    subjects = subjects_frame(
        {
            "K2-001": ("M", 50, False),
            "K2-002": ("M", 50, False),
            "K2-003": ("F", 50, True),
            "K2-004": ("F", 50, False),
            "K2-005": ("F", 50, False),
        }
    )
    grades = grades_by(rows, subjects)
    alt, inr, bili = "Alanine aminotransferase increased", "INR increased", "Blood bilirubin increased"
    # the baseline record is graded by the rule of its own baseline: 60 = 1 x BL, grade 0 (issue 12, item 4;
    # graded against the ULN it read 1.5 x ULN, grade 1, and the later grades were on another scale)
    assert grades[("K2-001", "ALT", 0, alt)] == 0
    assert grades[("K2-001", "ALT", 4, alt)] == 0  # < 1.5 x BL
    assert grades[("K2-001", "ALT", 8, alt)] == 1  # = 1.5 x BL
    assert grades[("K2-002", "ALT", 4, alt)] == 1
    assert grades[("K2-002", "ALT", 8, alt)] == 2
    assert grades[("K2-003", "INR", 0, inr)] == 0  # on anticoagulation: 1 x baseline
    assert grades[("K2-003", "INR", 4, inr)] == 1
    assert grades[("K2-003", "INR", 8, inr)] == 2
    assert grades[("K2-004", "INR", 4, inr)] == 2
    assert grades[("K2-005", "TBIL", 8, bili)] == 2  # 3 x ULN is "> 1.5-3 x ULN": grade 2, not 3
    annotated, prepared = annotate(rows, subjects)
    table = lab_grades.ctcae_grades(annotated, prepared, STANDARDS, use_default_ranges=True)
    first = table[(table.subject_id == "K2-001") & (table.week == 8)].iloc[0]
    assert (first.baseline_flag, first.baseline_value, first.uln) == ("HIGH", 60.0, 40.0)
    assert first.criterion == ">= 1.5 x baseline [baseline_abnormal]"
    assert first.default_range  # ULN 40 U/L is the default: the lab gave no range
    assert (table["ctcae_version"] == "5.0").all()


# ------------------------------------------------------------------------------------------------------------------
# Ranges and flags
# ------------------------------------------------------------------------------------------------------------------
def test_flags_use_the_labs_range_else_the_default_by_sex():
    rows = (
        case("K2-001", "HGB", {0: 12.5})  # F default 12.0-15.5 -> NORMAL
        + case("K2-002", "HGB", {0: 12.5})  # M default 13.0-17.0 -> LOW
        + case("K2-001", "CREAT", {0: 1.15}, ref=(0.6, 1.2))  # lab range -> NORMAL (F default would be HIGH)
        + case("K2-002", "CREAT", {0: 1.30})  # M default 0.7-1.3, exactly at the limit -> NORMAL
        + case("K2-002", "ALT", {0: 41})  # HIGH
    )
    annotated, _ = annotate(rows, subjects_frame({"K2-001": ("F", 40, False), "K2-002": ("M", 40, False)}))
    flags = {(r.subject_id, r.param): (r.flag, r.range_source, r.ref_low, r.ref_high) for r in annotated.itertuples()}
    assert flags[("K2-001", "HGB")] == ("NORMAL", "default", 12.0, 15.5)
    assert flags[("K2-002", "HGB")] == ("LOW", "default", 13.0, 17.0)
    assert flags[("K2-001", "CREAT")] == ("NORMAL", "lab", 0.6, 1.2)
    assert flags[("K2-002", "CREAT")] == ("NORMAL", "default", 0.7, 1.3)
    assert flags[("K2-002", "ALT")][0] == "HIGH"


def test_unknown_subject_test_or_unit_is_an_input_error():
    subjects = subjects_frame({"K2-001": ("F", 40, False)})
    with pytest.raises(InputDataError, match="subject not in subjects.csv"):
        annotate(case("K2-009", "HGB", {0: 12.5}), subjects)
    rows = case("K2-001", "HGB", {0: 12.5})
    rows[0]["unit"] = "g/L"
    with pytest.raises(InputDataError, match="standard unit g/dL"):
        annotate(rows, subjects)


def test_subjects_outside_the_safety_set_are_left_out():
    rows = case("K2-001", "ALT", {0: 20, 8: 25}) + case("K2-002", "ALT", {0: 400})
    annotated, _ = annotate(
        rows, subjects_frame({"K2-001": ("F", 40, False), "K2-002": ("F", 40, False)}, never_dosed=("K2-002",))
    )
    assert set(annotated["subject_id"]) == {"K2-001"}
    assert list(annotated["subject_id"].cat.categories) == ["K2-001"]


# ------------------------------------------------------------------------------------------------------------------
# eGFR (CKD-EPI 2021) and KDIGO; B12 status
# ------------------------------------------------------------------------------------------------------------------
def ckd_epi_2021_by_hand(scr: float, female: bool, age: float) -> float:
    """Inker LA et al. N Engl J Med 2021;385:1737-49, creatinine equation without race:
    142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age x 1.012 [female]; k 0.7 F / 0.9 M,
    a -0.241 F / -0.302 M."""
    k, a = (0.7, -0.241) if female else (0.9, -0.302)
    value = 142 * math.pow(min(scr / k, 1), a) * math.pow(max(scr / k, 1), -1.2) * math.pow(0.9938, age)
    return value * (1.012 if female else 1.0)


@pytest.mark.parametrize(
    ("scr", "female", "age", "expected"),
    [
        # 142 x (0.8/0.7)^-1.2 x 0.9938^50 x 1.012 = 142 x 0.85194 x 0.73278 x 1.012
        (0.8, True, 50, 89.71),
        # 142 x (1.2/0.9)^-1.2 x 0.9938^60 = 142 x 0.70808 x 0.68854
        (1.2, False, 60, 69.23),
        # below k: 142 x (0.6/0.7)^-0.241 x 0.9938^40 x 1.012 = 142 x 1.03783 x 0.77996 x 1.012
        (0.6, True, 40, 116.30),
        # 142 x (0.7/0.9)^-0.302 x 0.9938^30
        (0.7, False, 30, 127.12),
    ],
)
def test_ckd_epi_2021_worked_examples(scr, female, age, expected):
    by_hand = ckd_epi_2021_by_hand(scr, female, age)
    assert by_hand == pytest.approx(expected, abs=0.01)
    assert kidney.ckd_epi_2021([scr], [female], [age])[0] == pytest.approx(by_hand, rel=1e-12)


def test_egfr_rows_and_kdigo_categories():
    spec = STANDARDS.egfr
    # categories of the unrounded value (issue 12, item 10): 89.5 is G2 though it is displayed as 90
    values = [120, 90, 89.99, 89.5, 89.4, 60, 59.99, 45, 44, 30, 29, 15, 14, np.nan]
    assert kidney.kdigo_category(values, spec.kdigo).tolist() == [
        "G1", "G1", "G2", "G2", "G2", "G2", "G3a", "G3a", "G3b", "G3b", "G4", "G4", "G5", "",
    ]  # fmt: skip
    rows = case("K2-001", "CREAT", {0: 0.8, 8: 1.6}) + case("K2-002", "CREAT", {0: 1.2})
    annotated, _ = annotate(rows, subjects_frame({"K2-001": ("F", 50, False), "K2-002": ("M", 60, False)}))
    egfr = annotated[annotated["param"] == "EGFR"].set_index(["subject_id", "week"])
    # 0.8 mg/dL, F, 50 years: eGFR 89.71, displayed as 90 in whole mL/min/1.73m2 but KDIGO G2 (< 90), not G1;
    # 1.6 mg/dL: 142 x (1.6/0.7)^-1.2 x 0.73278 x 1.012 = 38.98
    assert egfr.loc[("K2-001", 0), "aval"] == pytest.approx(ckd_epi_2021_by_hand(0.8, True, 50), rel=1e-12)
    assert round(egfr.loc[("K2-001", 0), "aval"], 2) == 89.71
    assert egfr.loc[("K2-001", 0), "category"] == "G2"
    assert egfr.loc[("K2-001", 8), "aval"] == pytest.approx(ckd_epi_2021_by_hand(1.6, True, 50), rel=1e-12)
    assert egfr.loc[("K2-001", 8), "category"] == "G3b"
    assert egfr.loc[("K2-001", 8), "chg"] == pytest.approx(
        ckd_epi_2021_by_hand(1.6, True, 50) - ckd_epi_2021_by_hand(0.8, True, 50), rel=1e-12
    )
    assert round(egfr.loc[("K2-002", 0), "aval"], 2) == 69.23
    assert egfr.loc[("K2-002", 0), "unit"] == "mL/min/1.73m2"


def test_b12_status_thresholds():
    values = [80, 199, 199.4, 200, 299, 300, 900, np.nan]
    status = lab_table.b12_status(values, deficient_below=200, adequate_from=300)
    assert status.tolist() == ["deficient", "deficient", "deficient", "borderline", "borderline", "adequate",
                               "adequate", ""]  # fmt: skip


def test_b12_categories_cross_classified_by_baseline():
    rows = case("K2-001", "B12", {0: 150, 4: 250, 8: 420}) + case("K2-002", "B12", {0: 500, 4: 480, 8: 510})
    annotated, _ = annotate(rows, subjects_frame({"K2-001": ("F", 50, False), "K2-002": ("M", 60, False)}))
    table = lab_summaries.lab_category_counts(annotated, STANDARDS, "B12")
    b12 = table[(table.param == "B12") & (table.n > 0)]
    got = {(r.visit, r.baseline_category, r.category): (r.n, r.percent) for r in b12.itertuples()}
    assert got == {
        ("baseline", "deficient", "deficient"): (1, 100.0),
        ("baseline", "adequate", "adequate"): (1, 100.0),
        ("week4", "deficient", "borderline"): (1, 100.0),
        ("week4", "adequate", "adequate"): (1, 100.0),
        ("week8", "deficient", "adequate"): (1, 100.0),
        ("week8", "adequate", "adequate"): (1, 100.0),
    }


# ------------------------------------------------------------------------------------------------------------------
# Shifts and descriptives
# ------------------------------------------------------------------------------------------------------------------
def test_shift_table_counts_every_subject_once():
    rows = (
        case("K2-001", "K", {0: 4.0, 4: 5.3, 8: 3.3})  # NORMAL -> HIGH, LOW; worst low LOW, worst high HIGH
        + case("K2-002", "K", {0: 3.3, 4: 4.0})  # LOW -> NORMAL, week 8 missing
        + case("K2-003", "K", {0: 4.0, 4: 4.1, 8: 4.2})
    )
    subjects = subjects_frame({f"K2-00{i}": ("F", 50, False) for i in (1, 2, 3, 4)})  # K2-004: no K at all
    annotated, prepared = annotate(rows, subjects)
    shifts = lab_summaries.lab_shifts(annotated, prepared, STANDARDS)
    k = shifts[shifts.param == "K"]
    assert (k.groupby("comparison")["n"].sum() == 4).all()
    cells = {(r.comparison, r["from"], r.to): r.n for _, r in k[k.n > 0].iterrows()}
    assert cells == {
        ("week4", "NORMAL", "HIGH"): 1,
        ("week4", "NORMAL", "NORMAL"): 1,
        ("week4", "LOW", "NORMAL"): 1,
        ("week4", "MISSING", "MISSING"): 1,
        ("week8", "NORMAL", "LOW"): 1,
        ("week8", "NORMAL", "NORMAL"): 1,
        ("week8", "LOW", "MISSING"): 1,
        ("week8", "MISSING", "MISSING"): 1,
        ("worst_low", "NORMAL", "LOW"): 1,
        ("worst_low", "NORMAL", "NORMAL"): 1,
        ("worst_low", "LOW", "NORMAL"): 1,
        ("worst_low", "MISSING", "MISSING"): 1,
        ("worst_high", "NORMAL", "HIGH"): 1,
        ("worst_high", "NORMAL", "NORMAL"): 1,
        ("worst_high", "LOW", "NORMAL"): 1,
        ("worst_high", "MISSING", "MISSING"): 1,
    }
    assert list(k.comparison.unique()) == ["week4", "week8", "worst_low", "worst_high"]
    assert k.iloc[0].percent == 0.0 and k[k.n == 1].percent.iloc[0] == 25.0


def test_descriptives_count_censored_values_at_their_limit():
    rows = (
        case("K2-001", "TBIL", {0: 0.5, 8: 0.2}, censored=(8,))
        + case("K2-002", "TBIL", {0: 0.7, 8: 0.9})
        + case("K2-003", "TBIL", {0: 0.6, 8: 0.7})
    )
    annotated, _ = annotate(rows, subjects_frame({f"K2-00{i}": ("M", 50, False) for i in (1, 2, 3)}))
    d = lab_summaries.lab_descriptives(annotated, STANDARDS).set_index(["param", "visit"])
    week8 = d.loc[("TBIL", "week8")]
    assert week8["n"] == 3 and week8["n_censored"] == 1
    assert week8["mean"] == pytest.approx(0.6)  # (0.2 + 0.9 + 0.7) / 3, the limit taken as the value
    assert week8["sd"] == pytest.approx(math.sqrt(((0.2 - 0.6) ** 2 + 0.3**2 + 0.1**2) / 2))
    assert (week8["median"], week8["q1"], week8["q3"], week8["min"], week8["max"]) == pytest.approx(
        (0.7, 0.45, 0.8, 0.2, 0.9)
    )
    assert week8["chg_n_censored"] == 1
    assert week8["chg_mean"] == pytest.approx((-0.3 + 0.2 + 0.1) / 3, abs=1e-12)
    assert d.loc[("TBIL", "baseline"), "n_censored"] == 0
    assert d.loc[("TBIL", "baseline"), "unit"] == "mg/dL"


# ------------------------------------------------------------------------------------------------------------------
# Hy's law and eDISH
# ------------------------------------------------------------------------------------------------------------------
def liver(subject: str, alt: dict, tbil: dict, alp: dict | None = None, ast: dict | None = None) -> list[dict]:
    weeks = {0: None} | dict.fromkeys(alt)
    alp = alp if alp is not None else dict.fromkeys(weeks, 80.0)
    ast = ast if ast is not None else dict.fromkeys(weeks, 25.0)
    return (
        case(subject, "ALT", {0: 25.0} | alt)
        + case(subject, "AST", ast)
        + case(subject, "ALP", alp)
        + case(subject, "TBIL", {0: 0.6} | tbil)
    )


def hys(rows: list[dict], n: int, window: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    subjects = subjects_frame({f"K2-{i:03d}": ("M", 50, False) for i in range(1, n + 1)})
    annotated, prepared = annotate(rows, subjects)
    return (
        hepatic.hys_law_cases(annotated, prepared, STANDARDS, window_days=window),
        hepatic.edish(annotated, prepared, STANDARDS),
    )


def test_hys_law_case_and_near_misses():
    rows = (
        liver("K2-001", {8: 160.0}, {8: 3.0}, {0: 85.0, 8: 100.0})  # case: 4 x ULN, 2.5 x ULN, ALP normal
        + liver("K2-002", {8: 119.0}, {8: 3.0})  # ALT 2.975 x ULN: near miss
        + liver("K2-003", {8: 120.0}, {8: 2.4})  # exactly 3 x and 2 x ULN: meets ">="
        + liver("K2-004", {8: 160.0}, {8: 2.39})  # bilirubin 1.99 x ULN: near miss
        + liver("K2-005", {8: 160.0}, {8: 3.0}, {0: 85.0, 8: 260.0})  # ALP exactly 2 x ULN: cholestatic
        + liver("K2-006", {8: 30.0}, {8: 3.0}, ast={0: 25.0, 8: 130.0})  # AST 3.25 x ULN qualifies
        + liver("K2-007", {0: 160.0, 8: 30.0}, {0: 3.0, 8: 0.6})  # only at baseline: not on treatment
    )
    cases, points = hys(rows, 7)
    assert cases["subject_id"].tolist() == ["K2-001", "K2-003", "K2-006"]
    first = cases.iloc[0]
    assert (first.visit, first.week, first.tbil_visit) == ("week8", 8, "week8")
    assert (first.alt, first.alt_xuln, first.tbil, first.tbil_xuln) == (160.0, 4.0, 3.0, 2.5)
    assert first.alp_xuln == pytest.approx(100 / 130)
    assert first.note == ""
    quadrant = dict(zip(points.subject_id, points.quadrant, strict=True))
    assert quadrant == {
        "K2-001": "potential Hy's law",
        "K2-002": "hyperbilirubinaemia",
        "K2-003": "potential Hy's law",
        "K2-004": "Temple's corollary",
        "K2-005": "potential Hy's law",  # eDISH ignores ALP
        "K2-006": "potential Hy's law",
        "K2-007": "normal or mild",  # peaks are on treatment only
    }
    peak = points.set_index("subject_id").loc["K2-006"]
    assert (peak.peak_alt_xuln, peak.peak_ast_xuln, peak.peak_aminotransferase_xuln) == (0.75, 3.25, 3.25)


def test_hys_law_alp_missing_is_kept_with_a_note():
    rows = [r for r in liver("K2-001", {8: 160.0}, {8: 3.0}) if not (r["param"] == "ALP" and r["week"] == 8)]
    cases, _ = hys(rows, 1)
    assert cases["note"].tolist() == ["ALP not measured: cholestasis not excluded"]


def test_hys_law_window_across_visits():
    rows = liver("K2-001", {4: 160.0, 8: 30.0}, {4: 0.6, 8: 3.0})  # ALT at week 4, bilirubin at week 8 (28 days)
    assert hys(rows, 1, window=0)[0].empty
    assert hys(rows, 1, window=20)[0].empty
    within = hys(rows, 1, window=30)[0]
    assert within[["visit", "tbil_visit", "tbil_xuln"]].values.tolist() == [["week4", "week8", 2.5]]


def test_hys_law_empty_table_keeps_its_columns():
    cases, _ = hys(liver("K2-001", {8: 30.0}, {8: 0.6}), 1)
    assert cases.empty and list(cases.columns) == schema.columns("safety/hys_law")
