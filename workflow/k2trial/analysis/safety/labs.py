"""Laboratory safety: reference ranges and flags, eGFR, B12 status, CTCAE v5.0 grades, Hy's law, eDISH, summaries.

Conventions (CLINICAL.md, safety section):
- Values (`aval`) are in the standard unit of config/lab_units.yaml. A value reported as "<x" or ">x" is
  *censored*: `aval` holds the limit x (never zero). Descriptives include the limit and count such values in
  `n_censored`; paired tests leave those subjects out and count them; grades and flags use the limit.
- Reference range of a value: the reporting lab's limits when given (`ref_low`, `ref_high`), else the default
  range of config/lab_standards.yaml for the subject's sex. Each limit is filled on its own.
- Flags: LOW if value < lower limit, HIGH if value > upper limit, else NORMAL.
- Baseline: the baseline visit (study week 0); the baseline *value* is `base` of labs.csv (last value on or
  before the first dose). Post-baseline (on treatment) = week > 0.
- Every comparison with a limit is made at the test's recording precision (`decimals` of lab_units.yaml): the
  value is rounded half up to that precision, the threshold (limit x reference) to that precision plus
  GUARD_DIGITS, so floating-point noise cannot move a value across a boundary (exactly 3 x ULN is not > 3 x ULN).
- Population: the safety set (`saffl`); denominators are the number of subjects in it.
- Ordering: subjects by the number in the ID, params in lab_units order then eGFR, visits by study week.

All functions work on whole columns (no loop over subjects or rows), so they scale to 100,000 subjects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from k2trial.core.errors import ConfigError, InputDataError, Problem

FLAGS = ("LOW", "NORMAL", "HIGH")
#: Shift-table categories: the flags plus no value.
SHIFT_CATEGORIES = (*FLAGS, "MISSING")
SHIFT_COMPARISONS_WORST = ("worst_low", "worst_high")
RANGE_SOURCES = ("lab", "default", "lab+default", "none")
SEXES = ("F", "M")
DIRECTIONS = ("low", "high", "both")
REFERENCES = ("ULN", "LLN", "baseline", "absolute")
CONDITIONS = ("always", "baseline_normal", "baseline_abnormal", "anticoagulated", "not_anticoagulated")
OPERATORS = (">", ">=", "<", "<=")
GRADES = (0, 1, 2, 3, 4)
B12_STATUSES = ("deficient", "borderline", "adequate")
#: Week numbers are below this (sort keys of subject x param x week).
_WEEK_SPAN = 10_000
#: Digits kept beyond the recording precision when rounding thresholds (removes float noise only).
GUARD_DIGITS = 4
MISSING = "missing"

# CKD-EPI 2021 creatinine equation without race (Inker LA, Eneanya ND, Coresh J, et al. New creatinine- and
# cystatin C-based equations to estimate GFR without race. N Engl J Med 2021;385:1737-49):
#   eGFR = 142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age x 1.012 [if female]
CKD_EPI_2021_MULTIPLIER = 142.0
CKD_EPI_2021_KAPPA = {"F": 0.7, "M": 0.9}
CKD_EPI_2021_ALPHA = {"F": -0.241, "M": -0.302}
CKD_EPI_2021_HIGH_EXPONENT = -1.200
CKD_EPI_2021_AGE_BASE = 0.9938
CKD_EPI_2021_FEMALE_FACTOR = 1.012

LABS_REQUIRED = ("subject_id", "visit", "week", "param", "aval", "unit", "ref_low", "ref_high", "censored", "base")
SUBJECTS_REQUIRED = ("subject_id", "sex", "age_years", "anticoagulant", "saffl", "first_dose_date")

#: Columns of lab_flags.csv (flagged_values): the value with what the safety step adds to labs.csv.
LAB_FLAG_COLUMNS = [
    "subject_id",
    "param",
    "visit",
    "week",
    "aval",
    "unit",
    "censored",
    "ref_low",
    "ref_high",
    "range_source",
    "flag",
    "baseline_flag",
    "category",
]
#: Every column of the annotated table returned by annotate_labs.
ANNOTATED_COLUMNS = [
    "subject_id",
    "param",
    "visit",
    "week",
    "sample_date",
    "aval",
    "unit",
    "censored",
    "ref_low",
    "ref_high",
    "range_source",
    "flag",
    "base",
    "chg",
    "baseline_flag",
    "category",
]
CTCAE_GRADE_COLUMNS = [
    "subject_id",
    "param",
    "visit",
    "week",
    "aval",
    "unit",
    "censored",
    "term",
    "grade",
    "criterion",
    "baseline_abnormal",
]
_STAT_NAMES = ["n", "n_censored", "mean", "sd", "median", "q1", "q3", "min", "max"]
DESCRIPTIVE_COLUMNS = ["param", "unit", "visit", "week", *_STAT_NAMES, *[f"chg_{name}" for name in _STAT_NAMES]]
SHIFT_COLUMNS = ["param", "comparison", "from", "to", "n", "percent", "denominator"]
WORST_COLUMNS = ["term", "param", "baseline_grade", "worst_grade", "n", "percent", "denominator"]
HYS_LAW_COLUMNS = [
    "subject_id",
    "visit",
    "week",
    "sample_date",
    "alt",
    "alt_xuln",
    "ast",
    "ast_xuln",
    "tbil",
    "tbil_xuln",
    "tbil_visit",
    "alp",
    "alp_xuln",
    "note",
]
EDISH_COLUMNS = [
    "subject_id",
    "peak_alt_xuln",
    "peak_ast_xuln",
    "peak_aminotransferase_xuln",
    "peak_tbil_xuln",
    "quadrant",
]
EDISH_QUADRANTS = ("potential Hy's law", "hyperbilirubinaemia", "Temple's corollary", "normal or mild")
CATEGORY_COLUMNS = ["param", "visit", "week", "baseline_category", "category", "n", "percent", "denominator"]


# ----------------------------------------------------------------------------------------------------------------
# Standards (config/lab_units.yaml + config/lab_standards.yaml)
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabTest:
    """One test: standard unit, recording decimals, default range by sex, clinically relevant direction(s)."""

    code: str
    name: str
    unit: str
    decimals: int
    ranges: Mapping[str, tuple[float, float]]  # by sex, "F" and "M" (equal when the range does not differ)
    direction: str  # low | high | both
    panel: str
    shift_margin: float  # fraction of the crossed limit (safety conclusion)


@dataclass(frozen=True)
class Criterion:
    """`value <op> limit x reference` gives `grade` when the `when` condition holds (see lab_standards.yaml)."""

    grade: int
    op: str
    limit: float
    of: str
    when: str

    def describe(self, unit: str) -> str:
        if self.of == "absolute":
            text = f"{self.op} {self.limit:g}" + ("" if unit == "ratio" else f" {unit}")
        elif self.limit == 1.0:
            text = f"{self.op} {self.of}"
        else:
            text = f"{self.op} {self.limit:g} x {self.of}"
        return text if self.when == "always" else f"{text} ({self.when.replace('_', ' ')})"


@dataclass(frozen=True)
class CtcaeTerm:
    term: str
    param: str
    direction: str  # high (increase graded) | low
    unit: str
    criteria: tuple[Criterion, ...]


@dataclass(frozen=True)
class HysLawRule:
    aminotransferases: tuple[str, ...]
    aminotransferase_min_xuln: float
    bilirubin: str
    bilirubin_min_xuln: float
    alp: str
    alp_below_xuln: float

    def describe(self) -> str:
        amin = " or ".join(self.aminotransferases)
        return (
            f"{amin} >= {self.aminotransferase_min_xuln:g} x ULN and {self.bilirubin} >= "
            f"{self.bilirubin_min_xuln:g} x ULN and {self.alp} < {self.alp_below_xuln:g} x ULN"
        )


@dataclass(frozen=True)
class EgfrSpec:
    param: str
    name: str
    creatinine: str
    unit: str
    decimals: int
    kdigo: tuple[tuple[str, float], ...]  # (category, lower bound), best category first


@dataclass(frozen=True)
class LabStandards:
    tests: tuple[LabTest, ...]  # in lab_units order
    ctcae_version: str
    terms: tuple[CtcaeTerm, ...]
    hys_law: HysLawRule
    egfr: EgfrSpec

    @property
    def lab_params(self) -> tuple[str, ...]:
        return tuple(t.code for t in self.tests)

    @property
    def all_params(self) -> tuple[str, ...]:
        """Lab params in lab_units order, then the derived eGFR."""
        return (*self.lab_params, self.egfr.param)

    def test(self, code: str) -> LabTest:
        for t in self.tests:
            if t.code == code:
                return t
        raise KeyError(code)

    def units(self) -> list[str]:
        return [t.unit for t in self.tests] + [self.egfr.unit]

    def decimals(self) -> np.ndarray:
        return np.array([t.decimals for t in self.tests] + [self.egfr.decimals], dtype=np.int64)

    def names(self) -> list[str]:
        return [t.name for t in self.tests] + [self.egfr.name]


def _need(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(mapping, Mapping) or key not in mapping:
        raise ConfigError(f"config/lab_standards.yaml: {where} needs '{key}'")
    return mapping[key]


def _range_pair(value: Any, where: str) -> tuple[float, float]:
    if not (isinstance(value, Sequence) and len(value) == 2):
        raise ConfigError(f"config/lab_standards.yaml: {where} must be [low, high]")
    low, high = float(value[0]), float(value[1])
    if not low < high:
        raise ConfigError(f"config/lab_standards.yaml: {where} must have low < high, got {value}")
    return low, high


def load_lab_standards(lab_units: Mapping[str, Any], lab_standards: Mapping[str, Any]) -> LabStandards:
    """Build the safety standards from the parsed YAML files, checking them against each other.

    Raises ConfigError naming the entry when a test of lab_units has no default range, a CTCAE term names an
    unknown test or a unit other than the test's standard unit, or a criterion uses an unknown operator,
    reference or condition.
    """
    unit_tests = _need(lab_units, "tests", "lab_units.yaml")
    std_tests = _need(lab_standards, "tests", "top level")
    panels = lab_standards.get("panels", {}) or {}
    panel_of = {code: panel for panel, codes in panels.items() for code in codes}
    shift = lab_standards.get("significant_shift", {}) or {}
    default_margin = float(shift.get("default_margin", 0.0))
    margins = shift.get("margins", {}) or {}
    unknown = sorted((set(std_tests) | set(panel_of) | set(margins)) - set(unit_tests))
    if unknown:
        raise ConfigError(f"config/lab_standards.yaml: tests not in config/lab_units.yaml: {', '.join(unknown)}")
    tests = []
    for code, spec in unit_tests.items():
        if code not in std_tests:
            raise ConfigError(f"config/lab_standards.yaml: test {code} has no default reference range")
        std = std_tests[code]
        raw_range = _need(std, "range", f"tests.{code}")
        if isinstance(raw_range, Mapping):
            ranges = {
                sex: _range_pair(_need(raw_range, sex, f"tests.{code}.range"), f"tests.{code}.range.{sex}")
                for sex in SEXES
            }
        else:
            pair = _range_pair(raw_range, f"tests.{code}.range")
            ranges = {sex: pair for sex in SEXES}
        direction = _need(std, "direction", f"tests.{code}")
        if direction not in DIRECTIONS:
            raise ConfigError(f"config/lab_standards.yaml: tests.{code}.direction must be one of {DIRECTIONS}")
        tests.append(
            LabTest(
                code=code,
                name=str(spec.get("name", code)),
                unit=str(spec["unit"]),
                decimals=int(spec["decimals"]),
                ranges=ranges,
                direction=direction,
                panel=str(panel_of.get(code, "other")),
                shift_margin=float(margins.get(code, default_margin)),
            )
        )
    by_code = {t.code: t for t in tests}

    ctcae = _need(lab_standards, "ctcae", "top level")
    terms = []
    for i, raw in enumerate(_need(ctcae, "terms", "ctcae")):
        where = f"ctcae.terms[{i}]"
        param = _need(raw, "param", where)
        if param not in by_code:
            raise ConfigError(f"config/lab_standards.yaml: {where} grades unknown test {param!r}")
        unit = _need(raw, "unit", where)
        if unit != by_code[param].unit:
            raise ConfigError(
                f"config/lab_standards.yaml: {where} ({raw.get('term')}) is in {unit}, but {param} is recorded "
                f"in {by_code[param].unit}"
            )
        direction = _need(raw, "direction", where)
        if direction not in ("low", "high"):
            raise ConfigError(f"config/lab_standards.yaml: {where}.direction must be low or high")
        criteria = []
        for j, c in enumerate(_need(raw, "criteria", where)):
            cw = f"{where}.criteria[{j}]"
            crit = Criterion(
                grade=int(_need(c, "grade", cw)),
                op=str(_need(c, "op", cw)),
                limit=float(_need(c, "limit", cw)),
                of=str(_need(c, "of", cw)),
                when=str(c.get("when", "always")),
            )
            if crit.grade not in GRADES[1:]:
                raise ConfigError(f"config/lab_standards.yaml: {cw}.grade must be 1-4")
            if crit.op not in OPERATORS:
                raise ConfigError(f"config/lab_standards.yaml: {cw}.op must be one of {OPERATORS}")
            if crit.of not in REFERENCES:
                raise ConfigError(f"config/lab_standards.yaml: {cw}.of must be one of {REFERENCES}")
            if crit.when not in CONDITIONS:
                raise ConfigError(f"config/lab_standards.yaml: {cw}.when must be one of {CONDITIONS}")
            criteria.append(crit)
        terms.append(CtcaeTerm(str(_need(raw, "term", where)), param, direction, unit, tuple(criteria)))

    hl = _need(lab_standards, "hys_law", "top level")
    hys = HysLawRule(
        aminotransferases=tuple(_need(hl, "aminotransferases", "hys_law")),
        aminotransferase_min_xuln=float(_need(hl, "aminotransferase_min_xuln", "hys_law")),
        bilirubin=str(_need(hl, "bilirubin", "hys_law")),
        bilirubin_min_xuln=float(_need(hl, "bilirubin_min_xuln", "hys_law")),
        alp=str(_need(hl, "alp", "hys_law")),
        alp_below_xuln=float(_need(hl, "alp_below_xuln", "hys_law")),
    )
    for code in (*hys.aminotransferases, hys.bilirubin, hys.alp):
        if code not in by_code:
            raise ConfigError(f"config/lab_standards.yaml: hys_law names unknown test {code!r}")

    eg = _need(lab_standards, "egfr", "top level")
    kdigo = tuple((str(_need(k, "category", "egfr.kdigo")), float(_need(k, "from", "egfr.kdigo"))) for k in eg["kdigo"])
    bounds = [b for _, b in kdigo]
    if bounds != sorted(bounds, reverse=True) or len(set(bounds)) != len(bounds):
        raise ConfigError("config/lab_standards.yaml: egfr.kdigo lower bounds must decrease strictly")
    egfr = EgfrSpec(
        param=str(_need(eg, "param", "egfr")),
        name=str(eg.get("name", "eGFR")),
        creatinine=str(_need(eg, "creatinine", "egfr")),
        unit=str(_need(eg, "unit", "egfr")),
        decimals=int(_need(eg, "decimals", "egfr")),
        kdigo=kdigo,
    )
    if egfr.creatinine not in by_code or egfr.param in by_code:
        raise ConfigError("config/lab_standards.yaml: egfr.creatinine must be a test, egfr.param a new code")
    return LabStandards(tuple(tests), str(ctcae.get("version", "")), tuple(terms), hys, egfr)


# ----------------------------------------------------------------------------------------------------------------
# Elementary, vectorised rules
# ----------------------------------------------------------------------------------------------------------------
def round_half_up(values: Any, decimals: Any) -> np.ndarray:
    """Round half up (away from -inf) to `decimals` (scalar or per value); NaN stays NaN."""
    scale = 10.0 ** np.asarray(decimals, dtype=float)
    return np.floor(np.asarray(values, dtype=float) * scale + 0.5) / scale


def compare_at_precision(values: Any, thresholds: Any, op: str, decimals: Any) -> np.ndarray:
    """`values <op> thresholds` at the recording precision `decimals` (scalar or per value).

    The value is rounded half up to `decimals`, the threshold to `decimals + GUARD_DIGITS` (it is a product such
    as 3 x ULN whose float representation may be off by 1 ulp). Both are compared as scaled integers, so 120 U/L
    is exactly 3 x 40 U/L and 1.05 mg/dL exactly 3 x 0.35 mg/dL. Any NaN gives False.
    """
    decimals = np.asarray(decimals, dtype=float)
    value_scale = 10.0**decimals
    v = np.floor(np.asarray(values, dtype=float) * value_scale + 0.5) * 10.0**GUARD_DIGITS
    t = np.rint(np.asarray(thresholds, dtype=float) * value_scale * 10.0**GUARD_DIGITS)
    with np.errstate(invalid="ignore"):
        if op == ">":
            return v > t
        if op == ">=":
            return v >= t
        if op == "<":
            return v < t
        if op == "<=":
            return v <= t
    raise ValueError(f"unknown operator {op!r}")


def ckd_epi_2021(creatinine_mg_dl: Any, female: Any, age_years: Any) -> np.ndarray:
    """eGFR in mL/min/1.73 m2 by the race-free CKD-EPI 2021 creatinine equation (Inker et al., NEJM 2021).

    eGFR = 142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age x 1.012 [female], with k = 0.7 (F) / 0.9 (M),
    a = -0.241 (F) / -0.302 (M); Scr in mg/dL, age in years. Unrounded; NaN where an input is missing or
    creatinine is not positive.
    """
    scr = np.asarray(creatinine_mg_dl, dtype=float)
    female = np.asarray(female, dtype=bool)
    age = np.asarray(age_years, dtype=float)
    kappa = np.where(female, CKD_EPI_2021_KAPPA["F"], CKD_EPI_2021_KAPPA["M"])
    alpha = np.where(female, CKD_EPI_2021_ALPHA["F"], CKD_EPI_2021_ALPHA["M"])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(scr > 0, scr, np.nan) / kappa
        egfr = (
            CKD_EPI_2021_MULTIPLIER
            * np.minimum(ratio, 1.0) ** alpha
            * np.maximum(ratio, 1.0) ** CKD_EPI_2021_HIGH_EXPONENT
            * CKD_EPI_2021_AGE_BASE**age
            * np.where(female, CKD_EPI_2021_FEMALE_FACTOR, 1.0)
        )
    return egfr


def kdigo_category(egfr: Any, kdigo: Sequence[tuple[str, float]], decimals: int) -> np.ndarray:
    """KDIGO GFR category (e.g. G1 >= 90, G2 60-89, ...) of eGFR values; "" when missing.

    `kdigo` lists (category, lower bound) best first; the value is compared at `decimals` (a value of 89.96 with
    one decimal is 90.0, category G1).
    """
    values = round_half_up(egfr, decimals)
    bounds = np.array([b for _, b in kdigo][::-1], dtype=float)
    names = np.array([c for c, _ in kdigo][::-1] + [""], dtype=object)
    index = np.searchsorted(bounds, values, side="right") - 1
    index = np.where(np.isnan(values) | (index < 0), len(bounds), index)
    return names[index]


def b12_status(values: Any, deficient_below: float, adequate_from: float, decimals: int = 0) -> np.ndarray:
    """B12 status of serum values in pg/mL: deficient (< deficient_below), borderline, adequate (>= adequate_from).

    Compared at `decimals` (B12 is recorded in whole pg/mL); "" when missing. A censored "<x" value is graded at
    its limit x, an upper bound: "<150" is deficient, "<250" would read borderline although it may be deficient.
    """
    values = np.asarray(values, dtype=float)
    deficient = compare_at_precision(values, np.full(values.shape, deficient_below), "<", decimals)
    adequate = compare_at_precision(values, np.full(values.shape, adequate_from), ">=", decimals)
    status = np.where(deficient, B12_STATUSES[0], np.where(adequate, B12_STATUSES[2], B12_STATUSES[1]))
    return np.where(np.isnan(values), "", status).astype(object)


# ----------------------------------------------------------------------------------------------------------------
# Input preparation
# ----------------------------------------------------------------------------------------------------------------
def subject_numbers(subject_ids: Any) -> np.ndarray:
    """The number in each subject ID (K2-010 -> 10), the project's subject order."""
    ids = pd.Series(subject_ids, dtype="str")
    numbers = ids.str.extract(r"(\d+)\s*$", expand=False)
    return pd.to_numeric(numbers, errors="coerce").fillna(-1).to_numpy(dtype=np.int64)


