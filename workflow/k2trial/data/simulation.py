"""Seeded generator of the simulated study dataset: raw files, their clean truth and the injected mess.

The publications report no patient-level data, so the repository ships simulated datasets calibrated to the
published facts (STUDY.md, "Calibration targets"; the numbers live in the study config's `simulation`). The shape
of the data is the study's protocol (the study config's `protocol`: diary items and weeks, clinic visits and their
target days, dosing-return visits, the end of treatment, the lab panel), so a study of another shape is simulated
from its own config. From (n_subjects, seed, params) the generator produces:

- `raw`: the five raw CSV tables of data/raw/README.md as text, exactly as written, carrying the mess of a
  real CRF export (MESS_KINDS) in spellings the contract accepts (data/raw/codebook.yaml,
  config/lab_units.yaml), so a correct cleaning step repairs all of it and validation finds no error;
- `truth`: what a perfect cleaning produces (workflow/DATASETS.md, results/clean/ without `raw_row`);
- `mess`: one row per injected deviation (kind, file, raw_row, column, raw_value, clean_value).

Units: VAS in cm (0.0-10.0, one decimal); lab values are generated in the standard units of lab_units.yaml
and reported in each site's unit (SITE-B: SI units) at that unit's reporting precision; dates are days.
Everything is vectorised over subjects (no Python loop per subject or row); loops run over tests, visits,
mess kinds, mess instances and distinct values only. The same (n_subjects, seed, params) gives byte-identical
files: every random draw comes from a numpy Generator seeded by SHA-256 of (seed, "simulation", part).

The raw tables' text and the mess: k2trial.data.raw_text. Writing a dataset: rule simulate_dataset
(results/simulated/n<N>-seed<S>) or regenerate_shipped_data
(workflow/rules/simulate.smk, workflow/scripts/simulate_dataset.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import optimize, special

from k2trial.core.errors import ConfigError
from k2trial.core.io import raw_csv_bytes, raw_csv_chunks, raw_csv_record, read_yaml, write_bytes, write_csv
from k2trial.core.lab_panel import declared_panel, study_lab_standards, study_lab_units
from k2trial.core.values import round_half_away, scaled_integers
from k2trial.core.vocabulary import visit_windows
from k2trial.data.contract import load_contract
from k2trial.data.raw_text import (
    EPOCH,
    Workbench,
    format_dates,
    format_numbers,
    inject_cell_mess,
    inject_subject_ids,
    map_distinct,
    subject_ids,
    text_or_missing,
)

#: Version of the generator's output: bump it whenever the same (n, seed, params) gives other files.
GENERATOR_VERSION = "1.0"
#: How dataset.yaml names the generator (the module's name when the shipped data were made; kept so that the
#: shipped files stay byte-identical and regenerate_shipped_data recognises them).
GENERATOR_NAME = "k2trial.simulation"


@dataclass(frozen=True)
class Layout:
    """The shape of the raw files, from the codebook contract (k2trial.data.contract): files and their columns in
    contract order, symptoms, etiologies, the diary, clinic and dosing visits with their weeks, and the width the
    subject number is zero-padded to."""

    files: tuple[str, ...]
    columns: Mapping[str, tuple[str, ...]]
    symptoms: tuple[str, ...]
    clinic_days: tuple[int, ...]  # target day after the first dose of each clinic visit
    lab_panel: tuple[str, ...]
    etiologies: tuple[str, ...]
    diary_visits: tuple[str, ...]
    diary_weeks: tuple[int, ...]
    clinic_visits: tuple[str, ...]
    clinic_weeks: tuple[int, ...]
    dosing_visits: tuple[str, ...]
    dosing_weeks: tuple[int, ...]
    id_pad: int


def study_layout(params: Mapping[str, Any]) -> Layout:
    """The raw files' layout of the codebook and lab units in `params` (see `build_params`)."""
    protocol = params.get("protocol")
    contract = load_contract(params["codebook"], params["lab_units"], protocol, params.get("arms"))
    week = {v.label: v.week for v in contract.diary_visits}
    protocol = protocol or {"clinic_visits": [{"day": 7 * week[v]} for v in contract.clinic_visits], "lab_panel": []}
    return Layout(
        files=contract.table_names,
        columns={name: spec.column_names for name, spec in contract.tables.items()},
        symptoms=contract.symptoms,
        clinic_days=tuple(int(v["day"]) for v in protocol["clinic_visits"]),
        lab_panel=_panel_tests(protocol, params["lab_units"]),
        etiologies=contract.tables["subjects.csv"].column("etiology").levels,
        diary_visits=tuple(v.label for v in contract.diary_visits),
        diary_weeks=tuple(v.week for v in contract.diary_visits),
        clinic_visits=contract.clinic_visits,
        clinic_weeks=tuple(week[label] for label in contract.clinic_visits),
        dosing_visits=contract.dosing_visits,
        dosing_weeks=tuple(week[label] for label in contract.dosing_visits),
        id_pad=contract.subject_pad_width,
    )


def _panel_tests(protocol: Mapping[str, Any], lab_units: Mapping[str, Any]) -> tuple[str, ...]:
    """The tests generated: protocol.lab_panel's codes (a declared panel: its tests as the study's lab units
    spell them, `build_params`), every test of lab_units.yaml when the protocol has none."""
    if declared_panel(protocol) is not None:
        return tuple(lab_units["tests"])
    return tuple(str(c) for c in protocol["lab_panel"]) or tuple(lab_units["tests"])


#: Every kind of mess the generator injects, with what it looks like. Each instance is a row of `mess`;
#: raw_value is the cell text as written, clean_value its canonical text after cleaning ("" = missing).
MESS_KINDS: dict[str, str] = {
    "subject_id_spelling": "subject ID spelled K2_007, k2-7, K2 007 or K2007 instead of K2-007",
    "visit_label_variant": "visit label spelled BL, baseline, Base line, Wk k, weekk, Wk, Week 0k or wk-k for week k",
    "symptom_label_variant": "diary item in other case, with a space or as a protocol synonym (the study config's "
    "simulation.mess.item_spellings)",
    "decimal_comma": "decimal comma in a VAS value or lab result ('7,5', quoted in the CSV)",
    "unit_spelling": "lab unit in an accepted non-canonical spelling (g/dl, umol/l, µmol/L, IU/L, sec)",
    "si_unit": "SITE-B reports TBIL and CREAT in umol/L, GLUCF in mmol/L, HGB in g/L and B12 in pmol/L; the "
    "cleaning keeps the reported unit (clean_value = canonical unit), derivation converts",
    "day_first_date": "SITE-B writes every date day-first (DD/MM/YYYY)",
    "stray_whitespace": "spaces around a subject ID, visit or unit",
    "yes_no_variant": "yes/no written Y, y, Yes, No, N or n",
    "sex_variant": "sex written female, f, male or m",
    "test_code_alias": "lab test under an accepted alias (SGPT for ALT, SGOT for AST)",
    "duplicate_row": "a diary record exported twice (column '*', raw_value = the repeated CSV record, "
    "raw_row = the second copy); cleaning removes it",
    "below_quantification": "lab result below the limit of quantification ('<0.2' mg/dL bilirubin at SITE-A); "
    "kept as '<0.2' in the clean data",
    "impossible_vas": "VAS outside 0-10 cm (typed in mm, '75', or with a stray leading digit, '12.5'); "
    "missing in the clean data (and a data query)",
}
MESS_COLUMNS = ["kind", "file", "raw_row", "column", "raw_value", "clean_value"]


@dataclass
class SimulatedStudy:
    """One simulated dataset.

    raw: file name -> table of str exactly as written to CSV (contract columns in contract order; the
        diary includes its duplicated record).
    truth: file name -> clean table (workflow/DATASETS.md, without raw_row): canonical text, ISO dates,
        numbers as float64 (counts int64), missing = NaN; lab results as canonical text in the reported
        unit (no conversion); impossible VAS missing; the duplicated record once.
    dataset_meta: content of dataset.yaml.
    mess: one row per injected deviation, columns MESS_COLUMNS, sorted by file (layout.files order), raw_row,
        column (contract order) and kind (MESS_KINDS order).
    """

    raw: dict[str, pd.DataFrame]
    truth: dict[str, pd.DataFrame]
    dataset_meta: dict[str, Any]
    mess: pd.DataFrame


# --------------------------------------------------------------------------------------------------
# Parameters, seeds and counts


