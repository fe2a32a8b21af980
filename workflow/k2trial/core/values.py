"""The numeric and value helpers every stage shares: one rounding rule, one comparison at recording precision,
one reading of booleans, one subject order.

Rounding: half away from zero at a number of decimals, as a person rounds (2.675 -> 2.68, 0.285 -> 0.29,
1.005 -> 1.01, -2.5 -> -3, -0.25 -> -0.3). Python's round() and numpy round halves to even and work on the binary
value (round(2.675, 2) == 2.67); `round_half_away` adds a nudge of 1e-9 in units of the last kept decimal (far below
any recorded precision) so that decimal halves stored just below the half round away from zero; `rounded_decimal`
does the same on the shortest decimal representation of one number (for displayed text). Missing stays missing.

Booleans: `BOOLEAN_TEXT` is the one list of spellings read as true or false (the analysis tables write True/False;
the raw contract's yes/no variants are normalised by k2trial.data.contract before any of this). Subject order: the
number at the end of the subject ID (K2-002 before K2-010 before K2-100).
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd

#: Added to |x| x 10^decimals before flooring: decimal halves held just below the half in binary round away from
#: zero. 1e-9 of the last kept decimal is far below any recorded precision and far above float noise.
ROUNDING_NUDGE = 1e-9
#: Digits kept beyond the recording precision when a threshold is compared (removes float noise only).
GUARD_DIGITS = 4
#: Text read as a boolean (case and surrounding whitespace ignored); anything else, and missing, is missing.
BOOLEAN_TEXT = {
    "true": True,
    "yes": True,
    "y": True,
    "1": True,
    "1.0": True,
    "false": False,
    "no": False,
    "n": False,
    "0": False,
    "0.0": False,
}
#: Subject number of an ID without one (sorts first).
NO_SUBJECT_NUMBER = -1


# ----------------------------------------------------------------------------------------------------------------
# Rounding and comparing at a precision
# ----------------------------------------------------------------------------------------------------------------
def round_half_away(values: Any, decimals: Any) -> np.ndarray:
    """Round to `decimals` (one for all, or one per value), halves away from zero; NaN stays NaN.

    round_half_away([0.285, 1.005, -2.5, 2.675], [2, 2, 0, 2]) == [0.29, 1.01, -3.0, 2.68].
    """
    x = np.asarray(values, dtype=float)
    scale = np.power(10.0, np.asarray(decimals, dtype=float))
    return np.sign(x) * np.floor(np.abs(x) * scale + 0.5 + ROUNDING_NUDGE) / scale


def scaled_integers(values: Any, decimals: Any) -> np.ndarray:
    """Values rounded half away from zero to `decimals`, as floats holding whole numbers of 10^-decimals."""
    x = np.asarray(values, dtype=float)
    scale = np.power(10.0, np.asarray(decimals, dtype=float))
    return np.sign(x) * np.floor(np.abs(x) * scale + 0.5 + ROUNDING_NUDGE)


def compare_at_precision(values: Any, thresholds: Any, op: str, decimals: Any) -> np.ndarray:
    """`values <op> thresholds` at the recording precision `decimals` (scalar or per value).

    The value is rounded half away from zero to `decimals` (`round_half_away`), the threshold to
    `decimals + GUARD_DIGITS` (it is a product such as 3 x ULN whose float representation may be off by 1 ulp).
    Both are compared as scaled integers, so 120 U/L is exactly 3 x 40 U/L and 1.05 mg/dL exactly 3 x 0.35 mg/dL.
    Any NaN gives False. op: one of >, >=, <, <=.
    """
    decimals = np.asarray(decimals, dtype=float)
    v = scaled_integers(values, decimals) * 10.0**GUARD_DIGITS
    t = np.rint(np.asarray(thresholds, dtype=float) * 10.0**decimals * 10.0**GUARD_DIGITS)
    with np.errstate(invalid="ignore"):
        if op == ">":
            return v > t
        if op == ">=":
            return v >= t
        if op == "<":
            return v < t
        if op == "<=":
            return v <= t
    raise ValueError(f"unknown comparison operator {op!r}")


def is_missing(value: Any) -> bool:
    """None, pandas NA/NaT and float NaN are missing; everything else is not."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(isinstance(value, float | np.floating) and math.isnan(value))
    except TypeError:
        return False


