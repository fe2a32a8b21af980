"""Display tables for reviewers: formatting, builders and renderers (CSV cells, self-contained HTML, LaTeX).

Every displayed number goes through `format_number`, which rounds half up on the decimal representation
(Python's round() rounds half to even and works on the binary value: round(2.675, 2) == 2.67). p-values
below 0.001 print as "<0.001". A builder turns an analysis table (results/efficacy, results/safety, ...)
into a `DisplayTable`: a title, a frame of strings in display order, and footnotes. Renderers never see
raw numbers, so the CSV, HTML and LaTeX versions of a table show the same text.

All text that reaches HTML is escaped with html.escape (subject IDs, adverse-event terms and comments come
from data) and all text that reaches LaTeX is escaped with `latex_escape`. Nothing here reads or writes
files: scripts do that.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd

#: What a missing or not estimable number prints as.
MISSING = "NA"
SYMPTOMS = ("tingling", "numbness", "weakness", "fatigue", "cramps")
PARAMS = (*SYMPTOMS, "composite")
PARAM_LABELS = {
    "tingling": "Tingling",
    "numbness": "Numbness",
    "weakness": "Weakness",
    "fatigue": "Fatigue",
    "cramps": "Cramps",
    "composite": "Composite (mean of 5)",
}
VISITS = ("baseline", *(f"week{w}" for w in range(1, 9)))
VISIT_LABELS = {"baseline": "Baseline", **{f"week{w}": f"Week {w}" for w in range(1, 9)}}
POPULATIONS = ("all", "moderate", "severe", "b12_deficient", "diabetic", "residual_b12")
POPULATION_LABELS = {
    "all": "All (efficacy set)",
    "moderate": "Moderate group",
    "severe": "Severe group",
    "b12_deficient": "B12-deficient",
    "diabetic": "Diabetic",
    "residual_b12": "Residual (B12 adequate)",
}
ETIOLOGY_LABELS = {"b12_deficiency": "B12 deficiency", "diabetes": "Diabetes", "both": "Both"}
FLAGS = ("LOW", "NORMAL", "HIGH")


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


@dataclass(frozen=True)
class DisplayTable:
    """A table ready for display: every cell is text, columns are in display order.

    name: file stem under results/tables/; title: one line; notes: footnotes (denominators, methods).
    """

    name: str
    title: str
    frame: pd.DataFrame
    notes: tuple[str, ...] = field(default_factory=tuple)


# ----------------------------------------------------------------------------------------------------
# Number formatting
# ----------------------------------------------------------------------------------------------------
def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(isinstance(value, float | np.floating) and math.isnan(value))
    except TypeError:
        return False


def format_number(value: Any, decimals: int) -> str:
    """Round half up to `decimals` places on the shortest decimal representation of the value.

    format_number(2.675, 2) == "2.68"; format_number(-0.25, 1) == "-0.3" (half away from zero);
    a result that rounds to zero prints without a minus sign ("0.0", never "-0.0"). Missing or infinite
    values print as MISSING.
    """
    if _is_missing(value):
        return MISSING
    try:
        number = Decimal(repr(float(value))) if not isinstance(value, Decimal) else value
    except (TypeError, ValueError, InvalidOperation):
        return str(value)
    if not number.is_finite():
        return MISSING
    quantum = Decimal(1).scaleb(-decimals)
    rounded = number.quantize(quantum, rounding=ROUND_HALF_UP)
    if rounded.is_zero():
        rounded = abs(rounded)
    return f"{rounded:.{max(decimals, 0)}f}"


def format_integer(value: Any) -> str:
    """A count as an integer ("12"); missing prints as MISSING."""
    if _is_missing(value):
        return MISSING
    return str(int(value))


def format_p_value(p: Any, decimals: int = 3) -> str:
    """p rounded half up to `decimals` places; below 10^-decimals it prints as "<0.001" (for 3 places)."""
    if _is_missing(p):
        return MISSING
    threshold = Decimal(1).scaleb(-decimals)
    if Decimal(repr(float(p))) < threshold:
        return f"<{threshold:.{decimals}f}"
    return format_number(p, decimals)


def format_percent(numerator: Any, denominator: Any, decimals: int = 1) -> str:
    """100 x numerator / denominator rounded half up; MISSING when the denominator is 0 or missing."""
    if _is_missing(numerator) or _is_missing(denominator) or float(denominator) == 0:
        return MISSING
    exact = Decimal(int(numerator)) * 100 / Decimal(int(denominator))
    return format_number(exact, decimals)


def format_count_percent(count: Any, denominator: Any, decimals: int = 1) -> str:
    """ "n (x.x%)" with the percentage of `denominator`; "0" style kept for zero counts: "0 (0.0%)"."""
    if _is_missing(count):
        return MISSING
    percent = format_percent(count, denominator, decimals)
    return f"{int(count)} ({percent}%)" if percent != MISSING else f"{int(count)}"


def format_estimate_ci(estimate: Any, low: Any, high: Any, decimals: int) -> str:
    """ "est (low to high)"; "to" rather than a hyphen because the limits are often negative."""
    if _is_missing(estimate):
        return MISSING
    text = format_number(estimate, decimals)
    if _is_missing(low) and _is_missing(high):
        return text
    return f"{text} ({format_number(low, decimals)} to {format_number(high, decimals)})"


def format_mean_sd(mean: Any, sd: Any, decimals: int) -> str:
    if _is_missing(mean):
        return MISSING
    return f"{format_number(mean, decimals)} ({format_number(sd, decimals)})"


def format_median_iqr(median: Any, q1: Any, q3: Any, decimals: int) -> str:
    if _is_missing(median):
        return MISSING
    return f"{format_number(median, decimals)} ({format_number(q1, decimals)}, {format_number(q3, decimals)})"


def format_range(low: Any, high: Any, decimals: int) -> str:
    if _is_missing(low):
        return MISSING
    return f"{format_number(low, decimals)} to {format_number(high, decimals)}"


# ----------------------------------------------------------------------------------------------------
# Small helpers shared by builders
# ----------------------------------------------------------------------------------------------------
def as_bool(series: pd.Series) -> pd.Series:
    """true/false, yes/no, 1/0 (any case) as a boolean Series; anything else, including missing, is False."""
    if series.dtype == bool:
        return series
    text = series.astype("string").str.strip().str.lower()
    return text.isin(["true", "yes", "1", "y"]).fillna(False).astype(bool)


def ordered(frame: pd.DataFrame, column: str, order: Sequence[str]) -> pd.DataFrame:
    """Rows sorted by `column` in `order`; values not in `order` go last in sorted order (stable)."""
    known = {value: i for i, value in enumerate(order)}
    extra = sorted(set(frame[column].dropna().astype(str)) - set(known))
    rank = {**known, **{value: len(known) + i for i, value in enumerate(extra)}}
    keys = frame[column].astype(str).map(rank).fillna(len(rank))
    return frame.assign(_order=keys.to_numpy()).sort_values("_order", kind="stable").drop(columns="_order")


def sort_by(frame: pd.DataFrame, orders: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Stable multi-key sort where each key column follows its given category order."""
    keys = []
    for column, order in orders.items():
        if column not in frame.columns:
            continue
        known = {value: i for i, value in enumerate(order)}
        extra = sorted(set(frame[column].dropna().astype(str)) - set(known))
        rank = {**known, **{value: len(known) + i for i, value in enumerate(extra)}}
        keys.append(frame[column].astype(str).map(rank).fillna(len(rank)).to_numpy())
    if not keys:
        return frame.reset_index(drop=True)
    index = np.lexsort(tuple(reversed(keys)))
    return frame.iloc[index].reset_index(drop=True)


