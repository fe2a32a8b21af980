"""results/analysis/allocation.csv: the randomised arm, the stratum and the analysis sets of a randomised study
(k2trial.analysis.arms.allocation_table; per-protocol criteria from config arms.per_protocol)."""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
from k2trial.analysis import arms
from k2trial.core import schema
from k2trial.data.cleaning import read_clean_table
from k2trial.runtime.step import contract as study_contract
from k2trial.runtime.step import logger, run_step


def main(smk):
    contract = study_contract(smk)
    clean = read_clean_table(smk.input.clean_subjects, contract.tables["subjects.csv"])
    subjects = schema.read_artifact(smk.input.subjects, "analysis/subjects", arms.SUBJECT_COLUMNS)
    table = arms.allocation_table(clean, subjects, smk.params.arms, label="clean/subjects.csv")
    schema.write_artifact(table, smk.output.allocation, "analysis/allocation")
    logger.info("allocation:\n%s", table.groupby(["arm", "stratum"], dropna=False).size().to_string())


run_step(snakemake, main)
