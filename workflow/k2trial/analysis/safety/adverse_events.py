"""Adverse events: listing of every reported event, summary of the treatment-emergent ones (subjects with any,
related, severe, serious, leading to withdrawal) and their counts by term.

Input: results/clean/adverse_events.csv (raw columns with canonical values and `raw_row`; zero rows means no
adverse events were reported). Denominators are the safety set (subjects who took any dose); events of subjects
outside it are listed but not counted. "Related" and "leading to withdrawal" follow configured lists
(config.yaml safety.related_levels, safety.withdrawal_actions); action text is compared ignoring case and
spacing.

Treatment-emergent (CLINICAL.md): onset on or after the first dose and up to the last dose + a configured window
(config safety.treatment_emergent_window_days); an event without a (readable) onset date counts as treatment-emergent
(conservative); a subject without a last dose date (still on treatment) has no upper limit. The summary and the
by-term table count treatment-emergent events only; the listing keeps every event with `treatment_emergent`
true/false, and the summary's last row counts the events left out.

Text from the data (terms, actions, outcomes) is carried as data; k2trial.core.io.write_csv neutralises cells a
spreadsheet would run as formulas.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from k2trial.core import schema
from k2trial.core.errors import InputDataError, Problem
from k2trial.core.values import as_bool, subject_numbers
from k2trial.data.contract import TableSpec

NO_EVENTS_TERM = "No adverse events reported"
#: The ae_summary category of subjects with any treatment-emergent adverse event.
ANY_EVENT = "any"
#: The ae_summary category of the events that are not treatment-emergent (listed, not counted in the other rows).
NOT_TREATMENT_EMERGENT = "not_treatment_emergent"


def _normalise_text(values: pd.Series) -> pd.Series:
    return values.fillna("").astype("str").str.strip().str.casefold().str.replace(r"\s+", " ", regex=True)


def adverse_event_listing(
    adverse_events: pd.DataFrame,
    subjects: pd.DataFrame,
    *,
    related_levels: Sequence[str],
    withdrawal_actions: Sequence[str],
    spec: TableSpec,
    window_days: int,
    label: str = "adverse_events.csv",
) -> pd.DataFrame:
    """One row per reported event with derived flags (artifact safety/ae_listing).

    adverse_events: the clean table (k2trial.data.cleaning.read_clean_table; `spec` its contract table: columns,
    required ones, severity levels). subjects: output of k2trial.analysis.safety.lab_table.prepare_subjects.
    study_day = onset - first dose + 1 on or after the first dose, onset - first dose before it (no day 0); empty
    without a first dose. treatment_emergent: onset on or after the first dose and on or before the last dose +
    `window_days` (no upper limit without a last dose date), or no readable onset date (conservative); False for a
    subject never dosed. aeseq: the clean table's `aeseq` (SDTM input) where known, else empty; arm: subjects'
    `arm` where the study has arms, else empty (a single-arm study has none). Sorted by subject number, onset date,
    term, raw_row. Raises InputDataError for a missing required column, a subject not in subjects.csv or a severity
    that is not a level of the contract.
    """
    missing = [c.name for c in spec.columns if c.required and c.name not in adverse_events.columns]
    if missing:
        raise InputDataError(
            [Problem(label, None, c, None, "required_column", "error", f"column '{c}' is missing") for c in missing]
        )
    severities = spec.column("severity").levels
    ae = adverse_events.copy()
    for column in spec.column_names:
        if column not in ae.columns:
            ae[column] = ""
    if "raw_row" not in ae.columns:
        ae["raw_row"] = np.arange(len(ae)) + 2
    for column in spec.column_names:
        ae[column] = ae[column].fillna("").astype("str").str.strip()
    known = subjects.set_index("subject_id")
    unknown = ~ae["subject_id"].isin(known.index)
    bad_severity = ~ae["severity"].isin(severities)
    problems = [
        Problem(label, int(r), "subject_id", v, "known_subject", "error", "subject not in subjects.csv")
        for r, v in zip(ae.loc[unknown, "raw_row"], ae.loc[unknown, "subject_id"], strict=True)
    ] + [
        Problem(label, int(r), "severity", v, "severity_levels", "error", f"severity must be one of {severities}")
        for r, v in zip(ae.loc[bad_severity, "raw_row"], ae.loc[bad_severity, "severity"], strict=True)
    ]
    if problems:
        raise InputDataError(problems)

    first_dose = pd.to_datetime(ae["subject_id"].map(known["first_dose_date"]), errors="coerce")
    last_dose = pd.to_datetime(ae["subject_id"].map(known["last_dose_date"]), errors="coerce")
    onset = pd.to_datetime(ae["onset_date"], errors="coerce", format="%Y-%m-%d")
    window_end = last_dose + pd.Timedelta(days=int(window_days))
    emergent = (onset >= first_dose) & ((onset <= window_end) | window_end.isna())
    emergent = (emergent | onset.isna()) & first_dose.notna()
    aeseq = pd.to_numeric(ae["aeseq"], errors="coerce") if "aeseq" in ae.columns else pd.Series(np.nan, index=ae.index)
    arm = ae["subject_id"].map(known["arm"]).fillna("") if "arm" in known.columns else pd.Series("", index=ae.index)
    days = (onset - first_dose).dt.days
    study_day = days.where(days < 0, days + 1).astype("Int64")
    related_set = {level.casefold() for level in related_levels}
    withdrawal_set = {" ".join(a.casefold().split()) for a in withdrawal_actions}
    listing = pd.DataFrame(
        {
            "subject_id": ae["subject_id"],
            "aeseq": aeseq.astype("Int64"),
            "arm": arm.astype("str"),
            "raw_row": pd.to_numeric(ae["raw_row"], errors="coerce").astype("Int64"),
            "term": ae["term"],
            "onset_date": ae["onset_date"],
            "end_date": ae["end_date"],
            "study_day": study_day,
            "severity": ae["severity"],
            "serious": ae["serious"],
            "related": ae["related"],
            "related_to_treatment": _normalise_text(ae["related"]).isin(related_set),
            "action": ae["action"],
            "leading_to_withdrawal": _normalise_text(ae["action"]).isin(withdrawal_set),
            "outcome": ae["outcome"],
            "treatment_emergent": emergent.fillna(False).astype(bool),
            "in_safety_set": ae["subject_id"].map(known["saffl"]).fillna(False).astype(bool),
        },
        columns=schema.columns("safety/ae_listing"),
    )
    listing["_number"] = subject_numbers(listing["subject_id"])
    listing = listing.sort_values(["_number", "onset_date", "term", "raw_row"], kind="mergesort")
    return listing.drop(columns="_number").reset_index(drop=True)


def _is_serious(listing: pd.DataFrame) -> pd.Series:
    return pd.Series(as_bool(listing["serious"]), index=listing.index)


def _treatment_emergent_events(listing: pd.DataFrame) -> pd.DataFrame:
    """The listing's treatment-emergent events of safety-set subjects (what the tables count)."""
    keep = listing["in_safety_set"].to_numpy(dtype=bool) & listing["treatment_emergent"].to_numpy(dtype=bool)
    return listing.loc[keep]


