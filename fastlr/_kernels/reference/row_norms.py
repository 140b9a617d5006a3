"""NumPy reference squared-row-norm kernels (see csrc/include/fastlr/row_norms.hpp)."""

import numpy as np

from .._errors import BAD_INDEX, check_matching, raise_for
from .countsketch import _entry_outer, countsketch_dense, countsketch_seeded_dense

__all__ = ["row_squared_norms_dense", "row_squared_norms_csr", "row_squared_norms_csc", "countsketch_dense_energy",
           "countsketch_seeded_dense_energy"]


def _check_float(name, a):
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: dtype must be float32 or float64, got {a.dtype}")


def row_squared_norms_dense(A):
    """||A[i, :]||^2 (float64, n) for dense float32/float64 A, summed in float64."""
    if A.ndim != 2:
        raise ValueError(f"A: expected a 2-D array, got ndim={A.ndim}")
    _check_float("A", A)
    A64 = np.asarray(A, dtype=np.float64)
    return np.einsum("ij,ij->i", A64, A64)


def _squares_by_outer(indptr, indices, data, outer):
    """(outer index of each stored entry, its square in float64), after validating the structure."""
    _check_float("data", data)
    entry_outer = _entry_outer(indptr, len(indices), outer)
    check_matching("data", data, len(indices))
    return entry_outer, np.asarray(data, dtype=np.float64) ** 2


def row_squared_norms_csr(indptr, indices, data, n):
    """The squares of each row's stored entries summed (float64, n) for CSR A with n rows."""
    rows, squares = _squares_by_outer(indptr, indices, data, n)
    return np.bincount(rows, weights=squares, minlength=n).astype(np.float64, copy=False)


def row_squared_norms_csc(indptr, indices, data, n):
    """The squares of each row's stored entries summed (float64, n) for CSC A with n rows."""
    _, squares = _squares_by_outer(indptr, indices, data, len(indptr) - 1)
    if len(indices) and (indices.min() < 0 or indices.max() >= n):
        raise_for(BAD_INDEX)
    return np.bincount(indices, weights=squares, minlength=n).astype(np.float64, copy=False)


def countsketch_dense_energy(A, rows, values, m):
    """(countsketch_dense(A, rows, values, m), row_squared_norms_dense(A)): what the compiled core computes in one
    pass over A (fastlr.HeavyRowSketch on dense input)."""
    return countsketch_dense(A, rows, values, m), row_squared_norms_dense(A)


def countsketch_seeded_dense_energy(A, seed, m, start=0):
    """(countsketch_seeded_dense(A, seed, m, start), row_squared_norms_dense(A)), as countsketch_dense_energy."""
    return countsketch_seeded_dense(A, seed, m, start), row_squared_norms_dense(A)
