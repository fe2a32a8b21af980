"""Figures of a randomised design, drawn from analysis artifacts (they compute nothing):

- `arm_trajectories_figure`: mean of a param by week and arm with the 95% t interval (k2trial.analysis.by_arm),
  the weeks after the end of treatment shaded and labelled "off treatment";
- `between_arm_forest_figure`: the between-arm differences (efficacy/between_arm) as a forest plot, one row per
  test and visit with its CI, the no-difference line, and which side favours the treated arm.

Every colour distinction is doubled by a marker or line style (colour-blind and greyscale safe).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from k2trial.report.figures import LINESTYLES, MARKERS, Style
from k2trial.report.formatting import format_estimate_ci

OFF_TREATMENT = "off treatment"


def shade_off_treatment(ax, treatment_end_week: float | None, last_week: float) -> None:
    """Shade the weeks after the end of treatment and label them; nothing when there is no follow-up."""
    if treatment_end_week is None or last_week <= treatment_end_week:
        return
    ax.axvspan(treatment_end_week, last_week + 0.5, color="#d9d9d9", alpha=0.5, lw=0, zorder=0)
    ax.text(
        (treatment_end_week + last_week) / 2, 0.98, OFF_TREATMENT, transform=ax.get_xaxis_transform(),
        ha="center", va="top", fontsize=8, color="#333333",
    )  # fmt: skip


def arm_trajectories_figure(
    summary: pd.DataFrame,
    population: str,
    param: str,
    variable: str,
    arm_labels: Mapping[str, str],
    style: Style,
    title: str,
    y_label: str,
    treatment_end_week: float | None = None,
) -> Figure:
    """Mean (points, lines) and t interval (error bars) by week per arm; arms in arm_labels order, offset a little
    so intervals do not hide each other; n per arm and week under the axis."""
    rows = summary[(summary["population"] == population) & (summary["param"] == param)]
    rows = rows[rows["variable"] == variable].sort_values("week")
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.add_subplot()
    arms = list(arm_labels)
    offsets = np.linspace(-0.12, 0.12, len(arms)) if len(arms) > 1 else [0.0]
    for i, arm in enumerate(arms):
        data = rows[rows["arm"] == arm]
        x = data["week"].to_numpy(dtype=float) + offsets[i]
        mean = data["mean"].to_numpy(dtype=float)
        low, high = data["ci_low"].to_numpy(dtype=float), data["ci_high"].to_numpy(dtype=float)
        ax.errorbar(
            x, mean, yerr=[mean - low, high - mean], color=style.colour(i), marker=MARKERS[i % len(MARKERS)],
            linestyle=LINESTYLES[i % len(LINESTYLES)], capsize=2.5, lw=1.3, ms=4.5,
            label=f"{arm_labels[arm]} (n = {int(data['n'].max()) if len(data) else 0})",
        )  # fmt: skip
    weeks = sorted(rows["week"].unique())
    if weeks:
        shade_off_treatment(ax, treatment_end_week, float(weeks[-1]))
        ax.set_xticks(weeks)
        ax.set_xlim(weeks[0] - 0.5, weeks[-1] + 0.5)
    ax.set_xlabel("Week")
    ax.set_ylabel(y_label)
    ax.legend(loc="best", fontsize=8, frameon=False)
    fig.suptitle(title, x=0.01, ha="left", fontsize=9.5)
    return fig


def between_arm_forest_figure(
    table: pd.DataFrame,
    population: str,
    tests: Sequence[str],
    test_labels: Mapping[str, str],
    visit_labels: Mapping[str, str],
    style: Style,
    title: str,
    decimals: int = 2,
) -> Figure:
    """One panel per estimate type among `tests` (differences in the endpoint's units; differences of proportions),
    rows test x visit top to bottom, estimate with CI, the estimate and CI written at the right."""
    rows = table[(table["population"] == population) & table["test"].isin(tests)].copy()
    rows["_test"] = rows["test"].map({t: i for i, t in enumerate(tests)})
    rows["_visit"] = rows["visit"].map({v: i for i, v in enumerate(visit_labels)})
    rows = rows.sort_values(["_test", "_visit"], kind="stable")
    kinds = list(dict.fromkeys(rows["estimate_type"]))
    height = 1.0 + 0.32 * max(1, len(rows))
    fig = Figure(figsize=(7.2, height), layout="constrained")
    axes = fig.subplots(1, max(1, len(kinds)), squeeze=False)[0]
    for ax, kind in zip(axes, kinds, strict=False):
        data = rows[rows["estimate_type"] == kind].reset_index(drop=True)
        y = np.arange(len(data))[::-1]
        for j, (_, row) in enumerate(data.iterrows()):
            colour_index = tests.index(row["test"])
            ax.errorbar(
                row["estimate"], y[j], xerr=[[row["estimate"] - row["ci_low"]], [row["ci_high"] - row["estimate"]]],
                fmt=MARKERS[colour_index % len(MARKERS)], color=style.colour(colour_index), capsize=2.5, ms=4.5,
            )  # fmt: skip
            text = format_estimate_ci(row["estimate"], row["ci_low"], row["ci_high"], decimals)
            ax.annotate(text, (1.02, y[j]), xycoords=("axes fraction", "data"), va="center", fontsize=7)
        ax.axvline(0.0, color="#333333", lw=0.8, ls="--")
        ax.set_yticks(y)
        pairs = zip(data["test"], data["visit"], strict=True)
        ax.set_yticklabels([f"{test_labels.get(t, t)}, {visit_labels.get(v, v)}" for t, v in pairs], fontsize=7.5)
        treated_side = "favours treated \u2192" if kind == "risk_difference" else "\u2190 favours treated"
        unit = "difference of proportions" if kind == "risk_difference" else "difference (treated - control)"
        ax.set_xlabel(f"{unit}\n{treated_side}", fontsize=8)
    fig.suptitle(title, x=0.01, ha="left", fontsize=9.5)
    return fig
