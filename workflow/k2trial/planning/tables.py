"""Tables of a plan (power.csv, sample_size.csv, assurance.csv), built from the cell batches.

Light on imports (no matplotlib): the cell jobs use `cell_row` and `POWER_COLUMNS` too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from scipy import stats

from k2trial.planning import power as pw
from k2trial.planning.scenarios import Cell, PlanningConfig, cell_keys, n_treated_for

#: Columns of power.csv in order.
POWER_COLUMNS = (
    "cell_id",
    "scenario_id",
    "effect",
    "placebo",
    "dropout",
    "variability",
    "n_control",
    "n_treated",
    "test",
    "delta",
    "effect_sd",
    "control_change",
    "dropout_rate",
    "baseline_sd",
    "end_sd",
    "correlation",
    "change_sd",
    "trials",
    "rejections",
    "power",
    "mc_se",
    "successes",
    "power_favourable",
    "mc_se_favourable",
    "mean_estimate",
    "mean_n_treated",
    "mean_n_control",
    "mean_rate_treated",
    "mean_rate_control",
    "share_exact",
    "analytic_power",
    "analytic_power_t_test",
    "analytic_method",
)
#: Text columns of power.csv (read back as strings by the gather job).
TEXT_COLUMNS = ("cell_id", "scenario_id", "effect", "placebo", "dropout", "variability", "test", "analytic_method")

# ============================================================================================== tables


def cell_row(cell: Cell, test: str, summary: Mapping[str, Any], analytic: Mapping[str, Any]) -> dict[str, Any]:
    """One row of power.csv."""
    row = {
        "cell_id": cell.cell_id,
        "scenario_id": cell.scenario_id,
        "effect": cell.effect,
        "placebo": cell.placebo,
        "dropout": cell.dropout,
        "variability": cell.variability,
        "n_control": cell.n_control,
        "n_treated": cell.n_treated,
        "test": test,
        "delta": cell.delta,
        "effect_sd": cell.effect_sd,
        "control_change": cell.control_change,
        "dropout_rate": cell.dropout_rate,
        "baseline_sd": cell.baseline_sd,
        "end_sd": cell.end_sd,
        "correlation": cell.correlation,
        "change_sd": cell.change_sd,
    }
    row.update({k: summary[k] for k in POWER_COLUMNS if k in summary})
    row.update(analytic)
    return {k: row[k] for k in POWER_COLUMNS}


def power_table(batches: Sequence[pd.DataFrame], config: PlanningConfig) -> pd.DataFrame:
    """The cell batches joined, in the canonical cell order and the configured test order; every cell and test
    exactly once (a missing or duplicated cell is an error: the jobs did not cover the plan)."""
    frame = pd.concat(list(batches), ignore_index=True)
    order = {key: i for i, key in enumerate(cell_keys(config))}
    test_order = {t: i for i, t in enumerate(config.analysis.tests)}
    columns = [frame[c] for c in ("effect", "placebo", "dropout", "variability", "n_control")]
    keys = list(zip(*columns, strict=True))
    frame["_cell"] = [order[(e, p, d, v, int(n))] for e, p, d, v, n in keys]
    frame["_test"] = frame["test"].map(test_order)
    expected = len(order) * len(test_order)
    if len(frame) != expected or frame.duplicated(["_cell", "_test"]).any():
        raise ValueError(f"the cell batches hold {len(frame)} rows for {expected} cell x test pairs")
    frame = frame.sort_values(["_cell", "_test"], kind="stable").drop(columns=["_cell", "_test"])
    return frame.reset_index(drop=True)[list(POWER_COLUMNS)]


def _scenario_groups(power: pd.DataFrame):
    for (scenario_id, test), rows in power.groupby(["scenario_id", "test"], sort=False):
        yield scenario_id, test, rows.sort_values("n_control", kind="stable")


def sample_size_table(power: pd.DataFrame, config: PlanningConfig, n_strata_model: int) -> pd.DataFrame:
    """N per arm for each target power, per scenario and test: picked from the grid, interpolated, and (ANCOVA,
    rank-sum) the analytic N. Assurance cells use the success probability (significant and favourable)."""
    rows = []
    for scenario_id, test, cells in _scenario_groups(power):
        first = cells.iloc[0]
        assurance = float(first["effect_sd"]) > 0
        measure = "assurance" if assurance else "power"
        values = cells["power_favourable" if assurance else "power"].to_numpy(float)
        ns = cells["n_control"].to_numpy(int)
        for target in config.targets:
            choice = pw.n_for_power(ns, values, target)
            analytic, analytic_t, note = _analytic_n(first, test, target, config, n_strata_model)
            at_pick = cells[cells["n_control"] == choice.n_grid] if choice.n_grid is not None else cells.iloc[:0]
            rows.append(
                {
                    "scenario_id": scenario_id,
                    "effect": first["effect"],
                    "placebo": first["placebo"],
                    "dropout": first["dropout"],
                    "variability": first["variability"],
                    "test": test,
                    "measure": measure,
                    "target": target,
                    "delta": float(first["delta"]),
                    "effect_sd": float(first["effect_sd"]),
                    "n_control_grid": choice.n_grid,
                    "n_treated_grid": None if choice.n_grid is None else n_treated_for(choice.n_grid, config.ratio),
                    "power_at_grid": choice.power_at_grid,
                    "mc_se_at_grid": float(at_pick["mc_se_favourable" if assurance else "mc_se"].iloc[0])
                    if len(at_pick)
                    else math.nan,
                    "n_control_interpolated": choice.n_interpolated,
                    "n_control_analytic": analytic,
                    "n_control_analytic_t_test": analytic_t,
                    "note": "; ".join(x for x in (choice.note, note) if x),
                }
            )
    out = pd.DataFrame(rows)
    for column in (
        "n_control_grid",
        "n_treated_grid",
        "n_control_interpolated",
        "n_control_analytic",
        "n_control_analytic_t_test",
    ):
        out[column] = out[column].astype("Int64")
    return out


def _analytic_n(cell: pd.Series, test: str, target: float, config: PlanningConfig, n_strata_model: int):
    """(analytic N, power.t.test-form N, note) for ANCOVA and rank-sum; None where there is none."""
    delta, sd_prior = float(cell["delta"]), float(cell["effect_sd"])
    end_sd, rho = float(cell["end_sd"]), float(cell["correlation"])
    dropout = float(cell["dropout_rate"])
    alpha = config.analysis.alpha
    ratio = config.ratio
    if test == pw.ANCOVA:
        if sd_prior > 0:
            favourable = stats.norm.cdf(-delta / sd_prior if config.benefit == "decrease" else delta / sd_prior)
            if target >= favourable:
                return None, None, f"assurance cannot reach {target:g}: P(effect favours treatment) = {favourable:.3f}"

            def power_of(n: int, imbalance: bool) -> float:
                return pw.ancova_assurance(
                    delta,
                    sd_prior,
                    end_sd,
                    rho,
                    n_treated_for(n, ratio),
                    n,
                    alpha=alpha,
                    n_strata=n_strata_model,
                    dropout=dropout,
                    baseline_imbalance=imbalance,
                    benefit=config.benefit,
                )
        else:

            def power_of(n: int, imbalance: bool) -> float:
                return pw.ancova_power(
                    delta,
                    end_sd,
                    rho,
                    n_treated_for(n, ratio),
                    n,
                    alpha=alpha,
                    n_strata=n_strata_model,
                    dropout=dropout,
                    baseline_imbalance=imbalance,
                )

        exact = pw.smallest_n(lambda n: power_of(n, True), target)
        plain = pw.smallest_n(lambda n: power_of(n, False), target)
        return exact, plain, ""
    if test == pw.RANK_SUM and sd_prior == 0:
        change_sd = float(cell["change_sd"])
        value = pw.smallest_n(
            lambda n: pw.rank_sum_power_are(delta, change_sd, n_treated_for(n, ratio), n, alpha=alpha, dropout=dropout),
            target,
        )
        return value, None, "analytic: ARE approximation"
    return None, None, ""


def assurance_table(power: pd.DataFrame) -> pd.DataFrame:
    """The assurance cells: probability of success (significant and favouring treatment) with its MC SE, and the
    analytic assurance of the ANCOVA."""
    rows = power[power["effect_sd"] > 0]
    out = rows[
        [
            "scenario_id",
            "effect",
            "placebo",
            "dropout",
            "variability",
            "n_control",
            "n_treated",
            "test",
            "delta",
            "effect_sd",
            "trials",
            "successes",
            "power_favourable",
            "mc_se_favourable",
            "analytic_power",
            "analytic_power_t_test",
        ]
    ].rename(
        columns={
            "power_favourable": "assurance",
            "mc_se_favourable": "mc_se",
            "delta": "prior_mean",
            "effect_sd": "prior_sd",
            "analytic_power": "analytic_assurance",
            "analytic_power_t_test": "analytic_assurance_t_test",
        }
    )
    return out.reset_index(drop=True)
