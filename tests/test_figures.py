"""Figures: byte-identical reruns, no metadata dates or versions, seeded samples that say so, greyscale-safe palette."""

from __future__ import annotations

import dataclasses
import re
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, shipped_vocabulary

from k2trial.core.io import read_yaml
from k2trial.report import figures as kf
from k2trial.report.page import png_display_width

STYLE = kf.Style(dpi=100, max_subjects=50)
kf.apply_style(STYLE)
VOCABULARY = shipped_vocabulary()
LABELS = kf.Labels(VOCABULARY, 8.0)
REGISTRY = read_yaml(ROOT / "workflow/report/registry.yaml")
# the figures of k2trial.report.figures; those of a randomised study (registry `randomised`): tests/test_study_family.py
FIGURES = tuple((entry["name"], int(entry["process"])) for entry in REGISTRY["figures"] if not entry.get("randomised"))
NAMES = tuple(name for name, _ in FIGURES)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, position = [], 8
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        chunks.append((data[position + 4 : position + 8], data[position + 8 : position + 8 + length]))
        position += 12 + length
    return chunks


def composite_frame(n_subjects: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = [f"K2-{i:03d}" for i in range(1, n_subjects + 1)]
    weeks = np.arange(9)
    base = rng.uniform(6, 9, n_subjects)
    aval = np.round(base[:, None] - (base[:, None] - 1.5) * weeks[None, :] / 8 + rng.normal(0, 0.2, (n_subjects, 9)), 1)
    return pd.DataFrame(
        {
            "subject_id": np.repeat(ids, 9),
            "week": np.tile(weeks, n_subjects),
            "aval": aval.ravel(),
            "severity_group": np.repeat(np.where(base >= 8, "severe", "moderate"), 9),
        }
    )


def weekly_from(frame: pd.DataFrame) -> pd.DataFrame:
    grouped = frame.groupby(["severity_group", "week"])["aval"]
    out = grouped.median().rename("median").to_frame()
    out["q1"] = grouped.quantile(0.25)
    out["q3"] = grouped.quantile(0.75)
    return out.reset_index().rename(columns={"severity_group": "population"})


def trajectories(n_subjects: int, max_subjects: int = 50, seed: int = 7):
    frame = composite_frame(n_subjects)
    sample = kf.sample_subjects(frame["subject_id"], max_subjects, seed)
    note = kf.sample_note(len(sample), n_subjects, seed)
    shown = frame[frame["subject_id"].isin(sample)]
    return kf.composite_trajectories_figure(shown, weekly_from(frame), ("moderate", "severe"), LABELS, STYLE, note)


# ------------------------------------------------------------------------------------------- sampling
def test_sample_keeps_everyone_when_few_in_subject_order():
    ids = ["K2-010", "K2-002", "K2-100", "K2-002"]
    assert kf.sample_subjects(ids, 10, seed=1) == ["K2-002", "K2-010", "K2-100"]


def test_sample_is_seeded_sorted_and_a_subset():
    ids = [f"K2-{i:03d}" for i in range(1, 1001)]
    first = kf.sample_subjects(ids, 50, seed=3)
    assert first == kf.sample_subjects(list(reversed(ids)), 50, seed=3)  # input order does not matter
    assert len(first) == 50 and len(set(first)) == 50 and set(first) <= set(ids)
    assert first == sorted(first, key=lambda s: int(s[3:]))
    assert first != kf.sample_subjects(ids, 50, seed=4)


def test_sample_note_only_when_sampled():
    assert kf.sample_note(30, 30, 5) == ""
    assert kf.sample_note(200, 100000, 5) == (
        "Per-subject layer: random sample of 200 of 100,000 subjects (seed 5); summaries use all."
    )


def test_step_seed_is_stable_and_step_specific():
    assert kf.step_seed(20131001, "make_figures") == kf.step_seed(20131001, "make_figures")
    assert kf.step_seed(20131001, "make_figures") != kf.step_seed(20131001, "make_tables")
    assert 0 <= kf.step_seed(1, "x") < 2**32


def test_large_study_draws_a_sample_and_says_so():
    fig = trajectories(1000, max_subjects=50)
    lines = sum(len(c.get_segments()) for ax in fig.axes for c in ax.collections if hasattr(c, "get_segments"))
    assert lines == 50
    assert "random sample of 50 of 1,000 subjects" in fig.get_suptitle()


def test_small_study_draws_every_subject():
    fig = trajectories(30, max_subjects=50)
    lines = sum(len(c.get_segments()) for ax in fig.axes for c in ax.collections if hasattr(c, "get_segments"))
    assert lines == 30
    assert "sample" not in fig.get_suptitle()


# ------------------------------------------------------------------------------------------- determinism
def test_same_figure_twice_gives_identical_png_and_svg():
    first = kf.render_figure(trajectories(40), STYLE.dpi)
    second = kf.render_figure(trajectories(40), STYLE.dpi)
    assert first["png"] == second["png"]
    assert first["svg"] == second["svg"]


def test_saved_files_carry_no_date_software_or_version():
    rendered = kf.render_figure(trajectories(20), 200)
    svg = rendered["svg"].decode("utf-8")
    assert "<dc:date>" not in svg and "Matplotlib v" not in svg and "matplotlib.org" not in svg
    chunks = png_chunks(rendered["png"])
    text = b"".join(body for kind, body in chunks if kind in (b"tEXt", b"iTXt", b"zTXt"))
    assert b"Software" not in text and b"matplotlib" not in text.lower()
    kinds = [kind for kind, _ in chunks]
    assert b"tIME" not in kinds  # no modification time
    assert png_display_width(rendered["png"]) == round(8.0 * 96)  # 8 inch figure at 200 dpi shows at 768 px
    # the IDAT stream really is a 200 dpi rendering of an 8 inch wide figure
    width = int.from_bytes(rendered["png"][16:20], "big")
    assert width == 1600
    assert zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))


