"""Analysis library of the vitamin K2-7 neuropathy pilot (Kulkarni et al., 2013).

Pure functions grouped by domain; Snakemake rules (workflow/rules) wire files to them through thin
scripts (workflow/scripts). Nothing in this package knows about Snakemake or about file locations,
except `step`, which adapts a script's `snakemake` object, and `tabular`, which reads and writes tables.

Modules:
    errors      typed, user-facing errors (file, row, column, value, rule broken)
    tabular     reading raw CSV as text, deterministic and atomic CSV/JSON writing
    step        the wrapper every workflow script runs its work through (logging, error messages)
    contract    the raw-data contract (codebook) and lab standards as Python objects
    simulation  the seeded generator of the simulated study dataset
    validation  checks of the raw files against the contract, all problems at once
    cleaning    deterministic fixes with an audit log and data queries
    derivation  analysis datasets (subjects, vas, labs)
    groups      severity groups and analysis populations
    pairedstats the paired-comparison engine (Wilcoxon signed-rank, Hodges-Lehmann, paired t, effect sizes, Holm)
    efficacy    efficacy tables for VAS: paired tests, Friedman, descriptives, responders, models
    labsafety   laboratory flags, shifts, CTCAE grades, Hy's law, eDISH, eGFR, B12 status
    adverse_events  adverse-event summary, by-term table and listing
    safety      the safety analysis as a whole and its conclusion per parameter
    claims      the published claims checked against the results
    figures     the figures (matplotlib, deterministic)
    tables      display tables: rounding half up, p-value format, HTML and LaTeX
    notebooks   papermill execution, normalisation and offline HTML of the notebooks
    site        results/index.html
    provenance  hashes, per-job provenance records, manifest, RO-Crate, deterministic archive
"""

__version__ = "0.1.0"
