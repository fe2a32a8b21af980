"""The study's lab panel: config/lab_units.yaml and config/lab_standards.yaml as one study sees them.

The study config's `protocol.lab_panel` takes one of two forms:

- a list of test codes of config/lab_units.yaml (`[HGB, MCV, ...]`): the tests the simulator generates; the
  contract, the vocabulary and the safety standards are those of the two files as they are;
- a mapping test code -> entry, the study's declared panel: `{}` (or null) for a test lab_units.yaml knows by code
  or alias, in a unit it accepts; `{unit, name, decimals, factor, direction}` (PANEL_KEYS) otherwise: a known test
  reported in another unit gives `factor` (reported x factor = its standard unit), a test lab_units.yaml does not
  know is accepted in the declared `unit` (its standard unit, no conversion). Every job then sees the panel's tests
  only (`study_lab_units`, `study_lab_standards`): a lab test outside it is a validation error, and a declared test
  without a default range or CTCAE criterion is validated and summarised, never graded (nothing is invented).

`study_lab_units` and `study_lab_standards` are the one place the declaration is applied: the vocabulary and the
contract (k2trial.core.vocabulary.load_vocabulary, k2trial.data.contract.load_contract), the jobs' standards
(k2trial.runtime.step.lab_units, .lab_standards) and the simulator (k2trial.data.simulation.build_params) call them.
"""

from __future__ import annotations

from collections.abc import Mapping
from copy import deepcopy
from typing import Any

from k2trial.core.errors import ConfigError

#: Keys of a lab panel entry (declare_lab_panel, declare_lab_standards).
PANEL_KEYS = frozenset({"unit", "name", "decimals", "factor", "direction"})
#: The study config key of the panel, as error messages name it.
PANEL_KEY = "protocol.lab_panel"


def _unit_key(unit: Any) -> str:
    return "".join(str(unit).split()).lower()


def declare_lab_panel(
    lab_units: Mapping[str, Any], panel: Mapping[str, Mapping[str, Any] | None], where: str = "lab panel"
) -> dict[str, Any]:
    """config/lab_units.yaml (parsed) for the study's lab panel: the panel's tests only (in lab_units.yaml order,
    then the panel's), and a test the study reports that lab_units.yaml does not know is accepted in the unit the
    panel declares for it (its standard unit, no conversion), so that it is validated, summarised and, where a
    CTCAE criterion exists, graded.

    panel: test code (as the raw `test_code` holds it) -> {unit: the unit as reported, name, decimals (default 0),
    factor, direction (declare_lab_standards)}. A test lab_units.yaml knows (by code or alias) keeps its definition;
    its entry may be empty (`{}` or None: reported in a unit lab_units.yaml accepts), and a declared unit must be
    one it accepts, or the entry gives `factor` (reported x factor = the standard unit), which adds the unit. A
    declared unit spelled as an alias of lab_units.yaml (GI/L) is taken as the canonical unit (10^9/L).
    where: how messages name the panel ("lab panel", or the study config key "protocol.lab_panel").
    Raises ConfigError naming the panel, the test and the unit otherwise.
    """
    out = deepcopy(dict(lab_units))
    tests = out["tests"]
    aliases = {_unit_key(k): str(v) for k, v in (out.get("unit_aliases") or {}).items()}
    panel_codes: list[str] = []
    by_alias = {str(a).strip().upper(): code for code, spec in tests.items() for a in spec.get("aliases") or []}
    for code, entry in panel.items():
        known = str(code) if str(code) in tests else by_alias.get(str(code).strip().upper())
        entry = {} if entry is None and known is not None else entry
        optional = ", ".join(sorted(PANEL_KEYS - {"unit"}))
        if not isinstance(entry, Mapping) or set(entry) - PANEL_KEYS:
            unknown = sorted(set(entry) - PANEL_KEYS) if isinstance(entry, Mapping) else None
            raise ConfigError(
                f"{where} {code}: needs `unit` (and optionally {optional}); got {entry!r}"
                + (f" (unknown keys: {', '.join(map(str, unknown))})" if unknown else "")
            )
        if known is None and "unit" not in entry:
            raise ConfigError(
                f"{where} {code}: needs `unit` (and optionally {optional}): {code} is not a test of "
                f"config/lab_units.yaml; got {dict(entry)!r}"
            )
        panel_codes.append(known or str(code))
        if known is None:
            unit = aliases.get(_unit_key(entry["unit"]), str(entry["unit"]))
            tests[str(code)] = {
                "name": str(entry.get("name", code)),
                "aliases": [],
                "unit": unit,
                "units": {unit: 1.0},
                "decimals": int(entry.get("decimals", 0)),
            }
            continue
        if "unit" not in entry:
            continue
        unit = aliases.get(_unit_key(entry["unit"]), str(entry["unit"]))
        accepted = {_unit_key(u): u for u in tests[known]["units"]}
        if _unit_key(unit) in accepted:
            continue
        if "factor" not in entry:
            raise ConfigError(
                f"{where} {code}: {known} is not accepted in {entry['unit']} by config/lab_units.yaml "
                f"(accepted: {', '.join(tests[known]['units'])}); give `factor` to {tests[known]['unit']}"
            )
        tests[known] = {**tests[known], "units": {**tests[known]["units"], unit: float(entry["factor"])}}
    repeated = sorted({c for c in panel_codes if panel_codes.count(c) > 1})
    if repeated:
        raise ConfigError(f"{where}: {', '.join(repeated)} declared more than once (by code and alias)")
    out["tests"] = {code: tests[code] for code in tests if code in set(panel_codes)}
    return out


