"""Benchmark the workflow on this machine and check the performance targets (issue 18).

Usage (from the repository root, after `make env`):

    .venv/bin/python bench/run_benchmarks.py            # everything, 3 repeats for the small runs
    .venv/bin/python bench/run_benchmarks.py --quick    # 1,000 and 10,000 subjects only, 1 repeat
    .venv/bin/python bench/run_benchmarks.py --sizes    # the shipped data only (no simulated datasets)

It prints a table of medians over repeated runs with peak memory (the summed PSS of the process tree, sampled every
0.1 s, less often while one reading takes longer than 25 ms (SAMPLER_SHARE): each page counted once, a page shared
by n processes 1/n in each; the summed RSS beside it counts a shared page once per process, so it over-counts forked
processes, such as the jobs the preloaded job server forks and the forked helpers of the efficacy and figure jobs),
the critical path of the full rebuild and of the incremental run (each job's start and end, seconds from the start
of snakemake, from Snakemake's own job records), seconds and peak memory per rule for every simulated size, then
each target as a ratio with pass or miss, and writes everything to bench/out/results.json (not committed). Runs
happen in throw-away copies of the repository, so the working tree and its results/ are never touched; each copy
runs its own copy of the library (PYTHONPATH), so a checkout of an older commit can be measured with this script
too. Targets are ratios so that machine speed cancels out.

Targets (issue 18; medians of the same run):
- full rebuild of the shipped data <= 6 x the import floor (`import pandas, pingouin, seaborn, matplotlib.pyplot`);
- incremental run after one lab reference range changes <= 4 x the import floor;
- no-op run <= 1.5 x `snakemake --version`;
- 100,000 subjects: full pipeline <= 180 s and <= 4 GB peak (and at most 10 x the time of 10,000 subjects).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
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


def run_env(cwd: Path) -> dict[str, str]:
    """The environment of a measured command: fixed hash seed, and the copy's own library first on the path."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    library = cwd / "workflow"
    if (library / "k2trial").is_dir():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(library), env.get("PYTHONPATH", "")) if p)
    return env


#: The sampler's largest share of a core: after a reading that took t seconds it waits max(0.1, t / share - t).
#: Reading a process's PSS walks its page tables: some 50 ms for a job of 3 GB in 4 KB pages (the workflow's jobs ask
#: for no huge pages: k2trial.runtime.memory), which every 0.1 s would take a third of one of the 2 cores from the
#: pipeline it measures. A job keeps the heap of its peak until it ends (k2trial.runtime.memory), so memory rises and
#: stays, and a sample every 0.2-0.3 s still sees each job's peak.
SAMPLER_SHARE = 0.2


