"""results/analysis/labs.csv: lab results in the standard unit per test, lab ranges converted, baseline."""

from k2trial import derivation
from k2trial.cleaning import read_clean_table
from k2trial.contract import read_contract
from k2trial.step import run_step
from k2trial.tabular import write_csv


def main(smk):
    contract = read_contract(smk.input.codebook, smk.input.lab_units)
    labs = read_clean_table(smk.input.labs, contract.tables["labs.csv"])
    subjects = read_clean_table(smk.input.subjects, contract.tables["subjects.csv"])
    write_csv(derivation.derive_labs(labs, subjects, contract), smk.output.labs)


run_step(snakemake, main)
