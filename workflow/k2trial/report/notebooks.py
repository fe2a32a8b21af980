"""Reviewer notebooks: execution with papermill, normalisation for byte-identical reruns, offline HTML export,
and the small helpers the notebook templates call (header, narrative, figures, tables).

Notebooks are views over precomputed results: they read the analysis tables, the display-table catalog
(results/tables/catalog.json) and the PNG figures, and never recompute an analysis.

Determinism: after execution, `normalise_notebook` drops papermill's timings and paths and the per-cell
execution metadata, keeps the parameters, and numbers cell ids (cell-000, cell-001, ...). `notebook_html`
uses nbconvert's `basic` template (cells only) inside a page of our own with inline CSS: no require.js, no
MathJax or Mermaid from a CDN, no web fonts, no scripts at all; images are data URIs; DOM ids come from
the cell ids. `assert_offline` rejects any reference to the network.

papermill and nbconvert are imported inside the functions that need them, so a notebook kernel that imports
this module for its helpers stays fast.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import html
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: Cell ids after normalisation: cell-000, cell-001, ... (valid nbformat 4.5 ids, stable across runs).
CELL_ID_FORMAT = "cell-{:03d}"
#: papermill notebook metadata kept after normalisation (everything else is timings, paths or versions).
KEPT_PAPERMILL_KEYS = ("parameters", "default_parameters")
SIMULATED_BANNER = (
    "SIMULATED DATA: these results come from a simulated dataset calibrated to the publication, "
    "not from the trial's patients."
)


# ----------------------------------------------------------------------------------------------------
# Execution and normalisation
# ----------------------------------------------------------------------------------------------------
def execute_notebook(
    template: str | Path, parameters: Mapping[str, Any], cwd: str | Path, kernel_name: str = "python3"
) -> Any:
    """Run a papermill template with `parameters` in `cwd` and return the executed notebook (not written).

    The kernel talks over Unix sockets in a private temporary folder rather than TCP ports: kernels started
    at the same moment cannot pick the same port, and nothing listens on the network.
    Raises papermill's PapermillExecutionError, naming the failing cell, when a cell fails.
    """
    import tempfile

    import papermill
    from jupyter_client.manager import AsyncKernelManager

    with tempfile.TemporaryDirectory(prefix="k2k-") as sockets:
        manager = AsyncKernelManager(kernel_name=kernel_name, transport="ipc", ip=os.path.join(sockets, "kernel"))
        return papermill.execute_notebook(
            str(template),
            None,
            parameters=dict(parameters),
            cwd=str(cwd),
            kernel_name=kernel_name,
            language="python",
            progress_bar=False,
            log_output=False,
            request_save_on_cell_execute=False,
            km=manager,
        )


#: Run in the shared kernel before every notebook but the first: a fresh user namespace, history and
#: execution counter (In[1] again), as a new kernel would give; imported modules stay loaded, which is the point.
RESET_KERNEL_CODE = "get_ipython().reset(new_session=True, aggressive=False)"


def execute_notebooks(
    templates: Mapping[str, str | Path],
    parameters: Mapping[str, Mapping[str, Any]],
    cwd: str | Path,
    kernel_name: str = "python3",
    kernels: int = 2,
) -> dict[str, Any]:
    """Run several templates on `kernels` kernels side by side (notebooks dealt round-robin, each kernel running
    its share one after the other) and return the executed notebooks by name, in the order of `templates`.

    A kernel costs an interpreter start plus IPython and pandas imports (about a second of CPU); the cells of
    these view-only notebooks cost far less. One kernel per notebook wastes that CPU, one kernel for all of
    them waits on each round trip in turn: two kernels side by side, each reused, are quickest on a small
    machine. Before each notebook but the first on a kernel, its namespace, history and execution counter
    are reset (RESET_KERNEL_CODE, sent silently so that it leaves no trace), so every executed notebook is
    what a fresh kernel would give: nothing a notebook defines is visible to the next, and execution counts
    start at 1. Module state survives a reset, so templates must not change process-wide settings (pandas
    options, the working directory).

    Kernels talk over Unix sockets in private temporary folders rather than TCP ports: kernels started at the
    same moment cannot pick the same port, and nothing listens on the network. Every module papermill imports
    lazily while injecting parameters (black formats the injected cell) is imported here first: a module
    imported by two threads at once can be seen half-initialised, which would make the injected cell's
    formatting, and so the notebook's bytes, depend on thread timing.
    Raises papermill's PapermillExecutionError, naming the failing cell, when a cell fails.
    """
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    import papermill
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync
    from papermill.translators import PythonTranslator

    PythonTranslator.codify({"warm_up": 1})  # imports black (when installed) once, in this thread

    async def reset(manager: AsyncKernelManager) -> None:
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            reply = await client.execute_interactive(
                RESET_KERNEL_CODE, silent=True, store_history=False, timeout=60, output_hook=lambda msg: None
            )
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"resetting the notebook kernel failed: {reply['content']}")
        finally:
            client.stop_channels()

    def run_on_one_kernel(names: Sequence[str]) -> dict[str, Any]:
        executed = {}
        with tempfile.TemporaryDirectory(prefix="k2k-") as sockets:
            manager = AsyncKernelManager(kernel_name=kernel_name, transport="ipc", ip=os.path.join(sockets, "kernel"))
            run_sync(manager.start_kernel)(cwd=str(cwd))
            try:
                for index, name in enumerate(names):
                    if index:
                        run_sync(reset)(manager)
                    executed[name] = papermill.execute_notebook(
                        str(templates[name]),
                        None,
                        parameters=dict(parameters[name]),
                        cwd=str(cwd),
                        kernel_name=kernel_name,
                        language="python",
                        progress_bar=False,
                        log_output=False,
                        request_save_on_cell_execute=False,
                        km=manager,
                    )
            finally:
                run_sync(manager.shutdown_kernel)(now=True)
        return executed

    names = list(templates)
    shares = [share for share in (names[k :: max(kernels, 1)] for k in range(max(kernels, 1))) if share]
    with ThreadPoolExecutor(max_workers=max(len(shares), 1)) as pool:
        results = list(pool.map(run_on_one_kernel, shares))
    merged = {name: notebook for result in results for name, notebook in result.items()}
    return {name: merged[name] for name in names}


def normalise_notebook(notebook: Any) -> Any:
    """A copy without volatile metadata: papermill timings, paths and versions, per-cell execution times;
    cell ids renumbered in order; parameters kept in metadata.papermill.parameters.

    Works on nbformat NotebookNode or plain dict notebooks (nbformat 4).
    """
    nb = copy.deepcopy(notebook)
    meta = nb.setdefault("metadata", {})
    papermill_meta = meta.get("papermill", {})
    kept = {k: papermill_meta[k] for k in KEPT_PAPERMILL_KEYS if k in papermill_meta}
    if kept:
        meta["papermill"] = kept
    else:
        meta.pop("papermill", None)
    meta.pop("widgets", None)
    for index, cell in enumerate(nb.get("cells", [])):
        cell["id"] = CELL_ID_FORMAT.format(index)
        cell_meta = cell.setdefault("metadata", {})
        for key in ("papermill", "execution", "collapsed", "scrolled", "ExecuteTime"):
            cell_meta.pop(key, None)
        for output in cell.get("outputs", []):
            if isinstance(output.get("metadata"), dict):
                output["metadata"].pop("execution", None)
    nb["nbformat"] = 4
    nb["nbformat_minor"] = max(int(nb.get("nbformat_minor", 5)), 5)  # cell ids need 4.5
    return nb


def notebook_bytes(notebook: Any) -> bytes:
    """The .ipynb bytes: nbformat's canonical JSON (sorted keys, one-space indent) and a final newline."""
    import nbformat

    text = nbformat.writes(nbformat.from_dict(notebook), version=4)
    return (text if text.endswith("\n") else text + "\n").encode("utf-8")


