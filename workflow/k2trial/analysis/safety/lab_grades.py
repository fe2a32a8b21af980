"""CTCAE grades of the study's laboratory values (safety/ctcae_grades) and the worst grade after baseline by the
baseline grade (safety/ctcae_worst), graded by the one evaluator `k2trial.analysis.safety.ctcae.grade_records` with
the criteria of the configured CTCAE version (config/ctcae/, `LabStandards.ctcae`).

What is graded (CLINICAL.md, safety; issue 12):
- The value as reported, in its reported unit, against limits in that unit: the lab's own; where the lab gave none,
  the configured default range converted to that unit, when the configuration grades with default ranges
  (safety.grade_with_default_ranges). A criterion needing a limit nobody gave cannot be evaluated: the grade is then
  missing where grade 0 cannot be asserted (reason no_lln / no_uln), as admiral does. Absolute limits are CTCAE's
  for that unit (glucose in mmol/L against the SI column), never a conversion.
- Relative to the baseline of the record that supplied `base` (`baseline_record`, the last value on or before the
  first dose): its value in the same unit and its range indicator (LOW/NORMAL/HIGH against the same limits, the
  BNRIND that chooses the baseline-normal or baseline-abnormal criteria). The baseline record is graded under the
  same rule as every other record (value = baseline gives 0 for a baseline-relative criterion). Without a baseline
  (base missing, e.g. a baseline sample dated after the first dose) there is no baseline value and no indicator
  (treated as normal: the ULN criteria apply).
- Grades that CTCAE defines by symptoms are taken worst case from the value alone (the criteria file states each
  rule: hypokalaemia < LLN is grade 2, hyponatraemia 125-129 mmol/L grade 3).
- Anticoagulation from subjects.csv (True/False).
- `default_range`: the grade rests on a default range: graded with the lab's own limits only it would differ or be
  missing (always False when the configuration does not grade with default ranges).
- Values without a result are not graded; a censored value is graded at its limit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from k2trial.analysis.safety.ctcae import grade_records
from k2trial.analysis.safety.lab_table import FLAGS, LabArrays, unit_factors
from k2trial.analysis.safety.standards import GRADES, LabStandards
from k2trial.core import schema
from k2trial.core.values import percent

MISSING = "missing"


def _indicator(codes: np.ndarray) -> np.ndarray:
    """Flag codes (0 LOW, 1 NORMAL, 2 HIGH, -1 none) as the range indicator text ("" for none)."""
    labels = np.array([*FLAGS, ""], dtype=object)
    return labels[np.where(codes < 0, len(FLAGS), codes)]


def ctcae_grades(
    annotated: pd.DataFrame, subjects: pd.DataFrame, standards: LabStandards, *, use_default_ranges: bool
) -> pd.DataFrame:
    """CTCAE grade of every graded value (artifact safety/ctcae_grades), one row per value and term (see the module
    docstring). Sorted by subject, param (lab order), week, term (LabStandards.terms order)."""
    arr = LabArrays(annotated, standards, subjects)
    params = list(standards.all_params)
    graded_params = sorted({params.index(t.param) for t in standards.terms})
    rows = np.concatenate([arr.rows_of(i) for i in graded_params]) if graded_params else np.zeros(0, np.int64)
    rows = np.sort(rows[~np.isnan(arr.value[rows])])

    unit_codes = annotated["reported_unit"].cat.codes.to_numpy()  # the reported units compared by their codes
    factor = unit_factors(annotated["reported_unit"].iloc[rows], arr.p[rows], standards)
    low_default_all = annotated["low_default"].to_numpy(dtype=bool)
    high_default_all = annotated["high_default"].to_numpy(dtype=bool)
    low_default, high_default = low_default_all[rows], high_default_all[rows]
    lln, uln = arr.lln[rows], arr.uln[rows]
    lab_lln, lab_uln = np.where(low_default, np.nan, lln), np.where(high_default, np.nan, uln)

    # the baseline record of each row's subject and test: its value in the row's unit (converted from the standard
    # unit only when the two were reported in different units) and its indicator against limits in force / lab only
    key = arr.key[rows]
    base_rows = np.flatnonzero(arr.is_baseline)
    base_of_key = np.full(arr.size, -1, dtype=np.int64)
    base_of_key[arr.key[base_rows]] = base_rows
    baseline_row = base_of_key[key]
    has_baseline = baseline_row >= 0
    at = np.maximum(baseline_row, 0)
    same_unit = unit_codes[at] == unit_codes[rows]
    baseline_value = np.where(has_baseline, np.where(same_unit, arr.value[at], arr.base[rows] / factor), np.nan)
    lab_flag = annotated["lab_flag"].cat.codes.to_numpy().astype(np.int64)
    indicator = np.where(has_baseline, arr.flag[at], -1)
    lab_indicator = np.where(has_baseline, lab_flag[at], -1)

    test = pd.Categorical.from_codes(arr.p[rows], categories=params)
    unit = annotated["reported_unit"].iloc[rows].to_numpy()
    anticoagulated = arr.anticoagulant[arr.s[rows]]

    def graded(at: np.ndarray, low: np.ndarray, high: np.ndarray, flags: np.ndarray) -> pd.DataFrame:
        return grade_records(
            standards.ctcae, test=test[at], value=arr.value[rows][at], unit=unit[at], lln=low[at], uln=high[at],
            baseline=baseline_value[at], baseline_indicator=pd.Categorical(_indicator(flags[at])),
            anticoagulated=anticoagulated[at],
        )  # fmt: skip

    everything = np.arange(len(rows))
    if use_default_ranges:
        used = graded(everything, lln, uln, indicator)
        # a grade rests on a default range when grading with the lab's limits only changes it (or leaves none): only
        # records with a default limit, or whose baseline record has one, can differ, so only they are graded again
        base_default = np.zeros(len(rows), dtype=bool)
        base_default[has_baseline] = (low_default_all | high_default_all)[at[has_baseline]]
        again = np.flatnonzero(low_default | high_default | base_default)
        default_range = np.zeros(len(used), dtype=bool)
        if len(again):
            lab_only = graded(again, lab_lln, lab_uln, lab_indicator)
            record_of_row = used["record"].to_numpy()
            first = np.searchsorted(record_of_row, again)  # the rows of `used` of each record, in term order
            counts = np.bincount(record_of_row, minlength=len(rows))[again]
            offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            position = np.repeat(first, counts) + offset
            with_default = used["grade"].astype("Float64").fillna(-1).to_numpy(dtype=float)[position]
            without = lab_only["grade"].astype("Float64").fillna(-1).to_numpy(dtype=float)
            default_range[position] = with_default != without
    else:
        used = graded(everything, lab_lln, lab_uln, lab_indicator)
        default_range = np.zeros(len(used), dtype=bool)
    record = rows[used["record"].to_numpy()]
    position = used["record"].to_numpy()
    limits_low = np.where(use_default_ranges, lln, lab_lln)[position]
    limits_high = np.where(use_default_ranges, uln, lab_uln)[position]
    flags = (indicator if use_default_ranges else lab_indicator)[position]
    terms = list(dict.fromkeys(t.term for t in standards.terms))
    columns = {
        "subject_id": pd.Categorical.from_codes(arr.s[record], categories=arr.subject_ids),
        "param": pd.Categorical.from_codes(arr.p[record], categories=params),
        "visit": pd.Categorical.from_codes(arr.v[record], categories=arr.visits),
        "week": arr.week[record],
        "aval": arr.aval[record],
        "unit": annotated["unit"].array[record],  # categories taken as they are (5.1 million grades at scale)
        "censored": arr.censored[record],
        "reported_value": arr.value[record],
        "reported_unit": annotated["reported_unit"].array[record],
        "lln": limits_low,
        "uln": limits_high,
        "default_range": default_range,
        "baseline_value": baseline_value[position],
        "baseline_flag": pd.Categorical(_indicator(flags)),
        "baseline_record": arr.is_baseline[record],
        "term": pd.Categorical(used["term"]).set_categories(terms),  # grade_records' texts are categoricals
        "direction": _sorted_categories(used["direction"]),
        "grade": pd.array(used["grade"], dtype="Int64"),
        "reason": _sorted_categories(used["reason"]),
        "criterion": _sorted_categories(used["criterion"]),
        "lower_bound": used["lower_bound"].to_numpy(dtype=bool),
        "ctcae_version": pd.Categorical.from_codes(np.zeros(len(record), np.int8), [standards.ctcae_version]),
    }
    del used
    if "lbseq" in annotated.columns:  # the SDTM record key (LBSEQ) of every graded value, when labs.csv has it
        columns["lbseq"] = annotated["lbseq"].array.take(record)
    # grade_records orders the terms of a record as the criteria file does, which is LabStandards.terms' order; the
    # frame is made once, in the artifact's column order (5 million rows at 100,000 subjects)
    return pd.DataFrame({c: columns[c] for c in schema.columns("safety/ctcae_grades", present=columns)}, copy=False)


def _sorted_categories(values: pd.Series) -> pd.Categorical:
    """A categorical of the values present, categories sorted: what pd.Categorical(values) makes of the texts,
    from a categorical's codes (no text per row)."""
    categorical = pd.Categorical(values).remove_unused_categories()
    return categorical.reorder_categories(sorted(categorical.categories))