def as_bool(values: Any) -> np.ndarray:
    """True/False from booleans or their text forms (True/true/yes/1); missing and anything else is False."""
    series = pd.Series(values)
    if series.dtype == bool:
        return series.to_numpy()
    if isinstance(series.dtype, pd.CategoricalDtype):  # decide once per distinct value
        truth = as_bool(pd.Series(series.cat.categories.astype("str")))
        codes = series.cat.codes.to_numpy()
        return np.where(codes >= 0, truth[codes] if len(truth) else False, False)
    text = series.astype("str").str.strip().str.lower()
    return text.isin(["true", "yes", "y", "1", "1.0"]).to_numpy()


def _check_columns(frame: pd.DataFrame, required: Sequence[str], label: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputDataError(
            [Problem(label, None, c, None, "required_column", "error", f"column '{c}' is missing") for c in missing]
        )


def prepare_subjects(subjects: pd.DataFrame, label: str = "subjects.csv") -> pd.DataFrame:
    """Subjects sorted by subject number, with boolean `anticoagulant`, `saffl` and a `female` column.

    Raises InputDataError when a required column is missing, a subject is listed twice or sex is not F/M.
    """
    _check_columns(subjects, SUBJECTS_REQUIRED, label)
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
    label: str = "labs.csv",
) -> pd.DataFrame:
    """Per-visit lab table of the safety set with reference ranges, flags, baseline flags, eGFR and categories.

    labs: results/analysis/labs.csv (DATASETS.md). subjects: output of `prepare_subjects`.
    Returns ANNOTATED_COLUMNS (see `flagged_values` for lab_flags.csv): `ref_low`/`ref_high` are the limits
    used (the lab's, else the default by sex; `range_source` lab | default | lab+default | none); `flag`
    LOW/NORMAL/HIGH (missing without a value);
    `baseline_flag` the flag at the baseline visit; `category` the B12 status (B12 rows) or the KDIGO category
    (eGFR rows, param = standards.egfr.param, computed from creatinine, sex and age, `censored` when the
    creatinine is). Rows of subjects outside the safety set are dropped. Sorted by subject, param, week.

    Raises InputDataError for subjects missing from subjects.csv, unknown tests, or a unit that is not the
    test's standard unit.
    """
    _check_columns(labs, LABS_REQUIRED, label)
    params = standards.lab_params
    n_lab_params = len(params)
    all_subjects = subjects["subject_id"].tolist()
    safety = safety_set(subjects)
    safety_ids = safety["subject_id"].tolist()

    subject_all = _codes_for(labs["subject_id"], all_subjects)
    param_code = _codes_for(labs["param"], params)
    problems = [
        Problem(
            label,
            int(i) + 2,
            "subject_id",
            str(labs["subject_id"].iloc[i]),
            "known_subject",
            "error",
            "subject not in subjects.csv",
        )
        for i in _first_rows_where(subject_all < 0)
    ] + [
        Problem(
            label,
            int(i) + 2,
            "param",
            str(labs["param"].iloc[i]),
            "known_test",
            "error",
            "test code not in config/lab_units.yaml",
        )
        for i in _first_rows_where(param_code < 0)
    ]
    if not problems:
        standard_units = standards.units()[:n_lab_params]
        distinct_units = list(dict.fromkeys(standard_units))
        expected_unit = np.array([distinct_units.index(u) for u in standard_units])
        wrong_unit = _codes_for(labs["unit"], distinct_units) != expected_unit[param_code]
        problems += [
            Problem(
                label,
                int(i) + 2,
                "unit",
                str(labs["unit"].iloc[i]),
                "standard_unit",
                "error",
                f"{labs['param'].iloc[i]} must be in its standard unit {standard_units[param_code[i]]}",
            )
            for i in _first_rows_where(wrong_unit)
        ]
    if problems:
        raise InputDataError(problems)

    subject_code = _codes_for(labs["subject_id"], safety_ids)
    keep = np.flatnonzero(subject_code >= 0)
    week_all = pd.to_numeric(labs["week"], errors="coerce").to_numpy(dtype=float)
    visit_cat = _as_category(labs["visit"])
    visit_names, visit_weeks = _visit_order(visit_cat, week_all)
    visit_code_all = _codes_for(visit_cat, visit_names)

    s = subject_code[keep]
    p = param_code[keep]
    week = np.nan_to_num(week_all[keep], nan=-1.0)
    sort_key = (s * (n_lab_params + 1) + p) * _WEEK_SPAN + (week.astype(np.int64) + 1)
    if len(sort_key) and not np.all(sort_key[1:] >= sort_key[:-1]):  # labs.csv is usually sorted already
        order = np.argsort(sort_key, kind="stable")
        keep, s, p, week = keep[order], s[order], p[order], week[order]
    rows = keep
    visit = visit_code_all[rows]
    aval = pd.to_numeric(labs["aval"], errors="coerce").to_numpy(dtype=float)[rows]
    base = pd.to_numeric(labs["base"], errors="coerce").to_numpy(dtype=float)[rows]
    ref_low = pd.to_numeric(labs["ref_low"], errors="coerce").to_numpy(dtype=float)[rows]
    ref_high = pd.to_numeric(labs["ref_high"], errors="coerce").to_numpy(dtype=float)[rows]
    censored = as_bool(_as_category(labs["censored"]))[rows]
    if "sample_date" in labs.columns:
        dates = _as_category(labs["sample_date"])
        date_names = list(dates.cat.categories)
        date_code = dates.cat.codes.to_numpy()[rows]
    else:
        date_names, date_code = [], np.full(len(rows), -1)

    female = safety["female"].to_numpy()[s]
    sex_index = np.where(female, 0, 1)
    default_low = np.array([[t.ranges[sex][0] for sex in SEXES] for t in standards.tests])
    default_high = np.array([[t.ranges[sex][1] for sex in SEXES] for t in standards.tests])
    low = np.where(np.isnan(ref_low), default_low[p, sex_index], ref_low)
    high = np.where(np.isnan(ref_high), default_high[p, sex_index], ref_high)
    n_given = (~np.isnan(ref_low)).astype(int) + (~np.isnan(ref_high)).astype(int)
    range_source = np.select([n_given == 2, n_given == 0], [0, 1], 2)
    decimals = standards.decimals()[p]
    flag = _flag_codes(aval, low, high, decimals)

    n_subjects = len(safety_ids)
    n_params = n_lab_params + 1
    key = s * n_params + p
    baseline = (week == 0) & ~np.isnan(aval)
    baseline_flag = _broadcast_baseline(key, baseline, flag, n_subjects * n_params, fill=-1)
    chg = aval - base

    kdigo_names = [k for k, _ in standards.egfr.kdigo]
    category_names = [*B12_STATUSES, *kdigo_names]
    category = np.full(len(rows), -1, dtype=np.int64)
    if "B12" in params:
        b12 = np.flatnonzero(p == params.index("B12"))
        status = b12_status(aval[b12], b12_deficient_below, b12_adequate_from, standards.test("B12").decimals)
        category[b12] = pd.Index(category_names).get_indexer(status)

    # eGFR rows derived from the creatinine rows, placed after the subject's lab rows (eGFR is the last param)
    egfr_spec = standards.egfr
    creat = np.flatnonzero(p == params.index(egfr_spec.creatinine))
    age = safety["age_years"].to_numpy(dtype=float)[s[creat]]
    egfr = round_half_up(ckd_epi_2021(aval[creat], female[creat], age), egfr_spec.decimals)
    egfr_base = round_half_up(ckd_epi_2021(base[creat], female[creat], age), egfr_spec.decimals)
    egfr_category = pd.Index(category_names).get_indexer(kdigo_category(egfr, egfr_spec.kdigo, egfr_spec.decimals))
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
    columns = {
        "subject_id": pd.Categorical.from_codes(merged(s, s[creat]), categories=safety_ids),
        "param": pd.Categorical.from_codes(all_p, categories=list(standards.all_params)),
        "visit": pd.Categorical.from_codes(merged(visit, visit[creat]), categories=visit_names),
        "week": merged(week, week[creat]).astype(np.int64),
        "sample_date": pd.Categorical.from_codes(merged(date_code, date_code[creat]), categories=date_names),
        "aval": merged(aval, egfr),
        "unit": _unit_column(all_p, standards),
        "censored": merged(censored, censored[creat]),
        "ref_low": merged(low, np.nan),
        "ref_high": merged(high, np.nan),
        "range_source": pd.Categorical.from_codes(merged(range_source, 3), categories=list(RANGE_SOURCES)),
        "flag": pd.Categorical.from_codes(merged(flag, -1), categories=list(FLAGS)),
        "base": merged(base, egfr_base),
        "chg": merged(round_half_up(chg, decimals), round_half_up(egfr - egfr_base, egfr_spec.decimals)),
        "baseline_flag": pd.Categorical.from_codes(merged(baseline_flag, -1), categories=list(FLAGS)),
        "category": pd.Categorical.from_codes(merged(category, egfr_category), categories=category_names),
    }
    out = pd.DataFrame(columns)
    out.attrs["visit_weeks"] = dict(zip(visit_names, visit_weeks, strict=True))
    return out


