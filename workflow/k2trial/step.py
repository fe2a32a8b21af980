"""The wrapper every workflow script runs its work through.

    from k2trial.step import run_step
    def main(smk): ...
    run_step(snakemake, main)   # noqa: F821  (injected by Snakemake)

It sends log records and tracebacks to the rule's log file, and turns a K2TrialError into a short
message on the command line plus a non-zero exit, so users read what is wrong with their data, not a
traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from k2trial.errors import K2TrialError

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


def run_step(smk: Any, work: Callable[[Any], None]) -> None:
    """Run `work(smk)`; report user errors briefly and everything else with a pointer to the log."""
    log_path = smk.log[0] if len(smk.log) else None
    _configure_logging(log_path)
    rule = getattr(smk, "rule", "?")
    try:
        work(smk)
    except K2TrialError as exc:
        logger.error("%s\n%s", exc, traceback.format_exc())
        print(f"\n[{rule}] {exc}\n", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # unexpected: keep the traceback in the log, point to it
        logger.error("unexpected error\n%s", traceback.format_exc())
        print(f"\n[{rule}] unexpected {type(exc).__name__}: {exc}\nTraceback in {log_path}\n", file=sys.stderr)
        sys.exit(1)
