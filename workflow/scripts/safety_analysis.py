"""Safety analysis: every results/safety/*.csv table in one process (k2trial.analysis.safety.conclusion.analyse_safety).

Inputs: results/analysis/labs.csv and subjects.csv, results/clean/adverse_events.csv, config/lab_units.yaml and
config/lab_standards.yaml. One process for all tables: interpreter start and imports dominate a small study.
"""

import logging

import pandas as pd
import yaml

from k2trial.analysis.safety.labs import load_lab_standards
from k2trial.analysis.safety.conclusion import SAFETY_TABLES, SafetySettings, analyse_safety
from k2trial.runtime.step import run_step
from k2trial.core.io import write_csv

logger = logging.getLogger("k2trial.safety_analysis")

# "NA" is the sodium test code, so only an empty cell is missing. Repeated text columns are read as categories
# (100,000 subjects give 5.4 million lab rows).
LAB_DTYPES = {
    "subject_id": "category",
    "visit": "category",
    "week": "int64",
    "sample_date": "category",
    "param": "category",
    "aval": "float64",
    "unit": "category",
    "ref_low": "float64",
    "ref_high": "float64",
    "censored": "category",
    "base": "float64",
    "chg": "float64",
}
SUBJECT_TEXT = ["subject_id", "site", "sex", "etiology", "status", "withdrawal_reason", "first_dose_date"]


def read_csv(path, dtype):
    return pd.read_csv(path, dtype=dtype, keep_default_na=False, na_values=[""], engine="c")


def load_yaml(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def main(smk):
    standards = load_lab_standards(load_yaml(smk.input.lab_units), load_yaml(smk.input.lab_standards))
    settings = SafetySettings.from_config(smk.params.safety, smk.params.b12_status)
    labs = read_csv(smk.input.labs, LAB_DTYPES)
    subjects = read_csv(smk.input.subjects, dict.fromkeys(SUBJECT_TEXT, "str"))
    adverse_events = read_csv(smk.input.adverse_events, "str")
    tables = analyse_safety(labs, subjects, adverse_events, standards, settings)
    for name in SAFETY_TABLES:
        write_csv(tables[name], getattr(smk.output, name))
    conclusion = tables["safety_conclusion"]
    logger.info(
        "%d lab rows, %d subjects in the safety set, %d adverse event(s), %d potential Hy's law row(s)\n%s",
        len(labs),
        int(tables["ae_summary"]["denominator"].iloc[0]),
        len(tables["ae_listing"]),
        len(tables["hys_law"]),
        conclusion[["scope", "param", "n_subjects", "n_significant", "significant"]].to_string(index=False),
    )


run_step(snakemake, main)
