"""The gathered outputs of a plan: power table, N per arm, assurance, power curves and the page
"Designing the confirmatory trial".

Pure functions of the cell batches (one CSV per cell job), the scenarios document (scenarios.json) and the planning
configuration; every number on the page is computed here from those, none is typed in. Tables are sorted in the
canonical cell order; figures are drawn with matplotlib's Agg backend with a fixed SVG hash salt and no dates, so
the same inputs give the same bytes.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator, StrMethodFormatter

from k2trial.core.values import rounded_decimal
from k2trial.planning import power as pw
from k2trial.planning.scenarios import Cell, PilotEstimates, PlanningConfig

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
SIMULATED_MARK = "SIMULATED DATA"


def fmt(value: Any, digits: int = 2) -> str:
    """A number rounded half away from zero to `digits` decimals (k2trial.core.values.rounded_decimal, the one
    rounding rule; "-" for missing)."""
    rounded = None if value is None or pd.isna(value) else rounded_decimal(value, digits)
    return "-" if rounded is None else str(rounded)


def fmt_n(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else str(int(value))


# ============================================================================================= figure


def apply_style(salt: str) -> None:
    """Process-wide matplotlib settings of the planning figure (call before drawing)."""
    matplotlib.rcParams.update(
        {
            "svg.hashsalt": salt,
            "svg.fonttype": "none",
            "font.family": "DejaVu Sans",
            "font.size": 8,
            "axes.titlesize": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "path.simplify": True,
        }
    )


def power_curves_figure(
    power: pd.DataFrame, config: PlanningConfig, *, dropout: str, variability: str, simulated: bool
) -> Figure:
    """Simulated power (two-sided; assurance: success probability) against N per arm, one panel per test (rows)
    and placebo scenario (columns), one line per effect scenario, error bars +- 2 MC SE; the ANCOVA's analytic
    power (normal data, baseline imbalance) as thin dotted lines; dashed lines at the target powers."""
    tests = list(config.analysis.tests)
    placebos = [p.name for p in config.placebos]
    effects = [e.name for e in config.effects]
    data = power[(power["dropout"] == dropout) & (power["variability"] == variability)]
    sizes = sorted(config.sample_sizes)
    # About six labelled sizes: the grid's ends and sizes spread evenly on the log scale between them.
    picks = np.unique(np.round(np.linspace(0, len(sizes) - 1, min(len(sizes), 6))).astype(int))
    ticks = [sizes[i] for i in picks]
    fig = Figure(figsize=(max(2.6 * len(placebos) + 1.6, 7.0), 1.9 * len(tests) + 1.1), layout="constrained")
    axes = fig.subplots(len(tests), len(placebos), sharex=True, sharey=True, squeeze=False)
    for i, test in enumerate(tests):
        for j, placebo in enumerate(placebos):
            ax = axes[i][j]
            for target in config.targets:
                ax.axhline(target, color="#999999", linewidth=0.6, linestyle="--", zorder=1)
            for k, effect in enumerate(effects):
                rows = data[(data["test"] == test) & (data["placebo"] == placebo) & (data["effect"] == effect)]
                rows = rows.sort_values("n_control", kind="stable")
                if rows.empty:
                    continue
                prior = float(rows["effect_sd"].iloc[0]) > 0
                y = rows["power_favourable" if prior else "power"].to_numpy(float)
                se = rows["mc_se_favourable" if prior else "mc_se"].to_numpy(float)
                x = rows["n_control"].to_numpy(float)
                colour = OKABE_ITO[k % len(OKABE_ITO)]
                ax.errorbar(
                    x,
                    y,
                    yerr=2 * se,
                    color=colour,
                    marker=MARKERS[k % len(MARKERS)],
                    markersize=3,
                    linewidth=1.0,
                    linestyle="--" if prior else "-",
                    capsize=1.5,
                    elinewidth=0.6,
                    label=effect + (" (assurance)" if prior else ""),
                    zorder=3,
                )
                if test == pw.ANCOVA:
                    analytic = rows["analytic_power"].to_numpy(float)
                    ax.plot(x, analytic, color=colour, linewidth=0.7, linestyle=":", zorder=2)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_ylim(-0.02, 1.02)
            if i == 0:
                ax.set_title(f"placebo: {placebo}")
            if j == 0:
                ax.set_ylabel(f"{test}\npower")
            if i == len(tests) - 1:
                ax.set_xlabel("N per arm (control arm)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3), fontsize=7)
    title = (
        f"Simulated power by N per arm ({dropout}, {variability})\n"
        "error bars +-2 MC SE; dotted: analytic ANCOVA power (normal, unclipped data); dashed grey: target powers"
    )
    fig.suptitle(title, x=0.01, ha="left", fontsize=8.5)
    if simulated:
        fig.text(
            0.995,
            0.995,
            SIMULATED_MARK,
            ha="right",
            va="top",
            fontsize=8,
            fontweight="bold",
            color="#8b0000",
            bbox={"boxstyle": "square,pad=0.25", "facecolor": "white", "edgecolor": "#8b0000"},
        )
    return fig


def figure_bytes(fig: Figure, fmt_name: str, dpi: int, salt: str) -> bytes:
    """PNG or SVG bytes with no date or software inside (ids fixed by the svg.hashsalt). The first call solves the
    constrained layout and freezes it, so every later rendering of the figure uses the same layout."""
    matplotlib.rcParams["svg.hashsalt"] = salt
    metadata = {"png": {"Software": None}, "svg": {"Creator": None, "Date": None, "Format": None, "Type": None}}
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt_name, dpi=dpi, metadata=metadata[fmt_name], facecolor="white")
    fig.set_layout_engine("none")
    return buffer.getvalue()


def inline_svg(svg: bytes) -> str:
    """SVG bytes as markup to place inside an HTML page (without the XML declaration and DOCTYPE)."""
    text = svg.decode("utf-8")
    start = text.find("<svg")
    return text[start:].strip() if start >= 0 else text


# =============================================================================================== page

PAGE_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0;color:#111;background:#fff;
line-height:1.45}main{max-width:1150px;margin:0 auto;padding:1rem 1.5rem 3rem}h1{font-size:1.7rem}
h2{font-size:1.3rem;margin-top:2rem;border-bottom:1px solid #ddd}
.banner-simulated{background:#fff3cd;border:3px solid #8a6d00;color:#3d3000;padding:.7rem 1rem;font-weight:700;
font-size:1.1rem;margin:.5rem 0 1rem 0}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}caption{text-align:left;font-weight:700;padding:.3rem 0}
th,td{border-bottom:1px solid #ccc;padding:.2rem .5rem;text-align:left;vertical-align:top}
thead th{border-bottom:2px solid #333;background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
p.note{font-size:.85rem;color:#333}li{margin:.2rem 0}figure{margin:1rem 0}figure svg{max-width:100%;height:auto}
""".strip()


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _table(caption: str, header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[bool]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_e(c)}</td>' if num else f"<td>{_e(c)}</td>" for c, num in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pick(sizes: pd.DataFrame, **where: Any) -> pd.Series | None:
    rows = sizes
    for key, value in where.items():
        rows = rows[rows[key] == value]
    return rows.iloc[0] if len(rows) else None


