"""The planning workflow (`plan`, workflow/rules/planning.smk) on the real Slurm cluster equals local runs, bytewise.

Three copies of the workflow with the small planning configuration (config/planning_small.yaml) and the synthetic
pilot inputs of tests/planning_synthetic.py (the shape issue 14 writes for rct2021), passed with --config:
* through `--profile profiles/slurm` (every batch of cells and the gather step a Slurm job);
* locally with `--cores 2`, same configuration: every output and provenance record must be identical;
* locally with the cells dealt to one job instead of three: the gathered outputs must still be identical (a cell's
  trials depend only on the global seed and the cell's identity).
The Slurm run and the local runs go at the same time (the Slurm run mostly waits for status polls).

Skips with the reason when no cluster answers (start one with .ci/slurm/start), except under K2TRIAL_REQUIRE_SLURM=1
(CI), where it fails instead, as tests/test_slurm_cluster.py does.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow
from planning_synthetic import write_synthetic_pilot

pytestmark = pytest.mark.workflow

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "slurm"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
REQUIRE_SLURM = os.environ.get("K2TRIAL_REQUIRE_SLURM") == "1"
SMALL = "config/planning_small.yaml"
# Outside config/: every config/*.yaml is code whose hash is the analysis version the page states.
ONE_JOB = "synthetic/planning_small_one_job.yaml"
INPUTS = {
    "planning_vas": "synthetic/rct2021/analysis/vas.csv",
    "planning_between_arm": "synthetic/rct2021/efficacy/between_arm.csv",
    "planning_subjects": "synthetic/rct2021/analysis/subjects.csv",
}
SCENARIOS = "results/planning/scenarios.json"
PAGE = "results/planning/designing_the_confirmatory_trial.html"
RESULTS = [
    "results/planning/cells.csv",
    "results/planning/power.csv",
    "results/planning/sample_size.csv",
    "results/planning/assurance.csv",
    "results/planning/power_curves.png",
    "results/planning/power_curves.svg",
]
GATHERED = [SCENARIOS, *RESULTS, PAGE]
#: Where the page's provenance starts (input files with sha256, code and analysis versions): it names the planning
#: configuration, so it differs between the runs with three jobs and with one, and nothing else may.
PROVENANCE_HEADING = "<h2>Inputs and files</h2>"
TIMEOUT = 600


def _partition() -> str:
    return str(yaml.safe_load((PROFILE / "config.yaml").read_text())["default-resources"]["slurm_partition"])


def _why_no_slurm(partition: str) -> str | None:
    """None when a cluster answers on the profile's partition and the plugin is installed, else the reason."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return f"snakemake-executor-plugin-slurm is not installed in {sys.prefix}"
    if shutil.which("sinfo") is None:
        return "sinfo is not on PATH (no Slurm client; .ci/slurm/start installs and starts a cluster)"
    try:
        answer = subprocess.run(
            ["sinfo", "-h", "-p", partition, "-o", "%a"], capture_output=True, text=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s"
    if answer.returncode != 0:
        said = (answer.stderr.strip() or answer.stdout.strip()).splitlines()
        return f"sinfo failed: {said[-1] if said else f'exit code {answer.returncode}'}"
    if "up" not in answer.stdout.split():
        return f"partition {partition!r} (the one profiles/slurm submits to) is missing or not up"
    return None


def _env() -> dict[str, str]:
    # A user's default profile or an enclosing Slurm job must not change what a run does.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "SNAKEMAKE_PROFILE"}
    env["PYTHONHASHSEED"] = "0"
    return env


def _args(planning_config: str) -> list[str]:
    return ["plan", "--config", f"planning_config={planning_config}", *(f"{k}={v}" for k, v in INPUTS.items())]


def _files(root: Path) -> list[str]:
    """Every output file of the plan (results/planning and the provenance records, not the timings)."""
    found = [p for d in ("results/planning", "results/provenance") for p in (root / d).rglob("*") if p.is_file()]
    return sorted(p.relative_to(root).as_posix() for p in found if "/timings/" not in p.as_posix())


def test_plan_on_slurm_equals_the_local_runs(tmp_path: Path):
    partition = _partition()
    reason = _why_no_slurm(partition)
    if reason is not None:
        if REQUIRE_SLURM:
            pytest.fail(f"K2TRIAL_REQUIRE_SLURM=1 but no usable Slurm cluster: {reason}")
        pytest.skip(f"no usable Slurm cluster: {reason} (start one with .ci/slurm/start)")

    on_slurm = copy_workflow(tmp_path / "slurm")
    write_synthetic_pilot(on_slurm / "synthetic" / "rct2021")
    small = yaml.safe_load((on_slurm / SMALL).read_text())
    assert small["jobs"]["count"] > 1, "the small plan must deal its cells to several jobs"
    small["jobs"]["count"] = 1
    (on_slurm / ONE_JOB).write_text(yaml.safe_dump(small, sort_keys=False))
    # The local copies are copies of the first one: same code and inputs, byte for byte.
    local, one_job = tmp_path / "local", tmp_path / "one_job"
    shutil.copytree(on_slurm, local)
    shutil.copytree(on_slurm, one_job)

    slurm_run = subprocess.Popen(
        [SNAKEMAKE, "--profile", str(PROFILE), "--slurm-keep-successful-logs", *_args(SMALL)],
        cwd=on_slurm,
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        for workdir, config in ((local, SMALL), (one_job, ONE_JOB)):
            run = subprocess.run(
                [SNAKEMAKE, "--cores", "2", *_args(config)],
                cwd=workdir,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
            assert run.returncode == 0, f"local plan ({config}) failed:\n{run.stderr[-6000:]}"
        stdout, stderr = slurm_run.communicate(timeout=TIMEOUT)
    finally:
        if slurm_run.poll() is None:
            slurm_run.kill()
            slurm_run.communicate()
    assert slurm_run.returncode == 0, f"plan on Slurm failed:\n{stdout[-2000:]}\n{stderr[-6000:]}"

    # Every batch of cells and the gather step ran as a Slurm job, which completed, with its declared resources
    # (scontrol: finished jobs stay listed for MinJobAge, 600 s on the cluster of .ci/slurm/start) and its log.
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: ([^)]*rule_(plan_\w+)[^)]*)\)", stderr)
    rules = sorted(rule for _, _, rule in submitted)
    assert rules == ["plan_cells"] * small_count(on_slurm) + ["plan_report"], stderr[-4000:]
    jobs = yaml.safe_load((on_slurm / SMALL).read_text())["jobs"]
    declared = {
        "plan_cells": (jobs["threads"], jobs["mem_mb"], jobs["runtime"]),
        "plan_report": (1, jobs["gather_mem_mb"], jobs["gather_runtime"]),
    }
    for job_id, log, rule in submitted:
        log_path = Path(log) if Path(log).is_absolute() else on_slurm / log
        assert log_path.is_file(), f"{rule}: no Slurm log {log}"
        shown = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, check=False)
        assert shown.returncode == 0, f"scontrol show job {job_id} ({rule}): {shown.stderr}"
        fields = dict(item.split("=", 1) for item in shown.stdout.split() if "=" in item)
        threads, mem_mb, runtime = declared[rule]
        assert fields["JobState"] == "COMPLETED", (rule, fields)
        assert fields["Partition"] == partition
        assert fields["MinMemoryNode"] == f"{mem_mb}M", (rule, fields)
        assert fields["TimeLimit"] == f"00:{runtime:02d}:00", (rule, fields)
        assert fields["CPUs/Task"] == str(threads), (rule, fields)
    assert "plan_scenarios" in stderr and "rule_plan_scenarios" not in stderr  # a local rule: not submitted

    files = _files(on_slurm)
    assert set(GATHERED) <= set(files)
    assert files == _files(local)
    for name in files:
        assert (on_slurm / name).read_bytes() == (local / name).read_bytes(), f"{name}: Slurm and local runs differ"
    # Cells dealt to one job instead of three: the same results; only the provenance (the planning configuration
    # file, and the analysis version that hashes the config) may differ.
    for name in RESULTS:
        assert (on_slurm / name).read_bytes() == (one_job / name).read_bytes(), f"{name} depends on the job layout"
    three, one = (json.loads((root / SCENARIOS).read_text()) for root in (on_slurm, one_job))
    assert (
        three.pop("inputs")["planning_config"]["path"] == SMALL
        and one.pop("inputs")["planning_config"]["path"] == ONE_JOB
    )
    assert three == one, "scenarios.json depends on the job layout"
    page, page_one = ((root / PAGE).read_text() for root in (on_slurm, one_job))
    assert page.split(PROVENANCE_HEADING)[0] == page_one.split(PROVENANCE_HEADING)[0], "the page depends on the layout"
    assert "SIMULATED" in page and "N per arm for 80% and 90% power" in page
    assert "Code version: k2trial" in page and "Analysis version: " in page


def small_count(root: Path) -> int:
    return int(yaml.safe_load((root / SMALL).read_text())["jobs"]["count"])
