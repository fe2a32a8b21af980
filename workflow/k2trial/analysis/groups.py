"""Severity groups and analysis populations.

The publication splits patients by baseline VAS into a moderate group (VAS 6-8) and a severe group
(VAS 8-9); the ranges overlap at 8, so the boundary is a configured threshold: severe when the baseline
primary VAS (the composite, the mean of the protocol's composite items; a single-item study's item: the
vocabulary's primary_param, read by rule assign_groups) is >= `severe_threshold`, moderate below it. It is held
in the column baseline_composite and compared at the composite's recording precision (`composite_decimals`), so
7.999999999 from floating-point averaging counts as 8.00. Baseline composites outside the published range are flagged,
never excluded.

Analysis populations, all within the efficacy set (`efffl`); config `populations` chooses which are reported, in
which order and under which label (k2trial.core.vocabulary); MEMBERSHIP says who belongs to each:
    all            the efficacy set
    moderate       baseline composite < threshold
    severe         baseline composite >= threshold
    b12_deficient  etiology b12_deficiency or both
    diabetic       etiology diabetes or both
    residual_b12   B12-deficient, prior B12 therapy, baseline serum B12 >= the adequacy threshold (pg/mL):
                   the publication's "10 of 23 with symptoms despite adequate B12"
A subject whose membership cannot be decided (no baseline composite; residual status without a baseline
B12 value) has a missing flag and belongs to none of the populations that need it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from k2trial.core import schema
from k2trial.core.errors import ConfigError, InputDataError, Problem
from k2trial.core.values import round_half_away, sort_by_subject, to_boolean

#: The population of every efficacy analysis: the efficacy set as a whole.
EFFICACY_SET = "all"
SEVERITY_GROUPS = ("moderate", "severe")
B12_ETIOLOGIES = ("b12_deficiency", "both")
DIABETIC_ETIOLOGIES = ("diabetes", "both")
#: What the groups step reads of results/analysis/subjects.csv, and of the efficacy set's assignment.
SUBJECT_INPUT_COLUMNS = ("subject_id", "etiology", "prior_b12_therapy", "efffl")
MEMBER_COLUMNS = ("subject_id", "efffl", "severity_group", "b12_deficient", "diabetic", "residual_b12")


def baseline_value(long: pd.DataFrame, param: str, visit: str = "baseline", *, label: str = "table") -> pd.Series:
    """aval of one param at one visit per subject_id (a long analysis table: subject_id, param, visit, aval).

    Two records for the same subject raise InputDataError (row numbers: header = row 1).
    """
    hit = (long["param"] == param).to_numpy(dtype=bool) & (long["visit"] == visit).to_numpy(dtype=bool)
    rows = long[hit]
    ids = rows["subject_id"].astype(str)
    duplicated = ids.duplicated().to_numpy()
    if duplicated.any():
        first = int(np.flatnonzero(duplicated)[0])
        raise InputDataError(
            [
                Problem(
                    label, int(rows.index[first]) + 2, "subject_id", ids.iloc[first], "unique_key", "error",
                    f"more than one {param} record at {visit} for this subject",
                )
            ]
        )  # fmt: skip
    return pd.Series(rows["aval"].to_numpy(dtype=float), index=ids.to_numpy())


def assign_groups(
    subjects: pd.DataFrame,
    baseline_composite: pd.Series,
    baseline_b12: pd.Series,
    *,
    severe_threshold: float,
    published_range: Sequence[float],
    adequate_b12_from: float,
    composite_decimals: int,
) -> pd.DataFrame:
    """Severity group and subgroup flags for every subject of subjects.csv.

    subjects: subject_id, etiology, prior_b12_therapy, efffl (booleans as bool or "True"/"False").
    baseline_composite: composite VAS (cm) at baseline by subject_id; baseline_b12: serum B12 at
    baseline (pg/mL) by subject_id. A censored B12 ("<x"/">x") counts at its limit, as labs.csv holds it.
    Returns the columns of groups/assignment, one row per subject, sorted by subject number. Booleans are nullable:
    missing where the needed value is missing.
    """
    out = sort_by_subject(subjects[list(SUBJECT_INPUT_COLUMNS)].copy())
    ids = out["subject_id"].astype(str)
    composite = pd.Series(
        round_half_away(ids.map(baseline_composite).astype(float), composite_decimals), index=ids.index
    )
    low, high = float(published_range[0]), float(published_range[1])
    has_composite = composite.notna()
    severity = pd.Series(pd.NA, index=out.index, dtype="string")
    severity[has_composite & (composite >= severe_threshold)] = "severe"
    severity[has_composite & (composite < severe_threshold)] = "moderate"
    outside = ((composite < low) | (composite > high)).astype("boolean")
    outside[~has_composite] = pd.NA

    etiology = out["etiology"].astype("string")
    b12_deficient = etiology.isin(B12_ETIOLOGIES).astype("boolean")
    diabetic = etiology.isin(DIABETIC_ETIOLOGIES).astype("boolean")
    b12_deficient[etiology.isna()] = pd.NA
    diabetic[etiology.isna()] = pd.NA
    prior = to_boolean(out["prior_b12_therapy"])
    b12 = ids.map(baseline_b12).astype(float)
    adequate = (b12 >= adequate_b12_from).astype("boolean")
    adequate[b12.isna()] = pd.NA
    # Kleene logic: False as soon as one condition is False, missing only when it could still be True.
    residual = b12_deficient & prior & adequate

    return pd.DataFrame(
        {
            "subject_id": ids,
            "efffl": to_boolean(out["efffl"]),
            "baseline_composite": composite,
            "severity_group": severity,
            "severe_threshold": float(severe_threshold),
            "outside_published_range": outside,
            "etiology": etiology,
            "b12_deficient": b12_deficient,
            "diabetic": diabetic,
            "prior_b12_therapy": prior,
            "baseline_b12": b12,
            "residual_b12": residual,
        },
        columns=schema.columns("groups/assignment"),
    )


def _flag(assignment: pd.DataFrame, column: str) -> np.ndarray:
    """A nullable boolean column of the assignment as bool: a missing flag means "not a member"."""
    return to_boolean(assignment[column]).fillna(False).to_numpy(dtype=bool)


def _severity(assignment: pd.DataFrame, group: str) -> np.ndarray:
    return (assignment["severity_group"].astype("string") == group).fillna(False).to_numpy(dtype=bool)


#: Who belongs to each population, before the efficacy set is applied (see the module docstring).
MEMBERSHIP: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
    "all": lambda a: np.ones(len(a), dtype=bool),
    "moderate": lambda a: _severity(a, "moderate"),
    "severe": lambda a: _severity(a, "severe"),
    "b12_deficient": lambda a: _flag(a, "b12_deficient"),
    "diabetic": lambda a: _flag(a, "diabetic"),
    "residual_b12": lambda a: _flag(a, "residual_b12"),
}


def population_members(assignment: pd.DataFrame, populations: Sequence[str]) -> dict[str, np.ndarray]:
    """Boolean membership per population (in the order given), aligned with the rows of `assignment`.

    Everything is within the efficacy set; a missing flag means "not a member". Raises ConfigError for a population
    without a membership rule.
    """
    unknown = [p for p in populations if p not in MEMBERSHIP]
    if unknown:
        known = ", ".join(MEMBERSHIP)
        raise ConfigError(f"config populations: no membership rule for {', '.join(unknown)} (known: {known})")
    efficacy = _flag(assignment, "efffl")
    return {population: efficacy & MEMBERSHIP[population](assignment) for population in populations}


def group_counts(
    assignment: pd.DataFrame,
    *,
    severe_threshold: float,
    published_range: Sequence[float],
    adequate_b12_from: float,
    endpoint: str = "composite",
    efficacy_visit: str | None = None,
) -> pd.DataFrame:
    """Subjects per group among all enrolled and within the efficacy set (COUNT_COLUMNS).

    Rows: the populations, then the subjects whose group could not be decided and the flagged ones. endpoint: the
    primary VAS in words ("composite"; a single-item study's item, "pain"), whose baseline value the severity groups
    and the published range (column baseline_composite) apply to; efficacy_visit: the visit in words at which the
    efficacy set needs it besides baseline (the end of treatment, "week 8").
    """
    efficacy = _flag(assignment, "efffl")
    severity = assignment["severity_group"].astype("string")
    every = np.ones(len(assignment), dtype=bool)

    def flag(column: str) -> np.ndarray:
        return _flag(assignment, column)

    threshold = f"{severe_threshold:g}"
    at_end = f" and {efficacy_visit}" if efficacy_visit else ""
    rows = [
        ("all", f"enrolled (n_enrolled); efficacy set: {endpoint} VAS at baseline{at_end}", every),
        ("moderate", f"baseline {endpoint} VAS < {threshold}", (severity == "moderate").fillna(False).to_numpy(bool)),
        ("severe", f"baseline {endpoint} VAS >= {threshold}", (severity == "severe").fillna(False).to_numpy(bool)),
        ("b12_deficient", "etiology b12_deficiency or both", flag("b12_deficient")),
        ("diabetic", "etiology diabetes or both", flag("diabetic")),
        (
            "residual_b12",
            f"B12-deficient, prior B12 therapy, baseline serum B12 >= {adequate_b12_from:g} pg/mL",
            flag("residual_b12"),
        ),
        ("severity_missing", f"no baseline {endpoint} VAS: no severity group", severity.isna().to_numpy(bool)),
        (
            "residual_b12_missing",
            "B12-deficient with prior B12 therapy but no baseline serum B12: residual status unknown",
            to_boolean(assignment["residual_b12"]).isna().to_numpy(bool),
        ),
        (
            "outside_published_range",
            f"baseline {endpoint} VAS outside the published range {published_range[0]:g}-{published_range[1]:g} "
            "(flagged, not excluded)",
            flag("outside_published_range"),
        ),
    ]
    return pd.DataFrame(
        [(name, text, int(mask.sum()), int((mask & efficacy).sum())) for name, text, mask in rows],
        columns=schema.columns("groups/counts"),
    )
