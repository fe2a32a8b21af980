"""ADaM datasets (issue 16): ADSL, ADQS, ADLB and ADAE derived from the analysis artifacts, with one metadata
specification (config/adam/spec.yaml) that drives their variables, types, lengths, labels and codelists, written
as SAS transport v5 and CDISC Dataset-JSON v1.1 with a define.json beside them.

    spec = load_spec("config/adam/spec.yaml").with_protocol_terms(vocabulary, vas_unit="cm")   # the study's items
    spec = spec.with_parameters(parameters_from_config(config, final_visit=vocabulary.final_visit.label,
                                                       ctcae_version="5.0"))
    adsl = derive_adsl(subjects, assignment, spec)                      # analysis/subjects, groups/assignment
    adqs = derive_adqs(vas, diary, adsl, spec)                          # analysis/vas, clean/symptom_diary
    adlb = derive_adlb(labs, subjects, grades, adsl, standards, spec)   # analysis/labs, safety/ctcae_grades
    adae = derive_adae(listing, adsl, spec)                             # safety/ae_listing
    frames = {"ADSL": adsl, "ADQS": adqs, "ADLB": adlb, "ADAE": adae}
    write_delivery(frames, spec, out_dir, created=delivery_datetime(frames, spec))   # the data's last date
    # millions of records: conform each dataset as it is derived (compact, same checks), then derive the next
    frames = {"ADLB": conformed(adlb, spec.dataset("ADLB"), spec), ...}

Pure functions: frames in, frames out; only `write_delivery` touches files. The way back, from ADaM datasets to
the frames the efficacy and safety functions take, is k2trial.adam.inputs. Documentation for users: docs/ADAM.md.
"""

from k2trial.adam.adae import derive_adae
from k2trial.adam.adlb import derive_adlb
from k2trial.adam.adqs import derive_adqs
from k2trial.adam.adsl import derive_adsl
from k2trial.adam.spec import AdamSpec, load_spec, parameters_from_config
from k2trial.adam.write import (
    Conformed,
    conform,
    conformed,
    delivery_bytes,
    delivery_datetime,
    delivery_metadata,
    write_delivery,
)

__all__ = [
    "AdamSpec",
    "Conformed",
    "conform",
    "conformed",
    "delivery_bytes",
    "delivery_datetime",
    "delivery_metadata",
    "derive_adae",
    "derive_adlb",
    "derive_adqs",
    "derive_adsl",
    "load_spec",
    "parameters_from_config",
    "write_delivery",
]
