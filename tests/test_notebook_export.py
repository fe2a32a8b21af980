"""Notebook export: the offline page rendered before the figures exist, with the PNGs embedded afterwards by a text
substitution (rule export_notebooks), is byte for byte the page rendered from the notebook with the figures in it."""

from __future__ import annotations

import nbformat
import pytest
from test_notebooks import tiny_png

from k2trial.core.errors import ConfigError
from k2trial.report import notebook_view as view
from k2trial.report import notebooks as nbk


def notebook_with_figures(paths_and_captions) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    for path, caption in paths_and_captions:
        cell = nbformat.v4.new_code_cell("nb.show_figure(...)")
        html = "<div>" + view.figure_placeholder_html(path, caption) + "</div>"
        cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": html, "text/plain": "<HTML>"})]
        nb.cells.append(cell)
    return nb


def test_page_with_figures_embedded_afterwards_equals_page_of_the_embedded_notebook():
    figures = [("results/figures/a&b.png", 'Caption <i> & "quotes"'), ("results/figures/c.png", "Second, é")]
    pngs = {path: tiny_png() for path, _ in figures}
    nb = notebook_with_figures(figures)
    page = nbk.notebook_html(nb, "Title & <x>")
    assert nbk.FIGURE_PLACEHOLDER in page
    embedded = nbk.embed_figures_in_page(page, pngs, "Title")
    assert embedded == nbk.notebook_html(nbk.embed_figures(nb, pngs), "Title & <x>")
    assert nbk.FIGURE_PLACEHOLDER not in embedded and embedded.count("data:image/png;base64,") == 2


def test_page_embedding_names_a_missing_figure_and_refuses_an_unknown_placeholder_form():
    page = nbk.notebook_html(notebook_with_figures([("results/figures/a.png", "A")]), "T")
    with pytest.raises(ConfigError, match="a.png"):
        nbk.embed_figures_in_page(page, {}, "T")
    odd = page.replace("<img alt=", "<img class='x' alt=", 1)
    with pytest.raises(ConfigError, match="placeholder"):
        nbk.embed_figures_in_page(odd, {"results/figures/a.png": tiny_png()}, "T")
