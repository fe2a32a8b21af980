"""k2trial.core.schema, k2trial.core.vocabulary and the registry of reporting outputs: the one statement of every
artifact's columns, what a consumer meets when a column is missing or renamed, and the labels the outputs use."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
from conftest import ROOT, read_config, shipped_vocabulary

from k2trial.core import schema
from k2trial.core.errors import ArtifactError, ConfigError
from k2trial.core.io import read_yaml, write_csv
from k2trial.core.vocabulary import fill_words, load_vocabulary, protocol_words, study_codebook

REGISTRY = read_yaml(ROOT / "workflow/report/registry.yaml")


def test_writer_accepts_the_schema_columns_and_the_reader_restores_dtypes(tmp_path):
    frame = pd.DataFrame(
        {
            "stage": ["enrolled", "treated"],
            "label": ["Enrolled", "NA"],  # "NA" is text (the sodium test code), not missing
            "n": [30, 29],
        }
    )
    path = tmp_path / "participant_flow.csv"
    schema.write_artifact(frame, path, "groups/participant_flow")
    back = schema.read_artifact(path, "groups/participant_flow")
    assert back["label"].tolist() == ["Enrolled", "NA"] and back["n"].dtype == "int64"
    booleans = pd.DataFrame({"file": ["a"], "rule": ["r"], "changes": [3]})
    schema.write_artifact(booleans, tmp_path / "audit_summary.csv", "clean/audit_summary")


def test_writer_refuses_a_renamed_or_missing_column(tmp_path):
    frame = pd.DataFrame({"stage": ["enrolled"], "text": ["Enrolled"], "n": [30]})
    with pytest.raises(ArtifactError) as error:
        schema.write_artifact(frame, tmp_path / "flow.csv", "groups/participant_flow")
    assert "groups/participant_flow" in str(error.value) and "'label'" in str(error.value)
    assert not (tmp_path / "flow.csv").exists()


def test_reader_names_artifact_and_column(tmp_path):
    path = tmp_path / "descriptives.csv"
    write_csv(pd.DataFrame({"population": ["all"], "param": ["composite"], "visit": ["baseline"]}), path)
    with pytest.raises(ArtifactError) as error:
        schema.read_artifact(path, "efficacy/descriptives", ["population", "median"], label="descriptives.csv")
    message = str(error.value)
    assert "efficacy/descriptives" in message and "'median'" in message and "descriptives.csv" in message
    problem = error.value.problems[0]
    assert (problem.file, problem.row, problem.column) == ("descriptives.csv", 1, "median")


def test_booleans_are_read_and_checked(tmp_path):
    path = tmp_path / "claims.csv"
    frame = pd.DataFrame({c: ["x"] for c in schema.columns("claims/claims")}).assign(
        primary=[True], data_simulated=[False]
    )
    write_csv(frame, path)
    back = schema.read_artifact(path, "claims/claims", ["primary", "data_simulated"])
    assert back["primary"].tolist() == [True] and back["data_simulated"].dtype == bool
    write_csv(frame.assign(primary=["maybe"]), path)
    with pytest.raises(ArtifactError, match="primary"):
        schema.read_artifact(path, "claims/claims", ["primary"])


def test_holm_family_columns_are_a_rule_not_a_list():
    families = ("visit_contrasts", "symptoms", "another_family")
    columns = schema.columns("efficacy/paired_tests", p_holm=families)
    assert columns[-3:] == ["p_holm_visit_contrasts", "p_holm_symptoms", "p_holm_another_family"]
    schema.check_columns("efficacy/paired_tests", columns)  # any family name fits the template
    assert schema.dtypes("efficacy/paired_tests", ["p_holm_anything"]) == {"p_holm_anything": "float"}
    with pytest.raises(ArtifactError):
        schema.check_columns("efficacy/paired_tests", [*columns, "p_unknown"])


def test_vocabulary_comes_from_codebook_lab_units_and_config():
    words = shipped_vocabulary()
    protocol = read_config()["protocol"]
    codebook = study_codebook(read_yaml(ROOT / "data/raw/codebook.yaml"), protocol)
    assert words.symptoms == tuple(protocol["diary"]["items"]) == tuple(codebook["symptoms"]["canonical"])
    assert words.params[-1] == "composite" and words.param_label("composite") == "Composite (mean of 5)"
    assert words.param_label("composite", short=True) == "Composite" and words.param_label("tingling") == "Tingling"
    assert words.visit_codes == tuple(spec["code"] for spec in codebook["visits"]["diary"].values())
    assert words.visit_labels["week4"] == "Week 4" and words.clinic_visit_codes == ("baseline", "week4", "week8")
    assert words.final_visit.code == "week8" and words.diary_weeks == tuple(range(9))
    assert words.populations == tuple(read_config()["populations"])
    assert words.level_label("etiology", "b12_deficiency") == "B12 deficiency"
    assert words.test_title("ALT") == "Alanine aminotransferase (U/L)"


def test_a_composite_of_an_unknown_symptom_is_a_config_error():
    config = copy.deepcopy(read_config())
    config["protocol"]["diary"]["composite"]["items"] = ["tingling", "itch"]
    with pytest.raises(ConfigError, match="itch"):
        load_vocabulary(read_yaml(ROOT / "data/raw/codebook.yaml"), read_yaml(ROOT / "config/lab_units.yaml"), config)


def test_registry_entries_are_complete_and_unique():
    for section in ("figures", "tables", "notebooks"):
        names = [entry["name"] for entry in REGISTRY[section]]
        assert len(names) == len(set(names)), section
        for entry in REGISTRY[section]:
            assert entry["title"].strip() and entry["caption"].strip(), entry["name"]
    assert {entry["process"] for entry in REGISTRY["figures"]} == {1, 2}


def test_each_notebook_template_is_headed_by_its_registry_title():
    # the titles as the default study's build fills them in (workflow/rules/common.smk REGISTRY)
    config = read_config()
    words = protocol_words(shipped_vocabulary(), config["efficacy"], config["safety"])
    from k2trial.report.notebooks import specialise_template

    for entry in fill_words(REGISTRY["notebooks"], words):
        # as execute_notebooks runs it: the template specialised for the design, its protocol-text cells filled
        path = ROOT / "workflow/notebooks" / f"{entry['name']}.ipynb"
        notebook = specialise_template(path, randomised=bool(entry.get("randomised")), words=words)
        assert notebook.cells[0].source == f"# {entry['title']}", entry["name"]
