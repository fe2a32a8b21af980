"""The preloaded job server: local jobs start by fork from one interpreter that has already imported their modules.

Every job of a local run is a fresh `python` process, and for the shipped data most of its time goes to importing
pandas, numpy, scipy, statsmodels, matplotlib or papermill and the library (0.25-1.2 s a job, about 5 of the 13
CPU-seconds of a full rebuild on two cores; issue 18). So at `onstart` the Snakemake process forks one server
(`start`; it has pandas and numpy imported already): the server imports what two or more of the run's scripts import
(`plan`, read from the scripts) and then, one at a time and in the order the jobs can start, forks a
template per script that also imports that script's own modules (`_Template`). For each job it, or the script's
template once ready, forks a child that runs the job's script just as `python script.py` would: with the job's
arguments, working directory, environment and standard streams, which the job's own process (the client, started by
Snakemake as always) passes over a Unix socket. The client waits for the child's exit status, forwards the signals
it receives to the child and exits with that status; a child whose client is gone (killed) kills itself. `stop`
(onsuccess, onerror, or the Snakemake process's exit) ends the server and its templates, and a server whose
Snakemake process is gone ends itself. A job runs with the library as it was when the run started.

A job runs in its own process as before whenever the server cannot run it exactly the same way: no server, another
interpreter, an environment that differs in anything read when an interpreter or a module starts (only the
temporary directory and the shell's own variables may differ; a thread count other than one is applied with
threadpoolctl), or a job that is not a descendant of the Snakemake process that started the server (a job of the
Slurm executor). The bytes a job writes are the same either way (tests/test_job_server.py).

Protocol (one connection per job): the client sends a length-prefixed JSON request with its stdin, stdout and stderr
as SCM_RIGHTS file descriptors; the server answers {"pid": n} or {"declined": reason} (a template answers for the
jobs the server passes on to it, with the connection); the child sends {"status": n} just before it exits. End of
file without a status means the child died (killed or crashed).
"""

from __future__ import annotations

import ast
import atexit
import gc
import importlib
import json
import logging
import os
import select
import selectors
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

#: Where a job finds the server: "<socket path>:<pid of the Snakemake process that started it>".
ADDRESS = "K2TRIAL_JOB_SERVER"
#: Set to "0" to run every job in its own process (the server is not started).
ENABLED = "K2TRIAL_JOB_SERVER_ENABLED"
#: Environment variables that may differ between a job and the server: read when used, not when Python or a module
#: starts (tempfile's cached directory is reset in the child). Snakemake sets the temporary directories per job, the
#: job's shell sets `_` (the command it runs), PWD and OLDPWD (its directory, which the child changes to) and SHLVL.
PER_JOB_VARIABLES = frozenset({"TMPDIR", "TMP", "TEMP", "TEMPDIR", "_", "PWD", "OLDPWD", "SHLVL"})
#: The variables Snakemake sets to a job's thread count (snakemake.shell). The BLAS and OpenMP libraries read them when
#: they load, in the server with the value of a one-thread job; a child for a job with another count sets the loaded
#: libraries to it (threadpoolctl), as the variables would have at their start.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
#: Set to "1": the server says on stderr what it imports, forks and passes on, a job why the server did not run it.
VERBOSE = "K2TRIAL_JOB_SERVER_VERBOSE"
#: the server's socket, in a directory `start` makes for it
SOCKET_NAME = "socket"
#: What Snakemake's script preamble imports (the classes of the pickled `snakemake` object, its logger): every job,
#: in its own process and again in the forked child, runs the preamble; the server imports these first.
PREAMBLE_MODULES = ("snakemake.iocontainers", "snakemake.io", "snakemake.logging")
#: How many ancestors of a job are searched for the Snakemake process (the job's shell and its parent are enough).
ANCESTOR_DEPTH = 8
_HEADER = struct.Struct("!I")
_MAX_MESSAGE = 1 << 24


# -- messages --------------------------------------------------------------------------------------------------------


def _send(sock: socket.socket, message: dict, fds: Sequence[int] = ()) -> None:
    data = json.dumps(message).encode()
    payload = _HEADER.pack(len(data)) + data
    if fds:
        socket.send_fds(sock, [payload], list(fds))
    else:
        sock.sendall(payload)


