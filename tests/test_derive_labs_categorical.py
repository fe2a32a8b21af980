"""derive_labs with the clean labs' text columns as categories (how derive_labs' job reads them at scale: issue 18)
gives the values and labs.csv bytes it gives for text columns, and read_clean_table(categorical=...) reads the same
values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from k2trial.core.io import csv_bytes
from k2trial.data import contract as ct
from k2trial.data import derivation
from k2trial.data.cleaning import read_clean_table

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["subject_id", "visit", "sample_date", "test_code", "result", "unit", "ref_low", "ref_high"]
NAN = float("nan")
SUBJECTS = pd.DataFrame(
    {"subject_id": ["K2-003", "K2-010", "K2-011"], "first_dose_date": ["2013-01-02", "2013-01-01", None]}
)


@pytest.fixture(scope="module")
def contract() -> ct.Contract:
    return ct.read_contract(ROOT / "data/raw/codebook.yaml", ROOT / "config/lab_units.yaml")


def _labs() -> pd.DataFrame:
    """Subjects and visits out of order, a converted and a censored value, a missing result and a subject never
    dosed (its Baseline visit is its baseline)."""
    rows = [
        ("K2-010", "Week 4", "2013-01-29", "CREAT", "70.7", "umol/L", 53.0, 106.0),
        ("K2-003", "Baseline", "2012-12-30", "HGB", "135", "g/L", 120.0, 155.0),
        ("K2-010", "Baseline", "2012-12-30", "CREAT", "88.4", "umol/L", 53.0, 106.0),
        ("K2-011", "Baseline", "2012-12-28", "TBIL", "<3.4", "umol/L", 3.4, 20.5),
        ("K2-003", "Week 4", "2013-01-30", "HGB", None, "g/L", 120.0, 155.0),
        ("K2-010", "Baseline", "2012-12-30", "ALT", "23.5", "U/L", 7.0, 40.0),
    ]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame[["ref_low", "ref_high"]] = frame[["ref_low", "ref_high"]].astype(float)
    return frame.astype({c: "str" for c in derivation.LAB_TEXT_COLUMNS})


def test_categorical_text_columns_give_the_same_labs(contract):
    text = derivation.derive_labs(_labs(), SUBJECTS, contract)
    categories = _labs().astype({c: "category" for c in derivation.LAB_TEXT_COLUMNS})
    categories["unit"] = categories["unit"].cat.add_categories(["mg/dL"])  # a category no record uses
    categories["test_code"] = categories["test_code"].cat.add_categories(["XYZ"])  # ... and a test nobody knows
    coded = derivation.derive_labs(categories, SUBJECTS, contract)
    # the same values and the same labs.csv bytes (text columns come out as categories either way, their
    # categories in the order read or first seen)
    pd.testing.assert_frame_equal(coded, text, check_categorical=False, check_dtype=False)
    assert csv_bytes(coded) == csv_bytes(text)
    # sorted by subject number, test in config order, week; CREAT 88.4 umol/L = 1.0 mg/dL, 70.7 umol/L = 0.8
    assert coded["subject_id"].tolist() == ["K2-003", "K2-003", "K2-010", "K2-010", "K2-010", "K2-011"]
    assert coded["param"].tolist()[:2] == ["HGB", "HGB"] and np.isnan(coded["aval"].iloc[1])
    creat = coded[coded["param"] == "CREAT"]
    assert creat["aval"].tolist() == [1.0, 0.8] and creat["chg"].tolist() == pytest.approx([0.0, -0.2])
    tbil = coded[coded["param"] == "TBIL"].iloc[0]
    assert bool(tbil["censored"]) and tbil["aval"] == 0.2 and bool(tbil["baseline_record"])


def test_read_clean_table_reads_categories_of_the_same_values(tmp_path, contract):
    path = tmp_path / "labs.csv"
    frame = _labs().assign(raw_row=range(2, 8))[["raw_row", *COLUMNS]]
    frame.to_csv(path, index=False)
    spec = contract.tables["labs.csv"]
    plain = read_clean_table(path, spec)
    coded = read_clean_table(path, spec, categorical=derivation.LAB_TEXT_COLUMNS)
    assert all(isinstance(coded[c].dtype, pd.CategoricalDtype) for c in derivation.LAB_TEXT_COLUMNS)
    assert coded["ref_low"].dtype == "float64" and str(coded["raw_row"].dtype) == "Int64"
    pd.testing.assert_frame_equal(coded.astype({c: "str" for c in derivation.LAB_TEXT_COLUMNS}), plain)
    assert pd.isna(coded["result"].iloc[4]) and coded["result"].iloc[3] == "<3.4"  # "" is missing, nothing else
