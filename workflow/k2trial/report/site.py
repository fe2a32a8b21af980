"""results/index.html: one offline page linking every notebook, figure, table and ADaM dataset, each file with the
rule that produced it, its size and its sha256, under the same header (and SIMULATED DATA banner) as the notebooks.

Pure functions: the script gives the artifacts (paths relative to the page, hashes, producing rules, titles and
order from the registry of reporting outputs, workflow/report/registry.yaml) and the header; the page has inline
CSS, no scripts and no network references, and its bytes depend only on them.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from k2trial.report.page import PAGE_CSS, assert_offline

SECTIONS = ("Notebooks", "Figures", "Tables", "ADaM")
#: File kinds by suffix, in the order files of one item are listed.
KINDS = {
    ".html": "HTML",
    ".ipynb": "Notebook (.ipynb)",
    ".yaml": "Parameters (YAML)",
    ".png": "PNG",
    ".svg": "SVG",
    ".csv": "CSV",
    ".tex": "LaTeX",
    ".xpt": "SAS transport (XPT v5)",
    ".json": "JSON",
}


@dataclass(frozen=True)
class Artifact:
    """One file of the index. path: relative to the index page, POSIX separators; size in bytes."""

    section: str
    item: str
    title: str
    path: str
    rule: str
    sha256: str
    size: int

    @property
    def kind(self) -> str:
        suffix = PurePosixPath(self.path).suffix
        if self.path.endswith(".parameters.yaml"):
            return KINDS[".yaml"]
        return KINDS.get(suffix, suffix.lstrip(".").upper() or "file")


def item_name(path: str) -> str:
    """The item a file belongs to: its name without suffixes (efficacy.parameters.yaml -> efficacy)."""
    return PurePosixPath(path).name.split(".", 1)[0]


def section_of(path: str) -> str | None:
    """Notebooks, Figures, Tables or ADaM from the folder of a results path; None for anything else."""
    parts = PurePosixPath(path).parts
    folder = parts[-2] if len(parts) >= 2 else ""
    return {"notebooks": "Notebooks", "figures": "Figures", "tables": "Tables", "adam": "ADaM"}.get(folder)


def adam_titles(define: Mapping) -> dict[str, str]:
    """Index titles of the ADaM delivery from its define.json, in its order: each dataset ("ADSL: Subject-Level
    Analysis Dataset", item adsl) and the metadata file itself (item define)."""
    titles = {d["name"].lower(): f"{d['name']}: {d['label']}" for d in define["datasets"]}
    titles["define"] = f"define.json: {define['metadata']}"
    return titles


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024 / 1024:.1f} MiB"


def _ordered(artifacts: Iterable[Artifact], item_order: Mapping[str, Sequence[str]]) -> list[Artifact]:
    kind_rank = {kind: i for i, kind in enumerate(KINDS.values())}

    def key(a: Artifact) -> tuple:
        order = list(item_order.get(a.section, ()))
        rank = order.index(a.item) if a.item in order else len(order)
        return (SECTIONS.index(a.section), rank, a.item, kind_rank.get(a.kind, 99), a.path)

    return sorted(artifacts, key=key)


def index_html(
    artifacts: Iterable[Artifact],
    header_html: str,
    title: str,
    item_order: Mapping[str, Sequence[str]] | None = None,
    skipped: Sequence[str] = (),
) -> str:
    """The index page. header_html is trusted markup (k2trial.report.notebooks.header_html escapes its values);
    every artifact field is escaped here. Figures show a thumbnail loaded from the PNG beside the page. skipped:
    the stages this build does not run, each with its reason (a safety-only study: efficacy), stated first."""
    rows = _ordered(artifacts, item_order or {})
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f"<title>{html.escape(title)}</title>\n<style>\n{PAGE_CSS}\n{INDEX_CSS}\n</style>\n</head>\n<body>\n<main>\n",
        f"<h1>{html.escape(title)}</h1>\n{header_html}\n",
        '<nav><ul class="toc">'
        + "".join(f'<li><a href="#{s.lower()}">{s}</a></li>' for s in SECTIONS if any(a.section == s for a in rows))
        + "</ul></nav>\n",
        *(f'<p class="skipped"><strong>Not in this build:</strong> {html.escape(reason)}.</p>\n' for reason in skipped),
    ]
    for section in SECTIONS:
        members = [a for a in rows if a.section == section]
        if not members:
            continue
        parts.append(f'<h2 id="{section.lower()}">{section}</h2>\n')
        parts.append(
            '<table class="k2t index"><thead><tr><th scope="col">Item</th><th scope="col">File</th>'
            '<th scope="col">Rule</th><th scope="col">Size</th><th scope="col">sha256</th></tr></thead><tbody>\n'
        )
        items: dict[str, list[Artifact]] = {}
        for artifact in members:
            items.setdefault(artifact.item, []).append(artifact)
        for item, files in items.items():
            parts.append(_item_rows(item, files))
        parts.append("</tbody></table>\n")
    parts.append("</main>\n</body>\n</html>\n")
    page = "".join(parts)
    assert_offline(page, "results/index.html")
    return page


INDEX_CSS = """
table.index td.sha{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.72rem;
word-break:break-all}
table.index td.item{min-width:14rem}table.index img{display:block;width:180px;margin-top:.3rem;border:1px solid #ddd}
ul.toc{display:flex;gap:1.5rem;list-style:none;padding:0}
""".strip()


def _item_rows(item: str, files: Sequence[Artifact]) -> str:
    first = files[0]
    thumbnail = next((f for f in files if f.kind == "PNG"), None)
    image = ""
    if thumbnail is not None:
        src = html.escape(thumbnail.path, quote=True)
        image = f'<img src="{src}" alt="{html.escape(first.title, quote=True)}" loading="eager">'
    primary = next((f for f in files if f.kind == "HTML"), thumbnail or first)
    heading = f'<a href="{html.escape(primary.path, quote=True)}">{html.escape(first.title)}</a>'
    cells = []
    for i, artifact in enumerate(files):
        lead = ""
        if i == 0:
            lead = f'<td class="item" rowspan="{len(files)}">{heading}{image}</td>'
        cells.append(
            f"<tr>{lead}"
            f'<td><a href="{html.escape(artifact.path, quote=True)}">{html.escape(artifact.kind)}</a></td>'
            f"<td><code>{html.escape(artifact.rule)}</code></td>"
            f'<td class="num">{html.escape(_size(artifact.size))}</td>'
            f'<td class="sha">{html.escape(artifact.sha256)}</td></tr>\n'
        )
    return "".join(cells)
