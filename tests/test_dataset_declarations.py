"""Issue 13, item 1: a dataset declares its own subject IDs and sites in its dataset.yaml.

The fixture (tests/declared_dataset.py) is the simulator's output renamed to IDs K2PN-101... and sites S1, S2,
day-first dates and SI units at S2, two withdrawals. In-process tests check validation and cleaning against the
fixture's truth and every error a declaration can give; the workflow test runs it end to end through Snakemake.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, copy_workflow, read_config, run_snakemake
from declared_dataset import (
    DAY_FIRST,
    SUBJECT_PATTERN,
    build_declared_dataset,
    expected_vas,
    write_declared_dataset,
)

from k2trial.core.io import csv_bytes
from k2trial.core.values import subject_order
from k2trial.core.vocabulary import composite_items, visit_windows
from k2trial.data import cleaning, raw_files, validation, validation_report
from k2trial.data import contract as ct

WINDOWS = visit_windows(read_config()["protocol"])
DIARY, LABS, SUBJECTS = "symptom_diary.csv", "labs.csv", "subjects.csv"


@pytest.fixture(scope="module")
def contract() -> ct.Contract:
    return ct.read_contract(ROOT / "data/raw/codebook.yaml", ROOT / "config/lab_units.yaml")


@pytest.fixture(scope="module")
def dataset():
    return build_declared_dataset(40)


@pytest.fixture
def folder(dataset, tmp_path) -> Path:
    return write_declared_dataset(dataset, tmp_path / "k2pn")


def _read(contract, folder: Path) -> raw_files.RawDataset:
    return raw_files.read_raw_dataset({name: folder / name for name in raw_files.input_keys(contract)}, contract)


def _validate(contract, folder: Path) -> validation.ValidationResult:
    return validation.validate_dataset(_read(contract, folder), contract, WINDOWS)


def _problems(result, rule: str) -> pd.DataFrame:
    return result.problems[result.problems["rule"] == rule]


def _set(folder: Path, file: str, row: int, column: str, value: str) -> None:
    """Set one cell (spreadsheet row: header = 1) of a raw file and drop the checksum file."""
    frame = pd.read_csv(folder / file, dtype=str, keep_default_na=False)
    frame.loc[row - 2, column] = value
    (folder / file).write_bytes(csv_bytes(frame))
    (folder / "SHA256SUMS").unlink(missing_ok=True)


def _messages(result, rule: str) -> list[str]:
    return validation.compose_messages(_problems(result, rule))


# ---------------------------------------------------------------------------------------------------------------------
# The fixture itself: what it is meant to hold
# ---------------------------------------------------------------------------------------------------------------------
def test_fixture_has_its_own_ids_sites_day_first_dates_si_units_and_two_withdrawals(dataset):
    subjects = dataset.raw[SUBJECTS]
    assert len(subjects) == 40
    assert set(subjects["site"].str.strip()) == {"S1", "S2"}
    assert subjects["subject_id"].str.strip().str.upper().str.fullmatch(SUBJECT_PATTERN).all()
    day_first = subjects["consent_date"].str.fullmatch(r"\d{2}/\d{2}/\d{4}")
    assert (day_first == (subjects["site"].str.strip() == "S2")).all()  # day-first dates at S2 only
    labs = dataset.raw[LABS].merge(subjects[["subject_id", "site"]], on="subject_id", how="left")
    si = {"umol/L", "mmol/L", "g/L", "pmol/L"}
    assert labs.loc[labs["unit"].isin(si) & (labs["site"] == "S1"), "test_code"].isin(["GLUCF", "CREAT"]).sum() == 0
    assert labs.loc[labs["site"] == "S2", "unit"].isin(si).any()
    assert (dataset.truth[SUBJECTS]["status"] == "withdrawn").sum() == 2
    assert sorted(dataset.withdrawn) == ["K2PN-104", "K2PN-113"]


# ---------------------------------------------------------------------------------------------------------------------
# Validation and cleaning under the declarations
# ---------------------------------------------------------------------------------------------------------------------
def test_declared_dataset_validates_and_cleans_to_its_truth(contract, dataset, folder):
    result = _validate(contract, folder)
    assert result.status == "passed", result.errors()[:3]
    assert result.contract.subject_id_declared and result.contract.site_day_first == DAY_FIRST
    clean = cleaning.clean_dataset(result, contract)
    for name, truth in dataset.truth.items():
        assert csv_bytes(clean.tables[name].drop(columns="raw_row")) == csv_bytes(truth), name
    audit = clean.audit_log
    # the misspelt IDs: " k2pn-106 " -> K2PN-106 (trimmed and upper-cased, nothing else)
    ids = audit[audit["column"] == "subject_id"]
    assert len(ids) > 0
    assert (ids["new"] == ids["old"].str.strip().str.upper()).all()
    # day-first dates come from S2 only, and each is written as ISO
    dates = audit[audit["rule"] == ct.FIX_DAY_FIRST]
    s2 = set(dataset.truth[SUBJECTS].loc[dataset.truth[SUBJECTS]["site"] == "S2", "subject_id"])
    assert len(dates) > 0 and set(dates["subject_id"]) <= s2
    day, month, year = dates["old"].iloc[0].split("/")
    assert dates["new"].iloc[0] == f"{year}-{month}-{day}"


def test_report_names_the_declarations_in_force(contract, folder):
    result = _validate(contract, folder)
    report = validation_report.build_report(result)
    assert report["declarations"] == {
        "subject_id": {
            "declared_in": "dataset.yaml",
            "pattern": SUBJECT_PATTERN,
            "normalisation": "surrounding whitespace removed, upper-cased",
        },
        "sites": {"declared_in": "dataset.yaml", "sites": {"S1": {"day_first": False}, "S2": {"day_first": True}}},
    }
    markdown = validation_report.report_markdown(report, contract)
    assert "## Declarations in force" in markdown
    assert "S1 (ISO dates only), S2 (day-first dates accepted)" in markdown


def test_without_declarations_the_codebook_defaults_apply(contract, dataset, tmp_path):
    description = {k: v for k, v in dataset.dataset_yaml.items() if k not in ct.DECLARATION_KEYS}
    folder = write_declared_dataset(dataset, tmp_path / "plain", description)
    result = _validate(contract, folder)
    assert result.status == "failed"
    assert not result.declared and "declarations" not in validation_report.build_report(result)
    invalid_ids = _problems(result, "subject_id_invalid")
    n_records = sum(len(t) for name, t in dataset.raw.items())
    assert len(invalid_ids) == n_records  # every record: no K2- guessing on K2PN- IDs
    assert _messages(result, "subject_id_invalid")[0] == "not a subject ID: expected an ID like K2-001"
    sites = _problems(result, "site_undeclared")
    assert len(sites) == 40
    assert _messages(result, "site_undeclared")[0].endswith("sites of codebook.yaml: SITE-A, SITE-B")


def test_ids_ending_in_the_same_number_sort_by_id_not_interleaved():
    # a declared pattern may give IDs that end in the same number; rows sort by number, then ID, then the keys
    ids = np.array(["S2-001", "S1-002", "S1-001", "S2-001", "S1-001", None], dtype=object)
    week = np.array([0, 0, 4, 4, 0, 0])
    order = subject_order(ids, week)
    assert [(ids[i], int(week[i])) for i in order] == [
        (None, 0), ("S1-001", 0), ("S1-001", 4), ("S2-001", 0), ("S2-001", 4), ("S1-002", 0)
    ]  # fmt: skip


def test_site_prefixed_ids_numbered_per_site_clean_in_id_order(contract, dataset, tmp_path):
    # IDs S1-001, S2-001, ...: numbered within each site, so two subjects end in the same number
    subjects = dataset.truth[SUBJECTS]
    rank = subjects.groupby("site").cumcount() + 1
    renamed = dict(zip(subjects["subject_id"], subjects["site"] + "-" + rank.map("{:03d}".format), strict=True))
    raw = {}
    for name, table in dataset.raw.items():
        table = table.copy()
        if len(table):
            table["subject_id"] = table["subject_id"].str.strip().str.upper().map(renamed)
        raw[name] = table
    description = {**dataset.dataset_yaml, "subject_id": {"pattern": "^S[12]-[0-9]{3}$"}}
    folder = write_declared_dataset(type(dataset)(raw, {}, description, {}, {}), tmp_path / "prefixed")
    result = _validate(contract, folder)
    assert result.status == "passed", result.errors()[:3]
    clean = cleaning.clean_dataset(result, contract)
    n1, n2 = (subjects["site"] == "S1").sum(), (subjects["site"] == "S2").sum()
    expected = [f"{site}-{i:03d}" for i in range(1, max(n1, n2) + 1) for site in ("S1", "S2")]
    expected = [e for e in expected if int(e[3:]) <= (n1 if e.startswith("S1") else n2)]
    assert clean.tables[SUBJECTS]["subject_id"].tolist() == expected
    diary_ids = clean.tables[DIARY]["subject_id"]
    blocks = diary_ids[diary_ids != diary_ids.shift()].tolist()
    assert blocks == expected  # each subject's records together, not interleaved with its namesake's


# ---------------------------------------------------------------------------------------------------------------------
# Errors: each names file, row, column, value and the declaration
# ---------------------------------------------------------------------------------------------------------------------
def _only(result, rule: str) -> validation.Problem:
    errors = result.errors()
    assert [p.rule for p in errors] == [rule], errors[:5]
    return errors[0]


def test_id_not_matching_the_declared_pattern(contract, folder):
    _set(folder, DIARY, 7, "subject_id", "K2-101")
    problem = _only(_validate(contract, folder), "subject_id_invalid")
    assert (problem.file, problem.row, problem.column, problem.value) == (DIARY, 7, "subject_id", "K2-101")
    assert problem.message == (
        "not a subject ID: expected an ID matching ^K2PN-[0-9]{3}$ (subject_id.pattern of dataset.yaml) "
        "after trimming and upper-casing"
    )


def test_an_undeclared_site(contract, folder):
    _set(folder, SUBJECTS, 5, "site", "S3")
    problem = _only(_validate(contract, folder), "site_undeclared")
    assert (problem.file, problem.row, problem.column, problem.value) == (SUBJECTS, 5, "site", "S3")
    assert problem.message == "site not declared: expected one of the sites of dataset.yaml: S1, S2"


def test_a_day_first_date_from_a_site_not_declared_day_first(contract, dataset, folder):
    subjects = dataset.raw[SUBJECTS]
    row = int(np.flatnonzero(subjects["site"].str.strip() == "S1")[0]) + 2
    year, month, day = subjects.loc[row - 2, "consent_date"].split("-")
    written = f"{day}/{month}/{year}"
    _set(folder, SUBJECTS, row, "consent_date", written)
    problem = _only(_validate(contract, folder), "date_invalid")
    assert (problem.file, problem.row, problem.column, problem.value) == (SUBJECTS, row, "consent_date", written)
    assert problem.message == (
        "not a date the contract accepts: day-first date from a site not declared day_first (order ambiguous): "
        "site S1 has day_first: false in the sites of dataset.yaml (day-first sites: S2); write the date as YYYY-MM-DD"
    )
    # in another file the row's site comes from its subject
    diary = dataset.raw[DIARY]
    subject = subjects.loc[row - 2, "subject_id"]
    diary_row = int(np.flatnonzero(diary["subject_id"] == subject)[0]) + 2
    year, month, day = diary.loc[diary_row - 2, "assessment_date"].split("-")
    _set(folder, SUBJECTS, row, "consent_date", subjects.loc[row - 2, "consent_date"])
    _set(folder, DIARY, diary_row, "assessment_date", f"{day}-{month}-{year}")
    problem = _only(_validate(contract, folder), "date_invalid")
    assert (problem.file, problem.row, problem.column) == (DIARY, diary_row, "assessment_date")
    assert "site S1 has day_first: false in the sites of dataset.yaml" in problem.message


@pytest.mark.parametrize(
    ("declarations", "key", "value", "message"),
    [
        (
            {"subject_id": {"pattern": "^K2PN-[0-9{3}$"}},
            "subject_id.pattern",
            "^K2PN-[0-9{3}$",
            "not a regular expression",
        ),
        ({"subject_id": {"pattern": SUBJECT_PATTERN, "prefix": "K2"}}, "subject_id.prefix", "K2", "unknown key"),
        ({"subject_id": {}}, "subject_id.pattern", None, "missing: the regular expression IDs match"),
        ({"subject_id": "^K2PN-[0-9]{3}$"}, "subject_id", SUBJECT_PATTERN, "expected a mapping with the key pattern"),
        ({"sites": {"S1": {"day_first": False}, "S2": {}}}, "sites.S2.day_first", None, "missing: whether the site"),
        ({"sites": {"S1": {"day_first": "yes"}}}, "sites.S1.day_first", "yes", "expected true or false"),
        ({"sites": {"S1": {"day_first": False, "order": "DMY"}}}, "sites.S1.order", "DMY", "unknown key"),
        ({"sites": ["S1", "S2"]}, "sites", "['S1', 'S2']", "expected a mapping of site names"),
    ],
)
def test_unusable_declarations_name_dataset_yaml_and_the_key(contract, dataset, tmp_path, declarations, key, value,
                                                             message):  # fmt: skip
    description = {k: v for k, v in dataset.dataset_yaml.items() if k not in ct.DECLARATION_KEYS}
    folder = write_declared_dataset(dataset, tmp_path / "bad", {**description, **declarations})
    result = _validate(contract, folder)
    problem = _only(result, ct.DECLARATION_INVALID)
    assert (problem.file, problem.row, problem.column, problem.value) == ("dataset.yaml", None, key, value)
    assert message in problem.message
    assert result.contract is None and result.tables == {}  # values are not checked against an unusable declaration
    report = validation_report.build_report(result)
    assert report["status"] == "failed" and report["declarations"] is None
    assert "no value of the raw files was checked" in validation_report.report_markdown(report, contract)
    with pytest.raises(ct.ConfigError, match=re.escape(f"dataset.yaml: {key}")):
        ct.apply_declarations(contract, {**description, **declarations})


# ---------------------------------------------------------------------------------------------------------------------
# End to end through Snakemake
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.workflow
def test_declared_dataset_runs_end_to_end_and_its_vas_dataset_is_the_truth(dataset, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    raw_dir = write_declared_dataset(dataset, tmp_path / "k2pn")  # outside the repository copy
    run = run_snakemake(workdir, "--config", f"raw_dir={raw_dir}")
    assert run.returncode == 0, run.stderr[-4000:]
    for part in ("data/raw/codebook.yaml", "data/raw/dataset.yaml", "config/config.yaml", "config/lab_units.yaml"):
        assert (workdir / part).read_bytes() == (ROOT / part).read_bytes(), part  # no repository edit
    results = workdir / "results"
    config = read_config()
    contract = ct.read_contract(ROOT / "data/raw/codebook.yaml", ROOT / "config/lab_units.yaml")
    expected = expected_vas(dataset.truth[DIARY], list(contract.symptoms), list(composite_items(config["protocol"])))
    vas = pd.read_csv(results / "analysis/vas.csv", keep_default_na=False, na_values=[""])
    assert list(vas.columns) == list(expected.columns)
    keys = ["subject_id", "param", "visit"]
    assert vas[keys].values.tolist() == expected[keys].values.tolist()
    assert (vas["week"].to_numpy() == expected["week"].to_numpy()).all()
    for column in ("aval", "base", "chg", "pchg"):
        np.testing.assert_allclose(vas[column].to_numpy(float), expected[column].to_numpy(float), rtol=0, atol=1e-9,
                                   err_msg=column)  # fmt: skip
    # the withdrawals: no record after their last week, not in the efficacy set
    subjects = pd.read_csv(results / "analysis/subjects.csv", keep_default_na=False)
    withdrawn = subjects[subjects["status"] == "withdrawn"]
    assert sorted(withdrawn["subject_id"]) == ["K2PN-104", "K2PN-113"]
    assert not withdrawn["efffl"].astype(str).eq("True").any()
    assert sorted(subjects["site"].unique()) == ["S1", "S2"]
    # Table 1 shows the declared sites with their counts
    table1 = pd.read_csv(results / "groups/baseline_characteristics.csv", keep_default_na=False)
    sites = table1[(table1["characteristic"] == "site") & (table1["group"] == "overall")]
    counts = dataset.truth[SUBJECTS]["site"].value_counts()
    assert dict(zip(sites["level"], sites["count"], strict=True)) == {"S1": counts["S1"], "S2": counts["S2"]}
    table = pd.read_csv(results / "tables/table1_baseline.csv", keep_default_na=False)
    rows = table.set_index(table.columns[0])[table.columns[1]]
    assert rows["  S1"] == f"{counts['S1']} ({100 * counts['S1'] / 40:.1f}%)"
    assert rows["  S2"] == f"{counts['S2']} ({100 * counts['S2'] / 40:.1f}%)"
    # the participant flow counts the two withdrawals (K2PN-104 after week 3, K2PN-113 after week 5)
    flow = pd.read_csv(results / "groups/participant_flow.csv").set_index("stage")["n"]
    assert (flow["enrolled"], flow["week4"], flow["week8"], flow["analysed"]) == (40, 39, 38, 38)
    # the report and the provenance records say which declarations were in force
    report = json.loads((results / "validation/report.json").read_text())
    assert report["status"] == "passed"
    assert report["declarations"]["subject_id"]["pattern"] == SUBJECT_PATTERN
    for rule in ("validate_raw_data", "clean_raw_data", "derive_vas"):
        record = json.loads((results / f"provenance/{rule}.json").read_text())
        assert record["declarations"] == report["declarations"], rule
    # nothing in the results speaks of the codebook's default IDs or sites
    default_names = re.compile(r"K2-[0-9]{3}|SITE-[AB]")
    for path in sorted(results.rglob("*")):
        if path.is_file() and path.suffix in {".csv", ".json", ".md", ".html", ".tex", ".svg", ".yml", ".yaml"}:
            if "provenance" in path.parts or "logs" in path.parts:
                continue
            assert not default_names.search(path.read_text(errors="replace")), path.relative_to(results)