def rounded_decimal(value: Any, decimals: int) -> Decimal | None:
    """One number rounded half away from zero on its shortest decimal representation; None when missing, not a
    number or infinite. rounded_decimal(2.675, 2) == Decimal("2.68") although the binary 2.675 lies below the half;
    a result that rounds to zero has no sign (never "-0.00")."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        number = value
    else:
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(as_float):
            return None
        number = Decimal(repr(as_float))
    if not number.is_finite():
        return None
    rounded = number.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return abs(rounded) if rounded.is_zero() else rounded


# ----------------------------------------------------------------------------------------------------------------
# Booleans
# ----------------------------------------------------------------------------------------------------------------
def to_boolean(values: Any) -> pd.Series:
    """A nullable boolean Series from booleans or their text forms (BOOLEAN_TEXT); anything else is missing.

    Works once per distinct value (categoricals and long text columns are cheap).
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean")
    codes, distinct = pd.factorize(series, use_na_sentinel=True)
    truth = pd.array([_boolean_of(v) for v in distinct] + [pd.NA], dtype="boolean")
    return pd.Series(truth[np.where(codes < 0, len(distinct), codes)], index=series.index)


def _boolean_of(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    return BOOLEAN_TEXT.get(str(value).strip().lower(), pd.NA)


def as_bool(values: Any) -> np.ndarray:
    """True/False per value (BOOLEAN_TEXT); missing and unreadable values are False."""
    return to_boolean(values).fillna(False).to_numpy(dtype=bool)


def boolean_cell(value: Any) -> bool | None:
    """A single cell that holds a boolean (True/False, numpy bool, or the text true/false in any case); None for
    any other cell, numbers included (1 is a count, not a boolean, in a table cell)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return BOOLEAN_TEXT[value.strip().lower()]
    return None


# ----------------------------------------------------------------------------------------------------------------
# Subject order
# ----------------------------------------------------------------------------------------------------------------
def subject_numbers(subject_ids: Any) -> np.ndarray:
    """The number at the end of each subject ID (K2-010 -> 10), int64; NO_SUBJECT_NUMBER where there is none.

    Computed once per distinct ID.
    """
    codes, distinct = pd.factorize(pd.Series(subject_ids, dtype=object), use_na_sentinel=True)
    numbers = pd.Series(pd.Index(distinct, dtype=object).astype(str)).str.extract(r"(\d+)\s*$", expand=False)
    table = np.append(pd.to_numeric(numbers, errors="coerce").fillna(NO_SUBJECT_NUMBER).to_numpy(np.int64), -1)
    return table[np.where(codes < 0, len(distinct), codes)]


def subject_order(subject_ids: Any, *keys: Any) -> np.ndarray:
    """Positions that sort rows by subject number, then by the further integer keys (stable)."""
    return np.lexsort([*(np.asarray(k) for k in reversed(keys)), subject_numbers(subject_ids)])


def sort_by_subject(frame: pd.DataFrame, *keys: Any, column: str = "subject_id") -> pd.DataFrame:
    """Rows ordered by subject number (then the further keys), index reset."""
    return frame.iloc[subject_order(frame[column].to_numpy(dtype=object), *keys)].reset_index(drop=True)


def percent(counts: Any, denominator: Any) -> np.ndarray:
    """100 x counts / denominator (float); NaN where the denominator is 0 or missing."""
    counts = np.asarray(counts, dtype=float)
    denominator = np.broadcast_to(np.asarray(denominator, dtype=float), counts.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 100.0 * counts / denominator, np.nan)
