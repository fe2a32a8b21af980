"""What the notebook templates (workflow/notebooks/*.ipynb) call: one shared setup, `open_view`, and the view it
returns, through which a notebook reads artifacts and shows the header, narrative, catalog tables and figures.

A notebook is a view: every number it prints is read from an artifact (k2trial.core.schema), every label comes from
the vocabulary (k2trial.core.vocabulary), every table from results/tables/catalog.json and every figure from
results/figures. Its template has one parameters cell (`view = {}`) and one setup cell:

    from k2trial.report.notebook_view import lookup, open_view

    nb = open_view(view)

papermill injects `view` (workflow/scripts/render_notebook.py): the notebook's parameters file
(results/notebooks/<name>.parameters.yaml: study, dataset, versions, decimals, inputs, figures, catalog, links),
the vocabulary's sources, and the artifacts the view reads beyond those the parameters file lists.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from k2trial.analysis.groups import EFFICACY_SET, SEVERITY_GROUPS
from k2trial.analysis.safety.adverse_events import ANY_EVENT
from k2trial.core import schema
from k2trial.core.io import read_yaml
from k2trial.core.vocabulary import BASELINE, Vocabulary, load_vocabulary
from k2trial.data.validation import PROBLEM_FIELDS
from k2trial.report import formatting
from k2trial.report.formatting import MISSING, Decimals, format_p_value, population_label
from k2trial.report.notebooks import FIGURE_PLACEHOLDER
from k2trial.report.page import details_html, header_html, links_html, paragraph
from k2trial.report.render import DisplayTable, table_from_catalog, to_html_fragment
from k2trial.report.tables import analysis_table


# ----------------------------------------------------------------------------------------------------
# Pieces of HTML and lookups
# ----------------------------------------------------------------------------------------------------
def lookup(frame: Any, column: str, **criteria: Any) -> Any:
    """The single value of `column` in the row matching every criterion (None when no row matches).

    Raises LookupError when several rows match: narrative numbers must be unambiguous.
    """
    mask = None
    for key, value in criteria.items():
        current = frame[key].astype(str) == str(value)
        mask = current if mask is None else mask & current
    rows = frame[mask] if mask is not None else frame
    if len(rows) == 0:
        return None
    if len(rows) > 1:
        raise LookupError(f"{len(rows)} rows match {criteria} for column {column}")
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


def load_catalog(path: str | Path) -> dict[str, DisplayTable]:
    """The display tables of results/tables/catalog.json by name."""
    with open(path, encoding="utf-8") as handle:
        entries = json.load(handle)["tables"]
    return {entry["name"]: table_from_catalog(entry) for entry in entries}


def table_html(catalog: Mapping[str, Any], name: str, collapsed: bool = False, max_rows: int | None = None) -> str:
    """A catalog table as escaped HTML; collapsed inside <details>; `max_rows` shows the first rows and says so."""
    table = catalog[name]
    note = ""
    if max_rows is not None and len(table.frame) > max_rows:
        note = paragraph(
            f"First {max_rows} of {len(table.frame)} rows; the full table is results/tables/{name}.html.", "note"
        )
        table = DisplayTable(table.name, table.title, table.frame.head(max_rows), table.notes)
    fragment = to_html_fragment(table) + note
    return details_html(f"{table.title} ({len(catalog[name].frame)} rows)", fragment) if collapsed else fragment


def figure_placeholder_html(path: str, caption: str, alt: str | None = None) -> str:
    """A <figure> whose image is the PNG at `path`, embedded later by k2trial.report.notebooks.embed_figures."""
    alt_text = html.escape(alt or caption, quote=True)
    return (
        f'<figure><img {FIGURE_PLACEHOLDER}="{html.escape(path, quote=True)}" alt="{alt_text}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def problem_counts(report: Mapping[str, Any]) -> pd.DataFrame:
    """The validation report's counts by file and rule (report.json counts.by_file) as rows file, rule, problems."""
    by_file = report["counts"].get("by_file", {})
    rows = [(f, rule, n) for f, rules in sorted(by_file.items()) for rule, n in sorted(rules.items())]
    return pd.DataFrame(rows, columns=["file", "rule", "problems"]).astype({"problems": "int64"})


