"""Argument checks and conversions shared by the public API.

Every check raises ValueError or TypeError naming the argument and value.
Conversions copy only when needed, and never modify the caller's data.
"""

from __future__ import annotations

import numbers
import sys

import numpy as np
import scipy.sparse as sp

__all__ = ["INT64_MAX", "UINT64_MAX", "as_matrix", "is_dask_array", "real_array", "check_bool", "check_choice", "check_int", "check_random_state",
           "check_sparse", "dtype_for", "float_dtype", "is_sparse", "matrix_list", "random_generator", "random_seed",
           "user_stacklevel"]

#: Largest sizes and seeds the kernels take (int64 sizes and indices, uint64 seeds).
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


def is_sparse(A) -> bool:
    return sp.issparse(A)


def float_dtype(dtype) -> np.dtype:
    """float32 stays float32; every other real dtype computes in float64."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise TypeError(f"complex dtype {dtype} is not supported")
    if dtype.kind not in "biuf":
        raise TypeError(f"dtype {dtype} is not a real numeric dtype")
    return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)


def check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer argument (bools rejected), optionally with lower and upper bounds (inclusive).

    Use ``maximum`` for values that reach the kernels: e.g. ``INT64_MAX`` for
    sizes, ``UINT64_MAX`` for seeds, so that an oversized value is a ValueError
    here instead of an overflow (or a silent wrap-around) later.
    """
    if value.__class__ is not int:  # a plain int skips the ABC check (~20 us with cold caches, 3 per CountSketch)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name}: expected an integer, got {value!r}")
        value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: must be <= {maximum}, got {value}")
    return value


def check_bool(value, name: str) -> bool:
    """A boolean flag (Python or NumPy bool): a string such as "no" is a TypeError, not True."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {value!r}")
    return bool(value)


def check_choice(value, name: str, choices):
    """One of ``choices`` (strings; True/False/None compared by identity, so 1 is not True); a
    ValueError naming ``name`` and the choices otherwise (NumPy bools count as bools). Every
    entry point checks its option strings here, so the same mistake reads the same everywhere."""
    if isinstance(value, np.bool_):
        value = bool(value)
    if not any(value is c or (isinstance(value, str) and isinstance(c, str) and value == c) for c in choices):
        raise ValueError(f"{name}: must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_random_state(random_state, name: str = "random_state"):
    """scikit-learn-style ``random_state``, checked and returned unchanged: None, an int in
    [0, 2**64), a ``np.random.RandomState`` or a ``np.random.Generator``.

    Anything else is a TypeError (bool, float, str, ...) or ValueError (an int out of range)
    naming ``name``. :func:`random_seed` and :func:`random_generator` turn it into what an
    algorithm needs; neither touches the global ``np.random``.
    """
    expected = f"{name}: expected None, an int in [0, 2**64), a RandomState or a Generator, got {random_state!r}"
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, (bool, np.bool_)):
        if not 0 <= int(random_state) <= UINT64_MAX:
            bound = f"{name}: must be >= 0" if random_state < 0 else f"{name}: must be < 2**64"
            raise ValueError(f"{expected} ({bound})")
        return int(random_state)
    if random_state is None or isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        return random_state
    raise TypeError(expected)


def random_seed(random_state, name: str = "random_state") -> int:
    """A seed in [0, 2**64) from ``random_state``: the int itself, one draw from a RandomState or
    Generator (advancing it, as scikit-learn does), or a fresh seed from the OS for None."""
    random_state = check_random_state(random_state, name)
    if random_state is None:
        return int(np.random.default_rng().integers(2**63))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63))
    return random_state


def random_generator(random_state, name: str = "random_state") -> np.random.Generator:
    """A ``np.random.Generator`` for ``random_state``: a Generator itself (shared, not copied),
    ``default_rng(seed)`` for an int (so ``7`` and ``default_rng(7)`` draw alike), one seed drawn
    from a RandomState, fresh OS entropy for None."""
    random_state = check_random_state(random_state, name)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_seed(random_state, name))
    return np.random.default_rng(random_state)


def dtype_for(A, name: str) -> np.dtype:
    """``float_dtype`` of A's dtype, the TypeError naming ``name`` (complex, object, strings)."""
    try:
        return float_dtype(A.dtype)
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None


