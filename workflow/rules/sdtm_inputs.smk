# SDTM in and out (issues 15 and 16; data/raw/SDTM.md, k2trial.data.sdtm_io): what raw_dir holds and which files
# validation reads; the rules are in sdtm.smk.
#
# In: when raw_dir's dataset.yaml says `format: sdtm`, rule import_sdtm reads its SDTM domains (XPT v5 or
# Dataset-JSON, `sdtm: {files: ..., study: ...}`), checks them and writes the raw tables of the CSV layout into
# results/raw_from_sdtm/, which validation, cleaning and derivation then read instead of raw_dir (read_inputs); its
# findings (domain, USUBJID, variable, --SEQ) are part of the validation report, and an error stops the run at the
# cleaning gate. Without `format` (or with `format: csv`) nothing here runs and raw_dir is read as before.
#
# Out (outside the default target): `snakemake --cores 2 sdtm` writes the clean raw tables as SDTM into
# results/sdtm/ (every domain as .xpt and .json, a dataset.yaml that reads them back with format: sdtm, SHA256SUMS).
from k2trial.data.sdtm_io import input_format, sdtm_files

SDTM_MAPPING = "config/sdtm_mapping.yaml"
# The study-level mapping our own raw tables are written as SDTM with (k2trial.data.sdtm_io.STUDY_MAPPINGS).
SDTM_EXPORT_STUDY = "k2"
SDTM_READ_DIR = f"{RESULTS}/raw_from_sdtm"


# A raw folder without dataset.yaml (a delivered SDTM folder one may not write into) is described by the study
# config's `dataset` instead; a dataset.yaml in raw_dir takes precedence.
RAW_DESCRIPTION_FILE = f"{RAW_DIR}/dataset.yaml"
DESCRIBED_BY_CONFIG = not os.path.exists(RAW_DESCRIPTION_FILE) and "dataset" in config


def _raw_description():
    """raw_dir's dataset.yaml, parsed (or the study config's `dataset`); None when absent or unreadable
    (validation reports it)."""
    if DESCRIBED_BY_CONFIG:
        return config["dataset"]
    try:
        with open(RAW_DESCRIPTION_FILE, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


# None: the CSV layout; else the SDTM source (file type and study mapping) dataset.yaml describes.
SDTM_INPUT = input_format(
    _raw_description(),
    label="study config 'dataset'" if DESCRIBED_BY_CONFIG else RAW_DESCRIPTION_FILE,
)
# The dataset description every job reads (its name, version, whether it is simulated): raw_dir's dataset.yaml, or
# for an SDTM input the copy import_sdtm writes (of raw_dir's file or of the study config's `dataset`).
DATASET_FILE = f"{SDTM_READ_DIR}/dataset.yaml" if SDTM_INPUT else RAW_DESCRIPTION_FILE


def read_inputs(wildcards=None):
    """The raw files validation and cleaning read: raw_dir's (raw_inputs), or for an SDTM input the tables
    import_sdtm wrote, its dataset.yaml copy and its import report."""
    if SDTM_INPUT is None:
        return raw_inputs()
    files = {name.split(".")[0]: f"{SDTM_READ_DIR}/{name}" for name in RAW_TABLES}
    files["dataset"] = f"{SDTM_READ_DIR}/dataset.yaml"
    files["sdtm_import"] = f"{SDTM_READ_DIR}/import.json"
    return files


def sdtm_inputs(wildcards=None):
    """The SDTM folder's files import_sdtm reads: the domains, dataset.yaml and SHA256SUMS when present."""
    files = {} if DESCRIBED_BY_CONFIG else {"dataset": RAW_DESCRIPTION_FILE}
    if os.path.exists(f"{RAW_DIR}/SHA256SUMS"):
        files["checksums"] = f"{RAW_DIR}/SHA256SUMS"
    files["domains"] = sdtm_files(RAW_DIR, SDTM_INPUT) if SDTM_INPUT else []
    return files


def archive_inputs(wildcards=None):
    """The raw files an archive holds: raw_dir's CSV files (raw_inputs), or for an SDTM input its domain files,
    dataset.yaml and SHA256SUMS (one named input per domain file)."""
    if SDTM_INPUT is None:
        return raw_inputs()
    files = {key: path for key, path in sdtm_inputs().items() if key != "domains"}
    for path in sdtm_files(RAW_DIR, SDTM_INPUT):
        files[f"sdtm_{os.path.basename(path).replace('.', '_')}"] = path
    return files
