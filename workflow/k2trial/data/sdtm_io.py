"""SDTM as the pipeline's input and output (issues 15 and 16): what a dataset.yaml says about its format, the SDTM
folder read into the raw tables that validation, cleaning and derivation read, its findings merged into the
validation report, and our own (clean) raw tables written as SDTM.

A raw folder holds SDTM when its dataset.yaml says so:

    format: sdtm            # csv (the default: the CSV layout of data/raw/README.md) or sdtm
    sdtm:
      files: xpt            # which files of the folder hold the domains: xpt (default), json or ndjson
      study: k2             # the study-level mapping (data/raw/SDTM.md): a name of STUDY_MAPPINGS or the mapping itself

The other keys of dataset.yaml (name, version, simulated, description, ...) are those of the CSV layout.

    source = input_format(description, label="data/sdtm/dataset.yaml")  # None: the CSV layout
    imported = import_sdtm(files, source, mapping, checksums=text)       # SdtmImport: tables, problems, domains
    report = add_to_report(report, imported.record())                    # the validation report with its findings
    domains, created = export_sdtm(clean_tables, mapping, "k2", lab_units)

`input_format` and `sdtm_files` import nothing heavy (the workflow calls them when it is parsed); the rest imports
the SDTM package when called. Pure functions apart from `sdtm_files` (lists a folder) and `import_sdtm` (reads the
files it is given).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k2trial.core.errors import ConfigError, Problem
from k2trial.core.io import parse_checksums
from k2trial.data.sdtm.files import duplicate_domain_problem

#: dataset.yaml keys of this module.
FORMAT_KEY = "format"
SDTM_KEY = "sdtm"
FORMATS = ("csv", "sdtm")
#: sdtm.files -> the file suffix of the domains (k2trial.data.sdtm reads each by its suffix).
FILE_TYPES = {"xpt": ".xpt", "json": ".json", "ndjson": ".ndjson"}
SDTM_KEYS = ("files", "study")
#: Named study-level mappings (k2trial.data.sdtm.study): name -> attribute of k2trial.data.sdtm.
STUDY_MAPPINGS = {"k2": "K2_STUDY", "cdiscpilot": "CDISC_PILOT_STUDY"}
#: The checksum file of a raw folder (the codebook's `checksums_file`, as in the CSV layout).
CHECKSUMS = "SHA256SUMS"
#: The raw tables an import writes (file names of the CSV layout), in the codebook's order.
RAW_TABLES = ("subjects.csv", "symptom_diary.csv", "labs.csv", "adverse_events.csv", "dosing.csv")


@dataclass(frozen=True)
class SdtmSource:
    """What dataset.yaml says about an SDTM folder: the file type of its domains and the study-level mapping
    (`study`: a name of STUDY_MAPPINGS, or the mapping itself)."""

    files: str
    study: str | Mapping[str, Any]

    @property
    def suffix(self) -> str:
        return FILE_TYPES[self.files]

    def study_mapping(self) -> dict[str, Any]:
        """The study-level mapping as k2trial.data.sdtm takes it."""
        if isinstance(self.study, str):
            from k2trial.data import sdtm

            return dict(getattr(sdtm, STUDY_MAPPINGS[self.study]))
        return dict(self.study)

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "study": self.study if isinstance(self.study, str) else dict(self.study)}


def input_format(description: Any, label: str = "dataset.yaml") -> SdtmSource | None:
    """The SDTM source a dataset.yaml describes, or None for the CSV layout (no `format`, or `format: csv`).

    A description that is not a mapping is None too: validation reports it. A format, an `sdtm` key or a value
    this module does not know is a ConfigError naming the file and the key.
    """
    if not isinstance(description, Mapping):
        return None
    fmt = description.get(FORMAT_KEY, "csv")
    if fmt not in FORMATS:
        raise ConfigError(f"{label}: key '{FORMAT_KEY}': {fmt!r} is no input format; known: {', '.join(FORMATS)}")
    block = description.get(SDTM_KEY)
    if fmt == "csv":
        if block is not None:
            raise ConfigError(f"{label}: key '{SDTM_KEY}' is given, but '{FORMAT_KEY}' is not sdtm")
        return None
    block = {} if block is None else block
    if not isinstance(block, Mapping):
        raise ConfigError(f"{label}: key '{SDTM_KEY}': expected a mapping with {', '.join(SDTM_KEYS)}")
    unknown = sorted(set(block) - set(SDTM_KEYS))
    if unknown:
        raise ConfigError(f"{label}: key '{SDTM_KEY}': unknown key(s) {unknown}; known: {', '.join(SDTM_KEYS)}")
    files = block.get("files", "xpt")
    if files not in FILE_TYPES:
        raise ConfigError(f"{label}: key '{SDTM_KEY}.files': {files!r}; known: {', '.join(FILE_TYPES)}")
    study = block.get("study", {})
    if isinstance(study, str):
        if study not in STUDY_MAPPINGS:
            raise ConfigError(
                f"{label}: key '{SDTM_KEY}.study': no study mapping {study!r}; known: {', '.join(STUDY_MAPPINGS)} "
                "(or give the mapping itself, data/raw/SDTM.md)"
            )
    elif not isinstance(study, Mapping):
        raise ConfigError(f"{label}: key '{SDTM_KEY}.study': a name ({', '.join(STUDY_MAPPINGS)}) or a mapping")
    return SdtmSource(files=str(files), study=study if isinstance(study, str) else dict(study))


def sdtm_files(folder: str | Path, source: SdtmSource) -> list[str]:
    """The domain files of an SDTM folder: every file with the source's suffix (any case), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(str(folder / p.name) for p in folder.iterdir() if p.is_file() and p.suffix.lower() == source.suffix)


