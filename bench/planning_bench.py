"""Benchmark of the planning simulation (issue 17): vectorised power against a naive loop, on this machine.

Usage (from the repository root):

    .venv/bin/python bench/planning_bench.py            # 10^6 trials per measurement, 3 repeats
    .venv/bin/python bench/planning_bench.py --quick    # 10^5 trials, 1 repeat (scaled to 10^6 in the table)

Targets (issue 17): power of the ANCOVA over 10^6 simulated trials of 100 patients per arm in at most 30 s on this
2-core machine; of the rank-sum test in at most 120 s; each at least 100 times faster than a naive loop (one
statsmodels / scipy call per trial, with the trial drawn on its own), timed on 10^3 trials in the same run and
scaled to 10^6.

Two designs, both 100 patients per arm, one process, one core:
* "as planned": the VAS as recorded (0.1 cm, clipped to 0-10), 10% dropout (complete cases), permuted blocks of 4
  within two strata and the ANCOVA with the stratum (config/planning.yaml's design);
* "plain": normal, unrounded values, exact 1:1 allocation, no strata, no dropout.
The vectorised time covers drawing the trials and analysing them (k2trial.planning.power.simulate_cell); the naive
loops draw each trial (simulate.draw_block for one trial) and make one library call per trial: for the ANCOVA the
statsmodels formula call (the counterpart of R's lm(chg ~ arm + base + stratum) that the analysis reproduces) and,
as a second, harder baseline, statsmodels' array call sm.OLS; for the rank-sum scipy.stats.mannwhitneyu. Prints
medians, ratios and pass/miss; writes bench/out/planning.json (not committed).

A floor to keep in mind: drawing a trial of 200 patients takes 400 normal deviates, about 8 ns each on this machine
(3.2 us per trial), so no patient-level simulation can be more than about 85 times faster than a naive loop whose
library call takes 270 us (mannwhitneyu) however cheap its test statistic is.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats

from k2trial.planning import power as pw
from k2trial.planning.simulate import FIXED, PERMUTED_BLOCKS, CellDesign, VasScale, block_generator, draw_block

ROOT = Path(__file__).resolve().parents[1]
TRIALS = 10**6
TARGET_SECONDS = {"ancova": 30.0, "rank_sum": 120.0}
TARGET_RATIO = 100.0
ALPHA = 0.05


def designs() -> dict[str, CellDesign]:
    common = {
        "n_treated": 100,
        "n_control": 100,
        "baseline_mean": 8.6,
        "baseline_sd": 0.45,
        "end_sd": 0.9,
        "correlation": 0.65,
        "control_change": -1.54,
        "effect": -0.3,
    }
    return {
        "as planned": CellDesign(
            cell_id="bench:as-planned",
            dropout=0.10,
            scale=VasScale(),
            randomisation=PERMUTED_BLOCKS,
            block_size=4,
            strata=("b12_deficiency", "diabetes"),
            strata_proportions=(0.5, 0.5),
            **common,
        ),
        "plain": CellDesign(cell_id="bench:plain", scale=None, randomisation=FIXED, **common),
    }


def settings_for(test: str, design: CellDesign) -> pw.AnalysisSettings:
    return pw.AnalysisSettings(tests=(test,), decimals=None if design.scale is None else design.scale.decimals)


def vectorised_seconds(design: CellDesign, test: str, trials: int) -> tuple[float, float]:
    started = time.perf_counter()
    outcome = pw.simulate_cell(design, settings_for(test, design), trials, global_seed=1)[test]
    return time.perf_counter() - started, float(outcome.reject.mean())


NAIVE = {
    "ancova": (
        "statsmodels formula: smf.ols('chg ~ arm + base [+ stratum]', data).fit() (as R's lm)",
        "statsmodels arrays: sm.OLS(chg, X).fit()",
    ),
    "rank_sum": ("scipy: stats.mannwhitneyu(x, y, use_continuity=True)",),
}


def naive_draw_seconds(design: CellDesign, trials: int) -> float:
    """The drawing part of the naive loops alone (one simulate.draw_block call per trial)."""
    started = time.perf_counter()
    for trial in range(trials):
        draw_block(design, block_generator(12345, trial), 1)
    return time.perf_counter() - started


def naive_seconds(design: CellDesign, test: str, trials: int, variant: int) -> tuple[float, float]:
    """One trial at a time: draw it (simulate.draw_block for one trial), then one statsmodels or scipy call."""
    rejections = 0
    started = time.perf_counter()
    for trial in range(trials):
        batch = draw_block(design, block_generator(12345, trial), 1)
        change, base = batch.change[0], batch.baseline[0]
        treated = np.broadcast_to(batch.treated, batch.baseline.shape)[0]
        codes = None if batch.stratum is None else np.broadcast_to(batch.stratum, batch.baseline.shape)[0]
        keep = ~np.isnan(change)
        if test == "ancova" and variant == 0:
            data = pd.DataFrame({"chg": change, "arm": np.where(treated, "MK7", "PLACEBO"), "base": base})
            formula = "chg ~ C(arm, Treatment('PLACEBO')) + base"
            if codes is not None:
                data["stratum"] = codes
                formula += " + C(stratum)"
            p = smf.ols(formula, data=data.dropna()).fit().pvalues.iloc[1]
        elif test == "ancova":
            columns = [np.ones(keep.sum()), treated[keep].astype(float), base[keep]]
            if codes is not None:
                columns += [(codes[keep] == s).astype(float) for s in range(1, design.n_strata)]
            p = sm.OLS(change[keep], np.column_stack(columns)).fit().pvalues[1]
        else:
            x = change[keep & treated]
            y = change[keep & ~treated]
            if design.scale is not None:
                x, y = np.round(x, design.scale.decimals), np.round(y, design.scale.decimals)
            p = stats.mannwhitneyu(x, y, use_continuity=True, alternative="two-sided", method="auto").pvalue
        rejections += p < ALPHA
    return time.perf_counter() - started, rejections / trials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^5 trials, 1 repeat (times scaled to 10^6)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats of each vectorised measurement (3)")
    parser.add_argument("--naive-trials", type=int, default=1000, help="trials of the naive loop (1000)")
    args = parser.parse_args(argv)
    trials = 10**5 if args.quick else TRIALS
    repeats = args.repeats or (1 if args.quick else 3)
    scale = TRIALS / trials

    rows = []
    for label, design in designs().items():
        for test in ("ancova", "rank_sum"):
            vectorised_seconds(design, test, 2000)  # warm-up: imports, caches (exact null tables)
            runs = [vectorised_seconds(design, test, trials) for _ in range(repeats)]
            seconds = statistics.median(r[0] for r in runs) * scale
            time_pass = seconds <= TARGET_SECONDS[test]
            print(
                f"{label:>10} {test:>8}: {seconds:7.2f} s per 10^6 trials of 100 per arm (median of {repeats} x "
                f"{trials:,}; target <= {TARGET_SECONDS[test]:.0f} s: {'pass' if time_pass else 'MISS'}); "
                f"simulated power {runs[0][1]:.4f}",
                flush=True,
            )
            drawing = naive_draw_seconds(design, args.naive_trials) * TRIALS / args.naive_trials
            for variant, naive_label in enumerate(NAIVE[test]):
                naive, naive_power = naive_seconds(design, test, args.naive_trials, variant)
                naive_scaled = naive * TRIALS / args.naive_trials
                ratio = naive_scaled / seconds
                call_ratio = (naive_scaled - drawing) / seconds
                rows.append(
                    {
                        "design": label,
                        "test": test,
                        "trials": trials,
                        "repeats": repeats,
                        "seconds_per_1e6": seconds,
                        "runs": [r[0] for r in runs],
                        "power": runs[0][1],
                        "naive": naive_label,
                        "naive_trials": args.naive_trials,
                        "naive_seconds": naive,
                        "naive_seconds_per_1e6": naive_scaled,
                        "naive_drawing_seconds_per_1e6": drawing,
                        "naive_power": naive_power,
                        "ratio": ratio,
                        "ratio_without_naive_drawing": call_ratio,
                        "time_target": TARGET_SECONDS[test],
                        "time_pass": time_pass,
                        "ratio_pass": ratio >= TARGET_RATIO,
                    }
                )
                print(
                    f"{'':>20} naive ({naive_label}): {naive_scaled:8.0f} s per 10^6 ({args.naive_trials:,} trials "
                    f"timed, power {naive_power:.3f}; {drawing:.0f} s of it drawing); ratio {ratio:6.1f}x (target >= "
                    f"{TARGET_RATIO:.0f}x: {'pass' if ratio >= TARGET_RATIO else 'MISS'}; library call alone "
                    f"{call_ratio:.1f}x)",
                    flush=True,
                )
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    record = {"python": sys.version.split()[0], "machine": platform.machine(), "rows": rows}
    (out / "planning.json").write_text(json.dumps(record, indent=2) + "\n")
    failed = [r for r in rows if not (r["time_pass"] and r["ratio_pass"])]
    print(f"{len(rows) - len(failed)} of {len(rows)} comparisons meet both targets; written {out / 'planning.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
