"""The annotated laboratory table of the safety set: reference ranges in force, LOW/NORMAL/HIGH flags, baseline
flags, B12 status and eGFR with its KDIGO category; and `LabArrays`, its integer view for vectorised work.

Conventions (CLINICAL.md, safety section):
- Values (`aval`) are in the standard unit of config/lab_units.yaml; `reported_value` and `reported_unit` are the
  value as the laboratory reported it. A value reported as "<x" or ">x" is *censored*: it holds the limit x (never
  zero); flags, grades and categories use the limit.
- Reference range of a value: the reporting lab's limits when given, else the default range of
  config/lab_standards.yaml for the subject's sex. Each limit is filled on its own. `ref_low`/`ref_high` are the
  range in force in the standard unit (for display); `reported_low`/`reported_high` the same limits in the reported
  unit (the lab's own, or the default converted to that unit); `low_default`/`high_default` say which limit is a
  default.
- Flags: LOW if value < lower limit, HIGH if value > upper limit, else NORMAL: the value as reported against the
  limits in its unit, both at 15 significant digits (k2trial.core.values.compare), so neither a conversion nor a
  rounding moves a value across a limit. `lab_flag` is the same against the lab's own limits only (missing when a
  limit it would need is not given).
- Baseline: the record that supplied `base` of labs.csv (`baseline_record`: the last value on or before the first
  dose) is the baseline of the flags (`baseline_flag`), the shift tables, the CTCAE grades and the conclusion; a
  sample of the baseline visit dated after the first dose is no baseline. Post-baseline (on treatment) = week > 0.
- eGFR (CKD-EPI 2021) from the creatinine in mg/dL, unrounded; its KDIGO category on the unrounded value.
- Population: the safety set (`saffl`). Ordering: subjects by the number in the ID, params in lab_units order
  then eGFR, visits by study week.

All functions work on whole columns (no loop over subjects or rows), so they scale to 100,000 subjects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from k2trial.analysis.safety.kidney import ckd_epi_2021, kdigo_category
from k2trial.analysis.safety.standards import SEXES, LabStandards
from k2trial.core import schema
from k2trial.core.errors import InputDataError, Problem
from k2trial.core.values import as_bool, compare, subject_numbers

FLAGS = ("LOW", "NORMAL", "HIGH")
RANGE_SOURCES = ("lab", "default", "lab+default", "none")
B12_STATUSES = ("deficient", "borderline", "adequate")
#: Week numbers are below this (sort keys of subject x param x week).
_WEEK_SPAN = 10_000
#: What the safety analysis reads of results/analysis/labs.csv and subjects.csv (k2trial.core.schema).
LAB_INPUT_COLUMNS = ("subject_id", "visit", "week", "sample_date", "param", "aval", "unit", "ref_low", "ref_high",
                     "reported_value", "reported_unit", "reported_ref_low", "reported_ref_high", "censored", "base",
                     "chg", "baseline_record")  # fmt: skip
#: Repeated text of labs.csv that the steps read as categories (100,000 subjects give 5.4 million lab rows):
#: annotate_labs takes them as categories or as text.
LAB_CATEGORIES = ("subject_id", "visit", "sample_date", "param", "unit", "reported_unit")
SUBJECT_INPUT_COLUMNS = ("subject_id", "sex", "age_years", "anticoagulant", "saffl", "first_dose_date",
                         "last_dose_date")  # fmt: skip


def b12_status(values: Any, deficient_below: float, adequate_from: float) -> np.ndarray:
    """B12 status of serum values in pg/mL: deficient (< deficient_below), borderline, adequate (>= adequate_from).

    Compared as recorded (k2trial.core.values.compare); "" when missing. A censored "<x" value is graded at its
    limit x, an upper bound: "<150" is deficient, "<250" would read borderline although it may be deficient.
    """
    values = np.asarray(values, dtype=float)
    deficient = compare(values, deficient_below, "<")
    adequate = compare(values, adequate_from, ">=")
    status = np.where(deficient, B12_STATUSES[0], np.where(adequate, B12_STATUSES[2], B12_STATUSES[1]))
    return np.where(np.isnan(values), "", status).astype(object)


def prepare_subjects(subjects: pd.DataFrame, label: str = "subjects.csv") -> pd.DataFrame:
    """Subjects sorted by subject number, with boolean `anticoagulant`, `saffl` and a `female` column.

    Raises InputDataError when a required column is missing, a subject is listed twice or sex is not F/M.
    """
    schema.require(subjects, "analysis/subjects", SUBJECT_INPUT_COLUMNS, label)
    out = subjects.copy()
    out["subject_id"] = out["subject_id"].astype("str")
    out["_number"] = subject_numbers(out["subject_id"])
    out["_row"] = np.arange(len(out)) + 2
    duplicated = out["subject_id"].duplicated()
    bad_sex = ~out["sex"].astype("str").isin(SEXES)
    problems = [
        Problem(label, int(r), "subject_id", s, "unique_subject", "error", "subject listed twice")
        for r, s in zip(out.loc[duplicated, "_row"], out.loc[duplicated, "subject_id"], strict=True)
    ] + [
        Problem(label, int(r), "sex", str(s), "sex_levels", "error", "sex must be F or M (eGFR, default ranges)")
        for r, s in zip(out.loc[bad_sex, "_row"], out.loc[bad_sex, "sex"], strict=True)
    ]
    if problems:
        raise InputDataError(problems)
    out["anticoagulant"] = as_bool(out["anticoagulant"])
    out["saffl"] = as_bool(out["saffl"])
    out["female"] = out["sex"].astype("str").eq("F").to_numpy()
    out["age_years"] = pd.to_numeric(out["age_years"], errors="coerce")
    out = out.sort_values(["_number", "subject_id"], kind="mergesort").reset_index(drop=True)
    return out.drop(columns=["_row"])


def safety_set(subjects: pd.DataFrame) -> pd.DataFrame:
    """The safety-set subjects of prepared subjects, in subject order (index 0..N-1 = subject code)."""
    return subjects.loc[subjects["saffl"]].reset_index(drop=True)


def _as_category(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values
    return values.astype("str").astype("category")


def _codes_for(values: pd.Series, categories: Sequence[str]) -> np.ndarray:
    """Codes of `values` in `categories` (-1 when absent), computed on the distinct values only."""
    cat = _as_category(values)
    cat = cat.cat.rename_categories([str(c) for c in cat.cat.categories]) if len(cat.cat.categories) else cat
    lookup = pd.Index(list(categories)).get_indexer(list(cat.cat.categories))
    codes = cat.cat.codes.to_numpy()
    return np.where(codes >= 0, lookup[codes] if len(lookup) else -1, -1)


def _first_rows_where(mask: np.ndarray, limit: int = 5) -> np.ndarray:
    return np.flatnonzero(mask)[:limit]


# ----------------------------------------------------------------------------------------------------------------
# Annotated lab table (lab_flags.csv)
# ----------------------------------------------------------------------------------------------------------------
def annotate_labs(
    labs: pd.DataFrame,
    subjects: pd.DataFrame,
    standards: LabStandards,
    *,
    b12_deficient_below: float,
    b12_adequate_from: float,
    b12_test: str,
    label: str = "labs.csv",
) -> pd.DataFrame:
    """Per-visit lab table of the safety set with reference ranges, flags, baseline flags, eGFR and categories.

    labs: results/analysis/labs.csv (DATASETS.md). subjects: output of `prepare_subjects`.
    Returns the columns of safety/lab_flags plus sample_date, base, chg, baseline_record and the grading inputs
    reported_low, reported_high (limits in force in the reported unit), low_default, high_default and lab_flag (see
    the module docstring): `ref_low`/`ref_high` are the limits used in the standard unit (the lab's, else the default
    by sex; `range_source` lab | default | lab+default | none); `flag` LOW/NORMAL/HIGH (missing without a value);
    `baseline_flag` the flag of the baseline record; `category` the B12 status (B12 rows) or the KDIGO category (eGFR
    rows, param = standards.egfr.param, computed from creatinine, sex and age, `censored` when the creatinine is).
    Rows of subjects outside the safety set are dropped. Sorted by subject, param, week.

    Raises InputDataError for subjects missing from subjects.csv, unknown tests, a unit that is not the test's
    standard unit, or a reported unit that config/lab_units.yaml does not accept for the test.
    """
    schema.require(labs, "analysis/labs", LAB_INPUT_COLUMNS, label)
    params = standards.lab_params
    n_lab_params = len(params)
    all_subjects = subjects["subject_id"].tolist()
    safety = safety_set(subjects)
    safety_ids = safety["subject_id"].tolist()

    subject_all = _codes_for(labs["subject_id"], all_subjects)
    param_code = _codes_for(labs["param"], params)

    def errors(where: np.ndarray, column: str, rule: str, message) -> list[Problem]:
        """One error per first offending row (a row number counts the header line)."""
        return [
            Problem(label, int(i) + 2, column, str(labs[column].iloc[i]), rule, "error", message(i))
            for i in _first_rows_where(where)
        ]

    problems = errors(subject_all < 0, "subject_id", "known_subject", lambda i: "subject not in subjects.csv")
    problems += errors(param_code < 0, "param", "known_test", lambda i: "test code not in config/lab_units.yaml")
    reported_factor = np.full(len(labs), np.nan)
    if not problems:
        standard_units = standards.units()[:n_lab_params]
        distinct_units = list(dict.fromkeys(standard_units))
        expected_unit = np.array([distinct_units.index(u) for u in standard_units])
        wrong_unit = _codes_for(labs["unit"], distinct_units) != expected_unit[param_code]
        problems += errors(
            wrong_unit,
            "unit",
            "standard_unit",
            lambda i: f"{labs['param'].iloc[i]} must be in its standard unit {standard_units[param_code[i]]}",
        )
        reported_factor = unit_factors(labs["reported_unit"], param_code, standards)
        problems += errors(
            np.isnan(reported_factor),
            "reported_unit",
            "accepted_unit",
            lambda i: f"unit not accepted for {labs['param'].iloc[i]} in config/lab_units.yaml",
        )
    if problems:
        raise InputDataError(problems)

    subject_code = _codes_for(labs["subject_id"], safety_ids)
    keep = np.flatnonzero(subject_code >= 0)
    week_all = pd.to_numeric(labs["week"], errors="coerce").to_numpy(dtype=float)
    visit_cat = _as_category(labs["visit"])
    visit_names = _visit_order(visit_cat, week_all)
    visit_code_all = _codes_for(visit_cat, visit_names)

    s = subject_code[keep]
    p = param_code[keep]
    week = np.nan_to_num(week_all[keep], nan=-1.0)
    sort_key = (s * (n_lab_params + 1) + p) * _WEEK_SPAN + (week.astype(np.int64) + 1)
    if len(sort_key) and not np.all(sort_key[1:] >= sort_key[:-1]):  # labs.csv is usually sorted already
        order = np.argsort(sort_key, kind="stable")
        keep, s, p, week = keep[order], s[order], p[order], week[order]
    rows = keep
    # every row, in order (the safety set is everyone and labs.csv is sorted: the usual case): the columns as they
    # are, not copied row by row (5.4 million rows at 100,000 subjects; nothing below writes into them)
    every_row = len(rows) == len(labs) and bool(np.array_equal(rows, np.arange(len(labs))))

    def at_rows(values: np.ndarray) -> np.ndarray:
        return values if every_row else values[rows]

    def numbers(column: str) -> np.ndarray:
        values = labs[column]
        if values.dtype != np.float64:  # a float column (as read from labs.csv) as it is: to_numeric copies it
            values = pd.to_numeric(values, errors="coerce")
        return at_rows(values.to_numpy(dtype=float))

    visit = at_rows(visit_code_all)
    aval, base = numbers("aval"), numbers("base")
    ref_low, ref_high = numbers("ref_low"), numbers("ref_high")
    reported, lab_low, lab_high = numbers("reported_value"), numbers("reported_ref_low"), numbers("reported_ref_high")
    factor = at_rows(reported_factor)
    censored = at_rows(as_bool(labs["censored"]))  # as_bool reads booleans and their text forms (no text detour)
    baseline_record = at_rows(as_bool(labs["baseline_record"])) & ~np.isnan(aval)
    reported_units = _as_category(labs["reported_unit"])
    unit_names = [str(u) for u in reported_units.cat.categories]
    unit_code = at_rows(reported_units.cat.codes.to_numpy())
    if "sample_date" in labs.columns:
        dates = _as_category(labs["sample_date"])
        date_names = list(dates.cat.categories)
        date_code = at_rows(dates.cat.codes.to_numpy())
    else:
        date_names, date_code = [], np.full(len(rows), -1)

    female = safety["female"].to_numpy()[s]
    sex_index = np.where(female, 0, 1)
    default_low = np.array([[t.ranges[sex][0] for sex in SEXES] for t in standards.tests])[p, sex_index]
    default_high = np.array([[t.ranges[sex][1] for sex in SEXES] for t in standards.tests])[p, sex_index]
    low_default, high_default = np.isnan(lab_low), np.isnan(lab_high)
    low = np.where(np.isnan(ref_low), default_low, ref_low)
    high = np.where(np.isnan(ref_high), default_high, ref_high)
    reported_low = np.where(low_default, default_low / factor, lab_low)  # the default in the reported unit
    reported_high = np.where(high_default, default_high / factor, lab_high)
    n_given = (~low_default).astype(int) + (~high_default).astype(int)
    range_source = np.select([n_given == 2, n_given == 0], [0, 1], 2)
    flag = _flag_codes(reported, reported_low, reported_high)
    lab_flag = _flag_codes(reported, lab_low, lab_high, complete=True)

    n_subjects = len(safety_ids)
    n_params = n_lab_params + 1
    key = s * n_params + p
    baseline_flag = _broadcast_baseline(key, baseline_record, flag, n_subjects * n_params, fill=-1)
    chg = numbers("chg")

    kdigo_names = [k for k, _ in standards.egfr.kdigo]
    category_names = [*B12_STATUSES, *kdigo_names]
    category = np.full(len(rows), -1, dtype=np.int64)
    if b12_test in params:
        b12 = np.flatnonzero(p == params.index(b12_test))
        status = b12_status(aval[b12], b12_deficient_below, b12_adequate_from)
        category[b12] = pd.Index(category_names).get_indexer(status)

    # eGFR rows derived from the creatinine rows (unrounded; the KDIGO category on the unrounded value), placed after
    # the subject's lab rows (eGFR is the last param); the creatinine's baseline record is eGFR's
    egfr_spec = standards.egfr
    creat = np.flatnonzero(p == params.index(egfr_spec.creatinine))
    age = safety["age_years"].to_numpy(dtype=float)[s[creat]]
    egfr = ckd_epi_2021(aval[creat], female[creat], age)
    egfr_base = ckd_epi_2021(base[creat], female[creat], age)
    egfr_category = pd.Index(category_names).get_indexer(kdigo_category(egfr, egfr_spec.kdigo))
    n_lab_rows, n_egfr = len(rows), len(creat)
    lab_position = np.arange(n_lab_rows) + np.searchsorted(s[creat], s, side="left")
    egfr_position = np.searchsorted(s, s[creat], side="right") + np.arange(n_egfr)

    def merged(lab_part: np.ndarray, egfr_part: Any) -> np.ndarray:
        lab_part = np.asarray(lab_part)
        out = np.empty(n_lab_rows + n_egfr, dtype=np.result_type(lab_part, np.asarray(egfr_part)))
        out[lab_position] = lab_part
        out[egfr_position] = egfr_part
        return out

    all_p = merged(p, n_lab_params)
    egfr_unit = len(unit_names)  # eGFR is reported in its own unit
    columns = {
        "subject_id": pd.Categorical.from_codes(merged(s, s[creat]), categories=safety_ids),
        "param": pd.Categorical.from_codes(all_p, categories=list(standards.all_params)),
        "visit": pd.Categorical.from_codes(merged(visit, visit[creat]), categories=visit_names),
        "week": merged(week, week[creat]).astype(np.int64),
        "sample_date": pd.Categorical.from_codes(merged(date_code, date_code[creat]), categories=date_names),
        "aval": merged(aval, egfr),
        "unit": unit_column(all_p, standards),
        "reported_value": merged(reported, egfr),
        "reported_unit": pd.Categorical.from_codes(
            merged(unit_code, egfr_unit), categories=_unique([*unit_names, egfr_spec.unit])
        ),
        "censored": merged(censored, censored[creat]),
        "ref_low": merged(low, np.nan),
        "ref_high": merged(high, np.nan),
        "range_source": pd.Categorical.from_codes(merged(range_source, 3), categories=list(RANGE_SOURCES)),
        "flag": pd.Categorical.from_codes(merged(flag, -1), categories=list(FLAGS)),
        "baseline_flag": pd.Categorical.from_codes(merged(baseline_flag, -1), categories=list(FLAGS)),
        "category": pd.Categorical.from_codes(merged(category, egfr_category), categories=category_names),
        "base": merged(base, egfr_base),
        "chg": merged(chg, egfr - egfr_base),
        "baseline_record": merged(baseline_record, baseline_record[creat]),
        "reported_low": merged(reported_low, np.nan),
        "reported_high": merged(reported_high, np.nan),
        "low_default": merged(low_default, False),
        "high_default": merged(high_default, False),
        "lab_flag": pd.Categorical.from_codes(merged(lab_flag, -1), categories=list(FLAGS)),
    }
    if "lbseq" in labs.columns:  # the SDTM record key of each lab row; eGFR rows are computed, from no record
        lbseq = at_rows(pd.to_numeric(labs["lbseq"]).to_numpy(dtype=float, na_value=np.nan))
        columns["lbseq"] = pd.array(merged(lbseq, np.nan), dtype="Float64").astype("Int64")
    return pd.DataFrame(columns, copy=False)  # the arrays as they are: 5.4 million rows at 100,000 subjects


def _unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


def unit_factors(units: pd.Series, param_code: np.ndarray, standards: LabStandards) -> np.ndarray:
    """Per row, the factor converting its reported unit to the test's standard unit (NaN when not accepted)."""
    cat = _as_category(units)
    names = [str(u) for u in cat.cat.categories]
    table = np.array(
        [[t.test.units.get(u, np.nan) for u in names] + [np.nan] for t in standards.tests], dtype=float
    )  # test x unit (the last column: no unit)
    codes = cat.cat.codes.to_numpy()
    codes = np.where(codes < 0, len(names), codes)
    ok = param_code >= 0
    out = np.full(len(codes), np.nan)
    out[ok] = table[param_code[ok], codes[ok]]
    return out


