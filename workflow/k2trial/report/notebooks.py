"""Reviewer notebooks: execution with papermill, normalisation for byte-identical reruns, figures embedded after
execution, offline HTML export and the version stamps of their headers. (What the templates call:
k2trial.report.notebook_view; the page pieces: k2trial.report.page.)

Notebooks are views over precomputed results: they read the analysis artifacts, the display-table catalog
(results/tables/catalog.json) and the PNG figures, and never recompute an analysis.

Determinism: after execution, `normalise_notebook` drops papermill's timings and paths and the per-cell
execution metadata, keeps the parameters, and numbers cell ids (cell-000, cell-001, ...). `notebook_html`
uses nbconvert's `basic` template (cells only) inside a page of our own with inline CSS: no require.js, no
MathJax or Mermaid from a CDN, no web fonts, no scripts at all; images are data URIs; DOM ids come from
the cell ids. `assert_offline` rejects any reference to the network.

papermill and nbconvert are imported inside the functions that need them.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import html
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from k2trial.core.errors import ConfigError
from k2trial.report.page import PAGE_CSS, assert_offline, png_display_width

#: Cell ids after normalisation: cell-000, cell-001, ... (valid nbformat 4.5 ids, stable across runs).
CELL_ID_FORMAT = "cell-{:03d}"
#: papermill notebook metadata kept after normalisation (everything else is timings, paths or versions).
KEPT_PAPERMILL_KEYS = ("parameters", "default_parameters")


# ----------------------------------------------------------------------------------------------------
# Execution and normalisation
# ----------------------------------------------------------------------------------------------------
#: Run in the shared kernel before every notebook but the first: a fresh user namespace, history and
#: execution counter (In[1] again), as a new kernel would give; imported modules stay loaded, which is the point.
RESET_KERNEL_CODE = "get_ipython().reset(new_session=True, aggressive=False)"


def execute_notebooks(
    templates: Mapping[str, str | Path | Any],
    parameters: Mapping[str, Mapping[str, Any]],
    cwd: str | Path,
    kernel_name: str = "python3",
    kernels: int = 1,
    finish: Callable[[str, Any], Any] | None = None,
    prepare: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run several templates on `kernels` kernels side by side (notebooks dealt round-robin, each kernel running
    its share one after the other) and return the executed notebooks by name, in the order of `templates`.

    finish(name, notebook), when given, runs in the kernel's thread as soon as that notebook has run, one call at
    a time (under a lock, so it need not be thread-safe), and what it returns takes the notebook's place in the
    result: normalising and rendering one notebook overlaps with the next one's cells.
    prepare(), when given, runs in this thread while the kernels start (they take most of a second to be ready)
    and before any finish: import and set up what finish needs (nbconvert) in time that is otherwise waiting.

    A kernel costs an interpreter start plus IPython and pandas imports (0.4 s of CPU); the cells of these
    view-only notebooks cost far less (0.13 s per notebook once the kernel has imported the view). One kernel
    per notebook wastes that CPU; one kernel reused for all four is as quick as two side by side (measured
    1.55 s for both on two cores) and spends 0.4 s less CPU, which the figures drawn meanwhile need: so one by
    default. Before each notebook but the first on a kernel, its namespace, history and execution counter
    are reset (RESET_KERNEL_CODE, sent silently so that it leaves no trace), so every executed notebook is
    what a fresh kernel would give: nothing a notebook defines is visible to the next, and execution counts
    start at 1. Module state survives a reset, so templates must not change process-wide settings (pandas
    options, the working directory).

    Kernels talk over Unix sockets in private temporary folders rather than TCP ports: kernels started at the
    same moment cannot pick the same port, and nothing listens on the network. Every module papermill imports
    lazily while injecting parameters (black formats the injected cell) is imported here first: a module
    imported by two threads at once can be seen half-initialised, which would make the injected cell's
    formatting, and so the notebook's bytes, depend on thread timing; so is every module a papermill run imports
    lazily later (IPython, ipykernel.kernelspec, pygments), as `prepare` may import the same ones meanwhile.
    Raises papermill's PapermillExecutionError, naming the failing cell, when a cell fails.
    """
    import tempfile
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import ipykernel.kernelspec  # noqa: F401
    import IPython  # noqa: F401  (imported by every papermill run, lazily: here first, see above)
    import papermill
    import pygments.token  # noqa: F401
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync
    from papermill.translators import PythonTranslator

    PythonTranslator.codify({"warm_up": 1})  # imports black (when installed) once, in this thread
    client_class = _prompt_ready_client_class()

    async def reset(manager: AsyncKernelManager) -> None:
        # The kernel is running (it has just run a notebook): a request on the shell channel is queued until the
        # socket connects, and its reply comes once the reset is done. No iopub channel, so no wait for it to
        # connect and drain (wait_for_ready spends 0.2 s there): a silent execution publishes nothing of use.
        client = manager.client()
        client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        try:
            msg_id = client.execute(RESET_KERNEL_CODE, silent=True, store_history=False)
            while True:
                reply = await client.get_shell_msg(timeout=60)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"resetting the notebook kernel failed: {reply['content']}")
        finally:
            client.stop_channels()

    def run_on_one_kernel(names: Sequence[str]) -> dict[str, Any]:
        executed = {}
        with tempfile.TemporaryDirectory(prefix="k2k-") as sockets:
            manager = AsyncKernelManager(kernel_name=kernel_name, transport="ipc", ip=os.path.join(sockets, "kernel"))
            manager.client_factory = client_class  # the clients papermill makes too
            run_sync(manager.start_kernel)(cwd=str(cwd))
            try:
                for index, name in enumerate(names):
                    if index:
                        run_sync(reset)(manager)
                    template = templates[name]  # a path, or a notebook (specialise_template)
                    notebook = papermill.execute_notebook(
                        template if isinstance(template, Mapping) else str(template),
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
                    if finish is not None:
                        with lock:
                            notebook = finish(name, notebook)
                    executed[name] = notebook
            finally:
                run_sync(manager.shutdown_kernel)(now=True)
        return executed

    names = list(templates)
    shares = [share for share in (names[k :: max(kernels, 1)] for k in range(max(kernels, 1))) if share]
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=max(len(shares), 1)) as pool:
        with lock:
            futures = [pool.submit(run_on_one_kernel, share) for share in shares]
            if prepare is not None:
                prepare()
        results = [future.result() for future in futures]
    merged = {name: notebook for result in results for name, notebook in result.items()}
    return {name: merged[name] for name in names}


