"""Benchmark of the planning simulation (issue 17): vectorised power against a naive loop, on this machine.

Usage (from the repository root):

    .venv/bin/python bench/planning_bench.py            # 10^6 trials per measurement, 3 repeats
    .venv/bin/python bench/planning_bench.py --quick    # 10^5 trials, 1 repeat (scaled to 10^6 in the table)

Targets (issue 17): power of the ANCOVA over 10^6 simulated trials of 100 patients per arm in at most 30 s on this
2-core machine; of the rank-sum test in at most 120 s; each at least 100 times faster than a naive loop (one
statsmodels / scipy call per trial), timed on 10^3 trials in the same run and scaled to 10^6.

Two designs, both 100 patients per arm, one process, one core:
* "as planned": the VAS as recorded (0.1 cm, clipped to 0-10), 10% dropout (complete cases), permuted blocks of 4
  within two strata and the ANCOVA with the stratum (config/planning.yaml's design);
* "plain": normal, unrounded values, exact 1:1 allocation, no strata, no dropout.

What is timed, per design and test, in one loop over the memory batches of 10^6 trials (what
k2trial.planning.power.simulate_cell does: simulate.draw_batch, then power.analyse_batch, batch by batch):
* "simulate + analyse" (the time target): drawing and analysing every trial;
* "analysis": the analyse_batch calls alone, on the trials just drawn.
The naive loop analyses the first 10^3 of those same trials (the first memory batch, already drawn), one library
call per trial: for the ANCOVA the statsmodels formula call (the counterpart of R's lm(chg ~ arm + base + stratum)
that the analysis reproduces) and, as a second, harder baseline, statsmodels' array call sm.OLS; for the rank-sum
scipy.stats.mannwhitneyu. The ratio is naive / vectorised analysis time, both scaled to 10^6 trials, so drawing
the trials (the same work for both, and no part of "the analysis") is in neither. On the same 10^3 trials the
naive calls and the vectorised analysis must take the same decisions (p < 0.05); the benchmark checks it.

Both sides are timed in wall seconds and in CPU seconds of the process; the targets are judged on CPU seconds: on
a machine shared with other work (the load average is printed) wall times include the time spent waiting for a
core, which says nothing about this code. One core for both sides (BLAS threads set to 1 before numpy loads).
The process reuses freed memory (k2trial.runtime.memory.retain_freed_memory, as every workflow job does).
Prints medians, ratios and pass/miss; writes bench/out/planning.json (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# One core for both sides, as the plan's cell jobs (threads: 1): BLAS threads would let statsmodels' per-trial
# least squares spread over both cores (or spin), which neither the time nor the CPU seconds should count.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402  (after the thread settings)
import pandas as pd  # noqa: E402
import statsmodels.api as sm  # noqa: E402
import statsmodels.formula.api as smf  # noqa: E402
from scipy import stats  # noqa: E402

from k2trial.planning import power as pw  # noqa: E402
from k2trial.planning.simulate import (  # noqa: E402
    FIXED,
    PERMUTED_BLOCKS,
    CellDesign,
    VasScale,
    batch_blocks,
    cell_entropy,
    draw_batch,
)
from k2trial.runtime.memory import retain_freed_memory  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRIALS = 10**6
# config/planning.yaml's simulation settings: seeded blocks of 500 trials, memory batches of 200,000 values
BLOCK_TRIALS = 500
MAX_VALUES = 200_000
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


NAIVE = {
    "ancova": (
        "statsmodels formula: smf.ols('chg ~ arm + base [+ stratum]', data).fit() (as R's lm)",
        "statsmodels arrays: sm.OLS(chg, X).fit()",
    ),
    "rank_sum": ("scipy: stats.mannwhitneyu(x, y, use_continuity=True)",),
}


class Clock:
    """Wall seconds (perf_counter) and CPU seconds of this process (process_time) since the last `lap`."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        spent = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return spent


def vectorised_run(design: CellDesign, test: str, trials: int) -> dict:
    """Draw and analyse `trials` trials batch by batch (as power.simulate_cell): wall and CPU seconds of both and
    of the analysis alone, the simulated power, and the first memory batch with its per-trial rejections."""
    settings = settings_for(test, design)
    entropy = cell_entropy(1, design.cell_id)
    spent = {"total": [0.0, 0.0], "analysis": [0.0, 0.0]}
    rejections = 0
    first = None
    for blocks in batch_blocks(design, trials, block_trials=BLOCK_TRIALS, max_values=MAX_VALUES):
        clock = Clock()
        batch = draw_batch(design, blocks, trials, entropy=entropy, block_trials=BLOCK_TRIALS)
        drawing = clock.lap()
        outcome = pw.analyse_batch(batch, settings)[test]
        analysis = clock.lap()
        for k in (0, 1):
            spent["total"][k] += drawing[k] + analysis[k]
            spent["analysis"][k] += analysis[k]
        rejections += int(outcome.reject.sum())
        if first is None:
            first = (batch, outcome.reject)
    return {
        "total": spent["total"][0],
        "total_cpu": spent["total"][1],
        "analysis": spent["analysis"][0],
        "analysis_cpu": spent["analysis"][1],
        "power": rejections / trials,
        "first": first,
    }


