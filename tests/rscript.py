"""Run R code with `Rscript` from tests and get its results back as Python values (double programming).

Use it from a test module (tests/ is on sys.path; binding the fixture by assignment lets pytest find it)::

    import rscript
    from rscript import r_num, requires_r

    r_session = rscript.r_session

    @requires_r                    # or just take the `r_session` fixture
    def test_something(r_session):
        out = r_session.run(f"result <- list(p = t.test({r_num([1.0, 2.0, 4.0])})$p.value)")

R side: the code must assign `result`; it is serialised to JSON by a small hand-written serialiser (below, no R
package needed) and parsed here. Mapping: a named list or named vector -> dict; an unnamed list -> list; an
atomic vector of length 1 -> scalar, longer (or `as.list(x)`) -> list; a matrix -> list of rows; NULL and NA ->
None; NaN / Inf / -Inf -> float nan / inf / -inf; factors -> strings. Doubles are written with 17 significant
digits ("%.17g"), so they come back bit for bit.

Python -> R: `r_num`, `r_int`, `r_str`, `r_bool` and `r_frame` build R literals; doubles are written in C99
hexadecimal notation (R parses 0x1.8p+0 exactly), so R sees exactly the floats Python has.

Skipping: when `Rscript` is not on PATH, or a required R package is missing, tests that need R are skipped with
the reason, unless the environment variable K2TRIAL_REQUIRE_R=1 is set, in which case they fail (CI sets it, so
a missing R cannot pass silently). Debian packages: r-base-core, r-cran-nlme, r-cran-emmeans.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REQUIRE_ENV = "K2TRIAL_REQUIRE_R"
INSTALL_HINT = (
    "apt-get install -y --no-install-recommends r-base-core r-cran-nlme r-cran-emmeans"
    f" (set {REQUIRE_ENV}=1 to make a missing R a failure instead of a skip)"
)
_MARKER = "K2TRIAL_JSON:"

# Hand-written JSON serialiser: base R only (jsonlite is not assumed).
_R_SERIALISER = r"""
.k2_str <- function(s) {
  s <- enc2utf8(as.character(s))
  out <- encodeString(s, quote = '"')
  out[is.na(s)] <- "null"
  out
}
.k2_num <- function(x) {
  x <- as.double(x)
  out <- sprintf("%.17g", x)
  out[is.infinite(x) & x > 0] <- "Infinity"
  out[is.infinite(x) & x < 0] <- "-Infinity"
  out[is.nan(x)] <- "NaN"
  out[is.na(x) & !is.nan(x)] <- "null"
  out
}
.k2_json <- function(x) {
  if (is.null(x)) return("null")
  if (is.factor(x)) x <- as.character(x)
  if (is.data.frame(x)) x <- as.list(x)
  if (is.matrix(x) && !is.list(x)) {
    rows <- lapply(seq_len(nrow(x)), function(i) as.list(unname(x[i, ])))
    return(.k2_json(rows))
  }
  nms <- names(x)
  named <- !is.null(nms) && length(x) > 0 && all(nzchar(nms))
  if (is.list(x)) {
    inner <- vapply(x, .k2_json, character(1), USE.NAMES = FALSE)
  } else if (is.character(x)) {
    inner <- .k2_str(x)
  } else if (is.logical(x)) {
    inner <- ifelse(is.na(x), "null", ifelse(x, "true", "false"))
  } else if (is.numeric(x)) {
    inner <- .k2_num(x)
  } else {
    stop("cannot serialise an object of class ", class(x)[1])
  }
  if (named) return(paste0("{", paste0(.k2_str(nms), ":", inner, collapse = ","), "}"))
  if (!is.list(x) && length(x) == 1L) return(inner)
  paste0("[", paste(inner, collapse = ","), "]")
}
"""


class RUnavailable(RuntimeError):
    """Rscript or a required R package is not available."""


def _skip_or_fail(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}; {REQUIRE_ENV}=1 requires R. Install: {INSTALL_HINT}", pytrace=False)
    pytest.skip(f"{reason}. Install: {INSTALL_HINT}")


class RSession:
    """Runs R code in a fresh `Rscript --vanilla` process per call (no state is carried between calls)."""

    def __init__(self, rscript: str, timeout: float = 300.0) -> None:
        self.rscript = rscript
        self.timeout = timeout
        self._packages: dict[str, bool] = {}

    def version(self) -> str:
        return str(self.run("result <- paste(R.version$major, R.version$minor, sep = '.')"))

    def has_package(self, name: str) -> bool:
        if name not in self._packages:
            code = f"result <- requireNamespace({_quote(name)}, quietly = TRUE)"
            self._packages[name] = bool(self.run(code))
        return self._packages[name]

    def need(self, *packages: str) -> RSession:
        """Skip (or fail under K2TRIAL_REQUIRE_R=1) unless every R package is installed; returns self."""
        missing = [p for p in packages if not self.has_package(p)]
        if missing:
            _skip_or_fail(f"R package(s) {', '.join(missing)} not installed")
        return self

    def run(self, code: str, *, packages: Iterable[str] = ()) -> Any:
        """Run `code` (which assigns `result`) after loading `packages`; return `result` as Python values.

        Raises RuntimeError with R's stderr when R fails.
        """
        loads = "".join(f"suppressPackageStartupMessages(library({p}))\n" for p in packages)
        script = (
            f"{_R_SERIALISER}\n{loads}{code}\n"
            f'if (!exists("result")) stop("the R code did not assign `result`")\n'
            f'cat("{_MARKER}", .k2_json(result), "\\n", sep = "")\n'
        )
        with tempfile.TemporaryDirectory(prefix="k2trial_r_") as tmp:
            path = Path(tmp) / "script.R"
            path.write_text(script, encoding="utf-8")
            proc = subprocess.run(
                [self.rscript, "--vanilla", str(path)],
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
                env=dict(os.environ, LC_ALL="C", LANG="C"),
            )
        if proc.returncode != 0:
            raise RuntimeError(f"Rscript failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        lines = [line for line in proc.stdout.splitlines() if line.startswith(_MARKER)]
        if not lines:
            raise RuntimeError(f"no result from R; stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-2000:]}")
        return json.loads(lines[-1][len(_MARKER) :])


def find_rscript() -> str | None:
    return shutil.which("Rscript")


@pytest.fixture(scope="session")
def r_session() -> RSession:
    """An RSession; skips (or fails under K2TRIAL_REQUIRE_R=1) when Rscript is not on PATH."""
    path = find_rscript()
    if path is None:
        _skip_or_fail("Rscript not found on PATH")
    return RSession(path)


#: Mark a test (or class) as needing R; the `r_session` fixture then decides skip / fail.
requires_r = pytest.mark.usefixtures("r_session")


# ------------------------------------------------------------------------------------ Python -> R


def _quote(s: str) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _r_double(value: float) -> str:
    v = float(value)
    if math.isnan(v):
        return "NA_real_"
    if math.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    return v.hex()


def r_num(values: Any) -> str:
    """An R double vector literal holding exactly these floats (NaN -> NA)."""
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.size == 0:
        return "numeric(0)"
    return "c(" + ", ".join(_r_double(v) for v in arr) + ")"


def r_int(values: Any) -> str:
    arr = np.asarray(values).reshape(-1)
    if arr.size == 0:
        return "integer(0)"
    return "c(" + ", ".join("NA_integer_" if v is None else f"{int(v)}L" for v in arr.tolist()) + ")"


def r_str(values: Any) -> str:
    """An R character vector literal (None or float NaN -> NA)."""
    items = list(np.asarray(values, dtype=object).reshape(-1))
    if not items:
        return "character(0)"

    def one(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "NA_character_"
        return _quote(str(v))

    return "c(" + ", ".join(one(v) for v in items) + ")"


def r_bool(values: Any) -> str:
    arr = np.asarray(values, dtype=bool).reshape(-1)
    return "c(" + ", ".join("TRUE" if v else "FALSE" for v in arr) + ")" if arr.size else "logical(0)"


def r_frame(columns: Mapping[str, Any]) -> str:
    """`data.frame(...)` literal: float columns as doubles, everything else as character."""
    parts = []
    for name, values in columns.items():
        arr = np.asarray(values)
        literal = r_num(arr) if arr.dtype.kind in "fiu" and arr.dtype.kind != "b" else r_str(arr)
        parts.append(f"{name} = {literal}")
    return "data.frame(" + ", ".join(parts) + ", stringsAsFactors = FALSE)"
