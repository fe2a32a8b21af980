"""The study-level mapping the caller passes (what a study's config says about its SDTM), and two examples.

Keys (all optional; data/raw/SDTM.md has the same list with the CDISC pilot as the worked example):

- `randomised` (bool, default false): DM must have ARMCD and ARM, and every subject an arm code or ARMNRS.
- `expected_domains` (list): domains besides DM that must be present (default: config `domains.default_expected`);
  the domains the keys below refer to are added.
- `lab_result`: "standard" (LBSTRESN/LBSTRESC, LBSTRESU, LBSTNRLO/HI) or "original" (LBORRES, LBORRESU,
  LBORNRLO/HI); default config `labs.result`.
- `lab_unitless_tests` (list of LBTESTCD): tests whose numeric results have no unit (added to config's).
- `visits` (list of {label, VISIT, VISITNUM[, VISITDY]}): the raw `visit` of diary, lab and dosing records is
  the label of the record's VISIT; a VISIT not listed is kept as it is (analysis visits come from the visit
  windows downstream). The writer needs every raw visit label listed.
- `lab_test_codes` (list of {LBTESTCD, test_code, where}): records whose LBTESTCD (and `where`) match get the raw
  test code `test_code` (the CDISC pilot's urine pH is UPH: CTCAE's acidosis/alkalosis grade blood pH).
- `visit_windows`: {labs: [{label, from, to}]}: the raw visit of an LB record whose VISIT is not in `visits`
  (screening, unscheduled, retrieval) is the label of the first window holding its study day (LBDY, both ends
  included; `from`/`to` omitted = open).
- `diary`: {items: {QSTESTCD: symptom}, category: QSCAT (optional filter), names: {QSTESTCD: QSTEST} (writer),
  unit: "cm" (writer)}. Without it there is no diary (QS not read, not required).
- `capsule_counts`: {dispensed: DATESTCD, returned: DATESTCD, unit: DAORRESU (writer)}; default test codes from
  config `dosing.testcds`. Without it dosing.csv has no records (DA not read, not required).
- `etiology`: either a source spec (below) giving the raw level directly, or
  {conditions: {name: presence spec}, levels: {"name" or "name1+name2" (sorted, joined by "+"): raw level}}.
- `diabetes_duration`: a source spec; `type: iso_duration_years` reads an ISO 8601 duration (MHDUR "P7Y").
- `medications`: {metformin | prior_b12_therapy | anticoagulant: presence spec or source spec}.
- `stratum`: a source spec (e.g. {domain: SUPPDM, qnam: STRATUM}).
- `ae_severity`, `ae_relationship`, `ae_serious`: value maps SDTM value -> raw level, added to config's.
- `ae_term_variable`: AEDECOD (default) or AETERM for the raw `term`.
- `partial_dates`: {onset_date | end_date: {rule, highest, not_before | not_after}} overriding config `dates`.
- writer only: `studyid`, `arms` ({ARMCD, ARM} of a single-arm study, when subjects.csv has no `arm` column;
  `arm_names` {ARMCD: ARM} otherwise), `treatment` (EX variables: EXTRT, EXDOSE, EXDOSU, EXDOSFRM, EXDOSFRQ,
  EXROUTE), `country`.

A source spec names one value per subject: {domain, variable, qnam (SUPP-- datasets; variable defaults to QVAL),
where: {VARIABLE: [values]}, pick: first | last | min | max, value_map: {SDTM value: raw value}, type: text |
number | iso_duration_years}. A presence spec says whether a subject has a (pre-specified) event or medication:
{domain, where, occurrence: --OCCUR variable (default <domain>OCCUR), absent: raw value when no record matches
(default "", i.e. not collected; set "no" when the domain records every medication taken)}. The value is "yes"
when a matching record has --OCCUR = Y or has no --OCCUR (a recorded medication), "no" when all matching records
have --OCCUR = N.
"""

from __future__ import annotations

from collections.abc import Mapping
from copy import deepcopy
from typing import Any

