"""The study config's lab panel (issue 13, item 2): protocol.lab_panel is a list of test codes (the simulator's
tests; nothing else changes) or the study's declared panel, a mapping code -> entry (k2trial.core.lab_panel).
With a mapping every job sees the panel's tests only: a further test with a declared unit is accepted, summarised
and graded only where a CTCAE criterion exists; a test outside the panel is a validation error naming the panel;
a panel test without a record is a warning. Unit tests first; the workflow test builds a pain12 study whose panel
declares 25-OH vitamin D, which config/lab_units.yaml does not know."""

from __future__ import annotations

import copy
import re
import shutil

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import MINIMAL_WINDOWS, ROOT, _merged, copy_workflow, read_config, run_snakemake

from k2trial.analysis.safety.ctcae import criteria_file, load_ctcae_criteria
from k2trial.analysis.safety.standards import load_lab_standards
from k2trial.core.errors import ConfigError
from k2trial.core.io import read_yaml
from k2trial.core.lab_panel import panel_codes, study_lab_standards, study_lab_units
from k2trial.core.vocabulary import load_vocabulary, visit_windows, vocabulary_sources
from k2trial.data import contract as ct
from k2trial.data import raw_files, validation
from k2trial.data import sdtm as sdtm_package
from k2trial.data import simulation as sim

FIXTURES = ROOT / "tests" / "fixtures" / "studies"
LAB_UNITS = read_yaml(ROOT / "config" / "lab_units.yaml")
LAB_STANDARDS = read_yaml(ROOT / "config" / "lab_standards.yaml")
CODEBOOK = read_yaml(ROOT / "data" / "raw" / "codebook.yaml")
CONFIG = read_yaml(ROOT / "config" / "config.yaml")
#: The test the declared panel adds: config/lab_units.yaml and config/lab_standards.yaml do not know it, and no
#: CTCAE term grades it.
VITD = {"unit": "ng/mL", "name": "25-OH vitamin D", "decimals": 0}
#: Its simulated values (ng/mL; simulation.labs.declared): subject means in the sufficient range.
VITD_VALUES = [25.0, 60.0]


def _pain12() -> dict:
    return read_yaml(FIXTURES / "pain12.yaml")


def declared_study(study: dict | None = None) -> dict:
    """pain12 with its panel declared, as data/raw/README.md's worked example: every test of its list form (`{}`:
    lab_units.yaml knows them; ALT by its alias SGPT, B12 with an empty entry), then VITD, which the simulator draws
    from simulation.labs.declared."""
    study = copy.deepcopy(study or _pain12())
    codes = study["protocol"]["lab_panel"]
    known = {("SGPT" if c == "ALT" else c): (None if c == "B12" else {}) for c in codes}
    study["protocol"]["lab_panel"] = {**known, "VITD": dict(VITD)}
    study["simulation"]["labs"]["declared"] = {"VITD": list(VITD_VALUES)}
    return study


# --------------------------------------------------------------------------------------------------------------
# The declaration
# --------------------------------------------------------------------------------------------------------------
def test_the_list_form_changes_nothing():
    protocol = _pain12()["protocol"]
    assert study_lab_units(LAB_UNITS, protocol) == LAB_UNITS
    assert study_lab_standards(LAB_STANDARDS, LAB_UNITS, protocol) == LAB_STANDARDS
    assert panel_codes(LAB_UNITS, protocol) == ()
    contract = ct.load_contract(CODEBOOK, LAB_UNITS, protocol)
    assert contract.lab_panel == () and list(contract.lab_tests) == list(LAB_UNITS["tests"])
    # the default study (no protocol given) is the list form
    assert ct.load_contract(CODEBOOK, LAB_UNITS).lab_panel == ()


