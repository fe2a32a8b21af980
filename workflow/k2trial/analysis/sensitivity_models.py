"""Sensitivity models of one VAS parameter (config efficacy.mixed_model): a mixed ANOVA (severity group x visit,
k2trial.stats.mixed_anova, pingouin 0.7's computation in closed form) and a random-intercept linear mixed model
(k2trial.stats.random_intercept and, up to a configured size, statsmodels MixedLM as an independent
implementation), one row per term with its method and caveats (artifact efficacy/models).

Precision (CLINICAL.md): the mixed ANOVA is closed form (sums of squares) and keeps its digits. The linear mixed
models are iterative fits (a root search, an optimiser): their last digits depend on convergence tolerances and on
the floating-point kernel of the machine, so every number of their rows is written to ITERATIVE_DIGITS = 6
significant digits, and a variance component below BOUNDARY_TOLERANCE of the total variance (what 6 significant
digits of it can resolve) is written as 0 with a caveat that the fit is at the boundary of the parameter space.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from k2trial.analysis.efficacy import EfficacySettings
from k2trial.analysis.groups import SEVERITY_GROUPS
from k2trial.analysis.vas_cube import VasCube
from k2trial.core import schema
from k2trial.core.values import round_half_away, round_significant
from k2trial.stats import distributions
from k2trial.stats.mixed_anova import mixed_anova
from k2trial.stats.random_intercept import fit_random_intercept

#: The method of the mixed ANOVA rows (k2trial.stats.mixed_anova; pingouin 0.7 is the implementation it reproduces).
MIXED_ANOVA_METHOD = (
    "mixed ANOVA in closed form (the sums of squares and Greenhouse-Geisser epsilon of pingouin 0.7 mixed_anova; "
    "one between, one within factor); complete cases"
)
#: Significant digits written for the results of iterative fits (the linear mixed models).
ITERATIVE_DIGITS = 6
#: A variance component below this fraction of the total variance (subject + residual) is written as 0: the fit is at
#: the boundary (no variation between subjects beyond the residual). 1e-6 is the resolution of 6 significant digits.
BOUNDARY_TOLERANCE = 1e-6
#: Caveat of a variance component written as 0.
BOUNDARY_CAVEAT = (
    f"variance component; estimated below {BOUNDARY_TOLERANCE:g} of the total variance: written as 0, the fit is "
    "at the boundary (no variation between subjects beyond the residual)"
)


def model_data(cube: VasCube, members: Mapping[str, np.ndarray], settings: EfficacySettings) -> pd.DataFrame:
    """Long table subject_id, severity_group, visit (ordered categorical), aval for the models' param and
    visits, efficacy-set subjects with a severity group, observed values only. aval is taken at the param's
    recording precision (as every efficacy analysis takes it), so float noise in the inputs does not reach a fit."""
    frames = []
    for group in SEVERITY_GROUPS:
        mask = members[group]
        ids = cube.subject_ids[mask]
        for visit in settings.model_visits:
            frames.append(
                pd.DataFrame(
                    {
                        "subject_id": ids,
                        "severity_group": group,
                        "visit": visit,
                        "aval": round_half_away(
                            cube.values(mask, settings.model_param, visit), settings.decimals(settings.model_param)
                        ),
                    }
                )
            )
    data = pd.concat(frames, ignore_index=True).dropna(subset=["aval"])
    data["visit"] = pd.Categorical(data["visit"], categories=list(settings.model_visits), ordered=True)
    data["severity_group"] = pd.Categorical(data["severity_group"], categories=list(SEVERITY_GROUPS))
    return data.sort_values(["subject_id", "visit"], kind="stable").reset_index(drop=True)


def _row_columns() -> list[str]:
    """The columns of efficacy/models but the param (the same for every row, added by `models_table`)."""
    return [c for c in schema.columns("efficacy/models") if c != "param"]


def _model_row(**values) -> dict:
    row = dict.fromkeys(_row_columns(), math.nan)
    row.update(values)
    return row


def mixed_anova_rows(data: pd.DataFrame) -> list[dict]:
    """Mixed ANOVA severity group (between) x visit (within), complete cases only (k2trial.stats.mixed_anova: the
    sums of squares and Greenhouse-Geisser correction of pingouin 0.7's mixed_anova, in closed form)."""
    visits = data["visit"].cat.categories
    per_subject = data.groupby("subject_id", observed=True)["visit"].nunique()
    complete = data[data["subject_id"].isin(per_subject.index[per_subject == len(visits)])].copy()
    method = MIXED_ANOVA_METHOD
    n_subjects = complete["subject_id"].nunique()
    groups = complete.groupby("severity_group", observed=True)["subject_id"].nunique()
    terms = {"between": "severity_group", "within": "visit", "interaction": "severity_group:visit"}
    if len(groups) < 2 or groups.min() < 2:
        caveat = "not estimable: fewer than 2 complete subjects in a severity group"
        return [
            _model_row(model="mixed_anova", term=t, n_subjects=n_subjects, method=method, caveat=caveat)
            for t in terms.values()
        ]
    wide = complete.pivot(index="subject_id", columns="visit", values="aval")[list(visits)]
    group_of = complete.drop_duplicates("subject_id").set_index("subject_id")["severity_group"].astype(str)
    table = mixed_anova(wide.to_numpy(dtype=float), group_of.loc[wide.index].to_numpy())
    caveat = (
        "F tests assume sphericity for the within factor; p_value_gg is Greenhouse-Geisser corrected; "
        "subjects with a missing visit are excluded"
    )
    return [
        _model_row(
            model="mixed_anova",
            term=terms[term.source],
            statistic_name="F",
            statistic=term.f,
            df1=term.df1,
            df2=term.df2,
            p_value=term.p_value,
            p_value_gg=term.p_value_gg,
            epsilon_gg=term.epsilon_gg,
            effect_size_type="partial_eta_squared",
            effect_size=term.partial_eta_squared,
            n_subjects=n_subjects,
            n_obs=len(complete),
            method=method,
            caveat=caveat,
        )
        for term in table
    ]


def _lmm_design(data: pd.DataFrame) -> pd.DataFrame:
    """Treatment-coded design: intercept, visits (reference: first visit), severe, visit x severe."""
    visits = list(data["visit"].cat.categories)
    columns = {"intercept": np.ones(len(data))}
    severe = (data["severity_group"] == SEVERITY_GROUPS[1]).to_numpy(dtype=float)
    for visit in visits[1:]:
        columns[f"visit[{visit}]"] = (data["visit"] == visit).to_numpy(dtype=float)
    columns[f"severity_group[{SEVERITY_GROUPS[1]}]"] = severe
    for visit in visits[1:]:
        columns[f"visit[{visit}]:severity_group[{SEVERITY_GROUPS[1]}]"] = columns[f"visit[{visit}]"] * severe
    return pd.DataFrame(columns)


def _iterative(value: float) -> float:
    """A result of an iterative fit as written: ITERATIVE_DIGITS significant digits."""
    return float(round_significant(value, ITERATIVE_DIGITS))


def _lmm_rows(model: str, method: str, caveat: str, terms, beta, se, variances, counts, confidence) -> list[dict]:
    """Fixed-effect rows (Wald z, p, normal CI) and the two variance components of one linear mixed model, every
    number at ITERATIVE_DIGITS significant digits (computed at full precision, then rounded)."""
    z = distributions.norm_isf((1 - confidence) / 2)
    rows = []
    for term, estimate, error in zip(terms, beta, se, strict=True):
        statistic = estimate / error
        rows.append(
            _model_row(
                model=model, term=term, estimate=_iterative(estimate), se=_iterative(error),
                statistic_name="z (Wald)", statistic=_iterative(statistic),
                p_value=_iterative(2 * distributions.norm_sf(abs(statistic))), ci_low=_iterative(estimate - z * error),
                ci_high=_iterative(estimate + z * error), n_subjects=counts[0], n_obs=counts[1], method=method,
                caveat=caveat,
            )
        )  # fmt: skip
    total = float(sum(variances))
    for term, value in zip(("var(subject intercept)", "var(residual)"), variances, strict=True):
        at_boundary = float(value) < BOUNDARY_TOLERANCE * total
        rows.append(
            _model_row(model=model, term=term, estimate=0.0 if at_boundary else _iterative(value),
                       n_subjects=counts[0], n_obs=counts[1], method=method,
                       caveat=BOUNDARY_CAVEAT if at_boundary else "variance component")
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
    # heavy import, only here; the module, not statsmodels.api, whose other models and plots cost 0.2 s more
    from statsmodels.regression.mixed_linear_model import MixedLM

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = MixedLM(y, exog, groups=codes).fit(reml=reml)
    caveat = LMM_CAVEAT
    notes = sorted({type(w.message).__name__ for w in caught if "Convergence" in type(w.message).__name__})
    if not result.converged or notes:
        caveat += "; optimiser reported " + (", ".join(notes) or "no convergence")
    variances = (float(np.asarray(result.cov_re)[0, 0]), float(result.scale))
    se = np.asarray(result.bse_fe, dtype=float)
    params = np.asarray(result.fe_params, dtype=float)
    return rows + _lmm_rows(model, methods[model], caveat, exog.columns, params, se, variances, counts, confidence)


def models_table(cube: VasCube, members: Mapping[str, np.ndarray], settings: EfficacySettings) -> pd.DataFrame:
    """Sensitivity models on the configured param: mixed ANOVA (k2trial.stats.mixed_anova) and the random-intercept LMM
    (vectorised REML and statsmodels MixedLM), one row per term with its method and caveats (efficacy/models)."""
    data = model_data(cube, members, settings)
    rows = mixed_anova_rows(data) + random_intercept_rows(
        data,
        reml=settings.model_reml,
        confidence=settings.confidence,
        statsmodels_max_subjects=settings.model_statsmodels_max_subjects,
    )
    out = pd.DataFrame(rows, columns=_row_columns())
    out.insert(1, "param", settings.model_param)
    return out[schema.columns("efficacy/models")]