from k2trial.core.errors import ConfigError
from k2trial.core.lab_panel import PANEL_KEYS as PANEL_KEYS  # re-exported: the SDTM callers' names
from k2trial.core.lab_panel import declare_lab_panel as declare_lab_panel
from k2trial.core.lab_panel import declare_lab_standards as declare_lab_standards

STUDY_KEYS = frozenset(
    {
        "randomised",
        "expected_domains",
        "lab_result",
        "lab_unitless_tests",
        "lab_test_codes",
        "visit_windows",
        "visits",
        "diary",
        "capsule_counts",
        "etiology",
        "diabetes_duration",
        "medications",
        "stratum",
        "ae_severity",
        "ae_relationship",
        "ae_serious",
        "ae_term_variable",
        "partial_dates",
        "studyid",
        "arms",
        "arm_names",
        "treatment",
        "country",
    }
)
MEDICATIONS = ("metformin", "prior_b12_therapy", "anticoagulant")
_SOURCE_KEYS = frozenset({"domain", "variable", "qnam", "where", "pick", "value_map", "type", "label"})
_PRESENCE_KEYS = frozenset({"domain", "where", "occurrence", "absent", "label"})


def _check_spec(spec: Any, where: str, presence_allowed: bool) -> None:
    if not isinstance(spec, Mapping) or "domain" not in spec:
        raise ConfigError(f"study mapping {where}: a spec needs at least `domain` (got {spec!r})")
    presence = is_presence(spec)
    if presence and not presence_allowed:
        raise ConfigError(f"study mapping {where}: needs a `variable` (or `qnam`) giving the value")
    unknown = set(spec) - (_PRESENCE_KEYS if presence else _SOURCE_KEYS)
    if unknown:
        raise ConfigError(f"study mapping {where}: unknown key(s) {sorted(unknown)}")
    if spec.get("pick") not in (None, "first", "last", "min", "max"):
        raise ConfigError(f"study mapping {where}: pick must be first, last, min or max")
    if spec.get("type") not in (None, "text", "number", "iso_duration_years"):
        raise ConfigError(f"study mapping {where}: type must be text, number or iso_duration_years")


def is_presence(spec: Mapping[str, Any]) -> bool:
    """A presence spec (yes/no from matching records) rather than a source spec (a value)."""
    return "variable" not in spec and "qnam" not in spec and "where" in spec


def normalise_study(study: Mapping[str, Any] | None) -> dict[str, Any]:
    """A checked copy of the study mapping (ConfigError naming an unknown key or a malformed spec)."""
    out = deepcopy(dict(study or {}))
    unknown = set(out) - STUDY_KEYS
    if unknown:
        raise ConfigError(f"study mapping: unknown key(s) {sorted(unknown)}; known: {sorted(STUDY_KEYS)}")
    if out.get("lab_result", "standard") not in ("standard", "original"):
        raise ConfigError("study mapping lab_result: standard or original")
    for key in ("diabetes_duration", "stratum"):
        if key in out:
            _check_spec(out[key], key, presence_allowed=False)
    if "etiology" in out:
        etiology = out["etiology"]
        if isinstance(etiology, Mapping) and "conditions" in etiology:
            if set(etiology) - {"conditions", "levels"}:
                raise ConfigError("study mapping etiology: conditions and levels only")
            for name, spec in etiology["conditions"].items():
                _check_spec(spec, f"etiology.conditions.{name}", presence_allowed=True)
            if "+" in "".join(etiology["conditions"]):
                raise ConfigError("study mapping etiology: a condition name may not contain '+'")
        else:
            _check_spec(etiology, "etiology", presence_allowed=False)
    for name, spec in (out.get("medications") or {}).items():
        if name not in MEDICATIONS:
            raise ConfigError(f"study mapping medications: unknown field {name!r} ({', '.join(MEDICATIONS)})")
        _check_spec(spec, f"medications.{name}", presence_allowed=True)
    if "diary" in out and not (out["diary"] or {}).get("items"):
        raise ConfigError("study mapping diary: `items` (QSTESTCD -> symptom) is required")
    for entry in out.get("lab_test_codes") or []:
        if (
            not isinstance(entry, Mapping)
            or not {"LBTESTCD", "test_code"} <= set(entry)
            or set(entry)
            - {
                "LBTESTCD",
                "test_code",
                "where",
            }
        ):
            raise ConfigError(
                f"study mapping lab_test_codes: each entry is {{LBTESTCD, test_code, where}} (got {entry!r})"
            )
    for kind, windows in (out.get("visit_windows") or {}).items():
        if kind != "labs":
            raise ConfigError(f"study mapping visit_windows: only `labs` is read (got {kind!r})")
        for window in windows or []:
            if "label" not in window or set(window) - {"label", "from", "to"}:
                raise ConfigError(
                    f"study mapping visit_windows.labs: each window is {{label, from, to}} (got {window!r})"
                )
    for visit in out.get("visits") or []:
        if not {"label", "VISIT"} <= set(visit):
            raise ConfigError(f"study mapping visits: each entry needs label and VISIT (got {visit!r})")
    return out


