"""Names of the pipeline's artifacts and which ADaM datasets a build can deliver from them. No pandas: the workflow
calls these when it is parsed (workflow/rules/adam.smk), and k2trial.core.schema and k2trial.adam.spec use them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path


def artifact_name(path: str | Path) -> str:
    """The schema name of a results file: "results/efficacy/paired_tests.csv" -> "efficacy/paired_tests"."""
    parts = Path(path).with_suffix("").parts
    return "/".join(parts[-2:])


def delivered_datasets(first_sources: Mapping[str, str | None], available: Iterable[str]) -> list[str]:
    """The datasets (in the spec's order: name -> its first source, an artifact name or an earlier dataset, the
    part before any ".") that a build making the `available` artifacts delivers: those whose first source it makes
    (a safety-only study makes no analysis/vas, so no ADQS)."""
    have = set(available)
    out = []
    for name, source in first_sources.items():
        if source is None or source.split(".")[0] in have:
            out.append(name)
            have.add(name)
    return out