# ----------------------------------------------------------------------------------------------------
# Offline HTML
# ----------------------------------------------------------------------------------------------------
PAGE_CSS = """
:root{color-scheme:light}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;color:#111;
background:#fff;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:1rem 1.5rem 3rem}
h1{font-size:1.7rem;margin:.6rem 0}h2{font-size:1.3rem;margin-top:2rem;border-bottom:1px solid #ddd}
h3{font-size:1.1rem}
a.anchor-link{display:none}
.banner-simulated{background:#fff3cd;border:3px solid #8a6d00;color:#3d3000;padding:.7rem 1rem;font-weight:700;
font-size:1.15rem;margin:.5rem 0 1rem 0;letter-spacing:.02em}
.k2-header{border:1px solid #ccc;background:#f7f7f7;padding:.6rem 1rem;margin:.5rem 0 1rem 0;font-size:.92rem}
.k2-header dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:0}
.k2-header dt{font-weight:600}.k2-header dd{margin:0;overflow-wrap:anywhere}
.narrative{font-size:1rem;max-width:70rem}
.caveat{border-left:4px solid #8a6d00;background:#fffbea;padding:.4rem .8rem;margin:.8rem 0}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.88rem;color:#333}
table.k2t{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
table.k2t caption{caption-side:top;text-align:left;font-weight:700;padding:.3rem 0}
table.k2t th,table.k2t td{border-bottom:1px solid #ccc;padding:.2rem .5rem;text-align:left;vertical-align:top}
table.k2t thead th{border-bottom:2px solid #333;background:#f3f3f3;position:sticky;top:0}
table.k2t td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
p.note{font-size:.82rem;color:#333;margin:.15rem 0}
details{margin:.6rem 0}summary{cursor:pointer;font-weight:600}
.verdict-reproduced{background:#e3f2e7}.verdict-not_reproduced{background:#fde2e1}.verdict-not_evaluable{background:#eee}
.output_stderr{display:none}
pre{white-space:pre-wrap;font-size:.85rem}
.prompt{display:none}
""".strip()

