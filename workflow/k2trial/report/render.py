"""Renderers of display tables: self-contained HTML (inline CSS, no scripts), LaTeX (booktabs longtable), the CSV
frame and the JSON catalog the notebooks read. A `DisplayTable` holds text only, so the CSV, HTML and LaTeX versions
show the same cells. All text that reaches HTML is escaped with html.escape (subject IDs, adverse-event terms and
comments come from data) and all text that reaches LaTeX with `latex_escape`. Nothing here reads or writes files.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from k2trial.report.formatting import MISSING


@dataclass(frozen=True)
class DisplayTable:
    """A table ready for display: every cell is text, columns are in display order.

    name: file stem under results/tables/; title: one line; notes: footnotes (denominators, methods).
    """

    name: str
    title: str
    frame: pd.DataFrame
    notes: tuple[str, ...] = field(default_factory=tuple)


def text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text (missing as MISSING), index reset."""
    return frame.astype(object).where(frame.notna(), MISSING).astype(str).reset_index(drop=True)


def empty_note_table(name: str, title: str, columns: Sequence[str], message: str) -> DisplayTable:
    """A table with the expected columns and one row saying why it is empty (for example no adverse events)."""
    row = {column: "" for column in columns}
    row[columns[0]] = message
    return DisplayTable(name, title, pd.DataFrame([row], columns=list(columns)), (message,))


