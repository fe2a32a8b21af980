"""Efficacy analysis of the VAS diary: paired tests, Friedman, descriptives, weekly trajectories, responders, the
moderate vs severe comparison and the ranking of the symptoms by their change. (Sensitivity models:
k2trial.analysis.sensitivity_models.)

Conventions (CLINICAL.md, efficacy): VAS in cm on a 10 cm line (0 = no symptom). Change = later visit minus
earlier visit, so a negative change is an improvement. Every analysis uses the complete cases of the
visits it compares (per comparison, not per subject over all visits). Values and their differences are
compared and ranked at the recording precision (`recording_decimals`: 1 decimal for a symptom read in mm,
2 for the mean of five such symptoms). The study is single-arm and open-label: a within-patient change is
not a treatment effect (regression to the mean, placebo response).

Data layout: k2trial.analysis.vas_cube.VasCube holds aval as a dense array [subject, param, week] (NaN = missing);
every analysis slices it with the boolean population masks of k2trial.analysis.groups.population_members (in the
configured population order), so nothing loops over subjects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from k2trial.analysis.groups import EFFICACY_SET, SEVERITY_GROUPS
from k2trial.analysis.vas_cube import VasCube, present_params
from k2trial.core import schema
from k2trial.core.errors import ConfigError
from k2trial.core.values import scaled_integers
from k2trial.core.vocabulary import BASELINE, COMPOSITE, Vocabulary
from k2trial.stats.paired import holm, paired_comparison_table
from k2trial.stats.summaries import SUMMARY_STATISTICS, clopper_pearson, friedman_test, summaries
from k2trial.stats.two_sample import METHOD_EXACT, METHOD_NORMAL, METHOD_NORMAL_CC, rank_sum_test

TESTS = ("wilcoxon", "paired_t")
FAMILY_VISIT_CONTRASTS = "visit_contrasts"
#: The Holm families of the paired tests; each has a column p_holm_<family> (k2trial.core.schema template).
HOLM_FAMILIES = (FAMILY_VISIT_CONTRASTS, "symptoms")
#: IMMPACT/Farrar responder thresholds come from pain scales (CLINICAL.md): said in every row that is not pain.
MCID_CAVEAT = "threshold validated for pain scales (IMMPACT/Farrar); applied here by analogy"
#: p_method codes of the rank tests (the same words in paired tests and the group comparison).
P_METHODS = {METHOD_EXACT: "exact", METHOD_NORMAL_CC: "normal_cc", METHOD_NORMAL: "normal"}


# ------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class EfficacySettings:
    """The `efficacy` section of the config (config/config.yaml's analysis choices merged with the study config's
    contrasts and Holm families), with the diary items and populations of the vocabulary."""

    confidence: float
    exact_below: int
    zero_method: str
    continuity_correction: bool
    symptom_decimals: int
    composite_decimals: int
    visits: tuple[str, ...]
    comparisons: tuple[tuple[str, str], ...]
    holm_visit_contrasts: bool
    holm_symptoms_comparison: tuple[str, str] | None
    responder_visit: str
    responder_percent: tuple[float, ...]
    responder_points: tuple[float, ...]
    group_comparison_visits: tuple[str, ...]
    model_param: str
    model_visits: tuple[str, ...]
    model_reml: bool
    model_statsmodels_max_subjects: int
    pain_params: tuple[str, ...]
    symptoms: tuple[str, ...]
    populations: tuple[str, ...]
    #: the primary VAS in words: "composite", or a single-item study's item
    primary_name: str = "composite"

    @classmethod
    def from_config(cls, section: Mapping, vocabulary: Vocabulary) -> EfficacySettings:
        """From config `efficacy` (validated against workflow/schemas/config.schema.yaml) and the vocabulary.

        Raises ConfigError for a zero method other than wilcox or a visit the codebook does not have.
        """
        decimals = section["recording_decimals"]
        families = section["holm_families"]
        symptoms_comparison = families["symptoms_comparison"]
        responders = section["responders"]
        model = section["mixed_model"]
        if section["zero_method"] != "wilcox":
            raise ConfigError("efficacy.zero_method: only 'wilcox' (zero differences dropped) is implemented")
        settings = cls(
            confidence=float(section["confidence"]),
            exact_below=int(section["exact_below"]),
            zero_method="wilcox",
            continuity_correction=bool(section["continuity_correction"]),
            symptom_decimals=int(decimals["symptom"]),
            composite_decimals=int(decimals["composite"]),
            visits=tuple(section["visits"]),
            comparisons=tuple((str(a), str(b)) for a, b in section["comparisons"]),
            holm_visit_contrasts=bool(families["visit_contrasts"]),
            holm_symptoms_comparison=tuple(symptoms_comparison) if symptoms_comparison else None,
            responder_visit=str(responders["visit"]),
            responder_percent=tuple(float(v) for v in responders["percent_reduction"]),
            responder_points=tuple(float(v) for v in responders["point_reduction"]),
            pain_params=tuple(str(v) for v in responders["pain_params"]),
            group_comparison_visits=tuple(section["group_comparison_visits"]),
            model_param=str(model["param"]),
            model_visits=tuple(model["visits"]),
            model_reml=bool(model["reml"]),
            model_statsmodels_max_subjects=int(model["statsmodels_max_subjects"]),
            symptoms=tuple(vocabulary.symptoms),
            populations=tuple(vocabulary.populations),
            primary_name=vocabulary.param_label(vocabulary.primary_param, short=True).lower(),
        )
        named = {
            *settings.visits,
            *(v for pair in settings.comparisons for v in pair),
            settings.responder_visit,
            *settings.group_comparison_visits,
            *settings.model_visits,
            *(settings.holm_symptoms_comparison or ()),
        }
        unknown = sorted(named - set(vocabulary.visit_codes))
        if unknown:
            raise ConfigError(f"config efficacy names visits the codebook does not have: {', '.join(unknown)}")
        return settings

    def decimals(self, param: str) -> int:
        """Recording precision (decimals) of a param's values and differences."""
        return self.composite_decimals if param == COMPOSITE else self.symptom_decimals

    @property
    def symptoms_family(self) -> str | None:
        """Name of the symptoms family, e.g. symptoms_week8 (None when switched off)."""
        if not self.holm_symptoms_comparison:
            return None
        start, end = self.holm_symptoms_comparison
        return f"symptoms_{end}" if start == BASELINE else f"symptoms_{start}_{end}"


