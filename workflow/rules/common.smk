# Helpers shared by all stages: paths and the conda environment. Scripts and notebooks import the analysis
# library `k2trial`, installed into the environment by `make env` (pyproject.toml).
import gc
import glob
import hashlib
import os

import yaml

from k2trial.core.io import read_yaml
from k2trial.core.vocabulary import (
    fill_words,
    load_vocabulary,
    protocol_words,
    visit_windows,
    vocabulary_sources,
)

# Set for every job this workflow starts (not read from the user's environment): iteration order is
# deterministic (ENGINEERING.md, determinism); a job that succeeded ends without tearing its interpreter down
# (k2trial.runtime.step.end_job).
os.environ.update(PYTHONHASHSEED="0", K2TRIAL_FAST_EXIT="1")

RAW_DIR = config["raw_dir"].rstrip("/")
# Every output of the study (config/studies/<name>.yaml `results_dir`: results for the default study).
RESULTS = config["results_dir"].rstrip("/")
CONDA_ENV = "../../envs/environment.yaml"
LOCK = os.path.relpath(os.path.join(workflow.basedir, "envs", "requirements.lock"))
# What each job's provenance record takes besides its inputs and outputs (k2trial.runtime.step): the package
# versions of the lock, and the data version of the validation report.
PROVENANCE = {"lock": LOCK, "validation_report": f"{RESULTS}/validation/report.json"}

# What k2trial.core.vocabulary reads from the study config (with the codebook and lab_units inputs): the composite,
# the populations and the protocol (left out for the default study's, which the library reads from its file).
# Scripts build the vocabulary and the contract with k2trial.runtime.step.vocabulary and .contract.
VOCABULARY = vocabulary_sources(config)
PROTOCOL = config["protocol"]
# The study's facts as the outputs state them (its name is the results folder's business).
STUDY = {
    key: config["study"][key]
    for key in ("title", "short_title", "reference", "registry")
}
# The treatment as jobs are given it: dose, doses a day and its duration (the end of treatment, in weeks).
TREATMENT = dict(PROTOCOL["treatment"])
# Validation's visit windows (k2trial.data.validation): the diary window, the clinic visits' target days and windows,
# and how long before the first dose the baseline may be.
VISIT_WINDOWS = visit_windows(PROTOCOL)

# The ADaM delivery's spec (workflow/rules/adam.smk): config/adam/spec.yaml unless the study config names another;
# `adam_spec: null` for a study without an ADaM spec (its controlled terms are the pilot's): no ADaM datasets.
ADAM_SPEC = config.get("adam_spec", "config/adam/spec.yaml")
# A randomised study (the study config's `arms`: codes, labels, control, stratification, per-protocol set) has an
# allocation, between-arm efficacy and reports by arm (workflow/rules/arms.smk); a single-arm study has none of them.
ARMS = config.get("arms") or None
# A study with a diary (protocol.diary.items) has efficacy: the VAS, severity groups and populations, efficacy
# analyses, claims and their figures, tables and notebooks. A safety-only study (no diary item, e.g. the CDISC
# pilot) skips these stages; the index says so (EFFICACY_SKIPPED).
DIARY = bool(PROTOCOL["diary"]["items"])
EFFICACY_SKIPPED = (
    None
    if DIARY
    else "the study config's protocol has no diary item (protocol.diary.items is empty): a safety-only study, so "
    "the VAS, severity groups, efficacy analyses, claims check and their figures, tables and notebooks are not "
    "part of this build"
)
ALLOCATION = {"allocation": f"{RESULTS}/analysis/allocation.csv"} if ARMS else {}
# The severity groups' boundary (config groups.severe_threshold), which figures, tables and notebooks label the
# groups with; None in a safety-only study, which has no groups.
SEVERE_THRESHOLD = float(config["groups"]["severe_threshold"]) if DIARY else None
# The artifacts of the tables by arm and the jobs of a randomised study (set by arms.smk; none in a single-arm study).
ARM_TABLE_INPUTS = {}
ARM_RULES = []
# What the between-arm notebook reads (workflow/rules/notebooks.smk; a randomised study only).
ARM_NOTEBOOK_INPUTS = (
    {
        "between_arm": f"{RESULTS}/efficacy/between_arm.csv",
        "vas_by_arm": f"{RESULTS}/arms/vas_by_arm.csv",
    }
    if ARMS and DIARY
    else {}
)
# What the claims of a randomised study may read besides the single-arm artifacts (workflow/rules/claims.smk).
ARM_CLAIM_INPUTS = (
    {
        **ALLOCATION,
        "between_arm": f"{RESULTS}/efficacy/between_arm.csv",
        "vas_by_arm": f"{RESULTS}/arms/vas_by_arm.csv",
    }
    if ARMS
    else {}
)