def flagged_values(annotated: pd.DataFrame, standards: LabStandards, b12_test: str) -> pd.DataFrame:
    """lab_flags.csv: every value flagged LOW or HIGH against its range, and every B12 and eGFR value (with its
    B12 status or KDIGO category), in the columns of safety/lab_flags and the annotated order. Values within range
    are left out: they are in labs.csv, and at 100,000 subjects a full copy would cost more to write than the
    analysis.
    """
    flag = annotated["flag"].cat.codes.to_numpy()
    categorised = annotated["param"].isin([b12_test, standards.egfr.param]).to_numpy()
    keep = (flag == FLAGS.index("LOW")) | (flag == FLAGS.index("HIGH")) | categorised
    return annotated.loc[keep, schema.columns("safety/lab_flags")].reset_index(drop=True)


def unit_column(param_codes: np.ndarray, standards: LabStandards) -> pd.Categorical:
    """The standard unit of each param code (lab order, then eGFR) as a categorical column."""
    units = standards.units()
    distinct = list(dict.fromkeys(units))
    code_of_param = np.array([distinct.index(u) for u in units])
    return pd.Categorical.from_codes(code_of_param[param_codes], categories=distinct)


def _first_weeks(visit: pd.Series, week: np.ndarray) -> np.ndarray:
    """Per category of a visit column, the first (lowest) study week seen for it (inf when none)."""
    codes = visit.cat.codes.to_numpy()
    first_week = np.full(len(visit.cat.categories), np.inf)
    valid = (codes >= 0) & ~np.isnan(week)
    np.minimum.at(first_week, codes[valid], week[valid])
    return first_week


