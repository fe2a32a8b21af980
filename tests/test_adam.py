"""ADaM (issue 16): ADSL, ADQS, ADLB and ADAE of a real build (rule write_adam, results/adam/), written as XPT v5 and
Dataset-JSON v1.1 with define.json, read back in R (haven) and Python, and the key efficacy and safety tables computed
from them with the pipeline's own functions, equal to the pipeline's artifacts.

The build runs once per session in a throw-away copy of the repository (only the rules whose artifacts ADaM reads
and the tables are compared with, groups, efficacy, safety, and write_adam itself). Tests needing R skip without it
unless K2TRIAL_REQUIRE_R=1 (tests/rscript.py); the Dataset-JSON schema test skips without ../shared/schemas (looked
for beside the repository and its parents).
"""

from __future__ import annotations

import copy
import datetime as dt
import filecmp
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rscript
import yaml
from conftest import _merged, copy_workflow, read_config, run_snakemake, shipped_vocabulary

from k2trial.adam import adae as adae_module
from k2trial.adam import adlb as adlb_module
from k2trial.adam import adqs as adqs_module
from k2trial.adam import adsl as adsl_module
from k2trial.adam import (
    delivery_bytes,
    delivery_datetime,
    derive_adae,
    derive_adlb,
    derive_adqs,
    derive_adsl,
    inputs,
    load_spec,
    parameters_from_config,
    write_delivery,
)
from k2trial.adam.common import AdamDataError, iso_dates, sas_dates
from k2trial.adam.write import conform, dataset_json_text, set_xpt_formats, xpt_namestrs
from k2trial.analysis import efficacy, groups
from k2trial.analysis.safety import adverse_events as ae
from k2trial.analysis.safety import lab_grades, lab_summaries, lab_table
from k2trial.analysis.safety.ctcae import criteria_file, load_ctcae_criteria
from k2trial.analysis.safety.standards import load_lab_standards
from k2trial.analysis.vas_cube import build_vas_cube
from k2trial.core import schema
from k2trial.core.errors import ArtifactError, ConfigError
from k2trial.core.io import read_yaml
from k2trial.core.vocabulary import load_vocabulary
from k2trial.data import sdtm
from k2trial.data.cleaning import read_clean_table
from k2trial.data.contract import read_contract

pytestmark = pytest.mark.workflow
r_session = rscript.r_session

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "config" / "adam" / "spec.yaml"
#: CDISC's published Dataset-JSON v1.1 schema, in the `shared` folder beside the repository (../shared; a worktree
#: sits one level deeper, ../../shared); the first that exists.
SCHEMA = next(
    (p / "shared" / "schemas" / "dataset-json-1.1.schema.json" for p in ROOT.parents
     if (p / "shared" / "schemas" / "dataset-json-1.1.schema.json").exists()),
    ROOT.parent / "shared" / "schemas" / "dataset-json-1.1.schema.json",
)  # fmt: skip
CREATED = dt.datetime(2013, 10, 1, 12, 0, 0)
#: The rules whose artifacts ADaM reads and whose tables are compared (figures, tables, notebooks are not needed).
TARGETS = ("assign_groups", "efficacy_analysis", "safety_analysis", "write_adam")
NAMES = ("ADSL", "ADQS", "ADLB", "ADAE")
DERIVE_MODULES = {"ADSL": adsl_module, "ADQS": adqs_module, "ADLB": adlb_module, "ADAE": adae_module}


# ----------------------------------------------------------------------------------------------------------------
# The build and the delivery (once per session)
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def build(tmp_path_factory) -> Path:
    work = copy_workflow(tmp_path_factory.mktemp("adam_build") / "wf")
    done = run_snakemake(work, *TARGETS, cores=2)
    if done.returncode != 0:
        pytest.fail(f"snakemake {' '.join(TARGETS)} failed:\n{done.stderr[-4000:]}", pytrace=False)
    return work


class Context:
    """The build's configuration, vocabulary, lab standards, contract, the spec with its parameters, artifacts."""

    def __init__(self, work: Path):
        self.work = work
        self.results = work / "results"
        self.config = read_config()  # the copy's config: the repository's, merged with the default study
        self.lab_units = read_yaml(work / "config" / "lab_units.yaml")
        criteria = load_ctcae_criteria(criteria_file(work / "config" / "ctcae", self.config["safety"]["ctcae_version"]))
        self.standards = load_lab_standards(self.lab_units, read_yaml(work / "config" / "lab_standards.yaml"), criteria)
        self.words = load_vocabulary(read_yaml(work / "data" / "raw" / "codebook.yaml"), self.lab_units, self.config)
        self.contract = read_contract(work / "data" / "raw" / "codebook.yaml", work / "config" / "lab_units.yaml")
        parameters = parameters_from_config(
            self.config, final_visit=self.words.final_visit.label, ctcae_version=self.standards.ctcae_version
        )
        spec = load_spec(work / "config" / "adam" / "spec.yaml", label="config/adam/spec.yaml")
        self.spec = spec.with_protocol_terms(
            self.words, self.config["protocol"]["vas"]["unit"], self.config.get("arms"), self.config.get("adam")
        ).with_parameters(parameters)

    def artifact(self, name: str) -> pd.DataFrame:
        return schema.read_artifact(self.results / f"{name}.csv", name)

    def clean(self, table: str) -> pd.DataFrame:
        return read_clean_table(self.results / "clean" / table, self.contract.tables[table])

    def derive(self) -> dict[str, pd.DataFrame]:
        subjects = self.artifact("analysis/subjects")
        adsl = derive_adsl(subjects, self.artifact("groups/assignment"), self.spec)
        return {
            "ADSL": adsl,
            "ADQS": derive_adqs(self.artifact("analysis/vas"), self.clean("symptom_diary.csv"), adsl, self.spec),
            "ADLB": derive_adlb(
                self.artifact("analysis/labs"),
                subjects,
                self.artifact("safety/ctcae_grades"),
                adsl,
                self.standards,
                self.spec,
            ),  # fmt: skip
            "ADAE": derive_adae(self.artifact("safety/ae_listing"), adsl, self.spec),
        }


@pytest.fixture(scope="session")
def ctx(build) -> Context:
    return Context(build)


