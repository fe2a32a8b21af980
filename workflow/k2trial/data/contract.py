"""The raw-data contract as Python objects, and the normalisers that read raw text into canonical values.

The contract lives in two YAML files: `data/raw/codebook.yaml` (files, columns, types, accepted variants)
and `config/lab_units.yaml` (test codes, aliases, units and conversion factors; only the tests of the study's lab
panel when its config declares one: k2trial.core.lab_panel); the visits, diary items and VAS
scale it checks are the study's protocol (the study config's `protocol`, filled into the codebook by
k2trial.core.vocabulary.study_codebook). `load_contract` turns them into frozen dataclasses; `read_contract` reads
the two files first.

A dataset may declare its own subject-ID pattern and sites in its `dataset.yaml` (DECLARATION_KEYS):
`declaration_problems` checks such declarations, `apply_declarations` returns the contract with them in force
(the codebook's `subject_id` and `sites` are the defaults), and `declarations_record` says which are in force.

Normalisers take a column of raw text (str, "" = missing) and return a `NormalisedColumn`. They work
on the distinct values of the column, never per row: a diary column of 4.5 million cells has a few
hundred distinct values, so the work is proportional to the distinct values plus one integer take.
Each distinct value gets a status:

    "ok"        already canonical
    "missing"   empty after stripping whitespace
    "invalid"   not readable under the contract (a validation error; `detail` says why)
    a fix rule  a variant the contract accepts (e.g. "decimal_comma", "subject_id_spelling"):
                the cleaning step writes the canonical text and logs the change
    "value_out_of_range"  a readable number outside the contract's plausible range: cleaning sets it
                missing and raises a query
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from k2trial.core.errors import ConfigError
from k2trial.core.io import FLOAT_FORMAT, read_yaml
from k2trial.core.lab_panel import PANEL_KEY, panel_codes, study_lab_units
from k2trial.core.vocabulary import LabTest, Visit, default_protocol, diary_visits, lab_tests, study_codebook

# Statuses of a distinct raw value (see module docstring).
OK = "ok"
MISSING = "missing"
INVALID = "invalid"
OUT_OF_RANGE = "value_out_of_range"
# Fix rules: the raw value is a variant the contract maps to a canonical value.
FIX_WHITESPACE = "whitespace"
FIX_SUBJECT_ID = "subject_id_spelling"
FIX_CATEGORY = "category_spelling"
FIX_YES_NO = "yes_no_spelling"
FIX_VISIT = "visit_label"
FIX_SYMPTOM = "symptom_label"
FIX_DECIMAL_COMMA = "decimal_comma"
FIX_DAY_FIRST = "day_first_date"
FIX_TEST_CODE = "test_code_alias"
FIX_UNIT = "unit_spelling"
FIX_RULES = (
    FIX_WHITESPACE,
    FIX_SUBJECT_ID,
    FIX_CATEGORY,
    FIX_YES_NO,
    FIX_VISIT,
    FIX_SYMPTOM,
    FIX_DECIMAL_COMMA,
    FIX_DAY_FIRST,
    FIX_TEST_CODE,
    FIX_UNIT,
)
# Rule reported when a value of a column type cannot be read.
INVALID_RULES = {
    "subject_id": "subject_id_invalid",
    "category": "category_invalid",
    "yes_no": "yes_no_invalid",
    "diary_visit": "visit_invalid",
    "clinic_visit": "visit_invalid",
    "dosing_visit": "visit_invalid",
    "symptom": "symptom_invalid",
    "number": "number_invalid",
    "integer": "integer_invalid",
    "date": "date_invalid",
    "lab_result": "lab_result_invalid",
    "test_code": "test_code_unknown",
    "lab_unit": "unit_unknown",
    "site": "site_undeclared",
}
#: Free text is never invalid (only stripped), so it has no rule above.
COLUMN_TYPES = (*INVALID_RULES, "text")

_NUMBER = r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)"
_NUMBER_RE = f"^{_NUMBER}$"
_LAB_RESULT_RE = r"^([<>]?)(\d+(?:[.,]\d*)?|[.,]\d+)$"
_ISO_DATE_RE = r"^\d{4}-\d{2}-\d{2}$"
_DAY_FIRST_RE = r"^(\d{1,2})([/-])(\d{1,2})\2(\d{4})$"
DAY_FIRST_ELSEWHERE = "day-first date from a site not declared day_first (order ambiguous)"
#: The keys of dataset.yaml that declare the dataset's own conventions, with the keys each may hold.
DECLARATION_KEYS: dict[str, tuple[str, ...]] = {"subject_id": ("pattern",), "sites": ("day_first",)}
#: The rule of a declaration in dataset.yaml that cannot be used (k2trial.data.validation RULES).
DECLARATION_INVALID = "dataset_declaration_invalid"


# --------------------------------------------------------------------------------------------------
# Contract objects
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnSpec:
    """One column of a raw CSV file. `minimum`/`maximum` bound plausible numbers (in `unit`)."""

    name: str
    type: str
    required: bool
    levels: tuple[str, ...] = ()
    synonyms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    minimum: float | None = None
    maximum: float | None = None
    unit: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """One raw CSV file: its columns in contract order and the columns that identify a record."""

    name: str
    key: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]
    may_be_empty: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.name} has no column {name!r} in the contract")


@dataclass(frozen=True)
class DatasetFileSpec:
    """dataset.yaml: keys every dataset description needs, and those needed when simulated."""

    name: str
    required_keys: tuple[str, ...]
    required_when_simulated: tuple[str, ...]


@dataclass(frozen=True)
class Contract:
    """The whole raw-data contract (codebook.yaml + lab_units.yaml)."""

    version: str
    subject_canonical_pattern: str
    subject_accepted_pattern: str
    subject_pad_width: int
    site_day_first: Mapping[str, bool]
    yes_no: Mapping[str, tuple[str, ...]]
    diary_visits: tuple[Visit, ...]
    clinic_visits: tuple[str, ...]
    dosing_visits: tuple[str, ...]
    baseline_aliases: tuple[str, ...]
    week_pattern: str
    symptoms: tuple[str, ...]
    symptom_synonyms: Mapping[str, tuple[str, ...]]
    vas_min: float
    vas_max: float
    vas_decimals: int
    tables: Mapping[str, TableSpec]
    dataset_file: DatasetFileSpec
    checksums_file: str
    unit_aliases: Mapping[str, str]
    lab_tests: Mapping[str, LabTest]
    #: The lab panel the study config declares (protocol.lab_panel as a mapping): its test codes, every one of
    #: them expected in labs.csv and no other accepted; () when the study config lists its tests (nothing expected)
    lab_panel: tuple[str, ...] = ()
    #: Where the subject-ID pattern and the sites in force were stated: "codebook.yaml" (the defaults) or the
    #: dataset's description file ("dataset.yaml"; see apply_declarations).
    subject_id_source: str = "codebook.yaml"
    sites_source: str = "codebook.yaml"

    @property
    def subject_id_declared(self) -> bool:
        """True when dataset.yaml declares the subject-ID pattern: IDs are only trimmed and upper-cased."""
        return self.subject_id_source != "codebook.yaml"

    @property
    def table_names(self) -> tuple[str, ...]:
        """The CSV files in contract order."""
        return tuple(self.tables)

    def visit(self, label: str) -> Visit:
        """The visit with this canonical label ("Baseline", "Week 4")."""
        for visit in self.diary_visits:
            if visit.label == label:
                return visit
        raise KeyError(f"unknown visit label {label!r}")

    def visit_labels(self, kind: str) -> tuple[str, ...]:
        """Canonical labels allowed for a visit column type: diary_visit, clinic_visit or dosing_visit."""
        if kind == "diary_visit":
            return tuple(v.label for v in self.diary_visits)
        if kind == "clinic_visit":
            return self.clinic_visits
        if kind == "dosing_visit":
            return self.dosing_visits
        raise KeyError(kind)


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in (values or ()))


def _unit_key(unit: str) -> str:
    """Lookup key of a unit spelling: case and all whitespace ignored."""
    return re.sub(r"\s+", "", unit).lower()


def _label_key(label: str) -> str:
    """Lookup key of a label: case ignored, runs of whitespace as one space, ends stripped."""
    return re.sub(r"\s+", " ", label).strip().lower()


def load_contract(
    codebook: Mapping[str, Any],
    lab_units: Mapping[str, Any],
    protocol: Mapping[str, Any] | None = None,
    arms: Mapping[str, Any] | None = None,
) -> Contract:
    """Build the contract from the parsed codebook.yaml and lab_units.yaml mappings and the study config's
    `protocol` (None: the default study's) and `arms` (None: a single-arm study; see
    k2trial.core.vocabulary.study_codebook). The lab tests are those of the study's lab panel when the protocol
    declares one (k2trial.core.lab_panel.study_lab_units; `lab_panel`)."""
    panel_protocol = default_protocol() if protocol is None else protocol
    lab_units = study_lab_units(lab_units, panel_protocol)
    codebook = study_codebook(codebook, panel_protocol, arms)
    visits = codebook["visits"]
    vas = codebook.get("vas")
    tables: dict[str, TableSpec] = {}
    dataset_file = None
    for name, spec in codebook["files"].items():
        if spec.get("kind") == "yaml":
            dataset_file = DatasetFileSpec(
                name=name,
                required_keys=_strings(spec.get("required_keys")),
                required_when_simulated=_strings(spec.get("required_when_simulated")),
            )
            continue
        columns = []
        for column, cspec in spec["columns"].items():
            if cspec["type"] not in COLUMN_TYPES:
                raise ConfigError(f"codebook: {name}.{column} has unknown type {cspec['type']!r}")
            columns.append(
                ColumnSpec(
                    name=str(column),
                    type=str(cspec["type"]),
                    required=bool(cspec.get("required", False)),
                    levels=_strings(cspec.get("levels")),
                    synonyms={str(k): _strings(v) for k, v in (cspec.get("synonyms") or {}).items()},
                    minimum=None if cspec.get("min") is None else float(cspec["min"]),
                    maximum=None if cspec.get("max") is None else float(cspec["max"]),
                    unit=cspec.get("unit"),
                )
            )
        tables[name] = TableSpec(
            name=name,
            key=_strings(spec.get("key")),
            columns=tuple(columns),
            may_be_empty=bool(spec.get("may_be_empty", False)),
        )
    if dataset_file is None:
        raise ConfigError("codebook: no file of kind yaml (dataset.yaml) is declared")
    subject = codebook["subject_id"]
    symptoms = codebook["symptoms"]
    return Contract(
        version=str(codebook.get("contract_version", "")),
        subject_canonical_pattern=str(subject["canonical_pattern"]),
        subject_accepted_pattern=str(subject["accepted_pattern"]),
        subject_pad_width=int(subject["pad_width"]),
        site_day_first={str(site): bool(spec.get("day_first", False)) for site, spec in codebook["sites"].items()},
        yes_no={str(k): _strings(v) for k, v in codebook["yes_no"].items()},
        diary_visits=diary_visits(codebook),
        clinic_visits=_strings(visits["clinic"]),
        dosing_visits=_strings(visits["dosing"]),
        baseline_aliases=_strings(visits["baseline_aliases"]),
        week_pattern=str(visits["week_pattern"]),
        symptoms=_strings(symptoms["canonical"]),
        symptom_synonyms={str(k): _strings(v) for k, v in (symptoms.get("synonyms") or {}).items()},
        # a safety-only study has no diary and no VAS scale: no VAS value is accepted
        vas_min=float(vas["min"]) if vas else float("nan"),
        vas_max=float(vas["max"]) if vas else float("nan"),
        vas_decimals=int(vas["decimals"]) if vas else 0,
        tables=tables,
        dataset_file=dataset_file,
        checksums_file=str(codebook.get("checksums", "SHA256SUMS")),
        unit_aliases={_unit_key(str(k)): str(v) for k, v in (lab_units.get("unit_aliases") or {}).items()},
        lab_tests=lab_tests(lab_units),
        lab_panel=panel_codes(lab_units, panel_protocol),
    )


def read_contract(
    codebook_path: str | Path,
    lab_units_path: str | Path,
    protocol: Mapping[str, Any] | None = None,
    arms: Mapping[str, Any] | None = None,
) -> Contract:
    """Read codebook.yaml and lab_units.yaml and build the contract of the study `protocol` (None: the default) and
    its `arms` (None: single-arm)."""
    return load_contract(read_yaml(codebook_path), read_yaml(lab_units_path), protocol, arms)


# --------------------------------------------------------------------------------------------------
# The dataset's own declarations (dataset.yaml: subject_id, sites)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeclarationProblem:
    """A declaration of dataset.yaml that cannot be used: the key (dotted path), its value and what is wrong."""

    key: str
    value: str | None
    message: str


def declaration_problems(description: Any) -> list[DeclarationProblem]:
    """What is wrong with the subject_id and sites declarations of a parsed dataset.yaml (empty when they are
    usable or absent): a pattern that is missing or does not compile, a site without day_first or with a
    day_first that is not true/false, unknown keys inside either declaration."""
    if not isinstance(description, Mapping):
        return []
    found: list[DeclarationProblem] = []
    if "subject_id" in description:
        subject = description["subject_id"]
        if not isinstance(subject, Mapping):
            found.append(DeclarationProblem("subject_id", _shown(subject), "expected a mapping with the key pattern"))
        else:
            for key in subject:
                if str(key) not in DECLARATION_KEYS["subject_id"]:
                    found.append(DeclarationProblem(f"subject_id.{key}", _shown(subject[key]), "unknown key"))
            pattern = subject.get("pattern")
            if "pattern" not in subject:
                found.append(
                    DeclarationProblem("subject_id.pattern", None, "missing: the regular expression IDs match")
                )
            elif not isinstance(pattern, str) or not pattern.strip():
                found.append(DeclarationProblem("subject_id.pattern", _shown(pattern), "expected a regular expression"))
            else:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    found.append(DeclarationProblem("subject_id.pattern", pattern, f"not a regular expression ({exc})"))
    if "sites" in description:
        sites = description["sites"]
        if not isinstance(sites, Mapping) or not sites:
            found.append(
                DeclarationProblem(
                    "sites", _shown(sites), "expected a mapping of site names to {day_first: true/false}"
                )
            )
            return found
        for site, spec in sites.items():
            name = str(site)
            if not isinstance(site, str) or not name.strip() or name != name.strip():
                found.append(
                    DeclarationProblem(f"sites.{name}", name, "a site name is text without surrounding whitespace")
                )
            if not isinstance(spec, Mapping):
                found.append(DeclarationProblem(f"sites.{name}", _shown(spec), "expected {day_first: true/false}"))
                continue
            for key in spec:
                if str(key) not in DECLARATION_KEYS["sites"]:
                    found.append(DeclarationProblem(f"sites.{name}.{key}", _shown(spec[key]), "unknown key"))
            if "day_first" not in spec:
                found.append(
                    DeclarationProblem(f"sites.{name}.day_first", None, "missing: whether the site writes DD/MM/YYYY")
                )
            elif not isinstance(spec["day_first"], bool):
                found.append(
                    DeclarationProblem(f"sites.{name}.day_first", _shown(spec["day_first"]), "expected true or false")
                )
    return found


def _shown(value: Any) -> str | None:
    return None if value is None else str(value)


def apply_declarations(contract: Contract, description: Any, source: str | None = None) -> Contract:
    """The contract with the declarations of a parsed dataset.yaml in force (the codebook's where it declares none).

    subject_id.pattern: canonical IDs are the raw IDs trimmed and upper-cased, and must match the pattern (whole
    ID); the codebook's K2- normaliser is not used. sites: the sites and their date order, replacing the
    codebook's. source: the name the declarations are reported under (default: the contract's dataset file).
    Raises ConfigError when a declaration is unusable (see `declaration_problems`).
    """
    problems = declaration_problems(description)
    name = source or contract.dataset_file.name
    if problems:
        first = problems[0]
        raise ConfigError(f"{name}: {first.key}: {first.message}")
    if not isinstance(description, Mapping):
        return contract
    changes: dict[str, Any] = {}
    if "subject_id" in description:
        changes["subject_canonical_pattern"] = str(description["subject_id"]["pattern"])
        changes["subject_id_source"] = name
    if "sites" in description:
        changes["site_day_first"] = {str(k): bool(v["day_first"]) for k, v in description["sites"].items()}
        changes["sites_source"] = name
    return dataclasses.replace(contract, **changes) if changes else contract


def declarations_record(contract: Contract) -> dict[str, Any]:
    """The subject-ID and site conventions in force and where each was stated (validation report, provenance)."""
    if contract.subject_id_declared:
        subject = {
            "declared_in": contract.subject_id_source,
            "pattern": contract.subject_canonical_pattern,
            "normalisation": "surrounding whitespace removed, upper-cased",
        }
    else:
        subject = {
            "declared_in": contract.subject_id_source,
            "pattern": contract.subject_canonical_pattern,
            "normalisation": f"accepted spellings ({contract.subject_accepted_pattern}, case ignored) written as "
            f"K2- and the number zero-padded to {contract.subject_pad_width} digits",
        }
    sites = {
        "declared_in": contract.sites_source,
        "sites": {site: {"day_first": day_first} for site, day_first in contract.site_day_first.items()},
    }
    return {"subject_id": subject, "sites": sites}


def subject_id_expectation(contract: Contract) -> str:
    """What a valid subject ID is, as validation messages say it."""
    if contract.subject_id_declared:
        return (
            f"expected an ID matching {contract.subject_canonical_pattern} "
            f"(subject_id.pattern of {contract.subject_id_source}) after trimming and upper-casing"
        )
    return "expected an ID like K2-001"


def sites_expectation(contract: Contract) -> str:
    """The sites declared, as validation messages say them."""
    return f"expected one of the sites of {contract.sites_source}: " + ", ".join(contract.site_day_first)


# --------------------------------------------------------------------------------------------------
# Normalised columns
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NormalisedColumn:
    """A raw column read under the contract, stored per distinct raw value.

    codes: for every row, the index of its distinct value (int64, length = rows).
    raw: the distinct raw strings. status: per distinct value (see module docstring).
    value: the typed value (str label, float number, datetime64 date); missing/invalid -> None/NaN/NaT.
    text: the canonical text the clean table holds (None when missing, invalid or out of range).
    detail: why a value is invalid or out of range ("" otherwise).
    censor: lab results only: "<", ">" or "" per distinct value.
    """

    codes: np.ndarray
    raw: np.ndarray
    status: np.ndarray
    value: np.ndarray
    text: np.ndarray
    detail: np.ndarray
    censor: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.codes)

    def row_values(self) -> np.ndarray:
        """Typed value of every row (invalid and missing rows hold None/NaN/NaT)."""
        return self.value[self.codes]

    def row_text(self) -> np.ndarray:
        """Canonical text of every row (None where the clean table holds a missing value)."""
        return self.text[self.codes]

    def row_raw(self) -> np.ndarray:
        return self.raw[self.codes]

    def row_status(self) -> np.ndarray:
        return self.status[self.codes]

    def rows_with(self, *statuses: str) -> np.ndarray:
        """Boolean mask of the rows whose status is one of `statuses`."""
        return np.isin(self.status, statuses)[self.codes]

    def map_rows(self, func: Any) -> np.ndarray:
        """func(canonical text of the distinct values), spread to the rows: work per distinct value."""
        return np.asarray(func(self.text))[self.codes]

    def usable(self) -> np.ndarray:
        """Mask of rows with a readable, non-missing value (out-of-range numbers count as readable)."""
        return ~self.rows_with(MISSING, INVALID)


def _distinct(values: Sequence[Any] | pd.Series | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Row codes and the distinct values as str (NaN/None are read as ""), in order of first appearance."""
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        # Factorize the small integer category codes, not the strings: same codes and order, far faster.
        categorical = pd.Categorical(values)
        category_codes = np.asarray(categorical.codes, dtype=np.int64)
        codes, used = pd.factorize(category_codes, sort=False)
        uniques = np.append(np.asarray(categorical.categories, dtype=object), None)[used]  # code -1: NaN
        if (used < 0).any():  # NaN rows (category code -1, an ordinary value above): back to the sentinel -1
            missing_code = int(np.flatnonzero(used < 0)[0])
            codes = np.where(codes == missing_code, -1, codes - (codes > missing_code))
            uniques = np.delete(uniques, missing_code)
    else:
        codes, uniques = pd.factorize(pd.Series(values, copy=False), sort=False)
    codes = codes.astype(np.int64, copy=False)
    distinct = [str(u) for u in uniques]
    missing = codes < 0
    if missing.any():  # NaN/None: one more distinct value, ""
        codes[missing] = len(distinct)
        distinct.append("")
    return codes, distinct