def build_params(
    config: Mapping[str, Any],
    lab_units: Mapping[str, Any],
    lab_standards: Mapping[str, Any],
    codebook: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Collect what the generator needs: the study config's `simulation` and `protocol` (its `treatment`, and the
    visit windows as validation reads them: workflow/rules/common.smk VISIT_WINDOWS), and the parsed
    config/lab_units.yaml, config/lab_standards.yaml and codebook (the raw files' layout; default: the file config
    `codebook` names). With a lab panel declared in protocol.lab_panel, lab_units and lab_standards are the study's
    (k2trial.core.lab_panel): a declared test without a default range gets its values from
    simulation.labs.declared."""
    protocol = config["protocol"]
    return {
        "simulation": dict(config["simulation"]),
        "protocol": dict(protocol),
        "treatment": dict(protocol["treatment"]),
        "visit_windows": visit_windows(protocol),
        **({"arms": dict(config["arms"])} if config.get("arms") else {}),
        "lab_units": study_lab_units(lab_units, protocol),
        "lab_standards": study_lab_standards(lab_standards, lab_units, protocol),
        "codebook": dict(codebook if codebook is not None else read_yaml(_default_codebook(config))),
    }


def _default_codebook(config: Mapping[str, Any]) -> Path:
    """The codebook config `codebook` names: relative to the working directory, else to the repository this
    package is installed from (for callers that pass no codebook)."""
    path = Path(config["codebook"])
    if path.is_absolute() or path.exists():
        return path
    return Path(__file__).resolve().parents[3] / path


def params_digest(params: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the parameters in canonical JSON: changes whenever a calibration target changes."""
    text = json.dumps(params, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def derive_rng(seed: int, *names: str) -> np.random.Generator:
    """A numpy Generator seeded from SHA-256 of (seed, "simulation", *names); independent of PYTHONHASHSEED."""
    key = "\x1f".join([str(int(seed)), "simulation", *names]).encode("utf-8")
    entropy = int.from_bytes(hashlib.sha256(key).digest(), "big")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def allocate_counts(total: int, weights: Sequence[float]) -> np.ndarray:
    """Split `total` into integer counts proportional to `weights` (largest remainder; ties go to the
    earlier weight). allocate_counts(30, [17, 7, 6]) == [17, 7, 6]; allocate_counts(2000, [17, 7, 6]) ==
    [1133, 467, 400]. Raises ConfigError (the weights are configured counts) for a negative total or weights
    that are negative or all zero."""
    w = np.asarray(weights, dtype=float)
    if total < 0 or (w < 0).any() or w.sum() <= 0:
        raise ConfigError(f"cannot allocate {total} by weights {list(weights)}")
    quota = total * w / w.sum()
    counts = np.floor(quota + 1e-9).astype(np.int64)
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def _shuffled_labels(rng: np.random.Generator, counts: np.ndarray) -> np.ndarray:
    """Codes 0..k-1 repeated `counts` times, in random order."""
    return rng.permutation(np.repeat(np.arange(len(counts)), counts))


def _exact_true(rng: np.random.Generator, eligible: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean array: exactly round(fraction x eligible count) randomly chosen eligible entries are True."""
    out = np.zeros(len(eligible), dtype=bool)
    idx = np.flatnonzero(eligible)
    k = int(allocate_counts(len(idx), [fraction, 1.0 - fraction])[0]) if len(idx) else 0
    out[rng.choice(idx, size=k, replace=False)] = True
    return out


def _days(iso: str) -> int:
    return int((np.datetime64(iso, "D") - EPOCH).astype(np.int64))


def _tenths(value: float) -> int:
    return int(scaled_integers(value, 1))


def _check_params(params: Mapping[str, Any]) -> None:
    sim = params["simulation"]
    windows = params["visit_windows"]
    if sim["diary_jitter_days"] > windows["diary_days"]:
        raise ConfigError("simulation.diary_jitter_days exceeds protocol.diary.window_days")
    if sim["clinic_jitter_days"] > min(int(v["window_days"]) for v in windows["clinic_visits"]):
        raise ConfigError("simulation.clinic_jitter_days exceeds the window_days of a protocol clinic visit")
    unknown = set(sim["mess"]["rates"]) - set(MESS_KINDS)
    if unknown:
        raise ConfigError(f"simulation.mess.rates names unknown mess kinds: {sorted(unknown)}")
    tests = params["lab_units"]["tests"]
    protocol = params.get("protocol") or {}
    if declared_panel(protocol) is None:
        unknown_tests = [c for c in protocol.get("lab_panel", []) if c not in tests]
        if unknown_tests:
            raise ConfigError(f"protocol.lab_panel names tests not in lab_units.yaml: {unknown_tests}")
    declared = sim["labs"].get("declared") or {}
    standards = params["lab_standards"]["tests"]
    no_range = [c for c in _panel_tests(protocol, params["lab_units"]) if standards[c]["range"] is None]
    if sorted(no_range) != sorted(declared):
        raise ConfigError(
            f"simulation.labs.declared must give the values of exactly the panel's tests without a default range "
            f"({', '.join(no_range) or 'none'}), got {', '.join(map(str, declared)) or 'none'}"
        )
    missing_sites = [site for site in sim["site_counts"] if site not in sim["sites"]]
    if missing_sites:
        raise ConfigError(f"simulation.sites lacks {missing_sites} named in simulation.site_counts")
    if sim["mess"]["below_quantification"]["test"] not in tests:
        raise ConfigError("simulation.mess.below_quantification.test is not a test of lab_units.yaml")
    for site, spec in sim["sites"].items():
        for test, unit in spec["units"].items():
            if test not in tests or unit not in tests[test]["units"]:
                raise ConfigError(f"simulation.sites.{site}.units: {test} in {unit!r} is not in lab_units.yaml")
            if test not in spec["unit_decimals"]:
                raise ConfigError(f"simulation.sites.{site}.unit_decimals lacks {test}")
    for test, alias in sim["mess"]["test_code_aliases"].items():
        if alias not in tests.get(test, {}).get("aliases", []):
            raise ConfigError(f"simulation.mess.test_code_aliases: {alias!r} is not an alias of {test}")


# --------------------------------------------------------------------------------------------------
# Subjects, diary and labs as numbers


@dataclass
class _Cohort:
    number: np.ndarray  # subject number 1..n
    site: np.ndarray  # index into site names
    female: np.ndarray
    age: np.ndarray  # years
    weight_tenths: np.ndarray  # kg x 10
    height: np.ndarray  # cm
    etiology: np.ndarray  # index into layout.etiologies
    b12_deficient: np.ndarray
    diabetic: np.ndarray
    residual: np.ndarray  # B12-deficient with prior therapy and adequate B12
    diabetes_years: np.ndarray  # -1 when not diabetic
    metformin: np.ndarray
    anticoagulant: np.ndarray
    severe: np.ndarray  # simulated in the severe baseline band
    consent: np.ndarray  # days since 1970-01-01
    first_dose: np.ndarray
    last_dose: np.ndarray
    arm: np.ndarray | None = None  # randomised studies: index into the arm codes (config arms.codes)
    withdrawal_week: np.ndarray | None = None  # the last diary week of a withdrawn subject; -1: completed
    withdrawal_reason: np.ndarray | None = None  # "" for a subject who completed


def _simulate_cohort(n: int, rng: np.random.Generator, params: Mapping[str, Any], layout: Layout) -> _Cohort:
    sim = params["simulation"]
    site = _shuffled_labels(rng, allocate_counts(n, list(sim["site_counts"].values())))
    female = _exact_true(rng, np.ones(n, dtype=bool), sim["female_fraction"])
    etiology = _shuffled_labels(rng, allocate_counts(n, [sim["etiology_counts"][e] for e in layout.etiologies]))
    b12_deficient = etiology != layout.etiologies.index("diabetes")
    diabetic = etiology != layout.etiologies.index("b12_deficiency")
    n_deficient_at_target = sim["etiology_counts"]["b12_deficiency"] + sim["etiology_counts"]["both"]
    residual_fraction = sim["residual_count"] / n_deficient_at_target if n_deficient_at_target else 0.0
    residual = _exact_true(rng, b12_deficient, residual_fraction)
    metformin = _exact_true(rng, diabetic, sim["metformin_fraction"])
    anticoagulant = _exact_true(rng, np.ones(n, dtype=bool), sim["anticoagulant_fraction"])
    severe = _exact_true(rng, np.ones(n, dtype=bool), sim["severe_fraction"])

    age = rng.integers(sim["age_years"][0], sim["age_years"][1], size=n, endpoint=True)
    weight_lo = np.where(female, _tenths(sim["weight_kg"]["F"][0]), _tenths(sim["weight_kg"]["M"][0]))
    weight_hi = np.where(female, _tenths(sim["weight_kg"]["F"][1]), _tenths(sim["weight_kg"]["M"][1]))
    weight_tenths = rng.integers(weight_lo, weight_hi, endpoint=True)
    height_lo = np.where(female, sim["height_cm"]["F"][0], sim["height_cm"]["M"][0]).astype(np.int64)
    height_hi = np.where(female, sim["height_cm"]["F"][1], sim["height_cm"]["M"][1]).astype(np.int64)
    height = rng.integers(height_lo, height_hi, endpoint=True)
    duration_hi = np.minimum(sim["diabetes_duration_years"][1], age - 18)
    duration = rng.integers(sim["diabetes_duration_years"][0], duration_hi, endpoint=True)
    diabetes_years = np.where(diabetic, duration, -1)

    consent = rng.integers(_days(sim["consent_dates"][0]), _days(sim["consent_dates"][1]), size=n, endpoint=True)
    delay = rng.integers(sim["first_dose_delay_days"][0], sim["first_dose_delay_days"][1], size=n, endpoint=True)
    first_dose = consent + delay
    last_dose = first_dose + 7 * params["treatment"]["duration_weeks"] - 1
    return _Cohort(
        number=np.arange(1, n + 1, dtype=np.int64),
        site=site,
        female=female,
        age=age,
        weight_tenths=weight_tenths,
        height=height,
        etiology=etiology,
        b12_deficient=b12_deficient,
        diabetic=diabetic,
        residual=residual,
        diabetes_years=diabetes_years,
        metformin=metformin,
        anticoagulant=anticoagulant,
        severe=severe,
        consent=consent,
        first_dose=first_dose,
        last_dose=last_dose,
    )


def allocate_arms(
    rng: np.random.Generator, strata: np.ndarray, codes: Sequence[str], ratio: Mapping[str, float] | None = None
) -> np.ndarray:
    """Stratified randomisation: within each stratum (its subjects in subject order), the arms in proportion to
    `ratio` (default 1:1; largest remainder, the same as allocate_counts) in a random order. Returns the index into
    `codes` per subject."""
    weights = [float((ratio or {}).get(c, 1.0)) for c in codes]
    out = np.empty(len(strata), dtype=np.int64)
    for stratum in sorted(set(strata.tolist())):
        members = np.flatnonzero(strata == stratum)
        out[members] = _shuffled_labels(rng, allocate_counts(len(members), weights))
    return out


def simulate_dropouts(
    rng: np.random.Generator, n: int, dropouts: Mapping[str, Any] | None, weeks: Sequence[int], treatment_weeks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Withdrawals (simulation.dropouts: `count` subjects, scaled like the other counts by n / n_subjects by the
    caller; each withdraws after a diary week drawn from `weeks` [first, last] and gives a reason drawn from
    `reasons`). Returns (last diary week or -1, reason or "", last dosing day offset in days from the first dose or
    -1): a withdrawn subject stops the diary, the clinic visits and the capsules after that week."""
    week = np.full(n, -1, dtype=np.int64)
    reason = np.full(n, "", dtype=object)
    dose_days = np.full(n, -1, dtype=np.int64)
    count = int((dropouts or {}).get("count", 0))
    if not count:
        return week, reason, dose_days
    first, last = (int(w) for w in dropouts["weeks"])
    allowed = [w for w in weeks if first <= w <= last and w > 0]
    if not allowed or count > n:
        raise ConfigError(f"simulation.dropouts: {count} withdrawals after weeks {first}-{last} of diary weeks {weeks}")
    chosen = np.sort(rng.choice(n, size=count, replace=False))
    week[chosen] = rng.choice(np.asarray(allowed), size=count)
    reasons = [str(r) for r in dropouts["reasons"]]
    reason[chosen] = np.asarray(reasons, dtype=object)[rng.integers(0, len(reasons), size=count)]
    dose_days[chosen] = 7 * np.minimum(week[chosen], treatment_weeks) - 1
    return week, reason, dose_days


def _keep_rows(columns: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    """The rows of a table's columns where `keep` is true (a withdrawn subject's later records do not exist)."""
    return {name: values[keep] for name, values in columns.items()}


def vas_groups(cohort: _Cohort, vas: Mapping[str, Any], layout: Layout, arms: Mapping[str, Any] | None) -> np.ndarray:
    """The group of each subject whose VAS anchors apply (simulation.vas.anchors_by: arm or etiology); all "" when
    the anchors are not by group."""
    by = vas.get("anchors_by")
    if by is None:
        return np.full(len(cohort.number), "", dtype=object)
    if by == "arm":
        if cohort.arm is None or not arms:
            raise ConfigError("simulation.vas.anchors_by is arm, but the study config declares no arms")
        return np.array([str(c) for c in arms["codes"]], dtype=object)[cohort.arm]
    if by == "etiology":
        return np.array(layout.etiologies, dtype=object)[cohort.etiology]
    raise ConfigError(f"simulation.vas.anchors_by must be arm or etiology, got {by!r}")


def simulate_vas_tenths(
    rng: np.random.Generator,
    severe: np.ndarray,
    vas: Mapping[str, Any],
    items: Sequence[str],
    weeks: Sequence[int],
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Diary VAS in tenths of the unit, shape (n, diary weeks, items in protocol order), by the calibration's model.

    composite_bands (five items, two of them leading): baseline: the sum of the items is drawn so that the
    composite (sum / 5) lies in the subject's band (moderate or severe), then split with the two leading items in
    their range and above the other three (each in its range); the composite is therefore exactly in band. Final
    week F: each item uniform in its range. In between: a smooth decline vF + (v0 - vF) g(k), g(0) = 1, g(F) = 0,
    g(k) = (a^(k/m) - a^2) / (1 - a^2) with the midpoint week m = F / 2 and a chosen per subject so the midpoint
    composite hits a target drawn from its range (g(m) = a / (1 + a), clipped to 0.25-0.75), plus Gaussian noise
    (noise_sd), rounded to 0.1 and clipped to 0-10.
    trajectory (any items): each subject's value of every item at each anchor week (week 0 first), linear in
    between, plus Gaussian noise (noise_sd) off the anchors, rounded to 0.1 and clipped to 0-10. Without
    `between_subject` every subject's value is uniform in the anchor's range. With `between_subject` the range is
    where the group MEAN lies: its midpoint is the mean of the recorded (clipped) values, and each subject deviates
    from it by a multivariate normal deviation (`_subject_deviations`: SD sd.baseline at week 0 and sd.follow_up at
    the later anchors; correlation correlation.baseline_follow_up between week 0 and a later anchor,
    correlation.follow_up between two later anchors, correlation.items between two items of one anchor), centred
    within the group so that the group's mean before clipping is that midpoint's latent mean (`_latent_mean`).
    With `anchors_by` (arm or etiology), `anchors` holds one such set per group (`groups`: each subject's group,
    `vas_groups`), drawn group by group in the order of `anchors`.
    Raises ConfigError when the calibration does not fit the diary (e.g. a severe band above 8.9 with the leading
    items at most 9.5 and the others at most 8.5, or an anchor week that is not a diary week).
    """
    if vas["model"] == "trajectory" and vas.get("anchors_by"):
        out = np.zeros((len(severe), len(weeks), len(items)), dtype=np.int64)
        groups = np.full(len(severe), "", dtype=object) if groups is None else groups
        unknown = sorted(set(groups.tolist()) - {str(g) for g in vas["anchors"]})
        if unknown:
            raise ConfigError(f"simulation.vas.anchors has no anchors for {unknown} ({vas['anchors_by']})")
        for group, anchors in vas["anchors"].items():
            members = np.flatnonzero(groups == str(group))
            out[members] = _trajectory_vas_tenths(rng, len(members), {**vas, "anchors": anchors}, len(items), weeks)
        return out
    if vas["model"] == "trajectory":
        return _trajectory_vas_tenths(rng, len(severe), vas, len(items), weeks)
    leading = [items.index(i) for i in vas["leading_items"] if i in items]
    others = [j for j in range(len(items)) if j not in leading]
    final, midpoint = int(vas["final"]["week"]), int(vas["midpoint"]["week"])
    if len(leading) != 2 or len(others) != 3 or list(weeks) != list(range(final + 1)) or final != 2 * midpoint:
        raise ConfigError(
            "simulation.vas model composite_bands needs five diary items, two of them leading_items, and diary weeks "
            f"0 to final.week, twice midpoint.week; got items {list(items)}, weeks {list(weeks)}"
        )
    n = len(severe)
    tn_lo, tn_hi = (_tenths(v) for v in vas["baseline_item"]["leading"])
    ot_lo, ot_hi = (_tenths(v) for v in vas["baseline_item"]["other"])
    band = np.array([vas["baseline_composite"]["moderate"], vas["baseline_composite"]["severe"]])
    sum_lo = np.ceil(np.round(band[:, 0] * 50, 6)).astype(np.int64)[severe.astype(int)]
    sum_hi = np.floor(np.round(band[:, 1] * 50, 6)).astype(np.int64)[severe.astype(int)]
    total = rng.integers(sum_lo, sum_hi, endpoint=True)
    # the leading pair: both in range, the others in range, and their mean above the others' mean
    pair_lo = np.maximum.reduce([np.full(n, 2 * tn_lo), total - 3 * ot_hi, (2 * total) // 5 + 1])
    pair_hi = np.minimum(2 * tn_hi, total - 3 * ot_lo)
    if n and (pair_lo > pair_hi).any():
        raise ConfigError("simulation.vas: baseline composite bands and item ranges are incompatible")
    pair = rng.integers(pair_lo, pair_hi, endpoint=True)
    t_lo = np.maximum.reduce([np.full(n, tn_lo), pair - tn_hi, -((-pair + 10) // 2)])
    t_hi = np.minimum.reduce([np.full(n, tn_hi), pair - tn_lo, (pair + 10) // 2])
    first = rng.integers(t_lo, t_hi, endpoint=True)
    rest = total - pair
    w_lo = np.maximum.reduce([np.full(n, ot_lo), rest - 2 * ot_hi, -((-rest + 24) // 3)])
    w_hi = np.minimum.reduce([np.full(n, ot_hi), rest - 2 * ot_lo, (rest + 24) // 3])
    third = rng.integers(w_lo, w_hi, endpoint=True)
    rest2 = rest - third
    f_lo = np.maximum.reduce([np.full(n, ot_lo), rest2 - ot_hi, -((-rest2 + 16) // 2)])
    f_hi = np.minimum.reduce([np.full(n, ot_hi), rest2 - ot_lo, (rest2 + 16) // 2])
    fourth = rng.integers(f_lo, f_hi, endpoint=True)
    order = [*leading, *others]  # drawn in this order: item position of each drawn column
    drawn = np.stack([first, pair - first, third, fourth, rest2 - fourth], axis=1)
    baseline = np.empty_like(drawn)
    baseline[:, order] = drawn

    end_lead = [_tenths(v) for v in vas["final"]["leading"]]
    end_other = [_tenths(v) for v in vas["final"]["other"]]
    drawn_end = np.concatenate(
        [
            rng.integers(end_lead[0], end_lead[1], size=(n, 2), endpoint=True),
            rng.integers(end_other[0], end_other[1], size=(n, 3), endpoint=True),
        ],
        axis=1,
    )
    end = np.empty_like(drawn_end)
    end[:, order] = drawn_end
    c0 = baseline.sum(axis=1) / 50.0
    c_end = end.sum(axis=1) / 50.0
    target = rng.uniform(vas["midpoint"]["composite"][0], vas["midpoint"]["composite"][1], size=n)
    g_mid = np.clip((target - c_end) / np.maximum(c0 - c_end, 1e-9), 0.25, 0.75)
    a = g_mid / (1.0 - g_mid)
    week = np.asarray(weeks, dtype=float)
    near_linear = np.abs(a - 1.0) < 1e-6
    a_safe = np.where(near_linear, 2.0, a)[:, None]
    curved = (a_safe ** (week / float(midpoint)) - a_safe**2) / (1.0 - a_safe**2)
    shape = np.where(near_linear[:, None], 1.0 - week / float(final), curved)  # (n, weeks)
    noise = rng.normal(0.0, vas["noise_sd"] * 10.0, size=(n, len(weeks), len(items)))
    noise[:, [0, final], :] = 0.0
    values = end[:, None, :] + (baseline - end)[:, None, :] * shape[:, :, None] + noise
    out = np.clip(scaled_integers(values, 0), 0, 100).astype(np.int64)
    out[:, 0, :] = baseline
    out[:, final, :] = end
    return out


def _trajectory_vas_tenths(
    rng: np.random.Generator, n: int, vas: Mapping[str, Any], n_items: int, weeks: Sequence[int]
) -> np.ndarray:
    """The `trajectory` model of simulate_vas_tenths."""
    anchors = {int(w): r for w, r in vas["anchors"].items()}
    anchor_weeks = sorted(anchors)
    if anchor_weeks[0] != 0 or any(w not in weeks for w in anchor_weeks) or anchor_weeks[-1] != max(weeks):
        raise ConfigError(
            f"simulation.vas.anchors weeks {anchor_weeks} must be diary weeks {list(weeks)} from 0 to the last"
        )
    if vas.get("between_subject") is None:
        at_anchor = np.stack(
            [
                rng.integers(_tenths(anchors[w][0]), _tenths(anchors[w][1]), size=(n, n_items), endpoint=True)
                for w in anchor_weeks
            ],
            axis=1,
        )  # (n, anchors, items)
    else:
        at_anchor = _group_mean_anchor_tenths(rng, n, anchors, anchor_weeks, n_items, vas["between_subject"])
    week = np.asarray(weeks, dtype=float)
    position = np.interp(week, anchor_weeks, np.arange(len(anchor_weeks), dtype=float))
    lower = np.minimum(np.floor(position).astype(int), len(anchor_weeks) - 1)
    upper = np.minimum(lower + 1, len(anchor_weeks) - 1)
    fraction = (position - lower)[None, :, None]
    values = at_anchor[:, lower, :] + (at_anchor[:, upper, :] - at_anchor[:, lower, :]) * fraction
    noise = rng.normal(0.0, vas["noise_sd"] * 10.0, size=(n, len(weeks), n_items))
    is_anchor = np.isin(np.asarray(weeks), anchor_weeks)
    noise[:, is_anchor, :] = 0.0
    out = np.clip(scaled_integers(values + noise, 0), 0, 100).astype(np.int64)
    out[:, is_anchor, :] = at_anchor
    return out


VAS_RANGE_CM = (0.0, 10.0)  # the diary VAS (tenths 0-100), as the rest of the simulated diary


def _clipped_normal_mean(mu: float, sd: float, low: float, high: float) -> float:
    """E[min(max(X, low), high)] for X ~ Normal(mu, sd^2)."""
    if sd == 0:
        return min(max(mu, low), high)
    a, b = (low - mu) / sd, (high - mu) / sd
    cdf_a, cdf_b = special.ndtr(a), special.ndtr(b)
    pdf_a, pdf_b = np.exp(-0.5 * a * a) / np.sqrt(2 * np.pi), np.exp(-0.5 * b * b) / np.sqrt(2 * np.pi)
    return float(low * cdf_a + high * (1.0 - cdf_b) + mu * (cdf_b - cdf_a) + sd * (pdf_a - pdf_b))


def _latent_mean(target: float, sd: float, low: float = VAS_RANGE_CM[0], high: float = VAS_RANGE_CM[1]) -> float:
    """The mean of Normal(mu, sd^2) whose values clipped to [low, high] have mean `target` (low < target < high, or
    sd 0): the recorded VAS of a group then averages the anchor's midpoint although the scale's ends clip it."""
    if sd == 0:
        return target
    if not low < target < high:
        raise ConfigError(f"simulation.vas.anchors: a group mean of {target} cm needs a between-subject SD of 0")
    return float(optimize.brentq(lambda mu: _clipped_normal_mean(mu, sd, low, high) - target, low - 10 * sd,
                                 high + 10 * sd, xtol=1e-12))  # fmt: skip


def _correlation_cholesky(size: int, first: float, rest: float, what: str) -> np.ndarray:
    """The Cholesky factor of the correlation matrix of `size` variables: `first` between the first and each other,
    `rest` between two of the others. ConfigError when the matrix is not positive definite."""
    corr = np.full((size, size), float(rest))
    corr[0, 1:] = corr[1:, 0] = float(first)
    np.fill_diagonal(corr, 1.0)
    try:
        return np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        raise ConfigError(
            f"simulation.vas.between_subject.correlation ({what}: {first}, {rest}) is not a valid correlation matrix"
        ) from None


def _subject_deviations(
    rng: np.random.Generator, n: int, anchor_weeks: Sequence[int], n_items: int, spec: Mapping[str, Any]
) -> np.ndarray:
    """Each subject's deviation (cm) from the group mean at each anchor week and item, shape (n, anchors, items):
    multivariate normal with the SDs and correlations of simulation.vas.between_subject (the correlation of
    (week a, item i) and (week b, item j) is the weeks' correlation times the items'), centred within the group and
    scaled by sqrt(n / (n - 1)) so the expected sample variance stays the SD^2 (n > 1)."""
    sd, corr = spec["sd"], spec["correlation"]
    if n_items > 1 and "items" not in corr:
        raise ConfigError("simulation.vas.between_subject.correlation.items is needed for more than one diary item")
    weeks_l = _correlation_cholesky(len(anchor_weeks), corr["baseline_follow_up"], corr["follow_up"], "weeks")
    items_l = _correlation_cholesky(n_items, corr.get("items", 0.0), corr.get("items", 0.0), "items")
    z = rng.standard_normal(size=(n, len(anchor_weeks), n_items))
    dev = np.einsum("ab,nbj,ij->nai", weeks_l, z, items_l)
    dev *= np.array([float(sd["baseline"] if w == 0 else sd["follow_up"]) for w in anchor_weeks])[None, :, None]
    if n > 1:
        dev = (dev - dev.mean(axis=0)) * np.sqrt(n / (n - 1))
    return dev


def _group_mean_anchor_tenths(
    rng: np.random.Generator,
    n: int,
    anchors: Mapping[int, Sequence[float]],
    anchor_weeks: Sequence[int],
    n_items: int,
    spec: Mapping[str, Any],
) -> np.ndarray:
    """The subjects' VAS (tenths) at the anchor weeks, shape (n, anchors, items): the group mean of each anchor is
    the midpoint of its range (after clipping to the scale), plus each subject's deviation, rounded to 0.1 cm and
    clipped to 0-10."""
    latent = np.array(
        [
            _latent_mean(
                (float(anchors[w][0]) + float(anchors[w][1])) / 2.0,
                float(spec["sd"]["baseline"] if w == 0 else spec["sd"]["follow_up"]),
            )
            for w in anchor_weeks
        ]
    )
    values = latent[None, :, None] + _subject_deviations(rng, n, anchor_weeks, n_items, spec)
    return np.clip(scaled_integers(values, 1), 0, 100).astype(np.int64)


def _no_default_range(params: Mapping[str, Any], test: str) -> bool:
    """A test of the study's lab standards without a default reference range (a declared panel's test)."""
    return params["lab_standards"]["tests"][test]["range"] is None


def _reference_range(standards: Mapping[str, Any], test: str, female: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    spec = standards["tests"][test]["range"]
    if isinstance(spec, Mapping):
        lo = np.where(female, spec["F"][0], spec["M"][0]).astype(float)
        hi = np.where(female, spec["F"][1], spec["M"][1]).astype(float)
    else:
        lo = np.full(len(female), float(spec[0]))
        hi = np.full(len(female), float(spec[1]))
    return lo, hi


def simulate_lab_values(
    rng: np.random.Generator, cohort: _Cohort, params: Mapping[str, Any], layout: Layout
) -> np.ndarray:
    """Lab values in standard units, shape (n, clinic visits, tests of the protocol's lab panel), unrounded.

    Default: a subject mean in the central part of the default reference range (by sex where it differs),
    visit values mean + N(0, visit_noise x width), kept 5 % of the width inside the range. Exceptions:
    B12-deficient without prior therapy have low Hb (below the sex-specific LLN), MCV > 100 fL and B12
    80-190 pg/mL at baseline, improving on therapy (Hb and MCV part of the way at the clinic visits before
    `labs_recover_by_week`, recovered from it on); everyone else has adequate B12; diabetics have HbA1c
    and fasting glucose in their diabetic ranges; INR = PT / mean normal PT. The tests named here must be in the
    panel. A test without a default range (a declared panel's test lab_standards.yaml does not know) is drawn the
    same way within its range of simulation.labs.declared, and reported without a reference range.
    """
    labs = params["simulation"]["labs"]
    standards = params["lab_standards"]
    tests = list(layout.lab_panel)
    n = len(cohort.number)
    band, noise = labs["normal_band"], labs["visit_noise"]
    values = np.empty((n, len(layout.clinic_weeks), len(tests)))
    declared = labs.get("declared") or {}
    for j, test in enumerate(tests):
        if test in declared:  # no default range: the study config's range of values (simulation.labs.declared)
            lo, hi = (np.full(n, float(declared[test][k])) for k in (0, 1))
        else:
            lo, hi = _reference_range(standards, test, cohort.female)
        width = hi - lo
        mean = lo + width * (band + (1.0 - 2.0 * band) * rng.random(n))
        visit = mean[:, None] + rng.normal(0.0, 1.0, size=(n, len(layout.clinic_weeks))) * (noise * width)[:, None]
        values[:, :, j] = np.clip(visit, (lo + 0.05 * width)[:, None], (hi - 0.05 * width)[:, None])

    def stable_in(low: float, high: float) -> np.ndarray:
        width = high - low
        mean = low + width * (0.15 + 0.7 * rng.random(n))
        visit = mean[:, None] + rng.normal(0.0, noise * width, size=(n, len(layout.clinic_weeks)))
        return np.clip(visit, low + 0.01 * width, high - 0.01 * width)

    def uniform(bounds: Sequence[float], size: Any = None) -> np.ndarray:
        return rng.uniform(bounds[0], bounds[1], size=n if size is None else size)

    col = {test: j for j, test in enumerate(tests)}
    untreated = cohort.b12_deficient & ~cohort.residual
    # B12: adequate and stable unless deficient without prior therapy (then low, adequate on therapy)
    b12 = stable_in(*labs["b12_adequate"])
    b12[:, 0] = np.where(untreated, uniform(labs["b12_deficient"]), b12[:, 0])
    on_therapy = uniform(labs["b12_adequate"], size=(n, len(layout.clinic_weeks) - 1))
    b12[:, 1:] = np.where(untreated[:, None], on_therapy, b12[:, 1:])
    values[:, :, col["B12"]] = b12
    # haemoglobin and MCV recover from megaloblastic anaemia over the 8 weeks
    lln, _ = _reference_range(standards, "HGB", cohort.female)
    hb0 = lln - uniform(labs["anaemia_hb_below_lln"])
    hb8 = lln + uniform(labs["recovered_hb_above_lln"])
    step = uniform([0.4, 0.6])  # the share recovered half-way to labs_recover_by_week
    recovered_by = float(params["simulation"]["labs_recover_by_week"])

    def recovery(start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Per clinic visit: start at baseline, end from labs_recover_by_week on, part of the way before."""
        columns = []
        for week in layout.clinic_weeks:
            share = np.minimum((week / recovered_by) * 2.0 * step, 1.0)
            columns.append(start if week == 0 else end if week >= recovered_by else start + (end - start) * share)
        return np.stack(columns, axis=1)

    anaemic = recovery(hb0, hb8)
    values[:, :, col["HGB"]] = np.where(untreated[:, None], anaemic, values[:, :, col["HGB"]])
    mcv0, mcv8 = uniform(labs["macrocytic_mcv"]), uniform(labs["recovered_mcv"])
    macrocytic = recovery(mcv0, mcv8)
    values[:, :, col["MCV"]] = np.where(untreated[:, None], macrocytic, values[:, :, col["MCV"]])
    # diabetics: raised, stable glycaemia
    values[:, :, col["HBA1C"]] = np.where(
        cohort.diabetic[:, None], stable_in(*labs["hba1c_diabetic"]), values[:, :, col["HBA1C"]]
    )
    values[:, :, col["GLUCF"]] = np.where(
        cohort.diabetic[:, None], stable_in(*labs["glucose_diabetic"]), values[:, :, col["GLUCF"]]
    )
    # INR follows PT (ISI 1.0), so the coagulation panel is coherent
    pt = round_half_away(values[:, :, col["PT"]], 1)
    values[:, :, col["INR"]] = pt / labs["mean_normal_pt"]
    return values


def generate_study(n_subjects: int, seed: int, params: Mapping[str, Any]) -> SimulatedStudy:
    """Simulate the raw files of a study of `n_subjects` subjects (see the module docstring).

    params: as built by `build_params` (config sections simulation, treatment, visit_windows, and the
    parsed lab_units.yaml, lab_standards.yaml and codebook). Raises ConfigError for inconsistent parameters
    and for n_subjects < 1.
    """
    if n_subjects < 1:
        raise ConfigError(f"n_subjects must be at least 1, got {n_subjects}")
    _check_params(params)
    layout = study_layout(params)
    sim = params["simulation"]
    n = int(n_subjects)
    cohort = _simulate_cohort(n, derive_rng(seed, "cohort"), params, layout)
    arms = params.get("arms")
    if arms:
        cohort.arm = allocate_arms(
            derive_rng(seed, "allocation"),
            cohort.etiology,
            [str(c) for c in arms["codes"]],
            sim.get("allocation_ratio"),
        )
    vas = simulate_vas_tenths(
        derive_rng(seed, "vas"), cohort.severe, sim["vas"], layout.symptoms, layout.diary_weeks,
        groups=vas_groups(cohort, sim["vas"], layout, arms),
    )  # fmt: skip
    dropouts = sim.get("dropouts")
    if dropouts:
        scaled = {
            **dropouts,
            "count": int(allocate_counts(n, [dropouts["count"], sim["n_subjects"] - dropouts["count"]])[0]),
        }
        cohort.withdrawal_week, cohort.withdrawal_reason, dose_days = simulate_dropouts(
            derive_rng(seed, "dropouts"), n, scaled, layout.diary_weeks, int(params["treatment"]["duration_weeks"])
        )
        cohort.last_dose = np.where(dose_days >= 0, cohort.first_dose + dose_days, cohort.last_dose)
    final = max(layout.diary_weeks)
    if cohort.withdrawal_week is None:
        last_week = np.full(n, final)
    else:
        last_week = np.where(cohort.withdrawal_week >= 0, cohort.withdrawal_week, final)

    def grid(weeks: Sequence[int], per_week: int) -> np.ndarray:
        """Which records of a subject x week (x item or test) grid exist: those up to the subject's last week."""
        return np.repeat(np.asarray(weeks)[None, :] <= last_week[:, None], per_week).reshape(-1)

    keep = {
        "symptom_diary.csv": grid(layout.diary_weeks, len(layout.symptoms)),
        "labs.csv": grid(layout.clinic_weeks, len(layout.lab_panel)),
        "dosing.csv": grid(layout.dosing_weeks, 1),
    }
    lab_values = simulate_lab_values(derive_rng(seed, "labs"), cohort, params, layout)
    diary_days, lab_days = _simulate_visit_days(derive_rng(seed, "dates"), cohort, sim, layout)
    low, high = sim["dosing"]["capsules_returned"]
    returned = derive_rng(seed, "dosing").integers(low, high, size=(n, len(layout.dosing_weeks)), endpoint=True)
    dispensed = int(sim["dosing"]["capsules_dispensed"])

    site_names = list(sim["site_counts"])
    site = np.array(site_names, dtype=object)[cohort.site]
    ids = subject_ids(cohort.number, layout.id_pad)
    # record -> subject index, per file (records are ordered by subject, then visit, then symptom or test)
    n_tests = len(layout.lab_panel)
    subject_of = {
        "subjects.csv": np.arange(n),
        "symptom_diary.csv": np.repeat(np.arange(n), len(layout.diary_weeks) * len(layout.symptoms)),
        "labs.csv": np.repeat(np.arange(n), len(layout.clinic_weeks) * n_tests),
        "dosing.csv": np.repeat(np.arange(n), len(layout.dosing_weeks)),
    }
    subject_of.update({file: subject_of[file][mask] for file, mask in keep.items()})
    wb = Workbench(derive_rng(seed, "mess"), sim["mess"]["rates"])
    wb.add_table("subjects.csv", _subjects_columns(cohort, site, ids, layout, arms))
    wb.add_table(
        "symptom_diary.csv", _keep_rows(_diary_columns(vas, ids, diary_days, layout), keep["symptom_diary.csv"])
    )
    wb.canon["symptom_diary.csv"]["_week"] = np.tile(
        np.repeat(np.arange(len(layout.diary_weeks)), len(layout.symptoms)), n
    )[keep["symptom_diary.csv"]]
    wb.canon["symptom_diary.csv"]["_tenths"] = vas.reshape(-1)[keep["symptom_diary.csv"]]
    lab_columns, si_rows = _lab_columns(cohort, lab_values, ids, lab_days, params, layout)
    new_row = np.cumsum(keep["labs.csv"]) - 1
    si_rows = new_row[si_rows[keep["labs.csv"][si_rows]]]
    wb.add_table("labs.csv", _keep_rows(lab_columns, keep["labs.csv"]))
    del lab_columns, lab_values
    wb.add_table("dosing.csv", _keep_rows(_dosing_columns(ids, returned, dispensed, layout), keep["dosing.csv"]))
    wb.add_table(
        "adverse_events.csv", _adverse_event_columns(derive_rng(seed, "adverse_events"), cohort, ids, sim, layout, arms)
    )

    # systematic site conventions: day-first dates, SI units
    day_first_site = np.array([bool(sim["sites"][name]["day_first"]) for name in site_names])[cohort.site]
    for file, column, days in (
        ("subjects.csv", "consent_date", cohort.consent),
        ("subjects.csv", "first_dose_date", cohort.first_dose),
        ("subjects.csv", "last_dose_date", cohort.last_dose),
        (
            "symptom_diary.csv",
            "assessment_date",
            np.repeat(diary_days.reshape(-1), len(layout.symptoms))[keep["symptom_diary.csv"]],
        ),
        ("labs.csv", "sample_date", np.repeat(lab_days.reshape(-1), n_tests)[keep["labs.csv"]]),
    ):
        idx = np.flatnonzero(day_first_site[subject_of[file]])
        wb.writable(file, column)[idx] = format_dates(days[idx], True)
        wb.record("day_first_date", file, column, idx)
    wb.record("si_unit", "labs.csv", "unit", si_rows)

    # random mess, then duplicated diary records (last, so each copy is exact)
    inject_subject_ids(wb, {file: cohort.number[rows] for file, rows in subject_of.items()}, layout)
    inject_cell_mess(wb, sim, site[subject_of["labs.csv"]], layout)
    del subject_of
    impossible = wb.canon["symptom_diary.csv"]["vas_cm"] == ""
    dup_candidates = np.flatnonzero(~impossible)
    dup_count = max(1, int(scaled_integers(sim["mess"]["rates"]["duplicate_row"] * len(impossible), 0)))
    duplicated = np.sort(wb.rng.choice(dup_candidates, size=min(dup_count, len(dup_candidates)), replace=False))

    # assembled in this order so each working array is released as soon as it is used
    raw_rows = _raw_rows(wb, duplicated, layout)
    mess = _assemble_mess(wb, raw_rows, duplicated, layout)
    study_raw = _assemble_raw(wb, duplicated, layout)
    truth = _assemble_truth(wb, cohort, vas, returned, dispensed, impossible, layout, keep)
    return SimulatedStudy(
        raw=study_raw, truth=truth, dataset_meta=dataset_meta(n, seed, sim["dataset_description"]), mess=mess
    )


def _simulate_visit_days(
    rng: np.random.Generator, cohort: _Cohort, sim: Mapping[str, Any], layout: Layout
) -> tuple[np.ndarray, np.ndarray]:
    """Diary days (n, diary weeks) and clinic sample days (n, clinic visits), days since 1970-01-01.

    Diary: baseline on the first-dose day, week k at first dose + 7k +/- diary_jitter_days. Clinic: each
    post-baseline visit at first dose + its target day +/- clinic_jitter_days; the baseline sample up to
    clinic_jitter_days before the first dose, never after it and never before consent.
    """
    n = len(cohort.first_dose)
    jitter = sim["diary_jitter_days"]
    shift = rng.integers(-jitter, jitter, size=(n, len(layout.diary_weeks)), endpoint=True)
    shift[:, 0] = 0
    diary_days = cohort.first_dose[:, None] + 7 * np.asarray(layout.diary_weeks)[None, :] + shift
    jitter = sim["clinic_jitter_days"]
    lab_shift = rng.integers(-jitter, jitter, size=(n, len(layout.clinic_weeks)), endpoint=True)
    lab_shift[:, 0] = -np.minimum(np.abs(lab_shift[:, 0]), cohort.first_dose - cohort.consent)
    lab_days = cohort.first_dose[:, None] + np.asarray(layout.clinic_days)[None, :] + lab_shift
    return diary_days, lab_days


def _subjects_columns(
    cohort: _Cohort, site: np.ndarray, ids: np.ndarray, layout: Layout, arms: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """subjects.csv in canonical text (ISO dates); in a randomised study with the arm (and the stratum: the
    etiology, when the contract has the column)."""
    n = len(ids)
    yes_no = np.array(["no", "yes"], dtype=object)
    withdrawn = cohort.withdrawal_week >= 0 if cohort.withdrawal_week is not None else np.zeros(n, dtype=bool)
    reasons = cohort.withdrawal_reason if cohort.withdrawal_reason is not None else np.full(n, "", dtype=object)
    randomised = {}
    if arms and cohort.arm is not None:
        randomised["arm"] = np.array([str(c) for c in arms["codes"]], dtype=object)[cohort.arm]
        if "stratum" in layout.columns["subjects.csv"]:
            randomised["stratum"] = np.array(layout.etiologies, dtype=object)[cohort.etiology]
    return {
        "subject_id": ids,
        "site": site,
        "sex": np.where(cohort.female, "F", "M").astype(object),
        "age_years": cohort.age.astype(np.str_).astype(object),
        "weight_kg": format_numbers(cohort.weight_tenths / 10.0, 1, trim=True),
        "height_cm": cohort.height.astype(np.str_).astype(object),
        "etiology": np.array(layout.etiologies, dtype=object)[cohort.etiology],
        "diabetes_duration_years": np.where(
            cohort.diabetes_years >= 0, cohort.diabetes_years.astype(np.str_), ""
        ).astype(object),
        "metformin": yes_no[cohort.metformin.astype(int)],
        "prior_b12_therapy": yes_no[cohort.residual.astype(int)],
        "anticoagulant": yes_no[cohort.anticoagulant.astype(int)],
        "consent_date": format_dates(cohort.consent, False),
        "first_dose_date": format_dates(cohort.first_dose, False),
        "last_dose_date": format_dates(cohort.last_dose, False),
        "status": np.where(withdrawn, "withdrawn", "completed").astype(object),
        "withdrawal_reason": reasons,
        **randomised,
    }


def _adverse_event_columns(
    rng: np.random.Generator,
    cohort: _Cohort,
    ids: np.ndarray,
    sim: Mapping[str, Any],
    layout: Layout,
    arms: Mapping[str, Any] | None,
) -> dict[str, np.ndarray]:
    """adverse_events.csv in canonical text: simulation.adverse_events `subjects` (per arm code, or `all` in a
    single-arm study) subjects with one treatment-emergent event each, drawn from the group's treated subjects; the
    term, severity and causality drawn from `terms`, `severity` and `related`; onset on a treatment day after the
    first dose, resolved 1-7 days later, not serious. None declared: no adverse events (a header row only)."""
    columns = layout.columns["adverse_events.csv"]
    spec = sim.get("adverse_events") or {}
    wanted = {str(k): int(v) for k, v in (spec.get("subjects") or {}).items()}
    if not sum(wanted.values()):
        return {c: np.empty(0, dtype=object) for c in columns}
    n = len(ids)
    if arms and cohort.arm is not None:
        group = np.array([str(c) for c in arms["codes"]], dtype=object)[cohort.arm]
    else:
        group = np.full(n, "all", dtype=object)
    unknown = sorted(set(wanted) - set(group.tolist()))
    if unknown:
        raise ConfigError(f"simulation.adverse_events.subjects names groups without subjects: {unknown}")
    chosen = []
    for name, count in wanted.items():
        members = np.flatnonzero(group == name)
        if count > len(members):
            raise ConfigError(f"simulation.adverse_events.subjects: {count} in {name}, which has {len(members)}")
        chosen.append(rng.choice(members, size=count, replace=False))
    subjects = np.sort(np.concatenate(chosen))
    k = len(subjects)
    span = np.maximum(cohort.last_dose[subjects] - cohort.first_dose[subjects], 1)
    onset = cohort.first_dose[subjects] + rng.integers(1, span, endpoint=True)
    end = onset + rng.integers(1, 7, size=k, endpoint=True)

    def pick(key: str) -> np.ndarray:
        return np.asarray([str(v) for v in spec[key]], dtype=object)[rng.integers(0, len(spec[key]), size=k)]

    values = {
        "subject_id": ids[subjects],
        "term": pick("terms"),
        "onset_date": format_dates(onset, False),
        "end_date": format_dates(end, False),
        "severity": pick("severity"),
        "serious": np.full(k, "no", dtype=object),
        "related": pick("related"),
        "action": np.full(k, "none", dtype=object),
        "outcome": np.full(k, "recovered", dtype=object),
    }
    return {c: values[c] for c in columns}


def _diary_columns(vas: np.ndarray, ids: np.ndarray, diary_days: np.ndarray, layout: Layout) -> dict[str, np.ndarray]:
    """symptom_diary.csv in canonical text: subject x week x symptom, VAS with one decimal."""
    n, n_weeks, n_symptoms = vas.shape
    rows = n * n_weeks * n_symptoms
    return {
        "subject_id": np.repeat(ids, n_weeks * n_symptoms),
        "visit": np.tile(np.repeat(np.array(layout.diary_visits, dtype=object), n_symptoms), n),
        "assessment_date": format_dates(np.repeat(diary_days.reshape(-1), n_symptoms), False),
        "symptom": np.tile(np.array(layout.symptoms, dtype=object), n * n_weeks),
        "vas_cm": format_numbers(vas.reshape(-1) / 10.0, 1, trim=False),
        "comment": np.full(rows, "", dtype=object),
    }


def _lab_columns(
    cohort: _Cohort,
    lab_values: np.ndarray,
    ids: np.ndarray,
    lab_days: np.ndarray,
    params: Mapping[str, Any],
    layout: Layout,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """labs.csv in canonical text (subject x clinic visit x test, each site's unit and precision, the default
    reference range by sex in that unit, blank where the site gives none), and the records reported in a
    unit other than the standard one."""
    sim = params["simulation"]
    tests = params["lab_units"]["tests"]
    codes = list(layout.lab_panel)
    n, n_visits, n_tests = lab_values.shape
    subject = np.repeat(np.arange(n), n_visits * n_tests)
    test = np.tile(np.arange(n_tests), n * n_visits)
    visit = np.tile(np.repeat(np.arange(n_visits), n_tests), n)
    sites = list(sim["site_counts"])
    unit_table = np.empty((len(sites), n_tests), dtype=object)
    factor_table = np.ones((len(sites), n_tests))
    decimals_table = np.zeros((len(sites), n_tests), dtype=np.int64)
    no_range_table = np.zeros((len(sites), n_tests), dtype=bool)
    for s, name in enumerate(sites):
        spec = sim["sites"][name]
        for j, code in enumerate(codes):
            unit = spec["units"].get(code, tests[code]["unit"])
            unit_table[s, j] = unit
            factor_table[s, j] = float(tests[code]["units"][unit])
            decimals_table[s, j] = int(spec["unit_decimals"].get(code, tests[code]["decimals"]))
            no_range_table[s, j] = code in spec["tests_without_reference_range"] or _no_default_range(params, code)
    site_of = cohort.site[subject]
    factor = factor_table[site_of, test]
    decimals = decimals_table[site_of, test]
    no_range = no_range_table[site_of, test]
    low = np.empty((n, n_tests))
    high = np.empty((n, n_tests))
    for j, code in enumerate(codes):
        if _no_default_range(params, code):
            low[:, j], high[:, j] = np.nan, np.nan
        else:
            low[:, j], high[:, j] = _reference_range(params["lab_standards"], code, cohort.female)
    by_subject_test = subject * n_tests + test
    ref_low = np.where(no_range, np.nan, low.reshape(-1)[by_subject_test] / factor)
    ref_high = np.where(no_range, np.nan, high.reshape(-1)[by_subject_test] / factor)
    unit = unit_table[site_of, test]
    standard_unit = np.array([tests[c]["unit"] for c in codes], dtype=object)
    columns = {
        "subject_id": ids[subject],
        "visit": np.array(layout.clinic_visits, dtype=object)[visit],
        "sample_date": format_dates(np.repeat(lab_days.reshape(-1), n_tests), False),
        "test_code": np.array(codes, dtype=object)[test],
        "result": format_numbers(lab_values.reshape(-1) / factor, decimals, trim=True),
        "unit": unit,
        "ref_low": format_numbers(ref_low, decimals, trim=True),
        "ref_high": format_numbers(ref_high, decimals, trim=True),
    }
    return columns, np.flatnonzero(unit != standard_unit[test])


def _dosing_columns(ids: np.ndarray, returned: np.ndarray, dispensed: int, layout: Layout) -> dict[str, np.ndarray]:
    """dosing.csv in canonical text: capsules dispensed and returned at the protocol's dosing-return visits."""
    rows = returned.size
    return {
        "subject_id": np.repeat(ids, len(layout.dosing_weeks)),
        "visit": np.tile(np.array(layout.dosing_visits, dtype=object), len(ids)),
        "capsules_dispensed": np.full(rows, str(dispensed), dtype=object),
        "capsules_returned": returned.reshape(-1).astype(np.str_).astype(object),
    }


def _raw_rows(wb: Workbench, duplicated: np.ndarray, layout: Layout) -> dict[str, np.ndarray]:
    """Per file, the spreadsheet row (header = row 1) of every generated record; in the diary each
    duplicated record is written right after its original, shifting the records below it."""
    rows = {}
    for file in layout.files:
        m = np.arange(wb.rows(file), dtype=np.int64)
        shift = np.searchsorted(duplicated, m, side="left") if file == "symptom_diary.csv" else 0
        rows[file] = m + 2 + shift
    return rows


def _assemble_raw(wb: Workbench, duplicated: np.ndarray, layout: Layout) -> dict[str, pd.DataFrame]:
    """Raw tables as str frames (diary with each duplicated record right after its original); releases
    the workbench's raw columns."""
    raw: dict[str, pd.DataFrame] = {}
    for file in layout.files:
        columns = wb.raw.pop(file)
        if file == "symptom_diary.csv":
            copies = np.ones(wb.rows(file), dtype=np.int64)
            copies[duplicated] = 2
            order = np.repeat(np.arange(len(copies)), copies)
        else:
            order = None
        frame = {}
        for name in layout.columns[file]:
            values = columns.pop(name)
            frame[name] = pd.Series(values if order is None else values[order], dtype="str")
            del values
        raw[file] = pd.DataFrame(frame, columns=layout.columns[file], copy=False)
    return raw


def _assemble_truth(
    wb: Workbench,
    cohort: _Cohort,
    vas: np.ndarray,
    returned: np.ndarray,
    dispensed: int,
    impossible: np.ndarray,
    layout: Layout,
    keep: Mapping[str, np.ndarray],
) -> dict[str, pd.DataFrame]:
    """Clean tables with typed columns; releases the workbench's canonical columns. keep: the records that exist
    of each file's full subject x visit grid (a withdrawn subject's later ones do not)."""
    numbers: dict[str, dict[str, np.ndarray]] = {
        "subjects.csv": {
            "age_years": cohort.age.astype(float),
            "weight_kg": cohort.weight_tenths / 10.0,
            "height_cm": cohort.height.astype(float),
            "diabetes_duration_years": np.where(cohort.diabetes_years >= 0, cohort.diabetes_years, np.nan),
        },
        "symptom_diary.csv": {
            "vas_cm": np.where(impossible, np.nan, vas.reshape(-1)[keep["symptom_diary.csv"]] / 10.0)
        },
        "labs.csv": {
            column: map_distinct(wb.canon["labs.csv"][column], lambda s: float(s) if s else np.nan).astype(float)
            for column in ("ref_low", "ref_high")
        },
        "dosing.csv": {
            "capsules_dispensed": np.full(wb.rows("dosing.csv"), dispensed, dtype=np.int64),
            "capsules_returned": returned.reshape(-1)[keep["dosing.csv"]].astype(np.int64),
        },
    }
    truth: dict[str, pd.DataFrame] = {}
    for file in layout.files:
        columns = wb.canon.pop(file)
        typed = numbers.get(file, {})
        frame: dict[str, Any] = {}
        for name in layout.columns[file]:
            text = columns.pop(name)
            frame[name] = typed[name] if name in typed else text_or_missing(text)
            del text
        truth[file] = pd.DataFrame(frame, columns=layout.columns[file], copy=False)
    return truth


def _assemble_mess(
    wb: Workbench, raw_rows: dict[str, np.ndarray], duplicated: np.ndarray, layout: Layout
) -> pd.DataFrame:
    """The mess table from the workbench's records (before its columns are released)."""
    kinds = np.array(list(MESS_KINDS), dtype=object)
    files = np.array(layout.files, dtype=object)
    # one code per (file, column): file x 32 + column position + 1; position 0 is the whole record ("*")
    column_names = np.full(len(layout.files) * 32, "*", dtype=object)
    for f, file in enumerate(layout.files):
        for c, name in enumerate(layout.columns[file]):
            column_names[f * 32 + c + 1] = name
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("kind", "column", "row", "raw", "clean")}

    def add(kind: str, file: str, position: int, rows: np.ndarray, raw: np.ndarray, clean: np.ndarray) -> None:
        parts["kind"].append(np.full(len(rows), list(MESS_KINDS).index(kind), dtype=np.int64))
        parts["column"].append(np.full(len(rows), layout.files.index(file) * 32 + position, dtype=np.int64))
        parts["row"].append(rows)
        parts["raw"].append(raw)
        parts["clean"].append(clean)

    for kind, file, column, idx in wb.records:
        if len(idx):
            position = layout.columns[file].index(column) + 1
            add(kind, file, position, raw_rows[file][idx], wb.raw[file][column][idx], wb.canon[file][column][idx])
    if len(duplicated):
        diary = "symptom_diary.csv"
        cells = zip(*(wb.raw[diary][c][duplicated] for c in layout.columns[diary]), strict=True)
        records = np.array([raw_csv_record(row) for row in cells], dtype=object)
        add("duplicate_row", diary, 0, raw_rows[diary][duplicated] + 1, records, np.full(len(records), "", object))
    kind = np.concatenate(parts.pop("kind"))
    column = np.concatenate(parts.pop("column"))
    row = np.concatenate(parts.pop("row"))
    # file, raw_row, column, kind packed into one sortable integer (column code already leads with the file)
    key = ((column // 32) << 58) | (row << 10) | ((column % 32) << 5) | kind
    order = np.argsort(key, kind="stable")
    del key
    return pd.DataFrame(
        {
            "kind": pd.Series(kinds[kind[order]], dtype="str"),
            "file": pd.Series(files[column[order] // 32], dtype="str"),
            "raw_row": row[order],
            "column": pd.Series(column_names[column[order]], dtype="str"),
            "raw_value": pd.Series(np.concatenate(parts.pop("raw"))[order], dtype="str"),
            "clean_value": pd.Series(np.concatenate(parts.pop("clean"))[order], dtype="str"),
        },
        columns=MESS_COLUMNS,
        copy=False,
    )


# --------------------------------------------------------------------------------------------------
# Dataset description and files


def dataset_meta(n_subjects: int, seed: int, description: str) -> dict[str, Any]:
    """Content of dataset.yaml: it says the data are simulated, what they are calibrated to (`description`, the
    study config's simulation.dataset_description with {n_subjects} filled in) and how to regenerate them."""
    return {
        "name": "k2trial-simulated",
        "version": GENERATOR_VERSION,
        "simulated": True,
        "description": str(description).strip().format(n_subjects=n_subjects),
        "generator": f"{GENERATOR_NAME} {GENERATOR_VERSION}",
        "seed": int(seed),
        "n_subjects": int(n_subjects),
    }


def dataset_yaml_text(meta: Mapping[str, Any]) -> str:
    """dataset.yaml as text (keys in the order given, UTF-8, block style)."""
    header = "# Simulated dataset written by k2trial.simulation: do not edit; regenerate it (data/raw/README.md).\n"
    return header + yaml.safe_dump(dict(meta), sort_keys=False, allow_unicode=True, width=100)


def sha256sums_text(files: Mapping[str, bytes]) -> str:
    """sha256sum format: "<hex>  <name>" per file, sorted by name."""
    return "".join(f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n" for name in sorted(files))


def dataset_file_bytes(study: SimulatedStudy) -> dict[str, bytes]:
    """The bytes of every file of the dataset: the five CSVs, dataset.yaml and SHA256SUMS (in memory:
    for small datasets and tests; write_raw_dataset streams)."""
    files = {name: raw_csv_bytes(table) for name, table in study.raw.items()}
    files["dataset.yaml"] = dataset_yaml_text(study.dataset_meta).encode("utf-8")
    files["SHA256SUMS"] = sha256sums_text(files).encode("utf-8")
    return files


def write_raw_dataset(study: SimulatedStudy, out_dir: str | Path) -> dict[str, str]:
    """Write the five CSVs, dataset.yaml and SHA256SUMS (sha256sum format, sorted by name, covering the
    other six files) into out_dir, created if needed; other files there are left alone. Each file is
    written atomically, the CSVs in chunks. Returns file name -> SHA-256 hex of what was written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    digests = {name: write_bytes(raw_csv_chunks(table), out / name)[1] for name, table in study.raw.items()}
    meta = dataset_yaml_text(study.dataset_meta).encode("utf-8")
    digests["dataset.yaml"] = write_bytes(meta, out / "dataset.yaml")[1]
    sums = "".join(f"{digests[name]}  {name}\n" for name in sorted(digests)).encode("utf-8")
    digests["SHA256SUMS"] = write_bytes(sums, out / "SHA256SUMS")[1]
    return digests


def write_truth_tables(study: SimulatedStudy, out_dir: str | Path) -> None:
    """Write the truth tables (same file names as the raw files) and mess.csv with k2trial.core.io."""
    out = Path(out_dir)
    for name, table in study.truth.items():
        write_csv(table, out / name)
    write_csv(study.mess, out / "mess.csv")
