"""Notebooks: normalisation for byte-identical reruns, offline HTML, header and banner, escaping, versions,
and a real papermill run of a small template executed twice."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from k2trial.core.errors import ConfigError
from k2trial.report import notebook_view as view
from k2trial.report import notebooks as nbk
from k2trial.report import page as pages
from k2trial.runtime import provenance

ROOT = Path(__file__).resolve().parents[1]


def executed_like_papermill() -> dict:
    """A notebook with the volatile metadata papermill and nbclient write."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["papermill"] = {
        "parameters": {"x": 2},
        "default_parameters": {"x": 1},
        "start_time": "2026-01-01T10:00:00.1",
        "end_time": "2026-01-01T10:00:03.2",
        "duration": 3.1,
        "input_path": "/home/someone/workflow/notebooks/t.ipynb",
        "output_path": None,
        "environment_variables": {},
        "version": "2.7.0",
        "exception": None,
    }
    nb.metadata["widgets"] = {"state": {}}
    cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("print(x)")]
    cells[0].id = "a8f3c0d2"
    cells[1].id = "77e1b2aa"
    cells[1].metadata["papermill"] = {"start_time": "2026", "end_time": "2026", "duration": 0.1, "status": "completed"}
    cells[1].metadata["execution"] = {"iopub.execute_input": "2026-01-01T10:00:01"}
    cells[1].metadata["tags"] = ["keep-me"]
    cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    nb.cells = cells
    return nb


def test_normalise_drops_timings_keeps_parameters_and_numbers_cells():
    nb = nbk.normalise_notebook(executed_like_papermill())
    assert nb.metadata["papermill"] == {"parameters": {"x": 2}, "default_parameters": {"x": 1}}
    assert "widgets" not in nb.metadata
    assert [c.id for c in nb.cells] == ["cell-000", "cell-001"]
    assert nb.cells[1].metadata == {"tags": ["keep-me"]}
    assert nb.cells[1].outputs[0]["text"] == "2\n"
    text = nbk.notebook_bytes(nb).decode()
    assert "2026" not in text and "/home/someone" not in text
    nbformat.validate(nbformat.reads(text, 4))


def test_normalising_twice_changes_nothing_and_is_deterministic():
    once = nbk.notebook_bytes(nbk.normalise_notebook(executed_like_papermill()))
    twice = nbk.notebook_bytes(nbk.normalise_notebook(nbformat.reads(once.decode(), 4)))
    assert once == twice
    assert once == nbk.notebook_bytes(nbk.normalise_notebook(executed_like_papermill()))


def test_html_export_is_offline_and_deterministic():
    nb = nbk.normalise_notebook(executed_like_papermill())
    png = tiny_png()
    nb.cells.append(nbformat.v4.new_code_cell("show()"))
    nb.cells[-1].outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": pages.figure_html(png, "A <figure>")})
    ]
    nb = nbk.normalise_notebook(nb)
    first = nbk.notebook_html(nb, "Title & co")
    assert first == nbk.notebook_html(nb, "Title & co")
    lowered = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:", first).lower()
    for forbidden in ("<script", "<link", "http://", "https://", "mathjax", "require.js", "@import", "cdnjs"):
        assert forbidden not in lowered, forbidden
    assert "data:image/png;base64," in first
    assert "A &lt;figure&gt;" in first and "<title>Title &amp; co</title>" in first
    # DOM ids come from the numbered cell ids, one per cell, in order; nothing random
    assert re.findall(r'id="cell-id=(cell-\d+)"', first) == ["cell-000", "cell-001", "cell-002"]
    assert not re.search(r'id="[^"]*[0-9a-f]{8}-[0-9a-f]{4}', first)
    assert "print(x)" not in first  # inputs hidden: reviewers read outputs


@pytest.mark.parametrize(
    "page",
    [
        '<script src="https://cdn.example/x.js"></script>',
        "<img src='http://example.org/a.png'>",
        '<img src="//example.org/a.png">',
        '<link rel="stylesheet" href="x.css">',
        "<style>@import url(x.css);</style>",
        "<div style=\"background:url('https://x/y.png')\"></div>",
        "<script>var x = 1;</script>",
    ],
)
def test_assert_offline_rejects_network_and_scripts(page):
    with pytest.raises(pages.OnlineReferenceError):
        pages.assert_offline(page)


def test_assert_offline_accepts_local_links_and_data_uris():
    pages.assert_offline('<a href="efficacy.html">x</a><img src="data:image/png;base64,AAAA"><a href="#top">t</a>')


