"""Planning, step 2 (rule plan_cells, one job per batch of cells): simulate and analyse every trial of the job's cells.

Which cells a job runs is k2trial.planning.scenarios.job_cells (round robin over the canonical cell order); each
cell's trials depend only on the global seed and the cell's identity, so the rows do not depend on the batching.
Writes one row per cell and test (k2trial.planning.tables.POWER_COLUMNS): power, MC SE, trials, analytic power.
"""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
import json
import logging
import time
from pathlib import Path

import pandas as pd

from k2trial.core.io import write_csv
from k2trial.planning import power, scenarios, tables
from k2trial.runtime.step import run_step

logger = logging.getLogger("k2trial.plan_cells")


def main(smk):
    config = scenarios.load_planning_config(smk.params.planning)
    document = json.loads(Path(smk.input.scenarios).read_text(encoding="utf-8"))
    cells = scenarios.cells_from_document(document)
    job = int(smk.wildcards.job)
    strata = tuple(document["strata"])
    proportions = tuple(document["strata_proportions"])
    n_strata_model = len(strata) if (config.analysis.ancova_stratum and strata) else 1
    rows = []
    for index in scenarios.job_cells(len(cells), config.jobs, job):
        cell = cells[index]
        started = time.perf_counter()
        outcomes = power.simulate_cell(
            cell.design(config, strata, proportions),
            config.analysis,
            config.trials,
            global_seed=int(document["global_seed"]),
            block_trials=config.block_trials,
            max_values=config.max_values,
        )
        simulated = time.perf_counter()
        for test in config.analysis.tests:
            analytic = power.analytic_for_cell(
                test,
                delta=cell.delta,
                effect_sd=cell.effect_sd,
                end_sd=cell.end_sd,
                correlation=cell.correlation,
                change_sd=cell.change_sd,
                n_treated=cell.n_treated,
                n_control=cell.n_control,
                dropout=cell.dropout_rate,
                n_strata_model=n_strata_model,
                settings=config.analysis,
            )
            rows.append(tables.cell_row(cell, test, power.summarise(outcomes[test]), analytic))
        logger.info(
            "%s: %d trials simulated and analysed in %.2f s, analytic values in %.2f s",
            cell.cell_id,
            config.trials,
            simulated - started,
            time.perf_counter() - simulated,
        )
    write_csv(pd.DataFrame(rows, columns=list(tables.POWER_COLUMNS)), smk.output.power)


run_step(snakemake, main)