def is_dask_array(A) -> bool:
    """True for a ``dask.array.Array`` (without importing dask when it is not loaded)."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(A, da.Array)


def _as_array(x, name: str, what: str) -> np.ndarray:
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name}: expected {what}, got {type(x).__name__}")
    if isinstance(x, np.ma.MaskedArray):
        # np.asarray would drop the mask and compute with whatever the masked slots hold.
        if np.ma.getmaskarray(x).any():
            raise TypeError(f"{name}: a masked array with masked entries; fastlr would ignore the "
                            f"mask: pass {name}.filled(value), or use gd_svd, which treats masked "
                            "entries as missing")
        x = x.data
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged lists etc.
        raise TypeError(f"{name}: cannot convert {type(x).__name__} to an array ({exc})") from None


def real_array(x, name: str) -> np.ndarray:
    """``x`` as an ndarray of a real numeric dtype (no copy when it is one); TypeError naming
    ``name`` otherwise (str, None, ragged lists, complex, object)."""
    arr = _as_array(x, name, "a real numeric array")
    dtype_for(arr, name)
    return arr


def as_matrix(A, name: str = "A"):
    """``A`` as a kernel-ready 2-D matrix.

    Dense input becomes a float32/float64 ndarray that is C- or F-contiguous
    (a non-contiguous view is copied to C order). Sparse input becomes CSR or
    CSC (other formats convert to CSR) with matching int32/int64 index arrays,
    its index structure checked first (see :func:`check_sparse`).

    Returns
    -------
    A : numpy.ndarray or scipy.sparse CSR/CSC matrix or array
    """
    if sp.issparse(A):
        dtype = dtype_for(A, name)
        A = check_sparse(A, name)
        if A.dtype != dtype:
            A = A.astype(dtype)
        if A.indptr.dtype != A.indices.dtype or A.indices.dtype not in (np.int32, np.int64):
            A = A.copy()
            A.indptr = A.indptr.astype(np.int64)
            A.indices = A.indices.astype(np.int64)
        return A
    arr = _as_array(A, name, "a 2-D array or scipy.sparse matrix")
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array, got ndim={arr.ndim} with shape {arr.shape}")
    dtype = dtype_for(arr, name)
    if arr.dtype != dtype:
        order = "F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"
        arr = arr.astype(dtype, order=order)
    elif not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        arr = np.ascontiguousarray(arr)
    return arr


# --------------------------------------------------------------------------- sparse structure


def _index_array(x, what: str, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1 or x.dtype.kind not in "iu":
        raise ValueError(f"{name}: corrupt sparse matrix: {what} must be a 1-D integer array, "
                         f"got dtype {x.dtype} with shape {x.shape}")
    return x


def _check_in_range(index: np.ndarray, size: int, what: str, name: str) -> None:
    if len(index) == 0:
        return
    low, high = index.min(), index.max()
    if low < 0 or high >= size:
        bad = low if low < 0 else high
        raise ValueError(f"{name}: corrupt sparse matrix: {what} index {int(bad)} lies outside [0, {size})")


def _check_compressed(A, name: str):
    """CSR/CSC structure: indptr of length major+1 from 0, nondecreasing, to nnz; indices in [0, minor)."""
    major, minor = A.shape if A.format == "csr" else A.shape[::-1]
    kind = "column" if A.format == "csr" else "row"
    indptr = _index_array(A.indptr, "indptr", name)
    indices = _index_array(A.indices, "indices", name)
    data = np.asarray(A.data)
    if data.ndim != 1:
        raise ValueError(f"{name}: corrupt sparse matrix: data must be 1-D, got shape {data.shape}")
    if len(indptr) != major + 1:
        raise ValueError(f"{name}: corrupt sparse matrix: indptr has length {len(indptr)}, "
                         f"expected {major + 1} (one more than the {A.format.upper()} matrix's "
                         f"{'rows' if A.format == 'csr' else 'columns'})")
    if indptr[0] != 0:
        raise ValueError(f"{name}: corrupt sparse matrix: indptr[0] is {int(indptr[0])}, expected 0")
    if major > 0 and (np.diff(indptr) < 0).any():
        raise ValueError(f"{name}: corrupt sparse matrix: indptr decreases")
    if len(indices) != len(data):
        raise ValueError(f"{name}: corrupt sparse matrix: {len(indices)} indices but {len(data)} values")
    nnz = int(indptr[-1])
    if nnz > len(indices):
        raise ValueError(f"{name}: corrupt sparse matrix: indptr[-1] = {nnz} but there are only "
                         f"{len(indices)} stored entries")
    if nnz < len(indices):  # spare capacity after the last entry (scipy allows it): drop it, on a copy
        A = type(A)((data[:nnz], indices[:nnz], indptr), shape=A.shape, copy=False)
        indices = indices[:nnz]
    _check_in_range(indices, minor, kind, name)
    return A


def _check_coo(A, name: str):
    coords = A.coords if hasattr(A, "coords") else (A.row, A.col)
    if len(coords) != 2:
        raise ValueError(f"{name}: expected a 2-D matrix, got {len(coords)} coordinate arrays")
    row = _index_array(coords[0], "row", name)
    col = _index_array(coords[1], "col", name)
    n_values = len(np.asarray(A.data))
    if not len(row) == len(col) == n_values:
        raise ValueError(f"{name}: corrupt sparse matrix: {len(row)} row and {len(col)} column indices "
                         f"for {n_values} values")
    _check_in_range(row, A.shape[0], "row", name)
    _check_in_range(col, A.shape[1], "column", name)


def check_sparse(A, name: str = "A"):
    """A scipy.sparse matrix as CSR or CSC whose index structure is checked (O(nnz), vectorized).

    Kernels, and scipy's own compiled routines (``toarray``, ``tocsr``, products),
    trust the index arrays: an index outside the matrix makes them read or write
    outside their buffers. Every sparse input is checked here once, at the entry,
    before anything converts it. CSR/CSC pass unchanged (spare capacity after
    ``indptr[-1]`` is sliced off); COO is checked, then converted to CSR; other
    formats (BSR, DIA, LIL, DOK) convert through COO (NumPy code) and are checked
    as COO.

    Raises
    ------
    ValueError
        If A is not 2-D, or an index or ``indptr`` is out of range or
        inconsistent; the message names ``name``.
    """
    if A.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D matrix, got ndim={A.ndim}")
    if A.format in ("csr", "csc"):
        return _check_compressed(A, name)
    if A.format != "coo":
        try:
            A = A.tocoo()
        except (ValueError, IndexError) as exc:  # scipy's own checks of a malformed matrix
            raise ValueError(f"{name}: corrupt sparse matrix ({exc})") from None
    _check_coo(A, name)
    return A.tocsr()


def matrix_list(matrices, name: str) -> list:
    """A non-empty iterable of matrices (training or test sets) as a list; a single matrix, a
    string or None is a TypeError and an empty one a ValueError, naming ``name``."""
    if matrices is None or isinstance(matrices, (str, bytes)):
        raise TypeError(f"{name}: expected an iterable of 2-D matrices, got {type(matrices).__name__}")
    if is_sparse(matrices) or (isinstance(matrices, np.ndarray) and matrices.ndim == 2):
        raise TypeError(f"{name}: expected an iterable of matrices, got a single matrix (wrap it in a list)")
    try:
        items = list(matrices)
    except TypeError:
        raise TypeError(f"{name}: expected an iterable of 2-D matrices, got {type(matrices).__name__}") from None
    if not items:
        raise ValueError(f"{name}: is empty; at least one matrix is needed")
    return items


def user_stacklevel() -> int:
    """``stacklevel`` for ``warnings.warn`` that names the user's line: the first caller outside the fastlr package
    (the functions that warn sit at different depths below the public call, decorators included)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == "fastlr":
        frame, level = frame.f_back, level + 1
    return level
