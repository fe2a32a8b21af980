"""Published claims checked against the pipeline's results (config/claims.yaml; results/claims/).

A claim is one statement of the publication with one or more checks. A check reads one artifact (an analysis
table, given as a DataFrame under the name the spec uses), keeps the rows matching `where`, aggregates one
column and compares the result with the expected value. The verdict of a claim:

    not_reproduced  an evaluable check fails (a conjunctive claim is refuted by any failing part)
    not_evaluable   otherwise, when a check lacks its artifact, column or row, or its observed value is missing
    reproduced      every check holds

A claim is never reproduced on missing data. Observed values are rounded half up (on the shortest decimal
representation, as a person rounds) to the check's `decimals`, and judged on that displayed value, so the table
never shows a number that contradicts its verdict (a median of 2.004 shown as "2.00" is within 1-2).

Frames are the artifacts as read from CSV (pandas defaults, "" the only missing value): the index is the record
position, so the evidence names spreadsheet row index + 2 (header = row 1). Nothing here reads files.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from k2trial.core import schema
from k2trial.core.errors import ConfigError
from k2trial.core.values import boolean_cell, rounded_decimal

STATUSES = ("reproduced", "not_reproduced", "not_evaluable")
AGGREGATES = ("value", "count", "min", "max", "mean", "median", "sum", "range", "ordering")
EXPECTATIONS = ("equals", "between", "below", "above", "at_most", "at_least")
#: What a missing observed value prints as.
MISSING_TEXT = "NA"
#: Spreadsheet row of a frame's first record (header = row 1).
FIRST_DATA_ROW = 2
#: Caveat stated in the summary when the dataset is simulated.
SIMULATED_CAVEAT = (
    "The data are SIMULATED and calibrated to the published facts: a reproduced claim shows that the pipeline "
    "recovers the calibration, not that the published study's claims hold for patients."
)


@dataclass(frozen=True)
class Expectation:
    """What the observed value must satisfy. `values` holds one number (or bool), or [low, high] for between."""

    kind: str
    values: tuple[Any, ...]

    def describe(self) -> str:
        """In words (a leading "=" or "<" would be escaped as a spreadsheet formula in the CSV)."""
        shown = [_describe_expected_value(v) for v in self.values]
        if self.kind == "between":
            return f"within [{shown[0]}, {shown[1]}]"
        if self.kind == "equals":
            return shown[0]
        return f"{self.kind.replace('_', ' ')} {shown[0]}"

    def holds(self, observed: Decimal | bool) -> bool:
        """Compare a displayed (rounded) value; booleans only with `equals`."""
        if isinstance(observed, bool) or any(isinstance(v, bool) for v in self.values):
            return self.kind == "equals" and isinstance(observed, bool) and observed is bool(self.values[0])
        bounds = [Decimal(str(v)) for v in self.values]
        if self.kind == "equals":
            return observed == bounds[0]
        if self.kind == "between":
            return bounds[0] <= observed <= bounds[1]
        if self.kind == "below":
            return observed < bounds[0]
        if self.kind == "above":
            return observed > bounds[0]
        if self.kind == "at_most":
            return observed <= bounds[0]
        return observed >= bounds[0]  # at_least


@dataclass(frozen=True)
class Check:
    """One machine-checkable part of a claim (see config/claims.yaml for the vocabulary)."""

    artifact: str
    column: str
    aggregate: str
    expected: Expectation | None
    decimals: int = 2
    label: str | None = None
    where: Mapping[str, Any] = field(default_factory=dict)
    missing: str = "fail"
    context: Mapping[str, int] = field(default_factory=dict)
    by: str | None = None
    lower: tuple[Any, ...] = ()
    than: tuple[Any, ...] = ()

    def columns(self) -> list[str]:
        """Every column of the artifact this check reads (a reader may load only these)."""
        names = [*self.where, self.column, *self.context]
        if self.by:
            names.append(self.by)
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Claim:
    claim_id: str
    primary: bool
    source: str
    wording: str
    statistic: str
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class CheckResult:
    status: str
    observed: str
    expected: str
    evidence: str


# ----------------------------------------------------------------------------------------------------------------
# The spec


def _spec_error(where: str, message: str) -> ConfigError:
    return ConfigError(f"claims spec, {where}: {message}")


def _parse_expectation(raw: Any, where: str) -> Expectation:
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise _spec_error(where, f"`expected` must be one of {', '.join(EXPECTATIONS)} with its value, got {raw!r}")
    kind, value = next(iter(raw.items()))
    if kind not in EXPECTATIONS:
        raise _spec_error(where, f"unknown expectation {kind!r}; use one of {', '.join(EXPECTATIONS)}")
    if kind == "between":
        if not (isinstance(value, Sequence) and len(value) == 2 and all(_is_number(v) for v in value)):
            raise _spec_error(where, f"`between` needs [low, high] numbers, got {value!r}")
        if value[0] > value[1]:
            raise _spec_error(where, f"`between` low {value[0]} is above high {value[1]}")
        return Expectation(kind, (value[0], value[1]))
    if isinstance(value, bool):
        if kind != "equals":
            raise _spec_error(where, f"a true/false value can only be compared with `equals`, not {kind!r}")
    elif not _is_number(value):
        raise _spec_error(where, f"`{kind}` needs a number, got {value!r}")
    return Expectation(kind, (value,))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _parse_check(raw: Any, where: str) -> Check:
    if not isinstance(raw, Mapping):
        raise _spec_error(where, "a check must be a mapping")
    known = {"label", "artifact", "where", "column", "aggregate", "expected", "decimals", "missing", "context"}
    known |= {"by", "lower", "than"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise _spec_error(where, f"unknown key(s) {', '.join(unknown)}")
    for key in ("artifact", "column", "aggregate"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise _spec_error(where, f"`{key}` is required (text)")
    aggregate = raw["aggregate"]
    if aggregate not in AGGREGATES:
        raise _spec_error(where, f"unknown aggregate {aggregate!r}; use one of {', '.join(AGGREGATES)}")
    filters = raw.get("where") or {}
    if not isinstance(filters, Mapping):
        raise _spec_error(where, "`where` must map column names to values")
    decimals = raw.get("decimals", 2)
    if not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 12:
        raise _spec_error(where, f"`decimals` must be an integer 0-12, got {decimals!r}")
    missing = raw.get("missing", "fail")
    if missing not in ("fail", "drop"):
        raise _spec_error(where, f"`missing` must be fail or drop, got {missing!r}")
    context = raw.get("context") or {}
    if not isinstance(context, Mapping) or not all(isinstance(d, int) and d >= 0 for d in context.values()):
        raise _spec_error(where, "`context` must map column names to decimals")
    if aggregate == "ordering":
        if not raw.get("by") or not raw.get("lower") or not raw.get("than"):
            raise _spec_error(where, "aggregate ordering needs `by`, `lower` and `than`")
        if "expected" in raw:
            raise _spec_error(
                where, "aggregate ordering states its expectation with `lower` and `than`, not `expected`"
            )
        expectation = None
    else:
        if "expected" not in raw:
            raise _spec_error(where, "`expected` is required")
        expectation = _parse_expectation(raw["expected"], where)
        if aggregate == "range" and expectation.kind != "between":
            raise _spec_error(where, "aggregate range needs `expected: {between: [low, high]}`")
    return Check(
        artifact=raw["artifact"],
        column=raw["column"],
        aggregate=aggregate,
        expected=expectation,
        decimals=decimals,
        label=raw.get("label"),
        where=dict(filters),
        missing=missing,
        context=dict(context),
        by=raw.get("by"),
        lower=tuple(raw.get("lower") or ()),
        than=tuple(raw.get("than") or ()),
    )


def parse_claims(document: Mapping[str, Any]) -> tuple[Claim, ...]:
    """The claims of a parsed config/claims.yaml, in file order. Raises ConfigError naming the claim and key."""
    raw_claims = document.get("claims") if isinstance(document, Mapping) else None
    if not isinstance(raw_claims, list) or not raw_claims:
        raise _spec_error("top level", "`claims` must be a non-empty list")
    claims = []
    seen: set[str] = set()
    for position, raw in enumerate(raw_claims, start=1):
        where = f"claim {position}"
        if not isinstance(raw, Mapping):
            raise _spec_error(where, "a claim must be a mapping")
        claim_id = raw.get("claim_id")
        if not isinstance(claim_id, str) or not claim_id:
            raise _spec_error(where, "`claim_id` is required (text)")
        where = f"claim {claim_id}"
        if claim_id in seen:
            raise _spec_error(where, "duplicate claim_id")
        seen.add(claim_id)
        for key in ("source", "wording", "statistic"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise _spec_error(where, f"`{key}` is required (text)")
        if not isinstance(raw.get("primary"), bool):
            raise _spec_error(where, "`primary` must be true or false")
        checks = raw.get("checks")
        if not isinstance(checks, list) or not checks:
            raise _spec_error(where, "`checks` must be a non-empty list")
        parsed = tuple(_parse_check(c, f"{where}, check {i}") for i, c in enumerate(checks, start=1))
        claims.append(Claim(claim_id, raw["primary"], raw["source"], raw["wording"], raw["statistic"], parsed))
    return tuple(claims)


def required_columns(claims: Sequence[Claim]) -> dict[str, list[str]]:
    """Artifact name -> the columns the claims read from it (so a reader can load only those)."""
    needed: dict[str, list[str]] = {}
    for claim in claims:
        for check in claim.checks:
            columns = needed.setdefault(check.artifact, [])
            columns.extend(c for c in check.columns() if c not in columns)
    return needed


# ----------------------------------------------------------------------------------------------------------------
# Formatting


def format_value(value: Any, decimals: int) -> str:
    """A displayed number (rounded half up), true/false for booleans, NA when missing."""
    flag = boolean_cell(value)
    if flag is not None:
        return "true" if flag else "false"
    rounded = rounded_decimal(value, decimals)
    return MISSING_TEXT if rounded is None else f"{rounded:.{decimals}f}"


def _describe_expected_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _describe_where(where: Mapping[str, Any]) -> str:
    if not where:
        return "all rows"
    parts = []
    for column, value in where.items():
        shown = "|".join(map(str, value)) if isinstance(value, (list, tuple)) else _describe_expected_value(value)
        parts.append(f"{column}={shown}")
    return ", ".join(parts)


def _rows_text(index: pd.Index) -> str:
    """Spreadsheet rows of the matched records: one row, a contiguous span, or a count."""
    if len(index) == 0:
        return "no rows"
    if not pd.api.types.is_integer_dtype(index):
        return f"{len(index)} row(s)"
    rows = np.asarray(index, dtype=np.int64) + FIRST_DATA_ROW
    if len(rows) == 1:
        return f"row {rows[0]}"
    if rows[-1] - rows[0] == len(rows) - 1 and np.all(np.diff(rows) == 1):
        return f"rows {rows[0]}-{rows[-1]}"
    return f"{len(rows)} rows"


# ----------------------------------------------------------------------------------------------------------------
# Evaluation


def _match(frame: pd.DataFrame, where: Mapping[str, Any]) -> pd.Series:
    """Boolean mask of the rows whose columns equal the `where` values (a list: any of them), vectorised.

    Text is compared as text, numbers numerically (a text column is parsed), booleans with their text forms.
    """
    mask = pd.Series(True, index=frame.index)
    for column, wanted in where.items():
        values = frame[column]
        options = wanted if isinstance(wanted, (list, tuple)) else [wanted]
        hit = pd.Series(False, index=frame.index)
        for option in options:
            if isinstance(option, bool):
                text = values.astype("string").str.strip().str.lower()
                hit |= (text == ("true" if option else "false")).fillna(False).astype(bool)
            elif _is_number(option):
                numeric = (
                    pd.to_numeric(values, errors="coerce") if not pd.api.types.is_numeric_dtype(values) else values
                )
                hit |= (numeric == option).fillna(False).astype(bool)
            elif pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
                hit |= (values.astype("string") == str(option)).fillna(False).astype(bool)
            else:  # text, object or categorical: compared as is, no conversion of millions of cells
                hit |= (values == str(option)).fillna(False).astype(bool)
        mask &= hit
    return mask


def _not_evaluable(check: Check, evidence: str) -> CheckResult:
    expected = _expected_text(check)
    return CheckResult("not_evaluable", MISSING_TEXT, expected, evidence)


def _expected_text(check: Check) -> str:
    if check.aggregate == "ordering":
        lower = ", ".join(map(str, check.lower))
        than = ", ".join(map(str, check.than))
        return f"each of {lower} < each of {than}"
    assert check.expected is not None
    text = check.expected.describe()
    if check.aggregate == "range":
        text = f"min and max {text}"
    return text


def _numeric(values: pd.Series) -> pd.Series:
    return values if pd.api.types.is_numeric_dtype(values) else pd.to_numeric(values, errors="coerce")


def evaluate_check(check: Check, frame: pd.DataFrame | None, label: str) -> CheckResult:
    """Evaluate one check on its artifact (`frame`, None when missing); `label` names the artifact in evidence."""
    base = f"{label}: {_describe_where(check.where)}"
    if frame is None:
        return _not_evaluable(check, f"{label}: artifact missing")
    absent = [c for c in check.columns() if c not in frame.columns]
    if absent:
        return _not_evaluable(check, f"{label}: column(s) {', '.join(absent)} missing")
    matched = frame.loc[_match(frame, check.where)]
    rows = _rows_text(matched.index)
    evidence = (
        f"{base}; {rows}" if check.aggregate in ("count", "ordering") else f"{base}; column {check.column}, {rows}"
    )
    expected = _expected_text(check)

    if check.aggregate == "count":
        n = len(matched)
        return CheckResult(_verdict(check, Decimal(n)), f"{n} row{'' if n == 1 else 's'}", expected, evidence)
    if matched.empty:
        return _not_evaluable(check, f"{base}: no matching row")
    if check.aggregate == "value":
        return _evaluate_value(check, matched, expected, evidence)
    if check.aggregate == "ordering":
        return _evaluate_ordering(check, matched, expected, evidence)
    return _evaluate_aggregate(check, matched, expected, evidence)


def _verdict(check: Check, observed: Decimal | bool | None) -> str:
    assert check.expected is not None
    if observed is None:
        return "not_evaluable"
    return "reproduced" if check.expected.holds(observed) else "not_reproduced"


def _evaluate_value(check: Check, matched: pd.DataFrame, expected: str, evidence: str) -> CheckResult:
    if len(matched) > 1:
        return _not_evaluable(check, f"{evidence}: {len(matched)} rows match, the spec must select one")
    row = matched.iloc[0]
    raw = row[check.column]
    flag = boolean_cell(raw)
    observed: Decimal | bool | None = flag if flag is not None else rounded_decimal(raw, check.decimals)
    shown = f"{check.column} {format_value(raw, check.decimals)}"
    if check.context:
        extra = ", ".join(f"{c} = {format_value(row[c], d)}" for c, d in check.context.items())
        shown = f"{shown} ({extra})"
    if observed is None:
        return CheckResult("not_evaluable", shown, expected, f"{evidence}: value missing or not a number")
    return CheckResult(_verdict(check, observed), shown, expected, evidence)


def _evaluate_aggregate(check: Check, matched: pd.DataFrame, expected: str, evidence: str) -> CheckResult:
    values = _numeric(matched[check.column])
    n_missing = int(values.isna().sum())
    if n_missing and check.missing == "fail":
        return _not_evaluable(check, f"{evidence}: {n_missing} of {len(values)} values missing")
    values = values.dropna()
    if values.empty:
        return _not_evaluable(check, f"{evidence}: every value missing")
    n_text = f"n = {len(values)}" + (f", {n_missing} missing left out" if n_missing else "")
    if check.aggregate == "range":
        low = rounded_decimal(values.min(), check.decimals)
        high = rounded_decimal(values.max(), check.decimals)
        assert low is not None and high is not None and check.expected is not None
        holds = check.expected.holds(low) and check.expected.holds(high)
        shown = f"min {format_value(values.min(), check.decimals)}, max {format_value(values.max(), check.decimals)}"
        return CheckResult("reproduced" if holds else "not_reproduced", f"{shown} ({n_text})", expected, evidence)
    statistic = {
        "min": values.min,
        "max": values.max,
        "mean": values.mean,
        "median": values.median,
        "sum": values.sum,
    }[check.aggregate]()
    observed = rounded_decimal(statistic, check.decimals)
    shown = f"{check.aggregate} {format_value(statistic, check.decimals)} ({n_text})"
    return CheckResult(_verdict(check, observed), shown, expected, evidence)


def _evaluate_ordering(check: Check, matched: pd.DataFrame, expected: str, evidence: str) -> CheckResult:
    assert check.by is not None
    keys = matched[check.by].astype("string")
    values = _numeric(matched[check.column])
    shown_parts = []
    observed: dict[Any, Decimal | None] = {}
    problems = []
    for level in (*check.lower, *check.than):
        hits = values[(keys == str(level)).fillna(False).to_numpy()]
        if len(hits) != 1:
            problems.append(f"{check.by}={level}: {len(hits)} rows")
            observed[level] = None
            shown_parts.append(f"{level} {MISSING_TEXT}")
            continue
        observed[level] = rounded_decimal(hits.iloc[0], check.decimals)
        if observed[level] is None:
            problems.append(f"{check.by}={level}: value missing")
        shown_parts.append(f"{level} {format_value(hits.iloc[0], check.decimals)}")
    n_lower = len(check.lower)
    shown = f"{', '.join(shown_parts[:n_lower])} vs {', '.join(shown_parts[n_lower:])}"
    if problems:
        return CheckResult("not_evaluable", shown, expected, f"{evidence}: {'; '.join(problems)}")
    highest_lower = max(observed[level] for level in check.lower)  # type: ignore[type-var]
    lowest_than = min(observed[level] for level in check.than)  # type: ignore[type-var]
    status = "reproduced" if highest_lower < lowest_than else "not_reproduced"
    return CheckResult(status, shown, expected, f"{evidence}; column {check.column}")


def combine_statuses(statuses: Sequence[str]) -> str:
    """A claim's verdict from its checks: any failure refutes it; else any missing part leaves it open."""
    if "not_reproduced" in statuses:
        return "not_reproduced"
    if "not_evaluable" in statuses:
        return "not_evaluable"
    return "reproduced"


