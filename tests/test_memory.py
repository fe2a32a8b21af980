"""k2trial.runtime.memory: a workflow job's large arrays come from the heap, where freed memory is reused, and
numpy asks for no huge pages. Each check runs in a fresh interpreter (the settings last for a process's life);
glibc's own counters (mallinfo2) tell where an allocation went."""

import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc settings")

#: In the child: `mapped(n)` is how many bytes of separately mapped blocks (mallinfo2 hblkhd) an array of n bytes
#: adds while it lives.
MAPPED = textwrap.dedent("""
    import ctypes, ctypes.util
    import numpy as np
    from numpy._core import multiarray

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                    "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.mallinfo2.restype = MallInfo2

    def mapped(size):
        before = libc.mallinfo2().hblkhd
        block = np.ones(size // 8)
        after = libc.mallinfo2().hblkhd
        del block
        return after - before
    """)

SIZE = 64 * 2**20  # above glibc's largest mmap threshold (32 MB): mapped on its own by default


def _run(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", MAPPED + textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_retained_memory_serves_large_arrays_from_the_heap():
    before, retained, after = _run(f"""
        from k2trial.runtime.memory import retain_freed_memory
        print(mapped({SIZE}))
        print(retain_freed_memory())
        print(mapped({SIZE}), multiarray._get_madvise_hugepage())
        """)
    assert int(before) >= SIZE  # glibc's default: a mapping of its own, unmapped when freed
    assert retained == "True"
    assert after.split() == ["0", "False"]


def test_every_workflow_job_retains_freed_memory(tmp_path):
    (mapped_in_job,) = _run(f"""
        from k2trial.runtime.step import run_step

        class Files(list):
            def keys(self):
                return []

        class Job:  # what run_step reads of Snakemake's `snakemake` object
            rule = "probe"
            log = Files([{str(tmp_path / "probe.log")!r}])
            output = Files()

        run_step(Job(), lambda smk: print(mapped({SIZE}), multiarray._get_madvise_hugepage()))
        """)
    assert mapped_in_job.split() == ["0", "False"]
