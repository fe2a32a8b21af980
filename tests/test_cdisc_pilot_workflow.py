"""The CDISC pilot built end to end by the workflow from its SDTM (config/studies/cdiscpilot.yaml, safety only), and
its results checked against the pharmaverse package admiral's ADaM of the same data (issue 15, and issue 16's "the
CDISC pilot build writes ADLB and ADAE; its ADLB grades are those compared with admiral").

One build in a copy of the workflow, reading the SDTM where it lies (raw_dir given on the command line, as a user
would for another copy of the pilot). Skipped when ../shared/cdisc_pilot is absent (CI has it).
"""

from __future__ import annotations

import re
import time

import pandas as pd
import pyreadstat
import pytest
from conftest import copy_workflow, run_snakemake
from test_cdisc_pilot import ADAM, ARMS, PANEL_TERMS, PILOT, STUDY, _admiral_long, _key, needs_pilot

pytestmark = [pytest.mark.workflow, needs_pilot]

RESULTS = STUDY["results_dir"]


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("pilot") / "wf")
    start = time.perf_counter()
    run = run_snakemake(
        work, "--configfile", "config/studies/cdiscpilot.yaml", "--config", f"raw_dir={PILOT / 'sdtm'}", cores=2
    )
    seconds = time.perf_counter() - start
    assert run.returncode == 0, run.stderr[-4000:]
    print(f"\nCDISC pilot build: {seconds:.1f} s")
    return work / RESULTS


@pytest.fixture(scope="module")
def admiral():
    adsl = pd.read_csv(ADAM / "adsl.csv", dtype=str, keep_default_na=False)
    adae = pd.read_csv(ADAM / "adae.csv", dtype=str, keep_default_na=False).merge(
        adsl[["USUBJID", "TRT01A"]], on="USUBJID", how="left"
    )
    adlb = pd.read_csv(ADAM / "adlb.csv.gz", dtype=str, keep_default_na=False)
    adlb = adlb[adlb["DTYPE"] == ""].copy()
    adlb["lbseq"] = _key(adlb["LBSEQ"])
    return {"adsl": adsl, "adae": adae, "adlb": adlb}


def test_the_build_is_safety_only_and_says_why(build):
    assert not (build / "efficacy").exists() and not (build / "claims").exists()
    assert not (build / "analysis" / "vas.csv").exists() and not (build / "adam" / "adqs.xpt").exists()
    index = (build / "index.html").read_text(encoding="utf-8")
    assert "Not in this build:</strong> the study config&#x27;s protocol has no diary item" in index
    assert sorted(p.name for p in (build / "notebooks").glob("*.html")) == ["data_quality.html", "safety.html"]
    # the real data are not labelled simulated, and the SDTM folder was described by the study config
    dataset = (build / "raw_from_sdtm" / "dataset.yaml").read_text(encoding="utf-8")
    assert "simulated: false" in dataset and "format: sdtm" in dataset
    page = (build / "notebooks" / "safety.html").read_text(encoding="utf-8")
    assert "SIMULATED DATA" not in page
    # the figures it shows are captioned with their registry titles; the B12 figure (groups) is said to be omitted
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", page)
    assert captions == ["Laboratory values by visit with reference ranges", "eDISH (peak ALT vs peak bilirubin)"]
    assert "Not part of this build (b12_haematology)" in page


def test_ctcae_v403_grades_of_the_build_are_admirals_record_by_record(build, admiral):
    grades = pd.read_csv(build / "safety" / "ctcae_grades.csv", dtype={"lbseq": "Int64"}, keep_default_na=False)
    assert set(grades["ctcae_version"].astype(str)) == {"4.03"} and grades["lbseq"].notna().all()
    assert set(grades["term"]) == PANEL_TERMS["4.03"]
    ours = grades.assign(lbseq=_key(grades["lbseq"]), grade=pd.to_numeric(grades["grade"], errors="coerce"))
    merged = ours.merge(_admiral_long(admiral["adlb"]), on=["subject_id", "lbseq", "term"], validate="1:1")
    merged["admiral"] = pd.to_numeric(merged["admiral"], errors="coerce")
    both = merged[merged["grade"].notna() & merged["admiral"].notna()]
    assert len(both) == 38_095 and (both["grade"] == both["admiral"]).all()


