"""Kidney function: eGFR by the race-free CKD-EPI 2021 creatinine equation and its KDIGO category.

CKD-EPI 2021 (Inker LA, Eneanya ND, Coresh J, et al. New creatinine- and cystatin C-based equations to estimate GFR
without race. N Engl J Med 2021;385:1737-49):
    eGFR = 142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age x 1.012 [if female]
with k = 0.7 (F) / 0.9 (M), a = -0.241 (F) / -0.302 (M), creatinine in mg/dL, age in years. KDIGO categories come
from config/lab_standards.yaml (`egfr`) and apply to the unrounded eGFR (89.71 is G2, though it is displayed as 90);
`egfr.decimals` is the precision eGFR is displayed at, never a step of the analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from k2trial.core.values import compare

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


def kdigo_category(egfr: Any, kdigo: Sequence[tuple[str, float]]) -> np.ndarray:
    """KDIGO GFR category (e.g. G1 >= 90, G2 60-89, ...) of unrounded eGFR values; "" when missing.

    `kdigo` lists (category, lower bound) best first. The value is compared as computed (both sides at 15 significant
    digits, k2trial.core.values.compare): 89.71 is G2 (< 90), although it is displayed as 90 in whole units.
    """
    values = np.asarray(egfr, dtype=float)
    out = np.full(values.shape, "", dtype=object)
    for category, bound in reversed(list(kdigo)):  # worst first: a better category overwrites
        out[compare(values, bound, ">=")] = category
    return out