def flagged_values(annotated: pd.DataFrame, standards: LabStandards) -> pd.DataFrame:
    """lab_flags.csv: every value flagged LOW or HIGH against its range, and every B12 and eGFR value (with its
    B12 status or KDIGO category), in LAB_FLAG_COLUMNS and the annotated order. Values within range are left
    out: they are in labs.csv, and at 100,000 subjects a full copy would cost more to write than the analysis.
    """
    flag = annotated["flag"].cat.codes.to_numpy()
    categorised = annotated["param"].isin(["B12", standards.egfr.param]).to_numpy()
    keep = (flag == FLAGS.index("LOW")) | (flag == FLAGS.index("HIGH")) | categorised
    return annotated.loc[keep, LAB_FLAG_COLUMNS].reset_index(drop=True)


def _unit_column(param_codes: np.ndarray, standards: LabStandards) -> pd.Categorical:
    """The standard unit of each param code (lab order, then eGFR) as a categorical column."""
    units = standards.units()
    distinct = list(dict.fromkeys(units))
    code_of_param = np.array([distinct.index(u) for u in units])
    return pd.Categorical.from_codes(code_of_param[param_codes], categories=distinct)


def _visit_order(visit: pd.Series, week: np.ndarray) -> tuple[list[str], list[int]]:
    """Visit names ordered by study week (the first week seen for each name)."""
    codes = visit.cat.codes.to_numpy()
    names = [str(c) for c in visit.cat.categories]
    first_week = np.full(len(names), np.inf)
    valid = (codes >= 0) & ~np.isnan(week)
    np.minimum.at(first_week, codes[valid], week[valid])
    order = sorted(range(len(names)), key=lambda i: (first_week[i], names[i]))
    return [names[i] for i in order], [int(first_week[i]) if np.isfinite(first_week[i]) else -1 for i in order]


