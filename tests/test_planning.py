"""k2trial.planning: vectorised statistics against the scalar ones, simulated power against analytic power and R,
seeds, the N-per-arm rule, the pilot estimates and the page (issue 17).

The vectorised functions must equal k2trial.stats.two_sample on every trial (to 1e-10; exactly for counts, rank
sums and the exact/normal choice). Simulated power must agree with its references within 3 Monte Carlo SE:
sqrt(p (1 - p) / trials) for an analytic value, sqrt(se1^2 + se2^2) for another simulation (R).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rscript
import yaml
from planning_synthetic import synthetic_pilot
from rscript import r_num

from k2trial.analysis.efficacy import responder_counts
from k2trial.planning import power as pw
from k2trial.planning import report, scenarios, tables, vectorised
from k2trial.planning.simulate import (
    FIXED,
    PERMUTED_BLOCKS,
    CellDesign,
    VasScale,
    cell_entropy,
    largest_remainder,
    simulate_trials,
)
from k2trial.runtime.memory import retain_freed_memory
from k2trial.stats.two_sample import ancova, fisher_exact_p, rank_sum_test, risk_difference, wilson_interval

r_session = rscript.r_session  # the session fixture, bound here so pytest finds it

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-10
ALPHA = 0.05


def _close(a, b, tol=TOL) -> bool:
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol * max(1.0, abs(b))


def _design(**kw) -> CellDesign:
    base = {
        "cell_id": "test",
        "n_treated": 20,
        "n_control": 20,
        "baseline_mean": 6.0,
        "baseline_sd": 1.0,
        "end_sd": 1.2,
        "correlation": 0.5,
        "control_change": -1.0,
        "effect": -0.5,
        "scale": None,
    }
    base.update(kw)
    return CellDesign(**base)


# ================================================================== vectorised = scalar (two_sample)


def _random_trials(seed: int, trials: int, n_t: int, n_c: int, *, missing: float, grid: bool):
    rng = np.random.default_rng(seed)
    n = n_t + n_c
    base = rng.normal(7.0, 1.0, (trials, n))
    chg = -0.6 * (base - 7.0) + rng.normal(-1.0, 1.3, (trials, n))
    if grid:
        base, chg = np.round(base, 1), np.round(chg, 1)
    chg[rng.random((trials, n)) < missing] = np.nan
    base[rng.random((trials, n)) < missing / 3] = np.nan
    treated = np.r_[np.ones(n_t, dtype=bool), np.zeros(n_c, dtype=bool)]
    return rng, base, chg, treated


@pytest.mark.parametrize("strata", [0, 2, 3])
@pytest.mark.parametrize("per_trial_arms", [False, True])
def test_ancova_batch_equals_two_sample_ancova(strata: int, per_trial_arms: bool):
    rng, base, chg, treated = _random_trials(11 + strata, 150, 7, 11, missing=0.12, grid=True)
    if per_trial_arms:
        treated = rng.random(chg.shape) < 0.45
    codes = rng.integers(0, strata, chg.shape) if strata else None
    if strata == 3:
        codes[:20, :] = np.where(codes[:20, :] == 0, 1, codes[:20, :])  # level 0 absent from 20 trials
    fit = vectorised.ancova_batch(chg, base, treated, stratum=codes, n_strata=strata or None)
    arms = np.broadcast_to(treated, chg.shape)
    checked = 0
    for i in range(chg.shape[0]):
        labels = np.where(arms[i], "MK7", "PLACEBO").astype(object)
        ref = ancova(
            chg[i],
            base[i],
            labels,
            treated="MK7",
            control="PLACEBO",
            stratum=None if codes is None else np.array([f"s{c}" for c in codes[i]], dtype=object),
        )
        assert (fit.n[i], fit.n_treated[i], fit.n_control[i]) == (ref.n, ref.n_treated, ref.n_control)
        assert fit.df[i] == ref.df or (math.isnan(ref.estimate) and math.isnan(fit.estimate[i]))
        for name in ("estimate", "se", "t", "p_value", "ci_low", "ci_high"):
            assert _close(getattr(fit, name)[i], getattr(ref, name)), (
                i,
                name,
                getattr(fit, name)[i],
                getattr(ref, name),
            )
        checked += math.isfinite(ref.estimate)
    assert checked > 100


def test_ancova_batch_degenerate_trials_are_nan_like_the_scalar():
    base = np.array([[5.0, 6.0, 7.0, 5.5, 6.5, 7.5], [5.0, 6.0, 7.0, 5.5, 6.5, 7.5]])
    chg = np.array([[-1.0, -2.0, -1.5, np.nan, np.nan, np.nan], [-1.0, -2.0, -1.5, 0.2, 0.1, 0.3]])
    treated = np.array([True, True, True, False, False, False])
    fit = vectorised.ancova_batch(chg, base, treated)
    assert math.isnan(fit.estimate[0]) and fit.n_control[0] == 0  # empty control arm
    ref = ancova(chg[1], base[1], np.where(treated, "T", "C"), treated="T", control="C")
    assert _close(fit.estimate[1], ref.estimate) and _close(fit.p_value[1], ref.p_value)


def _scalar_ancova(chg, base, treated, codes):
    return ancova(
        chg,
        base,
        np.where(treated, "MK7", "PLACEBO").astype(object),
        treated="MK7",
        control="PLACEBO",
        stratum=None if codes is None else np.array([f"s{c}" for c in codes], dtype=object),
    )


@pytest.mark.parametrize("stratified", [False, True])
def test_ancova_batch_baseline_constant_within_strata_drops_out_as_in_the_scalar(stratified: bool):
    """A baseline constant within strata is not estimable; the scalar (minimum-norm) fit still gives the arm
    difference, from change ~ arm (+ stratum) on one more residual df, and so must the vectorised one."""
    rng = np.random.default_rng(21)
    codes = np.tile([0, 1], 8)
    treated = np.repeat([True, False], 8)
    for base_row in (np.where(codes == 0, 5.0, 7.0), np.full(16, 6.0)):
        base = np.repeat(base_row[None, :], 4, axis=0)
        chg = rng.normal(-1.0, 1.0, base.shape)
        fit = vectorised.ancova_batch(
            chg, base, treated, stratum=codes if stratified else None, n_strata=2 if stratified else None
        )
        for i in range(base.shape[0]):
            ref = _scalar_ancova(chg[i], base[i], treated, codes if stratified else None)
            assert math.isfinite(ref.estimate) and fit.df[i] == ref.df
            for name in ("estimate", "se", "t", "p_value", "ci_low", "ci_high"):
                assert _close(getattr(fit, name)[i], getattr(ref, name)), (i, name)


def test_ancova_batch_keeps_its_precision_far_from_zero():
    """Raw sums of squares lose digits when the values sit far from 0 with a small spread; the kernel shifts each
    trial by its own first value, and stays equal to the scalar fit (which centres the baseline)."""
    rng = np.random.default_rng(22)
    base = 1000.0 + rng.normal(0.0, 0.01, (60, 24))
    chg = -30.0 * (base - 1000.0) + rng.normal(0.0, 1.0, base.shape)
    chg[rng.random(chg.shape) < 0.1] = np.nan
    codes = rng.integers(0, 3, base.shape)
    treated = rng.random(base.shape) < 0.5
    fit = vectorised.ancova_batch(chg, base, treated, stratum=codes, n_strata=3)
    for i in range(base.shape[0]):
        ref = _scalar_ancova(chg[i], base[i], treated[i], codes[i])
        for name in ("estimate", "se", "p_value", "ci_low", "ci_high"):
            assert _close(getattr(fit, name)[i], getattr(ref, name)), (i, name)


def test_rank_sum_batch_continuous_per_trial_arms_equals_the_scalar():
    """The sorting path without ties (ranks through the inverse permutation) and with a few planted ties (mid-ranks
    from runs), arms per trial, missing values."""
    rng = np.random.default_rng(23)
    values = rng.normal(0.0, 1.0, (300, 40))
    values[::7, 1] = values[::7, 0]  # ties in every 7th trial
    values[rng.random(values.shape) < 0.1] = np.nan
    treated = rng.random(values.shape) < 0.4
    got = vectorised.rank_sum_batch(values, treated, decimals=None)
    assert got.ties.sum() >= 30 and (~got.ties).sum() >= 200
    for i in range(values.shape[0]):
        ref = rank_sum_test(values[i][treated[i]], values[i][~treated[i]], decimals=None)
        assert got.statistic[i] == ref.statistic and bool(got.ties[i]) == ref.ties, i
        assert bool(got.exact[i]) == (ref.method == "exact")
        assert _close(got.p_value[i], ref.p_value), (i, got.p_value[i], ref.p_value)


def test_retain_freed_memory_changes_speed_not_results():
    import platform

    design = _design(cell_id="memory", dropout=0.1, scale=VasScale())
    settings = pw.AnalysisSettings(tests=("ancova", "rank_sum"))
    before = pw.simulate_cell(design, settings, 1200, global_seed=3)
    assert retain_freed_memory() is (platform.libc_ver()[0] == "glibc")
    after = pw.simulate_cell(design, settings, 1200, global_seed=3)
    for test in settings.tests:
        np.testing.assert_array_equal(before[test].estimate, after[test].estimate)
        np.testing.assert_array_equal(before[test].reject, after[test].reject)


@pytest.mark.parametrize(
    ("case", "decimals", "n_t", "n_c", "missing"),
    [
        ("continuous: exact p (no ties, n < 50)", None, 6, 9, 0.0),
        ("continuous with dropouts: exact p for many (n_x, n_y)", None, 12, 10, 0.2),
        ("continuous, n = 50: normal approximation", None, 50, 8, 0.0),
        ("VAS grid: ties, normal approximation with tie and continuity correction", 1, 15, 15, 0.1),
        ("VAS grid, small arms: exact p when a trial happens to have no ties", 1, 4, 5, 0.0),
    ],
)
def test_rank_sum_batch_equals_two_sample_rank_sum_test(case, decimals, n_t, n_c, missing):
    rng = np.random.default_rng(len(case))
    values = rng.normal(0.0, 1.5, (300, n_t + n_c)) + np.r_[np.full(n_t, -0.7), np.zeros(n_c)]
    if decimals is not None:
        values = np.round(values, decimals) + 1e-12 * rng.standard_normal(values.shape)  # float noise: rounded away
    values[rng.random(values.shape) < missing] = np.nan
    treated = np.r_[np.ones(n_t, dtype=bool), np.zeros(n_c, dtype=bool)]
    got = vectorised.rank_sum_batch(values, treated, decimals=decimals)
    methods = set()
    for i in range(values.shape[0]):
        ref = rank_sum_test(values[i][treated], values[i][~treated], decimals=decimals)
        assert got.statistic[i] == ref.statistic, (case, i)
        assert bool(got.ties[i]) == ref.ties
        assert bool(got.exact[i]) == (ref.method == "exact")
        assert (got.n_x[i], got.n_y[i]) == (ref.n_x, ref.n_y)
        assert _close(got.p_value[i], ref.p_value), (case, i, got.p_value[i], ref.p_value)
        methods.add(ref.method)
    expected = {"exact"} if "exact" in case and "normal" not in case else None
    if expected:
        assert "exact" in methods


def test_rank_sum_batch_sorting_path_with_ties_equals_counting_path():
    rng = np.random.default_rng(5)
    values = np.round(rng.normal(0, 2, (200, 30)), 1)
    values[rng.random(values.shape) < 0.1] = np.nan
    treated = rng.random(values.shape) < 0.5
    counted = vectorised.rank_sum_batch(values, treated, decimals=1)
    sorted_ = vectorised.rank_sum_batch(values, treated, decimals=None)  # already on the grid: ties kept
    np.testing.assert_array_equal(counted.statistic, sorted_.statistic)
    np.testing.assert_array_equal(counted.ties, sorted_.ties)
    np.testing.assert_allclose(counted.p_value, sorted_.p_value, rtol=0, atol=TOL)


@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (5, 7), (10, 10), (23, 17), (40, 3)])
def test_fisher_p_table_equals_fisher_exact_p(n1: int, n2: int):
    table = vectorised.fisher_p_table(n1, n2)
    for x1 in range(n1 + 1):
        for x2 in range(n2 + 1):
            assert _close(table[x1, x2], fisher_exact_p([[x1, n1 - x1], [x2, n2 - x2]])), (x1, x2)


def test_risk_difference_and_wilson_batch_equal_the_scalar_functions():
    rng = np.random.default_rng(8)
    n1 = rng.integers(0, 30, 400)
    n2 = rng.integers(1, 30, 400)
    x1 = (rng.random(400) * (n1 + 1)).astype(int)
    x2 = (rng.random(400) * (n2 + 1)).astype(int)
    got = vectorised.risk_difference_batch(x1, n1, x2, n2)
    low, high = vectorised.wilson_batch(x1, n1)
    for i in range(400):
        if n1[i] == 0:
            assert math.isnan(got.estimate[i]) and math.isnan(got.p_value[i])
            continue
        ref = risk_difference(int(x1[i]), int(n1[i]), int(x2[i]), int(n2[i]))
        for name in ("estimate", "ci_low", "ci_high", "p_value"):
            assert _close(getattr(got, name)[i], getattr(ref, name)), (i, name)
        w = wilson_interval(int(x1[i]), int(n1[i]))
        assert _close(low[i], w[0]) and _close(high[i], w[1])


@pytest.mark.parametrize("rule", [{"percent": 30.0}, {"percent": 50.0}, {"points": 2.0}])
def test_responder_counts_batch_equals_the_analysis_rule(rule):
    rng = np.random.default_rng(3)
    base = np.round(rng.uniform(0, 10, (100, 16)), 1)
    base[:, 0] = 0.0  # percent change undefined
    base[:, 1] = 10.0
    post = np.round(np.clip(base - rng.uniform(-1, 7, base.shape), 0, 10), 1)
    post[:, 1] = 7.0  # exactly 30 % at the recording precision
    post[rng.random(post.shape) < 0.15] = np.nan
    treated = np.arange(16) % 2 == 0
    complete = vectorised.responder_counts_batch(base, post, treated, decimals=1, missing="complete_cases", **rule)
    nri = vectorised.responder_counts_batch(base, post, treated, decimals=1, missing="non_responder", **rule)
    for i in range(100):
        for arm, x, n in (
            (treated, complete.x_treated, complete.n_treated),
            (~treated, complete.x_control, complete.n_control),
        ):
            responders, evaluable, _ = responder_counts(base[i][arm], post[i][arm], 1, **rule)
            assert (x[i], n[i]) == (responders, evaluable)
        assert nri.x_treated[i] == complete.x_treated[i] and nri.n_treated[i] == treated.sum()
        assert nri.n_control[i] == (~treated).sum()


# ========================================================================== simulation and seeds


def test_same_cell_same_trials_whatever_the_batching():
    design = _design(
        randomisation=PERMUTED_BLOCKS,
        strata=("a", "b", "c"),
        strata_proportions=(0.5, 0.3, 0.2),
        dropout=0.1,
        scale=VasScale(),
        n_treated=13,
        n_control=11,
    )
    settings = pw.AnalysisSettings(tests=("ancova", "rank_sum", "r30"), responders=(pw.ResponderRule("r30", 30.0),))
    runs = [
        pw.simulate_cell(design, settings, 2500, global_seed=7, block_trials=250, max_values=m)
        for m in (1, 24 * 250 * 3, 10**9)  # one block per batch, three blocks, everything at once
    ]
    for test in settings.tests:
        for other in runs[1:]:
            for field in ("reject", "estimate", "n_treated", "n_control", "exact"):
                np.testing.assert_array_equal(getattr(runs[0][test], field), getattr(other[test], field))
    summaries = [pw.summarise(r["ancova"]) for r in runs]
    assert summaries[0] == summaries[1] == summaries[2]
    # More trials extend the same sequence (the last, partial block is cut from a whole block).
    shorter = pw.simulate_cell(design, settings, 1100, global_seed=7, block_trials=250)
    np.testing.assert_array_equal(shorter["ancova"].estimate, runs[0]["ancova"].estimate[:1100])


def test_seed_depends_on_global_seed_and_cell_identity_only():
    assert cell_entropy(1, "a:b:c:d:n10") == cell_entropy(1, "a:b:c:d:n10")
    assert cell_entropy(1, "a:b:c:d:n10") != cell_entropy(2, "a:b:c:d:n10")
    assert cell_entropy(1, "a:b:c:d:n10") != cell_entropy(1, "a:b:c:d:n12")
    one = next(simulate_trials(_design(cell_id="x"), 50, global_seed=3))
    same = next(simulate_trials(_design(cell_id="x", effect=-2.0), 50, global_seed=3))
    other = next(simulate_trials(_design(cell_id="y"), 50, global_seed=3))
    np.testing.assert_array_equal(one.baseline, same.baseline)  # same identity: same random numbers
    assert not np.array_equal(one.baseline, other.baseline)


def test_recorded_values_are_on_the_vas_grid_and_randomisation_is_as_configured():
    design = _design(
        n_treated=30,
        n_control=30,
        baseline_mean=9.0,
        scale=VasScale(),
        strata=("a", "b"),
        strata_proportions=(0.6, 0.4),
        randomisation=PERMUTED_BLOCKS,
        block_size=4,
    )
    batch = next(simulate_trials(design, 400, global_seed=1))
    values = np.concatenate([batch.baseline.ravel(), batch.end.ravel()])
    assert values.min() >= 0.0 and values.max() <= 10.0 and (values == 10.0).any()  # clipped at the ceiling
    np.testing.assert_array_equal(np.round(values * 10), values * 10)
    # Permuted blocks of 4 within each stratum: per stratum the arms differ by at most 2.
    for level in (0, 1):
        member = batch.stratum == level
        diff = (member & batch.treated).sum(axis=1) - (member & ~batch.treated).sum(axis=1)
        assert np.abs(diff).max() <= 2
    assert abs((batch.stratum == 0).mean() - 0.6) < 0.02
    fixed = next(
        simulate_trials(
            _design(strata=("a", "b"), strata_proportions=(0.6, 0.4), randomisation=FIXED, n_treated=11, n_control=9),
            5,
            global_seed=1,
        )
    )
    assert fixed.treated.sum() == 11 and fixed.treated.ndim == 1
    assert list(largest_remainder(11, (0.6, 0.4))) == [7, 4] == list(np.bincount(fixed.stratum[fixed.treated]))


# =================================================================== simulated vs analytic power


@pytest.mark.parametrize("n", [8, 25, 80])
@pytest.mark.parametrize("effect", [-0.3, -0.7, -1.2])
def test_simulated_ancova_power_equals_analytic_within_3_mc_se(n: int, effect: float):
    trials = 4000
    design = _design(cell_id=f"analytic:{n}:{effect}", n_treated=n, n_control=n, effect=effect)
    out = pw.simulate_cell(design, pw.AnalysisSettings(tests=("ancova",)), trials, global_seed=2017)
    sim = pw.summarise(out["ancova"])
    exact = pw.ancova_power(effect, 1.2, 0.5, n, n, alpha=ALPHA, baseline_imbalance=True)
    se = pw.mc_se(exact, trials)
    assert abs(sim["power"] - exact) <= 3 * se + 1e-12, (sim["power"], exact, se)
    # R power.t.test on the adjusted SD (df N - 3), no imbalance term: overstates a little at small N.
    plain = pw.ancova_power(effect, 1.2, 0.5, n, n, alpha=ALPHA)
    assert plain >= exact - 1e-9
    if n >= 25:
        assert abs(sim["power"] - plain) <= 3 * se + 1e-12, (sim["power"], plain, se)


def test_simulated_ancova_power_with_strata_and_dropout_equals_analytic():
    trials = 6000
    design = _design(
        cell_id="strata-dropout",
        n_treated=30,
        n_control=30,
        effect=-0.8,
        dropout=0.2,
        strata=("a", "b"),
        strata_proportions=(0.5, 0.5),
        strata_shift=(0.0, 1.5),
    )
    out = pw.simulate_cell(design, pw.AnalysisSettings(tests=("ancova",)), trials, global_seed=4)
    sim = pw.summarise(out["ancova"])
    assert sim["mean_n_treated"] == pytest.approx(24.0, abs=0.2)  # effective sample size: (1 - dropout) x N
    exact = pw.ancova_power(-0.8, 1.2, 0.5, 30, 30, alpha=ALPHA, n_strata=2, dropout=0.2, baseline_imbalance=True)
    assert abs(sim["power"] - exact) <= 3 * pw.mc_se(exact, trials), (sim["power"], exact)


@pytest.mark.parametrize("scale", [None, VasScale()])
@pytest.mark.parametrize("n", [5, 20, 60])
def test_rejection_rate_at_effect_zero_is_alpha_within_3_mc_se(n: int, scale):
    trials = 6000
    design = _design(
        cell_id=f"null:{n}:{scale}",
        n_treated=n,
        n_control=n,
        effect=0.0,
        scale=scale,
        baseline_mean=7.0,
        control_change=-1.5,
        dropout=0.1,
    )
    settings = pw.AnalysisSettings(tests=("ancova",), decimals=None if scale is None else 1)
    sim = pw.summarise(pw.simulate_cell(design, settings, trials, global_seed=99)["ancova"])
    assert abs(sim["power"] - ALPHA) <= 3 * pw.mc_se(ALPHA, trials), sim["power"]


@pytest.mark.parametrize("scale", [None, VasScale()])
def test_rank_sum_rejection_rate_at_effect_zero_is_alpha_within_3_mc_se(scale):
    """Normal approximation (70 per arm, 10% dropout): continuous data, and the VAS grid with its ties."""
    trials = 6000
    design = _design(
        cell_id=f"rank-null:{scale}",
        n_treated=70,
        n_control=70,
        effect=0.0,
        scale=scale,
        baseline_mean=7.0,
        control_change=-1.5,
        dropout=0.1,
    )
    settings = pw.AnalysisSettings(tests=("rank_sum",), decimals=None if scale is None else 1)
    sim = pw.summarise(pw.simulate_cell(design, settings, trials, global_seed=98)["rank_sum"])
    assert sim["share_exact"] == 0.0
    assert abs(sim["power"] - ALPHA) <= 3 * pw.mc_se(ALPHA, trials), sim["power"]


@pytest.mark.parametrize(("n", "effect"), [(40, -0.55), (100, -0.35)])
def test_rank_sum_power_at_normal_data_equals_the_are_approximation(n: int, effect: float):
    trials = 5000
    design = _design(cell_id=f"are:{n}", n_treated=n, n_control=n, effect=effect, end_sd=1.0, baseline_sd=1.0)
    sim = pw.summarise(
        pw.simulate_cell(design, pw.AnalysisSettings(tests=("rank_sum",), decimals=None), trials, global_seed=5)[
            "rank_sum"
        ]
    )
    change_sd = math.sqrt(1.0 + 1.0 - 2 * 0.5)
    approx = pw.rank_sum_power_are(effect, change_sd, n, n, alpha=ALPHA)
    assert 0.3 < approx < 0.95
    assert abs(sim["power"] - approx) <= 3 * pw.mc_se(approx, trials), (sim["power"], approx)


def test_rank_sum_power_equals_an_r_simulation(r_session):
    """Small arms, continuous data: exact p (R's wilcox.test default for n < 50 without ties)."""
    n, effect, trials = 9, -1.0, 4000
    design = _design(cell_id="r-wilcox", n_treated=n, n_control=n, effect=effect, end_sd=1.0, baseline_sd=1.0)
    ours = pw.summarise(
        pw.simulate_cell(design, pw.AnalysisSettings(tests=("rank_sum",), decimals=None), trials, global_seed=6)[
            "rank_sum"
        ]
    )
    assert ours["share_exact"] == 1.0
    code = f"""
    set.seed(20210828)
    p <- replicate({trials}, wilcox.test(rnorm({n}, {effect}, 1), rnorm({n}, 0, 1), correct = TRUE)$p.value)
    result <- mean(p < {ALPHA})
    """
    theirs = float(r_session.run(code))
    se = math.sqrt(pw.mc_se(ours["power"], trials) ** 2 + pw.mc_se(theirs, trials) ** 2)
    assert abs(ours["power"] - theirs) <= 3 * se, (ours["power"], theirs, se)


def test_analytic_formula_is_r_power_t_test(r_session):
    """With no baseline (correlation 0) and df 2n - 2, ancova_power is R's power.t.test(strict = TRUE)."""
    cases = [(10, 0.8, 1.3), (25, 0.5, 1.0), (60, 0.3, 0.9)]
    code = (
        "result <- c("
        + ", ".join(
            f"power.t.test(n = {n}, delta = {d}, sd = {s}, sig.level = 0.05, strict = TRUE)$power" for n, d, s in cases
        )
        + ")"
    )
    expected = r_session.run(code)
    for (n, d, s), value in zip(cases, expected, strict=True):
        ours = pw.ancova_power(-d, s, 0.0, n, n, alpha=0.05, n_strata=0)  # df = N - 2 - 0
        assert ours == pytest.approx(value, abs=1e-9)
    # noncentral t on the adjusted SD: the same call with sd * sqrt(1 - rho^2)
    value = r_session.run(
        f"result <- power.t.test(n = 30, delta = 0.5, sd = {r_num([1.2 * math.sqrt(1 - 0.36)])}, strict = TRUE)$power"
    )
    assert pw.ancova_power(0.5, 1.2, 0.6, 30, 30, alpha=0.05, n_strata=0) == pytest.approx(float(value), abs=1e-9)


def test_assurance_matches_simulation_and_its_limits():
    trials = 5000
    design = _design(cell_id="prior", n_treated=30, n_control=30, effect=-0.6, effect_sd=0.4)
    sim = pw.summarise(
        pw.simulate_cell(design, pw.AnalysisSettings(tests=("ancova",)), trials, global_seed=8)["ancova"]
    )
    exact = pw.ancova_assurance(-0.6, 0.4, 1.2, 0.5, 30, 30, alpha=ALPHA)
    assert abs(sim["power_favourable"] - exact) <= 3 * pw.mc_se(exact, trials)
    # Zero prior SD: the one-sided (favourable) power; huge N: P(effect favourable) = Phi(0.6 / 0.4).
    assert pw.ancova_assurance(-0.6, 1e-9, 1.2, 0.5, 30, 30, alpha=ALPHA) == pytest.approx(
        pw.ancova_power(-0.6, 1.2, 0.5, 30, 30, alpha=ALPHA, baseline_imbalance=True, favourable_sign=-1), abs=1e-6
    )
    # Large N: the normal-theory assurance of O'Hagan, Stevens and Campbell (2005),
    # Phi((|m| - z sigma_e) / sqrt(s^2 + sigma_e^2)), sigma_e the new trial's SE.
    sigma_e = 1.2 * math.sqrt(1 - 0.25) * math.sqrt(2 / 5000)
    normal_theory = pw.stats.norm.cdf((0.6 - 1.959963984540054 * sigma_e) / math.sqrt(0.16 + sigma_e**2))
    big = pw.ancova_assurance(-0.6, 0.4, 1.2, 0.5, 5000, 5000, alpha=ALPHA)
    assert big == pytest.approx(normal_theory, abs=2e-4)
    assert big < pw.stats.norm.cdf(0.6 / 0.4)  # below P(effect favourable), its limit


# ============================================================================== N per arm rule


def test_n_for_power_on_a_hand_made_table():
    ns = [10, 20, 30, 40, 60]
    # A Monte Carlo blip at 20 (0.81) does not count: 30 falls back below 0.8.
    choice = pw.n_for_power(ns, [0.40, 0.81, 0.78, 0.86, 0.95], 0.8)
    assert choice.n_grid == 40 and choice.power_at_grid == 0.86
    # Interpolation between 30 (0.78) and 40 (0.86), linear in probit(power) against sqrt(n), rounded up.
    z = [pw.stats.norm.ppf(v) for v in (0.78, 0.86, 0.8)]
    s = math.sqrt(30) + (z[2] - z[0]) * (math.sqrt(40) - math.sqrt(30)) / (z[1] - z[0])
    assert choice.n_interpolated == math.ceil(s * s) == 33
    assert pw.n_for_power(ns, [0.40, 0.81, 0.78, 0.86, 0.95], 0.9).n_grid == 60
    none = pw.n_for_power(ns, [0.1, 0.2, 0.3, 0.4, 0.5], 0.8)
    assert none.n_grid is None and "not reached" in none.note
    first = pw.n_for_power(ns, [0.85, 0.9, 0.95, 0.99, 1.0], 0.8)
    assert first.n_grid == 10 and first.n_interpolated is None and "smallest" in first.note
    unsorted = pw.n_for_power([40, 10, 30, 20, 60], [0.86, 0.40, 0.78, 0.81, 0.95], 0.8)
    assert unsorted == choice


def test_smallest_n_and_analytic_n_for_80_percent():
    n = pw.smallest_n(lambda k: pw.ancova_power(-0.5, 1.0, 0.0, k, k, alpha=0.05, n_strata=0), 0.8)
    assert n == 64  # power.t.test(delta = 0.5, sd = 1, power = 0.8)$n = 63.77
    assert pw.ancova_power(-0.5, 1.0, 0.0, 63, 63, alpha=0.05, n_strata=0) < 0.8


# ======================================================================== pilot estimates, cells


def _config(path: str = "config/planning.yaml") -> scenarios.PlanningConfig:
    return scenarios.load_planning_config(yaml.safe_load((ROOT / path).read_text()))


def test_planning_configs_load_and_cells_are_dealt_to_jobs_once():
    for path in ("config/planning.yaml", "config/planning_small.yaml"):
        config = _config(path)
        keys = scenarios.cell_keys(config)
        assert (
            len(keys)
            == len(set(keys))
            == (
                len(config.effects)
                * len(config.placebos)
                * len(config.dropouts)
                * len(config.variabilities)
                * len(config.sample_sizes)
            )
        )
        dealt = sorted(i for job in range(config.jobs) for i in scenarios.job_cells(len(keys), config.jobs, job))
        assert dealt == list(range(len(keys)))
    bad = yaml.safe_load((ROOT / "config/planning_small.yaml").read_text())
    bad["effects"][0]["from"] = "median"
    with pytest.raises(scenarios.PlanningConfigError, match="effects"):
        scenarios.load_planning_config(bad)


def test_pilot_estimates_from_synthetic_inputs():
    tables_ = synthetic_pilot()
    config = _config("config/planning_small.yaml")
    pilot = scenarios.estimate_pilot(tables_["vas"], tables_["between_arm"].astype(str), tables_["subjects"], config)
    vas, subjects = tables_["vas"], tables_["subjects"]
    end = vas[(vas["param"] == "pain") & (vas["visit"] == "week8")].merge(subjects, on="subject_id")
    assert (pilot.n_analysed_treated, pilot.n_analysed_control) == (9, 10)  # one MK-7 dropout
    assert pilot.dropout_observed == pytest.approx(1 / 20)
    # Pooled within-arm SD and correlation by hand.
    centred = end[["base", "aval"]] - end.groupby("arm")[["base", "aval"]].transform("mean")
    sxx, syy = (centred["base"] ** 2).sum(), (centred["aval"] ** 2).sum()
    sxy = (centred["base"] * centred["aval"]).sum()
    assert pilot.end_sd == pytest.approx(math.sqrt(syy / (len(end) - 2)), rel=1e-12)
    assert pilot.correlation == pytest.approx(sxy / math.sqrt(sxx * syy), rel=1e-12)
    assert pilot.control_change == pytest.approx(end.loc[end["arm"] == "PLACEBO", "chg"].mean())
    assert pilot.recomputed_estimate == pytest.approx(pilot.ancova_estimate, abs=1e-9)
    assert pilot.strata == ("b12_deficiency", "diabetes")
    # SE from the CI: half-width / t(0.975, n - 2 - strata).
    half = (pilot.ancova_ci_high - pilot.ancova_ci_low) / 2
    assert pilot.ancova_se == pytest.approx(half / pw.stats.t.isf(0.025, 19 - 4))

    cells = scenarios.build_cells(config, pilot)
    by_id = {c.cell_id: c for c in cells}
    estimate = by_id["pilot_estimate:none:dropout_10pct:pilot_sd:n4"]
    meta = by_id["pilot_estimate:meta_analysis:dropout_10pct:pilot_sd:n4"]
    near = by_id["pilot_ci_near_null:none:dropout_10pct:pilot_sd:n4"]
    prior = by_id["assurance_prior:none:dropout_10pct:pilot_sd:n4"]
    # absorbed: difference = effect + pilot placebo change - scenario placebo change
    assert estimate.delta == pytest.approx(pilot.ancova_estimate + pilot.control_change)
    assert meta.delta - estimate.delta == pytest.approx(1.54)
    assert near.delta - estimate.delta == pytest.approx(pilot.ancova_ci_high - pilot.ancova_estimate)
    assert prior.effect_sd == pytest.approx(pilot.ancova_se) and estimate.effect_sd == 0
    additive = scenarios.load_planning_config(
        {**config.raw, "placebo_response": {**config.raw["placebo_response"], "model": "additive"}}
    )
    cells_add = {c.cell_id: c for c in scenarios.build_cells(additive, pilot)}
    assert cells_add[meta.cell_id].delta == pytest.approx(pilot.ancova_estimate)
    assert cells_add[meta.cell_id].control_change == -1.54


def test_pilot_inputs_missing_what_the_plan_needs_raise_named_errors():
    tables_ = synthetic_pilot()
    config = _config("config/planning_small.yaml")
    no_ancova = tables_["between_arm"][tables_["between_arm"]["test"] != "ancova"]
    with pytest.raises(scenarios.PlanningInputError, match="test=ancova"):
        scenarios.estimate_pilot(tables_["vas"], no_ancova, tables_["subjects"], config)
    with pytest.raises(scenarios.PlanningInputError, match="no column"):
        scenarios.estimate_pilot(tables_["vas"], tables_["between_arm"], None, config)
    with_arm = tables_["vas"].merge(tables_["subjects"][["subject_id", "arm", "stratum"]], on="subject_id")
    pilot = scenarios.estimate_pilot(with_arm, tables_["between_arm"], None, config)  # arm in vas.csv itself
    assert pilot.n_randomised_treated == 10


# ================================================================================= tables and page


@pytest.fixture(scope="module")
def small_plan():
    """The small configuration run in-process (cells, batches in two job layouts, tables, page)."""
    config = _config("config/planning_small.yaml")
    t = synthetic_pilot()
    pilot = scenarios.estimate_pilot(t["vas"], t["between_arm"], t["subjects"], config)
    document = scenarios.scenarios_document(config, pilot, 20131001)
    cells = scenarios.cells_from_document(document)
    strata, props = tuple(document["strata"]), tuple(document["strata_proportions"])

    def rows_of(jobs: int) -> list[pd.DataFrame]:
        batches = []
        for job in range(jobs):
            rows = []
            for index in scenarios.job_cells(len(cells), jobs, job):
                cell = cells[index]
                out = pw.simulate_cell(
                    cell.design(config, strata, props),
                    config.analysis,
                    config.trials,
                    global_seed=20131001,
                    block_trials=config.block_trials,
                    max_values=config.max_values,
                )
                for test in config.analysis.tests:
                    analytic = pw.analytic_for_cell(
                        test,
                        delta=cell.delta,
                        effect_sd=cell.effect_sd,
                        end_sd=cell.end_sd,
                        correlation=cell.correlation,
                        change_sd=cell.change_sd,
                        n_treated=cell.n_treated,
                        n_control=cell.n_control,
                        dropout=cell.dropout_rate,
                        n_strata_model=len(strata),
                        settings=config.analysis,
                    )
                    rows.append(tables.cell_row(cell, test, pw.summarise(out[test]), analytic))
            batches.append(pd.DataFrame(rows, columns=list(tables.POWER_COLUMNS)))
        return batches

    power_3 = tables.power_table(rows_of(3), config)
    power_1 = tables.power_table(rows_of(1), config)
    sizes = tables.sample_size_table(power_3, config, len(strata))
    assurance = tables.assurance_table(power_3)
    return {
        "config": config,
        "pilot": pilot,
        "cells": cells,
        "power": power_3,
        "power_1": power_1,
        "sizes": sizes,
        "assurance": assurance,
        "strata": strata,
        "props": props,
    }


def test_power_table_does_not_depend_on_the_job_layout(small_plan):
    pd.testing.assert_frame_equal(small_plan["power"], small_plan["power_1"])
    power = small_plan["power"]
    assert list(power.columns) == list(tables.POWER_COLUMNS)
    assert (power["mc_se"] == np.sqrt(power["power"] * (1 - power["power"]) / power["trials"])).all()
    with pytest.raises(ValueError, match="cell x test"):
        tables.power_table([power.iloc[:-1]], small_plan["config"])


def test_page_shows_computed_n_per_arm_for_each_placebo_scenario(small_plan):
    config = small_plan["config"]
    report.apply_style("k2trial-planning")
    fig = report.power_curves_figure(
        small_plan["power"], config, dropout="dropout_10pct", variability="pilot_sd", simulated=True
    )
    png = report.figure_bytes(fig, "png", 100, "k2trial-planning")
    svg = report.figure_bytes(fig, "svg", 100, "k2trial-planning")
    assert report.figure_bytes(fig, "svg", 100, "k2trial-planning") == svg
    again = report.power_curves_figure(
        small_plan["power"], config, dropout="dropout_10pct", variability="pilot_sd", simulated=True
    )
    assert report.figure_bytes(again, "png", 100, "k2trial-planning") == png
    assert report.figure_bytes(again, "svg", 100, "k2trial-planning") == svg
    assert b"SIMULATED DATA" in svg and b"<dc:date>" not in svg
    page = report.page_html(
        config=config,
        pilot=small_plan["pilot"],
        cells=small_plan["cells"],
        power=small_plan["power"],
        sizes=small_plan["sizes"],
        assurance=small_plan["assurance"],
        figure_svg=report.inline_svg(svg),
        simulated=True,
        inputs={"vas": {"path": "vas.csv", "sha256": "0" * 64}},
        strata=small_plan["strata"],
        strata_proportions=small_plan["props"],
        global_seed=20131001,
        versions={"code_version": "k2trial 9.9, code 0123456789ab", "analysis_version": "fedcba9876543210"},
    )
    assert "SIMULATED" in page and "Designing the confirmatory trial" in page
    assert "Code version: k2trial 9.9, code 0123456789ab" in page and "Analysis version: fedcba9876543210" in page
    assert "Global seed 20131001" in page and "vas.csv (sha256 " + "0" * 64 + ")" in page
    assert not re.search(r"<script|(?:src|href)\s*=\s*[\"']?(?:https?:|//)", page, re.IGNORECASE)
    sizes = small_plan["sizes"]
    headline = page.split("<h2>What drives")[0]
    for placebo in config.placebos:
        row_text = re.search(rf"<tr><td>{placebo.name} \([^<]*\)</td>(.*?)</tr>", headline).group(1)
        cells_ = re.findall(r'<td class="num">([^<]*)</td>', row_text)
        expected = []
        for effect in [e for e in config.effects if e.source != "prior"]:
            for target in config.targets:
                row = sizes[
                    (sizes["effect"] == effect.name)
                    & (sizes["placebo"] == placebo.name)
                    & (sizes["test"] == "ancova")
                    & (sizes["target"] == target)
                ].iloc[0]
                expected.append(report._n_text(row).replace("<", "&lt;"))
        assert cells_ == expected
    assert "What drives the sample size" in page and "placebo response" in page
    assert (
        report.page_html(
            config=config,
            pilot=small_plan["pilot"],
            cells=small_plan["cells"],
            power=small_plan["power"],
            sizes=sizes,
            assurance=small_plan["assurance"],
            figure_svg="",
            simulated=False,
            inputs={},
            strata=small_plan["strata"],
            strata_proportions=small_plan["props"],
            global_seed=1,
        ).count("SIMULATED:")
        == 0
    )
