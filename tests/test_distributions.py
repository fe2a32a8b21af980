"""k2trial.stats.distributions against scipy.stats itself (the independent implementation it stands in for): the
same values to the last bit, on ordinary, extreme and invalid arguments, and the same average ranks."""

import numpy as np
import pytest
from scipy import stats

from k2trial.stats import distributions as dist

X = [-40.0, -8.2, -1.959963984540054, -0.5, 0.0, 1e-300, 0.3, 1.6448536269514722, 3.0, 12.5, 38.0, np.inf, -np.inf]
Q = [0.0, 1e-300, 1e-12, 0.0025, 0.025, 0.05, 0.5, 0.95, 0.975, 1.0 - 1e-12, 1.0, -0.1, 1.1]
DF = [1, 2, 3, 7.5, 29, 30, 1000, 0, -1]


def same(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.array_equal(a, b, equal_nan=True))


@pytest.mark.parametrize("x", X + [np.nan])
def test_normal_tails_are_scipys(x):
    assert same(dist.norm_cdf(x), stats.norm.cdf(x)) and same(dist.norm_sf(x), stats.norm.sf(x))


@pytest.mark.parametrize("q", Q + [np.nan])
def test_normal_quantiles_are_scipys(q):
    assert same(dist.norm_ppf(q), stats.norm.ppf(q)) and same(dist.norm_isf(q), stats.norm.isf(q))


@pytest.mark.parametrize("df", DF)
def test_t_tail_and_quantile_are_scipys(df):
    for x in X:
        assert same(dist.t_sf(x, df), stats.t.sf(x, df)), (x, df)
    for q in Q:
        assert same(dist.t_isf(q, df), stats.t.isf(q, df)), (q, df)


def test_values_a_statistician_knows():
    assert dist.norm_isf(0.025) == pytest.approx(1.959963984540054, abs=1e-15)
    assert dist.t_isf(0.025, 29) == pytest.approx(2.045229642132703, abs=1e-12)  # R: qt(0.975, 29)
    assert float(dist.t_sf(2.0, 10)) == pytest.approx(0.036694017385370, abs=1e-14)  # R: pt(2, 10, lower=FALSE)


@pytest.mark.parametrize(
    "values",
    [[], [3.0], [2.0, 1.0, 2.0, 3.0, 1.0, 2.0], [0.4, -0.1, 0.4, 0.4, 7.0, -3.5], list(range(10, 0, -1))],
)
def test_average_ranks_are_scipys(values):
    assert same(dist.rankdata(values), stats.rankdata(values))
    rng = np.random.default_rng(7)
    ties = rng.integers(0, 20, 500).astype(float)
    assert same(dist.rankdata(ties), stats.rankdata(ties))
