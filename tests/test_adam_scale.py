"""The compact form an ADaM delivery is written from (k2trial.adam.write.coded_text, conformed) and the numpy
assembly of Dataset-JSON rows and XPT cells: the same bytes as the row-by-row encoders they replace, for awkward
values (quotes, backslashes, control characters, NUL, non-ASCII text, -0.0, NaN, infinities), any piece size,
and text columns given as str, object or categorical (with categories no record uses)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from k2trial.adam import xport
from k2trial.adam.write import _json_row_texts, coded_text

CREATED = dt.datetime(2024, 5, 6)
TEXTS = ["plain", 'with "quotes"', "back\\slash", "tab\tand\nnewline", "nul\x00byte", "é中😀", "", "x" * 40]


def _reference_rows(rows: list[list[object]]) -> bytes:
    """The rows as json.dumps writes them (the layout of k2trial.data.sdtm.dataset_json_bytes): one array per row,
    joined by ",\\n"."""
    return ",\n".join(json.dumps(r, ensure_ascii=False, separators=(",", ":"), allow_nan=False) for r in rows).encode(
        "utf-8"
    )


def _frame(n: int, seed: int = 3) -> tuple[pd.DataFrame, list[list[object]]]:
    """A frame of a string, an integer, a double and a date column, and the values dataset_json_document gives its
    rows (None for missing)."""
    rng = np.random.default_rng(seed)
    text = [TEXTS[i] for i in rng.integers(0, len(TEXTS), n)]
    integer = rng.integers(-5, 500, n).astype("float64")
    integer[rng.random(n) < 0.2] = np.nan
    double = rng.choice(np.array([0.1, -0.0, 0.0, 1e16, 2.5e-7, -3.75, np.nan, np.inf, 1 / 3]), n)
    days = rng.integers(20000, 20100, n).astype("float64")
    days[rng.random(n) < 0.3] = np.nan
    frame = pd.DataFrame({"T": pd.Series(text, dtype="str"), "I": integer, "D": double, "A": days})
    iso = [None if np.isnan(d) else (dt.date(1960, 1, 1) + dt.timedelta(days=int(d))).isoformat() for d in days]
    rows = [
        [t, None if np.isnan(i) else int(i), d if np.isfinite(d) else None, a]
        for t, i, d, a in zip(text, integer.tolist(), double.tolist(), iso, strict=True)
    ]
    return frame, rows


TYPES = ["string", "integer", "double", "date"]


def test_coded_text_is_the_text_column_with_exactly_the_values_present():
    values = pd.Series(["b", None, "a", "b", np.nan, "", "a"], dtype=object)
    coded = coded_text(values)
    assert coded.tolist() == ["b", "", "a", "b", "", "", "a"]
    assert coded.cat.categories.tolist() == ["b", "a", ""]  # first appearance; missing and "" are one value
    # a categorical: unused categories dropped, its own order kept, NaN is ""
    given = pd.Series(pd.Categorical(["y", None, "w"], categories=["w", "unused", "y"]))
    coded = coded_text(given)
    assert coded.tolist() == ["y", "", "w"]
    assert coded.cat.categories.tolist() == ["w", "y", ""]
    # not str: as astype("str") writes it
    assert coded_text(pd.Series([1, "1", 2.5, True], dtype=object)).tolist() == ["1", "1", "2.5", "True"]
    assert coded_text(pd.Series([1, "1"], dtype=object)).cat.categories.tolist() == ["1"]
    assert coded_text(pd.Series([], dtype="str")).tolist() == []


@pytest.mark.parametrize("step", [1, 2, 7, 60, 61, 1000])
def test_json_rows_assembled_with_numpy_are_json_dumps_rows(step):
    frame, rows = _frame(61)
    expected = _reference_rows(rows)
    assert b"\x00" not in expected and b"\\u0000" in expected  # NUL is escaped, never a byte of the text
    for text in (frame, frame.assign(T=coded_text(frame["T"])), frame.assign(T=frame["T"].astype(object))):
        pieces = list(_json_row_texts(text, TYPES, step))
        assert len(pieces) == -(-len(frame) // step)
        assert b",\n".join(pieces) == expected
    # one column (its cells are both the first and the last of a row), and no column at all
    only = list(_json_row_texts(frame[["I"]], ["integer"], step))
    assert b",\n".join(only) == _reference_rows([[r[1]] for r in rows])
    assert b",\n".join(_json_row_texts(frame[[]], [], step)) == _reference_rows([[] for _ in rows])


def test_categorical_coded_categories_start_at_the_frame_not_the_piece():
    """A categorical column is encoded once for the whole frame: a piece in which the longest value does not occur
    gives the same bytes."""
    frame = pd.DataFrame({"T": coded_text(pd.Series(["a"] * 5 + ["a much longer value"], dtype="str"))})
    assert b",\n".join(_json_row_texts(frame, ["string"], 2)) == _reference_rows([[t] for t in frame["T"]])


def _xpt(frame: pd.DataFrame, step: int) -> bytes:
    return b"".join(
        xport.xport_pieces(
            frame, name="ADTEST", label="Test", column_labels={}, lengths={"T": 40, "N": 8}, created=CREATED,
            chunk_records=step,
        )
    )  # fmt: skip


def test_xpt_cells_of_a_categorical_are_those_of_its_text():
    text = ["abc", "", "é中", "abc", "x" * 40, "b"]
    as_str = pd.DataFrame({"T": pd.Series(text, dtype="str"), "N": np.arange(6, dtype="float64")})
    reference = _xpt(as_str, 1000)
    assert reference.count(b"abc" + b" " * 37) == 2 and reference.count("é中".encode() + b" " * 35) == 1
    unused = pd.Categorical(text, categories=["never", "abc", "", "é中", "x" * 40, "b"])
    for frame in (as_str.assign(T=coded_text(as_str["T"])), as_str.assign(T=unused)):
        for step in (1, 4, 6, 7):
            assert _xpt(frame, step) == reference, step
    with pytest.raises(ValueError, match="41 bytes long"):
        _xpt(as_str.assign(T=coded_text(pd.Series(text[:-1] + ["y" * 41], dtype="str"))), 3)


def test_codes_in_looks_up_text_once_per_distinct_value():
    from k2trial.adam.common import codes_in

    values = ["b", None, "a", "zz", "b"]
    assert codes_in(pd.Series(values, dtype="str"), ["a", "b"]).tolist() == [1, -1, 0, -1, 1]
    categorical = pd.Series(pd.Categorical(values, categories=["zz", "unused", "a", "b"]))
    assert codes_in(categorical, ["a", "b"]).tolist() == [1, -1, 0, -1, 1]
    assert codes_in(pd.Series([1, 2], dtype=object), ["2"]).tolist() == [-1, 0]  # compared as text


def test_shared_keys_are_equal_exactly_where_the_rows_are():
    from k2trial.adam.common import group_codes, shared_keys

    left = [pd.Series(["K1", "K2", "K1", "K1"], dtype="str"), pd.Series([1.0, 2.0, np.nan, 2.0])]
    right = [pd.Series(pd.Categorical(["K1", "K1", "K3", "K2"], categories=["K3", "K2", "K1", "none"])),
             pd.Series([1.0, np.nan, 1.0, 2.0])]  # fmt: skip
    a, b = shared_keys(list(zip(left, right, strict=True)))
    same = a[:, None] == b[None, :]
    # (K1, 1) = right 0; (K2, 2) = right 3; (K1, missing) = right 1; (K1, 2) is not on the right
    assert [np.flatnonzero(row).tolist() for row in same] == [[0], [3], [1], []]
    codes = group_codes(pd.Series(["x", "y", "x", "x"]), pd.Series([1.0, 1.0, 1.0, 0.0]))
    assert codes[0] == codes[2] and len({codes[0], codes[1], codes[3]}) == 3


def test_text_of_codes_and_flags():
    from k2trial.adam.common import flag_where, text_of_codes

    coded = text_of_codes(np.array([0, 2, 1, -1]), ["x", "y", "x", "unused"])
    assert coded.tolist() == ["x", "x", "y", ""] and coded.cat.categories.tolist() == ["x", "y", ""]
    flags = flag_where([True, False, True])
    assert flags.tolist() == ["Y", "", "Y"] and flags.cat.categories.tolist() == ["", "Y"]
    assert flag_where([False, False], "").tolist() == ["", ""]


def test_sort_rows_of_coded_subjects_is_the_order_of_their_text():
    from k2trial.adam.common import coded_text, sort_rows

    ids = ["K2-010", "K2-2", "S1-001", "K2-010", "", "K2-2"]
    week = pd.Series([4.0, 0.0, 2.0, 0.0, 1.0, np.nan])
    as_text = sort_rows({"USUBJID": pd.Series(ids, dtype="str"), "WEEK": week}, "WEEK")
    coded = sort_rows({"USUBJID": coded_text(pd.Series(ids, dtype="str")), "WEEK": week}, "WEEK")
    assert coded["USUBJID"].tolist() == as_text["USUBJID"].tolist()
    assert as_text["USUBJID"].tolist() == ["", "S1-001", "K2-2", "K2-2", "K2-010", "K2-010"]
    np.testing.assert_array_equal(coded["WEEK"].to_numpy(), as_text["WEEK"].to_numpy())
    assert coded["WEEK"].tolist()[2] == 0.0 and np.isnan(coded["WEEK"].iloc[3])  # K2-2: week 0, then missing last
    assert coded["WEEK"].tolist()[4:] == [0.0, 4.0]