_ONLINE_REFERENCE = re.compile(
    r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:|ftp:|//)"""
    r"""|url\(\s*["']?\s*(?:https?:|//)|@import|<script|<link\b""",
    re.IGNORECASE,
)


class OnlineReferenceError(ValueError):
    """An HTML page would load something from the network (or run a script)."""


def assert_offline(page: str, where: str = "page") -> None:
    """Raise OnlineReferenceError when the page references the network, imports CSS or has any script."""
    match = _ONLINE_REFERENCE.search(page)
    if match:
        start = max(match.start() - 60, 0)
        raise OnlineReferenceError(
            f"{where} references the network or runs a script: ...{page[start : match.end() + 60]}..."
        )


@functools.cache
def _html_exporter() -> Any:
    """One nbconvert exporter per process: it compiles its Jinja templates on first use and keeps them, which
    is most of the cost of exporting a small notebook."""
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="basic",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        anchor_link_text="",
    )


def notebook_html(notebook: Any, title: str) -> str:
    """Offline HTML of an executed notebook: outputs only (inputs hidden), inline CSS, no scripts.

    The page works from file:// without a network and is byte-identical for identical notebooks.
    """
    import nbformat

    node = nbformat.from_dict(notebook)
    node.get("metadata", {}).pop("widgets", None)
    body, _ = _html_exporter().from_notebook_node(node)
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{PAGE_CSS}\n</style>\n</head>\n<body>\n<main>\n"
        f"{body.strip()}\n</main>\n</body>\n</html>\n"
    )
    assert_offline(page, title)
    return page


