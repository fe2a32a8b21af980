"""Reading raw tables as text and writing artifacts deterministically and atomically.

Raw CSV files are read with every cell as a string and no missing-value guessing: "NA" is the sodium
test code and "" is the only missing value. Writers produce the same bytes for the same content
(sorted keys, fixed float format, "\\n" line ends) and replace the target atomically, so a killed run
never leaves a half-written file under the final name.

Temporary files. A write goes to `.<name>.<pid>.<random>.part` beside the target (the same file system, so the
final rename is atomic) and is renamed over the target when complete. A process killed mid-write (SIGKILL, a node
lost) leaves that file behind; the next write of the same target removes every such orphan of it whose writing
process no longer runs on this machine. Only the target's own temporaries are candidates, never those of another
file, and a temporary of a live process is left alone: jobs that run in parallel in one folder (results/analysis/)
write different targets, so no sweep can touch another running job's file. A killed job is rerun on resume
(Snakemake's --rerun-incomplete) and writes its targets again, so no orphan outlives a completed run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from k2trial.core.errors import InputDataError, Problem

if TYPE_CHECKING:  # numpy and pandas are imported where used: writing JSON or text needs neither
    import numpy as np
    import pandas as pd

#: Spreadsheet row of the first record (the header is row 1).
FIRST_DATA_ROW = 2
#: Significant digits written for floats: enough for 1e-9 relative agreement, few enough that
#: last-bit floating-point noise does not leak into the bytes of an artifact.
FLOAT_FORMAT = "%.12g"

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Numbers as displayed in tables ("-1.5", "-12.5%", "-4.51 (0.79)", "-6.20 (-6.84, -5.58)", "-8.2 to -5.1") start
# with a sign but are no formula a spreadsheet can run (no operator between two operands, no name, no
# reference), so they are written as they are. Anything else that starts like a formula ("-2+3", "-cmd") is escaped.
_CHUNK = 1 << 20
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?%?"
_NUMERIC_TEXT = re.compile(rf"^{_NUMBER}(?:\s*\({_NUMBER}(?:,\s*{_NUMBER})?\))?$|^{_NUMBER}\s+to\s+{_NUMBER}$|^-$")


#: A line of a SHA256SUMS file as `sha256sum` writes it: the digest, a space, " " (text) or "*" (binary), the name.
CHECKSUM_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


def parse_checksums(text: str) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """A SHA256SUMS file's text: (file name -> lower-case sha256, [(line number, line) of every malformed line]).
    Blank lines are skipped; a leading "./" of a name is dropped."""
    listed: dict[str, str] = {}
    malformed: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = CHECKSUM_LINE.match(line.rstrip("\r"))
        if match:
            listed[match.group(2).strip().removeprefix("./")] = match.group(1).lower()
        else:
            malformed.append((number, line))
    return listed, malformed


def read_yaml(path: str | Path) -> Any:
    """A YAML file parsed safely (libyaml when available); an empty file is None."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)


def read_raw_csv(path: str | Path, file_label: str | None = None, categorical: bool = False) -> pd.DataFrame:
    """Read a raw CSV file as text.

    Returns a DataFrame of str (missing cells are "") with a `_row` column holding the spreadsheet
    row number of each record. Raises InputDataError naming the file when it is missing, empty, not
    UTF-8 or not rectangular.

    categorical: return every column as a pandas Categorical of str (same values). The parser then
    hashes each cell in C and keeps only the distinct strings, which for millions of rows is several
    times faster and smaller than one Python string per cell (validation works per distinct value).
    """
    import numpy as np
    import pandas as pd

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
    del text  # decoded only to check the encoding; the parser reads the bytes
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    field_counts, record_rows = _record_shape(raw)
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
        io.BytesIO(raw),
        encoding="utf-8",
        dtype="category" if categorical else str,
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
    import numpy as np

    buf = np.frombuffer(raw, dtype=np.uint8)
    quotes = np.flatnonzero(buf == ord('"'))
    newlines = np.flatnonzero(buf == ord("\n"))
    if len(quotes):  # a separator is inside quotes when an odd number of quotes precede it
        newlines = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
    line_ends = newlines if (not len(buf) or buf[-1] == ord("\n")) else np.append(newlines, len(buf))
    starts = np.concatenate(([0], line_ends[:-1] + 1)).astype(np.int64)
    fields = _commas_per_line(buf, quotes, starts, line_ends) + 1
    nonblank = np.maximum.reduceat(buf, starts) > 32  # a line of only whitespace/control bytes is blank
    rows = np.arange(1, len(line_ends) + 1)
    return fields[nonblank], rows[nonblank]


