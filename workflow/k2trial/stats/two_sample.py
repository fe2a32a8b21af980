"""Between-arm comparisons of a randomised, placebo-controlled trial (CLINICAL.md, "Between-arm comparisons").

Three scalar analyses, each double-programmed against R 4.2.2 (tests/test_two_sample.py):

* `ancova`: change from baseline on arm + baseline (+ stratum): the treated minus control least-squares mean
  difference with SE, t, p and CI, and each arm's LS mean as emmeans computes it. Equals
  `lm(chg ~ arm + base [+ stratum])` with `emmeans(fit, ~ arm)` and its treated - control contrast.
* `rank_sum_test`: Wilcoxon rank-sum test with the Hodges-Lehmann shift and its distribution-free CI, exactly
  as `wilcox.test(x, y, conf.int = TRUE, correct = TRUE)` of R 4.2.2, plus the rank-biserial correlation.
* `risk_difference`: responders, p_treated - p_control with the Newcombe (1998) hybrid-score interval
  (method 10) and Fisher's exact two-sided p (`fisher.test`).

All functions are pure (arrays or counts in, a frozen dataclass out), never raise on degenerate data (too few
observations, an empty arm, all values tied) but return NaN with the reason in a `note` field, and raise
ValueError only for malformed input (labels that are neither arm, negative counts, lengths that differ).

Vectorisation (power simulation): the arithmetic is kept in closed forms that broadcast over trials -
ANCOVA is ordinary least squares (for arm + baseline: the pooled within-arm slope; with a stratum: the
p x p normal equations, p = 3 + strata - 1), the rank-sum p-value needs only the rank sum of x and the
tie term, and the Newcombe limits and Wilson limits are elementwise formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import stats

from k2trial.core.values import round_half_away
from k2trial.stats.paired import EXACT_BELOW, exact_two_sided_p, kth_pairwise_sum, lower_quantile, rank_sum_null

NAN = math.nan

#: Relative tolerance of R's singular-value rank test (lm's QR uses tol = 1e-7 on column norms).
_RANK_TOL = 1e-7
#: emmeans / estimability: a linear function is estimable when its component in the null space of X is this small.
_ESTIMABLE_TOL = 1e-8
#: fisher.test: tables whose probability is at most the observed one times this are "as or less likely".
_FISHER_REL_ERR = Fraction(10**7 + 1, 10**7)


def _is_missing_label(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(float(value))
    return False


def _labels(values, n: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=object).reshape(-1)
    if len(arr) != n:
        raise ValueError(f"{what} has {len(arr)} values, expected {n}")
    return arr


def _t_interval(estimate: float, se: float, df: float, confidence: float) -> tuple[float, float, float, float]:
    """t statistic, two-sided p (R: 2 * pt(-|t|, df)) and CI estimate +- qt((1 + level) / 2, df) * se."""
    if not (math.isfinite(estimate) and math.isfinite(se) and se > 0 and df > 0):
        return NAN, NAN, NAN, NAN
    t = estimate / se
    p = float(2.0 * stats.t.sf(abs(t), df))
    half = float(stats.t.isf((1.0 - confidence) / 2.0, df)) * se
    return t, p, estimate - half, estimate + half


# ============================================================================================ ANCOVA


@dataclass(frozen=True)
class AncovaResult:
    """ANCOVA of change from baseline: treated minus control LS mean difference (units of the change).

    `estimate` is the adjusted difference (treated - control), equal to the arm coefficient of the additive
    model; `lsmean_*` are emmeans' marginal means: the prediction with baseline at its mean over the analysed
    rows, averaged with equal weights over the stratum levels. `df` = n - rank(X) (residual df), `sigma` the
    residual SD. `note` lists dropped rows, aliased columns, strata seen in one arm only, and the reason for any
    NaN ("" when there is nothing to say).
    """

    n: int  # rows analysed (complete cases)
    n_treated: int
    n_control: int
    n_dropped: int  # rows dropped for a missing change, baseline, arm or stratum
    strata: tuple[str, ...]  # stratum levels in the fit (empty without a stratum)
    n_coef: int  # columns of the design: intercept, arm, baseline, stratum dummies
    rank: int
    df: float
    sigma: float
    baseline_mean: float  # the baseline value at which the LS means are computed
    estimate: float
    se: float
    t: float
    p_value: float
    ci_low: float
    ci_high: float
    confidence: float
    lsmean_treated: float
    se_treated: float
    lsmean_control: float
    se_control: float
    estimable: bool  # is the arm difference estimable (False: not identified, e.g. arm aliased with stratum)
    note: str


def ancova(
    change,
    baseline,
    arm,
    *,
    treated: object,
    control: object,
    stratum=None,
    confidence: float = 0.95,
) -> AncovaResult:
    """ANCOVA of change from baseline on arm and baseline (and a stratum factor when given).

    change, baseline: numbers in the unit of the endpoint (change = post - baseline); arm: labels, each
    `treated` or `control` (or missing); stratum: optional labels (compared as strings). Rows with any
    missing value (NaN change or baseline, missing arm or stratum) are dropped and counted in n_dropped.

    Model: change = b0 + b1 [arm = treated] + b2 baseline (+ stratum effects, treatment coding), ordinary
    least squares; residual df n - rank(X); two-sided t-test and t-based CI at `confidence`. The baseline is
    centred at its mean before fitting (better conditioning; the estimates do not change). Equals R:
    `fit <- lm(chg ~ arm + base + stratum)`, `emm <- emmeans(fit, ~ arm)` (LS means: baseline at its mean,
    equal weights over stratum levels), `contrast(emm, list(d = c(-1, 1)))` (treated - control: estimate, SE,
    df, t, p; `confint(..., level = confidence)`), to about 1e-9.

    Rank deficiency (a constant baseline, arm confounded with the stratum) is handled as R does: the fit uses
    the estimable part (minimum-norm least squares); a quantity is returned only when it is estimable (its
    coefficient vector lies in the row space of X, emmeans' check), otherwise NaN with the reason. A stratum
    level present in one arm only is fine in this additive model and noted. An empty arm, or no residual df
    (n <= rank), gives NaN for what cannot be computed, with the reason in `note`.
    """
    y_all = np.asarray(change, dtype=float).reshape(-1)
    n_all = len(y_all)
    b_all = np.asarray(baseline, dtype=float).reshape(-1)
    if len(b_all) != n_all:
        raise ValueError(f"baseline has {len(b_all)} values, change has {n_all}")
    arms = _labels(arm, n_all, "arm")
    strata_all = None if stratum is None else _labels(stratum, n_all, "stratum")

    arm_missing = np.array([_is_missing_label(a) for a in arms], dtype=bool)
    unknown = {a for a, miss in zip(arms, arm_missing, strict=True) if not miss and a != treated and a != control}
    if unknown:
        labels = sorted(map(str, unknown))
        raise ValueError(f"arm labels {labels} are neither treated={treated!r} nor control={control!r}")
    keep = ~(np.isnan(y_all) | np.isnan(b_all) | arm_missing)
    if strata_all is not None:
        keep &= ~np.array([_is_missing_label(s) for s in strata_all], dtype=bool)
    n_dropped = int(n_all - keep.sum())
    y = y_all[keep]
    base = b_all[keep]
    is_treated = np.array([a == treated for a in arms[keep]], dtype=float)
    n = len(y)
    n_t = int(is_treated.sum())
    n_c = n - n_t
    notes: list[str] = []
    if n_dropped:
        notes.append(f"{n_dropped} row(s) dropped for a missing value")

    levels: tuple[str, ...] = ()
    stratum_codes = None
    if strata_all is not None:
        labels = np.array([str(s) for s in strata_all[keep]], dtype=object)
        levels = tuple(sorted(set(labels.tolist())))
        stratum_codes = np.array([levels.index(s) for s in labels], dtype=int)
        one_arm = [
            lvl
            for k, lvl in enumerate(levels)
            if np.all(is_treated[stratum_codes == k] == 1) or np.all(is_treated[stratum_codes == k] == 0)
        ]
        if one_arm:
            notes.append(f"stratum level(s) {', '.join(one_arm)} present in one arm only")

    base_mean = float(np.mean(base)) if n else NAN
    n_coef = 3 + max(len(levels) - 1, 0)

    def empty(reason: str) -> AncovaResult:
        return AncovaResult(
            n, n_t, n_c, n_dropped, levels, n_coef, 0, NAN, NAN, base_mean,
            *(NAN,) * 6, confidence, *(NAN,) * 4, False, "; ".join([*notes, reason]),
        )  # fmt: skip

    if n_t == 0 or n_c == 0:
        return empty(f"no analysable observations in the {'treated' if n_t == 0 else 'control'} arm")

    columns = [np.ones(n), is_treated, base - base_mean]
    names = ["intercept", "arm", "baseline"]
    if stratum_codes is not None:
        for k, lvl in enumerate(levels[1:], start=1):
            columns.append((stratum_codes == k).astype(float))
            names.append(f"stratum[{lvl}]")
    x = np.column_stack(columns)

    # Minimum-norm least squares by SVD of the column-scaled design: gives the rank, the estimable
    # functions (row space of X) and the unscaled covariance (X'X)^+ in one decomposition.
    norms = np.sqrt(np.sum(x * x, axis=0))
    norms[norms == 0] = 1.0
    # With fewer rows than columns the thin SVD lacks part of the null space: pad with zero rows (they change
    # neither the fit nor the row space) so that vt spans all columns and the estimability check is complete.
    padding = max(n_coef - x.shape[0], 0)
    scaled = np.vstack([x / norms, np.zeros((padding, n_coef))])
    u, s, vt = np.linalg.svd(scaled, full_matrices=False)
    rank = int(np.sum(s > _RANK_TOL * s[0])) if len(s) and s[0] > 0 else 0
    ur, sr, vr = u[:, :rank], s[:rank], vt[:rank].T
    v_null = vt[rank:].T
    beta = (vr @ ((ur.T @ np.concatenate([y, np.zeros(padding)])) / sr)) / norms
    cov_unscaled = (vr / sr**2) @ vr.T / np.outer(norms, norms)
    resid = y - x @ beta
    df = float(n - rank)
    if rank < n_coef:
        loads = np.abs(v_null / norms[:, None]).max(axis=1)
        aliased = [nm for nm, load in zip(names, loads, strict=True) if load > 1e-8]
        notes.append(f"rank deficient: rank {rank} of {n_coef} columns (collinear: {', '.join(aliased)})")
    rss = float(resid @ resid)
    # An exact fit (e.g. all changes tied) leaves only rounding residuals: treat it as zero variance rather
    # than dividing rounding noise by rounding noise in t.
    if rss <= (64.0 * np.finfo(float).eps * max(1.0, float(np.max(np.abs(y))))) ** 2 * n:
        rss = 0.0
    sigma2 = rss / df if df > 0 else NAN
    if df <= 0:
        notes.append("no residual degrees of freedom (n <= rank): SE, t, p and CI not available")

    def linear(coef: np.ndarray) -> tuple[float, float]:
        """Estimate and SE of coef . beta, or NaN when the function is not estimable."""
        nonest = np.abs((coef / norms) @ v_null).max() if v_null.size else 0.0
        if nonest > _ESTIMABLE_TOL * max(1.0, float(np.abs(coef).max())):
            return NAN, NAN
        var = float(coef @ cov_unscaled @ coef) * sigma2
        return float(coef @ beta), (math.sqrt(var) if var >= 0 else NAN)

    stratum_weights = np.full(max(len(levels) - 1, 0), 1.0 / len(levels)) if levels else np.zeros(0)
    diff_coef = np.zeros(n_coef)
    diff_coef[1] = 1.0
    estimate, se = linear(diff_coef)
    estimable = math.isfinite(estimate)
    if not estimable:
        notes.append("arm difference not estimable (arm aliased with other terms)")
    lsm = {}
    for label, indicator in (("treated", 1.0), ("control", 0.0)):
        lsm[label] = linear(np.concatenate(([1.0, indicator, 0.0], stratum_weights)))
    t, p, lo, hi = _t_interval(estimate, se, df, confidence)
    if estimable and df > 0 and not (se > 0):
        notes.append("residual variance is zero (perfect fit): t, p and CI not available")
    return AncovaResult(
        n=n,
        n_treated=n_t,
        n_control=n_c,
        n_dropped=n_dropped,
        strata=levels,
        n_coef=n_coef,
        rank=rank,
        df=df,
        sigma=math.sqrt(sigma2) if math.isfinite(sigma2) else NAN,
        baseline_mean=base_mean,
        estimate=estimate,
        se=se,
        t=t,
        p_value=p,
        ci_low=lo,
        ci_high=hi,
        confidence=confidence,
        lsmean_treated=lsm["treated"][0],
        se_treated=lsm["treated"][1],
        lsmean_control=lsm["control"][0],
        se_control=lsm["control"][1],
        estimable=estimable,
        note="; ".join(notes),
    )


# ============================================================================= Wilcoxon rank-sum + HL

METHOD_EXACT = "exact"
METHOD_NORMAL_CC = "normal approximation with continuity correction"
METHOD_NORMAL = "normal approximation"


@dataclass(frozen=True)
class RankSumResult:
    """Wilcoxon rank-sum test of x vs y with the Hodges-Lehmann shift x - y (units of the data).

    statistic: R's W = rank sum of x - n_x (n_x + 1) / 2 (the Mann-Whitney U of x). estimate: the median of
    all n_x n_y differences x_i - y_j. ci_level: the level R reports (attr(conf.int, "conf.level"): the
    requested level, or in the exact case 1 - achieved alpha when R warns "Requested conf.level not
    achievable"); ci_level_achieved: the exact coverage of the exact interval, 1 - 2 P(W <= k - 1), and the
    nominal level in the normal case (an approximation). rank_biserial = (U_x - U_y) / (n_x n_y) = 2 W /
    (n_x n_y) - 1, positive when x tends to exceed y; rb_ci_* its Fisher-z CI (NaN with rb_note when every
    pair has one sign). NaN entries have their reason in ci_note / rb_note / note.
    """

    n_x: int
    n_y: int
    n_missing: int  # NaN values dropped from x and y together
    statistic: float
    p_value: float
    method: str  # "exact" | "normal approximation with continuity correction" | "normal approximation"
    ties: bool  # ties in the pooled values (as ranked: after `decimals` rounding and `digits_rank`)
    estimate: float
    ci_low: float
    ci_high: float
    confidence: float  # requested level
    ci_level: float  # level as R reports it
    ci_level_achieved: float
    rank_biserial: float
    rb_ci_low: float
    rb_ci_high: float
    ci_note: str
    rb_note: str
    note: str


def signif(values, digits: float) -> np.ndarray:
    """R's signif(x, digits): round to `digits` significant digits (digits = Inf: unchanged).

    Same arithmetic as R's fprec: x * 10^e (or x / 10^-e) rounded half-to-even, e = digits - 1 -
    floor(log10 |x|); digits < 1 counts as 1 and digits > 22 leaves x unchanged, as in R.
    """
    x = np.asarray(values, dtype=float)
    if not math.isfinite(digits) or digits > 22:
        return x.copy()
    dig = max(1, int(round(digits)))
    out = x.copy()
    ok = np.isfinite(x) & (x != 0)
    ax = np.abs(x[ok])
    e10 = dig - 1 - np.floor(np.log10(ax)).astype(int)
    res = np.empty_like(ax)
    pos = e10 > 0
    p10 = 10.0 ** e10[pos].astype(float)
    res[pos] = np.rint(ax[pos] * p10) / p10
    m10 = 10.0 ** (-e10[~pos]).astype(float)
    res[~pos] = np.rint(ax[~pos] / m10) * m10
    out[ok] = np.sign(x[ok]) * res
    return out


def _tie_term(values: np.ndarray) -> float:
    """Sum of t^3 - t over the groups of equal values (R: sum(NTIES^3 - NTIES))."""
    _, counts = np.unique(values, return_counts=True)
    c = counts.astype(float)
    return float(np.sum(c**3 - c))


def _rank_sum_sigma(nx: float, ny: float, tie_term: float) -> float:
    """R's SIGMA: sqrt((nx ny / 12) ((nx + ny + 1) - tie_term / ((nx + ny)(nx + ny - 1)))), same operation order."""
    variance = (nx * ny / 12.0) * ((nx + ny + 1.0) - tie_term / ((nx + ny) * (nx + ny - 1.0)))
    return math.sqrt(variance) if variance > 0 else 0.0


def _first_index_at_or_below(total: int, g, target: float) -> int | None:
    """Smallest k in 1..total with g(total - k) <= target (g non-decreasing in its argument), else None."""
    if g(0) > target:
        return None
    lo, hi = 1, total  # g(total - total) = g(0) <= target: hi qualifies
    while lo < hi:
        mid = (lo + hi) // 2
        if g(total - mid) <= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def rank_sum_test(
    x,
    y,
    *,
    decimals: int | None,
    digits_rank: float = math.inf,
    exact_below: int = EXACT_BELOW,
    confidence: float = 0.95,
    continuity: bool = True,
) -> RankSumResult:
    """Wilcoxon rank-sum test of x vs y, Hodges-Lehmann shift x - y with its CI, rank-biserial r with CI.

    Exactly R 4.2.2 `wilcox.test(x, y, conf.int = TRUE, conf.level = confidence, correct = continuity,
    digits.rank = digits_rank)`. NaN values are dropped (counted in n_missing); values are rounded to
    `decimals` (the recording precision; None: not rounded) before anything else, so floating-point noise
    cannot break ties; R then sees the same rounded values. `digits_rank` (R >= 4.0) ranks
    signif(values, digits_rank) instead of the values (statistic, ties, exactness, p).

    Exact case (both samples have fewer than `exact_below` values, R's n < 50, and no ties): exact two-sided
    p from the null distribution of W; CI [D_(k), D_(N + 1 - k)] of the sorted N = n_x n_y differences
    D = x_i - y_j with k = qwilcox(alpha / 2) (1 when that is 0); achieved alpha = 2 P(W <= k - 1); R reports
    the level 1 - achieved alpha instead of the requested one when achieved alpha > 1.5 alpha. Estimate:
    median(D).

    Normal case: z = (W - N/2 - correction) / SIGMA with the tie correction and correction = sign * 0.5
    (continuity), p = 2 min(Phi(z), 1 - Phi(z)). CI: R finds its limits by uniroot on the step function
    W(d) (the statistic of x - d vs y); its limits are the jump points D_(k) at which W(d) crosses
    +-qnorm(1 - alpha / 2); R returns them to within tol.root (1e-4 by default), we return the jump points
    themselves (found by bisection on k with R's own arithmetic for W between jumps, where only ties within
    x and within y remain). A limit beyond the range of D is clamped to min(D) / max(D) as R does.
    Estimate: median(D), CLINICAL.md's HL shift; R's estimate is the root of the uncorrected W(d), which
    is the same point when N is odd or the two middle differences are equal, and otherwise any point of
    [D_(N/2), D_(N/2 + 1)] (W(d) is zero on that interval). With a finite `digits_rank`, R also rounds x - d
    inside its root search, which moves its normal-case limits by up to half a unit in the digits_rank-th
    significant digit; we use the differences themselves.

    Rank-biserial r = 2 W / N - 1 with CI tanh(atanh(r) +- z SE), SE = sqrt((n_x + n_y + 1) / (3 n_x n_y))
    (the null SE of r; the method of R's effectsize::rank_biserial and the paired module), which stays
    strictly inside (-1, 1) whenever |r| < 1. When every pair has one sign (|r| = 1) the interval collapses
    to a point: reported NaN with the reason.

    Degenerate data (an empty sample: R stops; all differences equal: R cannot compute the CI) give NaN with
    the reason; the p-value is NaN when all values are tied (SIGMA = 0, as in R).
    """
    xa = np.asarray(x, dtype=float).reshape(-1)
    ya = np.asarray(y, dtype=float).reshape(-1)
    xs, ys = xa[~np.isnan(xa)], ya[~np.isnan(ya)]
    n_missing = int(len(xa) - len(xs) + len(ya) - len(ys))
    if decimals is not None:
        xs, ys = round_half_away(xs, decimals), round_half_away(ys, decimals)
    nx, ny = len(xs), len(ys)
    alpha = 1.0 - confidence
    if nx == 0 or ny == 0:
        which = "x" if nx == 0 else "y"
        reason = f"no non-missing {which} values (R: not enough '{which}' observations)"
        return RankSumResult(
            nx, ny, n_missing, NAN, NAN, METHOD_NORMAL_CC if continuity else METHOD_NORMAL, False,
            NAN, NAN, NAN, confidence, NAN, NAN, NAN, NAN, NAN, reason, reason, reason,
        )  # fmt: skip

    keyed = signif(np.concatenate([xs, ys]), digits_rank)
    ranks = stats.rankdata(keyed)
    w = float(ranks[:nx].sum() - nx * (nx + 1) / 2.0)
    ties = len(np.unique(keyed)) < len(keyed)
    total = nx * ny
    notes: list[str] = []
    ci_note = ""

    xv, xc = np.unique(xs, return_counts=True)
    yv, yc = np.unique(-ys, return_counts=True)

    def diff(k: int) -> float:
        """k-th smallest (1-based) of the differences x_i - y_j, computed as fl(x_i + (-y_j)) = fl(x_i - y_j)."""
        return kth_pairwise_sum(xv, xc, yv, yc, k, triangle=False)

    estimate = diff((total + 1) // 2) if total % 2 else (diff(total // 2) + diff(total // 2 + 1)) / 2.0

    if nx < exact_below and ny < exact_below and not ties:
        method = METHOD_EXACT
        probs = rank_sum_null(nx, ny)
        p_value = exact_two_sided_p(probs, w)
        k_low = max(lower_quantile(probs, alpha / 2.0), 1)
        achieved_alpha = 2.0 * float(probs[:k_low].sum())
        ci_low, ci_high = diff(k_low), diff(total + 1 - k_low)
        ci_level = 1.0 - achieved_alpha if achieved_alpha - alpha > alpha / 2.0 else confidence
        ci_level_achieved = 1.0 - achieved_alpha
        if ci_level != confidence:
            ci_note = f"requested level not achievable with n_x={nx}, n_y={ny}; the interval has level {ci_level:.6g}"
    else:
        method = METHOD_NORMAL_CC if continuity else METHOD_NORMAL
        if ties and nx < exact_below and ny < exact_below:
            notes.append("ties: normal approximation instead of the exact test")
        sigma = _rank_sum_sigma(float(nx), float(ny), _tie_term(keyed))
        dz = w - total / 2.0
        correction = 0.5 * float(np.sign(dz)) if continuity else 0.0
        if sigma > 0:
            z = (dz - correction) / sigma
            p_value = float(2.0 * min(stats.norm.cdf(z), stats.norm.sf(z)))
        else:
            p_value = NAN
            notes.append("all values tied: the test statistic has no variance (p not available)")
        ci_level = ci_level_achieved = confidence
        if xv[0] == xv[-1] and yv[0] == yv[-1]:
            ci_low = ci_high = ci_level = ci_level_achieved = NAN
            ci_note = "all differences x_i - y_j are equal: no confidence interval (R: all observations tied)"
        else:
            # Between jumps only ties within x and within y remain (R's NTIES.CI there).
            keyed_x, keyed_y = keyed[:nx], keyed[nx:]
            sigma_ci = _rank_sum_sigma(float(nx), float(ny), _tie_term(keyed_x) + _tie_term(keyed_y))
            cc = 0.5 if continuity else 0.0

            def w_between(u: int) -> float:
                """R's W(d) for d strictly between jumps, where U(d) = #{D > d} = u."""
                dzu = u - total / 2.0
                return (dzu - cc * float(np.sign(dzu))) / sigma_ci

            zq = float(stats.norm.isf(alpha / 2.0))
            k_low = _first_index_at_or_below(total, w_between, zq) or 1
            k_high = _first_index_at_or_below(total, w_between, -zq) or total
            ci_low, ci_high = diff(k_low), diff(k_high)

    r = 2.0 * w / total - 1.0
    rb_note = ""
    if abs(r) >= 1.0:
        rb_low = rb_high = NAN
        sign = "x_i > y_j" if r > 0 else "x_i < y_j"
        rb_note = (
            f"not estimable: every pair has {sign} (r = {r:+.0f}), so the Fisher-z interval tanh(atanh(r) +/- z SE) "
            "has no width"
        )
    else:
        se = math.sqrt((nx + ny + 1) / (3.0 * nx * ny))
        zc = float(stats.norm.isf(alpha / 2.0))
        centre = math.atanh(r)
        # Guard against tanh rounding to +-1 for extreme r (keeps the interval strictly inside (-1, 1)).
        rb_low = max(math.tanh(centre - zc * se), math.nextafter(-1.0, 0.0))
        rb_high = min(math.tanh(centre + zc * se), math.nextafter(1.0, 0.0))
    return RankSumResult(
        n_x=nx,
        n_y=ny,
        n_missing=n_missing,
        statistic=w,
        p_value=p_value,
        method=method,
        ties=ties,
        estimate=estimate,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
        ci_level=ci_level,
        ci_level_achieved=ci_level_achieved,
        rank_biserial=r,
        rb_ci_low=rb_low,
        rb_ci_high=rb_high,
        ci_note=ci_note,
        rb_note=rb_note,
        note="; ".join(notes),
    )


# ======================================================================================== responders


@dataclass(frozen=True)
class RiskDifferenceResult:
    """Responders: risk difference p_treated - p_control (proportions, 0..1) with Newcombe CI and Fisher p."""

    x_treated: int
    n_treated: int
    x_control: int
    n_control: int
    p_treated: float
    p_control: float
    estimate: float  # p_treated - p_control
    ci_low: float
    ci_high: float
    confidence: float
    ci_method: str
    p_value: float  # Fisher's exact test, two-sided
    note: str


CI_METHOD_NEWCOMBE = "Newcombe hybrid score (1998, method 10; Wilson limits without continuity correction)"


def _count(value, what: str) -> int:
    v = float(value)
    if not v.is_integer() or v < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return int(v)


def wilson_interval(x: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for x / n without continuity correction (R: prop.test(x, n, correct = FALSE)).

    Written as prop.test writes it: (p + z^2/2n +- z sqrt(p(1 - p)/n + z^2/4n^2)) / (1 + z^2/n), with the
    lower limit exactly 0 when x = 0 and the upper exactly 1 when x = n. n = 0 gives (NaN, NaN).
    """
    x, n = _count(x, "x"), _count(n, "n")
    if x > n:
        raise ValueError(f"x={x} exceeds n={n}")
    if n == 0:
        return NAN, NAN
    z = float(stats.norm.isf((1.0 - confidence) / 2.0))
    p = x / n
    z22n = z * z / (2.0 * n)
    root = z * math.sqrt(p * (1.0 - p) / n + z22n / (2.0 * n))
    upper = 1.0 if p >= 1.0 else (p + z22n + root) / (1.0 + 2.0 * z22n)
    lower = 0.0 if p <= 0.0 else (p + z22n - root) / (1.0 + 2.0 * z22n)
    return lower, upper


def fisher_exact_p(table: Sequence[Sequence[int]]) -> float:
    """Two-sided p of Fisher's exact test of a 2 x 2 table [[a, b], [c, d]] (R: fisher.test(table)$p.value).

    Conditional on the margins, the sum of the hypergeometric probabilities of all tables no more likely than
    the observed one, with R's relative tolerance: tables with probability <= observed * (1 + 1e-7) count.
    Computed in exact rational arithmetic (binomial coefficients as integers), so equal probabilities are
    equal and the tolerance is applied exactly. Any margin of zero gives p = 1 (one possible table).
    """
    (a, b), (c, d) = table
    a, b, c, d = (_count(v, "cell") for v in (a, b, c, d))
    col1, col2, row1 = a + c, b + d, a + b
    lo, hi = max(0, row1 - col2), min(row1, col1)
    weights = [math.comb(col1, i) * math.comb(col2, row1 - i) for i in range(lo, hi + 1)]
    observed = weights[a - lo]
    bound = _FISHER_REL_ERR * observed
    selected = sum(wt for wt in weights if wt <= bound)
    return float(Fraction(selected, sum(weights)))


def risk_difference(
    x_treated: int, n_treated: int, x_control: int, n_control: int, *, confidence: float = 0.95
) -> RiskDifferenceResult:
    """Responder rates: p_treated - p_control, Newcombe hybrid-score CI (method 10), Fisher's exact p.

    Newcombe (1998, Statistics in Medicine 17:873-890), method 10: with Wilson limits (l1, u1) of p1 =
    x_treated / n_treated and (l2, u2) of p2 = x_control / n_control, the CI is
    (p1 - p2 - sqrt((p1 - l1)^2 + (u2 - p2)^2), p1 - p2 + sqrt((u1 - p1)^2 + (p2 - l2)^2)), within [-1, 1].
    Fisher p: `fisher_exact_p` of [[x_treated, n_treated - x_treated], [x_control, n_control - x_control]].
    An arm with no subjects gives NaN with the reason.
    """
    x1, n1 = _count(x_treated, "x_treated"), _count(n_treated, "n_treated")
    x2, n2 = _count(x_control, "x_control"), _count(n_control, "n_control")
    if x1 > n1 or x2 > n2:
        raise ValueError(f"responders exceed the arm size ({x1}/{n1}, {x2}/{n2})")
    if n1 == 0 or n2 == 0:
        reason = f"no subjects in the {'treated' if n1 == 0 else 'control'} arm"
        p1 = x1 / n1 if n1 else NAN
        p2 = x2 / n2 if n2 else NAN
        return RiskDifferenceResult(x1, n1, x2, n2, p1, p2, NAN, NAN, NAN, confidence, CI_METHOD_NEWCOMBE, NAN, reason)
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, confidence=confidence)
    l2, u2 = wilson_interval(x2, n2, confidence=confidence)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    p_value = fisher_exact_p([[x1, n1 - x1], [x2, n2 - x2]])
    return RiskDifferenceResult(
        x1, n1, x2, n2, p1, p2, d, max(low, -1.0), min(high, 1.0), confidence, CI_METHOD_NEWCOMBE, p_value, ""
    )