#: One distinct raw value read: (status, typed value, canonical text, detail).
Reading = tuple[str, Any, "str | None", str]


def _per_distinct(codes: np.ndarray, raw: list[str], read: Any, value_dtype: Any = object) -> NormalisedColumn:
    """Apply `read(raw) -> Reading` to each distinct raw value and pack the results."""
    return _pack(codes, raw, [read(r) for r in raw], value_dtype)


def _pack(codes: np.ndarray, raw: list[str], readings: list[Reading], value_dtype: Any = object) -> NormalisedColumn:
    status = np.array([r[0] for r in readings], dtype=object)
    text = np.array([None if r[0] in (MISSING, INVALID, OUT_OF_RANGE) else r[2] for r in readings], dtype=object)
    value = np.array([r[1] for r in readings], dtype=value_dtype)
    detail = np.array([r[3] for r in readings], dtype=object)
    return NormalisedColumn(codes, np.array(raw, dtype=object), status, value, text, detail)


def _label_status(raw: str, canonical: str | None, fix_rule: str) -> str:
    """ok when raw is canonical, whitespace when only surrounding whitespace differs, else `fix_rule`."""
    stripped = raw.strip()
    if not stripped:
        return MISSING
    if canonical is None:
        return INVALID
    if raw == canonical:
        return OK
    return FIX_WHITESPACE if stripped == canonical else fix_rule