@pytest.fixture(scope="session")
def adam(ctx) -> dict[str, pd.DataFrame]:
    """The four datasets conformed to the spec (what the files hold)."""
    return {name: conform(frame, ctx.spec.dataset(name), ctx.spec) for name, frame in ctx.derive().items()}


@pytest.fixture(scope="session")
def delivery(ctx) -> Path:
    """The build's ADaM delivery (rule write_adam)."""
    return ctx.results / "adam"


@pytest.fixture(scope="session")
def read_back(delivery) -> dict[str, pd.DataFrame]:
    """The XPT files read back with pyreadstat (k2trial.data.sdtm.read_xpt: dates as ISO text)."""
    return {name: sdtm.read_xpt(delivery / f"{name.lower()}.xpt") for name in NAMES}


def _same_file(table: pd.DataFrame, artifact: str, expected: Path, tmp_path: Path) -> None:
    written = tmp_path / expected.name
    schema.write_artifact(table, written, artifact)
    assert filecmp.cmp(written, expected, shallow=False), f"{artifact} from ADaM differs from {expected}"


# ----------------------------------------------------------------------------------------------------------------
# The spec
# ----------------------------------------------------------------------------------------------------------------
def test_spec_sources_are_the_columns_the_derivations_declare():
    """Every artifact column the spec names as a source is one the derivation module declares (required or
    optional), every ADaM source is a variable the module takes from ADSL or one of its own, and every required
    column exists in the artifact's schema: the spec, the code and the artifacts agree on what is read."""
    spec = load_spec(SPEC)
    assert list(spec.datasets) == list(NAMES)
    for name, dataset in spec.datasets.items():
        module = DERIVE_MODULES[name]
        needs = {n.artifact: n for n in vars(module).values() if isinstance(n, adsl_module.Needs)}
        declared = {f"{a}.{c}" for a, n in needs.items() for c in (*n.required, *n.optional)}
        from_adsl = {f"ADSL.{v}" for v in getattr(module, "ADSL_VARIABLES", ())}
        own = {f"{name}.{v}" for v in dataset.names}
        for variable in dataset.variables:
            for source in variable.source:
                assert source in declared | from_adsl | own, (name, variable.name, source)
        for artifact, need in needs.items():
            if artifact.startswith("clean/"):
                known = set(read_contract(ROOT / "data/raw/codebook.yaml", ROOT / "config/lab_units.yaml").tables[
                    artifact.split("/")[1] + ".csv"].column_names)  # fmt: skip
            else:
                known = set(schema.columns(artifact))
            assert set(need.required) <= known, (artifact, set(need.required) - known)


def test_spec_labels_fit_xpt_and_lab_params_follow_lab_units():
    spec = load_spec(SPEC).with_protocol_terms(shipped_vocabulary(), "cm", study={"arm": "K2", "arm_label": "K2"})
    for dataset in spec.datasets.values():
        assert len(dataset.label) <= 40
        assert all(len(v.label) <= 40 and v.label.isascii() for v in dataset.variables)
        assert all(v.format == "DATE9." for v in dataset.variables if v.is_date)
    lab_units = read_yaml(ROOT / "config" / "lab_units.yaml")["tests"]
    terms = spec.codelist("LBPARAM").terms
    assert [t.code for t in terms] == list(lab_units)  # the default study's panel is every test, in file order
    assert [t.decode for t in terms] == [f"{s['name']} ({s['unit']})" for s in lab_units.values()]
    assert terms[0].decode == "Haemoglobin (g/dL)"


def _var(raw: dict, dataset: str, name: str) -> dict:
    return next(v for v in raw["datasets"][dataset]["variables"] if v["name"] == name)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: _var(s, "ADSL", "AGE").update(label="Age of the subject at informed consent, years"),
         "config/adam/spec.yaml: dataset ADSL, variable AGE, key 'label'"),
        (lambda s: _var(s, "ADSL", "SEX").update(codelist="GENDER"),
         "dataset ADSL, variable SEX, key 'codelist': no codelist 'GENDER'"),
        (lambda s: _var(s, "ADLB", "AVAL").update(origin="Collected"),
         "dataset ADLB, variable AVAL, key 'origin'"),
        (lambda s: _var(s, "ADSL", "AGE").update(length=3),
         "dataset ADSL, variable AGE, key 'length': only char variables"),
        (lambda s: _var(s, "ADQS", "ADT").update(derivation="after {week_window} days"),
         "dataset ADQS, variable ADT, key 'derivation': placeholder {week_window}"),
        (lambda s: _var(s, "ADSL", "TRTSDT").pop("format"),
         "dataset ADSL, variable TRTSDT, key 'format': a date needs a display format"),
        (lambda s: s["codelists"]["NY"]["terms"].append({"code": "U", "decode": "Unknown", "from": [True]}),
         "codelist NY, key 'from': artifact value 'true' maps to two codes"),
        (lambda s: s["datasets"]["ADAE"].update(keys=["STUDYID", "USUBJID", "ASEQ"]),
         "dataset ADAE, key 'keys'"),
    ],
    ids=["label", "codelist", "origin", "length", "placeholder", "format", "from", "keys"],
)  # fmt: skip
def test_spec_errors_name_file_dataset_variable_and_key(tmp_path, edit, message):
    raw = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    edit(raw)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_spec(path, label="config/adam/spec.yaml")
    assert message in str(error.value)


def test_parameters_must_all_be_given_and_fill_the_derivations(ctx):
    spec = load_spec(SPEC)
    with pytest.raises(ConfigError, match="not given: .*severe_threshold"):
        spec.with_parameters({"b12_adequate_from": 300})
    sevgr1 = ctx.spec.dataset("ADSL").variable("SEVGR1").derivation
    assert f">= {ctx.config['groups']['severe_threshold']:g} cm" in sevgr1
    assert "{" not in json.dumps([v.derivation for d in ctx.spec.datasets.values() for v in d.variables])


