"""The simulated raw tables as text, with the mess of a real CRF export (k2trial.data.simulation).

Numbers, dates and subject IDs formatted over distinct values only; the spellings the contract accepts
(data/raw/codebook.yaml, config/lab_units.yaml unit_aliases) used as the mess; and the workbench that holds
each raw text column beside its canonical text and records every injected deviation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from k2trial.core.values import scaled_integers

if TYPE_CHECKING:
    from k2trial.data.simulation import Layout

# Accepted spellings used for the mess (each is listed in the codebook or in lab_units.yaml unit_aliases).
_SUBJECT_ID_FORMATS = (("K2_", True), ("k2-", False), ("K2 ", True), ("K2", True))  # (prefix, zero-padded)
_BASELINE_VARIANTS = ("BL", "baseline", "Base line", "BASELINE")
_WEEK_VARIANTS = ("Wk {k}", "week{k}", "W{k}", "Week 0{k}", "wk-{k}")
_UNIT_VARIANTS = {
    "g/dL": ("g/dl", "G/DL"),
    "g/L": ("g/l",),
    "fL": ("fl",),
    "10^9/L": ("x10^9/L", "10^9/l", "x10e9/L"),
    "U/L": ("U/l", "IU/L", "iu/l"),
    "mg/dL": ("mg/dl", "MG/DL"),
    "umol/L": ("umol/l", "µmol/L", "μmol/L"),
    "mmol/L": ("mmol/l",),
    "s": ("sec", "seconds"),
    "ratio": ("Ratio",),
    "pg/mL": ("pg/ml",),
    "pmol/L": ("pmol/l",),
}
_YES_NO_VARIANTS = {"yes": ("Y", "y", "Yes"), "no": ("No", "N", "n")}
_SEX_VARIANTS = {"F": ("female", "f"), "M": ("male", "m")}
EPOCH = np.datetime64("1970-01-01", "D")


# --------------------------------------------------------------------------------------------------
# Text formatting (over distinct values only)


def _format_scaled(scaled: int, decimals: int, trim: bool) -> str:
    text = str(abs(scaled)).rjust(decimals + 1, "0")
    whole, frac = (text[:-decimals], text[-decimals:]) if decimals else (text, "")
    if trim:
        frac = frac.rstrip("0")
    sign = "-" if scaled < 0 else ""
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


def format_numbers(values: np.ndarray, decimals: np.ndarray | int, trim: bool) -> np.ndarray:
    """Round half away from zero to `decimals` (per element or one for all) and format as text, object array.

    trim=True gives the shortest text ("1.05", "1", "0.7": a lab report's number in canonical form);
    trim=False keeps the decimals ("7.0"). NaN gives "". Formats each distinct value once.
    """
    values = np.asarray(values, dtype=float)
    dec = np.broadcast_to(np.asarray(decimals, dtype=np.int64), values.shape)
    missing = np.isnan(values)
    scaled = scaled_integers(np.where(missing, 0.0, values), dec).astype(np.int64)
    key = scaled * 8 + dec  # decimals 0-7 fit in the low 3 bits
    inverse, uniques = pd.factorize(key.ravel())
    table = np.array([_format_scaled(int(k) >> 3, int(k) & 7, trim) for k in uniques] + [""], dtype=object)
    inverse = np.where(missing.ravel(), len(uniques), inverse)
    return table[inverse].reshape(values.shape)


def format_dates(days: np.ndarray, day_first: np.ndarray | bool) -> np.ndarray:
    """Days since 1970-01-01 as ISO YYYY-MM-DD, or DD/MM/YYYY where day_first; object array."""
    days = np.asarray(days, dtype=np.int64)
    inverse, uniques = pd.factorize(days.ravel())
    iso = np.datetime_as_string(np.asarray(uniques).astype("datetime64[D]"), unit="D").astype(object)
    dmy = np.array([f"{s[8:10]}/{s[5:7]}/{s[0:4]}" for s in iso], dtype=object)
    first = np.broadcast_to(np.asarray(day_first, dtype=bool), days.shape).ravel()
    # one table: ISO dates first, then the same dates day-first
    table = np.concatenate([iso, dmy])
    return table[inverse + len(iso) * first].reshape(days.shape)


def subject_ids(numbers: np.ndarray, pad: int) -> np.ndarray:
    """Canonical subject IDs "K2-001" ... (zero-padded to at least `pad` digits), object array."""
    padded = np.strings.zfill(np.asarray(numbers, dtype=np.int64).astype(np.str_), pad)
    return np.strings.add("K2-", padded).astype(object)


# --------------------------------------------------------------------------------------------------
# Tables as text, with the mess


class Workbench:
    """Raw text columns, their canonical text, and the record of every injected deviation."""

    def __init__(self, rng: np.random.Generator, rates: Mapping[str, float]):
        self.rng = rng
        self.rates = rates
        self.raw: dict[str, dict[str, np.ndarray]] = {}
        self.canon: dict[str, dict[str, np.ndarray]] = {}
        self.taken: dict[tuple[str, str], np.ndarray] = {}
        self.records: list[tuple[str, str, str, np.ndarray]] = []

    def add_table(self, file: str, columns: Mapping[str, np.ndarray]) -> None:
        self.canon[file] = {c: np.asarray(v, dtype=object) for c, v in columns.items()}
        # raw shares the canonical arrays until a column is first changed (copy on write: saves memory)
        self.raw[file] = dict(self.canon[file])

    def writable(self, file: str, column: str) -> np.ndarray:
        if self.raw[file][column] is self.canon[file][column]:
            self.raw[file][column] = self.canon[file][column].copy()
        return self.raw[file][column]

    def rows(self, file: str) -> int:
        return len(next(iter(self.canon[file].values())))

    def record(self, kind: str, file: str, column: str, idx: np.ndarray) -> None:
        self.records.append((kind, file, column, np.asarray(idx, dtype=np.int64)))

    def choose(self, kind: str, file: str, column: str, eligible: np.ndarray | None = None) -> np.ndarray:
        """Distinct random cells for `kind` among the eligible cells no other kind has used: max(1,
        round(rate x eligible)) of them (none when nothing is eligible), sorted."""
        taken = self.taken.setdefault((file, column), np.zeros(self.rows(file), dtype=bool))
        free = ~taken if eligible is None else (eligible & ~taken)
        candidates = np.flatnonzero(free)
        if not len(candidates):
            return candidates
        count = max(1, int(scaled_integers(self.rates[kind] * len(candidates), 0)))
        return np.sort(self.rng.choice(candidates, size=count, replace=False))

    def put(self, kind: str, file: str, column: str, idx: np.ndarray, values: np.ndarray) -> None:
        self.writable(file, column)[idx] = values
        self.taken.setdefault((file, column), np.zeros(self.rows(file), dtype=bool))[idx] = True
        self.record(kind, file, column, idx)

    def pick(self, options: Sequence[Any], size: int) -> np.ndarray:
        table = np.empty(len(options), dtype=object)
        table[:] = list(options)
        return table[self.rng.integers(0, len(options), size=size)]


def variant_lookup(wb: Workbench, canonical: np.ndarray, variants: Mapping[str, Sequence[str]]) -> np.ndarray:
    """For each canonical value, a random one of its variants (loop over the distinct values only)."""
    out = np.empty(len(canonical), dtype=object)
    choice = wb.rng.integers(0, 1 << 30, size=len(canonical))
    for value in pd.unique(canonical):
        options = variants.get(value) or [value]
        mask = canonical == value
        out[mask] = np.asarray(options, dtype=object)[choice[mask] % len(options)]
    return out


def visit_variants(labels: Sequence[str], weeks: Mapping[str, int]) -> dict[str, tuple[str, ...]]:
    """Accepted spellings of each visit label (weeks: label -> study week; week 0 is the baseline)."""
    out: dict[str, tuple[str, ...]] = {}
    for label in labels:
        week = int(weeks[label])
        out[label] = _BASELINE_VARIANTS if week == 0 else tuple(v.format(k=week) for v in _WEEK_VARIANTS)
    return out


def item_variants(items: Sequence[str], spellings: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Spellings of each diary item used as mess: the study config's simulation.mess.item_spellings, else the
    item in capitals and capitalised (case is ignored by the contract)."""
    return {item: tuple(spellings.get(item) or (item.upper(), item.capitalize())) for item in items}


def inject_subject_ids(wb: Workbench, numbers: dict[str, np.ndarray], layout: Layout) -> None:
    for file in ("subjects.csv", "symptom_diary.csv", "labs.csv", "dosing.csv"):
        idx = wb.choose("subject_id_spelling", file, "subject_id")
        number = numbers[file][idx].astype(np.str_)
        fmt = wb.rng.integers(0, len(_SUBJECT_ID_FORMATS), size=len(idx))
        values = np.empty(len(idx), dtype=object)
        for k, (prefix, padded) in enumerate(_SUBJECT_ID_FORMATS):
            digits = np.strings.zfill(number, layout.id_pad) if padded else number
            values[fmt == k] = np.strings.add(prefix, digits)[fmt == k].astype(object)
        wb.put("subject_id_spelling", file, "subject_id", idx, values)


def inject_cell_mess(wb: Workbench, sim: Mapping[str, Any], lab_site: np.ndarray, layout: Layout) -> None:
    """Every random cell-level kind, in a fixed order; each cell gets at most one of them.
    lab_site: the site of every labs.csv record."""
    diary, labs = "symptom_diary.csv", "labs.csv"
    # below the limit of quantification: part of the data, so the truth keeps "<limit" too
    blq = sim["mess"]["below_quantification"]
    eligible = (wb.canon[labs]["test_code"] == blq["test"]) & (lab_site == blq["site"])
    idx = wb.choose("below_quantification", labs, "result", eligible)
    limit = "<" + format_numbers(np.array([blq["limit"]]), 6, trim=True)[0]
    wb.writable(labs, "result")
    wb.canon[labs]["result"][idx] = limit
    wb.put("below_quantification", labs, "result", idx, np.full(len(idx), limit, dtype=object))
    # impossible VAS, away from the analysed visits (the clinic visits) so populations are unchanged
    week = np.asarray(layout.diary_weeks)[wb.canon[diary]["_week"]]
    tenths = wb.canon[diary]["_tenths"]
    eligible = ~np.isin(week, layout.clinic_weeks) & (tenths >= 11)
    idx = wb.choose("impossible_vas", diary, "vas_cm", eligible)
    in_mm = wb.rng.random(len(idx)) < 0.5
    values = np.where(
        in_mm, tenths[idx].astype(np.str_).astype(object), format_numbers((tenths[idx] + 100) / 10.0, 1, trim=False)
    )
    wb.writable(diary, "vas_cm")
    wb.canon[diary]["vas_cm"][idx] = ""
    wb.put("impossible_vas", diary, "vas_cm", idx, values)
    # decimal commas
    idx = wb.choose("decimal_comma", diary, "vas_cm")
    wb.put(
        "decimal_comma",
        diary,
        "vas_cm",
        idx,
        np.strings.replace(wb.raw[diary]["vas_cm"][idx].astype(np.str_), ".", ",").astype(object),
    )
    has_point = map_distinct(wb.canon[labs]["result"], lambda s: "." in s and not s.startswith(("<", ">")))
    idx = wb.choose("decimal_comma", labs, "result", has_point.astype(bool))
    comma = np.strings.replace(wb.raw[labs]["result"][idx].astype(np.str_), ".", ",").astype(object)
    wb.put("decimal_comma", labs, "result", idx, comma)
    # labels
    for file, labels in (
        (diary, layout.diary_visits),
        (labs, layout.clinic_visits),
        ("dosing.csv", layout.dosing_visits),
    ):
        idx = wb.choose("visit_label_variant", file, "visit")
        weeks = dict(zip(layout.diary_visits, layout.diary_weeks, strict=True))
        values = variant_lookup(wb, wb.canon[file]["visit"][idx], visit_variants(labels, weeks))
        wb.put("visit_label_variant", file, "visit", idx, values)
    idx = wb.choose("symptom_label_variant", diary, "symptom")
    wb.put(
        "symptom_label_variant",
        diary,
        "symptom",
        idx,
        variant_lookup(
            wb, wb.canon[diary]["symptom"][idx], item_variants(layout.symptoms, sim["mess"].get("item_spellings") or {})
        ),
    )
    has_variant = pd.Series(wb.canon[labs]["unit"]).isin(list(_UNIT_VARIANTS)).to_numpy()
    idx = wb.choose("unit_spelling", labs, "unit", has_variant)
    wb.put("unit_spelling", labs, "unit", idx, variant_lookup(wb, wb.canon[labs]["unit"][idx], _UNIT_VARIANTS))
    for test, alias in sim["mess"]["test_code_aliases"].items():
        idx = wb.choose("test_code_alias", labs, "test_code", wb.canon[labs]["test_code"] == test)
        wb.put("test_code_alias", labs, "test_code", idx, np.full(len(idx), alias, dtype=object))
    for column in ("metformin", "prior_b12_therapy", "anticoagulant"):
        idx = wb.choose("yes_no_variant", "subjects.csv", column)
        values = variant_lookup(wb, wb.canon["subjects.csv"][column][idx], _YES_NO_VARIANTS)
        wb.put("yes_no_variant", "subjects.csv", column, idx, values)
    idx = wb.choose("sex_variant", "subjects.csv", "sex")
    wb.put(
        "sex_variant",
        "subjects.csv",
        "sex",
        idx,
        variant_lookup(wb, wb.canon["subjects.csv"]["sex"][idx], _SEX_VARIANTS),
    )
    # stray whitespace last, on cells still clean
    for file, column in ((diary, "subject_id"), (diary, "visit"), (labs, "subject_id"), (labs, "unit")):
        idx = wb.choose("stray_whitespace", file, column)
        pad = wb.pick((" {}", "{} ", "  {} "), len(idx))
        values = np.array([p.format(v) for p, v in zip(pad, wb.raw[file][column][idx], strict=True)], dtype=object)
        wb.put("stray_whitespace", file, column, idx, values)


def map_distinct(values: np.ndarray, func: Any) -> np.ndarray:
    """func applied to each distinct value of an object array, spread back (object array)."""
    codes, uniques = pd.factorize(values)
    table = np.array([func(u) for u in uniques], dtype=object)
    return table[codes]


def text_or_missing(values: np.ndarray) -> pd.Series:
    """str Series with "" as missing (NaN)."""
    values = np.asarray(values, dtype=object)
    empty = values == ""
    if empty.any():
        values = np.where(empty, np.nan, values)
    return pd.Series(values, dtype="str")
