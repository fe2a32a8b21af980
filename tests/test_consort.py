"""The CONSORT flow (k2trial.analysis.consort): counts per arm checked by hand on a small trial, and its diagram."""

from __future__ import annotations

import pandas as pd
import pytest

from k2trial.analysis.consort import REASON_NOT_RECORDED, SINGLE_ARM, ArmDesign, Screening, consort_flow
from k2trial.core.errors import ConfigError

ARMS = ArmDesign(("MK7", "PLACEBO"), {"MK7": "MK-7", "PLACEBO": "Placebo"}, control="PLACEBO")


def _trial() -> pd.DataFrame:
    # 10 randomised: 6 MK7, 4 placebo. MK7: P-05 never treated; P-06 withdrew (adverse event), P-04 withdrew
    # (no reason given). Placebo: P-10 was given MK7 by mistake; P-09 withdrew (adverse event), P-08 withdrew
    # (lack of efficacy).
    return pd.DataFrame(
        {
            "subject_id": [f"P-{i:02d}" for i in range(1, 11)],
            "arm": ["MK7"] * 6 + ["PLACEBO"] * 4,
            "actual_arm": ["MK7"] * 4 + [None, "MK7"] + ["PLACEBO"] * 3 + ["MK7"],
            "saffl": [True, True, True, True, False, True, True, True, True, True],
            "status": ["completed"] * 3 + ["withdrawn", "withdrawn", "withdrawn"]
            + ["completed", "withdrawn", "withdrawn", "completed"],
            "withdrawal_reason": [None, None, None, "", "not treated", "adverse event", None, "lack of efficacy",
                                  "adverse event", None],
        }
    )  # fmt: skip


def _n(flow: pd.DataFrame, arm: str, stage: str, reason: str | None = None) -> int:
    rows = flow[(flow["arm"] == arm) & (flow["stage"] == stage)]
    if reason is not None:
        rows = rows[rows["reason"] == reason]
    assert len(rows) == 1, (arm, stage, reason, rows)
    return int(rows["n"].iloc[0])


def test_counts_per_arm_by_hand():
    analysed = {"P-01", "P-02", "P-03", "P-04", "P-06", "P-07", "P-08", "P-10"}  # the ITT set with an endpoint
    flow = consort_flow(_trial(), analysed, ARMS, Screening(assessed=14, excluded={"ineligible": 3, "declined": 1}))
    assert _n(flow, SINGLE_ARM, "assessed") == 14 and _n(flow, SINGLE_ARM, "excluded") == 4
    assert _n(flow, SINGLE_ARM, "excluded_reason", "ineligible") == 3
    assert _n(flow, SINGLE_ARM, "randomised") == 10
    assert [_n(flow, "MK7", s) for s in ("allocated", "received", "not_received", "discontinued", "completed")] == [
        6, 5, 1, 3, 3,
    ]  # fmt: skip
    assert not ((flow["arm"] == "MK7") & (flow["stage"] == "received_other")).any()  # absent when nobody
    assert _n(flow, "MK7", "discontinued_reason", REASON_NOT_RECORDED) == 1  # the empty reason of P-04
    assert _n(flow, "MK7", "discontinued_reason", "adverse event") == 1
    assert _n(flow, "MK7", "analysed") == 5 and _n(flow, "MK7", "excluded_from_analysis") == 1
    assert [_n(flow, "PLACEBO", s) for s in ("allocated", "received", "received_other", "not_received")] == [4, 3, 1, 0]
    assert [_n(flow, "PLACEBO", s) for s in ("discontinued", "completed", "analysed")] == [2, 2, 3]
    # reasons: most frequent first, then alphabetical, whatever the row order
    shuffled = consort_flow(_trial().iloc[::-1], analysed, ARMS)
    reasons = shuffled[shuffled["stage"] == "discontinued_reason"]
    assert list(reasons.loc[reasons["arm"] == "PLACEBO", "reason"]) == ["adverse event", "lack of efficacy"]
    assert "assessed" not in set(shuffled["stage"])  # screening undeclared: the stage is absent, not zero


def test_single_arm_study_is_enrolled_not_randomised():
    subjects = _trial().drop(columns=["arm", "actual_arm"])
    flow = consort_flow(subjects, set(subjects["subject_id"]))
    assert set(flow["arm"]) == {SINGLE_ARM} and _n(flow, SINGLE_ARM, "enrolled") == 10
    assert _n(flow, SINGLE_ARM, "allocated") == 10 and _n(flow, SINGLE_ARM, "received") == 9


def test_undeclared_arm_and_inconsistent_screening_are_errors():
    bad = _trial()
    bad.loc[2, "arm"] = "MK-7"
    with pytest.raises(ConfigError, match=r"subject 'P-03' has arm 'MK-7'.*\['MK7', 'PLACEBO'\]"):
        consort_flow(bad, set(), ARMS)
    with pytest.raises(ValueError, match="add up to 2, not 4 excluded"):
        consort_flow(_trial(), set(), ARMS, Screening(14, {"ineligible": 2}))
    with pytest.raises(ConfigError, match="arms.control"):
        ArmDesign.from_config({"codes": ["A", "B"], "labels": {"A": "a", "B": "b"}, "control": "C"})


def test_diagram_draws_every_count_and_reason(tmp_path):
    from k2trial.report import figures as kf
    from k2trial.report.consort import consort_figure

    flow = consort_flow(_trial(), {"P-01"}, ARMS, Screening(14, {"ineligible": 3, "declined": 1}))
    figure = consort_figure(flow, ARMS.codes, kf.Style(dpi=80), "CONSORT flow (SIMULATED)")
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert "Allocated to MK-7 (n = 6)" in "\n".join(texts) and "lack of efficacy (n = 1)" in "\n".join(texts)
    assert sum("Received another arm's intervention (n = 1)" in t for t in texts) == 1
    png = kf.render_figure(figure, 80)["png"]
    (tmp_path / "consort.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
