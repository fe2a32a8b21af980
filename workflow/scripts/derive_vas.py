"""results/analysis/vas.csv: VAS in long format (the diary items and the composite, if any) with base, chg and pchg."""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
from k2trial.core import schema
from k2trial.data import derivation
from k2trial.data.cleaning import read_clean_table
from k2trial.runtime.step import contract as study_contract
from k2trial.runtime.step import run_step


def main(smk):
    contract = study_contract(smk)
    diary = read_clean_table(smk.input.symptom_diary, contract.tables["symptom_diary.csv"])
    composite = smk.params.composite or {"symptoms": [], "require_all_symptoms": True}  # None: a single-item diary
    table = derivation.derive_vas(
        diary, contract, symptoms=composite["symptoms"], require_all=composite["require_all_symptoms"]
    )
    schema.write_artifact(table, smk.output.vas, "analysis/vas")


run_step(snakemake, main)