def referenced_domains(study: Mapping[str, Any]) -> list[str]:
    """Domains the study mapping refers to (they become expected)."""
    found: list[str] = []

    def add(spec: Any) -> None:
        if isinstance(spec, Mapping) and spec.get("domain"):
            found.append(str(spec["domain"]).upper())

    if study.get("diary"):
        found.append("QS")
    if study.get("capsule_counts"):
        found.append("DA")
    for key in ("diabetes_duration", "stratum"):
        add(study.get(key))
    etiology = study.get("etiology")
    if isinstance(etiology, Mapping) and "conditions" in etiology:
        for spec in etiology["conditions"].values():
            add(spec)
    else:
        add(etiology)
    for spec in (study.get("medications") or {}).values():
        add(spec)
    return sorted(set(found))


# --------------------------------------------------------------------------------------------------
# Worked examples


def windows_between(visits: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Visit windows from the scheduled visits' target days (VISITDY, ascending): the first visit (baseline) takes
    every day up to its target day, each later visit the days from the one after the midpoint with the previous
    target up to the midpoint with the next (midpoints rounded down), the last visit every later day."""
    ordered = sorted(visits, key=lambda v: int(v["VISITDY"]))
    days = [int(v["VISITDY"]) for v in ordered]
    out = []
    for i, visit in enumerate(ordered):
        low = None if i == 0 else (days[0] if i == 1 else (days[i - 1] + days[i]) // 2) + 1
        high = days[0] if i == 0 else (None if i == len(days) - 1 else (days[i] + days[i + 1]) // 2)
        out.append({"label": str(visit["label"]), "from": low, "to": high})
    return out


#: The pilot's scheduled visits: baseline on day 1 (first dose), weeks 2, 4, 6, 8, 12, 16, 20, 24 and 26 on
#: day 7 x week + 1.
_PILOT_VISITS = [
    {"label": "Baseline", "VISIT": "BASELINE", "VISITDY": 1},
    *({"label": f"Week {w}", "VISIT": f"WEEK {w}", "VISITDY": 7 * w + 1} for w in (2, 4, 6, 8, 12, 16, 20, 24, 26)),
]

#: The CDISC pilot (CDISCPILOT01, ../shared/cdisc_pilot/sdtm): three randomised arms; SI units in LBSTRESN;
#: AEREL in the pilot's own terms; no diary (its QS holds ADAS-Cog and other scales, not shipped here), no VS,
#: no CM, no DA; etiology and the medication flags are not collected (its MH is Alzheimer's history). Lab records
#: of the scheduled visits keep their visit; screening, unscheduled, retrieval and ECG visits get the visit whose
#: window holds their study day; the urinalysis pH is UPH (CTCAE's acidosis and alkalosis are blood pH).
CDISC_PILOT_STUDY: dict[str, Any] = {
    "randomised": True,
    "expected_domains": ["DS", "EX", "LB", "AE", "SV"],
    "lab_result": "standard",
    "ae_relationship": {"NONE": "not related", "REMOTE": "unlikely", "POSSIBLE": "possible", "PROBABLE": "probable"},
    "visits": _PILOT_VISITS,
    "visit_windows": {"labs": windows_between(_PILOT_VISITS)},
    "lab_test_codes": [{"LBTESTCD": "PH", "where": {"LBCAT": ["URINALYSIS"]}, "test_code": "UPH"}],
}

#: This study (K2-7 pilot, data/raw/) as SDTM: what `raw_to_sdtm` writes and `sdtm_to_raw` reads back; the
#: round trip of the simulated data through it is exact (tests/test_sdtm.py).
K2_STUDY: dict[str, Any] = {
    "studyid": "K2-7-PILOT",
    "randomised": False,
    "expected_domains": ["DS", "EX", "LB", "AE", "VS", "MH", "CM"],
    "lab_result": "original",
    "visits": [
        {"label": "Baseline", "VISIT": "BASELINE", "VISITNUM": 0, "VISITDY": 1},
        *({"label": f"Week {w}", "VISIT": f"WEEK {w}", "VISITNUM": w, "VISITDY": 7 * w + 1} for w in range(1, 9)),
    ],
    "diary": {
        "category": "NEUROPATHY SYMPTOM VAS",
        "items": {
            "TINGLING": "tingling",
            "NUMBNESS": "numbness",
            "WEAKNESS": "weakness",
            "FATIGUE": "fatigue",
            "CRAMPS": "cramps",
        },
        "names": {
            "TINGLING": "Tingling VAS",
            "NUMBNESS": "Numbness VAS",
            "WEAKNESS": "Weakness VAS",
            "FATIGUE": "Fatigue VAS",
            "CRAMPS": "Cramps VAS",
        },
        "unit": "cm",
    },
    "capsule_counts": {"dispensed": "DISPAMT", "returned": "RETAMT", "unit": "CAPSULE"},
    "etiology": {
        "conditions": {
            "b12_deficiency": {
                "domain": "MH",
                "where": {"MHCAT": ["NEUROPATHY ETIOLOGY"], "MHTERM": ["VITAMIN B12 DEFICIENCY"]},
                "occurrence": "MHOCCUR",
            },
            "diabetes": {
                "domain": "MH",
                "where": {"MHCAT": ["NEUROPATHY ETIOLOGY"], "MHTERM": ["DIABETES MELLITUS"]},
                "occurrence": "MHOCCUR",
            },
        },
        "levels": {"b12_deficiency": "b12_deficiency", "diabetes": "diabetes", "b12_deficiency+diabetes": "both"},
    },
    "diabetes_duration": {
        "domain": "MH",
        "where": {"MHCAT": ["NEUROPATHY ETIOLOGY"], "MHTERM": ["DIABETES MELLITUS"]},
        "variable": "MHDUR",
        "type": "iso_duration_years",
    },
    "medications": {
        "metformin": {"domain": "CM", "where": {"CMCAT": ["DIABETES MEDICATION"], "CMTRT": ["METFORMIN"]}},
        "prior_b12_therapy": {
            "domain": "CM",
            "where": {"CMCAT": ["PRIOR VITAMIN B12 THERAPY"], "CMTRT": ["VITAMIN B12"]},
        },
        "anticoagulant": {"domain": "CM", "where": {"CMCAT": ["ANTICOAGULANT"], "CMTRT": ["ANTICOAGULANT"]}},
    },
    "ae_relationship": {
        "NOT RELATED": "not related",
        "UNLIKELY RELATED": "unlikely",
        "POSSIBLY RELATED": "possible",
        "PROBABLY RELATED": "probable",
        "RELATED": "definite",
    },
    "arms": {"ARMCD": "MK7", "ARM": "Menaquinone-7 100 mcg twice daily"},
    "treatment": {
        "EXTRT": "MENAQUINONE-7",
        "EXDOSE": 100,
        "EXDOSU": "ug",
        "EXDOSFRM": "CAPSULE",
        "EXDOSFRQ": "BID",
        "EXROUTE": "ORAL",
    },
    "country": "IND",
}


# --------------------------------------------------------------------------------------------------
# The study's lab panel: k2trial.core.lab_panel (a study config's protocol.lab_panel declares it the same way);
# imported here for the SDTM callers (tests/cdisc_pilot.yaml `lab_panel`).
