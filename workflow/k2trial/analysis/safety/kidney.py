"""Kidney function: eGFR by the race-free CKD-EPI 2021 creatinine equation and its KDIGO category.

CKD-EPI 2021 (Inker LA, Eneanya ND, Coresh J, et al. New creatinine- and cystatin C-based equations to estimate GFR
without race. N Engl J Med 2021;385:1737-49):
    eGFR = 142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age x 1.012 [if female]
with k = 0.7 (F) / 0.9 (M), a = -0.241 (F) / -0.302 (M), creatinine in mg/dL, age in years. KDIGO categories and
the rounding of eGFR come from config/lab_standards.yaml (`egfr`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from k2trial.core.values import round_half_away

CKD_EPI_2021_MULTIPLIER = 142.0
CKD_EPI_2021_KAPPA = {"F": 0.7, "M": 0.9}
CKD_EPI_2021_ALPHA = {"F": -0.241, "M": -0.302}
CKD_EPI_2021_HIGH_EXPONENT = -1.200
CKD_EPI_2021_AGE_BASE = 0.9938
CKD_EPI_2021_FEMALE_FACTOR = 1.012


def ckd_epi_2021(creatinine_mg_dl: Any, female: Any, age_years: Any) -> np.ndarray:
    """eGFR in mL/min/1.73 m2 by the race-free CKD-EPI 2021 creatinine equation (Inker et al., NEJM 2021).

    eGFR = 142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age x 1.012 [female], with k = 0.7 (F) / 0.9 (M),
    a = -0.241 (F) / -0.302 (M); Scr in mg/dL, age in years. Unrounded; NaN where an input is missing or
    creatinine is not positive.
    """
    scr = np.asarray(creatinine_mg_dl, dtype=float)
    female = np.asarray(female, dtype=bool)
    age = np.asarray(age_years, dtype=float)
    kappa = np.where(female, CKD_EPI_2021_KAPPA["F"], CKD_EPI_2021_KAPPA["M"])
    alpha = np.where(female, CKD_EPI_2021_ALPHA["F"], CKD_EPI_2021_ALPHA["M"])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(scr > 0, scr, np.nan) / kappa
        egfr = (
            CKD_EPI_2021_MULTIPLIER
            * np.minimum(ratio, 1.0) ** alpha
            * np.maximum(ratio, 1.0) ** CKD_EPI_2021_HIGH_EXPONENT
            * CKD_EPI_2021_AGE_BASE**age
            * np.where(female, CKD_EPI_2021_FEMALE_FACTOR, 1.0)
        )
    return egfr


def kdigo_category(egfr: Any, kdigo: Sequence[tuple[str, float]], decimals: int) -> np.ndarray:
    """KDIGO GFR category (e.g. G1 >= 90, G2 60-89, ...) of eGFR values; "" when missing.

    `kdigo` lists (category, lower bound) best first; the value is compared at `decimals` (a value of 89.96 with
    one decimal is 90.0, category G1).
    """
    values = round_half_away(egfr, decimals)
    bounds = np.array([b for _, b in kdigo][::-1], dtype=float)
    names = np.array([c for c, _ in kdigo][::-1] + [""], dtype=object)
    index = np.searchsorted(bounds, values, side="right") - 1
    index = np.where(np.isnan(values) | (index < 0), len(bounds), index)
    return names[index]
