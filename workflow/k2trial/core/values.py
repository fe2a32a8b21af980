"""The numeric and value helpers every stage shares: one rounding rule, one comparison, one reading of booleans, one
subject order.

Rounding and comparing. A float is first taken at SIGNIFICANT_DIGITS = 15 significant digits: that removes the binary
representation error of a decimal number (1.005 is stored as 1.00499999999999989..., 3 x 0.35 computes to
1.0499999999999998) and keeps every digit a laboratory or a closed-form calculation records (2.49 stays 2.49; admiral
compares at R's signif(x, 15) for the same reason). Then it is rounded half away from zero, as a person rounds:
2.675 -> 2.68, 0.285 -> 0.29, 1.005 -> 1.01, -2.5 -> -3, -0.25 -> -0.3 (Python's round() and numpy round halves to
even and work on the binary value: round(2.675, 2) == 2.67). The arithmetic is on whole numbers (the 15-digit
mantissa), so no step adds float noise of its own. Every rounding of the library goes through `round_half_away`
(decimals), `round_significant` (significant digits, e.g. the 6 of iterative fits) or `rounded_decimal` (the same
result as a Decimal, for displayed text); `compare` compares two sides at 15 significant digits (3 x 40 U/L is 120
U/L; 1.05 mg/dL is exactly 3 x 0.35 mg/dL). Missing stays missing.

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

#: Significant digits a float is taken at before it is rounded or compared (see the module docstring).
SIGNIFICANT_DIGITS = 15
#: Powers of ten as exact integers (mantissas have at most 15 digits, so sums stay far below 2**63).
_POW10 = 10 ** np.arange(19, dtype=np.int64)
_OPERATORS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}
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
def _mantissas(values: Any, digits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ok, sign, m, p): |x| = m x 10^-p rounded half away from zero to `digits` significant digits (m an int64 below
    10^digits) for the finite non-zero x (mask `ok`, same shape as the values); m and p are given for those only."""
    x = np.asarray(values, dtype=float)
    ok = np.isfinite(x) & (x != 0)
    ax = np.abs(x[ok])
    with np.errstate(divide="ignore"):
        p = (digits - 1 - np.floor(np.log10(ax))).astype(np.int64)

    def scaled(ax: np.ndarray, p: np.ndarray) -> np.ndarray:
        # as R's fprec: multiply by 10^p (exact up to 10^22), divide by 10^-p; two steps for the tiniest values
        big = np.minimum(p, 300)
        y = np.where(p >= 0, ax * 10.0 ** np.maximum(big, 0), ax / 10.0 ** np.maximum(-p, 0))
        return np.where(p > 300, y * 10.0 ** np.maximum(p - 300, 0), y)

    with np.errstate(over="ignore", invalid="ignore"):
        m = np.floor(scaled(ax, p) + 0.5)
        for _ in range(2):  # log10 can be one off next to a power of ten: keep exactly `digits` digits
            high, low = m >= 10.0**digits, m < 10.0 ** (digits - 1)
            if not (high.any() or low.any()):
                break
            p = p - high + low
            m = np.floor(scaled(ax, p) + 0.5)
    return ok, np.sign(x[ok]), m.astype(np.int64), p