def _commas_per_line(buf: np.ndarray, quotes: np.ndarray, starts: np.ndarray, line_ends: np.ndarray) -> np.ndarray:
    """Commas outside double quotes between each line start and its line end (int64 per line).

    Fast path: a uint8 sum per line (exact while every line is shorter than 256 bytes), minus the commas
    inside quoted regions, which are listed explicitly when they are a small part of the file. Otherwise
    the positions of all commas are searched (slower, more memory, always exact).
    """
    import numpy as np

    if not len(line_ends):
        return np.zeros(0, dtype=np.int64)
    is_comma = buf[: int(line_ends[-1]) + 1] == ord(",")  # bytes after the last line end are no record
    pairs = len(quotes) // 2
    opens, closes = quotes[0 : 2 * pairs : 2] + 1, quotes[1 : 2 * pairs : 2]
    if len(quotes) % 2:  # an unterminated quote runs to the end
        opens, closes = np.append(opens, quotes[-1] + 1), np.append(closes, len(is_comma))
    closes = np.minimum(closes, len(is_comma))
    lengths = np.maximum(closes - opens, 0)
    quoted = int(lengths.sum())
    line_lengths = np.diff(np.append(starts, len(is_comma)))
    if line_lengths.max() < 256 and quoted <= len(is_comma) // 8:
        counts = np.add.reduceat(is_comma.view(np.uint8), starts, dtype=np.uint8).astype(np.int64)
        if quoted:
            offsets = np.cumsum(lengths) - lengths
            inside = np.arange(quoted) - np.repeat(offsets, lengths) + np.repeat(opens, lengths)
            inside = inside[is_comma[inside]]
            counts -= np.bincount(np.searchsorted(starts, inside, side="right") - 1, minlength=len(starts))
        return counts
    commas = np.flatnonzero(is_comma)
    if len(quotes):
        commas = commas[np.searchsorted(quotes, commas) % 2 == 0]
    return np.searchsorted(commas, line_ends) - np.searchsorted(commas, starts)


def _escape_formula(value: Any) -> Any:
    """Neutralise a text cell a spreadsheet would run as a formula (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMERIC_TEXT.match(value):
        return "'" + value
    return value


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy whose text cells cannot start a spreadsheet formula (each distinct value checked once)."""
    import pandas as pd

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
    import numpy as np
    import pandas as pd

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


#: Suffix of the temporary files of `_atomic_write_bytes`.
TEMPORARY_SUFFIX = ".part"


def _temporary_pattern(name: str) -> re.Pattern[str]:
    """The temporaries of one target file name: .<name>.<pid>.<8 hex digits>.part (nothing else matches)."""
    return re.compile(rf"^\.{re.escape(name)}\.(\d+)\.[0-9a-f]{{8}}{re.escape(TEMPORARY_SUFFIX)}$")


