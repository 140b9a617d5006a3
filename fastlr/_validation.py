"""Argument checks and conversions shared by the public API.

Every check raises ValueError or TypeError naming the argument and value.
Conversions copy only when needed, and never modify the caller's data.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

__all__ = ["as_matrix", "check_int", "float_dtype", "is_sparse"]


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


def check_int(value, name: str, *, minimum: int | None = None) -> int:
    """An integer argument (bools rejected), optionally with a lower bound."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return value


def _dtype_for(A, name: str) -> np.dtype:
    try:
        return float_dtype(A.dtype)
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None


def as_matrix(A, name: str = "A"):
    """``A`` as a kernel-ready 2-D matrix.

    Dense input becomes a float32/float64 ndarray that is C- or F-contiguous
    (a non-contiguous view is copied to C order). Sparse input becomes CSR or
    CSC (other formats convert to CSR) with matching int32/int64 index arrays.

    Returns
    -------
    A : numpy.ndarray or scipy.sparse CSR/CSC matrix or array
    """
    if sp.issparse(A):
        if A.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D matrix, got ndim={A.ndim}")
        dtype = _dtype_for(A, name)
        if A.format not in ("csr", "csc"):
            A = A.tocsr()
        if A.dtype != dtype:
            A = A.astype(dtype)
        if A.indptr.dtype != A.indices.dtype or A.indices.dtype not in (np.int32, np.int64):
            A = A.copy()
            A.indptr = A.indptr.astype(np.int64)
            A.indices = A.indices.astype(np.int64)
        return A
    if isinstance(A, (str, bytes)) or A is None:
        raise TypeError(f"{name}: expected a 2-D array or scipy.sparse matrix, got {type(A).__name__}")
    try:
        arr = np.asarray(A)
    except Exception as exc:  # ragged lists etc.
        raise TypeError(f"{name}: cannot convert {type(A).__name__} to an array ({exc})") from None
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array, got ndim={arr.ndim} with shape {arr.shape}")
    dtype = _dtype_for(arr, name)
    if arr.dtype != dtype:
        order = "F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"
        arr = arr.astype(dtype, order=order)
    elif not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        arr = np.ascontiguousarray(arr)
    return arr
