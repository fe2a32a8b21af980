"""The analysis's own between-arm statistics over a leading trial axis (vectorised forms of k2trial.stats.two_sample).

Each function takes arrays of shape (trials, patients), NaN for a missing value, and returns one value per trial.
Each equals its scalar counterpart in k2trial.stats.two_sample on every trial (tests/test_planning.py: to 1e-10,
and exactly for counts, rank sums and the choice between the exact and the normal rank-sum p):

* `ancova_batch` = `two_sample.ancova` (change on arm + baseline [+ stratum]): the treated - control adjusted
  difference, its SE, t on n - rank df, two-sided p and t-based CI. Closed form per trial by Frisch-Waugh-Lovell:
  sums and cross-products of arm, baseline and change centred within strata (the intercept and the stratum
  dummies), from raw sums and per-stratum sums, then the 2 x 2 normal equations of (arm, baseline); strata absent
  from a trial drop out as they do in the scalar fit (there they are not levels of the factor).
* `rank_sum_batch` = the test part of `two_sample.rank_sum_test` (R's wilcox.test): W, exact p when both samples
  are below `exact_below` and there are no ties (a lookup in the exact null distribution of that (n_x, n_y)),
  otherwise the normal approximation with tie and continuity correction. Values are rounded to `decimals` first,
  as the scalar does; on such a grid the ranks come from counting the values per grid level (no sort), otherwise
  from one sort per trial. The Hodges-Lehmann shift and its CI are not computed (the power of the test does not need
  them, and they cost a sort of n_x n_y differences per trial).
* `responder_counts_batch` = `k2trial.analysis.efficacy.responder_counts` per arm, with the missing-data handling
  of a responder analysis (non-responder imputation or complete cases);
* `risk_difference_batch` = `two_sample.risk_difference`: the difference of proportions, the Newcombe hybrid-score
  CI (Wilson limits: `wilson_batch` = `two_sample.wilson_interval`) and Fisher's exact two-sided p, looked up in a
  table of all (x1, x2) for the arm sizes (`fisher_p_table`, R's rule: tables with probability <= the observed
  one times 1 + 1e-7 count as "as or less likely").

Arm indicators and stratum codes may be shared by all trials (shape (patients,)) or per trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special, stats

from k2trial.stats.paired import rank_sum_null

#: fisher.test: a table counts as "as or less likely" when its probability is at most the observed one times this.
FISHER_RELATIVE_TOLERANCE = 1.0 + 1e-7
#: The counting form of the rank sums (no sort) is used when the rounded values span at most this many steps.
_COUNTING_MAX_LEVELS = 4096
#: A 2 x 2 (arm, baseline) normal-equations determinant this small relative to its diagonal: not estimable.
_SINGULAR_TOL = 1e-10


def _broadcast_rows(values: np.ndarray, shape: tuple[int, int], what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 1:
        if arr.shape[0] != shape[1]:
            raise ValueError(f"{what} has {arr.shape[0]} patients, the data have {shape[1]}")
        return arr[None, :]
    if arr.shape != shape:
        raise ValueError(f"{what} has shape {arr.shape}, the data have {shape}")
    return arr


def _as_2d(values, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a (trials, patients) array, got shape {arr.shape}")
    return arr


@lru_cache(maxsize=4096)
def _t_quantile(upper_tail: float, df: float) -> float:
    """qt(1 - upper_tail, df), as two_sample._t_interval computes it (scipy's t.isf)."""
    return float(stats.t.isf(upper_tail, df))


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _rowsum(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij->i", a)


# ============================================================================================ ANCOVA


@dataclass(frozen=True)
class AncovaBatch:
    """Per trial: ANCOVA treated - control difference of the change (units of the endpoint), as two_sample.ancova."""

    n: np.ndarray  # complete cases analysed
    n_treated: np.ndarray
    n_control: np.ndarray
    df: np.ndarray  # n - rank(X): n - 2 - number of strata present
    estimate: np.ndarray
    se: np.ndarray
    t: np.ndarray
    p_value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


def _shift(values: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Per trial, its first complete case's value (0 when it has none), subtracted before the raw sums of squares:
    a value inside the data keeps their cancellation small without a centring pass, and, being the trial's own,
    leaves every trial's result independent of the other trials in the batch."""
    first = np.argmax(observed, axis=1)
    shift = np.take_along_axis(values, first[:, None], axis=1)[:, 0]
    return np.where(observed[np.arange(len(first)), first], shift, 0.0)[:, None]


def ancova_batch(
    change,
    baseline,
    treated,
    *,
    stratum=None,
    n_strata: int | None = None,
    confidence: float = 0.95,
    interval: bool = True,
) -> AncovaBatch:
    """ANCOVA of change on arm + baseline (+ stratum) in every trial; complete cases (NaN change or baseline dropped).

    change, baseline: (trials, patients); treated: bool, (patients,) or (trials, patients); stratum: integer codes
    0 .. n_strata - 1 of the same shapes, or None. Equals two_sample.ancova(change, baseline, arm, stratum=...) per
    trial. A trial with an empty arm, no residual df or an arm difference that is not estimable (arm constant
    within every stratum, or confounded with the baseline) gets NaN, as the scalar function gives; a baseline
    constant within strata drops out of the model as it does in the scalar (minimum-norm) fit.
    interval=False leaves the CI out (NaN): a power simulation needs the p-value and the estimate only.

    Computed from sufficient statistics (Frisch-Waugh-Lovell): per trial the raw sums and cross-products of
    change, baseline and arm over the complete cases, and per stratum the sums of each; the sums of squares
    centred within strata are the raw ones minus sum_s S_x,s S_z,s / n_s. Each trial's values are first shifted
    by its first complete case (`_shift`), so the subtraction loses few digits. Few full-size temporaries: the
    kernel's cost is memory traffic.
    """
    y = _as_2d(change, "change")
    b = _as_2d(baseline, "baseline")
    if b.shape != y.shape:
        raise ValueError(f"baseline has shape {b.shape}, change has {y.shape}")
    arm = np.broadcast_to(_broadcast_rows(np.asarray(treated, dtype=bool), y.shape, "treated"), y.shape)
    missing_b = np.isnan(b)
    missing = np.isnan(y)
    any_missing_b = bool(missing_b.any())
    if any_missing_b:
        missing |= missing_b
    observed = ~missing
    weight = observed.astype(float)
    # Shifted values, 0 where the patient is not a complete case (a product with the 0/1 weight is quicker than
    # np.where, but keeps NaN: only where the array has none).
    any_missing = any_missing_b or bool(missing.any())
    y0 = y - _shift(y, observed)
    if any_missing:
        y0 = np.where(missing, 0.0, y0)
    b0 = b - _shift(b, observed)
    if any_missing_b:
        b0 = np.where(missing, 0.0, b0)
    elif any_missing:
        b0 *= weight
    aw = np.multiply(arm, weight)  # the arm indicator of the complete cases (a bool times a float is a float)
    # Row sums as einsum reductions (a plain sequential sum: much quicker here than ndarray.sum's pairwise one; the
    # counts are exact either way).
    n = _rowsum(weight)
    n_t = _rowsum(aw)
    sums = {"y": _rowsum(y0), "b": _rowsum(b0), "a": n_t}
    raw = {
        "yy": _rowdot(y0, y0),
        "bb": _rowdot(b0, b0),
        "aa": n_t,
        "ab": _rowdot(aw, b0),
        "ay": _rowdot(aw, y0),
        "by": _rowdot(b0, y0),
    }
    correction = dict.fromkeys(raw, 0.0)
    if stratum is None:
        groups = [(n, sums)]
        strata_present = (n > 0).astype(float)
    else:
        codes = _broadcast_rows(np.asarray(stratum), y.shape, "stratum")
        levels = int(n_strata) if n_strata is not None else int(codes.max()) + 1
        member = np.empty(y.shape)
        groups = []
        rest = (n, dict(sums))  # the last stratum's sums: the totals minus the other strata's
        for s in range(levels - 1):
            np.multiply(codes == s, weight, out=member)
            ns = _rowsum(member)
            part = {"y": _rowdot(member, y0), "b": _rowdot(member, b0), "a": _rowdot(member, aw)}
            groups.append((ns, part))
            rest = (rest[0] - ns, {key: rest[1][key] - part[key] for key in part})
        groups.append(rest)
        strata_present = sum((ns > 0).astype(float) for ns, _ in groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        for ns, s_sums in groups:
            inverse = np.where(ns > 0, 1.0 / np.where(ns > 0, ns, 1.0), 0.0)
            for key in raw:
                correction[key] = correction[key] + s_sums[key[0]] * s_sums[key[1]] * inverse
    syy, sbb, saa = (raw[k] - correction[k] for k in ("yy", "bb", "aa"))
    sab, say, sby = (raw[k] - correction[k] for k in ("ab", "ay", "by"))
    det = saa * sbb - sab * sab
    with np.errstate(invalid="ignore", divide="ignore"):
        # A centred sum of squares this small relative to the raw one is zero up to rounding (constant within
        # strata). A baseline constant within strata is not estimable, but the arm difference still is, as in the
        # scalar (minimum-norm) fit: it is then that of change ~ arm (+ stratum), on one residual df more.
        both_arms = (n_t > 0) & (n - n_t > 0)
        arm_varies = both_arms & (saa > _SINGULAR_TOL * np.maximum(raw["aa"], 1.0))
        base_varies = sbb > _SINGULAR_TOL * raw["bb"]
        full = arm_varies & base_varies & (det > _SINGULAR_TOL * saa * sbb)
        reduced = arm_varies & ~base_varies
        df = n - 1.0 - strata_present - np.where(reduced, 0.0, 1.0)
        estimate = np.where(full, (sbb * say - sab * sby) / det, np.where(reduced, say / saa, np.nan))
        beta_b = np.where(full, (saa * sby - sab * say) / det, 0.0)
        rss = np.maximum(syy - estimate * say - beta_b * sby, 0.0)
        sigma2 = np.where(df > 0, rss / df, np.nan)
        se = np.sqrt(sigma2 * np.where(full, sbb / det, 1.0 / saa))
        se = np.where((full | reduced) & (df > 0) & (se > 0), se, np.nan)
        t = estimate / se
    finite = np.isfinite(t)
    # scipy's t.sf(x, df) is special.stdtr(df, -x); called directly, without its argument checks.
    p = np.where(finite, 2.0 * special.stdtr(np.where(finite, df, 1.0), -np.abs(np.where(finite, t, 0.0))), np.nan)
    half = np.full(y.shape[0], np.nan)
    if interval:
        for value in np.unique(df[finite]):
            rows = finite & (df == value)
            half[rows] = _t_quantile((1.0 - confidence) / 2.0, float(value)) * se[rows]
    return AncovaBatch(
        n=n.astype(np.int64),
        n_treated=n_t.astype(np.int64),
        n_control=(n - n_t).astype(np.int64),
        df=df,
        estimate=estimate,
        se=se,
        t=t,
        p_value=p,
        ci_low=estimate - half,
        ci_high=estimate + half,
    )


# ===================================================================================== rank-sum test


@dataclass(frozen=True)
class RankSumBatch:
    """Per trial: Wilcoxon rank-sum test of x (treated) vs y (control), as two_sample.rank_sum_test."""

    n_x: np.ndarray
    n_y: np.ndarray
    statistic: np.ndarray  # R's W: rank sum of x - n_x (n_x + 1) / 2
    p_value: np.ndarray
    exact: np.ndarray  # True: exact p; False: normal approximation (with continuity correction if asked)
    ties: np.ndarray


@lru_cache(maxsize=512)
def exact_rank_sum_tails(n_x: int, n_y: int) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper): P(W <= w) and P(W >= w) for w = 0 .. n_x n_y, each summed as paired.exact_two_sided_p sums."""
    probs = rank_sum_null(n_x, n_y)
    lower = np.array([probs[: q + 1].sum() for q in range(len(probs))])
    upper = np.array([probs[q:].sum() for q in range(len(probs))])
    lower.setflags(write=False)
    upper.setflags(write=False)
    return lower, upper


def _rank_sums_by_counting(
    keys: np.ndarray, valid: np.ndarray, in_x: np.ndarray, low: int, levels: int
) -> tuple[np.ndarray, ...]:
    """Rank sum of x, tie term sum(t^3 - t) and ties flag per trial from integer-valued keys (no sort).

    keys: float array of integers (the values in units of the recording precision), low .. low + levels - 1 where
    valid; in_x: bool, (1, patients) or (trials, patients). One bincount counts every trial's values per level and
    sample: trial t, level l, sample s (1: x) is bin 2 (t (levels + 1) + l) + s, and a missing value goes to
    level `levels`, an extra one that is dropped. A level's mid-rank is the count below it plus (count + 1) / 2;
    in integers, 2 x rank sum = sum over levels of count_x (2 x count at or below + 1 - count), so rank sums and
    tie terms are exact.
    """
    trials = keys.shape[0]
    width = levels + 1
    start = np.arange(trials, dtype=float)[:, None] * width
    index = np.where(valid, keys + (start - float(low)), start + float(levels)).astype(np.int64)
    index *= 2
    index += in_x
    both = np.bincount(index.ravel(), minlength=2 * trials * width).reshape(trials, width, 2)[:, :levels, :]
    counts_x = both[:, :, 1]
    counts = both[:, :, 0] + counts_x
    at_or_below = np.cumsum(counts, axis=1)
    twice = _rowdot_int(counts_x, 2 * at_or_below + 1 - counts)
    tie_term = _rowdot_int(counts, counts * counts - 1)
    return twice / 2.0, tie_term.astype(float), tie_term > 0


def _rowdot_int(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _rank_sums_by_sorting(values: np.ndarray, in_x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rank sum of x (mid-ranks), tie term and ties flag per trial; NaN values (sorted last) take no rank.

    One sort per trial (numpy's default, unstable sort: mid-ranks do not depend on the order within ties); values
    and sample labels are put in sorted order with one flat np.take each (quicker than take_along_axis). In a trial
    without ties a value's rank is its place in that order; trials with ties get mid-ranks from the runs of equal
    values (`_runs`).
    """
    trials, width = values.shape
    order = np.argsort(values, axis=1)
    flat = order + (np.arange(trials, dtype=order.dtype) * width)[:, None]
    ordered = np.take(values.reshape(-1), flat)
    labels = np.ascontiguousarray(np.broadcast_to(in_x, values.shape)).reshape(-1)
    x_ordered = np.take(labels, flat)
    x_ordered &= ~np.isnan(ordered)
    same_as_previous = np.zeros(ordered.shape, dtype=bool)
    np.equal(ordered[:, 1:], ordered[:, :-1], out=same_as_previous[:, 1:])  # NaN == NaN is False
    ties = same_as_previous.any(axis=1)
    rank_sum_x = np.einsum("ij,j->i", x_ordered.astype(float), np.arange(1.0, width + 1.0))  # exact integers
    tie_term = np.zeros(trials)
    if ties.any():
        rows = np.flatnonzero(ties)
        rank_sum_x[rows], tie_term[rows] = _runs(ordered[rows], same_as_previous[rows], x_ordered[rows])
    return rank_sum_x, tie_term, ties


def _runs(ordered: np.ndarray, same_as_previous: np.ndarray, x_ordered: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rank sum of x with mid-ranks and the tie term sum(t^3 - t), from sorted rows (NaN last, taking no rank)."""
    valid = ~np.isnan(ordered)
    width = ordered.shape[1]
    position = np.broadcast_to(np.arange(width), ordered.shape)
    start = np.maximum.accumulate(np.where(same_as_previous, 0, position), axis=1)
    same_as_next = np.zeros(ordered.shape, dtype=bool)
    same_as_next[:, :-1] = same_as_previous[:, 1:]
    end = np.minimum.accumulate(np.where(same_as_next, width - 1, position)[:, ::-1], axis=1)[:, ::-1]
    midrank = (start + end) / 2.0 + 1.0
    rank_sum_x = np.sum(np.where(valid & x_ordered, midrank, 0.0), axis=1)
    run = (end - start + 1).astype(float)
    tie_term = np.sum(np.where(valid, run * run - 1.0, 0.0), axis=1)  # sum over runs of t (t^2 - 1) = t^3 - t
    return rank_sum_x, tie_term


def rank_sum_batch(
    values,
    in_x,
    *,
    decimals: int | None,
    exact_below: int = 50,
    continuity: bool = True,
) -> RankSumBatch:
    """Wilcoxon rank-sum test of x vs y in every trial (R wilcox.test conventions, as two_sample.rank_sum_test).

    values: (trials, patients), NaN missing (dropped); in_x: bool, True for the x sample (the treated arm, so W
    and its direction are those of treated minus control), shared (patients,) or per trial. Values are rounded to
    `decimals` (the recording precision) before ranking, as the scalar function does (None: not rounded).
    Exact p when both samples have fewer than `exact_below` values and there are no ties; else the normal
    approximation with the tie correction and (continuity=True) the continuity correction. A trial with an
    empty sample, or all values tied, gets NaN p.
    """
    v = _as_2d(values, "values")
    x_mask_in = _broadcast_rows(np.asarray(in_x, dtype=bool), v.shape, "in_x")
    x_mask = np.broadcast_to(x_mask_in, v.shape)
    valid = ~np.isnan(v)
    nx = (valid & x_mask).sum(axis=1).astype(float)
    ny = valid.sum(axis=1) - nx
    if decimals is not None:
        keys = v * 10.0**decimals
        np.rint(keys, out=keys)
        low, high = (float(np.nanmin(keys)), float(np.nanmax(keys))) if valid.any() else (0.0, 0.0)
        if high - low < _COUNTING_MAX_LEVELS:
            rank_sum_x, tie_term, ties = _rank_sums_by_counting(keys, valid, x_mask_in, int(low), int(high - low) + 1)
        else:
            rank_sum_x, tie_term, ties = _rank_sums_by_sorting(np.round(v, decimals), x_mask)
    else:
        rank_sum_x, tie_term, ties = _rank_sums_by_sorting(v, x_mask)
    w = rank_sum_x - nx * (nx + 1.0) / 2.0
    total = nx * ny
    p = np.full(v.shape[0], np.nan)
    nonempty = (nx > 0) & (ny > 0)
    exact = nonempty & (nx < exact_below) & (ny < exact_below) & ~ties
    if exact.any():
        sizes = np.stack([nx[exact], ny[exact]], axis=1).astype(np.int64)
        rows = np.flatnonzero(exact)
        for (size_x, size_y), members in _group_rows(sizes):
            lower, upper = exact_rank_sum_tails(int(size_x), int(size_y))
            stat = w[rows[members]]
            q = np.rint(stat).astype(np.int64)
            centre = size_x * size_y / 2.0
            tail = np.where(stat > centre, upper[q], lower[q])
            p[rows[members]] = np.minimum(1.0, 2.0 * tail)
    normal = nonempty & ~exact
    if normal.any():
        sx, sy, tt = nx[normal], ny[normal], tie_term[normal]
        variance = (sx * sy / 12.0) * ((sx + sy + 1.0) - tt / ((sx + sy) * (sx + sy - 1.0)))
        sigma = np.sqrt(np.maximum(variance, 0.0))
        dz = w[normal] - total[normal] / 2.0
        correction = 0.5 * np.sign(dz) if continuity else np.zeros_like(dz)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (dz - correction) / sigma
        pn = 2.0 * np.minimum(stats.norm.cdf(z), stats.norm.sf(z))
        p[normal] = np.where(sigma > 0, pn, np.nan)
    return RankSumBatch(
        n_x=nx.astype(np.int64),
        n_y=ny.astype(np.int64),
        statistic=np.where(nonempty, w, np.nan),
        p_value=p,
        exact=exact,
        ties=ties,
    )


def _group_rows(keys: np.ndarray):
    """(key row, indices) for each distinct row of a 2-column integer array, in sorted key order."""
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(unique) + 1))
    for k, key in enumerate(unique):
        yield key, order[bounds[k] : bounds[k + 1]]


# ======================================================================================= responders

NON_RESPONDER = "non_responder"
COMPLETE_CASES = "complete_cases"


@dataclass(frozen=True)
class ResponderCounts:
    """Per trial: responders and denominators in each arm."""

    x_treated: np.ndarray
    n_treated: np.ndarray
    x_control: np.ndarray
    n_control: np.ndarray


def responder_counts_batch(
    baseline,
    post,
    treated,
    *,
    decimals: int | None,
    percent: float | None = None,
    points: float | None = None,
    missing: str = NON_RESPONDER,
) -> ResponderCounts:
    """Responders (reduction >= `percent` % of baseline, or >= `points` units) per arm in every trial.

    The criterion is k2trial.analysis.efficacy.responder_counts: values compared exactly at the recording precision
    (integers in units of 10^-decimals; decimals None compares the values as they are), percent change undefined
    at baseline 0 (not evaluable). missing = "non_responder": every patient with a baseline counts in the
    denominator and a missing post value or a non-evaluable percent change counts as a non-responder (the
    handling of dropouts in a responder analysis); "complete_cases": only evaluable patients count.
    """
    if (percent is None) == (points is None):
        raise ValueError("give exactly one of percent and points")
    if missing not in (NON_RESPONDER, COMPLETE_CASES):
        raise ValueError(f"missing must be {NON_RESPONDER!r} or {COMPLETE_CASES!r}, got {missing!r}")
    base = _as_2d(baseline, "baseline")
    end = _as_2d(post, "post")
    arm = np.broadcast_to(_broadcast_rows(np.asarray(treated, dtype=bool), base.shape, "treated"), base.shape)
    has_base = ~np.isnan(base)
    complete = has_base & ~np.isnan(end)
    scale = 1.0 if decimals is None else 10.0**decimals
    with np.errstate(invalid="ignore"):
        b = np.rint(base * scale) if decimals is not None else base
        reduction = b - (np.rint(end * scale) if decimals is not None else end)
        if percent is not None:
            evaluable = complete & (b > 0)
            responder = evaluable & (reduction * 100.0 >= percent * b)
        else:
            evaluable = complete
            threshold = np.rint(points * scale) if decimals is not None else points
            responder = evaluable & (reduction >= threshold)
    counted = has_base if missing == NON_RESPONDER else evaluable
    return ResponderCounts(
        x_treated=(responder & arm).sum(axis=1),
        n_treated=(counted & arm).sum(axis=1),
        x_control=(responder & ~arm).sum(axis=1),
        n_control=(counted & ~arm).sum(axis=1),
    )


def wilson_batch(x, n, *, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score limits of x / n, elementwise, as two_sample.wilson_interval (n = 0: NaN)."""
    x = np.asarray(x, dtype=float)
    n = np.asarray(n, dtype=float)
    z = float(stats.norm.isf((1.0 - confidence) / 2.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = x / n
        z22n = z * z / (2.0 * n)
        root = z * np.sqrt(p * (1.0 - p) / n + z22n / (2.0 * n))
        upper = np.where(p >= 1.0, 1.0, (p + z22n + root) / (1.0 + 2.0 * z22n))
        lower = np.where(p <= 0.0, 0.0, (p + z22n - root) / (1.0 + 2.0 * z22n))
    empty = n == 0
    return np.where(empty, np.nan, lower), np.where(empty, np.nan, upper)


def _log_comb(n: int, k: np.ndarray) -> np.ndarray:
    return special.gammaln(n + 1.0) - special.gammaln(k + 1.0) - special.gammaln(n - k + 1.0)


@lru_cache(maxsize=256)
def fisher_p_table(n1: int, n2: int) -> np.ndarray:
    """Two-sided Fisher p of [[x1, n1 - x1], [x2, n2 - x2]] for every x1 = 0..n1, x2 = 0..n2 (shape (n1+1, n2+1)).

    For each total m = x1 + x2 the hypergeometric weights C(n1, i) C(n2, m - i) are computed in logs and scaled
    by their maximum (as R's fisher.test does); p(x1) is the sum of the weights <= weight(x1) * (1 + 1e-7) over
    their total. Equals two_sample.fisher_exact_p (exact rational arithmetic) to about 1e-13.
    """
    table = np.empty((n1 + 1, n2 + 1))
    relerr = FISHER_RELATIVE_TOLERANCE
    for m in range(n1 + n2 + 1):
        lo, hi = max(0, m - n2), min(n1, m)
        i = np.arange(lo, hi + 1, dtype=float)
        log_w = _log_comb(n1, i) + _log_comb(n2, m - i)
        weights = np.exp(log_w - log_w.max())
        ordered = np.sort(weights)
        cumulative = np.cumsum(ordered)
        count = np.searchsorted(ordered, weights * relerr, side="right")
        p = cumulative[count - 1] / cumulative[-1]
        x1 = np.arange(lo, hi + 1)
        table[x1, m - x1] = np.minimum(p, 1.0)
    table.setflags(write=False)
    return table


@dataclass(frozen=True)
class RiskDifferenceBatch:
    """Per trial: p_treated - p_control with the Newcombe hybrid-score CI and Fisher's exact p."""

    estimate: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray


def risk_difference_batch(x_treated, n_treated, x_control, n_control, *, confidence: float = 0.95):
    """Elementwise two_sample.risk_difference: estimate, Newcombe (method 10) CI, Fisher two-sided p."""
    x1 = np.asarray(x_treated, dtype=np.int64)
    n1 = np.asarray(n_treated, dtype=np.int64)
    x2 = np.asarray(x_control, dtype=np.int64)
    n2 = np.asarray(n_control, dtype=np.int64)
    if np.any((x1 < 0) | (x2 < 0) | (x1 > n1) | (x2 > n2)):
        raise ValueError("responders must lie between 0 and the arm size")
    with np.errstate(invalid="ignore", divide="ignore"):
        p1 = x1 / n1
        p2 = x2 / n2
    l1, u1 = wilson_batch(x1, n1, confidence=confidence)
    l2, u2 = wilson_batch(x2, n2, confidence=confidence)
    d = p1 - p2
    low = np.maximum(d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), -1.0)
    high = np.minimum(d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2), 1.0)
    p = np.full(x1.shape, np.nan)
    ok = (n1 > 0) & (n2 > 0)
    if ok.any():
        rows = np.flatnonzero(ok)
        for (size1, size2), members in _group_rows(np.stack([n1[ok], n2[ok]], axis=1)):
            table = fisher_p_table(int(size1), int(size2))
            chosen = rows[members]
            p[chosen] = table[x1[chosen], x2[chosen]]
    empty = ~ok
    return RiskDifferenceBatch(
        estimate=np.where(empty, np.nan, d),
        ci_low=np.where(empty, np.nan, low),
        ci_high=np.where(empty, np.nan, high),
        p_value=p,
    )