def _n_text(row: pd.Series | None) -> str:
    """'N (interpolated M)' for a sample-size row, or the reason there is none."""
    if row is None:
        return "-"
    if pd.isna(row["n_control_grid"]):
        return "not reached"
    text = str(int(row["n_control_grid"]))
    if not pd.isna(row["n_control_interpolated"]) and int(row["n_control_interpolated"]) != int(row["n_control_grid"]):
        text += f" (~{int(row['n_control_interpolated'])})"
    if pd.isna(row["n_control_interpolated"]) and row["note"].startswith("reached at the smallest"):
        text = f"<= {text}"
    return text


def _ratio(a: Any, b: Any) -> str:
    if a is None or b is None or pd.isna(a) or pd.isna(b) or float(b) == 0:
        return "-"
    return fmt(float(a) / float(b), 2)


def _drivers(
    config: PlanningConfig,
    pilot: PilotEstimates,
    sizes: pd.DataFrame,
    power: pd.DataFrame,
    cells: Sequence[Cell],
) -> list[str]:
    """Sentences saying what drives N per arm, every number computed from the plan."""
    primary = config.primary
    ref_d, ref_v = config.dropouts[0].name, config.variabilities[0].name
    fixed_effects = [e.name for e in config.effects if e.source != "prior"]
    ref_effect = fixed_effects[0] if fixed_effects else config.effects[0].name
    target = config.targets[0]
    one = next(c for c in cells if c.effect == ref_effect and c.dropout == ref_d and c.variability == ref_v)
    sd_adj = one.end_sd * math.sqrt(1.0 - one.correlation**2)
    out = []
    deltas = []
    for p in config.placebos:
        c = next(
            c
            for c in cells
            if c.effect == ref_effect and c.placebo == p.name and c.dropout == ref_d and c.variability == ref_v
        )
        row = _pick(
            sizes, effect=ref_effect, placebo=p.name, dropout=ref_d, variability=ref_v, test=primary, target=target
        )
        deltas.append(f"{p.name} ({fmt(p.change)}): difference {fmt(c.delta)}, N per arm {_n_text(row)}")
    model = (
        "each point of placebo response is taken off the difference between the arms (model 'absorbed': the MK-7 "
        "arm's change stays the pilot's)"
        if config.placebo_model == "absorbed"
        else "the placebo response adds to both arms and leaves the difference unchanged (model 'additive'); it acts "
        "only through the floor of the scale and the responder rates"
    )
    out.append(
        f"The placebo response: {model}. For the effect scenario {ref_effect} and {int(target * 100)}% power of the "
        f"{primary}: " + "; ".join(deltas) + "."
    )
    out.append(
        f"The size of the difference relative to the residual SD: N per arm grows about as 2 (z_(1-alpha/2) + "
        f"z_(power))^2 / (difference / SD)^2. The residual SD of the ANCOVA is the week-8 SD times sqrt(1 - rho^2) = "
        f"{fmt(one.end_sd)} x sqrt(1 - {fmt(one.correlation)}^2) = {fmt(sd_adj)} points; for {ref_effect} with no "
        f"placebo response the standardised difference is {fmt(abs(one.delta) / sd_adj)}."
    )
    gain_t = 1.0 / (1.0 - one.correlation**2)
    gain_c = one.change_sd**2 / sd_adj**2
    out.append(
        f"Adjusting for baseline: with a baseline-to-week-8 correlation of {fmt(one.correlation)} the ANCOVA "
        f"needs 1 - rho^2 = {fmt(1.0 - one.correlation**2)} of the patients of a t-test on the week-8 value (that "
        f"test would need {fmt(gain_t)} times as many) and {fmt(1.0 / gain_c)} of those of a t-test on the change "
        f"(SD of the change {fmt(one.change_sd)})."
    )
    if len(config.dropouts) > 1:
        parts = []
        for d in config.dropouts:
            row = _pick(
                sizes,
                effect=ref_effect,
                placebo=config.placebos[0].name,
                dropout=d.name,
                variability=ref_v,
                test=primary,
                target=target,
            )
            parts.append(f"{d.name} ({fmt(100 * d.rate, 0)}% missing week 8): {_n_text(row)}")
        out.append(
            "Dropout: N per arm counts randomised patients; the ANCOVA and the rank-sum test analyse complete cases "
            "(about (1 - dropout) x N), so N rises about as 1 / (1 - dropout); responders without week 8 count as "
            f"non-responders. {ref_effect}, {config.placebos[0].name}: " + "; ".join(parts) + "."
        )
    else:
        d = config.dropouts[0]
        out.append(
            f"Dropout: {fmt(100 * d.rate, 0)}% of randomised patients miss week 8; the ANCOVA and the rank-sum test "
            f"analyse about {fmt(100 * (1 - d.rate), 0)}% of N (complete cases), responders count the dropouts as "
            "non-responders."
        )
    if len(config.variabilities) > 1:
        parts = []
        for v in config.variabilities:
            row = _pick(
                sizes,
                effect=ref_effect,
                placebo=config.placebos[-1].name,
                dropout=ref_d,
                variability=v.name,
                test=primary,
                target=target,
            )
            parts.append(f"{v.name} (week-8 SD x {fmt(v.end_sd_multiplier)}): {_n_text(row)}")
        out.append(
            f"Variability: N grows with the square of the SD. {ref_effect}, placebo {config.placebos[-1].name}: "
            + "; ".join(parts)
            + "."
        )
    others = [t for t in config.analysis.tests if t != primary]
    if others:
        parts = []
        for t in others:
            row = _pick(
                sizes,
                effect=ref_effect,
                placebo=config.placebos[-1].name,
                dropout=ref_d,
                variability=ref_v,
                test=t,
                target=target,
            )
            parts.append(f"{t}: {_n_text(row)}")
        base_row = _pick(
            sizes,
            effect=ref_effect,
            placebo=config.placebos[-1].name,
            dropout=ref_d,
            variability=ref_v,
            test=primary,
            target=target,
        )
        out.append(
            f"The test: the {primary} uses the baseline; the rank-sum test compares the changes without it (at normal "
            f"data its efficiency relative to the t-test on the change is 3/pi = {fmt(3 / math.pi, 3)}), and a "
            "responder analysis dichotomises, which loses information. For "
            f"{ref_effect}, placebo {config.placebos[-1].name}, {int(target * 100)}% power: {primary} "
            f"{_n_text(base_row)}; " + "; ".join(parts) + "."
        )
    anc = power[(power["test"] == pw.ANCOVA) & (power["effect_sd"] == 0)]
    if len(anc) and config.scale is not None:
        diff = (anc["power"] - anc["analytic_power"]).to_numpy(float)
        z = diff / np.maximum(anc["mc_se"].to_numpy(float), 1e-12)
        informative = np.abs(diff) > 0
        beyond = int(np.sum(informative & (np.abs(z) > 3)))
        largest = float(diff[np.argmax(np.abs(diff))])
        out.append(
            f"Recording on the VAS: simulated values are rounded to {config.scale.decimals} decimal(s) and clipped to "
            f"{fmt(config.scale.lower, 0)}-{fmt(config.scale.upper, 0)}; the analytic ANCOVA power assumes unclipped "
            f"normal data. Over the {len(anc)} ANCOVA cells the simulated power differs from it by "
            f"{fmt(float(np.mean(diff)), 3)} on average (largest difference {fmt(largest, 3)}, {beyond} cells beyond "
            "3 MC SE). The formula is exact for unclipped normal data and the nominal arm sizes; the recording (values "
            "piling up at the scale's ends, rounding to the scale's precision) and, with permuted blocks, arm sizes "
            "that vary around the nominal ones separate the two."
        )
    for ref in config.reference_rates:
        rows = power[(power["test"] == ref.test) & (power["placebo"] == ref.scenario) & (power["effect_sd"] == 0)]
        rows = rows[(rows["dropout"] == ref_d) & (rows["variability"] == ref_v)]
        if len(rows):
            top = rows.sort_values("n_control", kind="stable").iloc[-1]
            simulated_rate = float(top["mean_rate_control"])
            ci = f", {fmt(ref.ci_low)}-{fmt(ref.ci_high)}" if ref.ci_low is not None else ""
            low = ref.ci_low if ref.ci_low is not None else ref.rate
            high = ref.ci_high if ref.ci_high is not None else ref.rate
            verdict = (
                " The simulated rate lies outside the published interval: the pilot's variability (or the placebo "
                "model) does not reproduce the placebo arms of those trials, and the plan inherits that."
                if not low <= simulated_rate <= high
                else ""
            )
            out.append(
                f"Placebo responders as a check of the model: under placebo scenario {ref.scenario} the simulated "
                f"placebo arm's {ref.test} rate is {fmt(simulated_rate, 3)} (dropouts counted as "
                f"non-responders; {ref_d}, N = {int(top['n_control'])} per arm); {ref.source} report {fmt(ref.rate)}"
                f"{ci}. The responder tests compare such rates: a placebo response that lifts many placebo patients "
                f"over a threshold shrinks that test's difference more than it shrinks the ANCOVA's.{verdict}"
            )
    prior = [e.name for e in config.effects if e.source == "prior"]
    if prior:
        row_power = _pick(
            sizes,
            effect=ref_effect,
            placebo=config.placebos[0].name,
            dropout=ref_d,
            variability=ref_v,
            test=primary,
            target=target,
        )
        if row_power is not None and not pd.isna(row_power["n_control_grid"]):
            n = int(row_power["n_control_grid"])
            cell = power[
                (power["effect"] == prior[0])
                & (power["placebo"] == config.placebos[0].name)
                & (power["dropout"] == ref_d)
                & (power["variability"] == ref_v)
                & (power["test"] == primary)
                & (power["n_control"] == n)
            ]
            if len(cell):
                out.append(
                    f"Uncertainty of the effect: the pilot's estimate {fmt(pilot.ancova_estimate)} has SE "
                    f"{fmt(pilot.ancova_se)}; averaged over Normal(estimate, SE^2) the probability of success at "
                    f"N = {n} per arm (the {int(target * 100)}% power size of {ref_effect}, no placebo response) is "
                    f"{fmt(float(cell['power_favourable'].iloc[0]), 3)} (MC SE "
                    f"{fmt(float(cell['mc_se_favourable'].iloc[0]), 3)})."
                )
    return out