def test_a_declared_panel_is_what_every_reader_sees():
    study = declared_study()
    protocol = study["protocol"]
    units = study_lab_units(LAB_UNITS, protocol)
    # the 18 tests of lab_units.yaml, unchanged, then the declared one in its declared unit
    assert list(units["tests"]) == [*LAB_UNITS["tests"], "VITD"]
    assert units["tests"]["B12"] == LAB_UNITS["tests"]["B12"]
    assert units["tests"]["VITD"] == {
        "name": "25-OH vitamin D",
        "aliases": [],
        "unit": "ng/mL",
        "units": {"ng/mL": 1.0},
        "decimals": 0,
    }
    assert study_lab_units(units, protocol) == units  # applied twice: the same
    contract = ct.load_contract(CODEBOOK, LAB_UNITS, protocol)
    assert contract.lab_panel == (*LAB_UNITS["tests"], "VITD")
    assert contract.lab_tests["VITD"].units == {"ng/mL": 1.0}
    vocabulary = load_vocabulary(CODEBOOK, LAB_UNITS, vocabulary_sources(_merged(CONFIG, study)))
    assert vocabulary.test_title("VITD") == "25-OH vitamin D (ng/mL)"
    assert vocabulary.lab_panel == contract.lab_panel
    # the standards: no default range and no CTCAE term for VITD, the known tests keep theirs
    standards = study_lab_standards(LAB_STANDARDS, LAB_UNITS, protocol)
    assert standards["tests"]["VITD"] == {"range": None, "direction": "both"}
    assert standards["tests"]["HGB"] == LAB_STANDARDS["tests"]["HGB"]
    version = CONFIG["safety"]["ctcae_version"]
    criteria = load_ctcae_criteria(criteria_file(ROOT / CONFIG["ctcae_criteria_dir"], version))
    loaded = load_lab_standards(units, standards, criteria)
    assert loaded.lab_params == contract.lab_panel
    assert loaded.test("VITD").panel == "other" and np.isnan(loaded.test("VITD").ranges["F"][0])
    graded = {t.param for t in loaded.terms}
    assert "VITD" not in graded and {"HGB", "ALT", "CREAT"} <= graded


def test_a_panel_of_fewer_tests_drops_the_others():
    protocol = {"lab_panel": {"SGPT": {}, "AST": None, "TBIL": {}, "ALP": {}, "CREAT": {}, "TSH": {"unit": "mU/L"}}}
    units = study_lab_units(LAB_UNITS, protocol)
    assert list(units["tests"]) == ["ALT", "AST", "ALP", "TBIL", "CREAT", "TSH"]  # an alias read as its test
    standards = study_lab_standards(LAB_STANDARDS, LAB_UNITS, protocol)
    assert standards["panels"] == {"liver": ["ALT", "AST", "ALP", "TBIL"], "kidney": ["CREAT"]}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        # a known test in a unit lab_units.yaml does not accept, without a factor
        (
            {"HGB": {"unit": "mmol/L"}},
            r"study config protocol\.lab_panel HGB: HGB is not accepted in mmol/L by config/lab_units\.yaml "
            r"\(accepted: g/dL, g/L\); give `factor` to g/dL",
        ),
        # an entry with a key that is not one of unit, name, decimals, factor, direction
        (
            {"VITD": {"unit": "ng/mL", "units": "ng/mL"}},
            r"study config protocol\.lab_panel VITD: needs `unit` \(and optionally decimals, direction, factor, "
            r"name\); got .*\(unknown keys: units\)",
        ),
        # a test lab_units.yaml does not know, without its unit
        ({"VITD": {"name": "25-OH vitamin D"}}, r"study config protocol\.lab_panel VITD: needs `unit`.*not a test"),
        ({"VITD": None}, r"study config protocol\.lab_panel VITD: needs `unit`"),
        # one test twice, by code and by alias
        ({"ALT": {}, "SGPT": {}}, r"study config protocol\.lab_panel: ALT declared more than once"),
    ],
)
def test_panel_declaration_errors_name_the_study_config_key(entry, message):
    with pytest.raises(ConfigError, match=message):
        study_lab_units(LAB_UNITS, {"lab_panel": entry})
    with pytest.raises(ConfigError, match=message):  # the contract and the vocabulary read it the same way
        ct.load_contract(CODEBOOK, LAB_UNITS, {**_pain12()["protocol"], "lab_panel": entry})


def test_a_known_test_in_another_unit_with_its_factor():
    units = study_lab_units(LAB_UNITS, {"lab_panel": {"HGB": {"unit": "mmol/L", "factor": 1.6113438607799}}})
    assert units["tests"]["HGB"]["units"] == {"g/dL": 1.0, "g/L": 0.1, "mmol/L": 1.6113438607799}


def test_the_sdtm_names_are_the_same_functions():
    from k2trial.core import lab_panel

    assert sdtm_package.declare_lab_panel is lab_panel.declare_lab_panel
    assert sdtm_package.declare_lab_standards is lab_panel.declare_lab_standards


# --------------------------------------------------------------------------------------------------------------
# Expected tests: validation on the minimal fixture (tests/fixtures/minimal: 3 subjects x 3 visits x 18 tests)
# --------------------------------------------------------------------------------------------------------------
WINDOWS = MINIMAL_WINDOWS


