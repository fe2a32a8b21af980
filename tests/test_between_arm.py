"""k2trial.analysis.between_arm: the between-arm efficacy table of a randomised design (issue 14 item 2).

A synthetic randomised trial is built here deterministically (fixed-seed numpy Generator): arms MK7 (treated, 12)
and PLACEBO (control, 9), two strata of unequal size, a pain VAS on a 0.5 cm grid (ties and zero changes, one
baseline of 0) and a composite that is the mean of five 0.1 cm readings (multiples of 0.02 with floating-point
noise), clinic visits week 4, 8 and 12 with missed visits. The table's values must equal direct calls of
k2trial.stats.two_sample / k2trial.stats.mmrm on independently prepared inputs; the ANCOVA, rank-sum and
responder rows must equal R (lm + emmeans, wilcox.test(conf.int = TRUE, tol.root = 1e-10), prop.test/fisher.test)
to 1e-6, the MMRM rows nlme::gls + emmeans at the written 6 significant digits, and the Holm adjustment within
each declared family R's p.adjust(..., "holm"). Without Rscript the R tests skip (fail under K2TRIAL_REQUIRE_R=1).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import rscript
from rscript import RSession, r_num, r_str, requires_r

from k2trial.analysis.between_arm import (
    ARTIFACT,
    BetweenArmSettings,
    HolmFamily,
    apply_holm,
    between_arm_table,
)
from k2trial.analysis.vas_cube import VasCube
from k2trial.core import schema
from k2trial.core.errors import ConfigError
from k2trial.stats.mmrm import UNSTRUCTURED, mmrm, rounded_result
from k2trial.stats.two_sample import METHOD_EXACT, METHOD_NORMAL_CC, ancova, rank_sum_test, risk_difference

r_session = rscript.r_session  # the session fixture, bound here so pytest finds it

TREATED, CONTROL = "MK7", "PLACEBO"
VISITS = ("week4", "week8", "week12")
VISIT_WEEKS = {"baseline": 0, "week4": 4, "week8": 8, "week12": 12}
PARAMS = ("pain", "composite")
DECIMALS = {"pain": 1, "composite": 2}
RESPONDER_TESTS = ("responder_30", "responder_50", "responder_2pt")
FAMILIES = (
    HolmFamily("ancova_visits", tests=("ancova",), within=("param",)),
    HolmFamily("week12", tests=("ancova", "rank_sum"), visits=("week12",)),
    HolmFamily("pain_responders", tests=RESPONDER_TESTS, params=("pain",), within=("visit",)),
)


# ======================================================================================== the trial


def make_trial(seed: int = 20240921) -> dict:
    """Cube [subject, param, week 0..12], allocation (subject_id, arm, stratum) and population masks."""
    rng = np.random.default_rng(seed)
    n_t, n_c = 12, 9
    n = n_t + n_c
    ids = np.array([f"R-{i:03d}" for i in range(1, n + 1)], dtype=object)
    arm = np.array([TREATED] * n_t + [CONTROL] * n_c, dtype=object)
    stratum = np.array(["b12_deficiency" if rng.uniform() < 0.4 else "diabetes" for _ in range(n)], dtype=object)
    treated = arm == TREATED
    aval = np.full((n, len(PARAMS), 13), np.nan)
    # Pain on a 0.5 cm grid: ties and zero changes.
    base = np.clip(np.round(rng.normal(8.5, 1.0, n) * 2) / 2, 0, 10)
    base[0] = 0.0  # treated subject with baseline 0: percent change undefined
    aval[:, 0, 0] = base
    for visit, effect in (("week4", 2.0), ("week8", 4.0), ("week12", 5.0)):
        mean = base - 0.5 - effect * treated
        aval[:, 0, VISIT_WEEKS[visit]] = np.clip(np.round(rng.normal(mean, 1.5) * 2) / 2, 0, 10)
    aval[0, 0, [4, 8, 12]] = [0.0, 0.0, 0.5]
    aval[n_t, 0, [4, 8, 12]] = base[n_t]  # control subject unchanged: zero changes
    # Composite: the mean of five readings to 0.1 cm (multiples of 0.02, with floating-point noise).
    readings = np.clip(np.round(rng.normal(6.0, 1.2, (n, 5)), 1), 0, 10)
    aval[:, 1, 0] = readings.mean(axis=1)
    for visit, effect in (("week4", 1.0), ("week8", 2.5), ("week12", 3.0)):
        shift = rng.normal(-0.3 - effect * treated[:, None], 1.0, (n, 5))
        aval[:, 1, VISIT_WEEKS[visit]] = np.clip(np.round(readings + shift, 1), 0, 10).mean(axis=1)
    # Missed visits (a missing visit in each arm and param).
    aval[3, 0, 8] = np.nan
    aval[5, 0, 12] = np.nan
    aval[n_t + 2, 1, 12] = np.nan
    aval[7, 1, 4] = np.nan
    cube = VasCube(ids, PARAMS, aval, dict(VISIT_WEEKS))
    allocation = pd.DataFrame({"subject_id": ids, "arm": arm, "stratum": stratum})
    per_protocol = np.ones(n, dtype=bool)
    per_protocol[[3, 5, n_t + 4]] = False
    return {"cube": cube, "allocation": allocation, "members": {"itt": np.ones(n, bool), "per_protocol": per_protocol}}


def settings(**changes) -> BetweenArmSettings:
    values = dict(
        treated=TREATED,
        control=CONTROL,
        params=PARAMS,
        visits=VISITS,
        decimals=DECIMALS,
        adjust_for_stratum=True,
        mmrm_visits=VISITS,
        families=FAMILIES,
        pain_params=("pain",),
    )
    return BetweenArmSettings(**(values | changes))


TRIAL = make_trial()
SETTINGS = settings()
TABLE = between_arm_table(TRIAL["cube"], TRIAL["allocation"], TRIAL["members"], SETTINGS)


def prepared(population: str, param: str, visit: str) -> dict:
    """Inputs of one row prepared independently of the module: values at the recording precision."""
    cube, allocation = TRIAL["cube"], TRIAL["allocation"]
    mask = TRIAL["members"][population]
    p = PARAMS.index(param)
    d = DECIMALS[param]
    base = np.round(cube.aval[mask, p, 0], d)
    post = np.round(cube.aval[mask, p, VISIT_WEEKS[visit]], d)
    return {
        "base": base,
        "post": post,
        "chg": np.round(post - base, d),
        "arm": allocation["arm"].to_numpy(object)[mask],
        "stratum": allocation["stratum"].to_numpy(object)[mask],
        "subject": allocation["subject_id"].to_numpy(object)[mask],
    }


def row(population: str, param: str, visit: str, test: str) -> pd.Series:
    sel = TABLE[
        (TABLE.population == population) & (TABLE.param == param) & (TABLE.visit == visit) & (TABLE.test == test)
    ]
    assert len(sel) == 1
    return sel.iloc[0]


CELLS = [(pop, param, visit) for pop in ("itt", "per_protocol") for param in PARAMS for visit in VISITS]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# ==================================================================================== shape, schema


def test_columns_order_and_schema_roundtrip(tmp_path) -> None:
    issue = [
        "population", "param", "visit", "test", "n_treated", "n_control", "estimate", "ci_low", "ci_high",
        "p_value", "p_adjusted", "family", "estimate_type", "method",
    ]  # fmt: skip
    assert list(TABLE.columns[: len(issue)]) == issue
    assert list(TABLE.columns) == schema.columns(ARTIFACT)
    path = tmp_path / "efficacy" / "between_arm.csv"
    path.parent.mkdir()
    schema.write_artifact(TABLE, path, ARTIFACT)  # accepts exactly the schema's columns
    back = schema.read_artifact(path, ARTIFACT)
    assert list(back.columns) == list(TABLE.columns)
    for name in TABLE.columns:
        kind = schema.dtypes(ARTIFACT, [name])[name]
        if kind == "float":
            # k2trial.core.io writes floats with 12 significant digits (FLOAT_FORMAT)
            np.testing.assert_allclose(back[name].to_numpy(float), TABLE[name].to_numpy(float), rtol=1e-11)
        elif kind in ("int", "Int64"):
            assert back[name].astype("Int64").equals(TABLE[name].astype("Int64")), name
        else:
            assert back[name].fillna("").tolist() == TABLE[name].fillna("").tolist(), name
    with pytest.raises(Exception, match="between_arm"):
        schema.write_artifact(TABLE.drop(columns=["family"]), path, ARTIFACT)


def test_rows_sorted_complete_and_deterministic() -> None:
    tests = ("ancova", "rank_sum", *RESPONDER_TESTS, "mmrm")
    expected = [(pop, param, visit, test) for pop, param, visit in CELLS for test in tests]
    assert list(TABLE[["population", "param", "visit", "test"]].itertuples(index=False, name=None)) == expected
    again = between_arm_table(TRIAL["cube"], TRIAL["allocation"], TRIAL["members"], SETTINGS)
    pd.testing.assert_frame_equal(again, TABLE)
    # Subject order does not matter (closed forms may differ in the last bits: summation order).
    order = np.random.default_rng(5).permutation(len(TRIAL["allocation"]))
    shuffled = between_arm_table(
        TRIAL["cube"],
        TRIAL["allocation"].iloc[order].reset_index(drop=True),
        {k: v[order] for k, v in TRIAL["members"].items()},
        SETTINGS,
    )
    pd.testing.assert_frame_equal(shuffled, TABLE, check_exact=False, rtol=1e-9, atol=1e-12)


def test_the_fixture_has_what_the_brief_asks() -> None:
    arms = TRIAL["allocation"]["arm"]
    assert (arms == TREATED).sum() != (arms == CONTROL).sum()
    assert TRIAL["allocation"]["stratum"].nunique() == 2
    ranks = TABLE[TABLE.test == "rank_sum"]
    assert METHOD_EXACT in set(ranks.p_method) and METHOD_NORMAL_CC in set(ranks.p_method)  # ties in some cells
    zeros = [np.sum(prepared("itt", p, v)["chg"] == 0) for p in PARAMS for v in VISITS]
    assert sum(zeros) >= 3
    assert (TABLE.n_missing_treated > 0).any() and (TABLE.n_missing_control > 0).any()  # missed visits
    assert (TABLE.n_not_evaluable > 0).any()  # baseline 0
    assert set(TABLE[TABLE.test == "mmrm"].covariance_used) == {UNSTRUCTURED}


# ============================================================================ equal to direct calls


@pytest.mark.parametrize("cell", CELLS, ids=["-".join(c) for c in CELLS])
def test_closed_form_rows_equal_direct_calls(cell) -> None:
    population, param, visit = cell
    x = prepared(population, param, visit)
    arm = x["arm"]
    res = ancova(x["chg"], x["base"], arm, treated=TREATED, control=CONTROL, stratum=x["stratum"])
    got = row(population, param, visit, "ancova")
    for field in ("estimate", "ci_low", "ci_high", "p_value", "se", "df", "lsmean_treated", "lsmean_control"):
        assert _same(got[field], getattr(res, field)), field
    assert got.statistic == res.t and (got.n_treated, got.n_control) == (res.n_treated, res.n_control)
    assert got.n_missing_treated == np.sum(arm == TREATED) - res.n_treated
    assert got.method.startswith("ANCOVA: change ~ arm + baseline + stratum (lm)")

    rs = rank_sum_test(x["chg"][arm == TREATED], x["chg"][arm == CONTROL], decimals=DECIMALS[param])
    got = row(population, param, visit, "rank_sum")
    pairs = [("estimate",) * 2, ("ci_low",) * 2, ("ci_high",) * 2, ("p_value",) * 2, ("statistic",) * 2]
    for ours, theirs in [*pairs, ("ci_level", "ci_level_achieved")]:
        assert _same(got[ours], getattr(rs, theirs)), ours
    assert got.p_method == rs.method and got.method.startswith(f"Wilcoxon rank-sum, {rs.method}")

    scale = 10.0 ** DECIMALS[param]
    for test, kind, threshold in (("responder_30", "pct", 30), ("responder_50", "pct", 50), ("responder_2pt", "pt", 2)):
        counts = []
        for a in (TREATED, CONTROL):
            keep = (arm == a) & ~np.isnan(x["base"]) & ~np.isnan(x["post"])
            b, reduction = np.rint(x["base"][keep] * scale), np.rint((x["base"][keep] - x["post"][keep]) * scale)
            evaluable = b > 0 if kind == "pct" else np.ones(len(b), bool)
            hit = reduction * 100 >= threshold * b if kind == "pct" else reduction >= threshold * scale
            counts.append((int(np.sum(evaluable & hit)), int(evaluable.sum()), int(np.sum(~evaluable))))
        (x_t, n_t, ne_t), (x_c, n_c, ne_c) = counts
        rd = risk_difference(x_t, n_t, x_c, n_c)
        got = row(population, param, visit, test)
        for field in ("estimate", "ci_low", "ci_high", "p_value"):
            assert _same(got[field], getattr(rd, field)), (test, field)
        assert (got.n_treated, got.n_control, got.responders_treated, got.responders_control) == (n_t, n_c, x_t, x_c)
        assert got.n_not_evaluable == ne_t + ne_c
        assert got.estimate_type == "risk_difference" and "Newcombe" in got.method and "Fisher" in got.method


def _mmrm_data(population: str, param: str) -> pd.DataFrame:
    frames = []
    for visit in VISITS:
        x = prepared(population, param, visit)
        frames.append(pd.DataFrame({"subject": x["subject"], "arm": x["arm"], "visit": visit, "chg": x["chg"],
                                    "base": x["base"]}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("population", ["itt", "per_protocol"])
@pytest.mark.parametrize("param", PARAMS)
def test_mmrm_rows_equal_the_rounded_fit(population: str, param: str) -> None:
    fit = rounded_result(mmrm(_mmrm_data(population, param), treated=TREATED, control=CONTROL, visits=list(VISITS)))
    for c in fit.contrasts:
        got = row(population, param, c.visit, "mmrm")
        for field in ("estimate", "ci_low", "ci_high", "p_value", "se", "df", "lsmean_treated", "lsmean_control"):
            assert got[field] == getattr(c, field), field
        assert got.statistic == c.t and (got.n_treated, got.n_control) == (c.n_treated, c.n_control)
        assert got.covariance_used == fit.covariance
        assert got.method.startswith("MMRM: change ~ arm*visit + baseline, unstructured covariance (REML")
        assert "missing at random" in got.method
        # 6 significant digits written
        assert float(f"{got.estimate:.5e}") == got.estimate


def test_long_frame_gives_the_same_table() -> None:
    cube = TRIAL["cube"]
    records = []
    for i, sid in enumerate(cube.subject_ids):
        for p, param in enumerate(cube.params):
            base = cube.aval[i, p, 0]
            for visit, week in VISIT_WEEKS.items():
                value = cube.aval[i, p, week]
                if np.isnan(value):
                    continue
                chg = value - base
                records.append((sid, param, visit, week, value, base, chg, 100 * chg / base if base else np.nan))
    long = pd.DataFrame(records, columns=["subject_id", "param", "visit", "week", "aval", "base", "chg", "pchg"])
    long = long.sample(frac=1.0, random_state=3).reset_index(drop=True)
    table = between_arm_table(long, TRIAL["allocation"], TRIAL["members"], SETTINGS)
    pd.testing.assert_frame_equal(table, TABLE)


# ============================================================================================ Holm


def test_families_select_the_declared_rows() -> None:
    itt = TABLE[TABLE.population == "itt"]
    both = itt[(itt.test == "ancova") & (itt.visit == "week12")]
    assert set(both.family) == {"ancova_visits; week12"}
    assert set(itt[(itt.test == "rank_sum") & (itt.visit == "week4")].family) == {""}
    assert itt[itt.family == ""].p_adjusted.isna().all()
    assert set(itt[(itt.param == "pain") & itt.test.isin(RESPONDER_TESTS)].family) == {"pain_responders"}
    assert set(itt[(itt.param == "composite") & itt.test.isin(RESPONDER_TESTS)].family) == {""}
    assert TABLE[TABLE.test == "mmrm"].family.eq("").all()


def _family_groups(table: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    out = []
    for family in FAMILIES:
        chosen = table[family.selects(table)]
        for _, part in chosen.groupby(["population", *family.within], sort=True):
            out.append((family.name, part.index.to_numpy()))
    return out


@requires_r
def test_holm_within_each_family_equals_r(r_session: RSession) -> None:
    groups = _family_groups(TABLE)
    assert len(groups) == 2 * (2 + 1 + 3)  # per population: ancova_visits x 2 params, week12, pain_responders x 3
    code = (
        "result <- list("
        + ", ".join(f"as.list(p.adjust({r_num(TABLE.p_value.to_numpy(float)[idx])}, 'holm'))" for _, idx in groups)
        + ")"
    )
    refs = r_session.run(code)
    expected = np.full(len(TABLE), np.nan)
    for (_, idx), ref in zip(groups, refs, strict=True):
        expected[idx] = np.fmax(expected[idx], np.asarray(ref, dtype=float))
    np.testing.assert_allclose(TABLE.p_adjusted.to_numpy(float), expected, rtol=1e-14, atol=0, equal_nan=True)


def test_holm_is_nan_aware_and_takes_the_larger_adjusted_p() -> None:
    frame = pd.DataFrame(
        {"population": ["itt"] * 4, "param": ["pain"] * 4, "visit": ["week4", "week8", "week12", "week12"],
         "test": ["ancova", "ancova", "ancova", "rank_sum"], "p_value": [0.01, np.nan, 0.04, 0.02]}
    )  # fmt: skip
    out = apply_holm(frame, [HolmFamily("visits", tests=("ancova",)), HolmFamily("w12", visits=("week12",))])
    np.testing.assert_allclose(out.p_adjusted, [0.02, np.nan, max(0.04, 0.04), 0.04])
    assert out.family.tolist() == ["visits", "visits", "visits; w12", "w12"]


# ========================================================================================= against R


def _r_cell_code(population: str, param: str, visit: str) -> str:
    x = prepared(population, param, visit)
    arm = x["arm"]
    lines = [
        f"d <- data.frame(chg = {r_num(x['chg'])}, base = {r_num(x['base'])},"
        f" arm = factor({r_str(arm)}, levels = c('{CONTROL}', '{TREATED}')), stratum = {r_str(x['stratum'])},"
        " stringsAsFactors = FALSE)",
        "fit <- lm(chg ~ arm + base + stratum, data = d)",
        "emm <- emmeans(fit, ~ arm)",
        "ct <- summary(contrast(emm, list(d = c(-1, 1))), infer = c(TRUE, TRUE), level = 0.95)",
        "s <- summary(emm)",
        f"tx <- d$chg[d$arm == '{TREATED}']; cx <- d$chg[d$arm == '{CONTROL}']",
        "tx <- tx[!is.na(tx)]; cx <- cx[!is.na(cx)]",
        "w <- suppressWarnings(wilcox.test(tx, cx, conf.int = TRUE, tol.root = 1e-10))",
        "resp <- list()",
    ]
    d = DECIMALS[param]
    for test, rule in (
        ("responder_30", "base > 0 & (base - post) * 100 >= 30 * base"),
        ("responder_50", "base > 0 & (base - post) * 100 >= 50 * base"),
        ("responder_2pt", "base - post >= 2 * 10^dec"),
    ):
        evaluable = "base > 0" if test != "responder_2pt" else "rep(TRUE, length(base))"
        lines.append(
            f"dec <- {d}; base <- round({r_num(x['base'])} * 10^dec); post <- round({r_num(x['post'])} * 10^dec)\n"
            f"ok <- !is.na(base) & !is.na(post) & {evaluable}; hit <- ok & {rule}\n"
            f"a <- {r_str(arm)}\n"
            f"x1 <- sum(hit & a == '{TREATED}'); n1 <- sum(ok & a == '{TREATED}')\n"
            f"x2 <- sum(hit & a == '{CONTROL}'); n2 <- sum(ok & a == '{CONTROL}')\n"
            "w1 <- suppressWarnings(prop.test(x1, n1, correct = FALSE))$conf.int\n"
            "w2 <- suppressWarnings(prop.test(x2, n2, correct = FALSE))$conf.int\n"
            "p1 <- x1 / n1; p2 <- x2 / n2\n"
            f"resp[['{test}']] <- list(x1 = x1, n1 = n1, x2 = x2, n2 = n2, estimate = p1 - p2,"
            " low = p1 - p2 - sqrt((p1 - w1[1])^2 + (w2[2] - p2)^2),"
            " high = p1 - p2 + sqrt((w1[2] - p1)^2 + (p2 - w2[1])^2),"
            " p = fisher.test(matrix(c(x1, x2, n1 - x1, n2 - x2), 2))$p.value)"
        )
    lines.append(
        f"out[['{population}|{param}|{visit}']] <- list("
        "ancova = list(n = nobs(fit), estimate = ct$estimate, se = ct$SE, df = ct$df, low = ct$lower.CL,"
        " high = ct$upper.CL, p = ct$p.value, lsm = as.list(s$emmean)),"
        " wilcox = list(W = unname(w$statistic), p = w$p.value, low = w$conf.int[1], high = w$conf.int[2],"
        " estimate = unname(w$estimate), method = w$method, nx = length(tx), ny = length(cx)),"
        " responders = resp)"
    )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def r_cells(r_session: RSession) -> dict[str, dict]:
    r_session.need("emmeans")
    code = "out <- list()\n" + "\n".join(_r_cell_code(*cell) for cell in CELLS) + "\nresult <- out"
    return r_session.run(code, packages=["emmeans"])


#: Largest absolute differences from R seen across the cells (filled by the tests, reported in the last one).
WORST: dict[str, float] = {}


def _diff(key: str, ours: float, ref: float) -> float:
    d = abs(ours - ref)
    WORST[key] = max(WORST.get(key, 0.0), d)
    return d


R_METHOD = {
    "Wilcoxon rank sum exact test": METHOD_EXACT,
    "Wilcoxon rank sum test with continuity correction": METHOD_NORMAL_CC,
}


@requires_r
@pytest.mark.parametrize("cell", CELLS, ids=["-".join(c) for c in CELLS])
def test_ancova_rank_sum_and_responders_equal_r(cell, r_cells: dict[str, dict]) -> None:
    population, param, visit = cell
    ref = r_cells["|".join(cell)]
    a, got = ref["ancova"], row(population, param, visit, "ancova")
    assert got.n_treated + got.n_control == a["n"] and got.df == a["df"]
    for ours, theirs in (("estimate", "estimate"), ("se", "se"), ("ci_low", "low"), ("ci_high", "high"),
                         ("p_value", "p")):  # fmt: skip
        assert _diff("ancova", got[ours], a[theirs]) <= 1e-6, ours
    assert _diff("ancova", got.lsmean_control, a["lsm"][0]) <= 1e-6
    assert _diff("ancova", got.lsmean_treated, a["lsm"][1]) <= 1e-6

    w, got = ref["wilcox"], row(population, param, visit, "rank_sum")
    assert got.p_method == R_METHOD[w["method"]] and (got.n_treated, got.n_control) == (w["nx"], w["ny"])
    for ours, theirs in (("statistic", "W"), ("p_value", "p"), ("ci_low", "low"), ("ci_high", "high")):
        assert _diff("rank_sum", got[ours], w[theirs]) <= 1e-6, ours
    x = prepared(population, param, visit)
    tx, cx = x["chg"][x["arm"] == TREATED], x["chg"][x["arm"] == CONTROL]
    diffs = np.sort(np.subtract.outer(tx[~np.isnan(tx)], cx[~np.isnan(cx)]).ravel())
    total = len(diffs)
    if got.p_method == METHOD_EXACT or total % 2 or diffs[total // 2 - 1] == diffs[total // 2]:
        assert _diff("rank_sum", got.estimate, w["estimate"]) <= 1e-6
    else:  # R's estimate is a root anywhere between the two middle differences; ours is their midpoint
        assert diffs[total // 2 - 1] - 1e-6 <= w["estimate"] <= diffs[total // 2] + 1e-6

    for test, r in ref["responders"].items():
        got = row(population, param, visit, test)
        assert (got.responders_treated, got.n_treated, got.responders_control, got.n_control) == (
            r["x1"], r["n1"], r["x2"], r["n2"],
        )  # fmt: skip
        for ours, theirs in (("estimate", "estimate"), ("ci_low", "low"), ("ci_high", "high"), ("p_value", "p")):
            assert _diff("responders", got[ours], r[theirs]) <= 1e-6, (test, ours)


def _r_mmrm_code() -> str:
    code = ["out <- list()"]
    for population in ("itt", "per_protocol"):
        for param in PARAMS:
            d = _mmrm_data(population, param)
            code.append(
                f"d <- data.frame(subject = {r_str(d.subject)}, arm = factor({r_str(d.arm)},"
                f" levels = c('{CONTROL}', '{TREATED}')), visit = factor({r_str(d.visit)}, levels = {r_str(VISITS)}),"
                f" chg = {r_num(d.chg)}, base = {r_num(d.base)}, stringsAsFactors = FALSE)\n"
                "d$visit_index <- as.integer(d$visit)\n"
                "fit <- gls(chg ~ base + arm * visit, data = d, correlation = corSymm(form = ~ visit_index | subject),"
                " weights = varIdent(form = ~ 1 | visit), method = 'REML', na.action = na.omit,"
                " control = glsControl(opt = 'optim', msTol = 1e-15, tolerance = 1e-12, msMaxIter = 5000))\n"
                "ct <- summary(contrast(emmeans(fit, ~ arm | visit, mode = 'df.error'), list(d = c(-1, 1))),"
                " infer = c(TRUE, TRUE))\n"
                f"out[['{population}|{param}']] <- list(estimate = as.list(ct$estimate), se = as.list(ct$SE),"
                " df = as.list(ct$df), low = as.list(ct$lower.CL), high = as.list(ct$upper.CL),"
                " p = as.list(ct$p.value))"
            )
    code.append("result <- out")
    return "\n".join(code)


@requires_r
def test_mmrm_rows_equal_r_gls(r_session: RSession) -> None:
    """At the written 6 significant digits (R's optimiser tightened): relative to each contrast's scale."""
    r_session.need("nlme", "emmeans")
    refs = r_session.run(_r_mmrm_code(), packages=["nlme", "emmeans"])
    for key, ref in refs.items():
        population, param = key.split("|")
        for v, visit in enumerate(VISITS):
            got = row(population, param, visit, "mmrm")
            assert got.df == ref["df"][v]
            scale = max(abs(ref["estimate"][v]), ref["se"][v])
            for ours, theirs in (("estimate", "estimate"), ("se", "se"), ("ci_low", "low"), ("ci_high", "high")):
                assert _diff("mmrm_relative", got[ours], ref[theirs][v]) / scale <= 1e-5, (key, visit, ours)
            assert _diff("mmrm_p", got.p_value, ref["p"][v]) <= 1e-5 * max(1e-3, ref["p"][v])


# ======================================================================================= degenerate


def test_empty_arm_all_missing_and_one_subject_per_arm_give_nan_with_notes() -> None:
    allocation = TRIAL["allocation"]
    is_t = allocation.arm.to_numpy() == TREATED
    aval = TRIAL["cube"].aval.copy()
    aval[:, 1, 12] = np.nan  # composite: nobody at week 12
    cube = VasCube(TRIAL["cube"].subject_ids, PARAMS, aval, dict(VISIT_WEEKS))
    one_each = np.zeros(len(allocation), bool)
    one_each[[1, len(is_t) - 1]] = True
    members = {"itt": np.ones(len(allocation), bool), "per_protocol": is_t.copy(), "one_each": one_each}
    table = between_arm_table(cube, allocation, members, settings(populations=("itt", "per_protocol", "one_each")))
    assert list(table.columns) == schema.columns(ARTIFACT)

    empty = table[table.population == "per_protocol"]  # no control subject
    assert empty.estimate.isna().all() and empty.p_value.isna().all() and (empty.n_control == 0).all()
    assert empty.note.str.contains("control arm").all()

    gone = table[(table.population == "itt") & (table.param == "composite") & (table.visit == "week12")]
    assert gone.estimate.isna().all() and (gone.note != "").all()
    mm = table[(table.population == "itt") & (table.param == "composite") & (table.test == "mmrm")]
    assert mm.set_index("visit").loc["week12", "note"] == (
        f"no analysable subject in the treated arm ({TREATED}); no analysable subject in the control arm ({CONTROL})"
    )
    assert mm.set_index("visit").loc[["week4", "week8"], "estimate"].notna().all()  # two visits still modelled

    single = table[table.population == "one_each"]
    assert (single.n_treated <= 1).all() and (single.n_control <= 1).all()
    for test in ("ancova", "mmrm"):
        part = single[single.test == test]
        assert part.ci_low.isna().all() and (part.note != "").all(), test
    ranks = single[(single.test == "rank_sum") & (single.n_treated == 1) & (single.n_control == 1)]
    assert len(ranks) == 5  # composite week 12 is missing for everyone
    # R's exact interval of one difference has level 0: kept as R gives it, said in the note.
    assert (ranks.ci_level == 0).all() and ranks.note.str.contains("not achievable").all()


def test_an_mmrm_that_cannot_be_fitted_gives_nan_rows(monkeypatch) -> None:
    single = between_arm_table(
        TRIAL["cube"], TRIAL["allocation"], {"itt": np.isin(np.arange(21), [1, 20])}, settings(populations=("itt",))
    )
    mm = single[single.test == "mmrm"]
    assert (mm.covariance_used == "none").all() and mm.method.str.contains("not fitted").all()
    assert mm.estimate.isna().all() and single.note.ne("").any()

    def breaks(*args, **kwargs):
        raise np.linalg.LinAlgError("Matrix is not positive definite")

    monkeypatch.setattr("k2trial.analysis.between_arm.mmrm", breaks)
    table = between_arm_table(TRIAL["cube"], TRIAL["allocation"], TRIAL["members"], SETTINGS)
    mm = table[table.test == "mmrm"]
    assert len(mm) == 12 and mm.estimate.isna().all()
    assert mm.note.str.contains("MMRM fit failed: Matrix is not positive definite").all()
    others = table[table.test != "mmrm"].reset_index(drop=True)
    pd.testing.assert_frame_equal(others, TABLE[TABLE.test != "mmrm"].reset_index(drop=True))


def test_subjects_outside_the_two_arms_are_not_analysed_and_said() -> None:
    allocation = TRIAL["allocation"].copy()
    allocation.loc[2, "arm"] = None
    table = between_arm_table(TRIAL["cube"], allocation, TRIAL["members"], SETTINGS)
    itt = table[table.population == "itt"]
    assert itt.note.str.contains("1 subject").all()
    assert (itt[itt.test == "ancova"].n_treated <= 11).all()


def test_baseline_zero_is_not_evaluable_for_percent_only() -> None:
    for visit in VISITS:
        for test, expected in (("responder_30", 1), ("responder_50", 1), ("responder_2pt", 0)):
            got = row("itt", "pain", visit, test)
            assert got.n_not_evaluable == expected
            assert ("not evaluable" in got.note) == bool(expected)
    assert "pain scales" in row("itt", "composite", "week8", "responder_30").note
    assert "pain scales" not in row("itt", "pain", "week8", "responder_30").note


def test_without_stratum_adjustment() -> None:
    table = between_arm_table(TRIAL["cube"], TRIAL["allocation"].drop(columns="stratum"), TRIAL["members"],
                              settings(adjust_for_stratum=False))  # fmt: skip
    got = table[(table.population == "itt") & (table.param == "pain") & (table.visit == "week8")]
    got = got[got.test == "ancova"].iloc[0]
    x = prepared("itt", "pain", "week8")
    assert got.estimate == ancova(x["chg"], x["base"], x["arm"], treated=TREATED, control=CONTROL).estimate
    assert got.method.startswith("ANCOVA: change ~ arm + baseline (lm)")
    with pytest.raises(ConfigError, match="stratum"):
        between_arm_table(TRIAL["cube"], TRIAL["allocation"].drop(columns="stratum"), TRIAL["members"], SETTINGS)


# ========================================================================================== settings


def test_settings_from_config() -> None:
    efficacy = {
        "confidence": 0.95,
        "continuity_correction": True,
        "recording_decimals": {"symptom": 1, "composite": 2},
        "responders": {"percent_reduction": [30, 50], "point_reduction": [2], "pain_params": ["pain"]},
        "between_arm": {
            "params": ["pain", "composite"],
            "visits": ["week4", "week8", "week12"],
            "adjust_for_stratum": True,
            "mmrm": {"covariance": "unstructured"},
            "holm_families": {
                "ancova_visits": {"tests": ["ancova"], "within": ["param"]},
                "week12": {"tests": ["ancova", "rank_sum"], "visits": ["week12"]},
                "pain_responders": {"tests": list(RESPONDER_TESTS), "params": ["pain"], "within": ["visit"]},
            },
        },
    }
    arms = {"codes": ["MK7", "PLACEBO"], "control": "PLACEBO", "labels": {"MK7": "MK-7", "PLACEBO": "Placebo"}}
    parsed = BetweenArmSettings.from_config(efficacy, arms, params_known=("pain", "composite"))
    assert parsed == SETTINGS
    assert parsed.tests == ("ancova", "rank_sum", *RESPONDER_TESTS, "mmrm")
    bad_family = {**efficacy["between_arm"], "holm_families": {"x": {"tests": ["responder_40"]}}}
    with pytest.raises(ConfigError, match="responder_40"):
        BetweenArmSettings.from_config({**efficacy, "between_arm": bad_family}, arms)
    with pytest.raises(ConfigError, match="within"):
        HolmFamily("x", within=("population",))
    with pytest.raises(ConfigError, match="two codes"):
        BetweenArmSettings.from_config(efficacy, {"codes": ["MK7"], "control": "PLACEBO"})
    with pytest.raises(ConfigError, match="as treated"):
        settings(populations=("itt", "safety"))
    with pytest.raises(ConfigError, match="post-baseline"):
        settings(visits=("baseline", "week4"))
