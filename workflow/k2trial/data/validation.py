"""Checks of the raw files against the contract and across tables; every problem at once.

`validate_dataset` checks the files k2trial.data.raw_files read and returns a `ValidationResult`: the problems as a
table and the normalised columns the cleaning step reuses. The report and the gate: k2trial.data.validation_report.

Work is done on distinct values and integer codes (see k2trial.data.contract), never per row, so 100,000
subjects (4.5 million diary rows, 5.4 million lab rows) validate in seconds.

Rows are spreadsheet rows (header = 1). Severity of each rule: `RULES`. The order of problems is fixed:
file (contract order), row (file-level problems first), column (contract order), rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from k2trial.core.errors import ERROR, FIXABLE, SEVERITIES, WARNING, Problem
from k2trial.core.io import parse_checksums
from k2trial.core.lab_panel import PANEL_KEY
from k2trial.data import contract as ct
from k2trial.data.contract import Contract, NormalisedColumn, TableSpec
from k2trial.data.raw_files import RawDataset

__all__ = ["ERROR", "FIXABLE", "RULES", "SEVERITIES", "WARNING", "ValidationResult", "validate_dataset"]
#: The 7 fields of a problem in report.json (k2trial.core.errors.Problem).
PROBLEM_FIELDS = ["file", "row", "column", "value", "rule", "severity", "message"]
#: The internal problem table: the report fields plus what cleaning needs (subject, clean value, detail).
PROBLEM_COLUMNS = ["file", "row", "column", "value", "rule", "severity", "subject_id", "new", "detail"]


@dataclass(frozen=True)
class Rule:
    """A validation rule: its severity, what the report says, and the query a data manager sends."""

    severity: str
    message: str
    question: str = ""


RULES: dict[str, Rule] = {
    # Files
    "file_present": Rule(ERROR, "cannot read the file"),
    "utf8_encoding": Rule(ERROR, "cannot read the file"),
    "not_empty": Rule(ERROR, "cannot read the file"),
    "rectangular": Rule(ERROR, "cannot read the file"),
    "no_records": Rule(ERROR, "the file has a header row but no records"),
    "report_stale": Rule(ERROR, "the raw files changed after validation; rerun"),
    "column_missing": Rule(ERROR, "a column of the contract is missing (names are exact)"),
    "column_unexpected": Rule(
        WARNING,
        "column not in the contract; it is not carried into the clean tables",
        "This column is not part of the data contract and is not analysed: what does it hold?",
    ),
    "dataset_yaml_invalid": Rule(ERROR, "dataset.yaml is not a YAML mapping"),
    "dataset_key_missing": Rule(ERROR, "dataset.yaml lacks a required key"),
    "dataset_value_invalid": Rule(ERROR, "dataset.yaml has an invalid value"),
    ct.DECLARATION_INVALID: Rule(
        ERROR, "dataset.yaml declares the subject IDs or sites in a way that cannot be used; values were not checked"
    ),
    "checksum_mismatch": Rule(ERROR, "the file does not match its SHA256SUMS checksum: it changed"),
    "checksum_line_invalid": Rule(ERROR, 'not a "<sha256>  <file name>" line'),
    "checksum_not_listed": Rule(
        WARNING, "the file has no line in SHA256SUMS, so a change cannot be detected", "Please add the file's checksum."
    ),
    # Values
    "required_missing": Rule(ERROR, "a required value is missing"),
    "subject_id_invalid": Rule(ERROR, "not a subject ID"),
    "category_invalid": Rule(ERROR, "not a level of this column"),
    "site_undeclared": Rule(ERROR, "site not declared"),
    "yes_no_invalid": Rule(ERROR, "not a yes/no value"),
    "visit_invalid": Rule(ERROR, "not a visit of this file"),
    "symptom_invalid": Rule(ERROR, "not a symptom of the contract"),
    "number_invalid": Rule(ERROR, "not a number"),
    "integer_invalid": Rule(ERROR, "not a whole number"),
    "date_invalid": Rule(ERROR, "not a date the contract accepts"),
    "lab_result_invalid": Rule(ERROR, "not a lab result"),
    "test_code_unknown": Rule(ERROR, "unknown test code"),
    "unit_unknown": Rule(ERROR, "unknown unit"),
    "unit_not_allowed": Rule(ERROR, "the unit is not accepted for this test (no conversion factor)"),
    "panel_test_absent": Rule(
        WARNING,
        "a test of the study's lab panel has no record in the file",
        "The study's lab panel declares this test, but no result was recorded: was it measured?",
    ),
    ct.FIX_WHITESPACE: Rule(FIXABLE, "surrounding whitespace; cleaning removes it"),
    ct.FIX_SUBJECT_ID: Rule(FIXABLE, "subject ID spelling; cleaning writes the canonical ID"),
    ct.FIX_CATEGORY: Rule(FIXABLE, "label variant; cleaning writes the canonical level"),
    ct.FIX_YES_NO: Rule(FIXABLE, "yes/no variant; cleaning writes yes or no"),
    ct.FIX_VISIT: Rule(FIXABLE, "visit label variant; cleaning writes the canonical label"),
    ct.FIX_SYMPTOM: Rule(FIXABLE, "symptom synonym; cleaning writes the canonical name"),
    ct.FIX_DECIMAL_COMMA: Rule(FIXABLE, "decimal comma; cleaning reads it as a decimal point"),
    ct.FIX_DAY_FIRST: Rule(FIXABLE, "day-first date from a day-first site; cleaning writes it as ISO"),
    ct.FIX_TEST_CODE: Rule(FIXABLE, "test code alias; cleaning writes the canonical code"),
    ct.FIX_UNIT: Rule(FIXABLE, "unit spelling; cleaning writes the canonical unit"),
    ct.OUT_OF_RANGE: Rule(
        FIXABLE,
        "impossible value; cleaning sets it missing and raises a query",
        "The value is impossible; please check the source document and give the correct value",
    ),
    "duplicate_row": Rule(FIXABLE, "exact duplicate of an earlier row; cleaning removes it"),
    "duplicate_key": Rule(ERROR, "another row has the same key but different values"),
    # Across tables
    "subject_unknown": Rule(ERROR, "subject ID not in subjects.csv"),
    "date_before_consent": Rule(ERROR, "date before the subject's consent date"),
    "before_first_dose": Rule(ERROR, "post-baseline assessment dated before the first dose"),
    "dose_dates_order": Rule(ERROR, "last dose date before first dose date"),
    "visit_window": Rule(
        WARNING,
        "visit date outside its window (the study config's protocol: diary window_days, clinic_visits)",
        "The visit date is outside the protocol window; please confirm the date",
    ),
    "baseline_missing": Rule(
        WARNING, "no baseline value", "No baseline value was recorded; please confirm whether one exists"
    ),
    "anticoagulant_use": Rule(
        WARNING,
        "anticoagulant use: protocol deviation (vitamin K interacts with vitamin K antagonists)",
        "The subject takes an anticoagulant (protocol deviation); please confirm the drug, dose and INR monitoring",
    ),
    "withdrawal_reason_missing": Rule(
        WARNING, "withdrawn subject without a withdrawal reason", "Please give the reason for withdrawal"
    ),
    "capsules_returned_exceed_dispensed": Rule(
        WARNING, "more capsules returned than dispensed", "Please check the capsule counts"
    ),
    "ae_end_before_onset": Rule(WARNING, "adverse event ends before its onset", "Please check the onset and end dates"),
}


# --------------------------------------------------------------------------------------------------
# Problem tables
# --------------------------------------------------------------------------------------------------
def _problem_frame(
    file: str,
    row: Any,
    column: Any,
    value: Any,
    rule: Any,
    subject_id: Any = None,
    new: Any = None,
    detail: Any = "",
) -> pd.DataFrame:
    """A problem table; scalars are broadcast to the length of the array arguments."""
    arrays = [a for a in (row, column, value, rule, subject_id, new, detail) if isinstance(a, (np.ndarray, list))]
    n = len(arrays[0]) if arrays else 1

    def full(x: Any, dtype: Any = object) -> np.ndarray:
        if isinstance(x, (np.ndarray, list)):
            return np.asarray(x, dtype=dtype)
        return np.full(n, x, dtype=dtype)

    rows = row if isinstance(row, (np.ndarray, list)) else np.full(n, -1 if row is None else row)
    return pd.DataFrame(
        {
            "file": full(file),
            "row": np.asarray(rows, dtype=np.int64),
            "column": full(column),
            "value": full(value),
            "rule": full(rule),
            "severity": "",
            "subject_id": full(subject_id),
            "new": full(new),
            "detail": full(detail),
        }
    )


def _from_problems(problems: list[Problem]) -> pd.DataFrame:
    if not problems:
        return _empty_problems()
    return pd.concat(
        [_problem_frame(p.file, p.row, p.column, p.value, p.rule, detail=p.message) for p in problems],
        ignore_index=True,
    )


def _empty_problems() -> pd.DataFrame:
    return _problem_frame("", np.zeros(0, dtype=np.int64), "", "", "")


# --------------------------------------------------------------------------------------------------
# Normalised tables
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NormalisedTable:
    """A raw table read under the contract: `_row` numbers and the normalised contract columns present."""

    spec: TableSpec
    rows: np.ndarray
    columns: dict[str, NormalisedColumn]
    extra_columns: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.rows)

    def subject_text(self) -> np.ndarray:
        """Per row: canonical subject ID, else the raw text (for problem listings)."""
        column = self.columns.get("subject_id")
        if column is None:
            return np.full(len(self.rows), None, dtype=object)
        text = column.text.copy()
        unreadable = text == None  # noqa: E711 (element-wise comparison on an object array)
        text[unreadable] = column.raw[unreadable]
        return text[column.codes]


@dataclass(frozen=True)
class SubjectIndex:
    """Per subject of subjects.csv (first record of an ID): the dates the cross-table checks use."""

    ids: pd.Index
    day_first: np.ndarray
    site: np.ndarray
    consent: np.ndarray
    first_dose: np.ndarray
    last_dose: np.ndarray

    def locate(self, column: NormalisedColumn) -> np.ndarray:
        """Per row of a subject_id column: position in this index, -1 when unknown or unreadable."""
        per_value = self.ids.get_indexer(pd.Index(column.text.astype(object)))
        return per_value[column.codes]

    def take(self, array: np.ndarray, position: np.ndarray) -> np.ndarray:
        """array[position], with NaT/False where position is -1."""
        if len(array) == 0:
            fill = np.datetime64("NaT") if array.dtype.kind == "M" else False
            return np.full(len(position), fill, dtype=array.dtype)
        out = array[np.maximum(position, 0)]
        missing = position < 0
        if array.dtype.kind == "M":
            out = out.copy()
            out[missing] = np.datetime64("NaT")
        else:
            out = np.where(missing, False, out)
        return out


@dataclass(frozen=True)
class ValidationResult:
    """Problems (all, sorted; columns PROBLEM_COLUMNS) and the normalised tables cleaning reuses.

    contract: the contract the values were checked against, with the declarations of dataset.yaml in force
    (None when those declarations could not be used and values were not checked).
    """

    problems: pd.DataFrame
    tables: dict[str, NormalisedTable]
    file_hashes: dict[str, str]
    data_version: str | None
    contract_version: str
    contract: Contract | None = None

    @property
    def declared(self) -> bool:
        """True when dataset.yaml declared the subject IDs or the sites (and the declarations were used)."""
        c = self.contract
        return c is not None and (c.subject_id_declared or c.sites_source != "codebook.yaml")

    def declarations(self) -> dict[str, Any] | None:
        """The subject-ID and site conventions in force and where each was stated (contract.declarations_record)."""
        return None if self.contract is None else ct.declarations_record(self.contract)

    @property
    def status(self) -> str:
        return "failed" if (self.problems["severity"] == ERROR).any() else "passed"

    def errors(self) -> list[Problem]:
        """The error problems as Problem objects (for InputDataError)."""
        return to_problem_list(self.problems[self.problems["severity"] == ERROR])


def _rule_for_status(column: NormalisedColumn, spec: ct.ColumnSpec) -> np.ndarray:
    """Per distinct value: the rule a row with this value breaks (None when the value is fine)."""
    rule = np.full(len(column.status), None, dtype=object)
    fix = np.isin(column.status, ct.FIX_RULES)
    rule[fix] = column.status[fix]
    rule[column.status == ct.OUT_OF_RANGE] = ct.OUT_OF_RANGE
    invalid = column.status == ct.INVALID
    if invalid.any():
        rule[invalid] = ct.INVALID_RULES[spec.type]
    if spec.required:
        rule[column.status == ct.MISSING] = "required_missing"
    return rule


def _column_problems(
    table: NormalisedTable,
    spec: ct.ColumnSpec,
    subjects: np.ndarray,
    site_of: Callable[[np.ndarray], np.ndarray] | None = None,
    contract: Contract | None = None,
) -> pd.DataFrame:
    """The problems of one column. site_of (with `contract`): the site of the rows at the given positions, named in
    the message of a day-first date from a site not declared day_first (asked only for those rows)."""
    column = table.columns[spec.name]
    rule = _rule_for_status(column, spec)
    flagged = np.flatnonzero((rule != None)[column.codes])  # noqa: E711
    if len(flagged) == 0:
        return _empty_problems()
    distinct = column.codes[flagged]
    detail = column.detail[distinct]
    if spec.type == "date" and site_of is not None and contract is not None:
        elsewhere = np.flatnonzero(detail == ct.DAY_FIRST_ELSEWHERE)
        if len(elsewhere):
            detail = detail.copy()
            detail[elsewhere] = [_day_first_elsewhere(site, contract) for site in site_of(flagged[elsewhere])]
    return _problem_frame(
        table.spec.name,
        table.rows[flagged],
        spec.name,
        column.raw[distinct],
        rule[distinct],
        subject_id=subjects[flagged],
        new=column.text[distinct],
        detail=detail,
    )


def _day_first_elsewhere(site: Any, contract: Contract) -> str:
    """Why a day-first date is not read: the row's site and the sites declared day_first."""
    day_first = [s for s, flag in contract.site_day_first.items() if flag]
    which = ("day-first sites: " + ", ".join(day_first)) if day_first else "no site is declared day_first"
    return (
        f"{ct.DAY_FIRST_ELSEWHERE}: site {site} has day_first: false in the sites of {contract.sites_source} "
        f"({which}); write the date as YYYY-MM-DD"
    )