def label(mapping: Mapping[str, str], value: Any) -> str:
    """Display label of a code; unknown codes are shown as they are."""
    if _is_missing(value):
        return MISSING
    return mapping.get(str(value), str(value))


def population_label(population: str, severe_threshold: float | None = None) -> str:
    """Population label; the severity groups name the configured boundary (published ranges overlap at 8)."""
    if severe_threshold is not None and population in ("moderate", "severe"):
        sign = "<" if population == "moderate" else "\u2265"
        return f"{POPULATION_LABELS[population]} (baseline {sign} {format_number(severe_threshold, 1)})"
    return label(POPULATION_LABELS, population)


def _strings(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(object).where(frame.notna(), MISSING).astype(str).reset_index(drop=True)


def generic_table(
    frame: pd.DataFrame, name: str, title: str, decimals: int = 3, notes: Iterable[str] = ()
) -> DisplayTable:
    """Any analysis table as display text: floats rounded half up to `decimals`, integers and text as they are."""
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_float_dtype(values):
            whole = values.dropna()
            if len(whole) and np.all(np.mod(whole, 1) == 0) and column in ("n", "count", "df"):
                out[column] = [format_integer(v) for v in values]
            else:
                out[column] = [format_number(v, decimals) for v in values]
        else:
            out[column] = [MISSING if _is_missing(v) else str(v) for v in values]
    return DisplayTable(name, title, _strings(out), tuple(notes))


def empty_note_table(name: str, title: str, columns: Sequence[str], message: str) -> DisplayTable:
    """A table with the expected columns and one row saying why it is empty (for example no adverse events)."""
    row = {column: "" for column in columns}
    row[columns[0]] = message
    return DisplayTable(name, title, pd.DataFrame([row], columns=list(columns)), (message,))


# ----------------------------------------------------------------------------------------------------
# Renderers
# ----------------------------------------------------------------------------------------------------
TABLE_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:1.5rem;color:#111}
.banner-simulated{background:#fff3cd;border:3px solid #8a6d00;color:#3d3000;padding:.6rem 1rem;font-weight:700;
font-size:1.1rem;margin:0 0 1rem 0;letter-spacing:.02em}
table.k2t{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}
table.k2t caption{caption-side:top;text-align:left;font-weight:700;padding:.3rem 0}
table.k2t th,table.k2t td{border-bottom:1px solid #ccc;padding:.25rem .6rem;text-align:left;vertical-align:top}
table.k2t thead th{border-bottom:2px solid #333;background:#f3f3f3}
table.k2t td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
p.note{font-size:.85rem;color:#333;margin:.2rem 0}
""".strip()

#: A cell that reads as a number (right-aligned): "12", "-0.35", "<0.001", "12 (40.0%)", "1.2 (0.3 to 2.0)",
#: "3.1 to 9.5", "12 / 30 (40.0%)".
_NUMERIC_CELL = re.compile(r"^[<\u2265\u2264]?-?\d[\d.,]*%?( \(.*\)| to -?\d[\d.,]*| / \d+( \(.*\))?)?$")


def to_html_fragment(table: DisplayTable, table_id: str | None = None) -> str:
    """The table as an HTML <table> (plus notes) with every header and cell escaped; ids are deterministic."""
    ident = html.escape(table_id or f"table-{table.name}", quote=True)
    head = "".join(f'<th scope="col">{html.escape(str(c))}</th>' for c in table.frame.columns)
    body_rows = []
    for row in table.frame.itertuples(index=False, name=None):
        cells = []
        for value in row:
            text = str(value)
            css = ' class="num"' if _NUMERIC_CELL.match(text) else ""
            cells.append(f"<td{css}>{html.escape(text)}</td>")
        body_rows.append("<tr>" + "".join(cells) + "</tr>")
    notes = "".join(f'<p class="note">{html.escape(note)}</p>' for note in table.notes)
    return (
        f'<table class="k2t" id="{ident}"><caption>{html.escape(table.title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body_rows)}</tbody></table>{notes}"
    )


def to_html_document(table: DisplayTable, *, simulated: bool = False, subtitle: str = "") -> str:
    """A self-contained HTML page: inline CSS, no scripts, no external resources, a banner for simulated data."""
    banner = (
        '<div class="banner-simulated" role="alert">SIMULATED DATA: not the trial\'s patient data.</div>'
        if simulated
        else ""
    )
    sub = f"<p>{html.escape(subtitle)}</p>" if subtitle else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(table.title)}</title>\n<style>\n{TABLE_CSS}\n</style>\n</head>\n<body>\n"
        f"{banner}<h1>{html.escape(table.title)}</h1>\n{sub}{to_html_fragment(table)}\n</body>\n</html>\n"
    )


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "\u2265": r"$\geq$",
    "\u2264": r"$\leq$",
    "\u2013": "--",
    "\u2014": "---",
    "\u2212": "-",
    "\u00d7": r"$\times$",
    "\u00b1": r"$\pm$",
    "\u2192": r"$\rightarrow$",
    "\u00b5": r"\textmu{}",
    "\u03bc": r"\textmu{}",
    "\u00b2": r"\textsuperscript{2}",
    "\u00b3": r"\textsuperscript{3}",
    "\u00a0": "~",
}


def latex_escape(text: Any) -> str:
    """Text safe inside a LaTeX document: special characters and common symbols replaced, one pass."""
    return "".join(_LATEX_SPECIAL.get(char, char) for char in str(text))


#: What a LaTeX table of simulated data says in its caption and its first comment line.
LATEX_SIMULATED_MARK = "SIMULATED DATA"


def to_latex(table: DisplayTable, *, simulated: bool = False) -> str:
    """A booktabs longtable (needs \\usepackage{booktabs,longtable}); every cell escaped.

    simulated: the caption starts with a bold "SIMULATED DATA." and a comment line says so, so that the
    mark survives both compiling the table and reading its source."""
    columns = list(table.frame.columns)
    spec = "".join("r" if _mostly_numeric(table.frame[c]) else "l" for c in columns)
    header = " & ".join(latex_escape(c) for c in columns) + r" \\"
    rows = [" & ".join(latex_escape(v) for v in row) + r" \\" for row in table.frame.itertuples(index=False, name=None)]
    notes = "".join(
        f"\n\\multicolumn{{{len(columns)}}}{{p{{0.95\\linewidth}}}}{{\\footnotesize {latex_escape(n)}}} \\\\"
        for n in table.notes
    )
    mark = f"\\textbf{{{LATEX_SIMULATED_MARK}.}} " if simulated else ""
    lines = [
        f"% {latex_escape(table.title)}",
        *([f"% {LATEX_SIMULATED_MARK}: not the trial's patient data."] if simulated else []),
        "% Requires \\usepackage{booktabs,longtable}. Generated; do not edit.",
        "{\\small",
        f"\\begin{{longtable}}{{{spec}}}",
        f"\\caption{{{mark}{latex_escape(table.title)}}}\\label{{tab:{latex_escape(table.name)}}} \\\\",
        "\\toprule",
        header,
        "\\midrule",
        "\\endfirsthead",
        "\\toprule",
        header,
        "\\midrule",
        "\\endhead",
        "\\bottomrule" + notes,
        "\\endlastfoot",
        *rows,
        "\\end{longtable}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _mostly_numeric(values: pd.Series) -> bool:
    text = values.astype(str)
    return bool(len(text)) and bool(text.str.match(_NUMERIC_CELL.pattern).mean() > 0.5)


def to_csv_frame(table: DisplayTable) -> pd.DataFrame:
    """The frame written as the table's CSV (display text, the same as the HTML and LaTeX)."""
    return table.frame


# ----------------------------------------------------------------------------------------------------
# Generic analysis tables: formatting chosen from the column name
# ----------------------------------------------------------------------------------------------------
COLUMN_LABELS = {
    "population": "Population",
    "param": "Parameter",
    "visit": "Visit",
    "visit_from": "From",
    "visit_to": "To",
    "n": "n",
    "p_value": "p",
    "p_adjusted": "Adjusted p (Holm)",
    "p_method": "p method",
    "ci_low": "95% CI low",
    "ci_high": "95% CI high",
    "estimate": "Estimate",
    "statistic": "Statistic",
    "subject_id": "Subject",
    "term": "Term",
}
_INTEGER_NAMES = re.compile(
    r"^(n|n_.*|.*_n|count|.*_count|responders|events|.*_events|rows_.*|subjects|df|df\d|.*grade.*|denominator|raw_row|row)$"
)
_P_NAMES = re.compile(r"^(p|p_value|p_adjusted|p_unc|p_corr|.*_p|p_.*)$")
_P_TEXT_NAMES = ("p_method",)


def format_column(name: str, values: pd.Series, decimals: Decimals) -> list[str]:
    """Format one analysis column by what its name says: p-values, counts, labels, other numbers, text."""
    lower = name.lower()
    if lower == "param":
        return [label(PARAM_LABELS, v) for v in values]
    if lower == "population":
        return [label(POPULATION_LABELS, v) for v in values]
    if lower in ("visit", "visit_from", "visit_to"):
        return [label(VISIT_LABELS, v) for v in values]
    if pd.api.types.is_bool_dtype(values):
        return ["yes" if v else "no" for v in values]
    if not pd.api.types.is_numeric_dtype(values):
        return [MISSING if _is_missing(v) else str(v) for v in values]
    # By name first: a CSV float column whose values happen to be whole (chi2 = 60, W = 1) reads as integers.
    if _P_NAMES.match(lower) and lower not in _P_TEXT_NAMES:
        return [format_p_value(v, decimals.p_value) for v in values]
    if lower in ("effect_size", "es_ci_low", "es_ci_high", "kendall_w", "rank_biserial", "epsilon_gg"):
        return [format_number(v, decimals.effect_size) for v in values]
    if lower in ("statistic", "chi2", "u", "w", "t", "z", "f", "se"):
        return [format_number(v, decimals.statistic) for v in values]
    if "percent" in lower or lower.endswith("_pct") or lower == "pct":
        return [format_number(v, decimals.percent) for v in values]
    whole = values.dropna()
    if pd.api.types.is_integer_dtype(values) or (
        _INTEGER_NAMES.match(lower) and (len(whole) == 0 or bool(np.all(np.mod(whole, 1) == 0)))
    ):
        return [format_integer(v) for v in values]
    return [format_number(v, decimals.summary) for v in values]


def analysis_table(
    frame: pd.DataFrame,
    name: str,
    title: str,
    decimals: Decimals,
    notes: Iterable[str] = (),
    empty_message: str = "No rows.",
    labels: Mapping[str, str] | None = None,
) -> DisplayTable:
    """Any analysis table as display text, formatted column by column (`format_column`).

    An empty input gives one row carrying `empty_message` (so "no adverse events" is stated, not implied).
    """
    names = {**COLUMN_LABELS, **(labels or {})}
    columns = [names.get(c, c) for c in frame.columns]
    if frame.empty:
        return empty_note_table(name, title, columns or ["Note"], empty_message)
    out = pd.DataFrame(
        {display: format_column(c, frame[c], decimals) for c, display in zip(frame.columns, columns, strict=True)}
    )
    return DisplayTable(name, title, _strings(out), tuple(notes))


# ----------------------------------------------------------------------------------------------------
# Participant flow and Table 1
# ----------------------------------------------------------------------------------------------------
def participant_flow(subjects: pd.DataFrame, vas: pd.DataFrame) -> pd.DataFrame:
    """Counts for the participant flow diagram: stage, label, n (subjects).

    enrolled: rows of subjects; treated: saffl (any dose); week 4 / week 8: composite VAS recorded at that
    visit among the treated; analysed: efffl (composite at baseline and week 8). Denominator of every stage:
    subjects enrolled. vas needs subject_id, param, visit, aval (only composite rows are used).
    """
    treated = set(subjects.loc[as_bool(subjects["saffl"]), "subject_id"])
    composite = vas.loc[(vas["param"] == "composite") & vas["aval"].notna(), ["subject_id", "visit"]]
    seen = {
        visit: set(composite.loc[composite["visit"] == visit, "subject_id"]) & treated for visit in ("week4", "week8")
    }
    stages = [
        ("enrolled", "Enrolled", len(subjects)),
        ("treated", "Treated (any dose)", len(treated)),
        ("week4", "Assessed at week 4", len(seen["week4"])),
        ("week8", "Assessed at week 8", len(seen["week8"])),
        ("analysed", "Analysed (efficacy set)", int(as_bool(subjects["efffl"]).sum())),
    ]
    return pd.DataFrame(stages, columns=["stage", "label", "n"])


def participant_flow_table(flow: pd.DataFrame) -> DisplayTable:
    """Display version of `participant_flow`: stage, n, % of enrolled, lost since the previous stage."""
    enrolled = int(flow["n"].iloc[0]) if len(flow) else 0
    previous = flow["n"].shift(1)
    frame = pd.DataFrame(
        {
            "Stage": flow["label"],
            "n": [format_integer(v) for v in flow["n"]],
            "% of enrolled": [format_percent(v, enrolled, 1) for v in flow["n"]],
            "Not continuing from previous stage": [
                "" if _is_missing(p) else format_integer(p - n) for p, n in zip(previous, flow["n"], strict=True)
            ],
        }
    )
    return DisplayTable("participant_flow", "Participant flow", _strings(frame), ("Percentages of subjects enrolled.",))


def baseline_characteristics_table(
    subjects: pd.DataFrame, assignment: pd.DataFrame, decimals: Decimals, severe_threshold: float
) -> DisplayTable:
    """Table 1: baseline characteristics overall and by severity group.

    Denominators: every subject enrolled (Overall) and each severity group (from groups/assignment.csv);
    subjects without a group (no baseline composite) get their own column when there are any. Continuous
    variables: n, mean (SD), median (Q1, Q3) with linear-interpolation quartiles, min to max; categorical:
    n (%) of the column's N. Diabetes duration is summarised over diabetic subjects with a value.
    """
    keep = [c for c in ("subject_id", "severity_group", "baseline_composite", "residual_b12") if c in assignment]
    data = subjects.merge(assignment[keep], on="subject_id", how="left", validate="one_to_one")
    group = data["severity_group"].astype("string") if "severity_group" in data else pd.Series(pd.NA, index=data.index)
    columns: list[tuple[str, pd.Series]] = [("Overall", pd.Series(True, index=data.index))]
    for code in ("moderate", "severe"):
        columns.append((population_label(code, severe_threshold), (group == code).fillna(False)))
    unassigned = group.isna()
    if unassigned.any():
        columns.append(("No severity group", unassigned))
    headers = [f"{name} (N={int(mask.sum())})" for name, mask in columns]

    rows: list[list[str]] = []

    def add(label_text: str, cells: list[str]) -> None:
        rows.append([label_text, *cells])

    def continuous(title: str, column: str, places: int, extra_mask: pd.Series | None = None) -> None:
        if column not in data:
            return
        values = pd.to_numeric(data[column], errors="coerce")
        masks = [m & values.notna() & (True if extra_mask is None else extra_mask) for _, m in columns]
        add(title, ["" for _ in columns])
        add("  n", [format_integer(m.sum()) for m in masks])
        add("  Mean (SD)", [format_mean_sd(values[m].mean(), values[m].std(), places) for m in masks])
        add(
            "  Median (Q1, Q3)",
            [format_median_iqr(*values[m].quantile([0.5, 0.25, 0.75]).tolist(), places) for m in masks],
        )
        add("  Min to max", [format_range(values[m].min(), values[m].max(), places) for m in masks])

    def categorical(title: str, column: str, levels: Sequence[tuple[str, str]]) -> None:
        if column not in data:
            return
        text = data[column].astype("string")
        add(title, ["" for _ in columns])
        for code, shown in levels:
            add(
                f"  {shown}",
                [format_count_percent(((text == code) & m).sum(), m.sum(), decimals.percent) for _, m in columns],
            )

    def flag(title: str, column: str) -> None:
        if column not in data:
            return
        yes = as_bool(data[column])
        add(title, [format_count_percent((yes & m).sum(), m.sum(), decimals.percent) for _, m in columns])

    categorical("Sex, n (%)", "sex", [("F", "Female"), ("M", "Male")])
    continuous("Age (years)", "age_years", 1)
    continuous("Weight (kg)", "weight_kg", 1)
    continuous("Height (cm)", "height_cm", 1)
    continuous("BMI (kg/m\u00b2)", "bmi", 1)
    sites = sorted(data["site"].dropna().astype(str).unique()) if "site" in data else []
    categorical("Site, n (%)", "site", [(s, s) for s in sites])
    categorical("Etiology, n (%)", "etiology", list(ETIOLOGY_LABELS.items()))
    diabetic = (
        data["etiology"].astype("string").isin(["diabetes", "both"]).fillna(False) if "etiology" in data else None
    )
    continuous("Diabetes duration (years), diabetic subjects", "diabetes_duration_years", 1, diabetic)
    flag("Metformin, n (%)", "metformin")
    flag("Prior B12 therapy, n (%)", "prior_b12_therapy")
    flag("Residual subgroup (B12 adequate at baseline), n (%)", "residual_b12")
    flag("Anticoagulant use, n (%)", "anticoagulant")
    continuous("Baseline composite VAS (cm, 0-10)", "baseline_composite", decimals.summary)
    continuous("Compliance (% of expected capsules)", "compliance_pct", decimals.percent)
    flag("Completed the study, n (%)", "completed")
    frame = pd.DataFrame(rows, columns=["Characteristic", *headers])
    notes = (
        f"Severity groups from the baseline composite VAS: severe when \u2265 {format_number(severe_threshold, 1)} cm "
        "(the published ranges 6-8 and 8-9 overlap at 8).",
        "Percentages of the column N; quartiles by linear interpolation.",
    )
    return DisplayTable("table1_baseline", "Table 1. Baseline characteristics", frame, notes)


# ----------------------------------------------------------------------------------------------------
# Efficacy tables
# ----------------------------------------------------------------------------------------------------
SUMMARY_STATS = ("n", "mean", "sd", "median", "q1", "q3", "min", "max")


def descriptives_long(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Descriptive statistics in one shape: keys..., of (aval | chg), n, mean, sd, median, q1, q3, min, max.

    Accepts the shapes the analysis steps may write: wide with prefixes (aval_mean, chg_mean), wide with
    suffixes (mean_aval, mean_chg) or long with a column naming the variable (`variable`, `of` or `what`).
    """
    for marker in ("variable", "of", "what", "value_type"):
        if marker in frame.columns:
            out = frame.rename(columns={marker: "of"}).copy()
            out["of"] = out["of"].astype(str).replace({"value": "aval", "change": "chg"})
            return out[[*keys, "of", *[s for s in SUMMARY_STATS if s in out]]]
    parts = []
    for of, names in (("aval", ("aval", "value")), ("chg", ("chg", "change"))):
        candidates = [{f"{n}_{s}": s for s in SUMMARY_STATS} for n in names]
        candidates += [{f"{s}_{n}": s for s in SUMMARY_STATS} for n in names]
        if of == "aval":  # unprefixed statistics are the value's when change columns carry a prefix
            candidates.append({s: s for s in SUMMARY_STATS})
        for mapping in candidates:
            present = {c: s for c, s in mapping.items() if c in frame.columns}
            if len(present) >= 3:
                parts.append(frame[[*keys, *present]].rename(columns=present).assign(of=of))
                break
    if not parts:
        raise ValueError(f"descriptives table has no recognisable statistic columns: {list(frame.columns)}")
    return pd.concat(parts, ignore_index=True)


def _descriptive_cells(stats: pd.DataFrame, places: int | Mapping[str, int] | pd.Series) -> dict[str, list[str]]:
    """n, mean (SD), median (Q1, Q3), min to max as text; `places` may vary per row (a Series)."""
    if isinstance(places, int):
        places = pd.Series(places, index=stats.index)
    mean_places = places
    cells: dict[str, list[str]] = {"n": [], "Mean (SD)": [], "Median (Q1, Q3)": [], "Min to max": []}
    for (_, row), p, mp in zip(stats.iterrows(), places, mean_places, strict=True):
        cells["n"].append(format_integer(row.get("n")))
        cells["Mean (SD)"].append(format_mean_sd(row.get("mean"), row.get("sd"), int(mp)))
        cells["Median (Q1, Q3)"].append(format_median_iqr(row.get("median"), row.get("q1"), row.get("q3"), int(p)))
        cells["Min to max"].append(format_range(row.get("min"), row.get("max"), int(p)))
    return cells


def vas_by_visit_table(descriptives: pd.DataFrame, decimals: Decimals, severe_threshold: float) -> DisplayTable:
    """VAS (cm) by visit: value and change from baseline per population, param and visit.

    Input: results/efficacy/descriptives.csv. Rows sorted by population, param, visit order.
    """
    keys = ["population", "param", "visit"]
    long = descriptives_long(descriptives, keys)
    value = long[long["of"] == "aval"].drop(columns="of")
    change = long[long["of"] == "chg"].drop(columns="of")
    merged = value.merge(change, on=keys, how="left", suffixes=("", "_chg"))
    merged = sort_by(merged, {"population": POPULATIONS, "param": PARAMS, "visit": VISITS})
    value_cells = _descriptive_cells(merged, decimals.summary)
    change_stats = merged[[f"{s}_chg" for s in SUMMARY_STATS if f"{s}_chg" in merged]].rename(
        columns=lambda c: c.removesuffix("_chg")
    )
    change_cells = _descriptive_cells(change_stats, decimals.summary)
    is_baseline = merged["visit"].astype(str) == "baseline"
    frame = pd.DataFrame(
        {
            "Population": [population_label(p, severe_threshold) for p in merged["population"]],
            "Parameter": [label(PARAM_LABELS, p) for p in merged["param"]],
            "Visit": [label(VISIT_LABELS, v) for v in merged["visit"]],
            **value_cells,
            **{
                f"Change {k}": ["" if b else c for b, c in zip(is_baseline, cells, strict=True)]
                for k, cells in change_cells.items()
            },
        }
    )
    notes = (
        "VAS in cm on a 10 cm line (0 = no symptom). Change = visit minus baseline (negative = improvement).",
        "Complete cases per visit; quartiles by linear interpolation.",
    )
    return DisplayTable("vas_by_visit", "VAS by visit: value and change from baseline", _strings(frame), notes)


#: Holm-adjusted p columns of paired_tests.csv and the family each adjusts within.
HOLM_COLUMNS = {"p_holm_visit_contrasts": "3 visit contrasts", "p_holm_symptoms": "5 symptoms"}


def paired_tests_table(
    paired: pd.DataFrame,
    decimals: Decimals,
    severe_threshold: float,
    param_labels: Mapping[str, str] | None = None,
    name: str = "paired_tests",
    title: str = "Paired tests of VAS change",
    unit_note: str = "cm (negative = improvement)",
) -> DisplayTable:
    """Paired tests: one row per population, param and comparison, Wilcoxon and paired t side by side.

    Input: results/efficacy/paired_tests.csv (tests wilcoxon and paired_t). Estimates are visit_to minus
    visit_from (negative = improvement): HL median change with distribution-free 95% CI for Wilcoxon, mean
    change with t CI for the t test. Adjusted p: Holm within the named family (several families are listed
    one per line).
    """
    keys = ["population", "param", "visit_from", "visit_to"]
    labels = param_labels or PARAM_LABELS
    data = sort_by(paired, {"population": POPULATIONS, "param": list(labels), "visit_from": VISITS, "visit_to": VISITS})
    rows = []
    for key, group in data.groupby(keys, sort=False):
        population, param, visit_from, visit_to = key
        row = {
            "Population": population_label(population, severe_threshold),
            "Parameter": label(labels, param),
            "Comparison": f"{label(VISIT_LABELS, visit_to)} vs {label(VISIT_LABELS, visit_from)}",
            "n": format_integer(group["n"].iloc[0]),
        }
        for test, prefix in (("wilcoxon", "Wilcoxon"), ("paired_t", "t test")):
            part = group[group["test"] == test]
            if part.empty:
                continue
            first = part.iloc[0]
            estimate_name = "HL median change" if test == "wilcoxon" else "Mean change"
            effect_name = "Rank-biserial r" if test == "wilcoxon" else "Cohen's d_z"
            row[f"{estimate_name} (95% CI)"] = format_estimate_ci(
                first["estimate"], first["ci_low"], first["ci_high"], decimals.summary
            )
            method = f" ({first['p_method']})" if "p_method" in part and not _is_missing(first["p_method"]) else ""
            row[f"{prefix} p"] = format_p_value(first["p_value"], decimals.p_value) + method
            for column, family in HOLM_COLUMNS.items():
                if column in part:
                    value = first[column]
                    row[f"{prefix} Holm p ({family})"] = (
                        "" if _is_missing(value) else format_p_value(value, decimals.p_value)
                    )
            if not any(c in part for c in HOLM_COLUMNS) and "p_adjusted" in part:
                row[f"{prefix} Holm p"] = format_p_value(first["p_adjusted"], decimals.p_value)
            row[f"{effect_name} (95% CI)"] = format_estimate_ci(
                first["effect_size"], first["es_ci_low"], first["es_ci_high"], decimals.effect_size
            )
        rows.append(row)
    frame = pd.DataFrame(rows)
    notes = (
        f"Change = later visit minus earlier visit in {unit_note}; complete cases per comparison.",
        "Wilcoxon signed-rank with zero differences dropped; p exact without ties or zeros (n \u2264 50), "
        "otherwise normal approximation with tie and continuity correction (normal_cc).",
        "Holm p: adjusted within the 3 visit contrasts of a population, param and test, and within the 5 symptoms "
        "at week 8 of a population and test; blank where the row is not in that family.",
        "Single-arm, open-label study: within-patient change is not a treatment effect (regression to the "
        "mean, placebo response).",
    )
    return DisplayTable(name, title, _strings(frame), notes)


def criterion_label(code: Any, threshold: Any = None, unit: Any = None) -> str:
    """Readable responder criterion: from threshold and unit when given (30, percent -> "≥ 30% reduction";
    2, cm -> "≥ 2-point (cm) reduction"), else from the code (pct_reduction_ge_30, point_reduction_ge_2)."""
    if not _is_missing(threshold) and not _is_missing(unit):
        value = format_number(threshold, 0) if float(threshold) == int(float(threshold)) else str(threshold)
        return f"≥ {value}% reduction" if str(unit) in ("percent", "%") else f"≥ {value}-point ({unit}) reduction"
    match = re.search(r"(pct|percent|point)\w*?_(\d+(?:\.\d+)?)$", str(code))
    if match:
        kind = "percent" if match.group(1) in ("pct", "percent") else "cm"
        return criterion_label(code, float(match.group(2)), kind)
    return str(code)


def responders_table(responders: pd.DataFrame, decimals: Decimals, severe_threshold: float) -> DisplayTable:
    """Responders at week 8: responders / n (%) and Clopper-Pearson 95% CI, per population, param, criterion.

    Input: results/efficacy/responders.csv with ci_low and ci_high in percent (0-100).
    """
    data = sort_by(responders, {"population": POPULATIONS, "param": PARAMS})
    thresholds = data["threshold"] if "threshold" in data else pd.Series(None, index=data.index)
    units = data["unit"] if "unit" in data else pd.Series(None, index=data.index)
    frame = pd.DataFrame(
        {
            "Population": [population_label(p, severe_threshold) for p in data["population"]],
            "Parameter": [label(PARAM_LABELS, p) for p in data["param"]],
            "Criterion": [
                criterion_label(c, t, u) for c, t, u in zip(data["criterion"], thresholds, units, strict=True)
            ],
            "Responders / n (%)": [
                f"{format_integer(r)} / {format_integer(n)} ({format_percent(r, n, decimals.percent)}%)"
                if not _is_missing(n) and n
                else MISSING
                for r, n in zip(data["responders"], data["n"], strict=True)
            ],
            "95% CI (%)": [
                format_range(lo, hi, decimals.percent) if not _is_missing(lo) else MISSING
                for lo, hi in zip(data.get("ci_low", []), data.get("ci_high", []), strict=True)
            ],
        }
    )
    notes = (
        "Responder thresholds (IMMPACT): \u2265 30% and \u2265 50% reduction, \u2265 2-point reduction from baseline "
        "to week 8. They were validated for pain scales; applied here to tingling and numbness by analogy.",
        "Percent change undefined when baseline is 0. Clopper-Pearson exact 95% CI.",
    )
    return DisplayTable("responders", "Responders at week 8", _strings(frame), notes)


# ----------------------------------------------------------------------------------------------------
# Safety tables
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabTest:
    """A laboratory test as displayed: code, name, standard unit, recording decimals (config/lab_units.yaml)."""

    code: str
    name: str
    unit: str
    decimals: int

    @property
    def title(self) -> str:
        return f"{self.name} ({self.unit})"


def lab_tests_from_units(lab_units: Mapping[str, Any]) -> dict[str, LabTest]:
    """LabTest per code in the order of config/lab_units.yaml (`tests:` mapping)."""
    tests = lab_units.get("tests", lab_units)
    return {
        code: LabTest(code, str(spec.get("name", code)), str(spec.get("unit", "")), int(spec.get("decimals", 1)))
        for code, spec in tests.items()
    }


def _lab_label(tests: Mapping[str, LabTest], code: Any) -> str:
    test = tests.get(str(code))
    return test.title if test else str(code)


def lab_summary_table(lab_descriptives: pd.DataFrame, tests: Mapping[str, LabTest]) -> DisplayTable:
    """Laboratory values and change from baseline by visit, in standard units.

    Input: results/safety/lab_descriptives.csv. Medians, quartiles and ranges at the recording precision
    of each test, means and SDs with one more decimal.
    """
    keys = ["param", "visit"]
    long = descriptives_long(lab_descriptives, keys)
    value = long[long["of"] == "aval"].drop(columns="of")
    change = long[long["of"] == "chg"].drop(columns="of")
    merged = sort_by(
        value.merge(change, on=keys, how="left", suffixes=("", "_chg")), {"param": list(tests), "visit": VISITS}
    )
    places = merged["param"].map(lambda c: tests[c].decimals if c in tests else 2)
    value_cells = _descriptive_cells(merged, places)
    # means and SDs get one more decimal than the recording precision
    value_cells["Mean (SD)"] = [
        format_mean_sd(m, s, int(p) + 1) for m, s, p in zip(merged["mean"], merged["sd"], places, strict=True)
    ]
    change_stats = merged[[f"{s}_chg" for s in SUMMARY_STATS if f"{s}_chg" in merged]].rename(
        columns=lambda c: c.removesuffix("_chg")
    )
    is_baseline = merged["visit"].astype(str) == "baseline"
    change_mean = [
        "" if b else format_mean_sd(m, s, int(p) + 1)
        for b, m, s, p in zip(
            is_baseline, change_stats.get("mean", []), change_stats.get("sd", []), places, strict=True
        )
    ]
    change_median = [
        "" if b else format_median_iqr(m, a, c, int(p))
        for b, m, a, c, p in zip(
            is_baseline,
            change_stats.get("median", []),
            change_stats.get("q1", []),
            change_stats.get("q3", []),
            places,
            strict=True,
        )
    ]
    frame = pd.DataFrame(
        {
            "Test (unit)": [_lab_label(tests, c) for c in merged["param"]],
            "Visit": [label(VISIT_LABELS, v) for v in merged["visit"]],
            **value_cells,
            "Change mean (SD)": change_mean,
            "Change median (Q1, Q3)": change_median,
        }
    )
    notes = ("Standard units (config/lab_units.yaml); values reported below a limit enter at the limit.",)
    return DisplayTable("lab_summary", "Laboratory values by visit", _strings(frame), notes)


def _column_like(frame: pd.DataFrame, candidates: Sequence[str]) -> str | None:
    return next((c for c in candidates if c in frame.columns), None)


def lab_shift_table(lab_shifts: pd.DataFrame, tests: Mapping[str, LabTest]) -> DisplayTable:
    """Shift tables: baseline flag (rows) by post-baseline flag (columns) per test and timepoint; counts of subjects.

    Input: results/safety/lab_shifts.csv in long form (param, timepoint, from flag, to flag, n). Column
    names are matched loosely: from|baseline_flag, to|post_flag|flag, timepoint|comparison|visit.
    """
    from_col = _column_like(lab_shifts, ("from", "baseline_flag", "from_flag", "bnrind"))
    to_col = _column_like(lab_shifts, ("to", "post_flag", "to_flag", "flag", "anrind"))
    time_col = _column_like(lab_shifts, ("timepoint", "comparison", "visit", "period", "to_visit"))
    if not (from_col and to_col) or lab_shifts.empty:
        return analysis_table(
            lab_shifts, "lab_shifts", "Laboratory shift tables", Decimals(), empty_message="No shifts."
        )
    keys = ["param", *([time_col] if time_col else []), from_col]
    wide = lab_shifts.pivot_table(index=keys, columns=to_col, values="n", aggfunc="sum", fill_value=0, sort=False)
    # Flags nobody has (MISSING, usually) are left out, and so are baseline flags nobody had.
    flags = [f for f in FLAGS if f in wide.columns] + sorted(c for c in wide.columns if c not in FLAGS)
    flags = [f for f in flags if f in FLAGS or wide[f].sum() > 0]
    wide = wide.reindex(columns=flags, fill_value=0).reset_index()
    wide = wide[wide[flags].sum(axis=1) > 0]
    order: dict[str, Sequence[str]] = {"param": list(tests)}
    if time_col:
        order[time_col] = ("week4", "week8", "worst_low", "worst_high", "worst")
    order[from_col] = (*FLAGS, "MISSING")
    wide = sort_by(wide, order)
    frame = pd.DataFrame(
        {
            "Test (unit)": [_lab_label(tests, c) for c in wide["param"]],
            **(
                {
                    "Timepoint": [
                        label({**VISIT_LABELS, "worst_low": "Worst low", "worst_high": "Worst high"}, t)
                        for t in wide[time_col]
                    ]
                }
                if time_col
                else {}
            ),
            "Baseline flag": wide[from_col].astype(str),
            **{f"{flag}": [format_integer(v) for v in wide[flag]] for flag in flags},
            "Total": [format_integer(v) for v in wide[flags].sum(axis=1)],
        }
    )
    notes = (
        "Counts of subjects. Flags against the reporting laboratory's range, else the default range "
        "(config/lab_standards.yaml). Worst low / worst high: most extreme post-baseline value in that direction.",
    )
    return DisplayTable(
        "lab_shifts", "Laboratory shift tables (baseline flag by post-baseline flag)", _strings(frame), notes
    )


def ctcae_worst_table(ctcae_worst: pd.DataFrame) -> DisplayTable:
    """Worst post-baseline CTCAE v5.0 grade by baseline grade, per term: counts of subjects (grades 0-4 as columns).

    Input: results/safety/ctcae_worst.csv, long (term, baseline_grade, worst_grade, n) or already wide.
    """
    base_col = _column_like(ctcae_worst, ("baseline_grade", "grade_baseline", "base_grade"))
    worst_col = _column_like(ctcae_worst, ("worst_grade", "grade_worst", "worst_post_baseline_grade", "grade"))
    if not (base_col and worst_col and "n" in ctcae_worst) or ctcae_worst.empty:
        return analysis_table(
            ctcae_worst,
            "ctcae_worst",
            "Worst CTCAE grade after baseline",
            Decimals(),
            empty_message="No graded values.",
        )
    term_col = _column_like(ctcae_worst, ("term", "param"))
    data = ctcae_worst.assign(
        **{base_col: ctcae_worst[base_col].astype(str), worst_col: ctcae_worst[worst_col].astype(str)}
    )
    keys = [term_col, base_col] if term_col else [base_col]
    wide = data.pivot_table(index=keys, columns=worst_col, values="n", aggfunc="sum", fill_value=0, sort=False)
    # Grades 0-4 always; other levels (such as "missing": no post-baseline value) only when someone has them.
    grades = [str(g) for g in range(5)]
    grades += sorted(c for c in wide.columns if c not in grades and wide[c].sum() > 0)
    wide = wide.reindex(columns=grades, fill_value=0).reset_index()
    wide = wide[wide[grades].sum(axis=1) > 0]
    terms = list(pd.unique(data[term_col])) if term_col else []
    wide = sort_by(wide, {**({term_col: terms} if term_col else {}), base_col: [*map(str, range(5)), "missing"]})
    frame = pd.DataFrame(
        {
            **({"Term": wide[term_col].astype(str)} if term_col else {}),
            "Baseline grade": wide[base_col].astype(str),
            **{f"Worst grade {g}": [format_integer(v) for v in wide[g]] for g in grades},
            "Total": [format_integer(v) for v in wide[grades].sum(axis=1)],
        }
    )
    notes = (
        "CTCAE v5.0 laboratory criteria (CLINICAL.md); counts of subjects; grade 0 = within the criteria's normal; "
        "missing = no value at that time. Rows only for baseline grades that occurred.",
    )
    return DisplayTable("ctcae_worst", "Worst post-baseline CTCAE grade by baseline grade", _strings(frame), notes)


def group_comparison_table(comparison: pd.DataFrame, decimals: Decimals, severe_threshold: float) -> DisplayTable:
    """Moderate vs severe group: change from baseline compared with Mann-Whitney U, HL shift and rank-biserial r.

    Input: results/efficacy/group_comparison.csv (group_a, group_b, n_a, n_b, estimate = HL shift a minus b).
    """
    data = sort_by(comparison, {"population": POPULATIONS, "param": PARAMS, "visit": VISITS})
    get = data.get
    frame = pd.DataFrame(
        {
            "Parameter": [label(PARAM_LABELS, p) for p in data["param"]],
            "Change to": [label(VISIT_LABELS, v) for v in data["visit"]],
            "Groups (a vs b)": [f"{a} vs {b}" for a, b in zip(get("group_a"), get("group_b"), strict=True)],
            "n (a / b)": [
                f"{format_integer(a)} / {format_integer(b)}" for a, b in zip(get("n_a"), get("n_b"), strict=True)
            ],
            "Statistic": [
                f"{name} = {format_number(v, decimals.statistic)}" if not _is_missing(v) else MISSING
                for name, v in zip(get("statistic_name"), get("statistic"), strict=True)
            ],
            "p": [
                format_p_value(p, decimals.p_value) + (f" ({m})" if not _is_missing(m) else "")
                for p, m in zip(get("p_value"), get("p_method"), strict=True)
            ],
            "HL shift a minus b (95% CI)": [
                format_estimate_ci(e, lo, hi, decimals.summary)
                for e, lo, hi in zip(get("estimate"), get("ci_low"), get("ci_high"), strict=True)
            ],
            "Rank-biserial r (95% CI)": [
                format_estimate_ci(e, lo, hi, decimals.effect_size)
                for e, lo, hi in zip(get("effect_size"), get("es_ci_low"), get("es_ci_high"), strict=True)
            ],
        }
    )
    notes = (
        "Change from baseline in cm; groups by baseline composite VAS "
        f"(severe \u2265 {format_number(severe_threshold, 1)}).",
        "Mann-Whitney U; Hodges-Lehmann shift with distribution-free 95% CI. Exploratory, no multiplicity adjustment.",
    )
    return DisplayTable("group_comparison", "Change from baseline: moderate vs severe group", _strings(frame), notes)


def _notes_from(frame: pd.DataFrame, *columns: str) -> tuple[str, ...]:
    """Distinct non-empty texts of the given columns, in first-seen order (methods and caveats become notes)."""
    seen: dict[str, None] = {}
    for column in columns:
        if column in frame:
            for value in frame[column]:
                if not _is_missing(value) and str(value).strip():
                    seen.setdefault(str(value).strip(), None)
    return tuple(seen)


def _select(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    return frame[[c for c in columns if c in frame.columns]]


def lab_label_map(tests: Mapping[str, LabTest], frame: pd.DataFrame | None = None) -> dict[str, str]:
    """param -> "Name (unit)" for the lab tests, plus any extra param of `frame` (eGFR) with its own unit."""
    labels = {code: test.title for code, test in tests.items()}
    if frame is not None and "param" in frame:
        units = frame.get("unit", pd.Series("", index=frame.index))
        for code, unit in zip(frame["param"], units, strict=True):
            if str(code) not in labels:
                labels[str(code)] = f"{code} ({unit})" if not _is_missing(unit) and unit else str(code)
    return labels


@dataclass(frozen=True)
class TableSettings:
    """What the table builders need besides data: decimals, the severity boundary, lab test metadata."""

    decimals: Decimals
    severe_threshold: float
    tests: Mapping[str, LabTest]


#: Names of the tables `build_all_tables` returns, in display order (results/tables/<name>.{csv,html,tex}).
TABLE_NAMES = (
    "participant_flow",
    "table1_baseline",
    "vas_by_visit",
    "paired_tests",
    "friedman",
    "responders",
    "group_comparison",
    "models",
    "lab_summary",
    "lab_shifts",
    "ctcae_worst",
    "lab_paired_tests",
    "hys_law",
    "ae_summary",
    "ae_by_term",
    "ae_listing",
    "safety_conclusion",
)


#: Display names of the sensitivity models (results/efficacy/models.csv `model` codes).
MODEL_LABELS = {
    "mixed_anova": "Mixed ANOVA (group x visit)",
    "lmm_random_intercept": "Linear mixed model (random intercept)",
    "lmm_random_intercept_statsmodels": "Linear mixed model (random intercept), statsmodels cross-check",
}


def build_all_tables(data: Mapping[str, pd.DataFrame], settings: TableSettings) -> list[DisplayTable]:
    """Every display table of TABLE_NAMES, in that order, from the analysis tables.

    data keys: subjects, vas (subject_id, param, visit, aval; composite rows suffice), assignment, descriptives,
    paired_tests, friedman, responders, group_comparison, models (results/efficacy), lab_descriptives,
    lab_shifts, ctcae_worst, lab_paired_tests, hys_law, ae_summary, ae_by_term, ae_listing, safety_conclusion
    (results/safety).
    """
    d = settings.decimals
    threshold = settings.severe_threshold
    tests = settings.tests
    lab_labels = lab_label_map(tests, data["lab_paired_tests"])
    lab_paired = paired_tests_table(
        data["lab_paired_tests"],
        d,
        threshold,
        param_labels=lab_labels,
        name="lab_paired_tests",
        title="Laboratory values: change from baseline to week 8",
        unit_note="the test's standard unit",
    )
    lab_paired = DisplayTable(
        lab_paired.name,
        lab_paired.title,
        lab_paired.frame.drop(columns=["Population"], errors="ignore"),
        (
            lab_paired.notes[0],
            lab_paired.notes[1],
            "Holm adjustment across tests, separately for each test type. Subjects with a value reported "
            "below or above a limit at either visit are left out.",
        ),
    )
    friedman = data["friedman"]
    models = data["models"]
    if "model" in models:
        models = models.assign(model=models["model"].map(MODEL_LABELS).fillna(models["model"]))
    hys_columns = ["subject_id", "visit", "alt_xuln", "ast_xuln", "tbil_xuln", "alp_xuln", "note"]
    tables = [
        participant_flow_table(participant_flow(data["subjects"], data["vas"])),
        baseline_characteristics_table(data["subjects"], data["assignment"], d, threshold),
        vas_by_visit_table(data["descriptives"], d, threshold),
        paired_tests_table(data["paired_tests"], d, threshold),
        analysis_table(
            _select(friedman, ["population", "param", "n", "chi2", "df", "p_value", "kendall_w"]),
            "friedman",
            "Friedman test over baseline, week 4 and week 8",
            d,
            notes=("Complete cases; Kendall's W = chi2 / (n (k - 1)). Post-hoc: the paired tests with Holm.",),
            labels={"chi2": "Chi-squared", "df": "df", "kendall_w": "Kendall's W"},
        ),
        responders_table(data["responders"], d, threshold),
        group_comparison_table(data["group_comparison"], d, threshold),
        analysis_table(
            _select(
                models,
                [
                    "model",
                    "term",
                    "estimate",
                    "se",
                    "statistic_name",
                    "statistic",
                    "df1",
                    "df2",
                    "p_value",
                    "p_value_gg",
                ],
            ),
            "models",
            "Sensitivity models of the composite VAS: mixed ANOVA and linear mixed model",
            d,
            notes=_notes_from(models, "method", "caveat"),
            labels={
                "model": "Model",
                "se": "SE",
                "statistic_name": "Statistic name",
                "p_value_gg": "p (Greenhouse-Geisser)",
            },
        ),
        lab_summary_table(data["lab_descriptives"], tests),
        lab_shift_table(data["lab_shifts"], tests),
        ctcae_worst_table(data["ctcae_worst"]),
        lab_paired,
        analysis_table(
            _select(data["hys_law"], hys_columns) if len(data["hys_law"].columns) else data["hys_law"],
            "hys_law",
            "Hy's law laboratory screen: subjects and visits meeting the criteria",
            d,
            notes=("ALT or AST \u2265 3 x ULN with total bilirubin \u2265 2 x ULN and ALP < 2 x ULN (FDA 2009).",),
            empty_message="No subject met the Hy's law laboratory criteria.",
            labels={
                "alt_xuln": "ALT (x ULN)",
                "ast_xuln": "AST (x ULN)",
                "tbil_xuln": "Bilirubin (x ULN)",
                "alp_xuln": "ALP (x ULN)",
                "note": "Note",
            },
        ),
        analysis_table(
            _select(
                data["ae_summary"], ["category", "description", "n_subjects", "percent", "n_events", "denominator"]
            ),
            "ae_summary",
            "Adverse events: summary",
            d,
            notes=_notes_from(data["ae_summary"], "note") or ("Percent of the safety set.",),
            empty_message="No adverse events were reported.",
            labels=AE_LABELS,
        ),
        analysis_table(
            data["ae_by_term"],
            "ae_by_term",
            "Adverse events by term",
            d,
            empty_message="No adverse events were reported.",
            labels=AE_LABELS,
        ),
        analysis_table(
            data["ae_listing"],
            "ae_listing",
            "Adverse event listing",
            d,
            empty_message="No adverse events were reported.",
            labels=AE_LABELS,
        ),
        analysis_table(
            _select(
                data["safety_conclusion"],
                [
                    "scope",
                    "name",
                    "unit",
                    "n_subjects",
                    "worst_grade",
                    "n_new_grade",
                    "n_significant_shift",
                    "significant",
                ],
            ),
            "safety_conclusion",
            "Clinically significant laboratory abnormalities emerging on treatment",
            d,
            notes=_notes_from(data["safety_conclusion"], "rule"),
            labels=SAFETY_CONCLUSION_LABELS,
        ),
    ]
    assert [t.name for t in tables] == list(TABLE_NAMES)
    return tables


AE_LABELS = {
    "category": "Category",
    "description": "Description",
    "n_subjects": "Subjects",
    "percent": "% of safety set",
    "n_events": "Events",
    "denominator": "N",
    "n_subjects_related": "Subjects, related",
    "n_subjects_severe": "Subjects, severe",
    "n_subjects_serious": "Subjects, serious",
    "n_subjects_leading_to_withdrawal": "Subjects, leading to withdrawal",
}
SAFETY_CONCLUSION_LABELS = {
    "scope": "Scope",
    "name": "Test",
    "unit": "Unit",
    "n_subjects": "Subjects",
    "worst_grade": "Worst CTCAE grade",
    "n_new_grade": "New grade \u2265 threshold",
    "n_significant_shift": "Significant shifts",
    "significant": "Clinically significant",
}


def catalog_entry(table: DisplayTable, *, simulated: bool = False) -> dict[str, Any]:
    """A table as JSON-able data (title, notes, columns, rows of text) for notebooks and the index.

    simulated: recorded per table, because the CSV file itself carries no mark (a marker row would break
    readers of the CSV)."""
    return {
        "name": table.name,
        "simulated": bool(simulated),
        "title": table.title,
        "notes": list(table.notes),
        "columns": [str(c) for c in table.frame.columns],
        "rows": table.frame.astype(str).to_numpy().tolist(),
    }


def table_from_catalog(entry: Mapping[str, Any]) -> DisplayTable:
    """Inverse of `catalog_entry`."""
    frame = pd.DataFrame(entry["rows"], columns=entry["columns"], dtype=object)
    return DisplayTable(entry["name"], entry["title"], frame, tuple(entry.get("notes", ())))
