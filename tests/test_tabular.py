"""Raw CSV reading and deterministic artifact writing (k2trial.tabular)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from k2trial.errors import InputDataError
from k2trial.tabular import FLOAT_FORMAT, csv_bytes, json_bytes, read_raw_csv, write_csv


def _write(tmp_path, content: str | bytes, name: str = "t.csv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_cells_are_text_and_na_is_sodium_not_missing(tmp_path):
    frame = read_raw_csv(_write(tmp_path, "test_code,result\nNA,140\nK,\n"))
    assert frame["test_code"].tolist() == ["NA", "K"]
    assert frame["result"].tolist() == ["140", ""]


def test_spreadsheet_rows_count_the_header_blank_lines_and_quoted_line_breaks(tmp_path):
    content = 'a,b\n1,"x\ny"\n\n   \n2,"7,5"\r\n3,4'
    frame = read_raw_csv(_write(tmp_path, content))
    assert frame["_row"].tolist() == [2, 5, 6]
    assert frame["b"].tolist() == ["x\ny", "7,5", "4"]


def test_byte_order_mark_is_dropped_from_the_header(tmp_path):
    frame = read_raw_csv(_write(tmp_path, "\ufeffsubject_id,x\nK2-001,1\n"))
    assert list(frame.columns) == ["_row", "subject_id", "x"]


@pytest.mark.parametrize(
    ("content", "rule", "row"),
    [
        ("a,b\n1,2,3\n", "rectangular", 2),
        ("a,b\n1,2\n3\n", "rectangular", 3),
        ("", "not_empty", None),
        (b"a,b\n1,2\n3,\xe9t\xe9\n", "utf8_encoding", 3),
    ],
)
def test_unreadable_files_name_file_row_and_rule(tmp_path, content, rule, row):
    with pytest.raises(InputDataError) as info:
        read_raw_csv(_write(tmp_path, content, "labs.csv"))
    problem = info.value.problems[0]
    assert (problem.file, problem.rule, problem.row, problem.severity) == ("labs.csv", rule, row, "error")
    assert "labs.csv" in str(info.value)


def test_missing_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(InputDataError, match="dosing.csv"):
        read_raw_csv(tmp_path / "dosing.csv")


def test_floats_are_written_as_pandas_would_with_the_fixed_format():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(size=200) * 10.0 ** rng.integers(-8, 8, 200), [np.nan, 0.1 + 0.2, 1e-300]])
    frame = pd.DataFrame({"x": values, "y": np.round(values, 1) + 0.0})  # -0.0 is written as 0 on purpose
    expected = io.StringIO()
    frame.to_csv(expected, index=False, lineterminator="\n", float_format=FLOAT_FORMAT)
    assert csv_bytes(frame) == expected.getvalue().encode()
    assert csv_bytes(pd.DataFrame({"z": [-0.0, 2.0, np.nan], "k": [1, 2, 3]})) == b"z,k\n0,1\n2,2\n,3\n"


def test_text_cells_cannot_run_as_spreadsheet_formulas_but_numbers_stay_numbers():
    terms = ['=HYPERLINK("http://x")', "+1+2", "@SUM(A1)", "-cmd", "-1.5", "ok"]
    frame = pd.DataFrame({"term": terms, "n": range(6)})
    lines = csv_bytes(frame).decode().splitlines()
    assert lines[1].startswith("\"'=HYPERLINK(")
    assert lines[2:6] == ["'+1+2,1", "'@SUM(A1),2", "'-cmd,3", "-1.5,4"]


def test_writes_are_atomic_and_readable(tmp_path):
    target = tmp_path / "out" / "t.csv"
    write_csv(pd.DataFrame({"a": [1.5]}), target)
    assert target.read_bytes() == b"a\n1.5\n"
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in target.parent.iterdir()] == ["t.csv"]


def test_json_is_canonical():
    assert json_bytes({"b": float("nan"), "a": np.int64(2)}) == b'{\n  "a": 2,\n  "b": null\n}\n'
