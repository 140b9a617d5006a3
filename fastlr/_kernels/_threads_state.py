"""The thread counts the kernels run with: a leaf that ``fastlr._threads`` sets and the kernels read.

One process-wide count plus a per-Python-thread limit. The Numba kernels read
``get_num_threads()`` on each call; the compiled core keeps its own copy of both
settings, kept in step here once the backend registry has loaded it
(``register_core``). Argument checking is ``fastlr._threads``'s job.
"""

from __future__ import annotations

import os
import threading

#: Most threads a kernel may be given: the compiled core takes a C ``int``, and no
#: machine has more hardware threads than this.
MAX_THREADS = 2**15


def _default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and 0 < int(env) <= MAX_THREADS:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_global_threads = _default_threads()
_local = threading.local()
cores: list = []  # the loaded _core module, if any


def get_num_threads() -> int:
    """Threads a kernel called from this Python thread may use."""
    return getattr(_local, "limit", None) or _global_threads


def set_global(n: int) -> None:
    """Set the process-wide count (``n`` already checked)."""
    global _global_threads
    _global_threads = n
    for core in cores:
        core.set_num_threads(n)


def local_limit() -> int | None:
    """This Python thread's limit, or None."""
    return getattr(_local, "limit", None)


def set_local(n: int | None) -> None:
    """Set (or, with None, lift) this Python thread's limit (``n`` already checked)."""
    _local.limit = n
    for core in cores:
        core.set_local_num_threads(n or 0)


#: Set to 0 (or off, false, no) to turn off the compiled core's busy-thread check: a kernel whose result does
#: not depend on its thread count runs on fewer threads while another thread of this process is running
#: (e.g. OpenBLAS's worker, still spinning after the caller's own multi-threaded BLAS call), which would
#: otherwise share a core with fastlr's second thread, and, if short, on one thread after a pause without
#: kernel calls from the calling thread (its OpenMP worker, asleep, would start too late to help). Linux only.
BUSY_CHECK_ENV = "FASTLR_BUSY_CHECK"


def busy_check_wanted() -> bool:
    """Whether the environment leaves the busy-thread check on (``FASTLR_BUSY_CHECK``; on by default)."""
    return os.environ.get(BUSY_CHECK_ENV, "").strip().lower() not in ("0", "off", "false", "no")


def register_core(core) -> None:
    """Called once when the compiled backend loads: sync its thread settings and the busy-thread check."""
    core.set_num_threads(_global_threads)
    if hasattr(core, "_set_busy_check"):  # absent from builds before it
        core._set_busy_check(busy_check_wanted())
    if getattr(_local, "limit", None):
        core.set_local_num_threads(_local.limit)
    cores.append(core)
