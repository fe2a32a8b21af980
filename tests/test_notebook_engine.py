"""The in-process papermill engine (k2trial.report.notebooks.InProcessEngine): the same executed notebook as
papermill's default engine on a real Jupyter kernel, a failing cell reported as papermill reports it, and the
process left as it was."""

from __future__ import annotations

import builtins
import copy
import os
import re
import sys
import warnings

import nbformat
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from k2trial.report import notebooks as nbk

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
#: ANSI colour codes: IPython colours tracebacks by its colour scheme, which is not what is compared.
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def notebook_of(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.cells = list(cells)
    return notebook


def tagged(cell: nbformat.NotebookNode, *tags: str) -> nbformat.NotebookNode:
    cell.metadata["tags"] = list(tags)
    return cell


def every_kind_of_output() -> nbformat.NotebookNode:
    """A template whose cells give every kind of output a view could: displays (HTML, Markdown, one updated by
    its display id), streams on both channels around a display, results (a DataFrame: text/plain and text/html;
    a Categorical, whose repr depends on whether pandas sees a notebook frontend), a cleared output, a result
    silenced by a semicolon, skipped cells, the history."""
    code = nbformat.v4.new_code_cell
    return notebook_of(
        nbformat.v4.new_markdown_cell("# Every kind of output"),
        tagged(code('title = "default"\nvalues = []'), "parameters"),
        code(
            "import sys\n"
            "from IPython.display import HTML, Markdown, clear_output, display\n"
            'print("to stdout")\n'
            'print("to stderr", file=sys.stderr)\n'
            'display(HTML(f"<p>{title} &amp; more</p>"))\n'
            'print("after the display")\n'
            'handle = display(Markdown("*first*"), display_id=True)'
        ),
        code("import pandas as pd\n\nframe = pd.DataFrame({'a': values, 'b': [v / 3 for v in values]})\nframe"),
        code('pd.Categorical([f"category {c} with a long name" for c in "abcdefghijklmnopqrstuvwxyz"])'),
        code('handle.update(Markdown("*second*"))\nprint("gone")\nclear_output()\nprint("kept")\nsilenced = 1;'),
        code("   \n"),
        tagged(code("raise RuntimeError('never run')"), "skip-execution"),
        code("len(In), sorted(k for k in globals() if not k.startswith('_'))[:4]"),
    )


def comparable(notebook: nbformat.NotebookNode) -> bytes:
    """The normalised notebook's bytes, tracebacks without colour codes."""
    normalised = nbk.normalise_notebook(notebook)
    for cell in normalised.cells:
        for output in cell.get("outputs", []):
            if output["output_type"] == "error":
                output["traceback"] = [ANSI.sub("", line) for line in output["traceback"]]
    return nbk.notebook_bytes(normalised)


def test_in_process_engine_gives_the_notebook_a_real_kernel_gives(tmp_path):
    """The independent check: papermill's default engine on a python3 kernel (ipykernel) and ours, one template
    with every kind of output, parameters injected: the normalised notebooks are byte-identical."""
    path = tmp_path / "template.ipynb"
    nbformat.write(every_kind_of_output(), path)
    parameters = {"title": "Sum <b>", "values": [1, 2, 3]}
    kernel = papermill.execute_notebook(
        str(path), None, parameters=parameters, kernel_name="python3", language="python", cwd=str(tmp_path),
        progress_bar=False,
    )  # fmt: skip
    ours = nbk.execute_notebooks({"t": path}, {"t": parameters}, cwd=tmp_path)["t"]
    assert comparable(ours) == comparable(kernel)
    # and what is compared is what the template makes, not empty notebooks
    cells = nbk.normalise_notebook(ours).cells
    kinds = [[o["output_type"] for o in cell.get("outputs", [])] for cell in cells]
    assert kinds[3] == ["stream", "stream", "display_data", "stream", "display_data"]
    assert [o.get("name") for o in cells[3].outputs if o["output_type"] == "stream"] == ["stdout", "stderr", "stdout"]
    assert cells[3].outputs[2]["data"]["text/html"] == "<p>Sum <b> &amp; more</p>"
    assert cells[3].outputs[4]["data"]["text/markdown"] == "*second*"  # updated by the later cell
    assert set(cells[4].outputs[0]["data"]) == {"text/plain", "text/html"} and cells[4].execution_count == 4
    # a notebook frontend's repr: the categories on one line, not wrapped at a terminal's 80 columns
    categories = cells[5].outputs[0]["data"]["text/plain"].splitlines()[-1]
    assert categories.startswith("Categories (26, str): ['category a with a long name', 'category b with")
    assert len(categories) > 200
    assert kinds[6] == ["stream"] and cells[6].outputs[0]["text"] == "kept\n"
    assert kinds[7] == kinds[8] == [] and cells[7].execution_count is None and cells[8].execution_count is None
    assert cells[9].execution_count == 7
    assert cells[9].outputs[0]["data"]["text/plain"] == "(8, ['HTML', 'In', 'Markdown', 'Out'])"
    assert ours.metadata["language_info"] == kernel.metadata["language_info"]
    assert ours.metadata["papermill"]["parameters"] == parameters


def failure(run, path, tmp_path) -> PapermillExecutionError:
    with pytest.raises(PapermillExecutionError) as raised:
        run(path, tmp_path)
    return raised.value


def on_a_kernel(path, tmp_path):
    papermill.execute_notebook(str(path), None, kernel_name="python3", cwd=str(tmp_path), progress_bar=False)


def in_process(path, tmp_path):
    nbk.execute_notebooks({"f": path}, {"f": {}}, cwd=tmp_path)


@pytest.mark.parametrize(("failing", "ename"), [("y = x +\n", "SyntaxError"), ("{}['missing']", "KeyError")])
def test_a_failing_cell_raises_papermills_error_naming_it_as_on_a_kernel(tmp_path, failing, ename):
    """papermill's PapermillExecutionError names the cell (index, In[n], source) and the error; the cells after it
    do not run. The same error as on a real kernel (traceback without colours)."""
    code = nbformat.v4.new_code_cell
    path = tmp_path / "failing.ipynb"
    nbformat.write(notebook_of(code("x = 1"), code(failing), code("open('ran', 'w')")), path)
    ours, kernel = failure(in_process, path, tmp_path), failure(on_a_kernel, path, tmp_path)
    assert (ours.cell_index, ours.exec_count, ours.source, ours.ename) == (1, 2, failing, ename)
    # a SyntaxError quotes the cell's file name, which ipykernel makes from a hash of the code
    assert ours.evalue == kernel.evalue and ours.ename == kernel.ename
    assert [ANSI.sub("", line) for line in ours.traceback] == [ANSI.sub("", line) for line in kernel.traceback]
    assert 'Exception encountered at "In [2]"' in str(ours)
    assert not (tmp_path / "ran").exists()


def test_running_notebooks_leaves_the_process_as_it_was(tmp_path):
    """A notebook changes directory (papermill's cwd) and gets its own __main__, streams and displayhook while it
    runs (and IPython's shell sets builtins, prompts, warning filters); none of it outlives the notebook, and no
    IPython shell is left behind."""
    from IPython.core.interactiveshell import InteractiveShell

    code = nbformat.v4.new_code_cell
    seen = tmp_path / "seen"
    cell = code(
        "import os, sys\n"
        f"open({str(seen)!r}, 'w').write(os.getcwd() + '\\n' + str(sys.modules['__main__'].__dict__ is globals()))"
    )
    path = tmp_path / "t.ipynb"
    nbformat.write(notebook_of(cell), path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    nbk.execute_notebooks({"warm": path}, {"warm": {}}, cwd=workdir)  # modules imported once are shared by design
    before = (
        os.getcwd(), sys.modules["__main__"], sys.stdout, sys.stderr, sys.displayhook, sys.excepthook,
        hasattr(builtins, "__IPYTHON__"), hasattr(builtins, "display"), hasattr(sys, "ps1"), list(sys.path),
        list(warnings.filters),
    )  # fmt: skip
    nbk.execute_notebooks({"a": path, "b": path}, {"a": {}, "b": {}}, cwd=workdir)
    after = (
        os.getcwd(), sys.modules["__main__"], sys.stdout, sys.stderr, sys.displayhook, sys.excepthook,
        hasattr(builtins, "__IPYTHON__"), hasattr(builtins, "display"), hasattr(sys, "ps1"), list(sys.path),
        list(warnings.filters),
    )  # fmt: skip
    assert seen.read_text() == f"{workdir}\nTrue"  # it ran in cwd, in its own __main__
    assert after == before
    assert not InteractiveShell.initialized()


@pytest.mark.workflow
def test_the_builds_notebooks_are_what_a_real_kernel_gives(tmp_path):
    """The registry's templates as the default build runs them (rule execute_notebooks, in-process), and each
    again on a python3 kernel by papermill's default engine (the same cells, the injected parameters cell
    included): the same normalised notebook bytes."""
    from conftest import copy_workflow, run_snakemake

    work = copy_workflow(tmp_path / "wf")
    result = run_snakemake(work, "--notemp", "execute_notebooks")
    assert result.returncode == 0, result.stderr[-3000:]
    built = sorted((work / "results/notebooks/executed").glob("*.ipynb"))
    assert [p.stem for p in built] == ["data_quality", "efficacy", "safety", "study_summary"]
    for path in built:
        executed = nbformat.read(path, as_version=4)
        # the notebook the rule ran, parameters injected (papermill's cell and metadata), outputs and counts cleared
        template = copy.deepcopy(executed)
        for cell in template.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        assert "injected-parameters" in template.cells[2].metadata.tags
        kernel = papermill.execute_notebook(
            template, None, kernel_name="python3", language="python", cwd=str(work), progress_bar=False
        )
        assert nbk.notebook_bytes(nbk.normalise_notebook(kernel)) == path.read_bytes(), path.stem
        assert sum(len(c.get("outputs", [])) for c in executed.cells) >= 5, path.stem