def _row_problems(
    table: NormalisedTable, mask: np.ndarray, column: str, rule: str, detail: Any = "", value: Any = None
) -> pd.DataFrame:
    """Problems for the rows in `mask` (value: the raw text of `column` unless given).

    detail: a string, an array over all rows, or a function of the flagged row positions (so that
    per-row text is only built for the rows that have the problem).
    """
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return _empty_problems()
    if value is None:
        value = table.columns[column].row_raw()[idx] if column in table.columns else None
    elif isinstance(value, np.ndarray):
        value = value[idx]
    if callable(detail):
        detail = detail(idx)
    elif isinstance(detail, np.ndarray):
        detail = detail[idx]
    return _problem_frame(
        table.spec.name, table.rows[idx], column, value, rule, subject_id=table.subject_text()[idx], detail=detail
    )


def _identity_codes(column: NormalisedColumn) -> np.ndarray:
    """Per row: an integer that is equal for equal canonical values (unreadable values: equal raw text)."""
    identity = column.text.copy()
    unreadable = identity == None  # noqa: E711
    identity[unreadable] = np.array(["\x00" + str(r).strip() for r in column.raw[unreadable]], dtype=object)
    per_value, _ = pd.factorize(pd.Series(identity, dtype=object))
    return per_value[column.codes]


