"""The column-wise ADaM writers (issue 18): k2trial.adam.xport gives the bytes of pyreadstat's XPT v5 writer, and the
Dataset-JSON rows encoded column by column are the bytes of the row-by-row encoding they replace.

XPT: byte for byte k2trial.data.sdtm.xpt_bytes (pyreadstat.write_xport, header timestamps set) with the display
formats set by set_xpt_formats, for numbers at the edges of the IBM format (zero, negative zero, subnormals, 16**-65,
16**63, infinities, NaN, random bit patterns), text with non-ASCII UTF-8, blanks and empty values, and no records;
the IBM doubles of TS-140's worked examples by hand; the files read back with pyreadstat and with R haven::read_xpt
(values, missing values, labels, lengths, DATE9. dates). Dataset-JSON: the pieces equal, for any piece size, the
metadata and rows of k2trial.data.sdtm.dataset_json_document encoded row by row with json.dumps (the encoding of
the previous writer), with -0.0, whole and fractional numbers, missing values, quotes, control characters and
non-ASCII text.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyreadstat
import pytest
import rscript

from k2trial.adam import xport
from k2trial.adam.common import iso_dates
from k2trial.adam.spec import Dataset, Variable
from k2trial.adam.write import (
    _made_ahead,
    dataset_json_dataset_chunks,
    dataset_json_pieces,
    set_xpt_formats,
    xpt_namestrs,
)
from k2trial.data import sdtm

r_session = rscript.r_session
CREATED = dt.datetime(2024, 3, 5, 13, 4, 59)
EDGES = [0.0, -0.0, np.nan, 1.0, -1.0, 0.5, 100.0, -123456.789, 0.1, 1e-300, 5e-324, 16.0**-65, 16.0**-64,
         1e300, 16.0**63, 16.0**62, np.inf, -np.inf, 2.0**53 + 1, -(2.0**60)]  # fmt: skip


def _frame(n: int = 400, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = np.concatenate([EDGES, rng.normal(0, 1e3, n - len(EDGES))])
    return pd.DataFrame(
        {
            "AVAL": values,
            "TEXT": pd.Series(rng.choice(["x", "yy", "", "héllo wörld", "a  b", 'say "hi"'], n), dtype="str"),
            "ADT": np.where(rng.random(n) < 0.1, np.nan, rng.integers(-3000, 30000, n)).astype(float),
            "EMPTY": pd.Series([""] * n, dtype="str"),
        }
    )


LABELS = {"AVAL": "Analysis Value", "TEXT": "Ströng value", "ADT": "Analysis Date", "EMPTY": "Never filled"}
LENGTHS = {"AVAL": 8, "TEXT": 13, "ADT": 8, "EMPTY": 1}  # "héllo wörld" is 13 bytes in UTF-8


def _lengths(frame: pd.DataFrame) -> dict[str, int]:
    """8 for a number, the longest text in UTF-8 bytes (at least 1): the lengths pyreadstat gives."""
    return {c: 8 if frame[c].dtype == "float64" else max([1, *(len(v.encode()) for v in frame[c])]) for c in frame}


def _ours(frame: pd.DataFrame, chunk_records: int = 37) -> bytes:
    return b"".join(
        xport.xport_pieces(
            frame, name="ADTEST", label="A täst dataset", column_labels=LABELS, lengths=_lengths(frame),
            formats={"ADT": ("DATE", 9, 0)}, created=CREATED, chunk_records=chunk_records,
        )
    )  # fmt: skip


def _pyreadstat(frame: pd.DataFrame) -> bytes:
    data = sdtm.xpt_bytes(frame, name="ADTEST", created=CREATED, label="A täst dataset", column_labels=LABELS)
    return set_xpt_formats(data, {"ADT": "DATE9."})


@pytest.mark.parametrize("n", [400, 0, 1])
def test_xport_writes_the_bytes_of_pyreadstat(n):
    frame = _frame(max(n, len(EDGES))).iloc[:n]
    expected = _pyreadstat(frame)
    assert _ours(frame) == expected
    assert _ours(frame, chunk_records=1) == expected  # the same for any piece size
    assert len(expected) % 80 == 0


def test_ibm_doubles_of_random_bit_patterns_are_pyreadstats():
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**64, 20_000, dtype=np.uint64, endpoint=False)
    frame = pd.DataFrame({"X": bits.view(np.float64)})
    expected = sdtm.xpt_bytes(frame, name="T", created=CREATED)
    ours = b"".join(xport.xport_pieces(frame, name="T", label="", column_labels={}, lengths={"X": 8}, created=CREATED))
    assert ours == expected


def test_ibm_doubles_by_hand():
    # TS-140's examples (1, -1, 0.5, 100), zero, the missing value "." and the largest IBM number for 16**63
    values = np.array([1.0, -1.0, 0.5, 100.0, 0.0, -0.0, np.nan, 16.0**63, -np.inf, 16.0**-65 / 2])
    got = [f"{v:016X}" for v in xport.ibm_doubles(values).astype(np.uint64)]
    assert got == ["4110000000000000", "C110000000000000", "4080000000000000", "4264000000000000",
                   "0000000000000000", "0000000000000000", "2E00000000000000", "7FFFFFFFFFFFFFFF",
                   "FFFFFFFFFFFFFFFF", "0000000000000000"]  # fmt: skip


def test_xport_refuses_what_xpt_v5_cannot_hold():
    frame = _frame(30)
    with pytest.raises(ValueError, match="TEXT: a value is 13 bytes long, the variable 5"):
        b"".join(xport.xport_pieces(frame, name="ADTEST", label="", column_labels=LABELS,
                                    lengths={**LENGTHS, "TEXT": 5}, created=CREATED))  # fmt: skip
    with pytest.raises(ValueError, match="TEXT: length 201; XPT v5 allows 1 to 200"):
        b"".join(xport.xport_pieces(frame, name="ADTEST", label="", column_labels=LABELS,
                                    lengths={**LENGTHS, "TEXT": 201}, created=CREATED))  # fmt: skip
    with pytest.raises(ValueError, match="variable name 'LONGNAME9'"):
        renamed = frame.rename(columns={"AVAL": "LONGNAME9"})
        b"".join(xport.xport_pieces(renamed, name="ADTEST", label="", column_labels={},
                                    lengths={**LENGTHS, "LONGNAME9": 8}, created=CREATED))  # fmt: skip


def test_xport_reads_back_with_pyreadstat(tmp_path):
    frame = _frame()
    path = tmp_path / "adtest.xpt"
    path.write_bytes(_ours(frame))
    back, meta = pyreadstat.read_xport(str(path))
    assert meta.table_name == "ADTEST" and meta.file_label == "A täst dataset"
    assert meta.column_names_to_labels == LABELS
    assert meta.variable_storage_width == LENGTHS
    assert meta.original_variable_types["ADT"] == "DATE9"
    assert [n["format"] for n in xpt_namestrs(path.read_bytes())] == ["", "", "DATE9.", ""]
    assert back["TEXT"].tolist() == frame["TEXT"].tolist() and back["EMPTY"].tolist() == [""] * len(frame)
    days = pd.to_datetime(back["ADT"]) - pd.Timestamp("1960-01-01")
    assert np.array_equal(days.dt.days.to_numpy(dtype=float), frame["ADT"].to_numpy(), equal_nan=True)
    # IBM doubles hold every IEEE double of this range exactly; outside it they saturate or flush to zero
    values, read = frame["AVAL"].to_numpy(), back["AVAL"].to_numpy()
    exact = np.isnan(values) | (np.isfinite(values) & (np.abs(values) < 16.0**62) & (np.abs(values) > 16.0**-64))
    assert np.array_equal(read[exact], values[exact], equal_nan=True)
    assert np.isnan(read[2]) and read[1] == 0.0 and read[10] == 0.0  # missing; -0.0 and 5e-324 as 0


@rscript.requires_r
def test_xport_reads_back_with_r_haven(r_session, tmp_path):
    r_session.need("haven")
    frame = _frame(60)
    path = tmp_path / "adtest.xpt"
    path.write_bytes(_ours(frame))
    r = r_session.run(f"""
        d <- haven::read_xpt("{path.as_posix()}")
        result <- list(label = attr(d, "label"), names = as.list(names(d)),
                       labels = as.list(unname(vapply(d, function(x) attr(x, "label"), ""))),
                       date_class = class(d$ADT)[1], date_format = attr(d$ADT, "format.sas"),
                       adt = as.list(format(d$ADT, "%Y-%m-%d")),
                       aval = as.list(d$AVAL), text = as.list(d$TEXT), empty = as.list(d$EMPTY))
    """)  # fmt: skip
    assert r["label"] == "A täst dataset"
    assert r["names"] == list(frame.columns) and r["labels"] == list(LABELS.values())
    assert r["date_class"] == "Date" and r["date_format"] == "DATE9"
    assert r["adt"] == iso_dates(frame["ADT"])
    assert r["text"] == frame["TEXT"].tolist() and r["empty"] == [""] * len(frame)
    values = frame["AVAL"].to_numpy()
    exact = np.isfinite(values) & (np.abs(values) < 16.0**62) & (np.abs(values) > 16.0**-64)
    theirs = np.array([np.nan if v is None else v for v in r["aval"]], dtype=float)
    assert np.array_equal(theirs[exact], values[exact]) and np.isnan(theirs[2])


# ----------------------------------------------------------------------------------------------------------------
# Dataset-JSON
# ----------------------------------------------------------------------------------------------------------------
def _variable(name: str, kind: str, datatype: str, fmt: str | None = None) -> Variable:
    return Variable(name=name, label=f"{name} label", type=kind, datatype=datatype, origin="Derived", derivation="",
                    length=None, format=fmt, codelist=None, source=())  # fmt: skip


DATASET = Dataset(
    name="ADTEST", label="Test dataset", class_="BDS", structure="one record per row",
    keys=("USUBJID", "SEQ"), sources=(),
    variables=(_variable("USUBJID", "char", "text"), _variable("SEQ", "num", "integer"),
               _variable("AVAL", "num", "float"), _variable("ADT", "num", "date", "DATE9."),
               _variable("NOTE", "char", "text")),
)  # fmt: skip


class _Spec:  # what dataset_json_dataset_chunks reads of an AdamSpec
    studyid = "K2-TEST"


def _json_frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    aval = np.array([round(v, d) for v, d in zip(rng.normal(0, 50, n), rng.integers(0, 6, n), strict=True)])
    aval[:8] = [0.0, -0.0, np.nan, np.inf, 1.0, 1e-300, 123456789.0, -2.5]
    seq = np.arange(1, n + 1, dtype=float)
    seq[5] = np.nan
    notes = ["", "plain", 'quote " and \\ backslash', "tab\tnew\nline \x01", "naïve café ✓", "</script>"]
    return pd.DataFrame(
        {
            "USUBJID": pd.Series([f"K2-{i // 3:03d}" for i in range(n)], dtype="str"),
            "SEQ": seq,
            "AVAL": aval,
            "ADT": np.where(rng.random(n) < 0.2, np.nan, rng.integers(20000, 23000, n)).astype(float),
            "NOTE": pd.Series(rng.choice(notes, n), dtype="str"),
        }
    )


def _rows(text: bytes) -> bytes:
    return text[text.index(b',"rows":[') :]


def _row_by_row(frame: pd.DataFrame) -> bytes:
    """The rows as the previous writer wrote them: dataset_json_document's (dates as ISO text, missing dates None),
    each row encoded with json.dumps."""
    dates = {"ADT": pd.Series([d or "" for d in iso_dates(frame["ADT"])], dtype="str")}
    meta, rows = sdtm.dataset_json_document(
        frame.assign(**dates), name="ADTEST", label=DATASET.label, creation_datetime=CREATED,
        column_labels={v.name: v.label for v in DATASET.variables},
        data_types={"USUBJID": "string", "SEQ": "integer", "AVAL": "double", "ADT": "date", "NOTE": "string"},
    )  # fmt: skip
    for row, missing in zip(rows, frame["ADT"].isna(), strict=True):
        if missing:
            row[3] = None
    return _rows(b"".join(dataset_json_pieces(meta, [rows])))


@pytest.mark.parametrize("chunk", [1, 7, 100_000])
def test_dataset_json_rows_are_those_encoded_row_by_row(chunk):
    frame = _json_frame()
    pieces = list(dataset_json_dataset_chunks(frame, DATASET, _Spec(), created=CREATED, chunk_records=chunk))
    text = b"".join(pieces)
    assert _rows(text) == _row_by_row(frame)
    document = json.loads(text)
    assert document["records"] == len(frame)
    assert [c.get("length") for c in document["columns"]] == [6, None, None, None, 23]
    assert document["rows"][2][2] is None and document["rows"][3][2] is None  # NaN and inf are null
    assert json.dumps(document["rows"][1][2]) == "-0.0" and document["rows"][5][1] is None
    assert all(r[3] is None for r, m in zip(document["rows"], frame["ADT"].isna(), strict=True) if m)


def test_dataset_json_of_no_records():
    text = b"".join(dataset_json_dataset_chunks(_json_frame().iloc[:0], DATASET, _Spec(), created=CREATED))
    assert text.endswith(b',"rows":[]}\n') and json.loads(text)["records"] == 0


def test_pieces_made_ahead_come_in_order_and_errors_reach_the_writer():
    assert list(_made_ahead(iter([b"a", b"b", b"c"]), depth=1)) == [b"a", b"b", b"c"]

    def failing():
        yield b"first"
        raise ValueError("ADTEST: piece 2 failed")

    made = _made_ahead(failing())
    assert next(made) == b"first"
    with pytest.raises(ValueError, match="piece 2 failed"):
        next(made)