def _process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (a pid that cannot be signalled is counted alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def sweep_orphaned_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporaries of `path` left by writers that no longer run (a run killed mid-write); returns them.

    Only files named as `_atomic_write_bytes` names the temporaries of this very target are considered, and one
    whose writing process is alive is kept, so a sweep never removes another running job's temporary file.
    """
    path = Path(path)
    pattern = _temporary_pattern(path.name)
    removed = []
    try:
        candidates = [entry for entry in os.scandir(path.parent) if entry.name.endswith(TEMPORARY_SUFFIX)]
    except FileNotFoundError:
        return removed
    for entry in candidates:
        match = pattern.match(entry.name)
        if match and not _process_alive(int(match.group(1))):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except FileNotFoundError:  # another sweep of the same target got there first
                pass
    return removed


def _create_temporary(path: Path) -> tuple[int, str]:
    """Open a new temporary file for `path` (exclusive create): (descriptor, its path)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name for {path}")


#: The sha256 of every file this process wrote (or whose recorded hash it checked: `remember_sha256`), by resolved
#: path: ((inode, size, mtime in ns), sha256). sha256_file returns it while the file is as written (the same inode,
#: size and modification time: any rewrite by one of these writers is a new inode), so a job's provenance record,
#: which hashes its outputs, does not read them again (the ADaM files of 100,000 subjects are 5.5 GB).
_WRITTEN: dict[str, tuple[tuple[int, int, int], str]] = {}


def _identity(status: os.stat_result) -> tuple[int, int, int]:
    return status.st_ino, status.st_size, status.st_mtime_ns


def _atomic_write_bytes(path: Path, data: bytes | Iterable[bytes]) -> tuple[int, str]:
    """Write `data` (bytes, or chunks of bytes written one after the other) to `path` atomically, after removing
    the orphaned temporaries of `path` (see the module docstring); returns the size and sha256 of what was written
    (hashed as it is written, and remembered for sha256_file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_orphaned_temporaries(path)
    fd, tmp = _create_temporary(path)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in (data,) if isinstance(data, (bytes, bytearray)) else data:
                digest.update(chunk)
                size += len(chunk)
                handle.write(chunk)
        os.chmod(tmp, 0o644)  # created 0600 (private while incomplete); artifacts are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    remember_sha256(path, digest.hexdigest())
    return size, digest.hexdigest()


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The exact bytes `write_csv` writes for a frame."""
    return b"".join(_csv_chunks(frame))


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a table deterministically and atomically (row order is the caller's: sort first)."""
    _atomic_write_bytes(Path(path), _csv_chunks(frame))


#: Rows joined per chunk by the fast CSV writer: bounds the memory of the text being built and of its byte index
#: (8 bytes of index per byte of text: some 30 MB for rows of 115 bytes).
CSV_CHUNK_ROWS = 32_768
#: Characters of the longest int64 ("-9223372036854775808").
_INT64_WIDTH = 20


def _pandas_csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode("utf-8")


def _csv_chunks(frame: pd.DataFrame) -> Iterator[bytes]:
    """The CSV bytes of a frame in chunks: header, then blocks of CSV_CHUNK_ROWS rows.

    Same bytes as pandas `to_csv(index=False, lineterminator="\\n")` of `floats_as_text(escape_formulas(frame))`
    (that is the reference, and the fallback for columns the fast path does not know): each distinct value
    of a column is escaped, formatted and quoted once (quoting by the csv module, as pandas does), and the rows'
    bytes are gathered from those cells by numpy (`_joined_rows`), so the whole text never exists at once.
    """
    columns = _fast_csv_columns(frame)
    if columns is None:
        yield _pandas_csv_bytes(floats_as_text(escape_formulas(frame)))
        return
    yield (",".join(_quote_fields([str(c) for c in frame.columns])) + "\n").encode("utf-8")
    yield from _joined_rows(columns, len(frame))


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def _quote_fields(values: list[str]) -> list[str]:
    """Each string as the csv module writes it in a row of several fields (QUOTE_MINIMAL, as pandas)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", delimiter=",", quotechar='"', quoting=csv.QUOTE_MINIMAL)
    out = []
    for value in values:
        if not _NEEDS_QUOTES.search(value):  # nothing QUOTE_MINIMAL quotes for: written as is
            out.append(value)
            continue
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([value, "x"])  # a second field: a lone empty field would be written as ""
        out.append(buffer.getvalue()[: -len(",x\n")])
    return out


class _CodedColumn:
    """A column as per-row integer codes into its distinct cells (formatted, escaped and quoted once); code -1:
    missing, an empty cell (the last of `cells`, which is where numpy's index -1 points: the codes are used as they
    are, not copied)."""

    def __init__(self, codes: np.ndarray, cells: list[str]) -> None:
        self.cells = [*cells, ""]
        self.codes = codes


class _IntegerColumn:
    """An int64 column, formatted per row by numpy (often all distinct, e.g. raw row numbers); `missing`: rows
    written as an empty cell."""

    def __init__(self, values: np.ndarray, missing: np.ndarray | None) -> None:
        self.values = values
        self.missing = missing


def _joined_rows(columns: list[_CodedColumn | _IntegerColumn], n_rows: int) -> Iterator[bytes]:
    """The CSV lines of n_rows rows, CSV_CHUNK_ROWS at a time, from their columns' cells.

    Every cell of a row is a byte range of one buffer (a coded column's distinct cells, each with the separator
    that follows it, stored once; an integer column's digits, formatted for the chunk into the buffer's tail, and
    its separator); a chunk's bytes are one numpy gather over those ranges in row order. The result is what
    joining the cells' texts with "," and the rows with "\\n" gives.
    """
    import numpy as np

    last = len(columns) - 1
    pieces: list[bytes] = [b",\n"]  # the separators of integer cells: "," at 0, "\n" at 1
    size = 2
    tables: list[tuple[np.ndarray, np.ndarray] | None] = []  # a coded column's cells: (lengths, starts)
    for j, column in enumerate(columns):
        if isinstance(column, _IntegerColumn):
            tables.append(None)
            continue
        separator = "\n" if j == last else ","
        encoded = [(cell + separator).encode("utf-8") for cell in column.cells]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        tables.append((lengths, size + np.cumsum(lengths) - lengths))
        pieces.append(b"".join(encoded))
        size += int(lengths.sum())
    fixed = size
    n_integer = sum(table is None for table in tables)
    buffer = np.empty(fixed + n_integer * min(CSV_CHUNK_ROWS, n_rows) * _INT64_WIDTH, dtype=np.uint8)
    buffer[:fixed] = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    for start in range(0, n_rows, CSV_CHUNK_ROWS):
        stop = min(start + CSV_CHUNK_ROWS, n_rows)
        rows = stop - start
        lengths_of, starts_of = [], []
        tail = fixed
        for j, (column, table) in enumerate(zip(columns, tables, strict=True)):
            if table is not None:
                codes = column.codes[start:stop]
                lengths_of.append(table[0][codes])
                starts_of.append(table[1][codes])
                continue
            digits = column.values[start:stop].astype(f"S{_INT64_WIDTH}")  # NUL-padded, as str() writes them
            buffer[tail : tail + rows * _INT64_WIDTH] = digits.view(np.uint8)
            count = np.strings.str_len(digits).astype(np.int64)
            if column.missing is not None:
                count[column.missing[start:stop]] = 0
            lengths_of += [count, np.ones(rows, dtype=np.int64)]
            starts_of += [tail + _INT64_WIDTH * np.arange(rows, dtype=np.int64), np.full(rows, int(j == last))]
            tail += rows * _INT64_WIDTH
        lengths = np.stack(lengths_of, axis=1).ravel()  # row by row, cell by cell
        ends = np.cumsum(lengths)
        index = np.repeat(np.stack(starts_of, axis=1).ravel() - (ends - lengths), lengths)
        index += np.arange(int(ends[-1]), dtype=np.int64)
        yield buffer[index].tobytes()


def _fast_csv_columns(frame: pd.DataFrame) -> list[_CodedColumn | _IntegerColumn] | None:
    """Per column, its cells for `_joined_rows`, with formulas escaped (text columns) and floats formatted
    (FLOAT_FORMAT, -0.0 as 0) as `escape_formulas` and `floats_as_text` do.

    None when a column or the header is of a kind the fast path does not handle (then pandas writes it).
    """
    import numpy as np
    import pandas as pd

    if frame.shape[1] < 2 or not all(isinstance(c, str) for c in frame.columns) or frame.columns.has_duplicates:
        return None
    out: list[_CodedColumn | _IntegerColumn] = []
    for name in frame.columns:
        series = frame[name]
        dtype = series.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            distinct = list(dtype.categories)
            if not all(type(d) is str for d in distinct):
                return None
            texts = _quote_fields([_escape_formula(d) for d in distinct])
            out.append(_CodedColumn(series.cat.codes.to_numpy(), texts))
        elif dtype == np.dtype(bool):
            out.append(_CodedColumn(series.to_numpy().view(np.uint8), ["False", "True"]))
        elif dtype == np.dtype(np.int64):
            out.append(_IntegerColumn(series.to_numpy(), None))
        elif isinstance(dtype, pd.Int64Dtype):
            missing = series.isna().to_numpy()
            out.append(_IntegerColumn(series.fillna(0).to_numpy(dtype=np.int64), missing if missing.any() else None))
        elif pd.api.types.is_float_dtype(dtype) and not isinstance(dtype, pd.api.extensions.ExtensionDtype):
            codes, distinct = pd.factorize(series.to_numpy(dtype=float) + 0.0, use_na_sentinel=True)
            out.append(_CodedColumn(codes, [FLOAT_FORMAT % value for value in distinct]))
        elif dtype == np.dtype(object) or pd.api.types.is_string_dtype(dtype):
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
            distinct = list(uniques)
            if not all(type(d) is str for d in distinct):  # factorize merges 1 and True; pandas does not
                return None
            out.append(_CodedColumn(codes, _quote_fields([_escape_formula(d) for d in distinct])))
        else:
            return None
    return out


def _json_default(value: Any) -> Any:
    import pandas as pd

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


# ----------------------------------------------------------------------------------------------------------------
# Raw CSV: text written as it is (the raw files a CRF export gives; k2trial.data.simulation writes them)
# ----------------------------------------------------------------------------------------------------------------
def raw_quote(value: str) -> str:
    """A raw cell as RFC 4180 writes it: quoted only when it holds a comma, a quote or a line break."""
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def raw_csv_record(values: Iterable[str]) -> str:
    """One raw CSV record (no line end)."""
    return ",".join(raw_quote(v) for v in values)


def raw_csv_chunks(frame: pd.DataFrame, chunk_rows: int = 500_000) -> Iterator[bytes]:
    """The bytes of a raw table, in pieces of at most `chunk_rows` records (the header comes first).

    UTF-8, header row, "\\n" line ends, RFC 4180 quoting only where a cell holds a comma, quote or line
    break (so "7,5" is quoted); cells are written as they are: no formula escaping and no number
    formatting, because raw tables are text already. Each distinct value of a column is quoted once.
    """
    import numpy as np
    import pandas as pd

    yield (raw_csv_record([str(c) for c in frame.columns]) + "\n").encode("utf-8")
    for start in range(0, len(frame), chunk_rows):
        columns = []
        for name in frame.columns:
            cells = frame[name].to_numpy(dtype=object)[start : start + chunk_rows]
            codes, uniques = pd.factorize(cells)
            columns.append(np.array([raw_quote(str(u)) for u in uniques], dtype=object)[codes])
        yield ("\n".join(map(",".join, zip(*columns, strict=True))) + "\n").encode("utf-8")


def raw_csv_bytes(frame: pd.DataFrame) -> bytes:
    """The exact bytes `write_bytes(raw_csv_chunks(frame), path)` writes."""
    return b"".join(raw_csv_chunks(frame))


def write_json(obj: Any, path: str | Path) -> None:
    _atomic_write_bytes(Path(path), json_bytes(obj))


def write_bytes(data: bytes | Iterable[bytes], path: str | Path) -> tuple[int, str]:
    """Write bytes atomically (PNG, SVG, notebooks), or chunks of bytes one after the other (a large file that
    need not be in memory at once); returns the size and sha256 of what was written."""
    return _atomic_write_bytes(Path(path), data)


def write_text(text: str, path: str | Path) -> None:
    _atomic_write_bytes(Path(path), text.encode("utf-8"))


# ----------------------------------------------------------------------------------------------------
# File hashes
def remember_sha256(path: str | Path, digest: str, status: os.stat_result | None = None) -> None:
    """Take `digest` as the sha256 of the file at `path` for as long as the file stays as it is now (same inode,
    size and modification time; `status`: the file's status the caller checked, else taken now): for a file this
    process wrote, and for a hash the job that wrote the file recorded and the caller checked still holds
    (k2trial.report.index_hashes), so the job's provenance record does not read the file again."""
    _WRITTEN[str(Path(path).resolve())] = (_identity(status or os.stat(path)), digest)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks; for a file this process wrote and nothing has changed
    since (same inode, size and modification time), the hash computed as it was written."""
    written = _WRITTEN.get(str(Path(path).resolve()))
    if written is not None and _identity(os.stat(path)) == written[0]:
        return written[1]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def data_version(raw_files: Iterable[str | Path]) -> str:
    """Hash of the raw inputs: sha256 over the sorted (file name, content hash) pairs."""
    pairs = sorted((Path(p).name, sha256_file(p)) for p in raw_files)
    return hashlib.sha256("".join(f"{name}\0{h}\n" for name, h in pairs).encode()).hexdigest()
