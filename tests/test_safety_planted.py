"""The safety step end to end (workflow/scripts/safety_analysis.py) on the planted-abnormality fixture of the
acceptance: an ALT rise to 4 x ULN with bilirubin 2.5 x ULN, an INR of 1.8, a haemoglobin of 7.5 g/dL and a severe
adverse event are each graded and listed correctly; issue 12: ALT 130, 380, 400 U/L with an abnormal baseline, a
baseline sample after the first dose, values in SI units and a precision the contract does not record, a default
reference range; the run is deterministic. (Fixture: tests/fixtures/safety/planted, written by make_planted.py
there; every expected grade is worked out by hand from the CTCAE v5.0 tables.)
"""

from __future__ import annotations

import re
import runpy
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import read_config

from k2trial.analysis.safety.conclusion import SAFETY_TABLES
from k2trial.core import schema
from k2trial.core.vocabulary import vocabulary_sources

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "safety" / "planted"
SCRIPT = ROOT / "workflow" / "scripts" / "safety_analysis.py"
CONFIG = read_config()


class Named(list):
    """The part of Snakemake's named lists a script uses: attribute access, keys(), iteration over values."""

    def __init__(self, **items: str):
        super().__init__(items.values())
        self._items = items

    def __getattr__(self, name: str) -> str:
        try:
            return self._items[name]
        except KeyError:
            raise AttributeError(name) from None

    def keys(self):
        return self._items.keys()


def run_safety_step(inputs: Path, out: Path) -> dict[str, pd.DataFrame]:
    smk = SimpleNamespace(
        input=Named(
            labs=str(inputs / "labs.csv"),
            subjects=str(inputs / "subjects.csv"),
            adverse_events=str(inputs / "adverse_events.csv"),
            codebook=str(ROOT / "data" / "raw" / "codebook.yaml"),
            lab_units=str(ROOT / "config" / "lab_units.yaml"),
            lab_standards=str(ROOT / "config" / "lab_standards.yaml"),
            ctcae_criteria=str(ROOT / "config" / "ctcae" / f"ctcae_v{CONFIG['safety']['ctcae_version']}.yaml"),
        ),
        output=Named(**{name: str(out / f"{name}.csv") for name in SAFETY_TABLES}),
        params=SimpleNamespace(
            safety=CONFIG["safety"], b12_status=CONFIG["b12_status"], vocabulary=vocabulary_sources(CONFIG)
        ),
        log=[str(out / "safety_analysis.log")],
        rule="safety_analysis",
    )
    runpy.run_path(str(SCRIPT), init_globals={"snakemake": smk}, run_name="__main__")
    return {name: pd.read_csv(out / f"{name}.csv", keep_default_na=False, na_values=[""]) for name in SAFETY_TABLES}


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict[str, pd.DataFrame]:
    return run_safety_step(FIXTURE, tmp_path_factory.mktemp("safety"))


def _rule_blocks() -> dict[str, str]:
    """Every rule of the workflow's rule files by name, with its text."""
    blocks = {}
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        # a rule of one design only is indented under its `if` (if DIARY:, if ARMS:)
        for block in re.split(r"(?m)^(?= *rule )", path.read_text())[1:]:
            blocks[block.split(":", 1)[0].strip().removeprefix("rule ").strip()] = block
    return blocks


def test_every_output_is_written(planted, tmp_path):
    # the script writes exactly the outputs the rule declares, each with the columns of its schema
    declared = re.findall(r'(\w+)=f"\{RESULTS\}/safety/(\w+)\.csv"', _rule_blocks()["safety_analysis"])
    assert declared and all(key == stem for key, stem in declared)
    assert [key for key, _ in declared] == list(SAFETY_TABLES)
    out = tmp_path / "out"
    run_safety_step(FIXTURE, out)
    assert sorted(p.name for p in out.glob("*.csv")) == sorted(f"{key}.csv" for key, _ in declared)
    for key, _ in declared:
        assert schema.read_header(out / f"{key}.csv") == schema.columns(f"safety/{key}"), key
    assert planted["lab_flags"]["subject_id"].nunique() == 9  # K2-007 never dosed
    assert len(planted["lab_descriptives"]) == 19 * 3  # 18 tests and eGFR at 3 visits


