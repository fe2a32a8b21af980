"""Descriptive summaries by arm of a randomised design: the VAS (value and change from baseline) by visit and arm,
with the mean's two-sided t confidence interval (what the by-arm table and the mean trajectories by arm show).

One row per population, arm, param, variable (`aval`: the value; `chg`: change from baseline) and visit, with n
(subjects with a value), mean, SD (n - 1), SE, the t interval of the mean (mean +/- t(1 - alpha/2, n - 1) SE,
as R `t.test(x)$conf.int`; NaN for n < 2), median, Q1, Q3 (R type 7), min and max. Arms are the randomised arms
(`arm` of the allocation, as randomised); a member of the population without an arm is a ValueError naming it.
Baseline change rows are 0 by definition and kept, so a trajectory of the change starts at 0 with its n.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from k2trial.stats.summaries import summaries

#: The columns of the summary, in order.
SUMMARY_COLUMNS = (
    "population", "arm", "param", "variable", "visit", "week", "n", "mean", "sd", "se", "ci_low", "ci_high",
    "median", "q1", "q3", "min", "max", "ci_level",
)  # fmt: skip
VARIABLES = ("aval", "chg")


def mean_ci(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """(SE, low, high) of the mean of the non-missing values: the t interval with n - 1 df; NaN for n < 2."""
    x = values[~np.isnan(values)]
    if len(x) < 2:
        return float("nan"), float("nan"), float("nan")
    se = float(np.std(x, ddof=1) / np.sqrt(len(x)))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, len(x) - 1)) * se
    mean = float(np.mean(x))
    return se, mean - half, mean + half


def visit_summary_by_arm(
    vas: pd.DataFrame,
    allocation: pd.DataFrame,
    members: Mapping[str, Sequence[str]],
    arm_order: Sequence[str],
    visit_order: Sequence[str],
    confidence: float = 0.95,
) -> pd.DataFrame:
    """The summary (SUMMARY_COLUMNS) of vas (subject_id, param, visit, week, aval, chg) per population in
    `members` (population -> subject IDs), arm in arm_order (allocation: subject_id, arm) and visit in visit_order.
    Params in the order they first appear in vas."""
    arms = allocation.set_index("subject_id")["arm"]
    rows = []
    params = list(dict.fromkeys(vas["param"]))
    weeks = vas.drop_duplicates("visit").set_index("visit")["week"]
    for population, ids in members.items():
        ids = list(ids)
        missing = [s for s in ids if s not in arms.index or pd.isna(arms.get(s))]
        if missing:
            raise ValueError(f"population {population!r}: subject {missing[0]!r} has no arm in the allocation")
        data = vas[vas["subject_id"].isin(ids)].assign(arm=lambda f: f["subject_id"].map(arms))
        for arm in arm_order:
            in_arm = data[data["arm"] == arm]
            for param in params:
                of_param = in_arm[in_arm["param"] == param]
                for variable in VARIABLES:
                    for visit in visit_order:
                        values = of_param.loc[of_param["visit"] == visit, variable].to_numpy(dtype=float)
                        s = summaries(values.reshape(-1, 1))
                        se, low, high = mean_ci(values, confidence)
                        rows.append(
                            (population, arm, param, variable, visit, int(weeks.get(visit, -1)), int(s["n"][0]),
                             *(float(s[k][0]) for k in ("mean", "sd")), se, low, high,
                             *(float(s[k][0]) for k in ("median", "q1", "q3", "min", "max")), confidence)
                        )  # fmt: skip
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