# ----------------------------------------------------------------------------------------------------------------
# Contents
# ----------------------------------------------------------------------------------------------------------------
def test_adsl_has_one_row_per_subject(ctx, adam, read_back):
    subjects = ctx.artifact("analysis/subjects")
    adsl = adam["ADSL"]
    assert len(adsl) == len(subjects) and adsl["USUBJID"].is_unique
    # the build's adsl.xpt too (rule write_adam)
    from_file = read_back["ADSL"]["USUBJID"]
    assert from_file.is_unique and from_file.tolist() == subjects["subject_id"].tolist()
    assert adsl["USUBJID"].tolist() == subjects["subject_id"].tolist()
    assert set(adsl["ARMCD"]) == {"MK7"} and (adsl["TRT01A"] == adsl["TRT01P"]).all()
    assert adsl["ITTFL"].eq("Y").all()
    assignment = ctx.artifact("groups/assignment")
    severe = assignment["severity_group"].eq("severe").to_numpy()
    assert (adsl.loc[severe, "SEVGR1"] == "SEVERE").all() and (adsl.loc[severe, "SEVGR1N"] == 2).all()
    assert (adsl.loc[~severe, "SEVGR1N"] == 1).all()
    assert (adsl["TRTDURD"] == adsl["TRTEDT"] - adsl["TRTSDT"] + 1).all()


def test_adqs_composite_records_are_averages_of_the_item_records(adam):
    adqs = adam["ADQS"]
    composite = adqs["PARAMCD"] == "VASCOMP"
    assert (adqs.loc[composite, "DTYPE"] == "AVERAGE").all() and (adqs.loc[~composite, "DTYPE"] == "").all()
    assert (adqs.loc[composite, "PARAMTYP"] == "DERIVED").all()
    assert adqs.loc[composite, "QSSEQ"].isna().all() and adqs.loc[~composite, "QSSEQ"].notna().all()
    grouped = adqs[~composite].groupby(["USUBJID", "AVISITN"])["AVAL"]
    items = grouped.mean().where(grouped.count() == grouped.size())  # missing when an item is missing
    means = adqs[composite].set_index(["USUBJID", "AVISITN"])["AVAL"]
    assert means.isna().sum() >= 1  # the shipped data have a missing item, hence a missing composite
    assert np.allclose(means.to_numpy(), items.reindex(means.index).to_numpy(), atol=1e-12, equal_nan=True)
    baseline = adqs[adqs["ABLFL"] == "Y"]
    assert len(baseline) == baseline[["USUBJID", "PARAMCD"]].drop_duplicates().shape[0]
    assert (baseline["AVISITN"] == 0).all() and (baseline["AVAL"] == baseline["BASE"]).all()
    first_dose = adqs["USUBJID"].map(adam["ADSL"].set_index("USUBJID")["TRTSDT"])
    days = adqs["ADT"] - first_dose
    assert (adqs["ADY"] == np.where(days >= 0, days + 1, days)).all()
    assert not (adqs["ADY"] == 0).any()


