"""Reading the raw dataset as the contract names it: the CSV files as text, dataset.yaml, SHA256SUMS and the hash
of every data file. A file that cannot be read becomes a problem and the others are still read; nothing here
checks values (k2trial.data.validation does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from k2trial.core.errors import ERROR, InputDataError, Problem
from k2trial.core.io import data_version, read_raw_csv, sha256_file
from k2trial.data.contract import Contract


def input_keys(contract: Contract) -> dict[str, str]:
    """Raw file name -> the name of the rule input holding it (workflow/rules/common.smk raw_inputs):
    the file name without extension ("labs.csv" -> "labs"), "checksums" for SHA256SUMS."""
    keys = {name: name.split(".")[0] for name in (*contract.table_names, contract.dataset_file.name)}
    keys[contract.checksums_file] = "checksums"
    return keys


@dataclass
class RawDataset:
    """The raw files as read: CSV tables as text (with `_row`), dataset.yaml, SHA256SUMS and file hashes.

    tables: only the CSV files that could be read. read_problems: one per file that could not be read.
    description: the parsed dataset.yaml (None when absent or unreadable). checksums: SHA256SUMS text or
    None. file_hashes: sha256 of every data file present (CSV files and dataset.yaml).
    """

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    read_problems: list[Problem] = field(default_factory=list)
    description: Any = None
    checksums: str | None = None
    file_hashes: dict[str, str] = field(default_factory=dict)
    data_version: str | None = None


def read_raw_dataset(
    paths: Mapping[str, str | Path | None], contract: Contract, categorical: bool = False
) -> RawDataset:
    """Read the raw files named in `paths` (file name -> path or None when absent).

    A missing, empty, non-UTF-8 or non-rectangular CSV file and an unreadable dataset.yaml become
    problems; reading goes on with the other files. SHA256SUMS is optional.
    categorical: hold the CSV columns as Categoricals of the same text (k2trial.core.io.read_raw_csv):
    validation gives the same result, several times faster and in a fraction of the memory on large
    files; the default (plain text) is for callers that edit the tables.
    """
    raw = RawDataset()
    present: list[Path] = []
    for name in contract.table_names:
        path = paths.get(name)
        if path is not None and Path(path).exists():
            present.append(Path(path))
        try:
            if path is None:
                raise InputDataError([Problem(name, None, None, None, "file_present", ERROR, "file not found")])
            raw.tables[name] = read_raw_csv(path, file_label=name, categorical=categorical)
        except InputDataError as exc:
            raw.read_problems.extend(exc.problems)
    dataset_name = contract.dataset_file.name
    dataset_path = paths.get(dataset_name)
    if dataset_path is None or not Path(dataset_path).exists():
        raw.read_problems.append(Problem(dataset_name, None, None, None, "file_present", ERROR, "file not found"))
    else:
        present.append(Path(dataset_path))
        try:
            raw.description = yaml.safe_load(Path(dataset_path).read_text(encoding="utf-8"))
            if raw.description is None:
                raw.description = {}
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raw.read_problems.append(
                Problem(dataset_name, None, None, None, "dataset_yaml_invalid", ERROR, f"not readable YAML: {exc}")
            )
    checksum_path = paths.get(contract.checksums_file)
    if checksum_path is not None and Path(checksum_path).exists():
        raw.checksums = Path(checksum_path).read_text(encoding="utf-8", errors="replace")
    raw.file_hashes = {p.name: sha256_file(p) for p in sorted(present, key=lambda p: p.name)}
    raw.data_version = data_version(present) if present else None
    return raw
