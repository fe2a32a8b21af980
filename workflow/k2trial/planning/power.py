"""Power of the planned analyses: simulated (with Monte Carlo standard errors), analytic, and the sample size.

Simulated power of a cell = the share of its trials in which the test rejects at two-sided level alpha (p < alpha,
the analysis's own p-value from k2trial.planning.vectorised); Monte Carlo SE sqrt(p (1 - p) / trials). Also
reported: the share of trials that reject *and* favour the treated arm ("success"), which is what an assurance
(probability of success) averages.

Analytic references (normal, unclipped data):

* ANCOVA, `ancova_power`: noncentral t on the adjusted SD sd_y sqrt(1 - rho^2), i.e. R's power.t.test(n, delta,
  sd = sd_y * sqrt(1 - rho^2), strict = TRUE) with its df 2 n - 2 replaced by the ANCOVA residual df N - 2 - S
  (S = strata in the model, 1 without strata: N - 3). `baseline_imbalance=True` also averages over the chance
  imbalance of the baseline means between the arms, which inflates the variance of the adjusted difference by
  1 + F / m with F ~ F(1, m), m = N - 1 - S (exact for normal data: the estimate given the baselines is normal with
  variance sigma^2 (1/n_t + 1/n_c + d^2 / Sxx)); without it the formula overstates the power a little at small N.
  Dropout (missing completely at random) is averaged over the binomial numbers of completers per arm.
* rank-sum, `rank_sum_power_are`: the two-sample t-test power on the SD of the change with each arm's size
  multiplied by the asymptotic relative efficiency of the Wilcoxon test to the t test (3/pi at normal data).
* assurance, `ancova_assurance`: the ANCOVA success probability averaged over Normal(mean, sd^2) effects, in
  closed form (a noncentral t; see ancova_power).

`n_for_power` picks the N per arm for a target power from a simulated grid (see its docstring for the rule).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from k2trial.planning import vectorised
from k2trial.planning.simulate import CellDesign, TrialBatch, batch_blocks, cell_entropy, draw_batch

ANCOVA = "ancova"
RANK_SUM = "rank_sum"
#: Asymptotic relative efficiency of the Wilcoxon rank-sum test to the t test at normal data.
ARE_NORMAL = 3.0 / math.pi


@dataclass(frozen=True)
class ResponderRule:
    """A responder criterion: reduction from baseline >= `percent` % or >= `points` (exactly one)."""

    name: str
    percent: float | None = None
    points: float | None = None


@dataclass(frozen=True)
class AnalysisSettings:
    """How each simulated trial is analysed (the planned confirmatory analysis)."""

    tests: tuple[str, ...]
    alpha: float = 0.05  # two-sided
    confidence: float = 0.95
    ancova_stratum: bool = True  # stratum in the ANCOVA model (when the design has strata)
    decimals: int | None = 1  # recording precision for the rank-sum and responder comparisons
    exact_below: int = 50
    continuity: bool = True
    responders: tuple[ResponderRule, ...] = ()
    responder_missing: str = vectorised.NON_RESPONDER
    benefit: str = "decrease"  # the endpoint improves when it decreases (pain VAS)

    def responder(self, name: str) -> ResponderRule:
        for rule in self.responders:
            if rule.name == name:
                return rule
        raise KeyError(f"no responder rule named {name!r}")


@dataclass(frozen=True)
class TestOutcomes:
    """Per simulated trial, for one test."""

    reject: np.ndarray  # p < alpha (two-sided)
    favourable: np.ndarray  # rejects and the estimate favours the treated arm
    estimate: np.ndarray  # ANCOVA: adjusted difference; rank-sum: W / (n_x n_y); responders: risk difference
    n_treated: np.ndarray  # analysed
    n_control: np.ndarray
    rate_treated: np.ndarray  # responders: proportion; else NaN
    rate_control: np.ndarray
    exact: np.ndarray  # rank-sum: exact p used


def _outcomes(p, favours, estimate, n_t, n_c, alpha, rate_t=None, rate_c=None, exact=None) -> TestOutcomes:
    reject = np.nan_to_num(p, nan=1.0) < alpha
    nan = np.full(len(p), np.nan)
    return TestOutcomes(
        reject=reject,
        favourable=reject & favours,
        estimate=estimate,
        n_treated=np.asarray(n_t, dtype=np.int64),
        n_control=np.asarray(n_c, dtype=np.int64),
        rate_treated=nan if rate_t is None else rate_t,
        rate_control=nan if rate_c is None else rate_c,
        exact=np.zeros(len(p), dtype=bool) if exact is None else exact,
    )


def analyse_batch(batch: TrialBatch, settings: AnalysisSettings) -> dict[str, TestOutcomes]:
    """Every configured test on every trial of the batch."""
    lower_is_better = settings.benefit == "decrease"
    out: dict[str, TestOutcomes] = {}
    change = batch.change
    for test in settings.tests:
        if test == ANCOVA:
            stratum = batch.stratum if settings.ancova_stratum else None
            n_strata = None if stratum is None else int(np.max(stratum)) + 1
            fit = vectorised.ancova_batch(
                change,
                batch.baseline,
                batch.treated,
                stratum=stratum,
                n_strata=n_strata,
                confidence=settings.confidence,
                interval=False,
            )
            favours = fit.estimate < 0 if lower_is_better else fit.estimate > 0
            out[test] = _outcomes(fit.p_value, favours, fit.estimate, fit.n_treated, fit.n_control, settings.alpha)
        elif test == RANK_SUM:
            rs = vectorised.rank_sum_batch(
                change,
                batch.treated,
                decimals=settings.decimals,
                exact_below=settings.exact_below,
                continuity=settings.continuity,
            )
            with np.errstate(invalid="ignore", divide="ignore"):
                share = rs.statistic / (rs.n_x * rs.n_y)  # P(treated > control) + ties / 2
            favours = share < 0.5 if lower_is_better else share > 0.5
            out[test] = _outcomes(rs.p_value, favours, share, rs.n_x, rs.n_y, settings.alpha, exact=rs.exact)
        else:
            rule = settings.responder(test)
            counts = vectorised.responder_counts_batch(
                batch.baseline,
                batch.end,
                batch.treated,
                decimals=settings.decimals,
                percent=rule.percent,
                points=rule.points,
                missing=settings.responder_missing,
            )
            rd = vectorised.risk_difference_batch(
                counts.x_treated,
                counts.n_treated,
                counts.x_control,
                counts.n_control,
                confidence=settings.confidence,
            )
            with np.errstate(invalid="ignore", divide="ignore"):
                rate_t = counts.x_treated / counts.n_treated
                rate_c = counts.x_control / counts.n_control
            out[test] = _outcomes(
                rd.p_value,
                rd.estimate > 0,
                rd.estimate,
                counts.n_treated,
                counts.n_control,
                settings.alpha,
                rate_t,
                rate_c,
            )
    return out


def simulate_cell(
    design: CellDesign,
    settings: AnalysisSettings,
    trials: int,
    *,
    global_seed: int,
    block_trials: int = 500,
    max_values: int = 200_000,
) -> dict[str, TestOutcomes]:
    """Per-trial outcomes of every test over the cell's trials, drawn in seeded blocks and analysed per memory batch
    (batches are independent, each block has its own generator, and are joined in block order)."""
    entropy = cell_entropy(global_seed, design.cell_id)
    batches = batch_blocks(design, trials, block_trials=block_trials, max_values=max_values)

    def run(blocks: range) -> dict[str, TestOutcomes]:
        batch = draw_batch(design, blocks, trials, entropy=entropy, block_trials=block_trials)
        return analyse_batch(batch, settings)

    results = [run(blocks) for blocks in batches]
    fields = TestOutcomes.__dataclass_fields__
    return {
        test: TestOutcomes(*(np.concatenate([getattr(r[test], f) for r in results]) for f in fields))
        for test in settings.tests
    }


def mc_se(power: float, trials: int) -> float:
    """Monte Carlo standard error of a simulated proportion: sqrt(p (1 - p) / trials)."""
    return math.sqrt(power * (1.0 - power) / trials)


def _exact_mean(values: np.ndarray) -> float:
    """Mean of the finite values, summed with math.fsum (exactly rounded: independent of order and batching)."""
    finite = values[np.isfinite(values)]
    return math.fsum(finite.tolist()) / len(finite) if len(finite) else math.nan


def summarise(outcome: TestOutcomes) -> dict[str, float | int]:
    """Power, its MC SE, success (reject and favourable) and the means of the per-trial quantities."""
    trials = len(outcome.reject)
    rejections = int(outcome.reject.sum())
    successes = int(outcome.favourable.sum())
    power = rejections / trials
    success = successes / trials
    return {
        "trials": trials,
        "rejections": rejections,
        "power": power,
        "mc_se": mc_se(power, trials),
        "successes": successes,
        "power_favourable": success,
        "mc_se_favourable": mc_se(success, trials),
        "mean_estimate": _exact_mean(outcome.estimate),
        "mean_n_treated": int(outcome.n_treated.sum()) / trials,
        "mean_n_control": int(outcome.n_control.sum()) / trials,
        "mean_rate_treated": _exact_mean(outcome.rate_treated),
        "mean_rate_control": _exact_mean(outcome.rate_control),
        "share_exact": int(outcome.exact.sum()) / trials,
    }


# ====================================================================================== analytic power


def _t_power(ncp, df, alpha: float, favourable_sign: float | None = None):
    """P(|T| > t_crit) for T ~ noncentral t(df, ncp); with favourable_sign (-1 or +1): only that tail."""
    crit = stats.t.isf(alpha / 2.0, df)
    upper = stats.nct.sf(crit, df, ncp)
    lower = stats.nct.cdf(-crit, df, ncp)
    if favourable_sign is None:
        return upper + lower
    return lower if favourable_sign < 0 else upper


#: Above this many binomial support points per arm, dropout is averaged with a normal approximation instead.
_MAX_SUPPORT = 9
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(9)


def _completers(n: int, keep: float, tail: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Numbers of completers and their weights for n randomised patients who each complete with probability keep.

    The binomial probabilities where they are few (tails below `tail` dropped); for large n, 9 Gauss-Hermite nodes
    of its normal approximation (mean n keep, variance n keep (1 - keep)): the power is smooth in n, so this changes
    it by far less than a Monte Carlo SE and costs a fraction of the evaluations.
    """
    if keep >= 1.0:
        return np.array([float(n)]), np.array([1.0])
    k = np.arange(n + 1)
    pmf = stats.binom.pmf(k, n, keep)
    mask = pmf > tail
    if mask.sum() <= _MAX_SUPPORT:
        return k[mask].astype(float), pmf[mask] / pmf[mask].sum()
    mean, sd = n * keep, math.sqrt(n * keep * (1.0 - keep))
    return np.clip(mean + sd * _GH_X, 1.0, float(n)), _GH_W / _GH_W.sum()


