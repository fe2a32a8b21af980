"""The study's vocabulary, read once from the codebook, the lab units and the study config: the diary items and the
composite, visits (diary, clinic, dosing) with their codes, labels and weeks, the end of treatment and the
off-treatment follow-up, analysis populations, laboratory tests, and the display labels of all of them. Nothing else
in the library names a diary item, a visit, a week or a population.

Sources (nothing here is a study fact of its own):
- the study config's `protocol` (config/studies/<name>.yaml; `study_codebook` and `load_vocabulary` read it): the
  diary items with labels and synonyms, the composite (or none), diary weeks, clinic visits with target day and
  window, the treatment and its end, follow-up weeks, dosing-return visits, the VAS scale and the lab panel;
- data/raw/codebook.yaml, the file format: how a visit of week k is labelled and coded (`visits.baseline`,
  `visits.week`), the accepted spellings, and the `labels` of category levels (etiology, sex);
- config/lab_units.yaml: test codes, names, standard units and recording decimals (a study config whose
  protocol.lab_panel declares its panel sees that panel's tests only: k2trial.core.lab_panel.study_lab_units);
- the study config's `populations` (names and labels, report order).

Labels: a diary item's is its protocol label ("Pain"; its name capitalised when the protocol gives none); the
composite's says how it is made ("Composite (mean of 5)"); a visit's follows the codebook's rule ("Week 4"); a
test's title is "Name (unit)".
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k2trial.core.errors import ConfigError
from k2trial.core.lab_panel import declared_panel, study_lab_units

#: The analysis code of the composite VAS (vas.csv `param`), beside the symptoms.
COMPOSITE = "composite"
#: The analysis code of the baseline visit.
BASELINE = "baseline"
#: The study config the workflow builds when --configfile names none (the Snakefile loads it), relative to the
#: repository: also where a caller that passes no protocol gets it from (`default_protocol`).
DEFAULT_STUDY_CONFIG = "config/studies/pilot2013.yaml"
#: The label of the weeks after the end of treatment in figures and tables.
OFF_TREATMENT = "off treatment"
#: The safety tables a randomised study also writes by arm (results/arms/<table>_by_arm.csv, as treated; rule
#: safety_by_arm): each arm's subjects through the one safety analysis. Here, not in k2trial.analysis.arms, because
#: the workflow reads it when it is parsed (this module imports no pandas).
SAFETY_BY_ARM = ("ae_summary", "ae_by_term", "lab_descriptives", "lab_shifts", "ctcae_worst", "hys_law")


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
    """The diary visits of a study codebook (`study_codebook`: `visits.diary`, label -> code and week), in week
    order."""
    return tuple(
        Visit(label=str(label), code=str(spec["code"]), week=int(spec["week"]))
        for label, spec in codebook["visits"]["diary"].items()
    )


def _repository_path(path: str | Path) -> Path:
    """A path as given when it exists from the working directory, else relative to the repository this package is
    installed from (for callers outside a workflow run)."""
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    return Path(__file__).resolve().parents[3] / path


def default_study_config() -> dict[str, Any]:
    """The parsed default study config (DEFAULT_STUDY_CONFIG)."""
    from k2trial.core.io import read_yaml

    return dict(read_yaml(_repository_path(DEFAULT_STUDY_CONFIG)))


def default_protocol() -> dict[str, Any]:
    """The `protocol` of the default study config."""
    return dict(default_study_config()["protocol"])


def visit_of_week(codebook: Mapping[str, Any], week: int) -> Visit:
    """The visit of a study week under the codebook's naming rule (`visits.baseline` for week 0, `visits.week`)."""
    rule = codebook["visits"]["baseline"] if int(week) == 0 else codebook["visits"]["week"]
    return Visit(
        label=str(rule["label"]).format(week=int(week)), code=str(rule["code"]).format(week=int(week)), week=int(week)
    )


def composite_items(protocol: Mapping[str, Any]) -> tuple[str, ...]:
    """The diary items the protocol's composite averages; () when the study has no composite."""
    composite = protocol["diary"].get("composite")
    return _strings(composite["items"]) if composite else ()


