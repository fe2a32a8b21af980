"""SDTM domains -> the project's raw tables (subjects, symptom_diary, labs, adverse_events, dosing).

The tables are what validation reads from the CSV files: text, the contract columns in codebook order, "" for
missing, dates YYYY-MM-DD; then the extra columns of config/sdtm_mapping.yaml (`raw_tables.*.extra_columns`):
source keys (lbseq, aeseq, qsseq, daseq, source_record) and SDTM context (arm, visits, study day, the --DTC
text, imputation flags). Rows: by subject (natural order of USUBJID), then the domain's --SEQ.

Nothing is checked here beyond what the mapping needs; `check_domains` reports what is wrong with the domains.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from k2trial.core.values import round_half_away
from k2trial.data.sdtm.common import (
    dtc_dates,
    duration_years,
    empty_text,
    format_number,
    format_numbers,
    impute_dtc,
    key_text,
    map_distinct,
    match_where,
    numbers,
    record_order,
    source_record,
    text,
    upper_map,
)
from k2trial.data.sdtm.study import is_presence, normalise_study

RAW_FILES = ("subjects.csv", "symptom_diary.csv", "labs.csv", "adverse_events.csv", "dosing.csv")


def table_columns(mapping: Mapping[str, Any], file: str) -> list[str]:
    spec = mapping["raw_tables"][file]
    return [*spec["columns"], *spec["extra_columns"]]


def _frame(mapping: Mapping[str, Any], file: str, columns: Mapping[str, pd.Series], n: int) -> pd.DataFrame:
    names = table_columns(mapping, file)
    index = pd.RangeIndex(n)
    data = {}
    for name in names:
        series = columns.get(name)
        data[name] = (
            pd.Series([""] * n, index=index, dtype="str")
            if series is None
            else pd.Series(series.to_numpy(dtype=object), index=index).astype(object).fillna("").astype("str")
        )
    return pd.DataFrame(data, columns=names, index=index)


def _sorted(frame: pd.DataFrame | None, seq: str | None, *more: str) -> pd.DataFrame:
    if frame is None:
        return pd.DataFrame({"USUBJID": pd.Series([], dtype="str")})
    return frame.iloc[record_order(frame, seq, *more)].reset_index(drop=True)


def _number_in_unit(
    values: pd.Series, units: pd.Series, factors: Mapping[str, float], decimals: int, fmt: str
) -> pd.Series:
    """Numbers converted to the target unit as text: factor 1 keeps the value, another factor rounds to
    `decimals`; a value in a unit not listed becomes "" (check_domains reports it)."""
    table = upper_map(factors)
    factor = units.str.strip().str.upper().map(table).astype("float64")
    converted = values * factor
    rounded = converted.where(factor == 1.0, round_half_away(converted, decimals))
    return format_numbers(rounded, fmt)


def visit_labels(study: Mapping[str, Any]) -> dict[str, str]:
    return {str(v["VISIT"]).strip().upper(): str(v["label"]) for v in study.get("visits") or []}


def _visits(frame: pd.DataFrame, variable: str, labels: Mapping[str, str]) -> pd.Series:
    visit = text(frame, variable)
    if not labels:
        return visit
    mapped = visit.str.strip().str.upper().map(dict(labels))
    return mapped.where(mapped.notna(), visit).astype("str")


# --------------------------------------------------------------------------------------------------
# Subject-level values from any domain


def _values_per_subject(
    frame: pd.DataFrame, values: pd.Series, pick: str, seq: str | None, numeric: bool = False
) -> pd.Series:
    """One value per USUBJID among the non-empty `values` (records sorted by subject and --SEQ)."""
    keep = values != ""
    if not keep.any():
        return pd.Series([], dtype="str")
    subjects = text(frame, "USUBJID")[keep]
    vals = values[keep]
    order_seq = numbers(frame, seq)[keep] if seq else pd.Series(np.arange(keep.sum()), index=vals.index)
    work = pd.DataFrame({"s": subjects, "v": vals, "q": order_seq})
    if pick in ("min", "max"):
        work["k"] = pd.to_numeric(work.v, errors="coerce") if numeric else work.v
        work = work.sort_values(["s", "k", "q"], kind="stable")
        chosen = work.groupby("s", sort=False).head(1) if pick == "min" else work.groupby("s", sort=False).tail(1)
    else:
        work = work.sort_values(["s", "q"], kind="stable")
        chosen = work.groupby("s", sort=False).head(1) if pick == "first" else work.groupby("s", sort=False).tail(1)
    return pd.Series(chosen.v.to_numpy(), index=chosen.s.to_numpy(), dtype="str")


def source_values(
    domains: Mapping[str, pd.DataFrame], spec: Mapping[str, Any], kind: str = "text", fmt: str = "%.12g"
) -> pd.Series:
    """The value a source spec gives per USUBJID (index), as text; kind "date" takes the full date part."""
    domain = str(spec["domain"]).upper()
    frame = domains.get(domain)
    if frame is None or not len(frame):
        return pd.Series([], dtype="str")
    mask = match_where(frame, spec.get("where"))
    variable = spec.get("variable")
    if domain.startswith("SUPP"):
        mask &= key_text(frame, "QNAM") == str(spec.get("qnam", "")).strip().upper()
        variable = variable or "QVAL"
    sub = frame[mask]
    if variable not in sub.columns:
        return pd.Series([], dtype="str")
    kind = spec.get("type") or kind
    if kind == "date":
        values = (
            dtc_dates(sub[variable].astype(object).fillna("").astype("str"))[0] if len(sub) else text(sub, variable)
        )
    elif kind == "iso_duration_years":
        values = map_distinct(text(sub, variable), duration_years).astype("str")
    elif kind == "number":
        values = format_numbers(numbers(sub, variable), fmt)
    else:
        values = text(sub, variable)
    if spec.get("value_map"):
        table = upper_map(spec["value_map"])
        mapped = values.str.strip().str.upper().map(table)
        values = mapped.where(mapped.notna(), values).astype("str")
    seq = f"{domain}SEQ" if f"{domain}SEQ" in sub.columns else None
    return _values_per_subject(sub, values, spec.get("pick") or "first", seq, numeric=kind == "number")


def presence_values(domains: Mapping[str, pd.DataFrame], spec: Mapping[str, Any], subjects: pd.Series) -> pd.Series:
    """ "yes" / "no" / spec `absent` per subject (aligned with `subjects`) from a presence spec."""
    domain = str(spec["domain"]).upper()
    absent = str(spec.get("absent", ""))
    frame = domains.get(domain)
    out = pd.Series(absent, index=subjects.index, dtype="str")
    if frame is None or not len(frame):
        return out if frame is not None else pd.Series("", index=subjects.index, dtype="str")
    sub = frame[match_where(frame, spec.get("where"))]
    if not len(sub):
        return out
    occurrence = key_text(sub, spec.get("occurrence") or f"{domain}OCCUR")
    prespecified = key_text(sub, f"{domain}PRESP") == "Y"
    work = pd.DataFrame(
        {
            "s": text(sub, "USUBJID"),
            "yes": (occurrence == "Y") | ((occurrence == "") & ~prespecified),
            "no": occurrence == "N",
        }
    )
    agg = work.groupby("s").agg(yes=("yes", "any"), no=("no", "any"))
    value = pd.Series(np.where(agg.yes, "yes", np.where(agg.no, "no", "")), index=agg.index)
    found = subjects.map(value)
    return found.where(found.notna(), out).astype("str")


def subject_field(
    domains: Mapping[str, pd.DataFrame], spec: Mapping[str, Any] | None, subjects: pd.Series, fmt: str
) -> pd.Series:
    """A subject-level raw field from a presence or source spec, aligned with `subjects` ("" when unmapped)."""
    if not spec:
        return pd.Series("", index=subjects.index, dtype="str")
    if is_presence(spec):
        return presence_values(domains, spec, subjects)
    found = subjects.map(source_values(domains, spec, fmt=fmt))
    return found.astype(object).fillna("").astype("str")


def etiology_values(domains: Mapping[str, pd.DataFrame], spec: Mapping[str, Any] | None, subjects: pd.Series, fmt: str):
    """Raw etiology per subject: a source spec's value, or the level of the combination of conditions present."""
    if not spec or "conditions" not in spec:
        return subject_field(domains, spec, subjects, fmt)
    names = sorted(spec["conditions"])
    present = {n: presence_values(domains, spec["conditions"][n], subjects) for n in names}
    levels = dict(spec.get("levels") or {})
    yes = pd.DataFrame({n: present[n] == "yes" for n in names})
    all_no = pd.DataFrame({n: present[n] == "no" for n in names}).all(axis=1)
    combo = yes.apply(lambda row: "+".join(n for n in names if row[n]), axis=1) if len(yes) else subjects.astype("str")
    level = combo.map(lambda c: levels.get(c, c) if c else "")
    level = level.where(~(all_no & (combo == "")), levels.get("none", ""))
    return level.astype("str")


