"""The CONSORT flow of a trial, per arm: who was assessed, randomised, allocated, treated, who discontinued and why,
who completed and who was analysed (CONSORT 2010, item 13 and its flow diagram).

`consort_flow` is the one place that counts these subjects; the flow diagram (k2trial.report.consort) and any
table only draw or format its rows. A single-arm study is a trial with one arm and no randomisation: its rows say
"enrolled" instead of "randomised" and carry the arm code of `SINGLE_ARM`.

Counting rules (stated here once, written into the notes of what reads them):
- randomised: every row of subjects (a subject the export holds was randomised, or enrolled in a single-arm study);
  assessed for eligibility and the reasons for exclusion come from the dataset's declaration when it has them
  (they are not in patient-level data), otherwise the stage is absent, never zero;
- allocated: by the arm as randomised (`arm`); received: treated (`saffl`) with the allocated arm as actually given
  (`actual_arm`, when the data have it, equal to `arm`); received the other arm: treated with another arm;
- discontinued: status `withdrawn`, one row per reason as recorded (a missing reason is "reason not recorded");
- completed: status `completed`;
- analysed: members of the analysis population named by the caller (for example the ITT set of the primary
  endpoint); excluded from analysis: allocated but not analysed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from k2trial.core.errors import ConfigError
from k2trial.core.values import as_bool

#: The arm code of every row of a single-arm study, and of the stages before allocation in any study.
SINGLE_ARM = "all"
#: The reason shown for a withdrawal without a recorded reason.
REASON_NOT_RECORDED = "reason not recorded"
#: Columns of the flow: arm (SINGLE_ARM before allocation), stage code, label, n, and the reason of a reason row.
FLOW_COLUMNS = ("arm", "stage", "label", "n", "reason")


@dataclass(frozen=True)
class ArmDesign:
    """The arms of a study, in report order, with their labels and the control arm (None: a single-arm study)."""

    codes: tuple[str, ...]
    labels: Mapping[str, str]
    control: str | None = None

    @classmethod
    def from_config(cls, arms: Mapping | None) -> ArmDesign | None:
        """config `arms` ({codes, labels, control}) or None for a single-arm study."""
        if not arms:
            return None
        codes = tuple(str(c) for c in arms["codes"])
        labels = {str(k): str(v) for k, v in (arms.get("labels") or {}).items()}
        control = arms.get("control")
        if len(set(codes)) != len(codes) or not codes:
            raise ConfigError(f"config arms.codes: {list(codes)} must be distinct and not empty")
        if control is not None and control not in codes:
            raise ConfigError(f"config arms.control: {control!r} is not one of arms.codes {list(codes)}")
        missing = [c for c in codes if c not in labels]
        if missing:
            raise ConfigError(f"config arms.labels: no label for arm(s) {missing}")
        return cls(codes, labels, control)


@dataclass(frozen=True)
class Screening:
    """What the dataset declares about screening: subjects assessed for eligibility, exclusions by reason."""

    assessed: int
    excluded: Mapping[str, int]


def _reason_rows(arm: str, stage: str, reasons: pd.Series) -> list[tuple]:
    text = reasons.astype("string").str.strip()
    text = text.mask(text.isna() | (text == ""), REASON_NOT_RECORDED)
    counts = text.value_counts(sort=False)
    # most frequent first, then alphabetical, so the order does not depend on the order of the rows
    ordered = sorted(counts.items(), key=lambda item: (-int(item[1]), str(item[0])))
    return [(arm, f"{stage}_reason", str(reason), int(n), str(reason)) for reason, n in ordered]


def consort_flow(
    subjects: pd.DataFrame,
    analysed: Collection[str],
    arms: ArmDesign | None = None,
    screening: Screening | None = None,
    analysed_label: str = "Analysed",
) -> pd.DataFrame:
    """The flow as rows (FLOW_COLUMNS): stages before allocation (arm SINGLE_ARM), then per arm in arms.codes order.

    subjects: one row per subject with subject_id, status, withdrawal_reason, saffl, and in a randomised study arm
    (and actual_arm when the data have it). analysed: subject IDs of the analysis population.
    A subject with an arm that is not declared is a ConfigError naming the subject and the arm: a flow that
    silently dropped them would not add up.
    """
    if subjects["subject_id"].duplicated().any():
        dup = subjects.loc[subjects["subject_id"].duplicated(), "subject_id"].iloc[0]
        raise ValueError(f"consort_flow: subject {dup!r} appears more than once in subjects")
    data = subjects.copy()
    if arms is None:
        data["arm"] = SINGLE_ARM
        codes: Sequence[str] = (SINGLE_ARM,)
        labels: Mapping[str, str] = {SINGLE_ARM: "Treated arm"}
    else:
        codes, labels = arms.codes, arms.labels
        unknown = data.loc[~data["arm"].isin(codes)]
        if len(unknown):
            row = unknown.iloc[0]
            raise ConfigError(
                f"subjects: subject {row['subject_id']!r} has arm {row['arm']!r}, not one of the declared arms "
                f"{list(codes)} (config arms.codes)"
            )
    actual = data["actual_arm"] if "actual_arm" in data else data["arm"]
    treated = pd.Series(as_bool(data["saffl"]), index=data.index)
    status = data["status"].astype("string")
    in_analysis = data["subject_id"].isin(set(analysed))

    rows: list[tuple] = []
    randomised = "randomised" if arms is not None else "enrolled"
    if screening is not None:
        rows.append((SINGLE_ARM, "assessed", "Assessed for eligibility", int(screening.assessed), None))
        excluded = int(screening.assessed) - len(data)
        if excluded < 0:
            raise ValueError(
                f"screening: {screening.assessed} assessed for eligibility but {len(data)} subjects in the data"
            )
        rows.append((SINGLE_ARM, "excluded", "Excluded", excluded, None))
        if screening.excluded:
            declared = sum(int(n) for n in screening.excluded.values())
            if declared != excluded:
                raise ValueError(f"screening: exclusion reasons add up to {declared}, not {excluded} excluded")
            for reason, n in sorted(screening.excluded.items(), key=lambda item: (-int(item[1]), str(item[0]))):
                rows.append((SINGLE_ARM, "excluded_reason", str(reason), int(n), str(reason)))
    rows.append((SINGLE_ARM, randomised, randomised.capitalize(), len(data), None))
    for code in codes:
        allocated = data["arm"] == code
        received = allocated & treated & (actual == code)
        other = allocated & treated & (actual != code)
        withdrawn = allocated & (status == "withdrawn").fillna(False)
        arm_rows = [
            (code, "allocated", f"Allocated to {labels[code]}", int(allocated.sum()), None),
            (code, "received", "Received allocated intervention", int(received.sum()), None),
        ]
        if other.any():
            arm_rows.append((code, "received_other", "Received another arm's intervention", int(other.sum()), None))
        arm_rows.append(
            (code, "not_received", "Did not receive any intervention", int((allocated & ~treated).sum()), None)
        )
        arm_rows.append((code, "discontinued", "Discontinued", int(withdrawn.sum()), None))
        arm_rows += _reason_rows(code, "discontinued", data.loc[withdrawn, "withdrawal_reason"])
        arm_rows.append(
            (code, "completed", "Completed", int((allocated & (status == "completed").fillna(False)).sum()), None)
        )
        arm_rows.append((code, "analysed", analysed_label, int((allocated & in_analysis).sum()), None))
        arm_rows.append(
            (code, "excluded_from_analysis", "Excluded from analysis", int((allocated & ~in_analysis).sum()), None)
        )
        rows += arm_rows
    return pd.DataFrame(rows, columns=list(FLOW_COLUMNS))