def _check_protocol(protocol: Mapping[str, Any]) -> None:
    """ConfigError for a protocol whose parts disagree (each message names the study config key)."""
    diary = protocol["diary"]
    items = _strings(diary["items"])
    weeks = [int(w) for w in diary["weeks"]]
    problems = []
    if items and not protocol.get("vas"):
        problems.append("protocol.vas is missing: the diary's VAS scale")
    if weeks != sorted(set(weeks)) or not weeks or weeks[0] != 0:
        problems.append(f"protocol.diary.weeks must rise from 0 without repeats, got {weeks}")
    composite = diary.get("composite")
    if composite:
        unknown = [i for i in _strings(composite["items"]) if i not in items]
        if unknown:
            problems.append(f"protocol.diary.composite.items names items not in protocol.diary.items: {unknown}")
    elif len(items) > 1:
        problems.append("protocol.diary.composite is none, but the diary has more than one item")
    clinic = [int(v["week"]) for v in protocol["clinic_visits"]]
    missing = [w for w in clinic if w not in weeks]
    if missing or not clinic or clinic[0] != 0 or clinic != sorted(set(clinic)):
        problems.append(f"protocol.clinic_visits must be diary weeks rising from 0, got {clinic}")
    dosing = [int(w) for w in protocol["dosing_visits"]]
    if any(w not in clinic for w in dosing):
        problems.append(f"protocol.dosing_visits {dosing} must be clinic visit weeks {clinic}")
    missing_dose = [k for k in ("dose_mcg", "doses_per_day") if k not in protocol["treatment"]]
    if dosing and missing_dose:
        problems.append(f"protocol.treatment: capsule counts (dosing_visits {dosing}) need {', '.join(missing_dose)}")
    end = int(protocol["treatment"]["duration_weeks"])
    follow_up = [int(w) for w in protocol["follow_up_weeks"]]
    if end not in weeks:
        problems.append(f"protocol.treatment.duration_weeks {end} is not a diary week")
    if follow_up != [w for w in weeks if w > end]:
        problems.append(
            f"protocol.follow_up_weeks {follow_up} must be the diary weeks after the end of treatment (week {end})"
        )
    if problems:
        raise ConfigError("study config: " + "; ".join(problems))