# ------------------------------------------------------------------------------------- paired tests


def paired_tests(cube: VasCube, members: Mapping[str, np.ndarray], settings: EfficacySettings) -> pd.DataFrame:
    """Wilcoxon and paired t for every population x param x comparison (artifact efficacy/paired_tests).

    Complete cases per comparison. Holm within the named families: `visit_contrasts` (the configured
    comparisons of one population, param and test) and `symptoms_<visit>` (the five symptoms for one
    comparison, within one population and test). A row in both families carries both names in `family`,
    both adjusted p's in p_holm_*, and the larger (more conservative) of the two in p_adjusted.
    """
    parts = []
    for population, mask in members.items():
        for param in present_params(cube):
            for visit_from, visit_to in settings.comparisons:
                table = paired_comparison_table(
                    cube.values(mask, param, visit_from),
                    cube.values(mask, param, visit_to),
                    decimals=settings.decimals(param),
                    exact_below=settings.exact_below,
                    confidence=settings.confidence,
                    continuity=settings.continuity_correction,
                )
                table.insert(0, "visit_to", visit_to)
                table.insert(0, "visit_from", visit_from)
                table.insert(0, "param", param)
                table.insert(0, "population", population)
                parts.append(table)
    out = pd.concat(parts, ignore_index=True)
    visit_contrasts, symptoms = (f"p_holm_{family}" for family in HOLM_FAMILIES)
    out[visit_contrasts] = np.nan
    out[symptoms] = np.nan
    if settings.holm_visit_contrasts:
        out[visit_contrasts] = out.groupby(["population", "param", "test"], sort=False)["p_value"].transform(holm)
    family_symptoms = settings.symptoms_family
    in_symptoms = np.zeros(len(out), dtype=bool)
    if family_symptoms:
        start, end = settings.holm_symptoms_comparison
        in_symptoms = out["param"].isin(settings.symptoms) & (out["visit_from"] == start) & (out["visit_to"] == end)
        in_symptoms = in_symptoms.to_numpy()
        chosen = out[in_symptoms]
        out.loc[in_symptoms, symptoms] = chosen.groupby(["population", "test"], sort=False)["p_value"].transform(holm)
    family = pd.Series(FAMILY_VISIT_CONTRASTS if settings.holm_visit_contrasts else "", index=out.index, dtype=object)
    if family_symptoms:
        family[in_symptoms] = [f"{f}; {family_symptoms}" if f else family_symptoms for f in family[in_symptoms]]
    out["family"] = family
    out["p_adjusted"] = np.fmax(out[visit_contrasts].to_numpy(), out[symptoms].to_numpy())
    return _sorted(out, settings)[schema.columns("efficacy/paired_tests", p_holm=HOLM_FAMILIES)]


