"""results/analysis/subjects.csv: one row per subject (characteristics, treatment, compliance, flags)."""

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
    dosing = read_clean_table(smk.input.dosing, contract.tables["dosing.csv"])
    diary = read_clean_table(smk.input.symptom_diary, contract.tables["symptom_diary.csv"])
    composite = smk.params.composite or {"symptoms": [], "require_all_symptoms": True}  # None: a single-item diary
    table = derivation.derive_subjects(
        subjects,
        dosing,
        diary,
        doses_per_day=smk.params.treatment.get("doses_per_day"),  # none: no capsule counts
        symptoms=composite["symptoms"],
        require_all=composite["require_all_symptoms"],
        contract=contract,
        efficacy_week=smk.params.treatment["duration_weeks"],
    )
    schema.write_artifact(table, smk.output.subjects, "analysis/subjects")


run_step(snakemake, main)