def _read_labels(values: Any, table: Mapping[str, str], fix_rule: str, expected: str, key=_label_key):
    codes, raw = _distinct(values)

    def read(text: str) -> Reading:
        canonical = table.get(key(text))
        status = _label_status(text, canonical, fix_rule)
        return status, canonical, canonical, expected if status == INVALID else ""

    return _per_distinct(codes, raw, read)


def normalise_labels(
    values: Any, levels: Sequence[str], synonyms: Mapping[str, Sequence[str]] | None, fix_rule: str = FIX_CATEGORY
) -> NormalisedColumn:
    """Categorical labels: case and surrounding/repeated whitespace ignored, synonyms mapped to their level."""
    table = {_label_key(level): level for level in levels}
    for level, variants in (synonyms or {}).items():
        table.update({_label_key(v): level for v in variants})
    return _read_labels(values, table, fix_rule, "expected one of " + ", ".join(levels))


def normalise_yes_no(values: Any, contract: Contract) -> NormalisedColumn:
    """yes/no columns: "yes"/"no" and the variants of codebook `yes_no` (y, 1, true, ...)."""
    return normalise_labels(values, list(contract.yes_no), contract.yes_no, FIX_YES_NO)


def normalise_symptoms(values: Any, contract: Contract) -> NormalisedColumn:
    """Symptom names: canonical names and their synonyms, case and whitespace ignored."""
    return normalise_labels(values, contract.symptoms, contract.symptom_synonyms, FIX_SYMPTOM)