def _visit_order(visit: pd.Series, week: np.ndarray) -> list[str]:
    """Visit names ordered by study week (the first week seen for each name), then name."""
    names = [str(c) for c in visit.cat.categories]
    first_week = _first_weeks(visit, week)
    return [names[i] for i in sorted(range(len(names)), key=lambda i: (first_week[i], names[i]))]


def visit_weeks(annotated: pd.DataFrame) -> dict[str, int]:
    """Study week of every visit of an annotated lab table (its first week; -1 for a visit without rows)."""
    first_week = _first_weeks(annotated["visit"], annotated["week"].to_numpy(dtype=float))
    names = [str(c) for c in annotated["visit"].cat.categories]
    return {name: int(w) if np.isfinite(w) else -1 for name, w in zip(names, first_week, strict=True)}


def _flag_codes(value: np.ndarray, low: np.ndarray, high: np.ndarray, *, complete: bool = False) -> np.ndarray:
    """0 LOW, 1 NORMAL, 2 HIGH, -1 no value; value and limits in one unit, compared at 15 significant digits.

    complete: NORMAL only when both limits are given (otherwise -1 unless the value is beyond the limit there is).
    Without complete, NORMAL needs at least one limit: a value with no limit at all (a declared test the lab gives no
    range for and that has no default range) has no flag, never NORMAL.
    """
    is_low = compare(value, low, "<")
    is_high = compare(value, high, ">")
    given = ~(np.isnan(low) | np.isnan(high)) if complete else ~(np.isnan(low) & np.isnan(high))
    normal = given
    return np.where(np.isnan(value), -1, np.where(is_low, 0, np.where(is_high, 2, np.where(normal, 1, -1))))


