# Functions of the planning rules (workflow/rules/planning.smk, which includes this file after defining PLANNING,
# PLANNING_CONFIG, PLAN_INPUTS and PLAN_INPUT_OVERRIDES): Snakemake's linter wants a rule file's functions apart.
import os

from snakemake.exceptions import WorkflowError


def plan_input(name):
    """Input function of plan_scenarios for input `name`: its path, or, when an input file does not exist and no
    rule of this workflow writes it, a stop naming every such file, the command that builds them
    (config/planning.yaml inputs.build) and the override that points the plan at other results.
    """

    def resolve(wildcards):
        missing = [
            f"`{key}` {path}"
            for key, path in PLAN_INPUTS.items()
            if not os.path.exists(path)
            and not any(r.is_producer(path) for r in workflow.rules)
        ]
        if missing:
            raise WorkflowError(
                f"plan: input(s) of {PLANNING_CONFIG} missing, and no job of this workflow writes them: "
                f"{'; '.join(missing)}. Build them first: {PLANNING['inputs']['build']}. Or point the plan at "
                f"another study's results: --config {PLAN_INPUT_OVERRIDES} (README, 'Planning the confirmatory "
                "trial')."
            )
        return PLAN_INPUTS[name]

    return resolve