# --------------------------------------------------------------------------------------------------
# Tables


def _subject_dates(
    domains: Mapping[str, pd.DataFrame], sources: list[Mapping[str, Any]], subjects: pd.Series
) -> pd.Series:
    out = pd.Series("", index=subjects.index, dtype="str")
    for spec in sources:
        found = subjects.map(source_values(domains, spec, kind="date")).astype(object).fillna("").astype("str")
        out = out.where(out != "", found)
    return out.astype("str")


def _vital_sign(vs: pd.DataFrame | None, spec: Mapping[str, Any], subjects: pd.Series, fmt: str) -> pd.Series:
    if vs is None or not len(vs):
        return pd.Series("", index=subjects.index, dtype="str")
    mask = (key_text(vs, "VSTESTCD") == str(spec["testcd"]).upper()) & numbers(vs, "VSSTRESN").notna()
    sub = vs[mask]
    if not len(sub):
        return pd.Series("", index=subjects.index, dtype="str")
    priority = np.where(key_text(sub, "VSLOBXFL") == "Y", 0, np.where(key_text(sub, "VSBLFL") == "Y", 1, 2))
    dtc = text(sub, "VSDTC")
    work = pd.DataFrame(
        {
            "s": text(sub, "USUBJID").to_numpy(),
            "p": priority,
            "d": np.where(dtc == "", "~", dtc),  # undated records after dated ones
            "q": numbers(sub, "VSSEQ").fillna(np.inf).to_numpy(),
            "v": _number_in_unit(
                numbers(sub, "VSSTRESN"), text(sub, "VSSTRESU"), spec["units"], int(spec.get("decimals", 1)), fmt
            ).to_numpy(),
        }
    )
    chosen = work.sort_values(["s", "p", "d", "q"], kind="stable").groupby("s", sort=False).head(1)
    value = pd.Series(chosen.v.to_numpy(), index=chosen.s.to_numpy())
    return subjects.map(value).astype(object).fillna("").astype("str")