def _prompt_ready_client_class() -> type:
    """jupyter_client's AsyncKernelClient whose wait_for_ready returns as soon as the kernel is ready.

    papermill (nbclient) waits for every notebook's client to be ready: a kernel_info reply on the shell channel and
    a message on iopub (the channel is connected), as jupyter_client does; jupyter_client then drains iopub until
    it has been silent for 0.2 s, a fixed 0.2 s per notebook. Here the drain ends when the kernel reports idle after
    that kernel_info request (the last message it causes), or after the same 0.2 s of silence when that report
    was the message already read. Stale status messages would be harmless anyway: nbclient reads only the messages
    of its own requests.
    """
    import time
    from queue import Empty

    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.utils import ensure_async

    def is_idle_after(msg: dict[str, Any], msg_id: str) -> bool:
        return (
            msg.get("msg_type") == "status"
            and msg.get("content", {}).get("execution_state") == "idle"
            and msg.get("parent_header", {}).get("msg_id") == msg_id
        )

    class PromptReadyKernelClient(AsyncKernelClient):
        async def wait_for_ready(self, timeout: float | None = None) -> None:
            abs_timeout = time.time() + (float("inf") if timeout is None else timeout)
            while True:  # as jupyter_client: a kernel_info reply on shell, then any message on iopub
                self.kernel_info()
                try:
                    msg = await ensure_async(self.shell_channel.get_msg(timeout=1))
                except Empty:
                    pass
                else:
                    if msg["msg_type"] == "kernel_info_reply":
                        try:
                            first = await ensure_async(self.iopub_channel.get_msg(timeout=0.2))
                        except Empty:
                            pass
                        else:
                            self._handle_kernel_info_reply(msg)
                            request = msg["parent_header"].get("msg_id", "")
                            break
                if not await self._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.time() > abs_timeout:
                    raise RuntimeError(f"Kernel didn't respond in {timeout} seconds")
            done = is_idle_after(first, request)
            while not done:
                try:
                    done = is_idle_after(await ensure_async(self.iopub_channel.get_msg(timeout=0.2)), request)
                except Empty:
                    break

    return PromptReadyKernelClient