def test_svg_ids_do_not_change_between_runs():
    ids_first = re.findall(r'id="([^"]+)"', kf.render_figure(trajectories(10), 100)["svg"].decode())
    ids_second = re.findall(r'id="([^"]+)"', kf.render_figure(trajectories(10), 100)["svg"].decode())
    assert ids_first and ids_first == ids_second


# ------------------------------------------------------------------------------------------- readability
def relative_luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_first_two_palette_colours_differ_in_greyscale():
    # the two severity groups and the two B12 subgroups use colours 0 and 1; they must differ in lightness too
    first, second = (relative_luminance(c) for c in kf.OKABE_ITO[:2])
    assert abs(first - second) > 0.2
    # and they are also told apart by marker and line style
    assert kf.MARKERS[0] != kf.MARKERS[1] and kf.LINESTYLES[0] != kf.LINESTYLES[1]


def test_reference_band_by_sex_and_common():
    assert kf.reference_band({"range": {"F": [12.0, 15.5], "M": [13.0, 17.0]}}) == ((12.0, 15.5), (13.0, 17.0))
    assert kf.reference_band({"range": [7.0, 40.0]}) == ((7.0, 40.0), None)
    assert kf.reference_band({}) == (None, None)


def test_units_are_typeset():
    assert kf.unit_text("White blood cells (10^9/L)") == "White blood cells (10$^9$/L)"


def test_edish_draws_every_subject_and_rasterises_large_clouds():
    rng = np.random.default_rng(2)
    edish = pd.DataFrame({"peak_alt_xuln": rng.uniform(0.2, 5, 3000), "peak_tbil_xuln": rng.uniform(0.1, 3, 3000)})
    fig = kf.edish_figure(edish, "peak_alt_xuln", "peak_tbil_xuln", STYLE, rasterize_above=1000)
    points = fig.axes[0].lines[0]
    assert len(points.get_xdata()) == 3000 and points.get_rasterized()
    small = kf.edish_figure(edish.head(30), "peak_alt_xuln", "peak_tbil_xuln", STYLE, rasterize_above=1000)
    assert not small.axes[0].lines[0].get_rasterized()
    assert "Peak ALT" in fig.axes[0].get_xlabel() and "ULN" in fig.axes[0].get_ylabel()


