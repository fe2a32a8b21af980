"""The `plan` target's inputs (workflow/rules/planning.smk): without the pilot's results the plan stops at once and
says which files are missing and how to build them; the --config overrides point it at other results.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow
from planning_synthetic import write_synthetic_pilot

pytestmark = pytest.mark.workflow

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _dry_run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SNAKEMAKE_PROFILE"}
    return subprocess.run(
        [SNAKEMAKE, "--cores", "1", "-n", "plan", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def test_plan_without_the_pilot_results_names_them_and_the_command_that_builds_them(tmp_path: Path):
    workdir = copy_workflow(tmp_path / "wf")
    inputs = yaml.safe_load((ROOT / "config" / "planning.yaml").read_text())["inputs"]
    assert not (workdir / inputs["vas"]).exists()
    run = _dry_run(workdir)
    assert run.returncode != 0
    said = " ".join((run.stdout + run.stderr).split())
    for name in ("vas", "between_arm", "subjects"):
        assert f"`{name}` {inputs[name]}" in said, said[-3000:]
    assert f"Build them first: {inputs['build']}." in said
    assert "--config planning_vas=PATH planning_between_arm=PATH planning_subjects=PATH" in said

    # Pointed at another study's results (here the synthetic pilot of the tests), the same target plans.
    write_synthetic_pilot(workdir / "other" / "rct")
    overrides = [
        "planning_vas=other/rct/analysis/vas.csv",
        "planning_between_arm=other/rct/efficacy/between_arm.csv",
        "planning_subjects=other/rct/analysis/subjects.csv",
    ]
    run = _dry_run(workdir, "--config", *overrides)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = yaml.safe_load((ROOT / "config" / "planning.yaml").read_text())["jobs"]["count"]
    for rule, count in (("plan_scenarios", 1), ("plan_cells", jobs), ("plan_report", 1)):
        assert any(line.split()[:2] == [rule, str(count)] for line in run.stdout.splitlines()), run.stdout[-3000:]
