"""Display tables for reviewers: each builder turns analysis artifacts (results/groups, efficacy, safety) into a
`DisplayTable` of text (k2trial.report.render) and does nothing but format: every number comes from an artifact,
every label from the vocabulary (k2trial.core.vocabulary: the study config's protocol, so a follow-up visit reads
"Week 12 (off treatment)" and a single-item study's primary VAS is its item), every title from the registry of
reporting outputs (workflow/report/registry.yaml). Numbers are formatted by k2trial.report.formatting.

`BUILDERS` maps each table of the registry to its builder; `build_all_tables` builds them in registry order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from k2trial.analysis.safety.lab_summaries import SHIFT_CATEGORIES, WORST_COMPARISONS
from k2trial.analysis.safety.lab_table import FLAGS
from k2trial.analysis.safety.standards import GRADES
from k2trial.core.errors import ConfigError
from k2trial.core.values import as_bool, is_missing
from k2trial.core.vocabulary import BASELINE, OFF_TREATMENT, Vocabulary
from k2trial.report.formatting import (
    MISSING,
    Decimals,
    criterion_label,
    format_count_percent,
    format_estimate_ci,
    format_integer,
    format_mean_sd,
    format_median_iqr,
    format_number,
    format_p_value,
    format_percent,
    format_range,
    label,
    population_label,
)
from k2trial.report.render import DisplayTable, empty_note_table, text_frame

#: Statistics of a descriptives row, in display order.
SUMMARY_STATS = ("n", "mean", "sd", "median", "q1", "q3", "min", "max")


@dataclass(frozen=True)
class TableSettings:
    """What the builders need besides data: decimals, the severity boundary, the vocabulary, the titles of the
    registry, and the facts of the efficacy analysis that the notes state (config efficacy and safety)."""

    decimals: Decimals
    severe_threshold: float | None  # None: a safety-only study (no severity groups)
    vocabulary: Vocabulary
    titles: Mapping[str, str]
    visit_contrasts: int
    symptoms_comparison_visit: str | None
    exact_below: int
    lab_exact_below: int
    #: the responder visit (efficacy.responders.visit) and what the study says of thresholds applied to params that
    #: are not pain (efficacy.responders.analogy; "" when every param is pain)
    responder_visit: str = ""
    responder_analogy: str = ""
    #: what the study says of its severity groups (study config groups.note; "" for nothing)
    groups_note: str = ""

    @property
    def primary(self) -> str:
        """The primary VAS in words: "composite", or a single-item study's item ("pain")."""
        return self.vocabulary.param_label(self.vocabulary.primary_param, short=True).lower()

    @classmethod
    def from_config(
        cls, reporting: Mapping, efficacy: Mapping, safety: Mapping, severe_threshold: float | None,
        vocabulary: Vocabulary, registry_tables: Sequence[Mapping[str, Any]], groups_note: str = "",
    ) -> TableSettings:  # fmt: skip
        # a safety-only study (no diary) has no efficacy contrasts: config efficacy holds the conventions only
        comparison = efficacy.get("holm_families", {}).get("symptoms_comparison")
        return cls(
            decimals=Decimals.from_config(reporting["decimals"]),
            severe_threshold=severe_threshold,
            vocabulary=vocabulary,
            titles={entry["name"]: entry["title"] for entry in registry_tables},
            visit_contrasts=len(efficacy.get("comparisons", ())),
            symptoms_comparison_visit=comparison[1] if comparison else None,
            exact_below=int(efficacy["exact_below"]),
            lab_exact_below=int(safety["exact_below"]),
            responder_visit=str(efficacy["responders"].get("visit") or ""),
            responder_analogy=str(efficacy["responders"].get("analogy") or ""),
            groups_note=str(groups_note or ""),
        )

    def population_label(self, population: Any) -> str:
        return population_label(self.vocabulary, population, self.severe_threshold)

    def visit_label(self, visit: Any) -> str:
        """ "Week 4"; a visit of the off-treatment follow-up says so: "Week 12 (off treatment)"."""
        text = label(self.vocabulary.visit_labels, visit)
        return f"{text} ({OFF_TREATMENT})" if self.vocabulary.off_treatment(str(visit)) else text

    def param_label(self, param: Any) -> str:
        return MISSING if is_missing(param) else self.vocabulary.param_label(param)


