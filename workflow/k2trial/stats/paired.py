"""Paired (within-subject) comparisons: Wilcoxon signed-rank with Hodges-Lehmann estimate, paired t, Holm.

The conventions are those of CLINICAL.md (efficacy) and of R's `wilcox.test` / `t.test` before R 4.6:

* change = after - before (negative = decrease); pairs with any missing value are dropped; the
  differences are rounded to the recording precision (`decimals`) before anything is ranked, so that
  floating-point noise cannot create distinct ranks or break ties.
* Wilcoxon signed-rank, zero differences dropped (Wilcoxon's method). V = sum of the ranks of the
  positive differences (R's statistic). Exact two-sided p from the exact null distribution of V when
  there are no ties and no zeros and n < exact_below (R's rule: n < 50); otherwise the normal approximation
  with tie correction and continuity correction.
* Hodges-Lehmann estimate: the median of the Walsh averages (d_i + d_j) / 2, i <= j, of the non-zero
  differences (R drops the zeros before computing them). Distribution-free CI from order statistics
  of the Walsh averages at the signed-rank critical value: exact quantile of V in the exact case;
  in the normal case the order statistics at which R's continuity-corrected statistic crosses the
  normal quantile (R finds the same points by root finding to a tolerance of 1e-4).
  The k-th Walsh average is selected without building the n(n+1)/2 averages: bisection on the value
  with an O(m log m) count of pairs (m distinct differences; sorted values + np.searchsorted),
  jumping to the neighbouring attained sums, so the result is an exact Walsh value.
* Paired t: mean change, t-based CI, t with n - 1 df; Cohen's d_z = mean / SD with the approximate CI
  d_z +/- z sqrt(1/n + d_z^2 / (2n)) (z: normal quantile).
* Matched-pairs rank-biserial r = (T+ - T-) / (T+ + T-) over the non-zero differences (positive when
  after > before), CI tanh(atanh(r) +/- z SE), SE = sqrt((2n^3 + 3n^2 + n) / 6) / ((n^2 + n) / 2). When every
  non-zero difference has one sign (every subject changed in the same direction), r is -1 or +1, atanh(r) is
  infinite and the interval collapses to the point (-1, -1) or (1, 1): the CI is then not estimable (NaN) and
  `rb_note` says why (RB_NOT_ESTIMABLE).

Degenerate inputs (no pairs, one pair, all differences zero, all differences equal) give NaN where a
quantity is undefined and never raise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from k2trial.core.schema import PAIRED_DETAIL, PAIRED_TEST
from k2trial.core.values import round_half_away, scaled_integers
from k2trial.stats import distributions as dist

#: Columns of `paired_comparison` and the extra ones of `paired_comparison_table` (t degrees of freedom, non-zero
#: differences (the n of the signed-rank test), and the confidence level the CI attains: lower than requested only
#: when the sample is too small for it; NaN when no interval exists). Stated once, in k2trial.core.schema.
PAIRED_TEST_COLUMNS = [c.name for c in PAIRED_TEST]
PAIRED_DETAIL_COLUMNS = [c.name for c in PAIRED_DETAIL]

#: R's qsignrank/qwilcox fuzz: a quantile search accepts a cumulative probability this close below p.
_QUANTILE_FUZZ = 10 * np.finfo(float).eps
_VALUE_BISECTION_STEPS = 60
#: R's rule for the exact Wilcoxon distributions: exact p (and CI) only with fewer than this many values (n < 50).
EXACT_BELOW = 50


def rb_not_estimable(r: float, n: int) -> str:
    """Why the rank-biserial CI is not estimable: every one of the n non-zero differences (pairs) has one sign."""
    direction = "rose" if r > 0 else "fell"
    return (
        f"not estimable: all {n} non-zero changes have the same sign (every value {direction}), so r = {r:+.0f} "
        "and the Fisher-z interval tanh(atanh(r) +/- z SE) has no width"
    )


# ----------------------------------------------------------------------------------------- Holm


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error), NaN-aware.

    NaN entries are left NaN and do not count towards the family size m. Adjusted p_(i) =
    max over j <= i of min(1, (m - j + 1) p_(j)) for the ascending raw p's, so the result is monotone in
    the raw p, never below it, and capped at 1. Same as R's p.adjust(p, "holm") on the non-missing p's.
    """
    p = np.asarray(p_values, dtype=float).reshape(-1)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = len(finite)
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


