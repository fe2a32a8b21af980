"""The study family (issue 14): a randomised study's arms in the contract and the allocation, its populations, the
simulated datasets of open100 and rct2021 as committed, and (marked workflow) both studies built end to end in
throw-away copies of the repository: between-arm rows, the CONSORT diagram and the tables by arm marked SIMULATED,
every primary claim reproduced, the off-treatment follow-up shaded, and no by-arm output for the single-arm study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, _merged, copy_workflow, run_snakemake

from k2trial.analysis import arms, groups
from k2trial.core.errors import ConfigError, InputDataError
from k2trial.core.io import read_yaml
from k2trial.core.vocabulary import study_codebook, visit_windows
from k2trial.data import contract as ct
from k2trial.data import raw_files, simulation, validation

STUDIES = ROOT / "config" / "studies"


def _study(name: str) -> dict:
    """config/config.yaml merged with a study config, as the Snakefile merges --configfile."""
    return _merged(read_yaml(ROOT / "config" / "config.yaml"), read_yaml(STUDIES / f"{name}.yaml"))


def _contract(config: dict) -> ct.Contract:
    return ct.load_contract(
        read_yaml(ROOT / config["codebook"]), read_yaml(ROOT / config["lab_units"]), config["protocol"],
        config.get("arms"),
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------ the contract


def test_arm_and_stratum_columns_exist_only_in_a_randomised_study():
    codebook = read_yaml(ROOT / "data" / "raw" / "codebook.yaml")
    single = study_codebook(codebook)["files"]["subjects.csv"]["columns"]
    assert "arm" not in single and "stratum" not in single
    rct = _study("rct2021")
    columns = study_codebook(codebook, rct["protocol"], rct["arms"])["files"]["subjects.csv"]["columns"]
    assert columns["arm"]["levels"] == ["MK7", "PLACEBO"] and columns["arm"]["required"] is True
    assert columns["arm"]["labels"] == {"MK7": "MK-7 100 mcg twice daily", "PLACEBO": "Placebo"}
    # the stratum is the etiology: its codes, synonyms and labels
    assert columns["stratum"]["levels"] == ["b12_deficiency", "diabetes", "both"]
    assert columns["stratum"]["synonyms"] == columns["etiology"]["synonyms"]
    # not stratified: an arm, no stratum
    plain = {k: v for k, v in rct["arms"].items() if k != "stratified_by"}
    columns = study_codebook(codebook, rct["protocol"], plain)["files"]["subjects.csv"]["columns"]
    assert "arm" in columns and "stratum" not in columns


def _validate(config: dict, folder: Path, edit=None) -> pd.DataFrame:
    contract = _contract(config)
    raw = raw_files.read_raw_dataset({n: folder / n for n in raw_files.input_keys(contract)}, contract)
    if edit is not None:
        edit(raw.tables["subjects.csv"])
    return validation.validate_dataset(raw, contract, visit_windows(config["protocol"])).problems


def test_a_randomised_study_without_or_with_a_wrong_arm_is_an_error_naming_file_row_and_column():
    config = _study("rct2021")
    folder = ROOT / config["raw_dir"]
    assert (_validate(config, folder)["severity"] != "error").all()
    missing = _validate(config, folder, lambda t: t.pop("arm"))
    errors = missing[missing["severity"] == "error"]
    assert list(zip(errors["file"], errors["column"], errors["rule"], strict=True)) == [
        ("subjects.csv", "arm", "column_missing")
    ]

    def wrong(table: pd.DataFrame) -> None:
        table.loc[table["_row"] == 5, "arm"] = "VERUM"
        table.loc[table["_row"] == 7, "arm"] = ""
        table.loc[table["_row"] == 9, "stratum"] = "thyroid"

    problems = _validate(config, folder, wrong)
    errors = problems[problems["severity"] == "error"]
    found = list(zip(errors["row"], errors["column"], errors["value"], errors["rule"], strict=True))
    assert found == [
        (5, "arm", "VERUM", "category_invalid"),
        (7, "arm", "", "required_missing"),
        (9, "stratum", "thyroid", "category_invalid"),
    ]
    # a single-arm study's contract has no arm: the column is a warning, never analysed
    single = _validate(_study("open100"), ROOT / "data" / "raw" / "open100", lambda t: t.insert(3, "arm", "MK7"))
    flagged = single[single["column"] == "arm"]
    assert list(zip(flagged["rule"], flagged["severity"], strict=True)) == [("column_unexpected", "warning")]


def test_the_registry_entries_of_a_randomised_study_have_their_builders():
    from k2trial.core.vocabulary import SAFETY_BY_ARM
    from k2trial.report import tables
    from k2trial.report.arm_figures import ARM_FIGURES

    registry = read_yaml(ROOT / "workflow" / "report" / "registry.yaml")
    figures = [e["name"] for e in registry["figures"] if e.get("randomised")]
    assert figures == list(ARM_FIGURES)
    assert all(e["rule"] == "make_arm_figures" for e in registry["figures"] if e.get("randomised"))
    by_arm = [e["name"] for e in registry["tables"] if e.get("randomised")]
    assert by_arm == ["consort_flow", "table1_by_arm", "vas_by_visit_arm", "between_arm", "ae_summary_by_arm",
                      "lab_summary_by_arm", "lab_shifts_by_arm", "ctcae_worst_by_arm", "hys_law_by_arm",
                      "ae_by_term_by_arm"]  # fmt: skip
    assert set(by_arm) <= set(tables.BUILDERS)
    # every safety table by arm is one the safety step writes by arm (rule safety_by_arm)
    assert {tables.BUILDERS[name][0] for name in tables.BY_ARM_TABLES} == {f"{t}_by_arm" for t in SAFETY_BY_ARM}
    assert [e["name"] for e in registry["notebooks"] if e.get("randomised")] == ["between_arm"]


# ------------------------------------------------------------------------------------ allocation and populations

CLEAN = pd.DataFrame(
    {
        "raw_row": [2, 3, 4, 5, 6],
        "subject_id": ["K2-001", "K2-002", "K2-003", "K2-004", "K2-005"],
        "arm": ["MK7", "PLACEBO", "MK7", "PLACEBO", "MK7"],
        "stratum": ["diabetes", "diabetes", "b12_deficiency", "b12_deficiency", "diabetes"],
    }
)
SUBJECTS = pd.DataFrame(
    {
        "subject_id": ["K2-001", "K2-002", "K2-003", "K2-004", "K2-005"],
        "status": ["completed", "completed", "withdrawn", "completed", "completed"],
        "anticoagulant": [False, False, False, True, False],
        "compliance_pct": [95.0, 79.9, 90.0, 100.0, np.nan],
        "saffl": [True, True, True, True, False],
        "efffl": [True, True, False, True, False],
    }
)
ARMS = {"codes": ["MK7", "PLACEBO"], "labels": {"MK7": "MK-7", "PLACEBO": "Placebo"}, "control": "PLACEBO",
        "per_protocol": {"completed": True, "min_compliance_pct": 80, "exclude_anticoagulant": True,
                         "efficacy_set": True}}  # fmt: skip


def test_the_allocation_flags_each_analysis_set_and_says_why_a_subject_is_not_per_protocol():
    table = arms.allocation_table(CLEAN, SUBJECTS, ARMS)
    assert list(table["ittfl"]) == [True] * 5
    assert list(table["saffl"]) == [True, True, True, True, False]
    assert list(table["pprotfl"]) == [True, False, False, False, False]
    assert list(table["pp_reason"]) == [
        "",
        "compliance below 80% or unknown",
        "did not complete; not in the efficacy set",
        "anticoagulant use",
        "not treated; compliance below 80% or unknown; not in the efficacy set",
    ]
    members = groups.population_members(
        table, ["itt_mk7", "per_protocol", "safety_placebo", "itt"], table, ("MK7", "PLACEBO")
    )
    assert list(members) == ["itt_mk7", "per_protocol", "safety_placebo", "itt"]
    assert members["itt_mk7"].tolist() == [True, False, True, False, True]
    assert members["per_protocol"].tolist() == [True, False, False, False, False]
    assert members["safety_placebo"].tolist() == [False, True, False, True, False]
    assert members["itt"].all()  # ITT is everyone randomised, not only the efficacy set
    # a set within one randomisation stratum (a subgroup by cause)
    by_cause = groups.population_members(
        table, ["itt_diabetes", "per_protocol_b12_deficiency"], table, ("MK7", "PLACEBO")
    )
    assert by_cause["itt_diabetes"].tolist() == [True, True, False, False, True]
    assert by_cause["per_protocol_b12_deficiency"].tolist() == [False] * 5
    with pytest.raises(ConfigError, match="same population name"):
        arms.arm_population_names(["DIABETES", "PLACEBO"], ["diabetes"])


def test_an_arm_outside_the_declared_codes_names_the_file_row_and_value():
    clean = CLEAN.assign(arm=["MK7", "PLACEBO", "VERUM", "PLACEBO", None])
    with pytest.raises(InputDataError) as caught:
        arms.allocation_table(clean, SUBJECTS, ARMS, label="clean/subjects.csv")
    problems = caught.value.problems
    assert [(p.file, p.row, p.column, p.value) for p in problems] == [
        ("clean/subjects.csv", 4, "arm", "VERUM"),
        ("clean/subjects.csv", 6, "arm", ""),
    ]


# ------------------------------------------------------------------------------------------- simulated datasets


def _simulated(name: str) -> simulation.SimulatedStudy:
    config = _study(name)
    params = simulation.build_params(
        config, read_yaml(ROOT / config["lab_units"]), read_yaml(ROOT / config["lab_standards"]),
        read_yaml(ROOT / config["codebook"]),
    )  # fmt: skip
    return simulation.generate_study(int(config["simulation"]["n_subjects"]), int(config["seed"]), params)


@pytest.mark.parametrize("name", ["open100", "rct2021"])
def test_the_committed_dataset_is_the_simulator_output_of_its_study_config(name):
    study = _simulated(name)
    folder = ROOT / "data" / "raw" / name
    for file, content in simulation.dataset_file_bytes(study).items():
        assert (folder / file).read_bytes() == content, file


def test_rct2021_is_randomised_one_to_one_within_cause():
    subjects = _simulated("rct2021").truth["subjects.csv"]
    counts = subjects.groupby(["arm", "stratum"]).size()
    assert counts.to_dict() == {
        ("MK7", "b12_deficiency"): 5, ("MK7", "diabetes"): 5, ("PLACEBO", "b12_deficiency"): 5,
        ("PLACEBO", "diabetes"): 5,
    }  # fmt: skip
    assert (subjects["stratum"] == subjects["etiology"]).all()


def _anchor_week_values(name: str, by: str) -> tuple[pd.DataFrame, dict]:
    """subject x anchor week VAS (the mean of the diary items: the composite, or the one item) with the group column
    `by` of the committed study's truth, and the study config's VAS calibration."""
    truth = _simulated(name).truth
    vas = _study(name)["simulation"]["vas"]
    weeks = sorted(int(w) for w in next(iter(vas["anchors"].values())))
    diary = truth["symptom_diary.csv"].merge(truth["subjects.csv"][["subject_id", by]])
    diary["week"] = diary["visit"].map(lambda v: 0 if v == "Baseline" else int(v.split()[1]))
    values = diary[diary["week"].isin(weeks)].groupby([by, "subject_id", "week"])["vas_cm"].mean().unstack("week")
    return values, vas


def test_rct2021_arm_means_lie_in_their_anchor_ranges_with_a_realistic_spread_of_patients():
    values, vas = _anchor_week_values("rct2021", "arm")
    assert vas["between_subject"]["sd"] == {"baseline": 1.5, "follow_up": 2.0}
    for arm, rows in values.groupby(level="arm"):
        for week, (low, high) in vas["anchors"][arm].items():
            # the arm's mean in the published range (the midpoint up to the clipping of 10 patients' values)
            assert low <= rows[int(week)].mean() <= high, (arm, week)
        # patients differ as in pain trials (SD about 1.5-2.5 of 10), not by a few tenths as uniform draws did
        sd = rows.std(ddof=1)
        assert 0.8 < sd[0] < 2.0 and 1.2 < sd[8] < 3.0 and 1.2 < sd[12] < 3.0, (arm, sd.to_dict())
    pooled = values.groupby(level="arm")[[0, 8]].transform(lambda c: c - c.mean())
    assert 0.2 < pooled[0].corr(pooled[8]) < 0.8


def test_open100_patients_spread_after_treatment_within_the_published_baseline_ranges():
    values, vas = _anchor_week_values("open100", "etiology")
    published = {"b12_deficiency": (6.0, 9.0), "diabetes": (8.0, 10.0)}  # STUDY.md: the patients' baseline range
    for cause, rows in values.groupby(level="etiology"):
        assert published[cause][0] <= rows[0].min() and rows[0].max() <= published[cause][1], cause
        assert 1.0 <= rows[12].mean() <= 2.0, cause
        assert 0.7 < rows[12].std(ddof=1) < 1.6 and rows[0].std(ddof=1) < 0.6, cause


def test_rct2021_adverse_events_are_configurable_per_arm_and_validate(tmp_path):
    config = _study("rct2021")
    config["simulation"]["adverse_events"]["subjects"] = {"MK7": 2, "PLACEBO": 1}
    params = simulation.build_params(
        config, read_yaml(ROOT / config["lab_units"]), read_yaml(ROOT / config["lab_standards"]),
        read_yaml(ROOT / config["codebook"]),
    )  # fmt: skip
    study = simulation.generate_study(20, int(config["seed"]), params)
    events, subjects = study.truth["adverse_events.csv"], study.truth["subjects.csv"]
    arm = subjects.set_index("subject_id")["arm"]
    assert events["subject_id"].map(arm).value_counts().to_dict() == {"MK7": 2, "PLACEBO": 1}
    assert set(events["term"]) <= {"Headache", "Nausea", "Dyspepsia"} and set(events["severity"]) == {"mild"}
    dates = subjects.set_index("subject_id").loc[events["subject_id"]]
    onset = pd.to_datetime(events["onset_date"]).to_numpy()
    assert (onset > pd.to_datetime(dates["first_dose_date"]).to_numpy()).all()
    assert (onset <= pd.to_datetime(dates["last_dose_date"]).to_numpy()).all()
    # the other files do not change with the adverse events
    for file in ("subjects.csv", "symptom_diary.csv", "labs.csv", "dosing.csv"):
        assert simulation.dataset_file_bytes(study)[file] == (ROOT / config["raw_dir"] / file).read_bytes(), file
    simulation.write_raw_dataset(study, tmp_path)
    problems = _validate(config, tmp_path)
    assert (problems["severity"] != "error").all(), problems[problems["severity"] == "error"]


def test_open100_withdrawals_end_their_records_after_the_week_they_leave():
    truth = _simulated("open100").truth
    subjects, diary = truth["subjects.csv"], truth["symptom_diary.csv"]
    withdrawn = subjects[subjects["status"] == "withdrawn"]
    assert len(withdrawn) == 4 and withdrawn["withdrawal_reason"].notna().all()
    weeks = diary.assign(week=diary["visit"].map(lambda v: 0 if v == "Baseline" else int(v.split()[1])))
    last = weeks.groupby("subject_id")["week"].max()
    assert (last[~last.index.isin(withdrawn["subject_id"])] == 12).all()
    assert (last[withdrawn["subject_id"]] < 12).all()
    # five items at every week a withdrawn subject attended, none after
    per_week = weeks[weeks["subject_id"].isin(withdrawn["subject_id"])].groupby(["subject_id", "week"]).size()
    assert (per_week == 5).all()
    dosing = truth["dosing.csv"]
    first = pd.to_datetime(withdrawn["first_dose_date"])
    stop = pd.to_datetime(withdrawn["last_dose_date"])
    assert ((stop - first).dt.days + 1 == 7 * np.minimum(last[withdrawn["subject_id"]].to_numpy(), 8)).all()
    assert len(dosing) < 2 * 100


# ------------------------------------------------------------------------------------------------- end to end


def _build(tmp_path: Path, name: str) -> Path:
    work = copy_workflow(tmp_path / name)
    built = run_snakemake(work, "--configfile", f"config/studies/{name}.yaml", cores=2)
    assert built.returncode == 0, built.stderr[-4000:]
    assert not (work / "results" / "index.html").exists()  # the default study's folder is not written
    return work / "results" / name


def _claims_reproduced(results: Path) -> None:
    claims = pd.read_csv(results / "claims" / "claims.csv")
    primary = claims[claims["primary"]]
    assert len(primary) >= 5
    assert (primary["status"] == "reproduced").all(), primary[["claim_id", "status", "observed"]]
    assert primary["evidence"].str.len().gt(0).all()


@pytest.mark.workflow
def test_rct2021_builds_with_between_arm_results_consort_and_tables_by_arm(tmp_path):
    results = _build(tmp_path, "rct2021")
    between = pd.read_csv(results / "efficacy" / "between_arm.csv")
    itt = between[(between["population"] == "itt") & (between["param"] == "pain")]
    for test in ("ancova", "rank_sum", "responder_30", "responder_50"):
        rows = itt[itt["test"] == test]
        assert list(rows["visit"]) == ["week4", "week8", "week12"], test
        assert (rows[["estimate", "ci_low", "ci_high", "p_value"]].notna()).all().all(), test
        assert (rows["ci_low"] <= rows["estimate"]).all() and (rows["estimate"] <= rows["ci_high"]).all(), test
        assert (rows["n_treated"] == 10).all() and (rows["n_control"] == 10).all(), test
    ancova = itt[itt["test"] == "ancova"].set_index("visit")
    assert ancova.loc["week8", "estimate"] < -3.0 and ancova.loc["week8", "p_value"] < 0.001
    assert "stratum" in ancova.loc["week8", "method"]
    assert set(between["population"]) == {"itt", "per_protocol", "itt_b12_deficiency", "itt_diabetes"}
    # within one cause there is no stratum to adjust for
    within = between[(between["population"] == "itt_diabetes") & (between["test"] == "ancova")]
    assert within["method"].str.startswith("ANCOVA: change ~ arm + baseline (lm)").all()
    assert (between.loc[between["test"] == "ancova", "family"] == "primary_visits").all()
    # within-arm paired tests per arm
    paired = pd.read_csv(results / "efficacy" / "paired_tests.csv")
    assert {"itt_mk7", "itt_placebo"} <= set(paired["population"])

    for figure in ("consort_diagram", "arm_trajectories", "between_arm_forest"):
        svg = (results / "figures" / f"{figure}.svg").read_text()
        assert "SIMULATED DATA" in svg, figure
        assert (results / "figures" / f"{figure}.png").stat().st_size > 10_000, figure
    assert "off treatment" in (results / "figures" / "arm_trajectories.svg").read_text()
    for table in ("consort_flow", "table1_by_arm", "vas_by_visit_arm", "between_arm", "ae_summary_by_arm",
                  "lab_summary_by_arm"):  # fmt: skip
        assert "SIMULATED" in (results / "tables" / f"{table}.html").read_text(), table
        assert (results / "tables" / f"{table}.csv").exists(), table
    flow = pd.read_csv(results / "arms" / "consort_flow.csv")
    allocated = flow[flow["stage"] == "allocated"].set_index("arm")["n"]
    assert allocated.to_dict() == {"MK7": 10, "PLACEBO": 10}
    table1 = pd.read_csv(results / "tables" / "table1_by_arm.csv")
    assert list(table1.columns[1:]) == ["Overall (N=20)", "MK-7 100 mcg twice daily (N=10)", "Placebo (N=10)"]
    # the summaries by arm, recomputed here from the analysis datasets and the allocation (CSV: 12 significant digits)
    allocation = pd.read_csv(results / "analysis" / "allocation.csv")
    vas = pd.read_csv(results / "analysis" / "vas.csv").merge(allocation[["subject_id", "arm"]], on="subject_id")
    expected = vas.groupby(["arm", "visit"])["aval"].agg(["count", "mean", "std"])
    summary = pd.read_csv(results / "arms" / "vas_by_arm.csv")
    shown = summary[(summary["population"] == "itt") & (summary["variable"] == "aval")].set_index(["arm", "visit"])
    for key, row in expected.iterrows():
        assert shown.loc[key, "n"] == row["count"], key
        assert shown.loc[key, "mean"] == pytest.approx(row["mean"], rel=1e-11), key
        assert shown.loc[key, "sd"] == pytest.approx(row["std"], rel=1e-11), key
    subjects = pd.read_csv(results / "analysis" / "subjects.csv").merge(allocation[["subject_id", "arm"]])
    table1 = pd.read_csv(results / "arms" / "baseline_by_arm.csv")
    female = table1[(table1["characteristic"] == "sex") & (table1["level"] == "F")].set_index("group")["count"]
    assert female.to_dict() == {"overall": int((subjects["sex"] == "F").sum()),
                                **(subjects[subjects["sex"] == "F"].groupby("arm").size().to_dict())}  # fmt: skip
    ae = pd.read_csv(results / "arms" / "ae_summary_by_arm.csv")
    any_ae = ae[ae["category"] == "any"].set_index("arm")
    assert any_ae["n_subjects"].to_dict() == {"MK7": 0, "PLACEBO": 0}  # the abstract reports none: none simulated
    assert any_ae["denominator"].to_dict() == {"MK7": 10, "PLACEBO": 10}
    labs = pd.read_csv(results / "arms" / "lab_descriptives_by_arm.csv")
    assert set(labs["arm"]) == {"MK7", "PLACEBO"} and (labs.loc[labs["visit"] == "baseline", "n"] == 10).all()
    assert "SIMULATED DATA" in (results / "notebooks" / "between_arm.html").read_text()
    assert "between_arm.html" in (results / "index.html").read_text()
    _claims_reproduced(results)


@pytest.mark.workflow
def test_open100_builds_single_arm_with_follow_up_shaded_and_no_by_arm_output(tmp_path):
    results = _build(tmp_path, "open100")
    _claims_reproduced(results)
    assert "off treatment" in (results / "figures" / "composite_trajectories.svg").read_text()
    # a single-arm study: none of the by-arm outputs, not empty ones
    assert not (results / "arms").exists()
    assert not (results / "efficacy" / "between_arm.csv").exists()
    assert not (results / "analysis" / "allocation.csv").exists()
    for path in ("figures/consort_diagram.png", "tables/between_arm.csv", "notebooks/between_arm.html"):
        assert not (results / path).exists(), path
    assert "between_arm" not in (results / "index.html").read_text()
    subjects = pd.read_csv(results / "analysis" / "subjects.csv")
    assert len(subjects) == 100 and (subjects["status"] == "withdrawn").sum() == 4
