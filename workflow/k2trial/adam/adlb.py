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
    coded_text,
    codes_in,
    flag_where,
    from_adsl,
    group_codes,
    number,
    problem,
    relative_day,
    sas_dates,
    shared_keys,
    sort_rows,
    take,
    text_of_codes,
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
    subject = group_codes(rows["subject_id"])
    week = np.nan_to_num(rows["week"].to_numpy(dtype="float64"), nan=-1.0)
    test = codes_in(rows["param"], standards.lab_params)
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
    annotated = annotated[codes_in(annotated["param"], [standards.egfr.param]) < 0].reset_index(drop=True)
    safety_ids = prepared.loc[prepared["saffl"].to_numpy(dtype=bool), "subject_id"].astype("str").tolist()
    subject = codes_in(rows["subject_id"], safety_ids)
    test = codes_in(rows["param"], standards.lab_params)
    week = np.nan_to_num(rows["week"].to_numpy(dtype="float64"), nan=-1.0)
    keep = np.flatnonzero(subject >= 0)
    order = keep[np.lexsort((week[keep], test[keep], subject[keep]))]
    chosen = rows.iloc[order].reset_index(drop=True)
    params = list(standards.all_params)

    def same_text(ours: pd.Series, theirs: pd.Series, names: list[str]) -> bool:
        """The same text row by row (both columns coded in `names`, every value one of them)."""
        a, b = codes_in(ours, names), codes_in(theirs, names)
        return bool(np.array_equal(a, b) and (a >= 0).all())

    same = (
        len(chosen) == len(annotated)
        and same_text(chosen["subject_id"], annotated["subject_id"], safety_ids)
        and same_text(chosen["param"], annotated["param"], params)
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
    terms = list(direction_of)
    term = codes_in(rows["term"], terms)
    unknown = term < 0
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise problem(GRADES, row, "term", str(rows["term"].iloc[row]), f"term not graded by the CTCAE "
                      f"v{standards.ctcae_version} criteria", "adam_term")  # fmt: skip
    in_direction = np.array([direction_of[t] == direction for t in terms] + [False])
    rows = rows[in_direction[term]].reset_index(drop=True)
    if "lbseq" in rows.columns and "LBSEQ" in records.columns:
        pairs = [(rows["subject_id"], records["USUBJID"]), (number(rows["lbseq"]), records["LBSEQ"])]
    else:
        pairs = [(rows["subject_id"], records["USUBJID"]), (rows["param"], records["param"]),
                 (rows["visit"], records["visit"]), (number(rows["week"]), records["AVISITN"])]  # fmt: skip
    # one integer key per grade and per record (text compared as text, numbers as numbers)
    key, at = shared_keys(pairs)
    twice = pd.Series(key).duplicated().to_numpy()
    if twice.any():
        row = int(np.flatnonzero(twice)[0])
        raise problem(GRADES, row, "term", None, f"two {direction} grades for one lab record", "adam_key")
    position = pd.Index(key).get_indexer(at)
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
    key, _ = pd.factorize(group_codes(out["USUBJID"], out["PARAMCD"]))
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


def _at(values: pd.Series, row: np.ndarray) -> pd.Series:
    """Per record, the text of the record at `row` ("" where row < 0), as coded text."""
    coded = coded_text(values)
    codes = coded.cat.codes.to_numpy()
    picked = np.where(row >= 0, codes[np.maximum(row, 0)], -1) if len(row) else np.zeros(0, dtype=np.int64)
    return text_of_codes(picked, coded.cat.categories.tolist())


def _shift(baseline: pd.Series, value: pd.Series, where: np.ndarray) -> pd.Series:
    """ "<baseline> to <value>" where `where` holds, "" elsewhere (coded text: each pair of values written once)."""
    before, after = coded_text(baseline), coded_text(value)
    names_before, names_after = before.cat.categories.tolist(), after.cat.categories.tolist()
    pair = before.cat.codes.to_numpy().astype(np.int64) * len(names_after) + after.cat.codes.to_numpy()
    texts = [f"{b} to {a}" for b in names_before for a in names_after]
    return text_of_codes(np.where(where, pair, -1), texts)


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
    out["USUBJID"] = coded_text(rows["subject_id"])
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
    out["ANRDEFFL"] = flag_where(codes_in(annotated["range_source"], DEFAULT_RANGE_SOURCES) >= 0)
    out["ANRIND"] = coded_text(
        codelist(DATASET, "ANRIND").recode(annotated["flag"], artifact="annotated labs", column="flag")
    )

    # CTCAE grades (ctcae_grades.csv), low and high direction
    param = coded_text(rows["param"])
    keys = {"USUBJID": out["USUBJID"], "LBSEQ": out["LBSEQ"], "param": param,
            "visit": coded_text(rows["visit"]), "AVISITN": out["AVISITN"]}  # fmt: skip
    records = pd.DataFrame(keys)
    if "lbseq" not in rows.columns:
        records = records.drop(columns="LBSEQ")
    toxgr = codelist(DATASET, "ATOXGRL")
    for direction, suffix in (("low", "L"), ("high", "H")):
        terms = _terms(standards, direction)
        out[f"ATOXDSC{suffix}"] = text_of_codes(param.cat.codes, [terms.get(p, "") for p in param.cat.categories])
        grade = _grades_by_record(grades, records, standards, direction)
        out[f"ATOXGR{suffix}"] = coded_text(toxgr.recode(grade, artifact=GRADES.label, column="grade"))

    # baseline record, baseline indicator and grades, shift
    baseline_row = _baseline_flag(out, adsl_values["TRTSDT"])
    _check_baseline(out, baseline_row)
    out["ABLFL"] = flag_where(np.arange(len(baseline_row)) == baseline_row)
    out["BNRIND"] = _at(out["ANRIND"], baseline_row)
    out["BTOXGRL"] = _at(out["ATOXGRL"], baseline_row)
    out["BTOXGRH"] = _at(out["ATOXGRH"], baseline_row)
    post = out["AVISITN"].to_numpy(dtype="float64") > 0
    both = post & (out["BNRIND"] != "").to_numpy() & (out["ANRIND"] != "").to_numpy()
    out["SHIFT1"] = _shift(out["BNRIND"], out["ANRIND"], both)

    # analysis and on-treatment records
    out["ANL01FL"] = flag_where(post & out["AVAL"].notna().to_numpy())
    adt = out["ADT"].to_numpy(dtype="float64")
    window = float(spec.parameter("ontrt_window_days"))
    start, end = adsl_values["TRTSDT"].to_numpy(dtype="float64"), adsl_values["TRTEDT"].to_numpy(dtype="float64")
    out["ONTRTFL"] = flag_where(post & (adt >= start) & (adt <= end + window))
    return assemble(spec, spec.dataset(DATASET), sort_rows(out, "PARAMN", "AVISITN", "ADT", "LBSEQ"))
