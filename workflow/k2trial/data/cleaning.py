"""Deterministic, documented fixes of the raw data: clean tables, audit log, data queries, row accounting.

Cleaning applies exactly the fixable problems validation found (k2trial.data.validation), nothing else:
- every value is written in its canonical form (IDs K2-001, or under a pattern dataset.yaml declares the ID
  trimmed and upper-cased; canonical labels, ISO dates (day-first dates from the sites declared day_first), numbers as
  floats with a decimal point, lab results as canonical text such as "<0.2", canonical units);
- an impossible value (outside the contract's plausible range) becomes missing and raises a query;
- an exact duplicate of an earlier row is removed; no other row is ever removed.
Every changed value and every removed row is a row of the audit log; warnings and impossible values are
data queries. For every file rows_in = rows_out + rows_removed (row accounting).

Clean tables (workflow/DATASETS.md): `raw_row` first, then the contract columns in contract order; rows
sorted by SORT_COLUMNS (subject number, study week, symptom and test order of the contract), ties by raw_row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from k2trial.core import schema
from k2trial.core.errors import ArtifactError, InputDataError
from k2trial.core.values import subject_numbers
from k2trial.data import contract as ct
from k2trial.data.contract import Contract, TableSpec
from k2trial.data.validation import FIXABLE, RULES, WARNING, NormalisedTable, ValidationResult

#: Sort order of each clean table (then raw_row).
SORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "subjects.csv": ("subject_id",),
    "symptom_diary.csv": ("subject_id", "visit", "symptom"),
    "labs.csv": ("subject_id", "visit", "test_code"),
    "adverse_events.csv": ("subject_id", "onset_date", "term"),
    "dosing.csv": ("subject_id", "visit"),
}
#: Column written for a removed row in the audit log.
WHOLE_ROW = "*"


@dataclass(frozen=True)
class CleanDataset:
    """Clean tables (file name -> table), audit log, queries and row accounting, as DATASETS.md fixes them."""

    tables: dict[str, pd.DataFrame]
    audit_log: pd.DataFrame
    queries: pd.DataFrame
    row_accounting: pd.DataFrame


def clean_dataset(result: ValidationResult, contract: Contract, text_as_categorical: bool = False) -> CleanDataset:
    """Apply the fixes of a passed validation. Raises InputDataError when the result has errors.

    text_as_categorical: text columns of the clean tables as Categoricals (same values; see `clean_table`).
    """
    if result.status != "passed":
        raise InputDataError(result.errors())
    # the contract the values were read under: with the subject IDs and sites dataset.yaml declares
    contract = result.contract or contract
    problems = result.problems
    # Compare integer codes, not millions of strings.
    file_code, files = pd.factorize(problems["file"])
    files = pd.Index(files)
    rows = problems["row"].to_numpy(dtype=np.int64, na_value=-1)
    is_duplicate = (problems["rule"] == "duplicate_row").to_numpy()
    tables, accounting = {}, []
    on_removed_row = np.zeros(len(problems), dtype=bool)
    for name in contract.table_names:
        table = result.tables[name]
        in_file = file_code == (files.get_loc(name) if name in files else -2)
        drop = np.isin(table.rows, rows[in_file & is_duplicate])
        on_removed_row |= in_file & np.isin(rows, table.rows[drop])
        tables[name] = clean_table(table, contract, keep=~drop, text_as_categorical=text_as_categorical)
        n_removed = int(drop.sum())
        accounting.append(
            {
                "file": name,
                "rows_in": len(table),
                "rows_out": len(tables[name]),
                "rows_removed": n_removed,
                "removal_reasons": f"duplicate_row: {n_removed}" if n_removed else "",
            }
        )
        if accounting[-1]["rows_in"] != accounting[-1]["rows_out"] + n_removed:  # cannot happen; guards refactors
            raise AssertionError(f"row accounting does not hold for {name}")
    # Problems on a removed duplicate are not repaired separately: the row is gone as a whole.
    kept = problems[~on_removed_row | is_duplicate]
    return CleanDataset(
        tables=tables,
        audit_log=audit_log(kept, result.tables),
        queries=data_queries(kept),
        row_accounting=pd.DataFrame(accounting, columns=schema.columns("clean/row_accounting")),
    )


def clean_table(
    table: NormalisedTable, contract: Contract, keep: np.ndarray | None = None, text_as_categorical: bool = False
) -> pd.DataFrame:
    """The clean version of one normalised table: canonical values, impossible values missing, sorted.

    keep: rows to keep (default all). Numbers are float64 (missing NaN); everything else canonical text
    (missing None). text_as_categorical: text columns as Categoricals of the same text (missing NaN), built
    from the normalised codes without a string per row: the same CSV, written several times faster.
    """
    spec = table.spec
    keep = np.ones(len(table), dtype=bool) if keep is None else keep
    data: dict[str, np.ndarray] = {"raw_row": table.rows[keep]}
    for column in spec.columns:
        normalised = table.columns[column.name]
        if column.type in ("number", "integer"):
            values = normalised.row_values().astype(float)
            values[normalised.rows_with(ct.OUT_OF_RANGE)] = np.nan
        elif text_as_categorical:
            text_codes, texts = pd.factorize(pd.Series(normalised.text, dtype=object), use_na_sentinel=True)
            categories = pd.Index(np.asarray(texts, dtype=object), dtype=object)
            values = pd.Categorical.from_codes(text_codes[normalised.codes][keep], categories=categories)
            data[column.name] = values
            continue
        else:
            values = normalised.row_text()
        data[column.name] = values[keep]
    frame = pd.DataFrame(data)
    keys = [
        key[keep]
        for c in SORT_COLUMNS[spec.name]
        for key in _sort_keys(table.columns[c], spec.column(c).type, contract)
    ]
    keys.append(frame["raw_row"].to_numpy())
    order = np.lexsort(keys[::-1])  # np.lexsort sorts by the last key first
    return frame.iloc[order].reset_index(drop=True)


def _sort_keys(column: ct.NormalisedColumn, kind: str, contract: Contract) -> list[np.ndarray]:
    """Integer sort keys per row: subject IDs by the number they end with, then by ID text (two IDs of a declared
    pattern may end in the same number: "S1-001", "S2-001"); one key for other columns (`_sort_key`)."""
    if kind == "subject_id":
        return [column.map_rows(subject_numbers), _text_rank(column)]
    return [_sort_key(column, kind, contract)]


def _text_rank(column: ct.NormalisedColumn) -> np.ndarray:
    """Rank of each row's canonical text in code-point order (missing first), computed once per distinct value."""
    return column.map_rows(lambda text: pd.factorize(pd.Series(text, dtype=object).fillna(""), sort=True)[0])