# ----------------------------------------------------------------------------------------------------------------
# Import: SDTM files -> raw tables
# ----------------------------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checksum_problems(text: str | None, hashes: Mapping[str, str]) -> list[Problem]:
    """SHA256SUMS against the SDTM files read (file name -> sha256): a changed file or a malformed line is an error
    naming the file (or the line), a file the checksums do not list a warning. None: no SHA256SUMS, nothing to check.
    """
    if text is None:
        return []
    listed, malformed = parse_checksums(text)
    problems = [
        Problem(
            CHECKSUMS, number, None, line[:80], "checksum_line_invalid", "error",
            f'{CHECKSUMS} line {number}: not a "<sha256>  <file name>" line',
        )
        for number, line in malformed
    ]  # fmt: skip
    for name, digest in sorted(hashes.items()):
        if name not in listed:
            problems.append(
                Problem(
                    name,
                    None,
                    None,
                    None,
                    "checksum_not_listed",
                    "warning",
                    f"{name}: the file has no line in {CHECKSUMS}, so a change cannot be detected",
                )
            )
        elif listed[name] != digest:
            problems.append(
                Problem(
                    name,
                    None,
                    None,
                    digest,
                    "checksum_mismatch",
                    "error",
                    f"{name}: the file does not match its {CHECKSUMS} line ({listed[name]}): it changed",
                )
            )
    return problems


@dataclass
class SdtmImport:
    """An SDTM folder read: the raw tables (None when the findings have errors: nothing is converted), every
    finding (checksums, reading, k2trial.data.sdtm.check_domains), and per domain its file, records and sha256."""

    source: SdtmSource
    tables: dict[str, Any] | None
    problems: list[Problem] = field(default_factory=list)
    domains: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def converted(self) -> bool:
        return self.tables is not None

    def record(self) -> dict[str, Any]:
        """The import report (results/raw_from_sdtm/import.json): source, domains, findings, converted."""
        return {
            "format": "sdtm",
            "source": self.source.as_dict(),
            "converted": self.converted,
            "domains": self.domains,
            "records": {name: len(table) for name, table in (self.tables or {}).items()},
            "problems": [p.as_record() for p in self.problems],
        }