def ae_summary(
    listing: pd.DataFrame,
    n_safety: int,
    *,
    related_levels: Sequence[str],
    withdrawal_actions: Sequence[str],
    window_days: int,
) -> pd.DataFrame:
    """Subjects (n, % of the safety set) and events per category of the treatment-emergent events: any, related,
    severe, serious, leading to withdrawal; then the events of the safety set that are not treatment-emergent (listed,
    not counted above). With no treatment-emergent events every count of them is zero and `note` says so.
    """
    in_safety = listing.loc[listing["in_safety_set"].to_numpy(dtype=bool)]
    events = _treatment_emergent_events(listing)
    window = f"onset on or after the first dose and up to {int(window_days)} days after the last dose"
    categories = [
        (
            ANY_EVENT,
            f"Any treatment-emergent adverse event ({window}; no onset date counts)",
            np.ones(len(events), bool),
        ),
        (
            "related",
            f"Treatment-emergent, causality {', '.join(related_levels)}",
            events["related_to_treatment"].to_numpy(bool),
        ),
        ("severe", "Treatment-emergent, severity severe", events["severity"].eq("severe").to_numpy()),
        ("serious", "Treatment-emergent, serious", _is_serious(events).to_numpy()),
        (
            "leading_to_withdrawal",
            f"Treatment-emergent, action: {'; '.join(withdrawal_actions)}",
            events["leading_to_withdrawal"].to_numpy(bool),
        ),
    ]
    if len(events):
        note = ""
    elif len(in_safety):
        note = f"No treatment-emergent adverse events in the safety set (N = {n_safety})"
    else:
        note = f"No adverse events reported in the safety set (N = {n_safety})"
    outside = ~in_safety["treatment_emergent"].to_numpy(dtype=bool)
    rows = []
    parts = [(c, d, events, s) for c, d, s in categories]
    parts.append(
        (NOT_TREATMENT_EMERGENT, "Adverse events not treatment-emergent (onset before the first dose or more than "
         f"{int(window_days)} days after the last dose): listed, not counted above", in_safety, outside)
    )  # fmt: skip
    for category, description, frame, selected in parts:
        n_subjects = int(frame.loc[selected, "subject_id"].nunique())
        rows.append(
            {
                "category": category,
                "description": description,
                "n_subjects": n_subjects,
                "percent": 100.0 * n_subjects / n_safety if n_safety else np.nan,
                "n_events": int(selected.sum()),
                "denominator": int(n_safety),
                "note": note,
            }
        )
    return pd.DataFrame(rows, columns=schema.columns("safety/ae_summary"))


