"""SDTM (and ADaM) dataset files: SAS transport XPT version 5 and CDISC Dataset-JSON v1.1 (.json and .ndjson).

Reading keeps character variables as text (pandas str, "" = missing) and numeric variables as float64 (NaN =
missing), whatever the format; `frame.attrs` carries the dataset name, label, variable labels and the file name
(never a path). The writers give the same bytes for the same input: Dataset-JSON has a fixed key order, one row
per line and no clock time (`creation_datetime` is a required argument); XPT is written by pyreadstat and its
four header timestamps are then set to the caller's datetime (see `set_xpt_timestamps`).

Files are written atomically: a temporary file beside the target, renamed over it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from k2trial.core.errors import InputDataError, Problem
from k2trial.core.io import write_bytes

DATASET_JSON_VERSION = "1.1.0"
SDTM_SUFFIXES = (".xpt", ".json", ".ndjson")

_JSON_DATETIME = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?"
    r"(([+-]([01]\d|2[0-3]):[0-5]\d)|Z)?$"
)
_NUMERIC_TYPES = {"integer", "float", "double", "decimal"}
_XPT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,7}$")
_XPT_STAMP = re.compile(rb"^\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d$")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_XPT_LIBRARY = b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!"
_XPT_DESCRIPTOR = b"HEADER RECORD*******DSCRPTR HEADER RECORD!!!!!!!"
_XPT_OBS = b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!"


# --------------------------------------------------------------------------------------------------
# Frames


def normalise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Character columns as str ("" for missing), numeric columns as float64; attrs kept."""
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for column in frame.columns:
        series = frame[column].reset_index(drop=True)
        if pd.api.types.is_bool_dtype(series.dtype):
            out[column] = series
        elif pd.api.types.is_numeric_dtype(series.dtype):
            out[column] = series.astype("float64")
        else:
            out[column] = series.astype(object).where(series.notna(), "").astype("str")
    out.attrs = dict(frame.attrs)
    return out


def _labels_of(frame: pd.DataFrame, column_labels: Mapping[str, str] | None) -> dict[str, str]:
    labels = dict(frame.attrs.get("labels") or {})
    labels.update(column_labels or {})
    return {c: str(labels.get(c) or c) for c in frame.columns}


# --------------------------------------------------------------------------------------------------
# Reading


def read_xpt(path: str | Path, encoding: str | None = None) -> pd.DataFrame:
    """One SAS transport file (v5 or v8) via pyreadstat.read_xport."""
    import pyreadstat

    frame, meta = pyreadstat.read_xport(str(path), encoding=encoding)
    types = meta.readstat_variable_types or {}
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for column in frame.columns:
        series = frame[column]
        if types.get(column) == "string" or not pd.api.types.is_numeric_dtype(series.dtype):
            out[column] = series.astype(object).where(series.notna(), "").astype("str")
        else:
            out[column] = series.astype("float64")
    labels = meta.column_names_to_labels or {}
    out.attrs = {
        "name": meta.table_name or Path(path).stem.upper(),
        "label": meta.file_label or "",
        "labels": {c: labels.get(c) or "" for c in out.columns},
        "source_file": Path(path).name,
    }
    return out


def read_dataset_json(path: str | Path) -> pd.DataFrame:
    """One CDISC Dataset-JSON v1.1 file: .json (one object) or .ndjson (metadata line, then one row per line)."""
    path = Path(path)
    data = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    if path.suffix.lower() == ".ndjson":
        lines = [line for line in data.splitlines() if line.strip()]
        if not lines:
            raise ValueError("empty NDJSON file")
        meta = json.loads(lines[0])
        rows = [json.loads(line) for line in lines[1:]]
    else:
        meta = json.loads(data)
        rows = meta.get("rows") or []
    return dataset_json_frame(meta, rows, source_file=path.name)


