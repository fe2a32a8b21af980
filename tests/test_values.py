"""k2trial.core.values: the one rounding rule (decimals, significant digits, displayed text), the comparison at 15
significant digits, booleans, subject order, percentages; checked on negatives, halves (0.285, 1.005, -2.5) and
missing values by hand."""

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


def test_numbers_and_displayed_text_round_by_one_rule():
    # 0.15 - 0.1 is 0.04999999999999999 in binary: at 15 significant digits it is the decimal half 0.05, so both the
    # stored number and the displayed text are 0.1 (the display helper used to give "0.0", the numeric one 0.1)
    difference = 0.15 - 0.1
    assert difference < 0.05
    assert values.round_half_away([difference], 1)[0] == 0.1
    assert values.rounded_decimal(difference, 1) == Decimal("0.1")
    # a value truly below the half stays below: 89.4999999999 is 89 (the 1e-9 nudge of the old rule made it 90)
    assert values.round_half_away([89.4999999999], 0)[0] == 89.0
    assert values.rounded_decimal(89.4999999999, 0) == Decimal("89")
    # tens: decimals may be negative
    assert values.round_half_away([125.0, -125.0, 124.9], -1).tolist() == [130.0, -130.0, 120.0]


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (1.23456789, 6, 1.23457),
        (1.234565, 6, 1.23457),  # a decimal half at the 7th digit: away from zero (f"{x:.5e}" gives 1.23456)
        (-1.234565, 6, -1.23457),
        (9.999995, 6, 10.0),  # the carry adds a digit
        (5.09300552306e-20, 6, 5.09301e-20),  # the Wald p of issue 12, item 1
        (1.0499999999999998, 15, 1.05),  # 3 x 0.35: binary representation error removed
        (2.49, 15, 2.49),  # a recorded value keeps its digits
        (123456789.0, 6, 123457000.0),
        (0.0, 6, 0.0),
    ],
)
def test_round_significant(value, digits, expected):
    assert values.round_significant([value], digits)[0] == expected


def test_round_significant_keeps_missing_and_infinite_and_drops_negative_zero():
    out = values.round_significant([np.nan, np.inf, -np.inf, -0.0], 6)
    assert np.isnan(out[0]) and out[1:3].tolist() == [np.inf, -np.inf]
    assert np.copysign(1.0, out[3]) == 1.0
    with pytest.raises(ValueError, match="digits"):
        values.round_significant([1.0], 16)


def test_recorded_decimals():
    got = values.recorded_decimals([23.5, 1.05, 120.0, 3 * 0.35, np.nan, 0.0, 0.1 + 0.2, 1e-5, -0.25])
    assert got.tolist() == [1, 2, 0, 2, 0, 0, 1, 5, 2]


def test_compare_at_fifteen_significant_digits():
    # 120 U/L is exactly 3 x 40 U/L and 1.05 mg/dL exactly 3 x 0.35 mg/dL although the products carry float noise
    assert 3 * 0.35 < 1.05
    assert values.compare([120.0, 1.05], [3 * 40.0, 3 * 0.35], ">").tolist() == [False, False]
    assert values.compare([120.0, 1.05], [3 * 40.0, 3 * 0.35], ">=").tolist() == [True, True]
    # a value is compared as recorded: 2.49 mmol/L is below 2.5, 119.6 U/L below 120
    assert values.compare([2.49, 119.6], [2.5, 120.0], "<").tolist() == [True, True]
    assert values.compare([np.nan, 1.0], [1.0, np.nan], "<").tolist() == [False, False]
    assert values.compare(1.05, [3 * 0.35, 1.0], "<=").tolist() == [True, False]
    with pytest.raises(ValueError, match="operator"):
        values.compare([1.0], [1.0], "==")


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
