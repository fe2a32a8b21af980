"""Apply the ADaM metadata and write a delivery: XPT v5 and Dataset-JSON v1.1 per dataset, and define.json.

`conform` makes a derived frame exactly what config/adam/spec.yaml says (variable order, char/num types, codelist
values, whole numbers where the datatype is integer, unique keys) and `variable_lengths` computes each character
variable's length from the data (the longest value in UTF-8 bytes, at least 1, as xportr_length does with
length_source = "data"; never above the spec's maximum). The files are written column-wise, a piece at a time,
so that a dataset of millions of records is written in seconds and never exists as one text: XPT v5 by
k2trial.adam.xport (the bytes pyreadstat's writer, k2trial.data.sdtm.xpt_bytes, gives: tests check it),
Dataset-JSON in the layout and with the metadata of k2trial.data.sdtm.dataset_json_document, each column encoded
once; deterministic, header timestamps and creation time from the caller, so two writes of the same data give
identical bytes. define.json is written last from the same metadata and the bytes just written (their sha256), so
the metadata and the files cannot disagree.

Two additions the SDTM writers do not make and ADaM needs:
- SAS display formats (DATE9. for dates) in the XPT NAMESTR records (nform, nfl, nfd; `set_xpt_formats` sets them
  in bytes pyreadstat wrote, which is what the tests compare with);
- Dataset-JSON v1.1 dates: dataType "date" with ISO 8601 values, targetDataType "integer" and displayFormat
  "DATE9." (the SAS date a receiving system should make), and null for a missing date.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import queue
import re
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from k2trial.adam import xport
from k2trial.adam.common import AdamDataError, coded_text, iso_dates
from k2trial.adam.spec import NUMERIC_LENGTH, AdamSpec, Codelist, Dataset, value_key
from k2trial.core.errors import ConfigError, Problem
from k2trial.core.io import json_bytes, write_bytes
from k2trial.data.sdtm import dataset_json_document

#: Name of the delivery metadata file beside the datasets.
METADATA_FILE = "define.json"
FORMATS = ("xpt", "json")
_JSON_TYPES = {"text": "string", "integer": "integer", "float": "double", "date": "date"}
_XPT_NAMESTR = b"HEADER RECORD*******NAMESTR HEADER RECORD!!!!!!!"
_NAMESTR_LENGTH = 140
_SAS_FORMAT = re.compile(r"^(\$?[A-Z]+?)(\d*)\.(\d*)$")


# ----------------------------------------------------------------------------------------------------------------
# Conforming a frame to its metadata
# ----------------------------------------------------------------------------------------------------------------
def _where(spec: AdamSpec, dataset: Dataset, variable: str, key: str) -> str:
    return f"{spec.file}: dataset {dataset.name}, variable {variable}, key '{key}'"


def conform(frame: pd.DataFrame, dataset: Dataset, spec: AdamSpec) -> pd.DataFrame:
    """The frame with exactly the spec's variables in order, char as str ("" = missing), num as float64.

    Raises ConfigError when a variable is missing or not in the spec, has the wrong type, holds a value outside
    its codelist or a non-whole number where the datatype is integer, or needs more bytes than the spec's length;
    AdamDataError when two records share the dataset's keys.
    """
    coded = _conform(frame, dataset, spec)[0]
    out = pd.DataFrame({c: coded[c].astype("str") if isinstance(coded[c].dtype, pd.CategoricalDtype) else coded[c]
                        for c in coded.columns}, copy=False)  # fmt: skip
    out.attrs = coded.attrs
    return out


@dataclass(frozen=True)
class Conformed:
    """A dataset conformed to its metadata in the form it is written in (`conformed`): char variables coded
    (coded_text), num as float64, and each variable's length (variable_lengths)."""

    frame: pd.DataFrame
    lengths: Mapping[str, int]

    def __len__(self) -> int:
        return len(self.frame)


def conformed(frame: pd.DataFrame, dataset: Dataset, spec: AdamSpec) -> Conformed:
    """The checks of `conform` (same errors), the result in the compact form a delivery is written from: a derived
    dataset of millions of records can be conformed and released at once, and the next one derived (write_delivery
    takes these as they are)."""
    return Conformed(*_conform(frame, dataset, spec))


