"""Reading raw tables as text and writing artifacts deterministically and atomically.

Raw CSV files are read with every cell as a string and no missing-value guessing: "NA" is the sodium
test code and "" is the only missing value. Writers produce the same bytes for the same content
(sorted keys, fixed float format, "\\n" line ends) and replace the target atomically, so a killed run
never leaves a half-written file under the final name.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from k2trial.errors import InputDataError, Problem

#: Spreadsheet row of the first record (the header is row 1).
FIRST_DATA_ROW = 2
#: Significant digits written for floats: enough for 1e-9 relative agreement, few enough that
#: last-bit floating-point noise does not leak into the bytes of an artifact.
FLOAT_FORMAT = "%.12g"

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def read_raw_csv(path: str | Path, file_label: str | None = None) -> pd.DataFrame:
    """Read a raw CSV file as text.

    Returns a DataFrame of str (missing cells are "") with a `_row` column holding the spreadsheet
    row number of each record. Raises InputDataError naming the file when it is missing, empty, not
    UTF-8 or not rectangular.
    """
    path = Path(path)
    label = file_label or path.name
    if not path.exists():
        raise InputDataError([Problem(label, None, None, None, "file_present", "error", "file not found")])
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start : exc.start + 4]
        raise InputDataError(
            [
                Problem(
                    label,
                    line,
                    None,
                    repr(bad),
                    "utf8_encoding",
                    "error",
                    f"file is not valid UTF-8 (byte {exc.start}); re-export it as UTF-8 CSV",
                )
            ]
        ) from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise InputDataError([Problem(label, None, None, None, "not_empty", "error", "file is empty (no header row)")])
    field_counts, record_rows = _record_shape(raw.removeprefix(b"\xef\xbb\xbf"))
    n_header = int(field_counts[0]) if len(field_counts) else 0
    bad = np.flatnonzero(field_counts[1:] != n_header)
    if len(bad):
        i = int(bad[0]) + 1
        raise InputDataError(
            [
                Problem(
                    label,
                    int(record_rows[i]),
                    None,
                    None,
                    "rectangular",
                    "error",
                    f"record has {int(field_counts[i])} fields, the header has {n_header}",
                )
            ]
        )
    frame = pd.read_csv(
        io.StringIO(text),
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        index_col=False,
        skip_blank_lines=True,
        engine="c",
    )
    frame.columns = [str(c).strip() for c in frame.columns]
    frame.insert(0, "_row", record_rows[1:].astype("int64"))
    return frame


def _record_shape(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Fields per non-blank CSV record and the record's spreadsheet row, without a Python loop per row.

    RFC 4180 quoting is honoured: commas and line breaks inside double quotes do not count.
    """
    buf = np.frombuffer(raw, dtype=np.uint8)
    quotes = np.flatnonzero(buf == ord('"'))
    newlines = np.flatnonzero(buf == ord("\n"))
    commas = np.flatnonzero(buf == ord(","))
    if len(quotes):  # a separator is inside quotes when an odd number of quotes precede it
        newlines = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
        commas = commas[np.searchsorted(quotes, commas) % 2 == 0]
    line_ends = newlines if (not len(buf) or buf[-1] == ord("\n")) else np.append(newlines, len(buf))
    starts = np.concatenate(([0], line_ends[:-1] + 1)).astype(np.int64)
    fields = np.searchsorted(commas, line_ends) - np.searchsorted(commas, starts) + 1
    nonblank = np.maximum.reduceat(buf, starts) > 32  # a line of only whitespace/control bytes is blank
    rows = np.arange(1, len(line_ends) + 1)
    return fields[nonblank], rows[nonblank]


def _escape_formula(value: Any) -> Any:
    """Neutralise a text cell a spreadsheet would run as a formula (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy whose text cells cannot start a spreadsheet formula (each distinct value checked once)."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if not (series.dtype == object or pd.api.types.is_string_dtype(series)):
            continue
        distinct = pd.unique(series.dropna())
        risky = [v for v in distinct if isinstance(v, str) and v.startswith(_FORMULA_START)]
        if risky:
            out[column] = series.replace({v: _escape_formula(v) for v in risky})
    return out


def floats_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose float columns hold their CSV text (FLOAT_FORMAT) as categories.

    Writes the same bytes as formatting every float, several times faster: large tables repeat few distinct
    values at recording precision, so each distinct value is formatted once. Missing stays an empty cell;
    -0.0 is written as 0.
    """
    out = frame.copy()
    for column in out.columns:
        if not pd.api.types.is_float_dtype(out[column].dtype):
            continue
        values = out[column].to_numpy(dtype=float) + 0.0  # -0.0 + 0.0 is 0.0
        codes, distinct = pd.factorize(values, use_na_sentinel=True)
        text = np.array([FLOAT_FORMAT % value for value in distinct], dtype=object)
        text_codes, text_distinct = pd.factorize(text)  # two floats may print alike
        merged = np.where(codes >= 0, text_codes[codes] if len(text_codes) else -1, -1)
        out[column] = pd.Categorical.from_codes(merged, categories=pd.Index(text_distinct, dtype=object))
    return out


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The exact bytes `write_csv` writes for a frame."""
    buffer = io.StringIO()
    floats_as_text(escape_formulas(frame)).to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a table deterministically and atomically (row order is the caller's: sort first)."""
    _atomic_write_bytes(Path(path), csv_bytes(frame))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    return value


def json_bytes(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, two-space indent, NaN as null, trailing newline."""
    text = json.dumps(_clean_json(obj), indent=2, sort_keys=True, ensure_ascii=False, default=_json_default)
    return (text + "\n").encode("utf-8")


def write_json(obj: Any, path: str | Path) -> None:
    _atomic_write_bytes(Path(path), json_bytes(obj))


def write_bytes(data: bytes, path: str | Path) -> None:
    """Write bytes atomically (PNG, SVG, notebooks)."""
    _atomic_write_bytes(Path(path), data)


def write_text(text: str, path: str | Path) -> None:
    _atomic_write_bytes(Path(path), text.encode("utf-8"))