def _flag_codes(aval: np.ndarray, low: np.ndarray, high: np.ndarray, decimals: np.ndarray) -> np.ndarray:
    """0 LOW, 1 NORMAL, 2 HIGH, -1 no value."""
    is_low = compare_at_precision(aval, low, "<", decimals)
    is_high = compare_at_precision(aval, high, ">", decimals)
    return np.where(np.isnan(aval), -1, np.where(is_low, 0, np.where(is_high, 2, 1)))


def _broadcast_baseline(
    key: np.ndarray, is_baseline: np.ndarray, values: np.ndarray, size: int, fill: int
) -> np.ndarray:
    """Per row, the (integer) value at the baseline row of the same key (subject x param); `fill` when none."""
    per_key = np.full(size, fill, dtype=np.int64)
    per_key[key[is_baseline]] = values[is_baseline]
    return per_key[key]


class LabArrays:
    """Integer codes and numeric columns of an annotated lab table, for vectorised work."""

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
        self.censored = annotated["censored"].to_numpy(dtype=bool)
        self.flag = annotated["flag"].cat.codes.to_numpy().astype(np.int64)
        self.decimals = standards.decimals()[self.p]
        self.key = self.s * self.n_params + self.p
        self.size = self.n_subjects * self.n_params
        self.is_baseline = (self.week == 0) & ~np.isnan(self.aval)
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


