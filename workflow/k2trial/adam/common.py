"""What the ADaM derivations share: the declared inputs of each artifact, dates as SAS dates, relative days, the
columns copied from ADSL, and assembling a dataset in the order of its specification.

Every derivation module declares what it reads of each artifact as a `Needs` (required columns, and optional
columns used when present, such as `lbseq` or `arm`), and reads its inputs only through `take`: when an artifact
changes its columns, the declarations are the one place to adapt, and a missing column is an ArtifactError that
names the artifact and the column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from k2trial.adam.spec import AdamDataError, AdamSpec, Dataset, factorized
from k2trial.core.errors import ArtifactError, ConfigError, Problem
from k2trial.core.values import subject_order

#: Day 0 of SAS dates.
SAS_EPOCH = np.datetime64("1960-01-01", "D")


@dataclass(frozen=True)
class Needs:
    """The columns a derivation reads of one artifact: `required` ones, and `optional` ones used when present."""

    artifact: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.artifact}.csv"


def take(frame: pd.DataFrame, needs: Needs) -> pd.DataFrame:
    """The declared columns of an artifact frame (required, then the optional ones present), index 0..n-1.

    Raises ArtifactError naming the artifact and every required column the frame lacks.
    """
    missing = [c for c in needs.required if c not in frame.columns]
    if missing:
        raise ArtifactError(needs.artifact, needs.label, missing, "column missing; the ADaM derivation needs it")
    columns = [*needs.required, *(c for c in needs.optional if c in frame.columns)]
    return frame[columns].reset_index(drop=True)


def problem(needs: Needs, row: int | None, column: str | None, value: Any, message: str, rule: str) -> AdamDataError:
    """An AdamDataError about one cell (row: position in the frame, reported as spreadsheet row = position + 2)."""
    shown = None if value is None else str(value)
    return AdamDataError(
        [Problem(needs.label, None if row is None else row + 2, column, shown, rule, "error", message)]
    )


# ----------------------------------------------------------------------------------------------------------------
# Dates
# ----------------------------------------------------------------------------------------------------------------
def sas_dates(values: Any, needs: Needs, column: str) -> pd.Series:
    """ISO 8601 dates (YYYY-MM-DD; "" or missing = missing) as SAS dates: float days since 1960-01-01.

    Parsed once per distinct value; text that is not a calendar date raises AdamDataError naming the cell.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    series = series.reset_index(drop=True)
    codes, distinct = factorized(series)
    texts = ["" if v is None else str(v).strip() for v in distinct]
    parsed = pd.to_datetime(pd.Series(texts, dtype=object), format="%Y-%m-%d", errors="coerce")
    days = np.full(len(texts) + 1, np.nan)
    for i, (text, when) in enumerate(zip(texts, parsed, strict=True)):
        if text == "":
            continue
        if pd.isna(when):
            row = int(np.flatnonzero(codes == i)[0])
            raise problem(needs, row, column, text, "not an ISO 8601 date (YYYY-MM-DD)", "adam_date")
        days[i] = float((np.datetime64(when.date(), "D") - SAS_EPOCH).astype(np.int64))
    return pd.Series(days[np.where(codes < 0, len(texts), codes)], dtype="float64")


def iso_dates(sas_days: Any) -> list[str | None]:
    """SAS dates (days since 1960-01-01) as ISO 8601 text; None where missing."""
    values = np.asarray(sas_days, dtype="float64")
    out = np.full(len(values), None, dtype=object)
    present = ~np.isnan(values)
    days = values[present].astype(np.int64).astype("timedelta64[D]")
    out[present] = (SAS_EPOCH + days).astype(str).astype(object)
    return out.tolist()


def relative_day(dates: Any, reference: Any) -> pd.Series:
    """ADaM relative day: date - reference + 1 on or after the reference, date - reference before it (no day 0);
    missing when either is missing."""
    d = np.asarray(dates, dtype="float64")
    r = np.asarray(reference, dtype="float64")
    diff = d - r
    return pd.Series(np.where(diff >= 0, diff + 1, diff), dtype="float64")


# ----------------------------------------------------------------------------------------------------------------
# Rows and columns
# ----------------------------------------------------------------------------------------------------------------
def constant(value: Any, n: int) -> pd.Series:
    """A column of one value (text or number)."""
    if isinstance(value, str):
        return pd.Series([value] * n, dtype="str")
    return pd.Series(np.full(n, value, dtype="float64"))


