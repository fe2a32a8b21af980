"""Draw the figures of a randomised study (registry `rule: make_arm_figures`): the CONSORT diagram, the mean
trajectories by arm and the forest plot of the between-arm differences (k2trial.report.arm_figures), PNG and SVG,
each stamped SIMULATED DATA when dataset.yaml says the data are simulated."""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
from k2trial.core import schema
from k2trial.core.io import read_yaml, write_bytes
from k2trial.report import arm_figures, figures
from k2trial.runtime.step import run_step, vocabulary

NOT_ARTIFACTS = ("codebook", "lab_units", "dataset")


def main(smk):
    reporting = smk.params.reporting
    style = figures.Style.from_config(reporting)
    figures.apply_style(style)
    simulated = bool((read_yaml(smk.input.dataset) or {}).get("simulated", False))
    data = {
        key: schema.read_artifact(path, schema.artifact_name(path))
        for key, path in smk.input.items()
        if key not in NOT_ARTIFACTS
    }
    names = [entry["name"] for entry in smk.params.registry]
    titles = {entry["name"]: entry["title"] for entry in smk.params.registry}
    drawn = arm_figures.arm_figures(data, names, titles, vocabulary(smk), style, smk.params.primary_population)
    for name, fig in drawn.items():
        if simulated:
            figures.mark_simulated(fig)
        for fmt, content in figures.render_figure(fig, style.dpi).items():
            write_bytes(content, getattr(smk.output, f"{name}_{fmt}"))


run_step(snakemake, main)