# ----------------------------------------------------------------------------------------------------------------
# CTCAE grades
# ----------------------------------------------------------------------------------------------------------------
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
    """CTCAE v5.0 grade of every graded value: CTCAE_GRADE_COLUMNS, one row per value and term.

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
            "unit": _unit_column(arr.p[rows], standards),
            "censored": arr.censored[rows],
            "term": pd.Categorical.from_codes(joined["term"][order], categories=[t.term for t in standards.terms]),
            "grade": joined["grade"][order],
            "criterion": pd.Categorical.from_codes(name_index[joined["criterion"][order]], categories=unique_names),
            "baseline_abnormal": pd.array(np.where(abnormal < 0, None, abnormal == 1), dtype="boolean"),
        },
        columns=CTCAE_GRADE_COLUMNS,
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
    """Worst post-baseline grade by baseline grade, per term: WORST_COLUMNS, full grid with zero counts.

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
            "percent": _percent(counts, n_subjects),
            "denominator": n_subjects,
        },
        columns=WORST_COLUMNS,
    )


def _percent(counts: np.ndarray, denominator: Any) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    denominator = np.broadcast_to(np.asarray(denominator, dtype=float), counts.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 100.0 * counts / denominator, np.nan)


# ----------------------------------------------------------------------------------------------------------------
# Descriptives and shifts
# ----------------------------------------------------------------------------------------------------------------
def lab_descriptives(annotated: pd.DataFrame, standards: LabStandards) -> pd.DataFrame:
    """n, n_censored, mean, SD (n-1), median, Q1, Q3 (linear interpolation, R type 7), min, max per param and
    visit, of the value and of the change from baseline (`chg_*`; `chg_n_censored` counts changes whose value or
    baseline is censored). Censored values enter at their limit (an upper bound for "<x"). Sorted by param, week.
    """
    frame = pd.DataFrame(
        {
            "param": annotated["param"],
            "visit": annotated["visit"],
            "aval": annotated["aval"],
            "chg": annotated["chg"],
            "censored": annotated["censored"].to_numpy(dtype=bool) & annotated["aval"].notna().to_numpy(),
        }
    )
    s = annotated["subject_id"].cat.codes.to_numpy().astype(np.int64)
    p = annotated["param"].cat.codes.to_numpy().astype(np.int64)
    key = s * len(standards.all_params) + p
    baseline_rows = (annotated["week"].to_numpy() == 0) & annotated["aval"].notna().to_numpy()
    baseline_censored = np.zeros(len(standards.all_params) * len(annotated["subject_id"].cat.categories), bool)
    baseline_censored[key[baseline_rows]] = frame["censored"].to_numpy()[baseline_rows]
    frame["chg_censored"] = (frame["censored"].to_numpy() | baseline_censored[key]) & frame["chg"].notna().to_numpy()
    groups = frame.groupby(["param", "visit"], observed=True, sort=True)
    result = {}
    for column, prefix in (("aval", ""), ("chg", "chg_")):
        grouped = groups[column]
        quantiles = grouped.quantile([0.5, 0.25, 0.75]).unstack()
        stats = pd.DataFrame(
            {
                f"{prefix}n": grouped.count(),
                f"{prefix}n_censored": groups["censored" if column == "aval" else "chg_censored"].sum(),
                f"{prefix}mean": grouped.mean(),
                f"{prefix}sd": grouped.std(ddof=1),
                f"{prefix}median": quantiles[0.5],
                f"{prefix}q1": quantiles[0.25],
                f"{prefix}q3": quantiles[0.75],
                f"{prefix}min": grouped.min(),
                f"{prefix}max": grouped.max(),
            }
        )
        result[column] = stats
    out = result["aval"].join(result["chg"]).reset_index()
    weeks = annotated.attrs.get("visit_weeks") or (annotated.groupby("visit", observed=True)["week"].min().to_dict())
    out["week"] = out["visit"].map(weeks).astype(np.int64)
    out["unit"] = out["param"].map(dict(zip(standards.all_params, standards.units(), strict=True)))
    for column in ("n", "n_censored", "chg_n", "chg_n_censored"):
        out[column] = out[column].astype(np.int64)
    out = out.sort_values(["param", "week"], kind="mergesort").reset_index(drop=True)
    return out[DESCRIPTIVE_COLUMNS]