def _disposition(
    ds: pd.DataFrame | None, spec: Mapping[str, Any], subjects: pd.Series
) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """(status, withdrawal_reason, withdrawal_reason_code, disposition_date) aligned with `subjects`."""
    blank = pd.Series("", index=subjects.index, dtype="str")
    if ds is None or not len(ds):
        return blank, blank.copy(), blank.copy(), blank.copy()
    sub = ds[match_where(ds, spec.get("where"))]
    if not len(sub):
        return blank, blank.copy(), blank.copy(), blank.copy()
    dates = dtc_dates(text(sub, spec["date_variable"]))[0]
    work = pd.DataFrame(
        {
            "s": text(sub, "USUBJID").to_numpy(),
            "d": dates.to_numpy(),
            "q": numbers(sub, "DSSEQ").fillna(-np.inf).to_numpy(),
            "decod": text(sub, spec["decode_variable"]).to_numpy(),
            "term": text(sub, spec["reason_variable"]).to_numpy(),
        }
    )
    last = work.sort_values(["s", "d", "q"], kind="stable").groupby("s", sort=False).tail(1).set_index("s")
    status_map = upper_map(spec["status"])
    decod = subjects.map(last.decod)
    status = decod.map(lambda v: "" if pd.isna(v) else status_map.get(str(v).strip().upper(), spec["otherwise"]))
    completed = status == "completed"
    known = decod.notna()
    reason = subjects.map(last.term).where(known & ~completed, "")
    code = decod.where(known & ~completed, "")
    date = subjects.map(last.d).where(known, "")
    return (
        status.astype(object).fillna("").astype("str"),
        reason.astype(object).fillna("").astype("str"),
        code.astype(object).fillna("").astype("str"),
        date.astype(object).fillna("").astype("str"),
    )


