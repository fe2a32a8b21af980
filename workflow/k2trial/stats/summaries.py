"""Summaries and tests that several analyses share: descriptive statistics along an axis, the Friedman test with
Kendall's W, and the Clopper-Pearson interval of a proportion."""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

from k2trial.core.values import round_half_away

#: The statistics of `summaries`, in artifact order.
SUMMARY_STATISTICS = ("n", "mean", "sd", "median", "q1", "q3", "min", "max")


def friedman_test(values: np.ndarray, decimals: int | None) -> tuple[int, float, float, float, float]:
    """Friedman test over the columns (visits) of `values`, complete rows only, with tie correction.

    Returns (n, chi2, df, p, Kendall's W = chi2 / (n (k - 1))); R's friedman.test statistic. Values are
    rounded to `decimals` before ranking within a subject. n = 0 or all rows fully tied: NaN statistic.
    """
    values = np.asarray(values, dtype=float)
    complete = values[~np.isnan(values).any(axis=1)]
    n, k = complete.shape
    df = float(k - 1)
    if n == 0 or k < 2:
        return n, math.nan, df, math.nan, math.nan
    if decimals is not None:
        complete = round_half_away(complete, decimals)
    ranks = stats.rankdata(complete, axis=1)
    ordered = np.sort(complete, axis=1)
    tie_term = np.zeros(n)
    run = np.ones(n)
    for j in range(1, k):
        same = ordered[:, j] == ordered[:, j - 1]
        tie_term += np.where(same, 0.0, run**3 - run)
        run = np.where(same, run + 1, 1.0)
    tie_term += run**3 - run
    denominator = n * k * (k + 1) - tie_term.sum() / (k - 1)
    if denominator <= 0:
        return n, math.nan, df, math.nan, math.nan
    chi2 = 12.0 * float(np.sum((ranks.sum(axis=0) - n * (k + 1) / 2.0) ** 2)) / denominator
    return n, chi2, df, float(stats.chi2.sf(chi2, df)), chi2 / (n * (k - 1))


def summaries(values: np.ndarray) -> dict[str, np.ndarray]:
    """n, mean, SD (n - 1), median, Q1, Q3 (linear interpolation, R type 7), min, max along axis 0."""
    n = np.sum(~np.isnan(values), axis=0)
    if len(values) == 0:
        empty = np.full(values.shape[1:], np.nan)
        return {"n": n, **{name: empty for name in SUMMARY_STATISTICS[1:]}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-missing slices give NaN, as wanted
        mean = np.nanmean(values, axis=0)
        sd = np.where(n >= 2, np.nanstd(values, axis=0, ddof=1), np.nan)
        q1, median, q3 = np.nanquantile(values, [0.25, 0.5, 0.75], axis=0)
        low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    return {"n": n, "mean": mean, "sd": sd, "median": median, "q1": q1, "q3": q3, "min": low, "max": high}


def clopper_pearson(successes, n, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) CI of a binomial proportion, as proportions; n = 0 gives NaN."""
    x = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    alpha = 1.0 - confidence
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(x > 0, stats.beta.ppf(alpha / 2, x, n - x + 1), 0.0)
        high = np.where(x < n, stats.beta.ppf(1 - alpha / 2, x + 1, n - x), 1.0)
    low = np.where(n > 0, low, np.nan)
    high = np.where(n > 0, high, np.nan)
    return low, high