# ----------------------------------------------------------------------------------------------------
# Versions
# ----------------------------------------------------------------------------------------------------
def content_hash(files: Mapping[str, bytes]) -> str:
    """sha256 over sorted (relative path, sha256 of content) pairs: the same files give the same hash."""
    lines = "".join(f"{name}\0{hashlib.sha256(data).hexdigest()}\n" for name, data in sorted(files.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def code_version(files: Mapping[str, bytes], package_version: str) -> str:
    """ "k2trial <version>, code <12 hex>": the library version and a hash of the code files' contents."""
    return f"k2trial {package_version}, code {content_hash(files)[:12]}"


# ----------------------------------------------------------------------------------------------------
# Helpers for the notebook templates (HTML strings; every data-derived text is escaped)
# ----------------------------------------------------------------------------------------------------
def header_html(
    study_title: str,
    reference: str,
    registry: str,
    dataset_name: str,
    dataset_version: str,
    simulated: bool,
    data_version: str | None,
    code_version_text: str,
    analysis_version: str | None = None,
) -> str:
    """The block every notebook starts with: SIMULATED banner (when simulated), study and versions."""
    rows = [
        ("Study", f"{study_title} ({registry})"),
        ("Publication", reference),
        ("Dataset", f"{dataset_name}, version {dataset_version}" + (" (simulated)" if simulated else "")),
        ("Data version", data_version or "unknown (no validation report)"),
        ("Code version", code_version_text),
    ]
    if analysis_version:
        rows.append(("Analysis version", analysis_version))
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in rows)
    banner = f'<div class="banner-simulated" role="alert">{html.escape(SIMULATED_BANNER)}</div>' if simulated else ""
    return f'{banner}<div class="k2-header"><dl>{items}</dl></div>'


def paragraph(text: str, css: str = "narrative") -> str:
    """One escaped paragraph of narrative."""
    return f'<p class="{html.escape(css, quote=True)}">{html.escape(text)}</p>'


def png_display_width(png: bytes) -> int | None:
    """CSS width (px at 96 per inch) at which a PNG shows at its intended size: pixel width from IHDR
    divided by the resolution of its pHYs chunk. None when the PNG carries no resolution."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    width = int.from_bytes(png[16:20], "big")
    position = 8
    while position + 8 <= len(png):
        length = int.from_bytes(png[position : position + 4], "big")
        kind = png[position + 4 : position + 8]
        if kind == b"pHYs" and png[position + 16] == 1:  # unit: metre
            per_metre = int.from_bytes(png[position + 8 : position + 12], "big")
            return round(width * 96 / (per_metre * 0.0254)) if per_metre else None
        if kind in (b"IDAT", b"IEND"):
            return None
        position += 12 + length
    return None


def figure_html(png: bytes, caption: str, alt: str | None = None) -> str:
    """A PNG as an inline data-URI <figure> with an escaped caption (no file reference in the page),
    shown at its intended size (`png_display_width`) or narrower on small screens."""
    data = base64.b64encode(png).decode("ascii")
    alt_text = html.escape(alt or caption, quote=True)
    width = png_display_width(png)
    size = f' width="{width}"' if width else ""
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{alt_text}"{size}>'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def details_html(summary: str, content_html: str, open_: bool = False) -> str:
    """A collapsible section (no script needed)."""
    state = " open" if open_ else ""
    return f"<details{state}><summary>{html.escape(summary)}</summary>{content_html}</details>"


def links_html(links: Iterable[tuple[str, str]]) -> str:
    """A list of relative links (href, text); hrefs are escaped and must not point to the network."""
    items = []
    for href, text in links:
        if re.match(r"^\s*(?:[a-z]+:|//)", href, re.IGNORECASE):
            raise OnlineReferenceError(f"link must be relative: {href}")
        items.append(f'<li><a href="{html.escape(href, quote=True)}">{html.escape(text)}</a></li>')
    return "<ul>" + "".join(items) + "</ul>"


def lookup(frame: Any, column: str, **criteria: Any) -> Any:
    """The single value of `column` in the row matching every criterion (None when no row matches).

    Raises ValueError when several rows match: narrative numbers must be unambiguous.
    """
    mask = None
    for key, value in criteria.items():
        current = frame[key].astype(str) == str(value)
        mask = current if mask is None else mask & current
    rows = frame[mask] if mask is not None else frame
    if len(rows) == 0:
        return None
    if len(rows) > 1:
        raise ValueError(f"{len(rows)} rows match {criteria} for column {column}")
    return rows[column].iloc[0]


def claims_table_html(claims: Any, evidence_base: str = "../") -> str:
    """The published-claims check (results/claims/claims.csv) as an escaped HTML table with verdict colours.

    Evidence that names a results artifact (for example efficacy/descriptives.csv, row 12) becomes a relative
    link; everything else is shown as text.
    """
    columns = ["claim_id", "source", "statement", "statistic", "expected", "observed", "status", "evidence"]
    present = [c for c in columns if c in claims.columns]
    head = "".join(f'<th scope="col">{html.escape(c.replace("_", " ").capitalize())}</th>' for c in present)
    body = []
    for row in claims[present].astype(object).where(claims[present].notna(), "").itertuples(index=False):
        record = dict(zip(present, row, strict=True))
        status = str(record.get("status", ""))
        cells = []
        for column in present:
            text = str(record[column])
            if column == "evidence":
                cells.append(f"<td>{_evidence_links(text, evidence_base)}</td>")
            else:
                cells.append(f"<td>{html.escape(text)}</td>")
        css = html.escape(f"verdict-{status}", quote=True)
        body.append(f'<tr class="{css}">' + "".join(cells) + "</tr>")
    return (
        '<table class="k2t" id="table-claims"><caption>Published claims and what the data show</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


_ARTIFACT = re.compile(r"(?<![\w/.])((?:results/)?[\w\-]+/[\w\-.]+\.(?:csv|json|html|md))")


def _evidence_links(text: str, base: str) -> str:
    parts = []
    last = 0
    for match in _ARTIFACT.finditer(text):
        parts.append(html.escape(text[last : match.start()]))
        target = match.group(1).removeprefix("results/")
        href = html.escape(base + target, quote=True)
        parts.append(f'<a href="{href}">{html.escape(match.group(1))}</a>')
        last = match.end()
    parts.append(html.escape(text[last:]))
    return "".join(parts)


def join_names(names: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def load_catalog(path: str | Path) -> dict[str, Any]:
    """The display tables of results/tables/catalog.json by name (as k2trial.report.tables.DisplayTable)."""
    import json

    from k2trial.report.tables import table_from_catalog

    with open(path, encoding="utf-8") as handle:
        entries = json.load(handle)["tables"]
    return {entry["name"]: table_from_catalog(entry) for entry in entries}


def table_html(catalog: Mapping[str, Any], name: str, collapsed: bool = False, max_rows: int | None = None) -> str:
    """A catalog table as escaped HTML; collapsed inside <details>; `max_rows` shows the first rows and says so."""
    from k2trial.report.tables import DisplayTable, to_html_fragment

    table = catalog[name]
    note = ""
    if max_rows is not None and len(table.frame) > max_rows:
        note = paragraph(
            f"First {max_rows} of {len(table.frame)} rows; the full table is results/tables/{name}.html.", "note"
        )
        table = DisplayTable(table.name, table.title, table.frame.head(max_rows), table.notes)
    fragment = to_html_fragment(table) + note
    return details_html(f"{table.title} ({len(catalog[name].frame)} rows)", fragment) if collapsed else fragment


def figure_file_html(path: str | Path, caption: str) -> str:
    """`figure_html` of a PNG file."""
    return figure_html(Path(path).read_bytes(), caption)


#: Attribute of the <img> a notebook emits for a figure; `embed_figures` replaces it with the PNG as a data URI.
#: Notebooks run before the figures exist (in parallel with drawing them) and get them embedded afterwards.
FIGURE_PLACEHOLDER = "data-k2-figure"
_PLACEHOLDER = re.compile(rf'<img {FIGURE_PLACEHOLDER}="([^"]*)"')


def figure_placeholder_html(path: str, caption: str, alt: str | None = None) -> str:
    """A <figure> whose image is the PNG at `path`, embedded later by `embed_figures`."""
    alt_text = html.escape(alt or caption, quote=True)
    return (
        f'<figure><img {FIGURE_PLACEHOLDER}="{html.escape(path, quote=True)}" alt="{alt_text}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def embed_figures(notebook: Any, pngs: Mapping[str, bytes]) -> Any:
    """A copy of the notebook whose figure placeholders carry their PNG as a data URI (with its display width).

    pngs: placeholder path -> PNG bytes. Raises KeyError naming a placeholder without a PNG.
    """
    nb = copy.deepcopy(notebook)

    def replace(match: re.Match[str]) -> str:
        path = html.unescape(match.group(1))
        if path not in pngs:
            raise KeyError(f"notebook shows figure {path!r}, which is not among the figures given")
        png = pngs[path]
        width = png_display_width(png)
        size = f' width="{width}"' if width else ""
        return f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"{size}'

    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/html" in data:
                text = data["text/html"]
                text = "".join(text) if isinstance(text, list) else text
                data["text/html"] = _PLACEHOLDER.sub(replace, text)
    return nb


def figure_placeholders(notebook: Any) -> list[str]:
    """Paths of the figures a notebook shows through placeholders, in order of appearance."""
    found = []
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/html", "")
            text = "".join(text) if isinstance(text, list) else text
            found += [html.unescape(m) for m in _PLACEHOLDER.findall(text)]
    return found


def p_text(p: Any, decimals: int = 3) -> str:
    """ "p < 0.001" or "p = 0.012" (rounded half up), "p not estimable" when missing."""
    from k2trial.report.tables import MISSING, format_p_value

    text = format_p_value(p, decimals)
    if text == MISSING:
        return "p not estimable"
    return f"p < {text[1:]}" if text.startswith("<") else f"p = {text}"


def version_info(code_files: Mapping[str, bytes], config: Mapping[str, Any], package_version: str) -> dict[str, str]:
    """code_version (library version and a hash of the code files outside config/) and analysis_version (the
    hash results/MANIFEST.json names: config, every code file's sha256 and the lock, k2trial.runtime.provenance).

    code_files: repository-relative path -> content of the workflow's code files (common.smk CODE_FILES).
    """
    from k2trial.runtime.provenance import analysis_version

    code_only = {name: data for name, data in code_files.items() if not name.startswith("config/")}
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(code_files.items())}
    lock = next((data for name, data in code_files.items() if name.endswith("requirements.lock")), None)
    lock_sha = hashlib.sha256(lock).hexdigest() if lock is not None else ""
    return {
        "code_version": code_version(code_only, package_version),
        "analysis_version": analysis_version(config, hashes, lock_sha),
    }
