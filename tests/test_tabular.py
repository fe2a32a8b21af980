"""Raw CSV reading and deterministic artifact writing (k2trial.core.io)."""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import pandas as pd
import pytest

from k2trial.core import io as tabular
from k2trial.core.errors import InputDataError
from k2trial.core.io import (
    FLOAT_FORMAT,
    csv_bytes,
    escape_formulas,
    floats_as_text,
    json_bytes,
    read_raw_csv,
    sweep_orphaned_temporaries,
    write_csv,
)


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
    terms = ['=HYPERLINK("http://x")', "+A1+2", "@SUM(A1)", "-cmd", "-2+3+cmd|' /C calc'!A0", "-1.5", "ok"]
    frame = pd.DataFrame({"term": terms, "n": range(7)})
    lines = csv_bytes(frame).decode().splitlines()
    assert lines[1].startswith("\"'=HYPERLINK(")
    assert lines[2:5] == ["'+A1+2,1", "'@SUM(A1),2", "'-cmd,3"]
    assert lines[5].startswith("'-2+3+cmd|")
    assert lines[6:8] == ["-1.5,5", "ok,6"]


def test_numbers_as_tables_display_them_are_not_escaped():
    shown = ["-4.51 (0.79)", "-6.20 (-6.84, -5.58)", "-8.2 to -5.1", "-12.5%", "+3", "-", "-1e-05"]
    assert csv_bytes(pd.DataFrame({"cell": ["-2+3", "-1.5-2"], "n": [0, 1]})) == b"cell,n\n'-2+3,0\n'-1.5-2,1\n"
    frame = pd.DataFrame({"cell": shown, "n": range(len(shown))})
    cells = [line.rsplit(",", 1)[0].strip('"') for line in csv_bytes(frame).decode().splitlines()[1:]]
    assert cells == shown


def test_writes_are_atomic_and_readable(tmp_path):
    target = tmp_path / "out" / "t.csv"
    write_csv(pd.DataFrame({"a": [1.5]}), target)
    assert target.read_bytes() == b"a\n1.5\n"
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in target.parent.iterdir()] == ["t.csv"]


def test_a_write_removes_the_orphaned_temporaries_of_its_target_only(tmp_path):
    # issue 12, item 2: a run killed mid-write left results/analysis/.subjects.csv.<random>.part behind. The next
    # write of subjects.csv removes the temporaries of subjects.csv whose writer is gone, and nothing else: not a
    # live writer's temporary (another job may be writing), not the temporary of another file in the folder.
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)  # that process has exited
    folder = tmp_path / "analysis"
    folder.mkdir()
    orphan = folder / f".subjects.csv.{dead_pid}.0123abcd.part"
    live = folder / f".subjects.csv.{os.getpid()}.89abcdef.part"  # a writer that still runs
    other = folder / f".subjects.csv.gz.{dead_pid}.0123abcd.part"  # another target's temporary
    unrelated = folder / ".subjects.csv.part"
    for path in (orphan, live, other, unrelated):
        path.write_bytes(b"")
    write_csv(pd.DataFrame({"a": [1]}), folder / "subjects.csv")
    assert sorted(p.name for p in folder.iterdir()) == sorted(["subjects.csv", live.name, other.name, unrelated.name])
    assert sweep_orphaned_temporaries(folder / "subjects.csv") == []  # nothing left to sweep


def test_json_is_canonical():
    assert json_bytes({"b": float("nan"), "a": np.int64(2)}) == b'{\n  "a": 2,\n  "b": null\n}\n'