def _duplicate_problems(table: NormalisedTable) -> tuple[pd.DataFrame, np.ndarray]:
    """Exact duplicates (fixable) and conflicting duplicated keys (error). Returns problems, duplicate mask."""
    names = [c for c in table.spec.column_names if c in table.columns]
    n = len(table)
    if n == 0 or not names:
        return _empty_problems(), np.zeros(n, dtype=bool)
    ids = {name: _identity_codes(table.columns[name]) for name in names}
    group = _group_ids([ids[name] for name in names])
    first_position = _first_positions(group)
    duplicate = first_position != np.arange(n)
    pieces = []
    if duplicate.any():
        full_detail = np.full(n, "", dtype=object)
        full_detail[duplicate] = "duplicate of row " + _as_text(table.rows[first_position[duplicate]])
        pieces.append(_row_problems(table, duplicate, "*", "duplicate_row", detail=full_detail, value=""))
    key = [k for k in table.spec.key if k in table.columns]
    if key and len(key) == len(table.spec.key):
        usable = ~duplicate
        for k in key:
            usable &= table.columns[k].usable()
        candidates = np.flatnonzero(usable)
        key_group = _group_ids([ids[k][candidates] for k in key])
        first = candidates[_first_positions(key_group)]
        conflict = first != candidates
        if conflict.any():
            rows_at, first_at = candidates[conflict], first[conflict]
            others = [c for c in names if c not in key]
            matrix = np.column_stack([ids[c] for c in others])
            differs = matrix[rows_at] != matrix[first_at]
            which = np.argmax(differs, axis=1)
            column_names = np.asarray(others, dtype=object)[which]
            values = np.empty(len(rows_at), dtype=object)
            first_values = np.empty(len(rows_at), dtype=object)
            for j, name in enumerate(others):  # loop over columns, not rows
                hit = which == j
                if hit.any():
                    raw = table.columns[name].row_raw()
                    values[hit] = raw[rows_at[hit]]
                    first_values[hit] = raw[first_at[hit]]
            detail = (
                "row "
                + _as_text(table.rows[first_at])
                + f" has the same {', '.join(key)} with "
                + column_names
                + " = '"
                + first_values
                + "'"
            )
            pieces.append(
                _problem_frame(
                    table.spec.name,
                    table.rows[rows_at],
                    column_names,
                    values,
                    "duplicate_key",
                    subject_id=table.subject_text()[rows_at],
                    detail=detail,
                )
            )
    return (pd.concat(pieces, ignore_index=True) if pieces else _empty_problems()), duplicate


