"""Thread settings shared by the compiled (OpenMP) and Numba kernels.

One process-wide count, plus a per-Python-thread limit (``thread_limit``) so
that code running several kernels side by side (e.g. a training batch in a
thread pool) can give each one thread without touching the others.
"""

from __future__ import annotations

import operator
import os
import threading
from contextlib import contextmanager

__all__ = ["get_num_threads", "set_num_threads", "thread_limit"]


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
_core_hooks: list = []  # the loaded _core module, if any (set by _backend)


def _check_count(n, name="n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError(f"{name}: number of threads must be an integer, got {n!r}")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"{name}: number of threads must be >= 1, got {n}")
    if n > MAX_THREADS:
        raise ValueError(f"{name}: number of threads must be <= {MAX_THREADS}, got {n}")
    return n


def get_num_threads() -> int:
    """Threads a fastlr kernel called from this Python thread may use."""
    return getattr(_local, "limit", None) or _global_threads


def set_num_threads(n: int) -> None:
    """Set the number of threads used by fastlr's OpenMP and Numba kernels.

    Parameters
    ----------
    n : int
        Number of threads, 1 <= n <= 2**15 (``MAX_THREADS``). BLAS thread pools are not affected; use
        ``threadpoolctl`` for those.
    """
    global _global_threads
    _global_threads = _check_count(n)
    for core in _core_hooks:
        core.set_num_threads(_global_threads)


@contextmanager
def thread_limit(n: int):
    """Limit the kernels called from *this* Python thread to ``n`` threads.

    Other Python threads keep their own setting, so this is safe inside a
    thread pool.
    """
    n = _check_count(n)
    previous = getattr(_local, "limit", None)
    _local.limit = n
    for core in _compiled_cores():
        core.set_local_num_threads(n)
    try:
        yield
    finally:
        _local.limit = previous
        for core in _core_hooks:
            core.set_local_num_threads(previous or 0)


def _compiled_cores() -> list:
    """The compiled core (loaded now if it is available: the C++ side keeps its own
    per-thread limit, which a limit set before the core loaded would never reach)."""
    if not _core_hooks:
        from . import _backend

        _backend._load("cpp")  # registers the core here; None (and a recorded reason) if unavailable
    return _core_hooks


def _register_core(core) -> None:
    """Called once when the compiled backend loads: sync its thread settings."""
    core.set_num_threads(_global_threads)
    if getattr(_local, "limit", None):
        core.set_local_num_threads(_local.limit)
    _core_hooks.append(core)