def test_every_figure_from_small_analysis_tables(tmp_path):
    data, settings = small_study()
    names = []
    drawn = {}
    for name, fig in kf.draw_all(data, settings):
        names.append(name)
        drawn[name] = fig
        rendered = kf.render_figure(fig, settings.style.dpi)
        assert rendered["png"].startswith(b"\x89PNG") and rendered["svg"].startswith(b"<?xml")
        for ax in fig.axes:
            if ax.get_visible() and ax.axison and ax.get_ylabel():
                assert "(" in ax.get_ylabel(), f"{name}: y label without unit: {ax.get_ylabel()!r}"
    assert tuple(names) == NAMES  # every figure of the registry, in its order

    # The forest plot shows each population's estimate and CI of paired_tests.csv, one row per param (composite
    # at the bottom): the estimates were set to -5 - 0.1 x (param index) - population index, CI +/- 0.5.
    forest = drawn["forest_hl_change"]
    params = VOCABULARY.params
    for k, population in enumerate(VOCABULARY.populations):
        ax = forest.axes[k]
        assert ax.get_title().startswith(LABELS.population(population))
        markers = [line for line in ax.lines if len(line.get_xdata()) == 1]
        intervals = [
            line for line in ax.lines if len(line.get_xdata()) == 2 and line.get_ydata()[0] == line.get_ydata()[1]
        ]
        for i in range(len(params)):
            y = len(params) - 1 - i
            expected = -5.0 - 0.1 * i - k
            (point,) = [m for m in markers if m.get_ydata()[0] == y]
            assert point.get_xdata()[0] == pytest.approx(expected)
            (interval,) = [line for line in intervals if line.get_ydata()[0] == y]
            assert list(interval.get_xdata()) == pytest.approx([expected - 0.5, expected + 0.5])
        assert list(ax.get_yticks()) == list(range(len(params)))[::-1]
    shown = [t.get_text() for t in forest.axes[0].get_yticklabels()]  # inner panels share the first's labels
    assert shown == [VOCABULARY.param_label(p, short=True) for p in params]

    # The trajectories: one thin line per efficacy-set subject of the group with that subject's composite by week,
    # and the group's median line from weekly.csv.
    trajectories = drawn["composite_trajectories"]
    vas, assignment, weekly = data["vas"], data["assignment"], data["weekly"]
    efficacy = set(data["subjects"].loc[data["subjects"]["efffl"], "subject_id"])
    for ax, group in zip(trajectories.axes, ("moderate", "severe"), strict=True):
        members = [s for s in assignment.loc[assignment["severity_group"] == group, "subject_id"] if s in efficacy]
        (subject_lines,) = [c for c in ax.collections if hasattr(c, "get_segments")]
        segments = subject_lines.get_segments()
        assert len(segments) == len(members)
        for subject, segment in zip(members, segments, strict=True):  # subjects in ID order
            rows = vas[(vas["subject_id"] == subject) & (vas["param"] == "composite")].sort_values("week")
            assert segment.tolist() == rows[["week", "aval"]].to_numpy(dtype=float).tolist()
        median = weekly[(weekly["population"] == group) & (weekly["param"] == "composite")].sort_values("week")
        (median_line,) = [line for line in ax.lines if len(line.get_xdata()) == len(median)]
        assert list(median_line.get_ydata()) == median["median"].tolist()
        assert list(median_line.get_xdata()) == median["week"].tolist()