def _group_ids(columns: list[np.ndarray]) -> np.ndarray:
    """One int64 per row that is equal exactly for equal combinations of the integer code columns.

    Codes are packed positionally (key x width + code); the key is re-densified only when the next
    column would overflow int64, which for contract tables happens at most once or twice.
    """
    n = len(columns[0]) if columns else 0
    group = np.zeros(n, dtype=np.int64)
    span = 1  # group < span
    for codes in columns:
        width = int(codes.max()) + 1 if n else 1
        if span * width >= 2**62:
            group, distinct = pd.factorize(group, sort=False)
            group, span = group.astype(np.int64, copy=False), max(len(distinct), 1)
        group = group * width + codes
        span *= width
    return group


def _first_positions(group: np.ndarray) -> np.ndarray:
    """For each row, the position of the first row with the same group key."""
    _, first, inverse = np.unique(group, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)]


def _as_text(numbers: np.ndarray) -> np.ndarray:
    """Integers as an object array of str, for vectorised message building."""
    return np.asarray(numbers).astype(str).astype(object)


def _normalise_table(
    frame: pd.DataFrame,
    spec: TableSpec,
    contract: Contract,
    day_first: np.ndarray | None,
    done: Mapping[str, NormalisedColumn] | None = None,
) -> NormalisedTable:
    columns = dict(done or {})
    for column in spec.columns:
        if column.name in frame.columns and column.name not in columns:
            columns[column.name] = ct.normalise_column(frame[column.name], column, contract, day_first=day_first)
    extra = tuple(c for c in frame.columns if c != "_row" and c not in spec.column_names)
    return NormalisedTable(spec, frame["_row"].to_numpy(dtype=np.int64), columns, extra)


def _subject_index(subjects: NormalisedTable | None, contract: Contract) -> SubjectIndex | None:
    if subjects is None or "subject_id" not in subjects.columns:
        return None
    ids = subjects.columns["subject_id"].row_text()
    keep = (ids != None) & ~pd.Series(ids, dtype=object).duplicated().to_numpy()  # noqa: E711
    positions = np.flatnonzero(keep)

    def dates(name: str) -> np.ndarray:
        if name not in subjects.columns:
            return np.full(len(positions), np.datetime64("NaT"), dtype="datetime64[ns]")
        return subjects.columns[name].row_values()[positions].astype("datetime64[ns]")

    site = subjects.columns.get("site")
    if site is None:
        day_first = np.zeros(len(positions), dtype=bool)
        site_text = np.full(len(positions), None, dtype=object)
    else:
        day_first = _site_day_first(site, contract)[positions]
        site_text = site.row_text()[positions]
    return SubjectIndex(
        ids=pd.Index(ids[positions].astype(object)),
        day_first=day_first,
        site=site_text,
        consent=dates("consent_date"),
        first_dose=dates("first_dose_date"),
        last_dose=dates("last_dose_date"),
    )


def _rows_of(column: NormalisedColumn, rows: np.ndarray) -> np.ndarray:
    """The canonical text of a column at row positions `rows`."""
    return column.text[column.codes[rows]]


