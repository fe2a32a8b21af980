"""k2trial.core.values: the one rounding rule, the comparison at recording precision, booleans, subject order,
percentages; checked on negatives, halves (0.285, 1.005, -2.5) and missing values by hand."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from k2trial.core import values


@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        (0.285, 2, 0.29),  # binary 0.28499999999999998 -> still 0.29
        (1.005, 2, 1.01),  # binary 1.00499999999999989 -> 1.01
        (-2.5, 0, -3.0),  # half away from zero, not towards +inf (floor(x + 0.5) gave -2)
        (2.5, 0, 3.0),  # not half to even (round() gives 2)
        (-0.25, 1, -0.3),
        (-1.005, 2, -1.01),
        (2.675, 2, 2.68),
        (0.125, 2, 0.13),
        (406.6141, 0, 407.0),
        (-0.04, 1, -0.0),
        (7.0, 2, 7.0),
    ],
)
def test_round_half_away(value, decimals, expected):
    assert values.round_half_away([value], decimals)[0] == expected


def test_round_half_away_per_value_decimals_and_missing():
    out = values.round_half_away([1.25, -1.25, np.nan, 3.14159], [1, 1, 2, 3])
    assert out[[0, 1, 3]].tolist() == [1.3, -1.3, 3.142]
    assert np.isnan(out[2])


@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        (0.285, 2, Decimal("0.29")),
        (1.005, 2, Decimal("1.01")),
        (-2.5, 0, Decimal("-3")),
        (-0.04, 1, Decimal("0.0")),  # no sign on zero
        (float("nan"), 2, None),
        (None, 2, None),
        (float("inf"), 1, None),
        (True, 1, None),  # a boolean is no number
        ("abc", 1, None),
    ],
)
def test_rounded_decimal(value, decimals, expected):
    assert values.rounded_decimal(value, decimals) == expected


def test_both_rules_agree_on_the_same_numbers():
    numbers = [0.285, 1.005, -2.5, 2.675, -0.25, 1234.5, -1.005, 0.0449999]
    for x in numbers:
        for decimals in (0, 1, 2):
            assert Decimal(repr(float(values.round_half_away([x], decimals)[0]))) == values.rounded_decimal(
                x, decimals
            ), (x, decimals)


def test_compare_at_precision_at_boundaries():
    # 120 U/L is exactly 3 x 40 U/L at 0 decimals although 3 * 40.0 may carry float noise
    assert values.compare_at_precision([120.0], [3 * 40.0], ">", 0).tolist() == [False]
    assert values.compare_at_precision([120.0], [3 * 40.0], ">=", 0).tolist() == [True]
    assert values.compare_at_precision([1.05], [3 * 0.35], ">=", 2).tolist() == [True]
    # the value is compared at its precision: 119.6 is 120 at 0 decimals; -2.5 is -3
    assert values.compare_at_precision([119.6], [120.0], ">=", 0).tolist() == [True]
    assert values.compare_at_precision([-2.5, -2.4], [-3.0, -3.0], "<=", 0).tolist() == [True, False]
    assert values.compare_at_precision([np.nan, 1.0], [1.0, np.nan], "<", 0).tolist() == [False, False]
    with pytest.raises(ValueError, match="operator"):
        values.compare_at_precision([1.0], [1.0], "==", 0)


def test_booleans():
    text = pd.Series(["True", "false", "yes", "N", "y", "1", "0", "1.0", "0.0", "", None, "maybe", " TRUE "])
    assert values.to_boolean(text).tolist() == [
        True, False, True, False, True, True, False, True, False, pd.NA, pd.NA, pd.NA, True,
    ]  # fmt: skip
    assert values.as_bool(text).tolist() == [True, False, True, False, True, True, False, True, False] + [False] * 3 + [
        True
    ]
    assert values.as_bool(pd.Series([True, False])).tolist() == [True, False]
    assert values.as_bool(pd.Series(["yes", "no", None], dtype="category")).tolist() == [True, False, False]
    assert values.to_boolean(pd.array([True, None], dtype="boolean")).tolist() == [True, pd.NA]
    # a table cell is a boolean only when it says true or false: 1 and "yes" are not
    assert [values.boolean_cell(v) for v in (True, np.bool_(False), "TRUE", " false ", 1, "yes", None)] == [
        True, False, True, False, None, None, None,
    ]  # fmt: skip


def test_subject_order():
    ids = ["K2-010", "K2-002", "K2-100", None, "no number", "K2-002"]
    assert values.subject_numbers(ids).tolist() == [10, 2, 100, -1, -1, 2]
    frame = pd.DataFrame({"subject_id": ["K2-010", "K2-002", "K2-100", "K2-002"], "week": [0, 8, 0, 0]})
    ordered = values.sort_by_subject(frame, frame["week"].to_numpy())
    assert ordered[["subject_id", "week"]].values.tolist() == [
        ["K2-002", 0],
        ["K2-002", 8],
        ["K2-010", 0],
        ["K2-100", 0],
    ]


def test_percent():
    assert values.percent([1, 2, 0], [3, 0, np.nan]).tolist()[0] == pytest.approx(100 / 3)
    assert np.isnan(values.percent([1, 2, 0], [3, 0, np.nan])[1:]).all()
