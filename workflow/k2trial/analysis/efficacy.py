"""Efficacy analysis of the VAS diary: paired tests, Friedman, descriptives, responders, group comparisons,
mixed models and weekly trajectories.

Conventions (CLINICAL.md, efficacy): VAS in cm on a 10 cm line (0 = no symptom). Change = later visit minus
earlier visit, so a negative change is an improvement. Every analysis uses the complete cases of the
visits it compares (per comparison, not per subject over all visits). Values and their differences are
compared and ranked at the recording precision (`recording_decimals`: 1 decimal for a symptom read in mm,
2 for the mean of five such symptoms). The study is single-arm and open-label: a within-patient change is
not a treatment effect (regression to the mean, placebo response).

Data layout: `VasCube` holds aval as a dense array [subject, param, week] (NaN = missing), built once from
vas.csv; every analysis slices it with boolean population masks, so nothing loops over subjects.
Populations come from `k2trial.analysis.groups`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from k2trial.core.errors import InputDataError, Problem
from k2trial.analysis.groups import POPULATIONS
from k2trial.stats.paired import (
    PAIRED_DETAIL_COLUMNS,
    PAIRED_TEST_COLUMNS,
    holm,
    paired_comparison_table,
    rank_sum_test,
)

SYMPTOMS = ("tingling", "numbness", "weakness", "fatigue", "cramps")
PARAMS = (*SYMPTOMS, "composite")
TESTS = ("wilcoxon", "paired_t")
FAMILY_VISIT_CONTRASTS = "visit_contrasts"

PAIRED_TESTS_COLUMNS = [
    "population",
    "param",
    "visit_from",
    "visit_to",
    *PAIRED_TEST_COLUMNS[:6],
    "p_adjusted",
    "family",
    *PAIRED_TEST_COLUMNS[6:],
    *PAIRED_DETAIL_COLUMNS,
    "p_holm_visit_contrasts",
    "p_holm_symptoms",
]
FRIEDMAN_COLUMNS = ["population", "param", "n", "chi2", "df", "p_value", "kendall_w", "visits"]
SUMMARY_COLUMNS = ["n", "mean", "sd", "median", "q1", "q3", "min", "max"]
DESCRIPTIVES_COLUMNS = ["population", "param", "visit", "week", "variable", *SUMMARY_COLUMNS]
WEEKLY_COLUMNS = ["population", "param", "visit", "week", "n", "median", "q1", "q3", "mean"]
RESPONDER_COLUMNS = [
    "population",
    "param",
    "visit",
    "criterion",
    "threshold",
    "unit",
    "responders",
    "n",
    "n_not_evaluable",
    "percent",
    "ci_low",
    "ci_high",
    "caveat",
]
GROUP_COMPARISON_COLUMNS = [
    "population",
    "param",
    "visit",
    "group_a",
    "group_b",
    "n_a",
    "n_b",
    "test",
    "statistic",
    "statistic_name",
    "p_value",
    "p_method",
    "estimate_type",
    "estimate",
    "ci_low",
    "ci_high",
    "ci_level",
    "effect_size_type",
    "effect_size",
    "es_ci_low",
    "es_ci_high",
]
MODEL_COLUMNS = [
    "model",
    "term",
    "estimate",
    "se",
    "statistic_name",
    "statistic",
    "df1",
    "df2",
    "p_value",
    "p_value_gg",
    "epsilon_gg",
    "ci_low",
    "ci_high",
    "effect_size_type",
    "effect_size",
    "n_subjects",
    "n_obs",
    "method",
    "caveat",
]
#: IMMPACT/Farrar responder thresholds come from pain scales (CLINICAL.md): said in every row that is not pain.
MCID_CAVEAT = "threshold validated for pain scales (IMMPACT/Farrar); applied here by analogy"


# ------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class EfficacySettings:
    """The `efficacy` section of config/config.yaml (defaults = the shipped config)."""

    confidence: float = 0.95
    exact_max_n: int = 50
    zero_method: str = "wilcox"
    continuity_correction: bool = True
    symptom_decimals: int = 1
    composite_decimals: int = 2
    visits: tuple[str, ...] = ("baseline", "week4", "week8")
    comparisons: tuple[tuple[str, str], ...] = (("baseline", "week4"), ("baseline", "week8"), ("week4", "week8"))
    holm_visit_contrasts: bool = True
    holm_symptoms_comparison: tuple[str, str] | None = ("baseline", "week8")
    responder_visit: str = "week8"
    responder_percent: tuple[float, ...] = (30.0, 50.0)
    responder_points: tuple[float, ...] = (2.0,)
    group_comparison_visits: tuple[str, ...] = ("week4", "week8")
    model_param: str = "composite"
    model_visits: tuple[str, ...] = ("baseline", "week4", "week8")
    model_reml: bool = True
    model_statsmodels_max_subjects: int = 5000
    extra: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def from_config(cls, section: Mapping) -> EfficacySettings:
        decimals = section.get("recording_decimals", {})
        families = section.get("holm_families", {})
        symptoms_comparison = families.get("symptoms_comparison", ["baseline", "week8"])
        responders = section.get("responders", {})
        model = section.get("mixed_model", {})
        if section.get("zero_method", "wilcox") != "wilcox":
            raise ValueError("only zero_method 'wilcox' (zero differences dropped) is implemented")
        return cls(
            confidence=float(section.get("confidence", 0.95)),
            exact_max_n=int(section.get("exact_max_n", 50)),
            zero_method="wilcox",
            continuity_correction=bool(section.get("continuity_correction", True)),
            symptom_decimals=int(decimals.get("symptom", 1)),
            composite_decimals=int(decimals.get("composite", 2)),
            visits=tuple(section.get("visits", cls.visits)),
            comparisons=tuple((str(a), str(b)) for a, b in section.get("comparisons", cls.comparisons)),
            holm_visit_contrasts=bool(families.get("visit_contrasts", True)),
            holm_symptoms_comparison=tuple(symptoms_comparison) if symptoms_comparison else None,
            responder_visit=str(responders.get("visit", "week8")),
            responder_percent=tuple(float(v) for v in responders.get("percent_reduction", (30, 50))),
            responder_points=tuple(float(v) for v in responders.get("point_reduction", (2,))),
            group_comparison_visits=tuple(section.get("group_comparison_visits", cls.group_comparison_visits)),
            model_param=str(model.get("param", "composite")),
            model_visits=tuple(model.get("visits", cls.model_visits)),
            model_reml=bool(model.get("reml", True)),
            model_statsmodels_max_subjects=int(model.get("statsmodels_max_subjects", 5000)),
        )

    def decimals(self, param: str) -> int:
        """Recording precision (decimals) of a param's values and differences."""
        return self.composite_decimals if param == "composite" else self.symptom_decimals

    @property
    def symptoms_family(self) -> str | None:
        """Name of the symptoms family, e.g. symptoms_week8 (None when switched off)."""
        if not self.holm_symptoms_comparison:
            return None
        start, end = self.holm_symptoms_comparison
        return f"symptoms_{end}" if start == "baseline" else f"symptoms_{start}_{end}"


