"""Helpers for the Numba backend: lazily compiled kernels and thread handling."""

from __future__ import annotations

import functools
import inspect
import threading
import types

import numba as nb
import numpy as np

from .. import _threads_state

#: A problem below this many element operations runs on one thread.
MIN_WORK_PER_THREAD = 16384


def useful_threads(work: int) -> int:
    """Threads worth using for ``work`` units, as csrc/include/fastlr/common.hpp decides."""
    return int(max(1, min(_threads_state.get_num_threads(), nb.config.NUMBA_NUM_THREADS, work // MIN_WORK_PER_THREAD)))


def threaded(kernel):
    """Run a Python-level kernel wrapper with Numba's thread count set to fastlr's.

    Numba's setting is per Python thread; it is restored afterwards.
    """

    @functools.wraps(kernel)
    def wrapper(*args, **kwargs):
        previous = nb.get_num_threads()
        nb.set_num_threads(min(_threads_state.get_num_threads(), nb.config.NUMBA_NUM_THREADS))
        try:
            return kernel(*args, **kwargs)
        finally:
            nb.set_num_threads(previous)

    return wrapper


def nnz_chunks(indptr, parts: int) -> np.ndarray:
    """Chunk boundaries over the rows of a compressed matrix, balanced by nonzeros."""
    outer = len(indptr) - 1
    nnz = int(indptr[-1]) if outer >= 0 else 0
    targets = (np.arange(parts + 1, dtype=np.int64) * nnz) // parts
    bounds = np.searchsorted(indptr[:-1], targets, side="left").astype(np.int64)
    bounds[0], bounds[-1] = 0, outer
    return bounds


def sum_chunks(n: int, entries: int, acc_size: int) -> int:
    """Row chunks whose partial sums are added in a fixed order, as csrc/include/fastlr/common.hpp
    decides: a function of the problem only, so results are bit-identical at every thread count."""
    return int(max(1, min(n // 1024, entries // (8 * max(acc_size, 1)), 8)))


def even_chunks(n: int, parts: int) -> np.ndarray:
    """Chunk boundaries splitting range(n) into ``parts`` contiguous pieces."""
    return (np.arange(parts + 1, dtype=np.int64) * n) // parts


def readonly(array_type):
    """The read-only variant of a Numba array type, for a kernel's input arrays.

    A signature with read-only inputs accepts writeable arrays too (Numba converts
    mutable to read-only safely), so one specialization serves ``np.load(...,
    mmap_mode="r")`` arrays, ``setflags(write=False)`` views and ordinary arrays.
    """
    return array_type.copy(readonly=True)


_FLOAT_DTYPES = {np.dtype(np.float32): nb.float32, np.dtype(np.float64): nb.float64}
_INDEX_DTYPES = {np.dtype(np.int32): nb.int32, np.dtype(np.int64): nb.int64}


class LazyKernel:
    """A Numba kernel with explicit signatures, each compiled on its first call.

    ``template(T, I)`` gives the one signature for float type ``T`` (float32 or
    float64) and index type ``I`` (int32 or int64). The argument named ``T``
    decides T by its dtype and the argument named ``I`` (sparse kernels) decides
    I; the signature is compiled (or loaded from Numba's on-disk cache) the first
    time that combination is called, so importing the backend compiles nothing.
    Any other dtype raises TypeError naming the argument, and arguments that do
    not fit the chosen signature get Numba's "No matching definition" TypeError:
    exactly the types the eager signatures accepted, never a new specialization.

    With ``parallel=True``, a call whose ``chunks`` argument (the chunk
    boundaries) holds a single chunk runs a serial compilation of the same
    function instead: the same arithmetic in the same order (one chunk is one
    loop iteration either way), without the parallel loop's scheduling, and a
    few times quicker to compile, so a first small call does not wait for the
    parallel version.
    """

    def __init__(self, func, template, T, I=None, chunks="bounds", **options):
        names = list(inspect.signature(func).parameters)
        self._template = template
        self._t_name, self._t_pos = T, names.index(T)
        self._i_name, self._i_pos = I, (None if I is None else names.index(I))
        self._chunks_pos = names.index(chunks) if options.get("parallel") else None
        self._variants = {True: (func, options)}
        if self._chunks_pos is not None:
            # A distinct function object and name: Numba's on-disk cache does not key on the
            # compile options, so the serial variant needs its own cache files.
            serial = types.FunctionType(func.__code__, func.__globals__, func.__name__, func.__defaults__,
                                        func.__closure__)
            serial.__qualname__ = f"{func.__qualname__}_serial"
            serial.__module__ = func.__module__
            self._variants[False] = (serial, dict(options, parallel=False))
        self._dispatchers: dict = {}
        self._lock = threading.Lock()
        functools.update_wrapper(self, func)

    def __call__(self, *args):
        key = (
            args[self._t_pos].dtype,
            None if self._i_pos is None else args[self._i_pos].dtype,
            self._chunks_pos is None or len(args[self._chunks_pos]) > 2,
        )
        dispatcher = self._dispatchers.get(key)
        if dispatcher is None:
            dispatcher = self._compile(key)
        return dispatcher(*args)

    def _compile(self, key):
        t_dtype, i_dtype, parallel = key
        T = _FLOAT_DTYPES.get(t_dtype)
        if T is None:
            raise TypeError(f"{self._t_name}: dtype must be float32 or float64, got {t_dtype}")
        I = nb.int64
        if self._i_pos is not None:
            I = _INDEX_DTYPES.get(i_dtype)
            if I is None:
                raise TypeError(f"{self._i_name}: dtype must be int32 or int64, got {i_dtype}")
        with self._lock:
            if key not in self._dispatchers:
                func, options = self._variants[parallel]
                self._dispatchers[key] = nb.njit([self._template(T, I)], **options)(func)
            return self._dispatchers[key]

    @property
    def signatures(self) -> list:
        """The signatures compiled (or loaded from the cache) so far in this process, both variants."""
        return [sig for d in list(self._dispatchers.values()) for sig in d.signatures]


def kernel(template, T, I=None, **options):
    """Decorator: a :class:`LazyKernel` over ``template`` with ``numba.njit`` ``options``."""

    def decorate(func):
        return LazyKernel(func, template, T, I, **options)

    return decorate
