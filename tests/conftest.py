"""Shared helpers: run the real workflow in a throw-away copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# What a workflow run needs from the repository (results/ and .snakemake/ are never copied).
WORKFLOW_PARTS = ["Snakefile", "workflow", "config", "envs", "data/raw"]


#: The visit windows of the minimal fixture (tests/fixtures/minimal: clinic visits at weeks 0, 4 and 8 +/- 7 days,
#: diary +/- 3 days), as validation takes them (k2trial.core.vocabulary.visit_windows of the pilot's protocol).
MINIMAL_WINDOWS = {
    "diary_days": 3,
    "clinic_visits": [
        {"week": 0, "day": 0, "window_days": 7},
        {"week": 4, "day": 28, "window_days": 7},
        {"week": 8, "day": 56, "window_days": 7},
    ],
    "baseline_days_before_first_dose": 28,
}


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow and the shipped raw data into dest (without results or caches)."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = ROOT / part
        target = dest / part
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def run_snakemake(workdir: Path, *args: str, cores: int = 4, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run `snakemake --cores N ARGS` in workdir and return the finished process (text stdout/stderr)."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    return subprocess.run(
        [SNAKEMAKE, "--cores", str(cores), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "wf")


# ---------------------------------------------------------------------------------------------------------------------
# The shipped configuration and vocabulary, for unit tests that need settings as the workflow builds them.
# ---------------------------------------------------------------------------------------------------------------------
def _merged(base: dict, study: dict) -> dict:
    """Snakemake's merge of config files: mappings key by key, anything else replaced."""
    out = dict(base)
    for key, value in study.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_config() -> dict:
    """config/config.yaml merged with the default study config, as the Snakefile builds it."""
    from k2trial.core.io import read_yaml
    from k2trial.core.vocabulary import DEFAULT_STUDY_CONFIG

    return _merged(read_yaml(ROOT / "config" / "config.yaml"), read_yaml(ROOT / DEFAULT_STUDY_CONFIG))


def shipped_vocabulary():
    """The vocabulary of the shipped codebook, lab units and config (k2trial.core.vocabulary)."""
    from k2trial.core.io import read_yaml
    from k2trial.core.vocabulary import load_vocabulary

    return load_vocabulary(
        read_yaml(ROOT / "data" / "raw" / "codebook.yaml"), read_yaml(ROOT / "config" / "lab_units.yaml"), read_config()
    )