# -------------------------------------------------------------------------------------- the VAS cube


def visit_week(visit: str) -> int:
    """Study week of an analysis visit code: baseline -> 0, weekN -> N."""
    if visit == "baseline":
        return 0
    match = re.fullmatch(r"week(\d+)", visit)
    if not match:
        raise ValueError(f"not an analysis visit code: {visit!r} (expected baseline or weekN)")
    return int(match.group(1))


def visit_code(week: int) -> str:
    return "baseline" if week == 0 else f"week{week}"


@dataclass(frozen=True)
class VasCube:
    """aval (cm) as [subject, param, week]; subjects in the order given, params PARAMS, weeks 0..max."""

    subject_ids: np.ndarray
    params: tuple[str, ...]
    aval: np.ndarray

    @property
    def weeks(self) -> np.ndarray:
        return np.arange(self.aval.shape[2])

    def param_index(self, param: str) -> int:
        return self.params.index(param)

    def values(self, members: np.ndarray, param: str, visit: str) -> np.ndarray:
        """aval of the members at one visit (NaN when missing or the visit is beyond the data)."""
        week = visit_week(visit)
        if week >= self.aval.shape[2]:
            return np.full(int(np.count_nonzero(members)), np.nan)
        return self.aval[members, self.param_index(param), week]


def _problem(file_label: str, row: int | None, column: str | None, value, message: str, rule: str) -> InputDataError:
    return InputDataError(
        [Problem(file_label, row, column, None if value is None else str(value), rule, "error", message)]
    )


def build_vas_cube(vas: pd.DataFrame, subject_ids: Sequence[str], *, file_label: str = "vas.csv") -> VasCube:
    """Dense aval array from the long vas table (columns subject_id, param, visit, week, aval).

    Subjects not in `subject_ids`, unknown params, visit codes that disagree with their week and duplicate
    (subject, param, week) records raise InputDataError naming the row (header = row 1).
    """
    missing = [c for c in ("subject_id", "param", "visit", "week", "aval") if c not in vas.columns]
    if missing:
        raise _problem(file_label, None, missing[0], None, f"required column(s) missing: {missing}", "required_column")
    subject_ids = np.asarray(subject_ids, dtype=object)
    subjects = _codes(vas["subject_id"], subject_ids)
    bad = np.flatnonzero(subjects < 0)
    if len(bad):
        i = bad[0]
        raise _problem(
            file_label, int(i) + 2, "subject_id", vas["subject_id"].iloc[i],
            "subject not in subjects.csv / groups assignment", "known_subject",
        )  # fmt: skip
    params = _codes(vas["param"], np.asarray(PARAMS, dtype=object)).astype(np.int32)
    bad = np.flatnonzero(params < 0)
    if len(bad):
        i = bad[0]
        raise _problem(file_label, int(i) + 2, "param", vas["param"].iloc[i], f"param not one of {PARAMS}", "param")
    weeks = pd.to_numeric(vas["week"], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(weeks) | (weeks < 0) | (weeks != np.round(weeks)))
    if len(bad):
        i = bad[0]
        raise _problem(file_label, int(i) + 2, "week", vas["week"].iloc[i], "week must be 0, 1, 2, ...", "week")
    weeks = weeks.astype(np.int32)
    # Each distinct (visit, week) pair once: the visit code must be the week's (baseline = 0, weekN = N).
    visit_codes, visit_labels = pd.factorize(vas["visit"])
    span = int(weeks.max(initial=0)) + 1
    for key in np.unique(visit_codes.astype(np.int32) * span + weeks):
        code, week = divmod(int(key), span)
        visit = str(visit_labels[code]) if code >= 0 else ""
        if not re.fullmatch(r"baseline|week\d+", visit) or visit_week(visit) != week:
            row = int(np.flatnonzero((visit_codes == code) & (weeks == week))[0]) + 2
            raise _problem(file_label, row, "visit", visit, f"visit code does not match week {week}", "visit_week")
    del visit_codes
    n_weeks = span if len(weeks) else 1
    # One flat cell index per record (int64: 100,000 subjects x 6 params x 9 weeks fits easily); the
    # intermediates are freed as soon as possible because vas.csv has millions of rows.
    key = subjects * (len(PARAMS) * n_weeks)
    del subjects
    key += params * n_weeks
    key += weeks
    del params, weeks
    counts = np.bincount(key, minlength=len(subject_ids) * len(PARAMS) * n_weeks)
    if counts.max(initial=0) > 1:
        dup_key = int(np.flatnonzero(counts > 1)[0])
        rows = np.flatnonzero(key == dup_key)
        raise _problem(
            file_label, int(rows[1]) + 2, "subject_id", vas["subject_id"].iloc[rows[1]],
            f"duplicate record of (subject, param, week) (first at row {int(rows[0]) + 2})", "unique_key",
        )  # fmt: skip
    del counts
    cube = np.full((len(subject_ids), len(PARAMS), n_weeks), np.nan)
    cube.reshape(-1)[key] = pd.to_numeric(vas["aval"], errors="coerce").to_numpy(dtype=float)
    return VasCube(subject_ids, PARAMS, cube)