def _per_key_visit_flags(arr: LabArrays) -> dict[int, np.ndarray]:
    """Flag code per key for each post-baseline visit code (-1 missing)."""
    out = {}
    for v in sorted(set(arr.v[arr.post].tolist())):
        per_key = np.full(arr.size, -1, dtype=np.int64)
        rows = (arr.v == v) & arr.post & (arr.flag >= 0)
        per_key[arr.key[rows]] = arr.flag[rows]
        out[v] = per_key
    return out


def _worst_flag(arr: LabArrays, direction: str) -> np.ndarray:
    """Worst post-baseline flag per key: worst_low = LOW if any, else NORMAL if any, else HIGH; mirror for high."""
    rank_of_flag = np.array([3, 2, 1]) if direction == "low" else np.array([1, 2, 3])  # LOW, NORMAL, HIGH
    flag_of_rank = {3: 0, 2: 1, 1: 2} if direction == "low" else {3: 2, 2: 1, 1: 0}
    rows = arr.post & (arr.flag >= 0)
    rank = np.zeros(arr.size, dtype=np.int64)
    np.maximum.at(rank, arr.key[rows], rank_of_flag[arr.flag[rows]])
    lookup = np.array([-1, flag_of_rank[1], flag_of_rank[2], flag_of_rank[3]])
    return lookup[rank]


