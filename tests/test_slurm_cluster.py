"""Snakemake submits jobs to a real Slurm cluster through profiles/slurm, and the results equal a local run.

Needs a running cluster (`.ci/slurm/start` brings up a single-node one) and snakemake-executor-plugin-slurm in the
environment. Without them the test is skipped, unless K2TRIAL_REQUIRE_SLURM=1 (set in CI), which makes it fail.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.workflow

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "slurm"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
REQUIRE_SLURM = os.environ.get("K2TRIAL_REQUIRE_SLURM") == "1"
OUTPUTS = ["square.txt", "cube.txt", "gathered.txt"]

# Each job also leaves the Slurm job id it ran under in jobids/<rule>.txt, outside its declared outputs, so the
# outputs themselves can be compared with a local run byte for byte.
SNAKEFILE = """
rule all:
    input:
        "gathered.txt",


rule square:
    output:
        "square.txt",
    threads: 1
    resources:
        mem_mb=200,
        runtime=5,
    shell:
        'mkdir -p jobids && echo "${{SLURM_JOB_ID:-none}}" > jobids/{rule}.txt && '
        'for i in $(seq 1 50); do echo "$i $((i * i))"; done > {output}'


rule cube:
    output:
        "cube.txt",
    threads: @CUBE_THREADS@
    resources:
        mem_mb=300,
        runtime=6,
    shell:
        'mkdir -p jobids && echo "${{SLURM_JOB_ID:-none}}" > jobids/{rule}.txt && '
        'for i in $(seq 1 50); do echo "$i $((i * i * i))"; done > {output}'


rule gather:
    input:
        "square.txt",
        "cube.txt",
    output:
        "gathered.txt",
    threads: 1
    resources:
        mem_mb=100,
        runtime=4,
    shell:
        'mkdir -p jobids && echo "${{SLURM_JOB_ID:-none}}" > jobids/{rule}.txt && '
        "(paste -d ' ' {input}; cat {input} | sha256sum) > {output}"
"""
# rule -> (threads, mem_mb, runtime in minutes) as declared above; cube's threads depend on the cluster.
DECLARED = {"square": (1, 200, 5), "cube": (None, 300, 6), "gather": (1, 100, 4)}


def _profile_partition() -> str:
    config = yaml.safe_load((PROFILE / "config.yaml").read_text())
    return str(config["default-resources"]["slurm_partition"])


def _run(cmd: list[str], timeout: int = 30) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _why_no_slurm(partition: str) -> str | None:
    """None when a cluster answers and the plugin is installed, else the reason."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return f"snakemake-executor-plugin-slurm is not installed in {sys.prefix}"
    if shutil.which("sinfo") is None:
        return "sinfo is not on PATH (no Slurm client; .ci/slurm/start installs and starts a cluster)"
    try:
        answer = _run(["sinfo", "-h", "-p", partition, "-o", "%a %c"], timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s"
    if answer.returncode != 0:
        said = (answer.stderr.strip() or answer.stdout.strip()).splitlines()
        return f"sinfo failed: {said[-1] if said else f'exit code {answer.returncode}'}"
    if not answer.stdout.strip():
        return f"the cluster has no partition {partition!r} (the one profiles/slurm submits to)"
    return None


def _cluster_cpus(partition: str) -> int:
    cpus = _run(["sinfo", "-h", "-p", partition, "-o", "%c"]).stdout.split()
    return min(int(re.sub(r"\D", "", c) or 1) for c in cpus)


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    # A user's default profile or an enclosing Slurm job must not change what either run does.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "SNAKEMAKE_PROFILE"}
    env["PYTHONHASHSEED"] = "0"
    return subprocess.run(
        [SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True, timeout=900, env=env, check=False
    )


def _job_fields(job_id: str) -> dict[str, str]:
    shown = _run(["scontrol", "-o", "show", "job", job_id])
    assert shown.returncode == 0, f"scontrol show job {job_id} failed: {shown.stderr}"
    return dict(item.split("=", 1) for item in shown.stdout.split() if "=" in item)


def test_jobs_run_through_slurm_and_match_a_local_run(tmp_path: Path):
    partition = _profile_partition()
    reason = _why_no_slurm(partition)
    if reason is not None:
        if REQUIRE_SLURM:
            pytest.fail(f"K2TRIAL_REQUIRE_SLURM=1 but no usable Slurm cluster: {reason}")
        pytest.skip(f"no usable Slurm cluster: {reason} (start one with .ci/slurm/start)")

    cube_threads = min(2, _cluster_cpus(partition))
    snakefile = SNAKEFILE.replace("@CUBE_THREADS@", str(cube_threads))
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    for workdir in (on_slurm, local):
        workdir.mkdir()
        (workdir / "Snakefile").write_text(snakefile)

    run = _snakemake(on_slurm, "--profile", str(PROFILE), "--slurm-keep-successful-logs")
    assert run.returncode == 0, f"snakemake on Slurm failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"

    # Every job ran inside its own Slurm job, with the resources it declared.
    job_ids = {rule: (on_slurm / "jobids" / f"{rule}.txt").read_text().strip() for rule in DECLARED}
    assert all(j.isdigit() for j in job_ids.values()), f"a job did not run under Slurm: {job_ids}"
    assert len(set(job_ids.values())) == len(job_ids), f"jobs shared a Slurm job: {job_ids}"
    for rule, job_id in job_ids.items():
        assert f"submitted with SLURM jobid {job_id} " in run.stderr, f"{rule}: no submission of {job_id} in the log"
        assert (on_slurm / ".snakemake" / "slurm_logs" / f"rule_{rule}" / f"{job_id}.log").is_file()
        threads, mem_mb, runtime = DECLARED[rule]
        fields = _job_fields(job_id)
        assert fields["JobState"] == "COMPLETED", fields
        assert fields["Partition"] == partition, fields
        assert fields["CPUs/Task"] == str(threads or cube_threads), fields
        assert fields["MinMemoryNode"] == f"{mem_mb}M", fields
        assert fields["TimeLimit"] == f"00:{runtime:02d}:00", fields

    local_run = _snakemake(local, "--cores", "2")
    assert local_run.returncode == 0, f"local snakemake failed:\n{local_run.stderr[-6000:]}"
    assert (local / "jobids" / "gather.txt").read_text().strip() == "none", "the local run ran under Slurm"
    for name in OUTPUTS:
        assert (on_slurm / name).read_bytes() == (local / name).read_bytes(), f"{name} differs from the local run"
