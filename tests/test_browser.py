"""Headless Chromium opens the reviewer pages from file:// and checks that they work offline.

For every page: no console errors, no request other than file:// (and inline data: URIs), every image loaded
(naturalWidth > 0), the key headings present, and every local link pointing to a file that exists.
Two sets of pages: small ones built here from the library (fast), and the real results/index.html with every
notebook and table page of a workflow build (marked `workflow`; K2_RESULTS_DIR may name an existing build).

Needs Debian's `chromium` and `chromium-driver` (installed by .ci/run); skipped only when they are absent.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[1]

# In CI the browser is required (.ci/run installs it and sets K2TRIAL_REQUIRE_BROWSER=1; CI=true does the same),
# so its absence is a failure, not a skip.
REQUIRED = os.environ.get("K2TRIAL_REQUIRE_BROWSER") == "1" or os.environ.get("CI") == "true"
if REQUIRED and not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    raise RuntimeError("CI: /usr/bin/chromium and chromedriver are missing; .ci/run should have installed them")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
    reason="needs /usr/bin/chromium and chromedriver (Debian: apt-get install chromium chromium-driver)",
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
]
NOTEBOOK_HEADINGS = {
    "study_summary.html": ("Study summary", ["The study", "Efficacy at a glance", "Safety at a glance"]),
    "data_quality.html": ("Data quality: validation and cleaning", ["Validation of the raw files", "Participant flow"]),
    "efficacy.html": ("Efficacy: symptom VAS over eight weeks", ["Composite VAS by severity group", "Responders"]),
    "safety.html": ("Safety: laboratory tests and adverse events", ["Adverse events", "Laboratory values"]),
}


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="k2trial-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.get_log("performance")  # drop what the browser loaded for itself before the first page
    driver.get_log("browser")
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def open_offline(driver, page: Path) -> dict:
    """Load a page from file:// and return what it requested, logged and displayed."""
    driver.get_log("performance")
    driver.get_log("browser")
    driver.get(page.resolve().as_uri())
    deadline = time.time() + 20
    while driver.execute_script("return document.readyState") != "complete" and time.time() < deadline:
        time.sleep(0.05)
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests.append(message["params"]["request"]["url"])
    return {
        "requests": requests,
        "console": [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")],
        "images": driver.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src').slice(0, 80), i.complete,"
            " i.naturalWidth])"
        ),
        "h1": driver.execute_script("return Array.from(document.querySelectorAll('h1')).map(h => h.textContent)"),
        "h2": driver.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)"),
        "links": driver.execute_script(
            "return Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))"
        ),
        "banner": driver.execute_script(
            "const b = document.querySelector('.banner-simulated');"
            " return b ? [b.textContent, b.getBoundingClientRect().height > 0] : null"
        ),
    }


def assert_works_offline(page: Path, seen: dict, min_images: int = 0) -> None:
    # chrome:// and devtools:// are the browser's own resources (an icon it shows now and then), not the page's
    own = ("file://", "data:", "chrome://", "chrome-extension://", "devtools://")
    online = [url for url in seen["requests"] if not url.startswith(own)]
    assert not online, f"{page.name} requested {online}"
    assert not seen["console"], f"{page.name} console errors: {seen['console']}"
    broken = [image for image in seen["images"] if not image[1] or image[2] <= 0]
    assert not broken, f"{page.name}: images not loaded: {broken}"
    assert len(seen["images"]) >= min_images, f"{page.name}: {len(seen['images'])} images"
    for href in seen["links"]:
        parsed = urlparse(href)
        assert not parsed.scheme and not parsed.netloc, f"{page.name}: non-local link {href}"
        if parsed.path:
            target = (page.parent / unquote(parsed.path)).resolve()
            assert target.exists(), f"{page.name}: link to missing file {href}"


def text_of(headings: list[str]) -> list[str]:
    return [h.replace("\u00b6", "").strip() for h in headings]