def test_adlb_baseline_ranges_grades_and_shift(ctx, adam):
    adlb = adam["ADLB"]
    baseline = adlb[adlb["ABLFL"] == "Y"]
    assert len(baseline) == len(baseline[["USUBJID", "PARAMCD"]].drop_duplicates())
    assert (baseline["AVAL"] == baseline["BASE"]).all()
    first_dose = adam["ADSL"].set_index("USUBJID")["TRTSDT"]
    assert (baseline["ADT"].to_numpy() <= baseline["USUBJID"].map(first_dose).to_numpy()).all()
    bnrind = baseline.set_index(["USUBJID", "PARAMCD"])["ANRIND"]
    key = pd.MultiIndex.from_frame(adlb[["USUBJID", "PARAMCD"]])
    assert (adlb["BNRIND"].to_numpy() == bnrind.reindex(key).fillna("").to_numpy()).all()
    post = adlb["AVISITN"] > 0
    assert (adlb.loc[post, "SHIFT1"] == adlb.loc[post, "BNRIND"] + " to " + adlb.loc[post, "ANRIND"]).all()
    assert (adlb.loc[~post, "SHIFT1"] == "").all()
    # default ranges (SITE-B gives none for some tests) are flagged and are the configured defaults
    default = adlb["ANRDEFFL"] == "Y"
    assert default.sum() > 0
    sex = adlb["USUBJID"].map(adam["ADSL"].set_index("USUBJID")["SEX"])
    for i in np.flatnonzero(default.to_numpy())[:20]:
        test = ctx.standards.test(adlb["PARAMCD"].iloc[i])
        assert (adlb["ANRLO"].iloc[i], adlb["ANRHI"].iloc[i]) == tuple(test.ranges[sex.iloc[i]])
    # a censored result keeps its limit
    censored = adlb[adlb["CENSFL"] == "Y"]
    assert len(censored) >= 1 and (censored["AVAL"] > 0).all()
    # every grade is the one of ctcae_grades.csv, in its direction
    grades = ctx.artifact("safety/ctcae_grades")
    direction = {t.term: t.direction for t in ctx.standards.terms}
    for _, row in grades.iloc[:: max(1, len(grades) // 200)].iterrows():
        suffix = "L" if direction[row["term"]] == "low" else "H"
        hit = adlb[(adlb["USUBJID"] == row["subject_id"]) & (adlb["PARAMCD"] == row["param"])
                   & (adlb["AVISITN"] == row["week"])]  # fmt: skip
        assert len(hit) == 1
        assert hit[f"ATOXDSC{suffix}"].iloc[0] == row["term"]
        assert hit[f"ATOXGR{suffix}"].iloc[0] == ("" if pd.isna(row["grade"]) else str(row["grade"]))
    assert (adlb.loc[adlb["ANL01FL"] == "Y", "AVISITN"] > 0).all()


def test_sequence_numbers_are_those_of_our_sdtm_writer(ctx, adam):
    """LBSEQ and QSSEQ from CSV input are the --SEQ our SDTM writer gives the same clean records."""
    tables = {
        name: pd.read_csv(ctx.results / "clean" / name, dtype=str, keep_default_na=False).drop(columns="raw_row")
        for name in ("subjects.csv", "symptom_diary.csv", "labs.csv", "adverse_events.csv", "dosing.csv")
    }
    domains = sdtm.raw_to_sdtm(tables, sdtm.load_mapping(ctx.work / "config" / "sdtm_mapping.yaml"), sdtm.K2_STUDY,
                               ctx.lab_units)  # fmt: skip
    lb = domains["LB"].set_index(["USUBJID", "LBTESTCD", "VISITNUM"])["LBSEQ"]
    adlb = adam["ADLB"]
    ours = pd.MultiIndex.from_arrays([adlb["USUBJID"], adlb["PARAMCD"], adlb["AVISITN"]])
    assert (lb.reindex(ours).to_numpy() == adlb["LBSEQ"].to_numpy()).all()
    qs = domains["QS"].set_index(["USUBJID", "QSTESTCD", "VISITNUM"])["QSSEQ"]
    items = adam["ADQS"][adam["ADQS"]["PARAMCD"] != "VASCOMP"]
    ours = pd.MultiIndex.from_arrays([items["USUBJID"], items["PARAMCD"], items["AVISITN"]])
    assert (qs.reindex(ours).to_numpy() == items["QSSEQ"].to_numpy()).all()


# ----------------------------------------------------------------------------------------------------------------
# Files: R, schema, lengths, determinism, define.json
# ----------------------------------------------------------------------------------------------------------------
_R_READ = """
read_one <- function(f) {
  d <- haven::read_xpt(f)
  text_of <- function(x, what) { a <- attr(x, what); if (is.null(a)) "" else a }
  list(
    label = text_of(d, "label"),
    names = as.list(names(d)),
    labels = as.list(unname(vapply(d, text_of, "", what = "label"))),
    formats = as.list(unname(vapply(d, text_of, "", what = "format.sas"))),
    classes = as.list(unname(vapply(d, function(x) class(x)[1], ""))),
    columns = lapply(d, function(x) as.list(if (inherits(x, "Date")) format(x, "%Y-%m-%d") else as.vector(x)))
  )
}
result <- lapply(list(FILES), read_one)
names(result) <- c(NAMES)
"""


def _artifact_alignment(ctx: Context, adam: dict[str, pd.DataFrame]) -> dict[str, dict[str, pd.DataFrame]]:
    """Per dataset, the artifacts whose rows correspond one to one with the dataset's records (checked)."""
    adsl, adqs, adlb = adam["ADSL"], adam["ADQS"], adam["ADLB"]
    subjects, assignment = ctx.artifact("analysis/subjects"), ctx.artifact("groups/assignment")
    assert subjects["subject_id"].tolist() == adsl["USUBJID"].tolist() == assignment["subject_id"].tolist()
    vas = ctx.artifact("analysis/vas")
    assert vas["subject_id"].tolist() == adqs["USUBJID"].tolist() and (vas["week"] == adqs["AVISITN"]).all()
    labs = ctx.artifact("analysis/labs")
    labs = labs[labs["subject_id"].isin(adsl.loc[adsl["SAFFL"] == "Y", "USUBJID"])].reset_index(drop=True)
    assert labs["subject_id"].tolist() == adlb["USUBJID"].tolist() and (labs["param"] == adlb["PARAMCD"]).all()
    listing = ctx.artifact("safety/ae_listing")
    return {
        "ADSL": {"analysis/subjects": subjects, "groups/assignment": assignment},
        "ADQS": {"analysis/vas": vas},
        "ADLB": {"analysis/labs": labs},
        "ADAE": {"safety/ae_listing": listing},
    }


def _expected_from_artifact(variable, frame: pd.DataFrame, column: str, spec) -> list:
    values = frame[column]
    if variable.codelist == "Y":  # flags that are Y or missing: false is missing
        values = values.where(values.astype("boolean").fillna(False).to_numpy(dtype=bool), None)
    if variable.codelist:
        out = spec.codelist(variable.codelist).recode(values, artifact="artifact", column=column)
        return out.tolist() if variable.type == "char" else out.to_numpy(dtype=float).tolist()
    if variable.is_date:
        return iso_dates(sas_dates(values, adsl_module.SUBJECTS, column))
    if variable.type == "num":
        return pd.to_numeric(values).to_numpy(dtype=float).tolist()
    return values.astype(object).where(values.notna(), "").astype(str).tolist()


def _r_values(values, variable) -> list:
    if not isinstance(values, list):
        values = [values]
    if variable.type == "char" and not variable.is_date:
        return ["" if v is None else v for v in values]
    if variable.is_date:
        return values
    return [np.nan if v is None else float(v) for v in values]


def _equal(a: list, b: list) -> bool:
    if len(a) != len(b):
        return False
    return all((x == y) or (isinstance(x, float) and isinstance(y, float) and np.isnan(x) and np.isnan(y))
               for x, y in zip(a, b, strict=True))  # fmt: skip


@rscript.requires_r
def test_every_xpt_reads_in_r_with_the_values_and_labels_of_our_datasets(r_session, ctx, adam, delivery):
    r_session.need("haven")
    files = ", ".join(f'"{(delivery / (n.lower() + ".xpt")).as_posix()}"' for n in NAMES)
    names = ", ".join(f'"{n}"' for n in NAMES)
    theirs = r_session.run(_R_READ.replace("FILES", files).replace("NAMES", names))
    aligned = _artifact_alignment(ctx, adam)
    compared_with_artifacts = 0
    for name in NAMES:
        dataset, ours, r = ctx.spec.dataset(name), adam[name], theirs[name]
        assert r["label"] == dataset.label
        assert r["names"] == dataset.names
        assert r["labels"] == [v.label for v in dataset.variables]
        assert r["formats"] == [v.format.rstrip(".") if v.format else "" for v in dataset.variables]
        for variable, cls in zip(dataset.variables, r["classes"], strict=True):
            assert cls == ("Date" if variable.is_date else "character" if variable.type == "char" else "numeric")
            values = _r_values(r["columns"][variable.name], variable)
            if len(ours) == 0:
                assert values in ([], [""], [None]), (name, variable.name)
                continue
            mine = iso_dates(ours[variable.name]) if variable.is_date else ours[variable.name].tolist()
            assert _equal(values, mine), (name, variable.name)
            # the same values as the analysis artifact the variable is copied from (row for row)
            single = [s for s in variable.source if s.rsplit(".", 1)[0] in aligned[name]]
            if variable.origin == "Predecessor" and len(single) == 1:
                artifact, column = single[0].rsplit(".", 1)
                frame = aligned[name][artifact]
                if column in frame.columns:
                    assert _equal(values, _expected_from_artifact(variable, frame, column, ctx.spec)), (name, variable)
                    compared_with_artifacts += 1
    assert compared_with_artifacts >= 35


def test_dataset_json_validates_against_the_cdisc_schema_and_carries_dates_as_iso(ctx, adam, delivery):
    if not SCHEMA.exists():
        pytest.skip(f"CDISC Dataset-JSON v1.1 schema not found at {SCHEMA}")
    import jsonschema

    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    for name in NAMES:
        document = json.loads((delivery / f"{name.lower()}.json").read_text(encoding="utf-8"))
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, (name, [e.message for e in errors[:5]])
        dataset = ctx.spec.dataset(name)
        assert document["records"] == len(adam[name]) == len(document["rows"])
        assert [c["name"] for c in document["columns"]] == dataset.names
        for i, (column, variable) in enumerate(zip(document["columns"], dataset.variables, strict=True)):
            assert column["label"] == variable.label
            if variable.is_date:
                assert (column["dataType"], column["targetDataType"], column["displayFormat"]) == (
                    "date", "integer", "DATE9.")  # fmt: skip
                assert [row[i] for row in document["rows"]] == iso_dates(adam[name][variable.name])
            elif variable.datatype == "integer":
                assert column["dataType"] == "integer"
        ranks = {c["name"]: c["keySequence"] for c in document["columns"] if "keySequence" in c}
        assert sorted(ranks, key=ranks.get) == list(dataset.keys) and sorted(ranks.values()) == list(
            range(1, len(dataset.keys) + 1)
        )
    back = {n: sdtm.read_dataset_json(delivery / f"{n.lower()}.json") for n in NAMES}
    for name in NAMES:
        xpt = sdtm.read_xpt(delivery / f"{name.lower()}.xpt")
        pd.testing.assert_frame_equal(back[name], xpt, check_dtype=False)


def test_xpt_lengths_are_the_minimum_the_data_need(ctx, adam, delivery):
    import pyreadstat

    define = json.loads((delivery / "define.json").read_text(encoding="utf-8"))
    for entry in define["datasets"]:
        name = entry["name"]
        data = (delivery / f"{name.lower()}.xpt").read_bytes()
        namestrs = {n["name"]: n for n in xpt_namestrs(data)}
        _, meta = pyreadstat.read_xport(str(delivery / f"{name.lower()}.xpt"), metadataonly=True)
        for variable in entry["variables"]:
            values = adam[name][variable["name"]]
            if variable["type"] == "char":
                need = max([1, *(len(str(v).encode("utf-8")) for v in values)])
                assert namestrs[variable["name"]]["type"] == 2
            else:
                need = 8
                assert namestrs[variable["name"]]["type"] == 1
            assert namestrs[variable["name"]]["length"] == need == variable["length"], (name, variable["name"])
            assert meta.variable_storage_width[variable["name"]] == need
    lengths = {v["name"]: v["length"] for v in define["datasets"][0]["variables"]}
    assert (lengths["USUBJID"], lengths["SEX"], lengths["STUDYID"]) == (6, 1, len(ctx.spec.studyid))


def test_writing_twice_gives_identical_bytes(ctx, delivery, tmp_path):
    """The library, called again on the build's artifacts, writes the bytes the rule wrote."""
    frames = ctx.derive()
    again = write_delivery(frames, ctx.spec, tmp_path, created=delivery_datetime(frames, ctx.spec))
    assert sorted(again) == sorted(p.name for p in delivery.iterdir())
    for file_name in again:
        assert (tmp_path / file_name).read_bytes() == (delivery / file_name).read_bytes(), file_name
    other = delivery_bytes(frames, ctx.spec, created=CREATED)
    assert other["adsl.xpt"] != (delivery / "adsl.xpt").read_bytes()  # the creation time is the caller's


def test_streamed_delivery_is_the_delivery_in_memory(ctx, tmp_path):
    """write_delivery streams each Dataset-JSON file in pieces: any piece size gives the bytes of delivery_bytes."""
    from k2trial.adam.write import conform, conformed, dataset_json_dataset_chunks

    frames = ctx.derive()
    created = delivery_datetime(frames, ctx.spec)
    in_memory = delivery_bytes(frames, ctx.spec, created=created)
    written = write_delivery(frames, ctx.spec, tmp_path, created=created)
    assert written == list(in_memory)
    for file_name in written:
        assert (tmp_path / file_name).read_bytes() == in_memory[file_name], file_name
    # each dataset conformed as it is derived (write_adam at scale): the same creation datetime and bytes
    compact = {name: conformed(frame, ctx.spec.dataset(name), ctx.spec) for name, frame in frames.items()}
    assert {name: len(c) for name, c in compact.items()} == {name: len(f) for name, f in frames.items()}
    assert delivery_datetime(compact, ctx.spec) == created
    assert delivery_bytes(compact, ctx.spec, created=created) == in_memory
    adqs = conform(frames["ADQS"], ctx.spec.dataset("ADQS"), ctx.spec)
    assert len(adqs) > 700  # several pieces of 7 records, and a last piece shorter than the others
    for size in (1, 7, len(adqs), len(adqs) + 1):
        pieces = list(
            dataset_json_dataset_chunks(adqs, ctx.spec.dataset("ADQS"), ctx.spec, created=created, chunk_records=size)
        )
        assert b"".join(pieces) == in_memory["adqs.json"], size
    empty = adqs.iloc[:0]
    assert b"".join(dataset_json_dataset_chunks(empty, ctx.spec.dataset("ADQS"), ctx.spec, created=created)).endswith(
        b',"rows":[]}\n'
    )


def _clean_dates(ctx: Context) -> list[str]:
    """Every date of the clean tables (the codebook's date columns), ISO text."""
    found = []
    for name, table in ctx.contract.tables.items():
        frame = pd.read_csv(ctx.results / "clean" / name, dtype=str, keep_default_na=False)
        for column in table.columns:
            if column.type == "date" and column.name in frame.columns:
                found += [v for v in frame[column.name] if v]
    return found


def test_the_creation_datetime_is_the_last_date_of_the_data(ctx, delivery):
    """The rule stamps every file with midnight of the latest date the clean data hold (not the clock): define.json,
    datasetJSONCreationDateTime and both XPT header timestamps of every member."""
    last = max(_clean_dates(ctx))
    assert last == "2013-04-27"  # the shipped simulation's last record (a clinic visit at week 8)
    define = json.loads((delivery / "define.json").read_text(encoding="utf-8"))
    assert define["creation_datetime"] == f"{last}T00:00:00"
    stamp = dt.date.fromisoformat(last).strftime("%d%b%y").upper().encode() + b":00:00:00"
    for name in NAMES:
        document = json.loads((delivery / f"{name.lower()}.json").read_text(encoding="utf-8"))
        assert document["datasetJSONCreationDateTime"] == f"{last}T00:00:00"
        data = (delivery / f"{name.lower()}.xpt").read_bytes()
        member = data.index(b"HEADER RECORD*******DSCRPTR HEADER RECORD")
        assert data[144:160] == data[160:176] == stamp  # library header: created, modified
        assert data[member + 144 : member + 160] == data[member + 160 : member + 176] == stamp


def test_define_json_describes_the_files_written(ctx, delivery):
    define = json.loads((delivery / "define.json").read_text(encoding="utf-8"))
    assert [d["name"] for d in define["datasets"]] == list(NAMES)
    assert define["study"]["studyid"] == ctx.spec.studyid
    assert define["parameters"]["severe_threshold"]["value"] == ctx.config["groups"]["severe_threshold"]
    codelists = {c["id"] for c in define["codelists"]}
    for entry in define["datasets"]:
        dataset = ctx.spec.dataset(entry["name"])
        assert entry["class"] == dataset.class_name and entry["keys"] == list(dataset.keys)
        for fmt, file in entry["files"].items():
            data = (delivery / file["name"]).read_bytes()
            assert file["name"].endswith(fmt) and file["sha256"] == hashlib.sha256(data).hexdigest()
        namestrs = xpt_namestrs((delivery / entry["files"]["xpt"]["name"]).read_bytes())
        assert [n["name"] for n in namestrs] == [v["name"] for v in entry["variables"]]
        assert [n["label"] for n in namestrs] == [v["label"] for v in entry["variables"]]
        for variable in entry["variables"]:
            spec_variable = dataset.variable(variable["name"])
            assert variable["origin"] == spec_variable.origin and variable["derivation"] == spec_variable.derivation
            assert variable["codelist"] is None or variable["codelist"] in codelists


def test_formats_are_set_in_the_namestr_records():
    frame = pd.DataFrame({"A": [1.0, 2.0], "B": ["x", "yy"]})
    data = sdtm.xpt_bytes(frame, name="T", created=CREATED, column_labels={"A": "a", "B": "b"})
    patched = set_xpt_formats(data, {"A": "DATE9."})
    assert [n["format"] for n in xpt_namestrs(patched)] == ["DATE9.", ""]
    assert len(patched) == len(data)
    with pytest.raises(ValueError, match="not in the XPT file"):
        set_xpt_formats(data, {"C": "DATE9."})


def test_dataset_json_layout_is_that_of_the_sdtm_writer():
    frame = pd.DataFrame({"USUBJID": ["K2-001", "K2-002"], "AVAL": [1.5, np.nan], "N": [1.0, 2.0]})
    metadata = dict(name="T", label="Test", creation_datetime=CREATED, keys=["USUBJID"], study_oid="S")
    meta, rows = sdtm.dataset_json_document(frame, **metadata)
    assert dataset_json_text(meta, rows) == sdtm.dataset_json_bytes(frame, **metadata)
    empty = frame.iloc[:0]
    meta, rows = sdtm.dataset_json_document(empty, **metadata)
    assert dataset_json_text(meta, rows) == sdtm.dataset_json_bytes(empty, **metadata)


# ----------------------------------------------------------------------------------------------------------------
# Tables both ways: the pipeline's functions on ADaM inputs (read back from the XPT files) = its artifacts
# ----------------------------------------------------------------------------------------------------------------
def test_efficacy_tables_from_adam_equal_the_pipeline(ctx, read_back, tmp_path):
    settings = efficacy.EfficacySettings.from_config(ctx.config["efficacy"], ctx.words)
    assignment = inputs.assignment_from_adsl(read_back["ADSL"], ctx.spec)
    members = groups.population_members(assignment, settings.populations)
    vas = inputs.vas_from_adqs(read_back["ADQS"], ctx.spec)
    cube = build_vas_cube(vas, assignment["subject_id"].to_numpy(), ctx.words, file_label="adqs.xpt")
    tables = {
        "paired_tests": efficacy.paired_tests(cube, members, settings),
        "descriptives": efficacy.descriptives_table(cube, members, settings),
        "friedman": efficacy.friedman_table(cube, members, settings),
        "responders": efficacy.responders_table(cube, members, settings),
        "weekly": efficacy.weekly_table(cube, members),
    }
    assert len(tables["paired_tests"]) > 100
    for name, table in tables.items():
        _same_file(table, f"efficacy/{name}", ctx.results / "efficacy" / f"{name}.csv", tmp_path)


def test_safety_tables_from_adam_equal_the_pipeline(ctx, read_back, tmp_path):
    prepared = lab_table.prepare_subjects(inputs.subjects_from_adsl(read_back["ADSL"], ctx.spec))
    annotated = inputs.annotated_from_adlb(read_back["ADLB"], read_back["ADSL"], ctx.standards, ctx.spec)
    grades = inputs.grades_from_adlb(read_back["ADLB"], read_back["ADSL"], ctx.standards)
    listing = inputs.listing_from_adae(read_back["ADAE"], ctx.spec)
    n_safety = int(prepared["saffl"].sum())
    safety = ctx.config["safety"]
    tables = {
        "lab_shifts": lab_summaries.lab_shifts(annotated, prepared, ctx.standards),
        "ctcae_worst": lab_grades.ctcae_worst(grades, ctx.standards),
        "ae_summary": ae.ae_summary(
            listing,
            n_safety,
            related_levels=safety["related_levels"],
            withdrawal_actions=safety["withdrawal_actions"],
            window_days=safety["treatment_emergent_window_days"],
        ),  # fmt: skip
        "ae_by_term": ae.ae_by_term(listing, n_safety),
    }
    for name, table in tables.items():
        _same_file(table, f"safety/{name}", ctx.results / "safety" / f"{name}.csv", tmp_path)


def _events(adsl: pd.DataFrame) -> pd.DataFrame:
    """Clean adverse events (the shipped data have none) for three subjects: one before the first dose, related,
    severe, serious, leading to withdrawal, ongoing."""
    ids = adsl["USUBJID"].tolist()
    first = dict(zip(ids, iso_dates(adsl["TRTSDT"]), strict=True))
    day = lambda subject, n: str(np.datetime64(first[subject]) + np.timedelta64(n, "D"))  # noqa: E731
    rows = [
        (2, ids[0], "Headache", day(ids[0], -2), day(ids[0], -1), "mild", "no", "unlikely", "", "recovered"),
        (3, ids[0], "Nausea", day(ids[0], 5), "", "moderate", "no", "possible", "", ""),
        (4, ids[3], "Rash", day(ids[3], 10), day(ids[3], 20), "severe", "yes", "not related", "Drug  withdrawn",
         "recovered"),
        (5, ids[9], "Cramp, calf", day(ids[9], 30), "", "mild", "no", "definite", "", "not recovered"),
        (6, ids[9], "Dizziness", day(ids[9], 30), day(ids[9], 31), "mild", "no", "probable", "", "recovered"),
    ]  # fmt: skip
    columns = ["raw_row", "subject_id", "term", "onset_date", "end_date", "severity", "serious", "related", "action",
               "outcome"]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    frame["raw_row"] = frame["raw_row"].astype("Int64")
    return frame


def test_adverse_event_tables_from_adae_equal_the_listing_with_events(ctx, adam, tmp_path):
    safety = ctx.config["safety"]
    prepared = lab_table.prepare_subjects(ctx.artifact("analysis/subjects"))
    listing = ae.adverse_event_listing(
        _events(adam["ADSL"]), prepared, related_levels=safety["related_levels"],
        withdrawal_actions=safety["withdrawal_actions"], spec=ctx.contract.tables["adverse_events.csv"],
        window_days=safety["treatment_emergent_window_days"],
    )  # fmt: skip
    adae = derive_adae(listing, adam["ADSL"], ctx.spec)
    files = delivery_bytes({"ADSL": adam["ADSL"], "ADAE": adae}, ctx.spec, created=CREATED)
    (tmp_path / "adae.xpt").write_bytes(files["adae.xpt"])
    back = sdtm.read_xpt(tmp_path / "adae.xpt")
    assert back["AESEQ"].tolist() == [1.0, 2.0, 1.0, 1.0, 2.0]
    assert back["TRTEMFL"].tolist() == ["", "Y", "Y", "Y", "Y"]  # ADaMIG: Y or null
    assert back["AREL"].tolist() == ["NOT RELATED", "RELATED", "NOT RELATED", "RELATED", "RELATED"]
    assert back["AEWITHFL"].tolist() == ["N", "N", "Y", "N", "N"] and back["ASEV"].iloc[2] == "SEVERE"
    assert back["ASTDY"].tolist() == [-2.0, 6.0, 11.0, 31.0, 31.0] and back["AENDT"].iloc[1] == ""
    document = json.loads(files["adae.json"])
    aendt = [c["name"] for c in document["columns"]].index("AENDT")
    assert [row[aendt] for row in document["rows"]] == iso_dates(adae["AENDT"]) and document["rows"][1][aendt] is None
    if SCHEMA.exists():
        import jsonschema

        jsonschema.validate(document, json.loads(SCHEMA.read_text(encoding="utf-8")), jsonschema.Draft201909Validator)
    n_safety = int(prepared["saffl"].sum())
    from_adam = inputs.listing_from_adae(back, ctx.spec)
    kwargs = dict(related_levels=safety["related_levels"], withdrawal_actions=safety["withdrawal_actions"],
                  window_days=safety["treatment_emergent_window_days"])  # fmt: skip
    pd.testing.assert_frame_equal(
        ae.ae_summary(from_adam, n_safety, **kwargs), ae.ae_summary(listing, n_safety, **kwargs)
    )
    pd.testing.assert_frame_equal(ae.ae_by_term(from_adam, n_safety), ae.ae_by_term(listing, n_safety))
    # treatment-emergent events only (the headache before the first dose is listed, counted in the last row)
    summary = ae.ae_summary(listing, n_safety, **kwargs).set_index("category")["n_events"]
    assert (summary["any"], summary["related"], summary["not_treatment_emergent"]) == (4, 3, 1)


# ----------------------------------------------------------------------------------------------------------------
# When the artifacts gain arms and source keys (issues 14, 15), and when they break
# ----------------------------------------------------------------------------------------------------------------
def test_arms_from_subjects_and_lbseq_from_labs_and_grades(ctx, adam):
    subjects = ctx.artifact("analysis/subjects")
    subjects["arm"] = "MK7"
    subjects["actual_arm"] = np.where(np.arange(len(subjects)) == 0, "", "MK7")
    adsl = derive_adsl(subjects, ctx.artifact("groups/assignment"), ctx.spec)
    assert adsl["ACTARMCD"].iloc[0] == "" and adsl["TRT01A"].iloc[0] == "" and adsl["TRT01P"].iloc[0] != ""
    assert adsl["ITTFL"].eq("Y").all()
    subjects.loc[1, "arm"] = ""
    assert derive_adsl(subjects, ctx.artifact("groups/assignment"), ctx.spec)["ITTFL"].iloc[1] == "N"
    subjects.loc[2, "arm"] = "PLACEBO"
    with pytest.raises(AdamDataError, match="codelist ARMCD"):
        derive_adsl(subjects, ctx.artifact("groups/assignment"), ctx.spec)

    labs, grades = ctx.artifact("analysis/labs"), ctx.artifact("safety/ctcae_grades")
    labs["lbseq"] = 1000.0 + np.arange(len(labs))[::-1]
    seq = labs.set_index(["subject_id", "param", "visit"])["lbseq"]
    grades["lbseq"] = seq.reindex(pd.MultiIndex.from_frame(grades[["subject_id", "param", "visit"]])).to_numpy()
    grades["visit"] = "unmatched"  # only LBSEQ can match them now
    adlb = derive_adlb(labs, ctx.artifact("analysis/subjects"), grades, adam["ADSL"], ctx.standards, ctx.spec)
    visit = ctx.spec.codelist("AVISIT").source(adlb["AVISIT"])
    expected = seq.reindex(pd.MultiIndex.from_arrays([adlb["USUBJID"], adlb["PARAMCD"], visit]))
    assert (adlb["LBSEQ"].to_numpy() == expected.to_numpy()).all()
    for column in ("ATOXGRL", "ATOXGRH", "BTOXGRL", "ABLFL", "ANRIND"):
        assert adlb[column].tolist() == adam["ADLB"][column].astype(str).tolist(), column


def test_bad_artifacts_are_errors_naming_artifact_column_and_value(ctx):
    subjects = ctx.artifact("analysis/subjects")
    broken = subjects.copy()
    broken.loc[3, "sex"] = "X"
    with pytest.raises(AdamDataError) as error:
        derive_adsl(broken, ctx.artifact("groups/assignment"), ctx.spec)
    assert "analysis/subjects.csv, row 5, column 'sex' (value 'X')" in str(error.value)
    with pytest.raises(ArtifactError, match="efffl"):
        derive_adsl(subjects.drop(columns="efffl"), ctx.artifact("groups/assignment"), ctx.spec)
    vas = ctx.artifact("analysis/vas")
    adsl = derive_adsl(subjects, ctx.artifact("groups/assignment"), ctx.spec)
    vas.loc[0, "subject_id"] = "K2-999"
    with pytest.raises(AdamDataError, match="K2-999"):
        derive_adqs(vas, ctx.clean("symptom_diary.csv"), adsl, ctx.spec)


def test_conform_refuses_what_the_spec_does_not_allow(ctx, adam):
    spec = ctx.spec
    adsl = adam["ADSL"].copy()
    with pytest.raises(ConfigError, match="in the frame but not in the spec: \\['EXTRA'\\]"):
        conform(adsl.assign(EXTRA=1.0), spec.dataset("ADSL"), spec)
    with pytest.raises(ConfigError, match="variable SEX, key 'codelist': value 'U'"):
        conform(adsl.assign(SEX=["U"] * len(adsl)), spec.dataset("ADSL"), spec)
    with pytest.raises(ConfigError, match="variable AGE, key 'datatype'"):
        conform(adsl.assign(AGE=adsl["AGE"] + 0.5), spec.dataset("ADSL"), spec)
    narrow = copy.deepcopy(yaml.safe_load(SPEC.read_text(encoding="utf-8")))
    _var(narrow, "ADSL", "SITEID")["length"] = 3
    path = ctx.work / "narrow_spec.yaml"
    path.write_text(yaml.safe_dump(narrow, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError, match="variable SITEID, key 'length': the data need 6 bytes, the spec allows 3"):
        narrow_spec = load_spec(path).with_protocol_terms(ctx.words, "cm")
        conform(adsl, narrow_spec.dataset("ADSL"), narrow_spec)
    with pytest.raises(AdamDataError, match="two records share the dataset's keys"):
        conform(pd.concat([adsl, adsl.iloc[:1]], ignore_index=True), spec.dataset("ADSL"), spec)


def test_protocol_terms_are_the_studys_items_and_visits():
    from k2trial.adam.spec import protocol_terms

    config = read_config()
    words = load_vocabulary(
        read_yaml(ROOT / "data" / "raw" / "codebook.yaml"), read_yaml(ROOT / "config" / "lab_units.yaml"), config
    )
    terms = protocol_terms(words, "cm", None, {"arm": "MK7", "arm_label": "Menaquinone-7 100 mcg twice daily"})
    assert [(t.code, t.decode) for t in terms["ARMCD"]] == [("MK7", "Menaquinone-7 100 mcg twice daily")]
    assert [t.code for t in terms["ARM"]] == ["Menaquinone-7 100 mcg twice daily"]
    with pytest.raises(ConfigError, match="single-arm study needs `arm` and `arm_label`"):
        protocol_terms(words, "cm")
    assert [(t.code, t.decode, t.sources) for t in terms["QSPARAM"]] == [
        ("TINGLING", "Tingling VAS (cm)", ("tingling",)),
        ("NUMBNESS", "Numbness VAS (cm)", ("numbness",)),
        ("WEAKNESS", "Weakness VAS (cm)", ("weakness",)),
        ("FATIGUE", "Fatigue VAS (cm)", ("fatigue",)),
        ("CRAMPS", "Cramps VAS (cm)", ("cramps",)),
        ("VASCOMP", "Composite VAS, mean of the 5 items (cm)", ("composite",)),
    ]
    assert [(t.code, t.decode) for t in terms["AVISIT"]][:2] == [
        ("Baseline", "Baseline (week 0)"),
        ("Week 1", "Week 1"),
    ]
    assert len(terms["AVISIT"]) == 9
    with pytest.raises(ConfigError, match="takes its terms from the study's protocol"):
        load_spec(SPEC).codelist("QSPARAM")
    pain = _merged(read_yaml(ROOT / "config" / "config.yaml"), read_yaml(ROOT / "tests/fixtures/studies/pain12.yaml"))
    pain_words = load_vocabulary(
        read_yaml(ROOT / "data" / "raw" / "codebook.yaml"), read_yaml(ROOT / "config" / "lab_units.yaml"), pain
    )
    pain_terms = protocol_terms(pain_words, "cm", {"codes": ["MK7", "PLACEBO"], "labels": {"PLACEBO": "Placebo"}})
    assert [(t.code, t.decode) for t in pain_terms["ARMCD"]] == [("MK7", "MK7"), ("PLACEBO", "Placebo")]
    assert [t.code for t in pain_terms["QSPARAM"]] == ["PAIN"]  # one item: no composite
    assert [t.code for t in pain_terms["AVISIT"]][-1] == "Week 12"


def test_the_delivered_datasets_are_those_whose_first_source_the_build_makes():
    from k2trial.core.artifacts import delivered_datasets

    first = {"ADSL": "analysis/subjects", "ADQS": "analysis/vas", "ADLB": "analysis/labs", "ADAE": "safety/ae_listing"}
    every = ["analysis/subjects", "analysis/vas", "analysis/labs", "safety/ae_listing", "groups/assignment"]
    assert delivered_datasets(first, every) == ["ADSL", "ADQS", "ADLB", "ADAE"]
    safety_only = [a for a in every if a not in ("analysis/vas", "groups/assignment")]
    assert delivered_datasets(first, safety_only) == ["ADSL", "ADLB", "ADAE"]
    assert delivered_datasets({"ADSL": "analysis/subjects", "ADXX": "ADSL.USUBJID"}, ["analysis/subjects"]) == [
        "ADSL", "ADXX"
    ]  # fmt: skip
    spec = load_spec(SPEC)
    # any iterable of artifact names (write_adam passes a generator): the same spec as from a list
    assert spec.for_sources(iter(safety_only)) == spec.for_sources(safety_only)
    assert list(spec.for_sources(safety_only).datasets) == delivered_datasets(
        {n: d.sources[0] for n, d in spec.datasets.items()}, safety_only
    )