def _subject_sites(sites: np.ndarray, position: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The site of the subject of each row at positions `rows` (None where the subject is unknown)."""
    at = position[rows]
    return np.where(at >= 0, sites[np.maximum(at, 0)] if len(sites) else None, None)


def _site_day_first(site: NormalisedColumn, contract: Contract) -> np.ndarray:
    """Per row: whether the row's site writes day-first dates (True where the site is unreadable, so
    that the site error is not repeated as date errors)."""
    per_value = np.array([bool(contract.site_day_first.get(s, True)) if s else True for s in site.text], dtype=bool)
    return per_value[site.codes]


# --------------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------------
def validate_dataset(raw: RawDataset, contract: Contract, visit_windows: Mapping[str, int]) -> ValidationResult:
    """Check every raw file against the contract and the tables against each other.

    The subject-ID pattern and the sites that dataset.yaml declares are in force (contract.apply_declarations);
    when a declaration cannot be used, that is the error reported and the values are not checked.
    visit_windows: from the study config's protocol (workflow/rules/common.smk VISIT_WINDOWS): diary_days (the diary
    window), clinic_visits (per clinic visit: week, target day after the first dose, window_days) and
    baseline_days_before_first_dose.
    Returns all problems, sorted; nothing is raised for bad data.
    """
    pieces = [_from_problems(raw.read_problems)]
    pieces.append(_check_description(raw.description, contract))
    if raw.checksums is not None:
        pieces.append(_check_checksums(raw.checksums, raw.file_hashes, contract))
    unusable = ct.declaration_problems(raw.description)
    if unusable:
        for problem in unusable:
            pieces.append(
                _problem_frame(
                    contract.dataset_file.name,
                    None,
                    problem.key,
                    problem.value,
                    ct.DECLARATION_INVALID,
                    detail=problem.message,
                )  # fmt: skip
            )
        problems = _finalise(pd.concat([p for p in pieces if len(p)], ignore_index=True), contract)
        return ValidationResult(problems, {}, dict(raw.file_hashes), raw.data_version, contract.version, None)
    contract = ct.apply_declarations(contract, raw.description)
    tables: dict[str, NormalisedTable] = {}
    subjects: SubjectIndex | None = None
    for name, spec in contract.tables.items():
        frame = raw.tables.get(name)
        if frame is None:
            continue
        day_first = None
        site_of = None
        done: dict[str, NormalisedColumn] = {}
        if name == "subjects.csv":
            if "site" in frame.columns:
                done["site"] = ct.normalise_column(frame["site"], spec.column("site"), contract)
                day_first = _site_day_first(done["site"], contract)
                site_of = partial(_rows_of, done["site"])
        elif "subject_id" in frame.columns:
            done["subject_id"] = ct.normalise_subject_ids(frame["subject_id"], contract)
            # Where the site is unknown (unreadable subjects.csv, unknown subject) day-first dates are
            # accepted: the root cause is reported once, not again as a date error on every row.
            if subjects is None:
                day_first = np.ones(len(frame), dtype=bool)
            else:
                position = subjects.locate(done["subject_id"])
                day_first = np.where(position >= 0, subjects.take(subjects.day_first, position), True)
                site_of = partial(_subject_sites, subjects.site, position)
        table = _normalise_table(frame, spec, contract, day_first, done)
        tables[name] = table
        if name == "subjects.csv":
            subjects = _subject_index(table, contract)
        pieces.append(_check_table_shape(table))
        subject_text = table.subject_text()
        for column in spec.columns:
            if column.name in table.columns:
                pieces.append(_column_problems(table, column, subject_text, site_of, contract))
        duplicates, _ = _duplicate_problems(table)
        pieces.append(duplicates)
    if "labs.csv" in tables:
        pieces.append(_check_lab_units(tables["labs.csv"], contract))
        pieces.append(_check_panel_tests(tables["labs.csv"], contract))
    if subjects is not None:
        pieces.append(_check_subject_records(tables["subjects.csv"], contract))
        for name, table in tables.items():
            if name != "subjects.csv" and "subject_id" in table.columns:
                pieces.append(_check_known_subjects(table, subjects))
        pieces.append(_check_dates(tables, subjects, contract, visit_windows))
        pieces.append(_check_baselines(tables, subjects, contract))
    if "dosing.csv" in tables:
        pieces.append(_check_capsules(tables["dosing.csv"]))
    problems = pd.concat([p for p in pieces if len(p)], ignore_index=True) if any(len(p) for p in pieces) else None
    problems = _finalise(problems if problems is not None else _empty_problems(), contract)
    return ValidationResult(problems, tables, dict(raw.file_hashes), raw.data_version, contract.version, contract)


def _check_table_shape(table: NormalisedTable) -> pd.DataFrame:
    spec = table.spec
    pieces = []
    missing = [c for c in spec.column_names if c not in table.columns]
    if missing:
        pieces.append(
            _problem_frame(spec.name, None, np.asarray(missing, dtype=object), None, "column_missing", detail="")
        )
    if table.extra_columns:
        pieces.append(
            _problem_frame(spec.name, None, np.asarray(table.extra_columns, dtype=object), None, "column_unexpected")
        )
    if len(table) == 0 and not spec.may_be_empty:
        pieces.append(_problem_frame(spec.name, None, None, None, "no_records"))
    return pd.concat(pieces, ignore_index=True) if pieces else _empty_problems()


def _check_description(description: Any, contract: Contract) -> pd.DataFrame:
    """dataset.yaml: a mapping with the required keys; `simulated` a boolean; generator and seed if simulated."""
    spec = contract.dataset_file
    if description is None:
        return _empty_problems()
    if not isinstance(description, Mapping):
        return _problem_frame(spec.name, None, None, None, "dataset_yaml_invalid", detail="expected key: value lines")
    pieces = []

    def absent(key: str) -> bool:
        return description.get(key) is None or description.get(key) == ""

    for key in spec.required_keys:
        if absent(key):
            pieces.append(_problem_frame(spec.name, None, key, None, "dataset_key_missing"))
    simulated = description.get("simulated")
    if simulated is not None and not isinstance(simulated, bool):
        pieces.append(
            _problem_frame(
                spec.name, None, "simulated", str(simulated), "dataset_value_invalid", detail="expected true or false"
            )
        )
    if simulated is True:
        for key in spec.required_when_simulated:
            if absent(key):
                pieces.append(
                    _problem_frame(spec.name, None, key, None, "dataset_key_missing", detail="required when simulated")
                )
    return pd.concat(pieces, ignore_index=True) if pieces else _empty_problems()


def _check_checksums(text: str, file_hashes: Mapping[str, str], contract: Contract) -> pd.DataFrame:
    """SHA256SUMS (sha256sum format): a changed data file is an error naming that file."""
    listed, malformed = parse_checksums(text)
    pieces = [
        _problem_frame(contract.checksums_file, number, None, line[:80], "checksum_line_invalid")
        for number, line in malformed
    ]
    for name, actual in file_hashes.items():
        expected = listed.get(name)
        if expected is None:
            pieces.append(_problem_frame(name, None, None, None, "checksum_not_listed"))
        elif expected != actual:
            detail = f"SHA256SUMS has {expected[:12]}..., the file has {actual[:12]}..."
            pieces.append(_problem_frame(name, None, None, None, "checksum_mismatch", detail=detail))
    return pd.concat(pieces, ignore_index=True) if pieces else _empty_problems()


def _check_lab_units(labs: NormalisedTable, contract: Contract) -> pd.DataFrame:
    """A readable unit that the row's (readable) test does not accept is an error."""
    if "test_code" not in labs.columns or "unit" not in labs.columns:
        return _empty_problems()
    test, unit = labs.columns["test_code"], labs.columns["unit"]
    width = len(unit.raw)
    codes, distinct = pd.factorize(test.codes * width + unit.codes)
    t_codes, u_codes = distinct // width, distinct % width
    factor = ct.lab_factors(test.text[t_codes], unit.text[u_codes], contract)
    bad = np.isnan(factor) & (test.text[t_codes] != None) & (unit.text[u_codes] != None)  # noqa: E711
    accepted = {code: ", ".join(t.units) for code, t in contract.lab_tests.items()}
    detail = np.array(
        [
            f"{t} is reported in {accepted.get(t, '?')}" if b else ""
            for t, b in zip(test.text[t_codes], bad, strict=True)
        ],
        dtype=object,
    )
    return _row_problems(labs, bad[codes], "unit", "unit_not_allowed", detail=detail[codes])


