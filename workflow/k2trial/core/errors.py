"""Errors a user can act on.

Every problem with input data is reported with the file, the spreadsheet row (header = row 1), the
column, the offending value and the rule that was broken. Scripts print `str(error)` on the command
line; the traceback goes to the rule's log only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Severities of a problem: an error stops the run; a fixable problem is repaired by the cleaning step (and
#: logged); a warning is reported and becomes a data query, the run goes on.
ERROR = "error"
FIXABLE = "fixable"
WARNING = "warning"
SEVERITIES = (ERROR, FIXABLE, WARNING)


@dataclass(frozen=True)
class Problem:
    """One finding about the input data.

    severity: "error" stops the run; "fixable" is repaired by the cleaning step (and logged);
    "warning" is reported and carried into the data queries, the run goes on.
    row: spreadsheet row number in the raw file (header = 1, first record = 2); None for file-level
    problems.
    """

    file: str
    row: int | None
    column: str | None
    value: str | None
    rule: str
    severity: str
    message: str

    def as_record(self) -> dict[str, Any]:
        """The problem as the reports write it (validation report, SDTM import record): its fields in order."""
        return {
            "file": self.file,
            "row": self.row,
            "column": self.column,
            "value": self.value,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
        }

    def describe(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column '{self.column}'"
        value = "" if self.value is None else f" (value {self.value!r})"
        return f"{where}{value}: {self.message} [rule {self.rule}, {self.severity}]"


class K2TrialError(Exception):
    """Base class of the errors meant for the person running the pipeline."""


class InputDataError(K2TrialError):
    """Raw input data break the contract; carries the problems found."""

    #: First line of the message ({n}: the number of errors).
    HEADLINE = "{n} error(s) in the raw data; the run stops before any analysis."

    def __init__(self, problems: list[Problem], report_path: str | None = None, shown: int = 5):
        self.problems = list(problems)
        self.report_path = report_path
        errors = [p for p in self.problems if p.severity == ERROR] or self.problems
        lines = [self.HEADLINE.format(n=len(errors))]
        lines += [f"  - {p.describe()}" for p in errors[:shown]]
        if len(errors) > shown:
            lines.append(f"  ... and {len(errors) - shown} more")
        if report_path:
            lines.append(f"Full report: {report_path}")
        super().__init__("\n".join(lines))

    @classmethod
    def at(
        cls,
        file: str,
        message: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: object = None,
        rule: str = "input_data",
    ) -> InputDataError:
        """One error about one place of an input file (row: spreadsheet row, header = 1)."""
        shown = None if value is None else str(value)
        return cls([Problem(file, row, column, shown, rule, "error", message)])


class ArtifactError(InputDataError):
    """An artifact lacks a column its schema (k2trial.core.schema) declares, or has one the schema does not know:
    names the artifact and the column. Raised by readers and writers of artifacts."""

    HEADLINE = "{n} column problem(s) in an artifact; the step stops."

    def __init__(self, artifact: str, path: str, columns: list[str], message: str):
        self.artifact = artifact
        self.columns = list(columns)
        problems = [Problem(path, 1, c, None, "artifact_schema", "error", f"{artifact}: {message}") for c in columns]
        super().__init__(problems)


class ConfigError(K2TrialError):
    """The configuration is inconsistent in a way the JSON Schema cannot express."""