# ------------------------------------------------------------------------------------------- library pages
@pytest.fixture(scope="module")
def library_pages(tmp_path_factory) -> Path:
    """An index, a figure, a table page and a notebook page written with the library alone (no kernel)."""
    import nbformat
    import pandas as pd

    from k2trial.report import figures as kf
    from k2trial.report import notebook_view as nbv
    from k2trial.report import notebooks as nbk
    from k2trial.report import page, render, site
    from k2trial.report import tables as kt

    root = tmp_path_factory.mktemp("site")
    style = kf.Style(dpi=100)
    kf.apply_style(style)
    flow = pd.DataFrame({"stage": ["enrolled", "treated"], "label": ["Enrolled", "Treated"], "n": [30, 29]})
    png = kf.render_figure(kf.participant_flow_figure(flow), style.dpi)["png"]
    (root / "figures").mkdir()
    (root / "figures" / "participant_flow.png").write_bytes(png)
    from conftest import read_config, shipped_vocabulary

    from k2trial.core.io import read_yaml

    config = read_config()
    registry = read_yaml(Path(__file__).resolve().parents[1] / "workflow/report/registry.yaml")
    settings = kt.TableSettings.from_config(
        config["reporting"], config["efficacy"], config["safety"], 8.0, shipped_vocabulary(), registry["tables"]
    )
    table = kt.participant_flow_table(flow, settings)
    (root / "tables").mkdir()
    (root / "tables" / "participant_flow.html").write_text(render.to_html_document(table, simulated=True))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Study summary\n\n## The study"), nbformat.v4.new_code_cell("x")]
    header = page.header_html("Study", "Ref", "CTRI", "ds <x>", "1", True, "abc", "k2trial 0.1.0, code 0")
    nb.cells[1].outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"text/html": header + page.figure_html(png, "Flow") + nbv.table_html({"t": table}, "t")},
        )
    ]
    (root / "notebooks").mkdir()
    (root / "notebooks" / "study_summary.html").write_text(
        nbk.notebook_html(nbk.normalise_notebook(nb), "Study summary")
    )
    artifacts = [
        site.Artifact("Figures", "participant_flow", "Participant flow", "figures/participant_flow.png", "f", "0", 1),
        site.Artifact("Tables", "participant_flow", "Participant flow", "tables/participant_flow.html", "t", "0", 1),
        site.Artifact("Notebooks", "study_summary", "Study summary", "notebooks/study_summary.html", "n", "0", 1),
    ]
    (root / "index.html").write_text(site.index_html(artifacts, header, "Pilot: results"))
    return root


def test_library_pages_work_offline(browser, library_pages):
    index = open_offline(browser, library_pages / "index.html")
    assert_works_offline(library_pages / "index.html", index, min_images=1)
    assert index["h1"] == ["Pilot: results"] and index["h2"] == ["Notebooks", "Figures", "Tables"]
    assert index["banner"] and index["banner"][1] and "SIMULATED DATA" in index["banner"][0]
    notebook = open_offline(browser, library_pages / "notebooks" / "study_summary.html")
    assert_works_offline(library_pages / "notebooks" / "study_summary.html", notebook, min_images=1)
    assert text_of(notebook["h1"]) == ["Study summary"] and text_of(notebook["h2"]) == ["The study"]
    table = open_offline(browser, library_pages / "tables" / "participant_flow.html")
    assert_works_offline(library_pages / "tables" / "participant_flow.html", table)
    assert table["h1"] == ["Participant flow"] and table["banner"][1]


def test_a_page_with_a_network_reference_is_caught(browser, tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><h1>x</h1><img src="https://127.0.0.1:9/none.png"></body></html>')
    seen = open_offline(browser, page)
    with pytest.raises(AssertionError):
        assert_works_offline(page, seen)


# ------------------------------------------------------------------------------------------- workflow pages
@pytest.fixture(scope="module")
def built_results(tmp_path_factory) -> Path:
    """results/ of a full build: K2_RESULTS_DIR when set, else a fresh build of a copy of the repository."""
    given = os.environ.get("K2_RESULTS_DIR")
    if given:
        return Path(given)
    from conftest import copy_workflow, run_snakemake

    workdir = copy_workflow(tmp_path_factory.mktemp("browser") / "wf")
    done = run_snakemake(workdir, "results/index.html", timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir / "results"


@pytest.mark.workflow
def test_results_index_and_notebooks_work_offline(browser, built_results):
    index = built_results / "index.html"
    seen = open_offline(browser, index)
    assert_works_offline(index, seen, min_images=10)
    assert text_of(seen["h2"]) == ["Notebooks", "Figures", "Tables", "ADaM"]  # ADaM: rule write_adam (issue 16)
    assert seen["banner"] is None or seen["banner"][1]
    simulated = seen["banner"] is not None
    for name, (title, sections) in NOTEBOOK_HEADINGS.items():
        page = built_results / "notebooks" / name
        shown = open_offline(browser, page)
        assert_works_offline(page, shown, min_images=1)
        assert text_of(shown["h1"]) == [title]
        assert set(sections) <= set(text_of(shown["h2"])), (name, shown["h2"])
        assert (shown["banner"] is not None) == simulated, name


@pytest.mark.workflow
def test_results_table_pages_work_offline(browser, built_results):
    pages = sorted((built_results / "tables").glob("*.html"))
    assert len(pages) >= 10
    for page in pages:
        seen = open_offline(browser, page)
        assert_works_offline(page, seen)
        assert len(seen["h1"]) == 1