def _validate(protocol: dict | None) -> pd.DataFrame:
    contract = ct.load_contract(CODEBOOK, LAB_UNITS, protocol)
    folder = ROOT / "tests" / "fixtures" / "minimal"
    paths = {name: folder / name for name in raw_files.input_keys(contract)}
    raw = raw_files.read_raw_dataset(paths, contract)
    return validation.validate_dataset(raw, contract, WINDOWS).problems


def test_a_test_outside_the_declared_panel_is_an_error_and_a_panel_test_without_records_a_warning():
    default = read_config()["protocol"]
    listed = _validate(None)
    assert not (listed["severity"] == "error").any()  # the fixture is valid under the list form
    # the panel: every test but urea, and vitamin D, of which the fixture has no record
    panel = {code: {} for code in LAB_UNITS["tests"] if code != "UREA"} | {"VITD": dict(VITD)}
    problems = _validate({**default, "lab_panel": panel})
    errors = problems[problems["severity"] == "error"]
    labs = pd.read_csv(ROOT / "tests" / "fixtures" / "minimal" / "labs.csv", dtype=str)
    urea_rows = [i + 2 for i in np.flatnonzero(labs["test_code"] == "UREA")]
    assert len(urea_rows) == 9
    assert list(errors["file"]) == ["labs.csv"] * 9 and list(errors["row"]) == urea_rows
    assert set(errors["column"]) == {"test_code"} and set(errors["value"]) == {"UREA"}
    assert set(errors["rule"]) == {"test_code_unknown"}
    declared = ", ".join([c for c in LAB_UNITS["tests"] if c != "UREA"] + ["VITD"])
    message = validation.compose_messages(errors)[0]
    assert message == (
        f"unknown test code: not a test of the study's lab panel (study config protocol.lab_panel: {declared})"
    )
    absent = problems[problems["rule"] == "panel_test_absent"]
    assert list(absent["severity"]) == ["warning"] and list(absent["value"]) == ["VITD"]
    assert list(absent["file"]) == ["labs.csv"] and list(absent["column"]) == ["test_code"]
    assert validation.compose_messages(absent) == [
        "a test of the study's lab panel has no record in the file: VITD (study config protocol.lab_panel) has no "
        "record in labs.csv"
    ]
    # besides these, the problems are those of the list form
    others = problems[(problems["rule"] != "panel_test_absent") & (problems["severity"] != "error")]
    key = ["file", "row", "column", "rule"]
    assert others[key].reset_index(drop=True).equals(listed[key].reset_index(drop=True))


# --------------------------------------------------------------------------------------------------------------
# The simulator draws a declared test's values from simulation.labs.declared
# --------------------------------------------------------------------------------------------------------------
def _sim_params(study: dict) -> dict:
    config = _merged(CONFIG, study)
    return sim.build_params(config, LAB_UNITS, LAB_STANDARDS, CODEBOOK)


def test_the_simulator_generates_a_declared_test(tmp_path):
    study = declared_study()
    generated = sim.generate_study(8, 3, _sim_params(study))
    labs = generated.truth["labs.csv"]
    vitd = labs[labs["test_code"] == "VITD"]
    assert len(vitd) == 8 * 4  # 8 subjects x clinic visits at weeks 0, 4, 8, 12
    values = vitd["result"].str.replace(",", ".").astype(float)
    assert values.between(*VITD_VALUES).all() and (values == values.round(0)).all()  # decimals 0
    assert set(vitd["unit"]) == {"ng/mL"} and vitd["ref_low"].isna().all() and vitd["ref_high"].isna().all()
    # the panel's other tests keep their reference ranges (at the site that reports them)
    assert labs[labs["test_code"] == "ALT"]["ref_high"].notna().any()
    # the simulated files validate under the declared panel without an error or a missing panel test
    sim.write_raw_dataset(generated, tmp_path)
    contract = ct.load_contract(CODEBOOK, LAB_UNITS, study["protocol"])
    raw = raw_files.read_raw_dataset({name: tmp_path / name for name in raw_files.input_keys(contract)}, contract)
    problems = validation.validate_dataset(raw, contract, visit_windows(study["protocol"])).problems
    assert not (problems["severity"] == "error").any(), problems[problems["severity"] == "error"].head()
    assert "panel_test_absent" not in set(problems["rule"])


def test_a_declared_test_without_simulated_values_is_a_config_error():
    study = declared_study()
    del study["simulation"]["labs"]["declared"]
    with pytest.raises(ConfigError, match=r"simulation\.labs\.declared must give the values .* \(VITD\), got none"):
        sim.generate_study(4, 1, _sim_params(study))


