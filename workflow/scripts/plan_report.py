"""Planning, step 3 (rule plan_report, the gather job): power table, N per arm, assurance, power curves and the page
"Designing the confirmatory trial" from the cell batches and scenarios.json (k2trial.planning.tables, .report).
"""

import k2trial.runtime.start_job  # first: the run's preloaded job server runs this job if it can

# isort: split
import json
import logging
from pathlib import Path

import pandas as pd

import k2trial
from k2trial.core.io import write_bytes, write_csv, write_text
from k2trial.planning import report, scenarios, tables
from k2trial.report.notebooks import version_info_from_hashes
from k2trial.runtime.step import run_step

logger = logging.getLogger("k2trial.plan_report")


def _read_batch(path: str) -> pd.DataFrame:
    text = {c: str for c in tables.TEXT_COLUMNS}
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=text)


def main(smk):
    config = scenarios.load_planning_config(smk.params.planning)
    document = json.loads(Path(smk.input.scenarios).read_text(encoding="utf-8"))
    cells = scenarios.cells_from_document(document)
    pilot = scenarios.PilotEstimates.from_dict(document["pilot"])
    strata = tuple(document["strata"])
    n_strata_model = len(strata) if (config.analysis.ancova_stratum and strata) else 1
    power_table = tables.power_table([_read_batch(p) for p in smk.input.batches], config)
    sizes = tables.sample_size_table(power_table, config, n_strata_model)
    assurance = tables.assurance_table(power_table)
    write_csv(power_table, smk.output.power)
    write_csv(sizes, smk.output.sample_size)
    write_csv(assurance, smk.output.assurance)

    salt = str(config.report.get("svg_hashsalt", "k2trial-planning"))
    dpi = int(config.report.get("figure_dpi", 150))
    report.apply_style(salt)
    figure = report.power_curves_figure(
        power_table,
        config,
        dropout=config.dropouts[0].name,
        variability=config.variabilities[0].name,
        simulated=bool(document["simulated"]),
    )
    png = report.figure_bytes(figure, "png", dpi, salt)
    svg = report.figure_bytes(figure, "svg", dpi, salt)
    write_bytes(png, smk.output.curves_png)
    write_bytes(svg, smk.output.curves_svg)
    page = report.page_html(
        config=config,
        pilot=pilot,
        cells=cells,
        power=power_table,
        sizes=sizes,
        assurance=assurance,
        figure_svg=report.inline_svg(svg),
        simulated=bool(document["simulated"]),
        inputs=document["inputs"],
        strata=strata,
        strata_proportions=tuple(document["strata_proportions"]),
        global_seed=int(document["global_seed"]),
        versions=version_info_from_hashes(smk.params.code, smk.config, k2trial.__version__),
    )
    write_text(page, smk.output.page)
    primary = sizes[sizes["test"] == config.primary]
    logger.info("N per arm (%s):\n%s", config.primary, primary.to_string())


run_step(snakemake, main)