def _sorted(frame: pd.DataFrame, settings: EfficacySettings) -> pd.DataFrame:
    """Deterministic order: population, param, comparison (config order), test."""
    keys = pd.DataFrame(
        {
            "population": frame["population"].map({p: i for i, p in enumerate(settings.populations)}),
            "param": frame["param"].map({p: i for i, p in enumerate((*settings.symptoms, COMPOSITE))}),
            "comparison": [
                settings.comparisons.index((a, b)) for a, b in zip(frame["visit_from"], frame["visit_to"], strict=True)
            ],
            "test": frame["test"].map({t: i for i, t in enumerate(TESTS)}),
        }
    )
    order = np.lexsort([keys[c].to_numpy() for c in reversed(keys.columns)])
    return frame.iloc[order].reset_index(drop=True)


# ------------------------------------------------------------------------------------------ Friedman


def friedman_table(cube: VasCube, members: Mapping[str, np.ndarray], settings: EfficacySettings) -> pd.DataFrame:
    """Friedman test over the configured visits per population and param (efficacy/friedman)."""
    rows = []
    visits = ",".join(settings.visits)
    for population, mask in members.items():
        for param in present_params(cube):
            values = np.column_stack([cube.values(mask, param, v) for v in settings.visits])
            n, chi2, df, p, w = friedman_test(values, settings.decimals(param))
            rows.append((population, param, n, chi2, df, p, w, visits))
    return pd.DataFrame(rows, columns=schema.columns("efficacy/friedman"))


# ---------------------------------------------------------------------------- descriptives, weekly


def descriptives_table(cube: VasCube, members: Mapping[str, np.ndarray], settings: EfficacySettings) -> pd.DataFrame:
    """n, mean, SD, median, Q1, Q3, min, max of aval and of chg (= aval - baseline) per population, param,
    visit (efficacy/descriptives; `variable` is aval or chg; chg only after baseline)."""
    params = present_params(cube)
    rows = []
    for population, mask in members.items():
        aval = np.stack([np.column_stack([cube.values(mask, p, v) for v in settings.visits]) for p in params], axis=1)
        baseline = np.stack([cube.values(mask, p, BASELINE) for p in params], axis=1)[:, :, None]
        for variable, values in (("aval", aval), ("chg", aval - baseline)):
            summary = summaries(values)
            for i, param in enumerate(params):
                for j, visit in enumerate(settings.visits):
                    if variable == "chg" and visit == BASELINE:
                        continue
                    stats_row = [summary[s][i, j] for s in SUMMARY_STATISTICS]
                    rows.append((population, param, visit, cube.week_of(visit), variable, *stats_row))
    out = pd.DataFrame(rows, columns=schema.columns("efficacy/descriptives"))
    out["n"] = out["n"].astype("int64")
    order = np.lexsort(
        [
            out["variable"].map({"aval": 0, "chg": 1}).to_numpy(),
            out["week"].to_numpy(),
            out["param"].map({p: i for i, p in enumerate(cube.params)}).to_numpy(),
            out["population"].map({p: i for i, p in enumerate(members)}).to_numpy(),
        ]
    )
    return out.iloc[order].reset_index(drop=True)