# ------------------------------------------------------------- exact null distributions (R's d/p/q)


@lru_cache(maxsize=256)
def signed_rank_null(n: int) -> np.ndarray:
    """Exact null probabilities P(V = v), v = 0 .. n(n+1)/2, of the signed-rank statistic without ties.

    Dynamic programme P_n(v) = (P_{n-1}(v) + P_{n-1}(v - n)) / 2; every value is count / 2^n, exact in
    double precision for n <= 52 (R's dsignrank works the same way).
    """
    probs = np.zeros(n * (n + 1) // 2 + 1)
    probs[0] = 1.0
    for i in range(1, n + 1):
        top = i * (i + 1) // 2
        shifted = probs[: top - i + 1].copy()
        probs[: top + 1] *= 0.5
        probs[i : top + 1] += 0.5 * shifted
    probs.setflags(write=False)
    return probs


@lru_cache(maxsize=256)
def rank_sum_null(m: int, n: int) -> np.ndarray:
    """Exact null probabilities P(U = u), u = 0 .. m n, of the Mann-Whitney U of a sample of m vs n, no ties.

    Counts by the recurrence c(m, n, u) = c(m - 1, n, u - n) + c(m, n - 1, u), divided by C(m + n, m).
    """
    # counts[j] holds c(i, j, .) for the current i, as float (exact up to 2^53, tiny relative error above)
    counts = [np.ones(1) for _ in range(n + 1)]  # c(0, j, u) = 1 at u = 0
    for i in range(1, m + 1):
        new = [np.ones(1)]  # c(i, 0, .) = 1 at u = 0
        for j in range(1, n + 1):
            size = i * j + 1
            row = np.zeros(size)
            prev_i = counts[j]  # c(i - 1, j, .)  shifted by j
            row[j : j + len(prev_i)] += prev_i
            prev_j = new[j - 1]  # c(i, j - 1, .)
            row[: len(prev_j)] += prev_j
            new.append(row)
        counts = new
    probs = counts[n] / math.comb(m + n, m)
    probs.setflags(write=False)
    return probs


def lower_quantile(probs: np.ndarray, p: float) -> int:
    """Smallest q with P(X <= q) >= p (R's qsignrank / qwilcox, with their fuzz)."""
    cdf = np.cumsum(probs)
    return int(np.searchsorted(cdf, p - _QUANTILE_FUZZ, side="left"))


def exact_two_sided_p(probs: np.ndarray, statistic: float) -> float:
    """R's exact two-sided p: twice the smaller tail at the observed statistic, capped at 1."""
    centre = (len(probs) - 1) / 2.0
    q = int(round(statistic))
    tail = probs[q:].sum() if statistic > centre else probs[: q + 1].sum()
    return float(min(1.0, 2.0 * tail))


# ------------------------------------------------------------- k-th smallest pairwise sum, O(m log m)


def _prefix_lengths(rows: np.ndarray, cols: np.ndarray, bound: float) -> np.ndarray:
    """For each row value r: how many sorted column values c satisfy fl(r + c) <= bound.

    searchsorted answers `c <= bound - r`, which can disagree with the rounded sum by one ulp; the two
    correction passes make the count agree with the sums actually computed (rounding is monotone, so
    the columns that qualify are always a prefix).
    """
    m = len(cols)
    pos = np.searchsorted(cols, bound - rows, side="right")
    idx = np.flatnonzero(pos < m)
    while len(idx):
        idx = idx[rows[idx] + cols[pos[idx]] <= bound]
        pos[idx] += 1
        idx = idx[pos[idx] < m]
    idx = np.flatnonzero(pos > 0)
    while len(idx):
        idx = idx[rows[idx] + cols[pos[idx] - 1] > bound]
        pos[idx] -= 1
        idx = idx[pos[idx] > 0]
    return pos


def _float_midpoint(lo: float, hi: float, by_value: bool) -> float:
    """A float strictly between lo and hi if one exists (else lo or hi).

    by_value: the arithmetic midpoint; otherwise the midpoint in the ordering of the float bit
    patterns, which bounds the number of bisection steps by 64 whatever the data's range.
    """
    if by_value:
        mid = lo + (hi - lo) / 2.0
        if math.isfinite(mid):
            return mid

    def key(x: float) -> int:
        bits = int(np.array(x, dtype=np.float64).view(np.int64))
        return bits if bits >= 0 else -(bits & 0x7FFFFFFFFFFFFFFF)

    def unkey(k: int) -> float:
        bits = k if k >= 0 else ((-k) | (1 << 63)) - (1 << 64)
        return float(np.array(bits, dtype=np.int64).view(np.float64))

    klo, khi = key(lo), key(hi)
    return unkey(klo + (khi - klo) // 2)


def kth_pairwise_sum(
    rows: np.ndarray, row_counts: np.ndarray, cols: np.ndarray, col_counts: np.ndarray, k: int, *, triangle: bool
) -> float:
    """The k-th smallest (1-based) of the pairwise sums of two multisets, without materialising them.

    rows, cols: sorted distinct values; row_counts, col_counts: their multiplicities.
    triangle=False: all sums a + b, a from rows, b from cols (N = sum(row_counts) * sum(col_counts)).
    triangle=True: rows and cols are the same multiset {d_1..d_n}; the sums d_i + d_j, i <= j
    (N = n(n + 1) / 2), i.e. twice the Walsh averages.
    Sums are the floating-point sums fl(a + b), as a direct computation would produce them.
    Cost: O(m log m) per step with m distinct values; at most ~124 steps (value bisection, then
    bisection on the float ordering), each moving the bracket to attained sums.
    """
    rows = np.asarray(rows, dtype=float)
    cols = np.asarray(cols, dtype=float)
    row_counts = np.asarray(row_counts, dtype=np.int64)
    col_cum = np.concatenate(([0], np.cumsum(np.asarray(col_counts, dtype=np.int64))))
    m = len(cols)

    def count_le(pos: np.ndarray, bound: float) -> int:
        ordered = int(np.dot(row_counts, col_cum[pos]))
        if not triangle:
            return ordered
        diagonal = int(row_counts[2.0 * rows <= bound].sum())
        return (ordered + diagonal) // 2

    total = count_le(np.full(len(rows), m), math.inf)
    if not 1 <= k <= total:
        raise ValueError(f"k={k} outside 1..{total}")
    lo = float(rows[0] + cols[0])  # smallest sum
    hi = float(rows[-1] + cols[-1])  # largest sum
    if count_le(_prefix_lengths(rows, cols, lo), lo) >= k:
        return lo
    # Invariant: count_le(lo) < k <= count_le(hi), and hi is an attained sum.
    for step in range(10_000):
        mid = _float_midpoint(lo, hi, by_value=step < _VALUE_BISECTION_STEPS)
        if not lo < mid < hi:
            return hi
        pos = _prefix_lengths(rows, cols, mid)
        if count_le(pos, mid) >= k:
            has = pos > 0
            hi = float(np.max(rows[has] + cols[pos[has] - 1]))  # largest attained sum <= mid
        else:
            has = pos < m
            above = float(np.min(rows[has] + cols[pos[has]]))  # smallest attained sum > mid
            if above >= hi:
                return hi
            lo = float(np.nextafter(above, -math.inf))
    raise RuntimeError("k-th pairwise sum did not converge")  # unreachable: <= 124 halvings of the floats


def kth_walsh_average(differences: np.ndarray, k: int) -> float:
    """The k-th smallest (1-based) Walsh average (d_i + d_j) / 2, i <= j, in O(n log n)."""
    values, counts = np.unique(np.asarray(differences, dtype=float), return_counts=True)
    return kth_pairwise_sum(values, counts, values, counts, k, triangle=True) / 2.0


# ---------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SignedRankResult:
    """Wilcoxon signed-rank test with Hodges-Lehmann estimate (values in the unit of the data)."""

    n: int  # complete pairs
    n_nonzero: int  # pairs with a non-zero difference: the n of the test
    statistic: float  # V, sum of the ranks of positive differences
    p_value: float
    p_method: str  # "exact" | "normal_cc" | "normal" (continuity correction off)
    estimate: float  # Hodges-Lehmann median change (non-zero differences)
    ci_low: float
    ci_high: float
    ci_level: float  # attained confidence level of the CI (NaN when there is no interval)
    rank_biserial: float
    rb_ci_low: float
    rb_ci_high: float
    rb_note: str = ""  # why the rank-biserial CI is NaN ("" when it is estimated)


@dataclass(frozen=True)
class PairedTResult:
    """Paired t-test and Cohen's d_z (values in the unit of the data)."""

    n: int
    df: float
    mean_change: float
    ci_low: float
    ci_high: float
    t: float
    p_value: float
    cohen_dz: float
    dz_ci_low: float
    dz_ci_high: float


def paired_differences(before, after, decimals: int | None) -> np.ndarray:
    """after - before over complete pairs, rounded to `decimals` (None: not rounded)."""
    b = np.asarray(before, dtype=float).reshape(-1)
    a = np.asarray(after, dtype=float).reshape(-1)
    if b.shape != a.shape:
        raise ValueError(f"before and after differ in length ({len(b)} vs {len(a)})")
    diff = (a - b)[~(np.isnan(a) | np.isnan(b))]
    return diff if decimals is None else round_half_away(diff, decimals)


def _scaled(differences: np.ndarray, decimals: int | None) -> tuple[np.ndarray, float]:
    """Differences as exact integers (in units of 10^-decimals) when a precision is given."""
    if decimals is None:
        return differences.astype(float), 1.0
    scale = 10.0**decimals
    return scaled_integers(differences, decimals), scale


def _tie_term(values: np.ndarray) -> float:
    """Sum of t^3 - t over the groups of equal values."""
    _, counts = np.unique(values, return_counts=True)
    counts = counts.astype(float)
    return float(np.sum(counts**3 - counts))


def _signed_rank_sigma(n: int, tie_term: float) -> float:
    variance = n * (n + 1) * (2 * n + 1) / 24.0 - tie_term / 48.0
    return math.sqrt(variance) if variance > 0 else 0.0


def _r_boundary_statistic(values: np.ndarray, at_min: bool, continuity: bool) -> float:
    """R's asymptotic CI statistic W(d) evaluated at d = min (or max) of the non-zero differences."""
    edge = values.min() if at_min else values.max()
    rest = values[values != edge]
    nx = len(rest)
    sigma = _signed_rank_sigma(nx, _tie_term(rest))
    centred = nx * (nx + 1) / 4.0 * (1.0 if at_min else -1.0)
    correction = 0.5 * np.sign(centred) if continuity else 0.0
    return (centred - correction) / sigma if sigma > 0 else math.nan


def _walsh_ci_indices_normal(
    values: np.ndarray, confidence: float, continuity: bool
) -> tuple[int, int, float] | tuple[None, None, float]:
    """1-based order statistics of the Walsh averages bounding R's asymptotic signed-rank CI.

    R's limits are the roots of (V(d) - N/2 -+ 1/2) / sigma = +-z, with V(d) the number of Walsh
    averages above d and sigma the tie-corrected SD for ties among equal differences (the ties of
    |x - d| at a shift d between Walsh averages). V steps down by one at each Walsh average, so the
    roots sit at W_(k) with k = N - floor(N/2 + 1/2 + z sigma), and W_(N + 1 - k). Where the level is not
    attainable R doubles alpha until it is (and reports the lower level). With alpha >= 1 no interval
    exists (R returns the median of the differences twice, at level 0): k None, level NaN.
    """
    n = len(values)
    total = n * (n + 1) // 2
    sigma = _signed_rank_sigma(n, _tie_term(values))
    w_min = _r_boundary_statistic(values, at_min=True, continuity=continuity)
    w_max = _r_boundary_statistic(values, at_min=False, continuity=continuity)
    if not (math.isfinite(w_min) and math.isfinite(w_max)) or sigma == 0:
        return None, None, math.nan
    alpha = 1.0 - confidence
    while alpha < 1.0 and (w_min < dist.norm_isf(alpha / 2) or w_max > dist.norm_ppf(alpha / 2)):
        alpha *= 2.0
    if alpha >= 1.0:
        return None, None, math.nan
    level = confidence if 1.0 - confidence >= alpha * 0.75 else 1.0 - alpha
    z = dist.norm_isf(alpha / 2)
    shift = 0.5 if continuity else 0.0
    k_low = total - math.floor(total / 2.0 + shift + z * sigma)
    k_low = min(max(k_low, 1), total)
    return k_low, total + 1 - k_low, level


def signed_rank_test(
    differences,
    *,
    decimals: int | None,
    exact_below: int = EXACT_BELOW,
    confidence: float = 0.95,
    continuity: bool = True,
) -> SignedRankResult:
    """Wilcoxon signed-rank test, Hodges-Lehmann estimate and CI, rank-biserial r with CI.

    differences: after - before of complete pairs (NaN dropped), rounded here to `decimals`.
    Zero differences are dropped (Wilcoxon). See the module docstring for the methods.
    """
    diff = np.asarray(differences, dtype=float).reshape(-1)
    diff = diff[~np.isnan(diff)]
    scaled, scale = _scaled(diff, decimals)
    n = len(scaled)
    nonzero = scaled[scaled != 0]
    nz = len(nonzero)
    nan = math.nan
    if nz == 0:
        return SignedRankResult(
            n, 0, 0.0, nan, "normal_cc" if continuity else "normal", *(nan,) * 7, "not estimable: no non-zero change"
        )

    ranks = dist.rankdata(np.abs(nonzero))
    v = float(ranks[nonzero > 0].sum())
    abs_tie_term = _tie_term(np.abs(nonzero))
    exact = abs_tie_term == 0 and nz == n and nz < exact_below
    total = nz * (nz + 1) // 2

    if exact:
        probs = signed_rank_null(nz)
        p_value = exact_two_sided_p(probs, v)
        p_method = "exact"
        alpha = 1.0 - confidence
        q_upper = lower_quantile(probs, alpha / 2)
        q_upper = max(q_upper, 1)
        achieved = 1.0 - 2.0 * float(probs[:q_upper].sum())
        k_low, k_high = q_upper, total + 1 - q_upper
        ci_level = confidence if achieved >= confidence - 1e-12 else achieved
    else:
        sigma = _signed_rank_sigma(nz, abs_tie_term)
        centred = v - nz * (nz + 1) / 4.0
        correction = 0.5 * np.sign(centred) if continuity else 0.0
        if sigma > 0:
            z_stat = (centred - correction) / sigma
            p_value = float(min(1.0, 2.0 * min(dist.norm_cdf(z_stat), dist.norm_sf(z_stat))))
        else:
            p_value = nan
        p_method = "normal_cc" if continuity else "normal"
        k_low, k_high, ci_level = _walsh_ci_indices_normal(nonzero, confidence, continuity)

    values, counts = np.unique(nonzero, return_counts=True)

    def walsh(k: int) -> float:
        return kth_pairwise_sum(values, counts, values, counts, k, triangle=True) / 2.0 / scale

    if total % 2:
        estimate = walsh((total + 1) // 2)
    else:
        estimate = (walsh(total // 2) + walsh(total // 2 + 1)) / 2.0
    if k_low is not None and nz > 1:
        ci_low, ci_high = walsh(k_low), walsh(k_high)
    else:
        ci_low = ci_high = ci_level = nan

    # Matched-pairs rank-biserial, positive when after > before.
    r = (2.0 * v - total) / total
    rb_low, rb_high, rb_note = nan, nan, ""
    if abs(r) >= 1.0:
        rb_note = rb_not_estimable(r, nz)
    else:
        se = math.sqrt((2 * nz**3 + 3 * nz**2 + nz) / 6.0) / ((nz**2 + nz) / 2.0)
        z = dist.norm_isf((1.0 - confidence) / 2)
        centre = math.atanh(r)
        rb_low, rb_high = math.tanh(centre - z * se), math.tanh(centre + z * se)
    return SignedRankResult(
        n, nz, v, p_value, p_method, estimate, ci_low, ci_high, ci_level, r, rb_low, rb_high, rb_note
    )


def paired_t_test(differences, *, decimals: int | None = None, confidence: float = 0.95) -> PairedTResult:
    """Paired t-test on after - before (NaN dropped, rounded to `decimals`) with Cohen's d_z.

    n < 2 or SD = 0 (all differences equal): t, p, CIs and d_z are NaN; the mean is still given (n >= 1).
    """
    diff = np.asarray(differences, dtype=float).reshape(-1)
    diff = diff[~np.isnan(diff)]
    if decimals is not None:
        diff = round_half_away(diff, decimals)
    n = len(diff)
    nan = math.nan
    mean = float(np.mean(diff)) if n else nan
    if n < 2:
        return PairedTResult(n, nan if n == 0 else 0.0, mean, *(nan,) * 7)
    df = float(n - 1)
    # Equal (rounded) differences have SD zero, whatever the last-bit noise of the mean.
    sd = 0.0 if np.ptp(diff) == 0 else float(np.std(diff, ddof=1))
    if sd == 0:
        return PairedTResult(n, df, mean, nan, nan, nan, nan, nan, nan, nan)
    se = sd / math.sqrt(n)
    t = mean / se
    p_value = float(2.0 * dist.t_sf(abs(t), df))
    half = float(dist.t_isf((1.0 - confidence) / 2, df)) * se
    dz = mean / sd
    z = dist.norm_isf((1.0 - confidence) / 2)
    dz_half = z * math.sqrt(1.0 / n + dz**2 / (2.0 * n))
    return PairedTResult(n, df, mean, mean - half, mean + half, t, p_value, dz, dz - dz_half, dz + dz_half)


def _dz_note(t: PairedTResult) -> str:
    """Why Cohen's d_z has no CI ("" when it has one)."""
    if t.n < 2:
        return "not estimable: fewer than 2 pairs"
    if not math.isfinite(t.cohen_dz):
        return "not estimable: every change is the same (SD 0)"
    return ""


def paired_comparison_table(
    before,
    after,
    *,
    decimals: int | None,
    exact_below: int = EXACT_BELOW,
    confidence: float = 0.95,
    continuity: bool = True,
) -> pd.DataFrame:
    """`paired_comparison` plus PAIRED_DETAIL_COLUMNS (df, n_nonzero, ci_level)."""
    diff = paired_differences(before, after, decimals)
    w = signed_rank_test(diff, decimals=decimals, exact_below=exact_below, confidence=confidence, continuity=continuity)
    t = paired_t_test(diff, decimals=decimals, confidence=confidence)
    t_name = f"t (df={int(t.df)})" if t.n >= 2 else "t"
    rows = [
        {
            "n": w.n,
            "test": "wilcoxon",
            "statistic": w.statistic if w.n else math.nan,
            "statistic_name": "V",
            "p_value": w.p_value,
            "p_method": w.p_method,
            "estimate_type": "hl_median_change",
            "estimate": w.estimate,
            "ci_low": w.ci_low,
            "ci_high": w.ci_high,
            "effect_size_type": "rank_biserial",
            "effect_size": w.rank_biserial,
            "es_ci_low": w.rb_ci_low,
            "es_ci_high": w.rb_ci_high,
            "es_ci_note": w.rb_note if w.n else "not estimable: no complete pairs",
            "df": math.nan,
            "n_nonzero": w.n_nonzero,
            "ci_level": w.ci_level,
        },
        {
            "n": t.n,
            "test": "paired_t",
            "statistic": t.t,
            "statistic_name": t_name,
            "p_value": t.p_value,
            "p_method": "t",
            "estimate_type": "mean_change",
            "estimate": t.mean_change,
            "ci_low": t.ci_low,
            "ci_high": t.ci_high,
            "effect_size_type": "cohen_dz",
            "effect_size": t.cohen_dz,
            "es_ci_low": t.dz_ci_low,
            "es_ci_high": t.dz_ci_high,
            "es_ci_note": _dz_note(t),
            "df": t.df if t.n >= 2 else math.nan,
            "n_nonzero": int(np.count_nonzero(diff)),
            "ci_level": confidence if math.isfinite(t.ci_low) else math.nan,
        },
    ]
    frame = pd.DataFrame(rows, columns=PAIRED_TEST_COLUMNS + PAIRED_DETAIL_COLUMNS)
    return frame.astype({"n": "int64", "n_nonzero": "int64"})


def paired_comparison(
    before, after, *, decimals: int | None, exact_below: int = EXACT_BELOW, confidence: float = 0.95
) -> pd.DataFrame:
    """Wilcoxon signed-rank and paired t comparison of after vs before: exactly two rows.

    change = after - before (negative = decrease). Pairs with a missing value are dropped; differences
    are rounded to `decimals` (the recording precision) before ranking. Row 1: test "wilcoxon",
    statistic V (R's), p exact or normal_cc, Hodges-Lehmann median change with distribution-free CI,
    matched-pairs rank-biserial with CI. Row 2: test "paired_t", statistic t (df in statistic_name),
    mean change with t CI, Cohen's d_z with CI. n = complete pairs. Columns: PAIRED_TEST_COLUMNS.
    """
    table = paired_comparison_table(before, after, decimals=decimals, exact_below=exact_below, confidence=confidence)
    return table[PAIRED_TEST_COLUMNS]