def import_sdtm(
    paths: Sequence[str | Path],
    source: SdtmSource,
    mapping: Mapping[str, Any],
    checksums: str | None = None,
) -> SdtmImport:
    """Read the domain files (`sdtm_files`), check them (checksums, k2trial.data.sdtm.check_domains) and, when no
    finding is an error, map them to the raw tables of the CSV layout (k2trial.data.sdtm.sdtm_to_raw: the contract
    columns, then the source keys and SDTM context, data/raw/SDTM.md).

    Findings name the domain (Problem.file), the variable, the value, the rule and, in the message, the record
    (USUBJID and --SEQ); file-level ones the file. Two files of one domain or an unreadable file are errors.
    """
    from k2trial.core.errors import InputDataError
    from k2trial.data import sdtm

    study = source.study_mapping()
    files = [Path(p) for p in paths]
    hashes = {p.name: _sha256(p) for p in files}
    problems = checksum_problems(checksums, hashes)
    by_domain: dict[str, list[Path]] = {}
    for path in files:
        by_domain.setdefault(path.stem.upper(), []).append(path)
    domains: dict[str, Any] = {}
    info: dict[str, dict[str, Any]] = {}
    for name in sorted(by_domain):
        found = by_domain[name]
        if len(found) > 1:
            problems.append(duplicate_domain_problem(name, found))
            continue
        try:
            domains[name] = sdtm.read_domain(found[0])
        except Exception as exc:  # any reader failure is the file's problem, named with the file
            problems.append(
                Problem(
                    name,
                    None,
                    None,
                    found[0].name,
                    "domain_unreadable",
                    "error",
                    f"{name}: {found[0].name} cannot be read ({type(exc).__name__}: {exc})",
                )
            )
            continue
        info[name] = {"file": found[0].name, "records": len(domains[name]), "sha256": hashes[found[0].name]}
    problems += sdtm.check_domains(domains, mapping, study)
    tables = None
    if not any(p.severity == "error" for p in problems):
        try:
            tables = sdtm.sdtm_to_raw(domains, mapping, study)
        except InputDataError as exc:
            problems += exc.problems
    return SdtmImport(source=source, tables=tables, problems=problems, domains=info)


