"""The safety tables by arm of a randomised study (results/arms/<table>_by_arm.csv for the tables of
k2trial.core.vocabulary.SAFETY_BY_ARM): each arm's subjects through the one safety analysis
(k2trial.analysis.safety.conclusion.analyse_safety), as treated (the arm given when the data record it, else the arm
randomised: arm_as_treated), stacked with the arm first (k2trial.analysis.arms.by_arm).
"""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
from k2trial.analysis import arms as arm_sets
from k2trial.analysis.safety import lab_table
from k2trial.analysis.safety.conclusion import SafetySettings, analyse_safety
from k2trial.analysis.safety.ctcae import load_ctcae_criteria
from k2trial.core import schema
from k2trial.core.vocabulary import SAFETY_BY_ARM
from k2trial.data.cleaning import read_clean_table
from k2trial.runtime.step import contract as study_contract
from k2trial.runtime.step import lab_standards, logger, run_step


def main(smk):
    criteria = load_ctcae_criteria(smk.input.ctcae_criteria)
    standards = lab_standards(smk, criteria)  # the study's lab panel (k2trial.core.lab_panel)
    settings = SafetySettings.from_config(smk.params.safety, smk.params.b12_status)
    spec = study_contract(smk).tables["adverse_events.csv"]
    allocation = schema.read_artifact(smk.input.allocation, "analysis/allocation", label="allocation.csv")
    subjects = schema.read_artifact(smk.input.subjects, "analysis/subjects", lab_table.SUBJECT_INPUT_COLUMNS)
    # by the arm given (as treated): the randomised arm unless the data record another (arm_as_treated)
    allocation = allocation.assign(arm=arm_sets.arm_as_treated(allocation))
    subjects = subjects.merge(allocation[["subject_id", "arm"]], on="subject_id", how="left", validate="one_to_one")
    labs = schema.read_artifact(smk.input.labs, "analysis/labs", lab_table.LAB_INPUT_COLUMNS)
    events = read_clean_table(smk.input.adverse_events, spec)
    per_arm = {name: {} for name in SAFETY_BY_ARM}
    for arm in (str(c) for c in smk.params.arms["codes"]):
        chosen = set(allocation.loc[allocation["saffl"] & (allocation["arm"] == arm), "subject_id"])
        tables = analyse_safety(
            labs[labs["subject_id"].isin(chosen)].reset_index(drop=True),
            subjects[subjects["subject_id"].isin(chosen)].reset_index(drop=True),
            events[events["subject_id"].isin(chosen)].reset_index(drop=True),
            standards,
            settings,
            spec,
        )
        for name in SAFETY_BY_ARM:
            per_arm[name][arm] = tables[name]
        logger.info("arm %s: %d subject(s) in the safety set", arm, len(chosen))
    for name, frames in per_arm.items():
        schema.write_artifact(arm_sets.by_arm(frames), getattr(smk.output, f"{name}_by_arm"), f"arms/{name}_by_arm")


run_step(snakemake, main)
