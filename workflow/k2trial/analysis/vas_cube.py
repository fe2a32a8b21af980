"""The VAS diary as a dense array: aval (cm) as [subject, param, week], built once from results/analysis/vas.csv.

Every efficacy analysis slices it with boolean population masks, so nothing loops over subjects. Params and the
visit codes of each week come from the vocabulary (k2trial.core.vocabulary: the codebook and config).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from k2trial.core import schema
from k2trial.core.errors import ConfigError, InputDataError, Problem
from k2trial.core.vocabulary import Vocabulary

#: What the efficacy step reads of results/analysis/vas.csv.
VAS_INPUT_COLUMNS = ("subject_id", "param", "visit", "week", "aval")


@dataclass(frozen=True)
class VasCube:
    """aval (cm) as [subject, param, week]; subjects in the order given, params of the vocabulary, weeks 0..max.

    visit_weeks: visit code -> study week (the codebook's diary visits)."""

    subject_ids: np.ndarray
    params: tuple[str, ...]
    aval: np.ndarray
    visit_weeks: Mapping[str, int]

    @property
    def weeks(self) -> np.ndarray:
        return np.arange(self.aval.shape[2])

    @property
    def visits(self) -> list[tuple[str, int]]:
        """(visit code, week) of the codebook's visits within the weeks of the data, by week."""
        return sorted(((v, w) for v, w in self.visit_weeks.items() if w < self.aval.shape[2]), key=lambda vw: vw[1])

    def param_index(self, param: str) -> int:
        return self.params.index(param)

    def week_of(self, visit: str) -> int:
        """Study week of a visit code; ConfigError names a code the codebook does not know."""
        try:
            return self.visit_weeks[visit]
        except KeyError:
            raise ConfigError(f"unknown visit {visit!r}: not a diary visit code of the codebook") from None

    def values(self, members: np.ndarray, param: str, visit: str) -> np.ndarray:
        """aval of the members at one visit (NaN when missing or the visit is beyond the data)."""
        week = self.week_of(visit)
        if week >= self.aval.shape[2]:
            return np.full(int(np.count_nonzero(members)), np.nan)
        return self.aval[members, self.param_index(param), week]


def _problem(file_label: str, row: int | None, column: str | None, value, message: str, rule: str) -> InputDataError:
    return InputDataError(
        [Problem(file_label, row, column, None if value is None else str(value), rule, "error", message)]
    )


def build_vas_cube(
    vas: pd.DataFrame, subject_ids: Sequence[str], vocabulary: Vocabulary, *, file_label: str = "vas.csv"
) -> VasCube:
    """Dense aval array from the long vas table (VAS_INPUT_COLUMNS), params and visits of the vocabulary.

    Subjects not in `subject_ids`, unknown params, visit codes that disagree with their week and duplicate
    (subject, param, week) records raise InputDataError naming the row (header = row 1).
    """
    schema.require(vas, "analysis/vas", VAS_INPUT_COLUMNS, file_label)
    params_known = vocabulary.params
    visit_weeks = vocabulary.visit_weeks
    subject_ids = np.asarray(subject_ids, dtype=object)
    subjects = _codes(vas["subject_id"], subject_ids)
    bad = np.flatnonzero(subjects < 0)
    if len(bad):
        i = bad[0]
        raise _problem(
            file_label, int(i) + 2, "subject_id", vas["subject_id"].iloc[i],
            "subject not in subjects.csv / groups assignment", "known_subject",
        )  # fmt: skip
    params = _codes(vas["param"], np.asarray(params_known, dtype=object)).astype(np.int32)
    bad = np.flatnonzero(params < 0)
    if len(bad):
        i = bad[0]
        message = f"param not one of {params_known}"
        raise _problem(file_label, int(i) + 2, "param", vas["param"].iloc[i], message, "param")
    weeks = pd.to_numeric(vas["week"], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(weeks) | (weeks < 0) | (weeks != np.round(weeks)))
    if len(bad):
        i = bad[0]
        raise _problem(file_label, int(i) + 2, "week", vas["week"].iloc[i], "week must be 0, 1, 2, ...", "week")
    weeks = weeks.astype(np.int32)
    # Each distinct (visit, week) pair once: the visit code must be the codebook's code of that week.
    visit_codes, visit_labels = pd.factorize(vas["visit"])
    span = int(weeks.max(initial=0)) + 1
    for key in np.unique(visit_codes.astype(np.int32) * span + weeks):
        code, week = divmod(int(key), span)
        visit = str(visit_labels[code]) if code >= 0 else ""
        if visit_weeks.get(visit) != week:
            row = int(np.flatnonzero((visit_codes == code) & (weeks == week))[0]) + 2
            raise _problem(file_label, row, "visit", visit, f"visit code does not match week {week}", "visit_week")
    del visit_codes
    n_weeks = span if len(weeks) else 1
    # One flat cell index per record (int64: 100,000 subjects x 6 params x 9 weeks fits easily); the
    # intermediates are freed as soon as possible because vas.csv has millions of rows.
    key = subjects * (len(params_known) * n_weeks)
    del subjects
    key += params * n_weeks
    key += weeks
    del params, weeks
    counts = np.bincount(key, minlength=len(subject_ids) * len(params_known) * n_weeks)
    if counts.max(initial=0) > 1:
        dup_key = int(np.flatnonzero(counts > 1)[0])
        rows = np.flatnonzero(key == dup_key)
        raise _problem(
            file_label, int(rows[1]) + 2, "subject_id", vas["subject_id"].iloc[rows[1]],
            f"duplicate record of (subject, param, week) (first at row {int(rows[0]) + 2})", "unique_key",
        )  # fmt: skip
    del counts
    cube = np.full((len(subject_ids), len(params_known), n_weeks), np.nan)
    cube.reshape(-1)[key] = pd.to_numeric(vas["aval"], errors="coerce").to_numpy(dtype=float)
    return VasCube(subject_ids, params_known, cube, dict(visit_weeks))


def _codes(values: pd.Series, categories: np.ndarray) -> np.ndarray:
    """Position of each value in `categories` (-1 when absent), vectorised, cheap for categoricals."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        lookup = pd.Index(categories).get_indexer(values.cat.categories.astype(str))
        codes = values.cat.codes.to_numpy()
        return np.where(codes >= 0, lookup[np.maximum(codes, 0)], -1).astype(np.int64)
    return pd.Index(categories).get_indexer(values.astype(str)).astype(np.int64)


def present_params(cube: VasCube) -> tuple[str, ...]:
    """Params with at least one value, in the cube's order."""
    has = ~np.isnan(cube.aval).all(axis=(0, 2))
    return tuple(p for p, h in zip(cube.params, has, strict=True) if h)