def _join(results: Sequence[CheckResult], checks: Sequence[Check], attribute: str) -> str:
    texts = [getattr(r, attribute) for r in results]
    if len(results) == 1 and checks[0].label is None:
        return texts[0]
    return "; ".join(f"{c.label or c.artifact}: {t}" for c, t in zip(checks, texts, strict=True))


def evaluate_claims(
    claims: Sequence[Claim],
    artifacts: Mapping[str, pd.DataFrame | None],
    *,
    artifact_labels: Mapping[str, str] | None = None,
    definitions: Mapping[str, Any] | None = None,
    data_simulated: bool | None = None,
) -> pd.DataFrame:
    """The claims table (artifact claims/claims), one row per claim in spec order.

    artifacts: artifact name -> its table as read (None or absent: missing artifact, checks not evaluable).
    artifact_labels: artifact name -> the path shown in the evidence (default: the name).
    definitions: values substituted for ${name} in each claim's `statistic` text (configured thresholds).
    data_simulated: whether the dataset declares itself simulated (None: unknown), repeated on every row.
    """
    labels = dict(artifact_labels or {})
    substitutions = {k: _describe_expected_value(v) for k, v in (definitions or {}).items()}
    rows = []
    for claim in claims:
        results = [
            evaluate_check(check, artifacts.get(check.artifact), labels.get(check.artifact, check.artifact))
            for check in claim.checks
        ]
        rows.append(
            {
                "claim_id": claim.claim_id,
                "source": claim.source,
                "statement": claim.wording,
                "statistic": string.Template(" ".join(claim.statistic.split())).safe_substitute(substitutions),
                "expected": _join(results, claim.checks, "expected"),
                "observed": _join(results, claim.checks, "observed"),
                "status": combine_statuses([r.status for r in results]),
                "evidence": " | ".join(r.evidence for r in results),
                "primary": claim.primary,
                "data_simulated": data_simulated,
            }
        )
    return pd.DataFrame(rows, columns=schema.columns("claims/claims"))


