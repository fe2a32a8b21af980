"""Between-arm efficacy of a randomised design: treated minus control per population, endpoint and visit
(artifact efficacy/between_arm; issue 14 item 2; CLINICAL.md, "Between-arm comparisons (randomised designs)").

Rows, per population (`itt`: randomised, as randomised; `per_protocol`), param (endpoint) and post-baseline visit:

* `ancova` (primary): change from baseline on arm + baseline value (+ stratum when configured), ordinary least
  squares; the LS-mean difference treated - control with its t CI and p (k2trial.stats.two_sample.ancova, equal
  to R `lm(chg ~ arm + base [+ stratum])` with emmeans).
* `rank_sum`: Wilcoxon rank-sum on the change, Hodges-Lehmann shift (median of all treated - control
  differences) with its distribution-free CI, exact or normal with continuity correction exactly as R
  `wilcox.test(x, y, conf.int = TRUE)` (two_sample.rank_sum_test).
* `responder_<p>` (a reduction of at least p % of baseline) and `responder_<k>pt` (at least k points, units of the
  endpoint), on the change from baseline: risk difference p_treated - p_control with the Newcombe hybrid-score CI
  and Fisher's exact p (two_sample.risk_difference). Counted as the within-arm responders table counts them
  (k2trial.analysis.efficacy.responder_counts: compared exactly at the recording precision). Percent change is
  undefined at baseline 0: such a subject is not evaluable for a percent criterion (excluded from n_treated /
  n_control, counted in n_not_evaluable, per arm in `note`); for a point criterion it is evaluable.
* `mmrm` (sensitivity): one model per population and param over the configured post-baseline visits, change ~
  arm * visit + baseline with an unstructured within-subject covariance (REML), falling back to compound symmetry,
  then independence (k2trial.stats.mmrm.mmrm, equal to nlme::gls with corSymm + varIdent and emmeans df.error);
  one row per visit. Results of this iterative fit are written at 6 significant digits
  (stats.mmrm.rounded_result); everything else is closed form and written at full precision.

Conventions. Change = visit value - baseline value (baseline: the value at the `baseline` visit), computed first
and rounded half away from zero to the recording precision of the param (so floating-point noise cannot create
distinct ranks); the baseline covariate is rounded the same way. A negative change is an improvement, so a
negative ANCOVA / rank-sum / MMRM estimate and a positive risk difference favour the treated arm. Per row, the
subjects analysed are the members of the population in the two arms with the values that row needs (complete
cases per visit for the per-visit tests; the MMRM uses every observed visit, missing at random assumed). The arm
is the randomised arm in both populations. Degenerate data (an empty arm, all values missing at a visit, one
subject per arm) give NaN with the reason in `note`; nothing here raises on data, only on inconsistent settings.

Multiplicity: Holm within named families declared in config (`HolmFamily`): each family is the set of rows
whose test, param and visit are among the ones it lists (an empty list: any), adjusted within one population
(and, when `within` names further columns, within each of their values). A row in several families carries all
their names in `family` ("a; b") and the largest of their adjusted p's in p_adjusted; a row in none has
p_adjusted NaN and family "". Holm uses the p-values as written (the MMRM's at 6 significant digits).

Columns (core.schema "efficacy/between_arm"; the issue's first, in its order): population, param, visit (analysis
visit code), test, n_treated / n_control (subjects analysed in the row; for the MMRM: observed at the visit),
estimate (treated - control: LS-mean difference or HL shift in units of the endpoint, or a difference of
proportions 0..1), ci_low, ci_high, p_value, p_adjusted, family, estimate_type (ls_mean_difference, hl_shift,
risk_difference), method (the model or method in words, with the fallback used). Then: arm_treated, arm_control
(the codes), ci_level (the interval's level: the requested one, except the exact rank-sum interval, whose exact
coverage 1 - 2 P(W <= k - 1) is given; 0 when one difference is all there is), se and df (ANCOVA, MMRM),
statistic and statistic_name (t; W = Mann-Whitney U of the treated arm), p_method, lsmean_treated / lsmean_control
(ANCOVA, MMRM: LS-mean change per arm), responders_treated / responders_control (responder rows), n_missing_treated
/ n_missing_control (members of the arm in the population not analysed in the row: a missing baseline, visit or
stratum value; the not evaluable are apart), n_not_evaluable (baseline 0 for a percent criterion, both arms),
covariance_used (MMRM: unstructured, compound symmetry, independence, or "none" when not fitted), note (subjects
outside the two arms, dropped rows, fallbacks, reasons for NaN, the pain-scale caveat of the responder thresholds).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from k2trial.analysis.efficacy import MCID_CAVEAT, responder_counts
from k2trial.analysis.vas_cube import VasCube
from k2trial.core import schema
from k2trial.core.errors import ConfigError
from k2trial.core.values import round_half_away
from k2trial.core.vocabulary import BASELINE, COMPOSITE
from k2trial.stats.mmrm import STRUCTURES, UNSTRUCTURED, mmrm, rounded_result
from k2trial.stats.paired import holm
from k2trial.stats.two_sample import ancova, rank_sum_test, risk_difference

NAN = math.nan
ARTIFACT = "efficacy/between_arm"

TEST_ANCOVA = "ancova"
TEST_RANK_SUM = "rank_sum"
TEST_MMRM = "mmrm"
#: Populations analysed by default: the randomised set as randomised, then the per-protocol set.
DEFAULT_POPULATIONS = ("itt", "per_protocol")
#: Populations that must not be analysed for efficacy (the safety set is as treated).
NOT_FOR_EFFICACY = ("safety",)
#: Columns a family may be split by besides the population (always split by population).
FAMILY_WITHIN = ("param", "visit", "test")
#: What the long analysis VAS frame must have when it is given instead of a cube.
VAS_LONG_COLUMNS = ("subject_id", "param", "visit", "week", "aval")
_FAMILY_NAME = re.compile(r"^[a-z0-9_]+$")

#: covariance_used of an MMRM that could not be fitted (k2trial.stats.mmrm's word for it).
NOT_FITTED = "none"
ESTIMATE_LS_MEAN = "ls_mean_difference"
ESTIMATE_HL = "hl_shift"
ESTIMATE_RISK = "risk_difference"


def percent_test(threshold: float) -> str:
    """Test name of a percent-reduction responder criterion: 30 -> "responder_30"."""
    return f"responder_{threshold:g}"


def points_test(threshold: float) -> str:
    """Test name of a point-reduction responder criterion: 2 -> "responder_2pt"."""
    return f"responder_{threshold:g}pt"


# ------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class HolmFamily:
    """A named Holm family: the rows whose test, param and visit are each among the listed ones (empty: any).

    The adjustment is always within one population (ITT and per-protocol analyse the same hypotheses twice, they
    are not one family); `within` splits further by the values of other row columns ("param", "visit", "test"):
    `HolmFamily("visits", tests=("ancova",), within=("param",))` is, per population and param, the ANCOVA rows of
    all visits. Config form (efficacy.between_arm.holm_families): `{visits: {tests: [ancova], within: [param]}}`.
    """

    name: str
    tests: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    visits: tuple[str, ...] = ()
    within: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _FAMILY_NAME.match(self.name):
            raise ConfigError(f"Holm family name {self.name!r}: use lower-case letters, digits and _")
        bad = [c for c in self.within if c not in FAMILY_WITHIN]
        if bad:
            raise ConfigError(f"Holm family {self.name}: within {bad} not among {list(FAMILY_WITHIN)}")

    def selects(self, frame: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the rows of `frame` (the between-arm table) in this family."""
        mask = np.ones(len(frame), dtype=bool)
        for column, allowed in (("test", self.tests), ("param", self.params), ("visit", self.visits)):
            if allowed:
                mask &= frame[column].isin(allowed).to_numpy()
        return mask

    @classmethod
    def from_config(cls, name: str, spec: Mapping | None) -> HolmFamily:
        spec = spec or {}
        unknown = sorted(set(spec) - {"tests", "params", "visits", "within"})
        if unknown:
            raise ConfigError(f"Holm family {name}: unknown keys {unknown} (tests, params, visits, within)")
        return cls(
            name=str(name),
            tests=tuple(str(v) for v in spec.get("tests") or ()),
            params=tuple(str(v) for v in spec.get("params") or ()),
            visits=tuple(str(v) for v in spec.get("visits") or ()),
            within=tuple(str(v) for v in spec.get("within") or ()),
        )


