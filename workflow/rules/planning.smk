# Planning the confirmatory trial (issue 17; k2trial.planning; config/planning.yaml): simulation-based power and
# sample size from the randomised pilot's results. Outside the default target:
#   snakemake --cores 2 plan                     locally
#   snakemake --profile profiles/slurm plan      every batch of cells a Slurm job (profiles/slurm/config.yaml)
# --config planning_config=config/planning_small.yaml selects another planning configuration (the small one of CI);
# --config planning_vas=PATH planning_between_arm=PATH planning_subjects=PATH override its input paths.
# Jobs: plan_scenarios (pilot estimates and cells; local, it is quick), plan_cells (one job per batch of cells, cells
# dealt round robin; each cell's trials depend only on the global seed and the cell's identity), plan_report (gather).
import yaml

PLANNING_CONFIG = config.get("planning_config", "config/planning.yaml")
with open(PLANNING_CONFIG, encoding="utf-8") as _handle:
    PLANNING = yaml.safe_load(_handle)
PLAN_DIR = f"{RESULTS}/planning"
PLAN_JOBS = PLANNING["jobs"]
PLAN_BATCHES = [f"{job:03d}" for job in range(int(PLAN_JOBS["count"]))]
# The plan's seed: its own (simulation.seed) or the workflow's global seed; each cell's seed derives from it.
PLAN_SEED = (
    PLANNING["simulation"]["seed"]
    if PLANNING["simulation"].get("seed") is not None
    else config["seed"]
)


# Input paths: --config planning_<name>=PATH, else config/planning.yaml inputs.<name> (subjects, dataset: optional).
PLAN_INPUTS = {
    name: config.get(f"planning_{name}", PLANNING["inputs"].get(name))
    for name in ("vas", "between_arm", "subjects", "dataset")
}
PLAN_INPUTS = {name: path for name, path in PLAN_INPUTS.items() if path}
PLAN_INPUT_OVERRIDES = " ".join(
    f"planning_{name}=PATH" for name in ("vas", "between_arm", "subjects")
)


include: "planning_common.smk"


# Provenance records list the locked packages; no data version: the inputs are another study's results (pilot),
# named with their sha256 in each record.
PLAN_PROVENANCE = {**PROVENANCE, "validation_report": None}


localrules:
    plan_scenarios,


rule plan:
    input:
        f"{PLAN_DIR}/power.csv",
        f"{PLAN_DIR}/sample_size.csv",
        f"{PLAN_DIR}/assurance.csv",
        f"{PLAN_DIR}/power_curves.png",
        f"{PLAN_DIR}/power_curves.svg",
        f"{PLAN_DIR}/designing_the_confirmatory_trial.html",


rule plan_scenarios:
    input:
        **{name: plan_input(name) for name in PLAN_INPUTS},
        planning_config=PLANNING_CONFIG,
    output:
        provenance=f"{RESULTS}/provenance/plan_scenarios.json",
        scenarios=f"{PLAN_DIR}/scenarios.json",
        cells=f"{PLAN_DIR}/cells.csv",
    log:
        f"{RESULTS}/logs/plan_scenarios.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        planning=PLANNING,
        global_seed=PLAN_SEED,
        provenance=PLAN_PROVENANCE,
    script:
        "../scripts/plan_scenarios.py"


rule plan_cells:
    input:
        scenarios=rules.plan_scenarios.output.scenarios,
    output:
        provenance=f"{RESULTS}/provenance/plan_cells/batch-{{job}}.json",
        power=f"{PLAN_DIR}/cells/batch-{{job}}.csv",
    log:
        f"{RESULTS}/logs/plan_cells/batch-{{job}}.log",
    wildcard_constraints:
        job=r"[0-9]{3}",
    conda:
        CONDA_ENV
    threads: int(PLAN_JOBS["threads"])
    resources:
        mem_mb=int(PLAN_JOBS["mem_mb"]),
        runtime=int(PLAN_JOBS["runtime"]),
    params:
        planning=PLANNING,
        provenance=PLAN_PROVENANCE,
    script:
        "../scripts/plan_cells.py"


rule plan_report:
    input:
        scenarios=rules.plan_scenarios.output.scenarios,
        batches=expand(f"{PLAN_DIR}/cells/batch-{{job}}.csv", job=PLAN_BATCHES),
    output:
        provenance=f"{RESULTS}/provenance/plan_report.json",
        power=f"{PLAN_DIR}/power.csv",
        sample_size=f"{PLAN_DIR}/sample_size.csv",
        assurance=f"{PLAN_DIR}/assurance.csv",
        curves_png=f"{PLAN_DIR}/power_curves.png",
        curves_svg=f"{PLAN_DIR}/power_curves.svg",
        page=f"{PLAN_DIR}/designing_the_confirmatory_trial.html",
    log:
        f"{RESULTS}/logs/plan_report.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=int(PLAN_JOBS["gather_mem_mb"]),
        runtime=int(PLAN_JOBS["gather_runtime"]),
    params:
        planning=PLANNING,
        provenance=PLAN_PROVENANCE,
        # the code and analysis versions the page states, as every page of the pipeline does
        code=CODE_HASHES,
    script:
        "../scripts/plan_report.py"