def claims_summary(table: pd.DataFrame, *, data_simulated: bool | None, dataset: Mapping[str, Any]) -> dict:
    """Counts by status overall and for primary/secondary claims, and whether every primary claim is reproduced.

    `dataset` is the raw dataset.yaml (name and version are echoed); a simulated dataset adds the caveat.
    """
    status = table["status"].astype(str)
    primary = table["primary"].astype(bool)

    def counts(mask: pd.Series) -> dict[str, int]:
        return {s: int((status[mask] == s).sum()) for s in STATUSES}

    n_primary = int(primary.sum())
    return {
        "n_claims": len(table),
        "counts": counts(pd.Series(True, index=table.index)),
        "primary": {"n": n_primary, "counts": counts(primary)},
        "secondary": {"n": int((~primary).sum()), "counts": counts(~primary)},
        "all_primary_reproduced": bool(n_primary > 0 and (status[primary] == "reproduced").all()),
        "status_by_claim": dict(zip(table["claim_id"].astype(str), status, strict=True)),
        "data_simulated": data_simulated,
        "dataset": {"name": dataset.get("name"), "version": dataset.get("version")},
        "caveat": SIMULATED_CAVEAT if data_simulated else None,
    }


def dataset_is_simulated(dataset: Mapping[str, Any] | None) -> bool | None:
    """The `simulated` flag of a raw dataset.yaml: True/False when stated as a boolean, None otherwise."""
    if not isinstance(dataset, Mapping):
        return None
    flag = dataset.get("simulated")
    return flag if isinstance(flag, bool) else boolean_cell(flag)
