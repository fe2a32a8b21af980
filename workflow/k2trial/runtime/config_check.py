"""The workflow config (config/config.yaml merged with a study config) checked against its JSON schema,
workflow/schemas/config.schema.yaml, when the Snakefile is parsed.

What snakemake.utils.validate does for a schema without defaults, with the schema parsed by libyaml instead of
Snakemake's pure-Python YAML loader: every snakemake call parses the Snakefile, a no-op run included, and reading the
500-line schema was a tenth of a no-op run's parse time (issue 18).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from k2trial.core.errors import ConfigError
from k2trial.core.io import read_yaml


def validate_config(config: Mapping[str, Any], schema_path: str | Path) -> None:
    """Raise ConfigError naming the config key, the value's problem and the schema rule for the first violation
    (the most deeply nested one, as jsonschema ranks them); return None when the config conforms."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    schema = read_yaml(schema_path)
    error = best_match(Draft202012Validator(schema).iter_errors(dict(config)))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        rule = "/".join(str(p) for p in error.absolute_schema_path)
        raise ConfigError(f"config key {where}: {error.message} (schema {schema_path}, rule {rule})")
