"""The preloaded job server (k2trial.runtime.job_server): a job forked from it behaves as the job in its own process.

The unit part starts a server from this test process (its owner) and runs small job scripts as subprocesses of it, as
Snakemake's jobs are: arguments, working directory, environment, standard streams and exit status reach the job and
come back; a job the server must not run (another environment) runs in its own process; killing a job's process kills
the forked job; a server whose owner is gone ends; a job with more threads has its BLAS set to them. The workflow part
builds the shipped data with the server turned off and compares every artifact with the default build's, in which the
server ran the jobs.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import ROOT, SNAKEMAKE, copy_workflow, run_snakemake
from snapshot import artifact_hashes

from k2trial.runtime import job_server

SCRIPTS = ROOT / "workflow" / "scripts"

#: A job script as the workflow's are: the job server's import first, then the work. It reports where it ran.
JOB = """
import k2trial.runtime.start_job  # noqa: F401

import json, os, sys
import numpy  # noqa: F401
from threadpoolctl import threadpool_info

blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
report = {
    "pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(), "argv": sys.argv[1:],
    "tmpdir": os.environ.get("TMPDIR"), "stdin": sys.stdin.read(), "blas": blas,
}
print(json.dumps(report))
print("to stderr", file=sys.stderr)
if sys.argv[1:] and sys.argv[1] == "sleep":
    open(sys.argv[2], "w").write(str(os.getpid()))
    import time
    time.sleep(60)
sys.exit(int(sys.argv[1]) if sys.argv[1:] and sys.argv[1].isdigit() else 0)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _wait_until(condition, timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def job_script(tmp_path: Path) -> Path:
    script = tmp_path / "job.py"
    script.write_text(JOB, encoding="utf-8")
    return script


@pytest.fixture
def server(job_script: Path, monkeypatch):
    """A server started by this test process for the job script (two jobs of it: a template serves them)."""
    monkeypatch.delenv(job_server.ADDRESS, raising=False)
    monkeypatch.setenv(job_server.ENABLED, "1")
    handle = job_server.start([job_script, job_script])
    assert handle is not None
    STARTED.clear()
    STARTED.update(os.environ)
    yield handle
    handle.stop()


#: The environment when the server started (pytest changes PYTEST_CURRENT_TEST between setup and call).
STARTED: dict[str, str] = {}


def _job_environment(**extra: str) -> dict[str, str]:
    """The environment Snakemake gives a one-thread job: its own (the server's) plus the thread variables."""
    return dict(STARTED, **dict.fromkeys(job_server.THREAD_VARIABLES, "1"), **extra)


def _run_job(script: Path, cwd: Path, *args: str, env: dict[str, str], stdin: str = "") -> tuple[dict, str, int, int]:
    proc = subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(stdin, timeout=60)
    return json.loads(out.splitlines()[0]), err, proc.returncode, proc.pid


# -- what the server imports ---------------------------------------------------------------------------------------


def test_script_imports_are_the_top_level_imports_then_the_preload_tuple(tmp_path: Path):
    script = tmp_path / "s.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, json
            from k2trial.core import schema, io as kio
            from .relative import ignored
            PRELOAD = ("statsmodels.api",)

            def main():
                import pandas  # lazily: not read
            """
        ),
        encoding="utf-8",
    )
    assert job_server.script_imports(script) == [
        "os",
        "json",
        "k2trial.core.schema",
        "k2trial.core.io",
        "statsmodels.api",
    ]


def test_the_server_imports_what_two_scripts_share_and_templates_the_rest(tmp_path: Path):
    one, two = tmp_path / "one.py", tmp_path / "two.py"
    one.write_text("import json\nimport k2trial.core.values\nimport csv\n", encoding="utf-8")
    two.write_text("import csv\nimport json\n", encoding="utf-8")
    # json and csv in both scripts: the server's; k2trial.core.values only in one (run twice): its template's
    plan = job_server.plan([one, two, one])
    assert plan["shared"] == [*job_server.PREAMBLE_MODULES, "json", "csv"]
    assert plan["templates"] == [[os.path.realpath(one), 2]]


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_every_preload_entry_is_imported_lazily_by_the_library_or_a_notebook():
    """A PRELOAD tuple names modules the job imports later: in a function of the library or in a cell of a notebook
    template. An entry neither imports any more would be a stale fact."""
    lazy = set()
    for path in (ROOT / "workflow" / "k2trial").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef):
                lazy |= _imports(node)
    for notebook in (ROOT / "workflow" / "notebooks").glob("*.ipynb"):
        for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                lazy |= _imports(ast.parse("".join(cell["source"])))
    preloads = {
        script.name: [
            name
            for node in ast.parse(script.read_text(encoding="utf-8")).body
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["PRELOAD"]
            for name in ast.literal_eval(node.value)
        ]
        for script in SCRIPTS.glob("*.py")
    }
    assert preloads["render_notebook.py"] and preloads["efficacy_analysis.py"]
    stale = {script: [n for n in names if n not in lazy] for script, names in preloads.items()}
    assert not any(stale.values()), stale


def test_every_workflow_script_starts_with_the_job_server_import():
    for script in SCRIPTS.glob("*.py"):
        first = job_server.script_imports(script)[0]
        assert first == "k2trial.runtime.start_job", script.name


# -- a job in the server --------------------------------------------------------------------------------------------


def test_a_job_runs_forked_with_its_arguments_directory_environment_streams_and_status(server, job_script, tmp_path):
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    # the temporary directory is the one variable a job may set differently (Snakemake does, per job)
    env = _job_environment(TMPDIR=str(tmp_path))
    report, err, status, client = _run_job(job_script, cwd, "3", "b c", env=env, stdin="from stdin")
    assert status == 3
    assert report["pid"] != client and report["ppid"] != client, "the job ran in its own process, not the server"
    assert report["cwd"] == str(cwd)
    assert report["argv"] == ["3", "b c"]
    assert report["tmpdir"] == str(tmp_path)
    assert report["stdin"] == "from stdin"
    assert set(report["blas"]) == {1}  # every BLAS loaded (numpy's, scipy's when the server has it)
    assert "to stderr" in err
    # the second job of the script: again forked, again its own values
    report, _, status, client = _run_job(job_script, tmp_path, env=_job_environment())
    assert (status, report["tmpdir"], report["argv"]) == (0, os.environ.get("TMPDIR"), [])
    assert report["pid"] != client


def test_a_job_with_two_threads_has_two_blas_threads(server, job_script, tmp_path):
    env = dict(_job_environment(), **dict.fromkeys(job_server.THREAD_VARIABLES, "2"))
    report, _, status, client = _run_job(job_script, tmp_path, env=env)
    assert status == 0 and report["pid"] != client
    assert set(report["blas"]) == {2}


def test_a_job_with_another_environment_runs_in_its_own_process(server, job_script, tmp_path):
    env = _job_environment(PYTHONWARNINGS="ignore", **{job_server.VERBOSE: "1"})
    report, err, status, client = _run_job(job_script, tmp_path, env=env)
    assert status == 0
    assert report["pid"] == client
    assert "environment differs in K2TRIAL_JOB_SERVER_VERBOSE, PYTHONWARNINGS" in err


def test_a_job_outside_the_owner_s_descendants_runs_in_its_own_process(server, job_script, tmp_path):
    """As a Slurm job would: its environment names the server, but the Snakemake process is not its ancestor."""
    env = _job_environment()
    address = env[job_server.ADDRESS]
    path, _, owner = address.rpartition(":")
    env[job_server.ADDRESS] = f"{path}:{int(owner) + 99999}"
    report, _, status, client = _run_job(job_script, tmp_path, env=env)
    assert status == 0 and report["pid"] == client


def test_killing_the_job_s_process_kills_the_forked_job(server, job_script, tmp_path):
    marker = tmp_path / "pid"
    proc = subprocess.Popen(
        [sys.executable, str(job_script), "sleep", str(marker)], cwd=tmp_path, env=_job_environment(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert _wait_until(lambda: marker.exists() and marker.read_text().isdigit())
    forked = int(marker.read_text())
    assert forked != proc.pid
    proc.kill()
    proc.wait()
    assert _wait_until(lambda: not _alive(forked)), "the forked job outlived its client"


def test_a_signal_to_the_job_s_process_reaches_the_forked_job(server, job_script, tmp_path):
    marker = tmp_path / "pid"
    proc = subprocess.Popen(
        [sys.executable, str(job_script), "sleep", str(marker)], cwd=tmp_path, env=_job_environment(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert _wait_until(lambda: marker.exists() and marker.read_text().isdigit())
    forked = int(marker.read_text())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "ended without a status" in err
    assert _wait_until(lambda: not _alive(forked))


def test_the_server_ends_when_its_owner_is_gone(job_script, tmp_path, monkeypatch):
    monkeypatch.delenv(job_server.ADDRESS, raising=False)
    owner = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            import os, sys
            from k2trial.runtime import job_server
            handle = job_server.start([{str(job_script)!r}])
            print(handle.pid, handle.directory, flush=True)
            os._exit(0)  # no stop: as a killed Snakemake process
            """)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    served, directory = owner.stdout.split()
    assert _wait_until(lambda: not _alive(int(served))), "the server outlived its owner"
    assert not Path(directory).exists(), "the server left its socket directory behind"