@dataclass(frozen=True)
class BetweenArmSettings:
    """What the between-arm analysis needs (config `arms` and `efficacy.between_arm`; see `from_config`).

    treated, control: arm codes (estimates are treated - control). params: the endpoints; visits: the
    post-baseline visits of the per-visit tests; decimals: recording decimals per param (values and changes are
    compared and ranked at this precision). exact_below: rank-sum exact p and CI only when both arms have fewer
    values than this and there are no ties (R: 50). responder_percent / responder_points: reduction thresholds on
    the change from baseline. mmrm_visits: the visits of the repeated-measures model (empty: no MMRM rows);
    mmrm_covariance: the structure tried first (then the fallback chain of stats.mmrm). pain_params: endpoints
    that are pain (the others' responder rows say the thresholds come from pain scales).
    """

    treated: str
    control: str
    params: tuple[str, ...]
    visits: tuple[str, ...]
    decimals: Mapping[str, int]
    confidence: float = 0.95
    exact_below: int = 50
    continuity_correction: bool = True
    adjust_for_stratum: bool = False
    responder_percent: tuple[float, ...] = (30.0, 50.0)
    responder_points: tuple[float, ...] = (2.0,)
    mmrm_visits: tuple[str, ...] = ()
    mmrm_covariance: str = UNSTRUCTURED
    mmrm_baseline_by_visit: bool = False
    families: tuple[HolmFamily, ...] = ()
    populations: tuple[str, ...] = DEFAULT_POPULATIONS
    pain_params: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.treated == self.control:
            raise ConfigError(f"arms: the control arm {self.control!r} is also the treated arm")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"between-arm confidence must be in (0, 1), got {self.confidence!r}")
        if self.mmrm_covariance not in STRUCTURES:
            raise ConfigError(f"between-arm mmrm covariance must be one of {STRUCTURES}, got {self.mmrm_covariance!r}")
        for what, visits in (("visits", self.visits), ("mmrm visits", self.mmrm_visits)):
            if BASELINE in visits:
                raise ConfigError(f"between-arm {what}: post-baseline visits only, not {BASELINE!r}")
        safety = [p for p in self.populations if p in NOT_FOR_EFFICACY]
        if safety:
            raise ConfigError(f"between-arm populations: {safety} is as treated, not an efficacy population")
        missing = [p for p in self.params if p not in self.decimals]
        if missing:
            raise ConfigError(f"between-arm: no recording decimals for {missing}")
        names = [f.name for f in self.families]
        if len(set(names)) < len(names):
            raise ConfigError(f"between-arm Holm families: duplicate names in {names}")
        for family in self.families:
            unknown_tests = sorted(set(family.tests) - set(self.tests))
            unknown_params = sorted(set(family.params) - set(self.params))
            unknown_visits = sorted(set(family.visits) - set(self.visits) - set(self.mmrm_visits))
            if unknown_tests or unknown_params or unknown_visits:
                raise ConfigError(
                    f"Holm family {family.name} selects rows this analysis does not make: "
                    f"tests {unknown_tests}, params {unknown_params}, visits {unknown_visits}"
                )

    @property
    def responder_tests(self) -> tuple[tuple[str, float, str], ...]:
        """(test name, threshold, "percent" | "points") of every responder criterion, percent first."""
        return (
            *((percent_test(v), float(v), "percent") for v in self.responder_percent),
            *((points_test(v), float(v), "points") for v in self.responder_points),
        )

    @property
    def tests(self) -> tuple[str, ...]:
        """The tests of the table in row order."""
        mmrm_tests = (TEST_MMRM,) if self.mmrm_visits else ()
        return (TEST_ANCOVA, TEST_RANK_SUM, *(t for t, _, _ in self.responder_tests), *mmrm_tests)

    @classmethod
    def from_config(
        cls, efficacy: Mapping, arms: Mapping, *, params_known: Sequence[str] | None = None
    ) -> BetweenArmSettings:
        """From config `efficacy` (its `between_arm` section, with defaults from `efficacy`) and `arms`.

        arms: `{codes: [MK7, PLACEBO], control: PLACEBO, labels: {...}}` (two codes; the non-control one is the
        treated arm). efficacy.between_arm (every key optional except params and visits):
        `{populations: [itt, per_protocol], params: [pain], visits: [week4, week8, week12], confidence,
        exact_below: 50, continuity_correction: true, adjust_for_stratum: true, recording_decimals: {pain: 1},
        responders: {percent_reduction: [30, 50], point_reduction: [2]}, mmrm: {visits: [...], covariance:
        unstructured, baseline_by_visit: false}, holm_families: {name: {tests, params, visits, within}}}`.
        Defaults: confidence, continuity_correction, responders and pain_params of `efficacy`; recording
        decimals of a param: between_arm.recording_decimals[param], else efficacy.recording_decimals.composite
        for the composite and .symptom otherwise; mmrm visits: the analysis visits. params_known (the
        vocabulary's params) is checked when given.
        """
        section = efficacy.get("between_arm")
        if not section:
            raise ConfigError("config efficacy.between_arm is missing: needed for a randomised design")
        codes = [str(c) for c in arms.get("codes") or ()]
        control = str(arms.get("control", ""))
        if len(codes) != 2 or control not in codes:
            raise ConfigError(
                f"config arms: two codes with the control among them are needed (got {codes}, {control!r})"
            )
        treated = next(c for c in codes if c != control)
        params = tuple(str(p) for p in section["params"])
        if params_known is not None:
            unknown = sorted(set(params) - set(params_known))
            if unknown:
                raise ConfigError(f"config efficacy.between_arm.params: unknown params {unknown}")
        general = efficacy.get("recording_decimals") or {}
        specific = section.get("recording_decimals") or {}
        decimals = {}
        for p in params:
            if p in specific:
                decimals[p] = int(specific[p])
            elif (p == COMPOSITE and "composite" in general) or (p != COMPOSITE and "symptom" in general):
                decimals[p] = int(general["composite" if p == COMPOSITE else "symptom"])
        responders = {**(efficacy.get("responders") or {}), **(section.get("responders") or {})}
        model = section.get("mmrm") or {}
        visits = tuple(str(v) for v in section["visits"])
        return cls(
            treated=treated,
            control=control,
            params=params,
            visits=visits,
            decimals=decimals,
            confidence=float(section.get("confidence", efficacy.get("confidence", 0.95))),
            exact_below=int(section.get("exact_below", 50)),
            continuity_correction=bool(
                section.get("continuity_correction", efficacy.get("continuity_correction", True))
            ),
            adjust_for_stratum=bool(section.get("adjust_for_stratum", False)),
            responder_percent=tuple(float(v) for v in responders.get("percent_reduction", (30, 50))),
            responder_points=tuple(float(v) for v in responders.get("point_reduction", (2,))),
            mmrm_visits=tuple(str(v) for v in model.get("visits", visits)),
            mmrm_covariance=str(model.get("covariance", UNSTRUCTURED)),
            mmrm_baseline_by_visit=bool(model.get("baseline_by_visit", False)),
            families=tuple(HolmFamily.from_config(n, s) for n, s in (section.get("holm_families") or {}).items()),
            populations=tuple(str(p) for p in section.get("populations", DEFAULT_POPULATIONS)),
            pain_params=tuple(str(p) for p in responders.get("pain_params", ())),
        )