# --------------------------------------------------------------------------------------------------------------
# The workflow: pain12 with VITD declared, simulated and built end to end
# --------------------------------------------------------------------------------------------------------------
@pytest.mark.workflow
def test_a_declared_test_is_validated_summarised_and_not_graded(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    study = declared_study()
    # the ADaM delivery's lab parameters are the study's panel (codelist LBPARAM, terms: protocol): VITD with no
    # edit of the spec
    text = yaml.safe_dump(study, sort_keys=False, allow_unicode=True, width=110)
    (work / "config" / "studies" / "pain12.yaml").write_text(text, encoding="utf-8")
    shutil.copy(FIXTURES / "pain12_claims.yaml", work / "config" / "studies" / "pain12_claims.yaml")
    args = ["--configfile", "config/studies/pain12.yaml"]
    simulated = run_snakemake(work, "regenerate_shipped_data", *args, cores=2)
    assert simulated.returncode == 0, simulated.stderr[-3000:]
    raw_labs = pd.read_csv(work / "data" / "pain12" / "labs.csv", dtype=str, keep_default_na=False)
    assert (raw_labs["test_code"].str.strip() == "VITD").sum() == 40 * 4
    built = run_snakemake(work, *args, cores=2)
    assert built.returncode == 0, built.stderr[-4000:]
    results = work / "results" / "pain12"
    report = read_yaml(results / "validation" / "report.json")
    assert report["status"] == "passed"
    assert not [p for p in report["problems"] if p["rule"] == "panel_test_absent"]  # every panel test recorded
    derived = pd.read_csv(results / "analysis" / "labs.csv")
    vitd = derived[derived["param"] == "VITD"]
    assert len(vitd) == 160 and vitd["aval"].between(*VITD_VALUES).all()
    descriptives = pd.read_csv(results / "safety" / "lab_descriptives.csv")
    summarised = descriptives[descriptives["param"] == "VITD"]
    assert len(summarised) and set(summarised["unit"]) == {"ng/mL"}
    baseline = summarised[summarised["week"] == 0].iloc[0]
    at_baseline = vitd[vitd["week"] == 0]["aval"]
    assert baseline["n"] == 40 and baseline["median"] == pytest.approx(at_baseline.median())
    # no range from the lab and none by default: no flag at all, so no NORMAL -> NORMAL shift either
    flags = pd.read_csv(results / "safety" / "lab_flags.csv", keep_default_na=False)
    assert set(flags.loc[flags["param"] == "VITD", "flag"]) <= {""}
    assert set(flags.loc[flags["param"] == "HGB", "flag"]) - {""}  # a test with limits keeps its flags
    shifts = pd.read_csv(results / "safety" / "lab_shifts.csv", keep_default_na=False)
    counted = shifts[(shifts["param"] == "VITD") & (shifts["n"].astype(int) > 0)]
    assert len(counted) and set(counted["from"]) == set(counted["to"]) == {"MISSING"}
    grades = pd.read_csv(results / "safety" / "ctcae_grades.csv")
    assert "VITD" not in set(grades["param"])  # no criterion: no grade
    assert {"HGB", "ALT", "CREAT"} <= set(grades["param"])  # the known tests keep theirs
    assert grades[grades["param"] == "HGB"]["grade"].notna().any()
    # the ADaM ADLB carries it (a record per subject and clinic visit), without a toxicity grade
    adlb = sdtm_package.read_dataset_json(results / "adam" / "adlb.json")
    assert (adlb["PARAMCD"] == "VITD").sum() == 160
    assert set(adlb.loc[adlb["PARAMCD"] == "VITD", "PARAM"]) == {"25-OH vitamin D (ng/mL)"}


def test_the_readme_example_is_the_declared_study_and_the_config_schema_accepts_both_forms():
    text = (ROOT / "data" / "raw" / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### The lab panel") :]
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, flags=re.DOTALL).group(1))
    study = declared_study()
    assert example["protocol"]["lab_panel"] == study["protocol"]["lab_panel"]
    assert example["simulation"]["labs"]["declared"] == study["simulation"]["labs"]["declared"]
    schema = read_yaml(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    jsonschema.validate(_merged(CONFIG, study), schema)
    jsonschema.validate(_merged(CONFIG, _pain12()), schema)
    wrong = declared_study()
    wrong["protocol"]["lab_panel"]["VITD"]["units"] = "ng/mL"
    with pytest.raises(jsonschema.ValidationError, match="units"):
        jsonschema.validate(_merged(CONFIG, wrong), schema)
