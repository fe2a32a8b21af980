"""The summaries by arm of a randomised study (results/arms/): the CONSORT flow (k2trial.analysis.consort), the VAS
by visit and arm with the mean's t interval (k2trial.analysis.by_arm) and Table 1 by arm (k2trial.analysis.baseline).
The safety tables by arm: scripts/safety_by_arm.py."""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
from k2trial.analysis import baseline, by_arm, groups
from k2trial.analysis.consort import ArmDesign, Screening, consort_flow
from k2trial.core import schema
from k2trial.core.io import read_yaml
from k2trial.runtime.step import logger, run_step, vocabulary


def _screening(dataset):
    """What dataset.yaml declares about screening (`screening: {assessed, excluded: {reason: n}}`), or None."""
    declared = dataset.get("screening")
    if not declared:
        return None
    return Screening(int(declared["assessed"]), {str(k): int(v) for k, v in (declared.get("excluded") or {}).items()})


def main(smk):
    words = vocabulary(smk)
    arms = smk.params.arms
    codes = tuple(str(c) for c in arms["codes"])
    design = ArmDesign.from_config(arms)
    allocation = schema.read_artifact(smk.input.allocation, "analysis/allocation", label="allocation.csv")
    subjects = schema.read_artifact(smk.input.subjects, "analysis/subjects")
    assignment = schema.read_artifact(smk.input.assignment, "groups/assignment")
    dataset = read_yaml(smk.input.dataset) or {}

    # CONSORT: analysed = the primary population with the primary VAS at baseline and the end of treatment
    analysed_set = smk.params.analysed_population
    members = groups.population_members(allocation, [analysed_set], allocation, codes)[analysed_set]
    analysed = allocation.loc[members & allocation["efffl"].to_numpy(bool), "subject_id"]
    flow_input = subjects[["subject_id", "status", "withdrawal_reason", "saffl"]].merge(
        allocation[["subject_id", "arm"]], on="subject_id", validate="one_to_one"
    )
    label = "Analysed"  # who: the caption of the diagram (registry) and config arms.consort_analysed
    flow = consort_flow(flow_input, set(analysed), design, _screening(dataset), analysed_label=label)
    schema.write_artifact(flow.astype({"reason": "string"}), smk.output.consort_flow, "arms/consort_flow")

    # VAS by visit and arm, every diary week (the trajectories) for the summary populations
    vas = schema.read_artifact(smk.input.vas, "analysis/vas")
    populations = list(smk.params.summary_populations)
    masks = groups.population_members(allocation, populations, allocation, codes)
    ids = {p: allocation.loc[mask, "subject_id"].tolist() for p, mask in masks.items()}
    summary = by_arm.visit_summary_by_arm(
        vas, allocation, ids, codes, words.visit_codes, confidence=float(smk.params.confidence)
    )
    schema.write_artifact(summary, smk.output.vas_by_arm, "arms/vas_by_arm")

    # Table 1 by arm (every subject randomised, as randomised)
    by = (allocation.set_index("subject_id")["arm"], codes)
    table1 = baseline.baseline_characteristics(subjects[list(baseline.SUBJECT_INPUT_COLUMNS)], assignment, words, by=by)
    schema.write_artifact(table1, smk.output.baseline_by_arm, "arms/baseline_by_arm")

    logger.info("CONSORT flow:\n%s", flow.to_string(index=False))


run_step(snakemake, main)