# ------------------------------------------------------------------------------------------- inputs


def vas_cube_from_long(vas: pd.DataFrame, subject_ids: Sequence[str]) -> VasCube:
    """A VasCube from the long analysis VAS frame (VAS_LONG_COLUMNS; base, chg, pchg are not needed: the change is
    recomputed from aval). Visit codes and weeks come from the frame's own (visit, week) pairs; params in order
    of first appearance. Rows of subjects not in `subject_ids` are ignored. Raises ValueError for a visit code with
    two weeks or a duplicated (subject, param, visit) record.
    """
    schema.require(vas, "analysis/vas", VAS_LONG_COLUMNS, "vas")
    frame = vas[list(VAS_LONG_COLUMNS)].copy()
    for col in ("subject_id", "param", "visit"):
        frame[col] = frame[col].astype(str)
    frame["week"] = pd.to_numeric(frame["week"], errors="raise").astype(int)
    pairs = frame[["visit", "week"]].drop_duplicates()
    if pairs["visit"].duplicated().any():
        raise ValueError(
            f"visit codes with more than one week: {sorted(pairs.loc[pairs['visit'].duplicated(), 'visit'])}"
        )
    if frame.duplicated(["subject_id", "param", "visit"]).any():
        raise ValueError("more than one VAS record for a subject, param and visit")
    subject_ids = np.asarray([str(s) for s in subject_ids], dtype=object)
    params = tuple(pd.unique(frame["param"]).tolist())
    n_weeks = int(frame["week"].max()) + 1 if len(frame) else 1
    aval = np.full((len(subject_ids), len(params), n_weeks), np.nan)
    row = pd.Index(subject_ids).get_indexer(frame["subject_id"])
    keep = row >= 0
    col = pd.Index(params).get_indexer(frame["param"])
    aval[row[keep], col[keep], frame["week"].to_numpy()[keep]] = pd.to_numeric(frame["aval"]).to_numpy(float)[keep]
    return VasCube(subject_ids, params, aval, dict(zip(pairs["visit"], pairs["week"].astype(int), strict=True)))