def normalise_subject_ids(values: Any, contract: Contract) -> NormalisedColumn:
    """Subject IDs under the codebook default: accepted spellings (K2_001, K2 001, K2001, k2-1) -> "K2-" + number
    padded to 3 digits. Under a pattern declared in dataset.yaml (contract.subject_id_declared): the ID trimmed
    and upper-cased, valid only when it then matches the pattern as a whole; nothing else is guessed."""
    codes, raw = _distinct(values)
    expected = subject_id_expectation(contract)
    if contract.subject_id_declared:
        pattern = re.compile(contract.subject_canonical_pattern)

        def read(text: str) -> Reading:
            candidate = text.strip().upper()
            canonical = candidate if candidate and pattern.fullmatch(candidate) else None
            status = _label_status(text, canonical, FIX_SUBJECT_ID)
            return status, canonical, canonical, expected if status == INVALID else ""

        return _per_distinct(codes, raw, read)
    accepted = re.compile(contract.subject_accepted_pattern, re.IGNORECASE)
    width = contract.subject_pad_width

    def read_default(text: str) -> Reading:
        match = accepted.match(text.strip())
        canonical = "K2-" + match.group(1).zfill(width) if match else None
        status = _label_status(text, canonical, FIX_SUBJECT_ID)
        return status, canonical, canonical, expected if status == INVALID else ""

    return _per_distinct(codes, raw, read_default)


