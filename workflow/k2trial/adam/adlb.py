"""ADLB: laboratory values in BDS form, one record per safety-set subject, parameter and analysis visit, from
results/analysis/labs.csv, the CTCAE grades of results/safety/ctcae_grades.csv and ADSL.

Reads top to bottom like the ADLB part of config/adam/spec.yaml. The reference range in force, the range
indicator and whether the range is a configured default are those of the safety analysis itself: this module runs
the safety step's own `k2trial.analysis.safety.lab_table.annotate_labs` on labs.csv (with config/lab_standards.yaml),
so ANRLO/ANRHI/ANRIND are exactly what the shift tables and grades were computed from. The grades are read from
ctcae_grades.csv, never recomputed. The baseline record (ABLFL) is the record labs.csv's `base` comes from (last
value on or before the first dose); BNRIND and BTOXGRL/H are that record's indicator and grades (CLINICAL.md: one
baseline everywhere).

Columns read (declared below; the one place to adapt when the artifacts change): labs.csv LABS (+ `lbseq` when
present), subjects.csv lab_table.SUBJECT_INPUT_COLUMNS, ctcae_grades.csv GRADES (+ `lbseq` when present: then
grades are matched on subject and LBSEQ instead of subject, param, visit and week). Issue 12/15 add the CTCAE
version, a default-range flag and `lbseq` to ctcae_grades.csv; only `lbseq` is used here (the version is a
delivery parameter, the default-range flag ANRDEFFL comes from the annotated table).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from k2trial.adam.common import (
    Needs,
    assemble,
    flag_where,
    from_adsl,
    number,
    problem,
    relative_day,
    sas_dates,
    sort_rows,
    take,
    text,
)
from k2trial.adam.spec import AdamSpec
from k2trial.analysis.safety import lab_table
from k2trial.analysis.safety.standards import LabStandards
from k2trial.core.errors import ConfigError

DATASET = "ADLB"
LABS = Needs("analysis/labs", required=lab_table.LAB_INPUT_COLUMNS, optional=("lbseq",))
SUBJECTS = Needs("analysis/subjects", required=lab_table.SUBJECT_INPUT_COLUMNS)
GRADES = Needs(
    "safety/ctcae_grades", required=("subject_id", "param", "visit", "week", "term", "grade"), optional=("lbseq",)
)
ADSL_VARIABLES = ("STUDYID", "TRT01P", "TRT01A", "SAFFL", "TRTSDT", "TRTEDT")
#: annotate_labs range sources that mean a configured default limit is in force.
DEFAULT_RANGE_SOURCES = ("default", "lab+default")


def lab_sequence(rows: pd.DataFrame, standards: LabStandards) -> pd.Series:
    """LBSEQ: `lbseq` when labs.csv has it; otherwise 1, 2, ... within each subject ordered by study week, then test
    in config/lab_units.yaml order (the order of the clean labs table, which the SDTM writer numbers)."""
    if "lbseq" in rows.columns:
        return number(rows["lbseq"])
    subject, _ = pd.factorize(rows["subject_id"].astype(object))
    week = np.nan_to_num(rows["week"].to_numpy(dtype="float64"), nan=-1.0)
    test = pd.Index(standards.lab_params).get_indexer(rows["param"].astype(object))
    order = np.lexsort((np.arange(len(rows)), test, week, subject))
    sorted_subject = subject[order]
    starts = np.r_[True, sorted_subject[1:] != sorted_subject[:-1]] if len(order) else np.zeros(0, bool)
    first = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0)) if len(order) else starts
    seq = np.empty(len(rows), dtype="float64")
    seq[order] = np.arange(len(order)) - first + 1
    return pd.Series(seq)


def _annotated_lab_rows(rows: pd.DataFrame, subjects: pd.DataFrame, standards: LabStandards):
    """(rows of labs.csv of the safety set, the annotated table's rows for them), aligned row by row.

    annotate_labs keeps the safety set and sorts by subject, test (lab_units order), week (stable); the same order
    is applied to labs.csv here and checked value by value, so a change of that order is an error, not a silent
    misalignment."""
    prepared = lab_table.prepare_subjects(subjects)
    # b12_test "" switches the B12 category off: ADLB does not carry it (it is a category of lab_categories.csv).
    annotated = lab_table.annotate_labs(
        rows, prepared, standards, b12_deficient_below=np.nan, b12_adequate_from=np.nan, b12_test="",
        label=LABS.label,
    )  # fmt: skip
    annotated = annotated[annotated["param"].astype("str") != standards.egfr.param].reset_index(drop=True)
    safety_ids = prepared.loc[prepared["saffl"].to_numpy(dtype=bool), "subject_id"].astype("str").tolist()
    subject = pd.Index(safety_ids).get_indexer(rows["subject_id"].astype(object))
    test = pd.Index(standards.lab_params).get_indexer(rows["param"].astype(object))
    week = np.nan_to_num(rows["week"].to_numpy(dtype="float64"), nan=-1.0)
    keep = np.flatnonzero(subject >= 0)
    order = keep[np.lexsort((week[keep], test[keep], subject[keep]))]
    chosen = rows.iloc[order].reset_index(drop=True)
    same = (
        len(chosen) == len(annotated)
        and np.array_equal(chosen["subject_id"].astype("str"), annotated["subject_id"].astype("str"))
        and np.array_equal(chosen["param"].astype("str"), annotated["param"].astype("str"))
        and np.array_equal(chosen["aval"].to_numpy(dtype="float64"), annotated["aval"].to_numpy(dtype="float64"),
                           equal_nan=True)
    )  # fmt: skip
    if not same:
        raise ValueError("ADLB: the annotated lab table is not in the order of labs.csv (subject, test, week)")
    return chosen, annotated


def _terms(standards: LabStandards, direction: str) -> dict[str, str]:
    """Param -> the CTCAE term graded in one direction; two terms for one param and direction are a ConfigError."""
    out: dict[str, str] = {}
    for term in standards.terms:
        if term.direction != direction:
            continue
        if term.param in out:
            raise ConfigError(
                f"CTCAE v{standards.ctcae_version} criteria: {term.param} has two terms for a {direction} value "
                f"({out[term.param]}, {term.term}); ADLB holds one (ATOXDSC{direction[0].upper()})"
            )
        out[term.param] = term.term
    return out


def _grades_by_record(grades: pd.DataFrame, records: pd.DataFrame, standards: LabStandards, direction: str):
    """The grade (float, NaN = none) of each record's term in one direction, from ctcae_grades.csv."""
    rows = take(grades, GRADES)
    direction_of = {t.term: t.direction for t in standards.terms}
    term = rows["term"].astype("str")
    unknown = ~term.isin(list(direction_of))
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise problem(GRADES, row, "term", term.iloc[row], f"term not graded by the CTCAE v{standards.ctcae_version} "
                      "criteria", "adam_term")  # fmt: skip
    rows = rows[(term.map(direction_of) == direction).to_numpy()]
    if "lbseq" in rows.columns and "LBSEQ" in records.columns:
        theirs = [rows["subject_id"].astype("str"), number(rows["lbseq"])]
        ours = [records["USUBJID"], records["LBSEQ"]]
    else:
        theirs = [rows["subject_id"].astype("str"), rows["param"].astype("str"), rows["visit"].astype("str"),
                  number(rows["week"])]  # fmt: skip
        ours = [records["USUBJID"], records["param"], records["visit"], records["AVISITN"]]
    key = pd.MultiIndex.from_arrays([pd.Series(c).reset_index(drop=True) for c in theirs])
    if key.has_duplicates:
        row = int(np.flatnonzero(key.duplicated())[0])
        raise problem(GRADES, row, "term", None, f"two {direction} grades for one lab record", "adam_key")
    at = pd.MultiIndex.from_arrays([pd.Series(c).reset_index(drop=True) for c in ours])
    position = key.get_indexer(at)
    matched = np.zeros(len(key), bool)
    matched[position[position >= 0]] = True
    if not matched.all():
        row = int(np.flatnonzero(~matched)[0])
        raise problem(GRADES, row, "subject_id", rows["subject_id"].iloc[row], "grade without a record in labs.csv "
                      "(safety set)", "adam_record")  # fmt: skip
    grade = number(rows["grade"]).to_numpy()
    return pd.Series(np.where(position >= 0, grade[np.maximum(position, 0)], np.nan), dtype="float64")


def _baseline_flag(out: dict[str, pd.Series], trtsdt: pd.Series) -> np.ndarray:
    """Position of the ABLFL record of each row's subject and parameter (-1 none): the last record with AVAL
    sampled on or before TRTSDT, by ADT, then AVISITN, then LBSEQ."""
    adt = out["ADT"].to_numpy(dtype="float64")
    eligible = out["AVAL"].notna().to_numpy() & (adt <= trtsdt.to_numpy(dtype="float64"))
    key, _ = pd.factorize(pd.MultiIndex.from_arrays([out["USUBJID"], out["PARAMCD"]]))
    rows = np.flatnonzero(eligible)
    order = rows[np.lexsort((out["LBSEQ"].to_numpy()[rows], out["AVISITN"].to_numpy()[rows], adt[rows], key[rows]))]
    last = order[np.r_[key[order][1:] != key[order][:-1], True]] if len(order) else order
    baseline_of_key = np.full(int(key.max(initial=-1)) + 1, -1, dtype=np.int64)
    baseline_of_key[key[last]] = last
    return baseline_of_key[key] if len(key) else np.zeros(0, np.int64)


def _check_baseline(out: dict[str, pd.Series], baseline_row: np.ndarray) -> None:
    """BASE (labs.csv) must be the AVAL of the ABLFL record; ValueError names the first disagreement."""
    aval = out["AVAL"].to_numpy(dtype="float64")
    expected = np.where(baseline_row >= 0, aval[np.maximum(baseline_row, 0)], np.nan)
    base = out["BASE"].to_numpy(dtype="float64")
    bad = ~((np.isnan(expected) & np.isnan(base)) | (expected == base))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"ADLB: BASE of {out['USUBJID'].iloc[i]} {out['PARAMCD'].iloc[i]} is {base[i]}, the ABLFL record's AVAL "
            f"{expected[i]}: labs.csv's baseline rule and the ABLFL derivation disagree"
        )