def flag_where(condition: Any, code: str = "Y") -> pd.Series:
    """`code` where the condition holds, "" elsewhere (ADaM flags that are Y or missing), as coded text
    (coded_text's categorical form)."""
    mask = np.asarray(condition, dtype=bool)
    return text_of_codes(mask.astype(np.int64), ["", code])


def text(values: Any) -> pd.Series:
    """Text column: missing values become ""."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    series = series.reset_index(drop=True)
    return series.astype(object).where(series.notna(), "").astype("str")


def number(values: Any) -> pd.Series:
    """Numeric column (float64, NaN = missing)."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    return pd.to_numeric(series.reset_index(drop=True), errors="raise").astype("float64")


def coded_text(series: pd.Series) -> pd.Series:
    """A char column as a categorical of its distinct values as str ("" for missing): exactly the values present
    (in order of first appearance, or a categorical's own order; "" for missing last), the form in which a delivery
    is written (each distinct value measured, checked and encoded once; 1-4 bytes per record instead of a pointer
    to a str). A value that is not a str becomes str(value), as astype("str") makes it."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = np.asarray(series.cat.codes.to_numpy(), dtype=np.int64)
        values = series.cat.categories.tolist()
    else:
        if not isinstance(series.dtype, pd.StringDtype):  # as str first: factorize takes 1, 1.0 and True as one
            series = series.astype(object).where(series.notna(), None).astype("str")
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        values = np.asarray(uniques, dtype=object).tolist()
    return text_of_codes(codes, values, name=series.name)


def text_of_codes(codes: Any, values: Sequence[Any], name: Any = None) -> pd.Series:
    """The column whose rows are values[code] as str ("" where the code is -1) in coded_text's form; values may
    repeat (as str) and need not all occur."""
    codes = np.asarray(codes, dtype=np.int64)
    texts = [*(str(v) for v in values), ""]  # the last one: missing (code -1)
    at = np.where(codes < 0, len(values), codes)
    present = np.bincount(at, minlength=len(texts)) > 0
    distinct = list(dict.fromkeys(t for t, used in zip(texts, present.tolist(), strict=True) if used))
    position = {t: i for i, t in enumerate(distinct)}
    recoded = np.array([position.get(t, -1) for t in texts], dtype=np.int64)[at]
    dtype = pd.CategoricalDtype(pd.Index(distinct, dtype="str"))
    return pd.Series(pd.Categorical.from_codes(recoded, dtype=dtype), name=name)


def codes_in(values: Any, categories: Sequence[str]) -> np.ndarray:
    """Position of each value, as text, in `categories` (-1: missing or not there), looked up once per distinct
    value (a categorical's per category): what pd.Index(categories).get_indexer(values.astype("str")) gives."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    codes, distinct = factorized(series.reset_index(drop=True))
    lookup = np.append(pd.Index(list(categories), dtype=object).get_indexer([str(v) for v in distinct]), -1)
    return lookup[np.where(codes < 0, len(distinct), codes)]


def _key_codes(values: Any) -> tuple[np.ndarray, list[Any], bool]:
    """(codes, distinct values, numeric) of a key column: numbers factorized as float64, anything else as text."""
    series = pd.Series(values).reset_index(drop=True) if not isinstance(values, pd.Series) else values
    if pd.api.types.is_numeric_dtype(series.dtype) and not isinstance(series.dtype, pd.CategoricalDtype):
        codes, uniques = pd.factorize(series.to_numpy(dtype="float64"), use_na_sentinel=True)
        return codes, [float(v) for v in uniques], True
    codes, distinct = factorized(series.reset_index(drop=True))
    return codes, [str(v) for v in distinct], False


def shared_keys(pairs: Sequence[tuple[Any, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """One int64 key per row of two tables for the combination of their key columns, equal exactly where the rows'
    values are equal column by column (text compared as str, numbers as numbers; a missing value equals a missing
    value): pairs are (left column, right column). Each column is coded once per distinct value."""
    keys: tuple[np.ndarray, np.ndarray] | None = None
    for left, right in pairs:
        left_codes, left_values, left_numeric = _key_codes(left)
        right_codes, right_values, right_numeric = _key_codes(right)
        numeric = left_numeric and right_numeric
        distinct = [*left_values, *right_values]
        if not numeric:
            distinct = [str(v) for v in distinct]
        joint, _ = pd.factorize(np.array(distinct, dtype="float64" if numeric else object), use_na_sentinel=True)
        joint = np.append(joint + 1, 0)  # 1, 2, ... a distinct value of the pair; 0: missing
        a = joint[np.where(left_codes < 0, len(joint) - 1, left_codes)]
        b = joint[np.where(right_codes < 0, len(joint) - 1, len(left_values) + right_codes)]
        radix = int(joint.max(initial=0)) + 1
        if keys is None:
            keys = (a.astype(np.int64), b.astype(np.int64))
            continue
        n = len(keys[0])  # the keys so far made compact before they are widened (no overflow)
        compact, _ = pd.factorize(np.concatenate(keys))
        keys = (compact[:n].astype(np.int64) * radix + a, compact[n:].astype(np.int64) * radix + b)
    if keys is None:
        raise ValueError("shared_keys needs at least one pair of key columns")
    return keys


def group_codes(*columns: Any) -> np.ndarray:
    """One int64 code per row for the combination of the columns' values (equal rows, equal codes)."""
    series = [c if isinstance(c, pd.Series) else pd.Series(c) for c in columns]
    return shared_keys([(c, c.iloc[:0]) for c in series])[0]


def from_adsl(adsl: pd.DataFrame, usubjid: Any, variables: Sequence[str], needs: Needs) -> dict[str, pd.Series]:
    """ADSL variables for each record's subject; a subject not in ADSL raises AdamDataError naming the first row."""
    ids = pd.Series(usubjid).reset_index(drop=True)
    position = codes_in(ids, adsl["USUBJID"].astype("str").tolist())
    if (position < 0).any():
        row = int(np.flatnonzero(position < 0)[0])
        raise problem(needs, row, "subject_id", str(ids.iloc[row]), "subject not in ADSL (analysis/subjects.csv)",
                      "adam_subject")  # fmt: skip
    out = {}
    for v in variables:
        column = adsl[v].reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(column.dtype) and not isinstance(column.dtype, pd.CategoricalDtype):
            out[v] = column.iloc[position].reset_index(drop=True)
        else:  # text: coded once per subject, taken per record as codes (coded_text's form)
            coded = coded_text(column)
            out[v] = pd.Series(pd.Categorical.from_codes(coded.cat.codes.to_numpy()[position], dtype=coded.dtype))
    return out


def sort_rows(columns: Mapping[str, pd.Series], *keys: str) -> dict[str, pd.Series]:
    """Rows ordered by the number in USUBJID, then by the numeric key columns given (stable)."""
    extra = [np.nan_to_num(columns[k].to_numpy(dtype="float64"), nan=np.inf) for k in keys]
    usubjid = columns["USUBJID"]
    if isinstance(usubjid.dtype, pd.CategoricalDtype):  # the distinct IDs ranked once (subject_order), rows by rank
        categories = usubjid.cat.categories.to_numpy(dtype=object)
        rank = np.empty(len(categories) + 1, dtype=np.int64)
        rank[subject_order(categories)] = np.arange(1, len(categories) + 1)
        rank[-1] = 0  # missing first, as subject_order sorts them
        codes = usubjid.cat.codes.to_numpy()
        order = np.lexsort([*reversed(extra), rank[np.where(codes < 0, len(categories), codes)]])
    else:
        order = subject_order(usubjid.to_numpy(dtype=object), *extra)
    return {name: values.iloc[order].reset_index(drop=True) for name, values in columns.items()}


def assemble(spec: AdamSpec, dataset: Dataset, columns: Mapping[str, pd.Series]) -> pd.DataFrame:
    """The dataset's columns in the order of its specification; a variable the spec lists but the derivation did not
    make, or one it made that the spec does not list, is a ConfigError naming both."""
    missing = [n for n in dataset.names if n not in columns]
    extra = [n for n in columns if n not in dataset.names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"not derived: {', '.join(missing)}")
        if extra:
            parts.append(f"derived but not in the spec: {', '.join(extra)}")
        raise ConfigError(
            f"{spec.file}: dataset {dataset.name}: the spec and the derivation disagree ({'; '.join(parts)})"
        )
    lengths = {len(columns[n]) for n in dataset.names}
    if len(lengths) > 1:
        raise ValueError(f"{dataset.name}: columns of different lengths {sorted(lengths)}")
    # the columns as they are, not consolidated into one copy (5.4 million ADLB records at 100,000 subjects)
    frame = pd.DataFrame({n: pd.Series(columns[n]).reset_index(drop=True) for n in dataset.names}, copy=False)
    frame.attrs = {"name": dataset.name, "label": dataset.label}
    return frame
