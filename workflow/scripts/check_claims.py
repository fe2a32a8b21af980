"""Published-claims check (results/claims/claims.csv and claims_summary.json).

Reads the claims spec (config/claims.yaml), the raw dataset.yaml (is the dataset simulated?) and, of every other
input, only the columns the claims use; the input names are the artifact names of the spec. Rules:
k2trial.analysis.claims.
"""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
import logging
from pathlib import Path

import pandas as pd

from k2trial.analysis import claims as claims_lib
from k2trial.core import schema
from k2trial.core.io import read_yaml, write_json
from k2trial.runtime.step import run_step

logger = logging.getLogger("k2trial.check_claims")
#: Inputs that are not artifacts of the claims.
NON_ARTIFACT_INPUTS = ("claims", "dataset")


def read_artifact(path: str, columns: list[str]) -> pd.DataFrame | None:
    """The requested columns present in an artifact (k2trial.core.schema dtypes).

    Columns absent from the file are left out, so the claim reading them is reported not evaluable.
    """
    if not Path(path).exists():
        return None
    header = schema.read_header(path)
    present = [c for c in columns if c in header]
    return schema.read_artifact(path, schema.artifact_name(path), present)


def main(smk):
    spec = read_yaml(smk.input.claims)
    claims = claims_lib.parse_claims(spec)
    dataset = read_yaml(smk.input.dataset) or {}
    data_simulated = claims_lib.dataset_is_simulated(dataset)

    inputs = {k: v for k, v in smk.input.items() if k not in NON_ARTIFACT_INPUTS}
    artifacts = {}
    for name, columns in claims_lib.required_columns(claims).items():
        if name not in inputs:
            logger.warning("claims spec reads artifact %r, which is not an input of the rule: not evaluable", name)
            continue
        artifacts[name] = read_artifact(inputs[name], columns)

    definitions = dict(smk.params.definitions)
    definitions["confidence_percent"] = 100 * definitions["confidence"]
    table = claims_lib.evaluate_claims(
        claims,
        artifacts,
        artifact_labels={name: Path(path).as_posix() for name, path in inputs.items()},
        definitions=definitions,
        data_simulated=data_simulated,
    )
    summary = claims_lib.claims_summary(table, data_simulated=data_simulated, dataset=dataset)
    schema.write_artifact(table, smk.output.claims, "claims/claims")
    write_json(summary, smk.output.summary)
    logger.info(
        "%d claim(s): %s; all primary reproduced: %s; data simulated: %s\n%s",
        len(table),
        summary["counts"],
        summary["all_primary_reproduced"],
        data_simulated,
        table[["claim_id", "status", "observed"]].to_string(index=False),
    )


run_step(snakemake, main)
