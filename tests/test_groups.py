"""k2trial.analysis.groups: severity groups, subgroup flags, populations and counts, by hand on small fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shipped_vocabulary

from k2trial.analysis import groups
from k2trial.core import schema
from k2trial.core.errors import InputDataError

FIXTURES = Path(__file__).parent / "fixtures" / "efficacy"
SETTINGS = {"severe_threshold": 8.0, "published_range": [6.0, 9.0], "adequate_b12_from": 300.0, "composite_decimals": 2}

# Worked out by hand from tests/fixtures/efficacy/make_fixtures.py:
# subject: baseline composite (mean of 5 symptoms), group, outside 6-9, B12-deficient, diabetic, residual
EXPECTED = {
    "K2-001": (6.6, "moderate", False, True, False, False),  # no prior B12 therapy
    "K2-002": (8.0, "severe", False, True, False, True),  # 40.0 / 5 = 8.00: boundary goes to severe; B12 350
    "K2-003": (9.0, "severe", False, False, True, False),  # 9.0 is inside the published range
    "K2-004": (5.8, "moderate", True, True, True, True),  # B12 exactly 300 = adequate
    "K2-005": (8.4, "severe", False, True, False, False),  # B12 250 < 300
    "K2-006": (7.92, "moderate", False, False, True, False),
    "K2-007": (9.2, "severe", True, True, False, None),  # prior therapy, B12 never measured: unknown
    "K2-008": (7.4, "moderate", False, True, True, False),
    "K2-009": (7.9, "moderate", False, True, False, False),  # withdrawn: not in the efficacy set
    "K2-010": (8.0, "severe", False, True, False, False),  # "<150" censored: 150 < 300
    "K2-012": (6.4, "moderate", False, False, True, False),
    "K2-100": (8.4, "severe", False, True, False, True),  # ordered after K2-012
}


def fixture_assignment(**overrides) -> pd.DataFrame:
    subjects = schema.read_artifact(
        FIXTURES / "subjects.csv", "analysis/subjects", ["subject_id", "etiology", "prior_b12_therapy", "efffl"]
    )
    vas = schema.read_artifact(FIXTURES / "vas.csv", "analysis/vas", ["subject_id", "param", "visit", "aval"])
    labs = schema.read_artifact(FIXTURES / "labs.csv", "analysis/labs", ["subject_id", "visit", "param", "aval"])
    options = {**SETTINGS, **overrides}
    return groups.assign_groups(
        subjects,
        groups.baseline_value(vas, "composite", label="vas.csv"),
        groups.baseline_value(labs, "B12", label="labs.csv"),
        severe_threshold=options["severe_threshold"],
        published_range=options["published_range"],
        adequate_b12_from=options["adequate_b12_from"],
        composite_decimals=options["composite_decimals"],
    )


def test_fixture_assignment_by_hand():
    assignment = fixture_assignment()
    assert list(assignment.columns) == schema.columns("groups/assignment")
    assert list(assignment["subject_id"]) == list(EXPECTED)
    for _, r in assignment.iterrows():
        composite, group, outside, b12, diabetic, residual = EXPECTED[r["subject_id"]]
        assert r["baseline_composite"] == pytest.approx(composite, abs=1e-12)
        assert r["severity_group"] == group
        assert bool(r["outside_published_range"]) is outside
        assert bool(r["b12_deficient"]) is b12
        assert bool(r["diabetic"]) is diabetic
        assert (None if pd.isna(r["residual_b12"]) else bool(r["residual_b12"])) is residual
    assert set(assignment.loc[~assignment["efffl"].astype(bool), "subject_id"]) == {"K2-009"}
    assert (assignment["severe_threshold"] == 8.0).all()


def test_threshold_is_configurable():
    assignment = fixture_assignment(severe_threshold=8.5).set_index("subject_id")
    assert assignment.loc["K2-002", "severity_group"] == "moderate"  # 8.0 < 8.5
    assert assignment.loc["K2-003", "severity_group"] == "severe"  # 9.0
    assert assignment.loc["K2-005", "severity_group"] == "moderate"  # 8.4


def test_composite_compared_at_recording_precision():
    subjects = pd.DataFrame(
        {
            "subject_id": ["K2-1", "K2-2", "K2-3"],
            "etiology": ["diabetes"] * 3,
            "prior_b12_therapy": [False] * 3,
            "efffl": [True] * 3,
        }
    )
    composite = pd.Series([7.999999999999999, 7.99, np.nan], index=["K2-1", "K2-2", "K2-3"])
    out = groups.assign_groups(
        subjects, composite, pd.Series(dtype=float), **{**SETTINGS, "composite_decimals": 2}
    ).set_index("subject_id")
    assert out.loc["K2-1", "severity_group"] == "severe"
    assert out.loc["K2-2", "severity_group"] == "moderate"
    assert pd.isna(out.loc["K2-3", "severity_group"]) and pd.isna(out.loc["K2-3", "outside_published_range"])


def test_residual_b12_needs_every_condition():
    subjects = pd.DataFrame(
        {
            "subject_id": ["K2-001", "K2-002", "K2-003", "K2-004"],
            "etiology": ["b12_deficiency", "b12_deficiency", "diabetes", "both"],
            "prior_b12_therapy": ["True", "False", "True", "True"],
            "efffl": ["True"] * 4,
        }
    )
    b12 = pd.Series([400.0, 400.0, 400.0], index=["K2-001", "K2-002", "K2-003"])
    out = groups.assign_groups(subjects, pd.Series(7.0, index=subjects["subject_id"]), b12, **SETTINGS)
    residual = out.set_index("subject_id")["residual_b12"]
    assert bool(residual["K2-001"]) is True
    assert bool(residual["K2-002"]) is False  # no prior therapy
    assert bool(residual["K2-003"]) is False  # diabetes only: not B12-deficient
    assert pd.isna(residual["K2-004"])  # B12 not measured: unknown


def test_populations_and_counts():
    assignment = fixture_assignment()
    members = groups.population_members(assignment, shipped_vocabulary().populations)
    assert list(members) == list(shipped_vocabulary().populations)
    ids = assignment["subject_id"].to_numpy()
    assert set(ids[members["all"]]) == set(EXPECTED) - {"K2-009"}
    assert set(ids[members["moderate"]]) == {"K2-001", "K2-004", "K2-006", "K2-008", "K2-012"}
    assert set(ids[members["severe"]]) == {"K2-002", "K2-003", "K2-005", "K2-007", "K2-010", "K2-100"}
    assert set(ids[members["residual_b12"]]) == {"K2-002", "K2-004", "K2-100"}
    assert set(ids[members["diabetic"]]) == {"K2-003", "K2-004", "K2-006", "K2-008", "K2-012"}
    counts = groups.group_counts(assignment, severe_threshold=8.0, published_range=[6, 9], adequate_b12_from=300)
    table = counts.set_index("group")[["n_enrolled", "n_efficacy_set"]]
    assert table.loc["all"].tolist() == [12, 11]
    assert table.loc["moderate"].tolist() == [6, 5]
    assert table.loc["severe"].tolist() == [6, 6]
    assert table.loc["b12_deficient"].tolist() == [9, 8]
    assert table.loc["diabetic"].tolist() == [5, 5]
    assert table.loc["residual_b12"].tolist() == [3, 3]
    assert table.loc["residual_b12_missing"].tolist() == [1, 1]
    assert table.loc["outside_published_range"].tolist() == [2, 2]
    assert ">= 8" in counts.set_index("group").loc["severe", "definition"]


def test_sodium_code_is_not_read_as_missing():
    labs = schema.read_artifact(FIXTURES / "labs.csv", "analysis/labs", ["subject_id", "param", "aval"])
    assert "NA" in set(labs["param"].astype(str))
    assert labs["param"].notna().all()


def test_input_errors_name_file_row_and_column(tmp_path):
    with pytest.raises(InputDataError) as missing:
        schema.read_artifact(FIXTURES / "vas.csv", "analysis/vas", ["subject_id", "no_such_column"], label="vas.csv")
    assert "no_such_column" in str(missing.value) and "vas.csv" in str(missing.value)
    long = pd.DataFrame(
        {"subject_id": ["K2-001", "K2-001"], "param": ["composite"] * 2, "visit": ["baseline"] * 2, "aval": [7.0, 7.2]}
    )
    with pytest.raises(InputDataError) as duplicate:
        groups.baseline_value(long, "composite", label="vas.csv")
    assert "row 3" in str(duplicate.value) and "K2-001" in str(duplicate.value)
