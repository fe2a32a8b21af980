# Helpers shared by all stages: paths and the conda environment. Scripts and notebooks import the analysis
# library `k2trial`, installed into the environment by `make env` (pyproject.toml).
import glob
import os

# Set for every job this workflow starts (not read from the user's environment): iteration order is
# deterministic (ENGINEERING.md, determinism).
os.environ.update(PYTHONHASHSEED="0")

RAW_DIR = config["raw_dir"].rstrip("/")
RESULTS = "results"
CONDA_ENV = "../../envs/environment.yaml"

# What k2trial.core.vocabulary reads from the config (with the codebook and lab_units inputs): scripts build the
# vocabulary with k2trial.runtime.step.vocabulary.
VOCABULARY = {"composite": config["composite"], "populations": config["populations"]}

RAW_TABLES = [
    "subjects.csv",
    "symptom_diary.csv",
    "labs.csv",
    "adverse_events.csv",
    "dosing.csv",
]


def artifact_outputs(rule):
    """The outputs of a job without its provenance record (what readers of results/ look at)."""
    return [
        str(p) for p in rule.output if not str(p).startswith(f"{RESULTS}/provenance/")
    ]


def raw_inputs(wildcards=None):
    """The raw files of the contract that exist in raw_dir, keyed by table name.

    A missing file is not a Snakemake input error: validation reports it, together with every other
    problem, in results/validation/report.md (params.raw_files lists what the contract expects).
    """
    files = {name.split(".")[0]: f"{RAW_DIR}/{name}" for name in RAW_TABLES}
    files["dataset"] = f"{RAW_DIR}/dataset.yaml"
    files["checksums"] = f"{RAW_DIR}/SHA256SUMS"
    return {key: path for key, path in files.items() if os.path.exists(path)}


def _repo_files(*patterns):
    found = []
    for pattern in patterns:
        found += glob.glob(os.path.join(workflow.basedir, pattern), recursive=True)
    return sorted(os.path.relpath(f, workflow.basedir) for f in found)


# Everything that defines the analysis besides the raw data: its hash is the analysis version.
CODE_FILES = _repo_files(
    "Snakefile",
    "workflow/rules/*.smk",
    "workflow/scripts/*.py",
    "workflow/k2trial/**/*.py",
    "workflow/notebooks/*.ipynb",
    "workflow/schemas/*.yaml",
    "config/*.yaml",
    "envs/requirements.lock",
)