def test_header_banner_only_when_simulated_and_values_escaped():
    simulated = pages.header_html("T <x>", "Ref", "CTRI/1", "ds & co", "1.0", True, "abc", "k2trial 0.1.0, code 1")
    real = pages.header_html("T", "Ref", "CTRI/1", "ds", "1.0", False, None, "v")
    assert "SIMULATED DATA" in simulated and "banner-simulated" in simulated
    assert "SIMULATED DATA" not in real and "banner-simulated" not in real
    assert "T &lt;x&gt;" in simulated and "ds &amp; co, version 1.0 (simulated)" in simulated
    assert "unknown (no validation report)" in real


def tiny_png() -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 2))
    fig.add_subplot().plot([0, 1], [0, 1])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=200, metadata={"Software": None})
    return buffer.getvalue()


def test_png_display_width_from_resolution():
    assert pages.png_display_width(tiny_png()) == 384  # 4 inches at 96 CSS px per inch
    assert pages.png_display_width(b"not a png") is None


def test_claims_table_escapes_and_links_evidence():
    claims = pd.DataFrame(
        {
            "claim_id": ["C1"],
            "source": ["Kulkarni 2013"],
            "statement": ["VAS <b>fell</b> to 1-2"],
            "statistic": ["median"],
            "expected": ["[1, 2]"],
            "observed": ["1.53"],
            "status": ["reproduced"],
            "evidence": ["efficacy/descriptives.csv row 12"],
        }
    )
    page = view.claims_table_html(claims)
    assert "VAS &lt;b&gt;fell&lt;/b&gt; to 1-2" in page
    assert '<a href="../efficacy/descriptives.csv">efficacy/descriptives.csv</a> row 12' in page
    assert 'class="verdict-reproduced"' in page
    pages.assert_offline(page)


def test_links_must_be_relative():
    assert 'href="efficacy.html"' in pages.links_html([("efficacy.html", "Efficacy")])
    with pytest.raises(pages.OnlineReferenceError):
        pages.links_html([("https://example.org", "x")])


def test_lookup_one_value_or_none_or_error():
    frame = pd.DataFrame({"a": ["x", "y", "y"], "b": [1, 2, 3]})
    assert view.lookup(frame, "b", a="x") == 1
    assert view.lookup(frame, "b", a="z") is None
    with pytest.raises(LookupError, match="2 rows"):
        view.lookup(frame, "b", a="y")


def test_p_text_and_names():
    assert view.p_text(0.0004) == "p < 0.001" and view.p_text(0.0125) == "p = 0.013"
    assert view.p_text(float("nan")) == "p not estimable"
    assert view.join_names(["a", "b", "c"]) == "a, b and c" and view.join_names(["a"]) == "a"


def test_versions_follow_code_and_config():
    files = {
        "workflow/k2trial/a.py": b"x = 1\n",
        "config/config.yaml": b"seed: 1\n",
        "envs/requirements.lock": b"pandas==3.1.1\n",
    }
    config = {"seed": 1}
    first = nbk.version_info(files, config, "0.1.0")
    assert first == nbk.version_info(dict(reversed(list(files.items()))), config, "0.1.0")
    # config files do not change the code version but do change the analysis version
    changed_config = nbk.version_info({**files, "config/config.yaml": b"seed: 2\n"}, config, "0.1.0")
    assert changed_config["code_version"] == first["code_version"]
    assert changed_config["analysis_version"] != first["analysis_version"]
    changed_code = nbk.version_info({**files, "workflow/k2trial/a.py": b"x = 2\n"}, config, "0.1.0")
    assert changed_code["code_version"] != first["code_version"]
    # the analysis version is the one results/MANIFEST.json names (k2trial.runtime.provenance)
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    lock = hashlib.sha256(files["envs/requirements.lock"]).hexdigest()
    assert first["analysis_version"] == provenance.analysis_version(config, hashes, lock)
    assert first["code_version"].startswith("k2trial 0.1.0, code ")


def test_papermill_run_twice_gives_identical_notebook_and_html(tmp_path):
    template = nbformat.v4.new_notebook()
    template.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell('title = "default"\nvalues = []')
    parameters.metadata["tags"] = ["parameters"]
    template.cells = [
        nbformat.v4.new_markdown_cell("# Template"),
        parameters,
        nbformat.v4.new_code_cell(
            "from IPython.display import HTML, display\n"
            "from k2trial.report import page as pages\n"
            "display(HTML(pages.paragraph(f'{title}: {sum(values)}')))"
        ),
    ]
    path = tmp_path / "template.ipynb"
    nbformat.write(template, path)
    runs = []
    for _ in range(2):  # three notebooks in one process, twice: every copy must give the same bytes
        names = ["a", "b", "c"]
        parameters = {name: {"title": "Sum <b>", "values": [1, 2, 3]} for name in names}
        executed = nbk.execute_notebooks(dict.fromkeys(names, path), parameters, cwd=tmp_path)
        for name in names:
            normalised = nbk.normalise_notebook(executed[name])
            runs.append((nbk.notebook_bytes(normalised), nbk.notebook_html(normalised, "Run")))
    assert all(run == runs[0] for run in runs)
    notebook = json.loads(runs[0][0])
    assert notebook["metadata"]["papermill"]["parameters"] == {"title": "Sum <b>", "values": [1, 2, 3]}
    assert [c["id"] for c in notebook["cells"]] == ["cell-000", "cell-001", "cell-002", "cell-003"]
    assert "injected-parameters" in notebook["cells"][2]["metadata"]["tags"]
    assert "Sum &lt;b&gt;: 6" in runs[0][1]


