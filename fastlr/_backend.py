"""Backend registry: the compiled ``_core`` (C++/OpenMP), Numba, and the NumPy reference.

Every backend is a module exposing the same kernel names (see
``kernel_names()``). Algorithms call ``get_backend(backend)`` and use the
kernels without branching on which backend they got.

The default is the first of ``cpp``, ``numba``, ``numpy`` that loads, or the
``FASTLR_BACKEND`` environment variable. Falling back from ``cpp`` warns once
with the reason; explicitly asking for a backend that cannot load raises
``ImportError`` with the reason.

A backend is available when its module imports and has every kernel. Loading
the Numba backend imports Numba but compiles nothing: each Numba kernel compiles
(or loads from Numba's disk cache) the signature it needs on its first call, so
``available_backends()`` stays quick on a fresh install.
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from contextlib import contextmanager, nullcontext
from types import ModuleType

from ._caches import read_cache_sizes
from ._kernels import _threads_state, reference

__all__ = [
    "BACKENDS",
    "BackendFallbackWarning",
    "available_backends",
    "backend_errors",
    "current_backend",
    "get_backend",
    "kernel_names",
    "set_backend",
    "use_backend",
]

#: Backends in order of preference.
BACKENDS = ("cpp", "numba", "numpy")
_MODULES = {"cpp": "fastlr._core", "numba": "fastlr._kernels.numba", "numpy": "fastlr._kernels.reference"}

#: How long GNU OpenMP's idle workers spin before they sleep, in pause iterations (GOMP_SPINCOUNT), set
#: while ``_core`` loads its libgomp. libgomp's default, 300000, spins ~11 ms after every parallel region
#: (36 ns a pause on a Zen 2 under KVM): through the serial steps between fastlr's passes the idle worker
#: holds a core, and beside other busy threads (another process; an OpenBLAS worker still spinning after
#: the caller's own multi-threaded BLAS call) it takes the main thread's share. scw 5760 x 1080 at load
#: 11-15 on 2 cores: one thread 25-30 ms; two threads 63-65 ms at 300000, 31-33 at 10000, 27.5-28.4 at
#: 1000, 26-28 at 0. 1000 (~36 us) still bridges the back-to-back regions of one product. The user's
#: OMP_WAIT_POLICY or GOMP_SPINCOUNT wins; a libgomp loaded before fastlr's keeps its own setting.
GOMP_SPIN_COUNT = 1000
_omp_wait = "not loaded"

def kernel_names() -> tuple[str, ...]:
    """Kernels every backend provides, with the same semantics: the NumPy reference's list."""
    return tuple(reference.__all__)


class BackendFallbackWarning(RuntimeWarning):
    """The preferred backend could not load; a slower one is used instead."""


_lock = threading.RLock()
_loaded: dict[str, ModuleType] = {}
_errors: dict[str, str] = {}
_default: str | None = None
_warned = False
_local = threading.local()


