"""Display tables: half-up rounding, p-values, escaping (HTML, LaTeX), builders checked against hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import read_config, shipped_vocabulary

from k2trial.analysis import baseline
from k2trial.core.io import read_yaml
from k2trial.report import formatting as fmt
from k2trial.report import render
from k2trial.report import tables as kt

ROOT = Path(__file__).resolve().parents[1]
CONFIG = read_config()
REGISTRY = read_yaml(ROOT / "workflow/report/registry.yaml")
VOCABULARY = shipped_vocabulary()
SETTINGS = kt.TableSettings.from_config(
    CONFIG["reporting"], CONFIG["efficacy"], CONFIG["safety"], 8.0, VOCABULARY, REGISTRY["tables"]
)
D = SETTINGS.decimals


# ------------------------------------------------------------------------------------------- formatting
@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        (2.675, 2, "2.68"),  # round() gives 2.67 (binary 2.67499999...)
        (0.125, 2, "0.13"),  # round() gives 0.12 (half to even)
        (1.005, 2, "1.01"),
        (1234.5, 0, "1235"),
        (-0.25, 1, "-0.3"),  # half away from zero on the decimal representation
        (-0.04, 1, "0.0"),  # never "-0.0"
        (7.0, 2, "7.00"),
        (float("nan"), 2, "NA"),
        (None, 2, "NA"),
        (float("inf"), 1, "NA"),
    ],
)
def test_format_number_rounds_half_up(value, decimals, expected):
    assert fmt.format_number(value, decimals) == expected


def test_format_number_differs_from_python_round_where_it_should():
    assert round(2.675, 2) == 2.67 and fmt.format_number(2.675, 2) == "2.68"


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.0004, "<0.001"),
        (0.00099, "<0.001"),
        (0.001, "0.001"),
        (0.0495, "0.050"),
        (0.0125, "0.013"),
        (0.9996, "1.000"),
        (1e-300, "<0.001"),
        (float("nan"), "NA"),
    ],
)
def test_format_p_value(p, expected):
    assert fmt.format_p_value(p, 3) == expected


def test_format_p_value_with_four_decimals():
    assert fmt.format_p_value(0.00004, 4) == "<0.0001"
    assert fmt.format_p_value(0.00015, 4) == "0.0002"


def test_counts_percentages_and_intervals():
    assert fmt.format_count_percent(1, 3) == "1 (33.3%)"
    assert fmt.format_count_percent(2, 3) == "2 (66.7%)"
    assert fmt.format_count_percent(1, 8, 0) == "1 (13%)"  # 12.5 rounds up
    assert fmt.format_count_percent(0, 0) == "0"  # no denominator: no percentage
    assert fmt.format_estimate_ci(-6.305, -6.555, -6.005, 2) == "-6.31 (-6.56 to -6.01)"
    assert fmt.format_mean_sd(45.25, 13.30101, 1) == "45.3 (13.3)"
    assert fmt.format_median_iqr(45.0, 37.5, 52.75, 1) == "45.0 (37.5, 52.8)"
    assert fmt.format_range(31, 67, 1) == "31.0 to 67.0"


def test_criterion_labels():
    assert fmt.criterion_label("pct_reduction_ge_30", 30, "percent") == "\u2265 30% reduction"
    assert fmt.criterion_label("point_reduction_ge_2", 2, "cm") == "\u2265 2-point (cm) reduction"
    assert fmt.criterion_label("pct_reduction_ge_50") == "\u2265 50% reduction"
    assert fmt.criterion_label("something_else") == "something_else"


# ------------------------------------------------------------------------------------------- escaping
HOSTILE = "<script>alert(\"x\")</script> & =cmd|' /C calc'!A0 \\ $x_1$ 50% #{}~^"


def hostile_table() -> render.DisplayTable:
    frame = pd.DataFrame({"Term <b>": [HOSTILE, "plain"], "n": ["1", "2"]})
    return render.DisplayTable("hostile", "Title <i>&</i>", frame, ("note <u>",))


def test_html_escapes_every_cell_header_title_and_note():
    page = render.to_html_document(hostile_table(), simulated=False)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp;" in page
    assert "Term &lt;b&gt;" in page
    assert "Title &lt;i&gt;&amp;&lt;/i&gt;" in page
    assert "note &lt;u&gt;" in page
    assert "<b>" not in page and "<i>" not in page and "<u>" not in page


def test_html_document_is_self_contained_and_bannered_when_simulated():
    plain = render.to_html_document(hostile_table(), simulated=False)
    simulated = render.to_html_document(hostile_table(), simulated=True)
    for page in (plain, simulated):
        lowered = page.lower()
        assert "http" not in lowered and "<link" not in lowered and "<script" not in lowered
        assert "@import" not in lowered
    assert "SIMULATED DATA" in simulated and "SIMULATED DATA" not in plain


def test_latex_escape_special_characters_and_symbols():
    assert render.latex_escape("50% & $x_1$ #{}~^\\") == (
        r"50\% \& \$x\_1\$ \#\{\}\textasciitilde{}\textasciicircum{}\textbackslash{}"
    )
    assert render.latex_escape("\u2265 30% <0.001") == r"$\geq$ 30\% \textless{}0.001"
    assert render.latex_escape("\u00b5mol/L") == r"\textmu{}mol/L"


def test_latex_table_escapes_cells_and_uses_booktabs_longtable():
    tex = render.to_latex(hostile_table())
    assert r"\begin{longtable}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    assert "<script>" not in tex and r"\textless{}script\textgreater{}" in tex
    assert r"Term \textless{}b\textgreater{}" in tex
    assert tex.count(r"\\") >= 4  # header twice, two rows


def test_latex_of_simulated_data_says_so_in_caption_and_source():
    plain = render.to_latex(hostile_table())
    simulated = render.to_latex(hostile_table(), simulated=True)
    assert "SIMULATED" not in plain
    caption = next(line for line in simulated.splitlines() if line.startswith(r"\caption{"))
    assert caption.startswith(r"\caption{\textbf{SIMULATED DATA.} ")
    assert simulated.splitlines()[1] == "% SIMULATED DATA: not the trial's patient data."
    # the mark adds a comment line and the caption prefix, nothing else
    assert [line for line in simulated.splitlines() if not line.startswith("% SIMULATED")] == [
        line.replace(r"\caption{", r"\caption{\textbf{SIMULATED DATA.} ") for line in plain.splitlines()
    ]


def test_catalog_entry_records_simulated_data_per_table():
    assert render.catalog_entry(hostile_table(), simulated=True)["simulated"] is True
    assert render.catalog_entry(hostile_table())["simulated"] is False


def test_numeric_cells_are_right_aligned_text_cells_not():
    frame = pd.DataFrame({"a": ["12 (40.0%)", "Female", "3.1 to 9.5", "<0.001", "K2-001"]})
    html_text = render.to_html_fragment(render.DisplayTable("t", "t", frame))
    assert '<td class="num">12 (40.0%)</td>' in html_text
    assert "<td>Female</td>" in html_text and "<td>K2-001</td>" in html_text
    assert '<td class="num">3.1 to 9.5</td>' in html_text and '<td class="num">&lt;0.001</td>' in html_text


# ------------------------------------------------------------------------------------------- builders
def subjects_fixture() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subject_id": ["K2-001", "K2-002", "K2-003", "K2-004"],
            "site": ["SITE-A", "SITE-A", "SITE-B", "SITE-B"],
            "sex": ["F", "M", "F", "F"],
            "age_years": [30, 40, 50, 61],
            "weight_kg": [60.0, 70.0, 80.0, 90.0],
            "height_cm": [160.0, 170.0, 165.0, 175.0],
            "bmi": [23.4, 24.2, 29.4, 29.4],
            "etiology": ["b12_deficiency", "diabetes", "both", "b12_deficiency"],
            "diabetes_duration_years": [np.nan, 5.0, 10.0, np.nan],
            "metformin": [False, True, True, False],
            "prior_b12_therapy": [True, False, False, False],
            "anticoagulant": [False, False, False, False],
            "compliance_pct": [95.0, 100.0, 90.0, 97.5],
            "completed": [True, True, True, False],
            "saffl": [True, True, True, False],
            "efffl": [True, True, False, False],
        }
    )


def assignment_fixture() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subject_id": ["K2-001", "K2-002", "K2-003", "K2-004"],
            "baseline_composite": [7.0, 8.0, 8.5, 6.5],
            "severity_group": ["moderate", "severe", "severe", "moderate"],
            "residual_b12": [True, False, False, False],
        }
    )


def table1() -> render.DisplayTable:
    statistics = baseline.baseline_characteristics(subjects_fixture(), assignment_fixture(), VOCABULARY)
    return kt.baseline_characteristics_table(statistics, SETTINGS)


def test_table1_values_by_hand():
    table = table1()
    frame = table.frame.set_index("Characteristic")
    assert list(table.frame.columns) == [
        "Characteristic",
        "Overall (N=4)",
        "Moderate group (baseline < 8.0) (N=2)",
        "Severe group (baseline \u2265 8.0) (N=2)",
    ]
    age = table.frame.index[table.frame["Characteristic"] == "Age (years)"][0]
    rows = table.frame.iloc[age + 1 : age + 5, 1].tolist()
    # ages 30, 40, 50, 61: mean 45.25, SD sqrt(530.75 / 3) = 13.301, quartiles (linear) 37.5 and 52.75
    assert rows == ["4", "45.3 (13.3)", "45.0 (37.5, 52.8)", "30.0 to 61.0"]
    assert frame.loc["  Female"].tolist() == ["3 (75.0%)", "2 (100.0%)", "1 (50.0%)"]
    assert frame.loc["Metformin, n (%)"].tolist() == ["2 (50.0%)", "0 (0.0%)", "2 (100.0%)"]
    # diabetes duration only over diabetic subjects (K2-002, K2-003): mean 7.5
    duration = table.frame.index[table.frame["Characteristic"].str.startswith("Diabetes duration")][0]
    assert table.frame.iloc[duration + 2, 1] == "7.5 (3.5)"


def test_participant_flow_counts_by_hand():
    vas = pd.DataFrame(
        {
            "subject_id": ["K2-001", "K2-001", "K2-002", "K2-002", "K2-003", "K2-004", "K2-001"],
            "param": ["composite"] * 6 + ["tingling"],
            "visit": ["week4", "week8", "week4", "week8", "week4", "week4", "week8"],
            "aval": [4.0, 1.5, 4.2, np.nan, 4.4, 5.0, 1.0],
        }
    )
    flow = baseline.participant_flow(subjects_fixture(), vas, VOCABULARY)
    # K2-004 not treated; K2-002's week-8 composite missing; K2-003 has no week-8 row
    assert flow["n"].tolist() == [4, 3, 3, 1, 2]
    assert flow["label"].tolist()[2:4] == ["Assessed at week 4", "Assessed at week 8"]
    table = kt.participant_flow_table(flow, SETTINGS)
    assert table.frame["% of enrolled"].tolist() == ["100.0", "75.0", "75.0", "25.0", "50.0"]
    assert table.frame["Not continuing from previous stage"].tolist() == ["", "1", "0", "2", "-1"]


DESCRIPTIVES_LONG = pd.DataFrame(
    {
        "population": ["all", "all", "all"],
        "param": ["composite"] * 3,
        "visit": ["baseline", "week8", "week8"],
        "week": [0, 8, 8],
        "variable": ["aval", "aval", "chg"],
        "n": [30, 30, 30],
        "mean": [7.915, 1.5, -6.415],
        "sd": [0.5, 0.1, 0.45],
        "median": [7.92, 1.53, -6.385],
        "q1": [7.5, 1.48, -6.8],
        "q3": [8.4, 1.63, -6.0],
        "min": [6.5, 1.3, -7.2],
        "max": [8.8, 1.8, -5.1],
    }
)


def test_vas_by_visit_formats_value_and_change():
    table = kt.vas_by_visit_table(DESCRIPTIVES_LONG, SETTINGS)
    week8 = table.frame[table.frame["Visit"] == "Week 8"].iloc[0]
    assert week8["Mean (SD)"] == "1.50 (0.10)"
    assert week8["Change Mean (SD)"] == "-6.42 (0.45)"  # -6.415 half away from zero
    assert week8["Change Median (Q1, Q3)"] == "-6.39 (-6.80, -6.00)"
    baseline = table.frame[table.frame["Visit"] == "Baseline"].iloc[0]
    assert baseline["Change n"] == "" and baseline["Median (Q1, Q3)"] == "7.92 (7.50, 8.40)"


def paired_fixture() -> pd.DataFrame:
    base = {"population": "all", "param": "composite", "visit_from": "baseline", "visit_to": "week8", "n": 30}
    return pd.DataFrame(
        [
            {
                **base,
                "test": "wilcoxon",
                "p_value": 1.7e-6,
                "p_method": "normal_cc",
                "p_adjusted": 5.1e-6,
                "family": "visit_contrasts",
                "estimate": -6.305,
                "ci_low": -6.555,
                "ci_high": -6.005,
                "effect_size": -1.0,
                "es_ci_low": np.nan,
                "es_ci_high": np.nan,
                "es_ci_note": "not estimable: all 30 non-zero changes have the same sign (every value fell), so ...",
                "p_holm_visit_contrasts": 5.1e-6,
                "p_holm_symptoms": np.nan,
            },
            {
                **base,
                "test": "paired_t",
                "p_value": 0.0123,
                "p_method": "t",
                "p_adjusted": 0.0246,
                "family": "visit_contrasts",
                "estimate": -6.3,
                "ci_low": -6.6,
                "ci_high": -6.0,
                "effect_size": -8.25,
                "es_ci_low": -10.4,
                "es_ci_high": -6.1,
                "p_holm_visit_contrasts": 0.0246,
                "p_holm_symptoms": np.nan,
            },
        ]
    )


def test_paired_tests_table_puts_both_tests_on_one_row():
    table = kt.paired_tests_table(paired_fixture(), SETTINGS)
    assert len(table.frame) == 1
    row = table.frame.iloc[0]
    assert row["Comparison"] == "Week 8 vs Baseline"
    assert row["HL median change (95% CI)"] == "-6.31 (-6.56 to -6.01)"
    assert row["Wilcoxon p"] == "<0.001 (normal_cc)"
    assert row["Wilcoxon Holm p (3 visit contrasts)"] == "<0.001"
    assert row["Wilcoxon Holm p (5 symptoms)"] == ""  # not in that family
    assert row["t test p"] == "0.012 (t)"
    assert row["t test Holm p (3 visit contrasts)"] == "0.025"
    assert row["Cohen's d_z (95% CI)"] == "-8.25 (-10.40 to -6.10)"
    # every patient improved: r = -1 and its CI is not estimable, said in the cell and in clinical terms in a note
    assert row["Rank-biserial r (95% CI)"] == "-1.00 (95% CI not estimable)"
    assert kt.RB_NOT_ESTIMABLE_NOTE in table.notes and "all improved" in kt.RB_NOT_ESTIMABLE_NOTE
    assert any("n < 50" in note for note in table.notes)


def test_responders_table():
    responders = pd.DataFrame(
        {
            "population": ["all", "all"],
            "param": ["tingling", "tingling"],
            "criterion": ["pct_reduction_ge_30", "point_reduction_ge_2"],
            "threshold": [30, 2],
            "unit": ["percent", "cm"],
            "responders": [29, 12],
            "n": [30, 30],
            "ci_low": [82.7832, 22.6558],
            "ci_high": [99.9156, 59.4],
        }
    )
    table = kt.responders_table(responders, SETTINGS)
    assert table.frame["Criterion"].tolist() == ["\u2265 30% reduction", "\u2265 2-point (cm) reduction"]
    assert table.frame["Responders / n (%)"].tolist() == ["29 / 30 (96.7%)", "12 / 30 (40.0%)"]
    assert table.frame["95% CI (%)"].tolist() == ["82.8 to 99.9", "22.7 to 59.4"]


def test_shift_table_drops_empty_baseline_rows_and_unused_missing_column():
    rows = []
    for to, n in (("LOW", 1), ("NORMAL", 27), ("HIGH", 2), ("MISSING", 0)):
        rows.append({"param": "ALT", "comparison": "week8", "from": "NORMAL", "to": to, "n": n})
        rows.append({"param": "ALT", "comparison": "week8", "from": "LOW", "to": to, "n": 0})
        rows.append(
            {"param": "ALT", "comparison": "week4", "from": "NORMAL", "to": to, "n": 30 if to == "NORMAL" else 0}
        )
    table = kt.lab_shift_table(pd.DataFrame(rows), SETTINGS)
    assert set(table.frame["Test (unit)"]) == {"Alanine aminotransferase (U/L)"}
    assert list(table.frame.columns) == ["Test (unit)", "Timepoint", "Baseline flag", "LOW", "NORMAL", "HIGH", "Total"]
    assert table.frame["Timepoint"].tolist() == ["Week 4", "Week 8"]  # week 4 first, LOW rows (all zero) gone
    assert table.frame.iloc[1][["LOW", "NORMAL", "HIGH", "Total"]].tolist() == ["1", "27", "2", "30"]


def test_ctcae_worst_table_handles_missing_grade_level():
    rows = [
        {"term": "Anemia", "param": "HGB", "baseline_grade": "1", "worst_grade": "0", "n": 3},
        {"term": "Anemia", "param": "HGB", "baseline_grade": "1", "worst_grade": "1", "n": 1},
        {"term": "Anemia", "param": "HGB", "baseline_grade": "0", "worst_grade": "0", "n": 25},
        {"term": "Anemia", "param": "HGB", "baseline_grade": "0", "worst_grade": "missing", "n": 1},
        {"term": "Anemia", "param": "HGB", "baseline_grade": "2", "worst_grade": "0", "n": 0},
    ]
    table = kt.ctcae_worst_table(pd.DataFrame(rows).assign(ctcae_version="5.0"), SETTINGS)
    assert table.frame["Baseline grade"].tolist() == ["0", "1"]
    assert table.notes[0].startswith("CTCAE v5.0 laboratory criteria")  # the version graded, from the artifact
    assert table.frame.iloc[0][["Worst grade 0", "Worst grade missing", "Total"]].tolist() == ["25", "1", "26"]
    assert table.frame.iloc[1][["Worst grade 0", "Worst grade 1", "Total"]].tolist() == ["3", "1", "4"]


def test_empty_analysis_table_says_why():
    empty = pd.DataFrame(columns=["subject_id", "term", "severity"])
    table = kt.analysis_table(empty, "ae_listing", "AE listing", D, empty_message="No adverse events were reported.")
    assert table.frame.iloc[0, 0] == "No adverse events were reported."
    assert list(table.frame.columns) == ["Subject", "Term", "severity"]


def test_analysis_table_formats_by_column_name():
    frame = pd.DataFrame(
        {"param": ["composite"], "n": [30], "p_value": [0.0004], "kendall_w": [0.91234], "percent": [33.333]}
    )
    table = kt.analysis_table(frame, "x", "x", D, vocabulary=VOCABULARY)
    assert table.frame.iloc[0].tolist() == ["Composite (mean of 5)", "30", "<0.001", "0.91", "33.3"]


def test_catalog_round_trip():
    table = hostile_table()
    again = render.table_from_catalog(render.catalog_entry(table))
    assert again.title == table.title and again.notes == table.notes
    pd.testing.assert_frame_equal(again.frame, table.frame, check_dtype=False)


def test_renderers_are_deterministic():
    first, second = table1(), table1()
    assert render.to_html_document(first, simulated=True) == render.to_html_document(second, simulated=True)
    assert render.to_latex(first) == render.to_latex(second)
    from k2trial.core.io import csv_bytes

    assert csv_bytes(first.frame) == csv_bytes(second.frame)


def test_every_registry_table_has_a_builder_and_every_builder_a_registry_entry():
    assert [entry["name"] for entry in REGISTRY["tables"]] == list(kt.BUILDERS)


def test_is_missing_only_for_missing():
    assert fmt.format_integer(0) == "0" and fmt.format_integer(math.nan) == "NA"
