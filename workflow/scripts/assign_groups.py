"""Severity groups and analysis-population flags (results/groups/assignment.csv and counts.csv).

Reads results/analysis/{subjects,vas,labs}.csv (workflow/DATASETS.md); the baseline composite VAS comes from
vas.csv, the baseline serum B12 (pg/mL) from labs.csv. Rules: k2trial.analysis.groups.
"""

import logging

from k2trial.analysis import groups
from k2trial.runtime.step import run_step
from k2trial.core.io import write_csv

logger = logging.getLogger("k2trial.assign_groups")


def main(smk):
    subjects = groups.read_analysis_table(
        smk.input.subjects, ["subject_id", "etiology", "prior_b12_therapy", "efffl"], label="subjects.csv"
    )
    vas = groups.read_analysis_table(smk.input.vas, ["subject_id", "param", "visit", "aval"], label="vas.csv")
    labs = groups.read_analysis_table(smk.input.labs, ["subject_id", "visit", "param", "aval"], label="labs.csv")
    assignment = groups.assign_groups(
        subjects,
        groups.baseline_value(vas, "composite", label="vas.csv"),
        groups.baseline_value(labs, "B12", label="labs.csv"),
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
    )
    write_csv(assignment, smk.output.assignment)
    write_csv(counts, smk.output.counts)
    logger.info("groups assigned for %d subject(s)\n%s", len(assignment), counts.to_string(index=False))


run_step(snakemake, main)
