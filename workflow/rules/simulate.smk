# Simulated datasets of the study's protocol and calibration (k2trial.data.simulation), outside the default target;
# run a rule by name or by output:
#   snakemake --cores 1 results/simulated/n2000-seed7      another size or seed (benchmarks, tests; results_dir/simulated)
#   snakemake --cores 1 regenerate_shipped_data            rewrite the shipped files in config raw_dir
# The raw files in raw_dir are deliberately not the declared output of any rule: they are the workflow's
# input, so Snakemake must never treat them as derived or regenerate them on its own.


rule simulate_dataset:
    input:
        codebook=config["codebook"],
        lab_units=config["lab_units"],
        lab_standards=config["lab_standards"],
    output:
        dataset=directory(f"{RESULTS}/simulated/n{{n_subjects}}-seed{{seed}}"),
    log:
        f"{RESULTS}/logs/simulate_dataset/n{{n_subjects}}-seed{{seed}}.log",
    wildcard_constraints:
        n_subjects=r"[0-9]+",
        seed=r"[0-9]+",
    conda:
        CONDA_ENV
    params:
        simulation=config["simulation"],
        protocol=PROTOCOL,
    script:
        "../scripts/simulate_dataset.py"


# Side effect: (re)writes the five CSVs, dataset.yaml and SHA256SUMS in config raw_dir (n_subjects and seed
# from config); the declared output only records what was written. Run it alone, not with other targets.
rule regenerate_shipped_data:
    input:
        codebook=config["codebook"],
        lab_units=config["lab_units"],
        lab_standards=config["lab_standards"],
    output:
        record=f"{RESULTS}/simulated/shipped_dataset.json",
    log:
        f"{RESULTS}/logs/regenerate_shipped_data.log",
    conda:
        CONDA_ENV
    params:
        # a function, not the path itself: the codebook input may lie in raw_dir, which is written, not read
        raw_dir=lambda wildcards: RAW_DIR,
        n_subjects=config["simulation"]["n_subjects"],
        seed=config["seed"],
        simulation=config["simulation"],
        protocol=PROTOCOL,
    script:
        "../scripts/simulate_dataset.py"
