"""Helpers shared by the SDTM reader, checks and writer: text columns, numbers as text, ISO 8601 dates and
their imputation, the natural order of subject IDs, record matching and source-record keys.

Everything here is a pure function of its arguments; nothing reads a file.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from k2trial.core.values import round_half_away

NUMBER_FORMAT = "%.12g"

# Domains whose records belong to no subject (trial design); they are read but not checked.
TRIAL_DESIGN = frozenset({"TA", "TE", "TI", "TS", "TV", "TD", "TM"})


def empty_text(index: pd.Index) -> pd.Series:
    return pd.Series([""] * len(index), index=index, dtype="str")


def is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)


def map_distinct(series: pd.Series, func: Callable[[Any], Any]) -> pd.Series:
    """Apply func once per distinct value (SDTM columns repeat few distinct values)."""
    if not len(series):
        return pd.Series([], index=series.index, dtype=object)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    results = np.empty(len(uniques) + 1, dtype=object)
    for i, value in enumerate(uniques):
        results[i] = func(value)
    results[-1] = func(None)
    return pd.Series(results[codes], index=series.index, dtype=object)


def format_number(value: Any, fmt: str = NUMBER_FORMAT) -> str:
    if value is None:
        return ""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not np.isfinite(number):
        return ""
    return fmt % (number + 0.0)  # -0.0 + 0.0 is 0.0


def format_numbers(series: pd.Series, fmt: str = NUMBER_FORMAT) -> pd.Series:
    """Numbers as text (printf `fmt`), missing = ""."""
    return map_distinct(series, lambda v: format_number(v, fmt)).astype("str")


def text(frame: pd.DataFrame, variable: str | None, fmt: str = NUMBER_FORMAT) -> pd.Series:
    """A variable as text ("" when missing or when the variable is absent); numbers via `fmt`."""
    if variable is None or variable not in frame.columns:
        return empty_text(frame.index)
    series = frame[variable]
    if is_numeric(series):
        return format_numbers(series, fmt)
    return series.astype(object).fillna("").astype("str")


def key_text(frame: pd.DataFrame, variable: str | None) -> pd.Series:
    """Text for comparisons: stripped and upper case."""
    return text(frame, variable).str.strip().str.upper()


def numbers(frame: pd.DataFrame, variable: str | None) -> pd.Series:
    """A variable as float64 (text parsed; unparseable and missing = NaN)."""
    if variable is None or variable not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype="float64")
    series = frame[variable]
    if is_numeric(series):
        return series.astype("float64")
    return pd.to_numeric(series.astype(object).fillna("").astype("str").str.strip(), errors="coerce").astype("float64")


def seq_variable(domain: str) -> str | None:
    """The --SEQ variable of a domain (None for DM, the SUPP-- and CO-like relationship datasets' own rules)."""
    if domain == "DM" or domain.startswith("SUPP") or domain in TRIAL_DESIGN:
        return None
    return f"{domain}SEQ" if len(domain) == 2 else None


# --------------------------------------------------------------------------------------------------
# Subject order and record keys


def natural_key(value: str) -> tuple:
    """Sort key in which digit runs compare as numbers: K2-2 < K2-10, 01-701-1015 < 01-701-1023."""
    parts = re.split(r"(\d+)", value)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")


def subject_rank(subjects: pd.Series) -> np.ndarray:
    """Rank of every value in natural order (int64 array aligned with `subjects`)."""
    codes, uniques = pd.factorize(subjects.astype(object).fillna("").astype("str"))
    order = sorted(range(len(uniques)), key=lambda i: natural_key(str(uniques[i])))
    rank = np.empty(len(uniques), dtype=np.int64)
    rank[order] = np.arange(len(uniques))
    return rank[codes] if len(codes) else np.zeros(0, dtype=np.int64)


def record_order(frame: pd.DataFrame, seq: str | None, *more: str) -> np.ndarray:
    """Positions sorting records by subject (natural order), then `seq` (numeric), then `more` (text)."""
    if not len(frame):
        return np.zeros(0, dtype=np.int64)
    keys: list[np.ndarray] = []
    for name in reversed(more):
        keys.append(pd.factorize(text(frame, name), sort=True)[0])
    if seq is not None:
        keys.append(numbers(frame, seq).fillna(np.inf).to_numpy())
    keys.append(subject_rank(text(frame, "USUBJID")))
    return np.lexsort(keys)


def source_record(domain: str, subjects: pd.Series, seq_name: str | None, seq_text: pd.Series | None) -> pd.Series:
    """`LB USUBJID=01-701-1015 LBSEQ=12` per record (without the --SEQ part where the domain has none)."""
    out = domain + " USUBJID=" + subjects.astype("str")
    if seq_name is not None and seq_text is not None:
        out = out + " " + seq_name + "=" + seq_text.astype("str")
    return out.astype("str")


def record_label(usubjid: str, seq_name: str | None = None, seq: str | None = None) -> str:
    """The start of a Problem message: "USUBJID 01-701-1015, LBSEQ 12"."""
    label = f"USUBJID {usubjid or '(empty)'}"
    if seq_name is not None:
        label += f", {seq_name} {seq if seq not in (None, '') else '(empty)'}"
    return label


def match_where(frame: pd.DataFrame, where: Mapping[str, Sequence[Any]] | None) -> pd.Series:
    """Records whose every listed variable has one of the listed values (trimmed, case-insensitive)."""
    mask = pd.Series(True, index=frame.index)
    for variable, values in (where or {}).items():
        if variable not in frame.columns:
            return pd.Series(False, index=frame.index)
        allowed = {str(v).strip().upper() for v in _as_list(values)}
        mask &= key_text(frame, variable).isin(allowed)
    return mask


def _as_list(values: Any) -> list[Any]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        return [values]
    return list(values)


def upper_map(mapping: Mapping[str, Any] | None) -> dict[str, Any]:
    """A value map keyed by the stripped, upper-case SDTM value."""
    return {str(k).strip().upper(): v for k, v in (mapping or {}).items()}


# --------------------------------------------------------------------------------------------------
# ISO 8601 dates (--DTC)

_DTC = re.compile(r"^(\d{4}|-)(?:-(\d{2}|-)(?:-(\d{2}|-))?)?(?:T(.*))?$")
_TIME = re.compile(
    r"^(?:[01]\d|2[0-3]|-)(?::(?:[0-5]\d|-)(?::[0-5]\d(?:\.\d+)?)?)?(?:Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?$"
)


@dataclass(frozen=True)
class Dtc:
    """A parsed --DTC value. kind: empty | full | partial | invalid; date: YYYY-MM-DD when full."""

    text: str
    kind: str
    year: int | None = None
    month: int | None = None
    day: int | None = None

    @property
    def date(self) -> str:
        if self.kind != "full":
            return ""
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"


def parse_dtc(value: Any) -> Dtc:
    """Parse an ISO 8601 date(-time) as SDTM stores it ("2014-01-02T10:15", "2013-05", "2003---15")."""
    raw = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
    if raw == "":
        return Dtc(raw, "empty")
    match = _DTC.match(raw)
    if not match:
        return Dtc(raw, "invalid")
    year_s, month_s, day_s, time_s = match.groups()
    if time_s is not None and time_s != "" and not _TIME.match(time_s):
        return Dtc(raw, "invalid")
    year = int(year_s) if year_s not in (None, "-") else None
    month = int(month_s) if month_s not in (None, "-") else None
    day = int(day_s) if day_s not in (None, "-") else None
    if month is not None and not 1 <= month <= 12:
        return Dtc(raw, "invalid")
    if day is not None:
        limit = calendar.monthrange(year, month)[1] if (year is not None and month is not None) else 31
        if not 1 <= day <= limit:
            return Dtc(raw, "invalid")
    if year is not None and month is not None and day is not None:
        return Dtc(raw, "full", year, month, day)
    return Dtc(raw, "partial", year, month, day)


def dtc_dates(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(date part YYYY-MM-DD or "", kind) of every value of a --DTC column."""
    parsed = map_distinct(series, parse_dtc)
    return parsed.map(lambda d: d.date).astype("str"), parsed.map(lambda d: d.kind).astype("str")


def impute_dtc(
    value: Any,
    rule: str,
    highest: str = "M",
    not_before: Sequence[str] = (),
    not_after: Sequence[str] = (),
) -> tuple[str, str]:
    """Date part of a --DTC with admiral's imputation of a partial date (impute_dtc_dt).

    rule: "first" (missing month -> January, missing day -> 1st), "last" (-> December, last day of the month)
    or "none". highest: the highest component imputed, "D" (day only) or "M" (month and day); the year is never
    imputed. A month missing with a day present ("2003---15") imputes the day too (admiral, preserve = FALSE).
    not_before (rule first) / not_after (rule last): full dates (YYYY-MM-DD); one that lies in the range the
    partial date allows replaces the imputed date when it is later (earlier), as admiral's min_dates (max_dates).
    Returns (date or "", imputation level "" / "D" / "M").
    """
    dtc = parse_dtc(value)
    if dtc.kind == "full":
        return dtc.date, ""
    if dtc.kind != "partial" or dtc.year is None or rule == "none":
        return "", ""
    level = "M" if dtc.month is None else "D"
    if level == "M" and highest != "M":
        return "", ""
    lo = f"{dtc.year:04d}-{dtc.month or 1:02d}-01"
    last_month = dtc.month or 12
    hi = f"{dtc.year:04d}-{last_month:02d}-{calendar.monthrange(dtc.year, last_month)[1]:02d}"
    if rule == "first":
        imputed = lo
        for limit in not_before:
            if limit and lo <= limit <= hi:
                imputed = max(imputed, limit)
    elif rule == "last":
        imputed = hi
        for limit in not_after:
            if limit and lo <= limit <= hi:
                imputed = min(imputed, limit)
    else:
        raise ValueError(f"unknown imputation rule {rule!r} (first, last or none)")
    return imputed, level


def study_day(dates: pd.Series, reference: pd.Series) -> pd.Series:
    """SDTM --DY: date - reference + 1 on or after the reference, date - reference before it; NaN when either
    is not a full date."""
    d = pd.to_datetime(dates.where(dates.str.len() == 10), format="%Y-%m-%d", errors="coerce")
    r = pd.to_datetime(reference.where(reference.str.len() == 10), format="%Y-%m-%d", errors="coerce")
    delta = (d - r).dt.days.astype("float64")
    return delta.where(delta < 0, delta + 1)


# --------------------------------------------------------------------------------------------------
# ISO 8601 durations (MHDUR "P7Y")

_DURATION = re.compile(r"^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?$")


def duration_years(value: Any, decimals: int = 1) -> str:
    """Years of an ISO 8601 duration as text: "P7Y" -> "7" (the text as written); "P7Y6M" -> "7.5" (rounded)."""
    raw = "" if value is None else str(value).strip().upper()
    match = _DURATION.match(raw)
    if not raw or not match or not any(match.groups()):
        return ""
    years, months, weeks, days = match.groups()
    if years is not None and months is None and weeks is None and days is None:
        return years
    total = float(years or 0) + float(months or 0) / 12 + float(weeks or 0) * 7 / 365.25 + float(days or 0) / 365.25
    return format_number(float(round_half_away(total, decimals)))


def years_duration(value: str) -> str:
    """ISO 8601 duration of a number of years given as text: "7" -> "P7Y"; "" -> ""."""
    value = (value or "").strip()
    return f"P{value}Y" if value else ""
