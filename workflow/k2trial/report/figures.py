"""Figures for reviewers, drawn with matplotlib's object API (no pyplot state) and saved byte-reproducibly.

Why matplotlib rather than seaborn here: every figure is a simple composition (lines, boxes, bars,
points with analytic intervals), and importing seaborn costs about 1.4 s of the 2 s budget of a small
rebuild; drawing directly also keeps jitter and sampling under an explicit seed.

The protocol comes from the vocabulary (k2trial.core.vocabulary, from the study config): the diary items and the
primary VAS (the composite, or a single-item study's item), the visits and weeks drawn, the end of treatment, and
the off-treatment follow-up, shaded and labelled "off treatment" on every week axis (`shade_off_treatment`).

Design rules kept by every function:
- the colour palette is colour-blind safe (Okabe-Ito by default) and every colour distinction is doubled
  by a marker, line style or hatch, so figures read in greyscale;
- axis labels carry units; categories are drawn in explicit orders; data are sorted before drawing;
- per-subject layers draw at most `max_subjects` subjects, a seeded sample, and say so on the figure;
  summaries (medians, quartiles, boxes) always use every subject;
- functions take DataFrames and return a `matplotlib.figure.Figure`; `figure_bytes` renders it with no
  creation date, software version or random ids, so two runs give identical PNG and SVG bytes.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch, Patch
from matplotlib.ticker import MaxNLocator

from k2trial.analysis.groups import EFFICACY_SET, SEVERITY_GROUPS
from k2trial.analysis.safety.standards import SEXES
from k2trial.core.errors import ConfigError
from k2trial.core.values import as_bool, subject_numbers
from k2trial.core.vocabulary import BASELINE, COMPOSITE, OFF_TREATMENT, LabTest, Vocabulary
from k2trial.report.formatting import criterion_label, format_number, population_label

#: Okabe & Ito (2008) colour-blind-safe palette, dark-to-light pairs first so that two groups also differ
#: in lightness (greyscale).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P")
LINESTYLES = ("-", "--", "-.", ":")
HATCHES = ("", "///", "...", "xx")
GREY = "#7f7f7f"


@dataclass(frozen=True)
class Style:
    """Figure settings from config `reporting` (dpi for PNG, palette, per-subject sample size, svg salt)."""

    dpi: int = 200
    palette: tuple[str, ...] = OKABE_ITO
    max_subjects: int = 200
    svg_hashsalt: str = "k2trial"

    @classmethod
    def from_config(cls, reporting: Mapping[str, Any]) -> Style:
        """The style of config `reporting` (figure_dpi, palette, max_subjects_plotted, svg_hashsalt)."""
        return cls(
            dpi=int(reporting["figure_dpi"]),
            palette=tuple(reporting["palette"]),
            max_subjects=int(reporting["max_subjects_plotted"]),
            svg_hashsalt=str(reporting["svg_hashsalt"]),
        )

    def colour(self, index: int) -> str:
        return self.palette[index % len(self.palette)]


def apply_style(style: Style) -> None:
    """Set the process-wide matplotlib parameters every figure relies on (call once before drawing)."""
    matplotlib.rcParams.update(
        {
            "svg.hashsalt": style.svg_hashsalt,
            # Text stays text in SVG (editable, searchable, and far cheaper to write than glyph outlines).
            "svg.fonttype": "none",
            "font.family": "DejaVu Sans",
            "font.size": 9,
            "axes.titlesize": 10,
            # A fixed title height (the automatic one lands on the same place, as no axes has ticks or an
            # offset text on top) spares measuring every tick label of every axes at each draw: a tenth of
            # the drawing time.
            "axes.titley": 1.0,
            "axes.labelsize": 9,
            "xtick.labelsize": 8,
            "ytick.labelsize": 8,
            "legend.fontsize": 8,
            "legend.frameon": False,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": False,
            "axes.prop_cycle": matplotlib.cycler(color=list(style.palette)),
            "image.cmap": "cividis",
            "figure.dpi": 100,
            "path.simplify": True,
        }
    )


_SAVE_METADATA = {
    "png": {"Software": None},
    "svg": {"Creator": None, "Date": None, "Format": None, "Type": None},
}


def figure_bytes(fig: Figure, fmt: str, dpi: int) -> bytes:
    """Render a figure to PNG or SVG bytes with no date, creator or version inside (byte-identical reruns)."""
    buffer = io.BytesIO()
    # zlib level 3 instead of 6: a quarter of the encoding time for PNGs about 10% larger.
    extra = {"pil_kwargs": {"compress_level": 3}} if fmt == "png" else {}
    fig.savefig(buffer, format=fmt, dpi=dpi, metadata=_SAVE_METADATA[fmt], facecolor="white", **extra)
    return buffer.getvalue()


def render_figure(fig: Figure, dpi: int, formats: Sequence[str] = ("png", "svg")) -> dict[str, bytes]:
    """Bytes of the figure in each format. The constrained layout is solved once, for the first format,
    then frozen: layout is in figure-relative units and points, so it does not depend on dpi, and solving
    it again costs as much as drawing."""
    rendered = {}
    for i, fmt in enumerate(formats):
        rendered[fmt] = figure_bytes(fig, fmt, dpi)
        if i == 0:
            fig.set_layout_engine("none")
    return rendered


def step_seed(global_seed: int, step: str) -> int:
    """Seed of one step derived from the global config seed and the step's name (stable across runs)."""
    digest = hashlib.sha256(f"{global_seed}:{step}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**32)


def sample_subjects(ids: Sequence[str] | pd.Series, max_subjects: int, seed: int) -> list[str]:
    """All subjects when there are at most max_subjects, else a seeded simple random sample without
    replacement; returned in canonical subject order. The same ids, size and seed give the same sample."""
    unique = pd.Series(pd.unique(pd.Series(ids, dtype=str)))
    unique = unique.iloc[np.argsort(subject_numbers(unique), kind="stable")].reset_index(drop=True)
    if len(unique) <= max_subjects:
        return unique.tolist()
    chosen = np.sort(np.random.default_rng(seed).choice(len(unique), size=max_subjects, replace=False))
    return unique.iloc[chosen].tolist()


def sample_note(shown: int, total: int, seed: int) -> str:
    """The sentence a figure carries when its per-subject layer is a sample ("" when every subject is drawn)."""
    if shown >= total:
        return ""
    return f"Per-subject layer: random sample of {shown:,} of {total:,} subjects (seed {seed}); summaries use all."


#: The mark every figure of a simulated dataset carries, top right, so that no reader mistakes it for trial data.
SIMULATED_MARK = "SIMULATED DATA"


def mark_simulated(fig: Figure) -> None:
    """Stamp SIMULATED_MARK in the top-right corner of the figure (bold, boxed, dark red on white).

    It sits on the title row (every figure has its title at the top left, on a suptitle), so it never covers
    data; it stays text in the SVG, so a search for "SIMULATED DATA" finds it.
    """
    fig.text(
        0.995,
        0.995,
        SIMULATED_MARK,
        ha="right",
        va="top",
        fontsize=8,
        fontweight="bold",
        color="#8b0000",
        gid="simulated-data-mark",
        bbox={"boxstyle": "square,pad=0.25", "facecolor": "white", "edgecolor": "#8b0000", "linewidth": 0.8},
        zorder=10,
    )


def _title(fig: Figure, title: str, note: str = "", y: float | None = None) -> None:
    """Figure title at the top left; the sample note (when any) as its second line, so layouts account for it."""
    text = f"{title}\n{note}" if note else title
    kwargs = {"y": y, "va": "top"} if y is not None else {}
    fig.suptitle(text, x=0.01, ha="left", fontsize=9.5, **kwargs)


def _subject_segments(frame: pd.DataFrame, x: str, y: str) -> list[np.ndarray]:
    """One (k, 2) array of points per subject, subjects in canonical order, points sorted by x."""
    data = frame.dropna(subset=[y]).assign(_num=lambda f: subject_numbers(f["subject_id"]))
    data = data.sort_values(["_num", x], kind="stable")
    if data.empty:
        return []
    points = data[[x, y]].to_numpy(dtype=float)
    bounds = np.flatnonzero(np.diff(data["_num"].to_numpy())) + 1
    return [segment for segment in np.split(points, bounds) if len(segment)]


def unit_text(text: str) -> str:
    """Units with powers typeset (10^9/L -> 10 to the 9th /L) for figure text."""
    return text.replace("10^9", "10$^9$").replace("10^3", "10$^3$")


def _right_margin_label(ax, text: str, y: float, fontsize: float) -> None:
    """A reference line's label just right of the axes, at the line's height."""
    ax.annotate(
        text,
        xy=(1.0, y),
        xycoords=("axes fraction", "data"),
        xytext=(3, 0),
        textcoords="offset points",
        ha="left",
        va="center",
        fontsize=fontsize,
        annotation_clip=False,
    )


def _week_axis(ax: Axes, weeks: Sequence[int], label: str = "Week of treatment", pad: float = 0.4) -> None:
    ax.set_xticks(list(weeks))
    ax.set_xlim(min(weeks) - pad, max(weeks) + pad)
    ax.set_xlabel(label)


@dataclass(frozen=True)
class Labels:
    """What the figures print for codes: the vocabulary (params, visits, tests, levels) and the severity boundary
    in the group labels."""

    vocabulary: Vocabulary
    severe_threshold: float | None  # None: a safety-only study (no severity groups)

    def population(self, population: str) -> str:
        return population_label(self.vocabulary, population, self.severe_threshold)

    def weeks_span(self) -> str:
        weeks = self.vocabulary.diary_weeks
        return f"weeks {min(weeks)}-{max(weeks)}"

    @property
    def primary(self) -> str:
        """The primary VAS as figures name it: "Composite", or a single-item study's item ("Pain")."""
        return self.vocabulary.param_label(self.vocabulary.primary_param, short=True)

    @property
    def end_of_treatment(self) -> str:
        """The end-of-treatment visit in words ("week 8")."""
        return self.vocabulary.end_of_treatment.label.lower()


def off_treatment_period(vocabulary: Vocabulary) -> tuple[int, int] | None:
    """(end of treatment, last follow-up week) of the off-treatment follow-up; None for a study without."""
    if not vocabulary.follow_up_visits:
        return None
    return vocabulary.end_of_treatment.week, max(v.week for v in vocabulary.follow_up_visits)


def shade_off_treatment(ax: Axes, period: tuple[int, int] | None, pad: float = 0.4) -> None:
    """Shade the off-treatment follow-up `period` (off_treatment_period) on a week axis and label it
    "off treatment"; nothing for a study without follow-up (None)."""
    if period is None:
        return
    start, end = period[0], period[1] + pad
    ax.axvspan(start, end, color="#999999", alpha=0.15, lw=0, zorder=0)
    ax.text(
        (start + end) / 2,
        0.97,
        OFF_TREATMENT,
        transform=ax.get_xaxis_transform(),
        ha="center",
        va="top",
        fontsize=7,
        color="#333333",
    )


# ----------------------------------------------------------------------------------------------------
# 1. Participant flow
# ----------------------------------------------------------------------------------------------------
def participant_flow_figure(flow: pd.DataFrame) -> Figure:
    """Flow diagram from `tables.participant_flow` (stage, label, n): boxes top to bottom, losses at the side."""
    fig = Figure(figsize=(5.6, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    count = len(flow)
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.5, count - 0.3)
    enrolled = int(flow["n"].iloc[0]) if count else 0
    for i, (text, n) in enumerate(zip(flow["label"], flow["n"], strict=True)):
        y = count - 1 - i
        share = f" ({format_number(100 * n / enrolled, 1)}%)" if enrolled and i else ""
        box = FancyBboxPatch(
            (1.0, y - 0.28), 4.6, 0.56, boxstyle="round,pad=0.02", facecolor="#eef3f8", edgecolor="#0072B2"
        )
        ax.add_patch(box)
        ax.text(3.3, y, f"{text}\nn = {int(n):,}{share}", ha="center", va="center", fontsize=9)
        if i:
            ax.annotate("", xy=(3.3, y + 0.3), xytext=(3.3, y + 0.72), arrowprops={"arrowstyle": "-|>", "lw": 1.2})
            lost = int(flow["n"].iloc[i - 1]) - int(n)
            # drawn even when zero: a reader should see that nobody was lost, not guess it
            ax.annotate(
                "",
                xy=(6.3, y + 0.5),
                xytext=(3.3, y + 0.5),
                arrowprops={"arrowstyle": "-|>", "lw": 0.8, "color": GREY},
            )
            side = f"Not continuing: {lost:,}" if lost >= 0 else f"Back at this stage: {-lost:,}"
            ax.text(6.4, y + 0.5, side, ha="left", va="center", fontsize=8, color="#333333")
    _title(fig, "Participant flow")
    return fig


# ----------------------------------------------------------------------------------------------------
# 2. Composite VAS per subject over weeks 0-8, by severity group
# ----------------------------------------------------------------------------------------------------
def composite_trajectories_figure(
    composite: pd.DataFrame,
    weekly: pd.DataFrame,
    groups: Sequence[str],
    labels: Labels,
    style: Style,
    note: str = "",
    group_sizes: Mapping[str, int] | None = None,
) -> Figure:
    """Composite VAS (cm) by week per subject (thin lines) with the group median and IQR, one panel per group.

    composite: subject_id, week, aval, severity_group (per-subject layer; may be a sample).
    weekly: population, week, median, q1, q3 for param composite (results/efficacy/weekly.csv, all subjects).
    """
    fig = Figure(figsize=(8.0, 3.9), layout="constrained")
    axes = fig.subplots(1, len(groups), sharey=True, squeeze=False)[0]
    for i, (ax, group) in enumerate(zip(axes, groups, strict=True)):
        colour = style.colour(i)
        lines = _subject_segments(composite[composite["severity_group"] == group], "week", "aval")
        ax.add_collection(LineCollection(lines, colors=GREY, linewidths=0.6, alpha=0.45, zorder=1))
        summary = weekly[weekly["population"] == group].sort_values("week")
        if not summary.empty:
            ax.fill_between(summary["week"], summary["q1"], summary["q3"], color=colour, alpha=0.22, lw=0, zorder=2)
            ax.plot(
                summary["week"],
                summary["median"],
                color=colour,
                lw=2.4,
                ls=LINESTYLES[i % len(LINESTYLES)],
                marker=MARKERS[i % len(MARKERS)],
                ms=5,
                zorder=3,
            )
        size = (group_sizes or {}).get(group, len(lines))
        ax.set_title(f"{labels.population(group)}\nn = {size:,}", fontsize=9)
        period = off_treatment_period(labels.vocabulary)
        _week_axis(ax, labels.vocabulary.diary_weeks, **({"label": "Study week"} if period else {}))
        shade_off_treatment(ax, period)
        ax.set_ylim(0, 10)
        ax.set_yticks(range(0, 11, 2))
    axes[0].set_ylabel(f"{labels.primary} {labels.vocabulary.vas_axis}")
    handles = [
        Line2D([], [], color=GREY, lw=0.8, alpha=0.7, label="One subject"),
        *[
            Line2D(
                [], [], color=style.colour(i), lw=2.4, ls=LINESTYLES[i], marker=MARKERS[i], label=f"Median, {g} group"
            )
            for i, g in enumerate(groups)
        ],
        Patch(color=GREY, alpha=0.3, label="Interquartile range"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=4)
    _title(fig, f"{labels.primary} VAS per subject, {labels.weeks_span()}", note)
    return fig


# ----------------------------------------------------------------------------------------------------
# 3. Each symptom by visit: box plus points
# ----------------------------------------------------------------------------------------------------
def symptoms_by_visit_figure(
    values: pd.DataFrame, point_ids: Sequence[str], seed: int, labels: Labels, style: Style, note: str = ""
) -> Figure:
    """Boxes (all subjects; whiskers 1.5 IQR, no outlier markers) with points (a sample when large) per
    param and clinic visit. values: subject_id, param, visit, aval (cm). Jitter is seeded."""
    params = labels.vocabulary.params
    ncols = min(3, len(params))
    nrows = -(-len(params) // ncols)
    fig = Figure(figsize=(8.0, 2.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False).ravel()
    for ax in axes[len(params) :]:
        ax.set_axis_off()
    axes = axes[: len(params)]
    clinic_visits = labels.vocabulary.clinic_visit_codes
    data = values[values["visit"].isin(clinic_visits)]
    shown = data[data["subject_id"].isin(set(point_ids))]
    rng = np.random.default_rng(seed)
    for ax, param in zip(axes, params, strict=True):
        boxes = [
            data.loc[(data["param"] == param) & (data["visit"] == v), "aval"].dropna().to_numpy() for v in clinic_visits
        ]
        positions = np.arange(len(clinic_visits))
        ax.boxplot(
            boxes,
            positions=positions,
            widths=0.55,
            showfliers=False,
            medianprops={"color": "black", "lw": 1.8},
            boxprops={"color": "black"},
            whiskerprops={"color": "black"},
            capprops={"color": "black"},
            # above the points: with a few hundred points the median line would vanish beneath them
            zorder=4,
        )
        for j, visit in enumerate(clinic_visits):
            points = shown.loc[(shown["param"] == param) & (shown["visit"] == visit), "aval"].dropna().to_numpy()
            jitter = rng.uniform(-0.17, 0.17, size=len(points))
            ax.scatter(
                j + jitter,
                points,
                s=10,
                color=style.colour(j),
                marker=MARKERS[j],
                alpha=0.6,
                linewidths=0,
                zorder=3,
            )
        ax.set_xticks(positions, [labels.vocabulary.visit_labels[v] for v in clinic_visits])
        ax.set_title(labels.vocabulary.param_label(param))
        ax.set_ylim(-0.3, 10.3)
        ax.set_yticks(range(0, 11, 2))
    for ax in axes[::ncols]:
        ax.set_ylabel(labels.vocabulary.vas_axis)
    _title(fig, "Symptom VAS at the clinic visits", note)
    return fig


# ----------------------------------------------------------------------------------------------------
# 4. Median VAS heatmap symptom x week
# ----------------------------------------------------------------------------------------------------
def vas_heatmap_figure(weekly: pd.DataFrame, n_subjects: int, labels: Labels) -> Figure:
    """Median VAS (cm) per param (rows) and diary week (columns) from weekly.csv of one population."""
    vocabulary = labels.vocabulary
    grid = weekly.pivot_table(index="param", columns="week", values="median", aggfunc="first")
    grid = grid.reindex(index=[p for p in vocabulary.params if p in grid.index], columns=list(vocabulary.diary_weeks))
    fig = Figure(figsize=(7.6, 3.6), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="cividis_r", vmin=0, vmax=10, aspect="auto")
    for (row, col), value in np.ndenumerate(grid.to_numpy(dtype=float)):
        if np.isfinite(value):
            ax.text(
                col,
                row,
                format_number(value, 1),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if value > 5.0 else "black",
            )
    ax.set_xticks(range(grid.shape[1]), [str(w) for w in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [vocabulary.param_label(p) for p in grid.index])
    ax.set_xlabel("Week of treatment")
    if vocabulary.follow_up_visits:  # columns are diary weeks: the follow-up starts after the end-of-treatment column
        ax.axvline(list(grid.columns).index(vocabulary.end_of_treatment.week) + 0.5, color="black", lw=1.2)
        ax.set_xlabel(f"Week (after week {vocabulary.end_of_treatment.week}: {OFF_TREATMENT})")
    ax.spines[:].set_visible(False)
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("Median VAS (cm)")
    _title(fig, f"Median VAS by symptom and week (all subjects, n = {n_subjects:,})")
    return fig


# ----------------------------------------------------------------------------------------------------
# 5. Waterfall of percent change at the end of treatment
# ----------------------------------------------------------------------------------------------------
def waterfall_figure(change: pd.DataFrame, labels: Labels, style: Style, note: str = "") -> Figure:
    """Percent change of the primary VAS (composite, or the single item) at the end of treatment per subject,
    sorted, coloured and hatched by etiology.

    change: subject_id, pchg (% of baseline; missing when baseline is 0: not drawn), etiology.
    """
    data = change.dropna(subset=["pchg"]).copy()
    data["_num"] = subject_numbers(data["subject_id"])
    data = data.sort_values(["pchg", "_num"], ascending=[False, True], kind="stable").reset_index(drop=True)
    fig = Figure(figsize=(8.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(data))
    # From about a hundred bars on, white gaps between bars turn into stripes: bars touch, hatches stay white.
    dense = len(data) >= 100
    primary, end = labels.primary.lower(), labels.end_of_treatment
    etiologies = labels.vocabulary.level_labels["etiology"]
    for i, etiology in enumerate(etiologies):
        mask = (data["etiology"] == etiology).to_numpy()
        ax.bar(
            x[mask],
            data.loc[mask, "pchg"],
            width=1.0 if dense else 0.85,
            color=style.colour(i),
            hatch=HATCHES[i],
            hatchcolor="white",
            edgecolor=style.colour(i) if dense else "white",
            linewidth=0 if dense else 0.3,
            label=f"{etiologies[etiology]} (n = {int(mask.sum()):,}{' in the sample' if note else ''})",
        )
    for level, ls in ((-30, "--"), (-50, ":")):
        ax.axhline(level, color="black", lw=0.9, ls=ls)
        _right_margin_label(ax, f"{level}%", level, 7.5)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlim(-0.8, max(len(data), 1) - 0.2)
    ax.set_xticks([])
    ax.set_ylim(-100, max(10.0, float(data["pchg"].max()) + 5 if len(data) else 10.0))
    ax.set_xlabel("Subjects, ordered from least to most improvement")
    ax.set_ylabel(f"Change in {primary} VAS at {end}\n(% of baseline)")
    handles, legend = ax.get_legend_handles_labels()
    fig.legend(handles, legend, title="Etiology", loc="outside lower center", ncol=3)
    _title(fig, f"Percent change of the {primary} VAS from baseline to {end}", note)
    return fig


# ----------------------------------------------------------------------------------------------------
# 6. Forest plot of Hodges-Lehmann median change
# ----------------------------------------------------------------------------------------------------
def forest_figure(paired: pd.DataFrame, populations: Sequence[str], labels: Labels) -> Figure:
    """HL median change (cm) with 95% CI, end of treatment minus baseline, per population (panel) and param (row).

    paired: rows of paired_tests.csv with test wilcoxon, visit_from baseline, visit_to week8.
    """
    ncols = 3
    nrows = int(np.ceil(len(populations) / ncols))
    fig = Figure(figsize=(8.4, 2.5 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    finite = paired[["ci_low", "ci_high", "estimate"]].to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    low = min(-1.0, float(finite.min()) - 0.3) if finite.size else -10.0
    high = max(0.5, float(finite.max()) + 0.3) if finite.size else 1.0
    params = labels.vocabulary.params
    rows = np.arange(len(params))[::-1]
    for ax, population in zip(axes, populations, strict=False):
        part = paired[paired["population"] == population].set_index("param").reindex(list(params))
        for y, param in zip(rows, params, strict=True):
            est, lo, hi = part.loc[param, ["estimate", "ci_low", "ci_high"]].to_numpy(dtype=float)
            composite = param == COMPOSITE
            ax.plot([lo, hi], [y, y], color="black", lw=1.1)
            ax.plot(
                est,
                y,
                marker="D" if composite else "s",
                color="#0072B2" if composite else "black",
                ms=6 if composite else 4.5,
            )
        n = part["n"].dropna()
        size = f", n = {int(n.max()):,}" if len(n) else ", no data"
        ax.set_title(f"{labels.population(population)}\n{size.removeprefix(', ')}", fontsize=8.5)
        ax.axvline(0, color=GREY, lw=0.8, ls="--")
        ax.set_yticks(rows, [labels.vocabulary.param_label(p, short=True) for p in params])
        ax.set_xlim(low, high)
    for ax in axes[len(populations) :]:
        ax.set_axis_off()
    fig.supxlabel(
        f"Hodges-Lehmann median change, {labels.end_of_treatment} minus baseline (cm; negative = improvement)",
        fontsize=9,
    )
    fig.suptitle(
        "Median change in VAS with 95% CI (Wilcoxon signed-rank, distribution-free CI)", x=0.01, ha="left", fontsize=10
    )
    return fig


# ----------------------------------------------------------------------------------------------------
# 7. Responder rates with CIs
# ----------------------------------------------------------------------------------------------------
def responders_figure(
    responders: pd.DataFrame,
    criteria: Sequence[tuple[str, str]],
    populations: Sequence[str],
    labels: Labels,
    style: Style,
) -> Figure:
    """Responder percentage with Clopper-Pearson 95% CI per criterion (panel), param (row) and population
    (marker and colour). responders: population, param, criterion column, responders, n, ci_low, ci_high
    with CI limits in percent (0-100). criteria: (code, title) pairs in display order."""
    fig = Figure(figsize=(8.4, 4.2), layout="constrained")
    # room between panels, so that one panel's "100" and the next panel's "0" do not run together
    fig.get_layout_engine().set(wspace=0.08)
    axes = fig.subplots(1, len(criteria), sharey=True, squeeze=False)[0]
    params = labels.vocabulary.params
    rows = np.arange(len(params))[::-1]
    offsets = np.linspace(-0.25, 0.25, len(populations)) if len(populations) > 1 else np.zeros(1)
    for ax, (code, title) in zip(axes, criteria, strict=True):
        part = responders[responders["criterion"] == code]
        for k, population in enumerate(populations):
            rows_p = part[part["population"] == population].set_index("param").reindex(list(params))
            share = (100 * rows_p["responders"] / rows_p["n"]).to_numpy(dtype=float)
            lo = rows_p["ci_low"].to_numpy(dtype=float)
            hi = rows_p["ci_high"].to_numpy(dtype=float)
            ax.errorbar(
                share,
                rows + offsets[k],
                xerr=np.vstack([share - lo, hi - share]),
                fmt=MARKERS[k],
                color=style.colour(k),
                ms=4.5,
                lw=1,
                capsize=0,
                label=labels.population(population),
            )
        ax.set_title(title, fontsize=9)
        ax.set_xlim(-3, 103)
        ax.set_xticks([0, 25, 50, 75, 100])
        ax.axvline(50, color=GREY, lw=0.6, ls=":")
        ax.set_yticks(rows, [labels.vocabulary.param_label(p, short=True) for p in params])
    visits = responders["visit"].dropna().unique()
    at = f" at {labels.vocabulary.visit_labels.get(visits[0], visits[0]).lower()}" if len(visits) == 1 else ""
    axes[len(axes) // 2].set_xlabel(f"Responders{at} (% of subjects with 95% Clopper-Pearson CI)")
    handles, texts = axes[0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="outside lower center", ncol=len(populations))
    fig.suptitle(f"Responder rates{at}", x=0.01, ha="left", fontsize=10)
    return fig


# ----------------------------------------------------------------------------------------------------
# 8. Laboratory trajectories with the reference band
# ----------------------------------------------------------------------------------------------------
def reference_band(standard: Mapping[str, object]) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """(female or common range, male range or None) from one test's lab_standards `range` entry."""
    spec = standard.get("range") if isinstance(standard, Mapping) else None
    if isinstance(spec, Mapping):
        female = spec.get("F")
        male = spec.get("M")
        return (tuple(map(float, female)) if female else None, tuple(map(float, male)) if male else None)
    if spec:
        return tuple(map(float, spec)), None
    return None, None


def lab_trajectories_figure(
    labs: pd.DataFrame,
    medians: pd.DataFrame,
    tests: Mapping[str, LabTest],
    standards: Mapping[str, Mapping[str, object]],
    style: Style,
    note: str = "",
    *,
    weeks: Sequence[int],
    off_treatment: tuple[int, int] | None = None,
) -> Figure:
    """Per test: subject lines (thin; a sample when large), the median over all subjects by visit (bold),
    and the default reference range (shaded; where ranges differ by sex the female range is shaded and the
    male limits dashed). labs: subject_id, param, week, aval; medians: param, week, median. weeks: of the clinic
    visits (x axis); off_treatment: the follow-up period, shaded (off_treatment_period)."""
    codes = [c for c in tests if c in set(labs["param"]) or c in set(medians["param"])]
    ncols = 3
    nrows = max(1, int(np.ceil(len(codes) / ncols)))
    # A fixed grid rather than the constrained layout: with 18 panels, solving the layout costs as much as
    # drawing the figure, and the margins below fit the 7-point tick labels of every test.
    height = 1.75 * nrows + 1.1
    fig = Figure(figsize=(8.4, height))
    axes = fig.subplots(
        nrows,
        ncols,
        squeeze=False,
        gridspec_kw={
            "left": 0.075,
            "right": 0.985,
            "top": 1 - 0.62 / height,
            "bottom": 0.78 / height,
            "hspace": 0.62,
            "wspace": 0.3,
        },
    ).ravel()
    by_param = {code: part for code, part in labs.groupby("param", sort=False, observed=True)}
    for ax, code in zip(axes, codes, strict=False):
        test = tests[code]
        female, male = reference_band(standards.get(code, {}))
        if female:
            ax.axhspan(*female, color="#009E73", alpha=0.16, lw=0, zorder=0)
        if male:
            for limit in male:
                ax.axhline(limit, color="#009E73", lw=0.9, ls="--", zorder=0)
        part = by_param.get(code, pd.DataFrame(columns=["subject_id", "week", "aval"]))
        lines = _subject_segments(part, "week", "aval")
        ax.add_collection(LineCollection(lines, colors=GREY, linewidths=0.5, alpha=0.5, zorder=1))
        med = medians[medians["param"] == code].sort_values("week")
        ax.plot(med["week"], med["median"], color=style.colour(0), lw=2, marker="o", ms=4, zorder=3)
        ax.set_title(unit_text(test.title), fontsize=8.5)
        ax.set_xticks(list(weeks))
        ax.set_xlim(min(weeks) - 0.5, max(weeks) + 0.5)
        shade_off_treatment(ax, off_treatment, pad=0.5)
        values = np.concatenate(
            [part["aval"].dropna().to_numpy(dtype=float), med["median"].dropna().to_numpy(dtype=float)]
        )
        limits = [v for band in (female, male) if band for v in band]
        if values.size or limits:
            lowest = min([*values.tolist(), *limits])
            highest = max([*values.tolist(), *limits])
            pad = 0.08 * (highest - lowest or abs(highest) or 1.0)
            ax.set_ylim(lowest - pad, highest + pad)
        ax.tick_params(labelsize=7)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    for ax in axes[len(codes) :]:
        ax.set_axis_off()
    for ax in axes[: len(codes)][-ncols:]:
        ax.set_xlabel("Week")
    _title(fig, "Laboratory values by visit with the default reference range", note, y=1 - 0.08 / height)
    handles = [
        Line2D([], [], color=GREY, lw=0.8, label="One subject"),
        Line2D([], [], color=style.colour(0), lw=2, marker="o", label="Median, all subjects"),
        Patch(color="#009E73", alpha=0.3, label="Reference range (female where ranges differ by sex)"),
        Line2D([], [], color="#009E73", lw=0.9, ls="--", label="Male range limits"),
    ]
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=2)
    return fig


# ----------------------------------------------------------------------------------------------------
# 9. B12, MCV and haemoglobin in the B12-deficient subjects
# ----------------------------------------------------------------------------------------------------
def b12_haematology_figure(
    labs: pd.DataFrame,
    residual: Mapping[str, bool],
    tests: Mapping[str, LabTest],
    thresholds: Mapping[str, Sequence[tuple[float, str]]],
    style: Style,
    note: str = "",
    *,
    codes: Sequence[str],
    weeks: Sequence[int],
    off_treatment: tuple[int, int] | None = None,
) -> Figure:
    """Serum B12, MCV and haemoglobin by visit in the B12-deficient subjects, one line per subject, the
    residual subgroup (prior B12 therapy, adequate B12 at baseline) in a second colour and line style.
    labs: subject_id, param, week, aval of the tests `codes` (B12, MCV, haemoglobin: config b12_status.test and
    reporting.b12_haematology); thresholds: per code (value, label) lines; weeks: of the clinic visits."""
    codes = [c for c in codes if c in tests]
    fig = Figure(figsize=(8.4, 3.6), layout="constrained")
    axes = fig.subplots(1, len(codes), squeeze=False)[0]
    groups = ((False, "Not residual (deficient at baseline)"), (True, "Residual subgroup (adequate at baseline)"))
    flags = labs["subject_id"].map(residual).fillna(False).astype(bool)
    # Beyond a few dozen subjects per panel, markers on every visit merge into bars and hide the lines:
    # draw thinner, lighter lines only (the legend keeps the marker so the groups still read in greyscale).
    crowded = labs["subject_id"].nunique() > 60
    for ax, code in zip(axes, codes, strict=True):
        part = labs[labs["param"] == code]
        for k, (flag, _) in enumerate(groups):
            lines = _subject_segments(part[flags[part.index] == flag], "week", "aval")
            ax.add_collection(
                LineCollection(
                    lines,
                    colors=style.colour(k),
                    linewidths=0.6 if crowded else 0.9,
                    linestyles=LINESTYLES[k],
                    alpha=0.45 if crowded else 0.75,
                )
            )
            if lines and not crowded:
                points = np.concatenate(lines)
                ax.scatter(points[:, 0], points[:, 1], s=9, marker=MARKERS[k], color=style.colour(k), zorder=3)
        for value, text in thresholds.get(code, ()):
            ax.axhline(value, color="black", lw=0.8, ls=":")
            _right_margin_label(ax, text, value, 7)
        ax.set_title(unit_text(tests[code].title), fontsize=9)
        _week_axis(ax, weeks, label="Week")
        shade_off_treatment(ax, off_treatment)
        ax.set_xlabel("Week")
        ax.autoscale_view(scalex=False)
    handles = [
        Line2D([], [], color=style.colour(k), ls=LINESTYLES[k], marker=MARKERS[k], label=text)
        for k, (_, text) in enumerate(groups)
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=2)
    _title(fig, "B12-deficient subjects: serum B12, MCV and haemoglobin", note)
    return fig


# ----------------------------------------------------------------------------------------------------
# 10. eDISH
# ----------------------------------------------------------------------------------------------------
def edish_figure(edish: pd.DataFrame, alt_column: str, tbil_column: str, style: Style, rasterize_above: int) -> Figure:
    """eDISH: peak ALT / ULN (x, log) against peak total bilirubin / ULN (y, log) on treatment, one point per
    subject; reference lines at 3 x ULN (ALT) and 2 x ULN (bilirubin). Every subject is drawn (the quadrant
    of possible Hy's law cases must not be sampled away); large point clouds are rasterised in the SVG."""
    data = edish[[alt_column, tbil_column]].apply(pd.to_numeric, errors="coerce").dropna()
    data = data[(data[alt_column] > 0) & (data[tbil_column] > 0)].sort_values([alt_column, tbil_column])
    fig = Figure(figsize=(5.8, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    # A marker-only line rather than a scatter collection: Agg stamps identical markers far faster, which
    # matters with 100,000 subjects.
    # Hollow rings read well for a few hundred subjects; beyond that they merge into a solid blob, so small
    # translucent dots show where subjects concentrate (and outliers still stand out).
    crowded = len(data) > rasterize_above
    ax.plot(
        data[alt_column],
        data[tbil_column],
        linestyle="none",
        marker="o",
        markersize=1.6 if crowded else 3.8,
        markerfacecolor=style.colour(0) if crowded else "none",
        markeredgecolor=style.colour(0),
        markeredgewidth=0 if crowded else 0.9,
        alpha=0.25 if crowded else 1.0,
        rasterized=crowded,
    )
    xmax = max(10.0, float(data[alt_column].max()) * 1.5) if len(data) else 10.0
    ymax = max(10.0, float(data[tbil_column].max()) * 1.5) if len(data) else 10.0
    xmin = min(0.1, float(data[alt_column].min()) / 1.5) if len(data) else 0.1
    ymin = min(0.1, float(data[tbil_column].min()) / 1.5) if len(data) else 0.1
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.axvline(3, color="black", lw=0.9, ls="--")
    ax.axhline(2, color="black", lw=0.9, ls="--")
    label_style = {"fontsize": 7.5, "color": "#333333"}
    ax.text(xmax / 1.1, ymax / 1.1, "Possible Hy's law", ha="right", va="top", **label_style)
    ax.text(xmin * 1.1, ymax / 1.1, "Hyperbilirubinaemia", ha="left", va="top", **label_style)
    ax.text(xmax / 1.1, ymin * 1.1, "Temple's corollary", ha="right", va="bottom", **label_style)
    ax.text(xmin * 1.1, ymin * 1.1, "Normal range", ha="left", va="bottom", **label_style)
    ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 3, 5, 10, 20, 50, 100) if xmin <= t <= xmax]
    ax.set_xticks(ticks, [format_number(t, 1 if t < 1 else 0) for t in ticks])
    yticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100) if ymin <= t <= ymax]
    ax.set_yticks(yticks, [format_number(t, 1 if t < 1 else 0) for t in yticks])
    ax.minorticks_off()
    ax.set_xlabel("Peak ALT on treatment (\u00d7 ULN, log scale)")
    ax.set_ylabel("Peak total bilirubin on treatment (\u00d7 ULN, log scale)")
    _title(fig, f"eDISH: drug-induced serious hepatotoxicity screen (n = {len(data):,})")
    return fig


# ----------------------------------------------------------------------------------------------------
# All figures from the analysis tables
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FigureSettings:
    """What the figures need besides data: style, the step seed, config thresholds and tests, the labels, the
    figures of the registry (names in order and the drawing process of each), lab standards."""

    style: Style
    seed: int
    labels: Labels
    b12_test: str
    b12_deficient_below: float
    b12_adequate_from: float
    haematology_tests: tuple[str, str]  # (MCV, haemoglobin): config reporting.b12_haematology
    standards: Mapping[str, Mapping[str, object]]
    figures: tuple[tuple[str, int], ...]  # (name, drawing process 1 or 2) in registry order
    #: dataset.yaml says simulated: every figure carries SIMULATED_MARK
    simulated: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.figures)

    def drawn_by(self, process: int) -> tuple[str, ...]:
        return tuple(name for name, p in self.figures if p == process)


def draw_all(
    data: Mapping[str, pd.DataFrame], settings: FigureSettings, names: Collection[str] | None = None
) -> Iterator[tuple[str, Figure]]:
    """Yield (name, figure) for every figure of the registry (or only those in `names`), in registry order; each
    carries SIMULATED_MARK when `settings.simulated`. Raises ConfigError for a registry figure without a builder.

    data: subjects, vas, assignment, participant_flow, weekly, paired_tests, responders, labs, lab_descriptives,
    edish (artifacts of k2trial.core.schema). Per-subject layers use one seeded sample of the efficacy set
    (`sample_subjects`), the same sample in every figure.
    """
    wanted = set(settings.names if names is None else names)
    builders = dict(_figure_builders(data, settings))
    unknown = [name for name in settings.names if name not in builders]
    if unknown:
        raise ConfigError(f"registry figures without a builder in k2trial.report.figures: {unknown}")
    for name in settings.names:
        if name in wanted:
            fig = builders[name]()
            if settings.simulated:
                mark_simulated(fig)
            yield name, fig


def _figure_builders(
    data: Mapping[str, pd.DataFrame], settings: FigureSettings
) -> Iterator[tuple[str, Callable[[], Figure]]]:
    """(name, function drawing the figure) of every figure this module draws. Each function reads only the inputs
    its figure needs, when called, so a job that draws some of the figures needs only their inputs (rules
    make_figures, make_lab_figures and make_efficacy_figures); the subject sample, from `subjects`, is the same in
    every job."""
    style = settings.style
    labels = settings.labels
    vocabulary = labels.vocabulary
    final = vocabulary.end_of_treatment.code

    @functools.cache
    def efficacy_sample() -> tuple[pd.Series, list[str], str, set[str]]:
        subjects = data["subjects"]
        efficacy_ids = subjects.loc[as_bool(subjects["efffl"]), "subject_id"]
        sample = sample_subjects(efficacy_ids, style.max_subjects, settings.seed)
        return efficacy_ids, sample, sample_note(len(sample), len(efficacy_ids), settings.seed), set(sample)

    def composite() -> pd.DataFrame:
        """The primary VAS (the composite; a single-item study's item)."""
        vas = data["vas"]
        return vas[vas["param"] == vocabulary.primary_param]

    yield "participant_flow", lambda: participant_flow_figure(data["participant_flow"])

    def composite_trajectories() -> Figure:
        efficacy_ids, _, note, sample_set = efficacy_sample()
        assignment = data["assignment"]
        groups = assignment[["subject_id", "severity_group"]]
        values = composite()
        shown = values[values["subject_id"].isin(sample_set)].merge(groups, on="subject_id", how="left")
        weekly = data["weekly"]
        weekly_composite = weekly[weekly["param"] == vocabulary.primary_param]
        in_efficacy = assignment["subject_id"].isin(set(efficacy_ids))
        sizes = assignment.loc[in_efficacy, "severity_group"].value_counts().to_dict()
        return composite_trajectories_figure(shown, weekly_composite, SEVERITY_GROUPS, labels, style, note, sizes)

    yield "composite_trajectories", composite_trajectories

    def symptoms_by_visit() -> Figure:
        efficacy_ids, sample, note, _ = efficacy_sample()
        vas = data["vas"]
        clinic = vas[vas["visit"].isin(vocabulary.clinic_visit_codes) & vas["subject_id"].isin(set(efficacy_ids))]
        return symptoms_by_visit_figure(clinic, sample, settings.seed, labels, style, note)

    yield "symptoms_by_visit", symptoms_by_visit

    def vas_heatmap() -> Figure:
        efficacy_ids = efficacy_sample()[0]
        weekly = data["weekly"]
        return vas_heatmap_figure(weekly[weekly["population"] == EFFICACY_SET], len(efficacy_ids), labels)

    yield "vas_heatmap", vas_heatmap

    def waterfall_week8() -> Figure:
        _, _, note, sample_set = efficacy_sample()
        values = composite()
        at_end = values[(values["visit"] == final) & values["subject_id"].isin(sample_set)]
        subjects = data["subjects"]
        at_end = at_end[["subject_id", "pchg"]].merge(subjects[["subject_id", "etiology"]], on="subject_id", how="left")
        return waterfall_figure(at_end, labels, style, note)

    yield "waterfall_week8", waterfall_week8

    def forest_hl_change() -> Figure:
        paired = data["paired_tests"]
        paired = paired[
            (paired["test"] == "wilcoxon") & (paired["visit_from"] == BASELINE) & (paired["visit_to"] == final)
        ].drop_duplicates(["population", "param"])
        return forest_figure(paired, vocabulary.populations, labels)

    yield "forest_hl_change", forest_hl_change

    def responder_rates() -> Figure:
        responders = data["responders"]
        titles = {
            code: criterion_label(code, threshold, unit)
            for code, threshold, unit in responders.reindex(columns=["criterion", "threshold", "unit"]).itertuples(
                index=False
            )
        }
        criteria = list(titles.items())
        return responders_figure(responders, criteria, (EFFICACY_SET, *SEVERITY_GROUPS), labels, style)

    yield "responder_rates", responder_rates

    def lab_trajectories() -> Figure:
        _, _, note, sample_set = efficacy_sample()
        labs = data["labs"]
        medians = data["lab_descriptives"][["param", "week", "median"]]
        lab_sample = labs[labs["subject_id"].isin(sample_set)]
        return lab_trajectories_figure(
            lab_sample,
            medians,
            vocabulary.tests,
            settings.standards,
            style,
            note,
            weeks=vocabulary.clinic_weeks,
            off_treatment=off_treatment_period(vocabulary),
        )

    yield "lab_trajectories", lab_trajectories

    def b12_haematology() -> Figure:
        labs, assignment = data["labs"], data["assignment"]
        b12, mcv, haemoglobin = settings.b12_test, *settings.haematology_tests
        deficient = assignment.loc[as_bool(assignment["b12_deficient"]), "subject_id"]
        deficient_sample = set(sample_subjects(deficient, style.max_subjects, settings.seed))
        haem = labs[labs["param"].isin([b12, mcv, haemoglobin]) & labs["subject_id"].isin(deficient_sample)]
        residual = dict(zip(assignment["subject_id"], as_bool(assignment["residual_b12"]), strict=True))
        hgb_range = reference_band(settings.standards.get(haemoglobin, {}))
        mcv_range = reference_band(settings.standards.get(mcv, {}))[0]
        thresholds = {
            b12: [
                (settings.b12_deficient_below, f"deficient < {settings.b12_deficient_below:g}"),
                (settings.b12_adequate_from, f"adequate \u2265 {settings.b12_adequate_from:g}"),
            ],
            mcv: [(mcv_range[1], f"macrocytosis > {mcv_range[1]:g}")] if mcv_range else [],
            haemoglobin: [
                (band[0], f"{sex} anaemia < {band[0]:g}") for sex, band in zip(SEXES, hgb_range, strict=True) if band
            ],
        }
        b12_note = sample_note(len(deficient_sample), len(deficient), settings.seed)
        return b12_haematology_figure(
            haem, residual, vocabulary.tests, thresholds, style, b12_note, codes=(b12, mcv, haemoglobin),
            weeks=vocabulary.clinic_weeks, off_treatment=off_treatment_period(vocabulary),
        )  # fmt: skip

    yield "b12_haematology", b12_haematology

    edish_threshold = 5 * style.max_subjects
    yield "edish", lambda: edish_figure(data["edish"], "peak_alt_xuln", "peak_tbil_xuln", style, edish_threshold)


def save_all(
    data: Mapping[str, pd.DataFrame],
    settings: FigureSettings,
    save: Callable[[str, dict[str, bytes]], None],
    processes: int = 1,
    formats: Sequence[str] = ("png", "svg"),
) -> None:
    """Draw every figure and hand `save(name, {format: bytes})` its rendered bytes.

    With processes >= 2 (and os.fork available) a forked child draws the figures of drawing process 2 while this
    process draws those of process 1 (workflow/report/registry.yaml `process`): drawing is CPU-bound pure
    Python, so two processes halve the wall time, and the fork shares the loaded data without copying or
    re-reading it. Every figure depends only on the data and
    settings, never on which process draws it or in what order, so the bytes are the same either way.
    Raises RuntimeError when the child fails (its traceback goes to the log of logger "k2trial").
    """
    import os

    def work(names: Collection[str]) -> None:
        for name, fig in draw_all(data, settings, names):
            save(name, render_figure(fig, settings.style.dpi, formats))

    if processes < 2 or not hasattr(os, "fork"):
        work(settings.names)
        return
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child, reported through its exit status
        status = 1
        try:
            work(settings.drawn_by(2))
            status = 0
        except BaseException:
            import logging

            logging.getLogger("k2trial").exception("drawing figures %s failed", ", ".join(settings.drawn_by(2)))
        finally:
            os._exit(status)
    try:
        work(settings.drawn_by(1))
    finally:
        _, status = os.waitpid(child, 0)
    if status != 0:
        raise RuntimeError(f"the process drawing {', '.join(settings.drawn_by(2))} failed (exit status {status})")