def ae_by_term(listing: pd.DataFrame, n_safety: int) -> pd.DataFrame:
    """Subjects and treatment-emergent events per term in the safety set (terms grouped ignoring case and spacing;
    the first spelling in alphabetical order is shown), with subjects having a related, severe, serious or
    withdrawal event of that term. Sorted by subjects, then events (descending), then term. With no
    treatment-emergent events: one row "No adverse events reported" with zero counts.
    """
    events = _treatment_emergent_events(listing).copy()
    columns = schema.columns("safety/ae_by_term")
    if events.empty:
        return pd.DataFrame([{"term": NO_EVENTS_TERM, **{c: 0 for c in columns[1:]}}], columns=columns).assign(
            percent=0.0 if n_safety else np.nan, denominator=int(n_safety)
        )
    events["_key"] = _normalise_text(events["term"])
    events["_serious"] = _is_serious(events)
    events["_severe"] = events["severity"].eq("severe")

    def subjects_with(column: str) -> pd.Series:
        return events.loc[events[column]].groupby("_key")["subject_id"].nunique()

    grouped = events.groupby("_key")
    table = pd.DataFrame(
        {
            "term": grouped["term"].min(),
            "n_subjects": grouped["subject_id"].nunique(),
            "n_events": grouped.size(),
        }
    )
    for column, name in (
        ("related_to_treatment", "n_subjects_related"),
        ("_severe", "n_subjects_severe"),
        ("_serious", "n_subjects_serious"),
        ("leading_to_withdrawal", "n_subjects_leading_to_withdrawal"),
    ):
        table[name] = subjects_with(column).reindex(table.index).fillna(0).astype(np.int64)
    table["percent"] = 100.0 * table["n_subjects"] / n_safety if n_safety else np.nan
    table["denominator"] = int(n_safety)
    table = table.sort_values(["n_subjects", "n_events", "term"], ascending=[False, False, True], kind="mergesort")
    return table.reset_index(drop=True)[columns]