def _aligned(cube: VasCube, subject_ids: np.ndarray) -> VasCube:
    """The cube with its subjects in the order of `subject_ids` (absent ones all missing)."""
    if len(cube.subject_ids) == len(subject_ids) and np.array_equal(cube.subject_ids.astype(str), subject_ids):
        return cube
    idx = pd.Index(cube.subject_ids.astype(str)).get_indexer(subject_ids)
    aval = np.full((len(subject_ids), *cube.aval.shape[1:]), np.nan)
    aval[idx >= 0] = cube.aval[idx[idx >= 0]]
    return VasCube(subject_ids, cube.params, aval, cube.visit_weeks)


# -------------------------------------------------------------------------------------------- method


def _ancova_method(settings: BetweenArmSettings, stratified: bool) -> str:
    formula = "change ~ arm + baseline" + (" + stratum" if stratified else "")
    return (
        f"ANCOVA: {formula} (lm); LS-mean difference {settings.treated} - {settings.control} (emmeans: baseline at"
        f" its mean{', equal weights over strata' if stratified else ''}); t CI and p, residual df"
    )


def _rank_sum_method(settings: BetweenArmSettings, kind: str) -> str:
    return (
        f"Wilcoxon rank-sum, {kind} (R wilcox.test rule: exact when both arms < {settings.exact_below} values and"
        f" no ties); Hodges-Lehmann shift {settings.treated} - {settings.control} with distribution-free CI"
    )