def lab_shifts(annotated: pd.DataFrame, subjects: pd.DataFrame, standards: LabStandards) -> pd.DataFrame:
    """Shift tables: baseline flag (`from`) x flag at each post-baseline visit, worst low and worst high (`to`).

    worst_low: LOW if any post-baseline value is low, else NORMAL if any is normal, else HIGH; worst_high the
    mirror. MISSING: no value. Every safety-set subject is counted once per param and comparison, so the counts
    of a comparison add up to the denominator (the safety set). Lab params only (eGFR has no range). Full grid
    with zero counts, sorted by param, comparison (visits by week, worst_low, worst_high), from, to.
    """
    arr = LabArrays(annotated, standards, subjects)
    n_lab = len(standards.lab_params)
    baseline = np.full(arr.size, -1, dtype=np.int64)
    rows = arr.is_baseline & (arr.flag >= 0)
    baseline[arr.key[rows]] = arr.flag[rows]
    comparisons = {arr.visits[v]: flags for v, flags in _per_key_visit_flags(arr).items()}
    comparisons["worst_low"] = _worst_flag(arr, "low")
    comparisons["worst_high"] = _worst_flag(arr, "high")
    n_cat = len(SHIFT_CATEGORIES)
    param_of_key = np.tile(np.arange(arr.n_params), arr.n_subjects)
    lab_keys = param_of_key < n_lab
    from_code = np.where(baseline < 0, n_cat - 1, baseline)[lab_keys]
    frames = []
    for name, to in comparisons.items():
        to_code = np.where(to < 0, n_cat - 1, to)[lab_keys]
        cell = param_of_key[lab_keys] * n_cat * n_cat + from_code * n_cat + to_code
        counts = np.bincount(cell, minlength=n_lab * n_cat * n_cat)
        frames.append(
            pd.DataFrame(
                {
                    "param": np.repeat(standards.lab_params, n_cat * n_cat),
                    "comparison": name,
                    "from": np.tile(np.repeat(SHIFT_CATEGORIES, n_cat), n_lab),
                    "to": np.tile(SHIFT_CATEGORIES, n_lab * n_cat),
                    "n": counts,
                    "_param": np.repeat(np.arange(n_lab), n_cat * n_cat),
                    "_comparison": len(frames),
                    "_cell": np.tile(np.arange(n_cat * n_cat), n_lab),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["_param", "_comparison", "_cell"], kind="mergesort").reset_index(drop=True)
    out["denominator"] = arr.n_subjects
    out["percent"] = _percent(out["n"].to_numpy(), arr.n_subjects)
    return out[SHIFT_COLUMNS]


def lab_category_counts(annotated: pd.DataFrame, standards: LabStandards) -> pd.DataFrame:
    """B12 status and KDIGO category by visit, cross-classified by the baseline category: CATEGORY_COLUMNS.

    percent = 100 x n / subjects of the safety set in that baseline category (so "deficient at baseline ->
    adequate at week 8" reads directly); "missing" = no value. Full grid, sorted by param, week, categories.
    """
    s = annotated["subject_id"].cat.codes.to_numpy().astype(np.int64)
    n_subjects = len(annotated["subject_id"].cat.categories)
    p = annotated["param"].cat.codes.to_numpy().astype(np.int64)
    v = annotated["visit"].cat.codes.to_numpy().astype(np.int64)
    week = annotated["week"].to_numpy()
    category = annotated["category"].cat.codes.to_numpy().astype(np.int64)
    names = list(annotated["category"].cat.categories)
    visits = list(annotated["visit"].cat.categories)
    visit_weeks = annotated.attrs.get("visit_weeks") or {}
    frames = []
    params = list(standards.all_params)
    for param, levels in (("B12", list(B12_STATUSES)), (standards.egfr.param, [k for k, _ in standards.egfr.kdigo])):
        if param not in params:
            continue
        rows = p == params.index(param)
        level_code = np.array([levels.index(n) if n in levels else -1 for n in names] + [-1])
        cat = level_code[np.where(category < 0, len(names), category)]
        baseline = np.full(n_subjects, len(levels), dtype=np.int64)
        at_bl = rows & (week == 0) & (cat >= 0)
        baseline[s[at_bl]] = cat[at_bl]
        labels = [*levels, MISSING]
        n_lvl = len(labels)
        bl_counts = np.bincount(baseline, minlength=n_lvl)
        for visit_code, visit in enumerate(visits):
            current = np.full(n_subjects, len(levels), dtype=np.int64)
            here = rows & (v == visit_code) & (cat >= 0)
            current[s[here]] = cat[here]
            counts = np.bincount(baseline * n_lvl + current, minlength=n_lvl * n_lvl)
            frames.append(
                pd.DataFrame(
                    {
                        "param": param,
                        "visit": visit,
                        "week": int(visit_weeks.get(visit, -1)),
                        "baseline_category": np.repeat(labels, n_lvl),
                        "category": np.tile(labels, n_lvl),
                        "n": counts,
                        "percent": _percent(counts, np.repeat(bl_counts, n_lvl)),
                        "denominator": np.repeat(bl_counts, n_lvl),
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=CATEGORY_COLUMNS)
    return pd.concat(frames, ignore_index=True)[CATEGORY_COLUMNS]


# ----------------------------------------------------------------------------------------------------------------
# Hy's law and eDISH
# ----------------------------------------------------------------------------------------------------------------
def _on_treatment_rows(arr: LabArrays, param: str, standards: LabStandards) -> np.ndarray:
    """Rows of one param after baseline that have a value."""
    rows = arr.rows_of(param, standards)
    return rows[arr.post[rows] & ~np.isnan(arr.aval[rows])]


def _per_subject_visit(arr: LabArrays, rows: np.ndarray, values: np.ndarray, fill: Any) -> np.ndarray:
    """Flat (subject x visit) array holding `values` (aligned with `rows`) of those rows; `fill` elsewhere."""
    n_visits = len(arr.visits)
    out = np.full(arr.n_subjects * n_visits, fill, dtype=np.asarray(values).dtype)
    out[arr.s[rows] * n_visits + arr.v[rows]] = values
    return out


def _xuln(arr: LabArrays, rows: np.ndarray) -> np.ndarray:
    """value / ULN of the rows (NaN without a positive ULN)."""
    high = arr.high[rows]
    return np.divide(arr.aval[rows], high, out=np.full(len(rows), np.nan), where=high > 0)


def _at_least_xuln(arr: LabArrays, rows: np.ndarray, factor: float) -> np.ndarray:
    return compare_at_precision(arr.aval[rows], factor * arr.high[rows], ">=", arr.decimals[rows])


def hys_law_cases(
    annotated: pd.DataFrame, subjects: pd.DataFrame, standards: LabStandards, *, window_days: int = 0
) -> pd.DataFrame:
    """Potential Hy's law cases on treatment: HYS_LAW_COLUMNS, one row per subject and aminotransferase visit.

    A visit qualifies when ALT or AST >= 3 x ULN and total bilirubin >= 2 x ULN (thresholds from
    lab_standards.yaml, compared at recording precision) and ALP < 2 x ULN. Bilirubin must be at the same
    visit when window_days is 0, else sampled within window_days of the aminotransferase sample (the highest
    such bilirubin is reported, `tbil_visit` says where). ALP is taken at the aminotransferase visit; when it
    was not measured cholestasis cannot be excluded, the row is kept and `note` says so. Post-baseline
    visits only. `*_xuln` = value / ULN. Empty (with headers) when nobody qualifies. Sorted by subject, week.
    """
    arr = LabArrays(annotated, standards, subjects)
    rule = standards.hys_law
    dates = arr.sample_dates()
    amin_rows = np.concatenate(
        [
            rows[_at_least_xuln(arr, rows, rule.aminotransferase_min_xuln)]
            for rows in (_on_treatment_rows(arr, code, standards) for code in rule.aminotransferases)
        ]
    )
    tbil_all = _on_treatment_rows(arr, rule.bilirubin, standards)
    tbil_rows = tbil_all[_at_least_xuln(arr, tbil_all, rule.bilirubin_min_xuln)]

    anchor = pd.DataFrame({"s": arr.s[amin_rows], "v": arr.v[amin_rows], "date": dates[amin_rows]})
    anchor = anchor.groupby(["s", "v"], as_index=False).agg(date=("date", "min"))
    bili = pd.DataFrame(
        {
            "s": arr.s[tbil_rows],
            "tbil_v": arr.v[tbil_rows],
            "tbil_date": dates[tbil_rows],
            "tbil_xuln": _xuln(arr, tbil_rows),
            "tbil": arr.aval[tbil_rows],
        }
    )
    if window_days == 0:
        pairs = anchor.merge(bili, left_on=["s", "v"], right_on=["s", "tbil_v"])
    else:
        pairs = anchor.merge(bili, on="s")
        gap = (pairs["tbil_date"] - pairs["date"]).abs()
        pairs = pairs.loc[gap <= pd.Timedelta(days=window_days)]
    pairs = pairs.sort_values(["s", "v", "tbil_xuln", "tbil_v"], ascending=[True, True, False, True], kind="mergesort")
    pairs = pairs.drop_duplicates(["s", "v"], keep="first")

    sv = pairs["s"].to_numpy(dtype=np.int64) * len(arr.visits) + pairs["v"].to_numpy(dtype=np.int64)
    columns: dict[str, np.ndarray] = {}
    for code, name in ((rule.aminotransferases[0], "alt"), (rule.aminotransferases[-1], "ast"), (rule.alp, "alp")):
        rows = _on_treatment_rows(arr, code, standards)
        columns[name] = _per_subject_visit(arr, rows, arr.aval[rows], np.nan)[sv]
        columns[f"{name}_xuln"] = _per_subject_visit(arr, rows, _xuln(arr, rows), np.nan)[sv]
    alp_rows = _on_treatment_rows(arr, rule.alp, standards)
    alp_below = compare_at_precision(
        arr.aval[alp_rows], rule.alp_below_xuln * arr.high[alp_rows], "<", arr.decimals[alp_rows]
    )
    alp_ok = _per_subject_visit(arr, alp_rows, alp_below.astype(float), np.nan)[sv]
    keep = np.isnan(alp_ok) | (alp_ok == 1.0)
    visit_names = np.array(arr.visits, dtype=object)
    visit_weeks = annotated.attrs.get("visit_weeks", {})
    out = pd.DataFrame(
        {
            "subject_id": np.array(arr.subject_ids, dtype=object)[pairs["s"].to_numpy(dtype=np.int64)],
            "visit": visit_names[pairs["v"].to_numpy(dtype=np.int64)],
            "week": np.array(
                [visit_weeks.get(v, -1) for v in visit_names[pairs["v"].to_numpy(dtype=np.int64)]], dtype=np.int64
            ),
            "sample_date": pd.Series(pairs["date"].to_numpy()).dt.strftime("%Y-%m-%d").fillna("").to_numpy(),
            "alt": columns["alt"],
            "alt_xuln": columns["alt_xuln"],
            "ast": columns["ast"],
            "ast_xuln": columns["ast_xuln"],
            "tbil": pairs["tbil"].to_numpy(dtype=float),
            "tbil_xuln": pairs["tbil_xuln"].to_numpy(dtype=float),
            "tbil_visit": visit_names[pairs["tbil_v"].to_numpy(dtype=np.int64)],
            "alp": columns["alp"],
            "alp_xuln": columns["alp_xuln"],
            "note": np.where(np.isnan(alp_ok), f"{rule.alp} not measured: cholestasis not excluded", ""),
        },
        columns=HYS_LAW_COLUMNS,
    )
    return out.loc[keep].reset_index(drop=True)


def edish(annotated: pd.DataFrame, subjects: pd.DataFrame, standards: LabStandards) -> pd.DataFrame:
    """eDISH points: per safety-set subject with on-treatment liver tests, the peak ALT/ULN, AST/ULN, their
    maximum, and peak total bilirubin/ULN (peaks may come from different visits), with the quadrant at the Hy's
    law thresholds (potential Hy's law: aminotransferase >= 3 and bilirubin >= 2 x ULN; hyperbilirubinaemia;
    Temple's corollary; normal or mild; empty when a coordinate is missing). Sorted by subject.
    """
    arr = LabArrays(annotated, standards, subjects)
    rule = standards.hys_law
    peaks: dict[str, np.ndarray] = {}
    reached: dict[str, np.ndarray] = {}
    for code, threshold in (
        *((c, rule.aminotransferase_min_xuln) for c in rule.aminotransferases),
        (rule.bilirubin, rule.bilirubin_min_xuln),
    ):
        rows = _on_treatment_rows(arr, code, standards)
        ratio = _xuln(arr, rows)
        rows, ratio = rows[~np.isnan(ratio)], ratio[~np.isnan(ratio)]
        peak = np.full(arr.n_subjects, np.nan)
        np.fmax.at(peak, arr.s[rows], ratio)
        hit = np.zeros(arr.n_subjects, bool)
        hit[arr.s[rows[_at_least_xuln(arr, rows, threshold)]]] = True
        peaks[code], reached[code] = peak, hit
    amin_codes = rule.aminotransferases
    amin_peak = np.fmax.reduce(np.stack([peaks[c] for c in amin_codes]), axis=0)
    amin_hit = np.logical_or.reduce(np.stack([reached[c] for c in amin_codes]), axis=0)
    tbil_peak, tbil_hit = peaks[rule.bilirubin], reached[rule.bilirubin]
    quadrant = np.select(
        [amin_hit & tbil_hit, tbil_hit, amin_hit], list(EDISH_QUADRANTS[:3]), EDISH_QUADRANTS[3]
    ).astype(object)
    quadrant[np.isnan(amin_peak) | np.isnan(tbil_peak)] = ""
    present = ~(np.isnan(amin_peak) & np.isnan(tbil_peak))
    out = pd.DataFrame(
        {
            "subject_id": np.array(arr.subject_ids, dtype=object),
            "peak_alt_xuln": peaks[amin_codes[0]],
            "peak_ast_xuln": peaks[amin_codes[-1]],
            "peak_aminotransferase_xuln": amin_peak,
            "peak_tbil_xuln": tbil_peak,
            "quadrant": quadrant,
        },
        columns=EDISH_COLUMNS,
    )
    return out.loc[present].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# Paired tests, baseline vs a later visit
# ----------------------------------------------------------------------------------------------------------------
def lab_paired_tests(
    annotated: pd.DataFrame,
    standards: LabStandards,
    *,
    visit_from: str,
    visit_to: str,
    confidence: float = 0.95,
    exact_max_n: int = 50,
) -> pd.DataFrame:
    """Paired tests of every param (lab order, then eGFR) between two visits, with k2trial.stats.paired.

    Same columns as the efficacy paired tests (population "safety"), plus `unit` and `n_censored_excluded`:
    subjects whose value at either visit is censored are left out (the limit is only a bound), complete cases
    otherwise. Differences are rounded to the test's recording decimals by the engine. Holm adjustment across
    params, separately for each test (wilcoxon, paired_t); family "lab_params_<from>_<to>_<test>".
    """
    from k2trial.stats.paired import PAIRED_TEST_COLUMNS, holm, paired_comparison

    params = list(standards.all_params)
    s = annotated["subject_id"].cat.codes.to_numpy().astype(np.int64)
    p = annotated["param"].cat.codes.to_numpy().astype(np.int64)
    visits = list(annotated["visit"].cat.categories)
    v = annotated["visit"].cat.codes.to_numpy().astype(np.int64)
    aval = annotated["aval"].to_numpy(dtype=float)
    censored = annotated["censored"].to_numpy(dtype=bool)
    n_subjects = len(annotated["subject_id"].cat.categories)
    decimals = standards.decimals()
    by_param = np.argsort(p.astype(np.int16), kind="stable")
    bounds = np.searchsorted(p[by_param], np.arange(len(params) + 1))
    frames = []
    for index, param in enumerate(params):
        param_rows = by_param[bounds[index] : bounds[index + 1]]
        pair = []
        for visit in (visit_from, visit_to):
            value = np.full(n_subjects, np.nan)
            flag = np.zeros(n_subjects, bool)
            if visit in visits:
                rows = param_rows[(v[param_rows] == visits.index(visit)) & ~np.isnan(aval[param_rows])]
                value[s[rows]] = aval[rows]
                flag[s[rows]] = censored[rows]
            pair.append((value, flag))
        (before, before_cens), (after, after_cens) = pair
        complete = ~np.isnan(before) & ~np.isnan(after)
        usable = complete & ~before_cens & ~after_cens
        result = paired_comparison(
            before[usable],
            after[usable],
            decimals=int(decimals[index]),
            exact_max_n=exact_max_n,
            confidence=confidence,
        ).reset_index(drop=True)
        result.insert(0, "population", "safety")
        result.insert(1, "param", param)
        result.insert(2, "visit_from", visit_from)
        result.insert(3, "visit_to", visit_to)
        result["unit"] = standards.units()[index]
        result["n_censored_excluded"] = int((complete & ~usable).sum())
        frames.append(result)
    out = pd.concat(frames, ignore_index=True)
    out["p_adjusted"] = np.nan
    out["family"] = ""
    for test, rows in out.groupby("test", sort=True).groups.items():
        p_values = out.loc[rows, "p_value"].to_numpy(dtype=float)
        finite = np.isfinite(p_values)  # a param without pairs has no p-value and is not in the family
        adjusted = np.full(len(p_values), np.nan)
        if finite.any():
            adjusted[finite] = holm(p_values[finite])
        out.loc[rows, "p_adjusted"] = adjusted
        out.loc[rows, "family"] = f"lab_params_{visit_from}_{visit_to}_{test}"
    base_columns = list(PAIRED_TEST_COLUMNS)
    at = base_columns.index("p_method") + 1 if "p_method" in base_columns else len(base_columns)
    ordered = ["population", "param", "visit_from", "visit_to", *base_columns[:at], "p_adjusted", "family"]
    ordered += [*base_columns[at:], "unit", "n_censored_excluded"]
    return out[ordered]
