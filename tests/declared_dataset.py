"""A dataset in its own shape, built from the simulator's output: the acceptance fixture of issue 13, item 1.

`build_declared_dataset(n_subjects, seed)` runs k2trial.data.simulation as it is (the shipped contract and config)
and turns its raw files into those of a study with its own conventions, declared in its dataset.yaml:

- subject IDs K2PN-101 ... (K2-001 -> K2PN-101): the simulator's misspelt IDs (K2_007, k2-7, " K2-007") become
  " k2pn-107"-like spellings (lower case and stray spaces), the only variants a declared pattern accepts;
- sites S1 and S2 (SITE-A -> S1, SITE-B -> S2); S2 writes every date day-first (DD/MM/YYYY) and reports five lab
  tests in SI units (umol/L, mmol/L, g/L, pmol/L, as config/lab_units.yaml accepts them), S1 ISO dates and
  conventional units (both as the simulator writes them for SITE-B and SITE-A);
- two withdrawals: one subject of each site stops after a diary week (WITHDRAWALS); their later diary, lab and
  dosing records are removed and subjects.csv says withdrawn, with a reason and an earlier last dose date.

The truth is the simulator's clean tables (its `truth`) mapped through the same renaming and withdrawals. The
renaming reads the simulator's ID spellings with a pattern of its own (K2_ID below), not with the library.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from k2trial.core.io import raw_csv_bytes, read_yaml
from k2trial.data import simulation

ROOT = Path(__file__).resolve().parents[1]
#: The declarations of the fixture's dataset.yaml.
SUBJECT_PATTERN = "^K2PN-[0-9]{3}$"
SITES = {"SITE-A": "S1", "SITE-B": "S2"}
DAY_FIRST = {"S1": False, "S2": True}
#: (site, position of the subject within its site, last diary week kept, withdrawal reason)
WITHDRAWALS = (("S1", 2, 3, "withdrew consent"), ("S2", 4, 5, "moved away"))
#: How the simulator spells a subject ID (K2-007, K2_007, K2 007, K2007, k2-7, with stray spaces).
K2_ID = re.compile(r"^(\s*)k2[\s_\-]*0*([0-9]+)(\s*)$", re.IGNORECASE)
#: Visit labels as the simulator writes them: baseline spellings, else the week number at the end.
BASELINE_LABELS = {"baseline", "bl", "base line"}
WEEK_NUMBER = re.compile(r"([0-9]+)\s*$")


@dataclass
class DeclaredDataset:
    raw: dict[str, pd.DataFrame]  # file -> raw text table, as written
    truth: dict[str, pd.DataFrame]  # file -> the simulator's clean table, renamed, withdrawals applied
    dataset_yaml: dict
    id_map: dict[str, str]  # K2-001 -> K2PN-101
    withdrawn: dict[str, tuple[int, str]]  # new ID -> (last diary week kept, reason)


def new_id(number: int) -> str:
    return f"K2PN-{100 + number:03d}"


def _rename_id(text: str) -> str:
    """A simulator ID spelling -> the fixture's: canonical stays canonical, a variant becomes lower case with the
    variant's surrounding spaces (so cleaning upper-cases and trims it)."""
    match = K2_ID.match(text)
    if match is None:
        raise ValueError(f"not a simulator subject ID: {text!r}")
    lead, number, trail = match.groups()
    renamed = new_id(int(number))
    if text == f"K2-{int(number):03d}":
        return renamed
    return lead + renamed.lower() + (trail if (lead or trail) else "")


def _rename_site(text: str) -> str:
    stripped = text.strip()
    for old, new in SITES.items():
        if stripped.upper() == old:
            return text.replace(stripped, new)
    raise ValueError(f"not a simulator site: {text!r}")


def _week(label: str) -> int:
    key = " ".join(label.split()).lower()
    if key in BASELINE_LABELS:
        return 0
    match = WEEK_NUMBER.search(key)
    if match is None:
        raise ValueError(f"not a visit label: {label!r}")
    return int(match.group(1))


def _map_distinct(values: pd.Series, func) -> pd.Series:
    table = {v: func(v) for v in pd.unique(values)}
    return values.map(table)


def _iso(day: int) -> str:
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=int(day))).isoformat()


def _written(iso: str, day_first: bool) -> str:
    year, month, day = iso.split("-")
    return f"{day}/{month}/{year}" if day_first else iso