def _responder_method(settings: BetweenArmSettings, threshold: float, unit: str) -> str:
    if unit == "percent":
        rule = f"reduction from baseline >= {threshold:g}% (baseline 0: not evaluable)"
    else:
        rule = f"reduction from baseline >= {threshold:g} points"
    return (
        f"responders ({rule}); risk difference {settings.treated} - {settings.control}, Newcombe hybrid score CI"
        " (1998, method 10); Fisher's exact p (two-sided)"
    )


def _mmrm_method(settings: BetweenArmSettings, used: str, reason: str) -> str:
    formula = "change ~ arm*visit + baseline" + (" + baseline:visit" if settings.mmrm_baseline_by_visit else "")
    chain = " -> ".join(STRUCTURES[STRUCTURES.index(settings.mmrm_covariance) :])
    if used == NOT_FITTED:
        return (
            f"MMRM: {formula}, {settings.mmrm_covariance} covariance requested (REML, as nlme::gls corSymm +"
            f" varIdent), fallback chain {chain}; not fitted (reason in note)"
        )
    fallback = f"fallback chain {chain}" + (f"; used {used}: {reason}" if reason else "; not needed")
    return (
        f"MMRM: {formula}, {used} covariance (REML, as nlme::gls corSymm + varIdent), df.error;"
        f" LS-mean difference {settings.treated} - {settings.control} at the visit; missing at random assumed;"
        f" {fallback}"
    )


# ------------------------------------------------------------------------------------------- the table


def _row(**values) -> dict:
    base = {
        "estimate": NAN, "ci_low": NAN, "ci_high": NAN, "p_value": NAN, "p_adjusted": NAN, "family": "",
        "ci_level": NAN, "se": NAN, "df": NAN, "statistic": NAN, "statistic_name": "", "p_method": "",
        "lsmean_treated": NAN, "lsmean_control": NAN, "responders_treated": None, "responders_control": None,
        "n_not_evaluable": 0, "covariance_used": "", "context": "", "note": "",
    }  # fmt: skip
    base.update(values)
    return base


def _join(*notes: str) -> str:
    """Non-empty notes joined with "; ", each once (several stats fields repeat the same reason)."""
    return "; ".join(dict.fromkeys(n for n in notes if n))