def dataset_json_frame(meta: Mapping[str, Any], rows: Sequence[Sequence[Any]], source_file: str = "") -> pd.DataFrame:
    """The frame of a parsed Dataset-JSON document (metadata and rows)."""
    columns = list(meta.get("columns") or [])
    names = [str(c["name"]) for c in columns]
    if any(len(row) != len(names) for row in rows):
        raise ValueError(f"a row does not have the {len(names)} values of the columns")
    values = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    out = pd.DataFrame(index=pd.RangeIndex(len(rows)))
    for column, name, cells in zip(columns, names, values, strict=True):
        kind = column.get("dataType", "string")
        if kind in _NUMERIC_TYPES:
            out[name] = pd.to_numeric(pd.Series(cells, dtype=object), errors="raise").astype("float64")
        elif kind == "boolean":
            out[name] = pd.Series(cells, dtype=object)
        else:
            out[name] = pd.Series(["" if v is None else str(v) for v in cells], dtype="str")
    out.attrs = {
        "name": str(meta.get("name") or ""),
        "label": str(meta.get("label") or ""),
        "labels": {str(c["name"]): str(c.get("label") or "") for c in columns},
        "source_file": source_file,
    }
    return out


def read_domain(path: str | Path, encoding: str | None = None) -> pd.DataFrame:
    """One SDTM dataset file, the format detected from its suffix (.xpt, .json, .ndjson; any case)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".xpt":
        return read_xpt(path, encoding=encoding)
    if suffix in (".json", ".ndjson"):
        return read_dataset_json(path)
    raise ValueError(f"{Path(path).name}: not an SDTM dataset file (.xpt, .json or .ndjson)")


def duplicate_domain_problem(name: str, files: list[Path]) -> Problem:
    """The error for a domain held by more than one file of a folder (dm.xpt and DM.json, say)."""
    listed = ", ".join(p.name for p in files)
    return Problem(
        name, None, None, listed, "domain_duplicate", "error",
        f"{name}: {len(files)} files hold this domain ({listed}); keep one",
    )  # fmt: skip


def read_sdtm(
    folder: str | Path, domains: Sequence[str] | None = None, encoding: str | None = None
) -> dict[str, pd.DataFrame]:
    """Every SDTM dataset in `folder` (dm.xpt, DM.json, lb.ndjson, ...): domain name (upper case) -> frame.

    domains: read only these (case-insensitive). Other files (define.xml, README) are ignored. Two files for one
    domain, or a file that cannot be read, raise InputDataError naming the domain and the file.
    """
    folder = Path(folder)
    wanted = {d.upper() for d in domains} if domains is not None else None
    if not folder.is_dir():
        raise InputDataError(
            [Problem("SDTM", None, None, str(folder.name), "folder_missing", "error", "no such folder")]
        )
    found: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.is_file() and entry.suffix.lower() in SDTM_SUFFIXES:
            name = entry.stem.upper()
            if wanted is None or name in wanted:
                found.setdefault(name, []).append(entry)
    problems: list[Problem] = []
    out: dict[str, pd.DataFrame] = {}
    for name in sorted(found):
        files = found[name]
        if len(files) > 1:
            problems.append(duplicate_domain_problem(name, files))
            continue
        try:
            out[name] = read_domain(files[0], encoding=encoding)
        except Exception as exc:
            problems.append(
                Problem(
                    name,
                    None,
                    None,
                    files[0].name,
                    "domain_unreadable",
                    "error",
                    f"{name}: {files[0].name} cannot be read ({type(exc).__name__}: {exc})",
                )
            )
    if problems:
        raise InputDataError(problems)
    return out


# --------------------------------------------------------------------------------------------------
# Dataset-JSON writing


def _json_datetime(value: str | dt.datetime | None, what: str) -> str | None:
    if value is None:
        return None
    text = value.isoformat(timespec="seconds") if isinstance(value, dt.datetime) else str(value)
    if not _JSON_DATETIME.match(text):
        raise ValueError(f"{what} must be an ISO 8601 date-time with seconds (YYYY-MM-DDTHH:MM:SS), not {text!r}")
    return text


def _column_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series.dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype="float64")
        finite = values[np.isfinite(values)]
        if len(finite) and np.all(finite == np.round(finite)) and np.all(np.abs(finite) < 2**53):
            return "integer"
        return "double"
    return "string"


def dataset_json_document(
    frame: pd.DataFrame,
    *,
    name: str,
    label: str,
    creation_datetime: str | dt.datetime,
    column_labels: Mapping[str, str] | None = None,
    data_types: Mapping[str, str] | None = None,
    keys: Sequence[str] = (),
    study_oid: str | None = None,
    metadata_version_oid: str | None = None,
    metadata_ref: str | None = None,
    originator: str | None = None,
    source_system: tuple[str, str] | None = None,
    db_last_modified: str | dt.datetime | None = None,
    file_oid: str | None = None,
    item_group_oid: str | None = None,
) -> tuple[dict[str, Any], list[list[Any]]]:
    """(metadata, rows) of a Dataset-JSON v1.1 dataset, keys in the order of the specification.

    data_types: variable -> dataType (default: string for text; integer when every value is whole, else double).
    Missing numbers are null, empty text "". String columns get `length` (the longest value in UTF-8 bytes,
    at least 1). keys: the key variables in order (keySequence).
    """
    frame = normalise_frame(frame)
    labels = _labels_of(frame, column_labels)
    types = {c: (data_types or {}).get(c) or _column_type(frame[c]) for c in frame.columns}
    key_rank = {k: i + 1 for i, k in enumerate(keys)}
    columns: list[dict[str, Any]] = []
    cells: list[list[Any]] = []
    for column in frame.columns:
        series = frame[column]
        spec: dict[str, Any] = {
            "itemOID": f"IT.{name}.{column}",
            "name": column,
            "label": labels[column],
            "dataType": types[column],
        }
        if types[column] == "string":
            values = series.astype("str").tolist()
            spec["length"] = max([1, *(len(v.encode("utf-8")) for v in set(values))])
        elif types[column] == "integer":
            numbers = series.to_numpy(dtype="float64")
            values = [int(v) if np.isfinite(v) else None for v in numbers]
        elif types[column] in ("double", "float"):
            numbers = series.to_numpy(dtype="float64")
            values = [float(v) if np.isfinite(v) else None for v in numbers]
        elif types[column] == "decimal":
            numbers = series.to_numpy(dtype="float64")
            values = [repr(float(v)) if np.isfinite(v) else None for v in numbers]
        else:
            values = [None if v is None else v for v in series.tolist()]
        if column in key_rank:
            spec["keySequence"] = key_rank[column]
        columns.append(spec)
        cells.append(values)
    meta: dict[str, Any] = {
        "datasetJSONCreationDateTime": _json_datetime(creation_datetime, "creation_datetime"),
        "datasetJSONVersion": DATASET_JSON_VERSION,
    }
    optional = (
        ("fileOID", file_oid),
        ("dbLastModifiedDateTime", _json_datetime(db_last_modified, "db_last_modified")),
        ("originator", originator),
        ("sourceSystem", {"name": source_system[0], "version": source_system[1]} if source_system else None),
        ("studyOID", study_oid),
        ("metaDataVersionOID", metadata_version_oid),
        ("metaDataRef", metadata_ref),
    )
    meta.update({k: v for k, v in optional if v is not None})
    meta["itemGroupOID"] = item_group_oid or f"IG.{name}"
    meta["records"] = len(frame)
    meta["name"] = name
    meta["label"] = label
    meta["columns"] = columns
    rows = [list(row) for row in zip(*cells, strict=True)] if cells else [[] for _ in range(len(frame))]
    return meta, rows


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dataset_json_bytes(frame: pd.DataFrame, *, ndjson: bool = False, **metadata: Any) -> bytes:
    """The bytes of a Dataset-JSON file (arguments of `dataset_json_document`).

    .json: one object with the metadata and `rows`, each row on its own line; .ndjson (ndjson=True): the
    metadata object on the first line, then one array per row. UTF-8, "\\n" line ends, a final newline.
    """
    meta, rows = dataset_json_document(frame, **metadata)
    row_lines = [_dumps(row) for row in rows]
    if ndjson:
        return ("\n".join([_dumps(meta), *row_lines]) + "\n").encode("utf-8")
    head = _dumps(meta)[:-1]  # without the closing brace
    body = ",\n".join(row_lines)
    text = head + ',"rows":[' + ("\n" + body + "\n" if row_lines else "") + "]}\n"
    return text.encode("utf-8")


def write_dataset_json(frame: pd.DataFrame, path: str | Path, **metadata: Any) -> None:
    """Write a Dataset-JSON file; .ndjson suffix -> NDJSON. See `dataset_json_document` for the arguments."""
    path = Path(path)
    write_bytes(dataset_json_bytes(frame, ndjson=path.suffix.lower() == ".ndjson", **metadata), path)


# --------------------------------------------------------------------------------------------------
# XPT v5 writing


def xpt_timestamp(when: dt.datetime) -> bytes:
    """SAS header datetime, 16 bytes: ddMMMyy:hh:mm:ss (English month, two-digit year)."""
    day = f"{when.day:02d}{_MONTHS[when.month - 1]}{when.year % 100:02d}"
    return f"{day}:{when.hour:02d}:{when.minute:02d}:{when.second:02d}".encode("ascii")


def set_xpt_timestamps(data: bytes, created: dt.datetime, modified: dt.datetime | None = None) -> bytes:
    """Rewrite the created/modified datetimes of an XPT v5 file (pyreadstat cannot set them; it writes the clock).

    Where they are (80-byte records, SAS TS-140): the library header's first real record (bytes 80-159) ends with
    the created datetime (bytes 144-159), the next record (160-239) starts with the modified one (160-175); each
    member's descriptor record after `HEADER RECORD*******DSCRPTR HEADER RECORD` (at offset D) has the member's
    created datetime at D+144..D+159 and its modified datetime at D+160..D+175. All four (per member) are set.
    """
    modified = modified or created
    stamp_c, stamp_m = xpt_timestamp(created), xpt_timestamp(modified)
    if not data.startswith(_XPT_LIBRARY) or len(data) < 240:
        raise ValueError("not a SAS transport (XPT v5) file: no library header record")
    out = bytearray(data)
    end = data.find(_XPT_OBS)
    if end < 0:
        raise ValueError("not a SAS transport (XPT v5) file: no observation header record")
    places = [(144, stamp_c), (160, stamp_m)]
    offset = 0
    while True:
        found = data.find(_XPT_DESCRIPTOR, offset, end)
        if found < 0:
            break
        if found % 80:
            raise ValueError("XPT descriptor header record is not on an 80-byte boundary")
        places += [(found + 144, stamp_c), (found + 160, stamp_m)]
        offset = found + 80
    if len(places) < 4:
        raise ValueError("not a SAS transport (XPT v5) file: no member descriptor record")
    for position, stamp in places:
        if not _XPT_STAMP.match(bytes(out[position : position + 16])):
            raise ValueError(f"unexpected XPT header content at byte {position} (no SAS datetime there)")
        out[position : position + 16] = stamp
    return bytes(out)


def check_xpt_v5(frame: pd.DataFrame, name: str, label: str, labels: Mapping[str, str]) -> None:
    """Raise ValueError naming what breaks the XPT v5 limits (names <= 8, labels <= 40, text <= 200 bytes)."""
    if not _XPT_NAME.match(name):
        raise ValueError(f"XPT v5 dataset name {name!r} must be 1-8 letters, digits or _ (not starting with a digit)")
    if len(label.encode("utf-8")) > 40:
        raise ValueError(f"{name}: dataset label longer than 40 bytes: {label!r}")
    for column in frame.columns:
        if not _XPT_NAME.match(str(column)):
            raise ValueError(f"{name}: variable name {column!r} breaks the XPT v5 limit (1-8 characters)")
        if len(labels.get(column, "").encode("utf-8")) > 40:
            raise ValueError(f"{name}.{column}: label longer than 40 bytes: {labels[column]!r}")
        series = frame[column]
        if not pd.api.types.is_numeric_dtype(series.dtype) and len(series):
            longest = max(len(v.encode("utf-8")) for v in set(series.astype("str")))
            if longest > 200:
                raise ValueError(f"{name}.{column}: a value is {longest} bytes long; XPT v5 allows 200")


def xpt_bytes(
    frame: pd.DataFrame,
    *,
    name: str,
    created: dt.datetime,
    modified: dt.datetime | None = None,
    label: str = "",
    column_labels: Mapping[str, str] | None = None,
) -> bytes:
    """The bytes of an XPT v5 file of `frame` (pyreadstat.write_xport, then `set_xpt_timestamps`)."""
    import pyreadstat

    frame = normalise_frame(frame)
    labels = _labels_of(frame, column_labels)
    check_xpt_v5(frame, name, label, labels)
    fd, tmp = tempfile.mkstemp(prefix=".k2trial-xpt.", suffix=".xpt")
    os.close(fd)
    try:
        pyreadstat.write_xport(
            frame,
            tmp,
            file_label=label,
            column_labels=[labels[c] for c in frame.columns],
            table_name=name,
            file_format_version=5,
        )
        data = Path(tmp).read_bytes()
    finally:
        os.unlink(tmp)
    return set_xpt_timestamps(data, created, modified)


def write_xpt(frame: pd.DataFrame, path: str | Path, **metadata: Any) -> None:
    """Write an XPT v5 file; identical input (frame, labels, name, created, modified) gives identical bytes."""
    write_bytes(xpt_bytes(frame, **metadata), Path(path))


# --------------------------------------------------------------------------------------------------
# A set of domains


def dataset_label(name: str, frame: pd.DataFrame, mapping: Mapping[str, Any] | None = None) -> str:
    label = frame.attrs.get("label")
    if label:
        return str(label)
    writer = ((mapping or {}).get("writer") or {}).get("domains") or {}
    if name in writer and writer[name].get("label"):
        return str(writer[name]["label"])
    if name.startswith("SUPP"):
        return f"Supplemental Qualifiers for {name[4:]}"
    return name


def write_sdtm(
    domains: Mapping[str, pd.DataFrame],
    folder: str | Path,
    *,
    fmt: str = "xpt",
    created: dt.datetime,
    mapping: Mapping[str, Any] | None = None,
    **json_metadata: Any,
) -> dict[str, str]:
    """Write each domain as `<domain in lower case>.<fmt>` (fmt: xpt, json or ndjson) into folder.

    Labels: the frame's attrs, else the mapping's writer labels (config/sdtm_mapping.yaml). Dataset-JSON gets
    `created` as datasetJSONCreationDateTime and the mapping's key variables as keySequence. Returns domain ->
    file name.
    """
    if fmt not in ("xpt", "json", "ndjson"):
        raise ValueError(f"unknown SDTM file format {fmt!r} (xpt, json, ndjson)")
    folder = Path(folder)
    writer = (mapping or {}).get("writer") or {}
    known = writer.get("labels") or {}
    written: dict[str, str] = {}
    for name in sorted(domains):
        frame = domains[name]
        labels = {c: known.get(c, c) for c in frame.columns}
        labels.update({k: v for k, v in (frame.attrs.get("labels") or {}).items() if v})
        label = dataset_label(name, frame, mapping)
        path = folder / f"{name.lower()}.{fmt}"
        if fmt == "xpt":
            write_xpt(frame, path, name=name, created=created, label=label, column_labels=labels)
        else:
            keys = [k for k in ((writer.get("domains") or {}).get(name, {}).get("keys") or []) if k in frame.columns]
            write_dataset_json(
                frame,
                path,
                name=name,
                label=label,
                creation_datetime=created,
                column_labels=labels,
                keys=keys,
                **json_metadata,
            )
        written[name] = path.name
    return written