def subjects_table(
    domains: Mapping[str, pd.DataFrame], mapping: Mapping[str, Any], study: Mapping[str, Any]
) -> pd.DataFrame:
    spec = mapping["subjects"]
    fmt = mapping.get("number_format", "%.12g")
    dm = _sorted(domains.get("DM"), None)
    subjects = text(dm, "USUBJID")
    cols: dict[str, pd.Series] = {raw: text(dm, var) for raw, var in spec["columns"].items()}
    age = spec["age"]
    if age["unit_variable"] in dm.columns:
        cols["age_years"] = _number_in_unit(
            numbers(dm, age["variable"]), text(dm, age["unit_variable"]), age["units"], int(age["decimals"]), fmt
        )
    else:
        cols["age_years"] = format_numbers(numbers(dm, age["variable"]), fmt)
    for raw, vs_spec in spec["vital_signs"].items():
        cols[raw] = _vital_sign(domains.get("VS"), vs_spec, subjects, fmt)
    cols["etiology"] = etiology_values(domains, study.get("etiology"), subjects, fmt)
    duration = study.get("diabetes_duration")
    cols["diabetes_duration_years"] = subject_field(domains, duration, subjects, fmt)
    for name, med in (study.get("medications") or {}).items():
        cols[name] = subject_field(domains, med, subjects, fmt)
    for raw, sources in spec["dates"].items():
        cols[raw] = _subject_dates(domains, sources, subjects)
    status, reason, code, date = _disposition(domains.get(spec["disposition"]["domain"]), spec["disposition"], subjects)
    cols.update(status=status, withdrawal_reason=reason, withdrawal_reason_code=code, disposition_date=date)
    for raw, var in spec["arms"].items():
        cols[raw] = text(dm, var)
    cols["stratum"] = subject_field(domains, study.get("stratum"), subjects, fmt)
    cols["source_record"] = source_record("DM", subjects, None, None)
    return _frame(mapping, "subjects.csv", cols, len(dm))


_RESULT = re.compile(r"^\s*[<>]?\s*[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)\s*$")


def character_results(result: pd.Series) -> pd.Series:
    """Results that are text, not a number or a censored number ("N", "NEGATIVE"; not "<3.42"): the raw `result`
    stays empty and the text goes to `result_text` (check_domains reports them, rule lab_result_character)."""
    return map_distinct(result, lambda v: bool(v) and not _RESULT.match(str(v))).astype(bool)


def declared_without_unit(
    lb: pd.DataFrame, spec: Mapping[str, Any], study: Mapping[str, Any], unit: pd.Series
) -> pd.Series:
    """Records without a unit whose test has none by nature (config `labs.unitless_tests`, study
    `lab_unitless_tests`) or whose LBORRESU says so (`labs.declared_no_unit`): their raw unit is `labs.no_unit`."""
    unitless = {str(t).upper() for t in [*spec["unitless_tests"], *(study.get("lab_unitless_tests") or [])]}
    declared = {str(u).strip().upper() for u in spec["declared_no_unit"]}
    exempt = key_text(lb, spec["columns"]["test_code"]).isin(unitless) | key_text(lb, "LBORRESU").isin(declared)
    return (unit.str.strip() == "") & exempt


def lab_test_codes(lb: pd.DataFrame, spec: Mapping[str, Any], study: Mapping[str, Any]) -> pd.Series:
    """The raw test code: LBTESTCD, except where a study `lab_test_codes` entry recodes the records it matches
    ({where: {LBCAT: [URINALYSIS]}, LBTESTCD: PH, test_code: UPH}: urine pH is no blood pH). The SDTM code stays in
    `sdtm_test_code`."""
    variable = spec["columns"]["test_code"]
    codes = text(lb, variable)
    for entry in study.get("lab_test_codes") or []:
        mask = match_where(lb, entry.get("where")) & (key_text(lb, variable) == str(entry[variable]).strip().upper())
        codes = codes.where(~mask, str(entry["test_code"]))
    return codes.astype("str")