# The jobs of a rebuild's critical path (derive_vas -> assign_groups -> efficacy_analysis -> make_tables, check_claims
# -> execute_notebooks) have this priority over the others (figures, ADaM), which then wait when the cores are busy
# rather than the path: on two cores a second drawing job beside the tables delays the notebooks by its whole run.
CRITICAL_PATH_PRIORITY = 10

RAW_TABLES = [
    "subjects.csv",
    "symptom_diary.csv",
    "labs.csv",
    "adverse_events.csv",
    "dosing.csv",
]


# The reporting outputs (workflow/report/registry.yaml): every figure, table and notebook, its title and caption.
# titles and captions say what they say of the protocol through placeholders ({end_of_treatment}, ...)
# (the same words fill the notebook templates' cells tagged protocol-text: k2trial.report.notebooks)
# libyaml (read_yaml): every snakemake call, a no-op run included, parses these files
PROTOCOL_WORDS = protocol_words(
    load_vocabulary(
        read_yaml(config["codebook"]), read_yaml(config["lab_units"]), VOCABULARY
    ),
    config["efficacy"],
    config["safety"],
)
REGISTRY = read_yaml(os.path.join(workflow.basedir, "workflow/report/registry.yaml"))
# The figures and tables a safety-only study's build does not make, and why (the notebooks say so where they would
# show one; results/index.html states the reason once).
OMITTED_OUTPUTS = {
    e["name"]: EFFICACY_SKIPPED
    for section in ("figures", "tables")
    for e in REGISTRY[section]
    if e.get("diary") and not DIARY
}
# Entries marked `randomised: true` (CONSORT diagram, tables and figures by arm, the between-arm notebook) belong to
# a randomised study only: a single-arm study gets none of them, not empty ones; entries marked `diary: true` to a
# study with a diary only.
REGISTRY = fill_words(
    {
        section: (
            [
                e
                for e in entries
                if (ARMS or not e.get("randomised")) and (DIARY or not e.get("diary"))
            ]
            if isinstance(entries, list)
            else entries
        )
        for section, entries in REGISTRY.items()
    },
    PROTOCOL_WORDS,
)
# Snakemake's report reads a caption file per reported output; they are written from the registry when the
# workflow is parsed (only when their text changed), beside Snakemake's own state.
CAPTIONS_DIR = os.path.abspath(os.path.join(".snakemake", "report-captions"))