def measure(cmd: list[str], cwd: Path) -> tuple[float, float, float, float, float]:
    """Wall seconds, peak summed PSS (MB) of a command and all its descendants, its start (epoch seconds), the
    CPU seconds (user + system) of the command and every descendant it waited for, and the peak summed RSS (MB).

    PSS (proportional set size, /proc/<pid>/smaps_rollup) is the memory the process tree occupies; RSS summed
    over processes counts every page shared by forked processes once in each.

    CPU seconds vary far less than wall time on a shared machine: they show what a change saves in work."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=run_env(cwd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peak = peak_rss = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, peak_rss
        while not done.is_set():
            reading = time.perf_counter()
            try:
                root = psutil.Process(proc.pid)
                procs = [root, *root.children(recursive=True)]
                rss = pss = 0
                for p in procs:
                    try:
                        info = p.memory_full_info()
                        rss += info.rss
                        pss += info.pss
                    except psutil.Error:
                        pass
                peak = max(peak, pss / 2**20)
                peak_rss = max(peak_rss, rss / 2**20)
            except psutil.Error:
                pass
            took = time.perf_counter() - reading
            done.wait(max(0.1, took / SAMPLER_SHARE - took))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    _, stderr = proc.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    thread.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}:\n{stderr[-3000:]}")
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return elapsed, peak, started, cpu, peak_rss


def repeat(label: str, runs: int, cmd: list[str], cwd: Path, before=None, timeline: bool = False) -> dict:
    """Median of `runs` runs; with timeline, the job timeline of the median run (Snakemake's job records)."""
    times, peaks, peaks_rss, timelines, cpus = [], [], [], [], []
    for _ in range(runs):
        if before:
            before()
        t, m, started, cpu, rss = measure(cmd, cwd)
        times.append(t)
        peaks.append(m)
        peaks_rss.append(rss)
        cpus.append(cpu)
        if timeline:
            timelines.append(job_timeline(cwd, started, t))
    row = {"label": label, "runs": runs, "median_s": statistics.median(times), "peak_mb": max(peaks), "times": times}
    row["median_cpu_s"] = statistics.median(cpus)
    row["peak_rss_mb"] = max(peaks_rss)
    if timeline:
        row["timeline"] = timelines[sorted(range(runs), key=lambda i: times[i])[runs // 2]]
    median, peak, cpu = row["median_s"], row["peak_mb"], row["median_cpu_s"]
    memory = f"{peak:7.0f} MB PSS {row['peak_rss_mb']:7.0f} MB RSS"
    print(f"  {label:<48} {median:9.2f} s  {memory}  {cpu:7.2f} cpu-s  (n={runs})", flush=True)
    return row


def snakemake_records(workdir: Path) -> dict[str, dict]:
    """Snakemake's metadata record of every output file (.snakemake/metadata/<urlsafe base64 of the path>)."""
    meta = workdir / ".snakemake" / "metadata"
    records = {}
    for path in meta.rglob("*"):
        if path.is_file():
            name = "".join(part.lstrip("@") for part in path.relative_to(meta).parts)
            try:
                records[base64.urlsafe_b64decode(name).decode()] = json.loads(path.read_text())
            except (ValueError, UnicodeDecodeError):
                continue
    return records


def job_timeline(workdir: Path, started: float, wall: float) -> dict:
    """Start and end of every job that ran since `started` (seconds from it) and the critical path.

    A job's start is when Snakemake marked its outputs incomplete (just before it launched the job), its end the
    last write of an output. The critical path walks back from the job that ended last, each time to the input
    producer that ended last.
    """
    records = snakemake_records(workdir)
    producer = {path: record["rule"] for path, record in records.items()}
    jobs: dict[str, dict] = {}
    for record in records.values():
        if record.get("starttime") is None or record["starttime"] < started - 0.5:
            continue  # made by an earlier run
        job = jobs.setdefault(record["rule"], {"rule": record["rule"], "start": record["starttime"], "end": 0.0})
        job["start"] = min(job["start"], record["starttime"])
        job["end"] = max(job["end"], record["endtime"] or record["starttime"])
        job.setdefault("needs", set()).update(producer[i] for i in record.get("input", []) if i in producer)
    for job in jobs.values():
        job["needs"] = sorted(n for n in job["needs"] if n in jobs and n != job["rule"])
        job["start"] = round(job["start"] - started, 3)
        job["end"] = round(job["end"] - started, 3)
    timings = {}
    for path in (workdir / "results/provenance/timings").glob("*.json"):
        record = json.loads(path.read_text())
        timings[record["rule"]] = record
    for rule, job in jobs.items():
        if rule in timings and "started" in timings[rule]:
            # from the job's launch to the start of its own work: interpreter, Snakemake preamble and imports
            job["startup"] = round(timings[rule]["started"] - started - job["start"], 3)
    critical = []
    current = max(jobs.values(), key=lambda j: j["end"], default=None)
    while current is not None:
        critical.append(current["rule"])
        needs = [jobs[n] for n in current["needs"]]
        current = max(needs, key=lambda j: j["end"], default=None)
    ordered = sorted(jobs.values(), key=lambda j: (j["start"], j["end"]))
    return {"wall": round(wall, 3), "jobs": ordered, "critical_path": critical[::-1]}


def print_timeline(title: str, timeline: dict) -> None:
    jobs = timeline["jobs"]
    print(f"\n{title} (seconds from the start of snakemake; * on the critical path; startup = launch to own work)")
    print(f"      {'start':>6} {'end':>6} {'secs':>5} {'startup':>7}  job")
    if jobs:
        print(f"      {0:6.2f} {jobs[0]['start']:6.2f} {jobs[0]['start']:5.2f} {'':>7}  (snakemake: start, parse, DAG)")
    for job in jobs:
        mark = "*" if job["rule"] in timeline["critical_path"] else " "
        startup = f"{job['startup']:7.2f}" if "startup" in job else f"{'':>7}"
        secs = job["end"] - job["start"]
        print(f"    {mark} {job['start']:6.2f} {job['end']:6.2f} {secs:5.2f} {startup}  {job['rule']}")
    last = max((j["end"] for j in jobs), default=0.0)
    print(f"      {last:6.2f} {timeline['wall']:6.2f} {timeline['wall'] - last:5.2f} {'':>7}  (snakemake: until exit)")


def stage_stats(workdir: Path) -> dict[str, dict[str, float]]:
    """Seconds of own work, CPU seconds (imports included) and peak RSS (MB, the job's own process or its largest
    child) per rule, from the timing records."""
    out: dict[str, dict[str, float]] = {}
    for path in sorted((workdir / "results/provenance/timings").glob("*.json")):
        record = json.loads(path.read_text())
        row = out.setdefault(record["rule"], {"seconds": 0.0, "cpu_s": 0.0, "peak_mb": 0.0})
        row["seconds"] = round(row["seconds"] + record["seconds"], 3)
        row["cpu_s"] = round(row["cpu_s"] + record.get("cpu_s", 0.0), 3)
        peak = max(record.get("max_rss_mb", 0.0), record.get("max_rss_children_mb", 0.0))
        row["peak_mb"] = max(row["peak_mb"], peak)
    return out


def print_stages(title: str, stages: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}: each job's own work (s), its CPU seconds with imports, peak RSS (own process or largest child)")
    for rule, row in sorted(stages.items(), key=lambda kv: -kv[1]["seconds"]):
        print(f"      {rule:<24} {row['seconds']:8.2f} s {row['cpu_s']:8.2f} cpu-s {row['peak_mb']:8.0f} MB")
    print(f"      {'(all jobs)':<24} {sum(r['seconds'] for r in stages.values()):8.2f} s "
          f"{sum(r['cpu_s'] for r in stages.values()):8.2f} cpu-s")  # fmt: skip


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine shows in every wall time measured."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


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
    print(f"benchmark on {os.cpu_count()} cores; medians of {args.repeats} run(s); load average {load_average()}")
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
            "full rebuild, shipped data (--cores 4)",
            args.repeats,
            [snakemake, "--cores", "4"],
            work,
            before=wipe,
            timeline=True,
        )
        rows["stages_shipped"] = {"label": "seconds and peak MB per rule, shipped data", **stage_stats(work)}
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
            timeline=True,
        )
        standards.write_text(original)

        for n in args.sizes:
            # rule simulate_dataset (workflow/rules/simulate.smk) writes the dataset into the copy's results/
            target = f"results/simulated/n{n}-seed1"
            subprocess.run(
                [snakemake, "--cores", "1", target], cwd=work, env=run_env(work), check=True,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            raw = tmp / f"raw-{n}"
            shutil.move(work / target, raw)
            big = copy_repo(tmp / f"run-{n}")
            row = repeat(
                f"full pipeline, {n:,} subjects",
                1,
                [snakemake, "--cores", "4", "--config", f"raw_dir={raw}"],
                big,
                timeline=True,
            )
            row["stages"] = stage_stats(big)
            rows[f"n_{n}"] = row
            shutil.rmtree(big)

    print_timeline("critical path, full rebuild of the shipped data (median run)", rows["full_rebuild"]["timeline"])
    print_timeline("critical path, incremental run (median run)", rows["incremental_lab_range"]["timeline"])
    print_stages("per rule, full rebuild of the shipped data", {k: v for k, v in rows["stages_shipped"].items()
                                                                 if k != "label"})  # fmt: skip
    for n in args.sizes:
        print_timeline(f"critical path, {n:,} subjects", rows[f"n_{n}"]["timeline"])
        print_stages(f"per rule, {n:,} subjects", rows[f"n_{n}"]["stages"])

    targets = []

    def target(name: str, value: float | None, limit: float, unit: str) -> None:
        status = "n/a" if value is None else ("pass" if value <= limit else "MISS")
        targets.append({"target": name, "value": value, "limit": limit, "unit": unit, "status": status})

    floor = rows["import_floor"]["median_s"]
    target("full rebuild / import floor", rows["full_rebuild"]["median_s"] / floor, 6, "x")
    target("incremental (lab range) / import floor", rows["incremental_lab_range"]["median_s"] / floor, 4, "x")
    target(
        "no-op run / snakemake --version", rows["noop"]["median_s"] / rows["snakemake_version"]["median_s"], 1.5, "x"
    )
    big = rows.get("n_100000")
    mid = rows.get("n_10000")
    target("100,000 subjects: wall time", big and big["median_s"], 180, "s")
    target("100,000 subjects: peak memory (PSS)", big and big["peak_mb"] / 1024, 4, "GB")
    target("time(100,000) / time(10,000)", big and mid and big["median_s"] / mid["median_s"], 10, "x")

    print(f"\ntargets (load average at the end {load_average()})")
    for t in targets:
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        print(f"  {t['target']:<40} {value:>9} {t['unit']:<2} (limit {t['limit']}) {t['status']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "targets": targets}, indent=2) + "\n")
    print(f"\nwritten: {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0 if all(t["status"] != "MISS" for t in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