def test_stop_ends_the_server_and_its_templates_and_removes_the_socket(job_script, monkeypatch):
    monkeypatch.delenv(job_server.ADDRESS, raising=False)
    handle = job_server.start([job_script, job_script])
    socket_path = os.environ[job_server.ADDRESS].rpartition(":")[0]
    assert Path(socket_path).exists()
    assert _wait_until(lambda: len(_children(handle.pid)) == 1), "no template started"
    template = _children(handle.pid)[0]
    handle.stop()
    assert handle.status is not None
    assert not Path(socket_path).exists() and job_server.ADDRESS not in os.environ
    assert _wait_until(lambda: not _alive(template))
    handle.stop()  # twice is harmless


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


# -- the workflow ---------------------------------------------------------------------------------------------------


@pytest.mark.workflow
def test_a_build_without_the_server_writes_the_same_bytes_as_with_it(tmp_path, monkeypatch):
    with_server = copy_workflow(tmp_path / "with" / "wf")
    env = dict(os.environ, PYTHONHASHSEED="0", **{job_server.VERBOSE: "1"})
    result = subprocess.run(
        [SNAKEMAKE, "--cores", "4"], cwd=with_server, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-4000:]
    served = result.stderr.count("to its template") + result.stderr.count(": forked ")
    assert served >= 15, result.stderr[-4000:]  # the server ran (nearly) every job
    without = copy_workflow(tmp_path / "without" / "wf")
    monkeypatch.setenv(job_server.ENABLED, "0")
    monkeypatch.setenv(job_server.VERBOSE, "1")
    plain = run_snakemake(without)
    assert plain.returncode == 0, plain.stderr[-4000:]
    assert "job server" not in plain.stderr  # no server, so no job asked one

    def hashes(workdir: Path) -> dict[str, str]:
        return {p: h for p, h in artifact_hashes(workdir).items() if h is not None}

    assert hashes(with_server) == hashes(without)
