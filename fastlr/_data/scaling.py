"""Scaling: sigma_1 of a matrix and the matrix scaled to sigma_1 = 1 (as the paper does)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from .._validation import as_matrix, is_sparse

__all__ = ["normalize", "spectral_norm"]


def spectral_norm(A) -> float:
    """sigma_1(A), the largest singular value (dense or sparse), in float64.

    A dense SVD for small matrices, Lanczos (``scipy.sparse.linalg.svds``,
    deterministic start) otherwise; both accurate to machine precision.
    """
    A = as_matrix(A)
    finite = np.isfinite(A.data if is_sparse(A) else A).all()
    if not finite:
        raise ValueError("A: contains NaN or infinity")
    if A.size == 0:
        return 0.0
    if min(A.shape) < 3 or A.shape[0] * A.shape[1] <= 40_000:
        dense = A.toarray() if is_sparse(A) else A
        return float(scipy.linalg.svdvals(np.asarray(dense, dtype=np.float64))[0])
    if (abs(A).max() if is_sparse(A) else np.abs(A).max()) == 0:
        return 0.0
    v0 = np.ones(min(A.shape), dtype=A.dtype)
    return float(scipy.sparse.linalg.svds(A, k=1, v0=v0, return_singular_vectors=False)[0])


def normalize(A):
    """``A / sigma_1(A)``: the matrix scaled to spectral norm 1 (a new array; sparse stays sparse).

    Raises
    ------
    ValueError
        If A is all zeros or holds NaN/infinity.
    """
    A = as_matrix(A)
    if A.shape[0] == 0 or A.shape[1] == 0:
        raise ValueError(f"A: expected a non-empty matrix, got shape {A.shape}")
    s1 = spectral_norm(A)
    if s1 == 0.0:
        raise ValueError("A: is all zeros; it cannot be scaled to sigma_1 = 1")
    return A / A.dtype.type(s1) if not is_sparse(A) else (A * (1.0 / s1)).astype(A.dtype)
