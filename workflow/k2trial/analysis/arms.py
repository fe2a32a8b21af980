"""The arms of a randomised study: who was randomised to which arm, the analysis populations of a randomised design,
and the summaries by arm that Table 1, the safety tables and the trajectories show (artifacts analysis/allocation,
arms/*; issue 14 items 1 and 3).

Populations of a randomised design (config `populations` names which are reported; `arm_members` says who belongs):
    itt            randomised (every subject of subjects.csv with an arm), analysed as randomised
    safety         treated (saffl: any dose), analysed as treated (the arm given; the data hold no other)
    per_protocol   randomised and treated, meeting every criterion of config arms.per_protocol
    <set>_<arm>    the members of one of these three in one arm: `itt_mk7` is the ITT set of arm MK7 (the arm code
                   lower-cased); the within-arm paired tests run on these
    <set>_<stratum>  the members of one of these three in one randomisation stratum (a subgroup by cause:
                   `itt_diabetes`); the between-arm comparisons may run on these
The definition of the per-protocol set is data (config arms.per_protocol): `completed: true` (status completed),
`min_compliance_pct` (capsule compliance at least this; missing compliance fails), `exclude_anticoagulant: true`
(a vitamin K antagonist is a protocol deviation), `efficacy_set: true` (the primary VAS at baseline and at the end
of treatment). `pp_reason` of the allocation says which criteria a subject failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from k2trial.core import schema
from k2trial.core.errors import ConfigError, InputDataError, Problem
from k2trial.core.values import as_bool, sort_by_subject

#: The analysis sets of a randomised design and the allocation flag each is read from.
ARM_SETS = {"itt": "ittfl", "safety": "saffl", "per_protocol": "pprotfl"}
PER_PROTOCOL_KEYS = ("completed", "min_compliance_pct", "exclude_anticoagulant", "efficacy_set")
#: What the allocation reads of results/analysis/subjects.csv.
SUBJECT_COLUMNS = ("subject_id", "status", "anticoagulant", "compliance_pct", "saffl", "efffl")


def arm_population(base: str, arm: str) -> str:
    """The population of one analysis set in one arm: ("itt", "MK7") -> "itt_mk7"."""
    return f"{base}_{arm.lower()}"


def allocation_table(
    clean_subjects: pd.DataFrame, subjects: pd.DataFrame, arms: Mapping, *, label: str = "subjects.csv"
) -> pd.DataFrame:
    """analysis/allocation: per subject the randomised arm, the stratum (missing when the study does not stratify),
    and the flags of the analysis sets (ittfl, saffl, efffl, pprotfl) with the per-protocol criteria failed.

    clean_subjects: results/clean/subjects.csv (subject_id, arm[, stratum]); subjects: results/analysis/subjects.csv.
    A subject without an arm, or with an arm not in arms.codes, is an InputDataError naming the file, row and value
    (validation stops these first; this guards the artifact).
    """
    codes = [str(c) for c in arms["codes"]]
    not_randomised = [str(c) for c in arms.get("not_randomised") or ()]
    rule = dict(arms.get("per_protocol") or {})
    unknown = sorted(set(rule) - set(PER_PROTOCOL_KEYS))
    if unknown:
        raise ConfigError(f"config arms.per_protocol: unknown criteria {unknown} (known: {list(PER_PROTOCOL_KEYS)})")
    if "arm" not in clean_subjects.columns:
        raise InputDataError(
            [
                Problem(
                    label, 1, "arm", "", "column_missing", "error", "a randomised study needs the arm of every subject"
                )
            ]
        )
    problems = []
    for position, (subject, arm) in enumerate(zip(clean_subjects["subject_id"], clean_subjects["arm"], strict=True)):
        if pd.isna(arm) or str(arm) not in codes + not_randomised:
            row = int(clean_subjects["raw_row"].iloc[position]) if "raw_row" in clean_subjects else position + 2
            problems.append(
                Problem(label, row, "arm", "" if pd.isna(arm) else str(arm), "category_invalid", "error",
                        f"subject {subject}: the arm must be one of config arms.codes {codes} or "
                        f"arms.not_randomised {not_randomised}")
            )  # fmt: skip
    if problems:
        raise InputDataError(problems)
    keep = ["subject_id", "arm"] + [c for c in ("actual_arm", "stratum") if c in clean_subjects.columns]
    data = subjects[list(SUBJECT_COLUMNS)].merge(
        clean_subjects[keep], on="subject_id", how="left", validate="one_to_one"
    )
    if "stratum" not in data:
        data["stratum"] = pd.NA
    saffl = as_bool(data["saffl"])
    efffl = as_bool(data["efffl"])
    reasons: list[list[str]] = [[] for _ in range(len(data))]

    def fail(mask: np.ndarray, reason: str) -> None:
        for i in np.flatnonzero(mask):
            reasons[i].append(reason)

    fail(~saffl, "not treated")
    if rule.get("completed"):
        fail((data["status"].astype("string") != "completed").fillna(True).to_numpy(bool), "did not complete")
    if rule.get("min_compliance_pct") is not None:
        threshold = float(rule["min_compliance_pct"])
        compliance = pd.to_numeric(data["compliance_pct"], errors="coerce").to_numpy(float)
        fail(~(compliance >= threshold), f"compliance below {threshold:g}% or unknown")
    if rule.get("exclude_anticoagulant"):
        fail(as_bool(data["anticoagulant"]), "anticoagulant use")
    if rule.get("efficacy_set"):
        fail(~efffl, "not in the efficacy set")
    # a subject never randomised (arms.not_randomised: a screen failure) has no arm and is in no analysis set
    randomised = data["arm"].astype("string").isin(codes).to_numpy(dtype=bool)
    fail(~randomised, "not randomised")
    arm = data["arm"].astype("string").where(randomised)
    # the arm given (SDTM ACTARMCD) when the data record it, else the arm as randomised: the safety set's arm
    actual = data["actual_arm"].astype("string").where(randomised) if "actual_arm" in data else None
    out = pd.DataFrame(
        {
            "subject_id": data["subject_id"].astype(str),
            "arm": arm,
            **({"actual_arm": actual.fillna(arm)} if actual is not None else {}),
            "stratum": data["stratum"].astype("string"),
            "ittfl": randomised,
            "saffl": saffl,
            "efffl": efffl,
            "pprotfl": [not r for r in reasons],
            "pp_reason": ["; ".join(r) for r in reasons],
        }
    )
    return sort_by_subject(out)[schema.columns("analysis/allocation", present=out.columns)]


def arm_as_treated(allocation: pd.DataFrame) -> pd.Series:
    """Each subject's arm for the safety analysis (as treated): the arm given (`actual_arm`, when the data record
    it: SDTM DM.ACTARMCD) or else the arm as randomised."""
    return allocation["actual_arm"] if "actual_arm" in allocation.columns else allocation["arm"]


def strata_of(allocation: pd.DataFrame) -> tuple[str, ...]:
    """The randomisation strata present in the allocation, sorted (none when the study does not stratify)."""
    return tuple(sorted(str(s) for s in allocation["stratum"].dropna().unique()))


def arm_members(
    allocation: pd.DataFrame, populations: Sequence[str], arm_codes: Sequence[str]
) -> dict[str, np.ndarray]:
    """Membership (aligned with the rows of `allocation`) of the randomised-design populations among `populations`
    (ARM_SETS, `<set>_<arm>` and `<set>_<stratum>`: a subgroup by cause); other names are left out for the caller."""
    by_name = {}
    arm = allocation["arm"].astype(str)
    stratum = allocation["stratum"].astype("string")
    for base, flag in ARM_SETS.items():
        in_set = as_bool(allocation[flag])
        by_name[base] = in_set
        for code in arm_codes:
            by_name[arm_population(base, code)] = in_set & (arm == code).to_numpy(bool)
        for level in strata_of(allocation):
            by_name[arm_population(base, level)] = in_set & (stratum == level).fillna(False).to_numpy(bool)
    return {p: by_name[p] for p in populations if p in by_name}


def arm_population_names(arm_codes: Sequence[str], strata: Sequence[str] = ()) -> tuple[str, ...]:
    """Every population name a randomised design knows: ARM_SETS, one per set and arm, one per set and stratum.
    Raises ConfigError when an arm code and a stratum give the same name."""
    names = [name for base in ARM_SETS for name in (base, *(arm_population(base, c) for c in (*arm_codes, *strata)))]
    if len(set(names)) != len(names):
        raise ConfigError(f"arm codes {list(arm_codes)} and strata {list(strata)} give the same population name")
    return tuple(names)


def by_arm(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Tables of the same artifact per arm (arm -> frame) stacked with the arm as first column, arms in order."""
    parts = [frame.assign(arm=arm)[["arm", *frame.columns]] for arm, frame in frames.items()]
    return pd.concat(parts, ignore_index=True)