def _reference_csv(frame: pd.DataFrame) -> bytes:
    """pandas' own writer on the escaped, float-formatted frame: what the fast writer must reproduce."""
    buffer = io.StringIO()
    floats_as_text(escape_formulas(frame)).to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def test_fast_csv_writer_gives_the_bytes_of_pandas_across_chunks(monkeypatch):
    rng = np.random.default_rng(11)
    n = 53
    texts = np.array(["plain", "with,comma", 'say "hi"', "two\nlines", "=cmd", "-1.5", "", "é ü"], dtype=object)
    frame = pd.DataFrame(
        {
            "text": texts[rng.integers(0, len(texts), n)],
            "category": pd.Categorical(texts[rng.integers(0, 4, n)]),
            "float": np.where(
                rng.random(n) < 0.2, np.nan, np.round(rng.normal(size=n) * 10.0 ** rng.integers(-3, 4, n), 2)
            ),
            "int": rng.integers(-5, 10_000, n),
            "nullable": pd.array(np.where(rng.random(n) < 0.3, None, rng.integers(0, 9, n)), dtype="Int64"),
            "flag": rng.random(n) < 0.5,
            # last: an integer column ends each line (its separator is the line end), with int64's extremes
            "big": np.where(rng.random(n) < 0.1, np.iinfo(np.int64).min, rng.integers(-(10**18), 10**18, n)),
        }
    )
    frame.loc[5, "big"] = np.iinfo(np.int64).max
    frame.loc[3, "float"] = -0.0
    assert tabular._fast_csv_columns(frame) is not None, "the frame should take the fast path"
    expected = _reference_csv(frame)
    assert csv_bytes(frame) == expected
    monkeypatch.setattr(tabular, "CSV_CHUNK_ROWS", 7)  # many chunks: rows must join across boundaries
    assert csv_bytes(frame) == expected
    assert csv_bytes(frame.iloc[:0]) == _reference_csv(frame.iloc[:0])


def _fields_by_csv_module(text: str) -> list[int]:
    return [len(record) for record in csv.reader(io.StringIO(text, newline="")) if record]


@pytest.mark.parametrize("seed", range(6))
def test_record_shape_agrees_with_the_csv_module(seed):
    rng = np.random.default_rng(seed)
    pieces = ["a", "1,5", 'q"q', "x\ny", " ", "", "z" * int(rng.integers(200, 400)) if seed % 2 else "zz"]
    lines = []
    for _ in range(40):
        n_fields = int(rng.integers(1, 6))
        fields = ["id"] + [pieces[int(i)] for i in rng.integers(0, len(pieces), n_fields)]
        lines.append(",".join('"' + f.replace('"', '""') + '"' if set(f) & set(',"\n') else f for f in fields))
    text = "\n".join(lines) + ("\n" if seed % 3 else "")
    fields, _ = tabular._record_shape(text.encode("utf-8"))
    assert fields.tolist() == _fields_by_csv_module(text)


def test_validation_reads_the_same_with_categorical_columns():
    from pathlib import Path

    from k2trial.data import raw_files, validation
    from k2trial.data.contract import read_contract

    root = Path(__file__).resolve().parents[1]
    contract = read_contract(root / "data/raw/codebook.yaml", root / "config/lab_units.yaml")
    fixture = root / "tests/fixtures/minimal"
    paths = {name: fixture / name for name in raw_files.input_keys(contract)}
    windows = {
        "diary_days": 3,
        "clinic_visits": [{"week": w, "day": 7 * w, "window_days": 7} for w in (0, 4, 8)],
        "baseline_days_before_first_dose": 28,
    }
    plain = validation.validate_dataset(raw_files.read_raw_dataset(paths, contract), contract, windows)
    coded = validation.validate_dataset(
        raw_files.read_raw_dataset(paths, contract, categorical=True), contract, windows
    )
    assert csv_bytes(plain.problems) == csv_bytes(coded.problems)
    assert len(plain.problems) > 0


def test_the_hash_of_a_file_this_process_wrote_is_its_bytes_hash_and_follows_any_change(tmp_path):
    import hashlib
    import os
    import time

    from k2trial.core import io as kio

    path = tmp_path / "a.bin"
    data = [b"chunk one,", b"chunk two"]
    size, digest = kio.write_bytes(iter(data), path)
    assert (size, digest) == (19, hashlib.sha256(b"".join(data)).hexdigest())
    assert kio.sha256_file(path) == digest and kio.write_bytes(iter(data), path)[1] == digest
    # rewritten by another writer (same size, later time): the file is read again
    time.sleep(0.01)
    path.write_bytes(b"chunk ONE,chunk two")
    assert kio.sha256_file(path) == hashlib.sha256(b"chunk ONE,chunk two").hexdigest()
    # replaced by a rename (a new inode) with the recorded time forced back: read again too
    kio.write_text("x", path)
    other = tmp_path / "b.bin"
    other.write_bytes(b"y")
    recorded = os.stat(path)
    os.replace(other, path)
    os.utime(path, ns=(recorded.st_atime_ns, recorded.st_mtime_ns))
    assert kio.sha256_file(path) == hashlib.sha256(b"y").hexdigest()
