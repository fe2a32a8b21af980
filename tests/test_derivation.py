"""Analysis datasets from small hand-written clean tables; every expected number is computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from k2trial.core import schema
from k2trial.core.values import round_half_away
from k2trial.data import contract as ct
from k2trial.data import derivation

ROOT = Path(__file__).resolve().parents[1]
SYMPTOMS = ["tingling", "numbness", "weakness", "fatigue", "cramps"]
NAN = float("nan")


@pytest.fixture(scope="module")
def contract() -> ct.Contract:
    return ct.read_contract(ROOT / "data/raw/codebook.yaml", ROOT / "config/lab_units.yaml")


def _diary(rows: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """Clean diary from {(subject, visit label): [VAS of the 5 symptoms]}."""
    records = [
        {"subject_id": s, "visit": v, "assessment_date": "2013-01-01", "symptom": sym, "vas_cm": x, "comment": None}
        for (s, v), values in rows.items()
        for sym, x in zip(SYMPTOMS, values, strict=True)
    ]
    return pd.DataFrame(records)


DIARY = _diary(
    {
        ("K2-010", "Baseline"): [8.0, 7.0, 6.0, 5.0, 4.0],  # composite 6.0
        ("K2-010", "Week 8"): [1.0, 1.0, 2.0, 2.0, 0.0],  # composite 1.2
        ("K2-003", "Baseline"): [9.0, 8.0, 7.0, 6.0, 0.0],  # cramps 0 at baseline; composite 6.0
        ("K2-003", "Week 8"): [2.0, NAN, 1.0, 1.0, 0.5],  # numbness missing
    }
)


def _row(frame: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(frame), dtype=bool)
    for column, value in where.items():
        mask &= (frame[column] == value).to_numpy()
    assert mask.sum() == 1, where
    return frame[mask].iloc[0]


def test_round_half_up():
    values = round_half_away([2.675, 0.125, -1.25, 2.5, 1.005, NAN, 406.6141], [2, 2, 1, 0, 2, 1, 0])
    assert values[:5].tolist() == [2.68, 0.13, -1.3, 3.0, 1.01]
    assert np.isnan(values[5]) and values[6] == 407.0


def test_composite_is_the_mean_and_missing_when_a_symptom_is_missing():
    strict = derivation.composite_scores(DIARY, SYMPTOMS, require_all=True)
    assert _row(strict, subject_id="K2-010", visit="Baseline")["aval"] == pytest.approx(6.0)
    assert _row(strict, subject_id="K2-010", visit="Week 8")["aval"] == pytest.approx(1.2)
    assert np.isnan(_row(strict, subject_id="K2-003", visit="Week 8")["aval"])
    lenient = derivation.composite_scores(DIARY, SYMPTOMS, require_all=False)
    assert _row(lenient, subject_id="K2-003", visit="Week 8")["aval"] == pytest.approx((2.0 + 1.0 + 1.0 + 0.5) / 4)
    two = derivation.composite_scores(DIARY, ["tingling", "numbness"], require_all=True)
    assert _row(two, subject_id="K2-003", visit="Baseline")["aval"] == pytest.approx(8.5)


def test_vas_dataset_change_and_percent_change(contract):
    vas = derivation.derive_vas(DIARY, contract, SYMPTOMS, require_all=True)
    assert list(vas.columns) == schema.columns("analysis/vas")
    composite = _row(vas, subject_id="K2-010", param="composite", visit="week8")
    assert composite["week"] == 8
    assert composite[["aval", "base", "chg", "pchg"]].tolist() == pytest.approx([1.2, 6.0, -4.8, -80.0])
    tingling = _row(vas, subject_id="K2-003", param="tingling", visit="week8")
    assert tingling[["aval", "base", "chg", "pchg"]].tolist() == pytest.approx([2.0, 9.0, -7.0, -700 / 9])
    cramps = _row(vas, subject_id="K2-003", param="cramps", visit="week8")
    assert cramps["chg"] == pytest.approx(0.5) and np.isnan(cramps["pchg"])  # base 0: percent change undefined
    assert np.isnan(_row(vas, subject_id="K2-003", param="composite", visit="week8")["aval"])
    # subject number, then symptom order, composite last, then week
    assert vas["subject_id"].tolist()[:12] == ["K2-003"] * 12
    assert vas["param"].tolist()[:4] == ["tingling", "tingling", "numbness", "numbness"]
    assert vas["param"].tolist()[10:12] == ["composite", "composite"]
    assert len(vas) == 2 * 2 * 6


SUBJECTS = pd.DataFrame(
    {
        "raw_row": [2, 3, 4],
        "subject_id": ["K2-010", "K2-002", "K2-003"],
        "site": ["SITE-A", "SITE-B", "SITE-A"],
        "sex": ["F", "M", "M"],
        "age_years": [40.0, 50.0, 60.0],
        "weight_kg": [80.0, 70.0, 90.0],
        "height_cm": [160.0, 175.0, 180.0],
        "etiology": ["b12_deficiency", "diabetes", "both"],
        "diabetes_duration_years": [NAN, 5.0, 2.0],
        "metformin": ["no", "yes", "yes"],
        "prior_b12_therapy": ["yes", "no", "no"],
        "anticoagulant": ["no", "no", "yes"],
        "consent_date": ["2012-12-20", "2012-12-21", "2012-12-22"],
        "first_dose_date": ["2013-01-01", None, "2013-01-02"],
        "last_dose_date": ["2013-02-25", None, "2013-02-26"],
        "status": ["completed", "withdrawn", "completed"],
        "withdrawal_reason": [None, "withdrew consent", None],
    }
)
DOSING = pd.DataFrame(
    {
        "raw_row": [2, 3, 4, 5],
        "subject_id": ["K2-010", "K2-010", "K2-003", "K2-003"],
        "visit": ["Week 4", "Week 8", "Week 4", "Week 8"],
        "capsules_dispensed": [56.0, 56.0, 56.0, 56.0],
        "capsules_returned": [4.0, 0.0, 2.0, NAN],
    }
)


def test_subjects_dataset_compliance_and_flags(contract):
    subjects = derivation.derive_subjects(SUBJECTS, DOSING, DIARY, 2, SYMPTOMS, True, contract)
    assert list(subjects.columns) == schema.columns("analysis/subjects")
    assert subjects["subject_id"].tolist() == ["K2-002", "K2-003", "K2-010"]
    k10 = _row(subjects, subject_id="K2-010")
    assert k10["bmi"] == pytest.approx(80 / 1.6**2)  # 31.25 kg/m2
    assert k10["treatment_days"] == 56  # 2013-01-01 .. 2013-02-25, both days dosed
    assert (k10["capsules_dispensed"], k10["capsules_returned"], k10["capsules_expected"]) == (112, 4, 112)
    assert k10["compliance_pct"] == pytest.approx(100 * 108 / 112)  # 96.43 %
    assert (k10["metformin"], k10["prior_b12_therapy"], k10["anticoagulant"]) == (False, True, False)
    assert (k10["completed"], k10["saffl"], k10["efffl"]) == (True, True, True)
    k3 = _row(subjects, subject_id="K2-003")
    assert np.isnan(k3["capsules_returned"]) and np.isnan(k3["compliance_pct"])  # a count is missing
    assert (k3["saffl"], k3["efffl"]) == (True, False)  # week-8 composite missing (numbness)
    k2 = _row(subjects, subject_id="K2-002")
    assert (k2["completed"], k2["saffl"], k2["efffl"]) == (False, False, False)
    assert np.isnan(k2["treatment_days"]) and np.isnan(k2["capsules_dispensed"])


def _labs(rows: list[tuple]) -> pd.DataFrame:
    columns = ["subject_id", "visit", "sample_date", "test_code", "result", "unit", "ref_low", "ref_high"]
    frame = pd.DataFrame(rows, columns=columns)
    frame[["ref_low", "ref_high"]] = frame[["ref_low", "ref_high"]].astype(float)
    return frame


def test_labs_convert_to_standard_units_with_ranges_and_censoring(contract):
    labs = _labs(
        [
            ("K2-010", "Baseline", "2012-12-30", "CREAT", "88.4", "umol/L", 53.0, 106.0),
            ("K2-010", "Baseline", "2012-12-30", "TBIL", "<3.4", "umol/L", 3.4, 20.5),
            ("K2-010", "Baseline", "2012-12-30", "GLUCF", "5.0", "mmol/L", NAN, NAN),
            ("K2-010", "Baseline", "2012-12-30", "HGB", "135", "g/L", 120.0, 155.0),
            ("K2-010", "Baseline", "2012-12-30", "B12", "300", "pmol/L", NAN, NAN),
            ("K2-010", "Baseline", "2012-12-30", "NA", "140", "mmol/L", NAN, NAN),
        ]
    )
    out = derivation.derive_labs(labs, SUBJECTS, contract)
    assert list(out.columns) == schema.columns("analysis/labs")
    assert out["param"].tolist() == ["HGB", "TBIL", "CREAT", "NA", "GLUCF", "B12"]  # lab_units order
    expected = {  # (aval, unit, ref_low, ref_high, censored)
        "HGB": (13.5, "g/dL", 12.0, 15.5, False),
        "TBIL": (0.2, "mg/dL", 0.2, 1.2, True),  # 3.4 / 17.1 = 0.199 -> 0.20; 20.5 / 17.1 = 1.199 -> 1.20
        "CREAT": (1.0, "mg/dL", 0.6, 1.2, False),  # 53 / 88.4 = 0.5995 -> 0.60
        "NA": (140.0, "mmol/L", NAN, NAN, False),
        "GLUCF": (90.0, "mg/dL", NAN, NAN, False),  # 5.0 x 18.016 = 90.08 -> 90
        "B12": (407.0, "pg/mL", NAN, NAN, False),  # 300 / 0.7378 = 406.6 -> 407
    }
    for row in out.itertuples():
        aval, unit, low, high, censored = expected[row.param]
        assert row.aval == pytest.approx(aval) and row.unit == unit and row.censored == censored, row
        np.testing.assert_allclose([row.ref_low, row.ref_high], [low, high], rtol=1e-12, equal_nan=True)
        assert row.visit == "baseline" and row.week == 0 and row.base == row.aval and row.chg == 0
        assert row.baseline_record
    # what the laboratory reported stays beside the standard value: CREAT 88.4 umol/L with range 53-106 umol/L
    creat = _row(out, param="CREAT")
    assert (creat.reported_value, creat.reported_unit, creat.reported_ref_low, creat.reported_ref_high) == (
        88.4, "umol/L", 53.0, 106.0,
    )  # fmt: skip
    assert _row(out, param="TBIL").reported_value == 3.4 and _row(out, param="NA").reported_unit == "mmol/L"


def test_values_in_the_standard_unit_keep_their_reported_precision(contract):
    # issue 12, item 9: ALT 23.5 U/L (the contract records ALT in whole U/L) became 24 without a trace. A value
    # reported in the standard unit is kept as reported; only a converted value is rounded to the contract's
    # decimals (60 umol/L / 88.4 = 0.6787 -> 0.68 mg/dL), and its reported value stays beside it.
    labs = _labs(
        [
            ("K2-010", "Baseline", "2012-12-30", "ALT", "23.5", "U/L", 7.0, 40.0),
            ("K2-010", "Week 4", "2013-01-29", "ALT", "31", "U/L", 7.0, 40.0),
            ("K2-010", "Baseline", "2012-12-30", "CREAT", "60", "umol/L", NAN, 40.5),
            ("K2-010", "Baseline", "2012-12-30", "K", "2.49", "mmol/L", 3.5, 5.1),
        ]
    )
    out = derivation.derive_labs(labs, SUBJECTS, contract)
    alt = out[out["param"] == "ALT"]
    assert alt["aval"].tolist() == [23.5, 31.0] and alt["base"].tolist() == [23.5, 23.5]
    assert alt["chg"].tolist() == [0.0, 7.5]  # at the decimals the values carry
    creat = _row(out, param="CREAT")
    assert (creat.aval, creat.ref_high, creat.reported_value, creat.reported_ref_high) == (0.68, 0.46, 60.0, 40.5)
    assert _row(out, param="K").aval == 2.49  # not 2.5 (potassium is recorded to 1 decimal)


def test_lab_baseline_is_the_last_value_on_or_before_first_dose(contract):
    labs = _labs(
        [
            ("K2-010", "Baseline", "2013-01-01", "HGB", "12.0", "g/dL", NAN, NAN),  # on the first-dose day
            ("K2-010", "Week 4", "2013-01-29", "HGB", "12.6", "g/dL", NAN, NAN),
            ("K2-010", "Week 8", "2013-02-26", "HGB", "13.15", "g/dL", NAN, NAN),
            ("K2-003", "Baseline", "2013-01-05", "HGB", "14.0", "g/dL", NAN, NAN),  # after the first dose
            ("K2-003", "Week 4", "2013-01-30", "HGB", "14.2", "g/dL", NAN, NAN),
            ("K2-002", "Baseline", "2013-01-05", "HGB", "15.0", "g/dL", NAN, NAN),  # never dosed
            ("K2-002", "Week 4", "2013-02-05", "HGB", "", "g/dL", NAN, NAN),  # no result
        ]
    )
    out = derivation.derive_labs(labs, SUBJECTS, contract)
    k10 = out[out["subject_id"] == "K2-010"]
    assert k10["aval"].tolist() == [12.0, 12.6, 13.15]  # reported in g/dL: kept as reported
    assert k10["base"].tolist() == [12.0, 12.0, 12.0]
    assert k10["chg"].tolist() == [0.0, 0.6, 1.15]
    assert k10["baseline_record"].tolist() == [True, False, False]
    k3 = out[out["subject_id"] == "K2-003"]
    assert k3["base"].isna().all()  # no value on or before the first dose
    assert not k3["baseline_record"].any()  # the week-0 sample after the first dose is no baseline
    k2 = out[out["subject_id"] == "K2-002"]
    assert k2["base"].tolist() == [15.0, 15.0] and np.isnan(k2["aval"].iloc[1]) and np.isnan(k2["chg"].iloc[1])
    assert k2["baseline_record"].tolist() == [True, False]
    assert out["subject_id"].tolist() == ["K2-002", "K2-002", "K2-003", "K2-003", "K2-010", "K2-010", "K2-010"]
