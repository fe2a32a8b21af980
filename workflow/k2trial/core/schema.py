"""The artifact schema: the columns and dtypes of every analysis artifact, stated once, with the one reader and the
one writer that scripts, tests and notebooks use.

An artifact is named by its path under results/ without the suffix ("efficacy/paired_tests"). Its columns are listed
here in file order with a dtype:

    text     str (missing: NaN); read as a pandas Categorical with `categorical=True` (cheap at millions of rows)
    float    float64 (missing: NaN)
    int      int64 (never missing)
    Int64    nullable integer
    bool     True/False (never missing)
    boolean  nullable boolean

An optional column (`lbseq:Int64?`) is written only when the input has it: the SDTM record keys (lbseq), which
data in the project's CSV layout does not have, so such an artifact keeps its bytes. Columns that depend on
configuration are given by a rule, not listed: `Template("p_holm_{}", ...)` stands for one
column per Holm family (p_holm_visit_contrasts, p_holm_symptoms, ...), matched by pattern in a file's header. The
clean tables (results/clean/<raw file>.csv) follow the raw-data contract (k2trial.data.contract, the codebook) and
are read with `k2trial.data.cleaning.read_clean_table`; display tables (results/tables/) are text made by their
builders. workflow/DATASETS.md describes every column in words.

`read_artifact` reads an artifact (all columns or a subset) with these dtypes; a header that lacks a requested
column raises ArtifactError naming the artifact and the column. `write_artifact` checks that a frame has exactly
the schema's columns, in order, before writing it with k2trial.core.io.write_csv.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from k2trial.core.artifacts import artifact_name  # also the scripts' name for it (schema.artifact_name)
from k2trial.core.errors import ArtifactError
from k2trial.core.io import write_csv
from k2trial.core.vocabulary import SAFETY_BY_ARM

DTYPES = ("text", "float", "int", "Int64", "bool", "boolean")
#: pandas dtype used to read each schema dtype (bool columns are parsed from their True/False text).
_READ_DTYPES = {
    "text": "str",
    "float": "float64",
    "int": "int64",
    "Int64": "Int64",
    "bool": "bool",
    "boolean": "boolean",
}


@dataclass(frozen=True)
class Column:
    """A column; `optional`: written only when the input has it (the SDTM record keys lbseq, aeseq: see
    `columns`), so an artifact of other input keeps its bytes."""

    name: str
    dtype: str
    optional: bool = False


@dataclass(frozen=True)
class Template:
    """A run of columns named by a pattern with one placeholder ("p_holm_{}"); every instance has `dtype`."""

    pattern: str
    dtype: str
    meaning: str = ""

    @property
    def regex(self) -> re.Pattern[str]:
        head, tail = self.pattern.split("{}")
        return re.compile(f"^{re.escape(head)}([a-z0-9_]+){re.escape(tail)}$")

    def name(self, key: str) -> str:
        return self.pattern.format(key)


Entry = Column | Template


def _columns(spec: str) -> tuple[Column, ...]:
    """ "a:text b:float c:Int64?" -> Columns (one compact line per group of columns; "?" marks an optional one)."""
    out = []
    for item in spec.split():
        name, _, dtype = item.partition(":")
        optional = dtype.endswith("?")
        dtype = dtype.removesuffix("?")
        if dtype not in DTYPES:
            raise ValueError(f"schema: column {name!r} has unknown dtype {dtype!r}")
        out.append(Column(name, dtype, optional))
    return tuple(out)


# ----------------------------------------------------------------------------------------------------------------
# Shared column groups
# ----------------------------------------------------------------------------------------------------------------
#: One paired comparison (k2trial.stats.paired): the test, its estimate with CI and its effect size with CI (es_ci_note:
#: why that CI is not estimable, e.g. every change has one sign; empty when it is estimated).
PAIRED_TEST = _columns(
    "n:int test:text statistic:float statistic_name:text p_value:float p_method:text "
    "estimate_type:text estimate:float ci_low:float ci_high:float "
    "effect_size_type:text effect_size:float es_ci_low:float es_ci_high:float es_ci_note:text"
)
#: Detail of a paired comparison: t degrees of freedom, non-zero differences, confidence level attained.
PAIRED_DETAIL = _columns("df:float n_nonzero:int ci_level:float")
#: Where a comparison is placed: population, param and the two visits (change = visit_to - visit_from).
PAIRED_KEY = _columns("population:text param:text visit_from:text visit_to:text")
#: Holm adjustment: the adjusted p used for reporting and the family (families) it was adjusted within.
HOLM = _columns("p_adjusted:float family:text")
#: Summary statistics of one variable (SD with n - 1, quartiles by linear interpolation).
SUMMARY = _columns("n:int mean:float sd:float median:float q1:float q3:float min:float max:float")
_LAB_SUMMARY = _columns("n:int n_censored:int mean:float sd:float median:float q1:float q3:float min:float max:float")


def _paired_tests_columns() -> tuple[Entry, ...]:
    head, tail = PAIRED_TEST[:6], PAIRED_TEST[6:]
    return (*PAIRED_KEY, *head, *HOLM, *tail)


ARTIFACTS: dict[str, tuple[Entry, ...]] = {
    # results/clean: besides the clean tables of the contract
    "clean/audit_log": _columns("file:text raw_row:Int64 subject_id:text column:text old:text new:text rule:text"),
    "clean/audit_summary": _columns("file:text rule:text changes:int"),
    "clean/queries": _columns(
        "query_id:text file:text raw_row:Int64 subject_id:text column:text value:text rule:text question:text"
    ),
    "clean/row_accounting": _columns("file:text rows_in:int rows_out:int rows_removed:int removal_reasons:text"),
    # results/analysis
    "analysis/subjects": _columns(
        "subject_id:text site:text sex:text age_years:float weight_kg:float height_cm:float bmi:float etiology:text "
        "diabetes_duration_years:float metformin:bool prior_b12_therapy:bool anticoagulant:bool consent_date:text "
        "first_dose_date:text last_dose_date:text treatment_days:float capsules_dispensed:float "
        "capsules_returned:float capsules_expected:float compliance_pct:float status:text withdrawal_reason:text "
        "completed:bool saffl:bool efffl:bool"
    ),
    "analysis/vas": _columns(
        "subject_id:text param:text visit:text week:int aval:float base:float chg:float pchg:float"
    ),
    "analysis/labs": _columns(
        "subject_id:text visit:text week:int sample_date:text param:text aval:float unit:text ref_low:float "
        "ref_high:float reported_value:float reported_unit:text reported_ref_low:float reported_ref_high:float "
        "censored:bool base:float chg:float baseline_record:bool lbseq:Int64?"
    ),
    # results/groups
    "groups/assignment": _columns(
        "subject_id:text efffl:boolean baseline_composite:float severity_group:text severe_threshold:float "
        "outside_published_range:boolean etiology:text b12_deficient:boolean diabetic:boolean "
        "prior_b12_therapy:boolean baseline_b12:float residual_b12:boolean"
    ),
    "groups/counts": _columns("group:text definition:text n_enrolled:int n_efficacy_set:int"),
    "groups/participant_flow": _columns("stage:text label:text n:int"),
    "groups/baseline_characteristics": _columns(
        "characteristic:text label:text kind:text level:text level_label:text scale:text group:text group_n:int "
        "n:int count:int mean:float sd:float median:float q1:float q3:float min:float max:float"
    ),
    # results/efficacy
    "efficacy/paired_tests": (
        *_paired_tests_columns(),
        *PAIRED_DETAIL,
        Template("p_holm_{}", "float", "Holm-adjusted p within one named family (efficacy.holm_families)"),
    ),
    "efficacy/friedman": _columns(
        "population:text param:text n:int chi2:float df:float p_value:float kendall_w:float visits:text"
    ),
    "efficacy/descriptives": (*_columns("population:text param:text visit:text week:int variable:text"), *SUMMARY),
    "efficacy/weekly": _columns(
        "population:text param:text visit:text week:int n:int median:float q1:float q3:float mean:float"
    ),
    "efficacy/responders": _columns(
        "population:text param:text visit:text criterion:text threshold:float unit:text responders:int n:int "
        "n_not_evaluable:int percent:float ci_low:float ci_high:float caveat:text"
    ),
    "efficacy/group_comparison": _columns(
        "population:text param:text visit:text group_a:text group_b:text n_a:int n_b:int test:text statistic:float "
        "statistic_name:text p_value:float p_method:text estimate_type:text estimate:float ci_low:float "
        "ci_high:float ci_level:float effect_size_type:text effect_size:float es_ci_low:float es_ci_high:float "
        "es_ci_note:text"
    ),
    "efficacy/models": _columns(
        "model:text param:text term:text estimate:float se:float statistic_name:text statistic:float df1:float "
        "df2:float p_value:float p_value_gg:float epsilon_gg:float ci_low:float ci_high:float effect_size_type:text "
        "effect_size:float n_subjects:int n_obs:int method:text caveat:text"
    ),
    "efficacy/symptom_ranking": _columns(
        "population:text visit_from:text visit_to:text rank:int param:text estimate:float"
    ),
    # Randomised designs (k2trial.analysis.between_arm): the columns first, then the detail of each row.
    "efficacy/between_arm": _columns(
        "population:text param:text visit:text test:text n_treated:int n_control:int estimate:float ci_low:float "
        "ci_high:float p_value:float p_adjusted:float family:text estimate_type:text method:text "
        "arm_treated:text arm_control:text ci_level:float se:float df:float statistic:float statistic_name:text "
        "p_method:text lsmean_treated:float lsmean_control:float responders_treated:Int64 responders_control:Int64 "
        "n_missing_treated:int n_missing_control:int n_not_evaluable:int covariance_used:text note:text"
    ),
    # Randomised designs: the allocation and the summaries by arm (k2trial.analysis.arms, .consort, .by_arm)
    "analysis/allocation": _columns(
        "subject_id:text arm:text actual_arm:text? stratum:text ittfl:bool saffl:bool efffl:bool pprotfl:bool "
        "pp_reason:text"
    ),
    "arms/consort_flow": _columns("arm:text stage:text label:text n:int reason:text"),
    "arms/vas_by_arm": _columns(
        "population:text arm:text param:text variable:text visit:text week:int n:int mean:float sd:float se:float "
        "ci_low:float ci_high:float median:float q1:float q3:float min:float max:float ci_level:float"
    ),
    # results/safety
    "safety/lab_flags": _columns(
        "subject_id:text param:text visit:text week:int aval:float unit:text reported_value:float "
        "reported_unit:text censored:bool ref_low:float ref_high:float range_source:text flag:text baseline_flag:text "
        "category:text"
    ),
    "safety/lab_descriptives": (
        *_columns("param:text unit:text visit:text week:int"),
        *_LAB_SUMMARY,
        *(Column(f"chg_{c.name}", c.dtype) for c in _LAB_SUMMARY),
    ),
    "safety/lab_shifts": _columns("param:text comparison:text from:text to:text n:int percent:float denominator:int"),
    "safety/lab_categories": _columns(
        "param:text visit:text week:int baseline_category:text category:text n:int percent:float denominator:int"
    ),
    "safety/ctcae_grades": _columns(
        "subject_id:text param:text visit:text week:int aval:float unit:text censored:bool reported_value:float "
        "reported_unit:text lln:float uln:float default_range:bool baseline_value:float baseline_flag:text "
        "baseline_record:bool term:text direction:text grade:Int64 reason:text criterion:text lower_bound:bool "
        "ctcae_version:text lbseq:Int64?"
    ),
    "safety/ctcae_worst": _columns(
        "term:text param:text baseline_grade:text worst_grade:text n:int percent:float denominator:int "
        "ctcae_version:text"
    ),
    "safety/hys_law": _columns(
        "subject_id:text visit:text week:int sample_date:text alt:float alt_xuln:float ast:float ast_xuln:float "
        "tbil:float tbil_xuln:float tbil_visit:text alp:float alp_xuln:float note:text"
    ),
    "safety/edish": _columns(
        "subject_id:text peak_alt_xuln:float peak_ast_xuln:float peak_aminotransferase_xuln:float "
        "peak_tbil_xuln:float quadrant:text"
    ),
    "safety/lab_paired_tests": (
        *PAIRED_KEY,
        *PAIRED_TEST[:6],
        *HOLM,
        *PAIRED_TEST[6:],
        *_columns("unit:text n_censored_excluded:int"),
    ),  # fmt: skip
    "safety/ae_listing": _columns(
        "subject_id:text aeseq:Int64 arm:text raw_row:Int64 term:text onset_date:text end_date:text study_day:Int64 "
        "severity:text serious:text related:text related_to_treatment:bool action:text leading_to_withdrawal:bool "
        "outcome:text treatment_emergent:bool in_safety_set:bool"
    ),
    "safety/ae_summary": _columns(
        "category:text description:text n_subjects:int percent:float n_events:int denominator:int note:text"
    ),
    "safety/ae_by_term": _columns(
        "term:text n_subjects:int percent:float n_events:int n_subjects_related:int n_subjects_severe:int "
        "n_subjects_serious:int n_subjects_leading_to_withdrawal:int denominator:int"
    ),
    "safety/safety_conclusion": _columns(
        "scope:text param:text name:text panel:text unit:text n_subjects:int worst_grade:Int64 n_new_grade:int "
        "n_significant_shift:int n_significant:int significant:bool n_default_range_grades:int ctcae_version:text "
        "subjects:text rule:text"
    ),
    # results/claims
    "claims/claims": _columns(
        "claim_id:text source:text statement:text statistic:text expected:text observed:text status:text "
        "evidence:text primary:bool data_simulated:bool"
    ),
}
# Table 1 and the safety tables by arm: the overall artifact's columns (Table 1: `group` is the arm), the arm first.
ARTIFACTS["arms/baseline_by_arm"] = ARTIFACTS["groups/baseline_characteristics"]
# the safety tables by arm (k2trial.core.vocabulary.SAFETY_BY_ARM): the arm, then the safety table's columns
for _table in SAFETY_BY_ARM:
    ARTIFACTS[f"arms/{_table}_by_arm"] = (Column("arm", "text"), *ARTIFACTS[f"safety/{_table}"])


# ----------------------------------------------------------------------------------------------------------------
# Lookups
# ----------------------------------------------------------------------------------------------------------------
def spec(artifact: str) -> tuple[Entry, ...]:
    """The schema entries of an artifact; KeyError names an unknown artifact."""
    try:
        return ARTIFACTS[artifact]
    except KeyError:
        raise KeyError(f"no artifact {artifact!r} in the schema (k2trial.core.schema.ARTIFACTS)") from None


def columns(artifact: str, *, present: Iterable[str] = (), **instances: Sequence[str]) -> list[str]:
    """The artifact's column names in file order; a template expands to one column per key given for it
    (keyword: the template's placeholder pattern without "{}" and underscores at its ends, e.g. p_holm=...); an
    optional column is included only when it is among `present` (e.g. the columns of the frame being written)."""
    have = set(present)
    out: list[str] = []
    for entry in spec(artifact):
        if isinstance(entry, Template):
            out += [entry.name(k) for k in instances.get(_template_key(entry), ())]
        elif not entry.optional or entry.name in have:
            out.append(entry.name)
    return out


def _template_key(template: Template) -> str:
    return template.pattern.replace("{}", "").strip("_")


def dtypes(artifact: str, header: Iterable[str]) -> dict[str, str]:
    """Schema dtype of every column of `header` that the artifact's schema knows (templates by pattern)."""
    fixed = {e.name: e.dtype for e in spec(artifact) if isinstance(e, Column)}
    templates = [e for e in spec(artifact) if isinstance(e, Template)]
    out = {}
    for name in header:
        if name in fixed:
            out[name] = fixed[name]
        else:
            match = next((t for t in templates if t.regex.match(name)), None)
            if match is not None:
                out[name] = match.dtype
    return out


def check_columns(artifact: str, names: Sequence[str], path: str = "") -> None:
    """Raise ArtifactError unless `names` are exactly the artifact's columns in order (templates by pattern)."""
    entries = spec(artifact)
    names = list(names)
    position = 0
    for entry in entries:
        if isinstance(entry, Template):
            while position < len(names) and entry.regex.match(names[position]):
                position += 1
            continue
        if entry.optional and (position >= len(names) or names[position] != entry.name):
            continue
        if position >= len(names) or names[position] != entry.name:
            expected = [e.name if isinstance(e, Column) else e.pattern for e in entries]
            missing = [c for c in expected if c not in names and "{}" not in c] or [entry.name]
            raise ArtifactError(
                artifact,
                path or artifact,
                missing,
                f"columns {names} are not the schema's {expected} (missing, renamed or out of order)",
            )
        position += 1
    if position != len(names):
        raise ArtifactError(artifact, path or artifact, names[position:], "column not in the schema")


# ----------------------------------------------------------------------------------------------------------------
# Reading and writing
# ----------------------------------------------------------------------------------------------------------------
def read_header(path: str | Path) -> list[str]:
    """The column names of a CSV file."""
    with open(path, encoding="utf-8") as handle:
        line = handle.readline()
    return list(pd.read_csv(io.StringIO(line), nrows=0).columns) if line.strip() else []


def read_artifact(
    path: str | Path,
    artifact: str,
    columns: Sequence[str] | None = None,
    *,
    categorical: bool | Sequence[str] = False,
    label: str | None = None,
    optional: Sequence[str] = (),
) -> pd.DataFrame:
    """Read an artifact with the schema's dtypes; only an empty cell is missing ("NA" is the sodium test code).

    columns: the columns to read, in this order (default: every column of the file, in file order). Each must be
    in the file: a missing or renamed one raises ArtifactError naming the artifact and the column (label: how the
    file is named in that error, default the path). optional: more columns read, after these, when the file has
    them (the SDTM record keys lbseq, aeseq). categorical: text columns as pandas Categoricals (True for all text
    columns, or the names of some).
    """
    path = Path(path)
    where = label or path.as_posix()
    header = read_header(path)
    known = dtypes(artifact, header)
    wanted = list(header) if columns is None else list(columns) + [c for c in optional if c in header]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ArtifactError(artifact, where, missing, "column missing from the file (renamed or not written)")
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise ArtifactError(artifact, where, unknown, "column not in the schema of this artifact")
    as_category = set(wanted) if categorical is True else set(categorical or ())
    read_types: dict[str, Any] = {}
    for name in wanted:
        kind = known[name]
        read_types[name] = "category" if kind == "text" and name in as_category else _READ_DTYPES[kind]
    bools = {n for n in wanted if known[n] in ("bool", "boolean")}
    frame = pd.read_csv(
        path,
        usecols=wanted,
        dtype={n: (t if n not in bools else "category") for n, t in read_types.items()},
        keep_default_na=False,
        na_values={c: [""] for c in wanted},
        engine="c",
    )
    for name in bools:
        frame[name] = _parse_bool(frame[name], known[name], artifact, where)
    return frame[wanted]


def _parse_bool(values: pd.Series, kind: str, artifact: str, where: str) -> pd.Series:
    """A True/False column read as a categorical (pandas may have parsed its categories as booleans already),
    parsed once per category."""
    categories = [str(c) for c in values.cat.categories]
    if any(c not in ("True", "False") for c in categories) or (kind == "bool" and values.isna().any()):
        raise ArtifactError(
            artifact, where, [str(values.name)], "a boolean column holds something else than True/False"
        )
    codes = values.cat.codes.to_numpy()
    truth = np.array([c == "True" for c in categories] + [False])
    parsed = truth[np.where(codes < 0, len(categories), codes)]
    if kind == "bool":
        return pd.Series(parsed, index=values.index, name=values.name)
    out = pd.Series(pd.array(parsed, dtype="boolean"), index=values.index, name=values.name)
    out[codes < 0] = pd.NA
    return out


def require(frame: pd.DataFrame, artifact: str, needed: Sequence[str], label: str | None = None) -> None:
    """Raise ArtifactError naming the artifact and each column of `needed` that the frame lacks."""
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ArtifactError(artifact, label or artifact, missing, "column missing (renamed or not written)")


def write_artifact(frame: pd.DataFrame, path: str | Path, artifact: str) -> None:
    """Write an artifact (k2trial.core.io.write_csv: deterministic and atomic) after checking its columns."""
    check_columns(artifact, [str(c) for c in frame.columns], Path(path).as_posix())
    write_csv(frame, path)


def read_artifacts(paths: Mapping[str, str | Path], **kwargs: Any) -> dict[str, pd.DataFrame]:
    """Several artifacts by key (each path's schema name from its location)."""
    return {key: read_artifact(path, artifact_name(path), **kwargs) for key, path in paths.items()}