def test_alt_rise_with_bilirubin_is_a_hys_law_case(planted):
    hys = planted["hys_law"]
    assert hys[["subject_id", "visit", "alt_xuln", "tbil_xuln", "tbil_visit"]].values.tolist() == [
        ["K2-001", "week8", 4.0, 2.5, "week8"]
    ]
    grades = planted["ctcae_grades"].set_index(["subject_id", "param", "week"])
    assert grades.loc[("K2-001", "ALT", 8), "grade"] == 2  # 4 x ULN: > 3-5 x ULN
    assert grades.loc[("K2-001", "TBIL", 8), "grade"] == 2  # 2.5 x ULN: > 1.5-3 x ULN
    assert grades.loc[("K2-004", "ALT", 8), "grade"] == 2
    edish = planted["edish"].set_index("subject_id")["quadrant"]
    assert edish["K2-001"] == "potential Hy's law" and edish["K2-004"] == "Temple's corollary"


def test_inr_of_1_8_is_grade_2_and_anticoagulated_inr_is_relative(planted):
    grades = planted["ctcae_grades"]
    inr = grades[grades["term"] == "INR increased"].set_index(["subject_id", "week"])
    assert inr.loc[("K2-002", 8), "grade"] == 2
    assert inr.loc[("K2-002", 8), "criterion"] == "> 1.5 [not_anticoagulated]"
    # K2-005 on an anticoagulant: 2.70 / 2.50 = 1.08 x baseline -> grade 1 (absolute, it would be grade 3)
    assert inr.loc[("K2-005", 8), "grade"] == 1
    shifts = planted["lab_shifts"]
    inr_week8 = shifts[(shifts.param == "INR") & (shifts.comparison == "week8") & (shifts.n > 0)]
    assert inr_week8[["from", "to", "n"]].values.tolist() == [
        ["NORMAL", "NORMAL", 6],
        ["NORMAL", "HIGH", 1],
        ["HIGH", "HIGH", 1],
        ["MISSING", "NORMAL", 1],  # K2-009: no baseline
    ]


def test_haemoglobin_7_5_is_anaemia_grade_3(planted):
    grades = planted["ctcae_grades"]
    hgb = grades[grades["term"] == "Anemia"].set_index(["subject_id", "week"])
    assert hgb.loc[("K2-003", 4), "grade"] == 3
    assert hgb.loc[("K2-003", 4), "criterion"] == "< 8 g/dL"
    worst = planted["ctcae_worst"]
    anaemia = worst[(worst.term == "Anemia") & (worst.n > 0)]
    assert anaemia[["baseline_grade", "worst_grade", "n"]].astype(str).values.tolist() == [
        ["0", "0", "6"],
        ["0", "3", "1"],
        ["1", "1", "1"],  # K2-006: anaemic at baseline, improving
        ["missing", "0", "1"],  # K2-009: the baseline-visit sample was taken after the first dose
    ]


def test_severe_adverse_events_are_counted_and_listed(planted):
    summary = planted["ae_summary"].set_index("category")
    assert summary.loc["severe", "n_subjects"] == 2
    assert summary.loc["serious", "n_subjects"] == 1
    assert summary.loc["leading_to_withdrawal", "n_subjects"] == 1
    listing = planted["ae_listing"]
    severe = listing[listing.severity == "severe"]
    assert severe[["subject_id", "term", "serious"]].values.tolist() == [
        ["K2-002", "Epistaxis", "yes"],
        ["K2-005", "Headache", "no"],
    ]


def test_conclusion_names_each_planted_abnormality(planted):
    conclusion = planted["safety_conclusion"].set_index("param")
    significant = conclusion[conclusion["significant"]].index.tolist()
    assert significant == ["HGB", "ALT", "AST", "TBIL", "CREAT", "K", "GLUCF", "PT", "INR", "HYS_LAW", "ALL"]
    assert conclusion.loc["INR", "subjects"] == "K2-002"  # not K2-005 (grade 1 relative to baseline)
    assert conclusion.loc["PT", "panel"] == "coagulation"
    assert conclusion.loc["PT", "n_significant_shift"] == 1
    assert conclusion.loc["HYS_LAW", "subjects"] == "K2-001"
    assert conclusion.loc["HGB", "worst_grade"] == 3
    assert conclusion.loc["ALL", "n_significant"] == 6
    assert (conclusion["ctcae_version"].astype(str) == "5.0").all()
    assert not conclusion.loc["B12", "significant"]  # deficient -> adequate is an improvement
    assert re.search(
        r"CTCAE v5\.0 grade >= 2 above the baseline grade \(INR increased\)", conclusion.loc["INR", "rule"]
    )


def test_censored_bilirubin_is_kept_out_of_the_paired_test_and_counted(planted):
    tests = planted["lab_paired_tests"]
    tbil = tests[tests.param == "TBIL"].set_index("test")
    # 9 subjects in the safety set, K2-009 without a baseline (sampled after the first dose), K2-003 censored
    assert tbil.loc["wilcoxon", "n"] == 7 and tbil.loc["wilcoxon", "n_censored_excluded"] == 1
    assert tbil.loc["wilcoxon", "family"] == "lab_params_baseline_week8_wilcoxon"
    assert list(tests.columns[:4]) == ["population", "param", "visit_from", "visit_to"]
    assert tests["param"].drop_duplicates().tolist()[-1] == "EGFR"
    descriptives = planted["lab_descriptives"].set_index(["param", "visit"])
    assert descriptives.loc[("TBIL", "week8"), "n_censored"] == 1