def weekly_table(cube: VasCube, members: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Median, Q1, Q3, mean and n of aval by diary week per population and param (efficacy/weekly)."""
    params = present_params(cube)
    idx = [cube.param_index(p) for p in params]
    rows = []
    for population, mask in members.items():
        summary = summaries(cube.aval[mask][:, idx, :])
        for i, param in enumerate(params):
            for visit, week in cube.visits:
                rows.append(
                    (
                        population, param, visit, int(week), int(summary["n"][i, week]),
                        summary["median"][i, week], summary["q1"][i, week], summary["q3"][i, week],
                        summary["mean"][i, week],
                    )
                )  # fmt: skip
    return pd.DataFrame(rows, columns=schema.columns("efficacy/weekly"))


# ------------------------------------------------------------------------------------------ responders


def responder_counts(
    baseline: np.ndarray, post: np.ndarray, decimals: int, *, percent: float | None = None, points: float | None = None
) -> tuple[int, int, int]:
    """(responders, n evaluable, n not evaluable) for a reduction of >= `percent` % or >= `points` cm.

    Complete pairs only. Compared exactly at the recording precision (integers in units of 10^-decimals),
    so a fall from 10.0 to 7.0 is a 30 % responder. Percent change is undefined when baseline is 0: those
    subjects are not evaluable for a percent criterion.
    """
    complete = ~(np.isnan(baseline) | np.isnan(post))
    base = scaled_integers(baseline[complete], decimals)
    reduction = base - scaled_integers(post[complete], decimals)
    if percent is not None:
        evaluable = base > 0
        responders = evaluable & (reduction * 100.0 >= percent * base)
    else:
        evaluable = np.ones(len(base), dtype=bool)
        responders = reduction >= scaled_integers(points, decimals)
    n = int(evaluable.sum())
    return int(responders.sum()), n, int(len(base) - n)


def responders_table(cube: VasCube, members: Mapping[str, np.ndarray], settings: EfficacySettings) -> pd.DataFrame:
    """Responders at the responder visit per population, param and criterion, with Clopper-Pearson CI in %."""
    criteria = [(f"pct_reduction_ge_{v:g}", v, "percent") for v in settings.responder_percent]
    criteria += [(f"point_reduction_ge_{v:g}", v, "cm") for v in settings.responder_points]
    rows = []
    for population, mask in members.items():
        for param in present_params(cube):
            base = cube.values(mask, param, BASELINE)
            post = cube.values(mask, param, settings.responder_visit)
            for name, threshold, unit in criteria:
                kwargs = {"percent": threshold} if unit == "percent" else {"points": threshold}
                responders, n, not_evaluable = responder_counts(base, post, settings.decimals(param), **kwargs)
                caveat = "" if param in settings.pain_params else MCID_CAVEAT
                rows.append(
                    [population, param, settings.responder_visit, name, threshold, unit, responders, n, not_evaluable]
                    + [math.nan, math.nan, math.nan, caveat]
                )
    out = pd.DataFrame(rows, columns=schema.columns("efficacy/responders"))
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
            for group in SEVERITY_GROUPS:
                mask = members[group]
                changes[group] = cube.values(mask, param, visit) - cube.values(mask, param, BASELINE)
            group_a, group_b = SEVERITY_GROUPS
            result = rank_sum_test(
                changes[group_a],
                changes[group_b],
                decimals=settings.decimals(param),
                exact_below=settings.exact_below,
                confidence=settings.confidence,
                continuity=settings.continuity_correction,
            )
            rows.append(
                [
                    EFFICACY_SET, param, visit, group_a, group_b, result.n_x, result.n_y, "mann_whitney",
                    result.statistic, "W (U of moderate)", result.p_value, P_METHODS[result.method], "hl_shift",
                    result.estimate, result.ci_low, result.ci_high, result.ci_level, "rank_biserial",
                    result.rank_biserial, result.rb_ci_low, result.rb_ci_high, result.rb_note,
                ]
            )  # fmt: skip
    return pd.DataFrame(rows, columns=schema.columns("efficacy/group_comparison"))


# ------------------------------------------------------------------------------------ symptom ranking


def symptom_ranking(paired: pd.DataFrame, settings: EfficacySettings) -> pd.DataFrame:
    """The symptoms ranked by their Hodges-Lehmann median change, most improvement (most negative change) first,
    for every population and comparison (artifact efficacy/symptom_ranking). paired: the paired tests (Wilcoxon
    rows are used). A symptom without an estimate ranks last; ties keep the codebook order of the symptoms.
    """
    wilcoxon = paired[(paired["test"] == "wilcoxon") & paired["param"].isin(settings.symptoms)]
    order = {p: i for i, p in enumerate(settings.symptoms)}
    frames = []
    for (population, visit_from, visit_to), part in wilcoxon.groupby(
        ["population", "visit_from", "visit_to"], sort=False
    ):
        estimate = part["estimate"].to_numpy(dtype=float)
        key = np.where(np.isnan(estimate), np.inf, estimate)
        ranked = part.iloc[np.lexsort((part["param"].map(order).to_numpy(), key))]
        frames.append(
            pd.DataFrame(
                {
                    "population": population,
                    "visit_from": visit_from,
                    "visit_to": visit_to,
                    "rank": np.arange(1, len(ranked) + 1),
                    "param": ranked["param"].to_numpy(dtype=object),
                    "estimate": ranked["estimate"].to_numpy(dtype=float),
                }
            )
        )
    columns = schema.columns("efficacy/symptom_ranking")
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


# ------------------------------------------------------------------------------- analysis choices

#: Small counts in words, for the analysis choices' prose ("the five symptoms").
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _count_words(n: int) -> str:
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def analysis_choices(settings: EfficacySettings, *, severe_threshold: float, adequate_b12_from: float) -> dict:
    """The analysis choices behind results/efficacy, for analysis_choices.json."""
    return {
        "change": "later visit minus earlier visit, cm (negative = improvement)",
        "missing_data": "complete cases per comparison (paired tests, responders); per analysis elsewhere",
        "recording_decimals": {"symptom": settings.symptom_decimals, "composite": settings.composite_decimals},
        "severity_boundary": f"severe if baseline {settings.primary_name} VAS >= {severe_threshold:g}, else moderate",
        "residual_b12": f"B12-deficient, prior B12 therapy, baseline serum B12 >= {adequate_b12_from:g} pg/mL",
        "populations": list(settings.populations),
        "confidence": settings.confidence,
        "wilcoxon": {
            "zero_method": settings.zero_method + " (zero differences dropped)",
            "statistic": "V = sum of ranks of positive differences (R)",
            "p_method": {
                "exact": f"exact null distribution of V; no ties, no zeros and n < {settings.exact_below} "
                "(config efficacy.exact_below; R's rule is n < 50)",
                "normal_cc": "normal approximation with tie correction"
                + (" and continuity correction" if settings.continuity_correction else ""),
                "reference": "R wilcox.test defaults before R 4.6",
            },
            "estimate": "Hodges-Lehmann: median of Walsh averages of the non-zero differences (as R)",
            "ci": "order statistics of the Walsh averages at the signed-rank critical value (exact or normal "
            "approximation as R's conf.int; R finds the normal-approximation limits by root finding, tol 1e-4); "
            "where the sample is too small for the requested level, ci_level gives the level attained (R lowers "
            "it the same way); no interval (NaN) with one non-zero difference",
            "effect_size": "matched-pairs rank-biserial (T+ - T-)/(T+ + T-), CI tanh(atanh(r) +/- z SE); when every "
            "non-zero change has the same sign (r = -1 or +1) the interval has no width and is reported as not "
            "estimable (NaN, reason in es_ci_note)",
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
                f"the {_count_words(len(settings.symptoms))} symptoms, "
                f"{settings.holm_symptoms_comparison[0]}-{settings.holm_symptoms_comparison[1]}, "
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
        "group_comparison": "moderate vs severe change from baseline: Wilcoxon-Mann-Whitney exactly as R 4.2.2 "
        f"wilcox.test(x, y, conf.int = TRUE) (k2trial.stats.two_sample; exact when no ties and both n < "
        f"{settings.exact_below}), HL shift moderate - severe with CI, rank-biserial with CI "
        "tanh(atanh(r) +/- z sqrt((n1 + n2 + 1)/(3 n1 n2))), not estimable (NaN, reason in es_ci_note) when every "
        "moderate-severe pair differs in the same direction",
        "models": {
            "param": settings.model_param,
            "visits": list(settings.model_visits),
            "mixed_anova": "closed form (pingouin 0.7 mixed_anova's computation), complete cases, Greenhouse-Geisser p "
            "reported",
            "lmm": f"random intercept, {'REML' if settings.model_reml else 'ML'}, Wald z; vectorised profile "
            "likelihood (model-based SEs as R/SAS) and, up to "
            f"{settings.model_statsmodels_max_subjects} subjects, statsmodels MixedLM",
            "precision": "the mixed ANOVA is closed form and keeps its digits; the linear mixed models are iterative "
            "fits, written to 6 significant digits, with a variance component below 1e-6 of the total variance "
            "written as 0 (fit at the boundary, said in its caveat); the models take the VAS at its recording "
            "precision",
        },
        "caveat": "single-arm, open-label: within-patient change is not a treatment effect "
        "(regression to the mean, placebo response)",
    }