def _receive(sock: socket.socket, max_fds: int = 0) -> tuple[dict | None, list[int]]:
    """One message and the file descriptors sent with it; (None, []) at end of file."""
    fds: list[int] = []
    buffer = b""
    while len(buffer) < _HEADER.size:
        if max_fds and not fds:
            chunk, fds, _, _ = socket.recv_fds(sock, 1 << 16, max_fds)
        else:
            chunk = sock.recv(1 << 16)
        if not chunk:
            return None, fds
        buffer += chunk
    (size,) = _HEADER.unpack_from(buffer)
    if size > _MAX_MESSAGE:
        raise ValueError(f"job server message of {size} bytes")
    while len(buffer) < _HEADER.size + size:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return None, fds
        buffer += chunk
    return json.loads(buffer[_HEADER.size : _HEADER.size + size]), fds


# -- what the server imports -----------------------------------------------------------------------------------------


#: A script's top-level tuple of the modules its job imports later, lazily (through the library): its template
#: imports them too. tests/test_job_server.py checks that each is imported lazily somewhere in the library.
PRELOAD = "PRELOAD"


def script_imports(script: str | os.PathLike) -> list[str]:
    """The modules a script imports at its top level, in order, then those its PRELOAD tuple names.

    `from package import name` names a submodule or an attribute; `preload` imports `package.name` when it is a
    module and `package` otherwise."""
    names: list[str] = []
    later: list[str] = []
    for node in ast.parse(Path(script).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [PRELOAD]:
            later += list(ast.literal_eval(node.value))
    return names + later


def plan(scripts: Sequence[str | os.PathLike]) -> dict:
    """What the server imports (`shared`: Snakemake's preamble modules, then those that at least two of the scripts
    import, in order of first use) and the templates it starts, in order: each script with modules of its own (a
    module of one script only is imported by that script's template, `_Template`), and how many jobs run it.

    scripts: each job's script, in the order the jobs can start (a script once per job)."""
    jobs: dict[str, int] = {}
    for script in scripts:
        key = os.path.realpath(script)
        jobs[key] = jobs.get(key, 0) + 1
    imports = {script: list(dict.fromkeys(script_imports(script))) for script in jobs}
    uses: dict[str, int] = {}
    for names in imports.values():
        for name in names:
            uses[name] = uses.get(name, 0) + 1
    shared = [name for name, count in uses.items() if count >= 2]
    templates = [[script, count] for script, count in jobs.items() if set(imports[script]) - set(shared)]
    return {"shared": [*PREAMBLE_MODULES, *shared], "templates": templates}


def preload(name: str) -> None:
    """Import `name` (a module, or `package.attribute`: then its package); an import error is left to the job."""
    try:
        importlib.import_module(name)
    except ImportError:
        parent = name.rpartition(".")[0]
        if parent:
            try:
                importlib.import_module(parent)
            except ImportError:
                pass
    except Exception:  # a module that fails to import fails in the job, with the job's message
        pass


# -- the server ------------------------------------------------------------------------------------------------------


def _interpreter() -> dict:
    return {"executable": os.path.realpath(sys.executable), "prefix": sys.prefix, "flags": list(sys.flags)}


def _decline_reason(request: dict, environment: dict[str, str]) -> str | None:
    if request.get("interpreter") != _interpreter():
        return "another interpreter"
    theirs = request.get("environment", {})
    differing = {key for key in set(theirs) | set(environment) if theirs.get(key) != environment.get(key)}
    differing -= PER_JOB_VARIABLES | {ADDRESS}
    if differing & set(THREAD_VARIABLES) and _thread_count(theirs) is None:
        return "the thread variables differ from each other"
    differing -= set(THREAD_VARIABLES)
    if differing:
        return "environment differs in " + ", ".join(sorted(differing))
    return None


def _thread_count(environment: dict[str, str]) -> int | None:
    """The job's thread count when all THREAD_VARIABLES state the same one."""
    values = {environment.get(name) for name in THREAD_VARIABLES}
    value = values.pop() if len(values) == 1 else None
    return int(value) if value is not None and value.isdigit() and int(value) > 0 else None


class _Template:
    """A process the server forks once its shared imports are done, which then imports one script's own modules and
    forks that script's jobs (`_template_main`): so a job whose modules only it needs (scipy.stats for the efficacy
    analysis, matplotlib for the figures) starts with them imported too, and the server never waits for them."""

    def __init__(self, script: str, jobs: int) -> None:
        self.script = script
        self.jobs = jobs  # how many jobs of this script the run will start: the template ends after the last
        self.pid: int | None = None
        self.sock: socket.socket | None = None
        self.ready = False


class _Server:
    def __init__(self, listener: socket.socket, owner: int, plan: dict, environment: dict[str, str]) -> None:
        self.listener = listener
        self.owner = owner
        self.pending = list(plan["shared"])
        self.templates = [_Template(script, int(jobs)) for script, jobs in plan["templates"]]
        self.by_script = {template.script: template for template in self.templates}
        self.to_start = list(self.templates)
        self.starting: _Template | None = None
        # the one-thread job's environment the server was started with (imports may add variables to os.environ:
        # threadpoolctl sets KMP_DUPLICATE_LIB_OK)
        self.environment = dict(environment)
        self.verbose = environment.get(VERBOSE) == "1"
        self.children: set[int] = set()
        self.stopping = False
        self.selector = selectors.DefaultSelector()
        self.wakeup_read, self.wakeup_write = os.pipe()
        os.set_blocking(self.wakeup_read, False)
        os.set_blocking(self.wakeup_write, False)

    def serve(self) -> None:
        """Import the shared modules (every job needs them: one that arrives meanwhile waits rather than import them
        itself beside the server), then serve every waiting job first and, in between, start the next template, one
        at a time (each takes a core the critical path may need)."""
        for name in self.pending:
            began = time.perf_counter()
            preload(name)
            self._say(f"imported {name} in {time.perf_counter() - began:.3f} s")
        self.pending = []
        # the imported modules live as long as every job: the jobs' cycle collections need not walk them, nor touch
        # (and so copy) their pages
        gc.freeze()
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        signal.set_wakeup_fd(self.wakeup_write)
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.wakeup_read, selectors.EVENT_READ)
        while os.getppid() == self.owner and not self.stopping:
            busy = bool(self.to_start and self.starting is None)
            events = self.selector.select(timeout=0 if busy else 0.5)
            for key, _ in events:
                if key.fileobj is self.listener:
                    self._accept()
                elif key.fileobj is self.wakeup_read:
                    try:
                        os.read(self.wakeup_read, 4096)
                    except BlockingIOError:
                        pass
                else:
                    self._template_message(key.data)
            self._reap()
            if events:
                continue
            if self.to_start and self.starting is None:
                self._start_template(self.to_start.pop(0))
        self._shutdown()

    def _say(self, text: str) -> None:
        if self.verbose:
            print(f"job server {time.time() % 1000:8.3f}: {text}", file=sys.stderr, flush=True)

    def _reap(self) -> None:
        for pid in list(self.children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.children.discard(pid)

    def _shutdown(self) -> None:
        for template in self.templates:
            if template.pid in self.children:
                try:
                    os.kill(template.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for pid in self.children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        if os.getppid() != self.owner:
            # the Snakemake process is gone without stopping the server (killed: no onsuccess, onerror or atexit),
            # so nobody else removes the socket and its directory
            remove_socket(self.listener.getsockname())

    def _close_in_child(self) -> None:
        for fd in (self.listener.fileno(), self.wakeup_read, self.wakeup_write):
            os.close(fd)
        self.selector.close()
        for template in self.templates:
            if template.sock is not None:
                template.sock.close()

    def _start_template(self, template: _Template) -> None:
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the template process
            ours.close()
            self._close_in_child()
            _template_main(theirs, template.script, self.verbose)
        theirs.close()
        template.pid, template.sock = pid, ours
        self.children.add(pid)
        self.starting = template
        self.selector.register(ours, selectors.EVENT_READ, template)

    def _count_job(self, template: _Template) -> None:
        """One job of the template's script has started: after the last, the template is not started or is told to
        end (its socket closes)."""
        template.jobs -= 1
        if template.jobs > 0:
            return
        if template in self.to_start:
            self.to_start.remove(template)
        if template.sock is not None:
            self.selector.unregister(template.sock)
            template.sock.close()
            template.sock, template.ready = None, False
            if self.starting is template:
                self.starting = None

    def _template_message(self, template: _Template) -> None:
        try:
            message, _ = _receive(template.sock)
        except OSError:
            message = None
        if message is None:  # the template ended (its last job started) or failed
            self.selector.unregister(template.sock)
            template.sock.close()
            template.sock, template.ready = None, False
        else:
            template.ready = bool(message.get("ready"))
            self._say(f"template for {os.path.basename(template.script)} ready")
        if self.starting is template:
            self.starting = None

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(5)  # a client sends its request at once; none may hold the server up
            request, fds = _receive(conn, max_fds=3)
            if request is None or len(fds) != 3:
                return
            reason = _decline_reason(request, self.environment)
            if reason:
                _send(conn, {"declined": reason})
                return
            template = self.by_script.get(request.get("script", ""))
            if template is not None and template.ready and template.jobs > 0:
                try:
                    _send(template.sock, request, fds=[conn.fileno(), *fds])
                    self._say(f"passed {os.path.basename(template.script)} to its template")
                    self._count_job(template)
                    return
                except OSError:
                    template.ready = False
            if template is not None:
                self._count_job(template)
            pid = _fork_job(conn, request, fds, self._close_in_child)
            self.children.add(pid)
            self._say(f"forked {pid} for {os.path.basename(request.get('script', '?'))}")
        except OSError:
            pass
        finally:
            for fd in fds:
                os.close(fd)
            conn.close()


def _template_main(sock: socket.socket, script: str, verbose: bool) -> None:  # pragma: no cover
    """The template process: import the script's modules, say so, then fork one child per job the server passes on
    (the client's connection and standard streams come with the request) until the server closes the socket (its
    last job has started); then wait for those children and end. It ends at once when the server is gone."""
    server = os.getppid()
    status = 0
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        began = time.perf_counter()
        for name in script_imports(script):
            preload(name)
        gc.freeze()  # as the server's (`_Server.serve`)
        if verbose:
            print(f"job server: imported the modules of {os.path.basename(script)} in "
                  f"{time.perf_counter() - began:.3f} s", file=sys.stderr, flush=True)  # fmt: skip
        _send(sock, {"ready": True})
        children: list[int] = []
        while os.getppid() == server:
            ready, _, _ = select.select([sock], [], [], 0.5)
            if not ready:
                continue
            request, fds = _receive(sock, max_fds=4)
            if request is None or len(fds) != 4:
                break
            conn = socket.socket(fileno=fds[0])
            children.append(_fork_job(conn, request, fds[1:], sock.close))
            conn.close()
            for fd in fds[1:]:
                os.close(fd)
        for pid in children:  # reaped here, so that their CPU time counts in the run's
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
    except BaseException:
        status = 1
    finally:
        os._exit(status)


def _fork_job(conn: socket.socket, request: dict, fds: list[int], close_in_child: Callable[[], None]) -> int:
    """Fork the job's process (`_run_child`, after `close_in_child` closed what belongs to the forking process) and
    tell the client its pid; returns the pid. A client gone meanwhile is no error: its job then ends itself."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the job's process; its status reaches the client
        close_in_child()
        conn.settimeout(None)
        _run_child(conn, request, fds)
    try:
        _send(conn, {"pid": pid})
    except OSError:
        pass
    return pid


#: In a child of the server: the connection to the job's client (`report_exit` sends the status through it).
_CHILD: dict = {}


def report_exit(status: int) -> None:
    """Tell the job's client its exit status; call just before a job ends its process with os._exit (no-op outside a
    child of the server, and in a process the child forked)."""
    conn = _CHILD.get("conn")
    if conn is None or _CHILD.get("pid") != os.getpid():
        return
    try:
        _send(conn, {"status": int(status)})
    except OSError:
        pass


def _watch_client(conn: socket.socket) -> None:
    """End this job when its client is gone: the client holds the other end of `conn` for as long as it lives."""
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass
    if _CHILD.get("pid") == os.getpid() and not _CHILD.get("ending"):
        os.kill(os.getpid(), signal.SIGKILL)


def _run_child(conn: socket.socket, request: dict, fds: list[int]) -> None:  # pragma: no cover - see above
    """Become the job: its streams, directory, arguments and environment, then its script; never returns."""
    import runpy

    status = 1
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in set(fds) - {0, 1, 2}:
            os.close(fd)
        # standard streams on the job's descriptors, as a new interpreter makes them (the server's may be another
        # program's objects: Snakemake's or a test runner's)
        sys.stdin = open(0, encoding="locale", closefd=False)
        sys.stdout = open(1, "w", encoding="locale", closefd=False, buffering=1 if os.isatty(1) else -1)
        sys.stderr = open(2, "w", encoding="locale", errors="backslashreplace", closefd=False, buffering=1)
        os.chdir(request["cwd"])
        threads = _thread_count(request["environment"])
        if threads != _thread_count(dict(os.environ)):
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=threads)
        os.environ.clear()
        os.environ.update(request["environment"])
        tempfile.tempdir = None
        sys.argv = list(request["argv"])
        sys.path[:] = request["path"]
        _CHILD.update(conn=conn, pid=os.getpid())
        threading.Thread(target=_watch_client, args=(conn,), daemon=True).start()
        try:
            runpy.run_path(request["argv"][0], run_name="__main__")
            status = 0
        except SystemExit as exc:
            code = exc.code
            status = code if isinstance(code, int) else (0 if code is None else 1)
            if not isinstance(code, int) and code is not None:
                print(code, file=sys.stderr)
        except BaseException:  # reported as Python would, then the status
            import traceback

            traceback.print_exc()
            status = 1
    finally:
        _CHILD["ending"] = True
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        report_exit(status)
        os._exit(status)


def _become_server(listener: socket.socket, owner: int, work: dict, environment: dict[str, str]) -> None:
    """In the process forked from Snakemake's: drop what belongs to Snakemake (its signal handlers and log handlers:
    a job must not write into Snakemake's log), take a one-thread job's environment, with the BLAS libraries numpy
    loaded in Snakemake's process set to one thread as that environment would have them, then serve; never returns.
    """
    status = 1
    try:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        for logger in loggers:
            if isinstance(logger, logging.Logger):
                logger.handlers.clear()
        os.environ.clear()
        os.environ.update(environment)
        threads = _thread_count(environment)
        if threads is not None:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=threads)
        listener.setblocking(False)
        _Server(listener, owner, work, environment).serve()
        status = 0
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(status)  # never back into Snakemake's code; no teardown of the imported modules


# -- the Snakemake side ----------------------------------------------------------------------------------------------


class Handle:
    """The running server of one Snakemake process: its process id and its socket's directory."""

    def __init__(self, pid: int, directory: str) -> None:
        self.pid = pid
        self.directory = directory
        self.status: int | None = None

    def stop(self) -> None:
        """End the server (and with it its templates) and wait for it, so that its CPU time counts in the run's."""
        if not os.path.isdir(self.directory):
            return  # stopped already
        try:
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while True:
                done, status = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    self.status = status
                    break
                if time.monotonic() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    _, self.status = os.waitpid(self.pid, 0)
                    break
                time.sleep(0.002)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.environ.pop(ADDRESS, None)
        remove_socket(os.path.join(self.directory, SOCKET_NAME))


def remove_socket(path: str) -> None:
    """Remove the server's socket and its directory (made for it alone by `start`)."""
    directory = os.path.dirname(path)
    try:
        os.unlink(path)
        os.rmdir(directory)
    except FileNotFoundError:
        pass


def start(scripts: Sequence[str | os.PathLike]) -> Handle | None:
    """Start the server for the jobs this process will launch (None when disabled by ENABLED=0).

    The server is forked from this process (Snakemake's, which has imported pandas and numpy already, and with
    them most of what every job imports; at `onstart` it has no other thread). The socket is bound before, so no
    job finds it missing. The jobs learn the address from the environment they inherit."""
    if os.environ.get(ENABLED, "1") == "0" or not hasattr(os, "fork"):
        return None
    directory = tempfile.mkdtemp(prefix="k2trial-jobs-")
    path = os.path.join(directory, SOCKET_NAME)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    work = plan(scripts)
    environment = dict(os.environ, **dict.fromkeys(THREAD_VARIABLES, "1"))
    environment.pop(ADDRESS, None)
    owner = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the server process
        _become_server(listener, owner, work, environment)
    listener.close()
    handle = Handle(pid, directory)
    os.environ[ADDRESS] = f"{path}:{owner}"
    atexit.register(handle.stop)
    return handle


# -- the job's side --------------------------------------------------------------------------------------------------


def _is_ancestor(pid: int) -> bool:
    current = os.getppid()
    for _ in range(ANCESTOR_DEPTH):
        if current == pid:
            return True
        if current <= 1:
            return False
        try:
            with open(f"/proc/{current}/stat", encoding="utf-8") as handle:
                current = int(handle.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def run_in_server() -> None:
    """Run this job in the server and exit with its status, or return (the job then runs here, in its own process).

    Called once at the top of a job script (through `import k2trial.runtime.start_job`); a child of the server
    imported that module already, so there it does nothing."""
    address = os.environ.get(ADDRESS)
    if not address or "pid" in _CHILD:
        return
    path, _, owner = address.rpartition(":")
    if not owner.isdigit() or not _is_ancestor(int(owner)):
        return
    main = getattr(sys.modules.get("__main__"), "__file__", None)  # the script (Snakemake's preamble sets it)
    request = {
        "script": os.path.realpath(main) if main else "",
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "environment": dict(os.environ),
        "interpreter": _interpreter(),
        "path": sys.path,
    }
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        _send(conn, request, fds=[0, 1, 2])
        answer, _ = _receive(conn)
    except OSError:
        conn.close()
        return
    if not answer or "pid" not in answer:
        conn.close()
        if os.environ.get(VERBOSE) == "1":
            reason = (answer or {}).get("declined", "no answer")
            print(f"job server: {reason}; the job runs in its own process", file=sys.stderr)
        return
    child = int(answer["pid"])

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    try:
        result, _ = _receive(conn)
    except OSError:
        result = None
    if result is None or "status" not in result:
        print(f"\nthe job's process (pid {child}, forked by the job server) ended without a status\n", file=sys.stderr)
        status = 1
    else:
        status = int(result["status"])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
