"""k2trial.stats.mmrm against R nlme::gls (corSymm + varIdent, REML) and emmeans(mode = "df.error").

Datasets are generated deterministically here (fixed-seed numpy Generator; the same frames are sent to R
as exact floats): 2 arms x 3 visits, balanced and unbalanced with missing visits (monotone dropout and
intermittent), a small one with tied and zero changes, and designs that force the covariance fallbacks.
Iterative fits are compared at about 1e-5 relative with R's default control settings, and tighter with
R's optimiser pushed to convergence (ours is the better REML optimum in both cases: checked).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import rscript
from rscript import RSession, r_num, r_str, requires_r

from k2trial.core.values import round_significant
from k2trial.stats.mmrm import (
    COMPOUND_SYMMETRY,
    INDEPENDENCE,
    MISSING_DATA,
    UNSTRUCTURED,
    mmrm,
    rounded_result,
)

r_session = rscript.r_session  # the session fixture, bound here so pytest finds it

VISITS = ["w4", "w8", "w12"]
TRUE_COV = np.array([[4.0, 2.4, 1.8], [2.4, 5.0, 3.2], [1.8, 3.2, 6.5]])


def make_trial(
    n_treated: int, n_control: int, seed: int, *, dropout: float = 0.0, intermittent: float = 0.0, step: float = 0.1
) -> pd.DataFrame:
    """Long data, one row per subject and visit; chg on a recording grid of `step` (NaN = missed visit)."""
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(TRUE_COV)
    rows = []
    for i in range(n_treated + n_control):
        arm = "active" if i < n_treated else "placebo"
        base = round(float(rng.uniform(4.0, 9.0)), 1)
        errors = chol @ rng.normal(size=3)
        dropped = False
        for v, label in enumerate(VISITS):
            mean = -0.5 * v - 0.3 * (base - 6.0) + (-0.6 * (v + 1) if arm == "active" else 0.0)
            chg = round((mean + errors[v]) / step) * step
            if v > 0:
                dropped = dropped or rng.uniform() < dropout
                if dropped or rng.uniform() < intermittent:
                    chg = math.nan
            rows.append((f"S{i:03d}", arm, label, chg, base))
    return pd.DataFrame(rows, columns=["subject", "arm", "visit", "chg", "base"])


def _datasets() -> dict[str, dict]:
    balanced = make_trial(30, 30, seed=11)
    unbalanced = make_trial(25, 35, seed=12, dropout=0.12, intermittent=0.08)
    small = make_trial(6, 7, seed=13, step=1.0)
    # Compound symmetry fallback: visits w4 and w12 observed together in two subjects only.
    sparse = make_trial(15, 15, seed=14)
    both = sparse.pivot(index="subject", columns="visit", values="chg")
    subjects = list(both.index)
    for k, s in enumerate(subjects):
        if k >= 2:
            sparse.loc[(sparse.subject == s) & (sparse.visit == ("w4" if k % 2 else "w12")), "chg"] = math.nan
    # Independence fallback: each subject has one visit, except two subjects with two.
    single = make_trial(12, 12, seed=15)
    for k, s in enumerate(sorted(single.subject.unique())):
        keep = {VISITS[k % 3]} | ({VISITS[(k + 1) % 3]} if k < 2 else set())
        single.loc[(single.subject == s) & ~single.visit.isin(keep), "chg"] = math.nan
    # Singular unstructured matrix: the w8 change is the w4 change plus 0.5 for every subject.
    singular = make_trial(20, 20, seed=21)
    w4 = singular[singular.visit == "w4"].set_index("subject").chg
    at_w8 = singular.visit == "w8"
    singular.loc[at_w8, "chg"] = singular.loc[at_w8, "subject"].map(w4 + 0.5).to_numpy()
    return {
        "balanced": {"data": balanced},
        "unbalanced_missing_visits": {"data": unbalanced},
        "unbalanced_base_by_visit": {"data": unbalanced, "baseline_by_visit": True},
        "small_ties_zeros": {"data": small},
        "balanced_cs_requested": {"data": balanced, "covariance": COMPOUND_SYMMETRY},
        "fallback_cs": {"data": sparse},
        "fallback_independence": {"data": single},
        "fallback_singular": {"data": singular},
        "balanced_conf90": {"data": balanced, "confidence": 0.90},
    }


DATASETS = _datasets()
EXPECTED_STRUCTURE = {
    "balanced": UNSTRUCTURED,
    "unbalanced_missing_visits": UNSTRUCTURED,
    "unbalanced_base_by_visit": UNSTRUCTURED,
    "small_ties_zeros": UNSTRUCTURED,
    "balanced_cs_requested": COMPOUND_SYMMETRY,
    "fallback_cs": COMPOUND_SYMMETRY,
    "fallback_independence": INDEPENDENCE,
    "fallback_singular": COMPOUND_SYMMETRY,
    "balanced_conf90": UNSTRUCTURED,
}


def _fit(name: str):
    case = DATASETS[name]
    return mmrm(
        case["data"],
        treated="active",
        control="placebo",
        visits=VISITS,
        baseline_by_visit=case.get("baseline_by_visit", False),
        covariance=case.get("covariance", UNSTRUCTURED),
        confidence=case.get("confidence", 0.95),
    )


FITS = {name: _fit(name) for name in DATASETS}

_R_STRUCTURE = {
    UNSTRUCTURED: "correlation = corSymm(form = ~ visit_index | subject), weights = varIdent(form = ~ 1 | visit),",
    COMPOUND_SYMMETRY: "correlation = corCompSymm(form = ~ 1 | subject),",
    INDEPENDENCE: "",
}


def _r_code(tight: bool) -> str:
    control = (
        "control = glsControl(opt = 'optim', msTol = 1e-15, tolerance = 1e-12, msMaxIter = 5000), " if tight else ""
    )
    code = [
        "fullV <- function(fit, structure, full) {",
        "  s2 <- fit$sigma^2",
        "  if (structure == 'independence') return(diag(s2, 3))",
        "  if (structure == 'compound symmetry') {",
        "    rho <- coef(fit$modelStruct$corStruct, unconstrained = FALSE)",
        "    return(s2 * ((1 - rho) * diag(3) + rho))",
        "  }",
        "  unclass(getVarCov(fit, individual = full))",
        "}",
        "out <- list()",
    ]
    for name, case in DATASETS.items():
        d = case["data"]
        formula = "chg ~ base + arm * visit" + (" + base:visit" if case.get("baseline_by_visit") else "")
        level = case.get("confidence", 0.95)
        complete = d.groupby("subject")["chg"].apply(lambda s: s.notna().all())
        full = str(complete.index[complete.to_numpy()][0]) if complete.any() else ""  # for getVarCov
        code.append(
            f"d <- data.frame(subject = {r_str(d.subject)}, arm = factor({r_str(d.arm)},"
            f" levels = c('placebo', 'active')), visit = factor({r_str(d.visit)}, levels = {r_str(VISITS)}),"
            f" chg = {r_num(d.chg)}, base = {r_num(d.base)}, stringsAsFactors = FALSE)\n"
            "d$visit_index <- as.integer(d$visit)\n"
            f"fit <- gls({formula}, data = d, {_R_STRUCTURE[EXPECTED_STRUCTURE[name]]}"
            f" method = 'REML', na.action = na.omit, {control}verbose = FALSE)\n"
            "emm <- emmeans(fit, ~ arm | visit, mode = 'df.error')\n"
            f"ct <- summary(contrast(emm, list(d = c(-1, 1))), infer = c(TRUE, TRUE), level = {level!r})\n"
            "s <- summary(emm)\n"
            f"out[[{name!r}]] <- list(estimate = as.list(ct$estimate), se = as.list(ct$SE), df = as.list(ct$df),"
            " t = as.list(ct$t.ratio), p = as.list(ct$p.value), low = as.list(ct$lower.CL),"
            " high = as.list(ct$upper.CL), lsm = as.list(s$emmean), lsm_se = as.list(s$SE),"
            " lsm_arm = as.list(as.character(s$arm)), lsm_visit = as.list(as.character(s$visit)),"
            f" V = fullV(fit, {EXPECTED_STRUCTURE[name]!r}, {full!r}), loglik = as.numeric(logLik(fit)),"
            " coef = as.list(unname(coef(fit))), N = fit$dims$N, p_coef = fit$dims$p)"
        )
    code.append("result <- out")
    return "\n".join(code)


@pytest.fixture(scope="module")
def r_mmrm(r_session: RSession) -> dict[str, dict]:
    r_session.need("nlme", "emmeans")
    return r_session.run(_r_code(tight=False), packages=["nlme", "emmeans"])


@pytest.fixture(scope="module")
def r_mmrm_tight(r_session: RSession) -> dict[str, dict]:
    r_session.need("nlme", "emmeans")
    return r_session.run(_r_code(tight=True), packages=["nlme", "emmeans"])


#: Relative tolerances by quantity. The CI limits and p carry the SE error times the t quantile (or the
#: density slope), hence the wider bounds; with R at its default control the small dataset (13 subjects,
#: flat likelihood) needs them, the others agree to a few 1e-6.
TOL_DEFAULT = {"estimate": 1e-5, "se": 1e-5, "lsmean": 1e-5, "t": 1e-5, "coef": 1e-5, "ci": 3e-5, "p": 5e-5,
               "covariance": 2e-5}  # fmt: skip
TOL_TIGHT = dict.fromkeys(TOL_DEFAULT, 1e-6) | {"p": 3e-6}


def _compare(ours, ref: dict, tol: dict[str, float]) -> dict[str, float]:
    """Assert agreement within `tol` (relative to each quantity's scale); return the max relative differences."""
    worst: dict[str, float] = {}

    def check(key: str, got: float, want: float, scale: float) -> None:
        diff = abs(got - want) / scale
        worst[key] = max(worst.get(key, 0.0), diff)
        assert diff <= tol[key], (key, got, want, diff)

    for v, c in enumerate(ours.contrasts):
        scale = max(abs(ref["estimate"][v]), ref["se"][v])
        check("estimate", c.estimate, ref["estimate"][v], scale)
        check("se", c.se, ref["se"][v], ref["se"][v])
        check("ci", c.ci_low, ref["low"][v], scale)
        check("ci", c.ci_high, ref["high"][v], scale)
        check("t", c.t, ref["t"][v], max(1.0, abs(ref["t"][v])))
        check("p", c.p_value, ref["p"][v], max(1e-3, ref["p"][v]))  # below p = 0.001: absolute
        assert c.df == ref["df"][v]
        # emmeans rows: arm within visit (placebo, active) for each visit in order
        rows = {(a, vv): i for i, (a, vv) in enumerate(zip(ref["lsm_arm"], ref["lsm_visit"], strict=True))}
        i_t, i_c = rows[("active", c.visit)], rows[("placebo", c.visit)]
        check("lsmean", c.lsmean_treated, ref["lsm"][i_t], max(1.0, abs(ref["lsm"][i_t])))
        check("lsmean", c.lsmean_control, ref["lsm"][i_c], max(1.0, abs(ref["lsm"][i_c])))
        check("se", c.se_treated, ref["lsm_se"][i_t], ref["lsm_se"][i_t])
        check("se", c.se_control, ref["lsm_se"][i_c], ref["lsm_se"][i_c])
    cov = np.array(ours.covariance_matrix)
    ref_cov = np.array(ref["V"], dtype=float)
    check("covariance", float(np.max(np.abs(cov - ref_cov))), 0.0, float(np.max(np.abs(ref_cov))))
    coef = np.array(ours.coefficients)
    ref_coef = np.array(ref["coef"], dtype=float)
    check("coef", float(np.max(np.abs(coef - ref_coef))), 0.0, float(np.max(np.abs(ref_coef))))
    return worst


@requires_r
@pytest.mark.parametrize("name", list(DATASETS))
def test_mmrm_matches_r_default_control(name: str, r_mmrm: dict[str, dict]) -> None:
    ours, ref = FITS[name], r_mmrm[name]
    assert ours.covariance == EXPECTED_STRUCTURE[name]
    assert ours.converged
    assert ours.n_observations == ref["N"] and ours.n_coef == ref["p_coef"]
    _compare(ours, ref, TOL_DEFAULT)
    # Same REML log-likelihood as logLik(gls), and ours is at least as high (a better or equal optimum).
    assert ours.reml_loglik == pytest.approx(ref["loglik"], abs=1e-6)
    assert ours.reml_loglik >= ref["loglik"] - 1e-9


@requires_r
@pytest.mark.parametrize("name", list(DATASETS))
def test_mmrm_matches_r_converged_tightly(name: str, r_mmrm_tight: dict[str, dict]) -> None:
    """With R's optimiser pushed to convergence the two fits agree to about 1e-6 relative."""
    ours, ref = FITS[name], r_mmrm_tight[name]
    _compare(ours, ref, TOL_TIGHT)
    assert ours.reml_loglik == pytest.approx(ref["loglik"], abs=1e-8)
    assert ours.reml_loglik >= ref["loglik"] - 1e-10


def test_datasets_have_the_intended_shape() -> None:
    bal, unb = FITS["balanced"], FITS["unbalanced_missing_visits"]
    assert (bal.n_subjects, bal.n_observations, bal.n_dropped) == (60, 180, 0)
    assert unb.n_subjects == 60 and unb.n_dropped > 10
    counts = [(c.n_treated, c.n_control) for c in unb.contrasts]
    assert counts[0] == (25, 35) and all(nt < 25 and nc < 35 for nt, nc in counts[1:])
    data = DATASETS["unbalanced_missing_visits"]["data"]
    wide = data.pivot(index="subject", columns="visit", values="chg")[VISITS]
    assert (wide["w8"].isna() & wide["w12"].notna()).any()  # intermittent: a missed visit, then back
    small = DATASETS["small_ties_zeros"]["data"]
    assert (small.chg == 0).sum() >= 2 and small.chg.duplicated().any()
    assert FITS["small_ties_zeros"].n_subjects == 13
    assert "observed together in 2 subject(s)" in FITS["fallback_cs"].fallback_reason
    reason = FITS["fallback_independence"].fallback_reason
    assert "unstructured" in reason and "compound symmetry: 2 subject(s)" in reason
    assert "singular" in FITS["fallback_singular"].fallback_reason
    assert FITS["balanced"].fallback_reason == "" and FITS["balanced_cs_requested"].fallback_reason == ""


def test_df_and_fields() -> None:
    fit = FITS["balanced"]
    assert fit.df_residual == 180 - 7 and fit.n_cov_params == 5
    assert all(c.df == 168 for c in fit.contrasts)
    assert FITS["unbalanced_base_by_visit"].n_coef == 9
    assert FITS["fallback_independence"].n_cov_params == 0 and FITS["fallback_cs"].n_cov_params == 1
    assert fit.missing_data == MISSING_DATA and "df.error" in fit.df_method
    assert fit.coefficient_names[:3] == ("(Intercept)", "base", "armtreated")
    assert fit.visits == tuple(VISITS)
    cov = np.array(fit.covariance_matrix)
    assert np.allclose(cov, cov.T) and np.linalg.eigvalsh(cov).min() > 0
    assert fit.sigma == pytest.approx(math.sqrt(cov[0, 0]))


def test_independence_equals_ordinary_least_squares() -> None:
    """Independence is OLS: estimates from numpy lstsq, SE from s^2 (X'X)^-1, df N - p."""
    data = DATASETS["balanced"]["data"]
    fit = mmrm(data, treated="active", control="placebo", visits=VISITS, covariance=INDEPENDENCE)
    d = data.dropna()
    t = (d.arm == "active").to_numpy(float)
    v = [(d.visit == lbl).to_numpy(float) for lbl in VISITS]
    x = np.column_stack([np.ones(len(d)), d.base, t, v[1], v[2], t * v[1], t * v[2]])
    y = d.chg.to_numpy()
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    s2 = np.sum((y - x @ beta) ** 2) / (len(y) - 7)
    cov = s2 * np.linalg.inv(x.T @ x)
    assert np.allclose(fit.coefficients, beta, rtol=1e-10, atol=1e-12)
    for k, c in enumerate(fit.contrasts):
        vec = np.zeros(7)
        vec[2] = 1.0
        if k:
            vec[4 + k] = 1.0
        assert c.estimate == pytest.approx(vec @ beta, rel=1e-10)
        assert c.se == pytest.approx(math.sqrt(vec @ cov @ vec), rel=1e-10)
        assert c.df == len(y) - 7
    assert fit.covariance_matrix[0][1] == 0.0


def test_deterministic_and_order_invariant() -> None:
    data = DATASETS["unbalanced_missing_visits"]["data"]
    first = mmrm(data, treated="active", control="placebo", visits=VISITS)
    again = mmrm(data, treated="active", control="placebo", visits=VISITS)
    shuffled = data.sample(frac=1.0, random_state=3).reset_index(drop=True)
    permuted = mmrm(shuffled, treated="active", control="placebo", visits=VISITS)
    assert first == again == permuted
    # Ordered categorical visits give the order without `visits`.
    ordered = data.assign(visit=pd.Categorical(data.visit, categories=VISITS, ordered=True))
    assert mmrm(ordered, treated="active", control="placebo") == first


def test_rounding_for_writing() -> None:
    # k2trial.core.values.round_significant, the one significant-digit rounding (half away from zero)
    assert round_significant(1.23456789, 6) == 1.23457
    assert round_significant(-0.000123456789, 6) == -0.000123457
    assert round_significant(123456789.0, 6) == 123457000.0
    assert round_significant(1.234565, 6) == 1.23457  # a decimal half: away from zero (f"{x:.5e}" gives 1.23456)
    assert round_significant(-0.0, 6) == 0.0 and math.copysign(1.0, round_significant(-0.0, 6)) == 1.0
    assert math.isnan(round_significant(math.nan, 6)) and round_significant(math.inf, 6) == math.inf
    assert round_significant(0.5, digits=1) == 0.5
    fit = rounded_result(FITS["balanced"])
    assert fit.contrasts[0].estimate == round_significant(FITS["balanced"].contrasts[0].estimate, 6)
    assert fit.covariance_matrix[1][2] == round_significant(FITS["balanced"].covariance_matrix[1][2], 6)
    assert fit.confidence == 0.95 and fit.n_observations == 180 and fit.covariance == UNSTRUCTURED
    for c in fit.contrasts:
        for value in (c.estimate, c.se, c.ci_low, c.p_value, c.lsmean_treated):
            assert value == float(f"{value:.5e}")


def test_edge_cases_return_reasons() -> None:
    data = DATASETS["small_ties_zeros"]["data"]
    tied = data.assign(chg=0.0)
    res = mmrm(tied, treated="active", control="placebo", visits=VISITS)
    assert res.covariance == "none" and math.isnan(res.contrasts[0].estimate) and "exactly" in res.note
    one_arm = data[data.arm == "active"]
    res = mmrm(one_arm, treated="active", control="placebo", visits=VISITS)
    assert math.isnan(res.contrasts[1].estimate) and "control arm" in res.note
    no_treated_w12 = data[~((data.arm == "active") & (data.visit == "w12"))]
    res = mmrm(no_treated_w12, treated="active", control="placebo", visits=VISITS)
    assert "rank deficient" in res.note and res.contrasts[2].n_treated == 0
    with pytest.raises(ValueError, match="neither"):
        mmrm(data.assign(arm="other"), treated="active", control="placebo", visits=VISITS)
    with pytest.raises(ValueError, match="more than one row"):
        mmrm(pd.concat([data, data.iloc[:1]]), treated="active", control="placebo", visits=VISITS)
    with pytest.raises(ValueError, match="not in the visit list"):
        mmrm(data, treated="active", control="placebo", visits=["w4", "w8"])
    with pytest.raises(ValueError, match="covariance"):
        mmrm(data, treated="active", control="placebo", visits=VISITS, covariance="toeplitz")
