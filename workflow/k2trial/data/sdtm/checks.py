"""Checks of SDTM domains before they are mapped to the raw tables: what a user must fix, named by domain,
USUBJID, variable, --SEQ and rule.

Each finding is a k2trial.core.errors.Problem with file = the domain ("LB"), row = None, column = the SDTM
variable, value = the offending value, and a message that starts with the record ("USUBJID 01-701-1015, LBSEQ
12: ...") or, for a finding about the whole domain, with the domain ("LB: ..."). Severity "error" stops the run
(validation), "warning" becomes a data query. Rules: see RULES.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from k2trial.core.errors import Problem
from k2trial.data.sdtm.common import (
    TRIAL_DESIGN,
    dtc_dates,
    key_text,
    match_where,
    natural_key,
    numbers,
    record_label,
    seq_variable,
    text,
    upper_map,
)
from k2trial.data.sdtm.study import normalise_study, referenced_domains
from k2trial.data.sdtm.to_raw import adverse_events_table, character_results, subjects_table

ERROR = "error"
WARNING = "warning"

#: rule -> (severity, what it means)
RULES: dict[str, tuple[str, str]] = {
    "domain_missing": (ERROR, "a domain the study needs is not in the folder"),
    "variable_missing": (ERROR, "a required variable is not in the domain"),
    "variable_absent": (WARNING, "a variable the mapping reads is not in the domain; its raw column stays empty"),
    "usubjid_missing": (ERROR, "a record has no USUBJID"),
    "subject_not_in_dm": (ERROR, "a record's USUBJID is not in DM"),
    "dm_duplicate_subject": (ERROR, "a USUBJID has two DM records"),
    "seq_not_numeric": (ERROR, "--SEQ is not a numeric variable"),
    "seq_missing": (ERROR, "a record has no --SEQ"),
    "seq_duplicate": (ERROR, "two records of one subject have the same --SEQ"),
    "dtc_invalid": (ERROR, "a --DTC value is not an ISO 8601 date/time"),
    "partial_date": (WARNING, "a partial date leaves a raw date column empty"),
    "partial_date_imputed": (WARNING, "a partial AE date was imputed by the configured rule"),
    "arm_missing": (ERROR, "randomised study: a subject has no ARMCD/ARM and DM gives no reason (ARMNRS)"),
    "testcd_missing": (ERROR, "a findings record has no --TESTCD"),
    "lab_unit_missing": (ERROR, "a lab record has a numeric result and no unit"),
    "lab_result_character": (WARNING, "lab results that are text, not numbers: kept in result_text, not graded"),
    "unit_unknown": (ERROR, "a unit the mapping cannot convert"),
    "value_unmapped": (ERROR, "a value that no value map turns into a raw-contract level"),
    "value_missing": (WARNING, "a value the raw contract requires is empty"),
    "qstestcd_unmapped": (WARNING, "a QS test code that is no diary item (its records are not carried)"),
    "disposition_missing": (WARNING, "a DM subject has no disposition event in DS"),
    "disposition_multiple": (WARNING, "a subject has several disposition events; the latest is used"),
}


def _p(domain: str, variable: str | None, value: Any, rule: str, message: str, where: str | None = None) -> Problem:
    severity = RULES[rule][0]
    prefix = where if where is not None else domain
    shown = None if value is None else str(value)
    return Problem(domain, None, variable, shown, rule, severity, f"{prefix}: {message}")


def _record_problems(
    domain: str,
    frame: pd.DataFrame,
    mask: pd.Series | np.ndarray,
    variable: str | None,
    rule: str,
    message: str,
    value_of: str | None = None,
    with_seq: bool = True,
) -> list[Problem]:
    """One Problem per record in mask, named by USUBJID and --SEQ; `message` may use {value}."""
    positions = np.flatnonzero(np.asarray(mask, dtype=bool))
    if not len(positions):
        return []
    seq_name = seq_variable(domain) if with_seq else None
    subjects = text(frame, "USUBJID").to_numpy()
    seqs = text(frame, seq_name).to_numpy() if seq_name is not None and seq_name in frame.columns else None
    source = value_of or variable
    values = text(frame, source).to_numpy() if source is not None and source in frame.columns else None
    out = []
    for i in positions:
        value = values[i] if values is not None else None
        where = record_label(subjects[i], seq_name, seqs[i] if seqs is not None else None)
        out.append(_p(domain, variable, value, rule, message.format(value=value), where))
    return out


def expected_domains(mapping: Mapping[str, Any], study: Mapping[str, Any]) -> dict[str, str]:
    """Domain -> why it is expected."""
    spec = mapping["domains"]
    why = {d: "every SDTM delivery needs DM" for d in spec["always"]}
    for d in study.get("expected_domains") or spec["default_expected"]:
        why.setdefault(str(d).upper(), "the study mapping expects it (expected_domains)")
    for d in referenced_domains(study):
        why.setdefault(d, "the study mapping reads from it")
    return why


def _required_variables(domain: str, mapping: Mapping[str, Any], study: Mapping[str, Any]) -> list[str]:
    required = list(mapping["domains"]["required_variables"].get(domain, ["USUBJID"]))
    if domain == "DM" and study.get("randomised"):
        required += ["ARMCD", "ARM"]
    if domain == mapping["labs"]["domain"]:
        mode = study.get("lab_result") or mapping["labs"]["result"]
        variables = mapping["labs"][mode]
        required += [variables.get("result_numeric") or variables["result_text"], variables["unit"]]
    if domain == mapping["adverse_events"]["domain"]:
        required.append(study.get("ae_term_variable") or mapping["adverse_events"]["term_variable"])
    return list(dict.fromkeys(required))


def _generic(domain: str, frame: pd.DataFrame, dm_subjects: set[str] | None) -> list[Problem]:
    problems: list[Problem] = []
    subjects = text(frame, "USUBJID").str.strip()
    problems += _record_problems(
        domain,
        frame,
        subjects == "",
        "USUBJID",
        "usubjid_missing",
        "the record has no USUBJID; every record must name its subject",
    )
    if dm_subjects is not None and domain != "DM":
        unknown = (subjects != "") & ~subjects.isin(dm_subjects)
        problems += _record_problems(
            domain,
            frame,
            unknown,
            "USUBJID",
            "subject_not_in_dm",
            "USUBJID {value} is not in DM; add the subject to DM or correct the USUBJID",
        )
    seq = seq_variable(domain)
    if seq is not None and seq in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[seq].dtype):
            problems.append(_p(domain, seq, None, "seq_not_numeric", f"{seq} must be a numeric variable"))
        else:
            values = numbers(frame, seq)
            problems += _record_problems(
                domain,
                frame,
                values.isna(),
                seq,
                "seq_missing",
                f"the record has no {seq}; number the subject's records 1, 2, ...",
            )
            dup = values.notna() & pd.DataFrame({"s": subjects, "q": values}).duplicated(keep=False)
            problems += _record_problems(
                domain,
                frame,
                dup,
                seq,
                "seq_duplicate",
                f"{seq} {{value}} is used by more than one of the subject's records; --SEQ must be unique per subject",
            )
    for variable in [c for c in frame.columns if str(c).endswith("DTC")]:
        if pd.api.types.is_numeric_dtype(frame[variable].dtype):
            continue
        kinds = dtc_dates(text(frame, variable))[1]
        problems += _record_problems(
            domain,
            frame,
            kinds == "invalid",
            variable,
            "dtc_invalid",
            f"{variable} {{value!r}} is not an ISO 8601 date/time (YYYY-MM-DD, YYYY-MM-DDThh:mm, YYYY-MM or YYYY)",
        )
    return problems


def _check_dm(dm: pd.DataFrame, mapping: Mapping[str, Any], study: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    subjects = text(dm, "USUBJID").str.strip()
    dup = (subjects != "") & subjects.duplicated(keep=False)
    problems += _record_problems(
        "DM",
        dm,
        dup,
        "USUBJID",
        "dm_duplicate_subject",
        "USUBJID {value} has more than one DM record; DM has one record per subject",
    )
    if study.get("randomised") and {"ARMCD", "ARM"} <= set(dm.columns):
        reason = mapping["subjects"]["arm_not_assigned_reason"]
        no_arm = (key_text(dm, "ARMCD") == "") | (key_text(dm, "ARM") == "")
        missing = no_arm & (key_text(dm, reason) == "")
        problems += _record_problems(
            "DM",
            dm,
            missing,
            "ARMCD",
            "arm_missing",
            f"the study is randomised but the subject has no ARMCD/ARM and no {reason}; give the planned arm "
            f"(or why there is none in {reason}, e.g. SCREEN FAILURE)",
        )
    age = mapping["subjects"]["age"]
    if age["unit_variable"] in dm.columns:
        units = key_text(dm, age["unit_variable"])
        unknown = (units != "") & ~units.isin(set(upper_map(age["units"]))) & numbers(dm, age["variable"]).notna()
        problems += _record_problems(
            "DM",
            dm,
            unknown,
            age["unit_variable"],
            "unit_unknown",
            f"age unit {{value}} is not one of {', '.join(age['units'])}; add its factor to config/sdtm_mapping.yaml",
        )
    return problems


def _check_lb(lb: pd.DataFrame, mapping: Mapping[str, Any], study: Mapping[str, Any]) -> list[Problem]:
    spec = mapping["labs"]
    problems: list[Problem] = []
    testcd = spec["columns"]["test_code"]
    if testcd in lb.columns:
        problems += _record_problems(
            "LB", lb, key_text(lb, testcd) == "", testcd, "testcd_missing", f"the record has no {testcd}; name the test"
        )
    mode = study.get("lab_result") or spec["result"]
    variables = spec[mode]
    unit_var = variables["unit"]
    if unit_var not in lb.columns:
        return problems
    if mode == "standard":
        result_var = variables["result_numeric"]
        numeric = numbers(lb, result_var).notna() if result_var in lb.columns else pd.Series(False, index=lb.index)
    else:
        result_var = variables["result_text"]
        numeric = numbers(lb, result_var).notna()
    unitless = {str(t).upper() for t in [*spec["unitless_tests"], *(study.get("lab_unitless_tests") or [])]}
    declared = {str(u).strip().upper() for u in spec["declared_no_unit"]}
    no_unit = key_text(lb, unit_var) == ""
    exempt = key_text(lb, testcd).isin(unitless) | key_text(lb, "LBORRESU").isin(declared)
    bad = numeric & no_unit & ~exempt
    if bad.any():
        positions = np.flatnonzero(bad.to_numpy())
        codes = text(lb, testcd).to_numpy()
        results = text(lb, result_var).to_numpy()
        subjects = text(lb, "USUBJID").to_numpy()
        seqs = text(lb, "LBSEQ").to_numpy()
        for i in positions:
            problems.append(
                _p(
                    "LB",
                    unit_var,
                    "",
                    "lab_unit_missing",
                    f"{testcd} {codes[i]} has the numeric result {result_var} = {results[i]} and no unit "
                    f"({unit_var} is empty); give the unit, or list the test in the study's lab_unitless_tests "
                    f"if it has none",
                    record_label(subjects[i], "LBSEQ", seqs[i]),
                )
            )
    result_var = variables.get("result_numeric") or variables["result_text"]
    text_var = variables["result_text"]
    results = text(lb, text_var).where(numbers(lb, result_var).isna(), "") if mode == "standard" else text(lb, text_var)
    character = character_results(results)
    for code, count in key_text(lb, testcd)[character].value_counts().sort_index().items():
        shown = sorted(set(results[character & (key_text(lb, testcd) == code)]))
        problems.append(
            _p(
                "LB",
                text_var,
                ", ".join(shown[:5]),
                "lab_result_character",
                f"{count} record(s) of {testcd} {code} have a text result ({', '.join(shown[:5])}): the raw result "
                f"stays empty, the text is kept in result_text; no number is read or graded from it",
            )
        )
    date_var = spec["columns"]["sample_date"]
    if date_var in lb.columns:
        problems += _record_problems(
            "LB",
            lb,
            dtc_dates(text(lb, date_var))[1] == "partial",
            date_var,
            "partial_date",
            f"{date_var} {{value!r}} is a partial date; sample_date stays empty (the text is kept in sample_dtc)",
        )
    return problems


def _check_ae(
    ae: pd.DataFrame, domains: Mapping[str, pd.DataFrame], mapping: Mapping[str, Any], study: Mapping[str, Any]
) -> list[Problem]:
    spec = mapping["adverse_events"]
    problems: list[Problem] = []
    fields = (
        ("AESEV", "severity", "ae_severity", "severity"),
        ("AESER", "serious", "ae_serious", "serious"),
        ("AEREL", "relationship", "ae_relationship", "related"),
    )
    for variable, key, study_key, raw in fields:
        if variable not in ae.columns:
            continue
        table = {**upper_map(spec[key]), **upper_map(study.get(study_key))}
        values = key_text(ae, variable)
        problems += _record_problems(
            "AE",
            ae,
            (values != "") & ~values.isin(set(table)),
            variable,
            "value_unmapped",
            f"{variable} {{value!r}} maps to no `{raw}` level ({', '.join(sorted(set(table.values())))}); add it to "
            f"the study mapping's {study_key}",
        )
        problems += _record_problems(
            "AE", ae, values == "", variable, "value_missing", f"{variable} is empty; the raw `{raw}` is required"
        )
    term = study.get("ae_term_variable") or spec["term_variable"]
    if term in ae.columns:
        problems += _record_problems(
            "AE", ae, key_text(ae, term) == "", term, "value_missing", f"{term} is empty; the raw `term` is required"
        )
    # partial dates, with the date the configured rule imputes
    subjects = subjects_table(domains, mapping, study)
    table = adverse_events_table(domains, mapping, study, subjects)
    for raw, variable, dtc_column in (("onset_date", "AESTDTC", "onset_dtc"), ("end_date", "AEENDTC", "end_dtc")):
        if variable not in ae.columns:
            continue
        partial = dtc_dates(table[dtc_column])[1] == "partial"
        flags = table[f"{raw}_imputed"]
        for i in np.flatnonzero(partial.to_numpy()):
            row = table.iloc[i]
            if flags.iloc[i]:
                rule = "partial_date_imputed"
                what = f"{raw} imputed to {row[raw]} (level {flags.iloc[i]}; config dates.imputation)"
            else:
                rule, what = "partial_date", f"{raw} stays empty (no imputation rule applies)"
            problems.append(
                _p(
                    "AE",
                    variable,
                    row[dtc_column],
                    rule,
                    f"{variable} {row[dtc_column]!r} is a partial date; {what}",
                    record_label(row["subject_id"], "AESEQ", row["aeseq"]),
                )
            )
    if "AESTDTC" in ae.columns:
        problems += _record_problems(
            "AE",
            ae,
            key_text(ae, "AESTDTC") == "",
            "AESTDTC",
            "value_missing",
            "AESTDTC is empty; the raw `onset_date` is required",
        )
    return problems


def _check_diary(qs: pd.DataFrame, mapping: Mapping[str, Any], study: Mapping[str, Any]) -> list[Problem]:
    spec = mapping["diary"]
    diary = study.get("diary")
    problems: list[Problem] = []
    if not diary:
        return problems
    items = upper_map(diary["items"])
    in_category = pd.Series(True, index=qs.index)
    if diary.get("category"):
        in_category = key_text(qs, spec["category"]) == str(diary["category"]).strip().upper()
    codes = key_text(qs, spec["testcd"])
    for code, count in codes[in_category & ~codes.isin(set(items))].value_counts().sort_index().items():
        problems.append(
            _p(
                "QS",
                spec["testcd"],
                code,
                "qstestcd_unmapped",
                f"{count} record(s) with {spec['testcd']} {code} are not carried: it is no diary item of the study "
                f"mapping (diary.items: {', '.join(items)})",
            )
        )
    mine = in_category & codes.isin(set(items))
    units = key_text(qs, spec["unit"])
    unknown = mine & numbers(qs, spec["result"]).notna() & ~units.isin(set(upper_map(spec["units"])))
    problems += _record_problems(
        "QS",
        qs,
        unknown,
        spec["unit"],
        "unit_unknown",
        f"VAS unit {{value!r}} is not one of {', '.join(spec['units'])}; vas_cm stays empty",
    )
    date_var = spec["columns"]["assessment_date"]
    problems += _record_problems(
        "QS",
        qs,
        mine & (dtc_dates(text(qs, date_var))[1] == "partial"),
        date_var,
        "partial_date",
        f"{date_var} {{value!r}} is a partial date; assessment_date stays empty (the text is kept in assessment_dtc)",
    )
    return problems


def _check_vs(vs: pd.DataFrame, mapping: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    for raw, spec in mapping["subjects"]["vital_signs"].items():
        mask = (key_text(vs, "VSTESTCD") == str(spec["testcd"]).upper()) & numbers(vs, "VSSTRESN").notna()
        unknown = mask & ~key_text(vs, "VSSTRESU").isin(set(upper_map(spec["units"])))
        problems += _record_problems(
            "VS",
            vs,
            unknown,
            "VSSTRESU",
            "unit_unknown",
            f"{spec['testcd']} unit {{value!r}} is not one of {', '.join(spec['units'])}; {raw} stays empty",
        )
    return problems


def _check_dates(domains: Mapping[str, pd.DataFrame], mapping: Mapping[str, Any]) -> list[Problem]:
    """Partial dates in the subject-level date sources (RFICDTC, RFXSTDTC, ...)."""
    problems: list[Problem] = []
    for raw, sources in mapping["subjects"]["dates"].items():
        for source in sources:
            domain = str(source["domain"]).upper()
            frame = domains.get(domain)
            if frame is None or source["variable"] not in frame.columns:
                continue
            mask = match_where(frame, source.get("where")) & (
                dtc_dates(text(frame, source["variable"]))[1] == "partial"
            )
            problems += _record_problems(
                domain,
                frame,
                mask,
                source["variable"],
                "partial_date",
                f"{source['variable']} {{value!r}} is a partial date; it does not give {raw}",
            )
    return problems


def _check_required_dates(
    domains: Mapping[str, pd.DataFrame], mapping: Mapping[str, Any], study: Mapping[str, Any]
) -> list[Problem]:
    """Subject dates the raw contract requires (consent) that no source gives: one warning with the count."""
    subjects = subjects_table(domains, mapping, study)
    problems: list[Problem] = []
    for raw in ("consent_date",):
        empty = subjects[raw] == ""
        if empty.any():
            sources = " or ".join(
                f"{s['domain']}.{s['variable']}" + (f" where {s['where']}" if s.get("where") else "")
                for s in mapping["subjects"]["dates"][raw]
            )
            first = sorted(subjects.subject_id[empty], key=natural_key)[:3]
            problems.append(
                _p(
                    "DM",
                    mapping["subjects"]["dates"][raw][0]["variable"],
                    None,
                    "value_missing",
                    f"{int(empty.sum())} of {len(subjects)} subjects have no {raw} (from {sources}; e.g. "
                    f"{', '.join(first)}); the raw {raw} is required",
                )
            )
    return problems


def _check_disposition(ds: pd.DataFrame, dm: pd.DataFrame | None, mapping: Mapping[str, Any]) -> list[Problem]:
    spec = mapping["subjects"]["disposition"]
    problems: list[Problem] = []
    events = ds[match_where(ds, spec.get("where"))]
    subjects = text(events, "USUBJID")
    if dm is not None:
        missing = ~text(dm, "USUBJID").isin(set(subjects))
        problems += _record_problems(
            "DS",
            dm,
            missing,
            spec["decode_variable"],
            "disposition_missing",
            "the subject has no disposition event (DSCAT DISPOSITION EVENT); status stays empty",
            with_seq=False,
        )
    counts = subjects.value_counts()
    several = counts[counts > 1]
    if len(several):
        epochs = text(events, "EPOCH") if "EPOCH" in events.columns else None
        for usubjid in sorted(several.index):
            if epochs is not None and not epochs[subjects == usubjid].duplicated().any():
                continue  # one disposition event per epoch (SDTMIG)
            seqs = ", ".join(text(events, "DSSEQ")[subjects == usubjid])
            problems.append(
                _p(
                    "DS",
                    spec["decode_variable"],
                    None,
                    "disposition_multiple",
                    f"{int(several[usubjid])} disposition events (DSSEQ {seqs}); status is taken from the latest "
                    f"by {spec['date_variable']}, then DSSEQ",
                    record_label(usubjid),
                )
            )
    return problems


def check_domains(
    domains: Mapping[str, pd.DataFrame], mapping: Mapping[str, Any], study: Mapping[str, Any] | None = None
) -> list[Problem]:
    """Everything wrong with the domains that the user must know before they are mapped (see RULES).

    domains: domain name -> frame (as read_sdtm returns); mapping: config/sdtm_mapping.yaml; study: the
    study-level mapping. Problems come per domain (DM first, then by name), then per check.
    """
    study = normalise_study(study)
    domains = {name.upper(): frame for name, frame in domains.items()}
    problems: list[Problem] = []
    for name, why in sorted(expected_domains(mapping, study).items(), key=lambda kv: (kv[0] != "DM", kv[0])):
        if name not in domains:
            problems.append(_p(name, None, None, "domain_missing", f"the domain is missing ({why})"))
    dm = domains.get("DM")
    dm_subjects = set(text(dm, "USUBJID").str.strip()) - {""} if dm is not None and "USUBJID" in dm.columns else None
    complete: dict[str, bool] = {}
    for name in sorted(domains, key=lambda d: (d != "DM", d)):
        frame = domains[name]
        if name in TRIAL_DESIGN or name in set(mapping["domains"].get("no_subject") or []):
            continue
        missing = [v for v in _required_variables(name, mapping, study) if v not in frame.columns]
        for variable in missing:
            randomised = ", and the study is randomised" if variable in ("ARM", "ARMCD") else ""
            problems.append(
                _p(
                    name,
                    variable,
                    None,
                    "variable_missing",
                    f"variable {variable} is missing; {name} needs it (config/sdtm_mapping.yaml "
                    f"domains.required_variables{randomised})",
                )
            )
        for variable in mapping["domains"].get("expected_variables", {}).get(name, []):
            if variable not in frame.columns:
                problems.append(
                    _p(
                        name,
                        variable,
                        None,
                        "variable_absent",
                        f"variable {variable} is absent; what the mapping reads from it stays empty",
                    )
                )
        complete[name] = not missing
        if "USUBJID" not in frame.columns:
            continue
        problems += _generic(name, frame, dm_subjects)
    if dm is not None and complete.get("DM"):
        problems += _check_dm(dm, mapping, study)
    if complete.get("LB"):
        problems += _check_lb(domains["LB"], mapping, study)
    if complete.get("AE") and complete.get("DM", False):
        problems += _check_ae(domains["AE"], domains, mapping, study)
    if complete.get("QS"):
        problems += _check_diary(domains["QS"], mapping, study)
    if complete.get("VS"):
        problems += _check_vs(domains["VS"], mapping)
    if complete.get("DS"):
        problems += _check_disposition(domains["DS"], dm if complete.get("DM") else None, mapping)
    if complete.get("DM"):
        problems += _check_dates(domains, mapping)
        problems += _check_required_dates(domains, mapping, study)
    return problems


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == ERROR]