def _term_index(grades: pd.DataFrame, standards: LabStandards) -> np.ndarray:
    """Per grade row, the index of its (term, param) in standards.terms (-1 for none); looked up once per distinct
    term and param."""
    lookup = {(t.term, t.param): i for i, t in enumerate(standards.terms)}
    term_codes, terms = pd.factorize(grades["term"], use_na_sentinel=True)
    param_codes, params = pd.factorize(grades["param"], use_na_sentinel=True)
    table = np.array(
        [[lookup.get((str(t), str(p)), -1) for p in params] + [-1] for t in terms] + [[-1] * (len(params) + 1)],
        dtype=np.int64,
    )
    return table[np.where(term_codes < 0, len(terms), term_codes), np.where(param_codes < 0, len(params), param_codes)]


def subject_term_grades(
    grades: pd.DataFrame, standards: LabStandards, n_subjects: int
) -> tuple[np.ndarray, np.ndarray]:
    """Baseline grade (of the baseline record) and worst post-baseline grade per (term, subject), shape
    (len(standards.terms), n_subjects); -1 where there is no graded value."""
    n_terms = len(standards.terms)
    s = grades["subject_id"].cat.codes.to_numpy().astype(np.int64)
    t = _term_index(grades, standards)
    grade = grades["grade"].astype("Float64").fillna(-1).to_numpy(dtype=float).astype(np.int64)
    known = (grade >= 0) & (t >= 0)
    baseline = np.full(n_terms * n_subjects, -1, dtype=np.int64)
    worst = np.full(n_terms * n_subjects, -1, dtype=np.int64)
    flat = t * n_subjects + s
    at_baseline = known & grades["baseline_record"].to_numpy(dtype=bool)
    np.maximum.at(baseline, flat[at_baseline], grade[at_baseline])
    post = known & (grades["week"].to_numpy() > 0)
    np.maximum.at(worst, flat[post], grade[post])
    return baseline.reshape(n_terms, n_subjects), worst.reshape(n_terms, n_subjects)


def _grade_label(codes: np.ndarray) -> np.ndarray:
    labels = np.array([str(g) for g in GRADES] + [MISSING], dtype=object)
    return labels[np.where(codes < 0, len(GRADES), codes)]


def ctcae_worst(grades: pd.DataFrame, standards: LabStandards) -> pd.DataFrame:
    """Worst post-baseline grade by baseline grade, per term and test (safety/ctcae_worst), full grid with zero counts.

    Grades are "0"-"4" or "missing" (no graded value of the baseline record / after baseline). Denominator: the
    safety set (every subject is counted once per term). Sorted by term (LabStandards.terms order), baseline grade,
    worst grade; ctcae_version names the criteria.
    """
    n_subjects = len(grades["subject_id"].cat.categories)
    n_terms = len(standards.terms)
    baseline, worst = subject_term_grades(grades, standards, n_subjects)
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
            "ctcae_version": standards.ctcae_version,
        },
        columns=schema.columns("safety/ctcae_worst"),
    )