def normalise_sites(values: Any, contract: Contract) -> NormalisedColumn:
    """Site names: the sites in force (codebook `sites`, or those dataset.yaml declares), case and surrounding
    whitespace ignored; any other site is invalid (rule site_undeclared)."""
    table = {_label_key(site): site for site in contract.site_day_first}
    return _read_labels(values, table, FIX_CATEGORY, sites_expectation(contract))


def normalise_visits(values: Any, contract: Contract, kind: str) -> NormalisedColumn:
    """Visit labels of a column type (diary_visit, clinic_visit, dosing_visit) -> "Baseline" / "Week N".

    Baseline aliases and the week pattern of the codebook are accepted case-insensitively; a readable
    label that is not a visit of this kind (e.g. "Week 2" in labs) is invalid.
    """
    codes, raw = _distinct(values)
    allowed = contract.visit_labels(kind)
    baseline = {_label_key(a) for a in contract.baseline_aliases}
    week_pattern = re.compile(contract.week_pattern, re.IGNORECASE)
    expected = "expected one of " + ", ".join(allowed)

    def read(text: str) -> Reading:
        key = _label_key(text)
        match = week_pattern.match(key)
        label = None
        if key in baseline or (match and int(match.group(1)) == 0):
            label = "Baseline"
        elif match:
            label = f"Week {int(match.group(1))}"
        canonical = label if label in allowed else None
        status = _label_status(text, canonical, FIX_VISIT)
        return status, canonical, canonical, expected if status == INVALID else ""

    return _per_distinct(codes, raw, read)


