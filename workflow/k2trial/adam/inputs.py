"""From ADaM datasets back to the frames the efficacy and safety functions take (issue 16, item 3: the tables can be
computed from the ADaM datasets).

Each function reads only ADaM variables and the spec's codelists (whose `from` values are the artifacts' terms),
and returns a frame in the layout an analysis function reads, so that the pipeline's own functions compute the
tables from an ADaM delivery: k2trial.analysis.efficacy on `vas_from_adqs` and `assignment_from_adsl`,
k2trial.analysis.safety.lab_summaries.lab_shifts on `annotated_from_adlb`, lab_grades.ctcae_worst on
`grades_from_adlb`, adverse_events.ae_summary / ae_by_term on `listing_from_adae`. The frames may come from the
XPT or Dataset-JSON files (k2trial.data.sdtm.read_domain: dates then arrive as ISO text) or from the derivations
(dates as SAS day numbers); both are accepted.

ADaM selects the records: baseline = ABLFL = "Y", analysed post-baseline records = ANL01FL = "Y".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from k2trial.adam.common import iso_dates
from k2trial.adam.spec import AdamSpec
from k2trial.analysis.safety.lab_table import FLAGS, RANGE_SOURCES
from k2trial.analysis.safety.standards import LabStandards


def _iso(values: pd.Series) -> pd.Series:
    """Dates as ISO text ("" missing), from SAS day numbers or from text already ISO."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        return pd.Series([d or "" for d in iso_dates(values)], dtype="str")
    return values.astype(object).where(values.notna(), "").astype("str").reset_index(drop=True)


def _flag(values: pd.Series) -> np.ndarray:
    return values.astype("str").to_numpy() == "Y"


def _nullable_flag(values: pd.Series) -> pd.Series:
    """Y -> True, N -> False, "" -> missing (nullable boolean)."""
    text = values.astype("str").reset_index(drop=True)
    out = pd.Series(pd.array(text == "Y", dtype="boolean"))
    out[(text == "").to_numpy()] = pd.NA
    return out


def _subject_category(values: pd.Series, adsl: pd.DataFrame) -> pd.Categorical:
    """USUBJID as a categorical over the safety set in ADSL order (the subject codes of the safety functions)."""
    safety = adsl.loc[_flag(adsl["SAFFL"]), "USUBJID"].astype("str").tolist()
    return pd.Categorical(values.astype("str"), categories=safety)


# ----------------------------------------------------------------------------------------------------------------
# Efficacy
# ----------------------------------------------------------------------------------------------------------------
def assignment_from_adsl(adsl: pd.DataFrame, spec: AdamSpec) -> pd.DataFrame:
    """groups/assignment's membership columns (k2trial.analysis.groups.MEMBER_COLUMNS) from ADSL: efffl, the
    severity group (SEVGR1 back to the artifact's term) and the B12-deficient, diabetic and residual-B12 flags."""
    severity = spec.codelist_of("ADSL", "SEVGR1").source(adsl["SEVGR1"])
    return pd.DataFrame(
        {
            "subject_id": adsl["USUBJID"].astype("str").reset_index(drop=True),
            "efffl": pd.Series(_flag(adsl["EFFFL"])),
            "severity_group": pd.Series(severity.where(severity != "", None), dtype="string"),
            "b12_deficient": _nullable_flag(adsl["B12DEFFL"]),
            "diabetic": _nullable_flag(adsl["DIABFL"]),
            "residual_b12": _nullable_flag(adsl["RESB12FL"]),
        }
    )


