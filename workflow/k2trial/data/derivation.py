"""Analysis datasets derived from the clean tables: subjects, VAS (long format) and labs in standard units.

Inputs are clean tables as `k2trial.data.cleaning.read_clean_table` returns them (canonical text, ISO dates,
numbers as float64, missing = NaN). Outputs follow workflow/DATASETS.md (results/analysis/); every
function is vectorised over subjects (groupby/merge, no loop per subject or row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from k2trial.core import schema
from k2trial.core.errors import InputDataError
from k2trial.core.values import recorded_decimals, round_half_away, sort_by_subject, subject_order
from k2trial.core.vocabulary import COMPOSITE
from k2trial.data import contract as ct
from k2trial.data.contract import Contract


def _dates(values: pd.Series) -> pd.Series:
    """ISO dates to datetime64 (missing -> NaT), parsing each distinct date once."""
    codes, distinct = pd.factorize(values)
    parsed = pd.to_datetime(pd.Series(distinct, dtype=object), format="%Y-%m-%d", errors="coerce")
    parsed = np.append(parsed.to_numpy(dtype="datetime64[ns]"), np.datetime64("NaT", "ns"))  # code -1: missing
    return pd.Series(parsed[codes], index=values.index)


def _coded(values: pd.Series) -> pd.Categorical:
    """A text column as the categories of the values it holds: its own when read as categories (those no record uses
    dropped), else factorized once (in order of first appearance). Code -1: missing."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.array.remove_unused_categories()
    codes, distinct = pd.factorize(values.to_numpy(dtype=object))
    return pd.Categorical.from_codes(codes, categories=pd.Index(distinct, dtype=object))


def _per_code_categories(codes: np.ndarray, per_distinct: list[str]) -> pd.Categorical:
    """Per row, the text of its distinct value as categories (codes of _coded; -1, missing, stays missing)."""
    names = list(dict.fromkeys(per_distinct))
    table = np.array([*(names.index(t) for t in per_distinct), -1], dtype=np.int64)
    return pd.Categorical.from_codes(table[codes], categories=pd.Index(names, dtype=object))


def _per_code(codes: np.ndarray, per_distinct: list, dtype: object) -> np.ndarray:
    """Per row, the value of its distinct value (codes from pd.factorize; -1, missing, gives NaN)."""
    table = np.asarray([*per_distinct, np.nan], dtype=object)
    return table[codes].astype(dtype) if dtype is not object else table[codes]


# --------------------------------------------------------------------------------------------------
# VAS
# --------------------------------------------------------------------------------------------------
def composite_scores(diary: pd.DataFrame, symptoms: Sequence[str], require_all: bool) -> pd.DataFrame:
    """Composite VAS per subject and visit: the mean of `symptoms` (cm).

    require_all: missing when any of the symptoms is missing (no record or no value) at that visit;
    otherwise the mean of those present (missing when none is). One row per (subject, visit) that has
    any diary record. Columns subject_id, visit, aval.
    """
    rows = diary[diary["symptom"].isin(list(symptoms))]
    grouped = rows.groupby(["subject_id", "visit"], sort=False)["vas_cm"]
    summary = grouped.agg(["mean", "count"]).reset_index()
    visits = diary[["subject_id", "visit"]].drop_duplicates()
    summary = visits.merge(summary, on=["subject_id", "visit"], how="left")
    aval = summary["mean"].to_numpy(dtype=float)
    if require_all:
        aval = np.where(summary["count"].fillna(0).to_numpy() == len(symptoms), aval, np.nan)
    return pd.DataFrame({"subject_id": summary["subject_id"], "visit": summary["visit"], "aval": aval})