def normalise_test_codes(values: Any, contract: Contract) -> NormalisedColumn:
    """Lab test codes: codes and aliases of lab_units.yaml, case and surrounding whitespace ignored; with a declared
    lab panel (contract.lab_panel) only the panel's, and a code outside it is invalid naming the panel."""
    table = {}
    for test in contract.lab_tests.values():
        table.update({_label_key(alias): test.code for alias in test.aliases})
    table.update({_label_key(code): code for code in contract.lab_tests})
    expected = "not a test code or alias of config/lab_units.yaml"
    if contract.lab_panel:
        expected = f"not a test of the study's lab panel (study config {PANEL_KEY}: {', '.join(contract.lab_panel)})"
    return _read_labels(values, table, FIX_TEST_CODE, expected)


def unit_table(contract: Contract) -> dict[str, str]:
    """Lookup key (lower case, no whitespace) -> canonical unit, from the aliases and the tests' units."""
    table = dict(contract.unit_aliases)
    for test in contract.lab_tests.values():
        table.update({_unit_key(u): u for u in test.units})
    return table


def normalise_units(values: Any, contract: Contract) -> NormalisedColumn:
    """Lab units: spellings of lab_units.yaml `unit_aliases` (case and whitespace ignored) -> canonical unit.

    Whether the unit is accepted for the row's test is a row-level check (validation rule unit_not_allowed).
    """
    return _read_labels(values, unit_table(contract), FIX_UNIT, "not a unit of config/lab_units.yaml", key=_unit_key)