def page_html(
    *,
    config: PlanningConfig,
    pilot: PilotEstimates,
    cells: Sequence[Cell],
    power: pd.DataFrame,
    sizes: pd.DataFrame,
    assurance: pd.DataFrame,
    figure_svg: str,
    simulated: bool,
    inputs: Mapping[str, Mapping[str, str]],
    strata: Sequence[str],
    strata_proportions: Sequence[float],
    global_seed: int,
    versions: Mapping[str, str] | None = None,
) -> str:
    """The page "Designing the confirmatory trial" (offline HTML: inline CSS and SVG, no script, no link out).

    versions: code_version and analysis_version as every page of the pipeline states them
    (k2trial.report.notebooks.version_info_from_hashes); shown with the inputs' sha256 and the seed."""
    primary = config.primary
    ref_d, ref_v = config.dropouts[0].name, config.variabilities[0].name
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        "<title>Designing the confirmatory trial</title>",
        f"<style>{PAGE_CSS}</style></head><body><main>",
        "<h1>Designing the confirmatory trial</h1>",
    ]
    if simulated:
        parts.append(
            '<div class="banner-simulated">SIMULATED: the pilot results this plan starts from come from a simulated '
            "dataset, not from the trial's patients; every estimate and sample size below describes that simulation."
            "</div>"
        )
    parts.append(
        f"<p>Sample size of a randomised, placebo-controlled confirmatory trial of MK-7 planned from the pilot "
        f"{_e(config.raw.get('pilot', {}).get('study', ''))}. Endpoint: change in the {_e(config.param)} VAS (0-10) "
        f"from {_e(config.baseline_visit)} to {_e(config.visit)}; primary analysis {_e(primary)} "
        f"(change on arm + baseline{' + stratum' if config.analysis.ancova_stratum and strata else ''}); two-sided "
        f"alpha {fmt(config.analysis.alpha, 3)}. Power is the share of simulated trials ({config.trials:,} per "
        "cell) whose test rejects, with its Monte Carlo standard error sqrt(p(1 - p)/trials). N per arm is the "
        f"number randomised to the control arm (allocation {config.ratio[0]}:{config.ratio[1]}).</p>"
    )

    # --- headline: N per arm for each target and placebo scenario ---
    fixed = [e for e in config.effects if e.source != "prior"]
    header = ["placebo response (week-8 change)"] + [
        f"{e.name}: {int(t * 100)}%" for e in fixed for t in config.targets
    ]
    rows = []
    for p in config.placebos:
        row = [f"{p.name} ({fmt(p.change)})"]
        for e in fixed:
            for t in config.targets:
                row.append(
                    _n_text(
                        _pick(
                            sizes,
                            effect=e.name,
                            placebo=p.name,
                            dropout=ref_d,
                            variability=ref_v,
                            test=primary,
                            target=t,
                        )
                    )
                )
        rows.append(row)
    parts.append("<h2>N per arm for 80% and 90% power</h2>")
    parts.append(
        _table(
            f"N per arm for {', '.join(f'{int(t * 100)}%' for t in config.targets)} power of the {primary}, by placebo "
            f"response and effect scenario ({ref_d}, {ref_v}); grid size (interpolated)",
            header,
            rows,
            [False] + [True] * (len(header) - 1),
        )
    )
    parts.append(
        '<p class="note">Grid size: the smallest simulated N per arm whose power reaches the target and stays above it '
        "at every larger size; in brackets, interpolated between grid sizes (linear in probit(power) against "
        'sqrt(N), rounded up). "&lt;= N": reached at the smallest size simulated. Effect scenarios (treated minus '
        "control change, before the placebo response): "
        + "; ".join(f"{_e(e.name)}: {_e(e.description)}" for e in config.effects)
        + ".</p>"
    )

    parts.append("<h2>What drives the sample size</h2><ul>")
    parts += [f"<li>{_e(s)}</li>" for s in _drivers(config, pilot, sizes, power, cells)]
    parts.append("</ul>")

    parts.append("<h2>Power curves</h2>")
    parts.append(f"<figure>{figure_svg}<figcaption>Power curves (power_curves.png / .svg).</figcaption></figure>")

    # --- the pilot ---
    parts.append("<h2>What the plan takes from the pilot</h2>")
    pilot_rows = [
        ["randomised (treated / control)", f"{pilot.n_randomised_treated} / {pilot.n_randomised_control}", "vas.csv"],
        ["analysed at " + config.visit, f"{pilot.n_analysed_treated} / {pilot.n_analysed_control}", "vas.csv"],
        [
            "ANCOVA difference (treated - control)",
            f"{fmt(pilot.ancova_estimate)} ({fmt(pilot.ancova_ci_low)} to {fmt(pilot.ancova_ci_high)})",
            "between_arm.csv",
        ],
        [
            "SE of the difference (from the CI)",
            fmt(pilot.ancova_se, 3),
            f"CI half-width / t({fmt_n(pilot.ancova_df)} df)",
        ],
        [
            "ANCOVA recomputed from vas.csv",
            f"{fmt(pilot.recomputed_estimate)} ({fmt(pilot.recomputed_ci_low)} to {fmt(pilot.recomputed_ci_high)})",
            "two_sample.ancova (consistency check)",
        ],
        ["baseline mean", fmt(pilot.baseline_mean), "vas.csv"],
        ["baseline SD (pooled within arm)", fmt(pilot.baseline_sd), "vas.csv"],
        [f"{config.visit} SD (pooled within arm)", fmt(pilot.end_sd), "vas.csv"],
        ["baseline-to-" + config.visit + " correlation", fmt(pilot.correlation), "vas.csv"],
        ["SD of the change (pooled within arm)", fmt(pilot.change_sd), "vas.csv"],
        ["mean change, treated / control", f"{fmt(pilot.treated_change)} / {fmt(pilot.control_change)}", "vas.csv"],
        [
            "strata (share)",
            ", ".join(f"{s} {fmt(p)}" for s, p in zip(pilot.strata, pilot.strata_proportions, strict=True)) or "-",
            "vas.csv / subjects",
        ],
        ["observed dropout", fmt(pilot.dropout_observed, 3), "vas.csv"],
    ]
    for rule, rates in pilot.responder_rates.items():
        pilot_rows.append(
            [
                f"{rule} rate, treated / control",
                f"{fmt(rates[config.treated])} / {fmt(rates[config.control])}",
                "vas.csv",
            ]
        )
    parts.append(_table("Pilot estimates", ["quantity", "value", "source"], pilot_rows, [False, True, False]))

    # --- assumptions ---
    parts.append("<h2>Assumptions</h2><ul>")
    one = cells[0]
    assumptions = [
        f"Simulation model: baseline and {config.visit} VAS bivariate normal within arm (baseline mean "
        f"{fmt(one.baseline_mean)}, SD {fmt(one.baseline_sd)}; {config.visit} SD {fmt(one.end_sd)} x the variability "
        f"scenario's multiplier; correlation {fmt(one.correlation)}), the same in both arms except the mean change.",
        "Recording: "
        + (
            "values rounded to " + str(config.scale.decimals) + " decimal(s) and clipped to "
            f"{fmt(config.scale.lower, 0)}-{fmt(config.scale.upper, 0)}, as the VAS is read; rounding creates "
            "ties, which the rank-sum test handles with mid-ranks and the tie correction."
            if config.scale
            else "latent normal values (no rounding or clipping)."
        ),
        "Placebo response model: "
        + config.placebo_model
        + "; scenarios: "
        + "; ".join(f"{p.name} {fmt(p.change)} ({p.description})" for p in config.placebos)
        + ".",
        "Dropout: missing completely at random at "
        + config.visit
        + "; "
        + "; ".join(f"{d.name} {fmt(100 * d.rate, 0)}% ({d.description})" for d in config.dropouts)
        + f". ANCOVA and rank-sum: complete cases; responders: {config.responder_missing.replace('_', ' ')}.",
        "Variability scenarios: " + "; ".join(f"{v.name}: {v.description}" for v in config.variabilities) + ".",
        f"Allocation {config.ratio[0]}:{config.ratio[1]} (treated:control); randomisation {config.randomisation}"
        + (f" with blocks of {config.block_size}" if config.randomisation == "permuted_blocks" else "")
        + (
            ", stratified by " + ", ".join(f"{s} ({fmt(p)})" for s, p in zip(strata, strata_proportions, strict=True))
            if strata
            else ", not stratified"
        )
        + (
            f"; stratum shifts of the {config.visit} mean: "
            + ", ".join(f"{k} {fmt(v)}" for k, v in config.strata_shift.items())
            if config.strata_shift
            else "; no prognostic effect of the stratum assumed"
        )
        + ".",
        f"Analysis of each simulated trial: {', '.join(config.analysis.tests)}; ANCOVA of change on arm + baseline"
        + (" + stratum" if config.analysis.ancova_stratum and strata else "")
        + " (t test, df n - rank); Wilcoxon "
        f"rank-sum on the change (exact p when both arms < {config.analysis.exact_below} and no ties, else normal "
        f"approximation with tie{' and continuity' if config.analysis.continuity else ''} correction); responders: "
        + ", ".join(
            f"{r.name} (reduction >= {fmt(r.percent, 0) + '%' if r.percent is not None else fmt(r.points) + ' points'})"
            for r in config.analysis.responders
        )
        + " with Fisher's exact p (risk difference with the Newcombe interval). Success: p < alpha (two-sided); "
        "assurance counts only rejections that favour MK-7.",
        "Seeds: each cell's trials come from the global seed "
        f"{global_seed} and the cell's identity (its scenario names and N) through SHA-256; trials are drawn in "
        f"blocks of {config.block_trials}, each from its own generator, so a cell's trials do not depend on the job "
        "or batch it runs in.",
        "Analytic references: ANCOVA power from the noncentral t distribution on the adjusted SD sd_week8 sqrt(1 - "
        "rho^2) with df N - 2 - strata, averaged over the chance baseline imbalance and over the binomial number of "
        "completers (analytic_power); the same without the imbalance, as R power.t.test on the adjusted SD "
        "(analytic_power_t_test); rank-sum: the t-test power on the SD of the change at 3/pi x N per arm.",
    ]
    parts += [f"<li>{_e(a)}</li>" for a in assumptions]
    parts.append("</ul>")

    # --- assurance ---
    if len(assurance):
        parts.append("<h2>Assurance</h2>")
        anc = assurance[
            (assurance["test"] == primary) & (assurance["dropout"] == ref_d) & (assurance["variability"] == ref_v)
        ]
        placebos = [p.name for p in config.placebos]
        ns = sorted(anc["n_control"].unique())
        rows = []
        for n in ns:
            row = [str(n)]
            for p in placebos:
                r = anc[(anc["n_control"] == n) & (anc["placebo"] == p)]
                row.append(
                    f"{fmt(float(r['assurance'].iloc[0]), 3)} ({fmt(float(r['analytic_assurance'].iloc[0]), 3)})"
                    if len(r)
                    else "-"
                )
            rows.append(row)
        parts.append(
            _table(
                f"Probability of success of the {primary} (significant and favouring MK-7) averaged over the effect "
                f"Normal({fmt(pilot.ancova_estimate)}, {fmt(pilot.ancova_se, 3)}^2), simulated (analytic), "
                f"{ref_d}, {ref_v}",
                ["N per arm", *placebos],
                rows,
                [True] * (1 + len(placebos)),
            )
        )

    # --- all sample sizes ---
    parts.append("<h2>N per arm, every scenario and test</h2>")
    rows = []
    for _, r in sizes.iterrows():
        rows.append(
            [
                r["effect"],
                r["placebo"],
                r["dropout"],
                r["variability"],
                r["test"],
                r["measure"],
                f"{int(r['target'] * 100)}%",
                fmt(r["delta"]),
                _n_text(r),
                fmt(r["power_at_grid"], 3),
                fmt(r["mc_se_at_grid"], 3),
                fmt_n(r["n_control_analytic"]),
                fmt_n(r["n_control_analytic_t_test"]),
            ]
        )
    parts.append(
        _table(
            "N per arm (sample_size.csv): grid pick (interpolated), simulated power there with MC SE, analytic N "
            "(normal data; ANCOVA with baseline imbalance / as power.t.test; rank-sum by ARE)",
            [
                "effect",
                "placebo",
                "dropout",
                "variability",
                "test",
                "measure",
                "target",
                "difference",
                "N per arm",
                "power",
                "MC SE",
                "analytic N",
                "power.t.test N",
            ],
            rows,
            [False] * 7 + [True] * 6,
        )
    )

    # --- provenance ---
    parts.append("<h2>Inputs and files</h2><ul>")
    for name, info in inputs.items():
        parts.append(f"<li>{_e(name)}: {_e(info['path'])} (sha256 {_e(info['sha256'])})</li>")
    parts.append(
        f"<li>Global seed {global_seed}: every cell's trials derive from it and the cell's identity.</li>"
        + "".join(
            f"<li>{_e(label)}: {_e(versions[key])}</li>"
            for key, label in (("code_version", "Code version"), ("analysis_version", "Analysis version"))
            if versions and versions.get(key)
        )
        + "<li>Each job's provenance record (inputs and outputs with sha256, parameters, code hashes, package "
        "versions, config hash): results/provenance/plan_scenarios.json, plan_cells/batch-*.json, "
        "plan_report.json.</li>"
    )
    parts.append(
        "<li>power.csv (every cell and test: power, MC SE, trials, analytic power), sample_size.csv, assurance.csv, "
        "power_curves.png/.svg, scenarios.json (pilot estimates and cell values), cells.csv.</li></ul>"
    )
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"
