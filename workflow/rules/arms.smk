# A randomised study (the study config's `arms`; included by the Snakefile only then): the allocation and the
# analysis sets of the design (analysis/allocation.csv), the summaries by arm (results/arms/: CONSORT flow, VAS by
# visit and arm, Table 1 by arm, adverse events and laboratory values by arm) and the figures by arm (CONSORT
# diagram, mean trajectories by arm, forest plot of the between-arm differences; registry `rule: make_arm_figures`).
# The between-arm comparisons are part of the efficacy step (efficacy.smk); the tables by arm of make_tables.


from k2trial.core.vocabulary import SAFETY_BY_ARM


rule derive_allocation:
    input:
        clean_subjects=rules.clean_raw_data.output.subjects,
        subjects=rules.derive_subjects.output.subjects,
        codebook=config["codebook"],
        lab_units=config["lab_units"],
    output:
        provenance=f"{RESULTS}/provenance/derive_allocation.json",
        allocation=ALLOCATION["allocation"],
    log:
        f"{RESULTS}/logs/derive_allocation.log",
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        arms=ARMS,
        vocabulary=VOCABULARY,
    script:
        "../scripts/derive_allocation.py"


# The summaries of the diary and the groups by arm (a study with a diary only).
if DIARY:

    rule arm_summaries:
        input:
            allocation=rules.derive_allocation.output.allocation,
            subjects=rules.derive_subjects.output.subjects,
            vas=rules.derive_vas.output.vas,
            assignment=rules.assign_groups.output.assignment,
            dataset=DATASET_FILE,
            codebook=config["codebook"],
            lab_units=config["lab_units"],
        output:
            provenance=f"{RESULTS}/provenance/arm_summaries.json",
            consort_flow=f"{RESULTS}/arms/consort_flow.csv",
            vas_by_arm=f"{RESULTS}/arms/vas_by_arm.csv",
            baseline_by_arm=f"{RESULTS}/arms/baseline_by_arm.csv",
        log:
            f"{RESULTS}/logs/arm_summaries.log",
        conda:
            CONDA_ENV
        params:
            provenance=PROVENANCE,
            arms=ARMS,
            confidence=config["efficacy"]["confidence"],
            analysed_population=ARMS["consort_analysed"],
            summary_populations=ARMS["summary_populations"],
            vocabulary=VOCABULARY,
        script:
            "../scripts/arm_summaries.py"


# The safety analysis of each arm's subjects (k2trial.analysis.safety, as treated): the safety tables of
# SAFETY_BY_ARM by arm (AE summary and terms, lab descriptives, shifts, worst CTCAE grades, Hy's law). Like
# safety_analysis, it reads the lab standards and the CTCAE criteria.
rule safety_by_arm:
    input:
        allocation=rules.derive_allocation.output.allocation,
        subjects=rules.derive_subjects.output.subjects,
        labs=rules.derive_labs.output.labs,
        adverse_events=rules.clean_raw_data.output.adverse_events,
        codebook=config["codebook"],
        lab_units=config["lab_units"],
        lab_standards=config["lab_standards"],
        ctcae_criteria=f"{config['ctcae_criteria_dir']}/ctcae_v{config['safety']['ctcae_version']}.yaml",
    output:
        **{
            f"{name}_by_arm": f"{RESULTS}/arms/{name}_by_arm.csv"
            for name in SAFETY_BY_ARM
        },
        provenance=f"{RESULTS}/provenance/safety_by_arm.json",
    log:
        f"{RESULTS}/logs/safety_by_arm.log",
    conda:
        CONDA_ENV
    params:
        provenance=PROVENANCE,
        arms=ARMS,
        safety=config["safety"],
        b12_status=config["b12_status"],
        vocabulary=VOCABULARY,
    script:
        "../scripts/safety_by_arm.py"


# The figures by arm: CONSORT, trajectories and the between-arm forest plot (a study with a diary only).
if DIARY:

    rule make_arm_figures:
        input:
            consort_flow=rules.arm_summaries.output.consort_flow,
            vas_by_arm=rules.arm_summaries.output.vas_by_arm,
            between_arm=rules.efficacy_analysis.output.between_arm,
            dataset=DATASET_FILE,
            codebook=config["codebook"],
            lab_units=config["lab_units"],
        output:
            **reported_outputs(
                "figures",
                "figures",
                ["png", "svg"],
                reported="png",
                rule="make_arm_figures",
            ),
            provenance=f"{RESULTS}/provenance/make_arm_figures.json",
        log:
            f"{RESULTS}/logs/make_arm_figures.log",
        conda:
            CONDA_ENV
        params:
            provenance=PROVENANCE,
            reporting=config["reporting"],
            registry=registry_entries("figures", "make_arm_figures"),
            primary_population=ARMS["consort_analysed"],
            summary_populations=ARMS["summary_populations"],
            study=STUDY,
            vocabulary=VOCABULARY,
        script:
            "../scripts/make_arm_figures.py"

    FIGURE_RULES.append(rules.make_arm_figures)


# The tables by arm (make_tables, tables.smk): the artifacts their builders format (k2trial.report.tables.BUILDERS).
ARM_TABLE_INPUTS = {
    **(
        {
            "between_arm": rules.efficacy_analysis.output.between_arm,
            **{
                key: rules.arm_summaries.output[key]
                for key in ("consort_flow", "vas_by_arm", "baseline_by_arm")
            },
        }
        if DIARY
        else {}
    ),
    **{
        f"{name}_by_arm": rules.safety_by_arm.output[f"{name}_by_arm"]
        for name in SAFETY_BY_ARM
    },
}
ARM_RULES = [
    rules.derive_allocation,
    *([rules.arm_summaries] if DIARY else []),
    rules.safety_by_arm,
    *([rules.make_arm_figures] if DIARY else []),
]
