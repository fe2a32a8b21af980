"""k2trial.analysis.claims: the published claims of config/claims.yaml against in-memory artifacts.

The unit tests use a stand-in of the shipped run: small frames in the schema's column layout holding the values of
the shipped simulated run (per-subject baseline and week-8 composite VAS of results/groups/assignment.csv and
results/analysis/vas.csv, and the summary rows the efficacy and safety steps wrote from them). Group medians and
percent changes are recomputed here with the statistics module, not taken from the evaluator. Two workflow tests
run the pipeline on the shipped raw data (data/raw): the claims it writes, and that the stand-in holds its values.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import copy_workflow, run_snakemake

from k2trial.analysis import claims, efficacy
from k2trial.core import io as tabular
from k2trial.core import schema
from k2trial.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SPEC = yaml.safe_load((ROOT / "config" / "claims.yaml").read_text(encoding="utf-8"))
CLAIMS = claims.parse_claims(SPEC)
LABELS = {
    "subjects": "results/analysis/subjects.csv",
    "vas": "results/analysis/vas.csv",
    "assignment": "results/groups/assignment.csv",
    "counts": "results/groups/counts.csv",
    "descriptives": "results/efficacy/descriptives.csv",
    "paired_tests": "results/efficacy/paired_tests.csv",
    "safety_conclusion": "results/safety/safety_conclusion.csv",
    "hys_law": "results/safety/hys_law.csv",
    "ae_summary": "results/safety/ae_summary.csv",
}
DEFINITIONS = {"severe_threshold": 8.0, "adequate_b12_from": 300, "confidence": 0.95, "confidence_percent": 95.0}

# Shipped simulated data: subject -> (baseline composite, week-8 composite, etiology, residual_b12).
SUBJECTS = {
    "K2-001": (7.52, 1.72, "b12_deficiency", True),
    "K2-002": (6.48, 1.46, "b12_deficiency", True),
    "K2-003": (7.14, 1.54, "b12_deficiency", False),
    "K2-004": (7.62, 1.50, "b12_deficiency", False),
    "K2-005": (8.14, 1.80, "both", True),
    "K2-006": (7.34, 1.76, "both", False),
    "K2-007": (8.10, 1.70, "b12_deficiency", False),
    "K2-008": (7.74, 1.58, "b12_deficiency", True),
    "K2-009": (8.38, 1.52, "b12_deficiency", False),
    "K2-010": (6.68, 1.46, "b12_deficiency", True),
    "K2-011": (8.52, 1.68, "both", True),
    "K2-012": (8.58, 1.58, "diabetes", False),
    "K2-013": (8.68, 1.50, "b12_deficiency", True),
    "K2-014": (6.86, 1.54, "b12_deficiency", False),
    "K2-015": (6.92, 1.30, "b12_deficiency", False),
    "K2-016": (8.44, 1.52, "both", False),
    "K2-017": (8.80, 1.48, "b12_deficiency", False),
    "K2-018": (8.40, 1.64, "b12_deficiency", False),
    "K2-019": (8.72, 1.38, "b12_deficiency", True),
    "K2-020": (8.62, 1.42, "diabetes", False),
    "K2-021": (8.28, 1.72, "diabetes", False),
    "K2-022": (8.54, 1.52, "b12_deficiency", False),
    "K2-023": (7.34, 1.48, "diabetes", False),
    "K2-024": (7.34, 1.54, "diabetes", False),
    "K2-025": (8.40, 1.58, "b12_deficiency", True),
    "K2-026": (6.96, 1.60, "b12_deficiency", True),
    "K2-027": (7.54, 1.46, "diabetes", False),
    "K2-028": (7.40, 1.50, "both", False),
    "K2-029": (7.30, 1.38, "diabetes", False),
    "K2-030": (8.54, 1.74, "both", False),
}
# Hodges-Lehmann change baseline-week8 (cm) of results/efficacy/paired_tests.csv, population all, Wilcoxon rows;
# the paired-t rows carry the mean change instead (a claim reading them by mistake would see other numbers).
HL_CHANGE = {"tingling": -8.2, "numbness": -8.0, "weakness": -5.15, "fatigue": -5.25, "cramps": -5.05}
MEAN_CHANGE = {"tingling": -8.1, "numbness": -7.98666666667, "weakness": -5.09, "fatigue": -5.22333333333}
MEAN_CHANGE["cramps"] = -5.05333333333


def _row(columns: list[str], **values) -> dict:
    """A full-width row of an artifact: unknown column names fail, so the fixture follows the real layout."""
    unknown = set(values) - set(columns)
    assert not unknown, f"not columns of the artifact: {unknown}"
    return {c: values.get(c, math.nan) for c in columns}


def _frame(columns: list[str], rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([_row(columns, **r) for r in rows], columns=columns)


def _group(name: str) -> list[str]:
    threshold = DEFINITIONS["severe_threshold"]
    return [s for s, (base, *_) in SUBJECTS.items() if (base >= threshold) == (name == "severe")]


def shipped_artifacts() -> dict[str, pd.DataFrame]:
    ids = list(SUBJECTS)
    subjects = _frame(
        schema.columns("analysis/subjects"),
        [{"subject_id": s, "etiology": SUBJECTS[s][2], "saffl": True, "efffl": True} for s in ids],
    )
    vas_rows = []
    for s, (base, week8, *_) in SUBJECTS.items():
        vas_rows.append({"subject_id": s, "param": "composite", "visit": "baseline", "week": 0, "aval": base})
        vas_rows[-1].update(base=base, chg=0.0, pchg=0.0)
        vas_rows.append(
            {"subject_id": s, "param": "composite", "visit": "week8", "week": 8, "aval": week8, "base": base}
        )
        vas_rows[-1].update(chg=week8 - base, pchg=100 * (week8 - base) / base)
    vas = _frame(schema.columns("analysis/vas"), vas_rows)
    assignment = _frame(
        schema.columns("groups/assignment"),
        [
            {
                "subject_id": s,
                "efffl": True,
                "baseline_composite": base,
                "severity_group": "severe" if base >= 8 else "moderate",
                "severe_threshold": 8.0,
                "etiology": etiology,
                "b12_deficient": etiology != "diabetes",
                "residual_b12": residual,
            }
            for s, (base, _, etiology, residual) in SUBJECTS.items()
        ],
    )
    n_b12 = sum(e != "diabetes" for _, _, e, _ in SUBJECTS.values())
    n_residual = sum(r for *_, r in SUBJECTS.values())
    counts = _frame(
        schema.columns("groups/counts"),
        [
            {"group": "all", "n_enrolled": 30, "n_efficacy_set": 30},
            {"group": "moderate", "n_enrolled": 15, "n_efficacy_set": 15},
            {"group": "severe", "n_enrolled": 15, "n_efficacy_set": 15},
            {"group": "b12_deficient", "n_enrolled": n_b12, "n_efficacy_set": n_b12},
            {"group": "diabetic", "n_enrolled": 13, "n_efficacy_set": 13},
            {"group": "residual_b12", "n_enrolled": n_residual, "n_efficacy_set": n_residual},
        ],
    )
    descriptive_rows = []
    for population, members in (("all", ids), ("moderate", _group("moderate")), ("severe", _group("severe"))):
        baseline = [SUBJECTS[s][0] for s in members]
        week8 = [SUBJECTS[s][1] for s in members]
        change = [round(w - b, 2) for b, w in zip(baseline, week8, strict=True)]
        for visit, variable, values in (
            ("baseline", "aval", baseline),
            ("week8", "aval", week8),
            ("week8", "chg", change),
        ):
            descriptive_rows.append(
                {
                    "population": population,
                    "param": "composite",
                    "visit": visit,
                    "week": 0 if visit == "baseline" else 8,
                    "variable": variable,
                    "n": len(values),
                    "mean": statistics.fmean(values),
                    "median": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                }
            )
    descriptives = _frame(schema.columns("efficacy/descriptives"), descriptive_rows)
    test_rows = []
    for param in ("tingling", "numbness", "weakness", "fatigue", "cramps"):
        common = {"population": "all", "param": param, "visit_from": "baseline", "visit_to": "week8", "n": 30}
        test_rows.append(
            {**common, "test": "wilcoxon", "estimate_type": "hl_median_change", "estimate": HL_CHANGE[param]}
        )
        test_rows.append({**common, "test": "paired_t", "estimate_type": "mean_change", "estimate": MEAN_CHANGE[param]})
    residual = {"population": "residual_b12", "param": "composite", "visit_from": "baseline", "visit_to": "week8"}
    test_rows.append({**residual, "n": 10, "test": "wilcoxon", "estimate": -6.2, "ci_low": -6.84, "ci_high": -5.58})
    test_rows[-1]["ci_level"] = 0.95
    test_rows.append({**residual, "n": 10, "test": "paired_t", "estimate": -6.208, "ci_low": -6.806, "ci_high": -5.61})
    paired_tests = _frame(schema.columns("efficacy/paired_tests", p_holm=efficacy.HOLM_FAMILIES), test_rows)
    conclusion = _frame(
        schema.columns("safety/safety_conclusion"),
        [
            {
                "scope": "lab",
                "param": "ALT",
                "n_subjects": 30,
                "worst_grade": 0,
                "n_significant": 0,
                "significant": False,
            },
            {
                "scope": "lab",
                "param": "NA",
                "n_subjects": 30,
                "worst_grade": 0,
                "n_significant": 0,
                "significant": False,
            },
            {"scope": "hys_law", "param": "HYS_LAW", "n_subjects": 30, "n_significant": 0, "significant": False},
            {
                "scope": "overall",
                "param": "ALL",
                "n_subjects": 30,
                "worst_grade": 1,
                "n_significant": 0,
                "significant": False,
            },
        ],
    )
    hys_law = pd.DataFrame(columns=schema.columns("safety/hys_law"))
    categories = ("any", "treatment_emergent", "related", "severe", "serious", "leading_to_withdrawal")
    ae_summary = _frame(
        schema.columns("safety/ae_summary"),
        [{"category": c, "n_subjects": 0, "percent": 0.0, "n_events": 0, "denominator": 30} for c in categories],
    )
    return {
        "subjects": subjects,
        "vas": vas,
        "assignment": assignment,
        "counts": counts,
        "descriptives": descriptives,
        "paired_tests": paired_tests,
        "safety_conclusion": conclusion,
        "hys_law": hys_law,
        "ae_summary": ae_summary,
    }


def evaluate(artifacts: dict) -> pd.DataFrame:
    table = claims.evaluate_claims(
        CLAIMS, artifacts, artifact_labels=LABELS, definitions=DEFINITIONS, data_simulated=True
    )
    return table.set_index("claim_id", drop=False)


@pytest.fixture
def shipped() -> dict[str, pd.DataFrame]:
    return shipped_artifacts()


# ---------------------------------------------------------------------------------------------------------------
# The spec


def test_spec_holds_every_published_claim_in_order():
    ids = [c.claim_id for c in CLAIMS]
    assert ids == [
        "P01_enrolment",
        "P02_b12_group_size",
        "P03_moderate_baseline_range",
        "P04_severe_baseline_range",
        "P05_week8_level_both_groups",
        "P06_tingling_numbness_fall_most",
        "P07_residual_10_of_23",
        "P08_residual_score_fell",
        "P09_organ_function_safe",
        "P10_no_adverse_events",
        "S01_improved_1_2_points",
        "S02_relative_improvement_12_33_percent",
    ]
    assert [c.primary for c in CLAIMS] == [True] * 10 + [False] * 2


def test_wording_quotes_study_md_verbatim():
    study_md = ROOT.parent / "shared" / "STUDY.md"  # the project's list of published facts, beside the checkout
    if not study_md.exists():
        pytest.skip("STUDY.md is not beside this checkout")
    study = " ".join(study_md.read_text(encoding="utf-8").replace("**", "").split())
    for claim in CLAIMS:
        assert " ".join(claim.wording.split()) in study, claim.claim_id


def test_required_columns_lists_what_each_artifact_must_provide():
    needed = claims.required_columns(CLAIMS)
    assert needed["descriptives"] == ["population", "param", "visit", "variable", "median", "n"]
    assert needed["hys_law"] == ["subject_id"]
    assert needed["vas"] == ["param", "visit", "pchg"]
    assert set(needed) == set(LABELS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"aggregate": "mode"}, "unknown aggregate 'mode'"),
        ({"expected": {"roughly": 3}}, "unknown expectation 'roughly'"),
        ({"expected": {"between": [2, 1]}}, "low 2 is above high 1"),
        ({"expected": {"below": True}}, "only be compared with `equals`"),
        ({"aggregate": "range", "expected": {"equals": 3}}, "range needs"),
        ({"missing": "ignore"}, "`missing` must be fail or drop"),
        ({"colour": "red"}, "unknown key(s) colour"),
    ],
)
def test_spec_errors_name_the_claim_and_check(change, message):
    check = {"artifact": "counts", "column": "n_enrolled", "aggregate": "value", "expected": {"equals": 1}, **change}
    document = {"claims": [{"claim_id": "X1", "primary": True, "source": "s", "wording": "w", "statistic": "t",
                            "checks": [check]}]}  # fmt: skip
    with pytest.raises(ConfigError, match="claim X1, check 1") as error:
        claims.parse_claims(document)
    assert message in str(error.value)


def test_spec_rejects_duplicate_ids_and_missing_primary_flag():
    claim = SPEC["claims"][0]
    with pytest.raises(ConfigError, match="duplicate claim_id"):
        claims.parse_claims({"claims": [claim, claim]})
    with pytest.raises(ConfigError, match="`primary` must be true or false"):
        claims.parse_claims({"claims": [{k: v for k, v in claim.items() if k != "primary"}]})


# ---------------------------------------------------------------------------------------------------------------
# The shipped simulated data


# What the shipped run observes for each primary claim (results/claims/claims.csv, column observed).
OBSERVED = {
    "P01_enrolment": "30 rows",
    "P02_b12_group_size": "n_enrolled 23",
    "P03_moderate_baseline_range": "min 6.48, max 7.74 (n = 15)",
    "P04_severe_baseline_range": "min 8.10, max 8.80 (n = 15)",
    "P05_week8_level_both_groups": "moderate: median 1.50 (n = 15); severe: median 1.58 (n = 15)",
    "P06_tingling_numbness_fall_most": "tingling -8.20, numbness -8.00 vs weakness -5.15, fatigue -5.25, cramps -5.05",
    "P07_residual_10_of_23": "residual: n_enrolled 10; B12-deficient: n_enrolled 23",
    "P08_residual_score_fell": (
        "Hodges-Lehmann change: estimate -6.20 (n = 10, ci_low = -6.84, ci_level = 0.95); "
        "upper confidence limit: ci_high -5.58"
    ),
    "P09_organ_function_safe": (
        "safety conclusion (overall): significant false (n_significant = 0, n_subjects = 30); Hy's law listing: 0 rows"
    ),
    "P10_no_adverse_events": "n_subjects 0 (n_events = 0, denominator = 30)",
}


@pytest.fixture(scope="module")
def shipped_build(tmp_path_factory) -> Path:
    """The workflow run on the shipped raw data (data/raw) in a throw-away copy, up to the claims table."""
    work = copy_workflow(tmp_path_factory.mktemp("claims") / "wf")
    result = run_snakemake(work, "results/claims/claims.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    return work


@pytest.mark.workflow
def test_shipped_data_reproduce_every_primary_claim(shipped_build):
    table = schema.read_artifact(shipped_build / "results/claims/claims.csv", "claims/claims")
    assert list(table.columns) == schema.columns("claims/claims")
    assert list(table["claim_id"]) == [c.claim_id for c in CLAIMS]
    primary = table[table["primary"]].set_index("claim_id")
    assert primary["status"].to_dict() == dict.fromkeys(OBSERVED, "reproduced")
    assert primary["observed"].to_dict() == OBSERVED
    assert table["data_simulated"].all()


@pytest.mark.workflow
def test_the_stand_in_holds_the_values_of_the_shipped_run(shipped_build):
    results = shipped_build / "results"
    assignment = schema.read_artifact(results / "groups/assignment.csv", "groups/assignment").set_index("subject_id")
    vas = schema.read_artifact(results / "analysis/vas.csv", "analysis/vas")
    week8 = vas[(vas["param"] == "composite") & (vas["visit"] == "week8")].set_index("subject_id")["aval"]
    shipped = {
        s: (
            assignment.at[s, "baseline_composite"],
            week8[s],
            assignment.at[s, "etiology"],
            assignment.at[s, "residual_b12"],
        )
        for s in assignment.index
    }
    assert list(shipped) == list(SUBJECTS)
    for s, (base, w8, etiology, residual) in SUBJECTS.items():
        assert shipped[s][0] == pytest.approx(base) and shipped[s][1] == pytest.approx(w8), s
        assert shipped[s][2:] == (etiology, residual), s
    tests = schema.read_artifact(results / "efficacy/paired_tests.csv", "efficacy/paired_tests")
    rows = tests[(tests["population"] == "all") & (tests["visit_from"] == "baseline") & (tests["visit_to"] == "week8")]
    for test, expected in (("wilcoxon", HL_CHANGE), ("paired_t", MEAN_CHANGE)):
        got = rows[rows["test"] == test].set_index("param")["estimate"]
        assert {p: got[p] for p in expected} == pytest.approx(expected, abs=1e-9), test


def test_stand_in_of_the_shipped_run_reproduces_every_primary_claim(shipped):
    table = evaluate(shipped)
    assert list(table.columns) == schema.columns("claims/claims")
    assert list(table["claim_id"]) == [c.claim_id for c in CLAIMS]
    primary = table[table["primary"]]
    assert primary["status"].to_dict() == dict.fromkeys(OBSERVED, "reproduced")
    assert primary["observed"].to_dict() == OBSERVED
    # Medians of the week-8 composites by hand: moderate (1.30 ... 1.76) middle value 1.50, severe 1.58.
    assert statistics.median(SUBJECTS[s][1] for s in _group("moderate")) == 1.50
    assert statistics.median(SUBJECTS[s][1] for s in _group("severe")) == 1.58


def test_secondary_one_to_two_points_is_not_reproduced_and_the_values_say_why(shipped):
    table = evaluate(shipped)
    # The median fall is about 6 points (6-9 at baseline to 1-2 at week 8), about 80 %, not 1-2 points or 12.5-33 %.
    change = statistics.median(round(w - b, 2) for b, w, *_ in SUBJECTS.values())
    percent = statistics.median(100 * (w - b) / b for b, w, *_ in SUBJECTS.values())
    assert change == pytest.approx(-6.25)
    assert percent == pytest.approx(-80.0591, abs=1e-4)
    assert table.loc["S01_improved_1_2_points", ["expected", "observed", "status"]].tolist() == [
        "within [-2, -1]",
        "median -6.25 (n = 30)",
        "not_reproduced",
    ]
    assert table.loc["S02_relative_improvement_12_33_percent", ["expected", "observed", "status"]].tolist() == [
        "within [-33, -12.5]",
        "median -80.1 (n = 30)",
        "not_reproduced",
    ]
    assert table.loc[["S01_improved_1_2_points", "S02_relative_improvement_12_33_percent"], "primary"].tolist() == [
        False,
        False,
    ]


def test_evidence_names_artifact_selector_column_and_spreadsheet_row(shipped):
    table = evaluate(shipped)
    # moderate week-8 aval is the 5th descriptives record (all: 3 rows, moderate baseline first): row 2 + 4 = 6.
    assert table.loc["P05_week8_level_both_groups", "evidence"] == (
        "results/efficacy/descriptives.csv: population=moderate, param=composite, visit=week8, variable=aval; "
        "column median, row 6 | "
        "results/efficacy/descriptives.csv: population=severe, param=composite, visit=week8, variable=aval; "
        "column median, row 9"
    )
    assert table.loc["P01_enrolment", "evidence"] == "results/analysis/subjects.csv: all rows; rows 2-31"
    assert table.loc["P09_organ_function_safe", "evidence"].endswith("results/safety/hys_law.csv: all rows; no rows")
    assert "test=wilcoxon" in table.loc["P06_tingling_numbness_fall_most", "evidence"]
    assert table.loc["P03_moderate_baseline_range", "statistic"].endswith(
        "moderate group (baseline composite < 8); every subject must lie within 6-8"
    )
    assert "95% confidence interval" in table.loc["P08_residual_score_fell", "statistic"]


def test_table_cells_need_no_spreadsheet_escaping(shipped):
    # A cell starting with "=", "-" or "<" would be written with a leading quote: expected and observed start in words.
    table = evaluate(shipped).reset_index(drop=True)
    assert tabular.escape_formulas(table).equals(table)


def test_summary_counts_and_simulated_caveat(shipped):
    table = evaluate(shipped)
    summary = claims.claims_summary(table, data_simulated=True, dataset={"name": "k2trial-simulated", "version": "1.0"})
    assert summary["counts"] == {"reproduced": 10, "not_reproduced": 2, "not_evaluable": 0}
    assert summary["primary"] == {"n": 10, "counts": {"reproduced": 10, "not_reproduced": 0, "not_evaluable": 0}}
    assert summary["secondary"]["counts"]["not_reproduced"] == 2
    assert summary["all_primary_reproduced"] is True
    assert summary["data_simulated"] is True and "SIMULATED" in summary["caveat"]
    assert set(table["data_simulated"]) == {True}
    real = claims.claims_summary(table, data_simulated=False, dataset={})
    assert real["caveat"] is None


@pytest.mark.parametrize(
    ("dataset", "flag"),
    [
        ({"simulated": True}, True),
        ({"simulated": False}, False),
        ({"simulated": "false"}, False),
        ({}, None),
        (None, None),
    ],
)
def test_dataset_is_simulated(dataset, flag):
    assert claims.dataset_is_simulated(dataset) is flag


# ---------------------------------------------------------------------------------------------------------------
# Datasets on which a claim fails


def test_a_different_enrolment_is_not_reproduced(shipped):
    shipped["subjects"] = shipped["subjects"].iloc[:28]
    row = evaluate(shipped).loc["P01_enrolment"]
    assert (row["status"], row["observed"], row["expected"]) == ("not_reproduced", "28 rows", "30")


def test_a_group_ending_at_3_5_is_not_reproduced(shipped):
    descriptives = shipped["descriptives"]
    severe_week8 = (descriptives["population"] == "severe") & (descriptives["visit"] == "week8")
    descriptives.loc[severe_week8 & (descriptives["variable"] == "aval"), "median"] = 3.5
    table = evaluate(shipped)
    row = table.loc["P05_week8_level_both_groups"]
    assert row["status"] == "not_reproduced"
    assert row["observed"] == "moderate: median 1.50 (n = 15); severe: median 3.50 (n = 15)"
    summary = claims.claims_summary(table.reset_index(drop=True), data_simulated=True, dataset={})
    assert summary["all_primary_reproduced"] is False
    assert summary["counts"] == {"reproduced": 9, "not_reproduced": 3, "not_evaluable": 0}


def test_an_adverse_event_is_not_reproduced(shipped):
    summary = shipped["ae_summary"]
    summary.loc[summary["category"].isin(["any", "treatment_emergent"]), ["n_subjects", "n_events"]] = 1
    row = evaluate(shipped).loc["P10_no_adverse_events"]
    assert (row["status"], row["observed"]) == ("not_reproduced", "n_subjects 1 (n_events = 1, denominator = 30)")


def test_an_alt_rise_making_the_safety_conclusion_significant_is_not_reproduced(shipped):
    conclusion = shipped["safety_conclusion"]
    for param in ("ALT", "ALL"):
        conclusion.loc[conclusion["param"] == param, ["worst_grade", "n_significant", "significant"]] = [2, 1, True]
    row = evaluate(shipped).loc["P09_organ_function_safe"]
    assert row["status"] == "not_reproduced"
    assert row["observed"] == (
        "safety conclusion (overall): significant true (n_significant = 1, n_subjects = 30); Hy's law listing: 0 rows"
    )


def test_a_hys_law_case_is_not_reproduced(shipped):
    case = _row(
        schema.columns("safety/hys_law"), subject_id="K2-007", visit="week4", week=4, alt_xuln=4.1, tbil_xuln=2.3
    )
    shipped["hys_law"] = pd.DataFrame([case], columns=schema.columns("safety/hys_law"))
    row = evaluate(shipped).loc["P09_organ_function_safe"]
    assert row["status"] == "not_reproduced"
    assert row["observed"].endswith("Hy's law listing: 1 row")
    assert row["evidence"].endswith("results/safety/hys_law.csv: all rows; row 2")


def test_a_subject_outside_the_moderate_range_is_not_reproduced(shipped):
    assignment = shipped["assignment"]
    assignment.loc[assignment["subject_id"] == "K2-002", "baseline_composite"] = 5.9
    row = evaluate(shipped).loc["P03_moderate_baseline_range"]
    assert (row["status"], row["observed"]) == ("not_reproduced", "min 5.90, max 7.74 (n = 15)")


def test_numbness_falling_less_than_weakness_is_not_reproduced_and_ties_do_not_count(shipped):
    tests = shipped["paired_tests"]
    numbness = (tests["param"] == "numbness") & (tests["test"] == "wilcoxon")
    tests.loc[numbness, "estimate"] = -5.0
    row = evaluate(shipped).loc["P06_tingling_numbness_fall_most"]
    assert (row["status"], row["observed"]) == (
        "not_reproduced",
        "tingling -8.20, numbness -5.00 vs weakness -5.15, fatigue -5.25, cramps -5.05",
    )
    tests.loc[numbness, "estimate"] = -5.249999999  # shown -5.25, a tie with fatigue: not "more than"
    assert evaluate(shipped).loc["P06_tingling_numbness_fall_most", "status"] == "not_reproduced"


def test_residual_interval_touching_zero_is_not_reproduced(shipped):
    tests = shipped["paired_tests"]
    residual = (tests["population"] == "residual_b12") & (tests["test"] == "wilcoxon")
    tests.loc[residual, "ci_high"] = 0.3
    row = evaluate(shipped).loc["P08_residual_score_fell"]
    assert row["status"] == "not_reproduced"
    assert row["observed"].endswith("upper confidence limit: ci_high 0.30")


# ---------------------------------------------------------------------------------------------------------------
# Missing data: never reproduced


def test_a_missing_artifact_is_not_evaluable(shipped):
    del shipped["descriptives"]
    table = evaluate(shipped)
    for claim_id in ("P05_week8_level_both_groups", "S01_improved_1_2_points"):
        assert table.loc[claim_id, "status"] == "not_evaluable"
    assert table.loc["S01_improved_1_2_points", "observed"] == "NA"
    assert table.loc["S01_improved_1_2_points", "evidence"] == "results/efficacy/descriptives.csv: artifact missing"
    assert table.loc["P01_enrolment", "status"] == "reproduced"


def test_a_missing_row_or_column_or_value_is_not_evaluable(shipped):
    descriptives = shipped["descriptives"]
    shipped["descriptives"] = descriptives[descriptives["population"] != "severe"].reset_index(drop=True)
    row = evaluate(shipped).loc["P05_week8_level_both_groups"]
    assert row["status"] == "not_evaluable"
    assert row["observed"] == "moderate: median 1.50 (n = 15); severe: NA"
    assert row["evidence"].endswith("visit=week8, variable=aval: no matching row")

    shipped = shipped_artifacts()
    shipped["ae_summary"] = shipped["ae_summary"].drop(columns=["n_subjects"])
    row = evaluate(shipped).loc["P10_no_adverse_events"]
    assert (row["status"], row["evidence"]) == (
        "not_evaluable",
        "results/safety/ae_summary.csv: column(s) n_subjects missing",
    )

    shipped = shipped_artifacts()
    tests = shipped["paired_tests"]
    tests.loc[(tests["population"] == "residual_b12") & (tests["test"] == "wilcoxon"), "estimate"] = math.nan
    row = evaluate(shipped).loc["P08_residual_score_fell"]
    assert row["status"] == "not_evaluable"
    assert row["observed"].startswith("Hodges-Lehmann change: estimate NA (n = 10")


def test_a_failing_check_outweighs_a_missing_one(shipped):
    descriptives = shipped["descriptives"]
    descriptives.loc[(descriptives["population"] == "moderate") & (descriptives["visit"] == "week8"), "median"] = 3.5
    shipped["descriptives"] = descriptives[descriptives["population"] != "severe"].reset_index(drop=True)
    assert evaluate(shipped).loc["P05_week8_level_both_groups", "status"] == "not_reproduced"
    assert claims.combine_statuses(["reproduced", "not_evaluable"]) == "not_evaluable"
    assert claims.combine_statuses(["not_evaluable", "not_reproduced"]) == "not_reproduced"


def test_two_rows_for_a_single_value_are_not_evaluable(shipped):
    counts = shipped["counts"]
    shipped["counts"] = pd.concat([counts, counts[counts["group"] == "b12_deficient"]], ignore_index=True)
    row = evaluate(shipped).loc["P02_b12_group_size"]
    assert row["status"] == "not_evaluable"
    assert row["evidence"].endswith("2 rows match, the spec must select one")


def test_missing_values_fail_an_aggregate_unless_the_check_drops_them(shipped):
    vas = shipped["vas"]
    week8 = vas.index[(vas["visit"] == "week8")]
    vas.loc[week8[:2], ["aval", "chg", "pchg"]] = math.nan  # two subjects without a week-8 diary
    row = evaluate(shipped).loc["S02_relative_improvement_12_33_percent"]
    expected = statistics.median(100 * (w - b) / b for b, w, *_ in list(SUBJECTS.values())[2:])
    assert row["observed"] == f"median {claims.format_value(expected, 1)} (n = 28, 2 missing left out)"
    assert row["status"] == "not_reproduced"

    assignment = shipped["assignment"]
    assignment.loc[assignment["subject_id"] == "K2-002", "baseline_composite"] = math.nan
    row = evaluate(shipped).loc["P03_moderate_baseline_range"]
    assert row["status"] == "not_evaluable"
    assert row["evidence"].endswith("1 of 15 values missing")


# ---------------------------------------------------------------------------------------------------------------
# Rounding: half up, judged as displayed


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [(2.675, 2, "2.68"), (-0.25, 1, "-0.3"), (-0.001, 2, "0.00"), (30, 0, "30"), (1.005, 2, "1.01"), (True, 2, "true")],
)
def test_format_value_rounds_half_up(value, decimals, text):
    assert claims.format_value(value, decimals) == text


@pytest.mark.parametrize(
    ("median", "status"), [(2.004, "reproduced"), (2.005, "not_reproduced"), (0.995, "reproduced")]
)
def test_values_are_judged_as_displayed(shipped, median, status):
    descriptives = shipped["descriptives"]
    target = (descriptives["population"] == "moderate") & (descriptives["visit"] == "week8")
    descriptives.loc[target & (descriptives["variable"] == "aval"), "median"] = median
    assert evaluate(shipped).loc["P05_week8_level_both_groups", "status"] == status


def test_where_matches_text_numbers_and_booleans_as_read_from_csv():
    frame = pd.DataFrame({"flag": ["True", "False", ""], "n": ["1", "2", "x"], "param": ["NA", "K", "NA"]})
    check = claims.Check("t", "param", "count", claims.Expectation("equals", (1,)), where={"flag": True, "n": 1})
    assert claims.evaluate_check(check, frame, "t.csv").observed == "1 row"
    check = claims.Check("t", "n", "count", claims.Expectation("equals", (2,)), where={"param": ["NA"]})
    assert claims.evaluate_check(check, frame, "t.csv").status == "reproduced"
    categorical = frame.astype({"param": "category"})
    check = claims.Check("t", "n", "count", claims.Expectation("equals", (0,)), where={"param": "Na"})
    assert claims.evaluate_check(check, categorical, "t.csv").observed == "0 rows"  # "Na" is not a category
    check = claims.Check("t", "n", "value", claims.Expectation("equals", (2,)), where={"param": "K"})
    assert claims.evaluate_check(check, categorical, "t.csv").status == "reproduced"
