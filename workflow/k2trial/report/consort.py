"""The CONSORT flow diagram, drawn from the rows of k2trial.analysis.consort.consort_flow (it counts nothing).

Layout as CONSORT 2010's template: enrolment at the top (assessed for eligibility, excluded with reasons, when the
dataset declares them; then randomised, or enrolled in a single-arm study), then one column per arm with its
allocation, follow-up (discontinued, with reasons) and analysis boxes. Section names sit at the left margin.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from k2trial.analysis.consort import SINGLE_ARM
from k2trial.report.figures import Style

#: Per-arm boxes, top to bottom: (section, stages shown in the box, the stage whose reasons are listed).
ARM_BOXES = (
    ("Allocation", ("allocated", "received", "received_other", "not_received"), None),
    ("Follow-up", ("discontinued",), "discontinued"),
    ("Analysis", ("analysed", "excluded_from_analysis"), None),
)
BOX_HEIGHT = 1.0
GAP = 0.45


def _box_text(rows: pd.DataFrame, stages: tuple[str, ...], reasons_of: str | None) -> str:
    lines = []
    for stage in stages:
        match = rows[rows["stage"] == stage]
        if len(match):
            row = match.iloc[0]
            lines.append(f"{row['label']} (n = {int(row['n']):,})")
            if stage == reasons_of:
                for _, reason in rows[rows["stage"] == f"{stage}_reason"].iterrows():
                    lines.append(f"   {reason['reason']} (n = {int(reason['n']):,})")
    return "\n".join(lines)


def _box(ax, x: float, y: float, width: float, height: float, text: str, edge: str) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            boxstyle="round,pad=0.02",
            facecolor="#f6f8fb",
            edgecolor=edge,
            linewidth=1.0,
        )  # fmt: skip
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=7.5, linespacing=1.35)


def _arrow(ax, x0: float, y0: float, x1: float, y1: float) -> None:
    ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops={"arrowstyle": "-|>", "lw": 0.9, "color": "#333333"})


def consort_figure(flow: pd.DataFrame, arm_order: tuple[str, ...], style: Style, title: str) -> Figure:
    """The diagram of one flow (FLOW_COLUMNS). arm_order: the arms in report order (SINGLE_ARM alone when the
    study has one arm). Box heights follow the number of lines they hold, so every reason is shown."""
    top = flow[flow["arm"] == SINGLE_ARM]
    arms = [a for a in arm_order if a != SINGLE_ARM] or [SINGLE_ARM]
    arm_rows = {a: flow[flow["arm"] == a] for a in arms}
    heights: list[float] = []
    for _, stages, reasons_of in ARM_BOXES:
        lines = max(_box_text(rows, stages, reasons_of).count("\n") + 1 for rows in arm_rows.values())
        heights.append(max(BOX_HEIGHT, 0.28 * lines + 0.3))
    enrolment = [s for s in ("assessed", "enrolled", "randomised") if (top["stage"] == s).any()]
    total = len(enrolment) * (BOX_HEIGHT + GAP) + sum(h + GAP for h in heights)
    # room for the exclusions box right of the enrolment column when screening is declared
    width = max(9.4 if (top["stage"] == "assessed").any() else 6.0, 3.2 * len(arms) + 1.6)
    fig = Figure(figsize=(width, 0.62 * total + 0.8), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_xlim(0, width)
    ax.set_ylim(-total, 0.3)
    centre = (width + 1.2) / 2
    y = -BOX_HEIGHT / 2
    previous: float | None = None
    for stage in enrolment:
        row = top[top["stage"] == stage].iloc[0]
        _box(ax, centre, y, 2.6, BOX_HEIGHT * 0.8, f"{row['label']} (n = {int(row['n']):,})", "#333333")
        if previous is not None:
            _arrow(ax, centre, previous - BOX_HEIGHT * 0.4, centre, y + BOX_HEIGHT * 0.4)
        if stage == "assessed":
            excluded = top[top["stage"] == "excluded"]
            if len(excluded):
                text = _box_text(top, ("excluded",), None)
                reasons = top[top["stage"] == "excluded_reason"]
                text += "".join(
                    f"\n   {r} (n = {int(n):,})" for r, n in zip(reasons["reason"], reasons["n"], strict=True)
                )
                side_y = y - (BOX_HEIGHT + GAP) / 2
                _box(ax, centre + 2.8, side_y, 2.4, BOX_HEIGHT * 0.8, text, "#7f7f7f")
                _arrow(ax, centre, side_y, centre + 1.6, side_y)
        previous = y
        y -= BOX_HEIGHT + GAP
    if enrolment:
        ax.text(0.1, -len(enrolment) * (BOX_HEIGHT + GAP) / 2, "Enrolment", ha="left", va="center", fontsize=8.5,
                fontweight="bold", rotation=90)  # fmt: skip
    column = {a: 1.2 + (i + 0.5) * (width - 1.2) / len(arms) for i, a in enumerate(arms)}
    box_width = min(3.0, (width - 1.2) / len(arms) - 0.2)
    y += BOX_HEIGHT / 2
    for (section, stages, reasons_of), height in zip(ARM_BOXES, heights, strict=True):
        middle = y - height / 2
        ax.text(0.1, middle, section, ha="left", va="center", fontsize=8.5, fontweight="bold", rotation=90)
        for i, arm in enumerate(arms):
            _box(
                ax,
                column[arm],
                middle,
                box_width,
                height,
                _box_text(arm_rows[arm], stages, reasons_of),
                style.colour(i),
            )
            if previous is not None:
                start_x = centre if section == "Allocation" else column[arm]
                start_y = previous - (BOX_HEIGHT * 0.4 if section == "Allocation" else 0)
                _arrow(ax, start_x, start_y, column[arm], y)
        previous = middle - height / 2
        y -= height + GAP
    fig.suptitle(title, x=0.01, ha="left", fontsize=9.5)
    return fig
