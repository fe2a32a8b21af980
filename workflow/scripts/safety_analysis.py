"""Safety analysis: every results/safety/*.csv table in one process (k2trial.analysis.safety.conclusion.analyse_safety).

Inputs: results/analysis/labs.csv and subjects.csv, results/clean/adverse_events.csv, the contract (codebook.yaml,
config/lab_units.yaml), config/lab_standards.yaml and the CTCAE criteria of the configured version (config/ctcae/);
in a randomised study results/analysis/allocation.csv (the arm of each subject, for the AE listing).
One process for all tables: interpreter start and imports dominate a small study.
"""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
import logging

from k2trial.analysis.arms import arm_as_treated
from k2trial.analysis.safety import lab_table
from k2trial.analysis.safety.conclusion import SAFETY_TABLES, SafetySettings, analyse_safety
from k2trial.analysis.safety.ctcae import load_ctcae_criteria
from k2trial.core import schema
from k2trial.data.cleaning import read_clean_table
from k2trial.runtime.step import contract as study_contract
from k2trial.runtime.step import lab_standards, run_step

logger = logging.getLogger("k2trial.safety_analysis")


def read_labs(smk):
    """results/analysis/labs.csv: the columns the safety tables read, repeated text as categories."""
    return schema.read_artifact(
        smk.input.labs,
        "analysis/labs",
        lab_table.LAB_INPUT_COLUMNS,
        categorical=lab_table.LAB_CATEGORIES,
        optional=("lbseq",),  # the SDTM record key, carried into ctcae_grades.csv (issue 15)
    )


def main(smk):
    criteria = load_ctcae_criteria(smk.input.ctcae_criteria)
    standards = lab_standards(smk, criteria)  # the study's lab panel (k2trial.core.lab_panel)
    settings = SafetySettings.from_config(smk.params.safety, smk.params.b12_status)
    contract = study_contract(smk)
    subjects = schema.read_artifact(smk.input.subjects, "analysis/subjects", lab_table.SUBJECT_INPUT_COLUMNS)
    if "allocation" in smk.input.keys():  # a randomised study: the AE listing names each event's arm, as treated
        allocation = schema.read_artifact(smk.input.allocation, "analysis/allocation")
        allocation = allocation.assign(arm=arm_as_treated(allocation))[["subject_id", "arm"]]
        subjects = subjects.merge(allocation, on="subject_id", how="left", validate="one_to_one")
    spec = contract.tables["adverse_events.csv"]
    adverse_events = read_clean_table(smk.input.adverse_events, spec)
    # labs.csv is handed over without a reference kept here: analyse_safety drops it once annotated (peak memory)
    tables = analyse_safety(read_labs(smk), subjects, adverse_events, standards, settings, spec)
    for name in SAFETY_TABLES:
        schema.write_artifact(tables[name], getattr(smk.output, name), f"safety/{name}")
    conclusion = tables["safety_conclusion"]
    logger.info(
        "%d graded lab values, %d subjects in the safety set, %d adverse event(s), %d potential Hy's law row(s)\n%s",
        len(tables["ctcae_grades"]),
        int(tables["ae_summary"]["denominator"].iloc[0]),
        len(tables["ae_listing"]),
        len(tables["hys_law"]),
        conclusion[["scope", "param", "n_subjects", "n_significant", "significant"]].to_string(index=False),
    )


run_step(snakemake, main)
