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
    subjects = read_clean_table(smk.input.subjects, contract.tables["subjects.csv"])
    # the clean labs read where they are used (released once derived, before labs.csv is written), their text
    # columns as categories (derive_labs works on their distinct values; 5.4 million records at 100,000 subjects
    # would otherwise be as many strings per column)
    table = derivation.derive_labs(
        read_clean_table(smk.input.labs, contract.tables["labs.csv"], categorical=derivation.LAB_TEXT_COLUMNS),
        subjects,
        contract,
    )
    schema.write_artifact(table, smk.output.labs, "analysis/labs")


run_step(snakemake, main)
