"""Cleaning the generator's messy output reproduces its clean truth exactly, and accounts for every mess."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import read_config

from k2trial.core.io import csv_bytes, read_yaml
from k2trial.data import cleaning, raw_files, simulation, validation
from k2trial.data.contract import read_contract

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup():
    config = read_config()
    params = simulation.build_params(
        config,
        read_yaml(ROOT / config["lab_units"]),
        read_yaml(ROOT / config["lab_standards"]),
        read_yaml(ROOT / config["codebook"]),
    )
    contract = read_contract(ROOT / config["codebook"], ROOT / config["lab_units"])
    return config, params, contract


def _clean(raw_dir: Path, contract, visit_windows):
    paths = {name: raw_dir / name for name in raw_files.input_keys(contract)}
    raw = raw_files.read_raw_dataset(paths, contract)
    result = validation.validate_dataset(raw, contract, visit_windows)
    return result, cleaning.clean_dataset(result, contract)


@pytest.mark.parametrize(("n_subjects", "seed"), [(None, None), (400, 7)])
def test_cleaning_messy_output_gives_the_clean_truth_byte_for_byte(setup, tmp_path, n_subjects, seed):
    config, params, contract = setup
    n = n_subjects or config["simulation"]["n_subjects"]
    seed = config["seed"] if seed is None else seed
    study = simulation.generate_study(n, seed, params)
    simulation.write_raw_dataset(study, tmp_path)
    result, clean = _clean(tmp_path, contract, params["visit_windows"])
    assert result.status == "passed", result.errors()[:5]
    assert set(clean.tables) == set(study.truth)
    for name, truth in study.truth.items():
        cleaned = clean.tables[name].drop(columns="raw_row")
        assert csv_bytes(cleaned) == csv_bytes(truth), name
    # every removed row is accounted for: the one injected duplicate
    accounting = clean.row_accounting.set_index("file")
    assert (accounting.rows_in == accounting.rows_out + accounting.rows_removed).all()
    duplicates = study.mess[study.mess.kind == "duplicate_row"]
    assert accounting.rows_removed.sum() == len(duplicates)
    # each impossible VAS became missing and raised a query naming its raw row
    impossible = study.mess[study.mess.kind == "impossible_vas"]
    queried = clean.queries[clean.queries.file == "symptom_diary.csv"]
    assert set(impossible.raw_row) <= set(queried.raw_row)


def test_shipped_data_clean_to_the_truth_of_the_configured_seed(setup):
    config, params, contract = setup
    study = simulation.generate_study(config["simulation"]["n_subjects"], config["seed"], params)
    result, clean = _clean(ROOT / "data" / "raw", contract, params["visit_windows"])
    assert result.status == "passed"
    for name, truth in study.truth.items():
        assert csv_bytes(clean.tables[name].drop(columns="raw_row")) == csv_bytes(truth), name
