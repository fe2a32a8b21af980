"""Laboratory values between two visits: paired tests of every param with k2trial.stats.paired, Holm across params."""

from __future__ import annotations

import numpy as np
import pandas as pd

from k2trial.analysis.safety.lab_table import visit_weeks
from k2trial.analysis.safety.standards import LabStandards
from k2trial.core import schema
from k2trial.stats.paired import EXACT_BELOW, holm, paired_comparison


def lab_paired_tests(
    annotated: pd.DataFrame,
    standards: LabStandards,
    *,
    visit_from: str,
    visit_to: str,
    confidence: float = 0.95,
    exact_below: int = EXACT_BELOW,
) -> pd.DataFrame:
    """Paired tests of every param (lab order, then eGFR) between two visits, with k2trial.stats.paired.

    Same columns as the efficacy paired tests (population "safety"), plus `unit` and `n_censored_excluded`:
    subjects whose value at either visit is censored are left out (the limit is only a bound), complete cases
    otherwise. A visit at study week 0 (the baseline visit) stands for the baseline: its value is that of the baseline
    record (the one that supplied `base`), so a baseline sample dated after the first dose is no baseline here
    either. Differences are rounded to the test's recording decimals by the engine. Holm adjustment across params,
    separately for each test (wilcoxon, paired_t); family "lab_params_<from>_<to>_<test>".
    """
    params = list(standards.all_params)
    s = annotated["subject_id"].cat.codes.to_numpy().astype(np.int64)
    p = annotated["param"].cat.codes.to_numpy().astype(np.int64)
    visits = list(annotated["visit"].cat.categories)
    v = annotated["visit"].cat.codes.to_numpy().astype(np.int64)
    aval = annotated["aval"].to_numpy(dtype=float)
    censored = annotated["censored"].to_numpy(dtype=bool)
    baseline_record = annotated["baseline_record"].to_numpy(dtype=bool)
    weeks = visit_weeks(annotated)
    n_subjects = len(annotated["subject_id"].cat.categories)
    decimals = standards.decimals()
    by_param = np.argsort(p.astype(np.int16), kind="stable")
    bounds = np.searchsorted(p[by_param], np.arange(len(params) + 1))
    frames = []
    for index, param in enumerate(params):
        param_rows = by_param[bounds[index] : bounds[index + 1]]
        pair = []
        for visit in (visit_from, visit_to):
            value = np.full(n_subjects, np.nan)
            flag = np.zeros(n_subjects, bool)
            if weeks.get(visit) == 0:
                rows = param_rows[baseline_record[param_rows] & ~np.isnan(aval[param_rows])]
            elif visit in visits:
                rows = param_rows[(v[param_rows] == visits.index(visit)) & ~np.isnan(aval[param_rows])]
            else:
                rows = param_rows[:0]
            if len(rows):
                value[s[rows]] = aval[rows]
                flag[s[rows]] = censored[rows]
            pair.append((value, flag))
        (before, before_cens), (after, after_cens) = pair
        complete = ~np.isnan(before) & ~np.isnan(after)
        usable = complete & ~before_cens & ~after_cens
        result = paired_comparison(
            before[usable],
            after[usable],
            decimals=int(decimals[index]),
            exact_below=exact_below,
            confidence=confidence,
        ).reset_index(drop=True)
        result.insert(0, "population", "safety")
        result.insert(1, "param", param)
        result.insert(2, "visit_from", visit_from)
        result.insert(3, "visit_to", visit_to)
        result["unit"] = standards.units()[index]
        result["n_censored_excluded"] = int((complete & ~usable).sum())
        frames.append(result)
    out = pd.concat(frames, ignore_index=True)
    out["p_adjusted"] = np.nan
    out["family"] = ""
    for test, rows in out.groupby("test", sort=True).groups.items():
        p_values = out.loc[rows, "p_value"].to_numpy(dtype=float)
        finite = np.isfinite(p_values)  # a param without pairs has no p-value and is not in the family
        adjusted = np.full(len(p_values), np.nan)
        if finite.any():
            adjusted[finite] = holm(p_values[finite])
        out.loc[rows, "p_adjusted"] = adjusted
        out.loc[rows, "family"] = f"lab_params_{visit_from}_{visit_to}_{test}"
    return out[schema.columns("safety/lab_paired_tests")]
