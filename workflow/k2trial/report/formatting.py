"""Numbers as reviewers read them: every displayed number is rounded half away from zero on its decimal
representation (k2trial.core.values.rounded_decimal: 2.675 -> "2.68", -0.25 -> "-0.3"; Python's round() rounds half
to even and works on the binary value), p-values below 10^-decimals print as "<0.001", and a missing or not
estimable number prints as MISSING. Nothing here knows about tables, files or the study.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from k2trial.analysis.groups import SEVERITY_GROUPS
from k2trial.core.values import is_missing, rounded_decimal
from k2trial.core.vocabulary import Vocabulary

#: What a missing or not estimable number prints as.
MISSING = "NA"


@dataclass(frozen=True)
class Decimals:
    """Decimals shown per kind of number (config `reporting.decimals`)."""

    summary: int = 2  # means, SDs, medians, quartiles, estimates and CIs on the VAS scale (cm)
    effect_size: int = 2
    statistic: int = 2
    percent: int = 1
    p_value: int = 3

    @classmethod
    def from_config(cls, mapping: Mapping[str, int] | None) -> Decimals:
        return cls(**{k: int(v) for k, v in (mapping or {}).items() if k in cls.__dataclass_fields__})


def format_number(value: Any, decimals: int) -> str:
    """Round half away from zero to `decimals` places on the shortest decimal representation of the value.

    format_number(2.675, 2) == "2.68"; format_number(-0.25, 1) == "-0.3"; a result that rounds to zero prints
    without a minus sign ("0.0", never "-0.0"). Missing or infinite values print as MISSING; text that is not a
    number is shown as it is.
    """
    if is_missing(value):
        return MISSING
    if isinstance(value, bool):  # a count of True, as float(True)
        value = float(value)
    rounded = rounded_decimal(value, decimals)
    if rounded is None:
        try:
            float(value)
        except (TypeError, ValueError):
            return str(value)
        return MISSING
    return f"{rounded:.{max(decimals, 0)}f}"


def format_integer(value: Any) -> str:
    """A count as an integer ("12"); missing prints as MISSING."""
    if is_missing(value):
        return MISSING
    return str(int(value))


def format_p_value(p: Any, decimals: int = 3) -> str:
    """p rounded half up to `decimals` places; below 10^-decimals it prints as "<0.001" (for 3 places)."""
    if is_missing(p):
        return MISSING
    threshold = Decimal(1).scaleb(-decimals)
    if Decimal(repr(float(p))) < threshold:
        return f"<{threshold:.{decimals}f}"
    return format_number(p, decimals)


def format_percent(numerator: Any, denominator: Any, decimals: int = 1) -> str:
    """100 x numerator / denominator rounded half up; MISSING when the denominator is 0 or missing."""
    if is_missing(numerator) or is_missing(denominator) or float(denominator) == 0:
        return MISSING
    exact = Decimal(int(numerator)) * 100 / Decimal(int(denominator))
    return format_number(exact, decimals)


def format_count_percent(count: Any, denominator: Any, decimals: int = 1) -> str:
    """ "n (x.x%)" with the percentage of `denominator`; "0" style kept for zero counts: "0 (0.0%)"."""
    if is_missing(count):
        return MISSING
    percent = format_percent(count, denominator, decimals)
    return f"{int(count)} ({percent}%)" if percent != MISSING else f"{int(count)}"


def format_estimate_ci(estimate: Any, low: Any, high: Any, decimals: int) -> str:
    """ "est (low to high)"; "to" rather than a hyphen because the limits are often negative."""
    if is_missing(estimate):
        return MISSING
    text = format_number(estimate, decimals)
    if is_missing(low) and is_missing(high):
        return text
    return f"{text} ({format_number(low, decimals)} to {format_number(high, decimals)})"


def format_mean_sd(mean: Any, sd: Any, decimals: int) -> str:
    if is_missing(mean):
        return MISSING
    return f"{format_number(mean, decimals)} ({format_number(sd, decimals)})"


def format_median_iqr(median: Any, q1: Any, q3: Any, decimals: int) -> str:
    if is_missing(median):
        return MISSING
    return f"{format_number(median, decimals)} ({format_number(q1, decimals)}, {format_number(q3, decimals)})"


def format_range(low: Any, high: Any, decimals: int) -> str:
    if is_missing(low):
        return MISSING
    return f"{format_number(low, decimals)} to {format_number(high, decimals)}"


def criterion_label(code: Any, threshold: Any = None, unit: Any = None) -> str:
    """Readable responder criterion: from threshold and unit when given (30, percent -> "≥ 30% reduction";
    2, cm -> "≥ 2-point (cm) reduction"), else from the code (pct_reduction_ge_30, point_reduction_ge_2)."""
    if not is_missing(threshold) and not is_missing(unit):
        value = format_number(threshold, 0) if float(threshold) == int(float(threshold)) else str(threshold)
        return f"≥ {value}% reduction" if str(unit) in ("percent", "%") else f"≥ {value}-point ({unit}) reduction"
    match = re.search(r"(pct|percent|point)\w*?_(\d+(?:\.\d+)?)$", str(code))
    if match:
        kind = "percent" if match.group(1) in ("pct", "percent") else "cm"
        return criterion_label(code, float(match.group(2)), kind)
    return str(code)


def label(mapping: Mapping[str, str], value: Any) -> str:
    """Display label of a code; unknown codes are shown as they are."""
    if is_missing(value):
        return MISSING
    return mapping.get(str(value), str(value))


def population_label(vocabulary: Vocabulary, population: Any, severe_threshold: float) -> str:
    """Population label; the severity groups name the configured boundary (published ranges overlap at 8)."""
    if population in SEVERITY_GROUPS:
        sign = "<" if population == SEVERITY_GROUPS[0] else "\u2265"
        base = vocabulary.population_label(population)
        return f"{base} (baseline {sign} {format_number(severe_threshold, 1)})"
    return label(vocabulary.population_labels, population)
