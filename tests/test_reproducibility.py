"""Reproducibility: same raw data and same lock give the same bytes, whatever happens to the run.

One clean build of the shipped data (module fixture) is compared with the committed snapshot, with a
build in another directory, with a run killed part-way and resumed, and with two runs started at once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import SNAKEMAKE, copy_workflow, read_config, run_snakemake, shipped_vocabulary
from snapshot import SNAPSHOT, artifact_hashes, compare, is_ignored

from k2trial.core.vocabulary import fill_words, protocol_words

pytestmark = pytest.mark.workflow


def _build(workdir: Path) -> Path:
    result = run_snakemake(workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def _compared(workdir: Path) -> dict[str, str]:
    return {p: h for p, h in artifact_hashes(workdir).items() if h is not None}


def _planned_rules(workdir: Path, *args: str) -> set[str]:
    """Rules `snakemake -n` would run (from its job-stats table)."""
    result = run_snakemake(workdir, "-n", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return set()
    table = text.split("Job stats:", 1)[1]
    rules = set()
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)\s*$", line.strip())
        if not match:
            break
        if match.group(1) != "total":
            rules.add(match.group(1))
    return rules


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return _build(copy_workflow(tmp_path_factory.mktemp("build-a") / "wf"))


def test_build_matches_committed_snapshot(built):
    expected = json.loads(SNAPSHOT.read_text())
    problems = compare(expected, artifact_hashes(built))
    assert not problems, "artifacts differ from tests/snapshots/artifacts.json (update: make snapshot):\n" + "\n".join(
        problems
    )


def test_every_artifact_of_a_build_matches_its_schema(built):
    # the build as the workflow wrote it: every analysis artifact's header is its schema's
    from k2trial.core import schema

    checked = 0
    for name in schema.ARTIFACTS:
        path = built / "results" / f"{name}.csv"
        if path.exists():
            schema.check_columns(name, schema.read_header(path), str(path))
            checked += 1
    assert checked >= 20, f"only {checked} schema artifacts found in the build"


def test_snapshot_comparison_names_a_changed_artifact(built):
    expected = json.loads(SNAPSHOT.read_text())
    tampered = dict(artifact_hashes(built))
    victim = sorted(expected["sha256"])[0]
    tampered[victim] = "0" * 64
    assert compare(expected, tampered) == [f"changed: {victim}"]


def test_second_run_has_nothing_to_do(built):
    again = run_snakemake(built)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr
    assert _planned_rules(built) == set()


def test_changing_a_lab_reference_range_reruns_only_safety_and_what_depends_on_it(built, tmp_path):
    work = tmp_path / "wf"
    shutil.copytree(built, work, symlinks=True)  # copy2 keeps mtimes, so the copy is up to date too
    assert _planned_rules(work) == set()
    standards = work / "config/lab_standards.yaml"
    text = standards.read_text()
    changed = text.replace("range: [7.0, 40.0]", "range: [7.0, 45.0]", 1)
    assert changed != text, "ALT default range not found"
    standards.write_text(changed)
    planned = _planned_rules(work)
    assert "safety_analysis" in planned
    untouched = {"validate_raw_data", "clean_raw_data", "derive_subjects", "derive_vas", "derive_labs"}
    untouched |= {"assign_groups", "efficacy_analysis"}
    assert not planned & untouched, planned & untouched


def test_build_in_another_directory_gives_identical_artifacts(built, tmp_path):
    other = _build(copy_workflow(tmp_path / "elsewhere" / "deeper" / "wf"))
    assert _compared(other) == _compared(built)
    # and no absolute path of either build leaks into any artifact, provenance records included
    for file in (other / "results").rglob("*"):
        if file.is_file() and not file.match("*.log") and file.suffix not in {".png", ".gz"}:
            assert str(other) not in file.read_text(errors="ignore"), file


def test_run_killed_part_way_then_rerun_gives_identical_artifacts(built, tmp_path):
    work = copy_workflow(tmp_path / "wf")
    proc = subprocess.Popen(
        [SNAKEMAKE, "--cores", "4"],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=dict(os.environ, PYTHONHASHSEED="0"),
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (work / "results/analysis/vas.csv").exists():
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / "results/MANIFEST.json").exists(), "the run finished before it could be killed"
    # Whether the kill lands inside a write is a matter of timing: a temporary of a killed writer is planted for a
    # file the resumed run still has to write, so the check below does not depend on it.
    dead = subprocess.Popen(["true"])
    dead.wait()
    (work / "results" / f".MANIFEST.json.{dead.pid}.0123abcd.part").write_bytes(b"")
    unlock = run_snakemake(work, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    resumed = run_snakemake(work, "--rerun-incomplete")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert _compared(work) == _compared(built)
    # no temporary file of an interrupted write survives the resumed run (issue 12, item 2)
    stray = sorted(p.relative_to(work).as_posix() for p in (work / "results").rglob("*.part"))
    assert stray == [], stray


def test_two_runs_started_at_once_do_not_corrupt_results(built, tmp_path):
    work = copy_workflow(tmp_path / "wf")
    env = dict(os.environ, PYTHONHASHSEED="0")
    procs = [
        subprocess.Popen(
            [SNAKEMAKE, "--cores", "2"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert 0 in codes, outputs
    for code, text in zip(codes, outputs, strict=True):
        if code != 0:
            assert "lock" in text.lower(), text[-2000:]
    final = run_snakemake(work)  # finishes whatever a refused run left undone
    assert final.returncode == 0
    assert _compared(work) == _compared(built)
    assert not any(is_ignored(p) for p in _compared(work))


def test_archive_is_versioned_deterministic_and_described_by_a_workflow_run_crate(built, tmp_path):
    import tarfile

    work = tmp_path / "wf"
    shutil.copytree(built, work, symlinks=True)
    first = run_snakemake(work, "archive")
    assert first.returncode == 0, first.stderr[-3000:]
    manifest = json.loads((work / "results/MANIFEST.json").read_text())
    name = f"k2trial-results-{manifest['analysis_version']}-{manifest['data_version'][:12]}"
    archive = work / "results/archive" / f"{name}.tar.gz"
    assert archive.exists(), sorted(p.name for p in (work / "results/archive").iterdir())
    with tarfile.open(archive) as tar:
        members = set(tar.getnames())
        crate = json.loads(tar.extractfile(f"{name}/ro-crate-metadata.json").read())
    for artifact in manifest["artifacts"]:
        assert f"{name}/{artifact['path']}" in members
    assert f"{name}/data/raw/subjects.csv" in members and f"{name}/Snakefile" in members
    graph = {entity["@id"]: entity for entity in crate["@graph"]}
    root = graph["./"]
    assert {"@id": "https://w3id.org/ro/wfrun/workflow/0.5"} in root["conformsTo"]
    assert root["mainEntity"] == {"@id": "Snakefile"}
    run = graph["#run"]
    assert run["@type"] == "CreateAction" and "SIMULATED" in run["name"]
    assert {"@id": "data/raw/labs.csv"} in run["object"]
    assert {"@id": "results/efficacy/paired_tests.csv"} in run["result"]
    assert graph["results/efficacy/paired_tests.csv"]["sha256"] == next(
        a["sha256"] for a in manifest["artifacts"] if a["path"] == "results/efficacy/paired_tests.csv"
    )
    digest = archive.read_bytes()
    shutil.rmtree(work / "results/archive")
    again = run_snakemake(work, "archive")
    assert again.returncode == 0
    assert archive.read_bytes() == digest


def test_snakemake_report_is_built_with_a_caption_for_every_reported_output(built, tmp_path):
    work = tmp_path / "wf"
    shutil.copytree(built, work, symlinks=True)
    result = run_snakemake(work, "--report", "results/report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    report = (work / "results/report.html").read_text(errors="ignore")
    assert "SIMULATED DATA" in report
    # every reported output of the registry (workflow/report/registry.yaml) carries its caption in the report
    config = read_config()
    registry = fill_words(
        yaml.safe_load((work / "workflow/report/registry.yaml").read_text()),
        protocol_words(shipped_vocabulary(), config["efficacy"], config["safety"]),
    )
    entries = [entry for section in ("figures", "tables", "notebooks") for entry in registry[section]]
    for entry in [*entries, registry["index"]]:
        assert " ".join(entry["caption"].split()[:6]) in report, entry.get("name", "index")
    for footnote in registry["footnotes"].values():
        assert " ".join(footnote.split()[:6]) in report