def normalise_text(values: Any) -> NormalisedColumn:
    """Free text: surrounding whitespace removed; nothing else changes."""
    codes, raw = _distinct(values)

    def read(text: str) -> Reading:
        stripped = text.strip()
        status = MISSING if not stripped else (OK if stripped == text else FIX_WHITESPACE)
        return status, stripped, stripped, ""

    return _per_distinct(codes, raw, read)


def format_number(value: float) -> str:
    """The text a number has in a clean CSV (k2trial.core.io float format)."""
    return FLOAT_FORMAT % value


_NUMBER_PATTERN = re.compile(_NUMBER_RE)


def normalise_numbers(
    values: Any, minimum: float | None = None, maximum: float | None = None, integer: bool = False
) -> NormalisedColumn:
    """Numbers: plain decimals, a decimal comma accepted ("7,5" -> 7.5); no thousands separators.

    A readable number outside [minimum, maximum] (inclusive) gets status value_out_of_range; with
    `integer`, a number with a fractional part is invalid.
    """
    codes, raw = _distinct(values)
    low = "" if minimum is None else format_number(minimum)
    high = "" if maximum is None else format_number(maximum)

    def read(text: str) -> Reading:
        stripped = text.strip()
        if not stripped:
            return MISSING, np.nan, None, ""
        if not _NUMBER_PATTERN.match(stripped):
            return INVALID, np.nan, None, ""
        number = float(stripped.replace(",", "."))
        if integer and number % 1 != 0:
            return INVALID, np.nan, None, "has a fractional part"
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            return OUT_OF_RANGE, number, None, f"outside the plausible range {low} to {high}"
        status = FIX_DECIMAL_COMMA if "," in stripped else (OK if stripped == text else FIX_WHITESPACE)
        return status, number, format_number(number), ""

    return _per_distinct(codes, raw, read, value_dtype=float)


_LAB_RESULT_PATTERN = re.compile(_LAB_RESULT_RE)


def normalise_lab_results(values: Any) -> NormalisedColumn:
    """Lab results as reported: a number or "<x" / ">x" (a limit of quantification).

    Canonical text has all whitespace removed and a decimal comma replaced by a point ("< 0,2" ->
    "<0.2"); `value` holds the number (the limit for censored results) and `censor` the prefix.
    """
    codes, raw = _distinct(values)
    matches = [_LAB_RESULT_PATTERN.match(re.sub(r"\s+", "", text)) for text in raw]

    def read(text: str, match: re.Match | None) -> Reading:
        compact = re.sub(r"\s+", "", text)
        if not compact:
            return MISSING, np.nan, None, ""
        if not match:
            return INVALID, np.nan, None, 'expected a number, "<x" or ">x"'
        canonical = match.group(1) + match.group(2).replace(",", ".")
        status = FIX_DECIMAL_COMMA if "," in compact else (OK if canonical == text else FIX_WHITESPACE)
        return status, float(match.group(2).replace(",", ".")), canonical, ""

    column = _pack(codes, raw, [read(t, m) for t, m in zip(raw, matches, strict=True)], value_dtype=float)
    censor = np.array([m.group(1) if m else "" for m in matches], dtype=object)
    return dataclasses.replace(column, censor=censor)


_ISO_PATTERN = re.compile(_ISO_DATE_RE)
_DAY_FIRST_PATTERN = re.compile(_DAY_FIRST_RE)


def _calendar_date(year: int, month: int, day: int) -> np.datetime64 | None:
    try:
        return np.datetime64(datetime.date(year, month, day), "ns")
    except ValueError:
        return None


