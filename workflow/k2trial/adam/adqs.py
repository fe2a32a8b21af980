"""ADQS: the symptom diary in BDS form, one record per subject, parameter (each diary item and the composite) and
analysis visit, from results/analysis/vas.csv, with dates and source sequence numbers from
results/clean/symptom_diary.csv and the treatment and population from ADSL.

Reads top to bottom like the ADQS part of config/adam/spec.yaml. AVAL, BASE, CHG and PCHG are vas.csv's values
(the composite is averaged there, by k2trial.data.derivation); this module adds the ADaM structure around them:
parameter codes and labels, analysis visits, dates and relative days, the baseline and analysis-record flags, and
PARAMTYP = DERIVED with DTYPE = AVERAGE on the composite records.
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
)
from k2trial.adam.spec import AdamSpec
from k2trial.core.vocabulary import COMPOSITE

DATASET = "ADQS"
VAS = Needs("analysis/vas", required=("subject_id", "param", "visit", "week", "aval", "base", "chg", "pchg"))
DIARY = Needs(
    "clean/symptom_diary", required=("subject_id", "visit", "assessment_date", "symptom"), optional=("qsseq",)
)
ADSL_VARIABLES = ("STUDYID", "TRT01P", "TRT01A", "EFFFL", "TRTSDT")


def diary_records(diary: pd.DataFrame) -> pd.DataFrame:
    """One row per clean diary record: subject_id, AVISIT (the clean table's visit label), symptom, ADT and QSSEQ.

    QSSEQ: the table's `qsseq` when present (SDTM input), else the record's position within its subject in table
    order, which is how the SDTM writer (k2trial.data.sdtm.raw_to_sdtm) numbers QSSEQ. Two records for one
    (subject, visit, symptom) raise AdamDataError.
    """
    rows = take(diary, DIARY)
    subject = coded_text(rows["subject_id"])
    if "qsseq" in rows.columns:
        seq = number(rows["qsseq"])
    else:
        codes = subject.cat.codes.to_numpy()
        seq = pd.Series((pd.Series(codes).groupby(codes, sort=False).cumcount() + 1).to_numpy(dtype="float64"))
    out = pd.DataFrame(
        {
            "subject_id": subject,
            "AVISIT": coded_text(rows["visit"]),
            "symptom": coded_text(rows["symptom"]),
            "ADT": sas_dates(rows["assessment_date"], DIARY, "assessment_date"),
            "QSSEQ": seq,
        }
    )
    twice = pd.Series(group_codes(out["subject_id"], out["AVISIT"], out["symptom"])).duplicated()
    if twice.any():
        row = int(twice.to_numpy().nonzero()[0][0])
        raise problem(DIARY, row, "symptom", out["symptom"].iloc[row], "two diary records for one subject, visit and "
                      "symptom", "adam_key")  # fmt: skip
    return out


def derive_adqs(vas: pd.DataFrame, diary: pd.DataFrame, adsl: pd.DataFrame, spec: AdamSpec) -> pd.DataFrame:
    """ADQS from vas.csv, the clean diary and ADSL (k2trial.adam.adsl.derive_adsl), sorted by subject number,
    PARAMN and AVISITN (the order of vas.csv). The composite's items are the delivery parameter `composite_items`."""
    rows = take(vas, VAS)
    param = coded_text(rows["param"])
    composite = (param == COMPOSITE).to_numpy()
    codelist = spec.codelist_of

    out: dict[str, pd.Series] = {}
    adsl_values = from_adsl(adsl, rows["subject_id"], ADSL_VARIABLES, VAS)
    # identifiers, treatment and population
    out["STUDYID"] = adsl_values["STUDYID"]
    out["USUBJID"] = coded_text(rows["subject_id"])

    # parameters and visits
    paramcd = codelist(DATASET, "PARAMCD").recode(param, artifact=VAS.label, column="param")
    out["PARAMCD"] = paramcd
    out["PARAM"] = codelist(DATASET, "PARAMCD").decode(paramcd)
    out["PARAMN"] = codelist(DATASET, "PARAMCD").position(paramcd)
    out["PARAMTYP"] = flag_where(composite, "DERIVED")
    out["AVISIT"] = codelist(DATASET, "AVISIT").recode(rows["visit"], artifact=VAS.label, column="visit")
    out["AVISITN"] = number(rows["week"])

    # dates and source records: the item's diary record; the composite's latest item date at that visit
    records = diary_records(diary)
    # integer keys of (subject, visit, item) and (subject, visit), the same in the diary and here
    key, at = shared_keys([(records["subject_id"], out["USUBJID"]), (records["AVISIT"], out["AVISIT"]),
                           (records["symptom"], param)])  # fmt: skip
    item_at = pd.Index(key).get_indexer(at)  # the diary's keys are unique (diary_records)
    item_at = np.where(composite, -1, item_at)
    adt = np.where(item_at >= 0, records["ADT"].to_numpy()[item_at], np.nan)
    seq = np.where(item_at >= 0, records["QSSEQ"].to_numpy()[item_at], np.nan)
    visit, visit_at = shared_keys([(records["subject_id"], out["USUBJID"]), (records["AVISIT"], out["AVISIT"])])
    items = codes_in(records["symptom"], [str(i) for i in spec.parameter("composite_items")]) >= 0
    latest = records["ADT"][items].groupby(visit[items], sort=False).max()
    composite_adt = latest.reindex(visit_at).to_numpy(dtype="float64")
    out["QSSEQ"] = pd.Series(seq, dtype="float64")
    out["ADT"] = pd.Series(np.where(composite, composite_adt, adt), dtype="float64")
    out["ADY"] = relative_day(out["ADT"], adsl_values["TRTSDT"])
    out["TRTP"] = adsl_values["TRT01P"]
    out["TRTA"] = adsl_values["TRT01A"]
    out["EFFFL"] = adsl_values["EFFFL"]

    # analysis values (vas.csv) and flags
    out["AVAL"] = number(rows["aval"])
    out["BASE"] = number(rows["base"])
    out["CHG"] = number(rows["chg"])
    out["PCHG"] = number(rows["pchg"])
    has_value = out["AVAL"].notna().to_numpy()
    out["ABLFL"] = flag_where(has_value & (out["AVISITN"].to_numpy() == 0))
    out["ANL01FL"] = flag_where(has_value)
    out["DTYPE"] = flag_where(composite, "AVERAGE")
    _check_baseline(out)
    return assemble(spec, spec.dataset(DATASET), sort_rows(out, "PARAMN", "AVISITN"))


def _check_baseline(out: dict[str, pd.Series]) -> None:
    """BASE must be the AVAL of the ABLFL record of its subject and parameter (a guard against a changed baseline
    rule upstream); raises ValueError naming the first disagreeing subject and parameter."""
    frame = pd.DataFrame({k: out[k] for k in ("USUBJID", "PARAMCD", "AVAL", "BASE", "ABLFL")})
    key, _ = pd.factorize(group_codes(frame["USUBJID"], frame["PARAMCD"]))  # subject x parameter
    is_baseline = (frame["ABLFL"] == "Y").to_numpy()
    if pd.Series(key[is_baseline]).duplicated().any():
        raise ValueError("ADQS: two ABLFL records for one subject and parameter")
    baseline = np.full(int(key.max(initial=-1)) + 1, np.nan)
    baseline[key[is_baseline]] = frame["AVAL"].to_numpy(dtype="float64")[is_baseline]
    expected = baseline[key]
    base = frame["BASE"].to_numpy(dtype="float64")
    bad = ~((np.isnan(expected) & np.isnan(base)) | (expected == base))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"ADQS: BASE of {frame['USUBJID'].iloc[i]} {frame['PARAMCD'].iloc[i]} is {base[i]}, the ABLFL record's "
            f"AVAL {expected[i]}: vas.csv's baseline rule and the ABLFL derivation disagree"
        )
