"""Snapshot of the artifacts a full build produces (in the manner of nf-test snapshots).

tests/snapshots/artifacts.json holds every artifact name under results/ and the sha256 of every
deterministic one. Update it after an intended change with

    .venv/bin/python tests/snapshot.py --update      (or: make snapshot)

which rebuilds the shipped data in a clean temporary copy and rewrites the file; review its diff.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "snapshots" / "artifacts.json"

#: Artifacts whose bytes are not compared, and why. Everything else must be byte-identical.
IGNORED = {
    "results/logs/*": "job logs: free text from Snakemake and libraries, not analysis output",
    "results/provenance/*": "provenance records name the git commit and code hashes by design; timings are volatile",
    "results/MANIFEST.json": "carries analysis_version, a hash of the code: changes with every code change",
    "results/report.html": "Snakemake's own report embeds run times and host details",
    "results/archive/*": "named by analysis_version (code hash), like MANIFEST.json",
    "results/simulated/*": "generator outputs outside the default target",
}


#: The code version and analysis version (hashes of the code) stamped into notebook headers and the index.
#: They are masked before hashing, so that a refactor that changes no result leaves the snapshot valid,
#: while any change of a number, a figure or a text still shows.
VERSION_SOURCE = "results/notebooks/study_summary.parameters.yaml"
VERSION_MASK = b"<code-version>"


def version_stamps(workdir: Path) -> list[bytes]:
    """The code-dependent version strings of a build (longest first), from the notebooks' parameters."""
    source = workdir / VERSION_SOURCE
    if not source.exists():
        return []
    params = yaml.safe_load(source.read_text())
    stamps = [str(params.get("analysis_version") or ""), str(params.get("code_version") or "").rsplit(" ", 1)[-1]]
    return sorted({s.encode() for s in stamps if len(s) >= 8}, key=len, reverse=True)


def is_ignored(path: str) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in IGNORED)


def artifact_hashes(workdir: Path) -> dict[str, str | None]:
    """results/ path -> sha256 (None for ignored artifacts, which are listed by name only)."""
    stamps = version_stamps(workdir)
    files = {f.relative_to(workdir).as_posix(): f for f in sorted((workdir / "results").rglob("*")) if f.is_file()}
    contents = {rel: f.read_bytes() for rel, f in files.items() if not is_ignored(rel)}
    # A file that carries a version stamp has a code-dependent sha256; where that hash is quoted (the index
    # lists every artifact's sha256), it is masked too.
    stamped_hashes = [
        hashlib.sha256(data).hexdigest().encode() for data in contents.values() if any(s in data for s in stamps)
    ]
    out: dict[str, str | None] = {rel: None for rel in files if is_ignored(rel)}
    for rel, data in contents.items():
        for stamp in stamps + stamped_hashes:
            data = data.replace(stamp, VERSION_MASK)
        out[rel] = hashlib.sha256(data).hexdigest()
    out = dict(sorted(out.items()))
    return out


def names_only(hashes: dict[str, str | None]) -> set[str]:
    """Names that must exist: ignored folders whose content varies are reduced to their pattern."""
    names = set()
    for path in hashes:
        pattern = next((p for p in IGNORED if fnmatch.fnmatch(path, p)), None)
        names.add(pattern if pattern and pattern.endswith("/*") else path)
    return names


def compare(expected: dict, actual: dict[str, str | None]) -> list[str]:
    """Human-readable differences between a snapshot and a build; empty when they agree."""
    problems = []
    want, got = set(expected["names"]), names_only(actual)
    problems += [f"missing artifact: {p}" for p in sorted(want - got)]
    problems += [f"new artifact (not in snapshot): {p}" for p in sorted(got - want)]
    for path, digest in sorted(expected["sha256"].items()):
        if path in actual and actual[path] != digest:
            problems.append(f"changed: {path}")
    return problems


def snapshot_of(hashes: dict[str, str | None]) -> dict:
    return {
        "about": "Artifacts of `snakemake --cores 4` on the shipped data. Update: make snapshot",
        "ignored": IGNORED,
        "names": sorted(names_only(hashes)),
        "sha256": {p: h for p, h in sorted(hashes.items()) if h is not None},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update", action="store_true", help="rebuild in a clean copy and rewrite the snapshot")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import copy_workflow, run_snakemake

    with tempfile.TemporaryDirectory(prefix="k2snap-") as tmp:
        work = copy_workflow(Path(tmp) / "wf")
        result = run_snakemake(work)
        if result.returncode != 0:
            print(result.stderr[-4000:], file=sys.stderr)
            return 1
        hashes = artifact_hashes(work)
    if args.update:
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(json.dumps(snapshot_of(hashes), indent=2, sort_keys=True) + "\n")
        print(f"wrote {SNAPSHOT.relative_to(ROOT)}: {len(hashes)} artifacts")
        return 0
    problems = compare(json.loads(SNAPSHOT.read_text()), hashes)
    print("\n".join(problems) or "snapshot matches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