def between_arm_table(
    vas: VasCube | pd.DataFrame,
    allocation: pd.DataFrame,
    members: Mapping[str, np.ndarray],
    settings: BetweenArmSettings,
) -> pd.DataFrame:
    """The rows of results/efficacy/between_arm.csv (artifact efficacy/between_arm), sorted.

    vas: the VasCube (k2trial.analysis.vas_cube.build_vas_cube) or the long analysis VAS frame (subject_id,
    param, visit, week, aval, ...). allocation: one row per subject with `subject_id`, `arm` (the randomised arm
    code) and, when settings.adjust_for_stratum, `stratum`. members: population -> boolean mask aligned with the
    rows of `allocation` (k2trial.analysis.groups.population_members); settings.populations are analysed in their
    order. Subjects of a population whose arm is neither arm code (or missing) are not analysed (said in `note`).

    Rows sorted by population (settings order), param (settings order), visit (by study week), test
    (settings.tests order). Raises ConfigError when a population, param or visit is unknown or the stratum is
    required but absent, ValueError when a mask does not fit `allocation`; never on degenerate data.
    """
    for col in ("subject_id", "arm"):
        if col not in allocation.columns:
            raise ValueError(f"allocation needs a column {col!r}")
    if settings.adjust_for_stratum and "stratum" not in allocation.columns:
        raise ConfigError("efficacy.between_arm.adjust_for_stratum is true but the subjects carry no stratum")
    subject_ids = allocation["subject_id"].astype(str).to_numpy(dtype=object)
    cube = vas_cube_from_long(vas, subject_ids) if isinstance(vas, pd.DataFrame) else _aligned(vas, subject_ids)
    unknown = [p for p in settings.params if p not in cube.params]
    if unknown:
        raise ConfigError(f"between-arm params {unknown} are not in the VAS data (params: {list(cube.params)})")
    missing_pop = [p for p in settings.populations if p not in members]
    if missing_pop:
        raise ConfigError(f"between-arm populations {missing_pop} have no membership (known: {list(members)})")
    visit_order = sorted(dict.fromkeys((*settings.visits, *settings.mmrm_visits)), key=cube.week_of)
    arm = allocation["arm"].to_numpy(dtype=object)
    is_t = np.array([a == settings.treated for a in arm], dtype=bool)
    is_c = np.array([a == settings.control for a in arm], dtype=bool)
    stratum = allocation["stratum"].to_numpy(dtype=object) if settings.adjust_for_stratum else None
    rows: list[dict] = []
    for population in settings.populations:
        mask = np.asarray(members[population], dtype=bool)
        if mask.shape != (len(allocation),):
            raise ValueError(f"population {population}: mask of {mask.shape} for {len(allocation)} subjects")
        other = int((mask & ~is_t & ~is_c).sum())
        other_note = (
            f"{other} subject(s) of the population with an arm other than {settings.treated}/{settings.control}"
            " (or missing): not analysed"
            if other
            else ""
        )
        in_t, in_c = mask & is_t, mask & is_c
        sel = in_t | in_c
        for param in settings.params:
            decimals = settings.decimals[param]
            base_all = round_half_away(cube.values(np.ones(len(allocation), bool), param, BASELINE), decimals)
            key = {"population": population, "param": param}
            for visit in settings.visits:
                post_all = round_half_away(cube.values(np.ones(len(allocation), bool), param, visit), decimals)
                chg_all = round_half_away(post_all - base_all, decimals)
                rows += _visit_rows(
                    settings, key | {"visit": visit}, param, decimals, base_all, post_all, chg_all, stratum,
                    in_t, in_c, sel, other_note,
                )  # fmt: skip
            if settings.mmrm_visits:
                rows += _mmrm_rows(settings, key, cube, base_all, arm, subject_ids, in_t, in_c, sel, other_note)
    table = pd.DataFrame(rows)
    columns = schema.columns(ARTIFACT)
    if table.empty:
        return _typed(pd.DataFrame({c: [] for c in columns}))
    table["arm_treated"] = settings.treated
    table["arm_control"] = settings.control
    order = np.lexsort(
        [
            table["test"].map({t: i for i, t in enumerate(settings.tests)}).to_numpy(),
            table["visit"].map({v: i for i, v in enumerate(visit_order)}).to_numpy(),
            table["param"].map({p: i for i, p in enumerate(settings.params)}).to_numpy(),
            table["population"].map({p: i for i, p in enumerate(settings.populations)}).to_numpy(),
        ]
    )
    table = table.iloc[order].reset_index(drop=True)
    # note: the row's context (subjects outside the arms, not evaluable), then what the computation said; when an
    # arm has no analysable subject, that reason instead (the statistics' own messages only repeat it).
    notes = []
    for n_t, n_c, context, detail in zip(table.n_treated, table.n_control, table.context, table.note, strict=True):
        empty = [
            f"no analysable subject in the {which} arm ({code})"
            for n, code, which in ((n_t, settings.treated, "treated"), (n_c, settings.control, "control"))
            if n == 0
        ]
        notes.append(_join(*empty, context) if empty else _join(context, detail))
    table["note"] = notes
    table = apply_holm(table, settings.families)
    return _typed(table[columns])


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """The schema's dtypes: int counts, Int64 responder counts, floats, text."""
    out = table.copy()
    for entry in schema.spec(ARTIFACT):
        name = entry.name
        if entry.dtype == "int":
            out[name] = out[name].astype("int64")
        elif entry.dtype == "Int64":
            out[name] = pd.array([None if v is None or pd.isna(v) else int(v) for v in out[name]], dtype="Int64")
        elif entry.dtype == "float":
            out[name] = out[name].astype(float)
        else:
            out[name] = out[name].astype(object)
    return out


def _too_few_for_ancova(
    chg: np.ndarray, base: np.ndarray, treated: np.ndarray, strata: np.ndarray | None
) -> tuple[int, int, str] | None:
    """(n_treated, n_control, reason) when both arms have complete cases but fewer than the model's coefficients.

    Such a fit has no residual df and no estimable arm difference; it is not passed to stats.two_sample.ancova,
    whose SVD of a design with fewer rows than columns does not return the whole null space (it raises on the
    null-space loads). With an empty arm ancova itself returns NaN with the reason, so None is returned.
    """
    keep = ~(np.isnan(chg) | np.isnan(base))
    levels = 0
    if strata is not None:
        present = np.array([not (s is None or (isinstance(s, float) and math.isnan(s))) for s in strata], dtype=bool)
        keep &= present
        levels = len({str(s) for s in strata[keep]})
    n_t, n_c = int((keep & treated).sum()), int((keep & ~treated).sum())
    n_coef = 3 + max(levels - 1, 0)
    if n_t == 0 or n_c == 0 or n_t + n_c >= n_coef:
        return None
    return n_t, n_c, f"{n_t + n_c} complete case(s) for {n_coef} model coefficients: no estimable difference"


