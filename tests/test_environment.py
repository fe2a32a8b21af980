"""The pinned environment: the pip lock and the conda file carry the same pins, and this is that environment."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-!]+)$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "envs/requirements.lock").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"requirements.lock: not an exact pin: {line!r}"
        pins[_normalise(match.group(1))] = match.group(2)
    return pins


def read_conda_pins() -> tuple[list[str], dict[str, str]]:
    env = yaml.safe_load((ROOT / "envs/environment.yaml").read_text())
    conda_deps = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = {}
    for line in pip_section:
        match = PIN.match(line)
        assert match, f"environment.yaml: not an exact pin: {line!r}"
        pins[_normalise(match.group(1))] = match.group(2)
    return conda_deps, pins


def test_conda_file_has_exactly_the_pins_of_the_lock():
    conda_deps, conda_pins = read_conda_pins()
    lock = read_lock()
    assert "python=3.11" in conda_deps
    only_lock = sorted(set(lock) - set(conda_pins))
    only_conda = sorted(set(conda_pins) - set(lock))
    differ = sorted(k for k in set(lock) & set(conda_pins) if lock[k] != conda_pins[k])
    assert not only_lock and not only_conda and not differ, (only_lock, only_conda, differ)


def test_every_direct_dependency_is_pinned():
    lock = read_lock()
    direct = [
        _normalise(line.split("#")[0].strip())
        for line in (ROOT / "envs/requirements.in").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    assert {"snakemake", "pandas", "pingouin", "seaborn", "papermill"} <= set(direct)
    missing = [name for name in direct if name not in lock]
    assert not missing, f"direct dependencies without a pin: {missing}"


def test_running_environment_matches_the_lock():
    lock = read_lock()
    for name in ("snakemake", "pandas", "numpy", "scipy", "pingouin", "seaborn", "matplotlib", "papermill"):
        assert metadata.version(name) == lock[name], f"{name}: installed {metadata.version(name)}, lock {lock[name]}"
