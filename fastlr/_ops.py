"""Backend-agnostic products of a matrix with thin factors, one pass over A each.

The algorithms (randomized SVD, learned-sketch training, GD factorization)
call these instead of ``A @ V`` / ``A.T @ W``: they take dense (any order) or
scipy.sparse A, cast the factors to A's float dtype and C order, and run the
backend's one-pass kernel. Pass A through ``_validation.as_matrix`` once when
calling repeatedly, so a COO or integer matrix is converted only once.

CSC A is the CSR form of A.T, so its products swap the forward and backward
halves of the kernels instead of converting A.
"""

from __future__ import annotations

import numpy as np

from ._backend import get_backend
from ._validation import as_matrix, is_sparse

__all__ = ["gd_products", "gram_product", "matmul", "power_step", "rmatmul"]


def _factor(F, dtype, name: str) -> np.ndarray:
    F = np.asarray(F)
    if F.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array, got ndim={F.ndim} with shape {F.shape}")
    if F.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {F.dtype}")
    return np.ascontiguousarray(F, dtype=dtype)


def _arrays(A):
    return A.indptr, A.indices, A.data


def matmul(A, V, *, backend=None) -> np.ndarray:
    """``A @ V`` (n x k) for A (n x d) dense or sparse and V (d x k), in A's float dtype."""
    A = as_matrix(A)
    V = _factor(V, A.dtype, "V")
    kernels = get_backend(backend)
    if not is_sparse(A):
        return kernels.matmul(A, V)
    if A.format == "csr":
        return kernels.matmul_csr(*_arrays(A), V)
    if V.shape[0] != A.shape[1]:
        raise ValueError(f"V: expected {A.shape[1]} rows (A's columns), got {V.shape[0]}")
    return kernels.rmatmul_csr(*_arrays(A), V, A.shape[0])


def rmatmul(A, W, *, backend=None) -> np.ndarray:
    """``A.T @ W`` (d x k) for A (n x d) dense or sparse and W (n x k), in one pass over A."""
    A = as_matrix(A)
    W = _factor(W, A.dtype, "W")
    kernels = get_backend(backend)
    if not is_sparse(A):
        return kernels.rmatmul(A, W)
    if A.format == "csr":
        return kernels.rmatmul_csr(*_arrays(A), W, A.shape[1])
    if W.shape[0] != A.shape[0]:
        raise ValueError(f"W: expected {A.shape[0]} rows (A's rows), got {W.shape[0]}")
    return kernels.matmul_csr(*_arrays(A), W)


def gd_products(A, U, V, *, backend=None) -> tuple[np.ndarray, np.ndarray]:
    """``(A @ V, A.T @ U)`` in one pass over A; U is n x k, V is d x k."""
    A = as_matrix(A)
    U = _factor(U, A.dtype, "U")
    V = _factor(V, A.dtype, "V")
    kernels = get_backend(backend)
    if not is_sparse(A):
        return kernels.gd_products(A, U, V)
    if A.format == "csr":
        return kernels.gd_products_csr(*_arrays(A), U, V)
    if U.shape[0] != A.shape[0] or V.shape[0] != A.shape[1]:
        raise ValueError(
            f"U, V: expected {A.shape[0]} and {A.shape[1]} rows (A's shape), got {U.shape[0]} and {V.shape[0]}"
        )
    ATU, AV = kernels.gd_products_csr(*_arrays(A), V, U)  # A.T's CSR: (A.T @ U, A @ V)
    return AV, ATU


def power_step(A, Q, *, backend=None) -> tuple[np.ndarray, np.ndarray]:
    """``(Y, Z) = (A @ Q, A.T @ (A @ Q))`` in one pass over A (two for CSC A); Q is d x k."""
    A = as_matrix(A)
    Q = _factor(Q, A.dtype, "Q")
    kernels = get_backend(backend)
    if not is_sparse(A):
        return kernels.power_step(A, Q)
    if A.format == "csr":
        return kernels.power_step_csr(*_arrays(A), Q)
    Y = matmul(A, Q, backend=backend)
    return Y, rmatmul(A, Y, backend=backend)


def gram_product(A, Q, *, backend=None) -> np.ndarray:
    """``A.T @ (A @ Q)`` in one pass over A (two for CSC A), without storing ``A @ Q``."""
    A = as_matrix(A)
    Q = _factor(Q, A.dtype, "Q")
    kernels = get_backend(backend)
    if not is_sparse(A):
        return kernels.gram_product(A, Q)
    if A.format == "csr":
        return kernels.gram_product_csr(*_arrays(A), Q)
    return rmatmul(A, matmul(A, Q, backend=backend), backend=backend)