def _visit_rows(
    settings: BetweenArmSettings,
    key: dict,
    param: str,
    decimals: int,
    base_all: np.ndarray,
    post_all: np.ndarray,
    chg_all: np.ndarray,
    stratum: np.ndarray | None,
    in_t: np.ndarray,
    in_c: np.ndarray,
    sel: np.ndarray,
    other_note: str,
) -> list[dict]:
    """ANCOVA, rank-sum and responder rows of one population, param and visit."""
    size_t, size_c = int(in_t.sum()), int(in_c.sum())
    rows = []
    # ANCOVA (complete cases of change, baseline and, when adjusted, stratum).
    arm_labels = np.where(in_t[sel], settings.treated, settings.control).astype(object)
    strata = None if stratum is None else stratum[sel]
    if strata is not None and len(strata) and not pd.isna(strata).any() and len(set(strata.tolist())) == 1:
        strata = None  # a population within one stratum (a subgroup by cause): no stratum term to adjust for
    ancova_common = dict(
        **key, test=TEST_ANCOVA, estimate_type=ESTIMATE_LS_MEAN, method=_ancova_method(settings, strata is not None),
        ci_level=settings.confidence, statistic_name="t", p_method="t test, residual df (n - rank)",
    )  # fmt: skip
    too_few = _too_few_for_ancova(chg_all[sel], base_all[sel], in_t[sel], strata)
    if too_few is not None:
        n_t, n_c, reason = too_few
        rows.append(
            _row(
                **ancova_common,
                n_treated=n_t,
                n_control=n_c,
                n_missing_treated=size_t - n_t,
                n_missing_control=size_c - n_c,
                context=other_note,
                note=reason,
            )
        )
    else:
        res = ancova(
            chg_all[sel], base_all[sel], arm_labels, treated=settings.treated, control=settings.control,
            stratum=strata, confidence=settings.confidence,
        )  # fmt: skip
        rows.append(
            _row(
                **ancova_common,
                n_treated=res.n_treated,
                n_control=res.n_control,
                estimate=res.estimate,
                ci_low=res.ci_low,
                ci_high=res.ci_high,
                p_value=res.p_value,
                se=res.se,
                df=res.df,
                statistic=res.t,
                lsmean_treated=res.lsmean_treated,
                lsmean_control=res.lsmean_control,
                n_missing_treated=size_t - res.n_treated,
                n_missing_control=size_c - res.n_control,
                context=other_note,
                note=res.note,
            )
        )
    # Wilcoxon rank-sum with the Hodges-Lehmann shift.
    rs = rank_sum_test(
        chg_all[in_t], chg_all[in_c], decimals=decimals, exact_below=settings.exact_below,
        confidence=settings.confidence, continuity=settings.continuity_correction,
    )  # fmt: skip
    rows.append(
        _row(
            **key,
            test=TEST_RANK_SUM,
            n_treated=rs.n_x,
            n_control=rs.n_y,
            estimate=rs.estimate,
            ci_low=rs.ci_low,
            ci_high=rs.ci_high,
            p_value=rs.p_value,
            estimate_type=ESTIMATE_HL,
            method=_rank_sum_method(settings, rs.method),
            ci_level=rs.ci_level_achieved,
            statistic=rs.statistic,
            statistic_name=f"W (Mann-Whitney U of {settings.treated})",
            p_method=rs.method,
            n_missing_treated=size_t - rs.n_x,
            n_missing_control=size_c - rs.n_y,
            context=other_note,
            note=_join(rs.note, rs.ci_note),
        )
    )
    # Responders.
    caveat = "" if param in settings.pain_params else MCID_CAVEAT
    for test, threshold, unit in settings.responder_tests:
        kwargs = {"percent": threshold} if unit == "percent" else {"points": threshold}
        x_t, n_t, ne_t = responder_counts(base_all[in_t], post_all[in_t], decimals, **kwargs)
        x_c, n_c, ne_c = responder_counts(base_all[in_c], post_all[in_c], decimals, **kwargs)
        rd = risk_difference(x_t, n_t, x_c, n_c, confidence=settings.confidence)
        not_evaluable = (
            f"baseline 0, percent change undefined: {ne_t} {settings.treated} and {ne_c} {settings.control}"
            " subject(s) not evaluable"
            if ne_t + ne_c
            else ""
        )
        rows.append(
            _row(
                **key,
                test=test,
                n_treated=n_t,
                n_control=n_c,
                estimate=rd.estimate,
                ci_low=rd.ci_low,
                ci_high=rd.ci_high,
                p_value=rd.p_value,
                estimate_type=ESTIMATE_RISK,
                method=_responder_method(settings, threshold, unit),
                ci_level=settings.confidence,
                p_method="Fisher's exact test, two-sided",
                responders_treated=x_t,
                responders_control=x_c,
                n_missing_treated=size_t - n_t - ne_t,
                n_missing_control=size_c - n_c - ne_c,
                n_not_evaluable=ne_t + ne_c,
                context=_join(other_note, not_evaluable),
                note=_join(rd.note, caveat),
            )
        )
    return rows


