"""How a job's process gets its memory: the memory of freed arrays is reused instead of fresh pages asked of the
system for every new array, and those fresh pages are ordinary ones, not huge pages.

glibc's malloc gives every block above its mmap threshold (at most 32 MB) a mapping of its own and unmaps it when
it is freed, and returns freed memory at the top of its heap to the system; the next array of that size then costs
a page fault and a zeroed page per 4 KB. Every pandas operation on a column of 100,000 subjects' lab or diary
records (5.4 million rows, 43 MB a float column) makes such temporaries, so much of the heavy jobs' time was the
system's. Measured on this 2-core machine: reading and validating 100,000 subjects took 22 s (13 of them system
time) and 13-15 s with the heap settings (SETTINGS); the whole 100,000-subject pipeline 190 s and 157 s.

numpy asks the kernel for huge pages for its arrays of 4 MB or more; with transparent huge pages on `madvise`, as
here, the first touch of such an array makes the kernel find 2 MB pages, compacting memory to do so. On this virtual
machine 1 GB of fresh memory took 1.5-7.7 s with huge pages and 0.55-0.64 s without; the whole 100,000-subject
pipeline, twice each way back to back, 222 and 284 s with them and 194 and 235 s without (validation alone 1-6 s
slower without). Page tables are then 512 times longer, which is what reading a process's PSS walks: the
benchmark's sampler limits its own share of a core (bench/run_benchmarks.py).

The settings change speed and the shape of a process's memory over time, never a result (the ADaM files' sha256 are
the same); the peak moves little, since freed memory is what the next arrays take (validate_raw_data 3.00 -> 3.08
GB, write_adam 3.02 -> 3.33 GB).
"""

from __future__ import annotations

import ctypes
import sys

#: glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
#: What `retain_freed_memory` sets, in this order:
SETTINGS = (
    # no block gets a mapping of its own: every array comes from the heap, where freed ones are reused
    (_M_MMAP_MAX, 0),
    # freed memory at the top of the heap goes back to the system beyond 1 GB only (glibc: 128 KB; with 256 MB
    # reading and validating 100,000 subjects took 3-5 s longer)
    (_M_TRIM_THRESHOLD, 2**30),
    # one heap for all threads (glibc: up to 8 per core), so that the threads writing a dataset's files side by side
    # (k2trial.adam.write) reuse each other's freed memory instead of each keeping its own (write_adam at 100,000
    # subjects: 3.6 GB peak with a heap per thread)
    (_M_ARENA_MAX, 1),
)


def retain_freed_memory() -> bool:
    """Make this process reuse the memory of freed arrays (SETTINGS) and numpy ask for no huge pages (numpy's own
    switch, which its import reads from NUMPY_MADVISE_HUGEPAGE: a job forked from the preloaded job server imported
    numpy long before). Process-wide and for the process's life; set by every workflow job
    (k2trial.runtime.step.run_step) and the planning benchmark, never on import. Returns False (and does nothing)
    where malloc is not glibc's."""
    if not sys.platform.startswith("linux"):
        return False
    try:  # the C library this process runs on, loaded already (no search for it: every job calls this)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    if not all([bool(mallopt(parameter, value)) for parameter, value in SETTINGS]):
        return False
    from numpy._core import multiarray  # imported already in every job the job server forks

    set_huge_pages = getattr(multiarray, "_set_madvise_hugepage", None)
    if set_huge_pages is not None:
        set_huge_pages(False)
    return True
