"""The ADaM metadata of one delivery (config/adam/spec.yaml): datasets, variables and codelists, loaded and checked.

`load_spec(path)` reads the file and checks it completely before anything is derived: every problem is a
ConfigError that names the file, the dataset, the variable and the key (for example
``config/adam/spec.yaml: dataset ADSL, variable AGE, key 'label': longer than 40 characters``). The file's own
header documents every key. `AdamSpec.with_parameters` fills the `{name}` placeholders of the derivation texts with
the delivery's parameters (thresholds and rules from the configuration; `parameters_from_config` builds them), so
define.json states the values actually used.

Codelists do double duty, as in metacore: they are the controlled terms written to define.json and the recoding
tables the derivations use (`Codelist.recode`: artifact value -> submission value; `Codelist.decode`: code ->
decode, e.g. PARAMCD -> PARAM). An artifact value that no term maps is an AdamDataError naming the artifact, row,
column and value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from k2trial.core.artifacts import delivered_datasets
from k2trial.core.errors import ConfigError, InputDataError, Problem
from k2trial.core.io import read_yaml
from k2trial.core.vocabulary import COMPOSITE, Vocabulary, composite_items

#: define.xml / ADaM class names of the `class` codes.
CLASSES = {
    "ADSL": "SUBJECT LEVEL ANALYSIS DATASET",
    "BDS": "BASIC DATA STRUCTURE",
    "OCCDS": "OCCURRENCE DATA STRUCTURE",
}
ORIGINS = ("Predecessor", "Derived", "Assigned")
TYPES = ("char", "num")
#: define.xml data types allowed for each SAS type (the first is the default).
DATATYPES = {"char": ("text",), "num": ("float", "integer", "date")}
#: Numeric variables are 8-byte floating point in XPT v5.
NUMERIC_LENGTH = 8
#: XPT v5 limits.
MAX_LABEL = 40
MAX_CHAR_LENGTH = 200


class AdamDataError(InputDataError):
    """An analysis artifact holds something the ADaM derivation cannot map (a value outside a codelist, a subject
    missing from ADSL, a duplicate key); carries the problems with artifact, row, column and value."""

    HEADLINE = "{n} problem(s) in the analysis artifacts; the ADaM datasets are not written."


_TOP_KEYS = ("spec_version", "study", "standard", "parameters", "codelists", "datasets")
_STUDY_KEYS = ("studyid", "name", "arm", "arm_label")
_CODELIST_KEYS = ("name", "type", "terms")
_TERM_KEYS = ("code", "decode", "from")
_DATASET_KEYS = ("label", "class", "structure", "keys", "sources", "variables")
_VARIABLE_KEYS = ("name", "label", "type", "datatype", "length", "format", "codelist", "origin", "source", "derivation")
_REQUIRED_VARIABLE_KEYS = ("name", "label", "type", "origin", "derivation")
_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,7}$")
_FORMAT = re.compile(r"^\$?[A-Z]+\d*\.\d*$")
_ARTIFACT_SOURCE = re.compile(r"^[a-z][a-z0-9_]*/[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
_DATASET_SOURCE = re.compile(r"^(AD[A-Z0-9]{0,6})\.([A-Z][A-Z0-9_]{0,7})$")
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")


# ----------------------------------------------------------------------------------------------------------------
# Values as codelist keys
# ----------------------------------------------------------------------------------------------------------------
def value_key(value: Any) -> str | None:
    """The text a value is matched by in a codelist (None = missing): booleans "true"/"false", whole numbers
    without decimals ("2" for 2 and 2.0), other numbers by repr, text as it is ("" is missing)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value)
    return text if text != "" else None


# ----------------------------------------------------------------------------------------------------------------
# Metadata objects
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Term:
    """A controlled term: `code` (the submission value), `decode`, and the artifact values (keys) that map to it."""

    code: str | float
    decode: str
    sources: tuple[str, ...]


