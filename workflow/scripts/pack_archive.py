"""Pack the results into a versioned, citable archive with an RO-Crate (Workflow Run Crate) description."""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
import json
from pathlib import Path

import yaml

from k2trial.core.io import json_bytes, write_bytes
from k2trial.runtime import provenance
from k2trial.runtime.step import run_step


def main(smk):
    manifest = json.loads(Path(smk.input.manifest).read_text())
    dataset = yaml.safe_load(Path(smk.input.dataset).read_text())
    simulated = bool(dataset.get("simulated", False))
    data_version = manifest["data_version"] or "unknown"
    name = f"k2trial-results-{manifest['analysis_version']}-{data_version[:12]}"
    raw_paths = [smk.input[key] for key in smk.input.keys() if key not in ("manifest", "software_versions")]
    raw = provenance.file_entries(raw_paths)
    outputs = [{k: a[k] for k in ("path", "sha256", "size")} for a in manifest["artifacts"]]
    extra = provenance.file_entries([smk.input.manifest, smk.input.software_versions])
    crate = provenance.ro_crate_metadata(
        name=f"{smk.config['study']['short_title']}: analysis results" + (" (SIMULATED DATA)" if simulated else ""),
        description=(
            f"Results of the reproducible re-analysis of {smk.config['study']['reference']} "
            f"on dataset '{dataset.get('name')}' version {dataset.get('version')}."
            + (" The data are simulated, not the trial's." if simulated else "")
        ),
        data_version_hash=manifest["data_version"],
        analysis_version_hash=manifest["analysis_version"],
        inputs=raw,
        outputs=outputs + extra,
        workflow_files=sorted(manifest["code"]),
        simulated=simulated,
    )
    members = {e["path"]: e["path"] for e in raw + outputs + extra}
    members.update({f: f for f in manifest["code"]})
    members["ro-crate-metadata.json"] = json_bytes(crate)
    out_dir = Path(smk.output.archive_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    provenance.write_deterministic_tar(members, out_dir / f"{name}.tar.gz", root=name)
    write_bytes(json_bytes(crate), out_dir / "ro-crate-metadata.json")


run_step(snakemake, main)