def _distinct(series: pd.Series) -> list[str]:
    """The distinct values of a conformed char column (coded_text: its categories; str: pd.unique)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return [str(c) for c in series.cat.categories]
    return np.asarray(pd.unique(_as_text(series)), dtype=object).tolist()


def _conform(frame: pd.DataFrame, dataset: Dataset, spec: AdamSpec) -> tuple[pd.DataFrame, dict[str, int]]:
    """`conform` with char variables as categoricals (coded_text), and the variable lengths of the conformed frame
    (variable_lengths)."""
    missing = [n for n in dataset.names if n not in frame.columns]
    extra = [str(c) for c in frame.columns if c not in dataset.names]
    if missing or extra:
        raise ConfigError(
            f"{spec.file}: dataset {dataset.name}: variables not in the frame: {missing or 'none'}; "
            f"in the frame but not in the spec: {extra or 'none'}"
        )
    columns: dict[str, pd.Series] = {}
    lengths: dict[str, int] = {}
    for variable in dataset.variables:
        series = frame[variable.name].reset_index(drop=True)
        if variable.type == "char":
            if pd.api.types.is_numeric_dtype(series.dtype) and not series.isna().all():
                raise ConfigError(f"{_where(spec, dataset, variable.name, 'type')}: char, but the data are numbers")
            values = coded_text(series)
        else:
            try:
                values = pd.to_numeric(series, errors="raise").astype("float64")
            except (TypeError, ValueError):
                raise ConfigError(f"{_where(spec, dataset, variable.name, 'type')}: num, but the data are not "
                                  "numbers") from None  # fmt: skip
            finite = values.to_numpy()[np.isfinite(values.to_numpy())]
            if variable.datatype in ("integer", "date") and not np.all(finite == np.round(finite)):
                raise ConfigError(f"{_where(spec, dataset, variable.name, 'datatype')}: {variable.datatype}, but a "
                                  "value is not a whole number")  # fmt: skip
        if variable.type == "char":
            distinct = values.cat.categories.tolist()
        else:
            distinct = pd.unique(values) if variable.codelist is not None else None
        if variable.codelist is not None:
            _check_codelist(distinct, spec.codelist(variable.codelist), spec, dataset, variable.name)
        lengths[variable.name] = NUMERIC_LENGTH if variable.type == "num" else _longest(distinct)
        columns[variable.name] = values
    out = pd.DataFrame(columns, copy=False)  # the columns as they are when they conform already: no copy
    for variable in dataset.variables:
        if variable.length is not None and lengths[variable.name] > variable.length:
            raise ConfigError(
                f"{_where(spec, dataset, variable.name, 'length')}: the data need {lengths[variable.name]} bytes, the "
                f"spec allows {variable.length}"
            )
    keys = out[list(dataset.keys)]
    twice = keys.duplicated()
    if twice.any():
        row = int(np.flatnonzero(twice.to_numpy())[0])
        shown = ", ".join(f"{k}={keys[k].iloc[row]}" for k in dataset.keys)
        raise AdamDataError(
            [Problem(dataset.name, None, ",".join(dataset.keys), shown, "adam_key", "error",
                     "two records share the dataset's keys")]
        )  # fmt: skip
    out.attrs = {
        "name": dataset.name,
        "label": dataset.label,
        "labels": {v.name: v.label for v in dataset.variables},
    }
    return out, lengths


def _check_codelist(distinct: Any, codelist: Codelist, spec: AdamSpec, dataset: Dataset, name: str) -> None:
    """ConfigError for the first of the distinct values that is not a code of the codelist."""
    codes = {value_key(c) for c in codelist.codes}
    for value in np.asarray(distinct, dtype=object).tolist():
        key = value_key(value)
        if key is not None and key not in codes:
            raise ConfigError(f"{_where(spec, dataset, name, 'codelist')}: value {key!r} is not a code of codelist "
                              f"{codelist.id}")  # fmt: skip


def _as_text(series: pd.Series) -> pd.Series:
    return (
        series if isinstance(series.dtype, pd.StringDtype) and series.dtype.na_value is np.nan else series.astype("str")
    )


def _longest(distinct: Any) -> int:
    """The longest of the distinct values of a char variable in UTF-8 bytes, at least 1."""
    return max([1, *(len(str(v).encode("utf-8")) for v in np.asarray(distinct, dtype=object).tolist())])


def variable_lengths(frame: pd.DataFrame, dataset: Dataset) -> dict[str, int]:
    """Length of every variable: char = the longest value in UTF-8 bytes (at least 1), num = 8."""
    out: dict[str, int] = {}
    for variable in dataset.variables:
        if variable.type == "num":
            out[variable.name] = NUMERIC_LENGTH
        else:
            out[variable.name] = _longest(_distinct(frame[variable.name]))
    return out


# ----------------------------------------------------------------------------------------------------------------
# XPT v5
# ----------------------------------------------------------------------------------------------------------------
def _namestr_offsets(data: bytes) -> list[int]:
    start = data.find(_XPT_NAMESTR)
    if start < 0 or start % 80:
        raise ValueError("not a SAS transport (XPT v5) file: no NAMESTR header record on an 80-byte boundary")
    count = int(data[start + 54 : start + 58].decode("ascii"))
    first = start + 80
    return [first + i * _NAMESTR_LENGTH for i in range(count)]


def xpt_namestrs(data: bytes) -> list[dict[str, Any]]:
    """Name, type (1 num, 2 char), length, label and format of every variable of an XPT v5 file (one member)."""
    out = []
    for offset in _namestr_offsets(data):
        record = data[offset : offset + _NAMESTR_LENGTH]
        ntype, _, nlng, _ = struct.unpack(">hhhh", record[0:8])
        nfl, nfd = struct.unpack(">hh", record[64:68])
        form = record[56:64].decode("ascii").rstrip()
        out.append(
            {
                "name": record[8:16].decode("ascii").rstrip(),
                "type": ntype,
                "length": nlng,
                "label": record[16:56].decode("latin-1").rstrip(),
                "format": f"{form}{nfl or ''}.{nfd or ''}" if form else "",
            }
        )
    return out


def sas_format(text: str) -> tuple[str, int, int]:
    """A SAS format NAMEw.d as (name, width, decimals), e.g. "DATE9." -> ("DATE", 9, 0).

    Raises ValueError for text that is not NAMEw.d or a name longer than 8 characters."""
    match = _SAS_FORMAT.match(text)
    if not match or len(match.group(1)) > 8:
        raise ValueError(f"{text!r} is not a SAS format NAMEw.d")
    return match.group(1), int(match.group(2) or 0), int(match.group(3) or 0)


def set_xpt_formats(data: bytes, formats: Mapping[str, str]) -> bytes:
    """Set the display format (e.g. DATE9.) of variables in an XPT v5 file's NAMESTR records (nform, nfl, nfd).

    Raises ValueError for a format that is not NAMEw.d, a name longer than 8 characters, or a variable not in the
    file.
    """
    out = bytearray(data)
    found: set[str] = set()
    for offset in _namestr_offsets(data):
        name = data[offset + 8 : offset + 16].decode("ascii").rstrip()
        if name not in formats:
            continue
        try:
            form, width, decimals = sas_format(formats[name])
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
        out[offset + 56 : offset + 64] = form.ljust(8).encode("ascii")
        out[offset + 64 : offset + 68] = struct.pack(">hh", width, decimals)
        found.add(name)
    absent = sorted(set(formats) - found)
    if absent:
        raise ValueError(f"variables not in the XPT file: {', '.join(absent)}")
    return bytes(out)


def xpt_dataset_chunks(
    frame: pd.DataFrame,
    dataset: Dataset,
    *,
    created: dt.datetime,
    lengths: Mapping[str, int] | None = None,
    chunk_records: int = xport.CHUNK_RECORDS,
) -> Iterator[bytes]:
    """The XPT v5 file of a conformed dataset, in pieces (their concatenation is the file): k2trial.adam.xport with
    the spec's labels and display formats, the lengths of `variable_lengths` (pass them when already computed), and
    header timestamps = `created`. The bytes are those of k2trial.data.sdtm.xpt_bytes (pyreadstat) with the
    formats set by `set_xpt_formats` (tests/test_adam_xport.py)."""
    return xport.xport_pieces(
        frame,
        name=dataset.name,
        label=dataset.label,
        column_labels={v.name: v.label for v in dataset.variables},
        lengths=lengths if lengths is not None else variable_lengths(frame, dataset),
        formats={v.name: sas_format(v.format) for v in dataset.variables if v.format},
        created=created,
        chunk_records=chunk_records,
    )


def xpt_dataset_bytes(frame: pd.DataFrame, dataset: Dataset, *, created: dt.datetime) -> bytes:
    """The XPT v5 bytes of a conformed dataset (xpt_dataset_chunks, joined)."""
    return b"".join(xpt_dataset_chunks(frame, dataset, created=created))


# ----------------------------------------------------------------------------------------------------------------
# Dataset-JSON v1.1
# ----------------------------------------------------------------------------------------------------------------
def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dataset_json_pieces(meta: Mapping[str, Any], row_pieces: Iterable[Sequence[Sequence[Any]]]) -> Iterator[bytes]:
    """A Dataset-JSON (.json) file in the layout of k2trial.data.sdtm.dataset_json_bytes, in pieces: the metadata
    object with `rows` last, one row per line, UTF-8, a final newline; the rows come in pieces (lists of rows), so
    that they need not all exist at once. The bytes do not depend on how the rows are cut into pieces."""
    return _json_file(meta, (",\n".join(_dumps(list(row)) for row in rows) for rows in row_pieces if len(rows)))


def _json_file(meta: Mapping[str, Any], row_texts: Iterable[str | bytes]) -> Iterator[bytes]:
    """The layout of `dataset_json_pieces` from the rows already encoded: each text (str, or its UTF-8 bytes) is one
    or more JSON rows joined by ",\n" (none empty)."""
    yield (_dumps(dict(meta))[:-1] + ',"rows":[').encode("utf-8")
    any_rows = False
    for text in row_texts:
        yield b"\n" if not any_rows else b",\n"
        yield text.encode("utf-8") if isinstance(text, str) else text
        any_rows = True
    yield (("\n" if any_rows else "") + "]}\n").encode("utf-8")


def dataset_json_text(meta: Mapping[str, Any], rows: Sequence[Sequence[Any]]) -> bytes:
    """The Dataset-JSON file of `meta` and all its `rows` (dataset_json_pieces, joined; tests check it gives the
    bytes of k2trial.data.sdtm.dataset_json_bytes)."""
    return b"".join(dataset_json_pieces(meta, [rows]))


_json_string = json.encoder.encode_basestring
_json_float = float.__repr__

#: Records per piece of a Dataset-JSON file: its rows are encoded a piece at a time, so that the text of a dataset of
#: millions of records never exists all at once (the bytes are the same for any piece size).
JSON_CHUNK_RECORDS = 50_000


def _json_cells(values: pd.Series, data_type: str) -> tuple[np.ndarray, list[str]]:
    """A column as (codes, texts): the JSON text of each distinct value once (texts[codes] is the column), as
    json.dumps writes the value dataset_json_document gives it: text as a JSON string, integer as int, double as
    float, date (SAS days) as its ISO 8601 string; null for a missing or non-finite number or a missing date.
    Numbers are told apart by their bits, so -0.0 stays -0.0. The encoders are json's own: encode_basestring (what
    json.dumps uses for text with ensure_ascii=False) and float.__repr__ (json's float text)."""
    if data_type == "string":
        if isinstance(values.dtype, pd.CategoricalDtype):  # coded_text: each distinct value encoded once
            return values.cat.codes.to_numpy(), [*map(_json_string, map(str, values.cat.categories)), '""']
        codes, uniques = pd.factorize(values.astype("str"), use_na_sentinel=True)
        return codes, [*map(_json_string, np.asarray(uniques, dtype=object).tolist()), '""']
    numbers = np.ascontiguousarray(values.to_numpy(dtype="float64"))
    codes, uniques = pd.factorize(numbers.view(np.int64), use_na_sentinel=True)
    distinct = np.asarray(uniques, dtype=np.int64).view(np.float64)
    finite = np.isfinite(distinct)
    if data_type == "integer":
        texts = [str(int(v)) if ok else "null" for v, ok in zip(distinct.tolist(), finite.tolist(), strict=True)]
    elif data_type == "double":
        texts = [_json_float(v) if ok else "null" for v, ok in zip(distinct.tolist(), finite.tolist(), strict=True)]
    elif data_type == "date":
        texts = [_json_string(d) if d is not None else "null" for d in iso_dates(distinct)]
    else:
        raise ValueError(f"no JSON encoding for dataType {data_type!r}")
    return codes, [*texts, "null"]


def _json_cell_table(texts: Sequence[str], first: bool, last: bool) -> np.ndarray:
    """JSON cell texts as fixed-width UTF-8 cells padded with NUL bytes, with "[" before the first column's and ","
    or "],\n" after each."""
    cells = [(("[" if first else "") + t + ("],\n" if last else ",")).encode("utf-8") for t in texts]
    return np.array(cells, dtype=f"S{max(map(len, cells))}")


def _json_row_texts(frame: pd.DataFrame, data_types: Sequence[str], step: int) -> Iterator[bytes]:
    """The rows of a frame as JSON arrays in UTF-8, `step` rows per piece (joined by ",\n"), assembled with numpy,
    not row by row: each column's cells (_json_cells, with "[" before the first and "," or "]," after each) become
    fixed-width cells padded with NUL bytes, side by side in one matrix whose NUL bytes are then dropped. JSON text
    never holds a NUL byte (json escapes it as \\u0000), so what remains is each row's cells one after the other,
    then ",\n"; each piece's last ",\n" is cut. A categorical column (coded_text) is encoded once for the frame,
    any other column once per piece."""
    last = len(frame.columns) - 1
    columns = list(zip(frame.columns, data_types, strict=True))
    tables = {}
    for i, (column, data_type) in enumerate(columns):
        if data_type == "string" and isinstance(frame[column].dtype, pd.CategoricalDtype):
            codes, texts = _json_cells(frame[column], data_type)
            tables[column] = (codes, _json_cell_table(texts, i == 0, i == last))
    for start in range(0, len(frame), step):
        part = frame.iloc[start : start + step]
        if last < 0:
            yield ",\n".join(["[]"] * len(part)).encode("ascii")
            continue
        blocks = []
        for i, (column, data_type) in enumerate(columns):
            if column in tables:
                codes, table = tables[column]
                blocks.append(table[codes[start : start + step]])  # code -1: the last text (missing)
            else:
                codes, texts = _json_cells(part[column], data_type)
                blocks.append(_json_cell_table(texts, i == 0, i == last)[codes])
        width = sum(b.dtype.itemsize for b in blocks)
        matrix = np.empty((len(part), width), dtype=np.uint8)
        position = 0
        for block in blocks:
            size = block.dtype.itemsize
            matrix[:, position : position + size] = block.view(np.uint8).reshape(len(part), size)
            position += size
        del blocks
        flat = matrix.reshape(-1)
        yield flat[flat != 0].tobytes()[:-2]


def dataset_json_dataset_chunks(
    frame: pd.DataFrame,
    dataset: Dataset,
    spec: AdamSpec,
    *,
    created: dt.datetime,
    chunk_records: int = JSON_CHUNK_RECORDS,
    lengths: Mapping[str, int] | None = None,
) -> Iterator[bytes]:
    """The Dataset-JSON v1.1 file of a conformed dataset, in pieces (their concatenation is the file): the metadata
    of k2trial.data.sdtm.dataset_json_document with the spec's labels, data types and keys (keySequence), dates as
    ISO 8601 with targetDataType integer and their display format, metaDataRef define.json; then the rows,
    `chunk_records` at a time, in the layout of dataset_json_text, each column encoded once (_json_cells: the
    values dataset_json_document gives, as json.dumps writes them). lengths: those of `variable_lengths`, when
    already computed (a string column's `length` is the same: its longest value in UTF-8 bytes, at least 1)."""
    data_types = {v.name: _JSON_TYPES[v.datatype] for v in dataset.variables}
    lengths = lengths if lengths is not None else variable_lengths(frame, dataset)
    empty = pd.DataFrame({c: pd.Series([], dtype="str" if data_types[c] in ("string", "date") else "float64")
                          for c in frame.columns})  # fmt: skip
    meta, _ = dataset_json_document(  # the types come from the spec, so the empty frame's metadata is the data's
        empty,
        name=dataset.name,
        label=dataset.label,
        creation_datetime=created,
        column_labels={v.name: v.label for v in dataset.variables},
        data_types=data_types,
        keys=list(dataset.keys),
        study_oid=spec.studyid,
        metadata_ref=METADATA_FILE,
        item_group_oid=f"IG.{dataset.name}",
    )
    columns = []
    for column in meta["columns"]:
        variable = dataset.variable(column["name"])
        ordered = {k: column[k] for k in ("itemOID", "name", "label", "dataType")}
        if variable.is_date:
            ordered["targetDataType"] = "integer"
        if "length" in column:  # the longest value of the whole column in UTF-8 bytes, at least 1
            ordered["length"] = int(lengths[column["name"]])
        if variable.format:
            ordered["displayFormat"] = variable.format
        if "keySequence" in column:
            ordered["keySequence"] = column["keySequence"]
        columns.append(ordered)
    meta = {**meta, "records": len(frame), "columns": columns}
    types = [data_types[c] for c in frame.columns]
    yield from _json_file(meta, _json_row_texts(frame, types, max(int(chunk_records), 1)))


def dataset_json_dataset_bytes(frame: pd.DataFrame, dataset: Dataset, spec: AdamSpec, *, created: dt.datetime) -> bytes:
    """The Dataset-JSON v1.1 bytes of a conformed dataset (dataset_json_dataset_chunks, joined)."""
    return b"".join(dataset_json_dataset_chunks(frame, dataset, spec, created=created))


# ----------------------------------------------------------------------------------------------------------------
# The delivery
# ----------------------------------------------------------------------------------------------------------------
def _json_code(code: Any) -> Any:
    return int(code) if isinstance(code, float) and code.is_integer() else code


def _parameter_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def delivery_metadata(
    frames: Mapping[str, pd.DataFrame],
    spec: AdamSpec,
    *,
    created: dt.datetime,
    files: Mapping[str, Mapping[str, tuple[int, str]]],
) -> dict[str, Any]:
    """define.json: study, standard, parameters, and for each dataset written (in spec order) its label, class,
    structure, keys, record count, files (name, bytes, sha256: `files` gives dataset -> format -> (size, sha256))
    and variables (label, type, datatype, length from
    the data, format, codelist, origin, source, derivation, key sequence), then the codelists they use."""
    shapes = {name: (len(frame), variable_lengths(frame, spec.dataset(name))) for name, frame in frames.items()}
    return _metadata(shapes, spec, created=created, files=files)


def _metadata(
    shapes: Mapping[str, tuple[int, Mapping[str, int]]],
    spec: AdamSpec,
    *,
    created: dt.datetime,
    files: Mapping[str, Mapping[str, tuple[int, str]]],
) -> dict[str, Any]:
    """`delivery_metadata` from each dataset's record count and variable lengths (shapes: dataset -> (records,
    lengths)), so that the frames need not be kept until define.json is written."""
    datasets = []
    used: list[str] = []
    for name, dataset in spec.datasets.items():
        if name not in shapes:
            continue
        records, lengths = shapes[name]
        variables = []
        for variable in dataset.variables:
            if variable.codelist and variable.codelist not in used:
                used.append(variable.codelist)
            variables.append(
                {
                    "name": variable.name,
                    "label": variable.label,
                    "type": variable.type,
                    "datatype": variable.datatype,
                    "length": lengths[variable.name],
                    "format": variable.format,
                    "codelist": variable.codelist,
                    "origin": variable.origin,
                    "source": list(variable.source),
                    "derivation": variable.derivation,
                    "key_sequence": dataset.keys.index(variable.name) + 1 if variable.name in dataset.keys else None,
                }
            )
        datasets.append(
            {
                "name": name,
                "label": dataset.label,
                "class": dataset.class_name,
                "structure": dataset.structure,
                "keys": list(dataset.keys),
                "sources": list(dataset.sources),
                "records": records,
                "files": {
                    fmt: {"name": f"{name.lower()}.{fmt}", "bytes": size, "sha256": digest}
                    for fmt, (size, digest) in sorted(files[name].items())
                },
                "variables": variables,
            }
        )
    codelists = [
        {
            "id": spec.codelists[c].id,
            "name": spec.codelists[c].name,
            "type": spec.codelists[c].type,
            "terms": [{"code": _json_code(t.code), "decode": t.decode} for t in spec.codelists[c].terms],
        }
        for c in used
    ]
    return {
        "metadata": "ADaM delivery metadata (the content of a define.xml), written with the datasets",
        "spec_file": spec.file,
        "spec_version": spec.spec_version,
        "creation_datetime": created.isoformat(timespec="seconds"),
        "study": dict(spec.study),
        "standard": dict(spec.standard),
        "parameters": {
            k: {"value": _parameter_value(v), "description": spec.parameter_descriptions[k]}
            for k, v in spec.parameters.items()
        },
        "datasets": datasets,
        "codelists": codelists,
    }


#: Where the files of a delivery go: given a file name and its bytes in pieces, it consumes them (keeps them in
#: memory or writes them) and returns their (size, sha256) for define.json.
FileSink = Callable[[str, Iterable[bytes]], tuple[int, str]]


def _file_pieces(
    fmt: str, frame: pd.DataFrame, dataset: Dataset, spec: AdamSpec, created: dt.datetime, lengths: Mapping[str, int]
) -> Iterator[bytes]:
    if fmt == "xpt":
        return xpt_dataset_chunks(frame, dataset, created=created, lengths=lengths)
    return dataset_json_dataset_chunks(frame, dataset, spec, created=created, lengths=lengths)


def _deliver(
    frames: Mapping[str, pd.DataFrame | Conformed],
    spec: AdamSpec,
    sink: FileSink,
    *,
    created: dt.datetime,
    formats: Sequence[str],
) -> list[str]:
    """Produce every file of a delivery into `sink`, dataset by dataset in spec order (its XPT and its Dataset-JSON
    made side by side, in pieces), then define.json; returns the file names. A frame the spec does not know is
    a ConfigError; the spec needs its parameters (AdamSpec.with_parameters) so that define.json states them."""
    unknown = [n for n in frames if n not in spec.datasets]
    if unknown:
        raise ConfigError(f"{spec.file}: no dataset {', '.join(unknown)} in the spec")
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"unknown format(s) {bad}; known: {', '.join(FORMATS)}")
    if not spec.parameters and spec.parameter_descriptions:
        raise ConfigError(f"{spec.file}: the delivery needs its parameters (AdamSpec.with_parameters)")
    shapes: dict[str, tuple[int, dict[str, int]]] = {}
    digests: dict[str, dict[str, tuple[int, str]]] = {}
    names: list[str] = []
    for name, dataset in spec.datasets.items():
        if name not in frames:
            continue
        given = frames[name]
        # one dataset conformed here at a time, unless the caller conformed them already (`conformed`)
        frame, lengths = (
            (given.frame, given.lengths) if isinstance(given, Conformed) else _conform(given, dataset, spec)
        )
        shapes[name] = (len(frame), lengths)
        chosen = [fmt for fmt in FORMATS if fmt in formats]
        names += [f"{name.lower()}.{fmt}" for fmt in chosen]
        # the files of one dataset made side by side (numpy, sha256 and file writes release the GIL): each in a
        # thread of its own, the first here
        pieces = {fmt: _file_pieces(fmt, frame, dataset, spec, created, lengths) for fmt in chosen}
        with ThreadPoolExecutor(max_workers=max(len(chosen) - 1, 1), thread_name_prefix="k2trial-adam") as pool:
            later = {fmt: pool.submit(sink, f"{name.lower()}.{fmt}", pieces[fmt]) for fmt in chosen[1:]}
            first = {fmt: sink(f"{name.lower()}.{fmt}", pieces[fmt]) for fmt in chosen[:1]}
            digests[name] = {**first, **{fmt: future.result() for fmt, future in later.items()}}
        del frame, pieces  # a frame conformed here is released before the next dataset is
    sink(METADATA_FILE, [json_bytes(_metadata(shapes, spec, created=created, files=digests))])
    return [*names, METADATA_FILE]