def test_abnormal_baseline_alt_is_graded_against_its_own_baseline(planted):
    # issue 12, acceptance: ALT 130, 380, 400 U/L with the lab's ULN 40. The baseline (3.25 x ULN) is abnormal, so
    # every record, the baseline record included, is graded by the baseline multiples: 130 = 1 x baseline is grade 0,
    # 380 = 2.9 x baseline grade 1 (1.5 - 3.0 x baseline), 400 = 3.1 x baseline grade 2 (> 3.0 - 5.0 x baseline).
    # Grade 2 above the baseline grade 0 is a new grade 2 in the conclusion (the old grader said 2, 1, 2: no change).
    grades = planted["ctcae_grades"]
    alt = grades[(grades.subject_id == "K2-008") & (grades.param == "ALT")]
    assert alt["grade"].tolist() == [0, 1, 2]
    assert alt["baseline_flag"].tolist() == ["HIGH"] * 3 and alt["baseline_record"].tolist() == [True, False, False]
    assert alt["criterion"].fillna("").tolist() == ["", ">= 1.5 x baseline [baseline_abnormal]",
                                                    "> 3 x baseline [baseline_abnormal]"]  # fmt: skip
    conclusion = planted["safety_conclusion"].set_index("param")
    assert "K2-008" in conclusion.loc["ALT", "subjects"].split()
    assert conclusion.loc["ALT", "n_new_grade"] == 3  # K2-001, K2-004 (4 x ULN) and K2-008
    worst = planted["ctcae_worst"]
    row = worst[(worst.term == "Alanine aminotransferase increased") & (worst.baseline_grade == "0")
                & (worst.worst_grade == "2")]  # fmt: skip
    assert row["n"].tolist() == [3] and row["ctcae_version"].astype(str).tolist() == ["5.0"]


def test_hypokalaemia_is_graded_worst_case(planted):
    # CTCAE v5.0 hypokalaemia: grades 1 and 2 share < LLN - 3.0 mmol/L and differ by symptoms: grade 2 (as admiral)
    grades = planted["ctcae_grades"]
    k = grades[(grades.subject_id == "K2-008") & (grades.term == "Hypokalemia")].set_index("week")
    assert k.loc[8, "grade"] == 2 and k.loc[8, "criterion"] == "< LLN"


def test_values_are_graded_as_reported_in_their_unit(planted):
    # issue 12, item 11 (admiral's cases): creatinine 165 umol/L with ULN 110 umol/L is exactly 1.5 x ULN and 1.5 x
    # baseline (110): grade 1 (converted and rounded apart, 1.87 vs 1.24 mg/dL, it read grade 2); fasting glucose
    # 3.0 mmol/L with LLN 4.0: CTCAE's SI grade 2 is < 3.0 mmol/L, so grade 1 (54 mg/dL read grade 2); potassium
    # 2.49 mmol/L is < 2.5: grade 4 (rounded to 2.5 at the contract's 1 decimal it read grade 3)
    grades = planted["ctcae_grades"].set_index(["subject_id", "term", "week"])
    creat = grades.loc[("K2-010", "Creatinine increased", 4)]
    assert (creat["grade"], creat["reported_value"], creat["reported_unit"], creat["uln"]) == (
        1,
        165.0,
        "umol/L",
        110.0,
    )
    assert creat["aval"] == 1.87  # the standard value is still there, at the contract's precision
    assert grades.loc[("K2-010", "Hypoglycemia", 4), "grade"] == 1
    potassium = grades.loc[("K2-010", "Hypokalemia", 4)]
    assert (potassium["grade"], potassium["reported_value"], potassium["criterion"]) == (4, 2.49, "< 2.5 mmol/L")


def test_a_baseline_sample_after_the_first_dose_is_no_baseline(planted):
    # issue 12, item 5: K2-009's baseline-visit samples are dated after the first dose, so base is missing, and the
    # flags, the shift tables, the baseline grades and the conclusion have no baseline either (haemoglobin 11.0 g/dL
    # at that visit was LOW, but the shift counts it from MISSING)
    flags = planted["lab_flags"]
    hgb = flags[(flags.subject_id == "K2-009") & (flags.param == "HGB")]
    assert hgb["flag"].tolist()[:1] == ["LOW"] and hgb["baseline_flag"].isna().all()
    shifts = planted["lab_shifts"]
    week4 = shifts[(shifts.param == "HGB") & (shifts.comparison == "week4") & (shifts["from"] == "MISSING")]
    assert week4.loc[week4["to"] == "NORMAL", "n"].tolist() == [1]
    grades = planted["ctcae_grades"]
    anaemia = grades[(grades.subject_id == "K2-009") & (grades.term == "Anemia")]
    assert not anaemia["baseline_record"].any() and anaemia["baseline_value"].isna().all()