def factorized(series: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """(codes, distinct values) of a column as pd.factorize(series.astype(object)) gives them (code -1: missing),
    for a categorical from its codes without making an object array: the categories present, in category order."""
    if not isinstance(series.dtype, pd.CategoricalDtype):
        codes, distinct = pd.factorize(series.astype(object), use_na_sentinel=True)
        return codes, list(distinct)
    codes = np.asarray(series.cat.codes.to_numpy(), dtype=np.int64)
    categories = series.cat.categories.tolist()
    present = np.bincount(codes + 1, minlength=len(categories) + 1)[1:] > 0
    used = np.flatnonzero(present)
    new_code = np.full(len(categories) + 1, -1, dtype=np.int64)  # the last: missing
    new_code[used] = np.arange(len(used))
    return new_code[codes], [categories[i] for i in used]


@dataclass(frozen=True)
class Codelist:
    """A codelist of the spec; `type` char (codes are text) or num (codes are numbers)."""

    id: str
    name: str
    type: str
    terms: tuple[Term, ...]
    spec_file: str = ""
    from_protocol: bool = False  # terms come from the study's protocol (AdamSpec.with_protocol_terms)

    @property
    def codes(self) -> list[str | float]:
        return [t.code for t in self.terms]

    def recode(self, values: Any, *, artifact: str, column: str) -> pd.Series:
        """The code of each artifact value (text: "" for missing; num: NaN for missing), computed per distinct value.

        artifact, column: where the values come from, for the error naming a value no term maps (its row is the
        spreadsheet row of a CSV artifact: header = 1, first record = 2).
        """
        series = values if isinstance(values, pd.Series) else pd.Series(values)
        series = series.reset_index(drop=True)
        codes, distinct = factorized(series)
        lookup = {s: t.code for t in self.terms for s in t.sources}
        mapped: list[Any] = []
        for value in distinct:
            key = value_key(value)
            if key is None:
                mapped.append(None)
            elif key in lookup:
                mapped.append(lookup[key])
            else:
                row = int(np.flatnonzero(codes == len(mapped))[0]) + 2
                raise AdamDataError(
                    [
                        Problem(
                            artifact, row, column, key, "adam_codelist", "error",
                            f"no term of codelist {self.id} ({self.spec_file}) maps this value; add a term (its "
                            f"`from`) to the ADaM spec or correct the data",
                        )
                    ]
                )  # fmt: skip
        return self._series(mapped, codes)

    def decode(self, codes: Any) -> pd.Series:
        """The decode of each code (text, "" for a missing code); a value that is not a code raises ValueError."""
        table = {value_key(t.code): t.decode for t in self.terms}
        return self._lookup(codes, table, "")

    def source(self, codes: Any) -> pd.Series:
        """The artifact value each code comes from (the first of its term's `from`, as text: "true"/"false" for
        booleans; "" for a missing code): the inverse of `recode`, for reading ADaM back into the artifacts' terms."""
        table = {value_key(t.code): t.sources[0] for t in self.terms}
        return self._lookup(codes, table, "")

    def position(self, codes: Any) -> pd.Series:
        """1-based position of each code in the codelist (float, NaN for a missing code)."""
        table = {value_key(t.code): float(i + 1) for i, t in enumerate(self.terms)}
        return self._lookup(codes, table, np.nan)

    def _lookup(self, codes: Any, table: Mapping[str | None, Any], missing: Any) -> pd.Series:
        series = codes if isinstance(codes, pd.Series) else pd.Series(codes)
        series = series.reset_index(drop=True)
        index, distinct = factorized(series)
        out: list[Any] = []
        for value in distinct:
            key = value_key(value)
            if key is None:
                out.append(missing)
            elif key in table:
                out.append(table[key])
            else:
                raise ValueError(f"{value!r} is not a code of codelist {self.id} ({self.spec_file})")
        column = np.array([*out, missing], dtype=object)[np.where(index < 0, len(out), index)]
        if isinstance(missing, float):
            return pd.Series(column, dtype="float64")
        return pd.Series(column, dtype="str")

    def _series(self, mapped: list[Any], codes: np.ndarray) -> pd.Series:
        if self.type == "num":
            table = np.array([np.nan if v is None else float(v) for v in mapped] + [np.nan], dtype="float64")
            return pd.Series(table[np.where(codes < 0, len(mapped), codes)])
        table_text = np.array(["" if v is None else str(v) for v in mapped] + [""], dtype=object)
        return pd.Series(table_text[np.where(codes < 0, len(mapped), codes)], dtype="str")


@dataclass(frozen=True)
class Variable:
    """One variable of a dataset (see the header of config/adam/spec.yaml for the meaning of each field)."""

    name: str
    label: str
    type: str
    datatype: str
    origin: str
    derivation: str
    length: int | None = None
    format: str | None = None
    codelist: str | None = None
    source: tuple[str, ...] = ()

    @property
    def is_date(self) -> bool:
        return self.datatype == "date"


@dataclass(frozen=True)
class Dataset:
    """One ADaM dataset: name, label, class code (ADSL | BDS | OCCDS), structure, keys, sources, variables."""

    name: str
    label: str
    class_: str
    structure: str
    keys: tuple[str, ...]
    sources: tuple[str, ...]
    variables: tuple[Variable, ...]

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    @property
    def class_name(self) -> str:
        return CLASSES[self.class_]

    def variable(self, name: str) -> Variable:
        for variable in self.variables:
            if variable.name == name:
                return variable
        raise KeyError(f"{self.name} has no variable {name!r} in the ADaM spec")


@dataclass(frozen=True)
class AdamSpec:
    """The whole delivery: study facts, standard, parameters (declared; values after `with_parameters`),
    codelists and datasets (in file order)."""

    file: str
    spec_version: str
    study: Mapping[str, str]
    standard: Mapping[str, str]
    parameter_descriptions: Mapping[str, str]
    codelists: Mapping[str, Codelist]
    datasets: Mapping[str, Dataset]
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def studyid(self) -> str:
        return str(self.study["studyid"])

    def dataset(self, name: str) -> Dataset:
        try:
            return self.datasets[name]
        except KeyError:
            raise ConfigError(f"{self.file}: no dataset {name!r} (datasets: {', '.join(self.datasets)})") from None

    def codelist(self, codelist_id: str) -> Codelist:
        try:
            codelist = self.codelists[codelist_id]
        except KeyError:
            raise ConfigError(f"{self.file}: no codelist {codelist_id!r}") from None
        if codelist.from_protocol:
            raise ConfigError(
                f"{self.file}: codelist {codelist_id!r} takes its terms from the study's protocol "
                "(AdamSpec.with_protocol_terms was not called)"
            )
        return codelist

    def codelist_of(self, dataset: str, variable: str) -> Codelist:
        """The codelist attached to a variable (ConfigError when it has none)."""
        spec = self.dataset(dataset).variable(variable)
        if spec.codelist is None:
            raise ConfigError(f"{self.file}: dataset {dataset}, variable {variable}, key 'codelist': none given")
        return self.codelist(spec.codelist)

    def parameter(self, name: str) -> Any:
        if name not in self.parameters:
            raise ConfigError(f"{self.file}: parameter {name!r} was not given (AdamSpec.with_parameters)")
        return self.parameters[name]

    def with_protocol_terms(
        self,
        vocabulary: Vocabulary,
        vas_unit: str,
        arms: Mapping[str, Any] | None = None,
        study: Mapping[str, Any] | None = None,
    ) -> AdamSpec:
        """A copy for one study: `study` (the study config's `adam` block: studyid, name, arm, arm_label) replaces
        the spec's study facts it names, and the `terms: protocol` codelists hold the study's terms
        (protocol_terms): the diary items and the composite (QSPARAM), the diary visits (AVISIT), the arms (ARMCD,
        ARM: the study config's `arms`, or the single arm of the study facts)."""
        unknown = sorted(set(study or {}) - set(_STUDY_KEYS))
        if unknown:
            raise ConfigError(f"study config adam: unknown key(s) {unknown} (known: {', '.join(_STUDY_KEYS)})")
        facts = {**self.study, **{k: str(v) for k, v in (study or {}).items()}}
        terms = protocol_terms(vocabulary, vas_unit, arms, facts)
        codelists = {
            cid: replace(c, terms=terms[cid], from_protocol=False) if c.from_protocol else c
            for cid, c in self.codelists.items()
        }
        return replace(self, study=facts, codelists=codelists)

    def for_sources(self, available: Iterable[str]) -> AdamSpec:
        """A copy for a build that makes only the `available` artifacts (e.g. no analysis/vas and no
        groups/assignment in a safety-only study): a dataset whose first source is not available is not delivered
        (ADQS without the diary), a variable whose every artifact source is missing is dropped (ADSL's severity
        group), and so is a parameter no remaining derivation text uses. The spec as it is when all are available."""
        available = set(available)
        delivered = delivered_datasets(
            {name: ds.sources[0] if ds.sources else None for name, ds in self.datasets.items()}, available
        )
        have = available | set(delivered)

        def present(source: str) -> bool:
            return source.split(".")[0] in have

        datasets = {}
        for name in delivered:
            ds = self.datasets[name]
            variables = tuple(v for v in ds.variables if not v.source or any(present(s) for s in v.source))
            datasets[name] = replace(ds, variables=variables, sources=tuple(s for s in ds.sources if present(s)))
        texts = [v.derivation for ds in datasets.values() for v in ds.variables]
        used = {m.group(1) for text in texts for m in _PLACEHOLDER.finditer(text)}
        descriptions = {k: v for k, v in self.parameter_descriptions.items() if k in used}
        return replace(self, datasets=datasets, parameter_descriptions=descriptions)

    def with_parameters(self, values: Mapping[str, Any]) -> AdamSpec:
        """A copy with the parameter values set and every `{name}` of the derivation texts replaced.

        Raises ConfigError naming a declared parameter that is not given, or a given one the spec does not declare.
        """
        missing = [p for p in self.parameter_descriptions if p not in values]
        unknown = [p for p in values if p not in self.parameter_descriptions]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"parameter(s) not given: {', '.join(missing)}")
            if unknown:
                parts.append(f"parameter(s) not declared under `parameters`: {', '.join(unknown)}")
            raise ConfigError(f"{self.file}: {'; '.join(parts)}")
        texts = {k: _parameter_text(v) for k, v in values.items()}

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: texts[m.group(1)], text)

        datasets = {
            name: replace(ds, variables=tuple(replace(v, derivation=fill(v.derivation)) for v in ds.variables))
            for name, ds in self.datasets.items()
        }
        return replace(self, datasets=datasets, parameters=dict(values))


