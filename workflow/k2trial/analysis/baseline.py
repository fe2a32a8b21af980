"""Who took part and what they were like at baseline: the participant flow and the statistics of Table 1.

`participant_flow` counts subjects at each stage (enrolled, treated, assessed at each post-baseline clinic visit,
analysed); `baseline_characteristics` summarises the baseline characteristics overall and by severity group, one
row per characteristic, level and group (artifact groups/baseline_characteristics). Both are analysis artifacts of
the groups step; the display tables and the flow figure only format them.

Table 1 conventions (CLINICAL.md, reporting shells): denominators are every subject enrolled (overall) and each
severity group; subjects without a group (no baseline composite) get a group of their own, "none", when there are
any. Continuous characteristics: n, mean (SD, n - 1), median (Q1, Q3) by linear interpolation, min and max of the
subjects with a value; categorical ones and flags: count of the group's N. Diabetes duration is summarised over
the diabetic subjects with a value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from k2trial.analysis.groups import DIABETIC_ETIOLOGIES, SEVERITY_GROUPS
from k2trial.core import schema
from k2trial.core.values import as_bool
from k2trial.core.vocabulary import Vocabulary

#: The group of the subjects without a severity group (no baseline composite VAS).
NO_GROUP = "none"
#: What the step reads of results/analysis/subjects.csv for the flow and Table 1.
SUBJECT_INPUT_COLUMNS = (
    "subject_id",
    "site",
    "sex",
    "age_years",
    "weight_kg",
    "height_cm",
    "bmi",
    "etiology",
    "diabetes_duration_years",
    "metformin",
    "prior_b12_therapy",
    "anticoagulant",
    "compliance_pct",
    "completed",
    "saffl",
    "efffl",
)


@dataclass(frozen=True)
class Characteristic:
    """One row block of Table 1: a column of subjects.csv (or of the assignment) and how it is summarised.

    kind: continuous | categorical | flag. scale: how its numbers are displayed (measure: one decimal; vas: the
    VAS summary decimals; percent: the percent decimals of config reporting.decimals).
    """

    column: str
    label: str
    kind: str
    scale: str = "measure"
    diabetic_only: bool = False


TABLE1: tuple[Characteristic, ...] = (
    Characteristic("sex", "Sex, n (%)", "categorical"),
    Characteristic("age_years", "Age (years)", "continuous"),
    Characteristic("weight_kg", "Weight (kg)", "continuous"),
    Characteristic("height_cm", "Height (cm)", "continuous"),
    Characteristic("bmi", "BMI (kg/m\u00b2)", "continuous"),
    Characteristic("site", "Site, n (%)", "categorical"),
    Characteristic("etiology", "Etiology, n (%)", "categorical"),
    Characteristic(
        "diabetes_duration_years", "Diabetes duration (years), diabetic subjects", "continuous", diabetic_only=True
    ),
    Characteristic("metformin", "Metformin, n (%)", "flag"),
    Characteristic("prior_b12_therapy", "Prior B12 therapy, n (%)", "flag"),
    Characteristic("residual_b12", "Residual subgroup (B12 adequate at baseline), n (%)", "flag"),
    Characteristic("anticoagulant", "Anticoagulant use, n (%)", "flag"),
    # {primary}: the primary VAS in words (the vocabulary's primary_param: "composite", or a single item's name)
    Characteristic("baseline_composite", "Baseline {primary} VAS (cm, 0-10)", "continuous", scale="vas"),
    Characteristic("compliance_pct", "Compliance (% of expected capsules)", "continuous", scale="percent"),
    Characteristic("completed", "Completed the study, n (%)", "flag"),
)


def participant_flow(subjects: pd.DataFrame, vas: pd.DataFrame, vocabulary: Vocabulary) -> pd.DataFrame:
    """Subjects at each stage of the flow diagram (groups/participant_flow: stage, label, n).

    enrolled: every row of subjects; treated: saffl (any dose); one stage per clinic visit after baseline: the primary
    VAS (the composite, or a single-item study's item) recorded at that visit among the treated; analysed: efffl
    (the primary VAS at baseline and at the end of treatment). vas needs subject_id, param, visit, aval (only the
    primary VAS rows are used).
    """
    treated = set(subjects.loc[as_bool(subjects["saffl"]), "subject_id"])
    composite = vas.loc[(vas["param"] == vocabulary.primary_param) & vas["aval"].notna(), ["subject_id", "visit"]]
    stages = [("enrolled", "Enrolled", len(subjects)), ("treated", "Treated (any dose)", len(treated))]
    for visit in vocabulary.clinic_visits[1:]:
        seen = set(composite.loc[composite["visit"] == visit.code, "subject_id"]) & treated
        stages.append((visit.code, f"Assessed at {visit.label.lower()}", len(seen)))
    stages.append(("analysed", "Analysed (efficacy set)", int(as_bool(subjects["efffl"]).sum())))
    return pd.DataFrame(stages, columns=schema.columns("groups/participant_flow"))


def _groups(severity: pd.Series) -> list[tuple[str, pd.Series]]:
    """(group, mask) for the overall column, each severity group, and "none" when someone has no group."""
    out = [("overall", pd.Series(True, index=severity.index))]
    out += [(code, (severity == code).fillna(False)) for code in SEVERITY_GROUPS]
    if severity.isna().any():
        out.append((NO_GROUP, severity.isna()))
    return out


def _levels(characteristic: Characteristic, data: pd.DataFrame, vocabulary: Vocabulary) -> list[tuple[str, str]]:
    """(level, label) of a categorical characteristic: the codebook's labelled levels, else the levels present."""
    labels = vocabulary.level_labels.get(characteristic.column)
    if labels:
        return list(labels.items())
    present = sorted(data[characteristic.column].dropna().astype(str).unique())
    return [(level, level) for level in present]


def baseline_characteristics(
    subjects: pd.DataFrame, assignment: pd.DataFrame, vocabulary: Vocabulary, table: Sequence[Characteristic] = TABLE1
) -> pd.DataFrame:
    """Table 1 statistics (groups/baseline_characteristics): per characteristic, level and group, the group's N,
    the subjects counted (n), the count of a level or flag, and for continuous characteristics mean, SD, median,
    Q1, Q3, min and max. Characteristics absent from the data are left out. Rows in Table 1 order, then group.
    """
    primary = vocabulary.param_label(vocabulary.primary_param, short=True).lower()
    keep = [c for c in ("subject_id", "severity_group", "baseline_composite", "residual_b12") if c in assignment]
    data = subjects.merge(assignment[keep], on="subject_id", how="left", validate="one_to_one")
    no_groups = pd.Series(pd.NA, index=data.index, dtype="string")
    severity = data["severity_group"].astype("string") if "severity_group" in data else no_groups
    groups = _groups(severity)
    diabetic = data["etiology"].astype("string").isin(DIABETIC_ETIOLOGIES).fillna(False) if "etiology" in data else None
    rows = []

    def add(c: Characteristic, level: str, level_label: str, group: str, mask: pd.Series, **stats: float) -> None:
        rows.append(
            {
                "characteristic": c.column,
                "label": c.label.format(primary=primary),
                "kind": c.kind,
                "level": level,
                "level_label": level_label,
                "scale": c.scale,
                "group": group,
                "group_n": int(mask.sum()),
                **stats,
            }
        )

    for c in table:
        if c.column not in data:
            continue
        if c.kind == "continuous":
            values = pd.to_numeric(data[c.column], errors="coerce")
            for group, mask in groups:
                member = mask & values.notna() & (diabetic if c.diabetic_only and diabetic is not None else True)
                chosen = values[member]
                median, q1, q3 = chosen.quantile([0.5, 0.25, 0.75]).tolist()
                add(c, "", "", group, mask, n=int(member.sum()), count=int(member.sum()), mean=chosen.mean(),
                    sd=chosen.std(), median=median, q1=q1, q3=q3, min=chosen.min(), max=chosen.max())  # fmt: skip
        elif c.kind == "categorical":
            text = data[c.column].astype("string")
            for level, level_label in _levels(c, data, vocabulary):
                for group, mask in groups:
                    count = int(((text == level) & mask).sum())
                    add(c, level, level_label, group, mask, n=int(mask.sum()), count=count)
        else:
            yes = pd.Series(as_bool(data[c.column]), index=data.index)
            for group, mask in groups:
                add(c, "", "", group, mask, n=int(mask.sum()), count=int((yes & mask).sum()))
    out = pd.DataFrame(rows, columns=schema.columns("groups/baseline_characteristics"))
    return out.astype({"group_n": "int64", "n": "int64", "count": "int64"})
