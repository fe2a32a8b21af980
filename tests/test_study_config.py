"""A study of another shape, selected with --configfile (issue 13, item 2): tests/fixtures/studies/pain12.yaml has one
diary item ("pain", no composite), diary weeks 0-12, clinic visits at weeks 0, 4, 8 and 12, treatment to week 8 and
off-treatment follow-up to week 12. Its dataset is simulated from that config (rule regenerate_shipped_data) in a
throw-away copy of the repository and the whole pipeline builds it into results/pain12/. Unit tests of the
vocabulary built from a protocol come first (no Snakemake run)."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, copy_workflow, read_config, run_snakemake

from k2trial.core.errors import ConfigError
from k2trial.core.io import read_yaml
from k2trial.core.vocabulary import (
    COMPOSITE,
    fill_words,
    load_vocabulary,
    protocol_words,
    study_codebook,
    vocabulary_sources,
)

FIXTURES = ROOT / "tests" / "fixtures" / "studies"
FIVE_SYMPTOMS = ("tingling", "numbness", "weakness", "fatigue", "cramps")


def _pain12() -> dict:
    return read_yaml(FIXTURES / "pain12.yaml")


def _vocabulary(study: dict):
    codebook = read_yaml(ROOT / "data" / "raw" / "codebook.yaml")
    return load_vocabulary(codebook, read_yaml(ROOT / "config" / "lab_units.yaml"), vocabulary_sources(study))


def test_the_vocabulary_of_a_single_item_study_has_that_item_and_no_composite():
    words = _vocabulary(_pain12())
    assert words.params == ("pain",)
    assert words.primary_param == "pain"
    assert not words.has_composite
    assert words.visit_codes == ("baseline", *(f"week{k}" for k in range(1, 13)))
    assert words.clinic_visit_codes == ("baseline", "week4", "week8", "week12")
    assert words.end_of_treatment.code == "week8"
    assert [v.label for v in words.follow_up_visits] == ["Week 9", "Week 10", "Week 11", "Week 12"]
    assert words.off_treatment("week12") and not words.off_treatment("week8")
    assert words.param_label("pain") == "Pain"


def test_the_default_study_vocabulary_is_the_pilot():
    study = read_yaml(ROOT / "config" / "studies" / "pilot2013.yaml")
    sources = vocabulary_sources(study)
    assert "protocol" not in sources  # the default study's protocol is read from its file
    assert sources["composite"] == {"symptoms": list(FIVE_SYMPTOMS), "method": "mean", "require_all_symptoms": True}
    words = _vocabulary(study)
    assert words.params == (*FIVE_SYMPTOMS, COMPOSITE)
    assert words.clinic_visit_codes == ("baseline", "week4", "week8")
    assert words.end_of_treatment == words.final_visit and words.follow_up_visits == ()


def test_the_study_codebook_fills_in_the_protocol_clinic_schedule_and_vas_range():
    codebook = study_codebook(read_yaml(ROOT / "data" / "raw" / "codebook.yaml"), _pain12()["protocol"])
    assert list(codebook["visits"]["diary"])[-1] == "Week 12"
    assert codebook["visits"]["clinic"] == ["Baseline", "Week 4", "Week 8", "Week 12"]
    assert codebook["visits"]["clinic_schedule"]["Week 12"] == {"day": 84, "window_days": 7}
    assert codebook["visits"]["dosing"] == ["Week 4", "Week 8"]
    assert codebook["symptoms"]["synonyms"] == {"pain": ("pain score", "neuropathic pain")}
    assert codebook["files"]["symptom_diary.csv"]["columns"]["vas_cm"]["max"] == 10.0


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: p.update(follow_up_weeks=[9, 10]), "follow_up_weeks"),
        (lambda p: p["diary"].update(composite=None, items={"a": {"label": "A"}, "b": {"label": "B"}}), "composite"),
        (lambda p: p["clinic_visits"].append({"week": 13, "day": 91, "window_days": 7}), "clinic_visits"),
        (lambda p: p.update(dosing_visits=[6]), "dosing_visits"),
    ],
)
def test_a_protocol_whose_parts_disagree_is_refused_naming_the_key(edit, message):
    study = copy.deepcopy(_pain12())
    edit(study["protocol"])
    with pytest.raises(ConfigError, match=message):
        _vocabulary(study)


def test_registry_words_say_the_pilots_text_for_the_pilot_and_the_pain_studys_for_it():
    config = read_config()
    pilot = protocol_words(_vocabulary(config), config["efficacy"], config["safety"])
    registry = fill_words({"title": "Friedman test over {efficacy_visits}", "n": 1}, pilot)
    assert registry == {"title": "Friedman test over baseline, week 4 and week 8", "n": 1}
    assert pilot["assessed_visits"] == "week 4 and at week 8" and pilot["diary_weeks_in_words"] == "eight"
    assert (pilot["primary"], pilot["Primary"], pilot["model_param"]) == ("composite", "Composite", "composite")
    study = _pain12()
    pain = protocol_words(_vocabulary(study), study["efficacy"], {**config["safety"], **study["safety"]})
    assert pain["efficacy_visits"] == "baseline, week 4, week 8 and week 12"
    assert pain["clinic_visits_after_baseline"] == "week 4, week 8, week 12"
    assert (pain["primary"], pain["end_of_treatment"], pain["diary_weeks"]) == ("pain", "week 8", "0-12")
    assert pain["diary_weeks_in_words"] == "twelve"


def test_a_vas_scale_of_its_own_names_the_figure_axes():
    study = copy.deepcopy(_pain12())
    assert _vocabulary(study).vas_axis == "VAS (cm, 0-10)"
    study["protocol"]["vas"] = {"min": 0, "max": 100, "unit": "mm", "decimals": 0}
    assert _vocabulary(study).vas_axis == "VAS (mm, 0-100)"


def test_a_safety_only_study_has_no_diary_and_no_efficacy_words():
    study = read_yaml(ROOT / "config" / "studies" / "cdiscpilot.yaml")
    words = _vocabulary(study)
    assert words.symptoms == () and words.vas_scale is None
    assert words.clinic_visit_codes == ("baseline", *(f"week{w}" for w in (2, 4, 6, 8, 12, 16, 20, 24, 26)))
    config = {**read_config(), "safety": {**read_config()["safety"], **study["safety"]}}
    spoken = protocol_words(words, config["efficacy"], config["safety"])
    assert "primary" not in spoken and "efficacy_visits" not in spoken
    assert (spoken["lab_paired_to"], spoken["ctcae_version"], spoken["end_of_treatment"]) == (
        "week 26",
        "4.03",
        "week 26",
    )
    codebook = study_codebook(read_yaml(ROOT / "data" / "raw" / "codebook.yaml"), study["protocol"], study["arms"])
    files = codebook["files"]
    assert files["symptom_diary.csv"]["may_be_empty"] and files["dosing.csv"]["may_be_empty"]
    assert files["labs.csv"]["key"] == ["subject_id", "lbseq"] and files["adverse_events.csv"]["key"] == [
        "subject_id",
        "aeseq",
    ]
    assert files["subjects.csv"]["columns"]["status"]["levels"] == ["completed", "withdrawn", "not treated"]
    assert not files["subjects.csv"]["columns"]["etiology"]["required"]
    assert files["subjects.csv"]["columns"]["arm"]["levels"] == ["Pbo", "Xan_Lo", "Xan_Hi", "Scrnfail"]
    assert "actual_arm" in files["subjects.csv"]["columns"]


def test_the_simulator_writes_a_dataset_of_the_studys_shape():
    from k2trial.data import simulation

    study = {**read_config(), **{k: v for k, v in _pain12().items() if k != "efficacy"}}
    params = simulation.build_params(
        study,
        read_yaml(ROOT / "config" / "lab_units.yaml"),
        read_yaml(ROOT / "config" / "lab_standards.yaml"),
        read_yaml(ROOT / "data" / "raw" / "codebook.yaml"),
    )
    truth = simulation.generate_study(12, 3, params).truth
    diary = truth["symptom_diary.csv"]
    assert set(diary["symptom"]) == {"pain"}
    assert list(pd.unique(diary["visit"])) == ["Baseline", *(f"Week {k}" for k in range(1, 13))]
    assert len(diary) == 12 * 13
    anchors = _pain12()["simulation"]["vas"]["anchors"]
    for week, (low, high) in anchors.items():
        label = "Baseline" if week == 0 else f"Week {week}"
        values = diary.loc[diary["visit"] == label, "vas_cm"].dropna()
        assert values.between(low, high).all(), week
    labs = truth["labs.csv"]
    assert list(pd.unique(labs["visit"])) == ["Baseline", "Week 4", "Week 8", "Week 12"]
    assert len(labs) == 12 * 4 * 18
    assert list(pd.unique(truth["dosing.csv"]["visit"])) == ["Week 4", "Week 8"]


def _output_texts(results: Path) -> dict[str, str]:
    """Every text output of a build (CSV, HTML, notebooks, JSON, YAML, Markdown, LaTeX, SVG)."""
    suffixes = {".csv", ".html", ".ipynb", ".json", ".yaml", ".yml", ".md", ".tex", ".svg"}
    return {
        str(f.relative_to(results)): f.read_text(encoding="utf-8", errors="replace")
        for f in sorted(results.rglob("*"))
        if f.is_file() and f.suffix in suffixes
    }


@pytest.mark.workflow
def test_a_single_item_study_with_follow_up_runs_end_to_end(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    for name in ("pain12.yaml", "pain12_claims.yaml"):
        shutil.copy(FIXTURES / name, work / "config" / "studies" / name)
    study = ["--configfile", "config/studies/pain12.yaml"]
    simulated = run_snakemake(work, "regenerate_shipped_data", *study, cores=2)
    assert simulated.returncode == 0, simulated.stderr[-3000:]
    assert (work / "data" / "pain12" / "symptom_diary.csv").exists()
    built = run_snakemake(work, *study)
    assert built.returncode == 0, built.stderr[-4000:]
    results = work / "results" / "pain12"
    assert not (work / "results" / "index.html").exists()  # the default study's folder is not written

    vas = pd.read_csv(results / "analysis" / "vas.csv")
    assert set(vas["param"]) == {"pain"}  # one item, no composite
    assert sorted(set(vas["week"])) == list(range(13))
    paired = pd.read_csv(results / "efficacy" / "paired_tests.csv")
    wilcoxon = paired[(paired["population"] == "all") & (paired["test"] == "wilcoxon")]
    contrasts = list(zip(wilcoxon["visit_from"], wilcoxon["visit_to"], strict=True))
    assert contrasts == [("baseline", "week4"), ("baseline", "week8"), ("baseline", "week12"), ("week8", "week12")]
    assert (wilcoxon["n"] == 40).all()
    # the simulation calibration: pain about 9 at baseline, 2 at week 8 and staying there off treatment
    on_treatment = wilcoxon.set_index("visit_to").loc["week8", "estimate"]
    assert -8.0 < on_treatment < -5.5
    assert abs(wilcoxon[wilcoxon["visit_from"] == "week8"]["estimate"].iloc[0]) < 1.5
    claims = pd.read_csv(results / "claims" / "claims.csv")
    assert list(claims["status"]) == ["reproduced", "reproduced"]

    texts = _output_texts(results)
    assert len(texts) > 60
    mentions = {
        name: sorted(set(re.findall("|".join(FIVE_SYMPTOMS), text, flags=re.IGNORECASE)))
        for name, text in texts.items()
    }
    assert {name: found for name, found in mentions.items() if found} == {}
    assert "off treatment" in (results / "figures" / "composite_trajectories.svg").read_text()


@pytest.mark.parametrize("name", ["pilot2013", "open100", "rct2021", "cdiscpilot"])
def test_every_study_config_conforms_to_the_schema_and_a_wrong_value_is_named(name):
    from conftest import _merged

    from k2trial.runtime.config_check import validate_config

    schema = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    config = _merged(
        read_yaml(ROOT / "config" / "config.yaml"), read_yaml(ROOT / "config" / "studies" / f"{name}.yaml")
    )
    validate_config(config, schema)
    broken = copy.deepcopy(config)
    broken["safety"]["ctcae_version"] = "9.9"
    with pytest.raises(
        ConfigError, match=r"config key safety\.ctcae_version: '9\.9' is not one of \['5\.0', '4\.03'\]"
    ):
        validate_config(broken, schema)
    if name == "cdiscpilot":  # a safety-only study needs no efficacy contrasts, groups or simulation
        assert "groups" not in config and "simulation" not in config
        broken = copy.deepcopy(config)
        broken["protocol"]["diary"]["items"] = {"pain": {"label": "Pain"}}
        with pytest.raises(ConfigError, match="required property"):  # a diary brings them back
            validate_config(broken, schema)