def naive_run(design: CellDesign, test: str, batch, trials: int, variant: int) -> tuple[float, float, np.ndarray]:
    """One statsmodels or scipy call per trial on the first `trials` trials of an already drawn batch: wall and CPU
    seconds and the per-trial rejections (p < ALPHA)."""
    if batch.trials < trials:
        raise ValueError(f"the first memory batch has {batch.trials} trials, the naive loop needs {trials}")
    treated_all = np.broadcast_to(batch.treated, batch.baseline.shape)
    codes_all = None if batch.stratum is None else np.broadcast_to(batch.stratum, batch.baseline.shape)
    change_all = batch.change
    reject = np.zeros(trials, dtype=bool)
    clock = Clock()
    for trial in range(trials):
        change, base, treated = change_all[trial], batch.baseline[trial], treated_all[trial]
        codes = None if codes_all is None else codes_all[trial]
        keep = ~(np.isnan(change) | np.isnan(base))
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
        reject[trial] = p < ALPHA
    wall, cpu = clock.lap()
    return wall, cpu, reject


def _median(runs: list[dict], key: str, scale: float) -> float:
    return statistics.median(r[key] for r in runs) * scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^5 trials, 1 repeat (times scaled to 10^6)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats of each vectorised measurement (3)")
    parser.add_argument("--naive-trials", type=int, default=1000, help="trials of the naive loop (1000)")
    args = parser.parse_args(argv)
    trials = 10**5 if args.quick else TRIALS
    repeats = args.repeats or (1 if args.quick else 3)
    scale = TRIALS / trials
    per_naive = TRIALS / args.naive_trials
    retained = retain_freed_memory()
    load_before = os.getloadavg()[0]
    print(f"freed memory reused (glibc mallopt): {retained}; load average {load_before:.2f} (2 cores)", flush=True)

    rows = []
    for label, design in designs().items():
        for test in ("ancova", "rank_sum"):
            vectorised_run(design, test, 2 * BLOCK_TRIALS)  # warm-up: imports, caches (exact null tables)
            runs = [vectorised_run(design, test, trials) for _ in range(repeats)]
            seconds, seconds_cpu = _median(runs, "total", scale), _median(runs, "total_cpu", scale)
            analysis, analysis_cpu = _median(runs, "analysis", scale), _median(runs, "analysis_cpu", scale)
            time_pass = seconds_cpu <= TARGET_SECONDS[test]
            print(
                f"{label:>10} {test:>8}: simulate + analyse {seconds_cpu:6.2f} CPU s ({seconds:6.2f} s wall) per 10^6 "
                f"trials of 100 per arm (median of {repeats} x {trials:,}; target <= {TARGET_SECONDS[test]:.0f} s: "
                f"{'pass' if time_pass else 'MISS'}); analysis alone {analysis_cpu:6.2f} CPU s ({analysis:6.2f} s "
                f"wall); simulated power {runs[0]['power']:.4f}",
                flush=True,
            )
            batch, vector_reject = runs[0]["first"]
            vector_reject = vector_reject[: args.naive_trials]
            for variant, naive_label in enumerate(NAIVE[test]):
                naive, naive_cpu, naive_reject = naive_run(design, test, batch, args.naive_trials, variant)
                ratio, ratio_wall = naive_cpu * per_naive / analysis_cpu, naive * per_naive / analysis
                same = bool(np.array_equal(naive_reject, vector_reject))
                rows.append(
                    {
                        "design": label,
                        "test": test,
                        "trials": trials,
                        "repeats": repeats,
                        "cpu_seconds_per_1e6": seconds_cpu,
                        "seconds_per_1e6": seconds,
                        "analysis_cpu_seconds_per_1e6": analysis_cpu,
                        "analysis_seconds_per_1e6": analysis,
                        "runs": [{k: r[k] for k in ("total", "total_cpu", "analysis", "analysis_cpu")} for r in runs],
                        "power": runs[0]["power"],
                        "naive": naive_label,
                        "naive_trials": args.naive_trials,
                        "naive_cpu_seconds": naive_cpu,
                        "naive_seconds": naive,
                        "naive_cpu_seconds_per_1e6": naive_cpu * per_naive,
                        "naive_seconds_per_1e6": naive * per_naive,
                        "naive_power": float(naive_reject.mean()),
                        "vectorised_power_same_trials": float(vector_reject.mean()),
                        "same_decisions": same,
                        "ratio": ratio,
                        "ratio_wall": ratio_wall,
                        "time_target": TARGET_SECONDS[test],
                        "time_pass": time_pass,
                        "ratio_pass": ratio >= TARGET_RATIO,
                        "memory_reused": retained,
                    }
                )
                print(
                    f"{'':>20} naive ({naive_label}): {1e6 * naive_cpu / args.naive_trials:.0f} CPU us per trial "
                    f"({args.naive_trials:,} timed; {1e6 * naive / args.naive_trials:.0f} us wall), vectorised "
                    f"{1e6 * analysis_cpu / TRIALS:.2f} CPU us ({1e6 * analysis / TRIALS:.2f} wall): "
                    f"ratio {ratio:6.1f}x "
                    f"(target >= {TARGET_RATIO:.0f}x: {'pass' if ratio >= TARGET_RATIO else 'MISS'}; wall "
                    f"{ratio_wall:.1f}x); same decisions on those trials: {'yes' if same else 'NO'} "
                    f"(power {naive_reject.mean():.3f})",
                    flush=True,
                )
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    load_after = os.getloadavg()[0]
    record = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "load_average": [load_before, load_after],
        "rows": rows,
    }
    (out / "planning.json").write_text(json.dumps(record, indent=2) + "\n")
    failed = [r for r in rows if not (r["time_pass"] and r["ratio_pass"] and r["same_decisions"])]
    print(
        f"{len(rows) - len(failed)} of {len(rows)} comparisons meet both targets (CPU seconds; load average "
        f"{load_after:.2f} at the end); written {out / 'planning.json'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