def vas_from_adqs(adqs: pd.DataFrame, spec: AdamSpec) -> pd.DataFrame:
    """analysis/vas's columns (subject_id, param, visit, week, aval, base, chg, pchg) from the ADQS analysis records
    (ANL01FL = "Y"); param and visit are the artifact's codes of PARAMCD and AVISIT."""
    rows = adqs[_flag(adqs["ANL01FL"])].reset_index(drop=True)
    return pd.DataFrame(
        {
            "subject_id": rows["USUBJID"].astype("str"),
            "param": spec.codelist_of("ADQS", "PARAMCD").source(rows["PARAMCD"]),
            "visit": spec.codelist_of("ADQS", "AVISIT").source(rows["AVISIT"]),
            "week": rows["AVISITN"].to_numpy(dtype="float64").astype(np.int64),
            "aval": rows["AVAL"].to_numpy(dtype="float64"),
            "base": rows["BASE"].to_numpy(dtype="float64"),
            "chg": rows["CHG"].to_numpy(dtype="float64"),
            "pchg": rows["PCHG"].to_numpy(dtype="float64"),
        }
    )


# ----------------------------------------------------------------------------------------------------------------
# Safety
# ----------------------------------------------------------------------------------------------------------------
def subjects_from_adsl(adsl: pd.DataFrame, spec: AdamSpec) -> pd.DataFrame:
    """analysis/subjects' columns the safety functions read (lab_table.SUBJECT_INPUT_COLUMNS) from ADSL; pass the
    result through lab_table.prepare_subjects as the safety step does."""
    return pd.DataFrame(
        {
            "subject_id": adsl["USUBJID"].astype("str").reset_index(drop=True),
            "sex": spec.codelist_of("ADSL", "SEX").source(adsl["SEX"]),
            "age_years": adsl["AGE"].to_numpy(dtype="float64"),
            "anticoagulant": pd.Series(_flag(adsl["ANTICOFL"])),
            "saffl": pd.Series(_flag(adsl["SAFFL"])),
            "first_dose_date": _iso(adsl["TRTSDT"].reset_index(drop=True)),
            "last_dose_date": _iso(adsl["TRTEDT"].reset_index(drop=True)),
        }
    )