def _check_panel_tests(labs: NormalisedTable, contract: Contract) -> pd.DataFrame:
    """A test of the declared lab panel (contract.lab_panel) without a single record in labs.csv (warning, naming
    the test); nothing is expected when the study config lists its tests."""
    if not contract.lab_panel or "test_code" not in labs.columns:
        return _empty_problems()
    column = labs.columns["test_code"]
    recorded = set(column.text[np.unique(column.codes)]) if len(column.codes) else set()
    absent = [code for code in contract.lab_panel if code not in recorded]
    if not absent:
        return _empty_problems()
    detail = [f"{code} (study config {PANEL_KEY}) has no record in {labs.spec.name}" for code in absent]
    return _problem_frame(
        labs.spec.name, None, "test_code", np.asarray(absent, dtype=object), "panel_test_absent", detail=detail
    )


def _check_subject_records(subjects: NormalisedTable, contract: Contract) -> pd.DataFrame:
    """Within subjects.csv: dose dates in order, anticoagulant use, withdrawal reason."""
    pieces = []
    cols = subjects.columns
    if "first_dose_date" in cols and "last_dose_date" in cols:
        first, last = cols["first_dose_date"].row_values(), cols["last_dose_date"].row_values()
        pieces.append(_row_problems(subjects, last < first, "last_dose_date", "dose_dates_order"))
    if "anticoagulant" in cols:
        pieces.append(
            _row_problems(subjects, cols["anticoagulant"].row_text() == "yes", "anticoagulant", "anticoagulant_use")
        )
    if "status" in cols and "withdrawal_reason" in cols:
        withdrawn = (cols["status"].row_text() == "withdrawn") & cols["withdrawal_reason"].rows_with(ct.MISSING)
        pieces.append(_row_problems(subjects, withdrawn, "withdrawal_reason", "withdrawal_reason_missing"))
    return pd.concat(pieces, ignore_index=True) if pieces else _empty_problems()


def _check_known_subjects(table: NormalisedTable, subjects: SubjectIndex) -> pd.DataFrame:
    column = table.columns["subject_id"]
    unknown = column.usable() & (subjects.locate(column) < 0)
    return _row_problems(table, unknown, "subject_id", "subject_unknown")


def _days(n: int) -> np.timedelta64:
    return np.timedelta64(int(n), "D")


