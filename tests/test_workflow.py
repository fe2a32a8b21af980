"""The workflow end to end: builds from raw data, reruns nothing when up to date, stops cleanly on bad input.

These run the real `snakemake` on a copy of the repository with a small raw dataset
(tests/fixtures/minimal, in the contract's format) passed as `--config raw_dir=...`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, run_snakemake

pytestmark = pytest.mark.workflow

MINIMAL = ROOT / "tests" / "fixtures" / "minimal"
ANALYSIS = ["results/analysis/subjects.csv", "results/analysis/vas.csv", "results/analysis/labs.csv"]


def _raw_copy(workflow_dir: Path) -> Path:
    raw = workflow_dir / "mydata"
    shutil.copytree(MINIMAL, raw)
    (raw / "SHA256SUMS").unlink(missing_ok=True)
    return raw


def _downstream_outputs(workflow_dir: Path) -> list[str]:
    found = []
    for stage in ("clean", "analysis", "groups", "efficacy", "safety"):
        folder = workflow_dir / "results" / stage
        if folder.exists():
            found += [p.relative_to(workflow_dir).as_posix() for p in folder.rglob("*") if p.is_file()]
    return found


def test_minimal_dataset_builds_analysis_datasets_and_second_run_is_noop(workflow_dir):
    raw = _raw_copy(workflow_dir)
    first = run_snakemake(workflow_dir, *ANALYSIS, "--config", f"raw_dir={raw.name}")
    assert first.returncode == 0, first.stderr[-3000:]
    results = workflow_dir / "results"
    # the messy raw rows (tests/fixtures/minimal) come out cleaned, with the values worked out by hand
    subjects = pd.read_csv(results / "analysis/subjects.csv", keep_default_na=False)
    assert subjects[["subject_id", "site", "sex", "etiology", "metformin"]].values.tolist() == [
        ["K2-001", "SITE-A", "F", "b12_deficiency", False],
        ["K2-002", "SITE-B", "M", "diabetes", True],  # K2_002, "male", "Diabetes Mellitus", "Y"
        ["K2-003", "SITE-A", "M", "both", True],  # " SITE-A "
    ]
    assert subjects["consent_date"].tolist() == ["2013-01-02", "2013-01-05", "2013-01-08"]  # 05/01/2013 day first
    first = subjects.iloc[0]
    assert first["treatment_days"] == 56 and first["capsules_returned"] == 6  # 2 + 4 returned, 2 x 56 dispensed
    assert first["compliance_pct"] == pytest.approx(100 * (112 - 6) / 112)
    assert first["bmi"] == pytest.approx(62.5 / 1.58**2)
    vas = pd.read_csv(results / "analysis/vas.csv").set_index(["subject_id", "param", "visit"])
    # K2-001's baseline diary: 8.0, 7.5, 6.5, 6.0, 6.0 -> composite 6.8; week 6 fatigue was written "3,0"
    assert vas.loc[("K2-001", "composite", "baseline"), "aval"] == pytest.approx((8.0 + 7.5 + 6.5 + 6.0 + 6.0) / 5)
    assert vas.loc[("K2-001", "fatigue", "week6"), "aval"] == 3.0
    week8 = vas.loc[("K2-001", "composite", "week8")]
    assert week8["base"] == pytest.approx(6.8) and week8["chg"] == pytest.approx(week8["aval"] - 6.8)
    assert week8["pchg"] == pytest.approx(100 * week8["chg"] / 6.8)
    labs = pd.read_csv(results / "analysis/labs.csv")
    hgb = labs[(labs["subject_id"] == "K2-001") & (labs["param"] == "HGB")]
    assert hgb[["visit", "aval", "unit", "base"]].values.tolist()[0] == ["baseline", 10.4, "g/dL", 10.4]  # "g/dl"
    audit = pd.read_csv(results / "clean/audit_log.csv", keep_default_na=False)
    rows = set(zip(audit["file"], audit["raw_row"], audit["column"], audit["old"], audit["new"], strict=True))
    assert ("subjects.csv", 3, "subject_id", "K2_002", "K2-002") in rows
    assert ("subjects.csv", 4, "site", " SITE-A ", "SITE-A") in rows
    assert ("symptom_diary.csv", 35, "vas_cm", "3,0", "3") in rows
    report = json.loads((results / "validation/report.json").read_text())
    assert report["status"] == "passed" and report["counts"]["error"] == 0
    assert report["counts"]["records"] == {"adverse_events.csv": 1, "dosing.csv": 6, "labs.csv": 162, "subjects.csv": 3,
                                           "symptom_diary.csv": 136}  # fmt: skip
    again = run_snakemake(workflow_dir, "-n", *ANALYSIS, "--config", f"raw_dir={raw.name}")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


def _break(raw: Path, case: str) -> tuple[str, str]:
    """Damage one raw file; return (file name, column name) the error message must name."""
    subjects = raw / "subjects.csv"
    diary = raw / "symptom_diary.csv"
    labs = raw / "labs.csv"
    if case == "missing_file":
        diary.unlink()
        return "symptom_diary.csv", ""
    if case == "empty_file":
        labs.write_text("")
        return "labs.csv", ""
    if case == "wrong_encoding":
        text = subjects.read_text(encoding="utf-8")
        lines = text.splitlines()
        fields = lines[1].split(",")
        fields[-1] = "Ménière"  # withdrawal_reason, written as Latin-1 below
        lines[1] = ",".join(fields)
        subjects.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
        return "subjects.csv", ""
    if case == "missing_column":
        lines = subjects.read_text().splitlines()
        header = lines[0].split(",")
        idx = header.index("age_years")
        new = [",".join(f for i, f in enumerate(line.split(",")) if i != idx) for line in lines]
        subjects.write_text("\n".join(new) + "\n")
        return "subjects.csv", "age_years"
    if case == "unparseable_number":
        lines = subjects.read_text().splitlines()
        header = lines[0].split(",")
        idx = header.index("weight_kg")
        fields = lines[1].split(",")
        fields[idx] = "seventy"
        lines[1] = ",".join(fields)
        subjects.write_text("\n".join(lines) + "\n")
        return "subjects.csv", "weight_kg"
    if case == "unknown_subject":
        lines = diary.read_text().splitlines()
        lines.append(lines[1].replace(lines[1].split(",")[0], "K2-999", 1))
        diary.write_text("\n".join(lines) + "\n")
        return "symptom_diary.csv", "subject_id"
    if case == "conflicting_duplicate":
        lines = diary.read_text().splitlines()
        header = lines[0].split(",")
        idx = header.index("vas_cm")
        fields = next(line for line in lines[1:] if line.split(",")[idx].strip()).split(",")
        fields[idx] = "0.5" if fields[idx].strip() != "0.5" else "0.7"
        lines.append(",".join(fields))
        diary.write_text("\n".join(lines) + "\n")
        return "symptom_diary.csv", "vas_cm"
    raise ValueError(case)


ERROR_CASES = [
    "missing_file",
    "missing_column",
    "unparseable_number",
    "unknown_subject",
    "conflicting_duplicate",
    "empty_file",
    "wrong_encoding",
]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_malformed_input_stops_with_a_message_naming_file_and_column(workflow_dir, case):
    raw = _raw_copy(workflow_dir)
    file_name, column = _break(raw, case)
    result = run_snakemake(workflow_dir, *ANALYSIS, "--config", f"raw_dir={raw.name}")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert file_name in output, output[-2000:]
    if column:
        assert column in output, output[-2000:]
    assert "results/validation/report.md" in output or "results/validation/report.json" in output
    assert _downstream_outputs(workflow_dir) == []
    report = (workflow_dir / "results/validation/report.md").read_text()
    assert file_name in report
