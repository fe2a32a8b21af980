"""ADSL: one record per subject, from results/analysis/subjects.csv and results/groups/assignment.csv.

Reads top to bottom like the ADSL part of config/adam/spec.yaml: identifiers, demographics, treatment (arms and
dates), population flags, disposition, etiology and subgroups, baseline characteristics. Every value is the
pipeline's own (Predecessor) or a stated recoding of it; nothing is re-derived here that an earlier step derives.

Arms: a single-arm study has no `arm` column in subjects.csv; every subject then gets the spec's `study.arm`
(ARMCD) and the actual arm is that arm for the treated (SAFFL = Y). When subjects.csv carries `arm` and
`actual_arm` (randomised designs, SDTM input: DM.ARMCD and DM.ACTARMCD), they are used instead and ITTFL marks the
subjects with a planned arm.
"""

from __future__ import annotations

import pandas as pd

from k2trial.adam.common import Needs, assemble, constant, number, problem, sas_dates, sort_rows, take, text
from k2trial.adam.spec import AdamSpec

DATASET = "ADSL"
SUBJECTS = Needs(
    "analysis/subjects",
    required=(
        "subject_id", "site", "sex", "age_years", "weight_kg", "height_cm", "bmi", "diabetes_duration_years",
        "metformin", "prior_b12_therapy", "anticoagulant", "consent_date", "first_dose_date", "last_dose_date",
        "treatment_days", "status", "withdrawal_reason", "completed", "saffl", "efffl",
    ),
    optional=("arm", "actual_arm", "withdrawal_reason_code"),
)  # fmt: skip
ASSIGNMENT = Needs(
    "groups/assignment",
    required=("subject_id", "etiology", "b12_deficient", "diabetic", "residual_b12", "severity_group"),
)


def _assignment_rows(assignment: pd.DataFrame, subject_ids: pd.Series) -> pd.DataFrame:
    """The assignment rows in the order of `subject_ids`; a subject without one raises AdamDataError."""
    position = pd.Index(assignment["subject_id"].astype("str")).get_indexer(subject_ids)
    if (position < 0).any():
        row = int((position < 0).nonzero()[0][0])
        raise problem(SUBJECTS, row, "subject_id", subject_ids.iloc[row], "subject has no row in groups/assignment.csv",
                      "adam_subject")  # fmt: skip
    return assignment.iloc[position].reset_index(drop=True)


def derive_adsl(subjects: pd.DataFrame, assignment: pd.DataFrame | None, spec: AdamSpec) -> pd.DataFrame:
    """ADSL from subjects.csv and assignment.csv (as read by k2trial.core.schema.read_artifact), one row per subject
    in subject-number order, variables as the spec lists them (not yet conformed: see k2trial.adam.write).
    assignment None: a safety-only study, no groups (the spec without the variables sourced from them:
    AdamSpec.for_sources)."""
    subj = take(subjects, SUBJECTS)
    duplicated = subj["subject_id"].duplicated()
    if duplicated.any():
        row = int(duplicated.to_numpy().nonzero()[0][0])
        raise problem(SUBJECTS, row, "subject_id", subj["subject_id"].iloc[row], "subject listed twice", "adam_key")
    ids = text(subj["subject_id"])
    asg = None if assignment is None else _assignment_rows(take(assignment, ASSIGNMENT), ids)
    n = len(subj)

    def recode(variable: str, needs: Needs, frame: pd.DataFrame, column: str) -> pd.Series:
        codelist = spec.codelist_of(DATASET, variable)
        return codelist.recode(frame[column], artifact=needs.label, column=column)

    out: dict[str, pd.Series] = {}
    # identifiers and demographics
    out["STUDYID"] = constant(spec.studyid, n)
    out["USUBJID"] = ids
    out["SUBJID"] = ids
    out["SITEID"] = text(subj["site"])
    out["AGE"] = number(subj["age_years"])
    out["AGEU"] = text(pd.Series(["YEARS"] * n).where(out["AGE"].notna(), ""))
    out["SEX"] = recode("SEX", SUBJECTS, subj, "sex")

    # treatment: planned and actual arm, one period
    saffl = recode("SAFFL", SUBJECTS, subj, "saffl")
    arms = spec.codelist_of(DATASET, "ARMCD")
    if "arm" in subj.columns:
        out["ARMCD"] = arms.recode(subj["arm"], artifact=SUBJECTS.label, column="arm")
    else:
        out["ARMCD"] = constant(str(spec.study["arm"]), n)
    out["ARM"] = arms.decode(out["ARMCD"])
    if "actual_arm" in subj.columns:
        out["ACTARMCD"] = arms.recode(subj["actual_arm"], artifact=SUBJECTS.label, column="actual_arm")
    else:
        out["ACTARMCD"] = out["ARMCD"].where(saffl == "Y", "")
    out["ACTARM"] = arms.decode(out["ACTARMCD"])
    out["TRT01P"] = out["ARM"]
    out["TRT01A"] = out["ACTARM"]
    out["TRTSDT"] = sas_dates(subj["first_dose_date"], SUBJECTS, "first_dose_date")
    out["TRTEDT"] = sas_dates(subj["last_dose_date"], SUBJECTS, "last_dose_date")
    out["TRTDURD"] = number(subj["treatment_days"])
    out["RFICDT"] = sas_dates(subj["consent_date"], SUBJECTS, "consent_date")

    # populations
    out["SAFFL"] = saffl
    randomised = out["ARMCD"] != "" if "arm" in subj.columns else pd.Series([True] * n)
    out["ITTFL"] = spec.codelist_of(DATASET, "ITTFL").recode(randomised, artifact=SUBJECTS.label, column="arm")
    out["EFFFL"] = recode("EFFFL", SUBJECTS, subj, "efffl")
    out["COMPLFL"] = recode("COMPLFL", SUBJECTS, subj, "completed")

    # disposition
    out["EOSSTT"] = recode("EOSSTT", SUBJECTS, subj, "status")
    reason = text(subj["withdrawal_reason"])
    if "withdrawal_reason_code" in subj.columns:
        code = text(subj["withdrawal_reason_code"])
        reason = code.where(code != "", reason)
    out["DCSREAS"] = reason

    # etiology, subgroups and the severity group (groups/assignment.csv; none in a safety-only study); the spec
    # orders the variables (assemble)
    out["PRB12FL"] = recode("PRB12FL", SUBJECTS, subj, "prior_b12_therapy")
    if asg is not None:
        out["ETIOLOGY"] = recode("ETIOLOGY", ASSIGNMENT, asg, "etiology")
        out["B12DEFFL"] = recode("B12DEFFL", ASSIGNMENT, asg, "b12_deficient")
        out["DIABFL"] = recode("DIABFL", ASSIGNMENT, asg, "diabetic")
        out["RESB12FL"] = recode("RESB12FL", ASSIGNMENT, asg, "residual_b12")
        out["SEVGR1"] = recode("SEVGR1", ASSIGNMENT, asg, "severity_group")
        out["SEVGR1N"] = recode("SEVGR1N", ASSIGNMENT, asg, "severity_group")

    # baseline characteristics
    out["METFFL"] = recode("METFFL", SUBJECTS, subj, "metformin")
    out["ANTICOFL"] = recode("ANTICOFL", SUBJECTS, subj, "anticoagulant")
    out["DIABDURY"] = number(subj["diabetes_duration_years"])
    out["WEIGHTBL"] = number(subj["weight_kg"])
    out["HEIGHTBL"] = number(subj["height_cm"])
    out["BMIBL"] = number(subj["bmi"])
    return assemble(spec, spec.dataset(DATASET), sort_rows(out))