def _hashing(pieces: Iterable[bytes], result: list[tuple[int, str]]) -> Iterator[bytes]:
    """The pieces as they come; once they are all through, their (size, sha256) is appended to `result`."""
    digest, size = hashlib.sha256(), 0
    for piece in pieces:
        digest.update(piece)
        size += len(piece)
        yield piece
    result.append((size, digest.hexdigest()))


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _made_ahead(pieces: Iterable[bytes], depth: int = 2) -> Iterator[bytes]:
    """The pieces in order, each made by a background thread while the ones before it are hashed and written (file
    writes and sha256 release the GIL, so the two overlap), at most `depth` pieces ahead; an error making a piece
    is raised here. Stopping early (an error writing) stops the thread."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def make() -> None:
        try:
            for piece in pieces:
                if not put(piece):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            put(_Failed(error))
            return
        put(done)

    thread = threading.Thread(target=make, name="k2trial-adam-pieces", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not done:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def delivery_bytes(
    frames: Mapping[str, pd.DataFrame | Conformed],
    spec: AdamSpec,
    *,
    created: dt.datetime,
    formats: Sequence[str] = FORMATS,
) -> dict[str, bytes]:
    """Every file of a delivery as bytes: `<dataset>.xpt` and `<dataset>.json` (lower-case names) for each frame,
    conformed to the spec, and define.json. Datasets are in spec order; a frame the spec does not know is a
    ConfigError. The spec needs its parameters (AdamSpec.with_parameters) so that define.json states them."""
    out: dict[str, bytes] = {}

    def keep(file_name: str, pieces: Iterable[bytes]) -> tuple[int, str]:
        result: list[tuple[int, str]] = []
        out[file_name] = b"".join(_hashing(pieces, result))
        return result[0]

    names = _deliver(frames, spec, keep, created=created, formats=formats)
    return {name: out[name] for name in names}  # in delivery order (a dataset's files are made side by side)


def delivery_datetime(frames: Mapping[str, pd.DataFrame | Conformed], spec: AdamSpec) -> dt.datetime:
    """The creation datetime of a delivery, taken from its data: midnight of the latest date any date variable of
    the datasets holds (SAS dates; the day the data end, like a data cut-off), never the clock, so that the same data
    give the same bytes (XPT header timestamps, datasetJSONCreationDateTime, define.json). Without any date in the
    data: the SAS date origin, 1960-01-01."""
    latest = None
    for name, given in frames.items():
        frame = given.frame if isinstance(given, Conformed) else given
        for variable in spec.dataset(name).variables:
            if variable.is_date and variable.name in frame.columns and len(frame):
                days = pd.to_numeric(frame[variable.name], errors="coerce").max()
                if pd.notna(days) and (latest is None or days > latest):
                    latest = float(days)
    day = dt.date(1960, 1, 1) + dt.timedelta(days=int(latest) if latest is not None else 0)
    return dt.datetime(day.year, day.month, day.day)


def write_delivery(
    frames: Mapping[str, pd.DataFrame | Conformed],
    spec: AdamSpec,
    folder: str | Path,
    *,
    created: dt.datetime,
    formats: Sequence[str] = FORMATS,
) -> list[str]:
    """Write the delivery into folder, each file atomically; returns the file names written. The files are those of
    `delivery_bytes` (same bytes), but each is written as soon as it is made and a Dataset-JSON file is streamed
    (dataset_json_dataset_chunks), so that memory holds one conformed dataset and a few pieces of a file at a
    time; the next pieces are made while one is hashed and written (_made_ahead).

    created: the creation datetime of every file (XPT header timestamps, datasetJSONCreationDateTime, define.json);
    pass a fixed one (e.g. the data version's date) for byte-identical rebuilds."""
    folder = Path(folder)

    def write(file_name: str, pieces: Iterable[bytes]) -> tuple[int, str]:
        return write_bytes(_made_ahead(pieces), folder / file_name)  # (size, sha256), hashed as written

    return _deliver(frames, spec, write, created=created, formats=formats)
