"""SDTM out and back (issue 16) and SDTM as the pipeline's input (issue 15, item 1).

Workflow tests: the shipped raw CSV files are built and written as SDTM (rule `sdtm`, results/sdtm/); a second build
reads that folder through `format: sdtm` (rule import_sdtm) and must give byte-identical analysis, groups, efficacy,
safety and ADaM artifacts, and write the same SDTM again; a broken SDTM folder stops the run at the cleaning gate
with findings naming domain, USUBJID, variable and --SEQ, in the validation report too. Unit tests: the
dataset.yaml keys (k2trial.data.sdtm_io.input_format), the report merge, the checksum check, the creation datetime.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, copy_workflow, run_snakemake

from k2trial.core.errors import ConfigError, Problem
from k2trial.data import sdtm
from k2trial.data.sdtm_io import (
    RAW_TABLES,
    SdtmSource,
    add_to_report,
    checksum_problems,
    checksums_text,
    export_description,
    input_format,
    sdtm_datetime,
    sdtm_files,
)

#: The artifact folders the round trip must reproduce byte for byte (every file, CSV or not).
COMPARED = ("analysis", "groups", "efficacy", "safety", "adam")
SCHEMA = next(
    (p / "shared" / "schemas" / "dataset-json-1.1.schema.json" for p in ROOT.parents
     if (p / "shared" / "schemas" / "dataset-json-1.1.schema.json").exists()),
    ROOT.parent / "shared" / "schemas" / "dataset-json-1.1.schema.json",
)  # fmt: skip


def _hashes(results: Path, folders=COMPARED) -> dict[str, str]:
    return {
        p.relative_to(results).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        for p in sorted((results / folder).rglob("*"))
        if p.is_file()
    }


def _run(work: Path, *args: str) -> None:
    done = run_snakemake(work, *args, cores=2)
    if done.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{done.stderr[-4000:]}", pytrace=False)


# ----------------------------------------------------------------------------------------------------------------
# The two builds (once per module): CSV -> SDTM, then SDTM -> the pipeline -> SDTM again
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def csv_build(tmp_path_factory) -> Path:
    work = copy_workflow(tmp_path_factory.mktemp("sdtm_csv") / "wf")
    _run(work, "all", "sdtm")
    return work


@pytest.fixture(scope="module")
def sdtm_build(csv_build, tmp_path_factory) -> Path:
    work = copy_workflow(tmp_path_factory.mktemp("sdtm_in") / "wf")
    shutil.copytree(csv_build / "results" / "sdtm", work / "sdtm_delivery")
    _run(work, "all", "sdtm", "--config", "raw_dir=sdtm_delivery")
    return work


@pytest.mark.workflow
def test_raw_csv_to_sdtm_and_back_gives_byte_identical_analysis_artifacts(csv_build, sdtm_build):
    ours, theirs = _hashes(csv_build / "results"), _hashes(sdtm_build / "results")
    # every file of those folders the default build makes (tests/snapshots/artifacts.json) is compared
    snapshot = json.loads((ROOT / "tests" / "snapshots" / "artifacts.json").read_text(encoding="utf-8"))
    expected = {n.removeprefix("results/") for n in snapshot["names"] if n.split("/")[1] in COMPARED}
    assert set(ours) == expected and len([p for p in ours if p.endswith(".csv")]) == 28
    assert sorted(theirs) == sorted(ours)
    assert [p for p in ours if ours[p] != theirs[p]] == []
    # the second build really read the SDTM: its raw tables are import_sdtm's, with the source keys
    labs = pd.read_csv(sdtm_build / "results" / "raw_from_sdtm" / "labs.csv", dtype=str, keep_default_na=False)
    assert labs["source_record"].iloc[0] == f"LB USUBJID={labs['subject_id'].iloc[0]} LBSEQ={labs['lbseq'].iloc[0]}"
    assert not (csv_build / "results" / "raw_from_sdtm").exists()


@pytest.mark.workflow
def test_the_sdtm_read_back_is_written_again_byte_for_byte(csv_build, sdtm_build):
    first, second = csv_build / "results" / "sdtm", sdtm_build / "results" / "sdtm"
    # (Snakemake's .snakemake_timestamp marker of a directory output aside)
    names = sorted(p.name for p in first.iterdir() if not p.name.startswith("."))
    assert names == sorted(p.name for p in second.iterdir() if not p.name.startswith("."))
    assert {"dm.xpt", "dm.json", "lb.xpt", "qs.json", "dataset.yaml", "SHA256SUMS"} <= set(names)
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    description = yaml.safe_load((first / "dataset.yaml").read_text(encoding="utf-8"))
    shipped = yaml.safe_load((ROOT / "data" / "raw" / "dataset.yaml").read_text(encoding="utf-8"))
    assert description == {**shipped, "format": "sdtm", "sdtm": {"files": "xpt", "study": "k2"}}
    # SHA256SUMS lists every other file of the folder
    listed = dict(reversed(line.split("  ", 1)) for line in (first / "SHA256SUMS").read_text().splitlines())
    assert sorted(listed) == [n for n in names if n != "SHA256SUMS"]
    assert all(hashlib.sha256((first / n).read_bytes()).hexdigest() == h for n, h in listed.items())


@pytest.mark.workflow
def test_the_sdtm_holds_the_clean_records_and_is_stamped_with_the_data_last_date(csv_build):
    folder = csv_build / "results" / "sdtm"
    results = csv_build / "results"
    clean = {n: pd.read_csv(results / "clean" / n, dtype=str, keep_default_na=False) for n in RAW_TABLES}
    domains = {n: sdtm.read_xpt(folder / f"{n.lower()}.xpt") for n in ("DM", "LB", "QS", "DA")}
    assert domains["DM"]["USUBJID"].tolist() == clean["subjects.csv"]["subject_id"].tolist()
    assert len(domains["LB"]) == len(clean["labs.csv"]) and len(domains["QS"]) == len(clean["symptom_diary.csv"])
    assert len(domains["DA"]) == 2 * len(clean["dosing.csv"])  # dispensed and returned per visit
    dates = [v for n, t in clean.items() for c in t.columns if c.endswith("_date") for v in t[c] if v]
    last = max(dates)
    for name in ("dm", "lb"):
        document = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
        assert document["datasetJSONCreationDateTime"] == f"{last}T00:00:00"
        data = (folder / f"{name}.xpt").read_bytes()
        assert data[144:160] == dt.date.fromisoformat(last).strftime("%d%b%y").upper().encode() + b":00:00:00"


@pytest.mark.workflow
def test_the_sdtm_dataset_json_validates_against_the_cdisc_schema(csv_build):
    if not SCHEMA.exists():
        pytest.skip(f"CDISC Dataset-JSON v1.1 schema not found at {SCHEMA}")
    import jsonschema

    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    files = sorted((csv_build / "results" / "sdtm").glob("*.json"))
    assert len(files) >= 10
    for path in files:
        document = json.loads(path.read_text(encoding="utf-8"))
        problems = [e.message for e in validator.iter_errors(document)]
        assert not problems, (path.name, problems[:5])
        assert document["records"] == len(document["rows"])


@pytest.mark.workflow
def test_an_sdtm_input_is_a_pipeline_job_with_its_report_in_validation(sdtm_build):
    results = sdtm_build / "results"
    record = json.loads((results / "provenance" / "import_sdtm.json").read_text(encoding="utf-8"))
    assert sorted(Path(i["path"]).name for i in record["inputs"] if i["path"].endswith(".xpt"))[:2] == [
        "ae.xpt",
        "cm.xpt",
    ]
    manifest = json.loads((results / "MANIFEST.json").read_text(encoding="utf-8"))
    assert {a["path"]: a["rule"] for a in manifest["artifacts"]}["results/raw_from_sdtm/labs.csv"] == "import_sdtm"
    report = json.loads((results / "validation" / "report.json").read_text(encoding="utf-8"))
    assert report["status"] == "passed" and report["input"]["format"] == "sdtm" and report["input"]["converted"]
    assert report["input"]["domains"]["LB"]["records"] == 1620
    assert report["counts"]["sdtm"] == {}  # our own SDTM: no finding
    assert "## SDTM input" in (results / "validation" / "report.md").read_text(encoding="utf-8")


def _broken_delivery(csv_build: Path, work: Path) -> tuple[Path, dict]:
    """The SDTM export as Dataset-JSON, with one LB record moved to a subject DM does not have, and SHA256SUMS
    kept from before the edit."""
    folder = work / "broken"
    shutil.copytree(csv_build / "results" / "sdtm", folder)
    for path in folder.glob("*.xpt"):
        path.unlink()
    description = yaml.safe_load((folder / "dataset.yaml").read_text(encoding="utf-8"))
    description["sdtm"]["files"] = "json"
    (folder / "dataset.yaml").write_text(yaml.safe_dump(description, sort_keys=False), encoding="utf-8")
    lb = json.loads((folder / "lb.json").read_text(encoding="utf-8"))
    names = [c["name"] for c in lb["columns"]]
    row = lb["rows"][5]
    edited = {"usubjid": row[names.index("USUBJID")], "lbseq": row[names.index("LBSEQ")]}
    row[names.index("USUBJID")] = "K2-999"
    (folder / "lb.json").write_text(json.dumps(lb), encoding="utf-8")
    return folder, edited


@pytest.mark.workflow
def test_a_broken_sdtm_stops_the_run_naming_domain_usubjid_variable_and_seq(csv_build, tmp_path):
    work = copy_workflow(tmp_path / "wf")
    folder, edited = _broken_delivery(csv_build, work)
    done = run_snakemake(work, "--config", f"raw_dir={folder.name}", cores=2)
    assert done.returncode != 0
    message = f"LB, column 'USUBJID' (value 'K2-999'): USUBJID K2-999, LBSEQ {edited['lbseq']:g}"
    assert message in done.stderr, done.stderr[-3000:]
    assert "lb.json: the file does not match its SHA256SUMS line" in done.stderr
    assert "the run stops before any analysis" in done.stderr
    report = json.loads((work / "results" / "validation" / "report.json").read_text(encoding="utf-8"))
    assert report["status"] == "failed" and report["input"]["converted"] is False
    rules = {(p["file"], p["rule"]) for p in report["problems"]}
    assert {("LB", "subject_not_in_dm"), ("lb.json", "checksum_mismatch")} <= rules
    assert report["counts"]["sdtm"]["LB"] == {"subject_not_in_dm": 1}
    assert not any(p["file"] in RAW_TABLES for p in report["problems"])  # the empty tables are not reported
    assert not (work / "results" / "clean" / "labs.csv").exists()  # the gate stopped cleaning


# ----------------------------------------------------------------------------------------------------------------
# Unit tests: dataset.yaml, the report merge, checksums, the creation datetime
# ----------------------------------------------------------------------------------------------------------------
def test_input_format_reads_the_dataset_yaml_keys():
    assert input_format({"name": "x"}) is None
    assert input_format({"format": "csv"}) is None
    assert input_format(None) is None and input_format(["not", "a", "mapping"]) is None
    source = input_format({"format": "sdtm"})
    assert source == SdtmSource(files="xpt", study={}) and source.suffix == ".xpt"
    source = input_format({"format": "sdtm", "sdtm": {"files": "json", "study": "cdiscpilot"}})
    assert source.study_mapping() == sdtm.CDISC_PILOT_STUDY and source.suffix == ".json"
    inline = {"randomised": True, "expected_domains": ["DS"]}
    assert input_format({"format": "sdtm", "sdtm": {"study": inline}}).study_mapping() == inline


@pytest.mark.parametrize(
    ("description", "message"),
    [
        ({"format": "sas"}, "raw/dataset.yaml: key 'format': 'sas' is no input format; known: csv, sdtm"),
        ({"sdtm": {"files": "xpt"}}, "raw/dataset.yaml: key 'sdtm' is given, but 'format' is not sdtm"),
        ({"format": "sdtm", "sdtm": {"files": "sas7bdat"}}, "key 'sdtm.files': 'sas7bdat'; known: xpt, json, ndjson"),
        ({"format": "sdtm", "sdtm": {"study": "pilot"}}, "key 'sdtm.study': no study mapping 'pilot'; known: k2"),
        ({"format": "sdtm", "sdtm": {"folder": "x"}}, "key 'sdtm': unknown key(s) ['folder']; known: files, study"),
        ({"format": "sdtm", "sdtm": "xpt"}, "key 'sdtm': expected a mapping with files, study"),
    ],
    ids=["format", "sdtm-without-format", "files", "study", "unknown", "not-a-mapping"],
)
def test_input_format_errors_name_the_file_and_the_key(description, message):
    with pytest.raises(ConfigError) as error:
        input_format(description, label="raw/dataset.yaml")
    assert message in str(error.value)


def test_sdtm_files_are_the_files_of_the_declared_type(tmp_path):
    for name in ("dm.xpt", "LB.XPT", "dm.json", "define.xml", "README.md"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub.xpt").mkdir()
    assert [Path(p).name for p in sdtm_files(tmp_path, SdtmSource("xpt", {}))] == ["LB.XPT", "dm.xpt"]
    assert [Path(p).name for p in sdtm_files(tmp_path, SdtmSource("json", {}))] == ["dm.json"]
    assert sdtm_files(tmp_path / "absent", SdtmSource("xpt", {})) == []


def test_checksums_name_the_changed_file_and_the_file_not_listed():
    data = {"dm.xpt": b"dm", "lb.xpt": b"lb"}
    text = checksums_text(data)
    assert text == "".join(f"{hashlib.sha256(v).hexdigest()}  {k}\n" for k, v in sorted(data.items()))
    hashes = {k: hashlib.sha256(v).hexdigest() for k, v in data.items()}
    assert checksum_problems(text, hashes) == [] and checksum_problems(None, hashes) == []
    changed = {**hashes, "lb.xpt": hashlib.sha256(b"LB").hexdigest(), "ae.xpt": hashlib.sha256(b"ae").hexdigest()}
    found = {(p.file, p.rule, p.severity) for p in checksum_problems(text + "junk line\n", changed)}
    assert found == {
        ("lb.xpt", "checksum_mismatch", "error"),
        ("ae.xpt", "checksum_not_listed", "warning"),
        ("SHA256SUMS", "checksum_line_invalid", "error"),
    }


def _report(problems: list[dict]) -> dict:
    by_file: dict = {}
    for p in problems:
        by_file.setdefault(p["file"], {}).setdefault(p["rule"], 0)
        by_file[p["file"]][p["rule"]] += 1
    counts = {s: sum(p["severity"] == s for p in problems) for s in ("error", "fixable", "warning")}
    counts.update(total=len(problems), reported=len(problems), limit_per_rule=1000, by_file=by_file,
                  records={"labs.csv": 0})  # fmt: skip
    return {"status": "failed" if counts["error"] else "passed", "contract_version": "1.0", "counts": counts,
            "problems": problems, "data_version": "v", "files": {}}  # fmt: skip


def _problem(file, rule, severity, column=None):
    return {"file": file, "row": None, "column": column, "value": None, "rule": rule, "severity": severity,
            "message": f"{file}: {rule}"}  # fmt: skip


def test_add_to_report_counts_the_findings_and_fails_on_their_errors():
    raw = [_problem("labs.csv", "no_records", "error"), _problem("dataset.yaml", "dataset_key_missing", "error")]
    finding = Problem("LB", None, "USUBJID", "K2-9", "subject_not_in_dm", "error", "USUBJID K2-9, LBSEQ 3: not in DM")
    warning = Problem("AE", None, "AEREL", "", "value_missing", "warning", "USUBJID K2-1, AESEQ 1: empty")
    imported = {
        "source": {"files": "xpt", "study": "k2"},
        "converted": False,
        "domains": {"LB": {"file": "lb.xpt", "records": 4, "sha256": "s"}},
        "problems": [vars(finding), vars(warning)],
    }
    out = add_to_report(_report(raw), imported)
    # not converted: the empty tables' problems go, dataset.yaml's stay; the findings come first
    assert [p["rule"] for p in out["problems"]] == ["subject_not_in_dm", "value_missing", "dataset_key_missing"]
    assert (out["counts"]["error"], out["counts"]["warning"], out["counts"]["total"]) == (2, 1, 3)
    assert out["counts"]["by_file"] == {"dataset.yaml": {"dataset_key_missing": 1}}
    assert out["counts"]["sdtm"] == {"AE": {"value_missing": 1}, "LB": {"subject_not_in_dm": 1}}
    assert out["status"] == "failed" and out["input"]["domains"]["LB"]["file"] == "lb.xpt"
    # converted, with a warning only: the raw problems stay and the status is theirs
    passed = add_to_report(_report([_problem("labs.csv", "column_unexpected", "warning", "lbseq")]),
                           {**imported, "converted": True, "problems": [vars(warning)]})  # fmt: skip
    assert passed["status"] == "passed" and len(passed["problems"]) == 2 and passed["counts"]["warning"] == 2


def test_sdtm_datetime_is_midnight_of_the_latest_full_date():
    domains = {
        "DM": pd.DataFrame({"RFSTDTC": ["2013-01-02", ""], "AGE": [30.0, 40.0]}),
        "LB": pd.DataFrame({"LBDTC": ["2013-03-04T10:15", "2013-05"]}),  # a partial date does not count
    }
    assert sdtm_datetime(domains) == dt.datetime(2013, 3, 4)
    assert sdtm_datetime({"DM": pd.DataFrame({"RFSTDTC": [""]})}) == dt.datetime(1960, 1, 1)


def test_export_description_reads_the_folder_back():
    shipped = {"name": "n", "version": "1", "simulated": True, "format": "csv"}
    out = export_description(shipped, "json", "k2")
    assert out == {"name": "n", "version": "1", "simulated": True, "format": "sdtm",
                   "sdtm": {"files": "json", "study": "k2"}}  # fmt: skip
    assert input_format(out) == SdtmSource("json", "k2")