def study_codebook(
    codebook: Mapping[str, Any], protocol: Mapping[str, Any] | None = None, arms: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The codebook of one study: the file format of data/raw/codebook.yaml with the protocol's diary visits
    (`visits.diary`: label -> code and week), clinic and dosing visit labels (`visits.clinic`, `visits.dosing`),
    diary items (`symptoms`: canonical and synonyms), VAS scale (`vas`) and the range and unit of the diary's
    `vas_cm` column filled in. protocol: the study config's `protocol` (None: the default study's).

    arms: the study config's `arms` (None: a single-arm study). The columns the codebook marks `randomised: arm`
    and `randomised: stratum` exist only in a randomised study: `arm` with the levels and labels of arms.codes and
    arms.labels (required: a randomised study's subjects.csv without it is a missing column), `stratum` with the
    levels, synonyms and labels of the column named by arms.stratified_by (the etiology), only when the study
    stratifies. In a single-arm study neither column is in the contract (a file carrying one gets a warning).

    A codebook that already holds `visits.diary` (built by this function) is returned as it is.
    Raises ConfigError when the protocol's parts disagree.
    """
    if "diary" in codebook.get("visits", {}):
        return dict(codebook)
    protocol = default_protocol() if protocol is None else protocol
    _check_protocol(protocol)
    out = copy.deepcopy(dict(codebook))
    visits = out["visits"]
    diary = [visit_of_week(codebook, w) for w in protocol["diary"]["weeks"]]
    by_week = {v.week: v for v in diary}
    visits["diary"] = {v.label: {"code": v.code, "week": v.week} for v in diary}
    visits["clinic"] = [by_week[int(v["week"])].label for v in protocol["clinic_visits"]]
    visits["clinic_schedule"] = {
        by_week[int(v["week"])].label: {"day": int(v["day"]), "window_days": int(v["window_days"])}
        for v in protocol["clinic_visits"]
    }
    visits["dosing"] = [by_week[int(w)].label for w in protocol["dosing_visits"]]
    items = protocol["diary"]["items"]
    out["symptoms"] = {
        "canonical": [str(i) for i in items],
        "synonyms": {str(i): _strings((spec or {}).get("synonyms")) for i, spec in items.items()},
        "labels": {str(i): str((spec or {}).get("label") or str(i).capitalize()) for i, spec in items.items()},
    }
    vas = protocol.get("vas")
    if vas:
        out["vas"] = {
            "min": float(vas["min"]),
            "max": float(vas["max"]),
            "unit": str(vas["unit"]),
            "decimals": int(vas["decimals"]),
        }
        column = out["files"]["symptom_diary.csv"]["columns"]["vas_cm"]
        column.update(min=float(vas["min"]), max=float(vas["max"]), unit=str(vas["unit"]))
    # a safety-only study has no diary, a study without capsule counts no dosing records: empty files are right
    if not items:
        out["files"]["symptom_diary.csv"]["may_be_empty"] = True
    if not protocol["dosing_visits"]:
        out["files"]["dosing.csv"]["may_be_empty"] = True
    _study_columns(out["files"], protocol)
    for spec in out["files"].values():
        _randomised_columns(spec.get("columns") or {}, arms)
    return out


def _study_columns(files: dict[str, Any], protocol: Mapping[str, Any]) -> None:
    """The contract columns a study changes (`study_codebook`): its record keys (protocol.record_keys: file ->
    column, an integer key of every record besides subject_id), the columns it does not collect
    (protocol.not_collected: not required) and its disposition levels besides the codebook's
    (protocol.status_levels)."""
    for file, column in (protocol.get("record_keys") or {}).items():
        if file not in files:
            raise ConfigError(f"study config protocol.record_keys: {file!r} is no raw file of the codebook")
        files[file]["columns"][str(column)] = {"type": "integer", "required": True}
        files[file]["key"] = ["subject_id", str(column)]
    for file, columns in (protocol.get("not_collected") or {}).items():
        known = (files.get(file) or {}).get("columns") or {}
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise ConfigError(f"study config protocol.not_collected: {file} has no column(s) {unknown}")
        for column in columns:
            known[column]["required"] = False
    levels = files["subjects.csv"]["columns"]["status"]["levels"]
    levels += [str(s) for s in protocol.get("status_levels") or () if str(s) not in levels]


def _randomised_columns(columns: dict[str, Any], arms: Mapping[str, Any] | None) -> None:
    """Fill in (or remove) the columns of a file that only a randomised study has (`study_codebook`)."""
    for name, cspec in list(columns.items()):
        kind = cspec.pop("randomised", None) if isinstance(cspec, dict) else None
        if kind is None:
            continue
        stratified_by = (arms or {}).get("stratified_by")
        recorded = {"stratum": bool(stratified_by), "actual_arm": bool((arms or {}).get("actual_arm"))}
        if not arms or not recorded.get(kind, True):
            del columns[name]
        elif kind in ("arm", "actual_arm"):
            codes = _strings(arms.get("codes"))
            labels = {str(k): str(v) for k, v in (arms.get("labels") or {}).items()}
            missing = [c for c in codes if c not in labels]
            if len(codes) < 2 or len(set(codes)) != len(codes) or missing:
                raise ConfigError(
                    "study config arms: at least two distinct codes, each with a label, are needed "
                    f"(codes {list(codes)}, no label for {missing})"
                )
            if arms.get("control") is not None and str(arms["control"]) not in codes:
                raise ConfigError(
                    f"study config arms.control {arms['control']!r} is not one of arms.codes {list(codes)}"
                )
            # subjects never randomised (screen failures) carry one of arms.not_randomised (no arm in the analysis)
            outside = [c for c in _strings(arms.get("not_randomised")) if c not in codes]
            levels = [*codes, *outside]
            cspec.update(levels=levels, labels={c: labels[c] if c in codes else labels.get(c, c) for c in levels})
        elif kind == "stratum":
            source = columns.get(str(stratified_by))
            if source is None or source.get("type") != "category":
                raise ConfigError(
                    f"study config arms.stratified_by {stratified_by!r} is not a category column of this file"
                )
            cspec.update({k: copy.deepcopy(source[k]) for k in ("levels", "synonyms", "labels") if k in source})
        else:
            raise ConfigError(f"codebook: column {name}: randomised must be arm, actual_arm or stratum, got {kind!r}")


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
    symptom_labels: Mapping[str, str] = field(default_factory=dict)
    #: the study week treatment ends (protocol.treatment.duration_weeks); later diary weeks are off treatment
    end_of_treatment_week: int | None = None
    lab_panel: tuple[str, ...] = ()
    #: a randomised study's arm codes in report order, their labels and the control arm (config `arms`); () and
    #: None in a single-arm study
    arms: tuple[str, ...] = ()
    arm_labels: Mapping[str, str] = field(default_factory=dict)
    control_arm: str | None = None
    #: the diary's VAS scale (protocol.vas: min, max, unit); None in a safety-only study
    vas_scale: tuple[float, float, str] | None = None

    @property
    def randomised(self) -> bool:
        return bool(self.arms)

    @property
    def vas_axis(self) -> str:
        """How axes name the VAS: "VAS (cm, 0-10)", from the protocol's scale."""
        low, high, unit = self.vas_scale or (float("nan"), float("nan"), "")
        return f"VAS ({unit}, {low:g}-{high:g})"

    def arm_label(self, arm: Any) -> str:
        return self.arm_labels.get(str(arm), str(arm))

    # ---------------------------------------------------------------------------------------------- params
    @property
    def has_composite(self) -> bool:
        return bool(self.composite_symptoms)

    @property
    def params(self) -> tuple[str, ...]:
        """VAS parameters in report order: the diary items, then the composite (when the study has one)."""
        return (*self.symptoms, COMPOSITE) if self.has_composite else self.symptoms

    @property
    def primary_param(self) -> str:
        """The VAS parameter of the primary endpoint: the composite, or the single diary item of a study without."""
        return COMPOSITE if self.has_composite else self.symptoms[0]

    def param_label(self, param: Any, short: bool = False) -> str:
        """ "Tingling"; "Composite (mean of 5)" ("Composite" when short). Unknown codes are shown as they are."""
        if param == COMPOSITE:
            kind = "Composite"
            return kind if short else f"{kind} ({self.composite_method} of {len(self.composite_symptoms)})"
        text = str(param)
        if text in self.symptom_labels:
            return self.symptom_labels[text]
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
        """The last diary visit (the end of follow-up; of treatment when the study has no follow-up)."""
        return max(self.visits, key=lambda v: v.week)

    @property
    def end_of_treatment(self) -> Visit:
        """The diary visit at the end of treatment (the final visit when the protocol gives no end)."""
        if self.end_of_treatment_week is None:
            return self.final_visit
        return next(v for v in self.visits if v.week == self.end_of_treatment_week)

    @property
    def follow_up_visits(self) -> tuple[Visit, ...]:
        """The diary visits after the end of treatment (off treatment), by week."""
        end = self.end_of_treatment.week
        return tuple(v for v in self.visits if v.week > end)

    def off_treatment(self, visit: str) -> bool:
        """Whether a visit code lies in the off-treatment follow-up."""
        return any(v.code == visit for v in self.follow_up_visits)

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


def visit_windows(protocol: Mapping[str, Any]) -> dict[str, Any]:
    """The visit windows validation checks (k2trial.data.validation.validate_dataset): the diary window
    (`diary_days`; week k is expected at first dose + 7k days), every clinic visit with its target day and window
    (`clinic_visits`), and how long before the first dose the baseline may be."""
    return {
        "diary_days": int(protocol["diary"]["window_days"]),
        "clinic_visits": [dict(v) for v in protocol["clinic_visits"]],
        "baseline_days_before_first_dose": int(protocol["baseline_days_before_first_dose"]),
    }


def composite_sources(protocol: Mapping[str, Any]) -> dict[str, Any] | None:
    """The protocol's composite in the form the workflow's jobs are given (`symptoms`, `method`,
    `require_all_symptoms`); None for a study without a composite."""
    composite = protocol["diary"].get("composite")
    if not composite:
        return None
    return {
        "symptoms": list(_strings(composite["items"])),
        "method": str(composite["method"]),
        "require_all_symptoms": bool(composite["require_all_items"]),
    }


def vocabulary_sources(config: Mapping[str, Any]) -> dict[str, Any]:
    """What the vocabulary reads from a (merged) workflow config, as the jobs and the notebooks are given it:
    `composite` (`composite_sources`), `populations`, and `protocol` unless it is the default study's
    (DEFAULT_STUDY_CONFIG, which `load_vocabulary` reads when `protocol` is absent), and `arms` in a randomised
    study."""
    protocol = config["protocol"]
    sources: dict[str, Any] = {"composite": composite_sources(protocol), "populations": config["populations"]}
    if protocol != default_protocol():
        sources["protocol"] = protocol
    if config.get("arms"):
        sources["arms"] = config["arms"]
    return sources


def load_vocabulary(codebook: Mapping[str, Any], lab_units: Mapping[str, Any], config: Mapping[str, Any]) -> Vocabulary:
    """The vocabulary from the parsed codebook.yaml, lab_units.yaml and the study config's `protocol` and
    `populations` (a mapping with at least `populations`: the whole config, the rule's params or the notebooks'
    view; without `protocol`, the default study's). A `composite` key, when given, must be the protocol's
    (`composite_sources`).

    The tests are those of the study's lab panel when protocol.lab_panel declares one (k2trial.core.lab_panel).
    Raises ConfigError when the protocol's parts disagree, the composite is not the protocol's, or the declared lab
    panel cannot be used.
    """
    protocol = config.get("protocol") or default_protocol()
    lab_units = study_lab_units(lab_units, protocol)
    arms = config.get("arms") or None
    codebook = study_codebook(codebook, protocol, arms)
    symptoms = _strings(codebook["symptoms"]["canonical"])
    composite = composite_sources(protocol)
    if "composite" in config and config["composite"] != composite:
        raise ConfigError(f"config composite {config['composite']!r} is not the protocol's composite {composite!r}")
    composite_symptoms = _strings(composite["symptoms"]) if composite else ()
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
        composite_method=str(composite["method"]) if composite else "",
        visits=diary_visits(codebook),
        clinic_visit_labels=_strings(visits["clinic"]),
        dosing_visit_labels=_strings(visits["dosing"]),
        populations=tuple(str(p) for p in populations),
        population_labels={str(p): str(label) for p, label in populations.items()},
        tests=lab_tests(lab_units),
        level_labels=level_labels,
        symptom_labels=dict(codebook["symptoms"]["labels"]),
        end_of_treatment_week=int(protocol["treatment"]["duration_weeks"]),
        lab_panel=tuple(lab_units["tests"]) if declared_panel(protocol) else _strings(protocol.get("lab_panel")),
        arms=_strings(arms["codes"]) if arms else (),
        arm_labels={str(k): str(v) for k, v in (arms or {}).get("labels", {}).items()},
        control_arm=str(arms["control"]) if arms and arms.get("control") is not None else None,
        vas_scale=(
            (float(codebook["vas"]["min"]), float(codebook["vas"]["max"]), str(codebook["vas"]["unit"]))
            if codebook.get("vas")
            else None
        ),
    )


