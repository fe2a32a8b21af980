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
    efficacy    paired tests, estimates and effect sizes for VAS
    safety      laboratory flags, CTCAE grades, Hy's law, adverse events
"""

__version__ = "0.1.0"
