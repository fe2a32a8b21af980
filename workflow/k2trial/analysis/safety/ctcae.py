"""CTCAE laboratory grading: the criteria are metadata (one YAML file per CTCAE version, config/ctcae/), read by
`load_ctcae_criteria` into frozen dataclasses, and graded by one vectorised evaluator, `grade_records`.

Conventions (CLINICAL.md, "Safety laboratory data"; checked case by case against the pharmaverse package admiral
in tests/test_ctcae_admiral.py):

- Values are graded as reported. An absolute limit is stated per unit in the criteria file and applies only to a
  value reported in that unit (spellings matched ignoring case and spaces); a value in any other unit is not graded
  by that term (reason `unit_not_graded`), never converted. LLN, ULN and baseline must be in the unit of the value.
- Boundaries. CTCAE ranges are half-open ("> 3.0 - 5.0 x ULN"), so a value exactly on a limit belongs to the lower
  grade unless CTCAE includes it ("1.5 - 3.0 x baseline"). Both sides of every comparison (the value and the
  threshold, e.g. 3 x ULN or ULN + 2 g/dL) are taken at 15 significant digits (k2trial.core.values.compare), as
  admiral does (R's signif, 15 digits). That removes the binary representation error of products such as
  3 x 0.35 = 1.0499999999999998 while keeping every digit the laboratory recorded: 2.49 mmol/L stays 2.49 and is
  < 2.5. Values are never rounded to a recording precision.
- The grade is the highest grade whose criterion holds. A criterion whose reference (ULN, LLN, baseline, percent
  change) is missing cannot hold; if no criterion holds and such a criterion (not marked `optional`) exists, grade
  0 cannot be asserted and the grade is missing, with the reason (`no_uln`, `no_lln`, ...). A positive grade found
  while a higher criterion could not be evaluated is reported and flagged `lower_bound` (admiral reports it too).
- Baseline normal / abnormal is decided by the baseline range indicator (admiral's BNRIND): abnormal when it is one
  of `high_indicators` (terms graded upwards) or `low_indicators` (downwards); a missing indicator counts as normal,
  so the ULN criteria apply (as in admiral, where only an indicator in the abnormal set switches to baseline). The
  baseline record is graded under the same rule as any other (value = baseline: baseline multiples > 1 fail).
- Anticoagulation (INR): True, False or unknown (None/NaN). Unknown satisfies both `anticoagulated` and
  `not_anticoagulated`, so both sets of criteria apply and the higher grade wins: worst case, which is what
  admiral always does ("Take worst case and assume on anticoagulation").
- Grades that CTCAE defines by symptoms or interventions are graded worst case from the value alone; each criteria
  file states the rule per term (`rule`).

Reasons for a missing grade (column `reason`): no_term, unknown_term, test_not_graded (only when a term is asked
for), no_value, no_unit, unit_not_graded, and no_uln / no_lln / no_baseline / no_pct_change (joined with "+").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from k2trial.core.errors import ConfigError
from k2trial.core.values import compare

OPERATORS = (">", ">=", "<", "<=")
REFERENCES = ("ULN", "LLN", "baseline", "absolute", "pct_change")
#: References that are multiplied by `x` (and may get a per-unit `plus`).
RELATIVE_REFERENCES = ("ULN", "LLN", "baseline")
CONDITIONS = (
    "baseline_normal",
    "baseline_abnormal",
    "anticoagulated",
    "not_anticoagulated",
    "below_lln",
    "above_baseline",
    "baseline_above_uln",
    "baseline_not_above_uln",
)
DIRECTIONS = ("high", "low")
GRADES = (1, 2, 3, 4)
#: Grades CTCAE words (grade 5 is death); `ctcae:` may quote any of them.
CTCAE_GRADES = (1, 2, 3, 4, 5)

FILE_KEYS = ("version", "source", "units", "terms")
TERM_KEYS = ("term", "direction", "tests", "ctcae", "rule", "grades")
CRITERION_KEYS = ("op", "ref", "x", "plus", "limit", "when", "optional")

NO_TERM = "no_term"
UNKNOWN_TERM = "unknown_term"
TEST_NOT_GRADED = "test_not_graded"
NO_VALUE = "no_value"
NO_UNIT = "no_unit"
UNIT_NOT_GRADED = "unit_not_graded"
#: Reason for each reference that can be missing.
MISSING_REFERENCE_REASONS = {"ULN": "no_uln", "LLN": "no_lln", "baseline": "no_baseline", "pct_change": "no_pct_change"}

#: CTCAE version graded when the configuration names none, and the criteria file of each version.
DEFAULT_VERSION = "5.0"
CRITERIA_FILES = {"5.0": "ctcae_v5.0.yaml", "4.03": "ctcae_v4.03.yaml"}

GRADE_COLUMNS = ["record", "term", "direction", "test", "grade", "reason", "criterion", "lower_bound"]
_TRUE_TEXT = ("TRUE", "T", "Y", "YES", "1", "1.0")
_FALSE_TEXT = ("FALSE", "F", "N", "NO", "0", "0.0")


# ----------------------------------------------------------------------------------------------------------------
# Criteria (typed, frozen)
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Criterion:
    """`value <op> threshold` gives `grade` when every `when` condition holds.

    threshold = x * reference + plus[unit] for ULN, LLN and baseline (`amounts` holds `plus`, empty when none);
    the limit for the value's unit for `absolute` (`amounts` holds the limits); `pct` for `pct_change`, which
    compares the percent change from baseline instead of the value. `optional`: a missing reference just means
    the criterion does not hold (otherwise grade 0 cannot be asserted).
    """

    grade: int
    op: str
    ref: str
    x: float = 1.0
    amounts: tuple[tuple[str, float], ...] = ()
    pct: float | None = None
    when: tuple[str, ...] = ()
    optional: bool = False

    @property
    def units(self) -> frozenset[str] | None:
        """Units the criterion can be applied to; None when it needs no unit."""
        return frozenset(u for u, _ in self.amounts) if self.amounts else None

    def amount(self, unit: str) -> float:
        """The absolute limit (or the `plus` amount) for a canonical unit."""
        return dict(self.amounts)[unit]

    def describe(self, unit: str | None = None) -> str:
        """Short text, e.g. '> 3 x ULN [baseline_normal]', '< 3 mmol/L', '> ULN + 2 g/dL'."""
        shown = "" if unit in (None, "1") else f" {unit}"
        if self.ref == "absolute":
            text = f"{self.op} {self.amount(unit):g}{shown}" if unit is not None else f"{self.op} absolute limit"
        elif self.ref == "pct_change":
            text = f"change from baseline {self.op} {self.pct:g}%"
        else:
            text = f"{self.op} {self.ref}" if self.x == 1.0 else f"{self.op} {self.x:g} x {self.ref}"
            if self.amounts and unit is not None:
                text += f" + {self.amount(unit):g}{shown}"
        return text + (f" [{', '.join(self.when)}]" if self.when else "")


@dataclass(frozen=True)
class CtcaeTerm:
    """One CTCAE term graded from the tests `tests` (codes, upper case) in one direction.

    `criteria` are ordered by grade, then as listed. `units`: the canonical units the term can grade (None: any,
    the criteria are relative only). `ctcae`: the CTCAE wording per grade; `rule`: how a symptom-dependent grade is
    assigned from the value alone.
    """

    term: str
    direction: str
    tests: tuple[str, ...]
    criteria: tuple[Criterion, ...]
    ctcae: tuple[tuple[int, str], ...]
    rule: str
    units: frozenset[str] | None


@dataclass(frozen=True)
class CtcaeCriteria:
    """The criteria of one CTCAE version. `unit_spellings` maps a normalised spelling to its canonical unit."""

    version: str
    source: str
    unit_spellings: tuple[tuple[str, str], ...]
    terms: tuple[CtcaeTerm, ...]

    def term_names(self) -> tuple[str, ...]:
        """Distinct term names in file order (a term may have one entry per set of tests or units)."""
        return tuple(dict.fromkeys(t.term for t in self.terms))

    def entries(self, name: str) -> tuple[CtcaeTerm, ...]:
        """The entries of a term, matched ignoring case."""
        key = name.casefold()
        return tuple(t for t in self.terms if t.term.casefold() == key)

    def canonical_unit(self, unit: Any) -> str | None:
        """Canonical unit of a reported unit (None when the criteria do not know the spelling)."""
        return dict(self.unit_spellings).get(normalise_unit(unit))


def normalise_unit(unit: Any) -> str:
    """Unit spelling as matched: whitespace removed, case folded; a missing unit is ''."""
    if unit is None or (isinstance(unit, float) and np.isnan(unit)) or unit is pd.NA:
        return ""
    return "".join(str(unit).split()).casefold()


# ----------------------------------------------------------------------------------------------------------------
# Loader
# ----------------------------------------------------------------------------------------------------------------
def criteria_file(directory: str | os.PathLike[str], version: str = DEFAULT_VERSION) -> Path:
    """Path of the criteria file of a CTCAE version in `directory` (e.g. config/ctcae); ConfigError if unknown."""
    if version not in CRITERIA_FILES:
        raise ConfigError(f"CTCAE version {version!r} has no criteria file (known: {', '.join(CRITERIA_FILES)})")
    return Path(directory) / CRITERIA_FILES[version]


def load_ctcae_criteria(
    source: str | os.PathLike[str] | Mapping[str, Any], *, name: str | None = None
) -> CtcaeCriteria:
    """Read and check one criteria file (a path to YAML, or its parsed mapping; `name` labels a mapping in errors).

    Raises ConfigError naming the file, the term and the key for: unknown keys; a missing required key; a grade
    other than 1-4, or one without a criterion or without CTCAE wording; an unknown operator, reference or
    condition; an absolute limit (or `plus`) without a unit, or in a unit the file does not declare; limits of one
    term in different sets of units (a unit must grade all of a term or none of it); a spelling claimed by two
    units; two entries of one term that grade the same test in overlapping units (or in different directions).
    """
    if isinstance(source, Mapping):
        label, raw = name or "<criteria mapping>", source
    else:
        label = name or str(source)
        try:
            raw = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"{label}: cannot read the CTCAE criteria: {error}") from error
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{label}: the CTCAE criteria must be a mapping with keys {', '.join(FILE_KEYS)}")
    _check_keys(raw, FILE_KEYS, label, "top level")
    for key in ("version", "units", "terms"):
        if key not in raw:
            raise ConfigError(f"{label}: top level needs key '{key}'")
    spellings = _load_units(raw["units"], label)
    canonical = frozenset(spellings.values())
    if not isinstance(raw["terms"], Sequence) or isinstance(raw["terms"], str) or not raw["terms"]:
        raise ConfigError(f"{label}: key 'terms' must be a non-empty list")
    terms = tuple(_load_term(entry, i, label, canonical) for i, entry in enumerate(raw["terms"]))
    _check_overlaps(terms, label)
    return CtcaeCriteria(
        version=str(raw["version"]),
        source=str(raw.get("source", "")),
        unit_spellings=tuple(sorted(spellings.items())),
        terms=terms,
    )


def _check_keys(mapping: Mapping[str, Any], allowed: Sequence[str], label: str, where: str) -> None:
    unknown = [str(k) for k in mapping if k not in allowed]
    if unknown:
        raise ConfigError(
            f"{label}: {where}: unknown key(s) {', '.join(repr(k) for k in unknown)} (allowed: {', '.join(allowed)})"
        )


def _load_units(raw: Any, label: str) -> dict[str, str]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{label}: key 'units' must map each canonical unit to its accepted spellings")
    spellings: dict[str, str] = {}
    for unit, names in raw.items():
        if not isinstance(names, Sequence) or isinstance(names, str):
            raise ConfigError(f"{label}: units: '{unit}' must list its spellings")
        for spelling in (str(unit), *(str(s) for s in names)):
            key = normalise_unit(spelling)
            if spellings.get(key, str(unit)) != str(unit):
                raise ConfigError(
                    f"{label}: units: spelling {spelling!r} is claimed by both '{spellings[key]}' and '{unit}'"
                )
            spellings[key] = str(unit)
    return spellings


def _load_term(raw: Any, index: int, label: str, units: frozenset[str]) -> CtcaeTerm:
    where = f"terms[{index}]"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{label}: {where} must be a mapping")
    name = raw.get("term")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{label}: {where} needs key 'term' (the CTCAE term name)")
    where = f"{where} ({name})"
    _check_keys(raw, TERM_KEYS, label, where)
    for key in ("direction", "tests", "ctcae", "grades"):
        if key not in raw:
            raise ConfigError(f"{label}: {where} needs key '{key}'")
    if raw["direction"] not in DIRECTIONS:
        raise ConfigError(f"{label}: {where}: key 'direction' must be one of {', '.join(DIRECTIONS)}")
    tests = raw["tests"]
    if (
        not isinstance(tests, Sequence)
        or isinstance(tests, str)
        or not tests
        or not all(isinstance(t, str) and t.strip() for t in tests)
    ):
        raise ConfigError(f"{label}: {where}: key 'tests' must be a non-empty list of test codes")
    ctcae = raw["ctcae"]
    if not isinstance(ctcae, Mapping) or not all(g in CTCAE_GRADES and isinstance(t, str) for g, t in ctcae.items()):
        raise ConfigError(f"{label}: {where}: key 'ctcae' must map grades 1-5 to the CTCAE wording")
    grades = raw["grades"]
    if not isinstance(grades, Mapping) or not grades:
        raise ConfigError(f"{label}: {where}: key 'grades' must map grades 1-4 to their criteria")
    criteria: list[Criterion] = []
    for grade in sorted(grades, key=str):
        if grade not in GRADES:
            raise ConfigError(f"{label}: {where}: key 'grades': grade {grade!r} is not one of 1-4")
        listed = grades[grade]
        if not isinstance(listed, Sequence) or isinstance(listed, str) or not listed:
            raise ConfigError(f"{label}: {where}: key 'grades': grade {grade} has no criterion")
        if grade not in ctcae:
            raise ConfigError(f"{label}: {where}: key 'ctcae': grade {grade} has criteria but no CTCAE wording")
        criteria += [
            _load_criterion(c, int(grade), f"{where}, grade {grade}, criterion {j}", label, units)
            for j, c in enumerate(listed)
        ]
    criteria.sort(key=lambda c: c.grade)  # stable: the listed order within a grade is kept
    unit_sets = {c.units for c in criteria if c.units is not None}
    if len(unit_sets) > 1:
        shown = "; ".join(sorted(", ".join(sorted(s)) for s in unit_sets))
        raise ConfigError(
            f"{label}: {where}: keys 'limit'/'plus' give different sets of units ({shown}): every unit must grade "
            "all of a term or none of it"
        )
    return CtcaeTerm(
        term=name.strip(),
        direction=str(raw["direction"]),
        tests=tuple(t.strip().upper() for t in tests),
        criteria=tuple(criteria),
        ctcae=tuple(sorted((int(g), str(t)) for g, t in ctcae.items())),
        rule=str(raw.get("rule", "")),
        units=next(iter(unit_sets)) if unit_sets else None,
    )


def _per_unit(value: Any, key: str, where: str, label: str, units: frozenset[str]) -> tuple[tuple[str, float], ...]:
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"{label}: {where}: key '{key}' must give the amount per unit, e.g. {{mmol/L: 3.0}}")
    unknown = sorted(str(u) for u in value if str(u) not in units)
    if unknown:
        raise ConfigError(f"{label}: {where}: key '{key}': unit(s) {', '.join(unknown)} not declared under 'units'")
    try:
        return tuple(sorted((str(u), float(v)) for u, v in value.items()))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{label}: {where}: key '{key}' must hold numbers: {error}") from error


def _load_criterion(raw: Any, grade: int, where: str, label: str, units: frozenset[str]) -> Criterion:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{label}: {where} must be a mapping with keys {', '.join(CRITERION_KEYS)}")
    _check_keys(raw, CRITERION_KEYS, label, where)
    op, ref = raw.get("op"), raw.get("ref")
    if op not in OPERATORS:
        raise ConfigError(f"{label}: {where}: key 'op' must be one of {', '.join(OPERATORS)}, got {op!r}")
    if ref not in REFERENCES:
        raise ConfigError(f"{label}: {where}: key 'ref': unknown reference {ref!r} (one of {', '.join(REFERENCES)})")
    when = raw.get("when", ())
    when = (when,) if isinstance(when, str) else tuple(when)
    bad = [w for w in when if w not in CONDITIONS]
    if bad:
        raise ConfigError(f"{label}: {where}: key 'when': unknown condition(s) {', '.join(map(repr, bad))}")
    optional = raw.get("optional", False)
    if not isinstance(optional, bool):
        raise ConfigError(f"{label}: {where}: key 'optional' must be true or false")
    x, amounts, pct = 1.0, (), None
    if ref in RELATIVE_REFERENCES:
        if "limit" in raw:
            raise ConfigError(f"{label}: {where}: key 'limit' is for absolute and pct_change; use 'x' and 'plus'")
        x = raw.get("x", 1.0)
        if isinstance(x, bool) or not isinstance(x, int | float) or not x > 0:
            raise ConfigError(f"{label}: {where}: key 'x' must be a positive number")
        if "plus" in raw:
            amounts = _per_unit(raw["plus"], "plus", where, label, units)
    else:
        extra = [k for k in ("x", "plus") if k in raw]
        if extra:
            raise ConfigError(f"{label}: {where}: key '{extra[0]}' applies to ULN, LLN and baseline only")
        if "limit" not in raw:
            raise ConfigError(f"{label}: {where}: reference {ref} needs key 'limit'")
        limit = raw["limit"]
        if ref == "absolute":
            if not isinstance(limit, Mapping):
                raise ConfigError(
                    f"{label}: {where}: key 'limit': an absolute limit needs its unit, e.g. {{mmol/L: {limit}}}"
                )
            amounts = _per_unit(limit, "limit", where, label, units)
        else:
            if isinstance(limit, bool) or not isinstance(limit, int | float):
                raise ConfigError(f"{label}: {where}: key 'limit' of pct_change must be a number (percent)")
            pct = float(limit)
    return Criterion(grade, str(op), str(ref), float(x), amounts, pct, when, optional)


def _check_overlaps(terms: Sequence[CtcaeTerm], label: str) -> None:
    """Two entries of one term may share a test only for disjoint, explicit unit sets."""
    for i, first in enumerate(terms):
        for second in terms[i + 1 :]:
            if first.term.casefold() != second.term.casefold():
                continue
            if first.direction != second.direction:
                raise ConfigError(
                    f"{label}: term {first.term}: key 'direction': entries disagree ({first.direction}, "
                    f"{second.direction})"
                )
            shared = sorted(set(first.tests) & set(second.tests))
            if not shared:
                continue
            if first.units is None or second.units is None or first.units & second.units:
                raise ConfigError(
                    f"{label}: term {first.term}: key 'tests': two entries grade test(s) {', '.join(shared)} in "
                    "overlapping units (duplicate criteria)"
                )


# ----------------------------------------------------------------------------------------------------------------
# Evaluator
# ----------------------------------------------------------------------------------------------------------------
def _is_scalar(values: Any) -> bool:
    return values is None or isinstance(values, str | bytes | int | float | bool) or np.ndim(values) == 0


def _floats(values: Any, n: int, label: str) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    series = pd.Series([values] * n if _is_scalar(values) else values).reset_index(drop=True)
    if len(series) != n:
        raise ValueError(f"{label} has {len(series)} values, value has {n}")
    try:
        return pd.to_numeric(series, errors="raise").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{label} must be numeric: {error}") from error


def _texts(values: Any, n: int, label: str) -> pd.Series:
    """Strings per record ('' for missing), as a Series with a 0..n-1 index."""
    if values is None:
        return pd.Series([""] * n, dtype=object)
    series = pd.Series([values] * n if _is_scalar(values) else values, dtype=object).reset_index(drop=True)
    if len(series) != n:
        raise ValueError(f"{label} has {len(series)} values, value has {n}")
    return series.where(series.notna(), "").astype(str)


def _mapped_texts(values: Any, n: int, label: str, normalise) -> np.ndarray:
    """`normalise` (a function of a str Series) applied to the text of every record (as `_texts`), computed once per
    distinct value: millions of records carry few distinct test codes, units or indicators."""
    if values is None or _is_scalar(values):
        return _texts(values, n, label).pipe(normalise).to_numpy(dtype=object)
    codes, distinct = pd.factorize(pd.Series(values).reset_index(drop=True), use_na_sentinel=True)
    if len(codes) != n:
        raise ValueError(f"{label} has {len(codes)} values, value has {n}")
    texts = normalise(pd.Series([*(str(v) for v in distinct), ""], dtype=object)).to_numpy(dtype=object)
    return texts[np.where(codes < 0, len(distinct), codes)]


def _tristate(values: Any, n: int) -> np.ndarray:
    """1 (True), 0 (False) or -1 (unknown) per record."""
    if values is None:
        return np.full(n, -1, dtype=np.int8)
    if isinstance(values, np.ndarray) and values.dtype == bool:
        if len(values) != n:
            raise ValueError(f"anticoagulated has {len(values)} values, value has {n}")
        return values.astype(np.int8)
    text = pd.Series(_mapped_texts(values, n, "anticoagulated", lambda t: t.str.strip().str.upper()))
    out = np.full(n, -1, dtype=np.int8)
    out[text.isin(_TRUE_TEXT).to_numpy()] = 1
    out[text.isin(_FALSE_TEXT).to_numpy()] = 0
    bad = (out == -1) & ~text.isin(("", "NAN", "NONE", "<NA>")).to_numpy()
    if bad.any():
        raise ValueError(f"anticoagulated must be true, false or missing; got {text[bad].iloc[0]!r}")
    return out


@dataclass(frozen=True)
class _Records:
    """The inputs as aligned arrays (see grade_records)."""

    test: np.ndarray
    value: np.ndarray
    unit_raw: np.ndarray  # normalised spelling
    unit: np.ndarray  # canonical unit or ""
    lln: np.ndarray
    uln: np.ndarray
    baseline: np.ndarray
    pct_change: np.ndarray
    abnormal_high: np.ndarray
    abnormal_low: np.ndarray
    anticoagulated: np.ndarray


def grade_records(
    criteria: CtcaeCriteria,
    *,
    test: Any,
    value: Any,
    unit: Any = None,
    lln: Any = None,
    uln: Any = None,
    baseline: Any = None,
    baseline_indicator: Any = None,
    anticoagulated: Any = None,
    pct_change: Any = None,
    term: Any = None,
    high_indicators: Sequence[str] = ("HIGH",),
    low_indicators: Sequence[str] = ("LOW",),
) -> pd.DataFrame:
    """CTCAE grades of laboratory records: one row per record and term that grades its test.

    Inputs are aligned array-likes, one element per record (None: all missing; a scalar other than `value` applies
    to every record):
    - test: test code (e.g. ALT, K; matched ignoring case); value: the result as reported (float, NaN = none);
    - unit: the unit as reported; lln, uln: the lab's limits in that unit (NaN when the lab gave none);
    - baseline: the baseline value in that unit; baseline_indicator: its range flag (NORMAL/LOW/HIGH or missing),
      abnormal when in `high_indicators` (terms graded upwards) or `low_indicators` (downwards);
    - anticoagulated: True/False/missing (missing = unknown: both INR rules, worst case);
    - pct_change: percent change from baseline (if None: 100 x (value - baseline) / baseline);
    - term: optional, the one term to grade per record (CTCAE name, any case), as admiral's ATOXDSCH/ATOXDSCL:
      then there is exactly one row per record and a record without a (known) term gets a missing grade.

    Returns GRADE_COLUMNS sorted by record, then term in file order: record (position in the inputs), term,
    direction (high/low), test, grade (nullable Int8, 0-4), reason (empty when graded), criterion (the deciding
    criterion, empty for grade 0 and missing), lower_bound (a higher criterion could not be evaluated). Without
    `term`, records whose test no term grades give no row. Vectorised: loops run over terms and criteria only.
    """
    if _is_scalar(value):
        raise ValueError("value must hold one element per record")
    n = len(pd.Series(value))
    tests = _mapped_texts(test, n, "test", lambda t: t.str.strip().str.upper())
    values = _floats(value, n, "value")
    unit_raw = pd.Series(_mapped_texts(unit, n, "unit", lambda t: t.str.replace(r"\s+", "", regex=True).str.casefold()))
    canonical = unit_raw.map(dict(criteria.unit_spellings)).fillna("").to_numpy(dtype=object)
    base = _floats(baseline, n, "baseline")
    if pct_change is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            pchg = np.where(base != 0, 100.0 * (values - base) / base, np.nan)
    else:
        pchg = _floats(pct_change, n, "pct_change")
    indicator = pd.Series(
        _mapped_texts(baseline_indicator, n, "baseline_indicator", lambda t: t.str.strip().str.upper())
    )
    records = _Records(
        test=tests,
        value=values,
        unit_raw=unit_raw.to_numpy(dtype=object),
        unit=canonical,
        lln=_floats(lln, n, "lln"),
        uln=_floats(uln, n, "uln"),
        baseline=base,
        pct_change=pchg,
        abnormal_high=indicator.isin([h.strip().upper() for h in high_indicators]).to_numpy(),
        abnormal_low=indicator.isin([h.strip().upper() for h in low_indicators]).to_numpy(),
        anticoagulated=_tristate(anticoagulated, n),
    )
    requested = None
    if term is not None:
        requested = _mapped_texts(term, n, "term", lambda t: t.str.strip().str.casefold())

    parts: list[_Part] = []
    names = criteria.term_names()
    for order, name in enumerate(names):
        entries = criteria.entries(name)
        all_tests = sorted({t for e in entries for t in e.tests})
        if requested is None:
            rows = np.flatnonzero(np.isin(tests, all_tests))
        else:
            rows = np.flatnonzero(requested == name.casefold())
        grade = np.full(len(rows), -1, dtype=np.int8)
        reason = np.full(len(rows), TEST_NOT_GRADED, dtype=object)
        deciding = np.full(len(rows), "", dtype=object)
        lower = np.zeros(len(rows), dtype=bool)
        claimed = np.zeros(len(rows), dtype=bool)
        for entry in entries:
            # Entries of one term may share a test only for disjoint units: an entry writes the rows whose unit it
            # grades, and its reason (no value, unit not graded) only where no other entry grades the row.
            mine = np.isin(tests[rows], entry.tests)
            g, r, c, lb = _grade_entry(entry, rows[mine], records)
            claim = np.zeros(len(rows), dtype=bool)
            claim[mine] = entry.units is None or np.isin(records.unit[rows[mine]], sorted(entry.units))
            write = mine & (claim | ~claimed)
            at = write[mine]
            grade[write], reason[write], deciding[write], lower[write] = g[at], r[at], c[at], lb[at]
            claimed |= claim
        parts.append(_Part(rows, order, name, entries[0].direction, tests[rows], grade, reason, deciding, lower))
    if requested is not None:
        known = np.isin(requested, [nm.casefold() for nm in names])
        rows = np.flatnonzero(~known)
        reason = np.where(requested[rows] == "", NO_TERM, UNKNOWN_TERM).astype(object)
        parts.append(
            _Part(
                rows,
                len(names),
                _texts(term, n, "term").to_numpy(dtype=object)[rows],
                "",
                tests[rows],
                np.full(len(rows), -1, dtype=np.int8),
                reason,
                np.full(len(rows), "", dtype=object),
                np.zeros(len(rows), dtype=bool),
            )
        )
    return _grade_frame(parts)


@dataclass(frozen=True)
class _Part:
    """The graded rows of one term (or of the records without a known term): aligned arrays, term and direction
    one text for all rows or one per row."""

    rows: np.ndarray
    order: int
    term: Any
    direction: str
    tests: np.ndarray
    grade: np.ndarray
    reason: np.ndarray
    deciding: np.ndarray
    lower: np.ndarray


def _grade_frame(parts: Sequence[_Part]) -> pd.DataFrame:
    """The GRADE_COLUMNS frame of the parts, sorted by record, then the parts' order: each column concatenated and
    put in order once (not a frame per part, concatenated, sorted and reindexed: 5 million rows at 100,000
    subjects)."""
    record = np.concatenate([p.rows.astype(np.int64) for p in parts]) if parts else np.zeros(0, np.int64)
    order = np.concatenate([np.full(len(p.rows), p.order, dtype=np.int64) for p in parts]) if parts else record
    sort = np.lexsort((order, record))  # (record, order) pairs are unique: one row per record and term
    del order

    def column(values: Callable[[_Part], Any], dtype: Any) -> np.ndarray:
        pieces = []
        for part in parts:
            value = values(part)
            pieces.append(np.full(len(part.rows), value, dtype=object) if isinstance(value, str)
                          else np.asarray(value, dtype=dtype))  # fmt: skip
        return np.concatenate(pieces)[sort] if pieces else np.zeros(0, dtype=dtype)

    def text(values: Callable[[_Part], Any]) -> pd.Categorical:
        """A text column as a categorical (categories in order of first appearance, part by part): a part's one
        text is one code, a part's texts per row are coded once per distinct text (5 million rows of a few
        distinct texts at 100,000 subjects: small codes, not 5 million references)."""
        names: dict[str, int] = {}
        pieces = []
        for part in parts:
            value = values(part)
            if isinstance(value, str):
                pieces.append(np.full(len(part.rows), names.setdefault(value, len(names)), dtype=np.int32))
                continue
            codes, uniques = pd.factorize(np.asarray(value, dtype=object), use_na_sentinel=True)
            lookup = np.array([names.setdefault(u, len(names)) for u in uniques.tolist()] + [-1], dtype=np.int32)
            pieces.append(lookup[codes])  # code -1 (missing) stays -1
        codes = np.concatenate(pieces)[sort] if pieces else np.zeros(0, dtype=np.int32)
        return pd.Categorical.from_codes(codes, categories=pd.Index(list(names)))

    grade = column(lambda p: p.grade, np.int8)
    missing = grade < 0
    return pd.DataFrame(
        {
            "record": record[sort],
            "term": text(lambda p: p.term),
            "direction": text(lambda p: p.direction),
            "test": text(lambda p: p.tests),
            "grade": pd.arrays.IntegerArray(np.where(missing, 0, grade).astype(np.int8), missing),
            "reason": text(lambda p: p.reason),
            "criterion": text(lambda p: p.deciding),
            "lower_bound": column(lambda p: p.lower, bool),
        },
        copy=False,
    )


def _condition(name: str, rows: np.ndarray, rec: _Records, direction: str) -> tuple[np.ndarray, np.ndarray]:
    """(holds, evaluable) of a condition for the rows."""
    known = np.ones(len(rows), dtype=bool)
    abnormal = (rec.abnormal_high if direction == "high" else rec.abnormal_low)[rows]
    if name == "baseline_normal":
        return ~abnormal, known
    if name == "baseline_abnormal":
        return abnormal, known
    if name == "anticoagulated":  # unknown status (-1) satisfies both: worst case
        return rec.anticoagulated[rows] != 0, known
    if name == "not_anticoagulated":
        return rec.anticoagulated[rows] != 1, known
    if name == "below_lln":
        return compare(rec.value[rows], rec.lln[rows], "<"), ~np.isnan(rec.lln[rows])
    if name == "above_baseline":  # the value itself > baseline ("Eosinophilia: >ULN and >Baseline")
        return compare(rec.value[rows], rec.baseline[rows], ">"), ~np.isnan(rec.baseline[rows])
    above = compare(rec.baseline[rows], rec.uln[rows], ">")  # False when either is missing: measured from ULN
    if name == "baseline_above_uln":
        return above, known
    if name == "baseline_not_above_uln":
        return ~above, known
    raise ValueError(f"unknown condition {name!r}")


def _reference(criterion: Criterion, rows: np.ndarray, rec: _Records) -> np.ndarray:
    if criterion.ref == "ULN":
        return rec.uln[rows]
    if criterion.ref == "LLN":
        return rec.lln[rows]
    if criterion.ref == "baseline":
        return rec.baseline[rows]
    raise ValueError(criterion.ref)


def _per_unit_amounts(criterion: Criterion, units: np.ndarray) -> np.ndarray:
    out = np.full(len(units), np.nan)
    for unit, amount in criterion.amounts:  # a loop over the criterion's few units, not over records
        out[units == unit] = amount
    return out


def _grade_entry(
    entry: CtcaeTerm, rows: np.ndarray, rec: _Records
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grade, reason, deciding criterion and lower-bound flag of the rows under one term entry."""
    n = len(rows)
    value, units = rec.value[rows], rec.unit[rows]
    reason = np.full(n, "", dtype=object)
    no_value = np.isnan(value)
    reason[no_value] = NO_VALUE
    gradable = ~no_value
    if entry.units is not None:
        unit_ok = np.isin(units, sorted(entry.units))
        no_unit = gradable & ~unit_ok
        reason[no_unit] = np.where(rec.unit_raw[rows][no_unit] == "", NO_UNIT, UNIT_NOT_GRADED)
        gradable &= unit_ok
    grade = np.zeros(n, dtype=np.int8)
    deciding = np.full(n, -1, dtype=np.int64)
    unknown_grade = np.zeros(n, dtype=np.int8)  # highest grade whose criterion could not be evaluated
    missing_refs = {key: np.zeros(n, dtype=bool) for key in MISSING_REFERENCE_REASONS}
    for index, criterion in enumerate(entry.criteria):
        applies, evaluable = np.ones(n, dtype=bool), np.ones(n, dtype=bool)
        lln_needed = np.zeros(n, dtype=bool)
        baseline_needed = np.zeros(n, dtype=bool)
        for condition in criterion.when:
            holds, known = _condition(condition, rows, rec, entry.direction)
            applies &= holds | ~known  # an unevaluable condition may hold
            evaluable &= known
            if condition == "below_lln":
                lln_needed |= ~known
            if condition == "above_baseline":
                baseline_needed |= ~known
        if criterion.ref == "pct_change":
            left, threshold = rec.pct_change[rows], np.full(n, criterion.pct)
            reference_missing = np.isnan(left)
        elif criterion.ref == "absolute":
            left, threshold = value, _per_unit_amounts(criterion, units)
            reference_missing = np.zeros(n, dtype=bool)
        else:
            reference = _reference(criterion, rows, rec)
            plus = _per_unit_amounts(criterion, units) if criterion.amounts else 0.0
            left, threshold = value, criterion.x * reference + plus
            reference_missing = np.isnan(reference)
        evaluable &= ~reference_missing
        holds = gradable & applies & evaluable & compare(left, threshold, criterion.op)
        better = holds & (criterion.grade > grade)
        grade[better] = criterion.grade
        deciding[better] = index
        if not criterion.optional:
            unknown = gradable & applies & ~evaluable
            unknown_grade[unknown] = np.maximum(unknown_grade[unknown], criterion.grade)
            if criterion.ref in missing_refs:
                missing_refs[criterion.ref] |= unknown & reference_missing
            missing_refs["LLN"] |= unknown & lln_needed
            missing_refs["baseline"] |= unknown & baseline_needed
    undetermined = gradable & (grade == 0) & (unknown_grade > 0)
    lower_bound = gradable & (grade > 0) & (unknown_grade > grade)
    for key, text in MISSING_REFERENCE_REASONS.items():  # e.g. "no_uln+no_baseline"
        add = undetermined & missing_refs[key]
        reason[add] = np.where(reason[add] == "", text, reason[add] + "+" + text)
    out_grade = np.where(gradable & ~undetermined, grade, -1).astype(np.int8)
    text = np.full(n, "", dtype=object)
    for index, criterion in enumerate(entry.criteria):
        chosen = (deciding == index) & (out_grade > 0)
        if not chosen.any():
            continue
        if criterion.units is None:
            text[chosen] = criterion.describe()
        else:
            for unit in criterion.units:
                text[chosen & (units == unit)] = criterion.describe(unit)
    return out_grade, reason, text, lower_bound
