"""The validation report and the gate: report.json (status, exact counts, the first problems of each file and rule,
data version, file hashes), report.md for people, and `require_passed`, which the cleaning step runs first so that
nothing is cleaned or analysed after a failed validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k2trial.core.errors import ERROR, SEVERITIES, InputDataError, Problem
from k2trial.data.contract import Contract
from k2trial.data.validation import RULES, ValidationResult, file_order, to_problem_list


def stale_report_problem(report_path: str) -> Problem:
    """The problem raised when the raw files changed after the validation report was written."""
    return Problem(
        report_path, None, None, None, "report_stale", ERROR, "the raw files changed after validation; rerun"
    )


def build_report(result: ValidationResult, limit_per_rule: int = 1000) -> dict[str, Any]:
    """report.json: status, counts (exact), problems (the first `limit_per_rule` of each file and rule),
    data_version, files (sha256 per raw data file); when dataset.yaml declares the subject IDs or sites,
    `declarations` after contract_version: the subject-ID pattern and the sites in force and where each was
    declared (a report without it: the codebook's defaults were in force; null: the declarations could not be
    used, and no value was checked)."""
    problems = result.problems
    rank = problems.groupby(["file", "rule"], sort=False).cumcount().to_numpy()
    shown = problems[rank < limit_per_rule]
    by_file: dict[str, dict[str, int]] = {}
    for (file, rule), n in problems.groupby(["file", "rule"], sort=True).size().items():
        by_file.setdefault(str(file), {})[str(rule)] = int(n)
    counts = {severity: int((problems["severity"] == severity).sum()) for severity in SEVERITIES}
    counts.update(
        {
            "total": len(problems),
            "reported": len(shown),
            "limit_per_rule": int(limit_per_rule),
            "by_file": by_file,
            "records": {name: len(table) for name, table in result.tables.items()},
        }
    )
    declarations: dict[str, Any] = {}
    if result.declared:
        declarations["declarations"] = result.declarations()
    elif result.contract is None:  # dataset.yaml declares, but unusably: nothing was in force, nothing checked
        declarations["declarations"] = None
    return {
        "status": result.status,
        "contract_version": result.contract_version,
        **declarations,
        "counts": counts,
        "problems": [p.as_record() for p in to_problem_list(shown)],
        "data_version": result.data_version,
        "files": dict(sorted(result.file_hashes.items())),
    }


def _md(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")
    return text


def report_markdown(report: Mapping[str, Any], contract: Contract) -> str:
    """report.md: summary, counts per file and rule, then one table per file (as listed in report.json)."""
    counts = report["counts"]
    lines = [
        "# Raw-data validation report",
        "",
        f"**Status: {report['status'].upper()}** - {counts['error']} error(s), {counts['fixable']} fixable, "
        f"{counts['warning']} warning(s).",
        "",
        f"Data version: `{report['data_version']}`; contract version {report['contract_version']}.",
        "",
        "- **error**: the run stops before cleaning; correct the raw file and rerun.",
        "- **fixable**: the cleaning step repairs it deterministically; every change is a row in "
        "`results/clean/audit_log.csv`.",
        "- **warning**: the run goes on; the problem is a question for the site in `results/clean/queries.csv`.",
        "",
        "Rows are spreadsheet rows (the header is row 1, the first record row 2).",
    ]
    if report.get("declarations"):
        lines += ["", *declarations_markdown(report["declarations"])]
    elif "declarations" in report:
        lines += [
            "",
            "## Declarations in force",
            "",
            "None: the subject_id or sites declarations of dataset.yaml cannot be used (see its errors below), "
            "so no value of the raw files was checked.",
        ]
    if counts["reported"] < counts["total"]:
        lines += [
            "",
            f"Only the first {counts['limit_per_rule']} problems of each file and rule are listed "
            f"({counts['reported']} of {counts['total']}); the counts below are exact.",
        ]
    lines += ["", "## Files", "", "| file | records | sha256 |", "|---|---:|---|"]
    for name in file_order(contract):
        if name in report["files"] or name in counts["records"]:
            records = counts["records"].get(name, "")
            lines.append(f"| {name} | {records} | `{report['files'].get(name, '')}` |")
    lines += ["", "## Problems by file and rule", ""]
    if not counts["total"]:
        lines.append("No problems found.")
    else:
        lines += ["| file | rule | severity | count |", "|---|---|---|---:|"]
        ordered = sorted(counts["by_file"], key=lambda f: (_rank(f, contract), f))
        for file in ordered:
            for rule, n in sorted(counts["by_file"][file].items()):
                lines.append(f"| {file} | {rule} | {RULES[rule].severity} | {n} |")
    files = []
    for problem in report["problems"]:
        if problem["file"] not in files:
            files.append(problem["file"])
    for file in files:
        lines += [
            "",
            f"## {file}",
            "",
            "| row | column | value | rule | severity | message |",
            "|---:|---|---|---|---|---|",
        ]
        for p in report["problems"]:
            if p["file"] == file:
                lines.append(
                    f"| {_md(p['row'])} | {_md(p['column'])} | {_md(p['value'])} | {p['rule']} | {p['severity']} "
                    f"| {_md(p['message'])} |"
                )
    return "\n".join(lines) + "\n"


def declarations_markdown(declarations: Mapping[str, Any]) -> list[str]:
    """The report.md section on the subject-ID pattern and sites in force (report.json `declarations`)."""
    subject, sites = declarations["subject_id"], declarations["sites"]
    lines = [
        "## Declarations in force",
        "",
        f"- Subject IDs (from {subject['declared_in']}): `` {subject['pattern']} ``; {subject['normalisation']}.",
        f"- Sites (from {sites['declared_in']}): "
        + ", ".join(
            f"{_md(site)} ({'day-first dates accepted' if spec['day_first'] else 'ISO dates only'})"
            for site, spec in sites["sites"].items()
        )
        + ".",
    ]
    return lines


def _rank(file: str, contract: Contract) -> int:
    order = file_order(contract)
    return order.index(file) if file in order else len(order)


def require_passed(report: Mapping[str, Any], report_path: str) -> None:
    """The gate before cleaning: raise InputDataError (first errors + report path) if validation failed."""
    if report.get("status") == "passed":
        return
    errors = [
        Problem(p["file"], p["row"], p["column"], p["value"], p["rule"], p["severity"], p["message"])
        for p in report.get("problems", [])
        if p["severity"] == ERROR
    ]
    if not errors:
        errors = [Problem(report_path, None, None, None, "validation", ERROR, "validation did not pass")]
    raise InputDataError(errors, report_path=report_path)