def derive_vas(diary: pd.DataFrame, contract: Contract, symptoms: Sequence[str], require_all: bool) -> pd.DataFrame:
    """vas.csv: one row per subject, parameter (the diary items, then the composite of `symptoms`; no composite when
    `symptoms` is empty: a single-item diary) and visit with a diary record.

    aval in the VAS unit; base = aval at baseline (week 0); chg = aval - base; pchg = 100 x chg / base, missing
    when base is 0 or missing. Sorted by subject, parameter (the protocol's item order, then composite), week.
    """
    symptom_rows = pd.DataFrame(
        {
            "subject_id": diary["subject_id"].to_numpy(dtype=object),
            "param": diary["symptom"].to_numpy(dtype=object),
            "visit": diary["visit"].to_numpy(dtype=object),
            "aval": diary["vas_cm"].to_numpy(dtype=float),
        }
    )
    pieces = [symptom_rows]
    if len(symptoms):
        composite = composite_scores(diary, symptoms, require_all)
        pieces.append(composite.assign(param=COMPOSITE)[["subject_id", "param", "visit", "aval"]])
    vas = pd.concat(pieces, ignore_index=True)
    labels = vas["visit"].to_numpy(dtype=object)
    vas["week"] = ct.visit_weeks(labels, contract)
    vas["visit"] = ct.visit_codes(labels, contract)
    baseline = vas.loc[vas["week"] == 0, ["subject_id", "param", "aval"]].rename(columns={"aval": "base"})
    vas = vas.merge(baseline, on=["subject_id", "param"], how="left", sort=False)
    vas["chg"] = vas["aval"] - vas["base"]
    base = vas["base"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        vas["pchg"] = np.where(base != 0, 100.0 * vas["chg"].to_numpy(dtype=float) / base, np.nan)
    params = [*contract.symptoms, COMPOSITE] if len(symptoms) else list(contract.symptoms)
    vas = sort_by_subject(vas, ct.category_order(vas["param"].to_numpy(dtype=object), params), vas["week"].to_numpy())
    return vas[schema.columns("analysis/vas")]


# --------------------------------------------------------------------------------------------------
# Subjects
# --------------------------------------------------------------------------------------------------
def capsule_counts(dosing: pd.DataFrame) -> pd.DataFrame:
    """Per subject: capsules dispensed and returned, summed over the dosing visits.

    capsules_returned is missing when any visit's count is missing (the total is then unknown).
    """
    grouped = dosing.groupby("subject_id", sort=False)
    counts = pd.DataFrame(
        {
            "capsules_dispensed": grouped["capsules_dispensed"].sum(min_count=1),
            "capsules_returned": grouped["capsules_returned"].sum(min_count=1),
        }
    )
    returned_missing = dosing["capsules_returned"].isna().groupby(dosing["subject_id"], sort=False).any()
    counts.loc[returned_missing.reindex(counts.index).to_numpy(), "capsules_returned"] = np.nan
    return counts.rename_axis("subject_id").reset_index()


def derive_subjects(
    subjects: pd.DataFrame,
    dosing: pd.DataFrame,
    diary: pd.DataFrame,
    doses_per_day: int | None,
    symptoms: Sequence[str],
    require_all: bool,
    contract: Contract,
    efficacy_week: int | None = None,
) -> pd.DataFrame:
    """subjects.csv: one row per subject with baseline characteristics, treatment, compliance and flags.

    bmi = weight_kg / (height_cm / 100)^2 (kg/m2). treatment_days = last_dose_date - first_dose_date + 1
    (days, both days dosed). capsules_expected = doses_per_day x treatment_days (missing without capsule counts:
    doses_per_day None, a study whose treatment is not capsules). compliance_pct =
    (dispensed - returned) / expected x 100 (missing when any term is). completed: status is completed.
    saffl: took any dose (first_dose_date present). efffl: the primary VAS (the composite of `symptoms`; the
    diary's single item when `symptoms` is empty) present at baseline and at `efficacy_week` (the end of treatment;
    None: the last diary week).
    """
    out = subjects.drop(columns=["raw_row"], errors="ignore").copy()
    out["bmi"] = out["weight_kg"] / (out["height_cm"] / 100.0) ** 2
    for column in (c.name for c in contract.tables["subjects.csv"].columns if c.type == "yes_no"):
        out[column] = out[column].to_numpy(dtype=object) == "yes"
    first, last = _dates(out["first_dose_date"]), _dates(out["last_dose_date"])
    out["treatment_days"] = ((last - first).dt.days + 1).astype(float)
    out = out.merge(capsule_counts(dosing), on="subject_id", how="left", sort=False)
    out["capsules_expected"] = (np.nan if doses_per_day is None else doses_per_day) * out["treatment_days"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["compliance_pct"] = (
            100.0 * (out["capsules_dispensed"] - out["capsules_returned"]) / out["capsules_expected"]
        )
    out["completed"] = out["status"].to_numpy(dtype=object) == "completed"
    out["saffl"] = out["first_dose_date"].notna().to_numpy()
    composite = composite_scores(diary, symptoms if len(symptoms) else contract.symptoms[:1], require_all)
    weeks = ct.visit_weeks(composite["visit"].to_numpy(dtype=object), contract)
    final_week = max(v.week for v in contract.diary_visits) if efficacy_week is None else int(efficacy_week)
    present = composite["aval"].notna().to_numpy()
    at_baseline = set(composite.loc[present & (weeks == 0), "subject_id"])
    at_end = set(composite.loc[present & (weeks == final_week), "subject_id"])
    out["efffl"] = out["subject_id"].isin(at_baseline & at_end).to_numpy()
    return sort_by_subject(out)[schema.columns("analysis/subjects")]


# --------------------------------------------------------------------------------------------------
# Labs
# --------------------------------------------------------------------------------------------------
#: The text columns of the clean labs table that derive_labs reads value by value (as object arrays of their
#: distinct values), so they may be given as categories (read_clean_table(..., categorical=...)).
LAB_TEXT_COLUMNS = ("subject_id", "visit", "sample_date", "test_code", "result", "unit")


def derive_labs(labs: pd.DataFrame, subjects: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """labs.csv: every clean lab record in the test's standard unit (config/lab_units.yaml), beside the value, unit
    and range as the laboratory reported them.

    reported_value / reported_unit / reported_ref_low / reported_ref_high: the result and the lab's range as
    reported (canonical unit spelling); a censored result ("<0.2", ">x") keeps its limit, never zero, with
    censored = True. aval = the value in the standard unit: a value reported in the standard unit keeps the
    precision it was reported with (ALT 23.5 U/L stays 23.5: nothing is rounded away); a converted value is
    reported value x unit factor rounded half away from zero to the test's decimals (the conversion creates digits
    nobody measured; the reported value beside it keeps what was measured). ref_low/ref_high: the lab's range by
    the same rule (missing when the lab gave none). base = the last non-missing aval on or before the first dose
    date (for a subject never dosed: the Baseline visit), baseline_record = True on the record it comes from (one
    per subject and test; a baseline sample dated after the first dose is no baseline); chg = aval - base, rounded
    to the decimals the two values carry (at least the test's decimals). lbseq: the record's SDTM LBSEQ, when the
    clean table has that column (a contract with the SDTM record key); otherwise the column is not written.
    """
    tests = contract.lab_tests
    # Work on integer codes of the few distinct tests, units, visits and subjects, not on millions of strings; the
    # text columns stay categories into labs.csv (written from their distinct values)
    tests_cat = _coded(labs["test_code"])
    test_codes, test_names = tests_cat.codes, [str(c) for c in tests_cat.categories]
    units_cat = _coded(labs["unit"])
    value, censored = ct.parse_lab_results(labs["result"])
    factor = ct.lab_factors(tests_cat, units_cat, contract)
    if np.isnan(factor).any():
        first = int(np.flatnonzero(np.isnan(factor))[0])
        raise InputDataError.at(
            "labs.csv",
            f"unit without a conversion factor for {labs['test_code'].iloc[first]} in config/lab_units.yaml",
            row=int(labs["raw_row"].iloc[first]) if "raw_row" in labs else None,
            column="unit",
            value=labs["unit"].iloc[first],
            rule="unit_not_allowed",
        )
    decimals = _per_code(test_codes, [tests[c].decimals for c in test_names], np.int64)
    converted = factor != 1.0

    def standard(values: np.ndarray) -> np.ndarray:
        """Values in the standard unit: as reported in it, else converted and rounded to the test's decimals."""
        return np.where(converted, round_half_away(values * factor, decimals), values)

    ref_low = labs["ref_low"].to_numpy(dtype=float)
    ref_high = labs["ref_high"].to_numpy(dtype=float)
    visits_cat = _coded(labs["visit"])
    # the columns as arrays, not a frame: sorted one at a time at the end, each released once its sorted copy is
    # made (a frame would hold all of them twice: 5.4 million rows at 100,000 subjects)
    out: dict[str, Any] = {
        "subject_id": _coded(labs["subject_id"]),
        "visit": ct.visit_codes(visits_cat, contract),
        "week": ct.visit_weeks(visits_cat, contract),
        "sample_date": _coded(labs["sample_date"]),
        "param": tests_cat,
        "aval": standard(value),
        "unit": _per_code_categories(test_codes, [tests[c].unit for c in test_names]),
        "ref_low": standard(ref_low),
        "ref_high": standard(ref_high),
        "reported_value": value,
        "reported_unit": units_cat,
        "reported_ref_low": ref_low,
        "reported_ref_high": ref_high,
        "censored": censored,
    }
    if "lbseq" in labs.columns:  # the SDTM record key (a study whose contract has it, e.g. SDTM input)
        lbseq = pd.to_numeric(labs["lbseq"]).to_numpy(dtype=float, na_value=np.nan)
        out["lbseq"] = pd.array(lbseq, dtype="Float64").astype("Int64")
    # subject codes 0..n-1, and n for a missing ID (a subject of its own, not in subjects.csv)
    subject_names = [str(c) for c in out["subject_id"].categories]
    subject_codes = np.where(out["subject_id"].codes < 0, len(subject_names), out["subject_id"].codes)
    subject_position = np.append(pd.Index(subjects["subject_id"].to_numpy(dtype=object)).get_indexer(subject_names), -1)
    first_dose = _dates(subjects["first_dose_date"]).to_numpy(dtype="datetime64[ns]")
    first_dose = np.append(first_dose, np.datetime64("NaT", "ns"))  # position -1: subject not in subjects
    sample = _dates(pd.Series(out["sample_date"])).to_numpy(dtype="datetime64[ns]")
    dosed = first_dose[subject_position][subject_codes]
    week = np.asarray(out["week"])
    aval = np.asarray(out["aval"], dtype=float)
    eligible = ~np.isnan(aval) & ((sample <= dosed) | (np.isnat(dosed) & (week == 0)))
    # base per (subject, test): the last eligible row by sample date (missing dates last), then week, then row
    # order; equal to a stable sort on those keys within each (subject, test) and keeping the last row.
    n_tests = len(test_names) + 1
    key = subject_codes.astype(np.int64) * n_tests + np.where(test_codes < 0, len(test_names), test_codes)
    rows = np.flatnonzero(eligible)
    sample_key = sample[rows].view(np.int64).copy()
    sample_key[np.isnat(sample[rows])] = np.iinfo(np.int64).max
    order = rows[np.lexsort((week[rows], sample_key, key[rows]))]
    last = order[np.append(key[order][1:] != key[order][:-1], True)] if len(order) else order
    base_of_key = np.full((len(subject_names) + 1) * n_tests, np.nan)
    base_of_key[key[last]] = aval[last]
    base = base_of_key[key]
    out["base"] = base
    carried = np.maximum(decimals, np.maximum(recorded_decimals(aval), recorded_decimals(base)))
    out["chg"] = round_half_away(aval - base, carried)
    baseline_record = np.zeros(len(aval), dtype=bool)
    baseline_record[last] = True
    out["baseline_record"] = baseline_record
    # sorted as sort_by_subject sorts (subject number, test in config order, week; stable)
    order = subject_order(out["subject_id"], ct.category_order(tests_cat, list(tests)), week)
    columns = schema.columns("analysis/labs", present=list(out))
    return pd.DataFrame({c: pd.Series(out.pop(c)).iloc[order].reset_index(drop=True) for c in columns}, copy=False)