def _parameter_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(_parameter_text(v) for v in value)
    return str(value)


def parameters_from_config(config: Mapping[str, Any], *, final_visit: str, ctcae_version: str) -> dict[str, Any]:
    """The delivery parameters of config/adam/spec.yaml from the workflow config (config/config.yaml merged with the
    study config, parsed: the composite's items and the clinic visits' window come from its `protocol`) and two
    facts the config does not hold: the label of the last diary visit
    (k2trial.core.vocabulary.Vocabulary.final_visit.label) and the CTCAE version of the lab standards
    (k2trial.analysis.safety.standards.LabStandards.ctcae_version)."""
    safety = config["safety"]
    protocol = config["protocol"]
    # a safety-only study has no severity groups (and no ADaM variable derived from them: AdamSpec.for_sources)
    groups = {"severe_threshold": float(config["groups"]["severe_threshold"])} if config.get("groups") else {}
    return {
        **groups,
        "b12_adequate_from": float(config["b12_status"]["adequate_from"]),
        "final_visit": str(final_visit),
        "composite_items": composite_items(protocol),
        "ontrt_window_days": max(int(v["window_days"]) for v in protocol["clinic_visits"]),
        "te_window_days": int(safety["treatment_emergent_window_days"]),
        "related_levels": ", ".join(str(s) for s in safety["related_levels"]),
        "withdrawal_actions": "; ".join(str(s) for s in safety["withdrawal_actions"]),
        "ctcae_version": str(ctcae_version),
    }


