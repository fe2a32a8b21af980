"""Every efficacy table in one job (results/efficacy/*.csv and analysis_choices.json).

One job on purpose: interpreter start and imports dominate a 30-subject study. Reads the groups assignment and
results/analysis/vas.csv once into a [subject, param, week] array (k2trial.analysis.vas_cube); the analyses are
k2trial.analysis.efficacy and k2trial.analysis.sensitivity_models. The sensitivity models (statsmodels,
whose import costs more than all the other tables) are computed in a forked child, side by side with the rest.
In a randomised study (params.arms) the populations of the design come from results/analysis/allocation.csv, and
efficacy/between_arm.csv holds the comparisons between the arms (k2trial.analysis.between_arm, Holm families from
config efficacy.between_arm).
"""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
import logging

from k2trial.analysis import efficacy, groups, sensitivity_models
from k2trial.analysis.between_arm import BetweenArmSettings, between_arm_table
from k2trial.analysis.vas_cube import VAS_INPUT_COLUMNS, build_vas_cube
from k2trial.core import schema
from k2trial.core.io import write_json
from k2trial.runtime.step import run_step, start_in_child, vocabulary

#: The mixed models' statsmodels (k2trial.analysis.sensitivity_models imports it lazily): imported ahead by the run's
#: job server (k2trial.runtime.job_server.PRELOAD).
PRELOAD = ("statsmodels.regression.mixed_linear_model",)

logger = logging.getLogger("k2trial.efficacy_analysis")


def main(smk):
    words = vocabulary(smk)
    settings = efficacy.EfficacySettings.from_config(smk.params.efficacy, words)
    assignment = schema.read_artifact(
        smk.input.assignment, "groups/assignment", groups.MEMBER_COLUMNS, label="assignment.csv"
    )
    arms = smk.params.arms
    allocation, codes = None, ()
    if arms:
        allocation = schema.read_artifact(smk.input.allocation, "analysis/allocation", label="allocation.csv")
        codes = tuple(str(c) for c in arms["codes"])
    members = groups.population_members(assignment, settings.populations, allocation, codes)
    vas = schema.read_artifact(smk.input.vas, "analysis/vas", VAS_INPUT_COLUMNS, categorical=True, label="vas.csv")
    cube = build_vas_cube(vas, assignment["subject_id"].astype(str).to_numpy(), words, file_label="vas.csv")
    del vas
    logger.info("population sizes: %s", {name: int(mask.sum()) for name, mask in members.items()})

    def models():
        # the mixed ANOVA and the mixed models (statsmodels' import is most of this job's time): in a child
        # process, side by side with the tables below
        table = sensitivity_models.models_table(cube, members, settings)
        schema.write_artifact(table, smk.output.models, "efficacy/models")
        logger.info("models:\n%s", table[["model", "term", "estimate", "p_value"]].to_string())

    models_done = start_in_child(models, "efficacy/models")
    paired = efficacy.paired_tests(cube, members, settings)
    outputs = {
        "paired_tests": paired,
        "friedman": efficacy.friedman_table(cube, members, settings),
        "descriptives": efficacy.descriptives_table(cube, members, settings),
        "responders": efficacy.responders_table(cube, members, settings),
        "group_comparison": efficacy.group_comparison_table(cube, members, settings),
        "weekly": efficacy.weekly_table(cube, members),
        "symptom_ranking": efficacy.symptom_ranking(paired, settings),
    }
    for name, table in outputs.items():
        schema.write_artifact(table, getattr(smk.output, name), f"efficacy/{name}")
    choices = efficacy.analysis_choices(
        settings,
        severe_threshold=smk.params.groups["severe_threshold"],
        adequate_b12_from=smk.params.b12_status["adequate_from"],
    )
    write_json(choices, smk.output.analysis_choices)
    if allocation is not None:
        between = BetweenArmSettings.from_config(smk.params.efficacy, arms, params_known=words.params)
        ordered = allocation.set_index("subject_id").loc[assignment["subject_id"].astype(str)].reset_index()
        table = between_arm_table(
            cube, ordered, groups.population_members(assignment, between.populations, allocation, codes), between
        )
        schema.write_artifact(table, smk.output.between_arm, "efficacy/between_arm")
        logger.info("between-arm:\n%s", table[["population", "param", "visit", "test", "estimate", "p_value"]])
    models_done()
    logger.info("efficacy tables written")


run_step(snakemake, main)
