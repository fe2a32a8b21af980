# Helpers shared by all rule files: paths, the library on PYTHONPATH, the conda environment.
import os


# Scripts and notebooks import the analysis library `k2trial` from workflow/.
LIBRARY_DIR = os.path.join(workflow.basedir, "workflow")
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (LIBRARY_DIR, os.environ.get("PYTHONPATH", "")) if p
)
# Deterministic iteration order in every job (see ENGINEERING.md, determinism).
os.environ["PYTHONHASHSEED"] = "0"

RAW_DIR = config["raw_dir"].rstrip("/")
RESULTS = "results"
CONDA_ENV = "../../envs/environment.yaml"

RAW_TABLES = [
    "subjects.csv",
    "symptom_diary.csv",
    "labs.csv",
    "adverse_events.csv",
    "dosing.csv",
]


def raw_inputs(wildcards=None):
    """Every raw file of the contract, plus the checksum file when the dataset ships one."""
    files = {name.split(".")[0]: f"{RAW_DIR}/{name}" for name in RAW_TABLES}
    files["dataset"] = f"{RAW_DIR}/dataset.yaml"
    if os.path.exists(f"{RAW_DIR}/SHA256SUMS"):
        files["checksums"] = f"{RAW_DIR}/SHA256SUMS"
    return files