def _check_name(name) -> str:
    if name not in BACKENDS:
        raise ValueError(f"backend: unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


def _load(name: str) -> ModuleType | None:
    """Import backend ``name`` once; remember the reason when it fails."""
    with _lock:
        if name in _loaded:
            return _loaded[name]
        if name in _errors:
            return None
        try:
            with _idle_spin_limited() if name == "cpp" else nullcontext():
                module = importlib.import_module(_MODULES[name])
            missing = [k for k in kernel_names() if not hasattr(module, k)]
            if missing:
                raise ImportError(f"it lacks the kernels {', '.join(missing)} (stale build?)")
        except Exception as exc:  # ImportError, a numba install that fails on import, ...
            _errors[name] = f"{type(exc).__name__}: {exc}"
            return None
        if name == "cpp":
            _threads_state.register_core(module)  # the core keeps its own copy of the thread counts
            if hasattr(module, "_set_cache_sizes"):  # the CSR kernels' bounds scale with this CPU's caches
                module._set_cache_sizes(*read_cache_sizes())
        _loaded[name] = module
        return module


def _libgomp_loaded() -> bool | None:
    """Whether this process has mapped the system libgomp already (None where /proc cannot tell)."""
    try:
        with open("/proc/self/maps") as maps:
            return any("/libgomp.so" in line for line in maps)
    except OSError:
        return None


@contextmanager
def _idle_spin_limited():
    """GOMP_SPINCOUNT = ``GOMP_SPIN_COUNT`` while ``_core`` (and its libgomp) loads, unless the user set an
    OpenMP wait policy; os.environ is restored afterwards (libgomp reads it once, when it loads), so
    child processes and other libraries see the user's environment."""
    global _omp_wait
    user = {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ}
    if user:
        _omp_wait = "the user's " + ", ".join(f"{k}={v}" for k, v in user.items())
        yield
        return
    already = _libgomp_loaded()
    os.environ["GOMP_SPINCOUNT"] = str(GOMP_SPIN_COUNT)
    try:
        yield
    finally:
        os.environ.pop("GOMP_SPINCOUNT", None)
    if already:
        _omp_wait = "libgomp's own (it was loaded before fastlr)"
    else:
        _omp_wait = f"spin {GOMP_SPIN_COUNT} pauses, then sleep (GOMP_SPINCOUNT, fastlr's default)"


def omp_wait() -> str:
    """How fastlr's OpenMP threads wait between parallel regions (for ``fastlr info``)."""
    return _omp_wait


def _require(name: str) -> ModuleType:
    module = _load(_check_name(name))
    if module is None:
        raise ImportError(f"fastlr backend {name!r} is not available: {_errors[name]}")
    return module


def _default_name() -> str:
    global _default, _warned
    with _lock:
        if _default is not None:
            return _default
        env = os.environ.get("FASTLR_BACKEND", "").strip().lower()
        if env:
            if env not in BACKENDS:
                raise ValueError(
                    f"FASTLR_BACKEND: unknown backend {env!r}; choose one of {', '.join(BACKENDS)}"
                )
            _require(env)
            _default = env
            return env
        for name in BACKENDS:
            if _load(name) is not None:
                _default = name
                break
        if _default != BACKENDS[0] and not _warned:
            _warned = True
            reasons = "; ".join(f"{n}: {_errors[n]}" for n in BACKENDS if n in _errors)
            warnings.warn(
                f"fastlr is using the {_default!r} backend because faster ones failed to load ({reasons})",
                BackendFallbackWarning,
                stacklevel=3,
            )
        return _default


def current_backend() -> str:
    """Name of the backend used when ``backend=None``, in this thread."""
    return getattr(_local, "name", None) or _default_name()


def get_backend(backend: str | None = None) -> ModuleType:
    """The kernel module of ``backend`` (``None``: the current default).

    Raises
    ------
    ImportError
        When the requested backend cannot be loaded (the message says why).
    ValueError
        When ``backend`` is not one of ``"cpp"``, ``"numba"``, ``"numpy"``.
    """
    # A backend already loaded without a lock or a frame: every product asks (Operand.kernels), 1-2 us warm and
    # ~10 us after a large GEMM has flushed the caches through _require, _load and _default_name's locks.
    name = getattr(_local, "name", None) or _default if backend is None else backend
    module = _loaded.get(name) if name.__class__ is str else None
    if module is not None:
        return module
    return _require(current_backend() if backend is None else backend)


def set_backend(name: str) -> None:
    """Make ``name`` the process-wide default backend (raises ImportError if it cannot load)."""
    global _default
    _require(name)
    with _lock:
        _default = name


@contextmanager
def use_backend(name: str):
    """Use backend ``name`` as the default inside a ``with`` block, in this thread only."""
    _require(name)
    previous = getattr(_local, "name", None)
    _local.name = name
    try:
        yield get_backend(name)
    finally:
        _local.name = previous


def available_backends() -> list[str]:
    """Names of the backends that load on this machine, fastest first."""
    return [name for name in BACKENDS if _load(name) is not None]


def backend_errors() -> dict[str, str]:
    """Why each unavailable backend failed to load (after trying them all)."""
    available_backends()
    return dict(_errors)
