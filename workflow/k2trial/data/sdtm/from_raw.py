"""The project's clean raw tables -> SDTM domains (issue 16: SDTM out, and back through `sdtm_to_raw`).

Input: the five raw tables in the layout validation reads (text, canonical values; typed truth tables are turned
into that text first, see `raw_tables_as_text`), sorted as the clean tables are (by subject, then visit). Output:
DM, DS, EX, LB, AE, VS, SV (optional) and, as the study mapping says, QS (+ CO for diary comments), DA, MH, CM and
SUPPDM, with columns in the order of config `writer.domains`. --SEQ is 1, 2, ... per subject in the order of the
input rows, so the output is a deterministic function of the input, and reading it back with the same study
mapping gives the same raw tables (the contract columns, exactly).

Choices (data/raw/SDTM.md): USUBJID = SUBJID = subject_id; RFSTDTC/RFXSTDTC = first dose, RFENDTC/RFXENDTC =
last dose; one EX record per treated subject from first to last dose; a subject not dosed has ACTARMCD empty and
ARMNRS "ASSIGNED, NOT TREATED"; DSDECOD COMPLETED, SCREEN FAILURE (status "not treated") or, for a withdrawal,
the reason when it is a CDISC NCOMPLT term else OTHER, with the reason verbatim in DSTERM; AETERM = AEDECOD = the
raw term (no MedDRA coding is done); yes/no medications and etiology conditions as pre-specified CM/MH records
(--PRESP = Y, --OCCUR = Y/N); weight and height as VS records flagged VSLOBXFL = Y (no date is collected).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from k2trial.core.values import round_half_away
from k2trial.data.sdtm.common import format_number, format_numbers, study_day, upper_map, years_duration
from k2trial.data.sdtm.study import MEDICATIONS, is_presence, normalise_study


def raw_tables_as_text(tables: Mapping[str, pd.DataFrame], fmt: str = "%.12g") -> dict[str, pd.DataFrame]:
    """Every table as text: floats with `fmt` (as k2trial.core.io writes them), integers as digits, missing "".

    This is how a clean (or simulated truth) table reads back from its CSV file."""
    out: dict[str, pd.DataFrame] = {}
    for name, frame in tables.items():
        columns = {}
        for column in frame.columns:
            series = frame[column]
            if pd.api.types.is_bool_dtype(series.dtype):
                columns[column] = series.map({True: "true", False: "false"}).astype(object).fillna("").astype("str")
            elif pd.api.types.is_numeric_dtype(series.dtype):
                columns[column] = format_numbers(series.astype("float64"), fmt)
            else:
                columns[column] = series.astype(object).where(series.notna(), "").astype("str")
        out[name] = pd.DataFrame(columns, columns=list(frame.columns)).reset_index(drop=True)
    return out


def _num(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.astype("str").str.strip().replace("", np.nan), errors="coerce").astype("float64")


def _seq(subjects: pd.Series) -> pd.Series:
    return (subjects.groupby(subjects, sort=False).cumcount() + 1).astype("float64")


def _inverse(*maps: Mapping[str, Any]) -> dict[str, str]:
    """raw level -> SDTM value (the first map that has the level wins)."""
    out: dict[str, str] = {}
    for table in maps:
        for sdtm, raw in (table or {}).items():
            out.setdefault(str(raw), str(sdtm))
    return out


class _Builder:
    """Domain frames in the variable order of config `writer.domains`."""

    def __init__(self, mapping: Mapping[str, Any], studyid: str):
        self.spec = mapping["writer"]["domains"]
        self.labels = mapping["writer"].get("labels") or {}
        self.studyid = studyid

    def frame(self, domain: str, columns: Mapping[str, Any], n: int) -> pd.DataFrame:
        variables = self.spec[domain]["variables"]
        index = pd.RangeIndex(n)
        data: dict[str, pd.Series] = {}
        for name in variables:
            if name == "STUDYID":
                value: Any = self.studyid
            elif name == "DOMAIN":
                value = domain
            elif name == "RDOMAIN" and domain.startswith("SUPP"):
                value = domain[4:]
            else:
                value = columns.get(name, "")
            if isinstance(value, pd.Series):
                series = pd.Series(value.to_numpy(), index=index)
            else:
                series = pd.Series([value] * n, index=index, dtype=object)
            if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
                data[name] = series.astype("float64")
            else:
                data[name] = series.astype(object).where(series.notna(), "").astype("str")
        out = pd.DataFrame(data, columns=variables, index=index)
        out.attrs = {
            "name": domain,
            "label": self.spec[domain].get("label", domain),
            "labels": {v: str(self.labels.get(v, v)) for v in variables},
        }
        return out


class _Records:
    """Records of MH, CM and SUPPDM built from the subject-level specs; one record per (domain, subject, where)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[tuple, dict[str, Any]]] = {}

    def record(self, domain: str, usubjid: str, key: tuple) -> dict[str, Any]:
        table = self.records.setdefault(domain, {})
        return table.setdefault((usubjid, key), {"USUBJID": usubjid})

    def frame(self, builder: _Builder, domain: str, order: Mapping[str, int]) -> pd.DataFrame:
        rows = list((self.records.get(domain) or {}).values())
        rows.sort(key=lambda r: order.get(r["USUBJID"], len(order)))  # stable: creation order within a subject
        frame = pd.DataFrame(rows) if rows else pd.DataFrame({"USUBJID": pd.Series([], dtype="str")})
        columns: dict[str, Any] = {c: frame[c].fillna("") if frame[c].dtype == object else frame[c] for c in frame}
        if rows and f"{domain}SEQ" in builder.spec[domain]["variables"]:
            columns[f"{domain}SEQ"] = _seq(frame["USUBJID"])
        return builder.frame(domain, columns, len(rows))