#: Small counts in words ("over eight weeks").
NUMBER_WORDS = (
    *("zero", "one", "two", "three", "four", "five", "six"),
    *("seven", "eight", "nine", "ten", "eleven", "twelve"),
)


def _and(words: Sequence[str], last: str = " and ") -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + last + words[-1] if words else ""


def protocol_words(vocabulary: Vocabulary, efficacy: Mapping[str, Any], safety: Mapping[str, Any]) -> dict[str, str]:
    """What the titles and captions of workflow/report/registry.yaml say of the protocol, by placeholder
    (`{end_of_treatment}` -> "week 8"): the primary VAS, the end of treatment, the efficacy visits, the responder
    visit, the sensitivity model's param, the visit the lab change is tested at, the clinic visits after baseline
    and the diary weeks (`fill_words` puts them in). A safety-only study (no diary item) has no efficacy words: the
    registry's efficacy entries are not reported there."""
    label = {v.code: v.label.lower() for v in vocabulary.visits}
    after = [v.label.lower() for v in vocabulary.clinic_visits[1:]]
    last = max(vocabulary.diary_weeks)
    words = {
        "end_of_treatment": vocabulary.end_of_treatment.label.lower(),
        "lab_paired_to": label[safety["paired_visits"][1]],
        "ctcae_version": str(safety["ctcae_version"]),
        "clinic_visits_after_baseline": ", ".join(after),
        "assessed_visits": _and(after, " and at "),
        "diary_weeks": f"{min(vocabulary.diary_weeks)}-{last}",
        "diary_weeks_in_words": NUMBER_WORDS[last] if last < len(NUMBER_WORDS) else str(last),
    }
    if not vocabulary.symptoms:
        return words
    primary = vocabulary.param_label(vocabulary.primary_param, short=True)
    return {
        "primary": primary.lower(),
        "Primary": primary,
        "efficacy_visits": _and([label[v] for v in efficacy["visits"]]),
        "responder_visit": label[efficacy["responders"]["visit"]],
        "model_param": vocabulary.param_label(efficacy["mixed_model"]["param"], short=True).lower(),
        **words,
    }


def fill_words(value: Any, words: Mapping[str, str]) -> Any:
    """`value` (a registry entry: mappings, lists, text) with every `{placeholder}` of `words` in its text replaced."""
    if isinstance(value, str):
        for key, text in words.items():
            value = value.replace("{" + key + "}", text)
        return value
    if isinstance(value, Mapping):
        return {k: fill_words(v, words) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_words(v, words) for v in value]
    return value