def visit_windows(study: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """The study's windows of one kind (`visit_windows.labs`): [{label, from, to}] on the study day, both ends
    included, `from`/`to` missing = open."""
    return [dict(w) for w in (study.get("visit_windows") or {}).get(kind) or []]


def _windowed_visits(lb: pd.DataFrame, spec: Mapping[str, Any], study: Mapping[str, Any]) -> pd.Series:
    """The raw visit of each LB record: the study's label of its VISIT (`visits`); a VISIT not listed (screening,
    unscheduled, retrieval) gets the label of the `visit_windows.labs` window holding its study day (LBDY); a record
    in no window (or without LBDY) keeps the SDTM text, which validation then reports."""
    labels = visit_labels(study)
    visit = _visits(lb, spec["columns"]["visit"], labels)
    windows = visit_windows(study, "labs")
    if not windows:
        return visit
    listed = text(lb, spec["columns"]["visit"]).str.strip().str.upper().isin(set(labels))
    day = numbers(lb, spec["extra_columns"]["study_day"])
    assigned = pd.Series("", index=lb.index, dtype="str")
    for window in windows:
        low = -np.inf if window.get("from") is None else float(window["from"])
        high = np.inf if window.get("to") is None else float(window["to"])
        inside = (assigned == "") & (day >= low) & (day <= high)
        assigned = assigned.where(~inside, str(window["label"]))
    use = ~listed & (assigned != "")
    return visit.where(~use, assigned).astype("str")


def labs_table(domains: Mapping[str, pd.DataFrame], mapping: Mapping[str, Any], study: Mapping[str, Any]):
    spec = mapping["labs"]
    fmt = mapping.get("number_format", "%.12g")
    lb = _sorted(domains.get(spec["domain"]), "LBSEQ")
    mode = study.get("lab_result") or spec["result"]
    variables = spec[mode]
    cols: dict[str, pd.Series] = {"subject_id": text(lb, "USUBJID")}
    cols["visit"] = _windowed_visits(lb, spec, study)
    cols["sample_date"] = dtc_dates(text(lb, spec["columns"]["sample_date"]))[0]
    cols["test_code"] = lab_test_codes(lb, spec, study)
    if mode == "standard":
        value = numbers(lb, variables["result_numeric"])
        result = format_numbers(value, fmt).where(value.notna(), text(lb, variables["result_text"]))
    else:
        result = text(lb, variables["result_text"])
    character = character_results(result)
    cols["result"] = result.where(~character, "")
    cols["result_text"] = result.where(character, "")
    for raw in ("unit", "ref_low", "ref_high"):
        cols[raw] = text(lb, variables[raw], fmt)
    cols["unit"] = cols["unit"].where(~declared_without_unit(lb, spec, study, cols["unit"]), str(spec["no_unit"]))
    for raw, var in spec["extra_columns"].items():
        cols[raw] = text(lb, var, fmt)
    cols["source_record"] = source_record("LB", cols["subject_id"], "LBSEQ", cols["lbseq"])
    return _frame(mapping, "labs.csv", cols, len(lb))


def _diary_comments(domains: Mapping[str, pd.DataFrame], spec: Mapping[str, Any]) -> pd.Series:
    """Comment text per (USUBJID, QSSEQ text) from CO ("; " between several)."""
    co = domains.get(spec["domain"])
    if co is None or not len(co):
        return pd.Series([], dtype="str")
    mask = (key_text(co, "RDOMAIN") == spec["rdomain"]) & (key_text(co, "IDVAR") == spec["idvar"])
    sub = _sorted(co[mask].reset_index(drop=True), "COSEQ")
    if not len(sub):
        return pd.Series([], dtype="str")
    seq = map_distinct(text(sub, "IDVARVAL").str.strip(), lambda v: format_number(v) if v else "")
    work = pd.DataFrame({"k": text(sub, "USUBJID") + "\x1f" + seq.astype("str"), "v": text(sub, spec["value"])})
    return work.groupby("k", sort=False).v.agg("; ".join)


def diary_table(domains: Mapping[str, pd.DataFrame], mapping: Mapping[str, Any], study: Mapping[str, Any]):
    spec = mapping["diary"]
    fmt = mapping.get("number_format", "%.12g")
    diary = study.get("diary")
    qs = domains.get(spec["domain"])
    if not diary or qs is None:
        return _frame(mapping, "symptom_diary.csv", {}, 0)
    items = upper_map(diary["items"])
    mask = key_text(qs, spec["testcd"]).isin(set(items))
    if diary.get("category"):
        mask &= key_text(qs, spec["category"]) == str(diary["category"]).strip().upper()
    qs = _sorted(qs[mask].reset_index(drop=True), "QSSEQ")
    cols: dict[str, pd.Series] = {"subject_id": text(qs, "USUBJID")}
    cols["visit"] = _visits(qs, spec["columns"]["visit"], visit_labels(study))
    cols["assessment_date"] = dtc_dates(text(qs, spec["columns"]["assessment_date"]))[0]
    cols["symptom"] = key_text(qs, spec["testcd"]).map(items).astype(object).fillna("").astype("str")
    cols["vas_cm"] = _number_in_unit(
        numbers(qs, spec["result"]), text(qs, spec["unit"]), spec["units"], int(spec["decimals"]), fmt
    )
    for raw, var in spec["extra_columns"].items():
        cols[raw] = text(qs, var, fmt)
    comments = _diary_comments(domains, spec["comments"])
    keys = cols["subject_id"] + "\x1f" + cols["qsseq"]
    cols["comment"] = (
        keys.map(comments).astype(object).fillna("").astype("str") if len(comments) else empty_text(qs.index)
    )
    cols["source_record"] = source_record("QS", cols["subject_id"], "QSSEQ", cols["qsseq"])
    return _frame(mapping, "symptom_diary.csv", cols, len(qs))


def imputation_rules(mapping: Mapping[str, Any], study: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    rules = {k: dict(v) for k, v in mapping["dates"]["imputation"].items()}
    for key, value in (study.get("partial_dates") or {}).items():
        rules[key] = {**rules.get(key, {}), **dict(value)}
    return rules


def _impute_column(
    dtc: pd.Series, rule: Mapping[str, Any], limits: pd.DataFrame, column: str
) -> tuple[pd.Series, pd.Series]:
    names = list(rule.get("not_before" if rule.get("rule") == "first" else "not_after") or [])
    dates, flags = [], []
    rows = limits[names].itertuples(index=False) if names else [()] * len(dtc)
    for value, row in zip(dtc.tolist(), rows, strict=True):
        bounds = [b for b in row if b]
        if rule.get("rule") == "first":
            date, flag = impute_dtc(value, "first", rule.get("highest", "M"), not_before=bounds)
        elif rule.get("rule") == "last":
            date, flag = impute_dtc(value, "last", rule.get("highest", "M"), not_after=bounds)
        else:
            date, flag = impute_dtc(value, "none")
        dates.append(date)
        flags.append(flag)
    index = dtc.index
    return pd.Series(dates, index=index, dtype="str"), pd.Series(flags, index=index, dtype="str")


def adverse_events_table(
    domains: Mapping[str, pd.DataFrame],
    mapping: Mapping[str, Any],
    study: Mapping[str, Any],
    subjects: pd.DataFrame,
) -> pd.DataFrame:
    spec = mapping["adverse_events"]
    fmt = mapping.get("number_format", "%.12g")
    ae = _sorted(domains.get(spec["domain"]), "AESEQ")
    cols: dict[str, pd.Series] = {"subject_id": text(ae, "USUBJID")}
    cols["term"] = text(ae, study.get("ae_term_variable") or spec["term_variable"])
    for raw, (key, study_key) in {
        "severity": ("severity", "ae_severity"),
        "serious": ("serious", "ae_serious"),
        "related": ("relationship", "ae_relationship"),
    }.items():
        table = {**upper_map(spec[key]), **upper_map(study.get(study_key))}
        variable = {"severity": "AESEV", "serious": "AESER", "related": "AEREL"}[raw]
        values = text(ae, variable)
        mapped = values.str.strip().str.upper().map(table)
        cols[raw] = mapped.where(mapped.notna(), values).astype("str")
    cols["action"] = text(ae, spec["columns"]["action"])
    cols["outcome"] = text(ae, spec["columns"]["outcome"])
    for raw, var in spec["extra_columns"].items():
        cols[raw] = text(ae, var, fmt)
    by_subject = subjects.drop_duplicates("subject_id").set_index("subject_id")
    limits = pd.DataFrame(
        {
            name: cols["subject_id"].map(by_subject[name]).astype(object).fillna("").astype("str")
            for name in by_subject.columns
        },
        index=ae.index,
    )
    rules = imputation_rules(mapping, study)
    for raw in ("onset_date", "end_date"):
        dtc = text(ae, spec["columns"][raw])
        cols[raw], cols[f"{raw}_imputed"] = _impute_column(dtc, rules.get(raw, {"rule": "none"}), limits, raw)
    cols["source_record"] = source_record("AE", cols["subject_id"], "AESEQ", cols["aeseq"])
    return _frame(mapping, "adverse_events.csv", cols, len(ae))


def dosing_table(domains: Mapping[str, pd.DataFrame], mapping: Mapping[str, Any], study: Mapping[str, Any]):
    spec = mapping["dosing"]
    fmt = mapping.get("number_format", "%.12g")
    counts = study.get("capsule_counts")
    da = domains.get(spec["domain"])
    if not counts or da is None:
        return _frame(mapping, "dosing.csv", {}, 0)
    testcds = {
        raw: str(counts.get(raw.removeprefix("capsules_"), code)).upper() for raw, code in spec["testcds"].items()
    }
    testcd = key_text(da, spec["testcd"])
    da = _sorted(da[testcd.isin(set(testcds.values()))].reset_index(drop=True), "DASEQ")
    if not len(da):
        return _frame(mapping, "dosing.csv", {}, 0)
    work = pd.DataFrame(
        {
            "s": text(da, "USUBJID"),
            "vn": text(da, "VISITNUM", fmt),
            "v": text(da, "VISIT"),
            "t": key_text(da, spec["testcd"]),
            "r": format_numbers(numbers(da, spec["result"]), fmt),
            "q": text(da, "DASEQ", fmt),
        }
    )
    work["g"] = pd.factorize(work.s + "\x1f" + work.vn + "\x1f" + work.v)[0]
    groups = work.groupby("g", sort=True)
    first = groups.head(1).set_index("g").sort_index()
    cols: dict[str, pd.Series] = {"subject_id": first.s, "sdtm_visit": first.v, "visitnum": first.vn}
    cols["visit"] = _visits(pd.DataFrame({"VISIT": first.v}), "VISIT", visit_labels(study))
    for raw, code in testcds.items():
        values = work[work.t == code].groupby("g").r.first()
        cols[raw] = first.index.to_series().map(values).astype(object).fillna("").astype("str")
    cols["daseq"] = groups.q.agg(";".join).sort_index()
    cols["source_record"] = source_record("DA", cols["subject_id"], "DASEQ", cols["daseq"])
    return _frame(mapping, "dosing.csv", {k: v.reset_index(drop=True) for k, v in cols.items()}, len(first))


def sdtm_to_raw(
    domains: Mapping[str, pd.DataFrame], mapping: Mapping[str, Any], study: Mapping[str, Any] | None = None
) -> dict[str, pd.DataFrame]:
    """The five raw tables (file name -> text frame) from SDTM domains (domain name -> frame, as `read_sdtm`
    returns), the mapping (config/sdtm_mapping.yaml) and the study-level mapping (see k2trial.data.sdtm.study)."""
    study = normalise_study(study)
    domains = {name.upper(): frame for name, frame in domains.items()}
    subjects = subjects_table(domains, mapping, study)
    return {
        "subjects.csv": subjects,
        "symptom_diary.csv": diary_table(domains, mapping, study),
        "labs.csv": labs_table(domains, mapping, study),
        "adverse_events.csv": adverse_events_table(domains, mapping, study, subjects),
        "dosing.csv": dosing_table(domains, mapping, study),
    }
