"""Safety analysis: the clinical conclusion per lab param and the whole set of safety tables in one call.

`analyse_safety` runs every safety table from the analysis datasets (labs.csv, subjects.csv) and the clean
adverse-event table; `safety_conclusion` states, per param, whether a clinically significant abnormality
emerged on treatment, with the rule text, for the published-claims check. Laboratory details: the annotated lab
table (lab_table), its summaries (lab_summaries), CTCAE grades (lab_grades, with the criteria of the configured
version), liver screens (hepatic), paired tests (lab_tests); adverse events: adverse_events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from k2trial.analysis.safety import adverse_events as ae
from k2trial.analysis.safety import hepatic, lab_grades, lab_summaries, lab_table, lab_tests
from k2trial.analysis.safety.lab_table import FLAGS, LabArrays
from k2trial.analysis.safety.standards import LabStandard, LabStandards
from k2trial.core import schema
from k2trial.core.errors import ConfigError
from k2trial.core.values import compare
from k2trial.data.contract import TableSpec

#: Output tables of `analyse_safety`, in the order they are written (file = name + ".csv").
SAFETY_TABLES = (
    "lab_flags",
    "lab_descriptives",
    "lab_shifts",
    "lab_categories",
    "ctcae_grades",
    "ctcae_worst",
    "hys_law",
    "edish",
    "lab_paired_tests",
    "ae_summary",
    "ae_by_term",
    "ae_listing",
    "safety_conclusion",
)
#: How many subject IDs the conclusion lists as evidence.
EVIDENCE_SUBJECTS = 10


@dataclass(frozen=True)
class SafetySettings:
    """Choices of config.yaml `safety` and `b12_status` (see the schema for meanings)."""

    hys_law_window_days: int
    treatment_emergent_window_days: int
    ctcae_version: str
    grade_with_default_ranges: bool
    significant_grade: int
    related_levels: tuple[str, ...]
    withdrawal_actions: tuple[str, ...]
    paired_visits: tuple[str, str]
    confidence: float
    exact_below: int
    b12_test: str
    b12_deficient_below: float
    b12_adequate_from: float

    @classmethod
    def from_config(cls, safety: Mapping[str, Any], b12_status: Mapping[str, Any]) -> SafetySettings:
        visits = tuple(safety["paired_visits"])
        return cls(
            hys_law_window_days=int(safety["hys_law_window_days"]),
            treatment_emergent_window_days=int(safety["treatment_emergent_window_days"]),
            ctcae_version=str(safety["ctcae_version"]),
            grade_with_default_ranges=bool(safety["grade_with_default_ranges"]),
            significant_grade=int(safety["significant_grade"]),
            related_levels=tuple(safety["related_levels"]),
            withdrawal_actions=tuple(safety["withdrawal_actions"]),
            paired_visits=(str(visits[0]), str(visits[1])),
            confidence=float(safety["confidence"]),
            exact_below=int(safety["exact_below"]),
            b12_test=str(b12_status["test"]),
            b12_deficient_below=float(b12_status["deficient_below"]),
            b12_adequate_from=float(b12_status["adequate_from"]),
        )


def _shift_rule_text(test: LabStandard) -> str:
    high = f"> ULN x {1 + test.shift_margin:g}"
    low = f"< LLN x {1 - test.shift_margin:g}"
    beyond = {"high": high, "low": low, "both": f"{low} or {high}"}[test.direction]
    return f"a shift from NORMAL at baseline to a value {beyond}"


def _subject_list(ids: np.ndarray, chosen: np.ndarray) -> str:
    picked = ids[np.flatnonzero(chosen)]
    text = " ".join(picked[:EVIDENCE_SUBJECTS])
    return text + (f" (+{len(picked) - EVIDENCE_SUBJECTS} more)" if len(picked) > EVIDENCE_SUBJECTS else "")


def safety_conclusion(
    annotated: pd.DataFrame,
    grades: pd.DataFrame,
    hys_law: pd.DataFrame,
    subjects: pd.DataFrame,
    standards: LabStandards,
    *,
    significant_grade: int,
    hys_law_window_days: int = 0,
) -> pd.DataFrame:
    """Whether a clinically significant abnormality emerged on treatment (safety/safety_conclusion).

    Per lab param (scope "lab", lab order; PT and INR have their own rows, panel coagulation) a subject counts
    when, after baseline, (a) a CTCAE grade >= significant_grade is reached that is higher than the grade of the
    baseline record (no graded baseline = grade 0), or (b) the flag of the baseline record was NORMAL and a value
    lies beyond the crossed limit by more than the test's margin (value as reported against the limit in its unit),
    in a direction that matters for the test. Then a row for the Hy's law screen (scope "hys_law") and an overall
    row (scope "overall", param "ALL": any of the above). n_subjects: safety-set subjects with an on-treatment
    value; `subjects` lists the first IDs counted; n_default_range_grades: the param's grades (all visits and terms)
    that rest on a default reference range (ctcae_grades.csv default_range); ctcae_version: the criteria graded.
    """
    arr = LabArrays(annotated, standards, subjects)
    ids = np.array(arr.subject_ids, dtype=object)
    params = list(standards.all_params)
    version = standards.ctcae_version
    baseline_grade, worst_grade = lab_grades.subject_term_grades(grades, standards, arr.n_subjects)
    default_grades = grades.loc[grades["default_range"].to_numpy(dtype=bool), "param"].astype("str").value_counts()
    baseline_flag = np.full(arr.size, -1, dtype=np.int64)
    at_bl = arr.is_baseline & (arr.flag >= 0)
    baseline_flag[arr.key[at_bl]] = arr.flag[at_bl]
    normal = FLAGS.index("NORMAL")
    any_significant = np.zeros(arr.n_subjects, bool)
    any_value = np.zeros(arr.n_subjects, bool)
    rows = []
    for index, test in enumerate(standards.tests):
        on_treatment = arr.rows_of(index)
        on_treatment = on_treatment[arr.post[on_treatment] & ~np.isnan(arr.aval[on_treatment])]
        has_value = np.zeros(arr.n_subjects, bool)
        has_value[arr.s[on_treatment]] = True
        any_value |= has_value
        term_indices = [i for i, t in enumerate(standards.terms) if t.param == test.code]
        new_grade = np.zeros(arr.n_subjects, bool)
        worst = -1
        for i in term_indices:
            new_grade |= (worst_grade[i] >= significant_grade) & (worst_grade[i] > np.maximum(baseline_grade[i], 0))
            worst = max(worst, int(worst_grade[i].max(initial=-1)))
        value = arr.value[on_treatment]
        beyond = np.zeros(len(on_treatment), bool)
        if test.direction in ("high", "both"):
            beyond |= compare(value, arr.uln[on_treatment] * (1 + test.shift_margin), ">")
        if test.direction in ("low", "both"):
            beyond |= compare(value, arr.lln[on_treatment] * (1 - test.shift_margin), "<")
        from_normal = baseline_flag[arr.key[on_treatment]] == normal
        shifted = np.zeros(arr.n_subjects, bool)
        shifted[arr.s[on_treatment[from_normal & beyond]]] = True
        significant = new_grade | shifted
        any_significant |= significant
        terms = "; ".join(standards.terms[i].term for i in term_indices)
        n_default = int(default_grades.get(test.code, 0))
        grade_rule = (
            f"a CTCAE v{version} grade >= {significant_grade} above the baseline grade ({terms})"
            if term_indices
            else f"(no CTCAE v{version} laboratory term)"
        )
        on_default = f"; {n_default} grade(s) rest on a default reference range" if n_default else ""
        joiner = " or " if term_indices else " "
        rows.append(
            {
                "scope": "lab",
                "param": test.code,
                "name": test.name,
                "panel": test.panel,
                "unit": test.unit,
                "n_subjects": int(has_value.sum()),
                "worst_grade": worst if worst >= 0 else None,
                "n_new_grade": int(new_grade.sum()),
                "n_significant_shift": int(shifted.sum()),
                "n_significant": int(significant.sum()),
                "significant": bool(significant.any()),
                "n_default_range_grades": n_default,
                "ctcae_version": version,
                "subjects": _subject_list(ids, significant),
                "rule": f"On treatment: {grade_rule}{joiner}{_shift_rule_text(test)}{on_default}",
            }
        )
    hys = np.isin(ids, hys_law["subject_id"].to_numpy(dtype=object))
    rule = standards.hys_law
    liver_value = np.zeros(arr.n_subjects, bool)
    for code in (*rule.aminotransferases, rule.bilirubin):
        liver_rows = arr.rows_of(params.index(code))
        liver_value[arr.s[liver_rows[arr.post[liver_rows] & ~np.isnan(arr.aval[liver_rows])]]] = True
    window = "the same visit" if hys_law_window_days == 0 else f"{hys_law_window_days} days"
    rows.append(
        {
            "scope": "hys_law",
            "param": "HYS_LAW",
            "name": "Potential Hy's law case",
            "panel": standards.test(rule.bilirubin).panel,
            "unit": "x ULN",
            "n_subjects": int(liver_value.sum()),
            "worst_grade": None,
            "n_new_grade": 0,
            "n_significant_shift": 0,
            "n_significant": int(hys.sum()),
            "significant": bool(hys.any()),
            "n_default_range_grades": 0,
            "ctcae_version": version,
            "subjects": _subject_list(ids, hys),
            "rule": f"On treatment: {rule.describe()}, within {window} (FDA 2009)",
        }
    )
    any_significant |= hys
    rows.append(
        {
            "scope": "overall",
            "param": "ALL",
            "name": "Any laboratory parameter or Hy's law",
            "panel": "all",
            "unit": "",
            "n_subjects": int(any_value.sum()),
            "worst_grade": max((r["worst_grade"] for r in rows if r["worst_grade"] is not None), default=None),
            "n_new_grade": 0,
            "n_significant_shift": 0,
            "n_significant": int(any_significant.sum()),
            "significant": bool(any_significant.any()),
            "n_default_range_grades": int(default_grades.sum()),
            "ctcae_version": version,
            "subjects": _subject_list(ids, any_significant),
            "rule": "Any of the rows above",
        }
    )
    out = pd.DataFrame(rows, columns=schema.columns("safety/safety_conclusion"))
    out["worst_grade"] = out["worst_grade"].astype("Int64")
    overall = out["scope"].eq("overall")
    out.loc[overall, "n_new_grade"] = int(out.loc[out["scope"].eq("lab"), "n_new_grade"].sum())
    out.loc[overall, "n_significant_shift"] = int(out.loc[out["scope"].eq("lab"), "n_significant_shift"].sum())
    return out


def analyse_safety(
    labs: pd.DataFrame,
    subjects: pd.DataFrame,
    adverse_events: pd.DataFrame,
    standards: LabStandards,
    settings: SafetySettings,
    adverse_events_spec: TableSpec,
) -> dict[str, pd.DataFrame]:
    """Every safety table (SAFETY_TABLES) from labs.csv, subjects.csv and the clean adverse_events.csv (whose
    contract table is `adverse_events_spec`).

    The overall row's n_new_grade and n_significant_shift are sums over params (a subject may count twice);
    its n_significant counts subjects once.
    """
    prepared = lab_table.prepare_subjects(subjects)
    n_safety = int(prepared["saffl"].sum())
    annotated = lab_table.annotate_labs(
        labs,
        prepared,
        standards,
        b12_deficient_below=settings.b12_deficient_below,
        b12_adequate_from=settings.b12_adequate_from,
        b12_test=settings.b12_test,
    )
    del labs  # every table is made from the annotated rows: labs.csv as read need not stay in memory (when the
    # caller keeps no reference either: 5.4 million rows at 100,000 subjects)
    if standards.ctcae_version != settings.ctcae_version:
        raise ConfigError(
            f"config safety.ctcae_version is {settings.ctcae_version}, but the CTCAE criteria given are of version "
            f"{standards.ctcae_version}"
        )
    grades = lab_grades.ctcae_grades(
        annotated, prepared, standards, use_default_ranges=settings.grade_with_default_ranges
    )
    hys = hepatic.hys_law_cases(annotated, prepared, standards, window_days=settings.hys_law_window_days)
    listing = ae.adverse_event_listing(
        adverse_events,
        prepared,
        related_levels=settings.related_levels,
        withdrawal_actions=settings.withdrawal_actions,
        spec=adverse_events_spec,
        window_days=settings.treatment_emergent_window_days,
    )
    tables = {
        "lab_flags": lab_table.flagged_values(annotated, standards, settings.b12_test),
        "lab_descriptives": lab_summaries.lab_descriptives(annotated, standards),
        "lab_shifts": lab_summaries.lab_shifts(annotated, prepared, standards),
        "lab_categories": lab_summaries.lab_category_counts(annotated, standards, settings.b12_test),
        "ctcae_grades": grades,
        "ctcae_worst": lab_grades.ctcae_worst(grades, standards),
        "hys_law": hys,
        "edish": hepatic.edish(annotated, prepared, standards),
        "lab_paired_tests": lab_tests.lab_paired_tests(
            annotated,
            standards,
            visit_from=settings.paired_visits[0],
            visit_to=settings.paired_visits[1],
            confidence=settings.confidence,
            exact_below=settings.exact_below,
        ),
        "ae_summary": ae.ae_summary(
            listing,
            n_safety,
            related_levels=settings.related_levels,
            withdrawal_actions=settings.withdrawal_actions,
            window_days=settings.treatment_emergent_window_days,
        ),
        "ae_by_term": ae.ae_by_term(listing, n_safety),
        "ae_listing": listing,
        "safety_conclusion": safety_conclusion(
            annotated,
            grades,
            hys,
            prepared,
            standards,
            significant_grade=settings.significant_grade,
            hys_law_window_days=settings.hys_law_window_days,
        ),
    }
    return {name: tables[name] for name in SAFETY_TABLES}
