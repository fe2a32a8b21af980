"""Planning, step 1 (rule plan_scenarios): the pilot's estimates and every planning cell with its values.

Reads the pilot's analysis dataset (vas.csv), between-arm results (between_arm.csv) and, when configured, the
per-subject table with the arm; writes results/planning/scenarios.json (seed, strata, pilot estimates, cells, the
inputs' sha256 and whether they are simulated: what the cell jobs and the gather job read) and cells.csv (the same
cells as a table). k2trial.planning.scenarios.
"""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
import logging

import pandas as pd

from k2trial.core.io import read_yaml, write_csv, write_json
from k2trial.planning import scenarios
from k2trial.runtime.provenance import sha256_file
from k2trial.runtime.step import run_step

logger = logging.getLogger("k2trial.plan_scenarios")


def main(smk):
    config = scenarios.load_planning_config(smk.params.planning)
    names = list(smk.input.keys())
    vas = scenarios.read_table(smk.input.vas, scenarios.VAS_COLUMNS, "the pilot's analysis dataset")
    between_arm = scenarios.read_table(
        smk.input.between_arm, scenarios.BETWEEN_ARM_COLUMNS, "the pilot's between-arm results"
    )
    subjects = None
    if "subjects" in names:
        subjects = scenarios.read_table(smk.input.subjects, ["subject_id"], "the pilot's per-subject table")
    labels = {name: str(smk.input[name]) for name in names}
    pilot = scenarios.estimate_pilot(vas, between_arm, subjects, config, labels=labels)
    if "dataset" in names:
        simulated = bool((read_yaml(smk.input.dataset) or {}).get("simulated", False))
    else:
        simulated = bool(config.inputs.get("simulated", False))
    document = scenarios.scenarios_document(config, pilot, smk.params.global_seed)
    document["simulated"] = simulated
    document["inputs"] = {
        name: {"path": str(smk.input[name]), "sha256": sha256_file(smk.input[name])} for name in names
    }
    mismatch = abs(pilot.recomputed_estimate - pilot.ancova_estimate)
    if not mismatch <= 1e-6 * max(1.0, abs(pilot.ancova_estimate)):
        logger.warning(
            "the ANCOVA recomputed from %s (%.6g) differs from %s (%.6g): check the model (stratum?) and population",
            labels["vas"],
            pilot.recomputed_estimate,
            labels["between_arm"],
            pilot.ancova_estimate,
        )
    write_json(document, smk.output.scenarios)
    write_csv(pd.DataFrame(document["cells"]), smk.output.cells)
    logger.info(
        "%d cells; pilot: %s",
        len(document["cells"]),
        {k: v for k, v in pilot.to_dict().items() if k != "between_arm_rows"},
    )


run_step(snakemake, main)
