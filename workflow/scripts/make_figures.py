"""Draw every figure (PNG and SVG) in one process: interpreter start and imports dominate a small study."""

import pandas as pd
import yaml

from k2trial.core.io import write_bytes
from k2trial.report import figures
from k2trial.report.tables import lab_tests_from_units
from k2trial.runtime.step import run_step

# Columns each figure needs; reading only these keeps 100,000-subject inputs (5.4 million rows) cheap.
VAS_COLUMNS = ["subject_id", "param", "visit", "week", "aval", "pchg"]
LAB_COLUMNS = ["subject_id", "param", "week", "aval"]
CATEGORIES = {"param": "category", "visit": "category"}


def read(path, **kwargs):
    return pd.read_csv(path, keep_default_na=False, na_values=[""], **kwargs)


def main(smk):
    reporting = smk.params.reporting
    style = figures.Style(
        dpi=int(reporting["figure_dpi"]),
        palette=tuple(reporting["palette"]),
        max_subjects=int(reporting["max_subjects_plotted"]),
        svg_hashsalt=str(reporting["svg_hashsalt"]),
    )
    figures.apply_style(style)
    with open(smk.input.lab_units, encoding="utf-8") as handle:
        tests = lab_tests_from_units(yaml.safe_load(handle))
    with open(smk.input.lab_standards, encoding="utf-8") as handle:
        standards = yaml.safe_load(handle)["tests"]
    with open(smk.input.dataset, encoding="utf-8") as handle:
        dataset = yaml.safe_load(handle) or {}
    settings = figures.FigureSettings(
        style=style,
        seed=figures.step_seed(int(smk.params.seed), smk.rule),
        severe_threshold=float(smk.params.severe_threshold),
        b12_deficient_below=float(smk.params.b12_status["deficient_below"]),
        b12_adequate_from=float(smk.params.b12_status["adequate_from"]),
        tests=tests,
        standards=standards,
        simulated=bool(dataset.get("simulated", False)),
    )
    data = {
        "subjects": read(smk.input.subjects, usecols=["subject_id", "etiology", "saffl", "efffl"]),
        "vas": read(smk.input.vas, usecols=VAS_COLUMNS, dtype=CATEGORIES),
        "assignment": read(smk.input.assignment),
        "weekly": read(smk.input.weekly),
        "paired_tests": read(smk.input.paired_tests),
        "responders": read(smk.input.responders),
        "labs": read(smk.input.labs, usecols=LAB_COLUMNS, dtype={"param": "category"}),
        "lab_descriptives": read(smk.input.lab_descriptives),
        "edish": read(smk.input.edish),
    }

    def save(name, rendered):
        for fmt, content in rendered.items():
            write_bytes(content, smk.output[f"{name}_{fmt}"])

    figures.save_all(data, settings, save, processes=int(smk.threads))


run_step(snakemake, main)
