"""k2trial.stats.paired against published R results, hand-worked examples and independent brute force.

The brute-force reference implementations below share nothing with the library: they build every Walsh
average and every pairwise difference, enumerate the exact null distributions, and emulate R's asymptotic
confidence limits by bisection on R's own statistic W(d) (wilcox.test before R 4.6).
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from k2trial.stats.paired import (
    PAIRED_TEST_COLUMNS,
    holm,
    kth_pairwise_sum,
    kth_walsh_average,
    paired_comparison,
    paired_comparison_table,
    rank_sum_null,
    signed_rank_null,
    signed_rank_test,
)
from k2trial.stats.two_sample import METHOD_EXACT, METHOD_NORMAL_CC, rank_sum_test

#: two_sample's method names in the words of the references below.
METHODS = {METHOD_EXACT: "exact", METHOD_NORMAL_CC: "normal_cc"}

# ------------------------------------------------------------------------------ brute-force references


def brute_ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks by counting (O(n^2)): rank = #smaller + (#equal + 1) / 2."""
    v = np.asarray(values, dtype=float)
    smaller = (v[None, :] < v[:, None]).sum(axis=1)
    equal = (v[None, :] == v[:, None]).sum(axis=1)
    return smaller + (equal + 1) / 2.0


def brute_signed_rank_null(n: int) -> np.ndarray:
    """P(V = v) by the generating function prod_i (1 + x^i) / 2 (polynomial products)."""
    poly = np.array([1.0])
    for i in range(1, n + 1):
        term = np.zeros(i + 1)
        term[0] = term[i] = 0.5
        poly = np.convolve(poly, term)
    return poly