def caption_file(category, entry):
    """The caption file of a reported output: its registry caption and its category's footnote."""
    footnote = REGISTRY["footnotes"].get(category, "")
    text = (
        "\n\n".join(part.strip() for part in (entry["caption"], footnote) if part)
        + "\n"
    )
    path = os.path.join(CAPTIONS_DIR, f"{category.lower()}_{entry['name']}.rst")
    try:
        with open(path, encoding="utf-8") as handle:
            unchanged = handle.read() == text
    except OSError:
        unchanged = False
    if not unchanged:
        os.makedirs(CAPTIONS_DIR, exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    return path


def registry_entries(section, rule=None):
    """The registry entries of a section; with `rule`, those its `rule` key gives to that rule (figures)."""
    return [e for e in REGISTRY[section] if rule is None or e.get("rule") == rule]


def reported_outputs(section, folder, formats, reported, key="{name}_{fmt}", rule=None):
    """Named outputs of every registry entry of a section (figures, tables, notebooks), or of those drawn by
    `rule`: one per format, the `reported` format marked for Snakemake's report with its caption and category.
    """
    category = section.capitalize()
    outputs = {}
    for entry in registry_entries(section, rule):
        for fmt in formats:
            path = f"{RESULTS}/{folder}/{entry['name']}.{fmt}"
            if fmt == reported:
                path = report(
                    path,
                    caption=caption_file(category, entry),
                    category=category,
                    subcategory=entry.get("subcategory"),
                )
            outputs[key.format(name=entry["name"], fmt=fmt)] = path
    return outputs


def registry_names(section):
    return [entry["name"] for entry in REGISTRY[section]]


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
    "workflow/report/*.yaml",
    "workflow/schemas/*.yaml",
    "config/*.yaml",
    "config/studies/*.yaml",
    "config/ctcae/*.yaml",
    "config/adam/*.yaml",
    "envs/requirements.lock",
)


JOB_SERVER = []


def start_job_server():
    """Start the preloaded job server for this run's local jobs (k2trial.runtime.job_server): it imports the modules
    of the scripts that will run, those of the critical path's jobs (CRITICAL_PATH_PRIORITY) first, each group in
    the order its jobs can start (depth in the DAG of this run), and forks each job from there. Not for cluster or
    conda jobs (another machine, another interpreter); K2TRIAL_JOB_SERVER_ENABLED=0 turns it off.
    """
    from k2trial.runtime import job_server

    uses_conda = "conda" in {
        str(m).lower() for m in workflow.deployment_settings.deployment_method
    }
    if not workflow.local_exec or uses_conda:
        return
    dag = workflow.dag
    running = set(dag.needrun_jobs())
    depth = {}

    def level(job):
        if job not in depth:
            depth[job] = 1 + max(
                (level(d) for d in dag.dependencies[job] if d in running), default=0
            )
        return depth[job]

    jobs = sorted(running, key=lambda job: (-job.priority, level(job), job.rule.name))
    scripts = [
        os.path.join(
            workflow.basedir, "workflow", "scripts", os.path.basename(job.rule.script)
        )
        for job in jobs
        if job.rule.script
    ]
    handle = job_server.start(scripts)
    if handle is not None:
        JOB_SERVER.append(handle)


def end_run():
    """The run is over (onsuccess, onerror): stop the job server, cancel Snakemake's idle scheduler timers and freeze
    the run's objects (gc.freeze, as at the end of the Snakefile), so the process exits at once.
    """
    while JOB_SERVER:
        JOB_SERVER.pop().stop()
    stop_idle_scheduler_timers()
    gc.freeze()


def stop_idle_scheduler_timers():
    """Cancel the job scheduler's idle re-evaluation timers once the run is over.

    After each scheduling round Snakemake arms a one-second threading.Timer (its --max-jobs-per-timespan rate
    limit, 100/1s by default) that wakes the scheduler again. The timer is not a daemon thread, so when the
    workflow has finished the interpreter still waits for the last one: up to a second added to every run, a
    sixth of a full rebuild of the shipped data. Only these timers are touched (matched by the scheduler method
    that arms them), and only from onsuccess/onerror, when nothing is left to schedule; with another Snakemake
    version that arms none, this does nothing.
    """
    import threading

    for thread in threading.enumerate():
        function = getattr(thread, "function", None)
        if isinstance(thread, threading.Timer) and "_schedule_reevalutation" in getattr(
            function, "__qualname__", ""
        ):
            thread.cancel()


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(os.path.join(workflow.basedir, path), "rb") as handle:
        digest.update(handle.read())
    return digest.hexdigest()


# path -> sha256 of every code file: the parameter of the rules that state the code and analysis versions
# (execute_notebooks, build_index, manifest). A change of any file's content changes it, so those rules rerun,
# as they would with the files as inputs, without some 150 inputs each for Snakemake to stat and checksum.
CODE_HASHES = {path: _sha256_of(path) for path in CODE_FILES}
