"""results/analysis/labs.csv: lab results in the standard unit per test, lab ranges converted, baseline."""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
from k2trial.core import schema
from k2trial.data import derivation
from k2trial.data.cleaning import read_clean_table
from k2trial.runtime.step import contract as study_contract
from k2trial.runtime.step import run_step


def main(smk):
    contract = study_contract(smk)
    labs = read_clean_table(smk.input.labs, contract.tables["labs.csv"])
    subjects = read_clean_table(smk.input.subjects, contract.tables["subjects.csv"])
    schema.write_artifact(derivation.derive_labs(labs, subjects, contract), smk.output.labs, "analysis/labs")


run_step(snakemake, main)