def test_notebooks_run_in_one_process_see_nothing_of_each_other(tmp_path):
    """One process runs several notebooks in turn: the second must start as in a fresh kernel (no names, In[1])."""
    first, second = nbformat.v4.new_notebook(), nbformat.v4.new_notebook()
    first.cells = [nbformat.v4.new_code_cell("secret = 42"), nbformat.v4.new_code_cell("secret + 1")]
    second.cells = [nbformat.v4.new_code_cell("'secret' in globals(), len(In)")]
    for notebook in (first, second):
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    paths = {"first": tmp_path / "first.ipynb", "second": tmp_path / "second.ipynb"}
    nbformat.write(first, paths["first"])
    nbformat.write(second, paths["second"])
    executed = nbk.execute_notebooks(paths, {"first": {}, "second": {}}, cwd=tmp_path)
    assert executed["first"].cells[1].outputs[0]["data"]["text/plain"] == "43"
    assert [c.execution_count for c in executed["first"].cells] == [1, 2]
    (cell,) = executed["second"].cells
    assert cell.execution_count == 1
    # In holds an empty entry 0 and this cell: the first notebook's history is gone too
    assert cell.outputs[0]["data"]["text/plain"] == "(False, 2)"


def test_figure_placeholders_are_embedded_after_execution():
    png = tiny_png()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("show_figure()")
    placeholder = view.figure_placeholder_html("results/figures/a&b.png", "Caption <i>")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": ["<div>", placeholder, "</div>"]})]
    nb.cells = [cell]
    assert nbk.figure_placeholders(nb) == ["results/figures/a&b.png"]
    embedded = nbk.embed_figures(nb, {"results/figures/a&b.png": png})
    text = embedded.cells[0].outputs[0]["data"]["text/html"]
    assert nbk.FIGURE_PLACEHOLDER not in text and 'width="384"' in text and "Caption &lt;i&gt;" in text
    assert base64.b64decode(re.search(r"base64,([^\"]+)", text).group(1)) == png
    assert nbk.FIGURE_PLACEHOLDER in nb.cells[0].outputs[0]["data"]["text/html"][1]  # the input is not modified
    with pytest.raises(ConfigError, match="a&b.png"):
        nbk.embed_figures(nb, {})


def test_templates_are_specialised_for_the_design_and_the_protocol(tmp_path):
    import nbformat

    from k2trial.report.notebooks import specialise_template

    words = {"end_of_treatment": "week 8", "diary_weeks_in_words": "twelve"}
    path = Path(__file__).resolve().parents[1] / "workflow" / "notebooks" / "efficacy.ipynb"
    single = specialise_template(path, randomised=False, words=words)
    randomised = specialise_template(path, randomised=True, words=words)
    texts = ["\n".join(c.source for c in nb.cells) for nb in (single, randomised)]
    assert "open-label and single-arm" in texts[0] and "open-label" not in texts[1]
    assert "randomised and placebo-controlled" in texts[1] and "randomised and placebo" not in texts[0]
    assert single.cells[0].source == "# Efficacy: symptom VAS over twelve weeks"
    assert "## Change at week 8: estimates and tests" in texts[0] and "{end_of_treatment}" not in texts[0]
    assert len(single.cells) == len(randomised.cells) == len(nbformat.read(str(path), as_version=4).cells) - 1
    # the design and protocol tags are gone; other tags (papermill's parameters cell) stay
    tags = [t for c in single.cells for t in c.metadata.get("tags", [])]
    assert tags == ["parameters"]
    # a cell without the protocol-text tag keeps its braces: f-strings are code, not placeholders
    plain = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('x = f"{end_of_treatment}"')])
    nbformat.write(plain, str(tmp_path / "plain.ipynb"))
    assert (
        specialise_template(tmp_path / "plain.ipynb", randomised=False, words=words)
        .cells[0]
        .source.endswith('"{end_of_treatment}"')
    )
