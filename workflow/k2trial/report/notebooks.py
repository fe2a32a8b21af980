"""Reviewer notebooks: execution with papermill in this process (no Jupyter kernel), normalisation for
byte-identical reruns, figures embedded after execution, offline HTML export and the version stamps of their
headers. (What the templates call: k2trial.report.notebook_view; the page pieces: k2trial.report.page.)

Notebooks are views over precomputed results: they read the analysis artifacts, the display-table catalog
(results/tables/catalog.json) and the PNG figures, and never recompute an analysis.

Determinism: after execution, `normalise_notebook` drops papermill's timings and paths and the per-cell
execution metadata, keeps the parameters, and numbers cell ids (cell-000, cell-001, ...). `notebook_html`
uses nbconvert's `basic` template (cells only) inside a page of our own with inline CSS: no require.js, no
MathJax or Mermaid from a CDN, no web fonts, no scripts at all; images are data URIs; DOM ids come from
the cell ids. `assert_offline` rejects any reference to the network.

papermill, IPython and nbconvert are imported inside the functions that need them.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import html
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from k2trial.core.errors import ConfigError
from k2trial.report.page import PAGE_CSS, assert_offline, png_display_width

#: Cell ids after normalisation: cell-000, cell-001, ... (valid nbformat 4.5 ids, stable across runs).
CELL_ID_FORMAT = "cell-{:03d}"
#: papermill notebook metadata kept after normalisation (everything else is timings, paths or versions).
KEPT_PAPERMILL_KEYS = ("parameters", "default_parameters")


# ----------------------------------------------------------------------------------------------------
# Execution (in this process, through papermill's engine extension point) and normalisation
# ----------------------------------------------------------------------------------------------------
#: The papermill engine that runs notebooks in the calling process (`InProcessEngine`, registered under this name).
ENGINE_NAME = "k2trial-in-process"
#: The kernel name papermill's parameters translator goes by (its Python translator, as for a python3 kernel).
KERNEL_NAME = "python3"
#: The cell tag nbclient skips (papermill fails a notebook on any error output, so no error is tolerated).
SKIP_TAG = "skip-execution"


def language_info() -> dict[str, Any]:
    """The notebook's metadata.language_info, as ipykernel's kernel_info reply states it for this interpreter
    (ipykernel.ipkernel.IPythonKernel.language_info; the engine test compares it with a real kernel's)."""
    import sys

    return {
        "name": "python",
        "version": sys.version.split()[0],
        "mimetype": "text/x-python",
        "codemirror_mode": {"name": "ipython", "version": sys.version_info[0]},
        "pygments_lexer": "ipython3",
        "nbconvert_exporter": "python",
        "file_extension": ".py",
    }


def execute_notebooks(
    templates: Mapping[str, str | Path | Any], parameters: Mapping[str, Mapping[str, Any]], cwd: str | Path
) -> dict[str, Any]:
    """Run the templates one after the other in this process, each with its parameters injected by papermill
    (engine ENGINE_NAME, working directory `cwd`), and return the executed notebooks by name, in order.

    templates: name -> a path or a notebook (specialise_template). Raises papermill's PapermillExecutionError,
    naming the failing cell, when a cell fails.

    No Jupyter kernel: a kernel cost an interpreter start plus IPython and pandas imports (0.4 s of CPU, most of
    a second of wall time) for cells that take 0.13 s per notebook. Each notebook runs in a new IPython shell
    (InProcessEngine), and is what a fresh kernel would give: the same injected cell and papermill metadata, the
    same output dicts (display_data with text/plain and text/html, execute_result, stream, error), execution
    counts from 1, metadata.language_info as ipykernel states it.

    What the notebooks share with each other and with the caller: the imported modules and their state (pandas
    options, matplotlib settings, caches), so templates must not change process-wide settings (notebooks are
    views). What they do not share: the user namespace (a new `__main__` per notebook), the input history and
    execution counter, the working directory (papermill changes to `cwd` for each notebook and changes back),
    sys.stdout and sys.stderr (captured as the cell's stream outputs while it runs) and the displayhook.
    """
    import papermill

    register_engine()
    executed = {}
    for name, template in templates.items():
        executed[name] = papermill.execute_notebook(
            template if isinstance(template, Mapping) else str(template),
            None,
            parameters=dict(parameters[name]),
            engine_name=ENGINE_NAME,
            kernel_name=KERNEL_NAME,
            language="python",
            cwd=str(cwd),
            progress_bar=False,
            log_output=False,
            request_save_on_cell_execute=False,
        )
    return executed


def register_engine() -> None:
    """Register InProcessEngine with papermill under ENGINE_NAME (again is harmless)."""
    from papermill.engines import papermill_engines

    papermill_engines.register(ENGINE_NAME, _in_process_engine())


@functools.cache
def _in_process_engine() -> type:
    """InProcessEngine and the IPython shell it runs cells in, defined on first use (IPython and papermill are
    imported only by a process that runs notebooks)."""
    import atexit
    import builtins
    import contextlib
    import io
    import sys
    import warnings

    from ipykernel.compiler import XCachingCompiler
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from jupyter_client.session import json_packer, json_unpacker
    from nbformat.v4 import output_from_msg
    from papermill.engines import Engine
    from traitlets import Type
    from traitlets.config import Config

    class OutputRecorder:
        """The outputs of the running cell, as nbclient records the kernel's iopub messages: each message's
        content goes through the wire's JSON (jupyter_client's packer) and nbformat's output_from_msg;
        clear_output and display updates as nbclient applies them."""

        def __init__(self) -> None:
            self.outputs: list[Any] = []
            self.clear_before_next = False
            self.displays: dict[str, list[Any]] = {}  # display_id -> the outputs it shows, in this notebook

        def start_cell(self) -> list[Any]:
            self.outputs, self.clear_before_next = [], False
            return self.outputs

        def emit(self, msg_type: str, content: Mapping[str, Any]) -> None:
            content = json_unpacker(json_packer(content))
            display_id = (content.pop("transient", None) or {}).get("display_id")
            if msg_type == "update_display_data":
                for shown in self.displays.get(display_id, []):
                    shown["data"], shown["metadata"] = content["data"], content["metadata"]
                return
            output = output_from_msg({"header": {"msg_type": msg_type}, "content": content})
            if self.clear_before_next:
                self.outputs.clear()
                self.clear_before_next = False
            if display_id:
                self.displays.setdefault(display_id, []).append(output)
            self.outputs.append(output)

        def clear(self, wait: bool) -> None:
            if wait:
                self.clear_before_next = True
            else:
                self.outputs.clear()

    class StreamRecorder(io.TextIOBase):
        """sys.stdout or sys.stderr while a cell runs: text is buffered and becomes one stream output when
        flushed, as ipykernel's OutStream flushes before every display, result and traceback and at the end of
        the cell (stdout first)."""

        def __init__(self, name: str, recorder: OutputRecorder) -> None:
            super().__init__()
            self.name, self.recorder, self.buffer_parts = name, recorder, []

        @property
        def encoding(self) -> str:
            return "utf-8"

        def writable(self) -> bool:
            return True

        def isatty(self) -> bool:
            return False

        def write(self, text: str) -> int:
            if not isinstance(text, str):
                raise TypeError(f"write() argument must be str, not {type(text).__name__}")
            self.buffer_parts.append(text)
            return len(text)

        def flush(self) -> None:
            text = "".join(self.buffer_parts)
            self.buffer_parts.clear()
            if text:
                self.recorder.emit("stream", {"name": self.name, "text": text})

    def flush_streams() -> None:
        sys.stdout.flush()
        sys.stderr.flush()

    class RecordingDisplayPublisher(DisplayPublisher):
        """display(): a display_data output (ipykernel's ZMQDisplayPublisher, without the socket)."""

        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs) -> None:
            flush_streams()
            self._validate_data(data, metadata)
            content = {"data": data, "metadata": metadata or {}, "transient": transient or {}}
            self.shell.recorder.emit("update_display_data" if update else "display_data", content)

        def clear_output(self, wait: bool = False) -> None:
            flush_streams()
            self.shell.recorder.clear(wait)

    class RecordingDisplayHook(DisplayHook):
        """A cell's last expression: an execute_result output with its execution count (ipykernel's
        ZMQShellDisplayHook, without the socket); nothing is printed."""

        def start_displayhook(self) -> None:
            self.content = {"data": {}, "metadata": {}}

        def write_output_prompt(self) -> None:
            self.content["execution_count"] = self.prompt_count

        def write_format_data(self, format_dict, md_dict=None) -> None:
            self.content["data"], self.content["metadata"] = format_dict, md_dict

        def finish_displayhook(self) -> None:
            flush_streams()
            if self.content["data"]:
                self.shell.recorder.emit("execute_result", self.content)
            self.content = {"data": {}, "metadata": {}}

    class ZMQLikeNotebookShell(InteractiveShell):
        """An IPython shell whose displays, results, streams and tracebacks become the running cell's outputs.

        "ZMQ" in the name because libraries ask whether they run under a notebook frontend by the shell's type:
        pandas formats as for a notebook when "zmq" is in it (pandas.io.formats.console.in_ipython_frontend: a
        Categorical's repr is not wrapped at the terminal width), as it does under ipykernel's ZMQInteractiveShell.
        """

        display_pub_class = Type(RecordingDisplayPublisher)
        displayhook_class = Type(RecordingDisplayHook)
        # cells compiled under ipykernel's file names (a hash of the cell's code), which a SyntaxError quotes
        compiler_class = Type(XCachingCompiler)

        def __init__(self, **kwargs: Any) -> None:
            self.recorder = OutputRecorder()
            super().__init__(**kwargs)

        def _showtraceback(self, etype, evalue, stb) -> None:
            flush_streams()
            self.recorder.emit("error", {"traceback": stb, "ename": str(etype.__name__), "evalue": str(evalue)})

        def run_notebook_cell(self, cell: Any) -> bool:
            """Run a code cell as a kernel does for nbclient (history stored): its outputs and execution count
            are set on the cell. True when the cell raised."""
            cell.execution_count = self.execution_count
            cell.outputs = self.recorder.start_cell()
            streams = [StreamRecorder(name, self.recorder) for name in ("stdout", "stderr")]
            with contextlib.redirect_stdout(streams[0]), contextlib.redirect_stderr(streams[1]):
                try:
                    result = self.run_cell(cell.source, store_history=True)
                finally:
                    flush_streams()
            return not result.success

    @contextlib.contextmanager
    def fresh_shell() -> Any:
        """A new ZMQLikeNotebookShell for one notebook (history in memory, execution count 1), and afterwards the
        process as it was: the shell is IPython's singleton only meanwhile, and what creating one changes
        process-wide (sys.modules["__main__"], builtins __IPYTHON__ and display, sys.ps1-3, warning filters, the
        exit handler) is put back."""
        if InteractiveShell.initialized():
            raise RuntimeError("notebooks cannot run in-process under another IPython shell")
        names = ("__IPYTHON__", "display")
        kept_builtins = {name: vars(builtins)[name] for name in names if name in vars(builtins)}
        prompts = {name: getattr(sys, name) for name in ("ps1", "ps2", "ps3") if hasattr(sys, name)}
        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        with warnings.catch_warnings():
            shell = ZMQLikeNotebookShell.instance(config=config)
            try:
                yield shell
            finally:
                atexit.unregister(shell.atexit_operations)
                shell.history_manager.end_session()
                shell.history_manager.close()
                shell.restore_sys_module_state()
                ZMQLikeNotebookShell.clear_instance()
                for name in names:
                    if name in kept_builtins:
                        setattr(builtins, name, kept_builtins[name])
                    else:
                        vars(builtins).pop(name, None)
                for name in ("ps1", "ps2", "ps3"):
                    if name in prompts:
                        setattr(sys, name, prompts[name])
                    elif hasattr(sys, name):
                        delattr(sys, name)

    class InProcessEngine(Engine):
        """A papermill engine that runs a notebook's cells in this process, in a new IPython shell, instead of
        sending them to a Jupyter kernel: what ipykernel and nbclient would record, without a kernel.

        papermill still loads the notebook, injects the parameters cell, records per-cell status and timings
        (NotebookExecutionManager) and raises PapermillExecutionError for a failed cell; here cells run in turn
        as PapermillNotebookClient runs them (markdown, empty and skip-execution cells are not run; a cell's
        error stops the notebook).
        """

        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
            nb = nb_man.nb
            with fresh_shell() as shell:
                for index, cell in enumerate(nb.cells):
                    try:
                        nb_man.cell_start(cell, index)
                        tags = cell.metadata.get("tags", [])
                        if cell.cell_type != "code" or not cell.source.strip() or SKIP_TAG in tags:
                            continue
                        if shell.run_notebook_cell(cell):
                            nb_man.cell_exception(cell, cell_index=index)
                            break
                    finally:
                        nb_man.cell_complete(cell, cell_index=index)
            nb.metadata["language_info"] = language_info()
            return nb

    return InProcessEngine


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
