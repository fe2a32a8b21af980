"""Liver safety: the Hy's law laboratory screen (FDA 2009) and the eDISH points.

Thresholds come from config/lab_standards.yaml (`hys_law`). Multiples of the ULN are those of the value as reported
against the ULN in force in the same unit (the lab's, else the default converted to that unit), compared at 15
significant digits (k2trial.core.values.compare): no conversion or rounding moves 3 x ULN. `*_xuln` columns are that
ratio; `alt`, `ast`, `tbil`, `alp` the values in the standard unit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from k2trial.analysis.safety.lab_table import LabArrays, visit_weeks
from k2trial.analysis.safety.standards import LabStandards
from k2trial.core import schema
from k2trial.core.values import compare

EDISH_QUADRANTS = ("potential Hy's law", "hyperbilirubinaemia", "Temple's corollary", "normal or mild")


def _on_treatment_rows(arr: LabArrays, param: str, standards: LabStandards) -> np.ndarray:
    """Rows of one param after baseline that have a value."""
    rows = arr.rows_of(param, standards)
    return rows[arr.post[rows] & ~np.isnan(arr.value[rows])]


def _per_subject_visit(arr: LabArrays, rows: np.ndarray, values: np.ndarray, fill: Any) -> np.ndarray:
    """Flat (subject x visit) array holding `values` (aligned with `rows`) of those rows; `fill` elsewhere."""
    n_visits = len(arr.visits)
    out = np.full(arr.n_subjects * n_visits, fill, dtype=np.asarray(values).dtype)
    out[arr.s[rows] * n_visits + arr.v[rows]] = values
    return out


def _xuln(arr: LabArrays, rows: np.ndarray) -> np.ndarray:
    """value / ULN of the rows in the reported unit (NaN without a positive ULN)."""
    high = arr.uln[rows]
    return np.divide(arr.value[rows], high, out=np.full(len(rows), np.nan), where=high > 0)


def _at_least_xuln(arr: LabArrays, rows: np.ndarray, factor: float) -> np.ndarray:
    return compare(arr.value[rows], factor * arr.uln[rows], ">=")


def hys_law_cases(
    annotated: pd.DataFrame, subjects: pd.DataFrame, standards: LabStandards, *, window_days: int = 0
) -> pd.DataFrame:
    """Potential Hy's law cases on treatment (safety/hys_law), one row per subject and aminotransferase visit.

    A visit qualifies when ALT or AST >= 3 x ULN and total bilirubin >= 2 x ULN (thresholds from
    lab_standards.yaml, value and ULN in the reported unit) and ALP < 2 x ULN. Bilirubin must be at the same
    visit when window_days is 0, else sampled within window_days of the aminotransferase sample (the highest
    such bilirubin is reported, `tbil_visit` says where). ALP is taken at the aminotransferase visit; when it
    was not measured cholestasis cannot be excluded, the row is kept and `note` says so. Post-baseline
    visits only. `*_xuln` = value / ULN. Empty (with headers) when nobody qualifies. Sorted by subject, week.
    """
    arr = LabArrays(annotated, standards, subjects)
    rule = standards.hys_law
    dates = arr.sample_dates()
    amin_rows = np.concatenate(
        [
            rows[_at_least_xuln(arr, rows, rule.aminotransferase_min_xuln)]
            for rows in (_on_treatment_rows(arr, code, standards) for code in rule.aminotransferases)
        ]
    )
    tbil_all = _on_treatment_rows(arr, rule.bilirubin, standards)
    tbil_rows = tbil_all[_at_least_xuln(arr, tbil_all, rule.bilirubin_min_xuln)]

    anchor = pd.DataFrame({"s": arr.s[amin_rows], "v": arr.v[amin_rows], "date": dates[amin_rows]})
    anchor = anchor.groupby(["s", "v"], as_index=False).agg(date=("date", "min"))
    bili = pd.DataFrame(
        {
            "s": arr.s[tbil_rows],
            "tbil_v": arr.v[tbil_rows],
            "tbil_date": dates[tbil_rows],
            "tbil_xuln": _xuln(arr, tbil_rows),
            "tbil": arr.aval[tbil_rows],
        }
    )
    if window_days == 0:
        pairs = anchor.merge(bili, left_on=["s", "v"], right_on=["s", "tbil_v"])
    else:
        pairs = anchor.merge(bili, on="s")
        gap = (pairs["tbil_date"] - pairs["date"]).abs()
        pairs = pairs.loc[gap <= pd.Timedelta(days=window_days)]
    pairs = pairs.sort_values(["s", "v", "tbil_xuln", "tbil_v"], ascending=[True, True, False, True], kind="mergesort")
    pairs = pairs.drop_duplicates(["s", "v"], keep="first")

    sv = pairs["s"].to_numpy(dtype=np.int64) * len(arr.visits) + pairs["v"].to_numpy(dtype=np.int64)
    columns: dict[str, np.ndarray] = {}
    for code, name in ((rule.aminotransferases[0], "alt"), (rule.aminotransferases[-1], "ast"), (rule.alp, "alp")):
        rows = _on_treatment_rows(arr, code, standards)
        columns[name] = _per_subject_visit(arr, rows, arr.aval[rows], np.nan)[sv]
        columns[f"{name}_xuln"] = _per_subject_visit(arr, rows, _xuln(arr, rows), np.nan)[sv]
    alp_rows = _on_treatment_rows(arr, rule.alp, standards)
    alp_below = compare(arr.value[alp_rows], rule.alp_below_xuln * arr.uln[alp_rows], "<")
    alp_ok = _per_subject_visit(arr, alp_rows, alp_below.astype(float), np.nan)[sv]
    keep = np.isnan(alp_ok) | (alp_ok == 1.0)
    visit_names = np.array(arr.visits, dtype=object)
    weeks_of_visit = visit_weeks(annotated)
    out = pd.DataFrame(
        {
            "subject_id": np.array(arr.subject_ids, dtype=object)[pairs["s"].to_numpy(dtype=np.int64)],
            "visit": visit_names[pairs["v"].to_numpy(dtype=np.int64)],
            "week": np.array(
                [weeks_of_visit.get(v, -1) for v in visit_names[pairs["v"].to_numpy(dtype=np.int64)]], dtype=np.int64
            ),
            "sample_date": pd.Series(pairs["date"].to_numpy()).dt.strftime("%Y-%m-%d").fillna("").to_numpy(),
            "alt": columns["alt"],
            "alt_xuln": columns["alt_xuln"],
            "ast": columns["ast"],
            "ast_xuln": columns["ast_xuln"],
            "tbil": pairs["tbil"].to_numpy(dtype=float),
            "tbil_xuln": pairs["tbil_xuln"].to_numpy(dtype=float),
            "tbil_visit": visit_names[pairs["tbil_v"].to_numpy(dtype=np.int64)],
            "alp": columns["alp"],
            "alp_xuln": columns["alp_xuln"],
            "note": np.where(np.isnan(alp_ok), f"{rule.alp} not measured: cholestasis not excluded", ""),
        },
        columns=schema.columns("safety/hys_law"),
    )
    return out.loc[keep].reset_index(drop=True)


def edish(annotated: pd.DataFrame, subjects: pd.DataFrame, standards: LabStandards) -> pd.DataFrame:
    """eDISH points: per safety-set subject with on-treatment liver tests, the peak ALT/ULN, AST/ULN, their
    maximum, and peak total bilirubin/ULN (peaks may come from different visits), with the quadrant at the Hy's
    law thresholds (potential Hy's law: aminotransferase >= 3 and bilirubin >= 2 x ULN; hyperbilirubinaemia;
    Temple's corollary; normal or mild; empty when a coordinate is missing). Sorted by subject.
    """
    arr = LabArrays(annotated, standards, subjects)
    rule = standards.hys_law
    peaks: dict[str, np.ndarray] = {}
    reached: dict[str, np.ndarray] = {}
    for code, threshold in (
        *((c, rule.aminotransferase_min_xuln) for c in rule.aminotransferases),
        (rule.bilirubin, rule.bilirubin_min_xuln),
    ):
        rows = _on_treatment_rows(arr, code, standards)
        ratio = _xuln(arr, rows)
        rows, ratio = rows[~np.isnan(ratio)], ratio[~np.isnan(ratio)]
        peak = np.full(arr.n_subjects, np.nan)
        np.fmax.at(peak, arr.s[rows], ratio)
        hit = np.zeros(arr.n_subjects, bool)
        hit[arr.s[rows[_at_least_xuln(arr, rows, threshold)]]] = True
        peaks[code], reached[code] = peak, hit
    amin_codes = rule.aminotransferases
    amin_peak = np.fmax.reduce(np.stack([peaks[c] for c in amin_codes]), axis=0)
    amin_hit = np.logical_or.reduce(np.stack([reached[c] for c in amin_codes]), axis=0)
    tbil_peak, tbil_hit = peaks[rule.bilirubin], reached[rule.bilirubin]
    quadrant = np.select(
        [amin_hit & tbil_hit, tbil_hit, amin_hit], list(EDISH_QUADRANTS[:3]), EDISH_QUADRANTS[3]
    ).astype(object)
    quadrant[np.isnan(amin_peak) | np.isnan(tbil_peak)] = ""
    present = ~(np.isnan(amin_peak) & np.isnan(tbil_peak))
    out = pd.DataFrame(
        {
            "subject_id": np.array(arr.subject_ids, dtype=object),
            "peak_alt_xuln": peaks[amin_codes[0]],
            "peak_ast_xuln": peaks[amin_codes[-1]],
            "peak_aminotransferase_xuln": amin_peak,
            "peak_tbil_xuln": tbil_peak,
            "quadrant": quadrant,
        },
        columns=schema.columns("safety/edish"),
    )
    return out.loc[present].reset_index(drop=True)
