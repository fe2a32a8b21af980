# Reviewer figures (k2trial.report.figures), PNG for reading and SVG for print, in three jobs so that drawing starts
# as soon as the data of a figure exist: make_figures draws the figures of the analysis datasets and groups while
# the efficacy and safety analyses still run; make_lab_figures those of the laboratory data and safety results;
# make_efficacy_figures those of the efficacy results. The registry (workflow/report/registry.yaml) says which job
# draws which figure (`rule`). A change of a lab reference range (config/lab_standards.yaml) redraws
# make_lab_figures only. Interpreter start and imports dominate a small study, so each job draws its figures in one
# process (forking once to use its two threads) rather than one job per figure.

# What every figure job reads: the subjects (the seeded sample of per-subject layers), the vocabulary and the dataset.
FIGURE_COMMON_INPUTS = {
    "subjects": rules.derive_subjects.output.subjects,
    "codebook": config["codebook"],
    "lab_units": config["lab_units"],
    "dataset": DATASET_FILE,
}
FIGURE_PARAMS = {
    "provenance": PROVENANCE,
    "reporting": config["reporting"],
    "seed": config["seed"],
    # the figures' seed derives from one step name in every figure job: one subject sample for every figure
    "seed_step": "make_figures",
    # the severity groups' boundary (a study with a diary; a safety-only study has no groups)
    "severe_threshold": SEVERE_THRESHOLD,
    "b12_status": config["b12_status"],
    "vocabulary": VOCABULARY,
}


# The figures of the diary and the groups (a study with a diary only).
if DIARY:

    rule make_figures:
        input:
            **FIGURE_COMMON_INPUTS,
            vas=rules.derive_vas.output.vas,
            assignment=rules.assign_groups.output.assignment,
            participant_flow=rules.assign_groups.output.participant_flow,
        output:
            **reported_outputs(
                "figures",
                "figures",
                ["png", "svg"],
                reported="png",
                rule="make_figures",
            ),
            provenance=f"{RESULTS}/provenance/make_figures.json",
        log:
            f"{RESULTS}/logs/make_figures.log",
        conda:
            CONDA_ENV
        threads: 2
        params:
            **FIGURE_PARAMS,
            registry=registry_entries("figures", "make_figures"),
        script:
            "../scripts/make_figures.py"


# The figures of the laboratory data and safety results: the reference ranges they show are config/lab_standards.yaml.
rule make_lab_figures:
    input:
        **FIGURE_COMMON_INPUTS,
        # the B12 subgroups of the B12 and haematology figure (groups: a study with a diary)
        **({"assignment": rules.assign_groups.output.assignment} if DIARY else {}),
        labs=rules.derive_labs.output.labs,
        lab_descriptives=rules.safety_analysis.output.lab_descriptives,
        edish=rules.safety_analysis.output.edish,
        lab_standards=config["lab_standards"],
    output:
        **reported_outputs(
            "figures",
            "figures",
            ["png", "svg"],
            reported="png",
            rule="make_lab_figures",
        ),
        provenance=f"{RESULTS}/provenance/make_lab_figures.json",
    log:
        f"{RESULTS}/logs/make_lab_figures.log",
    conda:
        CONDA_ENV
    threads: 2
    params:
        **FIGURE_PARAMS,
        registry=registry_entries("figures", "make_lab_figures"),
    script:
        "../scripts/make_figures.py"


# The figures of the efficacy results (a study with a diary only).
if DIARY:

    rule make_efficacy_figures:
        input:
            **FIGURE_COMMON_INPUTS,
            vas=rules.derive_vas.output.vas,
            assignment=rules.assign_groups.output.assignment,
            weekly=rules.efficacy_analysis.output.weekly,
            paired_tests=rules.efficacy_analysis.output.paired_tests,
            responders=rules.efficacy_analysis.output.responders,
        output:
            **reported_outputs(
                "figures",
                "figures",
                ["png", "svg"],
                reported="png",
                rule="make_efficacy_figures",
            ),
            provenance=f"{RESULTS}/provenance/make_efficacy_figures.json",
        log:
            f"{RESULTS}/logs/make_efficacy_figures.log",
        conda:
            CONDA_ENV
        threads: 2
        params:
            **FIGURE_PARAMS,
            registry=registry_entries("figures", "make_efficacy_figures"),
        script:
            "../scripts/make_figures.py"


# Every figure of the registry, in registry order (what the notebooks show and the index lists).
FIGURE_RULES = [
    *([rules.make_figures] if DIARY else []),
    rules.make_lab_figures,
    *([rules.make_efficacy_figures] if DIARY else []),
]
FIGURE_PNGS = [
    f"{RESULTS}/figures/{entry['name']}.png" for entry in REGISTRY["figures"]
]