def _where_values(spec: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(list(v)[0] if isinstance(v, list | tuple) else v) for k, v in (spec.get("where") or {}).items()}


def _name_variable(domain: str) -> str:
    return {"CM": "CMTRT", "MH": "MHTERM", "AE": "AETERM", "PR": "PRTRT"}.get(domain, f"{domain}TERM")


def _write_presence(records: _Records, spec: Mapping[str, Any], subjects: pd.Series, values: pd.Series) -> None:
    domain = str(spec["domain"]).upper()
    where = _where_values(spec)
    key = tuple(sorted(where.items()))
    occurrence = spec.get("occurrence") or f"{domain}OCCUR"
    name_var = _name_variable(domain)
    decod = f"{domain}DECOD"
    for usubjid, value in zip(subjects, values, strict=True):
        if value not in ("yes", "no"):
            continue
        record = records.record(domain, usubjid, key)
        record.update(where)
        record.setdefault(name_var, where.get(name_var) or where.get(decod) or where.get(f"{domain}CAT", ""))
        record[f"{domain}PRESP"] = "Y"
        record[occurrence] = "Y" if value == "yes" else "N"


def _write_source(
    records: _Records, dm: dict[str, Any], spec: Mapping[str, Any], subjects: pd.Series, values: pd.Series
) -> None:
    domain = str(spec["domain"]).upper()
    inverse = _inverse(spec.get("value_map") or {})
    kind = spec.get("type") or "text"
    converted = []
    for value in values:
        value = inverse.get(value, value)
        if kind == "iso_duration_years":
            value = years_duration(value)
        converted.append(value)
    if domain == "DM":
        dm[spec["variable"]] = pd.Series(converted, dtype="str")
        return
    where = _where_values(spec)
    if domain.startswith("SUPP"):
        qnam = str(spec["qnam"])
        for usubjid, value in zip(subjects, converted, strict=True):
            if value == "":
                continue
            record = records.record(domain, usubjid, (("QNAM", qnam),))
            record.update(QNAM=qnam, QLABEL=str(spec.get("label") or qnam)[:40], QVAL=value, QORIG="CRF")
        return
    key = tuple(sorted(where.items()))
    name_var = _name_variable(domain)
    for usubjid, value in zip(subjects, converted, strict=True):
        if value == "":
            continue
        record = records.record(domain, usubjid, key)
        record.update(where)
        record.setdefault(name_var, where.get(name_var) or where.get(f"{domain}DECOD") or where.get(f"{domain}CAT", ""))
        record[spec["variable"]] = value