def declare_lab_standards(lab_standards: Mapping[str, Any], lab_units: Mapping[str, Any], panel: Mapping[str, Any]):
    """config/lab_standards.yaml (parsed) for the declared lab units (declare_lab_panel): its tests only; a test it
    has no entry for gets no default range (`range: null`: the lab's own limits only; a value without them is not
    flagged) and the panel's `direction` (default both). Nothing is invented: no default range, no CTCAE criterion.
    """
    out = deepcopy(dict(lab_standards))
    known = dict(out.get("tests") or {})
    directions = {str(code).strip().upper(): (entry or {}).get("direction", "both") for code, entry in panel.items()}
    out["tests"] = {
        code: known.get(code) or {"range": None, "direction": directions.get(str(code).upper(), "both")}
        for code in lab_units["tests"]
    }
    studied = set(out["tests"])
    # the panels and shift margins of tests the study does not have are dropped (Hy's law and eGFR need theirs)
    out["panels"] = {name: [c for c in codes if c in studied] for name, codes in (out.get("panels") or {}).items()}
    out["panels"] = {name: codes for name, codes in out["panels"].items() if codes}
    shift = dict(out.get("significant_shift") or {})
    if shift.get("margins"):
        shift["margins"] = {c: m for c, m in shift["margins"].items() if c in studied}
        out["significant_shift"] = shift
    return out


# --------------------------------------------------------------------------------------------------
# The study config's panel


def declared_panel(protocol: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The study's declared panel (protocol.lab_panel as a mapping), or None for the list form (or no protocol).
    Raises ConfigError for a panel that is neither a list of codes nor a mapping."""
    panel = (protocol or {}).get("lab_panel")
    if panel is None or isinstance(panel, (list, tuple)):
        return None
    if not isinstance(panel, Mapping) or not panel:
        raise ConfigError(f"study config {PANEL_KEY}: a list of test codes or a mapping code -> entry; got {panel!r}")
    return panel


def study_lab_units(lab_units: Mapping[str, Any], protocol: Mapping[str, Any] | None) -> dict[str, Any]:
    """config/lab_units.yaml (parsed) as the study sees it: unchanged for the list form of protocol.lab_panel, the
    declared panel's tests only for the mapping form (declare_lab_panel; messages name the study config key).
    Applying it to its own result changes nothing."""
    panel = declared_panel(protocol)
    if panel is None:
        return dict(lab_units)
    return declare_lab_panel(lab_units, panel, where=f"study config {PANEL_KEY}")


def study_lab_standards(
    lab_standards: Mapping[str, Any], lab_units: Mapping[str, Any], protocol: Mapping[str, Any] | None
) -> dict[str, Any]:
    """config/lab_standards.yaml (parsed) as the study sees it: unchanged for the list form, the declared panel's
    tests only for the mapping form (declare_lab_standards; a declared test without an entry has no default range).
    lab_units: the parsed config/lab_units.yaml (as the file holds it or `study_lab_units` of it)."""
    panel = declared_panel(protocol)
    if panel is None:
        return dict(lab_standards)
    return declare_lab_standards(lab_standards, study_lab_units(lab_units, protocol), panel)


def panel_codes(lab_units: Mapping[str, Any], protocol: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The declared panel's test codes as lab_units.yaml spells them (an alias read as its test), in the study's
    lab_units order (`study_lab_units`); () for the list form."""
    if declared_panel(protocol) is None:
        return ()
    return tuple(study_lab_units(lab_units, protocol)["tests"])