# ----------------------------------------------------------------------------------------------------
# Sorting
# ----------------------------------------------------------------------------------------------------
def sort_by(frame: pd.DataFrame, orders: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Stable multi-key sort where each key column follows its given category order (values not in the order last,
    in sorted order)."""
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


# ----------------------------------------------------------------------------------------------------
# Any analysis table: formatting chosen from the column name
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


def format_column(name: str, values: pd.Series, decimals: Decimals, vocabulary: Vocabulary | None = None) -> list[str]:
    """Format one analysis column by what its name says: p-values, counts, labels, other numbers, text."""
    lower = name.lower()
    if vocabulary is not None and lower == "param":
        return [MISSING if is_missing(v) else vocabulary.param_label(v) for v in values]
    if vocabulary is not None and lower == "population":
        return [label(vocabulary.population_labels, v) for v in values]
    if vocabulary is not None and lower in ("visit", "visit_from", "visit_to"):
        return [label(vocabulary.visit_labels, v) for v in values]
    if pd.api.types.is_bool_dtype(values):
        return ["yes" if v else "no" for v in values]
    if not pd.api.types.is_numeric_dtype(values):
        return [MISSING if is_missing(v) else str(v) for v in values]
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
    vocabulary: Vocabulary | None = None,
) -> DisplayTable:
    """Any analysis table as display text, formatted column by column (`format_column`); param, population and
    visit codes are shown by their vocabulary labels when a vocabulary is given.

    An empty input gives one row carrying `empty_message` (so "no adverse events" is stated, not implied).
    """
    names = {**COLUMN_LABELS, **(labels or {})}
    columns = [names.get(c, c) for c in frame.columns]
    if frame.empty:
        return empty_note_table(name, title, columns or ["Note"], empty_message)
    out = pd.DataFrame(
        {
            display: format_column(c, frame[c], decimals, vocabulary)
            for c, display in zip(frame.columns, columns, strict=True)
        }
    )
    return DisplayTable(name, title, text_frame(out), tuple(notes))


def _notes_from(frame: pd.DataFrame, *columns: str) -> tuple[str, ...]:
    """Distinct non-empty texts of the given columns, in first-seen order (methods and caveats become notes)."""
    seen: dict[str, None] = {}
    for column in columns:
        if column in frame:
            for value in frame[column]:
                if not is_missing(value) and str(value).strip():
                    seen.setdefault(str(value).strip(), None)
    return tuple(seen)


def _select(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    return frame[[c for c in columns if c in frame.columns]]


# ----------------------------------------------------------------------------------------------------
# Participant flow and Table 1 (artifacts groups/participant_flow and groups/baseline_characteristics)
# ----------------------------------------------------------------------------------------------------
def participant_flow_table(flow: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    """The participant flow: stage, n, % of enrolled, not continuing from the previous stage."""
    enrolled = int(flow["n"].iloc[0]) if len(flow) else 0
    previous = flow["n"].shift(1)
    frame = pd.DataFrame(
        {
            "Stage": flow["label"],
            "n": [format_integer(v) for v in flow["n"]],
            "% of enrolled": [format_percent(v, enrolled, 1) for v in flow["n"]],
            "Not continuing from previous stage": [
                "" if is_missing(p) else format_integer(p - n) for p, n in zip(previous, flow["n"], strict=True)
            ],
        }
    )
    notes = ("Percentages of subjects enrolled.",)
    return DisplayTable("participant_flow", settings.titles["participant_flow"], text_frame(frame), notes)


#: Column header of each group of Table 1 that is not a severity group.
_TABLE1_GROUPS = {"overall": "Overall", "none": "No severity group"}


def baseline_characteristics_table(table1: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    """Table 1 from its statistics: a header row per characteristic and, per group column (N in the header),
    n, mean (SD), median (Q1, Q3) and min to max of continuous characteristics, n (%) of each level of categorical
    ones, n (%) of flags. Display decimals by the characteristic's scale: measure 1, vas the summary decimals,
    percent the percent decimals."""
    d = settings.decimals
    places = {"measure": 1, "vas": d.summary, "percent": d.percent}
    groups = list(dict.fromkeys(table1["group"]))
    group_n = table1.drop_duplicates("group").set_index("group")["group_n"]
    headers = [f"{_TABLE1_GROUPS.get(g) or settings.population_label(g)} (N={int(group_n[g])})" for g in groups]
    rows: list[list[str]] = []
    for _, block in table1.groupby("characteristic", sort=False):
        first = block.iloc[0]
        cells = {g: block[block["group"] == g] for g in groups}
        if first["kind"] == "continuous":
            p = places[first["scale"]]
            stats = {g: part.iloc[0] for g, part in cells.items()}
            rows.append([first["label"], *["" for _ in groups]])
            rows.append(["  n", *[format_integer(stats[g]["n"]) for g in groups]])
            rows.append(["  Mean (SD)", *[format_mean_sd(stats[g]["mean"], stats[g]["sd"], p) for g in groups]])
            rows.append(
                ["  Median (Q1, Q3)"]
                + [format_median_iqr(stats[g]["median"], stats[g]["q1"], stats[g]["q3"], p) for g in groups]
            )
            rows.append(["  Min to max", *[format_range(stats[g]["min"], stats[g]["max"], p) for g in groups]])
        elif first["kind"] == "categorical":
            rows.append([first["label"], *["" for _ in groups]])
            for _, level_rows in block.groupby("level", sort=False):
                by_group = level_rows.set_index("group")
                rows.append(
                    [f"  {level_rows['level_label'].iloc[0]}"]
                    + [format_count_percent(by_group.loc[g, "count"], by_group.loc[g, "n"], d.percent) for g in groups]
                )
        else:
            by_group = block.set_index("group")
            rows.append(
                [first["label"]]
                + [format_count_percent(by_group.loc[g, "count"], by_group.loc[g, "n"], d.percent) for g in groups]
            )
    frame = pd.DataFrame(rows, columns=["Characteristic", *headers])
    remark = f" ({settings.groups_note})" if settings.groups_note else ""
    notes = (
        f"Severity groups from the baseline {settings.primary} VAS: severe when \u2265 "
        f"{format_number(settings.severe_threshold, 1)} cm{remark}.",
        "Percentages of the column N; quartiles by linear interpolation.",
    )
    return DisplayTable("table1_baseline", settings.titles["table1_baseline"], frame, notes)


# ----------------------------------------------------------------------------------------------------
# Efficacy tables
# ----------------------------------------------------------------------------------------------------
def _descriptive_cells(stats: pd.DataFrame, places: int | pd.Series) -> dict[str, list[str]]:
    """n, mean (SD), median (Q1, Q3), min to max as text; `places` may vary per row (a Series)."""
    if isinstance(places, int):
        places = pd.Series(places, index=stats.index)
    cells: dict[str, list[str]] = {"n": [], "Mean (SD)": [], "Median (Q1, Q3)": [], "Min to max": []}
    for (_, row), p in zip(stats.iterrows(), places, strict=True):
        cells["n"].append(format_integer(row.get("n")))
        cells["Mean (SD)"].append(format_mean_sd(row.get("mean"), row.get("sd"), int(p)))
        cells["Median (Q1, Q3)"].append(format_median_iqr(row.get("median"), row.get("q1"), row.get("q3"), int(p)))
        cells["Min to max"].append(format_range(row.get("min"), row.get("max"), int(p)))
    return cells


def _value_and_change(descriptives: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """efficacy/descriptives (long, `variable` aval or chg) as one row per key with the change's statistics
    suffixed _chg."""
    stats = [*keys, *SUMMARY_STATS]
    value = descriptives.loc[descriptives["variable"] == "aval", stats]
    change = descriptives.loc[descriptives["variable"] == "chg", stats]
    return value.merge(change, on=keys, how="left", suffixes=("", "_chg"))


def _change_stats(merged: pd.DataFrame) -> pd.DataFrame:
    return merged[[f"{s}_chg" for s in SUMMARY_STATS]].rename(columns=lambda c: c.removesuffix("_chg"))


def vas_by_visit_table(descriptives: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    """VAS (cm) by visit: value and change from baseline per population, param and visit (efficacy/descriptives).
    Rows sorted by population, param, visit order."""
    keys = ["population", "param", "visit"]
    vocabulary = settings.vocabulary
    merged = _value_and_change(descriptives, keys)
    orders = {"population": vocabulary.populations, "param": vocabulary.params, "visit": vocabulary.visit_codes}
    merged = sort_by(merged, orders)
    places = settings.decimals.summary
    value_cells = _descriptive_cells(merged, places)
    change_cells = _descriptive_cells(_change_stats(merged), places)
    is_baseline = merged["visit"].astype(str) == BASELINE
    frame = pd.DataFrame(
        {
            "Population": [settings.population_label(p) for p in merged["population"]],
            "Parameter": [settings.param_label(p) for p in merged["param"]],
            "Visit": [settings.visit_label(v) for v in merged["visit"]],
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
    return DisplayTable("vas_by_visit", settings.titles["vas_by_visit"], text_frame(frame), notes)


def holm_family_labels(settings: TableSettings) -> dict[str, str]:
    """Holm family -> what it adjusts within, for column headers ("3 visit contrasts", "5 symptoms")."""
    return {
        "visit_contrasts": f"{settings.visit_contrasts} visit contrasts",
        "symptoms": f"{len(settings.vocabulary.symptoms)} symptoms",
    }


def _holm_columns(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(column, family) of the p_holm_<family> columns of a paired-tests artifact, in file order."""
    return [(c, c.removeprefix("p_holm_")) for c in frame.columns if c.startswith("p_holm_")]


#: What a not-estimable rank-biserial CI means, in clinical terms (the paired tables' note).
RB_NOT_ESTIMABLE_NOTE = (
    "Rank-biserial r = -1 (or +1) means every patient whose value changed changed in the same direction (all "
    "improved, or all worsened); its 95% CI is then shown as not estimable: the usual interval (Fisher z) has no "
    "width, which would claim a certainty the sample cannot give."
)


def _effect_size_ci(row: Mapping[str, Any], decimals: int) -> str:
    """ "r (low to high)", or "r (95% CI not estimable)" where the artifact gives a reason (es_ci_note)."""
    note = row.get("es_ci_note", "")
    if not is_missing(row["effect_size"]) and not is_missing(note) and str(note).startswith("not estimable"):
        return f"{format_number(row['effect_size'], decimals)} (95% CI not estimable)"
    return format_estimate_ci(row["effect_size"], row["es_ci_low"], row["es_ci_high"], decimals)


def paired_tests_table(
    paired: pd.DataFrame,
    settings: TableSettings,
    *,
    param_labels: Mapping[str, str] | None = None,
    name: str = "paired_tests",
    unit_note: str = "cm (negative = improvement)",
    exact_below: int | None = None,
) -> DisplayTable:
    """Paired tests: one row per population, param and comparison, Wilcoxon and paired t side by side.

    Input: efficacy/paired_tests (or safety/lab_paired_tests). Estimates are visit_to minus visit_from (negative =
    improvement): HL median change with distribution-free 95% CI for Wilcoxon, mean change with t CI for the t test.
    Adjusted p: Holm within each named family (p_holm_<family>), or the one adjusted p where there are none.
    """
    d = settings.decimals
    vocabulary = settings.vocabulary
    keys = ["population", "param", "visit_from", "visit_to"]
    labels = param_labels or vocabulary.param_labels
    orders = {"population": vocabulary.populations, "param": list(labels), "visit_from": vocabulary.visit_codes,
              "visit_to": vocabulary.visit_codes}  # fmt: skip
    data = sort_by(paired, orders)
    families = holm_family_labels(settings)
    holm = _holm_columns(data)
    # the rows of each (population, param, comparison) in order of appearance, the first row of each test: a dict
    # per record, not a frame per group (300 groups x 2 boolean selections cost 0.25 s of every rebuild's tables)
    grouped: dict[tuple, dict[str, dict]] = {}
    for record in data.to_dict("records"):
        key = tuple(record[k] for k in keys)
        if any(pd.isna(k) for k in key):  # as groupby: a row without its key is in no group
            continue
        grouped.setdefault(key, {}).setdefault(record["test"], record)
    rows = []
    for key, tests in grouped.items():
        population, param, visit_from, visit_to = key
        row = {
            "Population": settings.population_label(population),
            "Parameter": label(labels, param),
            "Comparison": f"{settings.visit_label(visit_to)} vs {settings.visit_label(visit_from)}",
            "n": format_integer(next(iter(tests.values()))["n"]),
        }
        for test, prefix in (("wilcoxon", "Wilcoxon"), ("paired_t", "t test")):
            first = tests.get(test)
            if first is None:
                continue
            estimate_name = "HL median change" if test == "wilcoxon" else "Mean change"
            effect_name = "Rank-biserial r" if test == "wilcoxon" else "Cohen's d_z"
            row[f"{estimate_name} (95% CI)"] = format_estimate_ci(
                first["estimate"], first["ci_low"], first["ci_high"], d.summary
            )
            method = "" if is_missing(first["p_method"]) else f" ({first['p_method']})"
            row[f"{prefix} p"] = format_p_value(first["p_value"], d.p_value) + method
            for column, family in holm:
                value = first[column]
                row[f"{prefix} Holm p ({families.get(family, family)})"] = (
                    "" if is_missing(value) else format_p_value(value, d.p_value)
                )
            if not holm:
                row[f"{prefix} Holm p"] = format_p_value(first["p_adjusted"], d.p_value)
            row[f"{effect_name} (95% CI)"] = _effect_size_ci(first, d.effect_size)
        rows.append(row)
    frame = pd.DataFrame(rows)
    symptoms_visit = settings.symptoms_comparison_visit
    at_visit = f" at {settings.visit_label(symptoms_visit).lower()}" if symptoms_visit else ""
    notes = (
        f"Change = later visit minus earlier visit in {unit_note}; complete cases per comparison.",
        "Wilcoxon signed-rank with zero differences dropped; p exact without ties or zeros "
        f"(n < {exact_below if exact_below is not None else settings.exact_below}), "
        "otherwise normal approximation with tie and continuity correction (normal_cc).",
        RB_NOT_ESTIMABLE_NOTE,
        f"Holm p: adjusted within the {families['visit_contrasts']} of a population, param and test, and within the "
        f"{families['symptoms']}{at_visit} of a population and test; blank where the row is not in that family.",
        "Single-arm, open-label study: within-patient change is not a treatment effect (regression to the "
        "mean, placebo response).",
    )
    return DisplayTable(name, settings.titles[name], text_frame(frame), notes)


def responders_table(responders: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    """Responders: responders / n (%) and Clopper-Pearson 95% CI, per population, param and criterion
    (efficacy/responders, CI limits in percent 0-100)."""
    d = settings.decimals
    vocabulary = settings.vocabulary
    data = sort_by(responders, {"population": vocabulary.populations, "param": vocabulary.params})
    frame = pd.DataFrame(
        {
            "Population": [settings.population_label(p) for p in data["population"]],
            "Parameter": [settings.param_label(p) for p in data["param"]],
            "Criterion": [
                criterion_label(c, t, u)
                for c, t, u in zip(data["criterion"], data["threshold"], data["unit"], strict=True)
            ],
            "Responders / n (%)": [
                f"{format_integer(r)} / {format_integer(n)} ({format_percent(r, n, d.percent)}%)"
                if not is_missing(n) and n
                else MISSING
                for r, n in zip(data["responders"], data["n"], strict=True)
            ],
            "95% CI (%)": [
                format_range(lo, hi, d.percent) if not is_missing(lo) else MISSING
                for lo, hi in zip(data["ci_low"], data["ci_high"], strict=True)
            ],
        }
    )
    analogy = f"; {settings.responder_analogy}" if settings.responder_analogy else ""
    notes = (
        "Responder thresholds (IMMPACT): \u2265 30% and \u2265 50% reduction, \u2265 2-point reduction from baseline "
        f"to {settings.visit_label(settings.responder_visit).lower()}. They were validated for pain scales{analogy}.",
        "Percent change undefined when baseline is 0. Clopper-Pearson exact 95% CI.",
    )
    return DisplayTable("responders", settings.titles["responders"], text_frame(frame), notes)


def group_comparison_table(comparison: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    """Moderate vs severe group: change from baseline compared with Mann-Whitney U, HL shift and rank-biserial r
    (efficacy/group_comparison: estimate = HL shift a minus b)."""
    d = settings.decimals
    vocabulary = settings.vocabulary
    orders = {"population": vocabulary.populations, "param": vocabulary.params, "visit": vocabulary.visit_codes}
    data = sort_by(comparison, orders)
    frame = pd.DataFrame(
        {
            "Parameter": [settings.param_label(p) for p in data["param"]],
            "Change to": [settings.visit_label(v) for v in data["visit"]],
            "Groups (a vs b)": [f"{a} vs {b}" for a, b in zip(data["group_a"], data["group_b"], strict=True)],
            "n (a / b)": [
                f"{format_integer(a)} / {format_integer(b)}" for a, b in zip(data["n_a"], data["n_b"], strict=True)
            ],
            "Statistic": [
                f"{name} = {format_number(v, d.statistic)}" if not is_missing(v) else MISSING
                for name, v in zip(data["statistic_name"], data["statistic"], strict=True)
            ],
            "p": [
                format_p_value(p, d.p_value) + (f" ({m})" if not is_missing(m) else "")
                for p, m in zip(data["p_value"], data["p_method"], strict=True)
            ],
            "HL shift a minus b (95% CI)": [
                format_estimate_ci(e, lo, hi, d.summary)
                for e, lo, hi in zip(data["estimate"], data["ci_low"], data["ci_high"], strict=True)
            ],
            "Rank-biserial r (95% CI)": [_effect_size_ci(row, d.effect_size) for _, row in data.iterrows()],
        }
    )
    notes = (
        f"Change from baseline in cm; groups by baseline {settings.primary} VAS "
        f"(severe \u2265 {format_number(settings.severe_threshold, 1)}).",
        "Mann-Whitney U; Hodges-Lehmann shift with distribution-free 95% CI. Exploratory, no multiplicity adjustment.",
        "Rank-biserial r = \u00b11 when every change of one group lies above (or below) every change of the other: "
        "its 95% CI is then not estimable (its Fisher-z interval has no width).",
    )
    return DisplayTable("group_comparison", settings.titles["group_comparison"], text_frame(frame), notes)


def friedman_table(friedman: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    return analysis_table(
        _select(friedman, ["population", "param", "n", "chi2", "df", "p_value", "kendall_w"]),
        "friedman",
        settings.titles["friedman"],
        settings.decimals,
        notes=("Complete cases; Kendall's W = chi2 / (n (k - 1)). Post-hoc: the paired tests with Holm.",),
        labels={"chi2": "Chi-squared", "df": "df", "kendall_w": "Kendall's W"},
        vocabulary=settings.vocabulary,
    )


#: Display names of the sensitivity models (efficacy/models `model` codes).
MODEL_LABELS = {
    "mixed_anova": "Mixed ANOVA (group x visit)",
    "lmm_random_intercept": "Linear mixed model (random intercept)",
    "lmm_random_intercept_statsmodels": "Linear mixed model (random intercept), statsmodels cross-check",
}
_MODEL_COLUMNS = ("model", "term", "estimate", "se", "statistic_name", "statistic", "df1", "df2", "p_value",
                  "p_value_gg")  # fmt: skip


def models_table(models: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    shown = models.assign(model=models["model"].map(MODEL_LABELS).fillna(models["model"]))
    return analysis_table(
        _select(shown, _MODEL_COLUMNS),
        "models",
        settings.titles["models"],
        settings.decimals,
        notes=_notes_from(models, "method", "caveat"),
        labels={
            "model": "Model",
            "se": "SE",
            "statistic_name": "Statistic name",
            "p_value_gg": "p (Greenhouse-Geisser)",
        },
        vocabulary=settings.vocabulary,
    )


# ----------------------------------------------------------------------------------------------------
# Safety tables
# ----------------------------------------------------------------------------------------------------
def lab_label_map(settings: TableSettings, frame: pd.DataFrame | None = None) -> dict[str, str]:
    """param -> "Name (unit)" for the lab tests, plus any extra param of `frame` (eGFR) with its own unit."""
    labels = {code: test.title for code, test in settings.vocabulary.tests.items()}
    if frame is not None and "param" in frame:
        units = frame["unit"] if "unit" in frame else pd.Series("", index=frame.index)
        for code, unit in zip(frame["param"], units, strict=True):
            if str(code) not in labels:
                labels[str(code)] = f"{code} ({unit})" if not is_missing(unit) and unit else str(code)
    return labels


#: Decimals shown for a param without a lab_units entry (eGFR): its values are not recorded to a test's precision.
OTHER_PARAM_DECIMALS = 2


def lab_summary_table(lab_descriptives: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    """Laboratory values and change from baseline by visit, in standard units (safety/lab_descriptives: wide, the
    change's statistics prefixed chg_). Medians, quartiles and ranges at the recording precision of each test,
    means and SDs with one more decimal."""
    tests = settings.vocabulary.tests
    keys = ["param", "visit"]
    value = lab_descriptives[[*keys, *SUMMARY_STATS]]
    change = lab_descriptives[[*keys, *(f"chg_{s}" for s in SUMMARY_STATS)]].rename(
        columns=lambda c: f"{c.removeprefix('chg_')}_chg" if c.startswith("chg_") else c
    )
    merged = sort_by(
        value.merge(change, on=keys, how="left"), {"param": list(tests), "visit": settings.vocabulary.visit_codes}
    )
    places = merged["param"].map(lambda c: tests[c].decimals if c in tests else OTHER_PARAM_DECIMALS)
    value_cells = _descriptive_cells(merged, places)
    # means and SDs get one more decimal than the recording precision
    value_cells["Mean (SD)"] = [
        format_mean_sd(m, s, int(p) + 1) for m, s, p in zip(merged["mean"], merged["sd"], places, strict=True)
    ]
    change_stats = _change_stats(merged)
    is_baseline = merged["visit"].astype(str) == BASELINE
    change_mean = [
        "" if b else format_mean_sd(m, s, int(p) + 1)
        for b, m, s, p in zip(is_baseline, change_stats["mean"], change_stats["sd"], places, strict=True)
    ]
    change_median = [
        "" if b else format_median_iqr(m, a, c, int(p))
        for b, m, a, c, p in zip(
            is_baseline, change_stats["median"], change_stats["q1"], change_stats["q3"], places, strict=True
        )
    ]
    frame = pd.DataFrame(
        {
            "Test (unit)": [settings.vocabulary.test_title(c) for c in merged["param"]],
            "Visit": [settings.visit_label(v) for v in merged["visit"]],
            **value_cells,
            "Change mean (SD)": change_mean,
            "Change median (Q1, Q3)": change_median,
        }
    )
    notes = ("Standard units (config/lab_units.yaml); values reported below a limit enter at the limit.",)
    return DisplayTable("lab_summary", settings.titles["lab_summary"], text_frame(frame), notes)


#: Labels of the shift comparisons that are not visits.
_WORST_LABELS = {"worst_low": "Worst low", "worst_high": "Worst high"}


def _count_grid(
    long: pd.DataFrame, column: str, levels: list[str], orders: dict, *, only_present: bool
) -> tuple[pd.DataFrame, list[str]]:
    """Counts `n` of a long table spread over the levels of `column`, one row per combination of the `orders` keys
    (in their orders). The given levels come first (only_present: those that occur), then any other level that
    somebody has; rows without a count are dropped. Returns the wide table and its count columns."""
    wide = long.pivot_table(index=list(orders), columns=column, values="n", aggfunc="sum", fill_value=0, sort=False)
    first = [c for c in levels if c in wide.columns] if only_present else list(levels)
    counts = first + sorted(c for c in wide.columns if c not in levels and wide[c].sum() > 0)
    wide = wide.reindex(columns=counts, fill_value=0).reset_index()
    return sort_by(wide[wide[counts].sum(axis=1) > 0], orders), counts


def _counts_and_total(wide: pd.DataFrame, columns: list[str], heading: str) -> dict[str, list[str]]:
    """Count columns (headed heading.format(column)) and their row total, as display text."""
    counts = {heading.format(c): [format_integer(v) for v in wide[c]] for c in columns}
    return {**counts, "Total": [format_integer(v) for v in wide[columns].sum(axis=1)]}


def lab_shift_table(lab_shifts: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    """Shift tables: baseline flag (rows) by post-baseline flag (columns) per test and comparison (a visit, worst
    low, worst high); counts of subjects (safety/lab_shifts). Flags nobody has and baseline flags nobody had are
    left out."""
    name = "lab_shifts"
    if lab_shifts.empty:
        return analysis_table(lab_shifts, name, settings.titles[name], settings.decimals, empty_message="No shifts.")
    comparisons = (*settings.vocabulary.visit_codes, *WORST_COMPARISONS)
    orders = {"param": list(settings.vocabulary.tests), "comparison": comparisons, "from": SHIFT_CATEGORIES}
    wide, flags = _count_grid(lab_shifts, "to", FLAGS, orders, only_present=True)
    timepoints = {**settings.vocabulary.visit_labels, **_WORST_LABELS}
    frame = pd.DataFrame(
        {
            "Test (unit)": [settings.vocabulary.test_title(c) for c in wide["param"]],
            "Timepoint": [label(timepoints, t) for t in wide["comparison"]],
            "Baseline flag": wide["from"].astype(str),
            **_counts_and_total(wide, flags, "{}"),
        }
    )
    notes = (
        "Counts of subjects. Flags against the reporting laboratory's range, else the default range "
        "(config/lab_standards.yaml). Worst low / worst high: most extreme post-baseline value in that direction.",
    )
    return DisplayTable(name, settings.titles[name], text_frame(frame), notes)


def ctcae_worst_table(ctcae_worst: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    """Worst post-baseline CTCAE grade by baseline grade, per term: counts of subjects, grades 0-4 as columns
    (safety/ctcae_worst, long)."""
    name = "ctcae_worst"
    if ctcae_worst.empty:
        return analysis_table(
            ctcae_worst, name, settings.titles[name], settings.decimals, empty_message="No graded values."
        )
    data = ctcae_worst.assign(
        baseline_grade=ctcae_worst["baseline_grade"].astype(str), worst_grade=ctcae_worst["worst_grade"].astype(str)
    )
    # Grades 0-4 always; other levels (such as "missing": no post-baseline value) only when someone has them.
    orders = {"term": list(pd.unique(data["term"])), "baseline_grade": [*map(str, GRADES), "missing"]}
    wide, grades = _count_grid(data, "worst_grade", [str(g) for g in GRADES], orders, only_present=False)
    frame = pd.DataFrame(
        {
            "Term": wide["term"].astype(str),
            "Baseline grade": wide["baseline_grade"].astype(str),
            **_counts_and_total(wide, grades, "Worst grade {}"),
        }
    )
    versions = ", ".join(f"v{v}" for v in pd.unique(ctcae_worst["ctcae_version"].astype(str)))
    notes = (
        f"CTCAE {versions} laboratory criteria (config/ctcae/): the value as reported against the lab's limits in its "
        "unit; counts of subjects; grade 0 = no criterion met; missing = no graded value at that time. Baseline: "
        "the record that supplied the baseline value (last on or before the first dose). Rows only for baseline "
        "grades that occurred.",
    )
    return DisplayTable(name, settings.titles[name], text_frame(frame), notes)


def lab_paired_tests_table(lab_paired: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    """The laboratory paired tests (safety/lab_paired_tests) in the layout of the VAS paired tests, without the
    population column; Holm across tests, separately for each test type."""
    table = paired_tests_table(
        lab_paired,
        settings,
        param_labels=lab_label_map(settings, lab_paired),
        name="lab_paired_tests",
        unit_note="the test's standard unit",
        exact_below=settings.lab_exact_below,
    )
    notes = (
        table.notes[0],
        table.notes[1],
        RB_NOT_ESTIMABLE_NOTE,
        "Holm adjustment across tests, separately for each test type. Subjects with a value reported "
        "below or above a limit at either visit are left out.",
    )
    return DisplayTable(table.name, table.title, table.frame.drop(columns=["Population"], errors="ignore"), notes)


def hys_law_table(hys_law: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    return analysis_table(
        _select(hys_law, ["subject_id", "visit", "alt_xuln", "ast_xuln", "tbil_xuln", "alp_xuln", "note"]),
        "hys_law",
        settings.titles["hys_law"],
        settings.decimals,
        notes=("ALT or AST \u2265 3 x ULN with total bilirubin \u2265 2 x ULN and ALP < 2 x ULN (FDA 2009).",),
        empty_message="No subject met the Hy's law laboratory criteria.",
        labels={
            "alt_xuln": "ALT (x ULN)",
            "ast_xuln": "AST (x ULN)",
            "tbil_xuln": "Bilirubin (x ULN)",
            "alp_xuln": "ALP (x ULN)",
            "note": "Note",
        },
        vocabulary=settings.vocabulary,
    )


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
#: What an empty adverse-event table says.
NO_ADVERSE_EVENTS = "No adverse events were reported."


def ae_summary_table(ae_summary: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    return analysis_table(
        _select(ae_summary, ["category", "description", "n_subjects", "percent", "n_events", "denominator"]),
        "ae_summary",
        settings.titles["ae_summary"],
        settings.decimals,
        notes=_notes_from(ae_summary, "note") or ("Percent of the safety set.",),
        empty_message=NO_ADVERSE_EVENTS,
        labels=AE_LABELS,
        vocabulary=settings.vocabulary,
    )


def ae_by_term_table(ae_by_term: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    name = "ae_by_term"
    return analysis_table(
        ae_by_term, name, settings.titles[name], settings.decimals, empty_message=NO_ADVERSE_EVENTS,
        labels=AE_LABELS, vocabulary=settings.vocabulary,
    )  # fmt: skip


def ae_listing_table(ae_listing: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    name = "ae_listing"
    return analysis_table(
        ae_listing, name, settings.titles[name], settings.decimals, empty_message=NO_ADVERSE_EVENTS,
        labels=AE_LABELS, vocabulary=settings.vocabulary,
    )  # fmt: skip


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


def safety_conclusion_table(conclusion: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    shown = ["scope", "name", "unit", "n_subjects", "worst_grade", "n_new_grade", "n_significant_shift", "significant"]
    return analysis_table(
        _select(conclusion, shown),
        "safety_conclusion",
        settings.titles["safety_conclusion"],
        settings.decimals,
        notes=_notes_from(conclusion, "rule"),
        labels=SAFETY_CONCLUSION_LABELS,
        vocabulary=settings.vocabulary,
    )


# ----------------------------------------------------------------------------------------------------
# Tables by arm (a randomised study; registry entries marked randomised)
# ----------------------------------------------------------------------------------------------------
def _arm_labels(settings: TableSettings, tests: Iterable[str] = ()) -> dict[str, Mapping[str, str]]:
    """The labels of the tables by arm: populations, params, visits, arms and the between-arm `tests`."""
    from k2trial.report.arm_figures import test_label

    words = settings.vocabulary
    populations = {p: settings.population_label(p) for p in words.populations}
    # a set within one randomisation stratum (k2trial.analysis.arms: itt_diabetes): the set's label and the cause's
    for base in ("itt", "per_protocol", "safety"):
        for level, text in words.level_labels.get("etiology", {}).items():
            populations.setdefault(f"{base}_{level}", f"{words.population_label(base)}: {text}")
    return {
        "population": populations,
        "param": words.param_labels,
        "visit": words.visit_labels,
        "arm": dict(words.arm_labels),
        "test": {str(t): test_label(str(t)) for t in tests},
    }


def between_arm_table(between: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    """efficacy/between_arm as a reader sees it (k2trial.report.arm_tables.between_arm_display_table)."""
    from k2trial.report.arm_tables import between_arm_display_table

    name = "between_arm"
    labels = _arm_labels(settings, dict.fromkeys(between["test"]))
    return between_arm_display_table(between, name, settings.titles[name], settings.decimals, labels)


def vas_by_visit_arm_table(summary: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    """arms/vas_by_arm at the clinic visits (the trajectories figure shows every diary week)."""
    from k2trial.report.arm_tables import visit_summary_display_table

    name = "vas_by_visit_arm"
    at_clinic = summary[summary["visit"].isin(settings.vocabulary.clinic_visit_codes)]
    return visit_summary_display_table(
        at_clinic, name, settings.titles[name], settings.decimals, _arm_labels(settings), settings.vocabulary.arms
    )


def table1_by_arm_table(table1: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    """Table 1 overall and per randomised arm (arms/baseline_by_arm; the layout of table1_baseline)."""
    name = "table1_by_arm"
    words = settings.vocabulary
    titled = replace(settings, titles={**settings.titles, "table1_baseline": settings.titles[name]})
    base = baseline_characteristics_table(table1, titled)
    group_n = table1.drop_duplicates("group").set_index("group")["group_n"]
    headers = ["Characteristic"] + [
        f"{_TABLE1_GROUPS.get(g) or words.arm_label(g)} (N={int(group_n[g])})" for g in dict.fromkeys(table1["group"])
    ]
    frame = base.frame.set_axis(headers, axis=1)
    notes = ("Every subject randomised, by the arm randomised.", "Percentages of the column N; quartiles by linear "
             "interpolation.")  # fmt: skip
    return DisplayTable(name, settings.titles[name], frame, notes)


def _per_arm(
    name: str, frame: pd.DataFrame, build: Callable[..., DisplayTable], settings: TableSettings
) -> DisplayTable:
    """A table of one artifact per arm (the artifact by arm: `arm` first), stacked with an Arm column."""
    words = settings.vocabulary
    parts, notes = [], []
    for arm in words.arms:
        table = build(frame[frame["arm"] == arm].drop(columns="arm").reset_index(drop=True), settings)
        parts.append(table.frame.assign(**{"Arm": words.arm_label(arm)})[["Arm", *table.frame.columns]])
        notes += [n for n in table.notes if n not in notes]
    return DisplayTable(name, settings.titles[name], text_frame(pd.concat(parts, ignore_index=True)), tuple(notes))


def per_arm_builder(name: str, single: str, build: Callable[..., DisplayTable]) -> Callable[..., DisplayTable]:
    """The builder of table `name`: the safety table `single` (its builder `build`) of each arm, stacked with an Arm
    column (an artifact arms/<artifact>_by_arm), under the title of `name`."""

    def by_arm(frame: pd.DataFrame, settings: TableSettings) -> DisplayTable:
        titled = replace(settings, titles={**settings.titles, single: settings.titles[name]})
        return _per_arm(name, frame, build, titled)

    return by_arm


CONSORT_LABELS = {"arm": "Arm", "stage": "Stage", "label": "", "n": "n"}


def consort_flow_table(flow: pd.DataFrame, settings: TableSettings) -> DisplayTable:
    """The CONSORT counts by arm (arms/consort_flow), reasons indented under their stage."""
    words = settings.vocabulary
    arm = [words.arm_label(a) if a in words.arms else "All" for a in flow["arm"]]
    stage = [
        f"  {text}" if str(code).endswith("_reason") else str(text)
        for code, text in zip(flow["stage"], flow["label"], strict=True)
    ]
    frame = pd.DataFrame({"Arm": arm, "Stage": stage, "n": [format_integer(n) for n in flow["n"]]})
    return DisplayTable("consort_flow", settings.titles["consort_flow"], text_frame(frame), ())


# ----------------------------------------------------------------------------------------------------
# All tables
# ----------------------------------------------------------------------------------------------------
#: Each table of the registry: its builder and the artifact it formats (a key of `data` in build_all_tables).
BUILDERS: dict[str, tuple[str, Callable[[pd.DataFrame, TableSettings], DisplayTable]]] = {
    "participant_flow": ("participant_flow", participant_flow_table),
    "table1_baseline": ("baseline_characteristics", baseline_characteristics_table),
    "vas_by_visit": ("descriptives", vas_by_visit_table),
    "paired_tests": ("paired_tests", lambda frame, settings: paired_tests_table(frame, settings)),
    "friedman": ("friedman", friedman_table),
    "responders": ("responders", responders_table),
    "group_comparison": ("group_comparison", group_comparison_table),
    "models": ("models", models_table),
    "lab_summary": ("lab_descriptives", lab_summary_table),
    "lab_shifts": ("lab_shifts", lab_shift_table),
    "ctcae_worst": ("ctcae_worst", ctcae_worst_table),
    "lab_paired_tests": ("lab_paired_tests", lab_paired_tests_table),
    "hys_law": ("hys_law", hys_law_table),
    "ae_summary": ("ae_summary", ae_summary_table),
    "ae_by_term": ("ae_by_term", ae_by_term_table),
    "ae_listing": ("ae_listing", ae_listing_table),
    "safety_conclusion": ("safety_conclusion", safety_conclusion_table),
    "consort_flow": ("consort_flow", consort_flow_table),
    "table1_by_arm": ("baseline_by_arm", table1_by_arm_table),
    "vas_by_visit_arm": ("vas_by_arm", vas_by_visit_arm_table),
    "between_arm": ("between_arm", between_arm_table),
}
# The safety tables by arm (k2trial.core.vocabulary.SAFETY_BY_ARM; a randomised study): table name -> the single
# table it repeats per arm, in the registry's order (BUILDERS follows it).
BY_ARM_TABLES = {
    "ae_summary_by_arm": "ae_summary",
    "lab_summary_by_arm": "lab_summary",
    "lab_shifts_by_arm": "lab_shifts",
    "ctcae_worst_by_arm": "ctcae_worst",
    "hys_law_by_arm": "hys_law",
    "ae_by_term_by_arm": "ae_by_term",
}
BUILDERS |= {
    name: (f"{BUILDERS[single][0]}_by_arm", per_arm_builder(name, single, BUILDERS[single][1]))
    for name, single in BY_ARM_TABLES.items()
}


def build_all_tables(data: Mapping[str, pd.DataFrame], settings: TableSettings) -> list[DisplayTable]:
    """Every display table of the registry (settings.titles, in registry order) from the analysis artifacts.

    data: artifact key (the first field of BUILDERS) -> the artifact as read with k2trial.core.schema. Raises
    ConfigError naming a registry table without a builder.
    """
    tables = []
    for name in settings.titles:
        if name not in BUILDERS:
            raise ConfigError(f"registry table {name!r} has no builder in k2trial.report.tables.BUILDERS")
        artifact, build = BUILDERS[name]
        tables.append(build(data[artifact], settings))
    return tables


def as_display_bool(values: pd.Series) -> pd.Series:
    """A boolean artifact column as a bool Series (missing is False), for counting in views."""
    return pd.Series(as_bool(values), index=values.index)