def _iso(dates: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(dates.astype("datetime64[D]"), unit="D").astype(object)


def _check_dates(
    tables: Mapping[str, NormalisedTable], subjects: SubjectIndex, contract: Contract, windows: Mapping[str, int]
) -> pd.DataFrame:
    """Dates before consent (error), post-baseline before first dose (error), visits outside windows (warning)."""
    pieces = []
    table = tables["subjects.csv"]
    if "consent_date" in table.columns:
        consent = table.columns["consent_date"].row_values()
        for name in ("first_dose_date", "last_dose_date"):
            if name in table.columns:
                pieces.append(
                    _row_problems(table, table.columns[name].row_values() < consent, name, "date_before_consent")
                )
    # per file: study week -> (target day after the first dose, window in days); the diary's week k at day 7k
    schedule = {"labs.csv": {int(v["week"]): (int(v["day"]), int(v["window_days"])) for v in windows["clinic_visits"]}}
    date_columns = {
        "symptom_diary.csv": "assessment_date",
        "labs.csv": "sample_date",
        "adverse_events.csv": "onset_date",
    }
    for name, date_column in date_columns.items():
        table = tables.get(name)
        if table is None or date_column not in table.columns or "subject_id" not in table.columns:
            continue
        position = subjects.locate(table.columns["subject_id"])
        date = table.columns[date_column].row_values()
        consent = subjects.take(subjects.consent, position)
        pieces.append(
            _row_problems(
                table,
                date < consent,
                date_column,
                "date_before_consent",
                detail=partial(_dated, "consent", consent),
            )
        )
        if name == "adverse_events.csv":
            if "end_date" in table.columns:
                ends_early = table.columns["end_date"].row_values() < date
                pieces.append(_row_problems(table, ends_early, "end_date", "ae_end_before_onset"))
            continue
        if "visit" not in table.columns:
            continue
        week = table.columns["visit"].map_rows(lambda t: ct.visit_weeks(t, contract))
        first = subjects.take(subjects.first_dose, position)
        early = (week > 0) & (date < first)
        pieces.append(
            _row_problems(table, early, date_column, "before_first_dose", detail=partial(_dated, "first dose", first))
        )
        weeks = np.maximum(week, 0)
        day, window = weeks * 7, np.full(len(weeks), int(windows["diary_days"]))
        for visit_week, (visit_day, visit_window) in schedule.get(name, {}).items():
            day, window = (
                np.where(weeks == visit_week, visit_day, day),
                np.where(weeks == visit_week, visit_window, window),
            )
        target = first + day.astype("timedelta64[D]")
        tolerance = window.astype("timedelta64[D]")
        post = (week > 0) & (np.abs(date - target) > tolerance) & ~early
        lead = _days(windows["baseline_days_before_first_dose"])
        base = (week == 0) & ((date > first) | (date < first - lead))
        outside = post | base
        if outside.any():
            detail = np.full(len(date), "", dtype=object)
            idx = np.flatnonzero(post)
            detail[idx] = "expected " + _iso(target[idx]) + " +/- " + window[idx].astype(str).astype(object) + " days"
            idx = np.flatnonzero(base)
            detail[idx] = "expected between " + _iso((first - lead)[idx]) + " and the first dose on " + _iso(first[idx])
            pieces.append(_row_problems(table, outside, date_column, "visit_window", detail=detail))
    return pd.concat(pieces, ignore_index=True) if pieces else _empty_problems()


def _dated(event: str, dates: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """ "<event> on YYYY-MM-DD" for the dates at `rows` (never NaT where a date comparison flagged a row)."""
    return f"{event} on " + _iso(dates[rows])


def _check_baselines(tables: Mapping[str, NormalisedTable], subjects: SubjectIndex, contract: Contract) -> pd.DataFrame:
    """Missing baseline (warning): a subject x symptom without a baseline VAS; a subject x test measured
    after baseline but without a baseline result."""
    pieces = []
    n_subjects = len(subjects.ids)
    diary = tables.get("symptom_diary.csv")
    if diary is not None and {"subject_id", "visit", "symptom", "vas_cm"} <= set(diary.columns):
        symptoms = list(contract.symptoms)
        position = subjects.locate(diary.columns["subject_id"])
        symptom = diary.columns["symptom"].map_rows(lambda t: ct.category_order(t, symptoms))
        week = diary.columns["visit"].map_rows(lambda t: ct.visit_weeks(t, contract))
        vas = diary.columns["vas_cm"]
        has_value = ~vas.rows_with(ct.MISSING, ct.INVALID, ct.OUT_OF_RANGE)
        ok = (position >= 0) & (symptom < len(symptoms)) & (week == 0) & has_value
        seen = np.zeros(n_subjects * len(symptoms), dtype=bool)
        seen[position[ok] * len(symptoms) + symptom[ok]] = True
        missing = np.flatnonzero(~seen)
        if len(missing):
            subject_ids = np.asarray(subjects.ids, dtype=object)[missing // len(symptoms)]
            names = np.asarray(symptoms, dtype=object)[missing % len(symptoms)]
            detail = "no baseline VAS for " + subject_ids + " (" + names + ")"
            pieces.append(
                _problem_frame(
                    "symptom_diary.csv",
                    None,
                    "vas_cm",
                    names,
                    "baseline_missing",
                    subject_id=subject_ids,
                    detail=detail,
                )
            )
    labs = tables.get("labs.csv")
    if labs is not None and {"subject_id", "visit", "test_code", "result"} <= set(labs.columns):
        codes = list(contract.lab_tests)
        position = subjects.locate(labs.columns["subject_id"])
        test = labs.columns["test_code"].map_rows(lambda t: ct.category_order(t, codes))
        week = labs.columns["visit"].map_rows(lambda t: ct.visit_weeks(t, contract))
        has_value = labs.columns["result"].usable()
        ok = (position >= 0) & (test < len(codes)) & has_value
        cell = position * len(codes) + test
        base = np.zeros(n_subjects * len(codes), dtype=bool)
        base[cell[ok & (week == 0)]] = True
        later = np.zeros(n_subjects * len(codes), dtype=bool)
        later[cell[ok & (week > 0)]] = True
        missing = np.flatnonzero(later & ~base)
        if len(missing):
            subject_ids = np.asarray(subjects.ids, dtype=object)[missing // len(codes)]
            names = np.asarray(codes, dtype=object)[missing % len(codes)]
            detail = "no baseline result for " + subject_ids + " (" + names + "), although later visits have one"
            pieces.append(
                _problem_frame(
                    "labs.csv", None, "result", names, "baseline_missing", subject_id=subject_ids, detail=detail
                )
            )
    return pd.concat(pieces, ignore_index=True) if pieces else _empty_problems()


def _check_capsules(dosing: NormalisedTable) -> pd.DataFrame:
    if "capsules_dispensed" not in dosing.columns or "capsules_returned" not in dosing.columns:
        return _empty_problems()
    dispensed = dosing.columns["capsules_dispensed"].row_values()
    returned = dosing.columns["capsules_returned"].row_values()
    return _row_problems(dosing, returned > dispensed, "capsules_returned", "capsules_returned_exceed_dispensed")


# --------------------------------------------------------------------------------------------------
# Order, severity and the report
# --------------------------------------------------------------------------------------------------
def file_order(contract: Contract) -> list[str]:
    """Files in the order problems are listed: dataset.yaml, the CSV files in contract order, SHA256SUMS."""
    return [contract.dataset_file.name, *contract.table_names, contract.checksums_file]


def _sorted_codes(values: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Codes and distinct values (None for missing) of a column, with codes in sorted text order."""
    codes, distinct = pd.factorize(values, sort=False, use_na_sentinel=False)
    names = [None if (isinstance(d, float) and np.isnan(d)) or d is None else str(d) for d in distinct]
    order = sorted(range(len(names)), key=lambda i: "" if names[i] is None else names[i])
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    return rank[codes], [names[i] for i in order]


def _finalise(problems: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Add severities and sort by file (contract order), row, column (contract order), rule.

    Each text column is factorized once; ranks come from lookups on the few distinct values.
    """
    rule_code, rules = _sorted_codes(problems["rule"])
    unknown = set(rules) - set(RULES)
    if unknown:
        raise KeyError(f"validation rules without a severity: {sorted(unknown)}")
    severities = np.array([RULES[r].severity for r in rules], dtype=object)
    file_code, files = _sorted_codes(problems["file"])
    column_code, columns = _sorted_codes(problems["column"])
    order_of_files = file_order(contract)
    file_rank = np.array([order_of_files.index(f) if f in order_of_files else len(order_of_files) for f in files])
    # column rank within its file: contract order ("*" first); file-level problems (no column) before all
    column_rank = np.full((len(files), len(columns)), len(columns) + 1, dtype=np.int64)
    for i, file in enumerate(files):
        spec = contract.tables.get(file)
        order = ["*", *(spec.column_names if spec else ())]
        for j, column in enumerate(columns):
            column_rank[i, j] = -1 if column is None else (order.index(column) if column in order else len(order))
    keys = (
        rule_code,
        column_code,
        column_rank[file_code, column_code],
        problems["row"].to_numpy(),
        file_code,
        file_rank[file_code],
    )
    order = np.lexsort(keys)  # the last key is the primary one
    problems = problems.iloc[order].reset_index(drop=True)
    problems["severity"] = severities[rule_code[order]]
    problems["row"] = problems["row"].astype("Int64").mask(problems["row"] < 0)
    return problems[PROBLEM_COLUMNS]


def compose_messages(problems: pd.DataFrame) -> list[str]:
    """The report message of each problem: the rule's message, the clean value for fixes, the detail."""
    messages = []
    for rule, new, detail in zip(problems["rule"], problems["new"], problems["detail"], strict=True):
        text = RULES[rule].message
        if RULES[rule].severity == FIXABLE and isinstance(new, str):
            text += f" (clean value {new!r})"
        if isinstance(detail, str) and detail and detail != text:
            text += f": {detail}"
        messages.append(text)
    return messages


def to_problem_list(problems: pd.DataFrame) -> list[Problem]:
    """Problem objects for the rows of a problem table."""
    messages = compose_messages(problems)
    return [
        Problem(
            file=str(f),
            row=None if pd.isna(r) else int(r),
            column=None if not isinstance(c, str) else c,
            value=None if not isinstance(v, str) else v,
            rule=str(rule),
            severity=str(s),
            message=m,
        )
        for f, r, c, v, rule, s, m in zip(
            problems["file"],
            problems["row"],
            problems["column"],
            problems["value"],
            problems["rule"],
            problems["severity"],
            messages,
            strict=True,
        )
    ]
