"""MMRM: change from baseline over the post-baseline visits, arm x visit, unstructured covariance, REML.

The model is that of R
`nlme::gls(chg ~ base + arm * visit [+ base:visit], correlation = corSymm(form = ~ visit_index | subject),
weights = varIdent(form = ~ 1 | visit), method = "REML", na.action = na.omit)`: fixed effects arm, visit,
arm x visit and baseline (optionally baseline x visit), and one unrestricted T x T within-subject covariance
matrix Sigma (T visits; corSymm x varIdent is a reparameterisation of the unstructured matrix), estimated by
restricted maximum likelihood. Per visit, the treated minus control LS mean difference is reported as
`emmeans(fit, ~ arm | visit, mode = "df.error")` and its contrast treated - control give it.
Compound symmetry here is corCompSymm without varIdent (one variance), independence is gls without a
correlation structure (= lm).

Estimation (written here with numpy/scipy; statsmodels has no unstructured GLS):

* Sigma = sigma^2 Lambda with sigma^2 profiled out of the REML likelihood (sigma^2 = Q / (N - p), Q the
  generalised residual sum of squares) and Lambda = L L', L lower triangular with L[0, 0] = 1, positive
  log-diagonal parameters (log-Cholesky): Lambda is positive definite for every parameter value, so the
  optimiser needs no constraints. The profiled objective (-2 x REML log-likelihood up to a constant) is
  sum_i log|Lambda_i| + log|X' Lambda^-1 X| + (N - p) log Q, with Lambda_i the rows and columns of the visits
  subject i has: subjects with missing visits contribute what they have (missing at random assumed).
* Deterministic fit: fixed start values (the pairwise covariance of the OLS residuals, or the identity when
  that is not positive definite), BFGS with the analytic gradient and fixed tolerances, then Newton steps on
  a central-difference Hessian of the analytic gradient until the gradient is at rounding level. No
  randomness, the same result on every run, independent of the row order of the input. Iterative fits agree
  with R to about 1e-5 relative (R's default control) or 1e-6 (R's optimiser tightened), not to the last
  digit: write results through `rounded_result` (6 significant digits, k2trial.core.values.round_significant).
* Subjects are grouped by their pattern of observed visits, so each evaluation costs one Cholesky factor per
  pattern plus einsum reductions over subjects (the same code would batch over simulated trials).

Degrees of freedom of the contrasts: df = N - p - k, N observations, p fixed-effect coefficients, k covariance
parameters besides sigma^2 (unstructured: T(T + 1)/2 - 1; compound symmetry: 1; independence: 0), which is
what emmeans(..., mode = "df.error") uses for gls (nlme's own summary.gls t-tests use N - p, reported as
df_residual). Not Satterthwaite or Kenward-Roger (SAS PROC MIXED DDFM=KR gives other df); with n about 30
per arm the difference in the t quantile is small. Var(beta) = sigma^2 (X' Lambda^-1 X)^-1 at the REML
estimate, as vcov(gls).

Fallback: the unstructured matrix is fitted only when every pair of visits is observed together in at least
MIN_SUBJECTS_PER_PAIR subjects and N - p >= T(T + 1) / 2; a fit that does not converge or whose correlation
matrix is numerically singular (smallest eigenvalue < 1e-8) is rejected. Then compound symmetry (common
variance, common correlation: gls(correlation = corCompSymm(form = ~ 1 | subject))) is tried (it needs
MIN_SUBJECTS_PER_PAIR subjects with two or more visits, and a correlation inside its bounds), then
independence (ordinary least squares, = lm). `covariance` says what was used and `fallback_reason` why.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import linalg, optimize, stats

from k2trial.core.values import round_significant

NAN = math.nan

UNSTRUCTURED = "unstructured"
COMPOUND_SYMMETRY = "compound symmetry"
INDEPENDENCE = "independence"
STRUCTURES = (UNSTRUCTURED, COMPOUND_SYMMETRY, INDEPENDENCE)

DF_METHOD = (
    "N - p - k (observations - fixed-effect coefficients - covariance parameters other than sigma^2),"
    " as emmeans(mode = 'df.error') for gls"
)
MISSING_DATA = "missing at random assumed: each subject contributes the visits observed (no imputation)"

#: Subjects that must be observed at both visits of every pair before an unstructured matrix is fitted.
MIN_SUBJECTS_PER_PAIR = 3
_RANK_TOL = 1e-7
_SINGULAR_EIGEN = 1e-8
_GRAD_TOL = 1e-6  # converged: max |gradient| of the profiled objective below this (objective is O(N))
_BFGS_GTOL = 1e-9
_BFGS_MAXITER = 2000
_NEWTON_STEPS = 8
_HESSIAN_STEP = 1e-5


@dataclass(frozen=True)
class VisitContrast:
    """Treated minus control at one visit (units of the change), LS means as emmeans(fit, ~ arm | visit)."""

    visit: str
    n_treated: int  # observations analysed at this visit
    n_control: int
    lsmean_treated: float
    se_treated: float
    lsmean_control: float
    se_control: float
    estimate: float
    se: float
    df: float
    t: float
    p_value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class MmrmResult:
    """MMRM fit and per-visit contrasts. Floats are full precision: round with `rounded_result` to write.

    covariance_matrix: the estimated Sigma (T x T, visits in `visits` order, units of the change squared).
    coefficient_names follow R's model.matrix for chg ~ base + arm * visit (+ base:visit), treatment coding
    with the control arm and the first visit as references. reml_loglik equals nlme's logLik(fit) (REML).
    """

    visits: tuple[str, ...]
    contrasts: tuple[VisitContrast, ...]
    covariance: str  # structure actually used
    covariance_requested: str
    fallback_reason: str  # "" when the requested structure was used
    df_method: str
    missing_data: str
    confidence: float
    baseline_by_visit: bool
    n_subjects: int
    n_observations: int
    n_dropped: int  # rows dropped for a missing change, baseline, arm or visit
    n_coef: int
    n_cov_params: int  # covariance parameters besides sigma^2 (k of the df)
    df_residual: float  # N - p, nlme's summary.gls df; the contrasts use df_residual - n_cov_params
    baseline_mean: float  # over the analysed rows: where the LS means are evaluated (emmeans)
    sigma: float  # residual SD at the first visit (nlme's sigma for the unstructured fit)
    covariance_matrix: tuple[tuple[float, ...], ...]
    coefficient_names: tuple[str, ...]
    coefficients: tuple[float, ...]
    reml_loglik: float
    converged: bool
    iterations: int
    note: str


# ---------------------------------------------------------------------------------------- rounding


def rounded_result(result: MmrmResult, digits: int = 6) -> MmrmResult:
    """A copy of an MMRM result with every float rounded to `digits` significant digits (for writing).

    Results of iterative fits carry optimiser noise in their trailing digits; rounding to 6 digits makes
    written outputs stable across platforms and library versions (CLINICAL.md: iterative fits to about 6
    significant digits).
    """

    def rnd(obj):
        if isinstance(obj, float):
            return float(round_significant(obj, digits))
        if isinstance(obj, tuple):
            return tuple(rnd(o) for o in obj)
        if dataclasses.is_dataclass(obj):
            return dataclasses.replace(obj, **{f.name: rnd(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
        return obj

    keep_exact = {"confidence"}  # a setting, not an estimate
    changes = {f.name: rnd(getattr(result, f.name)) for f in dataclasses.fields(result) if f.name not in keep_exact}
    return dataclasses.replace(result, **changes)


# ----------------------------------------------------------------------------------- REML machinery


@dataclass(frozen=True)
class _Pattern:
    """Subjects sharing one pattern of observed visits."""

    idx: np.ndarray  # observed visit indices (ascending)
    y: np.ndarray  # (n, m)
    x: np.ndarray  # (n, m, p)


class _Reml:
    """Profiled REML objective -2 l(Lambda) + const = sum log|Lambda_i| + log|A| + (N - p) log Q and its gradient."""

    def __init__(self, patterns: list[_Pattern], n_obs: int, n_coef: int, n_visits: int) -> None:
        self.patterns = patterns
        self.n_obs = n_obs
        self.p = n_coef
        self.t = n_visits

    def parts(self, lam: np.ndarray, gradient: bool = False):
        """(objective, A, beta, Q, G): G = d objective / d Lambda (symmetric), or None without gradient."""
        p, t = self.p, self.t
        a = np.zeros((p, p))
        b = np.zeros(p)
        logdet = 0.0
        inverses = []
        for pat in self.patterns:
            sub = lam[np.ix_(pat.idx, pat.idx)]
            chol = linalg.cho_factor(sub, lower=True)
            w = linalg.cho_solve(chol, np.eye(len(pat.idx)))
            inverses.append(w)
            logdet += len(pat.y) * 2.0 * float(np.sum(np.log(np.diag(chol[0]))))
            wx = np.einsum("ab,nbk->nak", w, pat.x)
            a += np.einsum("nak,nal->kl", pat.x, wx)
            b += np.einsum("nak,na->k", wx, pat.y)
        a = (a + a.T) / 2.0
        a_chol = linalg.cho_factor(a, lower=True)
        beta = linalg.cho_solve(a_chol, b)
        q = 0.0
        resid = []
        for pat, w in zip(self.patterns, inverses, strict=True):
            r = pat.y - np.einsum("nak,k->na", pat.x, beta)
            resid.append(r)
            q += float(np.einsum("na,ab,nb->", r, w, r))
        dof = self.n_obs - p
        objective = logdet + 2.0 * float(np.sum(np.log(np.diag(a_chol[0])))) + dof * math.log(q)
        if not gradient:
            return objective, a, beta, q, None
        a_inv = linalg.cho_solve(a_chol, np.eye(p))
        g = np.zeros((t, t))
        for pat, w, r in zip(self.patterns, inverses, resid, strict=True):
            wx = np.einsum("ab,nbk->nak", w, pat.x)
            term_a = np.einsum("nak,kl,nbl->ab", wx, a_inv, wx)
            wr = r @ w
            g_pat = len(pat.y) * w - term_a - (dof / q) * (wr.T @ wr)
            g[np.ix_(pat.idx, pat.idx)] += g_pat
        return objective, a, beta, q, (g + g.T) / 2.0

    def reml_loglik(self, lam: np.ndarray) -> float:
        """nlme's REML log-likelihood at Lambda with sigma^2 profiled: -(N - p)/2 (log 2 pi sigma^2 + 1) - ... ."""
        objective, _, _, q, _ = self.parts(lam)
        dof = self.n_obs - self.p
        return -0.5 * (objective - dof * math.log(q) + dof * (math.log(2.0 * math.pi * q / dof) + 1.0))


