"""Write results/MANIFEST.json and results/software_versions.yml from the jobs' provenance records."""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
import json
import platform
from pathlib import Path

from k2trial.core.io import write_json, write_text
from k2trial.runtime import provenance
from k2trial.runtime.step import run_step


def main(smk):
    records = [json.loads(Path(p).read_text()) for p in sorted(smk.input.records)]
    report = json.loads(Path(smk.input.validation_report).read_text())
    code = dict(sorted(smk.params.code.items()))  # path -> sha256 (common.smk CODE_HASHES)
    lock_sha = provenance.sha256_file(smk.input.lock)
    version = provenance.analysis_version(smk.config, code, lock_sha)
    manifest = provenance.manifest(records, data_version_hash=report.get("data_version"), analysis_version_hash=version)
    manifest["code"] = code
    write_json(manifest, smk.output.manifest)
    versions = provenance.software_versions_yaml(platform.python_version(), provenance.read_lock(smk.input.lock))
    write_text(versions, smk.output.software_versions)


run_step(snakemake, main)