def _mmrm_rows(
    settings: BetweenArmSettings,
    key: dict,
    cube: VasCube,
    base_all: np.ndarray,
    arm: np.ndarray,
    subject_ids: np.ndarray,
    in_t: np.ndarray,
    in_c: np.ndarray,
    sel: np.ndarray,
    other_note: str,
) -> list[dict]:
    """One MMRM per population and param over settings.mmrm_visits: one row per visit (6 significant digits)."""
    param = key["param"]
    decimals = settings.decimals[param]
    visits = sorted(settings.mmrm_visits, key=cube.week_of)
    everyone = np.ones(len(subject_ids), dtype=bool)
    parts = []
    for visit in visits:
        post = round_half_away(cube.values(everyone, param, visit), decimals)
        chg = round_half_away(post - base_all, decimals)
        parts.append(
            pd.DataFrame(
                {"subject": subject_ids[sel], "arm": arm[sel], "visit": visit, "chg": chg[sel], "base": base_all[sel]}
            )
        )
    data = pd.concat(parts, ignore_index=True)
    data["visit"] = pd.Categorical(data["visit"], categories=visits, ordered=True)
    size_t, size_c = int(in_t.sum()), int(in_c.sum())
    try:
        fit = rounded_result(
            mmrm(
                data,
                treated=settings.treated,
                control=settings.control,
                visits=visits,
                baseline_by_visit=settings.mmrm_baseline_by_visit,
                covariance=settings.mmrm_covariance,
                confidence=settings.confidence,
            )
        )
    except np.linalg.LinAlgError as error:  # numerical breakdown of a degenerate design: NaN rows, never raise
        method = _mmrm_method(settings, NOT_FITTED, "")
        observed = data[data["chg"].notna() & data["base"].notna()]
        failed = []
        for visit in visits:
            at = observed[observed["visit"] == visit]
            n_t, n_c = int((at["arm"] == settings.treated).sum()), int((at["arm"] == settings.control).sum())
            failed.append(
                _row(
                    **key,
                    visit=visit,
                    test=TEST_MMRM,
                    n_treated=n_t,
                    n_control=n_c,
                    estimate_type=ESTIMATE_LS_MEAN,
                    method=method,
                    ci_level=settings.confidence,
                    covariance_used=NOT_FITTED,
                    n_missing_treated=size_t - n_t,
                    n_missing_control=size_c - n_c,
                    context=other_note,
                    note=f"MMRM fit failed: {error}",
                )
            )
        return failed
    by_visit = {c.visit: c for c in fit.contrasts}
    method = _mmrm_method(settings, fit.covariance, fit.fallback_reason)
    rows = []
    for visit in visits:
        c = by_visit.get(visit)
        common = dict(
            **key, visit=visit, test=TEST_MMRM, estimate_type=ESTIMATE_LS_MEAN, method=method,
            ci_level=settings.confidence, statistic_name="t", p_method="t test, df.error (N - p - k)",
            covariance_used=fit.covariance,
        )  # fmt: skip
        if c is None:
            rows.append(
                _row(
                    **common,
                    n_treated=0,
                    n_control=0,
                    n_missing_treated=size_t,
                    n_missing_control=size_c,
                    context=other_note,
                    note=_join(fit.note, "no analysable observation at this visit: no contrast"),
                )
            )
            continue
        rows.append(
            _row(
                **common,
                n_treated=c.n_treated,
                n_control=c.n_control,
                estimate=c.estimate,
                ci_low=c.ci_low,
                ci_high=c.ci_high,
                p_value=c.p_value,
                se=c.se,
                df=c.df,
                statistic=c.t,
                lsmean_treated=c.lsmean_treated,
                lsmean_control=c.lsmean_control,
                n_missing_treated=size_t - c.n_treated,
                n_missing_control=size_c - c.n_control,
                context=other_note,
                note=_join(fit.note, fit.fallback_reason if fit.covariance != NOT_FITTED else ""),
            )
        )
    return rows


# --------------------------------------------------------------------------------------------- Holm


def apply_holm(table: pd.DataFrame, families: Sequence[HolmFamily]) -> pd.DataFrame:
    """p_adjusted and family from the declared families (module docstring): Holm within each family per
    population (and `within` values); a row in several families gets the largest adjusted p and all names."""
    out = table.copy()
    adjusted = np.full(len(out), np.nan)
    names: list[list[str]] = [[] for _ in range(len(out))]
    for family in families:
        chosen = np.flatnonzero(family.selects(out))
        if not len(chosen):
            continue
        part = out.iloc[chosen]
        groups = part.groupby(["population", *family.within], sort=False).indices
        for positions in groups.values():
            rows = chosen[np.asarray(positions)]
            adjusted[rows] = np.fmax(adjusted[rows], holm(out["p_value"].to_numpy(dtype=float)[rows]))
            for r in rows:
                names[r].append(family.name)
    out["p_adjusted"] = adjusted
    out["family"] = ["; ".join(n) for n in names]
    return out
