"""The normal and Student t tail and quantile functions, and average ranks, without importing scipy.stats.

Importing scipy.stats costs 0.4-0.6 s of interpreter time (its distribution classes are built at import), which a
job pays on every run; the safety step needs only these few functions. They call the same cephes routines of
scipy.special that scipy.stats' `norm` and `t` call (scipy 1.17: norm._cdf = ndtr, norm._sf(x) = ndtr(-x),
norm._ppf = ndtri, norm._isf(q) = -ndtri(q), t._sf(x, df) = stdtr(df, -x), t._isf(q, df) = -stdtrit(df, q)), so the
values are the same to the last bit (tests/test_distributions.py compares them with scipy.stats).
"""

from __future__ import annotations

import numpy as np
from scipy import special


def norm_cdf(x):
    """P(Z <= x), Z standard normal."""
    return special.ndtr(x)


def norm_sf(x):
    """P(Z > x)."""
    return special.ndtr(-np.asarray(x, dtype=float))


def norm_ppf(q):
    """The q-quantile of the standard normal."""
    return special.ndtri(q)


def norm_isf(q):
    """The x with P(Z > x) = q."""
    return -special.ndtri(q)


def t_sf(x, df):
    """P(T > x), T Student t with df degrees of freedom."""
    return special.stdtr(df, -np.asarray(x, dtype=float))


def t_isf(q, df):
    """The x with P(T > x) = q (infinite at q = 0, as scipy.stats' boundary rule has it; stdtrit gives -inf)."""
    boundary = (np.asarray(q) == 0) & (np.asarray(df) > 0)
    return np.where(boundary, np.inf, -special.stdtrit(df, q))[()]


def rankdata(values) -> np.ndarray:
    """Ranks 1..n of a 1-d array, ties given the mean of the ranks they span (scipy.stats.rankdata's "average")."""
    x = np.asarray(values).ravel()
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.r_[True, sorted_x[1:] != sorted_x[:-1]] if len(x) else np.zeros(0, dtype=bool)
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], len(x)] - 1
    ranks = np.empty(len(x), dtype=float)
    ranks[order] = ((first + last) / 2.0 + 1.0)[group]
    return ranks