def _broadcast_baseline(
    key: np.ndarray, is_baseline: np.ndarray, values: np.ndarray, size: int, fill: int
) -> np.ndarray:
    """Per row, the (integer) value at the baseline row of the same key (subject x param); `fill` when none."""
    per_key = np.full(size, fill, dtype=np.int64)
    per_key[key[is_baseline]] = values[is_baseline]
    return per_key[key]


class LabArrays:
    """Integer codes and numeric columns of an annotated lab table, for vectorised work.

    `value`, `lln`, `uln`: the value as reported and the limits in force in its unit (what flags, grades and the
    x ULN ratios use); `aval`, `low`, `high`: the same in the standard unit. `is_baseline`: the baseline record (the
    one that supplied `base`) with a value; `post`: a visit after baseline (week > 0).
    """

    def __init__(self, annotated: pd.DataFrame, standards: LabStandards, subjects: pd.DataFrame):
        self.n_subjects = len(annotated["subject_id"].cat.categories)
        self.subject_ids = list(annotated["subject_id"].cat.categories)
        self.n_params = len(standards.all_params)
        self.s = annotated["subject_id"].cat.codes.to_numpy().astype(np.int64)
        self.p = annotated["param"].cat.codes.to_numpy().astype(np.int64)
        self.v = annotated["visit"].cat.codes.to_numpy().astype(np.int64)
        self.visits = list(annotated["visit"].cat.categories)
        self.week = annotated["week"].to_numpy()
        self.aval = annotated["aval"].to_numpy(dtype=float)
        self.base = annotated["base"].to_numpy(dtype=float)
        self.low = annotated["ref_low"].to_numpy(dtype=float)
        self.high = annotated["ref_high"].to_numpy(dtype=float)
        self.value = annotated["reported_value"].to_numpy(dtype=float)
        self.lln = annotated["reported_low"].to_numpy(dtype=float)
        self.uln = annotated["reported_high"].to_numpy(dtype=float)
        self.censored = annotated["censored"].to_numpy(dtype=bool)
        self.flag = annotated["flag"].cat.codes.to_numpy().astype(np.int64)
        self.decimals = standards.decimals()[self.p]
        self.key = self.s * self.n_params + self.p
        self.size = self.n_subjects * self.n_params
        self.is_baseline = annotated["baseline_record"].to_numpy(dtype=bool) & ~np.isnan(self.aval)
        self.post = self.week > 0
        safety = safety_set(subjects)
        if safety["subject_id"].tolist() != self.subject_ids:
            raise ValueError("annotated labs and subjects disagree on the safety set")
        self.anticoagulant = safety["anticoagulant"].to_numpy(dtype=bool)
        # rows of each param (in table order) without scanning the whole table once per param
        order = np.argsort(self.p.astype(np.int16), kind="stable")
        bounds = np.searchsorted(self.p[order], np.arange(self.n_params + 1))
        self._rows_by_param = [order[bounds[i] : bounds[i + 1]] for i in range(self.n_params)]
        self._sample_date = annotated["sample_date"]

    def rows_of(self, param: str | int, standards: LabStandards | None = None) -> np.ndarray:
        """Row positions of one param (code or index into standards.all_params), in table order."""
        index = param if isinstance(param, (int, np.integer)) else list(standards.all_params).index(param)
        return self._rows_by_param[index]

    def sample_dates(self) -> np.ndarray:
        """Sample dates as datetime64 (NaT when missing), parsed once per distinct date."""
        dates = _as_category(self._sample_date)
        parsed = pd.to_datetime(pd.Series(dates.cat.categories.astype("str")), errors="coerce").to_numpy()
        codes = dates.cat.codes.to_numpy()
        out = np.full(len(codes), np.datetime64("NaT"), dtype="datetime64[ns]")
        valid = codes >= 0
        out[valid] = parsed[codes[valid]]
        return out

    def per_key_at_baseline(self, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Array over keys (subject x param) holding `values` of the baseline row."""
        per_key = np.full(self.size, fill, dtype=float)
        per_key[self.key[self.is_baseline]] = values[self.is_baseline]
        return per_key
