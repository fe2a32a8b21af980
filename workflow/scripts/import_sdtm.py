"""results/raw_from_sdtm/: the SDTM domains of raw_dir read into the raw tables of the CSV layout (the contract
columns, then the SDTM source keys and context), a copy of dataset.yaml, and import.json with every finding
(k2trial.data.sdtm_io.import_sdtm; data/raw/SDTM.md).

The job succeeds whenever it could write its outputs, also when the findings have errors: then the tables have no
record, and validation reports the findings and fails, so the cleaning gate stops the run with them.
"""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
import logging
from pathlib import Path

import yaml

from k2trial.core.io import raw_csv_bytes, read_yaml, write_bytes, write_json
from k2trial.data import sdtm
from k2trial.data.sdtm_io import RAW_TABLES, empty_tables, import_sdtm, input_format
from k2trial.runtime.step import run_step

logger = logging.getLogger("k2trial.import_sdtm")


def main(smk):
    # raw_dir's dataset.yaml, or the study config's `dataset` for a folder without one (written as the copy)
    dataset = getattr(smk.input, "dataset", None)
    description = read_yaml(dataset) if dataset else smk.params.description
    source = input_format(description, label=str(dataset or "study config 'dataset'"))
    mapping = sdtm.load_mapping(smk.input.mapping)
    checksums = getattr(smk.input, "checksums", None)
    text = Path(checksums).read_text(encoding="utf-8", errors="replace") if checksums else None
    imported = import_sdtm(list(smk.input.domains), source, mapping, checksums=text)
    tables = imported.tables if imported.converted else empty_tables(mapping)
    for name in RAW_TABLES:
        write_bytes(raw_csv_bytes(tables[name]), getattr(smk.output, name.split(".")[0]))
    copy = Path(dataset).read_bytes() if dataset else yaml.safe_dump(dict(description), sort_keys=False).encode()
    write_bytes(copy, smk.output.dataset)
    write_json(imported.record(), smk.output.report)
    n_errors = sum(p.severity == "error" for p in imported.problems)
    converted = ", ".join(f"{n} {len(t)}" for n, t in tables.items())
    logger.info(
        "%d domain(s) read (%s); %d finding(s), %d error(s); %s",
        len(imported.domains),
        ", ".join(f"{d} {e['records']}" for d, e in imported.domains.items()),
        len(imported.problems),
        n_errors,
        f"converted: {converted}" if imported.converted else "not converted",
    )


run_step(snakemake, main)