def empty_tables(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The raw tables with their columns (contract, then extra) and no record: what an import that found errors
    writes, so that validation can run and report the findings (k2trial.data.sdtm.table_columns)."""
    import pandas as pd

    from k2trial.data import sdtm

    return {
        name: pd.DataFrame({c: pd.Series([], dtype="str") for c in sdtm.table_columns(mapping, name)})
        for name in RAW_TABLES
    }


# ----------------------------------------------------------------------------------------------------------------
# The validation report with the import's findings
# ----------------------------------------------------------------------------------------------------------------
def add_to_report(report: Mapping[str, Any], imported: Mapping[str, Any]) -> dict[str, Any]:
    """The validation report (k2trial.data.validation_report.build_report) with the import's findings added.

    The findings come first among the problems (file = the domain or the SDTM file) and count in the totals and
    the status (an error fails validation, so the cleaning gate stops the run with them); their counts by domain and
    rule are under counts.sdtm (counts.by_file keeps the raw-table rules). The report gets `input`: the source,
    its domains (file, records, sha256) and whether the tables were converted. When they were not (the findings
    have errors), the raw-table problems are dropped: they would describe tables with no record, not the data.
    """
    out = {key: value for key, value in report.items()}
    counts = dict(out["counts"])
    findings = list(imported["problems"])
    raw_problems = list(out["problems"])
    if not imported["converted"]:
        # the tables have no record (nothing was converted): their problems (a handful) are dropped, the counts
        # recomputed from what is kept (dataset.yaml)
        kept = [p for p in raw_problems if p["file"] not in RAW_TABLES]
        by_file: dict[str, dict[str, int]] = {}
        for p in kept:
            rules = by_file.setdefault(str(p["file"]), {})
            rules[p["rule"]] = rules.get(p["rule"], 0) + 1
        for severity in ("error", "fixable", "warning"):
            counts[severity] = sum(p["severity"] == severity for p in kept)
        counts.update(by_file=by_file, records={}, total=len(kept), reported=len(kept))
        counts["not_converted_problems_dropped"] = len(raw_problems) - len(kept)
        raw_problems = kept
    sdtm_counts: dict[str, dict[str, int]] = {}
    for p in findings:
        rules = sdtm_counts.setdefault(str(p["file"]), {})
        rules[p["rule"]] = rules.get(p["rule"], 0) + 1
        counts[p["severity"]] = counts.get(p["severity"], 0) + 1
    counts["sdtm"] = {f: dict(sorted(r.items())) for f, r in sorted(sdtm_counts.items())}
    counts["total"] = counts["total"] + len(findings)
    counts["reported"] = counts["reported"] + len(findings)
    out["counts"] = counts
    out["problems"] = findings + raw_problems
    out["status"] = "failed" if counts["error"] else "passed"
    out["input"] = {
        "format": "sdtm",
        "source": imported["source"],
        "converted": imported["converted"],
        "domains": imported["domains"],
    }
    return out


def _finding_severity(report: Mapping[str, Any], file: str, rule: str) -> str:
    """The severity of a finding whose rule is not a check_domains rule (checksums, reading, sdtm_to_raw)."""
    return next(p["severity"] for p in report["problems"] if p["file"] == file and p["rule"] == rule)


def sdtm_markdown(report: Mapping[str, Any]) -> str:
    """The section of report.md about an SDTM input: the source, the domains read and the findings by domain and
    rule (each finding is listed with the other problems, under its domain)."""
    from k2trial.data.sdtm import RULES

    given = report["input"]
    source = given["source"]
    study = source["study"] if isinstance(source["study"], str) else "given in dataset.yaml"
    lines = [
        "",
        "## SDTM input",
        "",
        f"The raw tables were read from SDTM ({source['files']} files; study mapping: {study}) by rule import_sdtm "
        "(k2trial.data.sdtm, config/sdtm_mapping.yaml, data/raw/SDTM.md)."
        + (
            ""
            if given["converted"]
            else " **The findings below have errors, so nothing was converted**: fix them in the SDTM files and rerun."
        ),
        "",
        "| domain | file | records | sha256 |",
        "|---|---|---:|---|",
    ]
    for name, entry in given["domains"].items():
        lines.append(f"| {name} | {entry['file']} | {entry['records']} | `{entry['sha256']}` |")
    lines += ["", "| domain | rule | severity | count |", "|---|---|---|---:|"]
    sdtm_counts = report["counts"].get("sdtm") or {}
    if not sdtm_counts:
        lines.append("| | no findings | | 0 |")
    for domain, rules in sdtm_counts.items():
        for rule, n in rules.items():
            severity = RULES[rule][0] if rule in RULES else _finding_severity(report, domain, rule)
            lines.append(f"| {domain} | {rule} | {severity} | {n} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Export: our clean raw tables -> SDTM
# ----------------------------------------------------------------------------------------------------------------
def sdtm_datetime(domains: Mapping[str, Any]) -> dt.datetime:
    """The creation datetime of an SDTM delivery, from its data: midnight of the latest full date any --DTC variable
    holds (the day the data end), never the clock. No date at all: 1960-01-01, the SAS date origin."""
    latest = ""
    for frame in domains.values():
        for column in frame.columns:
            if str(column).endswith("DTC"):
                values = frame[column].astype("str").str.slice(0, 10)
                full = values[values.str.fullmatch(r"\d{4}-\d{2}-\d{2}")]
                if len(full) and full.max() > latest:
                    latest = full.max()
    day = dt.date.fromisoformat(latest) if latest else dt.date(1960, 1, 1)
    return dt.datetime(day.year, day.month, day.day)


def export_sdtm(
    tables: Mapping[str, Any], mapping: Mapping[str, Any], study: str, lab_units: Mapping[str, Any]
) -> tuple[dict[str, Any], dt.datetime]:
    """SDTM domains of our clean raw tables (file name -> text frame, the contract columns; k2trial.data.sdtm
    raw_to_sdtm with the named study mapping) and their creation datetime (`sdtm_datetime`)."""
    from k2trial.data import sdtm

    source = SdtmSource(files="xpt", study=study)
    domains = sdtm.raw_to_sdtm(tables, mapping, source.study_mapping(), lab_units)
    return domains, sdtm_datetime(domains)


def export_description(description: Mapping[str, Any], files: str, study: str) -> dict[str, Any]:
    """dataset.yaml of an SDTM export: the raw folder's description (name, version, simulated, ...) with
    `format: sdtm` and the `sdtm` block that reads the export back."""
    out = {k: v for k, v in description.items() if k not in (FORMAT_KEY, SDTM_KEY)}
    out[FORMAT_KEY] = "sdtm"
    out[SDTM_KEY] = {"files": files, "study": study}
    return out


def checksums_text(files: Mapping[str, bytes]) -> str:
    """SHA256SUMS (sha256sum format) of the files (name -> bytes), sorted by name."""
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items()))