def normalise_dates(values: Any, day_first: Any = None) -> NormalisedColumn:
    """Dates: ISO YYYY-MM-DD from every site; DD/MM/YYYY or DD-MM-YYYY only where `day_first` is true.

    day_first: per row, whether the row's site writes day-first dates (None: no site does). The distinct
    values are (raw text, day_first) pairs. A day-first date from another site is invalid (never guessed:
    03/04/2013 could be either order). Impossible calendar dates (2013-02-30) are invalid.
    """
    text_codes, texts = _distinct(values)
    flag = np.zeros(len(text_codes), dtype=np.int64) if day_first is None else np.asarray(day_first, dtype=np.int64)
    codes, pairs = pd.factorize(text_codes * 2 + flag, sort=False)
    pairs = np.asarray(pairs, dtype=np.int64)
    raw = [texts[p // 2] for p in pairs]

    def read(text: str, accepts_day_first: bool) -> Reading:
        stripped = text.strip()
        if not stripped:
            return MISSING, np.datetime64("NaT", "ns"), None, ""
        if _ISO_PATTERN.match(stripped):
            date = _calendar_date(int(stripped[:4]), int(stripped[5:7]), int(stripped[8:10]))
            status = OK if stripped == text else FIX_WHITESPACE
        elif (match := _DAY_FIRST_PATTERN.match(stripped)) is not None:
            if not accepts_day_first:
                return INVALID, np.datetime64("NaT", "ns"), None, DAY_FIRST_ELSEWHERE
            date = _calendar_date(int(match.group(4)), int(match.group(3)), int(match.group(1)))
            status = FIX_DAY_FIRST
        else:
            return INVALID, np.datetime64("NaT", "ns"), None, "expected YYYY-MM-DD"
        if date is None:
            return INVALID, np.datetime64("NaT", "ns"), None, "not a calendar date"
        return status, date, str(date.astype("datetime64[D]")), ""

    readings = [read(text, bool(pair % 2)) for text, pair in zip(raw, pairs, strict=True)]
    return _pack(codes.astype(np.int64), raw, readings, value_dtype="datetime64[ns]")


def normalise_column(values: Any, spec: ColumnSpec, contract: Contract, day_first: Any = None) -> NormalisedColumn:
    """Read a raw column under its contract type (see the type-specific normalisers)."""
    kind = spec.type
    if kind == "subject_id":
        return normalise_subject_ids(values, contract)
    if kind == "category":
        return normalise_labels(values, spec.levels, spec.synonyms, FIX_CATEGORY)
    if kind == "site":
        return normalise_sites(values, contract)
    if kind == "yes_no":
        return normalise_yes_no(values, contract)
    if kind in ("diary_visit", "clinic_visit", "dosing_visit"):
        return normalise_visits(values, contract, kind)
    if kind == "symptom":
        return normalise_symptoms(values, contract)
    if kind in ("number", "integer"):
        return normalise_numbers(values, spec.minimum, spec.maximum, integer=kind == "integer")
    if kind == "date":
        return normalise_dates(values, day_first)
    if kind == "lab_result":
        return normalise_lab_results(values)
    if kind == "test_code":
        return normalise_test_codes(values, contract)
    if kind == "lab_unit":
        return normalise_units(values, contract)
    if kind == "text":
        return normalise_text(values)
    raise ConfigError(f"unknown column type {kind!r}")


# --------------------------------------------------------------------------------------------------
# Helpers on canonical values (used by validation, cleaning and derivation)
# --------------------------------------------------------------------------------------------------
def visit_weeks(labels: Any, contract: Contract) -> np.ndarray:
    """Study week of canonical visit labels ("Week 4" -> 4, "Baseline" -> 0); -1 where unknown."""
    codes, uniques = _distinct(labels)
    weeks = {v.label: v.week for v in contract.diary_visits}
    return np.array([weeks.get(u, -1) for u in uniques], dtype=np.int64)[codes]


def visit_codes(labels: Any, contract: Contract) -> np.ndarray:
    """Analysis code of canonical visit labels ("Week 4" -> "week4"); None where unknown."""
    codes, uniques = _distinct(labels)
    table = {v.label: v.code for v in contract.diary_visits}
    return np.array([table.get(u) for u in uniques], dtype=object)[codes]


def category_order(values: Any, order: Sequence[str]) -> np.ndarray:
    """Position of each value in `order` (for sorting); len(order) where not found."""
    codes, uniques = _distinct(values)
    position = {v: i for i, v in enumerate(order)}
    return np.array([position.get(u, len(order)) for u in uniques], dtype=np.int64)[codes]


def lab_factors(test_codes: Any, units: Any, contract: Contract) -> np.ndarray:
    """Factor converting each row's reported unit to its test's standard unit; NaN if not accepted.

    Both inputs must be canonical (test code and unit spellings of config/lab_units.yaml).
    """
    test_codes_, tests = _distinct(test_codes)
    unit_codes, unit_names = _distinct(units)
    width = max(len(unit_names), 1)
    codes, pairs = pd.factorize(test_codes_ * width + unit_codes, sort=False)
    factors = np.array(
        [
            contract.lab_tests[tests[p // width]].units.get(unit_names[p % width], np.nan)
            if tests[p // width] in contract.lab_tests
            else np.nan
            for p in np.asarray(pairs, dtype=np.int64)
        ],
        dtype=float,
    )
    return factors[codes] if len(factors) else np.zeros(len(codes), dtype=float)


def parse_lab_results(texts: Any) -> tuple[np.ndarray, np.ndarray]:
    """Numeric value and censor flag of canonical lab result texts ("<0.2" -> (0.2, True))."""
    column = normalise_lab_results(texts)
    value = column.row_values().astype(float)
    censored = np.isin(column.censor, ("<", ">"))[column.codes]
    return value, censored