# ----------------------------------------------------------------------------------------------------
# Renderers
# ----------------------------------------------------------------------------------------------------
TABLE_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:1.5rem;color:#111}
.banner-simulated{background:#fff3cd;border:3px solid #8a6d00;color:#3d3000;padding:.6rem 1rem;font-weight:700;
font-size:1.1rem;margin:0 0 1rem 0;letter-spacing:.02em}
table.k2t{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}
table.k2t caption{caption-side:top;text-align:left;font-weight:700;padding:.3rem 0}
table.k2t th,table.k2t td{border-bottom:1px solid #ccc;padding:.25rem .6rem;text-align:left;vertical-align:top}
table.k2t thead th{border-bottom:2px solid #333;background:#f3f3f3}
table.k2t td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
p.note{font-size:.85rem;color:#333;margin:.2rem 0}
""".strip()

#: A cell that reads as a number (right-aligned): "12", "-0.35", "<0.001", "12 (40.0%)", "1.2 (0.3 to 2.0)",
#: "3.1 to 9.5", "12 / 30 (40.0%)".
_NUMERIC_CELL = re.compile(r"^[<\u2265\u2264]?-?\d[\d.,]*%?( \(.*\)| to -?\d[\d.,]*| / \d+( \(.*\))?)?$")


def to_html_fragment(table: DisplayTable, table_id: str | None = None) -> str:
    """The table as an HTML <table> (plus notes) with every header and cell escaped; ids are deterministic."""
    ident = html.escape(table_id or f"table-{table.name}", quote=True)
    head = "".join(f'<th scope="col">{html.escape(str(c))}</th>' for c in table.frame.columns)
    body_rows = []
    for row in table.frame.itertuples(index=False, name=None):
        cells = []
        for value in row:
            text = str(value)
            css = ' class="num"' if _NUMERIC_CELL.match(text) else ""
            cells.append(f"<td{css}>{html.escape(text)}</td>")
        body_rows.append("<tr>" + "".join(cells) + "</tr>")
    notes = "".join(f'<p class="note">{html.escape(note)}</p>' for note in table.notes)
    return (
        f'<table class="k2t" id="{ident}"><caption>{html.escape(table.title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body_rows)}</tbody></table>{notes}"
    )


def to_html_document(table: DisplayTable, *, simulated: bool = False, subtitle: str = "") -> str:
    """A self-contained HTML page: inline CSS, no scripts, no external resources, a banner for simulated data."""
    banner = (
        '<div class="banner-simulated" role="alert">SIMULATED DATA: not the trial\'s patient data.</div>'
        if simulated
        else ""
    )
    sub = f"<p>{html.escape(subtitle)}</p>" if subtitle else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(table.title)}</title>\n<style>\n{TABLE_CSS}\n</style>\n</head>\n<body>\n"
        f"{banner}<h1>{html.escape(table.title)}</h1>\n{sub}{to_html_fragment(table)}\n</body>\n</html>\n"
    )


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "\u2265": r"$\geq$",
    "\u2264": r"$\leq$",
    "\u2013": "--",
    "\u2014": "---",
    "\u2212": "-",
    "\u00d7": r"$\times$",
    "\u00b1": r"$\pm$",
    "\u2192": r"$\rightarrow$",
    "\u00b5": r"\textmu{}",
    "\u03bc": r"\textmu{}",
    "\u00b2": r"\textsuperscript{2}",
    "\u00b3": r"\textsuperscript{3}",
    "\u00a0": "~",
}


def latex_escape(text: Any) -> str:
    """Text safe inside a LaTeX document: special characters and common symbols replaced, one pass."""
    return "".join(_LATEX_SPECIAL.get(char, char) for char in str(text))


#: What a LaTeX table of simulated data says in its caption and its first comment line.
LATEX_SIMULATED_MARK = "SIMULATED DATA"


def to_latex(table: DisplayTable, *, simulated: bool = False) -> str:
    """A booktabs longtable (needs \\usepackage{booktabs,longtable}); every cell escaped.

    simulated: the caption starts with a bold "SIMULATED DATA." and a comment line says so, so that the
    mark survives both compiling the table and reading its source."""
    columns = list(table.frame.columns)
    spec = "".join("r" if _mostly_numeric(table.frame[c]) else "l" for c in columns)
    header = " & ".join(latex_escape(c) for c in columns) + r" \\"
    rows = [" & ".join(latex_escape(v) for v in row) + r" \\" for row in table.frame.itertuples(index=False, name=None)]
    notes = "".join(
        f"\n\\multicolumn{{{len(columns)}}}{{p{{0.95\\linewidth}}}}{{\\footnotesize {latex_escape(n)}}} \\\\"
        for n in table.notes
    )
    mark = f"\\textbf{{{LATEX_SIMULATED_MARK}.}} " if simulated else ""
    lines = [
        f"% {latex_escape(table.title)}",
        *([f"% {LATEX_SIMULATED_MARK}: not the trial's patient data."] if simulated else []),
        "% Requires \\usepackage{booktabs,longtable}. Generated; do not edit.",
        "{\\small",
        f"\\begin{{longtable}}{{{spec}}}",
        f"\\caption{{{mark}{latex_escape(table.title)}}}\\label{{tab:{latex_escape(table.name)}}} \\\\",
        "\\toprule",
        header,
        "\\midrule",
        "\\endfirsthead",
        "\\toprule",
        header,
        "\\midrule",
        "\\endhead",
        "\\bottomrule" + notes,
        "\\endlastfoot",
        *rows,
        "\\end{longtable}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _mostly_numeric(values: pd.Series) -> bool:
    text = values.astype(str)
    return bool(len(text)) and bool(text.str.match(_NUMERIC_CELL.pattern).mean() > 0.5)


def to_csv_frame(table: DisplayTable) -> pd.DataFrame:
    """The frame written as the table's CSV (display text, the same as the HTML and LaTeX)."""
    return table.frame


def catalog_entry(table: DisplayTable, *, simulated: bool = False) -> dict[str, Any]:
    """A table as JSON-able data (title, notes, columns, rows of text) for notebooks and the index.

    simulated: recorded per table, because the CSV file itself carries no mark (a marker row would break
    readers of the CSV)."""
    return {
        "name": table.name,
        "simulated": bool(simulated),
        "title": table.title,
        "notes": list(table.notes),
        "columns": [str(c) for c in table.frame.columns],
        "rows": table.frame.astype(str).to_numpy().tolist(),
    }


def table_from_catalog(entry: Mapping[str, Any]) -> DisplayTable:
    """Inverse of `catalog_entry`."""
    frame = pd.DataFrame(entry["rows"], columns=entry["columns"], dtype=object)
    return DisplayTable(entry["name"], entry["title"], frame, tuple(entry.get("notes", ())))
