"""Every efficacy table in one process (results/efficacy/*.csv and analysis_choices.json).

One job on purpose: interpreter start and imports dominate a 30-subject study. Reads the groups assignment
and results/analysis/vas.csv once into a [subject, param, week] array; the analyses are k2trial.analysis.efficacy.
"""

import logging

from k2trial.analysis import efficacy
from k2trial.analysis import groups
from k2trial.runtime.step import run_step
from k2trial.core.io import write_csv, write_json

logger = logging.getLogger("k2trial.efficacy_analysis")


def main(smk):
    settings = efficacy.EfficacySettings.from_config(smk.params.efficacy)
    assignment = groups.read_analysis_table(
        smk.input.assignment,
        ["subject_id", "efffl", "severity_group", "b12_deficient", "diabetic", "residual_b12"],
        label="assignment.csv",
    )
    members = groups.population_members(assignment)
    vas = groups.read_analysis_table(smk.input.vas, ["subject_id", "param", "visit", "week", "aval"], label="vas.csv")
    cube = efficacy.build_vas_cube(vas, assignment["subject_id"].astype(str).to_numpy(), file_label="vas.csv")
    del vas
    logger.info("population sizes: %s", {name: int(mask.sum()) for name, mask in members.items()})

    write_csv(efficacy.paired_tests(cube, members, settings), smk.output.paired_tests)
    write_csv(efficacy.friedman_table(cube, members, settings), smk.output.friedman)
    write_csv(efficacy.descriptives_table(cube, members, settings), smk.output.descriptives)
    write_csv(efficacy.responders_table(cube, members, settings), smk.output.responders)
    write_csv(efficacy.group_comparison_table(cube, members, settings), smk.output.group_comparison)
    write_csv(efficacy.weekly_table(cube, members), smk.output.weekly)
    models = efficacy.models_table(cube, members, settings)
    write_csv(models, smk.output.models)
    choices = efficacy.analysis_choices(
        settings,
        severe_threshold=smk.params.groups["severe_threshold"],
        adequate_b12_from=smk.params.b12_status["adequate_from"],
    )
    write_json(choices, smk.output.analysis_choices)
    logger.info("efficacy tables written; models:\n%s", models[["model", "term", "estimate", "p_value"]].to_string())


run_step(snakemake, main)