def _average_over_dropout(
    power_at: Callable[[np.ndarray, np.ndarray], np.ndarray], n_treated: int, n_control: int, dropout: float
) -> float:
    kt, pt = _completers(n_treated, 1.0 - dropout)
    kc, pc = _completers(n_control, 1.0 - dropout)
    grid_t, grid_c = np.meshgrid(kt, kc, indexing="ij")
    weight = np.outer(pt, pc)
    values = power_at(grid_t, grid_c)
    usable = np.isfinite(values)
    return float(np.sum(np.where(usable, values * weight, 0.0)))


_LEGENDRE_U, _LEGENDRE_W = np.polynomial.legendre.leggauss(32)


def ancova_power(
    delta: float,
    end_sd: float,
    correlation: float,
    n_treated: int,
    n_control: int,
    *,
    alpha: float,
    n_strata: int = 1,
    dropout: float = 0.0,
    baseline_imbalance: bool = False,
    favourable_sign: float | None = None,
    prior_sd: float = 0.0,
) -> float:
    """Analytic ANCOVA power (two-sided; with favourable_sign only the tail that favours treatment).

    delta: treated - control difference of the mean change; end_sd: SD of the end-of-treatment value within arm;
    correlation: baseline-to-end correlation; the residual SD is end_sd sqrt(1 - correlation^2). Residual df
    N - 2 - n_strata. With dropout: averaged over the binomial numbers of completers in each arm.

    prior_sd > 0 (assurance, favourable tail only): delta ~ Normal(delta, prior_sd^2). Given the design, the estimate
    is then Normal(delta, prior_sd^2 + se^2) and independent of the residual variance, so T (1 + prior_sd^2 /
    se^2)^(-1/2) is noncentral t with ncp delta / sqrt(prior_sd^2 + se^2): the success probability has that closed
    form (no quadrature over the effect), averaged over baseline imbalance and completers as the power is.
    """
    if prior_sd > 0 and favourable_sign is None:
        raise ValueError("an assurance (prior_sd > 0) is for the favourable tail: give favourable_sign")
    sd_adjusted = end_sd * math.sqrt(1.0 - correlation**2)
    u = (_LEGENDRE_U + 1.0) / 2.0
    wq = _LEGENDRE_W / 2.0

    def tail(se, df):
        if prior_sd <= 0:
            return _t_power(delta / se, df, alpha, favourable_sign)
        total = np.sqrt(prior_sd**2 + se**2)
        crit = stats.t.isf(alpha / 2.0, df) * se / total
        ncp = delta / total
        return stats.nct.cdf(-crit, df, ncp) if favourable_sign < 0 else stats.nct.sf(crit, df, ncp)

    def power_at(nt: np.ndarray, nc: np.ndarray) -> np.ndarray:
        shape = nt.shape
        nt, nc = nt.reshape(-1), nc.reshape(-1)
        df = nt + nc - 2.0 - n_strata
        m = nt + nc - 1.0 - n_strata  # df of the baseline's sum of squares within arms (and strata)
        ok = (nt >= 1) & (nc >= 1) & (df > 0)
        df_safe = np.where(ok, df, 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            se = np.where(ok, sd_adjusted * np.sqrt(1.0 / nt + 1.0 / nc), 1.0)
        if not baseline_imbalance:
            value = tail(se, df_safe)
        else:
            m_safe = np.where(ok, m, 1.0)
            inflate = np.sqrt(1.0 + stats.f.ppf(u[:, None], 1.0, m_safe[None, :]) / m_safe[None, :])
            value = (wq[:, None] * tail(se[None, :] * inflate, df_safe[None, :])).sum(0)
        return np.where(ok, value, np.nan).reshape(shape)

    return _average_over_dropout(power_at, n_treated, n_control, dropout)


def rank_sum_power_are(
    delta: float,
    change_sd: float,
    n_treated: int,
    n_control: int,
    *,
    alpha: float,
    dropout: float = 0.0,
    are: float = ARE_NORMAL,
) -> float:
    """Rank-sum power by the ARE approximation: the two-sample t-test power on the change (SD change_sd) with each
    arm's size multiplied by `are` (3/pi at normal data), df n_t' + n_c' - 2; dropout as in ancova_power."""

    def power_at(nt: np.ndarray, nc: np.ndarray) -> np.ndarray:
        et, ec = nt * are, nc * are
        with np.errstate(invalid="ignore", divide="ignore"):
            ncp = delta / (change_sd * np.sqrt(1.0 / et + 1.0 / ec))
        df = et + ec - 2.0
        return np.where((nt >= 1) & (nc >= 1) & (df > 0), _t_power(ncp, np.maximum(df, 1e-9), alpha), np.nan)

    return _average_over_dropout(power_at, n_treated, n_control, dropout)


def ancova_assurance(
    mean: float,
    sd: float,
    end_sd: float,
    correlation: float,
    n_treated: int,
    n_control: int,
    *,
    alpha: float,
    n_strata: int = 1,
    dropout: float = 0.0,
    baseline_imbalance: bool = True,
    benefit: str = "decrease",
) -> float:
    """Probability of success (significant and favouring treatment) averaged over delta ~ Normal(mean, sd^2)
    (closed form, see ancova_power's prior_sd)."""
    return ancova_power(
        mean,
        end_sd,
        correlation,
        n_treated,
        n_control,
        alpha=alpha,
        n_strata=n_strata,
        dropout=dropout,
        baseline_imbalance=baseline_imbalance,
        favourable_sign=-1.0 if benefit == "decrease" else 1.0,
        prior_sd=sd,
    )


def smallest_n(
    power_of_n: Callable[[int], float], target: float, *, start: int = 2, limit: int = 100_000
) -> int | None:
    """Smallest integer n >= start with power_of_n(n) >= target (power increasing in n), None beyond `limit`."""
    if power_of_n(start) >= target:
        return start
    low, high = start, start * 2
    while power_of_n(high) < target:
        low, high = high, high * 2
        if high > limit:
            return None
    while high - low > 1:
        mid = (low + high) // 2
        if power_of_n(mid) >= target:
            high = mid
        else:
            low = mid
    return high


# ================================================================================= N per arm from a grid


@dataclass(frozen=True)
class GridChoice:
    """N per arm for a target power from a simulated grid."""

    n_grid: int | None  # the grid size chosen (None: target not reached on the grid)
    power_at_grid: float  # its simulated power
    n_interpolated: int | None  # interpolated between the bracketing grid sizes (None: no bracket below)
    note: str


def n_for_power(n_grid: Sequence[int], power: Sequence[float], target: float) -> GridChoice:
    """N per arm for `target` power from a grid of sizes and their simulated powers.

    Pick: the smallest grid size whose power is >= target *and stays* >= target at every larger grid size (so a
    Monte Carlo blip below the curve does not count). Interpolated: between that size and the grid size below it,
    linear in probit(power) against sqrt(n) (the shape of a z-test's power curve, Phi(c sqrt(n) - z)), rounded up
    to an integer. Powers of 0 or 1 are clipped to 1e-6 and 1 - 1e-6 for the probit.
    """
    order = np.argsort(np.asarray(n_grid), kind="stable")
    ns = np.asarray(n_grid, dtype=int)[order]
    ps = np.asarray(power, dtype=float)[order]
    if len(ns) == 0:
        return GridChoice(None, math.nan, None, "empty grid")
    reached = ps >= target
    tail_ok = np.flip(np.logical_and.accumulate(np.flip(reached)))
    if not tail_ok[-1]:
        return GridChoice(
            None, math.nan, None, f"not reached on the grid (power {ps[-1]:.3f} at the largest size, {ns[-1]})"
        )
    i = int(np.argmax(tail_ok))
    if i == 0:
        return GridChoice(int(ns[0]), float(ps[0]), None, f"reached at the smallest grid size ({ns[0]})")
    lo_n, hi_n = ns[i - 1], ns[i]
    z = stats.norm.ppf(np.clip([ps[i - 1], ps[i], target], 1e-6, 1.0 - 1e-6))
    if z[1] <= z[0]:
        return GridChoice(int(hi_n), float(ps[i]), int(hi_n), "")
    s = math.sqrt(lo_n) + (z[2] - z[0]) * (math.sqrt(hi_n) - math.sqrt(lo_n)) / (z[1] - z[0])
    interpolated = min(max(math.ceil(s * s - 1e-9), int(lo_n) + 1), int(hi_n))
    return GridChoice(int(hi_n), float(ps[i]), interpolated, "")


# ========================================================================== analytic values of one cell


def analytic_for_cell(
    test: str,
    *,
    delta: float,
    effect_sd: float,
    end_sd: float,
    correlation: float,
    change_sd: float,
    n_treated: int,
    n_control: int,
    dropout: float,
    n_strata_model: int,
    settings: AnalysisSettings,
) -> dict[str, float | str]:
    """The analytic counterparts of a cell's simulated power (NaN where there is none).

    analytic_power: ANCOVA, noncentral t with the baseline imbalance (two-sided; for an assurance cell, the success
    probability averaged over the effect's prior); rank-sum, the ARE approximation (fixed effects only).
    analytic_power_t_test: ANCOVA as R power.t.test on the adjusted SD with df N - 2 - strata (assurance cells: the
    same averaged over the prior). Both for normal, unclipped data, dropout averaged over the completers.
    """
    nan = math.nan
    common = {"alpha": settings.alpha, "dropout": dropout}
    if test == ANCOVA:
        if effect_sd > 0:
            exact = ancova_assurance(
                delta,
                effect_sd,
                end_sd,
                correlation,
                n_treated,
                n_control,
                n_strata=n_strata_model,
                baseline_imbalance=True,
                benefit=settings.benefit,
                **common,
            )
            plain = ancova_assurance(
                delta,
                effect_sd,
                end_sd,
                correlation,
                n_treated,
                n_control,
                n_strata=n_strata_model,
                baseline_imbalance=False,
                benefit=settings.benefit,
                **common,
            )
            method = "assurance: success probability (significant, favouring treatment) over Normal(effect, SE^2)"
        else:
            exact = ancova_power(
                delta,
                end_sd,
                correlation,
                n_treated,
                n_control,
                n_strata=n_strata_model,
                baseline_imbalance=True,
                **common,
            )
            plain = ancova_power(delta, end_sd, correlation, n_treated, n_control, n_strata=n_strata_model, **common)
            method = "noncentral t on sd_end sqrt(1 - rho^2), df N - 2 - strata, averaged over baseline imbalance"
        return {"analytic_power": exact, "analytic_power_t_test": plain, "analytic_method": method}
    if test == RANK_SUM and effect_sd == 0:
        value = rank_sum_power_are(delta, change_sd, n_treated, n_control, **common)
        return {
            "analytic_power": value,
            "analytic_power_t_test": nan,
            "analytic_method": "ARE approximation: t-test power on the SD of the change at 3/pi x N per arm",
        }
    return {"analytic_power": nan, "analytic_power_t_test": nan, "analytic_method": ""}
