"""The study's vocabulary, read once from the codebook, the lab units and the configuration: symptoms and the
composite, visits (diary, clinic, dosing) with their codes, labels and weeks, analysis populations, laboratory tests,
and the display labels of all of them. Nothing else in the library names a symptom, a visit or a population.

Sources (nothing here is a study fact of its own):
- data/raw/codebook.yaml: `symptoms.canonical`, `visits` (diary visits with code and week; clinic and dosing visit
  labels), and the `labels` of category levels (etiology, sex);
- config/lab_units.yaml: test codes, names, standard units and recording decimals;
- config/config.yaml: `composite` (which symptoms, how combined) and `populations` (names and labels, report order).

Labels follow rules rather than lists: a symptom's label is its name capitalised ("Tingling"); the composite's says
how it is made ("Composite (mean of 5)"); a visit's is its codebook label ("Week 4"); a test's title is
"Name (unit)".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from k2trial.core.errors import ConfigError

#: The analysis code of the composite VAS (vas.csv `param`), beside the symptoms.
COMPOSITE = "composite"
#: The analysis code of the baseline visit.
BASELINE = "baseline"


@dataclass(frozen=True)
class Visit:
    """A visit: its label as written in clean tables ("Week 4"), its analysis code ("week4") and its study week."""

    label: str
    code: str
    week: int


@dataclass(frozen=True)
class LabTest:
    """A laboratory test of config/lab_units.yaml: standard `unit`, accepted `units` with factors
    (standard = reported x factor), aliases, and the `decimals` the standard value is recorded to."""

    code: str
    name: str
    unit: str
    decimals: int
    aliases: tuple[str, ...] = ()
    units: Mapping[str, float] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """ "Name (unit)", as tables and figures label the test."""
        return f"{self.name} ({self.unit})"


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in (values or ()))


def diary_visits(codebook: Mapping[str, Any]) -> tuple[Visit, ...]:
    """The diary visits of the codebook (`visits.diary`: label -> code and week), in codebook order."""
    return tuple(
        Visit(label=str(label), code=str(spec["code"]), week=int(spec["week"]))
        for label, spec in codebook["visits"]["diary"].items()
    )


def lab_tests(lab_units: Mapping[str, Any]) -> dict[str, LabTest]:
    """Every test of lab_units.yaml by code, in file order. Raises ConfigError when a test's standard unit is not
    among its accepted units."""
    tests = {
        str(code): LabTest(
            code=str(code),
            name=str(spec["name"]),
            unit=str(spec["unit"]),
            decimals=int(spec["decimals"]),
            aliases=_strings(spec.get("aliases")),
            units={str(u): float(f) for u, f in spec["units"].items()},
        )
        for code, spec in lab_units["tests"].items()
    }
    for test in tests.values():
        if test.unit not in test.units:
            raise ConfigError(
                f"config/lab_units.yaml: the standard unit {test.unit!r} of {test.code} is not among its units"
            )
    return tests


@dataclass(frozen=True)
class Vocabulary:
    """Symptoms, composite, visits, populations and lab tests with their display labels (see the module docstring)."""

    symptoms: tuple[str, ...]
    composite_symptoms: tuple[str, ...]
    composite_method: str
    visits: tuple[Visit, ...]
    clinic_visit_labels: tuple[str, ...]
    dosing_visit_labels: tuple[str, ...]
    populations: tuple[str, ...]
    population_labels: Mapping[str, str]
    tests: Mapping[str, LabTest]
    level_labels: Mapping[str, Mapping[str, str]]

    # ---------------------------------------------------------------------------------------------- params
    @property
    def params(self) -> tuple[str, ...]:
        """VAS parameters in report order: the symptoms, then the composite."""
        return (*self.symptoms, COMPOSITE)

    def param_label(self, param: Any, short: bool = False) -> str:
        """ "Tingling"; "Composite (mean of 5)" ("Composite" when short). Unknown codes are shown as they are."""
        if param == COMPOSITE:
            kind = "Composite"
            return kind if short else f"{kind} ({self.composite_method} of {len(self.composite_symptoms)})"
        text = str(param)
        return text.capitalize() if text in self.symptoms else text

    @property
    def param_labels(self) -> dict[str, str]:
        return {p: self.param_label(p) for p in self.params}

    # ---------------------------------------------------------------------------------------------- visits
    @property
    def visit_codes(self) -> tuple[str, ...]:
        """Diary visit codes by study week (baseline, week1, ...)."""
        return tuple(v.code for v in self.visits)

    @property
    def visit_labels(self) -> dict[str, str]:
        """Visit code -> label ("week4" -> "Week 4")."""
        return {v.code: v.label for v in self.visits}

    @property
    def visit_weeks(self) -> dict[str, int]:
        """Visit code -> study week."""
        return {v.code: v.week for v in self.visits}

    @property
    def diary_weeks(self) -> tuple[int, ...]:
        return tuple(v.week for v in self.visits)

    def visit(self, code: str) -> Visit:
        for visit in self.visits:
            if visit.code == code:
                return visit
        raise KeyError(f"unknown visit code {code!r}")

    def _by_label(self, labels: Sequence[str]) -> tuple[Visit, ...]:
        by_label = {v.label: v for v in self.visits}
        return tuple(by_label[label] for label in labels)

    @property
    def clinic_visits(self) -> tuple[Visit, ...]:
        """The clinic visits (labs), baseline first."""
        return self._by_label(self.clinic_visit_labels)

    @property
    def clinic_visit_codes(self) -> tuple[str, ...]:
        return tuple(v.code for v in self.clinic_visits)

    @property
    def clinic_weeks(self) -> tuple[int, ...]:
        return tuple(v.week for v in self.clinic_visits)

    @property
    def final_visit(self) -> Visit:
        """The last diary visit (end of treatment)."""
        return max(self.visits, key=lambda v: v.week)

    # ---------------------------------------------------------------------------------------------- populations
    def population_label(self, population: Any) -> str:
        return self.population_labels.get(str(population), str(population))

    # ---------------------------------------------------------------------------------------------- labels
    def level_label(self, column: str, level: Any) -> str:
        """Display label of a category level of the codebook ("b12_deficiency" -> "B12 deficiency")."""
        return self.level_labels.get(column, {}).get(str(level), str(level))

    def test_title(self, code: Any) -> str:
        test = self.tests.get(str(code))
        return test.title if test else str(code)


def load_vocabulary(codebook: Mapping[str, Any], lab_units: Mapping[str, Any], config: Mapping[str, Any]) -> Vocabulary:
    """The vocabulary from the parsed codebook.yaml, lab_units.yaml and the config sections `composite` and
    `populations` (a mapping with at least those keys: the whole config or the rule's params).

    Raises ConfigError when the composite names a symptom the codebook does not have.
    """
    symptoms = _strings(codebook["symptoms"]["canonical"])
    composite = config["composite"]
    composite_symptoms = _strings(composite["symptoms"])
    unknown = [s for s in composite_symptoms if s not in symptoms]
    if unknown:
        raise ConfigError(f"config composite.symptoms names symptoms not in the codebook: {', '.join(unknown)}")
    populations = config["populations"]
    level_labels: dict[str, dict[str, str]] = {}
    for spec in codebook["files"].values():
        for column, cspec in (spec.get("columns") or {}).items():
            if cspec.get("labels"):
                level_labels[str(column)] = {str(k): str(v) for k, v in cspec["labels"].items()}
    visits = codebook["visits"]
    return Vocabulary(
        symptoms=symptoms,
        composite_symptoms=composite_symptoms,
        composite_method=str(composite["method"]),
        visits=diary_visits(codebook),
        clinic_visit_labels=_strings(visits["clinic"]),
        dosing_visit_labels=_strings(visits["dosing"]),
        populations=tuple(str(p) for p in populations),
        population_labels={str(p): str(label) for p, label in populations.items()},
        tests=lab_tests(lab_units),
        level_labels=level_labels,
    )
