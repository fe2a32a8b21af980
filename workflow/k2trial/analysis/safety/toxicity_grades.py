"""CTCAE laboratory grades as configured in config/lab_standards.yaml (today's grader; a criteria-table evaluator
in k2trial.analysis.safety.ctcae will replace it).

A term's criteria (`value <op> limit x reference` for a grade, under a condition such as baseline_normal) are
compared at the test's recording precision (k2trial.core.values.compare_at_precision). `ctcae_grades` grades every
value of the annotated lab table; `ctcae_worst` tabulates the worst post-baseline grade by the baseline grade.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from k2trial.analysis.safety.lab_table import LabArrays, unit_column
from k2trial.analysis.safety.standards import GRADES, CtcaeTerm, LabStandards
from k2trial.core import schema
from k2trial.core.values import compare_at_precision, percent

MISSING = "missing"


def grade_term(
    term: CtcaeTerm,
    aval: np.ndarray,
    lln: np.ndarray,
    uln: np.ndarray,
    base: np.ndarray,
    decimals: Any,
    *,
    is_baseline_visit: np.ndarray,
    baseline_abnormal: np.ndarray,
    anticoagulant: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """CTCAE grade (0-4; -1 without a value) and the index of the deciding criterion (-1 for grade 0).

    Arrays are aligned per value. `baseline_abnormal` (bool) is the subject's baseline beyond the limit in the
    term's direction; criteria relative to baseline apply only after baseline with a baseline value, otherwise
    the baseline_normal / not_anticoagulated criteria grade the value (lab_standards.yaml). The highest grade
    whose criterion holds wins; at equal grade the first listed criterion is reported.
    """
    aval = np.asarray(aval, dtype=float)
    n = len(aval)
    relative = ~np.asarray(is_baseline_visit, bool) & ~np.isnan(base)
    abnormal = relative & np.asarray(baseline_abnormal, bool)
    coagulated = relative & np.asarray(anticoagulant, bool)
    applies = {
        "always": np.ones(n, bool),
        "baseline_normal": ~abnormal,
        "baseline_abnormal": abnormal,
        "anticoagulated": coagulated,
        "not_anticoagulated": ~coagulated,
    }
    grade = np.zeros(n, dtype=np.int64)
    deciding = np.full(n, -1, dtype=np.int64)
    for index, criterion in enumerate(term.criteria):
        if criterion.of == "ULN":
            threshold = criterion.limit * uln
        elif criterion.of == "LLN":
            threshold = criterion.limit * lln
        elif criterion.of == "baseline":
            threshold = np.where(relative, criterion.limit * base, np.nan)
        else:
            threshold = np.full(n, criterion.limit)
        holds = applies[criterion.when] & compare_at_precision(aval, threshold, criterion.op, decimals)
        better = holds & (criterion.grade > grade)
        grade[better] = criterion.grade
        deciding[better] = index
    grade[np.isnan(aval)] = -1
    return grade, deciding


def _baseline_abnormal(arr: LabArrays, rows: np.ndarray, direction: str) -> np.ndarray:
    """Per row of `rows`: 1 baseline abnormal, 0 normal, -1 unknown (no baseline value)."""
    limit = arr.high if direction == "high" else arr.low
    op = ">" if direction == "high" else "<"
    bl_limit = arr.per_key_at_baseline(limit)[arr.key[rows]]
    bl_limit = np.where(np.isnan(bl_limit), limit[rows], bl_limit)  # no baseline-visit row: the value's own range
    bl_value = arr.base[rows]
    beyond = compare_at_precision(bl_value, bl_limit, op, arr.decimals[rows])
    return np.where(np.isnan(bl_value) | np.isnan(bl_limit), -1, beyond.astype(np.int64))


def ctcae_grades(annotated: pd.DataFrame, subjects: pd.DataFrame, standards: LabStandards) -> pd.DataFrame:
    """CTCAE grade of every graded value (artifact safety/ctcae_grades), one row per value and term.

    `criterion` names the criterion that set the grade (empty for grade 0); `baseline_abnormal` is empty when
    the subject has no baseline value. Values without a result are not graded. Sorted by subject, param
    (lab order), week, term (config order).
    """
    arr = LabArrays(annotated, standards, subjects)
    params = list(standards.all_params)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("rows", "term", "grade", "criterion", "abnormal")}
    criterion_names: list[str] = [""]
    for term_index, term in enumerate(standards.terms):
        rows = arr.rows_of(term.param, standards)
        rows = rows[~np.isnan(arr.aval[rows])]
        abnormal = _baseline_abnormal(arr, rows, term.direction)
        grade, deciding = grade_term(
            term,
            arr.aval[rows],
            arr.low[rows],
            arr.high[rows],
            arr.base[rows],
            arr.decimals[rows],
            is_baseline_visit=arr.week[rows] == 0,
            baseline_abnormal=abnormal == 1,
            anticoagulant=arr.anticoagulant[arr.s[rows]],
        )
        offset = len(criterion_names)
        criterion_names += [c.describe(term.unit) for c in term.criteria]
        parts["rows"].append(rows)
        parts["term"].append(np.full(len(rows), term_index))
        parts["grade"].append(grade)
        parts["criterion"].append(np.where(deciding >= 0, deciding + offset, 0))
        parts["abnormal"].append(abnormal)
    joined = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in parts.items()}
    rows = joined["rows"]
    # the annotated table is sorted by subject, param, week: row position, then term, is the required order
    order = np.argsort(rows * len(standards.terms) + joined["term"], kind="stable")
    rows = rows[order]
    abnormal = joined["abnormal"][order]
    unique_names = list(dict.fromkeys(criterion_names))
    name_index = np.array([unique_names.index(c) for c in criterion_names])
    return pd.DataFrame(
        {
            "subject_id": pd.Categorical.from_codes(arr.s[rows], categories=arr.subject_ids),
            "param": pd.Categorical.from_codes(arr.p[rows], categories=params),
            "visit": pd.Categorical.from_codes(arr.v[rows], categories=arr.visits),
            "week": arr.week[rows],
            "aval": arr.aval[rows],
            "unit": unit_column(arr.p[rows], standards),
            "censored": arr.censored[rows],
            "term": pd.Categorical.from_codes(joined["term"][order], categories=[t.term for t in standards.terms]),
            "grade": joined["grade"][order],
            "criterion": pd.Categorical.from_codes(name_index[joined["criterion"][order]], categories=unique_names),
            "baseline_abnormal": pd.array(np.where(abnormal < 0, None, abnormal == 1), dtype="boolean"),
        },
        columns=schema.columns("safety/ctcae_grades"),
    )


def _grade_label(codes: np.ndarray) -> np.ndarray:
    labels = np.array([str(g) for g in GRADES] + [MISSING], dtype=object)
    return labels[np.where(codes < 0, len(GRADES), codes)]


def subject_term_grades(grades: pd.DataFrame, n_subjects: int, n_terms: int) -> tuple[np.ndarray, np.ndarray]:
    """Baseline grade and worst post-baseline grade per (term, subject), shape (n_terms, n_subjects); -1 none."""
    s = grades["subject_id"].cat.codes.to_numpy().astype(np.int64)
    t = grades["term"].cat.codes.to_numpy().astype(np.int64)
    week = grades["week"].to_numpy()
    grade = grades["grade"].to_numpy().astype(np.int64)
    baseline = np.full(n_terms * n_subjects, -1, dtype=np.int64)
    worst = np.full(n_terms * n_subjects, -1, dtype=np.int64)
    flat = t * n_subjects + s
    at_baseline = week == 0
    np.maximum.at(baseline, flat[at_baseline], grade[at_baseline])
    post = week > 0
    np.maximum.at(worst, flat[post], grade[post])
    return baseline.reshape(n_terms, n_subjects), worst.reshape(n_terms, n_subjects)


def ctcae_worst(grades: pd.DataFrame, standards: LabStandards) -> pd.DataFrame:
    """Worst post-baseline grade by baseline grade, per term (safety/ctcae_worst), full grid with zero counts.

    Grades are "0"-"4" or "missing" (no value at baseline / after baseline). Denominator: the safety set
    (every subject is counted once per term). Sorted by term (config order), baseline grade, worst grade.
    """
    n_subjects = len(grades["subject_id"].cat.categories)
    n_terms = len(standards.terms)
    baseline, worst = subject_term_grades(grades, n_subjects, n_terms)
    n_levels = len(GRADES) + 1
    cell = (np.where(baseline < 0, len(GRADES), baseline)) * n_levels + np.where(worst < 0, len(GRADES), worst)
    counts = np.stack([np.bincount(cell[i], minlength=n_levels * n_levels) for i in range(n_terms)]).ravel()
    levels = np.arange(n_levels)
    term_index = np.repeat(np.arange(n_terms), n_levels * n_levels)
    from_level = np.tile(np.repeat(levels, n_levels), n_terms)
    to_level = np.tile(levels, n_terms * n_levels)
    level_codes = np.where(levels == len(GRADES), -1, levels)
    return pd.DataFrame(
        {
            "term": [standards.terms[i].term for i in term_index],
            "param": [standards.terms[i].param for i in term_index],
            "baseline_grade": _grade_label(level_codes[from_level]),
            "worst_grade": _grade_label(level_codes[to_level]),
            "n": counts,
            "percent": percent(counts, n_subjects),
            "denominator": n_subjects,
        },
        columns=schema.columns("safety/ctcae_worst"),
    )