def problem_listing(report: Mapping[str, Any]) -> pd.DataFrame:
    """The problems listed in the validation report (report.json problems), one row each."""
    return pd.DataFrame(report.get("problems", []), columns=PROBLEM_FIELDS)


def p_text(p: Any, decimals: int = 3) -> str:
    """ "p < 0.001" or "p = 0.012" (rounded half up), "p not estimable" when missing."""
    text = format_p_value(p, decimals)
    if text == MISSING:
        return "p not estimable"
    return f"p < {text[1:]}" if text.startswith("<") else f"p = {text}"


# ----------------------------------------------------------------------------------------------------
# The view
# ----------------------------------------------------------------------------------------------------
class NotebookView:
    """One notebook's run: its parameters, the vocabulary, the catalog, and what it may read and show.

    spec: what papermill injects as `view` (see the module docstring): parameters_file, vocabulary (codebook and
    lab_units paths, the study config's composite and populations, and its protocol unless it is the default
    study's: k2trial.core.vocabulary.vocabulary_sources), inputs (further artifacts by name).
    """

    #: The efficacy set and the severity groups, in report order; the codes a narrative looks rows up by.
    efficacy_set = EFFICACY_SET
    severity_groups = SEVERITY_GROUPS
    baseline = BASELINE
    any_adverse_event = ANY_EVENT

    problem_counts = staticmethod(problem_counts)
    problem_listing = staticmethod(problem_listing)
    claims_table_html = staticmethod(claims_table_html)
    lookup = staticmethod(lookup)  # one cell of an artifact by column and key values
    join_names = staticmethod(join_names)  # "a, b and c"

    def __init__(self, spec: Mapping[str, Any]):
        self.parameters: dict[str, Any] = read_yaml(spec["parameters_file"])
        sources = spec["vocabulary"]
        self.vocabulary: Vocabulary = load_vocabulary(
            read_yaml(sources["codebook"]), read_yaml(sources["lab_units"]), sources
        )
        self.decimals = Decimals.from_config(self.parameters["decimals"])
        self.catalog = load_catalog(self.parameters["tables_catalog"])
        self.inputs: dict[str, str] = {**self.parameters["inputs"], **spec.get("inputs", {})}
        self.coagulation_test: str = spec.get("coagulation_test", "")

    # ---------------------------------------------------------------------------------------------- parameters
    @property
    def study(self) -> Mapping[str, Any]:
        return self.parameters["study"]

    @property
    def treatment(self) -> Mapping[str, Any]:
        return self.parameters["treatment"]

    @property
    def dataset(self) -> Mapping[str, Any]:
        return self.parameters["dataset"]

    @property
    def severe_threshold(self) -> float:
        return float(self.parameters["severe_threshold"])

    @property
    def final_visit(self) -> str:
        """The code of the end-of-treatment visit (the last diary visit unless the study has a follow-up)."""
        return self.vocabulary.end_of_treatment.code

    @property
    def composite(self) -> str:
        """The param of the primary VAS: the composite, or a single-item study's item."""
        return self.vocabulary.primary_param

    # ---------------------------------------------------------------------------------------------- reading
    def read(self, name: str) -> pd.DataFrame:
        """An artifact the notebook may read, by input name, with the schema's dtypes."""
        path = self.inputs[name]
        return schema.read_artifact(path, schema.artifact_name(path))

    def read_listing(self, name: str) -> pd.DataFrame:
        """An artifact listed as it reads in a spreadsheet: a text column whose every value is a number (the
        value of a data query, say) is shown as a number."""
        frame = self.read(name)
        for column in frame.columns:
            if pd.api.types.is_string_dtype(frame[column]) and frame[column].notna().any():
                numbers = pd.to_numeric(frame[column], errors="coerce")
                if numbers.notna().sum() == frame[column].notna().sum():
                    frame[column] = numbers
        return frame

    def read_json(self, name: str) -> Any:
        with open(self.inputs[name], encoding="utf-8") as handle:
            return json.load(handle)

    def has(self, name: str) -> bool:
        return bool(self.inputs.get(name))

    # ---------------------------------------------------------------------------------------------- labels
    def population_label(self, population: str) -> str:
        return population_label(self.vocabulary, population, self.severe_threshold)

    def param_name(self, param: str) -> str:
        """A param as narrative reads it ("tingling", "composite (mean of 5)")."""
        return self.vocabulary.param_label(param).lower()

    def visit_name(self, visit: str) -> str:
        """A visit as narrative reads it ("week 8", "baseline")."""
        return self.vocabulary.visit_labels.get(visit, visit).lower()

    # ---------------------------------------------------------------------------------------------- formatting
    def number(self, value: Any, decimals: int | None = None) -> str:
        """A number rounded half away from zero (default: the summary decimals)."""
        return formatting.format_number(value, self.decimals.summary if decimals is None else decimals)

    def integer(self, value: Any) -> str:
        return formatting.format_integer(value)

    def percent(self, numerator: Any, denominator: Any) -> str:
        return formatting.format_percent(numerator, denominator, self.decimals.percent)

    def estimate_ci(self, estimate: Any, low: Any, high: Any) -> str:
        return formatting.format_estimate_ci(estimate, low, high, self.decimals.summary)

    def p(self, value: Any) -> str:
        return p_text(value, self.decimals.p_value)

    # ---------------------------------------------------------------------------------------------- showing
    def show(self, html_text: str) -> None:
        from IPython.display import HTML, display

        display(HTML(html_text))

    def show_header(self) -> None:
        """The block every notebook starts with: SIMULATED banner (when simulated), study and versions."""
        study, dataset, p = self.study, self.dataset, self.parameters
        self.show(
            header_html(
                study.get("title", ""),
                study.get("reference", ""),
                study.get("registry", ""),
                str(dataset.get("name", "unnamed dataset")),
                str(dataset.get("version", "?")),
                bool(dataset.get("simulated", False)),
                p.get("data_version"),
                p.get("code_version", ""),
                p.get("analysis_version"),
            )
        )

    def show_paragraph(self, text: str, css: str = "narrative") -> None:
        self.show(paragraph(text, css))

    def show_paragraphs(self, texts: Sequence[str]) -> None:
        self.show("".join(paragraph(t) for t in texts))

    def _omitted(self, name: str) -> bool:
        """True, after saying why, for a figure or table of the registry that this study's build does not make
        (parameters `omitted`: name -> reason; a safety-only study has no diary figures)."""
        reason = (self.parameters.get("omitted") or {}).get(name)
        if reason is not None:
            self.show_paragraph(f"Not part of this build ({name}): {reason}.")
        return reason is not None

    def show_table(self, name: str, collapsed: bool = False, max_rows: int | None = None) -> None:
        """A display table of the catalog (results/tables/catalog.json)."""
        if not self._omitted(name):
            self.show(table_html(self.catalog, name, collapsed=collapsed, max_rows=max_rows))

    def show_figure(self, name: str, caption: str | None = None) -> None:
        """A figure of results/figures, embedded as a data URI after execution (the notebooks run while the
        figures are drawn), captioned with its registry title (in the study's words: the parameters'
        `figure_titles`) unless `caption` is given."""
        if not self._omitted(name):
            text = caption if caption is not None else self.parameters["figure_titles"][name]
            self.show(figure_placeholder_html(self.parameters["figures"][name], text))

    def analysis_table_html(self, frame: pd.DataFrame, name: str, title: str, empty_message: str = "No rows.") -> str:
        """An artifact (or a part of one) formatted as a display table."""
        table = analysis_table(
            frame, name, title, self.decimals, empty_message=empty_message, vocabulary=self.vocabulary
        )
        return to_html_fragment(table)

    def show_details(self, summary: str, content_html: str) -> None:
        self.show(details_html(summary, content_html))

    def show_links(self) -> None:
        """The links to the other reports (parameters `links`: text, href)."""
        self.show(links_html([(href, text) for text, href in self.parameters["links"]]))


def open_view(spec: Mapping[str, Any]) -> NotebookView:
    """The shared setup of every notebook: read its parameters, vocabulary and catalog, show the header."""
    view = NotebookView(spec)
    view.show_header()
    return view