def build_declared_dataset(n_subjects: int = 40, seed: int | None = None) -> DeclaredDataset:
    from conftest import read_config

    config = read_config()  # config.yaml with the default study, as the Snakefile merges them
    params = simulation.build_params(
        config,
        read_yaml(ROOT / config["lab_units"]),
        read_yaml(ROOT / config["lab_standards"]),
        read_yaml(ROOT / config["codebook"]),
    )
    seed = int(config["seed"] if seed is None else seed)
    study = simulation.generate_study(n_subjects, seed, params)
    raw = {name: table.copy() for name, table in study.raw.items()}
    truth = {name: table.copy() for name, table in study.truth.items()}
    id_map = {f"K2-{n:03d}": new_id(n) for n in range(1, n_subjects + 1)}
    for name in raw:
        if len(raw[name]):
            raw[name]["subject_id"] = _map_distinct(raw[name]["subject_id"], _rename_id)
        truth[name]["subject_id"] = truth[name]["subject_id"].map(id_map)
    raw["subjects.csv"]["site"] = _map_distinct(raw["subjects.csv"]["site"], _rename_site)
    truth["subjects.csv"]["site"] = truth["subjects.csv"]["site"].map(SITES)

    # the two withdrawals
    subjects = truth["subjects.csv"]
    withdrawn: dict[str, tuple[int, str]] = {}
    for site, position, last_week, reason in WITHDRAWALS:
        subject = subjects.loc[subjects["site"] == site, "subject_id"].iloc[position]
        withdrawn[subject] = (last_week, reason)
        row = subjects.index[subjects["subject_id"] == subject][0]
        first_dose = datetime.date.fromisoformat(subjects.at[row, "first_dose_date"])
        last_dose = (first_dose + datetime.timedelta(days=7 * last_week + 1)).isoformat()
        for table, written in ((truth["subjects.csv"], last_dose), (raw["subjects.csv"], None)):
            at = table["subject_id"].str.strip().str.upper() == subject
            table.loc[at, "status"] = "withdrawn"
            table.loc[at, "withdrawal_reason"] = reason
            table.loc[at, "last_dose_date"] = written or _written(last_dose, DAY_FIRST[site])
        for name in ("symptom_diary.csv", "labs.csv", "dosing.csv"):
            for tables in (raw, truth):
                table = tables[name]
                weeks = _map_distinct(table["visit"], _week)
                later = (table["subject_id"].str.strip().str.upper() == subject) & (weeks > last_week)
                tables[name] = table[~later].reset_index(drop=True)
    description = {
        "name": "k2pn-declared-fixture",
        "version": "1.0",
        "simulated": True,
        "description": (
            f"SIMULATED test fixture of {n_subjects} subjects in a study's own conventions (IDs K2PN-101..., sites "
            "S1 and S2, day-first dates and SI units at S2, two withdrawals), made by tests/declared_dataset.py "
            "from k2trial.data.simulation output."
        ),
        "generator": f"{simulation.GENERATOR_NAME} {simulation.GENERATOR_VERSION} + tests/declared_dataset.py",
        "seed": seed,
        "subject_id": {"pattern": SUBJECT_PATTERN},
        "sites": {site: {"day_first": flag} for site, flag in DAY_FIRST.items()},
    }
    return DeclaredDataset(raw, truth, description, id_map, withdrawn)


def write_declared_dataset(dataset: DeclaredDataset, folder: Path, description: dict | None = None) -> Path:
    """The raw files, dataset.yaml (or `description`) and SHA256SUMS in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: raw_csv_bytes(table) for name, table in dataset.raw.items()}
    text = yaml.safe_dump(description or dataset.dataset_yaml, sort_keys=False, allow_unicode=True, width=100)
    files["dataset.yaml"] = text.encode("utf-8")
    for name, data in files.items():
        (folder / name).write_bytes(data)
    sums = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in sorted(files))
    (folder / "SHA256SUMS").write_text(sums, encoding="utf-8")
    return folder


def expected_vas(truth_diary: pd.DataFrame, symptoms: list[str], composite: list[str]) -> pd.DataFrame:
    """results/analysis/vas.csv computed from the truth diary, here and by hand: one row per subject, parameter
    (the symptoms, then the composite: the mean of `composite`, missing unless all of them have a value) and
    visit; base = the baseline value, chg = aval - base, pchg = 100 chg / base (missing when base is 0 or missing);
    rows by subject number, parameter, week."""
    diary = truth_diary.assign(week=[_week(v) for v in truth_diary["visit"]])
    diary["visit"] = np.where(diary["week"] == 0, "baseline", "week" + diary["week"].astype(str))
    rows = diary.rename(columns={"symptom": "param", "vas_cm": "aval"})[
        ["subject_id", "param", "visit", "week", "aval"]
    ]
    parts = rows[rows["param"].isin(composite)]
    grouped = parts.groupby(["subject_id", "visit", "week"], sort=False)["aval"]
    means = grouped.agg(["mean", "count"]).reset_index()
    means["aval"] = means["mean"].where(means["count"] == len(composite))
    rows = pd.concat([rows, means.assign(param="composite")[rows.columns]], ignore_index=True)
    base = rows[rows["week"] == 0].set_index(["subject_id", "param"])["aval"]
    rows["base"] = [base.get((s, p), np.nan) for s, p in zip(rows["subject_id"], rows["param"], strict=True)]
    rows["chg"] = rows["aval"] - rows["base"]
    rows["pchg"] = np.where(rows["base"] != 0, 100 * rows["chg"] / rows["base"], np.nan)
    order = {p: i for i, p in enumerate([*symptoms, "composite"])}
    rows["_n"] = rows["subject_id"].str[-3:].astype(int)
    rows["_p"] = rows["param"].map(order)
    rows = rows.sort_values(["_n", "_p", "week"], kind="stable").drop(columns=["_n", "_p"])
    return rows.reset_index(drop=True)
