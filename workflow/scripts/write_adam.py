"""results/adam/: the ADaM datasets ADSL, ADQS, ADLB and ADAE as SAS transport v5 (.xpt) and CDISC Dataset-JSON
v1.1 (.json), and define.json, their metadata (k2trial.adam, config/adam/spec.yaml; docs/ADAM.md).

Inputs: the analysis datasets (subjects, vas, labs), the group assignment, the clean symptom diary (dates and diary
record order), the CTCAE grades and the AE listing of the safety analysis, and what the lab standards are made of.
The creation datetime written into every file is the data's last date (k2trial.adam.delivery_datetime), not the
clock, so the same data give the same bytes.
"""

import k2trial.runtime.start_job  # noqa: F401  (first: the run's preloaded job server runs this job if it can)

# isort: split
import logging
from pathlib import Path

from k2trial.adam import (
    adlb,
    adqs,
    conformed,
    delivery_datetime,
    derive_adae,
    derive_adlb,
    derive_adqs,
    derive_adsl,
    load_spec,
    parameters_from_config,
    write_delivery,
)
from k2trial.analysis.safety import lab_table
from k2trial.analysis.safety.ctcae import load_ctcae_criteria
from k2trial.core import schema
from k2trial.data.cleaning import read_clean_table
from k2trial.runtime.step import contract as study_contract
from k2trial.runtime.step import lab_standards, run_step, vocabulary

logger = logging.getLogger("k2trial.write_adam")
#: Repeated text of ctcae_grades.csv and vas.csv read as categories (100,000 subjects give 5.1 million grades and 5.4
#: million VAS rows; labs.csv's are lab_table.LAB_CATEGORIES); of these files only the columns the derivations declare
#: (k2trial.adam.adlb LABS, GRADES, k2trial.adam.adqs VAS) are read.
GRADE_CATEGORIES = ("subject_id", "param", "visit", "term")
VAS_CATEGORIES = ("subject_id", "param", "visit")
#: ... and of the clean symptom diary (k2trial.adam.adqs.DIARY reads them per distinct value)
DIARY_CATEGORIES = ("subject_id", "visit", "assessment_date", "symptom")


def read_declared(path, needs, categorical=()):
    """The columns of an artifact a derivation declares (k2trial.adam.common.Needs: required, and the optional ones
    the file has), text columns in `categorical` as categories."""
    header = schema.read_header(path)
    columns = [*needs.required, *(c for c in needs.optional if c in header)]
    return schema.read_artifact(path, needs.artifact, columns, categorical=[c for c in categorical if c in columns])


def main(smk):
    criteria = load_ctcae_criteria(smk.input.ctcae_criteria)
    standards = lab_standards(smk, criteria)  # the study's lab panel (k2trial.core.lab_panel)
    words = vocabulary(smk)
    parameters = parameters_from_config(
        smk.params.settings, final_visit=words.final_visit.label, ctcae_version=standards.ctcae_version
    )
    vas_unit = (smk.params.settings["protocol"].get("vas") or {}).get("unit", "")
    full = load_spec(smk.input.spec, label=str(smk.input.spec))
    # the datasets and variables whose sources this build makes (a safety-only study: no ADQS, no severity group)
    spec = full.for_sources(
        schema.artifact_name(p) for key, p in smk.input.items() if key not in ("spec", "codebook", "lab_units")
    ).with_protocol_terms(words, vas_unit, smk.params.arms, smk.params.adam_study)
    not_used = set(full.parameter_descriptions) - set(spec.parameter_descriptions)
    spec = spec.with_parameters({k: v for k, v in parameters.items() if k not in not_used})
    contract = study_contract(smk)
    subjects = schema.read_artifact(smk.input.subjects, "analysis/subjects")
    if "allocation" in smk.input.keys():  # a randomised study: the arm as randomised (ADSL ARMCD, TRT01P)
        # and the arm given when the data record it (ACTARMCD, TRT01A; SDTM DM.ACTARMCD)
        allocation = schema.read_artifact(
            smk.input.allocation, "analysis/allocation", ["subject_id", "arm"], optional=("actual_arm",)
        )
        subjects = subjects.merge(allocation, on="subject_id", how="left", validate="one_to_one")
    assignment = (
        schema.read_artifact(smk.input.assignment, "groups/assignment") if "assignment" in smk.input.keys() else None
    )
    adsl = derive_adsl(subjects, assignment, spec)
    # one dataset at a time, the largest first: each is conformed as soon as it is derived (k2trial.adam.conformed:
    # the checks of the delivery, the compact form it is written from) and its derivation released before the next
    # one is derived; each input is read where it is used (100,000 subjects: 5.4 million lab and VAS rows each)
    compact = {
        "ADLB": conformed(
            derive_adlb(
                read_declared(smk.input.labs, adlb.LABS, lab_table.LAB_CATEGORIES),
                subjects,
                read_declared(smk.input.ctcae_grades, adlb.GRADES, GRADE_CATEGORIES),
                adsl,
                standards,
                spec,
            ),
            spec.dataset("ADLB"),
            spec,
        )
    }
    if "ADQS" in spec.datasets:  # a study with a diary (a safety-only study has no ADQS: AdamSpec.for_sources)
        compact["ADQS"] = conformed(
            derive_adqs(
                read_declared(smk.input.vas, adqs.VAS, VAS_CATEGORIES),
                read_clean_table(
                    smk.input.symptom_diary, contract.tables["symptom_diary.csv"], categorical=DIARY_CATEGORIES
                ),
                adsl,
                spec,
            ),
            spec.dataset("ADQS"),
            spec,
        )
    compact["ADAE"] = conformed(
        derive_adae(schema.read_artifact(smk.input.ae_listing, "safety/ae_listing"), adsl, spec),
        spec.dataset("ADAE"),
        spec,
    )
    frames = {"ADSL": adsl, **{name: compact.pop(name) for name in spec.datasets if name in compact}}
    # the one creation datetime of every file, from all datasets before the first file is written
    created = delivery_datetime(frames, spec)
    folder = Path(smk.output.define).parent
    written = write_delivery(frames, spec, folder, created=created)
    declared = sorted(Path(p).name for p in smk.output if p != smk.output.provenance)
    if sorted(written) != declared:
        raise RuntimeError(f"write_adam wrote {sorted(written)}, the rule declares {declared}")
    logger.info(
        "ADaM delivery of %s: %s", created.isoformat(), ", ".join(f"{n} {len(f)} records" for n, f in frames.items())
    )


run_step(snakemake, main)