def _sort_key(column: ct.NormalisedColumn, kind: str, contract: Contract) -> np.ndarray:
    """Integer sort key per row: study week, contract order of symptoms and tests, else the canonical text in
    code-point order (computed once per distinct value)."""
    if kind.endswith("_visit"):
        return column.map_rows(lambda text: ct.visit_weeks(text, contract))
    if kind == "symptom":
        return column.map_rows(lambda text: ct.category_order(text, contract.symptoms))
    if kind == "test_code":
        return column.map_rows(lambda text: ct.category_order(text, list(contract.lab_tests)))
    return _text_rank(column)


def _csv_records(table: NormalisedTable, rows: np.ndarray) -> np.ndarray:
    """The raw records at spreadsheet rows `rows` as CSV text (contract columns), for the audit log."""
    position = np.searchsorted(table.rows, rows) if np.all(np.diff(table.rows) > 0) else None
    if position is None:
        position = pd.Index(table.rows).get_indexer(rows)
    fields = []
    for name in table.spec.column_names:
        raw = table.columns[name].row_raw()[position].astype(str)
        needs_quotes = pd.Series(raw).str.contains(r'[",\n\r]', regex=True).to_numpy()
        quoted = np.where(needs_quotes, '"' + pd.Series(raw).str.replace('"', '""').to_numpy(dtype=object) + '"', raw)
        fields.append(np.asarray(quoted, dtype=object))
    if not fields:
        return np.zeros(len(rows), dtype=object)
    line = fields[0]
    for field in fields[1:]:
        line = line + "," + field
    return line


