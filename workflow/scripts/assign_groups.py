"""Severity groups and analysis-population flags (results/groups/assignment.csv and counts.csv), the participant
flow and the Table 1 statistics (participant_flow.csv, baseline_characteristics.csv).

Reads results/analysis/{subjects,vas,labs}.csv (workflow/DATASETS.md); the baseline composite VAS comes from
vas.csv (the single item's in a study without a composite: the vocabulary's primary_param), the baseline serum
B12 (pg/mL) from labs.csv. Rules: k2trial.analysis.groups, k2trial.analysis.baseline.
"""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
import logging

from k2trial.analysis import baseline, groups
from k2trial.core import schema
from k2trial.core.vocabulary import BASELINE
from k2trial.runtime.step import run_step, vocabulary

logger = logging.getLogger("k2trial.assign_groups")
#: The long analysis tables are read in these columns only.
LONG_COLUMNS = ["subject_id", "param", "visit", "aval"]


def main(smk):
    words = vocabulary(smk)
    subjects = schema.read_artifact(smk.input.subjects, "analysis/subjects", baseline.SUBJECT_INPUT_COLUMNS)
    vas = schema.read_artifact(smk.input.vas, "analysis/vas", LONG_COLUMNS, categorical=True, label="vas.csv")
    labs = schema.read_artifact(smk.input.labs, "analysis/labs", LONG_COLUMNS, categorical=True, label="labs.csv")
    assignment = groups.assign_groups(
        subjects[list(groups.SUBJECT_INPUT_COLUMNS)],
        groups.baseline_value(vas, words.primary_param, BASELINE, label="vas.csv"),
        groups.baseline_value(labs, smk.params.b12_status["test"], BASELINE, label="labs.csv"),
        severe_threshold=smk.params.groups["severe_threshold"],
        published_range=smk.params.groups["published_range"],
        adequate_b12_from=smk.params.b12_status["adequate_from"],
        composite_decimals=smk.params.composite_decimals,
    )
    counts = groups.group_counts(
        assignment,
        severe_threshold=smk.params.groups["severe_threshold"],
        published_range=smk.params.groups["published_range"],
        adequate_b12_from=smk.params.b12_status["adequate_from"],
        endpoint=words.param_label(words.primary_param, short=True).lower(),
        efficacy_visit=words.end_of_treatment.label.lower(),
    )
    schema.write_artifact(assignment, smk.output.assignment, "groups/assignment")
    schema.write_artifact(counts, smk.output.counts, "groups/counts")
    flow = baseline.participant_flow(subjects, vas, words)
    schema.write_artifact(flow, smk.output.participant_flow, "groups/participant_flow")
    table1 = baseline.baseline_characteristics(subjects, assignment, words)
    schema.write_artifact(table1, smk.output.baseline_characteristics, "groups/baseline_characteristics")
    logger.info("groups assigned for %d subject(s)\n%s", len(assignment), counts.to_string(index=False))


run_step(snakemake, main)
