"""Laboratory standards of the safety analysis: default reference ranges, clinically relevant directions, the Hy's
law rule and the eGFR specification from config/lab_standards.yaml, checked against config/lab_units.yaml
(k2trial.core.vocabulary.LabTest gives code, name, unit, accepted units and recording decimals), and the CTCAE terms
that grade the study's tests, from the criteria file of the configured CTCAE version (config/ctcae/,
k2trial.analysis.safety.ctcae).

`load_lab_standards` turns them into frozen objects and raises ConfigError naming the entry when they disagree (a
test without a default range, a unit the contract accepts for a graded test that the CTCAE criteria cannot grade).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from k2trial.analysis.safety.ctcae import CtcaeCriteria
from k2trial.core.errors import ConfigError
from k2trial.core.vocabulary import LabTest, lab_tests

SEXES = ("F", "M")
DIRECTIONS = ("low", "high", "both")
GRADES = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class LabStandard:
    """One test as the safety analysis uses it: the test (code, name, unit, decimals), its default range by sex,
    the clinically relevant direction(s), its panel and the margin of a significant shift."""

    test: LabTest
    ranges: Mapping[str, tuple[float, float]]  # by sex, "F" and "M" (equal when the range does not differ)
    direction: str  # low | high | both
    panel: str
    shift_margin: float  # fraction of the crossed limit (safety conclusion)

    @property
    def code(self) -> str:
        return self.test.code

    @property
    def name(self) -> str:
        return self.test.name

    @property
    def unit(self) -> str:
        return self.test.unit

    @property
    def decimals(self) -> int:
        return self.test.decimals


@dataclass(frozen=True)
class GradedTerm:
    """A CTCAE term of the criteria file that grades one of the study's tests, in one direction."""

    term: str
    param: str
    direction: str  # high (increase graded) | low


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
    tests: tuple[LabStandard, ...]  # in lab_units order
    ctcae: CtcaeCriteria  # the criteria of the configured CTCAE version
    terms: tuple[GradedTerm, ...]  # the terms that grade the study's tests, criteria-file order
    hys_law: HysLawRule
    egfr: EgfrSpec

    @property
    def ctcae_version(self) -> str:
        return self.ctcae.version

    @property
    def lab_params(self) -> tuple[str, ...]:
        return tuple(t.code for t in self.tests)

    @property
    def all_params(self) -> tuple[str, ...]:
        """Lab params in lab_units order, then the derived eGFR."""
        return (*self.lab_params, self.egfr.param)

    def test(self, code: str) -> LabStandard:
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


def graded_terms(criteria: CtcaeCriteria, params: Sequence[str]) -> tuple[GradedTerm, ...]:
    """The (term, test) pairs of the criteria that grade one of `params`: by test in `params` order (lab_units
    order), then in criteria-file order (Anemia before Hemoglobin increased for HGB)."""
    seen: dict[tuple[str, str], GradedTerm] = {}
    for param in params:
        for entry in criteria.terms:
            if param in entry.tests:
                seen.setdefault((entry.term, param), GradedTerm(entry.term, param, entry.direction))
    return tuple(seen.values())


def load_lab_standards(
    lab_units: Mapping[str, Any], lab_standards: Mapping[str, Any], ctcae: CtcaeCriteria
) -> LabStandards:
    """Build the safety standards from the parsed YAML files and the CTCAE criteria, checking them against each other.

    Raises ConfigError naming the entry when a test of lab_units has no default range, lab_standards.yaml still has
    a `ctcae` section (the criteria are config/ctcae/ now), or a unit that lab_units.yaml accepts for a graded test is
    one the CTCAE criteria cannot grade (values are graded in the unit they are reported in).
    """
    if "ctcae" in lab_standards:
        raise ConfigError(
            "config/lab_standards.yaml: the 'ctcae' section is no longer read: the CTCAE criteria are the file of the "
            "configured version in config/ctcae/ (config safety.ctcae_version)"
        )
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
    known = lab_tests(lab_units)
    tests = []
    for code in unit_tests:
        if code not in std_tests:
            raise ConfigError(f"config/lab_standards.yaml: test {code} has no default reference range")
        std = std_tests[code]
        raw_range = _need(std, "range", f"tests.{code}")
        if raw_range is None:  # no default range: the lab's own limits only (a test a study's lab panel declares)
            ranges = {sex: (np.nan, np.nan) for sex in SEXES}
        elif isinstance(raw_range, Mapping):
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
            LabStandard(
                test=known[code],
                ranges=ranges,
                direction=direction,
                panel=str(panel_of.get(code, "other")),
                shift_margin=float(margins.get(code, default_margin)),
            )
        )
    by_code = {t.code: t for t in tests}
    terms = graded_terms(ctcae, tuple(by_code))
    # A unit the contract accepts for a graded test must be graded by at least one of the test's terms; a term
    # that cannot grade it (haemoglobin increased, in g/dL only, for haemoglobin in mmol/L, which anaemia grades)
    # gives those values no grade, reason unit_not_graded.
    for param in dict.fromkeys(t.param for t in terms):
        refused: dict[str, list[tuple[str, frozenset[str]]]] = {}
        gradable: set[str] = set()
        for graded in (t for t in terms if t.param == param):
            entries = [e for e in ctcae.entries(graded.term) if param in e.tests]
            if any(e.units is None for e in entries):  # relative criteria only: any unit
                gradable |= set(by_code[param].test.units)
                continue
            allowed = frozenset().union(*(e.units for e in entries))
            for unit in by_code[param].test.units:
                if ctcae.canonical_unit(unit) in allowed:
                    gradable.add(unit)
                else:
                    refused.setdefault(unit, []).append((graded.term, allowed))
        for unit, why in refused.items():
            if unit not in gradable:
                term, allowed = why[0]
                raise ConfigError(
                    f"CTCAE v{ctcae.version} criteria: term {term} cannot grade {param} reported in "
                    f"{unit}, a unit config/lab_units.yaml accepts (criteria units: {', '.join(sorted(allowed))})"
                )

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
    return LabStandards(tuple(tests), ctcae, terms, hys, egfr)
