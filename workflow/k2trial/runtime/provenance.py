"""Provenance: which raw data, code, parameters and package versions produced an artifact.

Every workflow job writes a JSON record (rule, inputs and outputs with sha256 and size, params, the
script and library modules that ran, hashed, the locked package versions, data version, config hash,
git commit). Records are deterministic: paths are relative to the working directory and no clock time
is inside. Timings, the only volatile facts, go to a separate file that reproducibility checks skip.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from k2trial.core.io import sha256_file


def sha256_json(obj: Any) -> str:
    """Hash of a JSON-able object in canonical form (sorted keys, no whitespace)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_entries(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """path, sha256 and size of each existing file (directories: every file below, sorted)."""
    entries = []
    for raw in paths:
        path = Path(raw)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.exists():
                entries.append({"path": file.as_posix(), "sha256": sha256_file(file), "size": file.stat().st_size})
    return sorted(entries, key=lambda e: e["path"])


def read_lock(lock_path: str | Path) -> dict[str, str]:
    """Package -> version from a pip lock of exact pins."""
    pins = {}
    for line in Path(lock_path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip()] = version.strip()
    return dict(sorted(pins.items(), key=lambda kv: kv[0].lower()))


def code_hashes(files: Iterable[str | Path], root: str | Path) -> dict[str, str]:
    """Relative path (to root) -> sha256 for each code file."""
    root = Path(root)
    return {Path(f).resolve().relative_to(root.resolve()).as_posix(): sha256_file(f) for f in sorted(files)}


def library_files(library_dir: str | Path) -> list[Path]:
    """Every module of the library, subpackages included, in a stable order."""
    return sorted(Path(library_dir).rglob("*.py"))


def git_commit(repo_dir: str | Path) -> str | None:
    """HEAD commit of the repository holding the code, or None outside git."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo_dir), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def analysis_version(config: Mapping[str, Any], code: Mapping[str, str], lock_sha256: str) -> str:
    """One hash naming the analysis: config, every code file's hash and the lock."""
    return sha256_json({"config": config, "code": dict(sorted(code.items())), "lock": lock_sha256})[:16]


def job_record(
    *,
    rule: str,
    wildcards: Mapping[str, str],
    inputs: Iterable[str],
    outputs: Iterable[str],
    params: Mapping[str, Any],
    code: Mapping[str, str],
    packages: Mapping[str, str],
    lock_sha256: str,
    data_version_hash: str | None,
    config: Mapping[str, Any],
    commit: str | None,
) -> dict[str, Any]:
    """The deterministic provenance record of one job (no timings)."""
    return {
        "rule": rule,
        "wildcards": dict(sorted(wildcards.items())),
        "inputs": file_entries(inputs),
        "outputs": file_entries(outputs),
        "params": dict(params),
        "code": dict(sorted(code.items())),
        "packages": {"lock_sha256": lock_sha256, "versions": dict(packages)},
        "data_version": data_version_hash,
        "config_sha256": sha256_json(config),
        "git_commit": commit,
    }


def manifest(
    records: Iterable[Mapping[str, Any]], *, data_version_hash: str | None, analysis_version_hash: str
) -> dict[str, Any]:
    """Every artifact named in the job records, with sha256, size and producing rule, sorted by path.

    Temporary intermediates (Snakemake temp() outputs, deleted once consumed) stay in their job's record but
    are not artifacts of the run, so only paths that still exist are listed.
    """
    artifacts = {}
    for record in records:
        for entry in record["outputs"]:
            if Path(entry["path"]).exists():
                artifacts[entry["path"]] = {**entry, "rule": record["rule"]}
    return {
        "data_version": data_version_hash,
        "analysis_version": analysis_version_hash,
        "artifacts": [artifacts[p] for p in sorted(artifacts)],
    }


def software_versions_yaml(python_version: str, packages: Mapping[str, str]) -> str:
    """nf-core style software_versions.yml: the interpreter and every locked package."""
    lines = [
        "# Versions of the software that produced these results (from envs/requirements.lock).",
        f'python: "{python_version}"',
        "packages:",
    ]
    lines += [f'  {name}: "{version}"' for name, version in packages.items()]
    return "\n".join(lines) + "\n"


def ro_crate_metadata(
    *,
    name: str,
    description: str,
    data_version_hash: str | None,
    analysis_version_hash: str,
    inputs: Iterable[Mapping[str, Any]],
    outputs: Iterable[Mapping[str, Any]],
    workflow_files: Iterable[str],
    simulated: bool,
    license_id: str | None = None,
) -> dict[str, Any]:
    """An RO-Crate 1.1 description of one run, conforming to the Workflow Run Crate profile 0.5.

    The root dataset holds the Snakefile as the ComputationalWorkflow (mainEntity), one CreateAction for
    the run with the raw files as `object` and the artifacts as `result`. No clock time is recorded, so
    the same run gives the same bytes.
    """
    profiles = [
        {"@id": "https://w3id.org/ro/wfrun/process/0.5"},
        {"@id": "https://w3id.org/ro/wfrun/workflow/0.5"},
        {"@id": "https://w3id.org/workflowhub/workflow-ro-crate/1.0"},
    ]
    inputs = list(inputs)
    outputs = list(outputs)
    graph: list[dict[str, Any]] = [
        {
            "@id": "ro-crate-metadata.json",
            "@type": "CreativeWork",
            "about": {"@id": "./"},
            "conformsTo": [{"@id": "https://w3id.org/ro/crate/1.1"}, *profiles[:2]],
        },
        {
            "@id": "./",
            "@type": "Dataset",
            "name": name,
            "description": description,
            "version": f"{analysis_version_hash}-{(data_version_hash or 'unknown')[:16]}",
            "conformsTo": profiles,
            "mainEntity": {"@id": "Snakefile"},
            "mentions": {"@id": "#run"},
            "hasPart": [{"@id": f} for f in sorted(workflow_files)] + [{"@id": e["path"]} for e in inputs + outputs],
            **({"license": license_id} if license_id else {}),
        },
        {
            "@id": "Snakefile",
            "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow"],
            "name": "K2-7 neuropathy analysis workflow",
            "programmingLanguage": {"@id": "#snakemake"},
        },
        {
            "@id": "#snakemake",
            "@type": "ComputerLanguage",
            "name": "Snakemake",
            "identifier": {"@id": "https://snakemake.readthedocs.io"},
            "url": {"@id": "https://snakemake.github.io"},
        },
        {
            "@id": "#run",
            "@type": "CreateAction",
            "name": f"Run of the workflow on data version {(data_version_hash or 'unknown')[:16]}"
            + (" (SIMULATED DATA)" if simulated else ""),
            "instrument": {"@id": "Snakefile"},
            "object": [{"@id": e["path"]} for e in inputs],
            "result": [{"@id": e["path"]} for e in outputs],
        },
    ]
    for f in sorted(workflow_files):
        if f != "Snakefile":
            graph.append({"@id": f, "@type": "File"})
    for e in inputs + outputs:
        graph.append({"@id": e["path"], "@type": "File", "sha256": e["sha256"], "contentSize": e["size"]})
    return {"@context": "https://w3id.org/ro/crate/1.1/context", "@graph": graph}


def write_deterministic_tar(members: Mapping[str, str | Path | bytes], out_path: str | Path, root: str) -> None:
    """A .tar.gz whose bytes depend only on the members' names and contents (sorted, mtime 0, no owner)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for arcname in sorted(members):
            source = members[arcname]
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
            info = tarfile.TarInfo(f"{root}/{arcname}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buffer.getvalue())
    tmp.replace(out)