# ----------------------------------------------------------------------------------------------------------------
# Loading and checking
# ----------------------------------------------------------------------------------------------------------------
class _Where:
    """Builds the location part of a ConfigError message."""

    def __init__(self, file: str):
        self.file = file

    def error(self, message: str, *, dataset: str | None = None, variable: str | None = None,
              codelist: str | None = None, key: str | None = None) -> ConfigError:  # fmt: skip
        place = [
            f"{kind} {name}"
            for kind, name in (("codelist", codelist), ("dataset", dataset), ("variable", variable))
            if name is not None
        ]
        if key is not None:
            place.append(f"key '{key}'")
        return ConfigError(f"{self.file}: {', '.join(place)}: {message}" if place else f"{self.file}: {message}")


def _mapping(value: Any, where: _Where, what: str, **place: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error(f"{what} must be a mapping (got {type(value).__name__})", **place)
    return value


def _keys(mapping: Mapping[str, Any], allowed: Sequence[str], required: Sequence[str], where: _Where,
          **place: str) -> None:  # fmt: skip
    unknown = [k for k in mapping if k not in allowed]
    if unknown:
        raise where.error(f"unknown key(s) {', '.join(map(str, unknown))} (allowed: {', '.join(allowed)})", **place)
    for key in required:
        if mapping.get(key) in (None, "", [], {}):
            raise where.error("required", key=key, **place)


def _text(value: Any, where: _Where, key: str, **place: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.error(f"must be non-empty text (got {value!r})", key=key, **place)
    return " ".join(value.split())


def _load_codelist(codelist_id: str, raw: Any, where: _Where) -> Codelist:
    raw = _mapping(raw, where, "a codelist", codelist=codelist_id)
    _keys(raw, _CODELIST_KEYS, _CODELIST_KEYS, where, codelist=codelist_id)
    kind = raw["type"]
    if kind not in TYPES:
        raise where.error(f"must be one of {', '.join(TYPES)} (got {kind!r})", codelist=codelist_id, key="type")
    if raw["terms"] == PROTOCOL_TERMS:
        if codelist_id not in PROTOCOL_CODELISTS:
            raise where.error(
                f"terms: {PROTOCOL_TERMS} is only for the codelists {', '.join(PROTOCOL_CODELISTS)}",
                codelist=codelist_id, key="terms",
            )  # fmt: skip
        name = _text(raw["name"], where, "name", codelist=codelist_id)
        return Codelist(codelist_id, name, kind, (), where.file, from_protocol=True)
    if not isinstance(raw["terms"], list):
        raise where.error("must be a list of terms", codelist=codelist_id, key="terms")
    terms: list[Term] = []
    seen_codes: set[str | None] = set()
    seen_sources: dict[str, Any] = {}
    for item in raw["terms"]:
        item = _mapping(item, where, "a term", codelist=codelist_id)
        _keys(item, _TERM_KEYS, ("code", "decode"), where, codelist=codelist_id, key="terms")
        code = item["code"]
        if kind == "num" and (isinstance(code, bool) or not isinstance(code, int | float)):
            raise where.error(f"code {code!r} of a num codelist must be a number", codelist=codelist_id, key="code")
        if kind == "char" and not isinstance(code, str):
            raise where.error(f"code {code!r} of a char codelist must be quoted text", codelist=codelist_id,
                              key="code")  # fmt: skip
        key = value_key(code)
        if key in seen_codes:
            raise where.error(f"code {code!r} listed twice", codelist=codelist_id, key="code")
        seen_codes.add(key)
        given = item.get("from")
        sources_raw = [code] if given is None else (given if isinstance(given, list) else [given])
        sources = tuple(k for k in (value_key(v) for v in sources_raw) if k is not None)
        if not sources:
            raise where.error("must list at least one artifact value", codelist=codelist_id, key="from")
        for source in sources:
            if source in seen_sources:
                raise where.error(
                    f"artifact value {source!r} maps to two codes ({seen_sources[source]!r} and {code!r})",
                    codelist=codelist_id, key="from",
                )  # fmt: skip
            seen_sources[source] = code
        terms.append(Term(code=float(code) if kind == "num" else code, decode=_text(
            item["decode"], where, "decode", codelist=codelist_id), sources=sources))  # fmt: skip
    name = _text(raw["name"], where, "name", codelist=codelist_id)
    return Codelist(codelist_id, name, kind, tuple(terms), where.file)


def _load_variable(raw: Any, dataset: str, where: _Where, codelists: Mapping[str, Codelist]) -> Variable:
    raw = _mapping(raw, where, "a variable", dataset=dataset)
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise where.error(f"must be 1-8 upper-case letters, digits or _ (got {name!r})", dataset=dataset, key="name")
    place = {"dataset": dataset, "variable": name}
    _keys(raw, _VARIABLE_KEYS, _REQUIRED_VARIABLE_KEYS, where, **place)
    label = _text(raw["label"], where, "label", **place)
    if len(label.encode("utf-8")) > MAX_LABEL or not label.isascii():
        raise where.error(f"must be ASCII and at most {MAX_LABEL} characters (XPT v5): {label!r}", key="label",
                          **place)  # fmt: skip
    kind = raw["type"]
    if kind not in TYPES:
        raise where.error(f"must be one of {', '.join(TYPES)} (got {kind!r})", key="type", **place)
    datatype = raw.get("datatype", DATATYPES[kind][0])
    if datatype not in DATATYPES[kind]:
        raise where.error(f"a {kind} variable's datatype is one of {', '.join(DATATYPES[kind])} (got {datatype!r})",
                          key="datatype", **place)  # fmt: skip
    length = raw.get("length")
    if length is not None:
        if kind != "char":
            raise where.error(f"only char variables take a length (num is {NUMERIC_LENGTH} bytes)", key="length",
                              **place)  # fmt: skip
        if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= MAX_CHAR_LENGTH:
            raise where.error(f"must be a whole number 1-{MAX_CHAR_LENGTH} (got {length!r})", key="length", **place)
    fmt = raw.get("format")
    if fmt is not None and (not isinstance(fmt, str) or not _FORMAT.match(fmt)):
        raise where.error(f"not a SAS format such as DATE9. (got {fmt!r})", key="format", **place)
    if datatype == "date" and fmt is None:
        raise where.error("a date needs a display format (DATE9.)", key="format", **place)
    codelist = raw.get("codelist")
    if codelist is not None:
        if codelist not in codelists:
            raise where.error(f"no codelist {codelist!r} in `codelists`", key="codelist", **place)
        if codelists[codelist].type != kind:
            raise where.error(f"codelist {codelist} is {codelists[codelist].type}, the variable {kind}",
                              key="codelist", **place)  # fmt: skip
    origin = raw["origin"]
    if origin not in ORIGINS:
        raise where.error(f"must be one of {', '.join(ORIGINS)} (got {origin!r})", key="origin", **place)
    source = raw.get("source") or []
    if not isinstance(source, list):
        raise where.error("must be a list of <artifact>.<column> or <dataset>.<variable>", key="source", **place)
    for entry in source:
        if not isinstance(entry, str) or not (_ARTIFACT_SOURCE.match(entry) or _DATASET_SOURCE.match(entry)):
            raise where.error(f"{entry!r} is neither <artifact>.<column> (analysis/subjects.age_years) nor "
                              "<dataset>.<variable> (ADSL.TRTSDT)", key="source", **place)  # fmt: skip
    if origin == "Predecessor" and not source:
        raise where.error("a Predecessor variable names its source", key="source", **place)
    derivation = _text(raw["derivation"], where, "derivation", **place)
    return Variable(
        name=name, label=label, type=kind, datatype=datatype, origin=origin, derivation=derivation, length=length,
        format=fmt, codelist=codelist, source=tuple(source),
    )  # fmt: skip


def _load_dataset(name: str, raw: Any, where: _Where, codelists: Mapping[str, Codelist]) -> Dataset:
    if not isinstance(name, str) or not _NAME.match(name):
        raise where.error(f"dataset name {name!r} must be 1-8 upper-case letters, digits or _ (XPT v5)")
    raw = _mapping(raw, where, "a dataset", dataset=name)
    _keys(raw, _DATASET_KEYS, _DATASET_KEYS, where, dataset=name)
    label = _text(raw["label"], where, "label", dataset=name)
    if len(label) > MAX_LABEL or not label.isascii():
        raise where.error(f"must be ASCII and at most {MAX_LABEL} characters (XPT v5)", dataset=name, key="label")
    kind = raw["class"]
    if kind not in CLASSES:
        raise where.error(f"must be one of {', '.join(CLASSES)} (got {kind!r})", dataset=name, key="class")
    if not isinstance(raw["variables"], list):
        raise where.error("must be a list of variables", dataset=name, key="variables")
    variables = tuple(_load_variable(v, name, where, codelists) for v in raw["variables"])
    names = [v.name for v in variables]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise where.error(f"variable(s) listed twice: {', '.join(twice)}", dataset=name, key="variables")
    keys = raw["keys"]
    if not isinstance(keys, list) or any(k not in names for k in keys):
        raise where.error(f"every key must be a variable of the dataset (got {keys!r})", dataset=name, key="keys")
    sources = raw["sources"]
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise where.error("must be a list of artifact or dataset names", dataset=name, key="sources")
    return Dataset(
        name=name, label=label, class_=kind, structure=_text(raw["structure"], where, "structure", dataset=name),
        keys=tuple(keys), sources=tuple(sources), variables=variables,
    )  # fmt: skip


#: `terms: protocol` in a codelist: its terms are the study's (protocol_terms), not listed in the spec.
PROTOCOL_TERMS = "protocol"
#: The codelists whose terms the protocol gives, and the PARAMCD of the composite.
PROTOCOL_CODELISTS = ("QSPARAM", "AVISIT", "ARMCD", "ARM", "LBPARAM")
COMPOSITE_PARAMCD = "VASCOMP"


def protocol_terms(
    vocabulary: Vocabulary,
    vas_unit: str,
    arms: Mapping[str, Any] | None = None,
    study: Mapping[str, Any] | None = None,
) -> dict[str, tuple[Term, ...]]:
    """The study's terms of QSPARAM, AVISIT, ARMCD, ARM and LBPARAM, in protocol order.

    LBPARAM: per test of the study's lab panel, code = the test code, decode = "<name> (<standard unit>)".

    ARMCD: the study config's arms (code, decode = its label), or for a single-arm study the study facts' `arm`
    and `arm_label`; ARM: the decodes of ARMCD (code = decode).

    QSPARAM: per diary item, code = the item upper-cased (at most 8 characters, as PARAMCD must be), decode
    "<label> VAS (<unit>)"; the composite (when the study has one) VASCOMP, "Composite VAS, <method> of the <n> items
    (<unit>)". AVISIT: per diary visit, code = its label, decode = its label ("Baseline (week 0)" at week 0).
    """
    items = []
    for item in vocabulary.symptoms:
        code = str(item).upper()
        if len(code) > 8 or not re.fullmatch(r"[A-Z][A-Z0-9_]*", code):
            raise ConfigError(
                f"study config protocol.diary.items: {item!r} gives PARAMCD {code!r}, not an XPT v5 name of at most "
                "8 letters, digits or underscores starting with a letter"
            )
        items.append(Term(code=code, decode=f"{vocabulary.param_label(item)} VAS ({vas_unit})", sources=(item,)))
    if vocabulary.has_composite:
        n = len(vocabulary.composite_symptoms)
        decode = f"Composite VAS, {vocabulary.composite_method} of the {n} items ({vas_unit})"
        items.append(Term(code=COMPOSITE_PARAMCD, decode=decode, sources=(COMPOSITE,)))
    visits = tuple(
        Term(code=v.label, decode=f"{v.label} (week 0)" if v.week == 0 else v.label, sources=(v.code,))
        for v in vocabulary.visits
    )
    if arms:
        labels = arms.get("labels") or {}
        arm_terms = [(str(code), str(labels.get(code, code))) for code in arms["codes"]]
    else:
        if not study or "arm" not in study or "arm_label" not in study:
            raise ConfigError("ADaM spec study: a single-arm study needs `arm` and `arm_label` (ARMCD and ARM)")
        arm_terms = [(str(study["arm"]), str(study["arm_label"]))]
    armcd = tuple(Term(code=code, decode=label, sources=(code,)) for code, label in arm_terms)
    arm = tuple(Term(code=label, decode=label, sources=(label,)) for _, label in arm_terms)
    # the study's lab panel in its order (config/lab_units.yaml, or the tests the study config declares)
    lab = tuple(Term(code=c, decode=vocabulary.tests[c].title, sources=(c,)) for c in vocabulary.lab_panel)
    return {"QSPARAM": tuple(items), "AVISIT": visits, "ARMCD": armcd, "ARM": arm, "LBPARAM": lab}


def load_spec(path: str | Path, label: str | None = None) -> AdamSpec:
    """Read and check config/adam/spec.yaml (label: how the file is named in errors; default the path as given).

    Checks: known keys only; study.studyid; codelists (type, unique codes, each artifact value mapped once);
    datasets (XPT v5 names and labels, class, keys among the variables); variables (names, labels <= 40 ASCII
    characters, type and datatype, length only for char and <= 200, a format for dates, codelist of the same type,
    origin, a source for Predecessor, sources naming a dataset of the spec name one of its variables) and the
    `{parameter}` placeholders of the derivation texts (each declared under `parameters`).
    """
    file = label or Path(path).as_posix()
    where = _Where(file)
    raw = read_yaml(path)
    raw = _mapping(raw, where, "the file")
    _keys(raw, _TOP_KEYS, ("study", "codelists", "datasets"), where)
    study = _mapping(raw["study"], where, "study")
    _keys(study, _STUDY_KEYS, ("studyid",), where, key="study")
    parameters = _mapping(raw.get("parameters") or {}, where, "parameters")
    codelists_raw = _mapping(raw["codelists"], where, "codelists")
    codelists = {str(k): _load_codelist(str(k), v, where) for k, v in codelists_raw.items()}
    datasets_raw = _mapping(raw["datasets"], where, "datasets")
    datasets = {str(k): _load_dataset(str(k), v, where, codelists) for k, v in datasets_raw.items()}
    for dataset in datasets.values():
        for variable in dataset.variables:
            place = {"dataset": dataset.name, "variable": variable.name}
            for entry in variable.source:
                match = _DATASET_SOURCE.match(entry)
                if match and (match.group(1) not in datasets or match.group(2) not in datasets[match.group(1)].names):
                    raise where.error(f"{entry} is not a variable of a dataset of this spec", key="source", **place)
            for name in _PLACEHOLDER.findall(variable.derivation):
                if name not in parameters:
                    raise where.error(f"placeholder {{{name}}} is not declared under `parameters`", key="derivation",
                                      **place)  # fmt: skip
    return AdamSpec(
        file=file,
        spec_version=str(raw.get("spec_version", "")),
        study={str(k): str(v) for k, v in study.items()},
        standard={str(k): str(v) for k, v in (raw.get("standard") or {}).items()},
        parameter_descriptions={str(k): str(v) for k, v in parameters.items()},
        codelists=codelists,
        datasets=datasets,
    )
