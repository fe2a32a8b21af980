"""Summaries of the annotated lab table: descriptives by visit (value and change), shift tables of the flags, and
B12 status and KDIGO categories by visit against the baseline category."""

from __future__ import annotations

import numpy as np
import pandas as pd

from k2trial.analysis.safety.lab_table import B12_STATUSES, FLAGS, LabArrays, visit_weeks
from k2trial.analysis.safety.standards import LabStandards
from k2trial.core import schema
from k2trial.core.values import percent

#: Shift-table categories: the flags plus no value.
SHIFT_CATEGORIES = (*FLAGS, "MISSING")
#: The shift comparisons after the visits: the most extreme post-baseline value in each direction.
WORST_COMPARISONS = ("worst_low", "worst_high")
MISSING = "missing"


def lab_descriptives(annotated: pd.DataFrame, standards: LabStandards) -> pd.DataFrame:
    """n, n_censored, mean, SD (n-1), median, Q1, Q3 (linear interpolation, R type 7), min, max per param and
    visit, of the value and of the change from baseline (`chg_*`; `chg_n_censored` counts changes whose value or
    baseline is censored). Censored values enter at their limit (an upper bound for "<x"). Sorted by param, week.
    """
    frame = pd.DataFrame(
        {
            "param": annotated["param"],
            "visit": annotated["visit"],
            "aval": annotated["aval"],
            "chg": annotated["chg"],
            "censored": annotated["censored"].to_numpy(dtype=bool) & annotated["aval"].notna().to_numpy(),
        }
    )
    s = annotated["subject_id"].cat.codes.to_numpy().astype(np.int64)
    p = annotated["param"].cat.codes.to_numpy().astype(np.int64)
    key = s * len(standards.all_params) + p
    baseline_rows = annotated["baseline_record"].to_numpy(dtype=bool) & annotated["aval"].notna().to_numpy()
    baseline_censored = np.zeros(len(standards.all_params) * len(annotated["subject_id"].cat.categories), bool)
    baseline_censored[key[baseline_rows]] = frame["censored"].to_numpy()[baseline_rows]
    frame["chg_censored"] = (frame["censored"].to_numpy() | baseline_censored[key]) & frame["chg"].notna().to_numpy()
    groups = frame.groupby(["param", "visit"], observed=True, sort=True)
    result = {}
    for column, prefix in (("aval", ""), ("chg", "chg_")):
        grouped = groups[column]
        quantiles = grouped.quantile([0.5, 0.25, 0.75]).unstack()
        stats = pd.DataFrame(
            {
                f"{prefix}n": grouped.count(),
                f"{prefix}n_censored": groups["censored" if column == "aval" else "chg_censored"].sum(),
                f"{prefix}mean": grouped.mean(),
                f"{prefix}sd": grouped.std(ddof=1),
                f"{prefix}median": quantiles[0.5],
                f"{prefix}q1": quantiles[0.25],
                f"{prefix}q3": quantiles[0.75],
                f"{prefix}min": grouped.min(),
                f"{prefix}max": grouped.max(),
            }
        )
        result[column] = stats
    out = result["aval"].join(result["chg"]).reset_index()
    weeks = visit_weeks(annotated)
    out["week"] = out["visit"].map(weeks).astype(np.int64)
    out["unit"] = out["param"].map(dict(zip(standards.all_params, standards.units(), strict=True)))
    for column in ("n", "n_censored", "chg_n", "chg_n_censored"):
        out[column] = out[column].astype(np.int64)
    out = out.sort_values(["param", "week"], kind="mergesort").reset_index(drop=True)
    return out[schema.columns("safety/lab_descriptives")]


def _per_key_visit_flags(arr: LabArrays) -> dict[int, np.ndarray]:
    """Flag code per key for each post-baseline visit code (-1 missing)."""
    out = {}
    for v in sorted(set(arr.v[arr.post].tolist())):
        per_key = np.full(arr.size, -1, dtype=np.int64)
        rows = (arr.v == v) & arr.post & (arr.flag >= 0)
        per_key[arr.key[rows]] = arr.flag[rows]
        out[v] = per_key
    return out


def _worst_flag(arr: LabArrays, direction: str) -> np.ndarray:
    """Worst post-baseline flag per key: worst_low = LOW if any, else NORMAL if any, else HIGH; mirror for high."""
    rank_of_flag = np.array([3, 2, 1]) if direction == "low" else np.array([1, 2, 3])  # LOW, NORMAL, HIGH
    flag_of_rank = {3: 0, 2: 1, 1: 2} if direction == "low" else {3: 2, 2: 1, 1: 0}
    rows = arr.post & (arr.flag >= 0)
    rank = np.zeros(arr.size, dtype=np.int64)
    np.maximum.at(rank, arr.key[rows], rank_of_flag[arr.flag[rows]])
    lookup = np.array([-1, flag_of_rank[1], flag_of_rank[2], flag_of_rank[3]])
    return lookup[rank]


