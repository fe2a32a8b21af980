"""Analysis library of the vitamin K2-7 neuropathy pilot (Kulkarni et al., 2013).

Pure functions grouped by domain; Snakemake rules (workflow/rules) wire files to them through thin
scripts (workflow/scripts). Nothing in this package knows about Snakemake or about file locations, except
`runtime.step`, which adapts a script's `snakemake` object. docs/ARCHITECTURE.md has the data flow and the
rules of each layer.

Subpackages:
    core      errors (typed, user-facing), io (CSV/JSON/YAML reading and deterministic atomic writing, file
              hashes), schema (every artifact's columns and dtypes; the one reader and writer), values
              (the one rounding rule and comparison, booleans, subject order, missing), vocabulary (symptoms, visits,
              populations, lab tests and their labels, from codebook and config)
    data      contract (the codebook as objects), raw_files (reading), validation (checks), validation_report
              (report writers), cleaning (fixes, audit log, queries), derivation (analysis datasets),
              simulation (the seeded generator), raw_text (its text and mess), sdtm (SDTM in and out)
    stats     paired (signed-rank, Hodges-Lehmann, paired t, Holm), random_intercept (REML fitter), summaries,
              two_sample (between-arm tests), mmrm
    analysis  groups, baseline (participant flow, Table 1), vas_cube, efficacy, sensitivity_models, claims,
              safety/ (standards, ctcae (criteria and evaluator), lab_table, lab_grades, lab_summaries, kidney,
              hepatic, lab_tests, adverse_events, conclusion)
    report    formatting (numbers as text), render (HTML, LaTeX, CSV of display tables), tables, figures, page
              (HTML pieces), site (index), notebooks (papermill, normalisation, export), notebook_view (what
              the notebooks call)
    runtime   step (the wrapper of every workflow script), provenance (records, manifest, RO-Crate, archive)
    adam      ADaM datasets from the analysis artifacts
"""

__version__ = "0.1.0"