def audit_log(problems: pd.DataFrame, tables: Mapping[str, NormalisedTable]) -> pd.DataFrame:
    """One row per changed value (old raw text, new canonical text; "" = set missing) and per removed row
    (column "*", old = the raw record as CSV text, new = "")."""
    fixes = problems[problems["severity"] == FIXABLE]
    removed = (fixes["rule"] == "duplicate_row").to_numpy()
    old = fixes["value"].to_numpy(dtype=object).copy()
    if removed.any():
        files = fixes["file"].to_numpy(dtype=object)
        for name, table in tables.items():  # loop over files, not rows
            hit = removed & (files == name)
            if hit.any():
                old[hit] = _csv_records(table, fixes["row"].to_numpy(dtype=np.int64)[hit])
    new = fixes["new"].to_numpy(dtype=object).copy()
    new[(fixes["rule"] == ct.OUT_OF_RANGE).to_numpy() | removed] = ""
    return pd.DataFrame(
        {
            "file": fixes["file"].to_numpy(dtype=object),
            "raw_row": fixes["row"].to_numpy(),
            "subject_id": fixes["subject_id"].to_numpy(dtype=object),
            "column": np.where(removed, WHOLE_ROW, fixes["column"].to_numpy(dtype=object)),
            "old": old,
            "new": new,
            "rule": fixes["rule"].to_numpy(dtype=object),
        },
        columns=schema.columns("clean/audit_log"),
    ).astype({"raw_row": "Int64"})


def data_queries(problems: pd.DataFrame) -> pd.DataFrame:
    """What a data manager must ask the sites: every warning and every impossible value set missing."""
    asked = problems[(problems["severity"] == WARNING) | (problems["rule"] == ct.OUT_OF_RANGE)]
    question = asked["rule"].map({rule: spec.question for rule, spec in RULES.items()}).astype(object)
    detail = asked["detail"].fillna("").astype(object)
    question = question.where(detail == "", question + " (" + detail + ")")
    width = max(4, len(str(len(asked))))
    ids = [f"Q{i:0{width}d}" for i in range(1, len(asked) + 1)]
    return pd.DataFrame(
        {
            "query_id": np.asarray(ids, dtype=object),
            "file": asked["file"].to_numpy(dtype=object),
            "raw_row": asked["row"].to_numpy(),
            "subject_id": asked["subject_id"].to_numpy(dtype=object),
            "column": asked["column"].to_numpy(dtype=object),
            "value": asked["value"].to_numpy(dtype=object),
            "rule": asked["rule"].to_numpy(dtype=object),
            "question": question.to_numpy(dtype=object),
        },
        columns=schema.columns("clean/queries"),
    ).astype({"raw_row": "Int64"})


def audit_summary(audit: pd.DataFrame) -> pd.DataFrame:
    """Changes per file and rule of the audit log (artifact clean/audit_summary), sorted by file and rule."""
    columns = schema.columns("clean/audit_summary")
    if audit.empty:
        return pd.DataFrame({c: pd.Series([], dtype="int64" if c == "changes" else object) for c in columns})
    counts = audit.groupby(["file", "rule"], as_index=False, sort=True).size()
    return counts.rename(columns={"size": "changes"})[columns]


def read_clean_table(path: str | Path, spec: TableSpec, categorical: Sequence[str] = ()) -> pd.DataFrame:
    """Read a clean table written by the cleaning step with its types: numbers float64, raw_row Int64,
    everything else text; "" is missing and nothing else ("NA" is the sodium test code).

    categorical: text columns read as categories (the same values, each distinct text held once: a column of
    5.4 million lab records of a few thousand values is then 5.4 million small codes, not 5.4 million strings)."""
    dtypes: dict[str, str] = {"raw_row": "Int64"}
    for column in spec.columns:
        text = "category" if column.name in categorical else "str"
        dtypes[column.name] = "float64" if column.type in ("number", "integer") else text
    frame = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=[""])
    expected = ["raw_row", *spec.column_names]
    if list(frame.columns) != expected:
        missing = [c for c in expected if c not in frame.columns] or list(frame.columns)
        raise ArtifactError(
            f"clean/{spec.name}", Path(path).as_posix(), missing, f"columns are not the clean columns {expected}"
        )
    return frame
