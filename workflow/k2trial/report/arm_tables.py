"""Display tables of a randomised design, formatted from analysis artifacts (they compute nothing):

- `between_arm_display_table`: efficacy/between_arm as a reader sees it: per population, endpoint, visit and
  analysis, the subjects per arm, the difference treated - control with its CI, p and the Holm-adjusted p with
  its family; the methods in words and the direction of the estimates in the notes;
- `visit_summary_display_table`: k2trial.analysis.by_arm's summary, n / mean (SD) / mean's CI / median (Q1, Q3)
  per visit and arm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from k2trial.report.formatting import (
    Decimals,
    format_estimate_ci,
    format_integer,
    format_mean_sd,
    format_median_iqr,
    format_p_value,
    format_range,
)
from k2trial.report.render import DisplayTable, text_frame

#: What each estimate type is, for the notes.
ESTIMATE_NOTES = {
    "ls_mean_difference": "least-squares mean difference of the change from baseline",
    "hl_shift": "Hodges-Lehmann shift of the change from baseline",
    "risk_difference": "difference of responder proportions (0-1)",
}

VARIABLE_LABELS = {"aval": "Value", "chg": "Change from baseline"}


def between_arm_display_table(
    table: pd.DataFrame,
    name: str,
    title: str,
    decimals: Decimals,
    labels: Mapping[str, Mapping[str, str]],
    ci_level: float = 0.95,
) -> DisplayTable:
    """labels: {"population": {...}, "param": {...}, "visit": {...}, "test": {...}, "arm": {...}}; a code without a
    label is shown as it is. Risk differences are shown with the percent decimals + 2 (proportions)."""

    def lab(kind: str, code: object) -> str:
        return str(labels.get(kind, {}).get(code, code))

    rows = []
    for _, row in table.iterrows():
        places = decimals.percent + 2 if row["estimate_type"] == "risk_difference" else decimals.summary
        rows.append(
            {
                "Population": lab("population", row["population"]),
                "Endpoint": lab("param", row["param"]),
                "Visit": lab("visit", row["visit"]),
                "Analysis": lab("test", row["test"]),
                f"n ({lab('arm', row['arm_treated'])} / {lab('arm', row['arm_control'])})": (
                    f"{format_integer(row['n_treated'])} / {format_integer(row['n_control'])}"
                ),
                f"Difference ({round(100 * ci_level)}% CI)": format_estimate_ci(
                    row["estimate"], row["ci_low"], row["ci_high"], places
                ),
                "p": format_p_value(row["p_value"], decimals.p_value),
                "p (Holm)": format_p_value(row["p_adjusted"], decimals.p_value),
                "Holm family": row["family"] if isinstance(row["family"], str) else "",
            }
        )
    frame = pd.DataFrame(rows)
    notes = [
        "Differences are treated minus control; a negative change difference and a positive responder difference "
        "favour the treated arm."
    ]
    for kind in dict.fromkeys(table["estimate_type"]):
        notes.append(f"{kind}: {ESTIMATE_NOTES.get(kind, kind)}.")
    for test, method in dict.fromkeys(zip(table["test"], table["method"], strict=True)):
        notes.append(f"{lab('test', test)}: {method}")
    return DisplayTable(name, title, text_frame(frame), tuple(notes))


def visit_summary_display_table(
    summary: pd.DataFrame,
    name: str,
    title: str,
    decimals: Decimals,
    labels: Mapping[str, Mapping[str, str]],
    arm_order: Sequence[str],
) -> DisplayTable:
    """One row per population, param, variable and visit; per arm: n, mean (SD), the mean's CI, median (Q1, Q3)."""

    def lab(kind: str, code: object) -> str:
        return str(labels.get(kind, {}).get(code, code))

    keys = ["population", "param", "variable", "visit"]
    rows = []
    for key, group in summary.groupby(keys, sort=False):
        population, param, variable, visit = key
        row = {
            "Population": lab("population", population),
            "Endpoint": lab("param", param),
            "Value": VARIABLE_LABELS.get(variable, variable),
            "Visit": lab("visit", visit),
        }
        for arm in arm_order:
            arm_row = group[group["arm"] == arm]
            prefix = lab("arm", arm)
            if arm_row.empty:
                continue
            r = arm_row.iloc[0]
            row[f"{prefix}: n"] = format_integer(r["n"])
            row[f"{prefix}: mean (SD)"] = format_mean_sd(r["mean"], r["sd"], decimals.summary)
            row[f"{prefix}: {round(100 * r['ci_level'])}% CI of the mean"] = format_range(
                r["ci_low"], r["ci_high"], decimals.summary
            )
            row[f"{prefix}: median (Q1, Q3)"] = format_median_iqr(r["median"], r["q1"], r["q3"], decimals.summary)
        rows.append(row)
    notes = ("Mean CI: two-sided t interval with n - 1 degrees of freedom; quartiles by linear interpolation.",)
    return DisplayTable(name, title, text_frame(pd.DataFrame(rows)), notes)
