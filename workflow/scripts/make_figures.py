"""Draw the figures of the registry that this rule draws (params.registry: make_figures, make_lab_figures or
make_efficacy_figures), PNG and SVG, in one job: interpreter start and imports dominate a small study. Only
make_lab_figures has the lab_standards input (its figures show the reference ranges)."""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
from k2trial.core import schema
from k2trial.core.io import read_yaml, write_bytes
from k2trial.report import figures
from k2trial.runtime.step import lab_standards_config, run_step, vocabulary

# Columns each figure needs; reading only these keeps 100,000-subject inputs (5.4 million rows) cheap.
COLUMNS = {
    "subjects": ["subject_id", "etiology", "saffl", "efffl"],
    "vas": ["subject_id", "param", "visit", "week", "aval", "pchg"],
    "labs": ["subject_id", "param", "week", "aval"],
}
CATEGORIES = {"vas": ["param", "visit"], "labs": ["param"]}
#: Inputs that are not artifacts the figures draw.
NOT_ARTIFACTS = ("codebook", "lab_units", "lab_standards", "dataset")


def main(smk):
    reporting = smk.params.reporting
    style = figures.Style.from_config(reporting)
    figures.apply_style(style)
    dataset = read_yaml(smk.input.dataset) or {}
    b12 = smk.params.b12_status
    haematology = reporting["b12_haematology"]
    settings = figures.FigureSettings(
        style=style,
        seed=figures.step_seed(int(smk.params.seed), smk.params.seed_step),
        labels=figures.Labels(vocabulary(smk), smk.params.severe_threshold),
        b12_test=str(b12["test"]),
        b12_deficient_below=float(b12["deficient_below"]),
        b12_adequate_from=float(b12["adequate_from"]),
        haematology_tests=(str(haematology["mcv"]), str(haematology["haemoglobin"])),
        standards=lab_standards_config(smk)["tests"] if "lab_standards" in smk.input.keys() else {},
        figures=tuple((entry["name"], int(entry["process"])) for entry in smk.params.registry),
        simulated=bool(dataset.get("simulated", False)),
    )
    data = {
        key: schema.read_artifact(
            path, schema.artifact_name(path), COLUMNS.get(key), categorical=CATEGORIES.get(key, False)
        )
        for key, path in smk.input.items()
        if key not in NOT_ARTIFACTS
    }

    def save(name, rendered):
        for fmt, content in rendered.items():
            write_bytes(content, getattr(smk.output, f"{name}_{fmt}"))

    figures.save_all(data, settings, save, processes=int(smk.threads))


run_step(snakemake, main)
