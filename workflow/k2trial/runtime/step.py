"""The wrapper every workflow script runs its work through.

    from k2trial.runtime.step import run_step
    def main(smk): ...
    run_step(snakemake, main)   # noqa: F821  (injected by Snakemake)

It sends log records and tracebacks to the rule's log file, and turns a K2TrialError into a short
message on the command line plus a non-zero exit, so users read what is wrong with their data, not a
traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import k2trial
from k2trial.core.errors import K2TrialError
from k2trial.core.io import read_yaml, write_json
from k2trial.core.lab_panel import study_lab_standards, study_lab_units
from k2trial.core.vocabulary import Vocabulary, default_protocol, load_vocabulary
from k2trial.runtime import job_server, provenance
from k2trial.runtime.memory import retain_freed_memory

if TYPE_CHECKING:
    from k2trial.analysis.safety.ctcae import CtcaeCriteria
    from k2trial.analysis.safety.standards import LabStandards
    from k2trial.data.contract import Contract

logger = logging.getLogger("k2trial")


def _configure_logging(log_path: str | None) -> None:
    handler: logging.Handler
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


#: Set (to "1") by the workflow for its jobs (workflow/rules/common.smk): a job that succeeded ends its process at
#: once (`end_job`) instead of tearing the interpreter down.
FAST_EXIT = "K2TRIAL_FAST_EXIT"


def run_step(smk: Any, work: Callable[[Any], None]) -> None:
    """Run `work(smk)`; report user errors briefly and everything else with a pointer to the log."""
    retain_freed_memory()  # speed only (k2trial.runtime.memory): new arrays reuse the memory of freed ones
    log_path = smk.log[0] if len(smk.log) else None
    _configure_logging(log_path)
    rule = getattr(smk, "rule", "?")
    started = time.time()
    try:
        work(smk)
        if "provenance" in smk.output.keys():
            write_job_provenance(smk, started)
        end_job()
    except K2TrialError as exc:
        logger.error("%s\n%s", exc, traceback.format_exc())
        print(f"\n[{rule}] {exc}\n", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # unexpected: keep the traceback in the log, point to it
        logger.error("unexpected error\n%s", traceback.format_exc())
        print(f"\n[{rule}] unexpected {type(exc).__name__}: {exc}\nTraceback in {log_path}\n", file=sys.stderr)
        sys.exit(1)


def end_job() -> None:
    """In a workflow job (environment FAST_EXIT=1), end the process now that its outputs are written and closed.

    Tearing the interpreter down frees every imported module one by one: 0.05 s after pandas, 0.3 s after
    pingouin and statsmodels, paid by every job on the critical path and doing nothing the results need (every
    output was written atomically and closed; kernels and forked drawers were shut down and waited for). The log
    and the standard streams are flushed first. Elsewhere (a script run in-process by a test) this returns.
    """
    if os.environ.get(FAST_EXIT) != "1":
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    job_server.report_exit(0)  # a job forked by the job server tells its client first
    os._exit(0)


def start_in_child(work: Callable[[], None], what: str) -> Callable[[], None]:
    """Run `work()` in a forked child process, side by side with this one, and return the function that waits for
    it: it raises RuntimeError naming `what` when the child failed (its traceback is in the job's log).

    For a job whose parts are independent and CPU-bound: the child shares what the parent has imported and read
    (copy on write), so nothing is imported or read twice. Whatever the child computes depends only on its inputs,
    so the bytes it writes are the same as when the parent does the work. Without os.fork the work runs at once.
    """
    if not hasattr(os, "fork"):
        work()
        return lambda: None
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child, reported through its exit status
        status = 1
        try:
            work()
            status = 0
        except BaseException:
            logger.exception("%s failed", what)
        finally:
            logging.shutdown()
            os._exit(status)

    def wait() -> None:
        _, status = os.waitpid(child, 0)
        if status != 0:
            raise RuntimeError(f"the process computing {what} failed (exit status {status}); see the log")

    return wait


def vocabulary(smk: Any) -> Vocabulary:
    """The job's vocabulary: inputs `codebook` and `lab_units`, params `vocabulary` (the study config's composite,
    populations and protocol; workflow/rules/common.smk VOCABULARY)."""
    return load_vocabulary(read_yaml(smk.input.codebook), read_yaml(smk.input.lab_units), smk.params.vocabulary)


def contract(smk: Any) -> Contract:
    """The job's raw-data contract: inputs `codebook` and `lab_units` and the study's protocol (params
    `vocabulary`; without `protocol` there, the default study's; `arms` there in a randomised study)."""
    from k2trial.data.contract import read_contract

    sources = dict(smk.params.vocabulary)
    return read_contract(smk.input.codebook, smk.input.lab_units, sources.get("protocol"), sources.get("arms"))


def _protocol(smk: Any) -> dict[str, Any]:
    """The study's protocol as the job is given it (params `vocabulary`; without `protocol` there, the default
    study's)."""
    sources = dict(getattr(smk.params, "vocabulary", None) or {})
    return dict(sources.get("protocol") or default_protocol())


def lab_units(smk: Any) -> dict[str, Any]:
    """The job's config/lab_units.yaml (input `lab_units`) as the study sees it: the declared lab panel's tests only
    when protocol.lab_panel declares one (k2trial.core.lab_panel.study_lab_units), the file as it is otherwise."""
    return study_lab_units(read_yaml(smk.input.lab_units), _protocol(smk))


def lab_standards_config(smk: Any) -> dict[str, Any]:
    """The job's config/lab_standards.yaml (input `lab_standards`) as the study sees it (a declared panel's tests
    only, no default range for a test the file does not know: k2trial.core.lab_panel.study_lab_standards)."""
    return study_lab_standards(read_yaml(smk.input.lab_standards), read_yaml(smk.input.lab_units), _protocol(smk))


def lab_standards(smk: Any, criteria: CtcaeCriteria) -> LabStandards:
    """The job's safety standards (k2trial.analysis.safety.standards.load_lab_standards) from its inputs
    `lab_units` and `lab_standards` as the study sees them and the CTCAE `criteria`."""
    from k2trial.analysis.safety.standards import load_lab_standards

    return load_lab_standards(lab_units(smk), lab_standards_config(smk), criteria)


def _original_script_name() -> str | None:
    """Snakemake runs a copy named `tmp<random>.<script name>`; recover the script's own name."""
    main = sys.modules.get("__main__")
    path = Path(getattr(main, "__file__", "") or sys.argv[0] or "")
    name = path.name
    if name.startswith("tmp") and name.count(".") >= 2:
        name = name.split(".", 1)[1]
    return name or None


def write_job_provenance(smk: Any, started: float) -> None:
    """Write the job's provenance record (declared output `provenance`) and its timings beside it.

    params.provenance (workflow/rules/common.smk PROVENANCE) names the lock whose package versions the record lists
    and the validation report whose data version it names; without it the record lists neither.
    """
    settings = dict(getattr(smk.params, "provenance", None) or {})
    repo = Path(smk.scriptdir).resolve().parents[1] if getattr(smk, "scriptdir", None) else Path.cwd()
    lock = Path(settings["lock"]) if settings.get("lock") else None
    script = _original_script_name()
    scripts = [Path(smk.scriptdir) / script] if script and getattr(smk, "scriptdir", None) else []
    library = Path(k2trial.__file__).parent  # the package the job imported, named k2trial/...
    code = {
        **provenance.code_hashes([f for f in scripts if f.exists()], repo),
        **provenance.code_hashes(provenance.library_files(library), library.parent),
    }
    report = Path(settings["validation_report"]) if settings.get("validation_report") else None
    data_version, declarations = None, None
    if report is not None and report.exists():
        report_content = json.loads(report.read_text())
        data_version = report_content.get("data_version")
        # null in the report: dataset.yaml's declarations could not be used; absent: the codebook's were in force
        if "declarations" in report_content:
            declarations = report_content["declarations"]
        else:
            declarations = _default_declarations(smk.config)
    record_path = smk.output.provenance
    outputs = [o for o in smk.output if o != record_path]
    record = provenance.job_record(
        rule=smk.rule,
        wildcards=dict(smk.wildcards.items()),
        inputs=list(smk.input),
        outputs=outputs,
        params={k: v for k, v in smk.params.items()},
        code=code,
        packages=provenance.read_lock(lock) if lock and lock.exists() else {},
        lock_sha256=provenance.sha256_file(lock) if lock and lock.exists() else "",
        data_version_hash=data_version,
        config=smk.config,
        commit=provenance.git_commit(repo),
    )
    if report is not None and report.exists():
        record["declarations"] = declarations
    write_json(record, record_path)
    # Timings are volatile: kept apart (results/provenance/timings/) from what reproducibility checks compare.
    timing_path = Path(record_path).parent / "timings" / Path(record_path).name
    timing = {"rule": smk.rule, "seconds": round(time.time() - started, 3), "threads": smk.threads}
    # when the job's own work began (after interpreter start and imports), its CPU seconds (imports included) and
    # peak memory: what the benchmark (bench/run_benchmarks.py) reports per rule
    timing["started"] = round(started, 3)
    timing.update(_resources_used())
    write_json(timing, timing_path)


def _default_declarations(config: Any) -> dict[str, Any] | None:
    """The subject-ID pattern and sites in force when dataset.yaml declares none: the codebook's (config
    `codebook`), as the validation report would name them (k2trial.data.contract.declarations_record)."""
    path = Path(str((config or {}).get("codebook", "")))
    if not path.is_file():
        return None
    codebook = read_yaml(path)
    subject, sites = codebook.get("subject_id") or {}, codebook.get("sites") or {}
    source = path.name
    return {
        "subject_id": {"declared_in": source, "pattern": subject.get("canonical_pattern")},
        "sites": {
            "declared_in": source,
            "sites": {str(k): {"day_first": bool((v or {}).get("day_first", False))} for k, v in sites.items()},
        },
    }


def _resources_used() -> dict[str, float]:
    """CPU seconds (user + system, this process and its finished children: forked drawers, kernels) and peak
    resident memory (MB) of this process and of its largest finished child."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return {}
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10  # ru_maxrss: bytes on macOS, KiB on Linux
    return {
        "cpu_s": round(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 3),
        "max_rss_mb": round(own.ru_maxrss * scale, 1),
        "max_rss_children_mb": round(children.ru_maxrss * scale, 1),
    }
