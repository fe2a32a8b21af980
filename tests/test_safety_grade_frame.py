"""The CTCAE grade table assembled column by column (issue 18: the safety step's peak memory at 100,000 subjects) is
the table the previous assembly gave: a frame per term, concatenated, sorted by record and term order (stable),
GRADE_COLUMNS with the grade as nullable Int8."""

from __future__ import annotations

import numpy as np
import pandas as pd

from k2trial.analysis.safety.ctcae import GRADE_COLUMNS, _grade_frame, _Part


def _parts(seed: int = 5) -> list[_Part]:
    rng = np.random.default_rng(seed)
    n_records = 400
    parts = []
    for order, (term, direction) in enumerate([("Anemia", "low"), ("Hemoglobin increased", "high"), ("ALT", "high")]):
        rows = np.sort(rng.choice(n_records, size=int(rng.integers(50, 300)), replace=False))
        parts.append(
            _Part(rows, order, term, direction, rng.choice(["HGB", "ALT"], len(rows)).astype(object),
                  rng.integers(-1, 5, len(rows)).astype(np.int8),
                  rng.choice(["", "no value"], len(rows)).astype(object),
                  rng.choice(["", "< LLN"], len(rows)).astype(object), rng.random(len(rows)) < 0.3)
        )  # fmt: skip
    rows = np.sort(rng.choice(n_records, size=40, replace=False))  # records of unknown terms: one text per row
    parts.append(
        _Part(rows, 3, rng.choice(["Foo", ""], len(rows)).astype(object), "", np.full(len(rows), "K", dtype=object),
              np.full(len(rows), -1, dtype=np.int8), np.full(len(rows), "unknown term", dtype=object),
              np.full(len(rows), "", dtype=object), np.zeros(len(rows), dtype=bool))
    )  # fmt: skip
    return parts


def _previous(parts: list[_Part]) -> pd.DataFrame:
    """The previous assembly: one frame per part, concatenated, sorted (mergesort), grade -1 as missing."""
    frames = [
        pd.DataFrame({"record": p.rows.astype(np.int64), "_order": np.full(len(p.rows), p.order, dtype=np.int64),
                      "term": p.term if not isinstance(p.term, str) else np.full(len(p.rows), p.term, dtype=object),
                      "direction": np.full(len(p.rows), p.direction, dtype=object), "test": p.tests,
                      "grade": p.grade, "reason": p.reason, "criterion": p.deciding, "lower_bound": p.lower})
        for p in parts
    ]  # fmt: skip
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["record", "_order"], kind="mergesort").drop(columns="_order").reset_index(drop=True)
    out["grade"] = pd.array(np.where(out["grade"].to_numpy() < 0, None, out["grade"].to_numpy()), dtype="Int8")
    return out[GRADE_COLUMNS]


def test_grade_frame_is_the_previous_assembly():
    parts = _parts()
    ours = _grade_frame(parts)
    text = ["term", "direction", "test", "reason", "criterion"]
    assert all(isinstance(ours[c].dtype, pd.CategoricalDtype) for c in text)  # coded once, not a str per row
    terms = ours["term"].cat.categories.tolist()  # first appearance part by part, the unknown terms' texts last
    assert terms[:3] == ["Anemia", "Hemoglobin increased", "ALT"] and sorted(terms[3:]) == ["", "Foo"]
    pd.testing.assert_frame_equal(ours.astype({c: "str" for c in text}), _previous(parts))
    assert list(ours.columns) == GRADE_COLUMNS and str(ours["grade"].dtype) == "Int8"
    assert ours["grade"].isna().sum() == sum(int((p.grade < 0).sum()) for p in parts) > 0
    # by record, and within a record in the parts' order (Anemia, Hemoglobin increased, ALT, then unknown terms)
    rank = {"Anemia": 0, "Hemoglobin increased": 1, "ALT": 2}
    key = ours["record"].to_numpy() * 10 + ours["term"].map(lambda t: rank.get(t, 3)).to_numpy()
    assert np.all(key[1:] > key[:-1])


def test_grade_frame_of_nothing_has_the_columns():
    ours = _grade_frame([])
    assert list(ours.columns) == GRADE_COLUMNS and len(ours) == 0
