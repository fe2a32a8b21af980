"""SAS transport (XPORT) version 5 files written column-wise with numpy: the bytes pyreadstat's write_xport gives.

The layout is that of SAS TS-140 ("The record layout of a data set in SAS transport (XPORT) format"), as written
by ReadStat (the library inside pyreadstat), so that a file written here is byte for byte the one
k2trial.data.sdtm.xpt_bytes writes, with its header timestamps set (set_xpt_timestamps) and the display formats in
the NAMESTR records (k2trial.adam.write.set_xpt_formats); tests/test_adam_xport.py checks both, and reads the files
back with pyreadstat and with R haven::read_xpt.

- 80-byte records: the library header record and its two real records (SAS, SASLIB, version 6.06, OS bsd4.2, the
  created and modified datetimes), the member and descriptor header records, the member record (DATASET, SASDATA,
  created), the member label record (modified, dataset label), the NAMESTR header (variable count), one 140-byte
  NAMESTR per variable (type 1 num / 2 char, length, variable number from 1, name, label, format, position in the
  observation), blanks to the next 80-byte boundary, the OBS header record, the observations one after another
  (no gaps), and blanks to the end of the last 80-byte record.
- numbers: 8-byte IBM System/370 doubles converted exactly from IEEE (`ibm_doubles`); a missing number (NaN) is
  the SAS missing value "." (0x2E and seven zero bytes).
- text: UTF-8, padded with blanks to the variable's length; missing text is blanks.

The observations are made `chunk_records` at a time, so that a dataset of millions of records never exists as one
buffer; the bytes do not depend on the chunk size.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from k2trial.data.sdtm.files import check_xpt_v5, xpt_timestamp

RECORD = 80
NAMESTR_LENGTH = 140
#: Longest character value XPT v5 allows (bytes).
MAX_TEXT_LENGTH = 200
#: The SAS missing numeric value "." as the first byte of an 8-byte transport double (the other seven are zero).
MISSING = 0x2E
#: Records per piece of observations (the bytes are the same for any piece size).
CHUNK_RECORDS = 200_000

_SAS_VERSION, _SAS_OS = "6.06", "bsd4.2"


def ibm_doubles(values: np.ndarray) -> np.ndarray:
    """IEEE doubles as 8-byte IBM System/370 doubles (big-endian uint64), exactly (56 fraction bits hold IEEE's 53):
    the conversion of TS-140's ieee2xpt as ReadStat does it, vectorised. Zero, negative zero and numbers below
    16**-65 give zero; numbers of 16**63 and above (and infinities) the largest IBM number of their sign; NaN the
    SAS missing value ".".
    """
    bits = np.ascontiguousarray(values, dtype="float64").view(np.uint64)
    sign = bits >> np.uint64(63)
    exponent = ((bits >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64) - 1023
    fraction = (bits & np.uint64(0x000F_FFFF_FFFF_FFFF)) | np.uint64(1 << 52)
    shift = (exponent & 3).astype(np.uint64)
    ibm_exponent = ((exponent >> 2) + 65).astype(np.uint64)
    with np.errstate(over="ignore"):
        out = (((ibm_exponent | (sign << np.uint64(7))) << np.uint64(56)) | (fraction << shift)).astype(np.uint64)
    out[exponent < -260] = 0
    out[(bits << np.uint64(1)) == 0] = 0  # zero and negative zero
    overflow = exponent > 248
    out[overflow] = ((np.uint64(0x7F) | (sign[overflow] << np.uint64(7))) << np.uint64(56)) | np.uint64(
        0x00FF_FFFF_FFFF_FFFF
    )
    out[np.isnan(values)] = np.uint64(MISSING << 56)
    return out.astype(">u8")


def _header(name: str, *numbers: int) -> bytes:
    tail = "".join(f"{n:05d}" for n in numbers) if numbers else ""
    return f"HEADER RECORD*******{name:<8}HEADER RECORD!!!!!!!{tail}".encode("ascii").ljust(RECORD)


def _namestr(
    number: int, name: str, is_text: bool, length: int, label: str, fmt: tuple[str, int, int] | None, position: int
) -> bytes:
    form, width, decimals = fmt or ("", 0, 0)
    return (
        struct.pack(">hhhh", 2 if is_text else 1, 0, length, number)
        + name.encode("ascii").ljust(8)
        + label.encode("utf-8").ljust(40)
        + form.encode("ascii").ljust(8)
        + struct.pack(">hhh", width, decimals, 0 if is_text else 1)  # justification: numbers right
        + b"\0\0"
        + b" " * 8  # no informat
        + struct.pack(">hhi", 0, 0, position)
        + b"\0" * 52
    )


def _pad(size: int) -> bytes:
    return b" " * (-size % RECORD)


def xport_header(
    *,
    name: str,
    label: str,
    variables: Sequence[tuple[str, bool, int, str, tuple[str, int, int] | None]],
    created: dt.datetime,
    modified: dt.datetime | None = None,
) -> bytes:
    """The records of a one-member XPT v5 file up to and including the OBS header record.

    variables: (name, is_text, length, label, format as (name, width, decimals) or None) in order."""
    stamp_c = xpt_timestamp(created).decode("ascii")
    stamp_m = xpt_timestamp(modified or created).decode("ascii")
    first = f"{'SAS':<8}{'SAS':<8}{'SASLIB':<8}{_SAS_VERSION:<8}{_SAS_OS:<8}{'':<24}{stamp_c:>16}"
    member = f"{'SAS':<8}{name:<8}{'SASDATA':<8}{_SAS_VERSION:<8}{_SAS_OS:<8}{'':<24}{stamp_c:>16}"
    parts = [
        _header("LIBRARY", 0, 0, 0, 0, 0, 0),
        first.encode("ascii"),
        stamp_m.encode("ascii").ljust(RECORD),
        _header("MEMBER", 0, 0, 0, 160, 0, 140),
        _header("DSCRPTR", 0, 0, 0, 0, 0, 0),
        member.encode("ascii"),
        stamp_m.encode("ascii") + b" " * 16 + label.encode("utf-8").ljust(40) + b" " * 8,
        _header("NAMESTR", 0, len(variables), 0, 0, 0, 0),
    ]
    position = 0
    namestrs = []
    for number, (var, is_text, length, var_label, fmt) in enumerate(variables):
        namestrs.append(_namestr(number + 1, var, is_text, length, var_label, fmt, position))
        position += length
    block = b"".join(namestrs)
    parts += [block + _pad(len(block)), _header("OBS", 0, 0, 0, 0, 0, 0)]
    return b"".join(parts)


def _codes(series: pd.Series) -> tuple[np.ndarray, list]:
    """A text column as (codes, distinct values): a categorical's own codes and categories, else pd.factorize;
    code -1 is a missing value."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy(), series.cat.categories.tolist()
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return codes, np.asarray(uniques, dtype=object).tolist()


def _cell_table(texts: Sequence, length: int) -> np.ndarray:
    """Distinct values as fixed-width cells, blank-padded, and blanks last (code -1: missing)."""
    return np.array([str(u).encode("utf-8").ljust(length) for u in texts] + [b" " * length], dtype=f"S{length}")


def _text_cells(series: pd.Series, length: int) -> np.ndarray:
    """The column as fixed-width cells (n x length bytes): each distinct value encoded once, blank-padded."""
    codes, texts = _codes(series)
    return _cell_table(texts, length)[codes].view(np.uint8).reshape(len(series), length)


def observations(
    frame: pd.DataFrame, lengths: Mapping[str, int], *, chunk_records: int = CHUNK_RECORDS
) -> Iterator[bytes]:
    """The observations of a frame (char columns str or categorical, num columns float64), `chunk_records` at a
    time, then blanks to the end of the last 80-byte record."""
    width = sum(lengths[c] for c in frame.columns)
    text = {c: not pd.api.types.is_numeric_dtype(frame[c].dtype) for c in frame.columns}
    # a categorical column's cells are made once for the frame (its codes index them), other text once per piece
    coded = {c: _codes(frame[c]) for c in frame.columns if text[c] and isinstance(frame[c].dtype, pd.CategoricalDtype)}
    tables = {c: (codes, _cell_table(texts, lengths[c])) for c, (codes, texts) in coded.items()}
    size = 0
    step = max(int(chunk_records), 1)
    for start in range(0, len(frame), step):
        part = frame.iloc[start : start + step]
        rows = np.empty((len(part), width), dtype=np.uint8)
        position = 0
        for column in frame.columns:
            length = lengths[column]
            if column in tables:
                codes, table = tables[column]
                cells = table[codes[start : start + step]]
                rows[:, position : position + length] = cells.view(np.uint8).reshape(len(part), length)
            elif text[column]:
                rows[:, position : position + length] = _text_cells(part[column], length)
            else:
                numbers = ibm_doubles(part[column].to_numpy(dtype="float64"))
                rows[:, position : position + 8] = numbers.view(np.uint8).reshape(len(part), 8)
            position += length
        data = rows.tobytes()
        size += len(data)
        yield data
    yield _pad(size)


def xport_pieces(
    frame: pd.DataFrame,
    *,
    name: str,
    label: str,
    column_labels: Mapping[str, str],
    lengths: Mapping[str, int],
    formats: Mapping[str, tuple[str, int, int]] | None = None,
    created: dt.datetime,
    modified: dt.datetime | None = None,
    chunk_records: int = CHUNK_RECORDS,
) -> Iterator[bytes]:
    """The XPT v5 file of one dataset in pieces (their concatenation is the file).

    frame: character columns as str or categorical ("" = missing), numeric columns as float64 (NaN = missing);
    lengths: bytes of each variable (8 for numbers; for text at least the longest value in UTF-8 bytes); formats:
    display format per variable as (name, width, decimals). Raises ValueError for a name, label or length XPT v5
    does not allow, or a value longer than its variable's length."""
    labels = {c: str(column_labels.get(c) or c) for c in frame.columns}
    check_xpt_v5(frame.iloc[:0], name, label, labels)
    variables = []
    for column in frame.columns:
        is_text = not pd.api.types.is_numeric_dtype(frame[column].dtype)
        length = int(lengths[column])
        if not is_text and length != 8:
            raise ValueError(f"{name}.{column}: a number is 8 bytes in this writer, not {length}")
        if is_text and not 1 <= length <= MAX_TEXT_LENGTH:
            raise ValueError(f"{name}.{column}: length {length}; XPT v5 allows 1 to {MAX_TEXT_LENGTH} bytes")
        if is_text and len(frame):
            codes, texts = _codes(frame[column])
            used = np.bincount(np.where(codes < 0, len(texts), codes), minlength=len(texts) + 1)[: len(texts)] > 0
            longest = max(len(str(v).encode("utf-8")) for v, u in [*zip(texts, used.tolist(), strict=True), ("", True)]
                          if u)  # fmt: skip
            if longest > length:
                raise ValueError(f"{name}.{column}: a value is {longest} bytes long, the variable {length}")
        variables.append((column, is_text, length, labels[column], (formats or {}).get(column)))
    yield xport_header(name=name, label=label, variables=variables, created=created, modified=modified)
    yield from observations(frame, {v[0]: v[2] for v in variables}, chunk_records=chunk_records)
