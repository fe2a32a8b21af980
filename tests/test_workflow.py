"""The workflow end to end: builds from raw data, reruns nothing when up to date, stops cleanly on bad input.

These run the real `snakemake` on a copy of the repository with a small raw dataset
(tests/fixtures/minimal, in the contract's format) passed as `--config raw_dir=...`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

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
    for path in ANALYSIS + ["results/validation/report.json", "results/clean/audit_log.csv"]:
        assert (workflow_dir / path).stat().st_size > 0, path
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