def _write_etiology(records: _Records, dm: dict[str, Any], spec: Mapping[str, Any], subjects: pd.Series, values):
    if "conditions" not in spec:
        _write_source(records, dm, spec, subjects, values)
        return
    names = sorted(spec["conditions"])
    combos = {str(level): set(combo.split("+")) for combo, level in (spec.get("levels") or {}).items()}
    for name in names:
        combos.setdefault(name, {name})
    for name in names:
        present = []
        for value in values:
            if value == "":
                present.append("")
            elif value in combos:
                present.append("yes" if name in combos[value] else "no")
            else:
                raise ValueError(f"etiology {value!r} is no level of the study mapping's etiology.levels")
        _write_presence(records, spec["conditions"][name], subjects, pd.Series(present, dtype="str"))


def _visit_table(study: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(v["label"]): dict(v) for v in study.get("visits") or []}


def _visit_columns(labels: pd.Series, visits: Mapping[str, Mapping[str, Any]]) -> tuple[pd.Series, pd.Series]:
    visit = labels.map(lambda v: str(visits[v]["VISIT"]) if v in visits else v).astype("str")
    visitnum = labels.map(lambda v: float(visits[v]["VISITNUM"]) if v in visits and "VISITNUM" in visits[v] else np.nan)
    return visit, visitnum.astype("float64")