#: Template cells for one design only, by tag: removed (with the tag) from the other design's notebooks, so that a
#: sentence such as "open-label, single-arm" is never shown for a randomised study.
DESIGN_TAGS = {"only-single-arm": False, "only-randomised": True}
#: Template cells whose `{placeholder}`s are the protocol's words (k2trial.core.vocabulary.protocol_words, as the
#: registry's titles and captions): "over {diary_weeks_in_words} weeks", "change at {end_of_treatment}".
PROTOCOL_TEXT_TAG = "protocol-text"
#: Template cells that show the diary or what is derived from it (participant flow, severity groups): removed from
#: the notebooks of a safety-only study, which has no diary.
DIARY_TAG = "only-diary"
TEMPLATE_TAGS = (*DESIGN_TAGS, PROTOCOL_TEXT_TAG, DIARY_TAG)


def specialise_template(path: str | Path, *, randomised: bool, words: Mapping[str, str], diary: bool = True) -> Any:
    """The template at `path` for one study: cells tagged for the other design dropped, and with `diary` False
    (a safety-only study) the cells tagged only-diary, protocol-text cells filled with `words`, and these tags
    removed (a cell left without tags has none, so a template whose cells carry none of them reads exactly as the
    file)."""
    import nbformat

    from k2trial.core.vocabulary import fill_words

    notebook = nbformat.read(str(path), as_version=4)
    cells = []
    for cell in notebook.cells:
        tags = list(cell.get("metadata", {}).get("tags", []))
        designs = [DESIGN_TAGS[t] for t in tags if t in DESIGN_TAGS]
        if (designs and randomised not in designs) or (DIARY_TAG in tags and not diary):
            continue
        if PROTOCOL_TEXT_TAG in tags:
            cell.source = fill_words(cell.source, words)
        kept = [t for t in tags if t not in TEMPLATE_TAGS]
        if kept:
            cell.metadata["tags"] = kept
        else:
            cell.metadata.pop("tags", None)
        cells.append(cell)
    notebook.cells = cells
    return notebook


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


def prepare_html_export() -> None:
    """Import nbconvert and compile the exporter's templates now (by rendering an empty notebook), so that the
    first `notebook_html` costs no more than the others (execute_notebooks runs this while its kernels start)."""
    import nbformat

    _html_exporter().from_notebook_node(nbformat.v4.new_notebook())


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
    return _hash_of_hashes({name: hashlib.sha256(data).hexdigest() for name, data in files.items()})


