"""Mixed (split-plot) ANOVA: one between-subject factor and one within-subject factor, complete cases.

The sums of squares, F tests, partial eta-squared and the Greenhouse-Geisser correction of pingouin 0.7's
`mixed_anova` (correction=True), computed here in closed form so that the efficacy job need not import pingouin
(which imports matplotlib and seaborn: most of a second on every rebuild's critical path); pingouin itself is the
independent implementation the tests compare with (tests/test_mixed_anova.py).

With grand mean m over all observations, group means, visit means, cell (group x visit) means and subject means:
SS_between = sum_g n_g k (mean_g - m)^2, SS_within = sum_v N (mean_v - m)^2, SS_cells-residual = sum (y - cell mean)^2,
SS_interaction = SS_total - SS_cells-residual - SS_within - SS_between, SS_subjects = k sum_s (mean_s - m)^2, error
of the between factor SS_subjects - SS_between, error of the within terms SS_total - SS_within - SS_subjects -
SS_interaction; df g - 1, k - 1, (k - 1)(g - 1), N - g, (k - 1)(N - g). Greenhouse-Geisser epsilon from the pooled
within-group covariance of orthonormal contrasts of the k visits (after removing each group's visit means; as SPSS,
car and afex), at most 1; the corrected p uses df x epsilon (at least 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special


@dataclass(frozen=True)
class MixedAnovaTerm:
    source: str  # "between", "within" or "interaction"
    ss: float
    df1: float
    df2: float
    f: float
    p_value: float
    p_value_gg: float  # NaN for the between factor, and with two visits (sphericity holds: nothing to correct)
    epsilon_gg: float  # NaN for the between factor
    partial_eta_squared: float


def _orthonormal_contrasts(k: int) -> np.ndarray:
    """A (k, k - 1) matrix whose columns are orthonormal and orthogonal to the constant (Helmert, normalised)."""
    contrasts = np.zeros((k, k - 1))
    for j in range(1, k):
        contrasts[:j, j - 1] = 1.0
        contrasts[j, j - 1] = -float(j)
        contrasts[:, j - 1] /= np.sqrt(j * (j + 1.0))
    return contrasts


def mixed_anova(values: np.ndarray, groups: np.ndarray) -> tuple[MixedAnovaTerm, MixedAnovaTerm, MixedAnovaTerm]:
    """The between, within and interaction terms of a mixed ANOVA.

    values: (subjects, visits) with no missing value; groups: each subject's between-subject group (>= 2 groups,
    each with at least one subject). Rows of the result: between factor, within factor, interaction.
    """
    y = np.asarray(values, dtype=float)
    groups = np.asarray(groups)
    n, k = y.shape
    levels = list(dict.fromkeys(groups.tolist()))
    member = [groups == g for g in levels]
    grand = y.mean()
    ss_total = float(((y - grand) ** 2).sum())
    ss_between = float(sum(m.sum() * k * (y[m].mean() - grand) ** 2 for m in member))
    ss_within = float((n * (y.mean(axis=0) - grand) ** 2).sum())
    cell_means = np.empty_like(y)
    for m in member:
        cell_means[m] = y[m].mean(axis=0)
    ss_cells_residual = float(((y - cell_means) ** 2).sum())
    ss_interaction = ss_total - (ss_cells_residual + ss_within + ss_between)
    ss_subjects = float(k * ((y.mean(axis=1) - grand) ** 2).sum())
    ss_error_between = ss_subjects - ss_between
    ss_error_within = ss_total - (ss_within + ss_subjects + ss_interaction)
    n_groups = len(levels)
    df = np.array([n_groups - 1, k - 1, (k - 1) * (n_groups - 1)], dtype=float)
    df_error = np.array([n - n_groups, (k - 1) * (n - n_groups), (k - 1) * (n - n_groups)], dtype=float)
    ss = np.array([ss_between, ss_within, ss_interaction])
    ss_error = np.array([ss_error_between, ss_error_within, ss_error_within])
    f = (ss / df) / (ss_error / df_error)
    p = special.fdtrc(df, df_error, f)
    # Greenhouse-Geisser epsilon of the within terms: pooled within-group covariance of orthonormal contrasts
    if k > 2:
        residual = y - cell_means
        covariance = np.cov(residual, rowvar=False, ddof=1)
        contrasts = _orthonormal_contrasts(k)
        m = contrasts.T @ covariance @ contrasts
        epsilon = float(min(np.trace(m) ** 2 / ((k - 1) * np.trace(m @ m)), 1.0))
    else:
        epsilon = 1.0
    p_gg = special.fdtrc(np.maximum(df[1:] * epsilon, 1.0), np.maximum(df_error[1:] * epsilon, 1.0), f[1:])
    eta = ss / (ss + ss_error)
    sources = ("between", "within", "interaction")
    return tuple(
        MixedAnovaTerm(
            source=sources[i],
            ss=float(ss[i]),
            df1=float(df[i]),
            df2=float(df_error[i]),
            f=float(f[i]),
            p_value=float(p[i]),
            # no correction with two visits (one contrast: sphericity holds), as pingouin
            p_value_gg=float(p_gg[i - 1]) if i and k > 2 else float("nan"),
            epsilon_gg=epsilon if i else float("nan"),
            partial_eta_squared=float(eta[i]),
        )
        for i in range(3)
    )