def lab_shifts(annotated: pd.DataFrame, subjects: pd.DataFrame, standards: LabStandards) -> pd.DataFrame:
    """Shift tables: baseline flag (`from`: the flag of the baseline record, the one that supplied `base`; MISSING
    without one) x flag at each post-baseline visit, worst low and worst high (`to`).

    worst_low: LOW if any post-baseline value is low, else NORMAL if any is normal, else HIGH; worst_high the
    mirror. MISSING: no value. Every safety-set subject is counted once per param and comparison, so the counts
    of a comparison add up to the denominator (the safety set). Lab params only (eGFR has no range). Full grid
    with zero counts, sorted by param, comparison (visits by week, worst_low, worst_high), from, to.
    """
    arr = LabArrays(annotated, standards, subjects)
    n_lab = len(standards.lab_params)
    baseline = np.full(arr.size, -1, dtype=np.int64)
    rows = arr.is_baseline & (arr.flag >= 0)
    baseline[arr.key[rows]] = arr.flag[rows]
    comparisons = {arr.visits[v]: flags for v, flags in _per_key_visit_flags(arr).items()}
    for name, direction in zip(WORST_COMPARISONS, ("low", "high"), strict=True):
        comparisons[name] = _worst_flag(arr, direction)
    n_cat = len(SHIFT_CATEGORIES)
    param_of_key = np.tile(np.arange(arr.n_params), arr.n_subjects)
    lab_keys = param_of_key < n_lab
    from_code = np.where(baseline < 0, n_cat - 1, baseline)[lab_keys]
    frames = []
    for name, to in comparisons.items():
        to_code = np.where(to < 0, n_cat - 1, to)[lab_keys]
        cell = param_of_key[lab_keys] * n_cat * n_cat + from_code * n_cat + to_code
        counts = np.bincount(cell, minlength=n_lab * n_cat * n_cat)
        frames.append(
            pd.DataFrame(
                {
                    "param": np.repeat(standards.lab_params, n_cat * n_cat),
                    "comparison": name,
                    "from": np.tile(np.repeat(SHIFT_CATEGORIES, n_cat), n_lab),
                    "to": np.tile(SHIFT_CATEGORIES, n_lab * n_cat),
                    "n": counts,
                    "_param": np.repeat(np.arange(n_lab), n_cat * n_cat),
                    "_comparison": len(frames),
                    "_cell": np.tile(np.arange(n_cat * n_cat), n_lab),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["_param", "_comparison", "_cell"], kind="mergesort").reset_index(drop=True)
    out["denominator"] = arr.n_subjects
    out["percent"] = percent(out["n"].to_numpy(), arr.n_subjects)
    return out[schema.columns("safety/lab_shifts")]


def lab_category_counts(annotated: pd.DataFrame, standards: LabStandards, b12_test: str) -> pd.DataFrame:
    """B12 status and KDIGO category by visit, cross-classified by the baseline category (safety/lab_categories).

    percent = 100 x n / subjects of the safety set in that baseline category (so "deficient at baseline ->
    adequate at week 8" reads directly); the baseline category is that of the baseline record; "missing" = no value.
    Full grid, sorted by param, week, categories.
    """
    s = annotated["subject_id"].cat.codes.to_numpy().astype(np.int64)
    n_subjects = len(annotated["subject_id"].cat.categories)
    p = annotated["param"].cat.codes.to_numpy().astype(np.int64)
    v = annotated["visit"].cat.codes.to_numpy().astype(np.int64)
    baseline_record = annotated["baseline_record"].to_numpy(dtype=bool)
    category = annotated["category"].cat.codes.to_numpy().astype(np.int64)
    names = list(annotated["category"].cat.categories)
    visits = list(annotated["visit"].cat.categories)
    weeks_of_visit = visit_weeks(annotated)
    frames = []
    params = list(standards.all_params)
    kdigo = [k for k, _ in standards.egfr.kdigo]
    for param, levels in ((b12_test, list(B12_STATUSES)), (standards.egfr.param, kdigo)):
        if param not in params:
            continue
        rows = p == params.index(param)
        level_code = np.array([levels.index(n) if n in levels else -1 for n in names] + [-1])
        cat = level_code[np.where(category < 0, len(names), category)]
        baseline = np.full(n_subjects, len(levels), dtype=np.int64)
        at_bl = rows & baseline_record & (cat >= 0)
        baseline[s[at_bl]] = cat[at_bl]
        labels = [*levels, MISSING]
        n_lvl = len(labels)
        bl_counts = np.bincount(baseline, minlength=n_lvl)
        for visit_code, visit in enumerate(visits):
            current = np.full(n_subjects, len(levels), dtype=np.int64)
            here = rows & (v == visit_code) & (cat >= 0)
            current[s[here]] = cat[here]
            counts = np.bincount(baseline * n_lvl + current, minlength=n_lvl * n_lvl)
            frames.append(
                pd.DataFrame(
                    {
                        "param": param,
                        "visit": visit,
                        "week": int(weeks_of_visit.get(visit, -1)),
                        "baseline_category": np.repeat(labels, n_lvl),
                        "category": np.tile(labels, n_lvl),
                        "n": counts,
                        "percent": percent(counts, np.repeat(bl_counts, n_lvl)),
                        "denominator": np.repeat(bl_counts, n_lvl),
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=schema.columns("safety/lab_categories"))
    return pd.concat(frames, ignore_index=True)[schema.columns("safety/lab_categories")]