def _codes(values: pd.Series, categories: np.ndarray) -> np.ndarray:
    """Position of each value in `categories` (-1 when absent), vectorised, cheap for categoricals."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        lookup = pd.Index(categories).get_indexer(values.cat.categories.astype(str))
        codes = values.cat.codes.to_numpy()
        return np.where(codes >= 0, lookup[np.maximum(codes, 0)], -1).astype(np.int64)
    return pd.Index(categories).get_indexer(values.astype(str)).astype(np.int64)


def present_params(cube: VasCube) -> tuple[str, ...]:
    """Params with at least one value, in PARAMS order."""
    has = ~np.isnan(cube.aval).all(axis=(0, 2))
    return tuple(p for p, h in zip(cube.params, has, strict=True) if h)


# ------------------------------------------------------------------------------------- paired tests


def paired_tests(cube: VasCube, members: Mapping[str, np.ndarray], settings: EfficacySettings) -> pd.DataFrame:
    """Wilcoxon and paired t for every population x param x comparison (PAIRED_TESTS_COLUMNS).

    Complete cases per comparison. Holm within the named families: `visit_contrasts` (the configured
    comparisons of one population, param and test) and `symptoms_<visit>` (the five symptoms for one
    comparison, within one population and test). A row in both families carries both names in `family`,
    both adjusted p's in p_holm_*, and the larger (more conservative) of the two in p_adjusted.
    """
    parts = []
    for population in POPULATIONS:
        mask = members[population]
        for param in present_params(cube):
            for visit_from, visit_to in settings.comparisons:
                table = paired_comparison_table(
                    cube.values(mask, param, visit_from),
                    cube.values(mask, param, visit_to),
                    decimals=settings.decimals(param),
                    exact_max_n=settings.exact_max_n,
                    confidence=settings.confidence,
                    continuity=settings.continuity_correction,
                )
                table.insert(0, "visit_to", visit_to)
                table.insert(0, "visit_from", visit_from)
                table.insert(0, "param", param)
                table.insert(0, "population", population)
                parts.append(table)
    out = pd.concat(parts, ignore_index=True)
    out["p_holm_visit_contrasts"] = np.nan
    out["p_holm_symptoms"] = np.nan
    if settings.holm_visit_contrasts:
        out["p_holm_visit_contrasts"] = out.groupby(["population", "param", "test"], sort=False)["p_value"].transform(
            holm
        )
    family_symptoms = settings.symptoms_family
    in_symptoms = np.zeros(len(out), dtype=bool)
    if family_symptoms:
        start, end = settings.holm_symptoms_comparison
        in_symptoms = (out["param"].isin(SYMPTOMS) & (out["visit_from"] == start) & (out["visit_to"] == end)).to_numpy()
        chosen = out[in_symptoms]
        out.loc[in_symptoms, "p_holm_symptoms"] = chosen.groupby(["population", "test"], sort=False)[
            "p_value"
        ].transform(holm)
    family = pd.Series(FAMILY_VISIT_CONTRASTS if settings.holm_visit_contrasts else "", index=out.index, dtype=object)
    if family_symptoms:
        family[in_symptoms] = [f"{f}; {family_symptoms}" if f else family_symptoms for f in family[in_symptoms]]
    out["family"] = family
    out["p_adjusted"] = np.fmax(out["p_holm_visit_contrasts"].to_numpy(), out["p_holm_symptoms"].to_numpy())
    return _sorted(out, settings)[PAIRED_TESTS_COLUMNS]


def _sorted(frame: pd.DataFrame, settings: EfficacySettings) -> pd.DataFrame:
    """Deterministic order: population, param, comparison (config order), test."""
    keys = pd.DataFrame(
        {
            "population": frame["population"].map({p: i for i, p in enumerate(POPULATIONS)}),
            "param": frame["param"].map({p: i for i, p in enumerate(PARAMS)}),
            "comparison": [
                settings.comparisons.index((a, b)) for a, b in zip(frame["visit_from"], frame["visit_to"], strict=True)
            ],
            "test": frame["test"].map({t: i for i, t in enumerate(TESTS)}),
        }
    )
    order = np.lexsort([keys[c].to_numpy() for c in reversed(keys.columns)])
    return frame.iloc[order].reset_index(drop=True)


# ------------------------------------------------------------------------------------------ Friedman


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
        complete = np.round(complete, decimals)
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


def friedman_table(cube: VasCube, members: Mapping[str, np.ndarray], settings: EfficacySettings) -> pd.DataFrame:
    """Friedman test over the configured visits per population and param (FRIEDMAN_COLUMNS)."""
    rows = []
    visits = ",".join(settings.visits)
    for population in POPULATIONS:
        mask = members[population]
        for param in present_params(cube):
            values = np.column_stack([cube.values(mask, param, v) for v in settings.visits])
            n, chi2, df, p, w = friedman_test(values, settings.decimals(param))
            rows.append((population, param, n, chi2, df, p, w, visits))
    return pd.DataFrame(rows, columns=FRIEDMAN_COLUMNS)


# ---------------------------------------------------------------------------- descriptives, weekly


def _summaries(values: np.ndarray) -> dict[str, np.ndarray]:
    """n, mean, SD (n - 1), median, Q1, Q3 (linear interpolation, R type 7), min, max along axis 0."""
    n = np.sum(~np.isnan(values), axis=0)
    if len(values) == 0:
        empty = np.full(values.shape[1:], np.nan)
        return {"n": n, **{name: empty for name in SUMMARY_COLUMNS[1:]}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-missing slices give NaN, as wanted
        mean = np.nanmean(values, axis=0)
        sd = np.where(n >= 2, np.nanstd(values, axis=0, ddof=1), np.nan)
        q1, median, q3 = np.nanquantile(values, [0.25, 0.5, 0.75], axis=0)
        low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    return {"n": n, "mean": mean, "sd": sd, "median": median, "q1": q1, "q3": q3, "min": low, "max": high}


def descriptives_table(cube: VasCube, members: Mapping[str, np.ndarray], settings: EfficacySettings) -> pd.DataFrame:
    """n, mean, SD, median, Q1, Q3, min, max of aval and of chg (= aval - baseline) per population, param,
    visit (DESCRIPTIVES_COLUMNS; `variable` is aval or chg; chg only after baseline)."""
    params = present_params(cube)
    rows = []
    for population in POPULATIONS:
        mask = members[population]
        aval = np.stack([np.column_stack([cube.values(mask, p, v) for v in settings.visits]) for p in params], axis=1)
        baseline = np.stack([cube.values(mask, p, "baseline") for p in params], axis=1)[:, :, None]
        for variable, values in (("aval", aval), ("chg", aval - baseline)):
            summary = _summaries(values)
            for i, param in enumerate(params):
                for j, visit in enumerate(settings.visits):
                    if variable == "chg" and visit == "baseline":
                        continue
                    stats_row = [summary[s][i, j] for s in SUMMARY_COLUMNS]
                    rows.append((population, param, visit, visit_week(visit), variable, *stats_row))
    out = pd.DataFrame(rows, columns=DESCRIPTIVES_COLUMNS)
    out["n"] = out["n"].astype("int64")
    order = np.lexsort(
        [
            out["variable"].map({"aval": 0, "chg": 1}).to_numpy(),
            out["week"].to_numpy(),
            out["param"].map({p: i for i, p in enumerate(PARAMS)}).to_numpy(),
            out["population"].map({p: i for i, p in enumerate(POPULATIONS)}).to_numpy(),
        ]
    )
    return out.iloc[order].reset_index(drop=True)


def weekly_table(cube: VasCube, members: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Median, Q1, Q3, mean and n of aval by diary week per population and param (WEEKLY_COLUMNS)."""
    params = present_params(cube)
    idx = [cube.param_index(p) for p in params]
    rows = []
    for population in POPULATIONS:
        summary = _summaries(cube.aval[members[population]][:, idx, :])
        for i, param in enumerate(params):
            for week in cube.weeks:
                rows.append(
                    (
                        population, param, visit_code(int(week)), int(week), int(summary["n"][i, week]),
                        summary["median"][i, week], summary["q1"][i, week], summary["q3"][i, week],
                        summary["mean"][i, week],
                    )
                )  # fmt: skip
    return pd.DataFrame(rows, columns=WEEKLY_COLUMNS)


