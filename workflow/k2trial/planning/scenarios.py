"""Planning scenarios: the planning configuration and the pilot's estimates turned into named, seeded cells.

Inputs (paths in config/planning.yaml `inputs`; read by the rule plan_scenarios):

* the pilot's analysis dataset `vas.csv` (long: subject_id, param, visit, week, aval, base, chg, pchg; one row per
  subject, param and visit), with the arm (and stratum) either as columns of vas.csv or from a per-subject table
  (`inputs.subjects`: subject_id, arm [, stratum]);
* the pilot's between-arm results `between_arm.csv` (population, param, visit, test, n_treated, n_control,
  estimate (treated - control), ci_low, ci_high, p_value, p_adjusted, family, estimate_type, method): the ANCOVA row
  of the planning endpoint gives the effect scenarios (its estimate and the bounds of its CI) and the assurance
  prior (Normal(estimate, SE^2), SE from the CI half-width / t quantile).

From the analysis dataset (complete cases at the endpoint visit, pooled within arms): baseline mean and SD, SD of
the end-of-treatment value, baseline-to-end correlation, SD of the change, each arm's mean change (the pilot's
placebo response), stratum proportions, the observed dropout, and the ANCOVA recomputed with
k2trial.stats.two_sample.ancova as a consistency check against between_arm.csv.

A cell is effect scenario x placebo scenario x dropout scenario x variability scenario x N per arm (control arm;
treated = ratio x control). Its identity `cell_id` ("effect:placebo:dropout:variability:n<N>") is built from the
scenario names only; the seed of its trials comes from the global seed and that identity
(k2trial.planning.simulate.cell_entropy), so neither its position in the list nor the job it runs in matters.

Placebo response models (`placebo_response.model`):

* "absorbed" (default): the treated arm's mean change is the pilot's (pilot control change + effect scenario); a
  confirmatory trial's placebo arm changes by the scenario's placebo change instead of the pilot's, so the
  difference shrinks by (placebo change - pilot control change). This is the cautious reading of a pilot whose
  placebo arm did not move: part of the improvement on MK-7 would also be seen on placebo.
* "additive": the placebo response adds to both arms and leaves the difference as in the effect scenario (it
  then matters only through the floor and ceiling of the scale and through the responder rates).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from k2trial.core.errors import K2TrialError
from k2trial.planning.power import ANCOVA, RANK_SUM, AnalysisSettings, ResponderRule
from k2trial.planning.simulate import FIXED, PERMUTED_BLOCKS, CellDesign, VasScale
from k2trial.stats.two_sample import ancova

VAS_COLUMNS = ("subject_id", "param", "visit", "week", "aval", "base", "chg", "pchg")
BETWEEN_ARM_COLUMNS = (
    "population",
    "param",
    "visit",
    "test",
    "n_treated",
    "n_control",
    "estimate",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "family",
    "estimate_type",
    "method",
)
EFFECT_SOURCES = ("estimate", "ci_low", "ci_high", "ci_bound_near_null", "ci_bound_far", "prior")
PLACEBO_MODELS = ("absorbed", "additive")


class PlanningConfigError(K2TrialError):
    """The planning configuration is incomplete or inconsistent (names the key and what is expected)."""


class PlanningInputError(K2TrialError):
    """A planning input (the pilot's analysis dataset or between-arm results) lacks what the plan needs."""


# ====================================================================================== configuration


def _need(section: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(section, Mapping) or key not in section:
        raise PlanningConfigError(f"planning config: `{where}.{key}` is missing")
    return section[key]


def _named(entries: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(entries, list) or not entries:
        raise PlanningConfigError(f"planning config: `{where}` must be a non-empty list of named entries")
    names = []
    for entry in entries:
        name = _need(entry, "name", where)
        if not isinstance(name, str) or not name or any(c in name for c in ":/ ,"):
            raise PlanningConfigError(
                f"planning config: `{where}` name {name!r} must be a word (no ':', '/', ',' or space)"
            )
        names.append(name)
    if len(set(names)) != len(names):
        raise PlanningConfigError(f"planning config: `{where}` has duplicate names: {names}")
    return [dict(e) for e in entries]


@dataclass(frozen=True)
class EffectScenario:
    name: str
    source: str  # one of EFFECT_SOURCES, or "value"
    value: float | None  # when source == "value"
    multiplier: float
    description: str


@dataclass(frozen=True)
class PlaceboScenario:
    name: str
    change: float  # mean change of the placebo arm at the endpoint visit (VAS points)
    description: str


@dataclass(frozen=True)
class ReferenceRate:
    """A published placebo responder rate to compare with the simulated placebo arm (not used to simulate)."""

    test: str
    scenario: str
    rate: float
    ci_low: float | None
    ci_high: float | None
    source: str


@dataclass(frozen=True)
class DropoutScenario:
    name: str
    rate: float
    description: str


@dataclass(frozen=True)
class VariabilityScenario:
    name: str
    end_sd_multiplier: float
    description: str


@dataclass(frozen=True)
class PlanningConfig:
    """config/planning.yaml as typed values (see that file for the meaning of every key)."""

    raw: Mapping[str, Any]
    inputs: Mapping[str, Any]
    param: str
    visit: str
    baseline_visit: str
    benefit: str
    scale: VasScale | None
    population: str
    treated: str
    control: str
    arm_column: str
    stratum_column: str | None
    pilot_confidence: float
    effects: tuple[EffectScenario, ...]
    placebo_model: str
    placebos: tuple[PlaceboScenario, ...]
    reference_rates: tuple[ReferenceRate, ...]
    dropouts: tuple[DropoutScenario, ...]
    variabilities: tuple[VariabilityScenario, ...]
    baseline_mean: float | None  # None: from the pilot
    baseline_sd: float | None
    end_sd: float | None
    correlation: float | None
    ratio: tuple[int, int]
    randomisation: str
    block_size: int
    strata: tuple[str, ...] | None  # None: from the pilot (when stratified); () not stratified
    strata_proportions: Mapping[str, float] | None  # None: from the pilot
    strata_shift: Mapping[str, float]
    analysis: AnalysisSettings
    primary: str
    responder_missing: str
    sample_sizes: tuple[int, ...]
    targets: tuple[float, ...]
    trials: int
    seed: int | None
    block_trials: int
    max_values: int
    jobs: int
    report: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stratified(self) -> bool:
        return self.strata != ()


def load_planning_config(raw: Mapping[str, Any]) -> PlanningConfig:
    """Check and type the planning configuration (the parsed YAML); errors name the key."""
    inputs = _need(raw, "inputs", "planning")
    for key in ("vas", "between_arm"):
        _need(inputs, key, "inputs")
    endpoint = _need(raw, "endpoint", "planning")
    pilot = _need(raw, "pilot", "planning")
    scale_cfg = _need(endpoint, "scale", "endpoint")
    scale = (
        None
        if scale_cfg is None
        else VasScale(
            lower=float(_need(scale_cfg, "lower", "endpoint.scale")),
            upper=float(_need(scale_cfg, "upper", "endpoint.scale")),
            decimals=int(_need(scale_cfg, "decimals", "endpoint.scale")),
        )
    )
    benefit = str(_need(endpoint, "benefit", "endpoint"))
    if benefit not in ("decrease", "increase"):
        raise PlanningConfigError("planning config: `endpoint.benefit` must be decrease or increase")

    effects = []
    for e in _named(_need(raw, "effects", "planning"), "effects"):
        if "value" in e:
            source, value = "value", float(e["value"])
        else:
            source, value = str(_need(e, "from", f"effects[{e['name']}]")), None
            if source not in EFFECT_SOURCES:
                raise PlanningConfigError(
                    f"planning config: effects[{e['name']}].from is {source!r}; expected one of {EFFECT_SOURCES}"
                )
        effects.append(
            EffectScenario(e["name"], source, value, float(e.get("multiplier", 1.0)), str(e.get("description", "")))
        )

    placebo = _need(raw, "placebo_response", "planning")
    model = str(_need(placebo, "model", "placebo_response"))
    if model not in PLACEBO_MODELS:
        raise PlanningConfigError(f"planning config: `placebo_response.model` must be one of {PLACEBO_MODELS}")
    placebos = tuple(
        PlaceboScenario(
            p["name"], float(_need(p, "change", "placebo_response.scenarios")), str(p.get("description", ""))
        )
        for p in _named(_need(placebo, "scenarios", "placebo_response"), "placebo_response.scenarios")
    )
    references = []
    for ref in placebo.get("reference_responder_rates") or []:
        test = str(_need(ref, "test", "placebo_response.reference_responder_rates"))
        scenario = str(_need(ref, "scenario", "placebo_response.reference_responder_rates"))
        if scenario not in {p.name for p in placebos}:
            raise PlanningConfigError(f"planning config: reference responder rate for unknown scenario {scenario!r}")
        ci = ref.get("ci") or [None, None]
        references.append(
            ReferenceRate(
                test, scenario, float(_need(ref, "rate", "reference")), ci[0], ci[1], str(ref.get("source", ""))
            )
        )
    dropout = _need(raw, "dropout", "planning")
    dropouts = []
    for d in _named(_need(dropout, "scenarios", "dropout"), "dropout.scenarios"):
        rate = float(_need(d, "rate", "dropout.scenarios"))
        if not 0.0 <= rate < 1.0:
            raise PlanningConfigError(f"planning config: dropout rate {rate} of {d['name']} must lie in [0, 1)")
        dropouts.append(DropoutScenario(d["name"], rate, str(d.get("description", ""))))
    if str(dropout.get("mechanism", "MCAR")) != "MCAR":
        raise PlanningConfigError("planning config: `dropout.mechanism` must be MCAR (the only one simulated)")
    handling = _need(dropout, "handling", "dropout")
    for key in (ANCOVA, RANK_SUM):
        if handling.get(key, "complete_cases") != "complete_cases":
            raise PlanningConfigError(f"planning config: `dropout.handling.{key}` must be complete_cases")
    responder_missing = str(handling.get("responder", "non_responder"))
    if responder_missing not in ("non_responder", "complete_cases"):
        raise PlanningConfigError(
            "planning config: `dropout.handling.responder` must be non_responder or complete_cases"
        )

    variability = _need(raw, "variability", "planning")
    variabilities = tuple(
        VariabilityScenario(v["name"], float(v.get("end_sd_multiplier", 1.0)), str(v.get("description", "")))
        for v in _named(_need(variability, "scenarios", "variability"), "variability.scenarios")
    )

    def pilot_or_number(section: Mapping[str, Any], key: str, where: str) -> float | None:
        value = _need(section, key, where)
        if value == "pilot":
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise PlanningConfigError(f"planning config: `{where}.{key}` must be 'pilot' or a number") from None

    design = _need(raw, "design", "planning")
    allocation = _need(design, "allocation", "design")
    ratio = (
        int(_need(allocation, "treated", "design.allocation")),
        int(_need(allocation, "control", "design.allocation")),
    )
    if min(ratio) < 1:
        raise PlanningConfigError("planning config: `design.allocation` parts must be positive integers")
    randomisation = _need(design, "randomisation", "design")
    method = str(_need(randomisation, "method", "design.randomisation"))
    if method not in (FIXED, PERMUTED_BLOCKS):
        raise PlanningConfigError(
            f"planning config: `design.randomisation.method` must be {FIXED} or {PERMUTED_BLOCKS}"
        )
    block_size = int(randomisation.get("block_size", 2 * sum(ratio)))
    if method == PERMUTED_BLOCKS and block_size % sum(ratio):
        raise PlanningConfigError(f"planning config: block size {block_size} is not a multiple of {sum(ratio)}")
    strat_cfg = design.get("stratification")
    if strat_cfg is None:
        strata, proportions, shift = (), {}, {}
    else:
        props = _need(strat_cfg, "proportions", "design.stratification")
        if props == "pilot":
            strata, proportions = None, None
        else:
            if not isinstance(props, Mapping) or not props or min(float(v) for v in props.values()) <= 0:
                raise PlanningConfigError(
                    "planning config: stratification proportions must be 'pilot' or positive shares"
                )
            strata, proportions = tuple(sorted(str(k) for k in props)), {str(k): float(v) for k, v in props.items()}
        shift = {str(k): float(v) for k, v in (strat_cfg.get("end_shift") or {}).items()}

    analysis = _need(raw, "analysis", "planning")
    tests = tuple(str(t) for t in _need(analysis, "tests", "analysis"))
    responders = []
    for name, rule in (analysis.get("responders") or {}).items():
        percent, points = rule.get("percent_reduction"), rule.get("point_reduction")
        if (percent is None) == (points is None):
            raise PlanningConfigError(
                f"planning config: analysis.responders.{name} needs percent_reduction or point_reduction"
            )
        responders.append(
            ResponderRule(
                str(name), None if percent is None else float(percent), None if points is None else float(points)
            )
        )
    known = {ANCOVA, RANK_SUM, *(r.name for r in responders)}
    unknown = [t for t in tests if t not in known]
    if unknown:
        raise PlanningConfigError(
            f"planning config: analysis.tests {unknown} are neither ancova, rank_sum nor a responder rule"
        )
    primary = str(_need(analysis, "primary", "analysis"))
    if primary not in tests:
        raise PlanningConfigError(f"planning config: analysis.primary {primary!r} is not among analysis.tests")
    rank_sum_cfg = analysis.get("rank_sum") or {}
    settings = AnalysisSettings(
        tests=tests,
        alpha=float(_need(analysis, "alpha", "analysis")),
        confidence=float(analysis.get("confidence", 0.95)),
        ancova_stratum="stratum" in (analysis.get("ancova_covariates") or []),
        decimals=None if scale is None else scale.decimals,
        exact_below=int(rank_sum_cfg.get("exact_below", 50)),
        continuity=bool(rank_sum_cfg.get("continuity_correction", True)),
        responders=tuple(responders),
        responder_missing=responder_missing,
        benefit=benefit,
    )
    sizes = tuple(sorted({int(n) for n in _need(raw, "sample_sizes", "planning")["n_control"]}))
    if not sizes or sizes[0] < 2:
        raise PlanningConfigError("planning config: `sample_sizes.n_control` needs sizes >= 2")
    simulation = _need(raw, "simulation", "planning")
    jobs = _need(raw, "jobs", "planning")
    return PlanningConfig(
        raw=raw,
        inputs=inputs,
        param=str(_need(endpoint, "param", "endpoint")),
        visit=str(_need(endpoint, "visit", "endpoint")),
        baseline_visit=str(endpoint.get("baseline_visit", "baseline")),
        benefit=benefit,
        scale=scale,
        population=str(_need(pilot, "population", "pilot")),
        treated=str(_need(pilot, "treated_arm", "pilot")),
        control=str(_need(pilot, "control_arm", "pilot")),
        arm_column=str(pilot.get("arm_column", "arm")),
        stratum_column=pilot.get("stratum_column"),
        pilot_confidence=float(pilot.get("confidence", 0.95)),
        effects=tuple(effects),
        placebo_model=model,
        placebos=placebos,
        reference_rates=tuple(references),
        dropouts=tuple(dropouts),
        variabilities=variabilities,
        baseline_mean=pilot_or_number(variability, "baseline_mean", "variability"),
        baseline_sd=pilot_or_number(variability, "baseline_sd", "variability"),
        end_sd=pilot_or_number(variability, "end_sd", "variability"),
        correlation=pilot_or_number(variability, "correlation", "variability"),
        ratio=ratio,
        randomisation=method,
        block_size=block_size,
        strata=strata,
        strata_proportions=proportions,
        strata_shift=shift,
        analysis=settings,
        primary=primary,
        responder_missing=responder_missing,
        sample_sizes=sizes,
        targets=tuple(float(t) for t in _need(raw, "power_targets", "planning")),
        trials=int(_need(simulation, "trials_per_cell", "simulation")),
        seed=None if simulation.get("seed") is None else int(simulation["seed"]),
        block_trials=int(_need(simulation, "seed_block_trials", "simulation")),
        max_values=int(_need(simulation, "max_values_per_batch", "simulation")),
        jobs=int(_need(jobs, "count", "jobs")),
        report=dict(raw.get("report") or {}),
    )


# ================================================================================== pilot estimates


@dataclass(frozen=True)
class PilotEstimates:
    """What the plan takes from the pilot (VAS points; arms pooled within arm unless said otherwise)."""

    n_randomised_treated: int
    n_randomised_control: int
    n_analysed_treated: int  # complete cases at the endpoint visit
    n_analysed_control: int
    dropout_observed: float  # share of randomised patients without an endpoint value
    baseline_mean: float
    baseline_sd: float  # pooled within-arm SD of the baseline
    end_sd: float  # pooled within-arm SD of the end-of-treatment value
    correlation: float  # pooled within-arm correlation of baseline and end-of-treatment value
    change_sd: float  # pooled within-arm SD of the change
    treated_change: float  # mean change in the treated arm
    control_change: float  # mean change in the control arm (the pilot's placebo response)
    strata: tuple[str, ...]
    strata_proportions: tuple[float, ...]  # among randomised patients
    ancova_estimate: float  # from between_arm.csv
    ancova_ci_low: float
    ancova_ci_high: float
    ancova_confidence: float
    ancova_df: float  # n_treated + n_control - 2 - strata (the pilot's model, as recomputed)
    ancova_se: float  # CI half-width / t quantile
    ancova_n_treated: int
    ancova_n_control: int
    ancova_method: str
    recomputed_estimate: float  # two_sample.ancova on vas.csv (consistency check)
    recomputed_ci_low: float
    recomputed_ci_high: float
    recomputed_residual_sd: float
    responder_rates: Mapping[str, Mapping[str, float]]  # responder rule -> arm -> proportion (complete cases)
    between_arm_rows: tuple[Mapping[str, Any], ...]  # the endpoint's rows of between_arm.csv (for the page)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PilotEstimates:
        values = dict(data)
        values["strata"] = tuple(values["strata"])
        values["strata_proportions"] = tuple(values["strata_proportions"])
        values["between_arm_rows"] = tuple(values["between_arm_rows"])
        return cls(**values)


def read_table(path: str | Path, columns: Sequence[str], label: str) -> pd.DataFrame:
    """A CSV with an empty cell as the only missing value; every listed column must be there."""
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=str)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PlanningInputError(f"{label} ({Path(path).as_posix()}) lacks column(s) {missing}")
    return frame


def _numbers(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    out = frame.copy()
    for column in columns:
        out[column] = pd.to_numeric(out[column], errors="coerce")
    return out


def _pooled_within(values: pd.DataFrame, group: str, columns: Sequence[str]) -> np.ndarray:
    """Pooled within-group covariance matrix of `columns` (df = n - groups)."""
    centred = values[list(columns)] - values.groupby(group)[list(columns)].transform("mean")
    x = centred.to_numpy(dtype=float)
    df = len(values) - values[group].nunique()
    return x.T @ x / df


def estimate_pilot(
    vas: pd.DataFrame,
    between_arm: pd.DataFrame,
    subjects: pd.DataFrame | None,
    config: PlanningConfig,
    *,
    labels: Mapping[str, str] | None = None,
) -> PilotEstimates:
    """The pilot's estimates for the plan (see the module docstring). Raises PlanningInputError with the file
    and what is missing when the inputs do not hold the endpoint, the arms or the ANCOVA row."""
    labels = dict(labels or {})
    vas_label = labels.get("vas", "vas.csv")
    ba_label = labels.get("between_arm", "between_arm.csv")
    arm_col, stratum_col = config.arm_column, config.stratum_column
    per_subject = [arm_col] + ([stratum_col] if stratum_col else [])
    if subjects is None:
        missing = [c for c in per_subject if c not in vas.columns]
        if missing:
            raise PlanningInputError(f"{vas_label} has no column(s) {missing} and no per-subject table is configured")
        arms = vas[["subject_id", *per_subject]].drop_duplicates("subject_id")
    else:
        missing = [c for c in ["subject_id", *per_subject] if c not in subjects.columns]
        if missing:
            raise PlanningInputError(f"{labels.get('subjects', 'subjects table')} lacks column(s) {missing}")
        arms = subjects[["subject_id", *per_subject]].drop_duplicates("subject_id")
    arms = arms[arms[arm_col].isin([config.treated, config.control])]
    if arms.empty:
        raise PlanningInputError(f"no subject has arm {config.treated!r} or {config.control!r} in column {arm_col!r}")

    rows = _numbers(vas[vas["param"] == config.param], ["aval", "base", "chg"])
    if rows.empty:
        raise PlanningInputError(f"{vas_label} has no rows of param {config.param!r}")
    base_rows = rows[rows["visit"] == config.baseline_visit][["subject_id", "aval"]].rename(columns={"aval": "b0"})
    end_rows = rows[rows["visit"] == config.visit][["subject_id", "aval", "base", "chg"]]
    if end_rows.empty:
        raise PlanningInputError(f"{vas_label} has no rows of param {config.param!r} at visit {config.visit!r}")
    data = arms.merge(base_rows, on="subject_id", how="left").merge(end_rows, on="subject_id", how="left")
    data["base"] = data["base"].fillna(data["b0"])
    randomised = data[data["base"].notna()]
    complete = randomised[randomised["aval"].notna()].copy()
    is_t = complete[arm_col] == config.treated
    if is_t.sum() < 2 or (~is_t).sum() < 2:
        raise PlanningInputError(f"{vas_label}: fewer than 2 complete cases in an arm at {config.visit}")

    cov = _pooled_within(complete, arm_col, ["base", "aval", "chg"])
    baseline_sd, end_sd, change_sd = (math.sqrt(cov[i, i]) for i in range(3))
    correlation = cov[0, 1] / (baseline_sd * end_sd)
    n_rt = int((randomised[arm_col] == config.treated).sum())
    n_rc = int((randomised[arm_col] == config.control).sum())
    if stratum_col:
        levels = tuple(sorted(randomised[stratum_col].dropna().astype(str).unique()))
        counts = randomised[stratum_col].astype(str).value_counts()
        proportions = tuple(float(counts[lvl]) / len(randomised) for lvl in levels)
    else:
        levels, proportions = (), ()
    fit = ancova(
        complete["chg"].to_numpy(float),
        complete["base"].to_numpy(float),
        complete[arm_col].to_numpy(object),
        treated=config.treated,
        control=config.control,
        stratum=complete[stratum_col].astype(str).to_numpy(object) if stratum_col else None,
        confidence=config.pilot_confidence,
    )

    ba = _numbers(between_arm, ["n_treated", "n_control", "estimate", "ci_low", "ci_high", "p_value", "p_adjusted"])
    endpoint_rows = ba[
        (ba["population"] == config.population) & (ba["param"] == config.param) & (ba["visit"] == config.visit)
    ]
    row = endpoint_rows[endpoint_rows["test"] == ANCOVA]
    if len(row) != 1:
        raise PlanningInputError(
            f"{ba_label}: expected one row population={config.population}, param={config.param}, "
            f"visit={config.visit}, test=ancova; found {len(row)}"
        )
    r = row.iloc[0]
    n_t, n_c = int(r["n_treated"]), int(r["n_control"])
    df = n_t + n_c - 2 - max(len(levels), 1)
    quantile = float(stats.t.isf((1.0 - config.pilot_confidence) / 2.0, df))
    se = (float(r["ci_high"]) - float(r["ci_low"])) / (2.0 * quantile)

    rates: dict[str, dict[str, float]] = {}
    scale_f = 10.0 ** (config.scale.decimals if config.scale else 0)
    for rule in config.analysis.responders:
        base_i = np.rint(complete["base"].to_numpy(float) * scale_f)
        reduction = base_i - np.rint(complete["aval"].to_numpy(float) * scale_f)
        if rule.percent is not None:
            responder = (base_i > 0) & (reduction * 100.0 >= rule.percent * base_i)
        else:
            responder = reduction >= np.rint(rule.points * scale_f)
        rates[rule.name] = {
            config.treated: float(responder[is_t.to_numpy()].mean()),
            config.control: float(responder[~is_t.to_numpy()].mean()),
        }
    keep = ["test", "n_treated", "n_control", "estimate", "ci_low", "ci_high", "p_value", "estimate_type", "method"]
    ba_rows = tuple(
        {k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in rec.items()}
        for rec in endpoint_rows[keep].sort_values("test", kind="stable").to_dict("records")
    )
    return PilotEstimates(
        n_randomised_treated=n_rt,
        n_randomised_control=n_rc,
        n_analysed_treated=int(is_t.sum()),
        n_analysed_control=int((~is_t).sum()),
        dropout_observed=1.0 - len(complete) / len(randomised),
        baseline_mean=float(randomised["base"].mean()),
        baseline_sd=baseline_sd,
        end_sd=end_sd,
        correlation=float(correlation),
        change_sd=change_sd,
        treated_change=float(complete.loc[is_t, "chg"].mean()),
        control_change=float(complete.loc[~is_t, "chg"].mean()),
        strata=levels,
        strata_proportions=proportions,
        ancova_estimate=float(r["estimate"]),
        ancova_ci_low=float(r["ci_low"]),
        ancova_ci_high=float(r["ci_high"]),
        ancova_confidence=config.pilot_confidence,
        ancova_df=float(df),
        ancova_se=se,
        ancova_n_treated=n_t,
        ancova_n_control=n_c,
        ancova_method=str(r["method"]),
        recomputed_estimate=fit.estimate,
        recomputed_ci_low=fit.ci_low,
        recomputed_ci_high=fit.ci_high,
        recomputed_residual_sd=fit.sigma,
        responder_rates=rates,
        between_arm_rows=ba_rows,
    )


# ============================================================================================== cells


@dataclass(frozen=True)
class Cell:
    """One planning cell: scenario names, N per arm and the resulting simulation design (values)."""

    cell_id: str
    scenario_id: str
    effect: str
    placebo: str
    dropout: str
    variability: str
    n_control: int
    n_treated: int
    delta: float  # treated - control difference in mean change (latent scale)
    effect_sd: float  # > 0: assurance cell (effect drawn per trial)
    control_change: float
    dropout_rate: float
    baseline_mean: float
    baseline_sd: float
    end_sd: float
    correlation: float
    change_sd: float  # SD of the change implied by baseline_sd, end_sd, correlation

    def design(self, config: PlanningConfig, strata: tuple[str, ...], proportions: tuple[float, ...]) -> CellDesign:
        return CellDesign(
            cell_id=self.cell_id,
            n_treated=self.n_treated,
            n_control=self.n_control,
            baseline_mean=self.baseline_mean,
            baseline_sd=self.baseline_sd,
            end_sd=self.end_sd,
            correlation=self.correlation,
            control_change=self.control_change,
            effect=self.delta,
            effect_sd=self.effect_sd,
            dropout=self.dropout_rate,
            strata=strata,
            strata_proportions=proportions,
            strata_shift=tuple(config.strata_shift.get(s, 0.0) for s in strata) if strata else (),
            randomisation=config.randomisation,
            block_size=config.block_size,
            ratio=config.ratio,
            scale=config.scale,
        )


def cell_id(effect: str, placebo: str, dropout: str, variability: str, n_control: int) -> str:
    """The identity of a cell (the seed derives from it): scenario names and the control arm's size."""
    return f"{effect}:{placebo}:{dropout}:{variability}:n{int(n_control)}"


def cell_keys(config: PlanningConfig) -> list[tuple[str, str, str, str, int]]:
    """Every cell's (effect, placebo, dropout, variability, n_control) in the canonical order: the config's order
    of each scenario list, then increasing N. Depends on the configuration only (not on the pilot's values)."""
    return [
        (e.name, p.name, d.name, v.name, n)
        for e in config.effects
        for p in config.placebos
        for d in config.dropouts
        for v in config.variabilities
        for n in config.sample_sizes
    ]


def job_cells(n_cells: int, jobs: int, job: int) -> list[int]:
    """Indices (canonical order) of the cells that job `job` of `jobs` runs: round robin, so every job gets a mix
    of small and large N. The results do not depend on it: each cell's trials depend only on its identity."""
    if not 0 <= job < jobs:
        raise ValueError(f"job {job} is not in 0..{jobs - 1}")
    return list(range(job, n_cells, jobs))


def n_treated_for(n_control: int, ratio: tuple[int, int]) -> int:
    """Treated arm size for a control arm of n_control at ratio treated:control (rounded half up)."""
    return int(math.floor(n_control * ratio[0] / ratio[1] + 0.5))


def effect_value(scenario: EffectScenario, pilot: PilotEstimates) -> tuple[float, float]:
    """(effect, prior SD) of an effect scenario on the pilot's scale (treated - control), before placebo shifts."""
    est, lo, hi = pilot.ancova_estimate, pilot.ancova_ci_low, pilot.ancova_ci_high
    # The bound on the null side of the estimate (the upper one for a negative estimate) and the other one.
    near, far = (hi, lo) if est <= 0 else (lo, hi)
    values = {
        "estimate": est,
        "ci_low": lo,
        "ci_high": hi,
        "ci_bound_near_null": near,
        "ci_bound_far": far,
        "prior": est,
    }
    value = scenario.value if scenario.source == "value" else values[scenario.source]
    sd = pilot.ancova_se * abs(scenario.multiplier) if scenario.source == "prior" else 0.0
    return float(value) * scenario.multiplier, sd


def build_cells(config: PlanningConfig, pilot: PilotEstimates) -> list[Cell]:
    """All cells with their values, in the canonical order of `cell_keys`."""
    baseline_mean = pilot.baseline_mean if config.baseline_mean is None else config.baseline_mean
    baseline_sd = pilot.baseline_sd if config.baseline_sd is None else config.baseline_sd
    end_sd_base = pilot.end_sd if config.end_sd is None else config.end_sd
    correlation = pilot.correlation if config.correlation is None else config.correlation
    effects = {e.name: e for e in config.effects}
    placebos = {p.name: p for p in config.placebos}
    dropouts = {d.name: d for d in config.dropouts}
    variabilities = {v.name: v for v in config.variabilities}
    cells = []
    for e_name, p_name, d_name, v_name, n in cell_keys(config):
        effect, prior_sd = effect_value(effects[e_name], pilot)
        placebo = placebos[p_name].change
        if config.placebo_model == "absorbed":
            delta = effect + pilot.control_change - placebo
        else:
            delta = effect
        end_sd = end_sd_base * variabilities[v_name].end_sd_multiplier
        change_sd = math.sqrt(baseline_sd**2 + end_sd**2 - 2.0 * correlation * baseline_sd * end_sd)
        cells.append(
            Cell(
                cell_id=cell_id(e_name, p_name, d_name, v_name, n),
                scenario_id=f"{e_name}:{p_name}:{d_name}:{v_name}",
                effect=e_name,
                placebo=p_name,
                dropout=d_name,
                variability=v_name,
                n_control=n,
                n_treated=n_treated_for(n, config.ratio),
                delta=delta,
                effect_sd=prior_sd,
                control_change=placebo,
                dropout_rate=dropouts[d_name].rate,
                baseline_mean=baseline_mean,
                baseline_sd=baseline_sd,
                end_sd=end_sd,
                correlation=correlation,
                change_sd=change_sd,
            )
        )
    return cells


def design_strata(config: PlanningConfig, pilot: PilotEstimates) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The strata of the planned randomisation and their proportions (from the config, else from the pilot)."""
    if not config.stratified:
        return (), ()
    if config.strata is None:
        if not pilot.strata:
            raise PlanningInputError("stratification proportions 'pilot' but the pilot has no stratum column")
        return pilot.strata, pilot.strata_proportions
    total = sum(config.strata_proportions.values())
    return config.strata, tuple(config.strata_proportions[s] / total for s in config.strata)


def scenarios_document(config: PlanningConfig, pilot: PilotEstimates, global_seed: int) -> dict[str, Any]:
    """What the cell jobs and the gather job read (scenarios.json): the seed, strata, pilot estimates and cells."""
    strata, proportions = design_strata(config, pilot)
    return {
        "global_seed": int(global_seed),
        "strata": list(strata),
        "strata_proportions": list(proportions),
        "pilot": pilot.to_dict(),
        "cells": [asdict(c) for c in build_cells(config, pilot)],
    }


def cells_from_document(document: Mapping[str, Any]) -> list[Cell]:
    return [Cell(**c) for c in document["cells"]]
