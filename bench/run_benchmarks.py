"""Benchmark the workflow on this machine and check the performance targets (issue 8).

Usage (from the repository root, after `make env`):

    .venv/bin/python bench/run_benchmarks.py            # everything, 3 repeats for the small runs
    .venv/bin/python bench/run_benchmarks.py --quick    # 1,000 and 10,000 subjects only, 1 repeat

It prints a table of medians over repeated runs with peak memory (the summed RSS of the process tree,
sampled every 0.1 s), then each target as a ratio with pass or miss, and writes everything to
bench/out/results.json (not committed). Runs happen in throw-away copies of the repository, so the
working tree and its results/ are never touched. Targets are ratios so that machine speed cancels out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PARTS = ["Snakefile", "workflow", "config", "envs", "data/raw"]


def copy_repo(dest: Path) -> Path:
    for part in PARTS:
        src, target = ROOT / part, dest / part
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def measure(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak summed RSS (MB) of a command and all its descendants."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                root = psutil.Process(proc.pid)
                procs = [root, *root.children(recursive=True)]
                rss = 0
                for p in procs:
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak = max(peak, rss / 2**20)
            except psutil.Error:
                pass
            done.wait(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, stderr = proc.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}:\n{stderr[-3000:]}")
    return elapsed, peak


def repeat(label: str, runs: int, cmd: list[str], cwd: Path, before=None) -> dict:
    times, peaks = [], []
    for _ in range(runs):
        if before:
            before()
        t, m = measure(cmd, cwd)
        times.append(t)
        peaks.append(m)
    row = {"label": label, "runs": runs, "median_s": statistics.median(times), "peak_mb": max(peaks), "times": times}
    print(f"  {label:<48} {row['median_s']:9.2f} s  {row['peak_mb']:9.0f} MB  (n={runs})", flush=True)
    return row


def stage_seconds(workdir: Path) -> dict[str, float]:
    """Seconds per rule from the jobs' provenance timing records."""
    out: dict[str, float] = {}
    for path in sorted((workdir / "results/provenance/timings").glob("*.json")):
        record = json.loads(path.read_text())
        out[record["rule"]] = out.get(record["rule"], 0.0) + record["seconds"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 100_000])
    parser.add_argument("--quick", action="store_true", help="1 repeat, sizes 1,000 and 10,000")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/results.json")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.sizes = 1, [1_000, 10_000]
    snakemake = str(BIN / "snakemake")
    python = sys.executable
    rows: dict[str, dict] = {}
    print(f"benchmark on {os.cpu_count()} cores; medians of {args.repeats} run(s)")
    with tempfile.TemporaryDirectory(prefix="k2bench-") as tmp:
        tmp = Path(tmp)
        work = copy_repo(tmp / "shipped")
        rows["import_floor"] = repeat(
            "import floor (pandas, pingouin, seaborn, mpl)",
            max(5, args.repeats),
            [python, "-c", "import pandas, pingouin, seaborn, matplotlib.pyplot"],
            work,
        )
        rows["snakemake_version"] = repeat("snakemake --version", max(5, args.repeats), [snakemake, "--version"], work)

        def wipe() -> None:
            shutil.rmtree(work / "results", ignore_errors=True)
            shutil.rmtree(work / ".snakemake", ignore_errors=True)

        rows["full_rebuild"] = repeat(
            "full rebuild, shipped data (--cores 4)", args.repeats, [snakemake, "--cores", "4"], work, before=wipe
        )
        rows["stages_shipped"] = {"label": "seconds per rule, shipped data", **stage_seconds(work)}
        rows["noop"] = repeat(
            "no-op run (everything up to date)", max(5, args.repeats), [snakemake, "--cores", "4"], work
        )
        rows["dry_run"] = repeat("snakemake -n", max(5, args.repeats), [snakemake, "-n"], work)

        standards = work / "config/lab_standards.yaml"
        original = standards.read_text()
        toggle = {"n": 0}

        def change_range() -> None:
            toggle["n"] += 1
            new_high = "40.0" if toggle["n"] % 2 == 0 else "41.0"
            text = original.replace("range: [7.0, 40.0]", f"range: [7.0, {new_high}]", 1)
            assert text != original or new_high == "40.0", "ALT range not found in lab_standards.yaml"
            standards.write_text(text)

        rows["incremental_lab_range"] = repeat(
            "incremental: one lab reference range changed",
            args.repeats,
            [snakemake, "--cores", "4"],
            work,
            before=change_range,
        )
        standards.write_text(original)

        for n in args.sizes:
            # rule simulate_dataset (workflow/rules/simulate.smk) writes the dataset into the copy's results/
            target = f"results/simulated/n{n}-seed1"
            subprocess.run(
                [snakemake, "--cores", "1", target], cwd=work, env=dict(os.environ, PYTHONHASHSEED="0"), check=True,
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            raw = tmp / f"raw-{n}"
            shutil.move(work / target, raw)
            big = copy_repo(tmp / f"run-{n}")
            row = repeat(
                f"full pipeline, {n:,} subjects",
                1,
                [snakemake, "--cores", "4", "--config", f"raw_dir={raw}"],
                big,
            )
            row["stages"] = stage_seconds(big)
            rows[f"n_{n}"] = row
            shutil.rmtree(big)

    targets = []

    def target(name: str, value: float | None, limit: float, unit: str) -> None:
        status = "n/a" if value is None else ("pass" if value <= limit else "MISS")
        targets.append({"target": name, "value": value, "limit": limit, "unit": unit, "status": status})

    floor = rows["import_floor"]["median_s"]
    target("full rebuild / import floor", rows["full_rebuild"]["median_s"] / floor, 10, "x")
    target("no-op run / snakemake --version", rows["noop"]["median_s"] / rows["snakemake_version"]["median_s"], 2, "x")
    big = rows.get("n_100000")
    mid = rows.get("n_10000")
    target("100,000 subjects: wall time", big and big["median_s"], 300, "s")
    target("100,000 subjects: peak memory", big and big["peak_mb"] / 1024, 6, "GB")
    target("time(100,000) / time(10,000)", big and mid and big["median_s"] / mid["median_s"], 10, "x")

    print("\ntargets")
    for t in targets:
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        print(f"  {t['target']:<40} {value:>9} {t['unit']:<2} (limit {t['limit']}) {t['status']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "targets": targets}, indent=2) + "\n")
    print(f"\nwritten: {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0 if all(t["status"] != "MISS" for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