def enumerate_signed_rank_null(n: int) -> np.ndarray:
    """P(V = v) by enumerating all 2^n sign vectors."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    for signs in itertools.product((0, 1), repeat=n):
        counts[sum(r for r, s in zip(range(1, n + 1), signs, strict=True) if s)] += 1
    return counts / 2**n


def brute_rank_sum_null(m: int, n: int) -> np.ndarray:
    """P(U = u) by enumerating every choice of the m ranks of x among m + n."""
    counts = np.zeros(m * n + 1)
    for chosen in itertools.combinations(range(1, m + n + 1), m):
        counts[sum(chosen) - m * (m + 1) // 2] += 1
    return counts / counts.sum()


def quantile_lower(probs: np.ndarray, p: float) -> int:
    cdf = np.cumsum(probs)
    return int(next(q for q, c in enumerate(cdf) if c >= p - 1e-12))


def r_signed_rank_reference(d: np.ndarray, confidence: float = 0.95, exact_below: int = 50, correct: bool = True):
    """R wilcox.test(d, conf.int = TRUE) before R 4.6, written out naively."""
    x = d[d != 0]
    n = len(x)
    ranks = brute_ranks(np.abs(x))
    v = float(ranks[x > 0].sum())
    ties = len(np.unique(np.abs(x))) != n
    walsh = np.sort([(x[i] + x[j]) / 2 for i in range(n) for j in range(i, n)])
    total = len(walsh)
    alpha = 1 - confidence
    if n < exact_below and not ties and len(x) == len(d):
        probs = enumerate_signed_rank_null(n) if n <= 12 else brute_signed_rank_null(n)
        lower_tail, upper_tail = probs[: int(v) + 1].sum(), probs[int(v) :].sum()
        p = min(1.0, 2 * min(lower_tail, upper_tail))
        qu = max(quantile_lower(probs, alpha / 2), 1)
        ci = (walsh[qu - 1], walsh[total - qu])
        return "exact", v, p, float(np.median(walsh)), ci
    _, t = np.unique(ranks, return_counts=True)
    sigma = math.sqrt(n * (n + 1) * (2 * n + 1) / 24 - np.sum(t**3 - t) / 48)
    z = v - n * (n + 1) / 4
    z = (z - (np.sign(z) * 0.5 if correct else 0)) / sigma
    p = 2 * min(stats.norm.cdf(z), stats.norm.sf(z))

    def w_of(dd: float) -> float:
        xd = x - dd
        xd = xd[xd != 0]
        nx = len(xd)
        dr = brute_ranks(np.abs(xd))
        zd = dr[xd > 0].sum() - nx * (nx + 1) / 4
        _, tt = np.unique(dr, return_counts=True)
        s = math.sqrt(nx * (nx + 1) * (2 * nx + 1) / 24 - np.sum(tt**3 - tt) / 48)
        return (zd - (np.sign(zd) * 0.5 if correct else 0)) / s if s > 0 else math.nan

    lo_d, hi_d = x.min(), x.max()
    w_min, w_max = w_of(lo_d), w_of(hi_d)
    while w_min < stats.norm.isf(alpha / 2) or w_max > stats.norm.ppf(alpha / 2):
        alpha *= 2
    if alpha >= 1:  # R: median(x) twice at conf.level 0; the library reports no interval (NaN)
        return "normal_cc", v, p, float(np.median(walsh)), (math.nan, math.nan)

    def root(zq: float) -> float:  # W is non-increasing in d; bisection to the jump through zq
        a, b = lo_d, hi_d
        for _ in range(200):
            mid = (a + b) / 2
            if w_of(mid) - zq > 0:
                a = mid
            else:
                b = mid
        return (a + b) / 2

    return (
        "normal_cc",
        v,
        p,
        float(np.median(walsh)),
        (root(stats.norm.isf(alpha / 2)), root(stats.norm.ppf(alpha / 2))),
    )


def r_rank_sum_reference(x: np.ndarray, y: np.ndarray, confidence: float = 0.95, exact_below: int = 50):
    """R wilcox.test(x, y, conf.int = TRUE) before R 4.6, written out naively."""
    nx, ny = len(x), len(y)
    ranks = brute_ranks(np.concatenate([x, y]))
    u = ranks[:nx].sum() - nx * (nx + 1) / 2
    diffs = np.sort((x[:, None] - y[None, :]).ravel())
    alpha = 1 - confidence
    if len(np.unique(np.concatenate([x, y]))) == nx + ny and nx < exact_below and ny < exact_below:
        probs = brute_rank_sum_null(nx, ny)
        p = min(1.0, 2 * min(probs[: int(u) + 1].sum(), probs[int(u) :].sum()))
        qu = max(quantile_lower(probs, alpha / 2), 1)
        return "exact", u, p, float(np.median(diffs)), (diffs[qu - 1], diffs[nx * ny - qu])

    def w_of(d: float, rank_values: np.ndarray | None = None) -> float:
        r = brute_ranks(np.concatenate([x - d, y]))
        _, t = np.unique(r, return_counts=True)
        dz = r[:nx].sum() - nx * (nx + 1) / 2 - nx * ny / 2
        s = math.sqrt(nx * ny / 12 * ((nx + ny + 1) - np.sum(t**3 - t) / ((nx + ny) * (nx + ny - 1))))
        return (dz - np.sign(dz) * 0.5) / s

    z = w_of(0.0)
    p = 2 * min(stats.norm.cdf(z), stats.norm.sf(z))
    lo_d, hi_d = diffs[0], diffs[-1]

    def root(zq: float) -> float:
        if w_of(lo_d) - zq <= 0:
            return lo_d
        if w_of(hi_d) - zq >= 0:
            return hi_d
        a, b = lo_d, hi_d
        for _ in range(200):
            mid = (a + b) / 2
            if w_of(mid) - zq > 0:
                a = mid
            else:
                b = mid
        return (a + b) / 2

    return (
        "normal_cc",
        u,
        p,
        float(np.median(diffs)),
        (root(stats.norm.isf(alpha / 2)), root(stats.norm.ppf(alpha / 2))),
    )


def row(table, test: str) -> dict:
    return table[table["test"] == test].iloc[0].to_dict()


# ------------------------------------------------------------------------------ published references

# R's documented example (?wilcox.test): x, y paired; wilcox.test(x, y, paired = TRUE, alternative = "greater")
# gives V = 40, p-value = 0.01953, so the two-sided exact p is 2 * 10 / 512 = 0.0390625.
R_X = np.array([1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30])
R_Y = np.array([0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29])
# R's sleep data (Cushny & Peebles): t.test(extra ~ group, paired) on group 1 - group 2:
# t = -4.0621, df = 9, p-value = 0.002833, 95% CI -2.4598858 -0.7001142, mean difference -1.58;
# wilcox.test(group1, group2, paired = TRUE): V = 0, p-value = 0.009091 (ties and a zero: normal approximation).
SLEEP_1 = np.array([0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0])
SLEEP_2 = np.array([1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4])


def test_r_documented_paired_example():
    table = paired_comparison(R_Y, R_X, decimals=3)
    w = row(table, "wilcoxon")
    assert w["statistic"] == 40
    assert w["p_method"] == "exact"
    assert w["p_value"] == pytest.approx(0.0390625, abs=1e-12)
    assert w["p_value"] / 2 == pytest.approx(0.01953, abs=5e-6)
    walsh = np.sort([(d1 + d2) / 2 for i, d1 in enumerate(R_X - R_Y) for d2 in (R_X - R_Y)[i:]])
    assert w["estimate"] == pytest.approx(np.median(walsh), abs=1e-12)
    assert w["estimate"] == pytest.approx(0.46, abs=1e-12)
    assert w["effect_size"] == pytest.approx((2 * 40 - 45) / 45, abs=1e-12)


def test_r_sleep_data_paired_t_and_wilcoxon():
    table = paired_comparison(SLEEP_2, SLEEP_1, decimals=1)
    t = row(table, "paired_t")
    assert t["statistic"] == pytest.approx(-4.0621, abs=5e-5)
    assert t["statistic_name"] == "t (df=9)"
    assert t["p_value"] == pytest.approx(0.002833, abs=5e-7)
    assert t["estimate"] == pytest.approx(-1.58, abs=1e-12)
    assert (t["ci_low"], t["ci_high"]) == pytest.approx((-2.4598858, -0.7001142), abs=5e-8)
    w = row(table, "wilcoxon")
    assert (w["statistic"], w["p_method"], w["n"]) == (0, "normal_cc", 10)
    assert w["p_value"] == pytest.approx(0.009091, abs=5e-7)
    # every non-zero difference negative (all nine subjects with a change slept longer on drug 2): r = -1, and
    # tanh(atanh(-1) +/- z SE) would be the zero-width interval (-1, -1); it is not estimable, with the reason
    assert w["effect_size"] == -1.0
    assert math.isnan(w["es_ci_low"]) and math.isnan(w["es_ci_high"])
    assert w["es_ci_note"] == (
        "not estimable: all 9 non-zero changes have the same sign (every value fell), so r = -1 and the Fisher-z "
        "interval tanh(atanh(r) +/- z SE) has no width"
    )
    assert t["es_ci_note"] == ""


def test_rank_biserial_interval_stays_inside_minus_one_one_when_estimable():
    # one change against the others: d = -1 .. -9 and +0.5 (rank 1): T+ = 1, T- = 54, r = (1 - 54) / 55
    d = np.array([-1.0, -2, -3, -4, -5, -6, -7, -8, -9, 0.5])
    w = signed_rank_test(d, decimals=1)
    assert w.rank_biserial == pytest.approx(-53 / 55, abs=1e-15) and w.rb_note == ""
    se = math.sqrt((2 * 1000 + 3 * 100 + 10) / 6) / 55
    z = stats.norm.isf(0.025)
    assert (w.rb_ci_low, w.rb_ci_high) == pytest.approx(
        (math.tanh(math.atanh(-53 / 55) - z * se), math.tanh(math.atanh(-53 / 55) + z * se)), abs=1e-14
    )
    assert -1 < w.rb_ci_low < w.rank_biserial < w.rb_ci_high < 1


def test_r_documented_two_sample_example():
    # ?wilcox.test: wilcox.test(x, y, alternative = "g") gives W = 35, p-value = 0.1272 (exact).
    x = np.array([0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46])
    y = np.array([1.15, 0.88, 0.90, 0.74, 1.21])
    result = rank_sum_test(x, y, decimals=2)
    assert result.statistic == 35
    assert result.method == METHOD_EXACT
    assert result.p_value / 2 == pytest.approx(0.1272, abs=5e-5)
    method, u, p, estimate, ci = r_rank_sum_reference(x, y)
    assert (method, u) == ("exact", 35)
    assert result.p_value == pytest.approx(p, abs=1e-12)
    assert result.estimate == pytest.approx(estimate, abs=1e-12)
    assert (result.ci_low, result.ci_high) == pytest.approx(ci, abs=1e-12)
    assert result.rank_biserial == pytest.approx(2 * 35 / 50 - 1, abs=1e-12)


# ------------------------------------------------------------------------------ hand-worked examples


def test_three_differences_exact_by_hand():
    # d = 1, -2, 3: ranks 1, 2, 3; V = 1 + 3 = 4 > n(n+1)/4 = 3, P(V >= 4) = 3/8, p = 3/4.
    # Walsh averages -2, -0.5, 0.5, 1, 2, 3: HL = 0.75. 95% unattainable: P(V = 0) = 1/8 > 0.025, so the
    # interval is [min, max] = [-2, 3] with level 1 - 2/8 = 0.75. r = (2*4 - 6)/6 = 1/3.
    table = paired_comparison_table([0, 0, 0], [1, -2, 3], decimals=0)
    w = row(table, "wilcoxon")
    assert (w["statistic"], w["p_method"], w["p_value"]) == (4, "exact", 0.75)
    assert (w["estimate"], w["ci_low"], w["ci_high"], w["ci_level"]) == (0.75, -2.0, 3.0, 0.75)
    assert w["effect_size"] == pytest.approx(1 / 3, abs=1e-15)
    se = math.sqrt((2 * 27 + 3 * 9 + 3) / 6) / 6
    z = stats.norm.isf(0.025)
    assert w["es_ci_low"] == pytest.approx(math.tanh(math.atanh(1 / 3) - z * se), abs=1e-12)
    t = row(table, "paired_t")
    assert t["estimate"] == pytest.approx(2 / 3, abs=1e-15)
    sd = math.sqrt(((1 - 2 / 3) ** 2 + (-2 - 2 / 3) ** 2 + (3 - 2 / 3) ** 2) / 2)
    assert t["statistic"] == pytest.approx((2 / 3) / (sd / math.sqrt(3)), abs=1e-12)
    assert t["effect_size"] == pytest.approx((2 / 3) / sd, abs=1e-12)
    half = z * math.sqrt(1 / 3 + ((2 / 3) / sd) ** 2 / 6)
    assert (t["es_ci_low"], t["es_ci_high"]) == pytest.approx(((2 / 3) / sd - half, (2 / 3) / sd + half), abs=1e-12)


def test_zeros_and_ties_use_normal_approximation_by_hand():
    # d = 0, 0, 1, -1, 2: zeros dropped (n = 3), |d| ranks 1.5, 1.5, 3, V = 4.5, E(V) = 3;
    # var = 3*4*7/24 - (2^3 - 2)/48 = 3.375; z = (1.5 - 0.5)/sqrt(3.375).
    table = paired_comparison_table(np.zeros(5), [0, 0, 1, -1, 2], decimals=1)
    w = row(table, "wilcoxon")
    assert (w["n"], w["n_nonzero"], w["statistic"], w["p_method"]) == (5, 3, 4.5, "normal_cc")
    assert w["p_value"] == pytest.approx(2 * stats.norm.sf(1 / math.sqrt(3.375)), abs=1e-15)
    # HL over the non-zero differences (as R): Walsh averages -1, 0, 0.5, 1, 1.5, 2 -> median 0.75
    assert w["estimate"] == pytest.approx(0.75, abs=1e-15)
    assert w["effect_size"] == pytest.approx((2 * 4.5 - 6) / 6, abs=1e-15)


def test_all_differences_zero():
    table = paired_comparison([5.0, 3.2, 7.7, 1.0], [5.0, 3.2, 7.7, 1.0], decimals=1)
    w, t = row(table, "wilcoxon"), row(table, "paired_t")
    assert w["n"] == 4 and w["statistic"] == 0
    for key in ("p_value", "estimate", "ci_low", "ci_high", "effect_size", "es_ci_low", "es_ci_high"):
        assert math.isnan(w[key]), key
    assert t["estimate"] == 0.0
    for key in ("statistic", "p_value", "ci_low", "ci_high", "effect_size"):
        assert math.isnan(t[key]), key


def test_floating_point_noise_does_not_break_ties():
    # 7.3 - 7.0 and 1.3 - 1.0 differ in the last bits; rounded to 0.1 cm they are one tie (normal approximation).
    before = np.array([7.0, 1.0, 4.0])
    after = np.array([7.3, 1.3, 4.5])
    assert (after - before)[0] != (after - before)[1]
    assert row(paired_comparison(before, after, decimals=1), "wilcoxon")["p_method"] == "normal_cc"
    assert row(paired_comparison(before, after, decimals=None), "wilcoxon")["p_method"] == "exact"


def test_one_and_two_pairs():
    one = paired_comparison_table([2.0], [1.7], decimals=1)
    w, t = row(one, "wilcoxon"), row(one, "paired_t")
    assert (w["n"], w["statistic"], w["p_value"], w["p_method"]) == (1, 0, 1.0, "exact")
    assert w["estimate"] == pytest.approx(-0.3, abs=1e-15)
    assert math.isnan(w["ci_low"]) and math.isnan(w["ci_level"])
    assert t["estimate"] == pytest.approx(-0.3, abs=1e-15) and math.isnan(t["statistic"]) and t["statistic_name"] == "t"

    two = paired_comparison_table([3.0, 4.0], [2.0, 2.0], decimals=1)  # d = -1, -2
    w, t = row(two, "wilcoxon"), row(two, "paired_t")
    assert (w["statistic"], w["p_value"]) == (0, 0.5)  # P(V <= 0) = 1/4, doubled
    assert (w["estimate"], w["ci_low"], w["ci_high"], w["ci_level"]) == (-1.5, -2.0, -1.0, 0.5)
    assert t["statistic"] == pytest.approx(-3.0, abs=1e-12)  # mean -1.5, sd sqrt(0.5), se 0.5
    assert t["p_value"] == pytest.approx(2 * stats.t.sf(3.0, 1), abs=1e-15)
    assert t["df"] == 1


def test_no_pairs_and_missing_visits():
    empty = paired_comparison([np.nan, 1.0], [2.0, np.nan], decimals=1)
    assert list(empty.columns) == PAIRED_TEST_COLUMNS
    assert list(empty["n"]) == [0, 0]
    assert (
        empty.drop(
            columns=["n", "test", "statistic_name", "p_method", "estimate_type", "effect_size_type", "es_ci_note"]
        )
        .isna()
        .all()
        .all()
    )
    assert empty["es_ci_note"].tolist() == ["not estimable: no complete pairs", "not estimable: fewer than 2 pairs"]
    # pairs with a missing value are dropped; the rest is the same test
    full = paired_comparison([1.0, np.nan, 3.0, 2.0, 5.0], [0.0, 2.0, np.nan, 1.5, 3.0], decimals=1)
    kept = paired_comparison([1.0, 2.0, 5.0], [0.0, 1.5, 3.0], decimals=1)
    assert full.equals(kept)
    assert list(full["n"]) == [3, 3]


def test_holm_by_hand_and_with_missing():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") = 0.03 0.06 0.06 0.02
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)
    adjusted = holm([0.01, np.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert len(holm([])) == 0


# ------------------------------------------------------------------------------ independent cross-checks


def test_exact_null_distributions_match_enumeration():
    for n in range(1, 13):
        assert signed_rank_null(n) == pytest.approx(enumerate_signed_rank_null(n), abs=1e-15)
    for n in (20, 35, 50):
        assert signed_rank_null(n) == pytest.approx(brute_signed_rank_null(n), abs=1e-15)
    for m, n in ((1, 1), (2, 5), (4, 4), (6, 7)):
        assert rank_sum_null(m, n) == pytest.approx(brute_rank_sum_null(m, n), abs=1e-15)


@pytest.mark.parametrize("kind", ["continuous", "grid", "coarse_grid"])
def test_signed_rank_matches_r_reference_on_random_data(kind):
    rng = np.random.default_rng({"continuous": 1, "grid": 2, "coarse_grid": 3}[kind])
    for _ in range(25):
        n = int(rng.integers(1, 80))  # from 50 on (R: exact when n < 50) the continuous case is normal_cc
        if kind == "continuous":
            d, decimals = rng.normal(0.3, 1.0, n), None
        elif kind == "grid":
            d, decimals = rng.integers(-30, 20, n).astype(float), 0
        else:
            d, decimals = rng.integers(-3, 3, n).astype(float), 0
        if not np.any(d != 0):
            continue
        got = signed_rank_test(d, decimals=decimals)
        method, v, p, estimate, ci = r_signed_rank_reference(d)
        assert got.p_method == method
        assert got.statistic == v
        assert got.p_value == pytest.approx(p, abs=1e-9)
        assert got.estimate == pytest.approx(estimate, abs=1e-9)
        if np.count_nonzero(d) > 1:
            assert (got.ci_low, got.ci_high) == pytest.approx(ci, abs=1e-9, nan_ok=True)


def test_rank_sum_matches_r_reference_on_random_data():
    rng = np.random.default_rng(4)
    for trial in range(20):
        nx, ny = int(rng.integers(1, 12)), int(rng.integers(1, 12))
        if trial % 2:
            x, y, decimals = rng.normal(0, 1, nx), rng.normal(0.5, 1, ny), None
        else:
            x, y, decimals = rng.integers(0, 6, nx).astype(float), rng.integers(1, 7, ny).astype(float), 0
        got = rank_sum_test(x, y, decimals=decimals)
        method, u, p, estimate, ci = r_rank_sum_reference(x, y)
        assert (METHODS[got.method], got.statistic) == (method, u)
        assert got.p_value == pytest.approx(p, abs=1e-9)
        assert got.estimate == pytest.approx(estimate, abs=1e-9)
        assert (got.ci_low, got.ci_high) == pytest.approx(ci, abs=1e-9)


def test_p_values_match_scipy_wilcoxon():
    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(5, 60))
        d = rng.normal(0.2, 1, n)
        got = signed_rank_test(d, decimals=None)
        method = "exact" if n < 50 else "asymptotic"
        expected = stats.wilcoxon(d, method=method, correction=True)
        assert got.p_value == pytest.approx(expected.pvalue, abs=1e-12)
        d_tied = np.round(d, 0)
        if np.count_nonzero(d_tied) == 0:
            continue
        got = signed_rank_test(d_tied, decimals=0)
        expected = stats.wilcoxon(d_tied, zero_method="wilcox", correction=True, method="asymptotic")
        assert got.p_method == "normal_cc"
        assert got.p_value == pytest.approx(expected.pvalue, abs=1e-12)


def test_exact_only_below_fifty_as_r():
    # R 4.2.2 wilcox.test: exact <- (n < 50); for n = 50 distinct non-zero differences the normal approximation
    d = np.arange(1, 52, dtype=float) * np.where(np.arange(51) % 3 == 0, -1, 1)
    assert signed_rank_test(d[:49], decimals=0).p_method == "exact"
    assert signed_rank_test(d[:50], decimals=0).p_method == "normal_cc"
    # the option is kept: exact_below = 51 makes n = 50 exact
    assert signed_rank_test(d[:50], decimals=0, exact_below=51).p_method == "exact"
    assert row(paired_comparison(np.zeros(50), d[:50], decimals=0), "wilcoxon")["p_method"] == "normal_cc"


@pytest.mark.parametrize("seed", range(6))
def test_kth_walsh_and_pairwise_sum_equal_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 301))
    d = [rng.normal(size=n), np.round(rng.normal(size=n), 1), rng.integers(-4, 5, n) * 0.1, np.full(n, -0.3)][seed % 4]
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2)
    for k in {1, len(walsh), (len(walsh) + 1) // 2, *rng.integers(1, len(walsh) + 1, 20).tolist()}:
        assert kth_walsh_average(d, int(k)) == walsh[k - 1]
    y = np.round(rng.normal(size=int(rng.integers(1, 200))), seed % 3)
    diffs = np.sort((d[:, None] - y[None, :]).ravel())
    xv, xc = np.unique(d, return_counts=True)
    yv, yc = np.unique(-y, return_counts=True)
    for k in {1, len(diffs), *rng.integers(1, len(diffs) + 1, 20).tolist()}:
        assert kth_pairwise_sum(xv, xc, yv, yc, int(k), triangle=False) == diffs[k - 1]


def test_hodges_lehmann_for_100000_subjects():
    rng = np.random.default_rng(6)
    d = rng.normal(-0.5, 2.0, 100_000)
    started = time.perf_counter()
    result = signed_rank_test(d, decimals=None)
    elapsed = time.perf_counter() - started
    assert elapsed < 30  # about 1 s on one core; the bound only catches a quadratic algorithm
    assert result.ci_low < result.estimate < result.ci_high
    # On a grid the Walsh-sum counts are a histogram convolution: an independent check of the selection.
    grid = np.round(d, 1)
    values, counts = np.unique(np.rint(grid * 10).astype(np.int64), return_counts=True)
    hist = np.zeros(values[-1] - values[0] + 1, dtype=np.int64)
    hist[values - values[0]] = counts
    ordered = np.convolve(hist, hist)  # ordered pairs (i, j) by the sum of the integer values
    diagonal = np.zeros_like(ordered)
    diagonal[2 * (values - values[0])] = counts
    pairs = (ordered + diagonal) // 2  # unordered pairs i <= j
    cumulative = np.cumsum(pairs)
    total = len(grid) * (len(grid) + 1) // 2
    for k in (1, total // 3, (total + 1) // 2, total):
        expected = (np.searchsorted(cumulative, k) + 2 * values[0]) / 20
        assert kth_walsh_average(grid, k) == pytest.approx(expected, abs=1e-12)


# ------------------------------------------------------------------------------ properties


paired_values = st.lists(
    st.tuples(st.integers(0, 100), st.integers(0, 100)).map(lambda t: (t[0] / 10, t[1] / 10)), min_size=0, max_size=40
)


@settings(max_examples=60, deadline=None)
@given(paired_values)
def test_swapping_visits_flips_signs_and_keeps_p(pairs):
    before = np.array([p[0] for p in pairs])
    after = np.array([p[1] for p in pairs])
    forward = paired_comparison(before, after, decimals=1)
    backward = paired_comparison(after, before, decimals=1)
    for test in ("wilcoxon", "paired_t"):
        f, b = row(forward, test), row(backward, test)
        np.testing.assert_allclose(b["p_value"], f["p_value"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(b["estimate"], -f["estimate"], rtol=0, atol=1e-12)
        np.testing.assert_allclose([b["ci_low"], b["ci_high"]], [-f["ci_high"], -f["ci_low"]], rtol=0, atol=1e-12)
        np.testing.assert_allclose(b["effect_size"], -f["effect_size"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            [b["es_ci_low"], b["es_ci_high"]], [-f["es_ci_high"], -f["es_ci_low"]], rtol=0, atol=1e-12
        )
        p = f["p_value"]
        assert math.isnan(p) or 0.0 <= p <= 1.0
        if not math.isnan(f["ci_low"]):
            assert f["ci_low"] <= f["estimate"] <= f["ci_high"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), max_size=30))
def test_holm_is_monotone_capped_and_never_below_raw(p_values):
    raw = np.array(p_values, dtype=float)
    adjusted = holm(raw)
    finite = ~np.isnan(raw)
    assert np.array_equal(np.isnan(adjusted), ~finite)
    assert np.all(adjusted[finite] >= raw[finite])
    assert np.all(adjusted[finite] <= 1.0)
    order = np.argsort(raw[finite], kind="stable")
    assert np.all(np.diff(adjusted[finite][order]) >= 0)