def _standard_lab(
    codes: pd.Series, results: pd.Series, units: pd.Series, lows: pd.Series, highs: pd.Series, lab_units: Mapping
):
    """(LBSTRESC, LBSTRESN, LBSTRESU, LBSTNRLO, LBSTNRHI): converted to the standard unit of lab_units.yaml
    (rounded to its decimals) where the test and unit are known there, else the original values. A censored
    result ("<0.2") keeps its sign in LBSTRESC, with the converted limit, and has no LBSTRESN."""
    tests = (lab_units or {}).get("tests") or {}
    pairs = {(c, u): float(f) for c, t in tests.items() for u, f in (t.get("units") or {}).items()}
    key = pd.Series(list(zip(codes, units, strict=True)), index=codes.index, dtype=object)
    factor = key.map(pairs).astype("float64")
    known = factor.notna()
    decimals = codes.map({c: int(t.get("decimals", 2)) for c, t in tests.items()}).fillna(0).astype("int64")
    standard_unit = codes.map({c: str(t.get("unit", "")) for c, t in tests.items()})

    def convert(text: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
        """(prefix "<"/">"/"", converted value, converted text) of a text column."""
        text = text.astype("str").str.strip()
        prefix = text.str[:1].where(text.str[:1].isin(["<", ">"]), "")
        value = _num(text.where(prefix == "", text.str[1:]))
        converted = value * factor
        rounded = pd.Series(round_half_away(converted, decimals), index=text.index, dtype="float64")
        as_text = prefix + format_numbers(rounded)
        return prefix, rounded, as_text.where(rounded.notna(), text)

    prefix, value, converted_text = convert(results)
    stresc = converted_text.where(known, results).astype("str")
    stresn = value.where(prefix == "", np.nan).where(known, _num(results)).astype("float64")
    stresu = standard_unit.where(known, units).astype(object).fillna("").astype("str")
    lo = convert(lows)[1].where(known, _num(lows)).astype("float64")
    hi = convert(highs)[1].where(known, _num(highs)).astype("float64")
    return stresc, stresn, stresu, lo, hi


def raw_to_sdtm(
    tables: Mapping[str, pd.DataFrame],
    mapping: Mapping[str, Any],
    study: Mapping[str, Any] | None = None,
    lab_units: Mapping[str, Any] | None = None,
    include_sv: bool = True,
) -> dict[str, pd.DataFrame]:
    """SDTM domains (name -> frame) from the raw tables (file name -> frame; see the module docstring).

    lab_units: config/lab_units.yaml, to fill LBSTRESC/N/U and LBSTNRLO/HI in standard units (without it the
    standard variables repeat the original ones). include_sv: also write SV from the visits of LB, QS and DA.
    """
    study = normalise_study(study)
    tables = raw_tables_as_text(tables)
    builder = _Builder(mapping, str(study.get("studyid") or "STUDY"))
    writer = mapping["writer"]
    subj = tables["subjects.csv"]
    n = len(subj)
    usubjid = subj["subject_id"].astype("str")
    order = {s: i for i, s in enumerate(usubjid)}
    first = subj["first_dose_date"]
    last = subj["last_dose_date"]
    first_by_subject = pd.Series(first.to_numpy(), index=usubjid.to_numpy())
    status = subj["status"]

    # DM
    default_arm = study.get("arms") or {}
    if "arm" in subj.columns and (subj["arm"] != "").any():
        armcd = subj["arm"]
        names = study.get("arm_names") or {}
        arm = subj["arm_name"] if "arm_name" in subj.columns else armcd.map(lambda c: names.get(c, c))
    else:
        armcd = pd.Series(str(default_arm.get("ARMCD", "")), index=subj.index, dtype="str")
        arm = pd.Series(str(default_arm.get("ARM", "")), index=subj.index, dtype="str")
    screen_failure = status == "not treated"
    armcd = armcd.where(~screen_failure, "")
    arm = arm.where(~screen_failure, "")
    treated = first != ""
    actarmcd = subj["actual_arm"] if "actual_arm" in subj.columns else armcd.where(treated, "")
    actarm = subj["actual_arm_name"] if "actual_arm_name" in subj.columns else arm.where(treated, "")
    armnrs = pd.Series(
        np.where(screen_failure, "SCREEN FAILURE", np.where(~treated, "ASSIGNED, NOT TREATED", "")), dtype="str"
    )
    age = _num(subj["age_years"])
    death = subj["death_date"] if "death_date" in subj.columns else pd.Series("", index=subj.index, dtype="str")
    dm_cols: dict[str, Any] = {
        "USUBJID": usubjid,
        "SUBJID": usubjid,
        "RFSTDTC": first,
        "RFENDTC": last,
        "RFXSTDTC": first,
        "RFXENDTC": last,
        "RFICDTC": subj["consent_date"],
        "DTHDTC": death,
        "DTHFL": death.map(lambda d: "Y" if d else ""),
        "SITEID": subj["site"],
        "AGE": age,
        "AGEU": pd.Series(np.where(age.notna(), "YEARS", ""), dtype="str"),
        "SEX": subj["sex"],
        "ARMCD": armcd,
        "ARM": arm,
        "ACTARMCD": actarmcd,
        "ACTARM": actarm,
        "ARMNRS": armnrs,
        "COUNTRY": str(study.get("country") or ""),
    }

    # subject-level specs: MH, CM, SUPPDM (and DM variables)
    records = _Records()
    if study.get("etiology"):
        _write_etiology(records, dm_cols, study["etiology"], usubjid, subj["etiology"])
    if study.get("diabetes_duration"):
        _write_source(records, dm_cols, study["diabetes_duration"], usubjid, subj["diabetes_duration_years"])
    for name in MEDICATIONS:
        spec = (study.get("medications") or {}).get(name)
        if spec and is_presence(spec):
            _write_presence(records, spec, usubjid, subj[name])
        elif spec:
            _write_source(records, dm_cols, spec, usubjid, subj[name])
    if study.get("stratum") and "stratum" in subj.columns:
        _write_source(records, dm_cols, study["stratum"], usubjid, subj["stratum"])
    out: dict[str, pd.DataFrame] = {"DM": builder.frame("DM", dm_cols, n)}

    # DS
    ncomplt = {str(t).upper() for t in writer.get("ncomplt_terms") or []}
    inverse_status = _inverse(mapping["subjects"]["disposition"]["status"])
    has_status = status != ""
    reason = subj["withdrawal_reason"]
    code = subj["withdrawal_reason_code"] if "withdrawal_reason_code" in subj.columns else None
    decod, term = [], []
    for i, (st, why) in enumerate(zip(status, reason, strict=True)):
        if st in inverse_status:
            decod.append(inverse_status[st])
            term.append(inverse_status[st])
        else:
            given = code.iloc[i] if code is not None else ""
            decod.append(given or (why.strip().upper() if why.strip().upper() in ncomplt else "OTHER"))
            term.append(why)
    ds_date = subj["disposition_date"] if "disposition_date" in subj.columns else last
    ds = pd.DataFrame({"USUBJID": usubjid, "DSTERM": term, "DSDECOD": decod, "DSSTDTC": ds_date})[has_status]
    ds = ds.reset_index(drop=True)
    out["DS"] = builder.frame(
        "DS", {**{c: ds[c] for c in ds}, "DSSEQ": _seq(ds["USUBJID"]), "DSCAT": "DISPOSITION EVENT"}, len(ds)
    )

    # EX
    treatment = study.get("treatment") or {}
    dosed = (first != "") | (last != "")
    ex = pd.DataFrame({"USUBJID": usubjid, "EXSTDTC": first, "EXENDTC": last})[dosed].reset_index(drop=True)
    ex_first = ex["USUBJID"].map(first_by_subject).astype(object).fillna("").astype("str")
    ex_cols: dict[str, Any] = {c: ex[c] for c in ex}
    ex_cols.update({k: v for k, v in treatment.items()})
    if "EXDOSE" in treatment:
        ex_cols["EXDOSE"] = pd.Series([float(treatment["EXDOSE"])] * len(ex), dtype="float64")
    ex_cols.update(
        EXSEQ=_seq(ex["USUBJID"]), EXSTDY=study_day(ex["EXSTDTC"], ex_first), EXENDY=study_day(ex["EXENDTC"], ex_first)
    )
    out["EX"] = builder.frame("EX", ex_cols, len(ex))

    visits = _visit_table(study)

    # LB
    lb = tables["labs.csv"]
    lb_subjects = lb["subject_id"]
    lb_visit, lb_visitnum = _visit_columns(lb["visit"], visits)
    stresc, stresn, stresu, stnrlo, stnrhi = _standard_lab(
        lb["test_code"], lb["result"], lb["unit"], lb["ref_low"], lb["ref_high"], lab_units or {}
    )
    tests = (lab_units or {}).get("tests") or {}
    lb_cols = {
        "USUBJID": lb_subjects,
        "LBSEQ": _seq(lb_subjects),
        "LBTESTCD": lb["test_code"],
        "LBTEST": lb["test_code"].map(lambda c: str((tests.get(c) or {}).get("name", c))),
        "LBORRES": lb["result"],
        "LBORRESU": lb["unit"],
        "LBORNRLO": lb["ref_low"],
        "LBORNRHI": lb["ref_high"],
        "LBSTRESC": stresc,
        "LBSTRESN": stresn,
        "LBSTRESU": stresu,
        "LBSTNRLO": stnrlo,
        "LBSTNRHI": stnrhi,
        "VISITNUM": lb_visitnum,
        "VISIT": lb_visit,
        "LBDTC": lb["sample_date"],
        "LBDY": study_day(lb["sample_date"], lb_subjects.map(first_by_subject).astype(object).fillna("").astype("str")),
    }
    out["LB"] = builder.frame("LB", lb_cols, len(lb))

    # AE
    ae = tables["adverse_events.csv"]
    ae_map = mapping["adverse_events"]
    ae_subjects = ae["subject_id"]
    ae_first = ae_subjects.map(first_by_subject).astype(object).fillna("").astype("str")
    sev = _inverse(upper_map(study.get("ae_severity")), upper_map(ae_map["severity"]))
    ser = _inverse(upper_map(study.get("ae_serious")), upper_map(ae_map["serious"]))
    rel = _inverse(upper_map(study.get("ae_relationship")), upper_map(ae_map["relationship"]))
    ae_cols = {
        "USUBJID": ae_subjects,
        "AESEQ": _seq(ae_subjects),
        "AETERM": ae["term"],
        "AEDECOD": ae["term"],
        "AESEV": ae["severity"].map(lambda v: sev.get(v, v)),
        "AESER": ae["serious"].map(lambda v: ser.get(v, v)),
        "AEACN": ae["action"],
        "AEREL": ae["related"].map(lambda v: rel.get(v, v)),
        "AEOUT": ae["outcome"],
        "AESTDTC": ae["onset_date"],
        "AEENDTC": ae["end_date"],
        "AESTDY": study_day(ae["onset_date"], ae_first),
        "AEENDY": study_day(ae["end_date"], ae_first),
    }
    out["AE"] = builder.frame("AE", ae_cols, len(ae))

    # VS: weight and height
    vs_parts = []
    for raw, spec in mapping["subjects"]["vital_signs"].items():
        unit = next(iter(spec["units"]))
        values = subj[raw]
        part = pd.DataFrame(
            {
                "USUBJID": usubjid,
                "VSTESTCD": str(spec["testcd"]),
                "VSTEST": str(spec["testcd"]).capitalize(),
                "VSORRES": values,
                "VSORRESU": unit,
                "VSSTRESC": values,
                "VSSTRESN": _num(values),
                "VSSTRESU": unit,
                "VSLOBXFL": "Y",
                "_o": usubjid.map(order),
            }
        )[values != ""]
        vs_parts.append(part)
    vs = pd.concat(vs_parts, ignore_index=True).sort_values("_o", kind="stable").reset_index(drop=True)
    out["VS"] = builder.frame("VS", {**{c: vs[c] for c in vs}, "VSSEQ": _seq(vs["USUBJID"])}, len(vs))

    # QS (diary) and CO (its comments)
    diary = study.get("diary")
    qs = tables["symptom_diary.csv"]
    if diary:
        items = {str(v): str(k) for k, v in diary["items"].items()}
        unknown = sorted(set(qs["symptom"]) - set(items) - {""})
        if unknown:
            raise ValueError(f"symptom(s) {unknown} have no QSTESTCD in the study mapping's diary.items")
        qs_subjects = qs["subject_id"]
        qs_seq = _seq(qs_subjects)
        qs_visit, qs_visitnum = _visit_columns(qs["visit"], visits)
        codes = qs["symptom"].map(items).astype(object).fillna("").astype("str")
        names = diary.get("names") or {}
        unit = str(diary.get("unit") or next(iter(mapping["diary"]["units"])))
        vas = qs["vas_cm"]
        qs_cols = {
            "USUBJID": qs_subjects,
            "QSSEQ": qs_seq,
            "QSTESTCD": codes,
            "QSTEST": codes.map(lambda c: str(names.get(c, c))),
            "QSCAT": str(diary.get("category") or ""),
            "QSORRES": vas,
            "QSORRESU": vas.map(lambda v: unit if v else ""),
            "QSSTRESC": vas,
            "QSSTRESN": _num(vas),
            "QSSTRESU": vas.map(lambda v: unit if v else ""),
            "QSSTAT": vas.map(lambda v: "" if v else "NOT DONE"),
            "VISITNUM": qs_visitnum,
            "VISIT": qs_visit,
            "QSDTC": qs["assessment_date"],
            "QSDY": study_day(
                qs["assessment_date"], qs_subjects.map(first_by_subject).astype(object).fillna("").astype("str")
            ),
        }
        out["QS"] = builder.frame("QS", qs_cols, len(qs))
        commented = qs["comment"] != ""
        if commented.any():
            co = pd.DataFrame(
                {
                    "USUBJID": qs_subjects[commented],
                    "IDVARVAL": qs_seq[commented].map(lambda s: format_number(s)),
                    "COVAL": qs["comment"][commented],
                }
            ).reset_index(drop=True)
            co_cols = {**{c: co[c] for c in co}, "RDOMAIN": "QS", "IDVAR": "QSSEQ", "COSEQ": _seq(co["USUBJID"])}
            out["CO"] = builder.frame("CO", co_cols, len(co))

    # DA (capsule counts)
    counts = study.get("capsule_counts")
    if counts:
        dosing = tables["dosing.csv"]
        testcds = mapping["dosing"]["testcds"]
        unit = str(counts.get("unit") or mapping["dosing"]["unit"])
        rows = []
        for subject, label, dispensed, returned in zip(
            dosing["subject_id"],
            dosing["visit"],
            dosing["capsules_dispensed"],
            dosing["capsules_returned"],
            strict=True,
        ):
            given = [
                (raw, value) for raw, value in (("capsules_dispensed", dispensed), ("capsules_returned", returned))
            ]
            present = [(raw, value) for raw, value in given if value != ""] or [("capsules_dispensed", "")]
            for raw, value in present:
                code = str(counts.get(raw.removeprefix("capsules_")) or testcds[raw])
                rows.append((subject, label, code, value))
        da = pd.DataFrame(rows, columns=["USUBJID", "label", "DATESTCD", "value"])
        da_visit, da_visitnum = _visit_columns(da["label"], visits)
        test_names = {"DISPAMT": "Dispensed Amount", "RETAMT": "Returned Amount"}
        da_cols = {
            "USUBJID": da["USUBJID"],
            "DASEQ": _seq(da["USUBJID"]),
            "DATESTCD": da["DATESTCD"],
            "DATEST": da["DATESTCD"].map(lambda c: test_names.get(c, c)),
            "DAORRES": da["value"],
            "DAORRESU": da["value"].map(lambda v: unit if v else ""),
            "DASTRESC": da["value"],
            "DASTRESN": _num(da["value"]),
            "DASTRESU": da["value"].map(lambda v: unit if v else ""),
            "DASTAT": da["value"].map(lambda v: "" if v else "NOT DONE"),
            "VISITNUM": da_visitnum,
            "VISIT": da_visit,
        }
        out["DA"] = builder.frame("DA", da_cols, len(da))

    for domain in ("MH", "CM", "SUPPDM"):
        mapped = domain in records.records or any(
            str((spec or {}).get("domain", "")).upper() == domain
            for spec in [
                study.get("diabetes_duration"),
                study.get("stratum"),
                *(study.get("medications") or {}).values(),
                *((study.get("etiology") or {}).get("conditions") or {}).values(),
                study.get("etiology") if "conditions" not in (study.get("etiology") or {}) else None,
            ]
        )
        if mapped:
            out[domain] = records.frame(builder, domain, order)

    if include_sv:
        out["SV"] = _subject_visits(builder, out, order)
    return dict(sorted(out.items()))


def _subject_visits(builder: _Builder, domains: Mapping[str, pd.DataFrame], order: Mapping[str, int]) -> pd.DataFrame:
    """SV: one record per subject and visit seen in LB, QS or DA, dated by the first and last record of it."""
    parts = []
    for domain, date_var in (("LB", "LBDTC"), ("QS", "QSDTC"), ("DA", None)):
        frame = domains.get(domain)
        if frame is None or not len(frame):
            continue
        dates = frame[date_var] if date_var else pd.Series("", index=frame.index, dtype="str")
        parts.append(
            pd.DataFrame({"USUBJID": frame.USUBJID, "VISITNUM": frame.VISITNUM, "VISIT": frame.VISIT, "d": dates})
        )
    if not parts:
        return builder.frame("SV", {}, 0)
    visits = pd.concat(parts, ignore_index=True)
    visits = visits[visits.VISIT != ""]
    visits["d"] = visits["d"].where(visits["d"] != "", np.nan)
    grouped = visits.groupby(["USUBJID", "VISIT"], sort=False, dropna=False).agg(
        VISITNUM=("VISITNUM", "first"), SVSTDTC=("d", "min"), SVENDTC=("d", "max")
    )
    grouped = grouped.reset_index()
    grouped["_o"] = grouped["USUBJID"].map(order).fillna(len(order))
    grouped = grouped.sort_values(["_o", "VISITNUM", "VISIT"], kind="stable", na_position="last").reset_index(drop=True)
    cols = {c: grouped[c].fillna("") if grouped[c].dtype == object else grouped[c] for c in grouped}
    return builder.frame("SV", cols, len(grouped))
