"""k2trial.stats.mixed_anova against pingouin 0.7's mixed_anova (the independent implementation it stands in for in
the efficacy job): the shipped data's composite and random balanced and unbalanced designs agree to 1e-10."""

import warnings

import numpy as np
import pandas as pd
import pingouin
import pytest

from k2trial.stats.mixed_anova import _orthonormal_contrasts, mixed_anova


def _pingouin(values: np.ndarray, groups: np.ndarray) -> pd.DataFrame:
    n, k = values.shape
    long = pd.DataFrame(
        {
            "subject": np.repeat(np.arange(n), k),
            "group": np.repeat(groups, k),
            "visit": np.tile([f"v{j}" for j in range(k)], n),
            "y": values.ravel(),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pingouin.mixed_anova(data=long, dv="y", within="visit", between="group", subject="subject",
                                    correction=True)  # fmt: skip


def _agree(values, groups):
    ours = mixed_anova(values, groups)
    theirs = _pingouin(values, groups)
    for term, (_, row) in zip(ours, theirs.iterrows(), strict=True):
        assert term.f == pytest.approx(float(row["F"]), rel=1e-10)
        assert term.p_value == pytest.approx(float(row["p_unc"]), rel=1e-9, abs=1e-300)
        assert (term.df1, term.df2) == (float(row["DF1"]), float(row["DF2"]))
        assert term.partial_eta_squared == pytest.approx(float(row["np2"]), rel=1e-10)
        if term.source != "between":
            assert term.epsilon_gg == pytest.approx(float(row["eps"]), rel=1e-10)
            if "p_GG_corr" in row:
                assert term.p_value_gg == pytest.approx(float(row["p_GG_corr"]), rel=1e-9, abs=1e-300)
            else:  # two visits: pingouin corrects nothing
                assert values.shape[1] == 2 and np.isnan(term.p_value_gg)
        else:
            assert np.isnan(term.epsilon_gg) and np.isnan(term.p_value_gg)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sizes", [(10, 10), (17, 13), (4, 9, 6)])
@pytest.mark.parametrize("visits", [2, 3, 5])
def test_random_designs_agree_with_pingouin(seed, sizes, visits):
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"g{i}" for i in range(len(sizes))], sizes)
    subject = rng.normal(0, 1.5, len(groups))[:, None]
    trend = np.linspace(0, -3, visits)[None, :] * (1 + (groups == "g1")[:, None])
    values = np.round(5 + subject + trend + rng.normal(0, 0.8, (len(groups), visits)), 1)
    _agree(values, groups)


def test_a_hand_computed_design():
    # 2 groups x 2 subjects x 2 visits: y = [[1, 3], [2, 4]] in group a, [[2, 2], [4, 6]] in group b. Grand mean 3,
    # SS_total 4+0+1+1+1+1+1+9 = 18; group means 2.5, 3.5: SS_between 4 x 0.25 x 2 = 2; visit means 2.25, 3.75:
    # SS_within 4 x 0.5625 x 2 = 4.5; cell means a (1.5, 3.5), b (3, 4): SS_cells 4 x 0.25 + 1+4+1+4 = 11, so
    # SS_interaction 18 - 11 - 4.5 - 2 = 0.5; subject means 2, 3, 2, 5: SS_subjects 2 x (1+0+1+4) = 12, between
    # error 12 - 2 = 10 on 2 df, within error 18 - 4.5 - 12 - 0.5 = 1 on 2 df.
    y = np.array([[1, 3], [2, 4], [2, 2], [4, 6]], dtype=float)
    between, within, interaction = mixed_anova(y, np.array(["a", "a", "b", "b"]))
    assert (between.ss, within.ss, interaction.ss) == (2, 4.5, 0.5)
    assert between.f == pytest.approx(0.4) and within.f == pytest.approx(9) and interaction.f == pytest.approx(1)
    assert (between.df1, between.df2, within.df1, within.df2) == (1, 2, 1, 2)
    assert within.partial_eta_squared == pytest.approx(4.5 / 5.5)
    # F(1, 2) = t(2)^2, and P(|t(2)| > 3) = 1 - 3 / sqrt(3^2 + 2)
    assert within.p_value == pytest.approx(1 - 3 / 11**0.5, rel=1e-12)


def test_helmert_contrasts_are_orthonormal():
    c = _orthonormal_contrasts(5)
    assert np.allclose(c.T @ c, np.eye(4)) and np.allclose(c.sum(axis=0), 0)