def _analysis_lab_records(adlb: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The baseline (ABLFL) and analysed post-baseline (ANL01FL) records, with the study week the safety functions
    expect: 0 for the baseline record, AVISITN for the others."""
    baseline = _flag(adlb["ABLFL"])
    keep = baseline | _flag(adlb["ANL01FL"])
    rows = adlb[keep].reset_index(drop=True)
    week = np.where(baseline[keep], 0, rows["AVISITN"].to_numpy(dtype="float64")).astype(np.int64)
    return rows, week


def annotated_from_adlb(adlb: pd.DataFrame, adsl: pd.DataFrame, standards: LabStandards,
                        spec: AdamSpec) -> pd.DataFrame:  # fmt: skip
    """The annotated lab table (lab_table.annotate_labs' layout) that lab_summaries.lab_shifts and lab_descriptives
    read, from ADLB: values, BASE/CHG, ANRLO/ANRHI, ANRIND as the flag, BNRIND as the baseline flag, ABLFL as the
    baseline record; baseline and analysed records only (ABLFL, ANL01FL). ADLB holds the standard unit only, so
    the reported value and limits are AVAL, ANRLO and ANRHI."""
    rows, week = _analysis_lab_records(adlb)
    visit_codes = spec.codelist_of("ADLB", "AVISIT").source(rows["AVISIT"])
    visits = list(dict.fromkeys(visit_codes.iloc[np.argsort(week, kind="stable")]))
    params = list(standards.all_params)
    units = dict(zip(params, standards.units(), strict=True))
    source = np.where(_flag(rows["ANRDEFFL"]), "default", "lab")
    return pd.DataFrame(
        {
            "subject_id": _subject_category(rows["USUBJID"], adsl),
            "param": pd.Categorical(rows["PARAMCD"].astype("str"), categories=params),
            "visit": pd.Categorical(visit_codes, categories=visits),
            "week": week,
            "sample_date": pd.Categorical(_iso(rows["ADT"])),
            "aval": rows["AVAL"].to_numpy(dtype="float64"),
            "unit": pd.Categorical(rows["PARAMCD"].astype("str").map(units)),
            "censored": _flag(rows["CENSFL"]),
            "ref_low": rows["ANRLO"].to_numpy(dtype="float64"),
            "ref_high": rows["ANRHI"].to_numpy(dtype="float64"),
            "range_source": pd.Categorical(source, categories=list(RANGE_SOURCES)),
            "flag": pd.Categorical(rows["ANRIND"].astype("str").replace("", None), categories=list(FLAGS)),
            "base": rows["BASE"].to_numpy(dtype="float64"),
            "chg": rows["CHG"].to_numpy(dtype="float64"),
            "baseline_flag": pd.Categorical(rows["BNRIND"].astype("str").replace("", None), categories=list(FLAGS)),
            "category": pd.Categorical([None] * len(rows), categories=[]),
            "baseline_record": _flag(rows["ABLFL"]),
            "reported_value": rows["AVAL"].to_numpy(dtype="float64"),
            "reported_low": rows["ANRLO"].to_numpy(dtype="float64"),
            "reported_high": rows["ANRHI"].to_numpy(dtype="float64"),
        }
    )


def grades_from_adlb(adlb: pd.DataFrame, adsl: pd.DataFrame, standards: LabStandards) -> pd.DataFrame:
    """CTCAE grades in the layout of safety/ctcae_grades that lab_grades.ctcae_worst reads (subject_id, param, term,
    week, grade, baseline_record): one row per baseline or analysed record and graded direction (ATOXDSCL/ATOXGRL,
    ATOXDSCH/ATOXGRH); ABLFL marks the baseline record (week 0)."""
    rows, week = _analysis_lab_records(adlb)
    parts = []
    for suffix in ("L", "H"):
        grade = pd.to_numeric(rows[f"ATOXGR{suffix}"].astype("str").replace("", None), errors="raise")
        graded = grade.notna().to_numpy()
        parts.append(
            pd.DataFrame(
                {
                    "subject_id": rows["USUBJID"].astype("str").to_numpy()[graded],
                    "param": rows["PARAMCD"].astype("str").to_numpy()[graded],
                    "term": rows[f"ATOXDSC{suffix}"].astype("str").to_numpy()[graded],
                    "week": week[graded],
                    "grade": pd.array(grade.to_numpy(dtype="float64")[graded].astype(np.int64), dtype="Int64"),
                    "baseline_record": _flag(rows["ABLFL"])[graded],
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    out["subject_id"] = _subject_category(out["subject_id"], adsl)
    out["term"] = pd.Categorical(out["term"], categories=list(dict.fromkeys(t.term for t in standards.terms)))
    return out


def listing_from_adae(adae: pd.DataFrame, spec: AdamSpec) -> pd.DataFrame:
    """The adverse-event listing's columns that adverse_events.ae_summary and ae_by_term read, from ADAE: the flags
    TRTEMFL, AREL, AEWITHFL, SAFFL, severity, seriousness and causality back in the artifact's terms."""
    rows = adae.reset_index(drop=True)
    return pd.DataFrame(
        {
            "subject_id": rows["USUBJID"].astype("str"),
            "term": rows["AETERM"].astype("str"),
            "onset_date": _iso(rows["ASTDT"]),
            "end_date": _iso(rows["AENDT"]),
            "severity": spec.codelist_of("ADAE", "ASEV").source(rows["ASEV"]),
            "serious": spec.codelist_of("ADAE", "AESER").source(rows["AESER"]),
            "related": spec.codelist_of("ADAE", "AEREL").source(rows["AEREL"]),
            "related_to_treatment": pd.Series(spec.codelist_of("ADAE", "AREL").source(rows["AREL"]) == "true"),
            "action": rows["AEACN"].astype("str"),
            "leading_to_withdrawal": pd.Series(_flag(rows["AEWITHFL"])),
            "outcome": rows["AEOUT"].astype("str"),
            "treatment_emergent": pd.Series(_flag(rows["TRTEMFL"])),
            "in_safety_set": pd.Series(_flag(rows["SAFFL"])),
        }
    )
