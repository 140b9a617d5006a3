"""Thread settings shared by the compiled (OpenMP) and Numba kernels.

One process-wide count, plus a per-Python-thread limit (``thread_limit``) so
that code running several kernels side by side (e.g. a training batch in a
thread pool) can give each one thread without touching the others.
"""

from __future__ import annotations

import operator
from contextlib import contextmanager

from . import _backend
from ._kernels import _threads_state as _state
from ._kernels._threads_state import MAX_THREADS

__all__ = ["get_num_threads", "set_num_threads", "thread_limit"]


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
    return _state.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads used by fastlr's OpenMP and Numba kernels.

    Parameters
    ----------
    n : int
        Number of threads, 1 <= n <= 2**15 (``MAX_THREADS``). BLAS thread pools are not affected; use
        ``threadpoolctl`` for those.
    """
    _state.set_global(_check_count(n))


@contextmanager
def thread_limit(n: int):
    """Limit the kernels called from *this* Python thread to ``n`` threads.

    Other Python threads keep their own setting, so this is safe inside a
    thread pool.
    """
    n = _check_count(n)
    if not _state.cores:
        # Load the compiled core now if it is available: it keeps its own per-thread limit, which a
        # limit set before it loaded would never reach. None (and a recorded reason) if unavailable.
        _backend._load("cpp")
    previous = _state.local_limit()
    _state.set_local(n)
    try:
        yield
    finally:
        _state.set_local(previous)