def test_grades_on_a_default_range_are_flagged_and_counted(planted):
    # K2-006's laboratory gave no platelet range: the grades use the default 150-450 x 10^9/L (config
    # safety.grade_with_default_ranges) and are flagged; without it grade 0 could not be asserted (no LLN)
    grades = planted["ctcae_grades"]
    platelets = grades[(grades.subject_id == "K2-006") & (grades.param == "PLT")]
    assert platelets["default_range"].all() and platelets["grade"].tolist() == [0, 0, 0]
    assert platelets["lln"].tolist() == [150.0] * 3
    assert grades.loc[grades["default_range"], "subject_id"].unique().tolist() == ["K2-006"]
    conclusion = planted["safety_conclusion"].set_index("param")
    assert conclusion.loc["PLT", "n_default_range_grades"] == 3 and conclusion.loc["ALL", "n_default_range_grades"] == 3
    assert "3 grade(s) rest on a default reference range" in conclusion.loc["PLT", "rule"]


def test_b12_deficient_subject_becomes_adequate(planted):
    categories = planted["lab_categories"]
    row = categories[
        (categories.param == "B12") & (categories.visit == "week8") & (categories.baseline_category == "deficient")
    ]
    assert row[row.n > 0][["category", "n", "percent"]].values.tolist() == [["adequate", 1, 100.0]]


def test_rerun_is_byte_identical_and_an_empty_ae_file_works(tmp_path, planted):
    inputs = tmp_path / "inputs"
    shutil.copytree(FIXTURE, inputs)
    (inputs / "adverse_events.csv").write_text(
        "raw_row,subject_id,term,onset_date,end_date,severity,serious,related,action,outcome\n"
    )
    first = tmp_path / "first"
    second = tmp_path / "second"
    tables = run_safety_step(inputs, first)
    run_safety_step(inputs, second)
    for name in SAFETY_TABLES:
        assert (first / f"{name}.csv").read_bytes() == (second / f"{name}.csv").read_bytes(), name
    assert tables["ae_summary"]["n_subjects"].tolist() == [0] * 6
    assert tables["ae_by_term"]["term"].tolist() == ["No adverse events reported"]
    assert tables["ae_listing"].empty


def test_lab_standards_is_an_input_of_the_safety_rules_only():
    # which rules read config/lab_standards.yaml: the safety analysis, the figures drawn from its results and the
    # simulator; none of the rules upstream of safety (validation, cleaning, derivation, groups, efficacy)
    blocks = _rule_blocks()
    upstream = {"validate_raw_data", "clean_raw_data", "derive_subjects", "derive_vas", "derive_labs"}
    upstream |= {"assign_groups", "efficacy_analysis"}
    assert upstream <= set(blocks), upstream - set(blocks)  # a renamed or moved rule fails here
    readers = {name for name, text in blocks.items() if "lab_standards" in text}
    assert {"safety_analysis", "make_lab_figures"} <= readers
    assert not readers & upstream, readers & upstream
    # the CTCAE criteria file of the configured version is read by the safety analyses (overall, and by arm in a
    # randomised study) and by the ADaM writer (ADLB's grade directions and version), which runs after it anyway
    readers = {name for name, text in blocks.items() if "ctcae_criteria" in text}
    assert readers == {"safety_analysis", "safety_by_arm", "write_adam"}
    assert "rules.safety_analysis.output" in blocks["write_adam"]


def test_float_text_writes_the_same_bytes_as_floats(planted):
    from k2trial.core.io import csv_bytes, floats_as_text

    frame = pd.DataFrame(
        {
            "x": [1.05, 3 * 1.15, float("nan"), -0.3, 120.0, 1 / 3, 1e-7, 123456789.123, 1.05],
            "n": range(9),
            "text": ["=A1", "b", "", "-2", "c", "d", "e", "f", "g"],
        }
    )
    assert csv_bytes(floats_as_text(frame)) == csv_bytes(frame)
    for name in ("lab_flags", "ctcae_grades", "lab_descriptives", "lab_paired_tests", "edish"):
        assert csv_bytes(floats_as_text(planted[name])) == csv_bytes(planted[name]), name
