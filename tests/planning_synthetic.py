"""Synthetic inputs of the shape issue 14 will write for rct2021, for the planning tests (tests/test_planning*.py).

`write_synthetic_pilot(folder)` writes, under folder/:

* analysis/vas.csv: subject_id, param, visit, week, aval, base, chg, pchg (params pain and sleep; visits baseline,
  week4, week8, week12), a 0-10 VAS read to 0.1;
* analysis/subjects.csv: subject_id, arm (MK7 | PLACEBO), stratum (b12_deficiency | diabetes), sex;
* efficacy/between_arm.csv: population, param, visit, test, n_treated, n_control, estimate, ci_low, ci_high,
  p_value, p_adjusted, family, estimate_type, method, computed from these data with k2trial.stats.two_sample
  (ancova with stratum, rank_sum, responder_30, responder_50) for population itt, visits week4, week8, week12.

Calibrated loosely to STUDY.md's rct2021 (20 patients 1:1, stratified by cause; pain about 9 at baseline, MK-7 about
3.5 at week 8, placebo 8-9 throughout). SYNTHETIC: not the pilot's data, not issue 14's simulation either.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from k2trial.stats.two_sample import ancova, rank_sum_test, risk_difference

VISITS = (("baseline", 0), ("week4", 4), ("week8", 8), ("week12", 12))


def _vas(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values, 1), 0.0, 10.0)


def synthetic_pilot(seed: int = 2021, n_per_arm: int = 10, dropouts: int = 1) -> dict[str, pd.DataFrame]:
    """The three tables (vas, subjects, between_arm) as DataFrames. `dropouts`: MK-7 patients without week 8/12."""
    rng = np.random.default_rng(seed)
    n = 2 * n_per_arm
    ids = [f"R21-{i:03d}" for i in range(1, n + 1)]
    arm = np.array(["MK7", "PLACEBO"] * n_per_arm, dtype=object)
    stratum = np.array(
        ["b12_deficiency", "b12_deficiency", "diabetes", "diabetes"] * (n // 4) + ["diabetes"] * (n % 4), dtype=object
    )
    subjects = pd.DataFrame({"subject_id": ids, "arm": arm, "stratum": stratum, "sex": ["F", "M"] * n_per_arm})
    treated = arm == "MK7"
    rows = []
    for param, shift in (("pain", 0.0), ("sleep", -1.0)):
        base = _vas(8.8 + shift + 0.5 * rng.standard_normal(n))
        common = rng.standard_normal(n)
        for visit, week in VISITS:
            if week == 0:
                aval = base
            else:
                on_mk7 = {4: -3.0, 8: -5.2, 12: -6.5}[week]
                mean = base + np.where(treated, on_mk7, -0.3) + 0.6 * (base - base.mean())
                aval = _vas(mean + 0.8 * common + 0.6 * rng.standard_normal(n))
            for i in range(n):
                if week >= 8 and i < 2 * dropouts and treated[i]:
                    continue  # dropouts: the first MK-7 patients have no week 8 or 12
                chg = round(float(aval[i] - base[i]), 1)
                pchg = 100.0 * chg / base[i] if base[i] > 0 else np.nan
                rows.append([ids[i], param, visit, week, float(aval[i]), float(base[i]), chg, pchg])
    vas = pd.DataFrame(rows, columns=["subject_id", "param", "visit", "week", "aval", "base", "chg", "pchg"])
    vas = vas.sort_values(["subject_id", "param", "week"], kind="stable").reset_index(drop=True)
    return {"vas": vas, "subjects": subjects, "between_arm": _between_arm(vas, subjects)}


def _between_arm(vas: pd.DataFrame, subjects: pd.DataFrame) -> pd.DataFrame:
    rows = []
    data = vas.merge(subjects[["subject_id", "arm", "stratum"]], on="subject_id")
    for param in ("pain", "sleep"):
        for visit in ("week4", "week8", "week12"):
            d = data[(data["param"] == param) & (data["visit"] == visit)]
            fit = ancova(
                d["chg"].to_numpy(float),
                d["base"].to_numpy(float),
                d["arm"].to_numpy(object),
                treated="MK7",
                control="PLACEBO",
                stratum=d["stratum"].to_numpy(object),
            )
            rows.append(
                [
                    "itt",
                    param,
                    visit,
                    "ancova",
                    fit.n_treated,
                    fit.n_control,
                    fit.estimate,
                    fit.ci_low,
                    fit.ci_high,
                    fit.p_value,
                    "ls_mean_difference",
                    "ANCOVA: chg ~ arm + base + stratum (lm), LS mean difference",
                ]
            )
            x = d.loc[d["arm"] == "MK7", "chg"].to_numpy(float)
            y = d.loc[d["arm"] == "PLACEBO", "chg"].to_numpy(float)
            rs = rank_sum_test(x, y, decimals=1)
            rows.append(
                [
                    "itt",
                    param,
                    visit,
                    "rank_sum",
                    rs.n_x,
                    rs.n_y,
                    rs.estimate,
                    rs.ci_low,
                    rs.ci_high,
                    rs.p_value,
                    "hodges_lehmann_shift",
                    f"Wilcoxon rank-sum ({rs.method}), Hodges-Lehmann shift",
                ]
            )
            for percent in (30, 50):
                responder = (d["base"] > 0) & (-d["chg"] * 100.0 >= percent * d["base"])
                n_t = int((subjects["arm"] == "MK7").sum())
                n_c = int((subjects["arm"] == "PLACEBO").sum())
                x_t = int((responder & (d["arm"] == "MK7")).sum())
                x_c = int((responder & (d["arm"] == "PLACEBO")).sum())
                rd = risk_difference(x_t, n_t, x_c, n_c)
                rows.append(
                    [
                        "itt",
                        param,
                        visit,
                        f"responder_{percent}",
                        n_t,
                        n_c,
                        rd.estimate,
                        rd.ci_low,
                        rd.ci_high,
                        rd.p_value,
                        "risk_difference",
                        "risk difference, Newcombe hybrid score CI, Fisher exact p",
                    ]
                )
    frame = pd.DataFrame(
        rows,
        columns=[
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
            "estimate_type",
            "method",
        ],
    )
    frame.insert(frame.columns.get_loc("p_value") + 1, "p_adjusted", frame["p_value"])
    frame.insert(frame.columns.get_loc("p_adjusted") + 1, "family", "synthetic")
    return frame


def write_synthetic_pilot(folder: Path, **kwargs) -> dict[str, Path]:
    """Write the three files under folder/ (analysis/vas.csv, analysis/subjects.csv, efficacy/between_arm.csv)."""
    tables = synthetic_pilot(**kwargs)
    paths = {
        "vas": folder / "analysis" / "vas.csv",
        "subjects": folder / "analysis" / "subjects.csv",
        "between_arm": folder / "efficacy" / "between_arm.csv",
    }
    for name, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tables[name].to_csv(path, index=False, lineterminator="\n", float_format="%.12g")
    return paths