# ------------------------------------------------------------------------------------------ responders


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


def responder_counts(
    baseline: np.ndarray, post: np.ndarray, decimals: int, *, percent: float | None = None, points: float | None = None
) -> tuple[int, int, int]:
    """(responders, n evaluable, n not evaluable) for a reduction of >= `percent` % or >= `points` cm.

    Complete pairs only. Compared exactly at the recording precision (integers in units of 10^-decimals),
    so a fall from 10.0 to 7.0 is a 30 % responder. Percent change is undefined when baseline is 0: those
    subjects are not evaluable for a percent criterion.
    """
    complete = ~(np.isnan(baseline) | np.isnan(post))
    scale = 10.0**decimals
    base = np.rint(baseline[complete] * scale)
    reduction = base - np.rint(post[complete] * scale)
    if percent is not None:
        evaluable = base > 0
        responders = evaluable & (reduction * 100.0 >= percent * base)
    else:
        evaluable = np.ones(len(base), dtype=bool)
        responders = reduction >= np.rint(points * scale)
    n = int(evaluable.sum())
    return int(responders.sum()), n, int(len(base) - n)


def responders_table(cube: VasCube, members: Mapping[str, np.ndarray], settings: EfficacySettings) -> pd.DataFrame:
    """Responders at the responder visit per population, param and criterion, with Clopper-Pearson CI in %."""
    criteria = [(f"pct_reduction_ge_{v:g}", v, "percent") for v in settings.responder_percent]
    criteria += [(f"point_reduction_ge_{v:g}", v, "cm") for v in settings.responder_points]
    rows = []
    for population in POPULATIONS:
        mask = members[population]
        for param in present_params(cube):
            base = cube.values(mask, param, "baseline")
            post = cube.values(mask, param, settings.responder_visit)
            for name, threshold, unit in criteria:
                kwargs = {"percent": threshold} if unit == "percent" else {"points": threshold}
                responders, n, not_evaluable = responder_counts(base, post, settings.decimals(param), **kwargs)
                caveat = "" if param == "cramps" else MCID_CAVEAT
                rows.append(
                    [population, param, settings.responder_visit, name, threshold, unit, responders, n, not_evaluable]
                    + [math.nan, math.nan, math.nan, caveat]
                )
    out = pd.DataFrame(rows, columns=RESPONDER_COLUMNS)
    low, high = clopper_pearson(out["responders"], out["n"], settings.confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["percent"] = np.where(out["n"] > 0, 100.0 * out["responders"] / out["n"].where(out["n"] > 0), np.nan)
    out["ci_low"] = 100.0 * low
    out["ci_high"] = 100.0 * high
    return out


# ------------------------------------------------------------------------------- group comparisons


def group_comparison_table(
    cube: VasCube, members: Mapping[str, np.ndarray], settings: EfficacySettings
) -> pd.DataFrame:
    """Change from baseline, moderate vs severe (efficacy set): Wilcoxon-Mann-Whitney, HL shift, rank-biserial.

    estimate = HL median of (moderate change - severe change); rank-biserial > 0 when the moderate group's
    change tends to be larger (less improvement). No multiplicity adjustment: exploratory.
    """
    rows = []
    for param in present_params(cube):
        for visit in settings.group_comparison_visits:
            changes = {}
            for group in ("moderate", "severe"):
                mask = members[group]
                changes[group] = cube.values(mask, param, visit) - cube.values(mask, param, "baseline")
            result = rank_sum_test(
                changes["moderate"],
                changes["severe"],
                decimals=settings.decimals(param),
                exact_max_n=settings.exact_max_n,
                confidence=settings.confidence,
                continuity=settings.continuity_correction,
            )
            rows.append(
                [
                    "all", param, visit, "moderate", "severe", result.n_x, result.n_y, "mann_whitney",
                    result.statistic, "W (U of moderate)", result.p_value, result.p_method, "hl_shift",
                    result.estimate, result.ci_low, result.ci_high, result.ci_level, "rank_biserial",
                    result.rank_biserial, result.rb_ci_low, result.rb_ci_high,
                ]
            )  # fmt: skip
    return pd.DataFrame(rows, columns=GROUP_COMPARISON_COLUMNS)


# ------------------------------------------------------------------------------------ mixed models


def model_data(cube: VasCube, members: Mapping[str, np.ndarray], settings: EfficacySettings) -> pd.DataFrame:
    """Long table subject_id, severity_group, visit (ordered categorical), aval for the models' param and
    visits, efficacy-set subjects with a severity group, observed values only."""
    frames = []
    for group in ("moderate", "severe"):
        mask = members[group]
        ids = cube.subject_ids[mask]
        for visit in settings.model_visits:
            frames.append(
                pd.DataFrame(
                    {
                        "subject_id": ids,
                        "severity_group": group,
                        "visit": visit,
                        "aval": cube.values(mask, settings.model_param, visit),
                    }
                )
            )
    data = pd.concat(frames, ignore_index=True).dropna(subset=["aval"])
    data["visit"] = pd.Categorical(data["visit"], categories=list(settings.model_visits), ordered=True)
    data["severity_group"] = pd.Categorical(data["severity_group"], categories=["moderate", "severe"])
    return data.sort_values(["subject_id", "visit"], kind="stable").reset_index(drop=True)


def _model_row(**values) -> dict:
    row = dict.fromkeys(MODEL_COLUMNS, math.nan)
    row.update(values)
    return row


def mixed_anova_rows(data: pd.DataFrame) -> list[dict]:
    """Mixed ANOVA severity group (between) x visit (within) with pingouin 0.7, complete cases only."""
    import pingouin  # heavy import: only here

    visits = data["visit"].cat.categories
    per_subject = data.groupby("subject_id", observed=True)["visit"].nunique()
    complete = data[data["subject_id"].isin(per_subject.index[per_subject == len(visits)])].copy()
    method = "pingouin 0.7 mixed_anova (type III SS; one between, one within factor); complete cases"
    n_subjects = complete["subject_id"].nunique()
    groups = complete.groupby("severity_group", observed=True)["subject_id"].nunique()
    terms = {"severity_group": "severity_group", "visit": "visit", "Interaction": "severity_group:visit"}
    if len(groups) < 2 or groups.min() < 2:
        caveat = "not estimable: fewer than 2 complete subjects in a severity group"
        return [
            _model_row(model="mixed_anova", term=t, n_subjects=n_subjects, method=method, caveat=caveat)
            for t in terms.values()
        ]
    complete["visit"] = complete["visit"].astype(str)
    complete["severity_group"] = complete["severity_group"].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pingouin 0.7 uses pandas API deprecated in pandas 3
        warnings.simplefilter("ignore", DeprecationWarning)
        table = pingouin.mixed_anova(
            data=complete, dv="aval", within="visit", between="severity_group", subject="subject_id", correction=True
        )
    caveat = (
        "F tests assume sphericity for the within factor; p_value_gg is Greenhouse-Geisser corrected; "
        "subjects with a missing visit are excluded"
    )
    rows = []
    for _, r in table.iterrows():
        rows.append(
            _model_row(
                model="mixed_anova",
                term=terms.get(str(r["Source"]), str(r["Source"])),
                statistic_name="F",
                statistic=float(r["F"]),
                df1=float(r["DF1"]),
                df2=float(r["DF2"]),
                p_value=float(r["p_unc"]),
                p_value_gg=float(r["p_GG_corr"]) if "p_GG_corr" in r and pd.notna(r["p_GG_corr"]) else math.nan,
                epsilon_gg=float(r["eps"]) if pd.notna(r.get("eps")) else math.nan,
                effect_size_type="partial_eta_squared",
                effect_size=float(r["np2"]),
                n_subjects=n_subjects,
                n_obs=len(complete),
                method=method,
                caveat=caveat,
            )
        )
    return rows


@dataclass(frozen=True)
class RandomInterceptFit:
    """A fitted random-intercept linear mixed model (see `fit_random_intercept`)."""

    params: np.ndarray  # fixed effects, in the order of the design columns
    cov_params: np.ndarray  # model-based covariance of the fixed effects, sigma2 (X' W X)^-1
    subject_variance: float  # tau2, variance of the subject intercepts
    residual_variance: float  # sigma2
    loglik: float  # maximised (restricted) log-likelihood, up to the constant -(N - p) log(2 pi) / 2


def fit_random_intercept(
    y: np.ndarray, exog: np.ndarray, groups: np.ndarray, *, reml: bool = True
) -> RandomInterceptFit:
    """Fit y = X beta + b_subject + e, b ~ N(0, tau2), e ~ N(0, sigma2), by REML (or ML), vectorised.

    Per subject V_i = sigma2 (I + gamma J) has the closed-form inverse (I - c_i J) / sigma2 with
    c_i = gamma / (1 + n_i gamma), gamma = tau2 / sigma2. Profiling beta (GLS) and sigma2 out leaves a
    likelihood in gamma alone, evaluated in O(N p^2) with per-subject sums; its maximum is the root of the
    analytic score, solved to machine precision (tau2 = 0 when the likelihood falls from the boundary).
    Fixed-effects covariance: sigma2 (X' W X)^-1, the model-based GLS covariance that R (nlme, lme4) and
    SAS PROC MIXED report; statsmodels' observed-information SEs differ in the 4th-5th digit.
    groups: integer codes 0..G-1 (subjects). Raises ValueError when X is rank deficient.
    """
    from scipy import optimize

    y = np.asarray(y, dtype=float)
    exog = np.asarray(exog, dtype=float)
    n_obs, p = exog.shape
    if np.linalg.matrix_rank(exog) < p:
        raise ValueError("design matrix is rank deficient")
    codes = np.asarray(groups, dtype=np.int64)
    n_groups = int(codes.max()) + 1
    sizes = np.bincount(codes, minlength=n_groups).astype(float)
    sums_x = np.zeros((n_groups, p))
    for j in range(p):
        sums_x[:, j] = np.bincount(codes, weights=exog[:, j], minlength=n_groups)
    sums_y = np.bincount(codes, weights=y, minlength=n_groups)
    xtx, xty = exog.T @ exog, exog.T @ y
    dof = n_obs - p if reml else n_obs

    def profile(gamma: float) -> tuple[np.ndarray, np.ndarray, float]:
        c = gamma / (1.0 + sizes * gamma)
        xwx = xtx - (sums_x * c[:, None]).T @ sums_x
        beta = np.linalg.solve(xwx, xty - sums_x.T @ (c * sums_y))
        residual = y - exog @ beta
        per_subject = np.bincount(codes, weights=residual, minlength=n_groups)
        return xwx, beta, float(residual @ residual - np.sum(c * per_subject**2))

    def negative_loglik(gamma: float) -> float:
        xwx, _, quad = profile(gamma)
        value = dof * math.log(quad / dof) + float(np.sum(np.log1p(sizes * gamma))) + dof
        if reml:
            value += np.linalg.slogdet(xwx)[1]
        return 0.5 * value

    def score(gamma: float) -> float:
        """d loglik / d gamma (envelope theorem for beta; analytic in gamma)."""
        xwx, beta, quad = profile(gamma)
        dc = 1.0 / (1.0 + sizes * gamma) ** 2
        per_subject = np.bincount(codes, weights=y - exog @ beta, minlength=n_groups)
        value = dof * float(np.sum(dc * per_subject**2)) / quad - float(np.sum(sizes / (1.0 + sizes * gamma)))
        if reml:
            value += float(np.trace(np.linalg.solve(xwx, (sums_x * dc[:, None]).T @ sums_x)))
        return 0.5 * value

    gamma = 0.0
    if score(0.0) > 0:  # the likelihood rises from tau2 = 0: bracket the root of the score and solve it
        high = 1.0
        while score(high) > 0 and high < 1e12:
            high *= 4.0
        gamma = optimize.brentq(score, 0.0, high, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
    xwx, beta, quad = profile(gamma)
    sigma2 = quad / dof
    return RandomInterceptFit(beta, sigma2 * np.linalg.inv(xwx), gamma * sigma2, sigma2, -negative_loglik(gamma))


def _lmm_design(data: pd.DataFrame) -> pd.DataFrame:
    """Treatment-coded design: intercept, visits (reference: first visit), severe, visit x severe."""
    visits = list(data["visit"].cat.categories)
    columns = {"intercept": np.ones(len(data))}
    severe = (data["severity_group"] == "severe").to_numpy(dtype=float)
    for visit in visits[1:]:
        columns[f"visit[{visit}]"] = (data["visit"] == visit).to_numpy(dtype=float)
    columns["severity_group[severe]"] = severe
    for visit in visits[1:]:
        columns[f"visit[{visit}]:severity_group[severe]"] = columns[f"visit[{visit}]"] * severe
    return pd.DataFrame(columns)


def _lmm_rows(model: str, method: str, caveat: str, terms, beta, se, variances, counts, confidence) -> list[dict]:
    z = stats.norm.isf((1 - confidence) / 2)
    rows = []
    for term, estimate, error in zip(terms, beta, se, strict=True):
        statistic = estimate / error
        rows.append(
            _model_row(
                model=model, term=term, estimate=float(estimate), se=float(error), statistic_name="z (Wald)",
                statistic=float(statistic), p_value=float(2 * stats.norm.sf(abs(statistic))),
                ci_low=float(estimate - z * error), ci_high=float(estimate + z * error), n_subjects=counts[0],
                n_obs=counts[1], method=method, caveat=caveat,
            )
        )  # fmt: skip
    for term, value in zip(("var(subject intercept)", "var(residual)"), variances, strict=True):
        rows.append(
            _model_row(model=model, term=term, estimate=float(value), n_subjects=counts[0], n_obs=counts[1],
                       method=method, caveat="variance component")
        )  # fmt: skip
    return rows


LMM_CAVEAT = (
    "Wald z tests and normal CIs, no small-sample df (no Kenward-Roger/Satterthwaite); "
    "uses all observed visits (valid under MAR)"
)


def random_intercept_rows(
    data: pd.DataFrame, *, reml: bool, confidence: float, statsmodels_max_subjects: int
) -> list[dict]:
    """aval ~ visit * severity_group + (1 | subject): the vectorised fit (`fit_random_intercept`, any size)
    and, up to `statsmodels_max_subjects` subjects, the same model with statsmodels MixedLM as a second,
    independent implementation (statsmodels loops over subjects in Python: minutes at 100,000).

    Treatment coding with references baseline and moderate. Rows: fixed effects with Wald z, p and normal
    CI, then the two variance components.
    """
    exog = _lmm_design(data)
    n_subjects = int(data["subject_id"].nunique())
    counts = (n_subjects, len(data))
    kind = "REML" if reml else "ML"
    methods = {
        "lmm_random_intercept": f"random-intercept LMM, {kind} by profile likelihood (k2trial); treatment coding; "
        "model-based SEs sigma2 (X'WX)^-1 as R nlme/lme4 and SAS PROC MIXED",
        "lmm_random_intercept_statsmodels": f"statsmodels MixedLM, random intercept, {kind}; treatment coding; "
        "observed-information SEs",
    }
    groups = data.groupby("severity_group", observed=True)["subject_id"].nunique()
    if len(groups) < 2 or n_subjects < 3 or np.linalg.matrix_rank(exog.to_numpy()) < exog.shape[1]:
        caveat = "not estimable: both severity groups and all visits are needed"
        return [
            _model_row(model=model, term=t, n_subjects=n_subjects, n_obs=len(data), method=method, caveat=caveat)
            for model, method in methods.items()
            for t in exog.columns
        ]
    codes = pd.factorize(data["subject_id"], sort=True)[0]
    y = data["aval"].to_numpy(dtype=float)
    fit = fit_random_intercept(y, exog.to_numpy(), codes, reml=reml)
    model = "lmm_random_intercept"
    rows = _lmm_rows(
        model, methods[model], LMM_CAVEAT, exog.columns, fit.params, np.sqrt(np.diag(fit.cov_params)),
        (fit.subject_variance, fit.residual_variance), counts, confidence,
    )  # fmt: skip
    model = "lmm_random_intercept_statsmodels"
    if n_subjects > statsmodels_max_subjects:
        caveat = f"not run: {n_subjects} subjects > statsmodels_max_subjects = {statsmodels_max_subjects} (time)"
        return [*rows, _model_row(model=model, term="", n_subjects=n_subjects, n_obs=len(data),
                                  method=methods[model], caveat=caveat)]  # fmt: skip
    import statsmodels.api as sm  # heavy import: only here

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = sm.MixedLM(y, exog, groups=codes).fit(reml=reml)
    caveat = LMM_CAVEAT
    notes = sorted({type(w.message).__name__ for w in caught if "Convergence" in type(w.message).__name__})
    if not result.converged or notes:
        caveat += "; optimiser reported " + (", ".join(notes) or "no convergence")
    variances = (float(np.asarray(result.cov_re)[0, 0]), float(result.scale))
    se = np.asarray(result.bse_fe, dtype=float)
    params = np.asarray(result.fe_params, dtype=float)
    return rows + _lmm_rows(model, methods[model], caveat, exog.columns, params, se, variances, counts, confidence)


def models_table(cube: VasCube, members: Mapping[str, np.ndarray], settings: EfficacySettings) -> pd.DataFrame:
    """Sensitivity models on the configured param: mixed ANOVA (pingouin) and the random-intercept LMM
    (vectorised REML and statsmodels MixedLM), one row per term with its method and caveats (MODEL_COLUMNS)."""
    data = model_data(cube, members, settings)
    rows = mixed_anova_rows(data) + random_intercept_rows(
        data,
        reml=settings.model_reml,
        confidence=settings.confidence,
        statsmodels_max_subjects=settings.model_statsmodels_max_subjects,
    )
    out = pd.DataFrame(rows, columns=MODEL_COLUMNS)
    out.insert(1, "param", settings.model_param)
    return out


# ------------------------------------------------------------------------------- analysis choices


def analysis_choices(settings: EfficacySettings, *, severe_threshold: float, adequate_b12_from: float) -> dict:
    """The analysis choices behind results/efficacy, for analysis_choices.json."""
    return {
        "change": "later visit minus earlier visit, cm (negative = improvement)",
        "missing_data": "complete cases per comparison (paired tests, responders); per analysis elsewhere",
        "recording_decimals": {"symptom": settings.symptom_decimals, "composite": settings.composite_decimals},
        "severity_boundary": f"severe if baseline composite VAS >= {severe_threshold:g}, else moderate",
        "residual_b12": f"B12-deficient, prior B12 therapy, baseline serum B12 >= {adequate_b12_from:g} pg/mL",
        "populations": list(POPULATIONS),
        "confidence": settings.confidence,
        "wilcoxon": {
            "zero_method": settings.zero_method + " (zero differences dropped)",
            "statistic": "V = sum of ranks of positive differences (R)",
            "p_method": {
                "exact": f"exact null distribution of V; no ties, no zeros and n <= {settings.exact_max_n}",
                "normal_cc": "normal approximation with tie correction"
                + (" and continuity correction" if settings.continuity_correction else ""),
                "reference": "R wilcox.test defaults before R 4.6 (R uses exact when n < 50)",
            },
            "estimate": "Hodges-Lehmann: median of Walsh averages of the non-zero differences (as R)",
            "ci": "order statistics of the Walsh averages at the signed-rank critical value (exact or normal "
            "approximation as R's conf.int; R finds the normal-approximation limits by root finding, tol 1e-4); "
            "where the sample is too small for the requested level, ci_level gives the level attained (R lowers "
            "it the same way); no interval (NaN) with one non-zero difference",
            "effect_size": "matched-pairs rank-biserial (T+ - T-)/(T+ + T-), CI tanh(atanh(r) +/- z SE)",
        },
        "paired_t": {
            "estimate": "mean change, t CI, df = n - 1",
            "effect_size": "Cohen's d_z, CI d_z +/- z sqrt(1/n + d_z^2/(2n))",
        },
        "holm_families": {
            FAMILY_VISIT_CONTRASTS: "the comparisons "
            + ", ".join(f"{a}-{b}" for a, b in settings.comparisons)
            + " within one population, param and test"
            if settings.holm_visit_contrasts
            else None,
            settings.symptoms_family or "symptoms": (
                f"the five symptoms, {settings.holm_symptoms_comparison[0]}-{settings.holm_symptoms_comparison[1]}, "
                "within one population and test"
            )
            if settings.symptoms_family
            else None,
            "p_adjusted": "the larger Holm-adjusted p of the families a row belongs to",
        },
        "friedman": f"visits {', '.join(settings.visits)}, complete cases, tie-corrected (R friedman.test); "
        "Kendall's W = chi2 / (n (k - 1)); post-hoc: the paired Wilcoxon tests with Holm (visit_contrasts)",
        "descriptives": "SD with n - 1; quartiles by linear interpolation (R type 7)",
        "responders": {
            "visit": settings.responder_visit,
            "percent_reduction": list(settings.responder_percent),
            "point_reduction_cm": list(settings.responder_points),
            "ci": "Clopper-Pearson exact, in percent",
            "baseline_zero": "percent change undefined: not evaluable (n_not_evaluable)",
            "source": MCID_CAVEAT,
        },
        "group_comparison": "moderate vs severe change from baseline: Wilcoxon-Mann-Whitney (R wilcox.test "
        "conventions, exact when no ties and both n <= exact_max_n), HL shift moderate - severe with CI, "
        "rank-biserial with CI tanh(atanh(r) +/- z sqrt((n1 + n2 + 1)/(3 n1 n2)))",
        "models": {
            "param": settings.model_param,
            "visits": list(settings.model_visits),
            "mixed_anova": "pingouin 0.7 mixed_anova, complete cases, Greenhouse-Geisser p reported",
            "lmm": f"random intercept, {'REML' if settings.model_reml else 'ML'}, Wald z; vectorised profile "
            "likelihood (model-based SEs as R/SAS) and, up to "
            f"{settings.model_statsmodels_max_subjects} subjects, statsmodels MixedLM",
        },
        "caveat": "single-arm, open-label: within-patient change is not a treatment effect "
        "(regression to the mean, placebo response)",
    }
