"""Summaries and figures by arm (k2trial.analysis.by_arm, k2trial.report.arm_figures): the mean's t interval equals
R's t.test, counts and quartiles by hand, and the figures draw what the tables say."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import rscript
from rscript import r_num

from k2trial.analysis.by_arm import mean_ci, visit_summary_by_arm

r_session = rscript.r_session

PLACEBO = [9.0, 8.5, 8.0, 9.5]
MK7 = [9.0, 3.0, 4.5, 2.0, 3.5]


def _vas() -> pd.DataFrame:
    rows = []
    week8 = {"A1": 3.0, "A2": 4.5, "A3": 2.0, "A4": 3.5, "A5": math.nan, "B1": 8.5, "B2": 8.0, "B3": 9.5, "B4": 9.0}
    for subject, value in week8.items():
        rows.append((subject, "pain", "baseline", 0, 9.0, 0.0))
        rows.append((subject, "pain", "week8", 8, value, value - 9.0))
    return pd.DataFrame(rows, columns=["subject_id", "param", "visit", "week", "aval", "chg"])


ALLOCATION = pd.DataFrame({"subject_id": ["A1", "A2", "A3", "A4", "A5", "B1", "B2", "B3", "B4"],
                           "arm": ["MK7"] * 5 + ["PLACEBO"] * 4})  # fmt: skip


def test_mean_ci_equals_r_t_test(r_session):
    for values in (PLACEBO, MK7, [1.0, 1.0, 1.5]):
        out = r_session.run(f"x <- {r_num(values)}; t <- t.test(x); result <- list(ci = as.numeric(t$conf.int), "
                            "se = sd(x) / sqrt(length(x)))")  # fmt: skip
        se, low, high = mean_ci(np.array(values), 0.95)
        assert se == pytest.approx(out["se"], rel=1e-12)
        assert [low, high] == pytest.approx(out["ci"], rel=1e-12)
    assert all(math.isnan(v) for v in mean_ci(np.array([2.0, math.nan]), 0.95))  # n = 1: no interval


def test_visit_summary_by_arm_counts_by_hand():
    members = {"itt": list(ALLOCATION["subject_id"])}
    summary = visit_summary_by_arm(_vas(), ALLOCATION, members, ["MK7", "PLACEBO"], ["baseline", "week8"])
    row = summary.set_index(["arm", "variable", "visit"]).loc[("MK7", "aval", "week8")]
    assert row["n"] == 4 and row["mean"] == pytest.approx(3.25)  # A5 missing at week 8
    assert (
        row["median"] == pytest.approx(3.25) and row["q1"] == pytest.approx(2.75) and row["q3"] == pytest.approx(3.75)
    )
    change = summary.set_index(["arm", "variable", "visit"]).loc[("PLACEBO", "chg", "week8")]
    assert change["n"] == 4 and change["mean"] == pytest.approx(-0.25) and change["min"] == -1.0
    baseline = summary.set_index(["arm", "variable", "visit"]).loc[("MK7", "chg", "baseline")]
    assert baseline["n"] == 5 and baseline["mean"] == 0.0 and baseline["sd"] == 0.0
    with pytest.raises(ValueError, match="subject 'C1' has no arm"):
        visit_summary_by_arm(_vas(), ALLOCATION, {"itt": ["C1"]}, ["MK7"], ["week8"])


def test_figures_draw_the_tables():
    from k2trial.report import figures as kf
    from k2trial.report.arm_figures import OFF_TREATMENT, arm_trajectories_figure, between_arm_forest_figure

    style = kf.Style(dpi=80)
    members = {"itt": list(ALLOCATION["subject_id"])}
    summary = visit_summary_by_arm(_vas(), ALLOCATION, members, ["MK7", "PLACEBO"], ["baseline", "week8"])
    figure = arm_trajectories_figure(
        summary, "itt", "pain", "aval", {"MK7": "MK-7", "PLACEBO": "Placebo"}, style, "Pain", "VAS (cm)", 4
    )
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["MK-7 (n = 5)", "Placebo (n = 4)"]
    assert OFF_TREATMENT in [t.get_text() for t in ax.texts]  # weeks 4-8 are after treatment in this figure
    table = pd.DataFrame(
        {
            "population": ["itt"] * 3, "test": ["ancova", "rank_sum", "responder_50"],
            "visit": ["week8"] * 3, "estimate": [-5.25, -5.5, 0.75], "ci_low": [-6.1, -6.5, 0.2],
            "ci_high": [-4.4, -4.5, 0.95],
            "estimate_type": ["ls_mean_difference", "hl_shift", "risk_difference"],
        }
    )  # fmt: skip
    forest = between_arm_forest_figure(
        table, "itt", ["ancova", "rank_sum", "responder_50"], {"ancova": "ANCOVA"}, {"week8": "Week 8"}, style, "t"
    )
    texts = [t.get_text() for a in forest.axes for t in a.texts]
    assert texts == ["-5.25 (-6.10 to -4.40)", "-5.50 (-6.50 to -4.50)", "0.75 (0.20 to 0.95)"]
    assert [t.get_text() for t in forest.axes[0].get_yticklabels()] == ["ANCOVA, Week 8"]
    png = kf.render_figure(forest, 80)["png"]
    assert png[:4] == b"\x89PNG"


def test_display_tables_format_the_artifacts():
    from k2trial.report.arm_tables import between_arm_display_table, visit_summary_display_table
    from k2trial.report.formatting import Decimals

    members = {"itt": list(ALLOCATION["subject_id"])}
    summary = visit_summary_by_arm(_vas(), ALLOCATION, members, ["MK7", "PLACEBO"], ["baseline", "week8"])
    labels = {"arm": {"MK7": "MK-7", "PLACEBO": "Placebo"}, "visit": {"week8": "Week 8"}, "param": {"pain": "Pain"}}
    shown = visit_summary_display_table(summary, "vas_by_arm", "t", Decimals(), labels, ["MK7", "PLACEBO"])
    row = shown.frame[(shown.frame["Visit"] == "Week 8") & (shown.frame["Value"] == "Value")].iloc[0]
    assert row["MK-7: n"] == "4" and row["MK-7: mean (SD)"] == "3.25 (1.04)"  # sd of 3, 4.5, 2, 3.5 = 1.0408
    assert row["MK-7: median (Q1, Q3)"] == "3.25 (2.75, 3.75)"
    table = pd.DataFrame(
        {
            "population": ["itt"], "param": ["pain"], "visit": ["week8"], "test": ["responder_50"],
            "arm_treated": ["MK7"], "arm_control": ["PLACEBO"], "n_treated": [4], "n_control": [4],
            "estimate": [0.75], "ci_low": [0.1234], "ci_high": [0.9567], "p_value": [0.0286], "p_adjusted": [0.0572],
            "family": ["responders"], "estimate_type": ["risk_difference"], "method": ["Newcombe hybrid score"],
        }
    )  # fmt: skip
    shown = between_arm_display_table(table, "between_arm", "t", Decimals(), labels)
    assert shown.frame.iloc[0].to_dict() == {
        "Population": "itt", "Endpoint": "Pain", "Visit": "Week 8", "Analysis": "responder_50",
        "n (MK-7 / Placebo)": "4 / 4", "Difference (95% CI)": "0.750 (0.123 to 0.957)", "p": "0.029",
        "p (Holm)": "0.057", "Holm family": "responders",
    }  # fmt: skip
    assert "responder_50: Newcombe hybrid score" in shown.notes