def _from_mantissa(m: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The float nearest to m x 10^-p: one correctly rounded division or multiplication while 10^|p| is exact
    (|p| <= 22), the decimal text parsed otherwise (5.09301e-20)."""
    with np.errstate(over="ignore"):
        out = np.where(p >= 0, m / 10.0 ** np.clip(p, 0, 22), m * 10.0 ** np.clip(-p, 0, 22))
    far = np.abs(p) > 22
    if far.any():
        out[far] = [float(f"{mi}e{-pi}") for mi, pi in zip(m[far].tolist(), p[far].tolist(), strict=True)]
    return out


def round_significant(values: Any, digits: int = SIGNIFICANT_DIGITS) -> np.ndarray:
    """Round to `digits` significant digits (1 to 15), halves away from zero; NaN and infinities unchanged, -0 -> 0.

    round_significant([1.23456789, -0.000123456789, 123456789.0], 6) == [1.23457, -0.000123457, 123457000.0];
    round_significant(1.0499999999999998) == 1.05 (15 digits: binary representation error removed, 2.49 stays 2.49).
    """
    if not 1 <= digits <= SIGNIFICANT_DIGITS:
        raise ValueError(f"digits must be 1 to {SIGNIFICANT_DIGITS}, got {digits}")
    x = np.asarray(values, dtype=float)
    out = np.where(x == 0, 0.0, x)
    ok, sign, m, p = _mantissas(x, SIGNIFICANT_DIGITS)
    drop = SIGNIFICANT_DIGITS - digits
    if drop:  # from the 15-digit mantissa, in whole numbers (1.234565 -> 1.23457 at 6 digits)
        m = (m + 5 * _POW10[drop - 1]) // _POW10[drop]
        p = p - drop
        carry = m >= _POW10[digits]  # 9.999995 -> 10.0000
        m, p = np.where(carry, m // 10, m), np.where(carry, p - 1, p)
    out[ok] = sign * _from_mantissa(m, p)
    return out


#: Where a float product can sit this close (relative) to a rounding boundary, the exact mantissa arithmetic decides;
#: elsewhere floor(|x| 10^d + 0.5) already gives its result (the 15-digit form moves a value by < 5e-15 relative).
_NEAR_BOUNDARY = 1e-13


def scaled_integers(values: Any, decimals: Any) -> np.ndarray:
    """Values rounded half away from zero to `decimals` (one for all, or one per value), as floats holding whole
    numbers of 10^-decimals (2.675 at 2 decimals -> 268.0); NaN stays NaN."""
    x = np.asarray(values, dtype=float)
    dec = np.asarray(decimals, dtype=np.int64)
    if dec.ndim and dec.shape != x.shape:
        x, dec = (np.array(a) for a in np.broadcast_arrays(x, dec))
    if x.ndim == 0:  # one number: the same arithmetic on an array of one
        return scaled_integers(x.reshape(1), dec.reshape(1) if dec.ndim else dec)[0]
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.abs(x)
        y *= _powers_of_ten(dec)
        out = y + 0.5
        np.floor(out, out=out)
        gap = out - y  # in (-0.5, 0.5]; a half when |gap| is 0.5
        np.abs(gap, out=gap)
        gap -= 0.5
        np.abs(gap, out=gap)
        near = (gap <= _NEAR_BOUNDARY * y) | (gap <= _NEAR_BOUNDARY)
        near |= ~(y < 2.0**52)  # beyond exact float integers (and infinite y)
        near &= np.isfinite(x)
    if near.any():
        out[near] = _scaled_exact(x[near], np.broadcast_to(dec, x.shape)[near])
    return np.copysign(out, x) + 0.0  # NaN stays NaN; no -0.0


#: 10.0 ** d for the decimals d = -_POW10_SPAN .. _POW10_SPAN (looked up, not computed per value).
_POW10_SPAN = 30
_POW10_FLOAT = 10.0 ** np.arange(-_POW10_SPAN, _POW10_SPAN + 1, dtype=float)


def _powers_of_ten(decimals: np.ndarray) -> np.ndarray | float:
    """10.0 ** decimals: a float for one precision, a lookup per value for many."""
    if decimals.ndim == 0:
        return 10.0 ** float(decimals)
    inside = (decimals >= -_POW10_SPAN) & (decimals <= _POW10_SPAN)
    if inside.all():
        return _POW10_FLOAT[decimals + _POW10_SPAN]
    return 10.0 ** decimals.astype(float)


def _scaled_exact(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """|x| at 15 significant digits rounded half away from zero to d decimals, in units of 10^-d (whole-number
    arithmetic on the mantissa)."""
    out = np.zeros(x.shape)
    ok, _, m, p = _mantissas(x, SIGNIFICANT_DIGITS)
    drop = p - d[ok]  # digits of the mantissa below the precision
    kept = np.zeros(len(m))
    exact = drop <= 0  # already at (or above) the precision: the mantissa scaled up
    kept[exact] = m[exact] * 10.0 ** (-drop[exact])
    cut = ~exact & (drop <= SIGNIFICANT_DIGITS)  # beyond 15 dropped digits the value rounds to 0
    k = drop[cut]
    kept[cut] = (m[cut] + 5 * _POW10[k - 1]) // _POW10[k]
    out[ok] = kept
    return out


def round_half_away(values: Any, decimals: Any) -> np.ndarray:
    """Round to `decimals` (one for all, or one per value; negative: tens, hundreds), halves away from zero, on the
    value at 15 significant digits; NaN stays NaN, -0 -> 0.

    round_half_away([0.285, 1.005, -2.5, 2.675], [2, 2, 0, 2]) == [0.29, 1.01, -3.0, 2.68].
    """
    dec = np.asarray(decimals, dtype=np.int64)
    return scaled_integers(values, dec) / _powers_of_ten(dec)


def recorded_decimals(values: Any, max_decimals: int = SIGNIFICANT_DIGITS) -> np.ndarray:
    """Decimals each value carries at 15 significant digits (23.5 -> 1, 1.05 -> 2, 120.0 -> 0, 1.0499999999999998
    -> 2), at most `max_decimals`; 0 for missing, zero and infinite values. int64."""
    x = np.asarray(values, dtype=float)
    if x.size > 1000:  # recorded values repeat: work once per distinct value
        codes, distinct = pd.factorize(x.ravel(), use_na_sentinel=True)
        if len(distinct) < x.size // 2:
            per_distinct = np.append(recorded_decimals(np.asarray(distinct, dtype=float), max_decimals), 0)
            return per_distinct[np.where(codes < 0, len(distinct), codes)].reshape(x.shape)
    out = np.zeros(x.shape, dtype=np.int64)
    ok, _, m, p = _mantissas(x, SIGNIFICANT_DIGITS)
    for _ in range(SIGNIFICANT_DIGITS):  # strip trailing zeros of the mantissa
        zero = (m % 10 == 0) & (m > 0)
        if not zero.any():
            break
        m = np.where(zero, m // 10, m)
        p = np.where(zero, p - 1, p)
    out[ok] = np.clip(p, 0, max_decimals)
    return out


def compare(values: Any, thresholds: Any, op: str) -> np.ndarray:
    """`values <op> thresholds` with both sides at 15 significant digits; a NaN on either side gives False.

    The value is taken as recorded (2.49 < 2.5) and a threshold computed from limits (3 x ULN, ULN x 1.1) loses only
    its representation error: 120 U/L is not > 3 x 40 U/L, 1.05 mg/dL is not > 3 x 0.35 mg/dL. op: >, >=, <, <=.
    """
    if op not in _OPERATORS:
        raise ValueError(f"unknown comparison operator {op!r}")
    v, t = np.broadcast_arrays(np.asarray(values, dtype=float), np.asarray(thresholds, dtype=float))
    with np.errstate(invalid="ignore", over="ignore"):
        out = _OPERATORS[op](v, t)
        # only where the two sides are this close can the 15-digit forms compare otherwise
        gap = np.abs(v - t)
        near = (gap <= _NEAR_BOUNDARY * np.abs(v)) | (gap <= _NEAR_BOUNDARY * np.abs(t))
    if near.any():
        out = np.array(out, copy=True)
        out[near] = _OPERATORS[op](round_significant(v[near]), round_significant(t[near]))
    return out


def is_missing(value: Any) -> bool:
    """None, pandas NA/NaT and float NaN are missing; everything else is not."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(isinstance(value, float | np.floating) and math.isnan(value))
    except TypeError:
        return False


def rounded_decimal(value: Any, decimals: int) -> Decimal | None:
    """One number rounded as `round_half_away` rounds it, as a Decimal with exactly `decimals` places (for displayed
    text); None when missing, not a number or infinite. rounded_decimal(2.675, 2) == Decimal("2.68") although the
    binary 2.675 lies below the half; a result that rounds to zero has no sign (never "-0.00")."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        value = float(value)
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(as_float):
        return None
    rounded = float(round_half_away(np.array([as_float]), decimals)[0])
    number = Decimal(repr(rounded)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return abs(number) if number.is_zero() else number


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
def _distinct_subject_numbers(subject_ids: Any) -> tuple[np.ndarray, pd.Index, np.ndarray]:
    """Row codes (-1: missing), the distinct IDs and the number each distinct ID ends with (IDs given as categories:
    their codes and categories, no factorizing of millions of strings)."""
    if isinstance(getattr(subject_ids, "dtype", None), pd.CategoricalDtype):
        categorical = pd.Categorical(subject_ids)
        codes, distinct = np.asarray(categorical.codes, dtype=np.int64), categorical.categories
    else:
        codes, distinct = pd.factorize(pd.Series(subject_ids, dtype=object), use_na_sentinel=True)
    distinct = pd.Index(distinct, dtype=object).astype(str)
    numbers = pd.Series(distinct).str.extract(r"(\d+)\s*$", expand=False)
    return codes, distinct, pd.to_numeric(numbers, errors="coerce").fillna(NO_SUBJECT_NUMBER).to_numpy(np.int64)


def subject_numbers(subject_ids: Any) -> np.ndarray:
    """The number at the end of each subject ID (K2-010 -> 10), int64; NO_SUBJECT_NUMBER where there is none.

    Computed once per distinct ID.
    """
    codes, distinct, numbers = _distinct_subject_numbers(subject_ids)
    table = np.append(numbers, -1)
    return table[np.where(codes < 0, len(distinct), codes)]


def subject_order(subject_ids: Any, *keys: Any) -> np.ndarray:
    """Positions that sort rows by subject number, then by subject ID (IDs of a dataset's own pattern may end in
    the same number: S1-001, S2-001), then by the further integer keys (stable). Missing IDs sort first."""
    codes, distinct, numbers = _distinct_subject_numbers(subject_ids)
    order = np.lexsort([distinct.to_numpy(dtype=str), numbers])
    rank = np.empty(len(distinct) + 1, dtype=np.int64)
    rank[order] = np.arange(1, len(distinct) + 1)
    rank[-1] = 0  # missing
    return np.lexsort([*(np.asarray(k) for k in reversed(keys)), rank[np.where(codes < 0, len(distinct), codes)]])


def sort_by_subject(frame: pd.DataFrame, *keys: Any, column: str = "subject_id") -> pd.DataFrame:
    """Rows ordered by subject number (then the further keys), index reset."""
    return frame.iloc[subject_order(frame[column].to_numpy(dtype=object), *keys)].reset_index(drop=True)


def percent(counts: Any, denominator: Any) -> np.ndarray:
    """100 x counts / denominator (float); NaN where the denominator is 0 or missing."""
    counts = np.asarray(counts, dtype=float)
    denominator = np.broadcast_to(np.asarray(denominator, dtype=float), counts.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 100.0 * counts / denominator, np.nan)