def _tril_indices(t: int) -> tuple[np.ndarray, np.ndarray]:
    """Free entries of L: diagonal 1..t-1 (as logs), then the strictly lower triangle, row by row."""
    diag = np.arange(1, t)
    rows, cols = np.tril_indices(t, k=-1)
    return diag, np.stack([rows, cols])


def _lambda_from_theta(theta: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    diag, (rows, cols) = _tril_indices(t)
    chol = np.zeros((t, t))
    chol[0, 0] = 1.0
    chol[diag, diag] = np.exp(theta[: t - 1])
    chol[rows, cols] = theta[t - 1 :]
    return chol @ chol.T, chol


def _theta_from_lambda(lam: np.ndarray) -> np.ndarray:
    t = lam.shape[0]
    chol = np.linalg.cholesky(lam / lam[0, 0])
    diag, (rows, cols) = _tril_indices(t)
    return np.concatenate([np.log(np.diag(chol)[1:]), chol[rows, cols]])


@dataclass(frozen=True)
class _Fit:
    lam: np.ndarray
    converged: bool
    iterations: int
    message: str


def _fit_unstructured(reml: _Reml, start: np.ndarray) -> _Fit:
    t = reml.t
    diag, (rows, cols) = _tril_indices(t)

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        lam, chol = _lambda_from_theta(theta, t)
        try:
            obj, _, _, _, g = reml.parts(lam, gradient=True)
        except (linalg.LinAlgError, ValueError):
            return math.inf, np.zeros_like(theta)
        dl = 2.0 * (g @ chol)  # d objective / d L
        return obj, np.concatenate([dl[diag, diag] * chol[diag, diag], dl[rows, cols]])

    theta0 = _theta_from_lambda(start)
    res = optimize.minimize(
        fun, theta0, jac=True, method="BFGS", options={"gtol": _BFGS_GTOL, "maxiter": _BFGS_MAXITER}
    )
    theta = res.x
    value, grad = fun(theta)
    iterations = int(res.nit)
    # Newton polish: BFGS stops on a gradient tolerance; a few Newton steps on the (central-difference)
    # Hessian of the analytic gradient take the estimate to rounding level, reproducibly.
    for _ in range(_NEWTON_STEPS):
        if not math.isfinite(value) or np.max(np.abs(grad)) < 1e-11:
            break
        k = len(theta)
        hess = np.zeros((k, k))
        for j in range(k):
            step = np.zeros(k)
            step[j] = _HESSIAN_STEP * max(1.0, abs(theta[j]))
            hess[:, j] = (fun(theta + step)[1] - fun(theta - step)[1]) / (2.0 * step[j])
        hess = (hess + hess.T) / 2.0
        try:
            delta = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        candidate = theta - delta
        cand_value, cand_grad = fun(candidate)
        if not (cand_value <= value + 1e-12 * abs(value) and np.max(np.abs(cand_grad)) < np.max(np.abs(grad))):
            break
        theta, value, grad = candidate, cand_value, cand_grad
        iterations += 1
    lam, _ = _lambda_from_theta(theta, t)
    converged = bool(math.isfinite(value) and np.max(np.abs(grad)) < _GRAD_TOL)
    message = (
        ""
        if converged
        else f"REML optimisation did not converge ({res.message}; max |gradient| {np.max(np.abs(grad)):.3g})"
    )
    return _Fit(lam, converged, iterations, message)


def _fit_compound_symmetry(reml: _Reml) -> _Fit:
    t = reml.t
    lower = -1.0 / (t - 1) if t > 1 else -1.0
    eps = 1e-9

    def lam_of(rho: float) -> np.ndarray:
        return (1.0 - rho) * np.eye(t) + rho * np.ones((t, t))

    def fun(rho: float) -> float:
        try:
            return reml.parts(lam_of(rho))[0]
        except (linalg.LinAlgError, ValueError):
            return math.inf

    res = optimize.minimize_scalar(
        fun, bounds=(lower + eps, 1.0 - eps), method="bounded", options={"xatol": 1e-12, "maxiter": 2000}
    )
    rho = float(res.x)
    at_bound = rho - lower < 1e-6 or 1.0 - rho < 1e-6
    converged = bool(res.success and math.isfinite(res.fun) and not at_bound)
    message = "" if converged else f"compound symmetry correlation at its bound or not converged (rho = {rho:.6g})"
    return _Fit(lam_of(rho), converged, int(res.nfev), message)


# ----------------------------------------------------------------------------------------- the model


def _design(
    base: np.ndarray, treated: np.ndarray, visit_idx: np.ndarray, visits: Sequence[str], by_visit: bool
) -> tuple[np.ndarray, list[str]]:
    """R's model.matrix(~ base + arm * visit [+ base:visit]) with treatment coding, in R's column order."""
    n, t = len(base), len(visits)
    cols = [np.ones(n), base, treated]
    names = ["(Intercept)", "base", "armtreated"]
    for v in range(1, t):
        cols.append((visit_idx == v).astype(float))
        names.append(f"visit{visits[v]}")
    for v in range(1, t):
        cols.append(treated * (visit_idx == v))
        names.append(f"armtreated:visit{visits[v]}")
    if by_visit:
        for v in range(1, t):
            cols.append(base * (visit_idx == v))
            names.append(f"base:visit{visits[v]}")
    return np.column_stack(cols), names


def _cell_vector(names: list[str], visits: Sequence[str], v: int, treated: float, base: float, by_visit: bool):
    """Coefficient vector of the prediction for (arm, visit v) at baseline `base` (the emmeans grid)."""
    t = len(visits)
    vec = [1.0, base, treated]
    vec += [1.0 if v == j else 0.0 for j in range(1, t)]
    vec += [treated if v == j else 0.0 for j in range(1, t)]
    if by_visit:
        vec += [base if v == j else 0.0 for j in range(1, t)]
    out = np.array(vec)
    assert len(out) == len(names)
    return out


def _missing(series: pd.Series) -> np.ndarray:
    return series.isna().to_numpy()


def mmrm(
    data: pd.DataFrame,
    *,
    treated: object,
    control: object,
    subject: str = "subject",
    arm: str = "arm",
    visit: str = "visit",
    change: str = "chg",
    baseline: str = "base",
    visits: Sequence[object] | None = None,
    baseline_by_visit: bool = False,
    covariance: str = UNSTRUCTURED,
    confidence: float = 0.95,
) -> MmrmResult:
    """MMRM of change from baseline: per-visit treated minus control LS mean differences.

    data: one row per subject and post-baseline visit (long format) with columns `subject`, `arm` (labels
    `treated` / `control`), `visit`, `change` (post - baseline, units of the endpoint) and `baseline`. Rows
    with a missing change, baseline, arm or visit are dropped (n_dropped); a subject keeps its other visits.
    visits: their order (default: the categories of an ordered categorical `visit`, else the sorted labels);
    a visit with no analysable observation is dropped from the model and noted.
    covariance: the structure to try first ("unstructured", "compound symmetry", "independence"); the
    fallback chain continues from there (module docstring).

    Equals R (nlme 3.1, emmeans 1.8): `d$visit_index <- as.integer(d$visit)`;
    `fit <- gls(chg ~ base + arm * visit [+ base:visit], data = d, correlation = corSymm(form = ~ visit_index
    | subject), weights = varIdent(form = ~ 1 | visit), method = "REML", na.action = na.omit)`;
    `emm <- emmeans(fit, ~ arm | visit, mode = "df.error")`; `contrast(emm, list(d = c(-1, 1)))` with the
    arm levels (control, treated). Iterative fits agree to about 1e-5 relative with R at its default control
    (nlminb stops earlier; our REML log-likelihood is never below R's) and to about 1e-6 with R's optimiser
    tightened. Raises ValueError for duplicated subject-visit rows, a subject in both arms, labels that are
    neither arm, or visits missing from `visits`.
    """
    if covariance not in STRUCTURES:
        raise ValueError(f"covariance must be one of {STRUCTURES}, got {covariance!r}")
    for col in (subject, arm, visit, change, baseline):
        if col not in data.columns:
            raise ValueError(f"column {col!r} missing from the MMRM input")
    frame = data[[subject, arm, visit, change, baseline]].copy()
    arms = frame[arm]
    bad = ~_missing(arms) & ~arms.isin([treated, control]).to_numpy()
    if bad.any():
        raise ValueError(f"arm labels {sorted(map(str, set(arms[bad])))} are neither {treated!r} nor {control!r}")
    if frame.duplicated([subject, visit]).any():
        raise ValueError("more than one row for a subject and visit")
    both = frame.dropna(subset=[arm]).groupby(subject)[arm].nunique()
    if (both > 1).any():
        raise ValueError(f"subjects in both arms: {list(both.index[both > 1])[:5]}")

    if visits is None:
        column = frame[visit]
        if isinstance(column.dtype, pd.CategoricalDtype) and column.cat.ordered:
            visits = list(column.cat.categories)
        else:
            visits = sorted(column.dropna().unique().tolist())
    visit_labels = [str(v) for v in visits]
    known = frame[visit].dropna().astype(str)
    unknown = sorted(set(known) - set(visit_labels))
    if unknown:
        raise ValueError(f"visits {unknown} are not in the visit list {visit_labels}")

    drop = _missing(frame[change]) | _missing(frame[baseline]) | _missing(frame[arm]) | _missing(frame[visit])
    frame = frame.loc[~drop]
    n_dropped = int(drop.sum())
    notes = [f"{n_dropped} row(s) dropped for a missing value"] if n_dropped else []
    present = [v for v in visit_labels if (frame[visit].astype(str) == v).any()]
    if len(present) < len(visit_labels):
        notes.append(f"visit(s) {sorted(set(visit_labels) - set(present))} have no analysable observation")
    visit_labels = present
    t = len(visit_labels)

    frame = frame.assign(_v=frame[visit].astype(str).map({v: i for i, v in enumerate(visit_labels)}))
    frame = frame.sort_values([subject, "_v"], kind="stable")
    y = frame[change].to_numpy(dtype=float)
    base = frame[baseline].to_numpy(dtype=float)
    is_t = (frame[arm] == treated).to_numpy(dtype=float)
    vidx = frame["_v"].to_numpy(dtype=int)
    subjects = frame[subject].to_numpy()
    n_obs = len(y)
    n_subjects = int(pd.unique(subjects).size)
    x, names = _design(base, is_t, vidx, visit_labels, baseline_by_visit)
    p = x.shape[1]
    base_mean = float(np.mean(base)) if n_obs else NAN

    counts = [(int(np.sum((vidx == v) & (is_t == 1))), int(np.sum((vidx == v) & (is_t == 0)))) for v in range(t)]

    def failed(reason: str) -> MmrmResult:
        rows = tuple(VisitContrast(visit_labels[v], *counts[v], *(NAN,) * 11) for v in range(t))
        return MmrmResult(
            tuple(visit_labels), rows, "none", covariance, reason, DF_METHOD, MISSING_DATA, confidence,
            baseline_by_visit, n_subjects, n_obs, n_dropped, p, 0, float(n_obs - p), base_mean, NAN,
            (), tuple(names), (), NAN, False, 0, "; ".join([*notes, reason]),
        )  # fmt: skip

    if t == 0 or n_obs == 0:
        return failed("no analysable observations")
    if is_t.min() == is_t.max():
        return failed(f"no analysable observations in the {'control' if is_t[0] == 1 else 'treated'} arm")
    norms = np.sqrt(np.sum(x * x, axis=0))
    norms[norms == 0] = 1.0
    sv = np.linalg.svd(x / norms, compute_uv=False)
    rank = int(np.sum(sv > _RANK_TOL * sv[0]))
    if rank < p:
        return failed(
            f"fixed-effects design rank deficient (rank {rank} of {p}): e.g. an arm without data at a visit"
            " or a constant baseline; R's gls stops here too"
        )
    if n_obs - p < 1:
        return failed(f"too few observations ({n_obs}) for {p} fixed-effect coefficients")
    ols_beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    ols_rss = float(np.sum((y - x @ ols_beta) ** 2))
    if ols_rss <= (np.finfo(float).eps * float(np.sqrt(np.sum(y * y)) + 1.0)) ** 2 * n_obs:
        return failed("the fixed effects fit the changes exactly (zero residual variance, e.g. all changes tied)")

    # Patterns of observed visits: one Cholesky factor per pattern and iteration.
    by_subject: dict[object, list[int]] = {}
    for row, s in enumerate(subjects):
        by_subject.setdefault(s, []).append(row)
    grouped: dict[tuple[int, ...], list[list[int]]] = {}
    for rows in by_subject.values():
        grouped.setdefault(tuple(vidx[rows].tolist()), []).append(rows)
    patterns = []
    for key in sorted(grouped):
        rows = np.array(grouped[key])  # (n_subjects_in_pattern, m)
        patterns.append(_Pattern(np.array(key), y[rows], x[rows]))

    # Pair counts: subjects observed at both visits j and k (diagonal: at visit j).
    pair_counts = np.zeros((t, t), dtype=int)
    for key, members in grouped.items():
        idx = np.array(key)
        pair_counts[np.ix_(idx, idx)] += len(members)
    multi_visit = sum(len(m) for key, m in grouped.items() if len(key) >= 2)

    reml = _Reml(patterns, n_obs, p, t)
    reasons: list[str] = []
    chosen: tuple[str, _Fit] | None = None
    chain = STRUCTURES[STRUCTURES.index(covariance) :]
    for structure in chain:
        if structure == UNSTRUCTURED:
            if t == 1:
                reasons.append("unstructured: one visit only")
                continue
            if pair_counts.min() < MIN_SUBJECTS_PER_PAIR:
                j, k = np.unravel_index(np.argmin(pair_counts), pair_counts.shape)
                reasons.append(
                    f"unstructured: visits {visit_labels[j]} and {visit_labels[k]} observed together in"
                    f" {pair_counts[j, k]} subject(s) (< {MIN_SUBJECTS_PER_PAIR})"
                )
                continue
            if n_obs - p < t * (t + 1) // 2:
                reasons.append(f"unstructured: {n_obs - p} residual df for {t * (t + 1) // 2} covariance parameters")
                continue
            fit = _fit_unstructured(reml, _start_lambda(x, y, vidx, subjects, t))
            d = np.sqrt(np.diag(fit.lam))
            smallest = float(np.linalg.eigvalsh(fit.lam / np.outer(d, d)).min())
            if not smallest >= _SINGULAR_EIGEN:
                reasons.append(
                    "unstructured: the REML estimate approaches a singular (not positive definite) matrix,"
                    f" smallest correlation eigenvalue {smallest:.2g}"
                )
                continue
            if not fit.converged:
                reasons.append(f"unstructured: {fit.message}")
                continue
            chosen = (structure, fit)
            break
        if structure == COMPOUND_SYMMETRY:
            if t == 1 or multi_visit < MIN_SUBJECTS_PER_PAIR:
                reasons.append(f"compound symmetry: {multi_visit} subject(s) with two or more visits")
                continue
            fit = _fit_compound_symmetry(reml)
            if not fit.converged:
                reasons.append(f"compound symmetry: {fit.message}")
                continue
            chosen = (structure, fit)
            break
        chosen = (INDEPENDENCE, _Fit(np.eye(t), True, 0, ""))
        break
    assert chosen is not None  # independence always succeeds
    structure, fit = chosen

    _, a, beta, q, _ = reml.parts(fit.lam)
    df_residual = float(n_obs - p)
    sigma2 = q / df_residual  # REML estimate of sigma^2 given Lambda
    vcov = sigma2 * linalg.cho_solve(linalg.cho_factor(a, lower=True), np.eye(p))
    sigma_matrix = sigma2 * fit.lam
    n_cov = {UNSTRUCTURED: t * (t + 1) // 2 - 1, COMPOUND_SYMMETRY: 1, INDEPENDENCE: 0}[structure]
    dof = df_residual - n_cov
    level_q = float(stats.t.isf((1.0 - confidence) / 2.0, dof)) if dof > 0 else NAN

    def linear(vec: np.ndarray) -> tuple[float, float]:
        return float(vec @ beta), math.sqrt(max(float(vec @ vcov @ vec), 0.0))

    rows = []
    for v in range(t):
        cell_t = _cell_vector(names, visit_labels, v, 1.0, base_mean, baseline_by_visit)
        cell_c = _cell_vector(names, visit_labels, v, 0.0, base_mean, baseline_by_visit)
        lsm_t, se_t = linear(cell_t)
        lsm_c, se_c = linear(cell_c)
        est, se = linear(cell_t - cell_c)
        tval = est / se if se > 0 and dof > 0 else NAN
        pval = float(2.0 * stats.t.sf(abs(tval), dof)) if math.isfinite(tval) else NAN
        rows.append(
            VisitContrast(
                visit_labels[v],
                *counts[v],
                lsm_t,
                se_t,
                lsm_c,
                se_c,
                est,
                se,
                dof,
                tval,
                pval,
                est - level_q * se,
                est + level_q * se,
            )  # fmt: skip
        )
    return MmrmResult(
        visits=tuple(visit_labels),
        contrasts=tuple(rows),
        covariance=structure,
        covariance_requested=covariance,
        fallback_reason="; ".join(reasons),
        df_method=DF_METHOD,
        missing_data=MISSING_DATA,
        confidence=confidence,
        baseline_by_visit=baseline_by_visit,
        n_subjects=n_subjects,
        n_observations=n_obs,
        n_dropped=n_dropped,
        n_coef=p,
        n_cov_params=n_cov,
        df_residual=df_residual,
        baseline_mean=base_mean,
        sigma=math.sqrt(float(sigma_matrix[0, 0])),
        covariance_matrix=tuple(tuple(float(c) for c in row) for row in sigma_matrix),
        coefficient_names=tuple(names),
        coefficients=tuple(float(b) for b in beta),
        reml_loglik=reml.reml_loglik(fit.lam),
        converged=fit.converged,
        iterations=fit.iterations,
        note="; ".join(notes),
    )


def _start_lambda(x: np.ndarray, y: np.ndarray, vidx: np.ndarray, subjects: np.ndarray, t: int) -> np.ndarray:
    """Deterministic start: pairwise-complete covariance of the OLS residuals, scaled to Lambda[0, 0] = 1.

    Falls back to the identity when that matrix is not safely positive definite.
    """
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    wide = pd.DataFrame({"s": subjects, "v": vidx, "r": resid}).pivot(index="s", columns="v", values="r")
    wide = wide.reindex(columns=range(t))
    cov = wide.cov(min_periods=2).to_numpy()
    if not np.all(np.isfinite(cov)) or cov[0, 0] <= 0:
        return np.eye(t)
    eig = np.linalg.eigvalsh(cov)
    if eig.min() <= 1e-6 * eig.max():
        return np.eye(t)
    return cov / cov[0, 0]