def test_adlb_carries_those_grades_with_lbseq(build, admiral):
    adlb, meta = pyreadstat.read_xport(str(build / "adam" / "adlb.xpt"))
    assert len(adlb) == 59_580 and meta.column_names_to_labels["ATOXGRL"]
    theirs = admiral["adlb"][["USUBJID", "lbseq", "ATOXDSCL", "ATOXGRL", "ATOXDSCH", "ATOXGRH"]]
    ours = adlb.assign(lbseq=_key(adlb["LBSEQ"]))
    merged = ours.merge(theirs, on=["USUBJID", "lbseq"], suffixes=("", "_admiral"), validate="1:1")
    assert len(merged) == 59_580  # every ADLB record is an LB record admiral derived from
    compared = 0
    for side in ("L", "H"):
        term, grade = f"ATOXDSC{side}", f"ATOXGR{side}"
        same_term = merged[term].str.lower() == merged[f"{term}_admiral"].str.lower()
        rows = merged[same_term & (merged[grade] != "") & (merged[f"{grade}_admiral"] != "")]
        assert (rows[grade] == rows[f"{grade}_admiral"]).all(), side
        compared += len(rows)
    assert compared == 38_095  # the record-terms both grade (test_cdisc_pilot: NOT_BOTH_GRADED lists the others)


def test_treatment_emergent_events_and_subjects_by_arm_are_admirals(build, admiral):
    listing = pd.read_csv(build / "safety" / "ae_listing.csv", dtype={"aeseq": "Int64"}, keep_default_na=False)
    assert list(listing.columns[:4]) == ["subject_id", "aeseq", "arm", "raw_row"]
    assert len(listing) == 1191 and listing["aeseq"].notna().all()
    adae = admiral["adae"].assign(aeseq=pd.to_numeric(admiral["adae"]["AESEQ"]).astype("Int64"))
    both = listing.merge(adae, left_on=["subject_id", "aeseq"], right_on=["USUBJID", "aeseq"], validate="1:1")
    assert len(both) == 1191 and (both["treatment_emergent"].astype(str).eq("True") == (both["TRTEMFL"] == "Y")).all()
    # the listing's arm is the arm given (DM ACTARMCD, admiral's TRTA): labelled, it is ADSL's TRT01A
    assert (both["arm"].map(ARMS["labels"]) == both["TRT01A"]).all()
    theirs = adae[adae["TRTEMFL"] == "Y"].groupby("TRT01A")["USUBJID"].nunique()
    safety = admiral["adsl"][admiral["adsl"]["SAFFL"] == "Y"].groupby("TRT01A")["USUBJID"].nunique()
    by_arm = pd.read_csv(build / "arms" / "ae_summary_by_arm.csv", keep_default_na=False)
    anyae = by_arm[by_arm["category"] == "any"].set_index("arm")
    labelled = anyae.rename(index=ARMS["labels"])
    assert labelled["n_subjects"].to_dict() == theirs.to_dict() == {
        "Placebo": 65, "Xanomeline High Dose": 68, "Xanomeline Low Dose": 84
    }  # fmt: skip
    assert labelled["denominator"].to_dict() == safety.to_dict()  # the safety set as treated: 86, 72, 96


def test_adsl_has_one_row_per_dm_subject_and_adae_the_flags(build, admiral):
    adsl, _ = pyreadstat.read_xport(str(build / "adam" / "adsl.xpt"))
    assert len(adsl) == 306 and adsl["USUBJID"].is_unique
    assert "SEVGR1" not in adsl.columns and "ETIOLOGY" not in adsl.columns  # no groups in a safety-only study
    ours = adsl.set_index("USUBJID")
    theirs = admiral["adsl"].set_index("USUBJID")
    assert (ours["SAFFL"] == theirs.loc[ours.index, "SAFFL"]).all()
    treated = ours["SAFFL"] == "Y"
    assert (ours.loc[treated, "TRT01A"] == theirs.loc[ours.index[treated], "TRT01A"]).all()
    adae, _ = pyreadstat.read_xport(str(build / "adam" / "adae.xpt"))
    flags = adae.merge(admiral["adae"].assign(AESEQ=pd.to_numeric(admiral["adae"]["AESEQ"])),
                       on=["USUBJID", "AESEQ"], suffixes=("", "_admiral"), validate="1:1")  # fmt: skip
    assert len(flags) == 1191 and (flags["TRTEMFL"] == flags["TRTEMFL_admiral"]).all()


def test_safety_tables_by_arm_count_every_treated_subject_once_per_term(build, admiral):
    safety = admiral["adsl"][admiral["adsl"]["SAFFL"] == "Y"].groupby("TRT01A")["USUBJID"].nunique()
    worst = pd.read_csv(build / "arms" / "ctcae_worst_by_arm.csv", keep_default_na=False)
    assert list(dict.fromkeys(worst["arm"])) == ARMS["codes"]
    totals = worst.groupby(["arm", "term"])["n"].sum().unstack("arm").rename(columns=ARMS["labels"])
    # each treated subject of an arm is in one baseline-by-worst cell of every term graded on the panel
    assert set(worst["term"]) == PANEL_TERMS["4.03"]
    assert (totals == safety.reindex(totals.columns)).all().all()
    shifts = pd.read_csv(build / "arms" / "lab_shifts_by_arm.csv", keep_default_na=False)
    assert list(dict.fromkeys(shifts["arm"])) == ARMS["codes"]
