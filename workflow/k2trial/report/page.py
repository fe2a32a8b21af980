"""The offline pages reviewers open (notebook HTML, results/index.html): the shared CSS, the check that a page
references nothing online and runs no script, and the HTML pieces every page is made of (the header with the
SIMULATED DATA banner, paragraphs, figures, collapsible sections, relative links). Every data-derived text is
escaped.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable

SIMULATED_BANNER = (
    "SIMULATED DATA: these results come from a simulated dataset calibrated to the publication, "
    "not from the trial's patients."
)


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
