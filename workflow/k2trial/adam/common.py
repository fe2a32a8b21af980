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

from k2trial.adam.spec import AdamDataError, AdamSpec, Dataset
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
    codes, distinct = pd.factorize(series.astype(object), use_na_sentinel=True)
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
    """`code` where the condition holds, "" elsewhere (ADaM flags that are Y or missing)."""
    mask = np.asarray(condition, dtype=bool)
    return pd.Series(np.where(mask, code, ""), dtype="str")


def text(values: Any) -> pd.Series:
    """Text column: missing values become ""."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    series = series.reset_index(drop=True)
    return series.astype(object).where(series.notna(), "").astype("str")


def number(values: Any) -> pd.Series:
    """Numeric column (float64, NaN = missing)."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    return pd.to_numeric(series.reset_index(drop=True), errors="raise").astype("float64")


def from_adsl(adsl: pd.DataFrame, usubjid: Any, variables: Sequence[str], needs: Needs) -> dict[str, pd.Series]:
    """ADSL variables for each record's subject; a subject not in ADSL raises AdamDataError naming the first row."""
    ids = pd.Series(usubjid).reset_index(drop=True).astype("str")
    position = pd.Index(adsl["USUBJID"].astype("str")).get_indexer(ids)
    if (position < 0).any():
        row = int(np.flatnonzero(position < 0)[0])
        raise problem(needs, row, "subject_id", ids.iloc[row], "subject not in ADSL (analysis/subjects.csv)",
                      "adam_subject")  # fmt: skip
    return {v: adsl[v].iloc[position].reset_index(drop=True) for v in variables}


def sort_rows(columns: Mapping[str, pd.Series], *keys: str) -> dict[str, pd.Series]:
    """Rows ordered by the number in USUBJID, then by the numeric key columns given (stable)."""
    usubjid = columns["USUBJID"].to_numpy(dtype=object)
    extra = [np.nan_to_num(columns[k].to_numpy(dtype="float64"), nan=np.inf) for k in keys]
    order = subject_order(usubjid, *extra)
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