def _at(values: pd.Series, row: np.ndarray, missing: str = "") -> pd.Series:
    """Per record, the value of the record at `row` (missing where row < 0)."""
    picked = values.to_numpy(dtype=object)[np.maximum(row, 0)] if len(row) else np.zeros(0, dtype=object)
    return pd.Series(np.where(row >= 0, picked, missing), dtype="str")


def derive_adlb(
    labs: pd.DataFrame,
    subjects: pd.DataFrame,
    grades: pd.DataFrame,
    adsl: pd.DataFrame,
    standards: LabStandards,
    spec: AdamSpec,
) -> pd.DataFrame:
    """ADLB from labs.csv, subjects.csv, ctcae_grades.csv (as read by k2trial.core.schema.read_artifact), ADSL and the
    lab standards (k2trial.analysis.safety.standards.load_lab_standards), sorted by subject number, PARAMN,
    AVISITN, ADT, LBSEQ (the order of labs.csv). Parameter `ontrt_window_days` of the spec sets ONTRTFL."""
    every_row = take(labs, LABS)
    sequence = lab_sequence(every_row, standards)
    every_row = every_row.assign(_lbseq=sequence.to_numpy())
    rows, annotated = _annotated_lab_rows(every_row, take(subjects, SUBJECTS), standards)
    codelist = spec.codelist_of
    adsl_values = from_adsl(adsl, rows["subject_id"], ADSL_VARIABLES, LABS)

    out: dict[str, pd.Series] = {}
    # identifiers, treatment and population
    out["STUDYID"] = adsl_values["STUDYID"]
    out["USUBJID"] = text(rows["subject_id"])
    out["LBSEQ"] = number(rows["_lbseq"])
    out["TRTP"] = adsl_values["TRT01P"]
    out["TRTA"] = adsl_values["TRT01A"]
    out["SAFFL"] = adsl_values["SAFFL"]

    # parameter, visit, date
    out["PARAMCD"] = codelist(DATASET, "PARAMCD").recode(rows["param"], artifact=LABS.label, column="param")
    out["PARAM"] = codelist(DATASET, "PARAMCD").decode(out["PARAMCD"])
    out["PARAMN"] = codelist(DATASET, "PARAMCD").position(out["PARAMCD"])
    out["AVISIT"] = codelist(DATASET, "AVISIT").recode(rows["visit"], artifact=LABS.label, column="visit")
    out["AVISITN"] = number(rows["week"])
    out["ADT"] = sas_dates(rows["sample_date"], LABS, "sample_date")
    out["ADY"] = relative_day(out["ADT"], adsl_values["TRTSDT"])

    # values and the range in force (the safety analysis' annotated table)
    out["AVAL"] = number(rows["aval"])
    out["CENSFL"] = flag_where(rows["censored"].to_numpy(dtype=bool))
    out["BASE"] = number(rows["base"])
    out["CHG"] = number(rows["chg"])
    out["ANRLO"] = number(annotated["ref_low"])
    out["ANRHI"] = number(annotated["ref_high"])
    out["ANRDEFFL"] = flag_where(annotated["range_source"].astype("str").isin(DEFAULT_RANGE_SOURCES).to_numpy())
    out["ANRIND"] = codelist(DATASET, "ANRIND").recode(annotated["flag"], artifact="annotated labs", column="flag")

    # CTCAE grades (ctcae_grades.csv), low and high direction
    keys = {"USUBJID": out["USUBJID"], "LBSEQ": out["LBSEQ"], "param": text(rows["param"]),
            "visit": text(rows["visit"]), "AVISITN": out["AVISITN"]}  # fmt: skip
    records = pd.DataFrame(keys)
    if "lbseq" not in rows.columns:
        records = records.drop(columns="LBSEQ")
    toxgr = codelist(DATASET, "ATOXGRL")
    for direction, suffix in (("low", "L"), ("high", "H")):
        terms = _terms(standards, direction)
        out[f"ATOXDSC{suffix}"] = text(rows["param"].astype("str").map(terms))
        grade = _grades_by_record(grades, records, standards, direction)
        out[f"ATOXGR{suffix}"] = toxgr.recode(grade, artifact=GRADES.label, column="grade")

    # baseline record, baseline indicator and grades, shift
    baseline_row = _baseline_flag(out, adsl_values["TRTSDT"])
    _check_baseline(out, baseline_row)
    out["ABLFL"] = flag_where(np.arange(len(baseline_row)) == baseline_row)
    out["BNRIND"] = _at(out["ANRIND"], baseline_row)
    out["BTOXGRL"] = _at(out["ATOXGRL"], baseline_row)
    out["BTOXGRH"] = _at(out["ATOXGRH"], baseline_row)
    post = out["AVISITN"].to_numpy(dtype="float64") > 0
    both = post & (out["BNRIND"] != "").to_numpy() & (out["ANRIND"] != "").to_numpy()
    out["SHIFT1"] = text(pd.Series(np.where(both, out["BNRIND"] + " to " + out["ANRIND"], "")))

    # analysis and on-treatment records
    out["ANL01FL"] = flag_where(post & out["AVAL"].notna().to_numpy())
    adt = out["ADT"].to_numpy(dtype="float64")
    window = float(spec.parameter("ontrt_window_days"))
    start, end = adsl_values["TRTSDT"].to_numpy(dtype="float64"), adsl_values["TRTEDT"].to_numpy(dtype="float64")
    out["ONTRTFL"] = flag_where(post & (adt >= start) & (adt <= end + window))
    return assemble(spec, spec.dataset(DATASET), sort_rows(out, "PARAMN", "AVISITN", "ADT", "LBSEQ"))