def _hash_of_hashes(hashes: Mapping[str, str]) -> str:
    lines = "".join(f"{name}\0{digest}\n" for name, digest in sorted(hashes.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def code_version(files: Mapping[str, bytes], package_version: str) -> str:
    """ "k2trial <version>, code <12 hex>": the library version and a hash of the code files' contents."""
    return f"k2trial {package_version}, code {content_hash(files)[:12]}"


# ----------------------------------------------------------------------------------------------------
# Figures, embedded after execution
# ----------------------------------------------------------------------------------------------------
#: Attribute of the <img> a notebook emits for a figure; `embed_figures` replaces it with the PNG as a data URI.
#: Notebooks run before the figures exist (in parallel with drawing them) and get them embedded afterwards.
FIGURE_PLACEHOLDER = "data-k2-figure"
_PLACEHOLDER = re.compile(rf'<img {FIGURE_PLACEHOLDER}="([^"]*)"')


def _figure_attributes(path: str, pngs: Mapping[str, bytes]) -> str:
    """`src="data:image/png;base64,..." width="W"`: the attributes that replace a figure placeholder."""
    if path not in pngs:
        raise ConfigError(f"notebook shows figure {path!r}, which is not among the figures of the registry")
    png = pngs[path]
    width = png_display_width(png)
    size = f' width="{width}"' if width else ""
    return f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"{size}'


def embed_figures(notebook: Any, pngs: Mapping[str, bytes]) -> Any:
    """A copy of the notebook whose figure placeholders carry their PNG as a data URI (with its display width).

    pngs: placeholder path -> PNG bytes. Raises ConfigError naming a placeholder without a PNG.
    """
    nb = copy.deepcopy(notebook)

    def replace(match: re.Match[str]) -> str:
        return f"<img {_figure_attributes(html.unescape(match.group(1)), pngs)}"

    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/html" in data:
                text = data["text/html"]
                text = "".join(text) if isinstance(text, list) else text
                data["text/html"] = _PLACEHOLDER.sub(replace, text)
    return nb


#: A figure placeholder as nbconvert writes it into the page: its HTML goes through BeautifulSoup, which sorts
#: attributes (alt, data-k2-figure), quotes a value holding a double quote with single quotes and closes void
#: elements (k2trial.report.notebook_view.figure_placeholder_html makes the tag).
_PAGE_PLACEHOLDER = re.compile(rf"""<img alt=("[^"]*"|'[^']*') {FIGURE_PLACEHOLDER}="([^"]*)"/>""")


def embed_figures_in_page(page: str, pngs: Mapping[str, bytes], title: str = "page") -> str:
    """The offline HTML of a notebook (`notebook_html`) rendered with figure placeholders, with the PNGs embedded:
    the same bytes as `notebook_html(embed_figures(notebook, pngs), title)`, without running nbconvert again.

    nbconvert passes a figure's <img> through BeautifulSoup, which writes attributes in sorted order; `alt`, then
    `src` and `width` in place of the placeholder keep that order, so the page is what rendering the embedded
    notebook gives. A placeholder in any other form raises ConfigError rather than give different bytes.
    """

    def replace(match: re.Match[str]) -> str:
        return f"<img alt={match.group(1)} {_figure_attributes(html.unescape(match.group(2)), pngs)}/>"

    # The page is checked before the PNGs go in (a scan of the embedded page reads megabytes of base64); what goes
    # in is data URIs only, so the embedded page is offline when the page is.
    assert_offline(page, title)
    embedded = _PAGE_PLACEHOLDER.sub(replace, page)
    if FIGURE_PLACEHOLDER in embedded:
        raise ConfigError(f"{title}: a figure placeholder not in the form <img alt=... {FIGURE_PLACEHOLDER}=.../>")
    return embedded


def figure_placeholders(notebook: Any) -> list[str]:
    """Paths of the figures a notebook shows through placeholders, in order of appearance."""
    found = []
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/html", "")
            text = "".join(text) if isinstance(text, list) else text
            found += [html.unescape(m) for m in _PLACEHOLDER.findall(text)]
    return found


def version_info(code_files: Mapping[str, bytes], config: Mapping[str, Any], package_version: str) -> dict[str, str]:
    """code_version (library version and a hash of the code files outside config/) and analysis_version (the
    hash results/MANIFEST.json names: config, every code file's sha256 and the lock, k2trial.runtime.provenance).

    code_files: repository-relative path -> content of the workflow's code files (common.smk CODE_FILES).
    """
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in code_files.items()}
    return version_info_from_hashes(hashes, config, package_version)


def version_info_from_hashes(
    code_hashes: Mapping[str, str], config: Mapping[str, Any], package_version: str
) -> dict[str, str]:
    """`version_info` from the sha256 of each code file (common.smk CODE_HASHES, a parameter of the rules that
    state the versions) rather than their contents: the same versions."""
    from k2trial.runtime.provenance import analysis_version

    hashes = dict(sorted(code_hashes.items()))
    code_only = {name: digest for name, digest in hashes.items() if not name.startswith("config/")}
    lock_sha = next((digest for name, digest in hashes.items() if name.endswith("requirements.lock")), "")
    return {
        "code_version": f"k2trial {package_version}, code {_hash_of_hashes(code_only)[:12]}",
        "analysis_version": analysis_version(config, hashes, lock_sha),
    }
