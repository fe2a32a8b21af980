"""ADAE: one record per adverse event, from results/safety/ae_listing.csv (the safety step's listing of every
reported event with its derived flags) and ADSL.

Reads top to bottom like the ADAE part of config/adam/spec.yaml. The treatment-emergent, related and
leading-to-withdrawal flags are the listing's (k2trial.analysis.safety.adverse_events), recoded to ADaM terms;
dates become SAS dates. Events of subjects outside the safety set are kept (SAFFL = N), as in the listing; the
summaries count SAFFL = Y. An empty listing gives an ADAE with no records.

AESEQ: the listing's `aeseq` (SDTM input, issue 15) where known; otherwise the event's position within its
subject in the listing's order, which is the AESEQ the SDTM writer gives the clean events.
"""

from __future__ import annotations

import pandas as pd

from k2trial.adam.common import Needs, assemble, from_adsl, number, relative_day, sas_dates, take, text
from k2trial.adam.spec import AdamSpec

DATASET = "ADAE"
LISTING = Needs(
    "safety/ae_listing",
    required=("subject_id", "term", "onset_date", "end_date", "study_day", "severity", "serious", "related",
              "related_to_treatment", "action", "leading_to_withdrawal", "outcome", "treatment_emergent"),
    optional=("aeseq",),
)  # fmt: skip
ADSL_VARIABLES = ("STUDYID", "TRT01A", "SAFFL", "TRTSDT")


def derive_adae(listing: pd.DataFrame, adsl: pd.DataFrame, spec: AdamSpec) -> pd.DataFrame:
    """ADAE from ae_listing.csv (as read by k2trial.core.schema.read_artifact) and ADSL, in the listing's order
    (subject number, onset date, term, raw row)."""
    rows = take(listing, LISTING)
    adsl_values = from_adsl(adsl, rows["subject_id"], ADSL_VARIABLES, LISTING)

    def recode(variable: str, column: str) -> pd.Series:
        return spec.codelist_of(DATASET, variable).recode(rows[column], artifact=LISTING.label, column=column)

    subject = text(rows["subject_id"])
    out: dict[str, pd.Series] = {}
    # identifiers, treatment and population
    out["STUDYID"] = adsl_values["STUDYID"]
    out["USUBJID"] = subject
    position = pd.Series((subject.groupby(subject, sort=False).cumcount() + 1).to_numpy(dtype="float64"))
    out["AESEQ"] = number(rows["aeseq"]).fillna(position) if "aeseq" in rows.columns else position
    out["TRTA"] = adsl_values["TRT01A"]
    out["SAFFL"] = adsl_values["SAFFL"]

    # the event, its timing and grading
    out["AETERM"] = text(rows["term"])
    out["AEDECOD"] = text(rows["term"])
    out["ASTDT"] = sas_dates(rows["onset_date"], LISTING, "onset_date")
    out["ASTDY"] = number(rows["study_day"])
    out["AENDT"] = sas_dates(rows["end_date"], LISTING, "end_date")
    out["AENDY"] = relative_day(out["AENDT"], adsl_values["TRTSDT"])
    out["ASEV"] = recode("ASEV", "severity")
    out["AESER"] = recode("AESER", "serious")
    out["AEREL"] = recode("AEREL", "related")
    out["AREL"] = recode("AREL", "related_to_treatment")
    out["AEACN"] = text(rows["action"])
    out["AEOUT"] = text(rows["outcome"])

    # analysis flags of the listing
    out["AEWITHFL"] = recode("AEWITHFL", "leading_to_withdrawal")
    # ADaMIG: TRTEMFL is Y or null (codelist Y: only true is coded)
    emergent = rows["treatment_emergent"]
    out["TRTEMFL"] = spec.codelist_of(DATASET, "TRTEMFL").recode(
        emergent.where(emergent.astype("boolean").fillna(False), None),
        artifact=LISTING.label,
        column="treatment_emergent",
    )
    return assemble(spec, spec.dataset(DATASET), out)
