"""The safety tables by arm of a randomised study (results/arms/ae_summary_by_arm.csv, lab_descriptives_by_arm.csv):
each arm's subjects through the one safety analysis (k2trial.analysis.safety.conclusion.analyse_safety), as treated
(the data hold the arm given, which is the arm randomised), stacked with the arm first (k2trial.analysis.arms.by_arm).
"""

from k2trial.analysis import arms as arm_sets
from k2trial.analysis.safety import lab_table
from k2trial.analysis.safety.conclusion import SafetySettings, analyse_safety
from k2trial.analysis.safety.ctcae import load_ctcae_criteria
from k2trial.core import schema
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
    ae, lab = {}, {}
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
        ae[arm], lab[arm] = tables["ae_summary"], tables["lab_descriptives"]
        logger.info("arm %s: %d subject(s) in the safety set", arm, len(chosen))
    schema.write_artifact(arm_sets.by_arm(ae), smk.output.ae_summary_by_arm, "arms/ae_summary_by_arm")
    schema.write_artifact(arm_sets.by_arm(lab), smk.output.lab_descriptives_by_arm, "arms/lab_descriptives_by_arm")


run_step(snakemake, main)
