"""Adverse-event tables (k2trial.analysis.safety.adverse_events) and the escaping of hostile text in their CSV files."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from k2trial.analysis.safety import adverse_events as ae
from k2trial.analysis.safety.lab_table import prepare_subjects
from k2trial.core import schema
from k2trial.core.errors import InputDataError
from k2trial.core.io import csv_bytes
from k2trial.data.contract import read_contract

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "safety" / "planted"
RELATED = ("possible", "probable", "definite")
WITHDRAWAL = ("drug withdrawn", "drug discontinued")
WINDOW_DAYS = 30
#: The clean adverse-event table of the contract (raw_row, then the codebook's columns).
SPEC = read_contract(ROOT / "data/raw/codebook.yaml", ROOT / "config/lab_units.yaml").tables["adverse_events.csv"]
AE_COLUMNS = ["raw_row", *SPEC.column_names]


def read(name: str) -> pd.DataFrame:
    return pd.read_csv(FIXTURE / name, keep_default_na=False, na_values=[""], dtype={"subject_id": "str"})


@pytest.fixture(scope="module")
def subjects() -> pd.DataFrame:
    return prepare_subjects(read("subjects.csv"))


def listing_of(events: pd.DataFrame, subjects: pd.DataFrame) -> pd.DataFrame:
    return ae.adverse_event_listing(
        events, subjects, related_levels=RELATED, withdrawal_actions=WITHDRAWAL, spec=SPEC, window_days=WINDOW_DAYS
    )


def summary_of(listing: pd.DataFrame, n: int) -> pd.DataFrame:
    summary = ae.ae_summary(listing, n, related_levels=RELATED, withdrawal_actions=WITHDRAWAL, window_days=WINDOW_DAYS)
    return summary.set_index("category")


def test_tables_on_the_fixture_with_a_serious_event_and_a_withdrawal(subjects):
    listing = listing_of(read("adverse_events.csv").astype("str"), subjects)
    # 6 subjects in the safety set (K2-007 never dosed)
    summary = summary_of(listing, 6)
    assert summary.loc["any", ["n_subjects", "n_events"]].tolist() == [3, 4]
    assert summary.loc["any", "percent"] == 50.0
    assert summary.loc["related", ["n_subjects", "n_events"]].tolist() == [1, 1]  # epistaxis, possible
    assert summary.loc["severe", ["n_subjects", "n_events"]].tolist() == [2, 2]  # epistaxis, headache
    assert summary.loc["serious", ["n_subjects", "n_events"]].tolist() == [1, 1]
    assert summary.loc["leading_to_withdrawal", ["n_subjects", "n_events"]].tolist() == [1, 1]
    assert summary.loc["leading_to_withdrawal", "percent"] == pytest.approx(100 / 6)
    assert (summary["denominator"] == 6).all() and (summary["note"] == "").all()
    assert list(summary.index) == ["any", "related", "severe", "serious", "leading_to_withdrawal",
                                   "not_treatment_emergent"]  # fmt: skip
    assert summary.loc["not_treatment_emergent", ["n_subjects", "n_events"]].tolist() == [0, 0]

    by_term = ae.ae_by_term(listing, 6)
    assert by_term["term"].tolist() == ["Nausea", "Epistaxis", "Headache"]  # "nausea" grouped with "Nausea"
    nausea = by_term.iloc[0]
    assert (nausea.n_subjects, nausea.n_events, nausea.n_subjects_severe) == (1, 2, 0)
    epistaxis = by_term.iloc[1]
    assert (epistaxis.n_subjects_serious, epistaxis.n_subjects_related, epistaxis.n_subjects_leading_to_withdrawal) == (
        1,
        1,
        1,
    )

    assert listing["subject_id"].tolist() == ["K2-002", "K2-003", "K2-003", "K2-005"]
    assert list(listing.columns) == schema.columns("safety/ae_listing")
    assert list(listing.columns[:3]) == ["subject_id", "aeseq", "arm"]  # the names issue 15 reads
    assert listing["aeseq"].isna().all() and (listing["arm"] == "").all()  # not known here; a single arm
    epi = listing.iloc[0]
    # first dose 2013-01-14, onset 2013-03-08: day 54
    assert (epi.study_day, epi.related_to_treatment, epi.leading_to_withdrawal, epi.treatment_emergent) == (
        54,
        True,
        True,
        True,
    )


def test_no_adverse_events_gives_zero_counts_that_say_so(subjects):
    empty = pd.DataFrame(columns=AE_COLUMNS)
    listing = listing_of(empty, subjects)
    assert listing.empty and list(listing.columns) == schema.columns("safety/ae_listing")
    summary = summary_of(listing, 6)
    assert (summary["n_subjects"] == 0).all() and (summary["n_events"] == 0).all()
    assert (summary["percent"] == 0.0).all() and (summary["denominator"] == 6).all()
    assert (summary["note"] == "No adverse events reported in the safety set (N = 6)").all()
    by_term = ae.ae_by_term(listing, 6)
    assert by_term.to_dict("records") == [
        {
            "term": "No adverse events reported",
            "n_subjects": 0,
            "percent": 0.0,
            "n_events": 0,
            "n_subjects_related": 0,
            "n_subjects_severe": 0,
            "n_subjects_serious": 0,
            "n_subjects_leading_to_withdrawal": 0,
            "denominator": 6,
        }
    ]


def event(subject: str, term: str, onset: str = "2013-02-01", **extra) -> dict:
    row = dict.fromkeys(AE_COLUMNS, "")
    row.update(
        raw_row="2", subject_id=subject, term=term, onset_date=onset, severity="mild", serious="no", related="unlikely"
    )
    row.update(extra)
    return row


def test_tables_count_treatment_emergent_events_only(subjects):
    # K2-001: first dose 2013-01-10, last dose 2013-03-06 (56 days); window 30 days after the last dose: 2013-04-05
    events = pd.DataFrame(
        [
            event("K2-001", "Pruritus", onset="2013-01-09", severity="severe", serious="yes"),  # the day before dose 1
            event("K2-001", "Rash", onset="2013-01-10"),  # the first dose day: treatment-emergent
            event("K2-001", "Cough", onset="2013-04-05"),  # last dose + 30 days: still treatment-emergent
            event("K2-001", "Cold", onset="2013-04-06", related="possible"),  # last dose + 31 days: not
            event("K2-004", "Headache", onset=""),  # no onset date: counted (conservative)
        ]
    )
    listing = listing_of(events, subjects).set_index("term")
    assert listing["treatment_emergent"].to_dict() == {
        "Pruritus": False, "Rash": True, "Cough": True, "Cold": False, "Headache": True,
    }  # fmt: skip
    summary = summary_of(listing.reset_index(), 6)
    assert summary.loc["any", ["n_subjects", "n_events"]].tolist() == [2, 3]
    assert "up to 30 days after the last dose" in summary.loc["any", "description"]
    # the severe, serious pruritus and the possibly related cold are not treatment-emergent: not counted
    assert summary.loc["severe", "n_events"] == 0 and summary.loc["serious", "n_events"] == 0
    assert summary.loc["related", "n_events"] == 0
    assert summary.loc["not_treatment_emergent", ["n_subjects", "n_events"]].tolist() == [1, 2]
    by_term = ae.ae_by_term(listing.reset_index(), 6)
    assert sorted(by_term["term"]) == ["Cough", "Headache", "Rash"]
    only_before = summary_of(listing_of(events.iloc[:1], subjects), 6)
    assert only_before.loc["any", "n_events"] == 0
    assert only_before.loc["any", "note"] == "No treatment-emergent adverse events in the safety set (N = 6)"


def test_action_text_ignores_case_and_spacing_but_not_meaning(subjects):
    events = pd.DataFrame(
        [
            event("K2-001", "Rash", action="  DRUG   Withdrawn "),
            event("K2-004", "Rash", action="drug not withdrawn"),
            event("K2-001", "Pruritus", onset="2013-01-09", related="Probable"),  # the day before the first dose
        ]
    )
    listing = listing_of(events, subjects).set_index("term")
    assert listing["leading_to_withdrawal"].tolist() == [False, True, False]  # sorted: Pruritus, Rash, Rash
    pruritus = listing.loc["Pruritus"]
    assert (pruritus.study_day, pruritus.treatment_emergent, pruritus.related_to_treatment) == (-1, False, True)


def test_unknown_subject_names_the_raw_row(subjects):
    with pytest.raises(InputDataError, match=r"row 7.*subject not in subjects.csv"):
        listing_of(pd.DataFrame([event("K2-099", "Rash", raw_row="7")]), subjects)


def test_events_of_subjects_outside_the_safety_set_are_listed_not_counted(subjects):
    listing = listing_of(pd.DataFrame([event("K2-007", "Rash")]), subjects)
    assert listing["in_safety_set"].tolist() == [False]
    assert summary_of(listing, 6).loc["any", "n_subjects"] == 0


HOSTILE = {
    '=HYPERLINK("http://evil.example","click")': '\'=HYPERLINK("http://evil.example","click")',
    "+SUM(1,2)": "'+SUM(1,2)",
    "-2+3": "'-2+3",
    "@cmd": "'@cmd",
    "<script>alert(1)</script>": "<script>alert(1)</script>",  # plain text in a CSV; HTML escaping is issue 5's
}


def test_hostile_terms_cannot_run_as_spreadsheet_formulas(subjects):
    events = pd.DataFrame([event("K2-001", term, action=term) for term in HOSTILE])
    listing = listing_of(events, subjects)
    for table in (listing, ae.ae_by_term(listing, 6)):
        records = list(csv.DictReader(io.StringIO(csv_bytes(table).decode("utf-8"))))
        written = {r["term"] for r in records}
        assert written == set(HOSTILE.values())
        assert not any(r["term"].startswith(("=", "+", "-", "@")) for r in records)
    actions = {r["action"] for r in csv.DictReader(io.StringIO(csv_bytes(listing).decode("utf-8")))}
    assert actions == set(HOSTILE.values())