def _text_boxes(fig):
    """(text, window bbox) of every visible, non-empty text artist of a drawn figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    found = []
    for artist in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent")):
        if artist.get_visible() and str(artist.get_text()).strip():
            found.append((artist, artist.get_window_extent(renderer)))
    return found


def test_simulated_figures_carry_the_mark_where_it_covers_no_other_text(tmp_path):
    data, settings = small_study()
    settings = dataclasses.replace(settings, simulated=True)
    for name, fig in kf.draw_all(data, settings):
        rendered = kf.render_figure(fig, 100)
        # the mark is text in the SVG: searchable and readable without rendering
        assert rendered["svg"].count(b"SIMULATED DATA") == 1, name
        boxes = _text_boxes(fig)
        marks = [box for artist, box in boxes if artist.get_text() == kf.SIMULATED_MARK]
        assert len(marks) == 1, name
        mark = marks[0]
        width, height = fig.bbox.width, fig.bbox.height
        # inside the figure, in its top-right corner
        assert mark.x1 <= width + 0.5 and mark.y1 <= height + 0.5 and mark.x0 > width / 2 and mark.y0 > height * 0.8
        for artist, box in boxes:
            if artist.get_text() != kf.SIMULATED_MARK:
                assert not mark.overlaps(box), f"{name}: mark covers {artist.get_text()!r}"
        for ax in fig.axes:
            if ax.get_visible() and ax.axison:
                assert not mark.overlaps(ax.bbox), f"{name}: mark covers a plot area"


def test_figures_of_trial_data_carry_no_mark():
    data, settings = small_study()
    assert not settings.simulated
    for name, fig in kf.draw_all(data, settings):
        assert b"SIMULATED" not in kf.figure_bytes(fig, "svg", 100), name


def test_two_processes_save_the_same_bytes_as_one():
    data, settings = small_study()
    assert sorted(settings.drawn_by(1) + settings.drawn_by(2)) == sorted(NAMES)
    saved = {1: {}, 2: {}}
    for processes in saved:
        # the child's save runs in another process: hand its bytes back through files
        with tempfile.TemporaryDirectory() as folder:

            def save(name, rendered, folder=folder):
                for fmt, content in rendered.items():
                    Path(folder, f"{name}.{fmt}").write_bytes(content)

            kf.save_all(data, settings, save, processes=processes)
            saved[processes] = {p.name: p.read_bytes() for p in Path(folder).iterdir()}
    assert len(saved[1]) == 2 * len(NAMES)
    assert saved[2] == saved[1]


def test_a_failing_figure_process_is_an_error():
    data, settings = small_study()
    broken = {**data, "responders": data["responders"].drop(columns=["criterion"])}  # drawn by the child
    with pytest.raises(RuntimeError, match="responder_rates"):
        kf.save_all(broken, settings, lambda name, rendered: None, processes=2)


def test_every_registry_figure_has_a_builder():
    data, settings = small_study()
    assert set(dict(kf._figure_builders(data, settings))) == set(NAMES)


def small_study():
    """Analysis tables of 12 subjects in the shapes of DATASETS.md and issues 3-4."""
    n = 12
    ids = [f"K2-{i:03d}" for i in range(1, n + 1)]
    rng = np.random.default_rng(0)
    subjects = pd.DataFrame(
        {
            "subject_id": ids,
            "etiology": (["b12_deficiency", "diabetes", "both"] * 4),
            "saffl": True,
            "efffl": [True] * 11 + [False],
        }
    )
    rows = []
    for param in ("tingling", "numbness", "weakness", "fatigue", "cramps", "composite"):
        base = rng.uniform(6, 9, n)
        for week in range(9):
            aval = np.round(base - (base - 1.5) * week / 8, 1)
            rows.append(
                pd.DataFrame(
                    {
                        "subject_id": ids,
                        "param": param,
                        "visit": "baseline" if week == 0 else f"week{week}",
                        "week": week,
                        "aval": aval,
                        "pchg": 100 * (aval - base) / base,
                    }
                )
            )
    vas = pd.concat(rows, ignore_index=True)
    assignment = pd.DataFrame(
        {
            "subject_id": ids,
            "severity_group": ["moderate", "severe"] * 6,
            "b12_deficient": [e != "diabetes" for e in subjects["etiology"]],
            "residual_b12": [True, False, False, False] * 3,
        }
    )
    weekly = (
        vas.merge(assignment, on="subject_id")
        .groupby(["severity_group", "param", "week"])["aval"]
        .median()
        .rename("median")
        .reset_index()
        .rename(columns={"severity_group": "population"})
    )
    weekly_all = vas.groupby(["param", "week"])["aval"].median().rename("median").reset_index().assign(population="all")
    weekly = pd.concat([weekly, weekly_all], ignore_index=True)
    weekly["q1"], weekly["q3"] = weekly["median"] - 0.3, weekly["median"] + 0.3
    paired = pd.DataFrame(
        [
            {"population": pop, "param": p, "visit_from": "baseline", "visit_to": "week8", "test": "wilcoxon", "n": 12}
            | {"estimate": -5.0 - 0.1 * i - k, "ci_low": -5.5 - 0.1 * i - k, "ci_high": -4.5 - 0.1 * i - k}
            for k, pop in enumerate(VOCABULARY.populations)
            for i, p in enumerate(VOCABULARY.params)
        ]
    )
    responders = pd.DataFrame(
        [
            {"population": pop, "param": p, "visit": "week8", "criterion": c, "threshold": t, "unit": u}
            | {"responders": 9, "n": 12, "ci_low": 42.8, "ci_high": 94.5}
            for pop in ("all", "moderate", "severe")
            for p in ("tingling", "numbness", "weakness", "fatigue", "cramps", "composite")
            for c, t, u in (("pct_reduction_ge_30", 30, "percent"), ("point_reduction_ge_2", 2, "cm"))
        ]
    )
    labs = pd.DataFrame(
        [
            {"subject_id": s, "param": code, "week": w, "aval": value + w / 8}
            for s in ids
            for code, value in (("HGB", 12.5), ("MCV", 95.0), ("B12", 250.0))
            for w in (0, 4, 8)
        ]
    )
    lab_descriptives = labs.groupby(["param", "week"])["aval"].median().rename("median").reset_index()
    lab_descriptives["visit"] = lab_descriptives["week"].map({0: "baseline", 4: "week4", 8: "week8"})
    edish = pd.DataFrame({"subject_id": ids, "peak_alt_xuln": 0.5, "peak_tbil_xuln": 0.4})
    standards = {"HGB": {"range": {"F": [12.0, 15.5], "M": [13.0, 17.0]}}, "MCV": {"range": [80.0, 100.0]}}
    settings = kf.FigureSettings(
        style=STYLE,
        seed=11,
        labels=LABELS,
        b12_test="B12",
        b12_deficient_below=200.0,
        b12_adequate_from=300.0,
        haematology_tests=("MCV", "HGB"),
        standards=standards,
        figures=FIGURES,
    )
    flow = pd.DataFrame(
        {"stage": ["enrolled", "treated", "analysed"], "label": ["Enrolled", "Treated", "Analysed"], "n": [12, 12, 11]}
    )
    data = {
        "participant_flow": flow,
        "subjects": subjects,
        "vas": vas,
        "assignment": assignment,
        "weekly": weekly,
        "paired_tests": paired,
        "responders": responders,
        "labs": labs,
        "lab_descriptives": lab_descriptives,
        "edish": edish,
    }
    return data, settings


@pytest.fixture(autouse=True)
def _style():
    kf.apply_style(STYLE)
