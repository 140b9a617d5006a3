"""The stacked path of a batch: ``randomized_svd`` of many small dense matrices of one shape as
whole-stack array operations (NumPy's stacked matmul and linalg: a loop of BLAS/LAPACK calls in C,
no Python per matrix).

The same algorithm as one call per matrix (Gaussian start, n_iter + 1 power steps on the row space,
Rayleigh-Ritz on ``A V``); results agree to rounding. The fast path works on the Gram matrices
``G = A^T A`` (one GEMM per matrix, then every step is a d x d product) and finishes from them:
the eigenvectors X of ``V^T G V`` (l x l) give the row basis ``W = V X_k``, and the SVD of
``A W`` (n x k) comes from a Cholesky QR of its columns scaled to unit norm and the SVD of the k x k
factor. The Gram matrix squares the condition number: its rounding (eps ||A||^2) moves the basis
by ~ eps (s_1 / s_k)^2, which costs accuracy where the optimal rank-k error is small (nearly
low-rank matrices). Matrices where that rounding could show in the error, or where the scaled
``A W`` is too far from orthonormal for one Cholesky QR, are redone on the direct path: power
steps with A itself, ``A^T (A V)``, and the SVD of ``A V`` through its Householder QR.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numpy as np

from ._linalg import blas_limit, peak_signs
from ._matrix.memory import gram_route_pays
from ._threads import get_num_threads
from ._validation import float_dtype

__all__ = ["STACKED_MAX_ENTRIES", "stacked_in_parallel", "stacked_randomized_svd"]

#: Batches of dense matrices with at most this many entries each take the stacked path: there the
#: per-call overhead of one factorization (a few hundred microseconds of Python and small LAPACK
#: calls) is what a loop costs.
STACKED_MAX_ENTRIES = 1 << 20

#: Matrices per stacked call: the chunk's work arrays stay small (and in cache), the threads share
#: the chunks out.
_CHUNK = 64

#: A fast-path result is kept when the Gram rounding's bound on the excess error is below this
#: fraction of the estimated error (the ratio to the optimal error then moves by < 1e-6)...
_EXCESS = 1e-3
#: ... and the columns of A W / s are this close to orthonormal (one Cholesky QR then reaches eps).
_ORTHOGONALITY = 0.05


def _t(X: np.ndarray) -> np.ndarray:
    """The transposes of a stack's matrices (a view; ``.mT`` needs NumPy 2)."""
    return X.swapaxes(-1, -2)


def _blasable(X: np.ndarray) -> np.ndarray:
    """X with 2-D slices BLAS can take (one unit stride): C- or F-ordered slices of any stack."""
    s = X.strides
    if X.itemsize in (abs(s[-1]), abs(s[-2])):
        return X
    return np.ascontiguousarray(X)


def _starts(seeds: list, cols: int, l: int, dtype) -> np.ndarray:
    """The Gaussian starts: (cols, l) when every matrix has one seed, else (b, cols, l)."""
    if len(set(seeds)) == 1:  # one seed for all: one start, as a loop of calls with it gives
        return np.random.default_rng(seeds[0]).standard_normal((cols, l)).astype(dtype)
    return np.stack([np.random.default_rng(seed).standard_normal((cols, l)) for seed in seeds]).astype(dtype)


def _times(G: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """G @ omega for a stack G; a shared 2-D omega is ONE GEMM with the stacked rows of a C-ordered G."""
    if omega.ndim == 2 and G.flags.c_contiguous:
        b, r, c = G.shape
        return (G.reshape(b * r, c) @ omega).reshape(b, r, omega.shape[1])
    return G @ omega


def _qr_finish(A: np.ndarray, V: np.ndarray, k: int):
    """The SVD of Y = A V (b, n, l) through its Householder QR: (U, s, Vt) in float64, exact to
    rounding whatever Y's conditioning. None if a matrix is rank-deficient below k or underflows."""
    Y = A @ V
    if not np.isfinite(Y).all():
        return None
    Qy, R = np.linalg.qr(Y.astype(np.float64))
    u, sb, Xt = np.linalg.svd(R)
    dtype = A.dtype
    tiny = np.finfo(dtype).eps * V.shape[2] * sb[:, :1]
    if not np.all(sb[:, k - 1:k] > tiny) or not np.all(sb[:, :1] > np.sqrt(np.finfo(dtype).tiny)):
        return None  # rank-deficient (s_k = 0 needs completed vectors) or badly scaled: the one-call path
    return Qy @ u[:, :, :k], sb[:, :k], Xt[:, :k] @ _t(V).astype(np.float64)


def _direct(A: np.ndarray, omega: np.ndarray, k: int, n_iter: int, transpose: bool):
    """The direct path: power steps ``orth(F^T (F V))`` with F = A (or A^T), then ``_qr_finish``."""
    F = _t(A) if transpose else A
    V = omega
    for _ in range(n_iter + 1):
        Z = _t(F) @ _times(F, V)
        if not np.isfinite(Z).all():
            return None
        V = np.linalg.qr(Z)[0]
    if transpose:  # V spans A's columns; A^T V its rows (the Rayleigh-Ritz finish of randomized_svd)
        V = np.linalg.qr(F @ V)[0]
    return _qr_finish(A, V, k)


def _gram_accurate(s: np.ndarray, norm2: np.ndarray, eps: float, rows: int) -> np.ndarray:
    """Where the Gram path's result (s: its singular values, b x k) is as accurate as the direct path's.

    The Gram rounding (~ eps ||A||^2) moves the basis by ~ eps (s_1 / s_k)^2, adding ~ eps s_1^2 / s_k
    to the error; the squared error is ||A||_F^2 - sum s_i^2 (norm2: ||A||_F^2), known to ~ eps ||A||_F^2.
    """
    k = s.shape[1]
    err2 = norm2 - np.sum(s * s, axis=1)
    err = np.sqrt(np.where(err2 > 100 * eps * norm2, err2, 0.0))  # 0: too small to resolve
    s1, sk = s[:, 0], s[:, k - 1]
    excess = eps * np.sqrt(rows * k) * s1 * s1 / np.where(sk > 0, sk, np.inf)
    floor = 4 * eps * np.sqrt(k) * s1  # rounding in any method's result
    return (sk > 0) & ((excess <= _EXCESS * err) | (excess <= floor))


def _gram(A: np.ndarray, omega: np.ndarray, k: int, n_iter: int, transpose: bool):
    """The fast path on the Gram matrices of the finder's matrix F (A, or A^T when transposed).

    Returns (U, s, Vt, ok) in float64, ``ok`` marking the matrices whose result is kept; None when a
    matrix is not finite or so small that its Gram matrix loses precision (the one-call path scales).
    """
    F = _t(A) if transpose else A
    rows, cols = F.shape[1:]
    dtype = A.dtype
    eps = np.finfo(dtype).eps
    G = _t(F) @ F  # (b, cols, cols): one GEMM each
    diag = np.diagonal(G, axis1=1, axis2=2).astype(np.float64)  # PSD: the largest entries; NaN/inf show here
    if not np.isfinite(diag).all():
        return None
    norm2 = diag.sum(axis=1)  # ||A||_F^2
    big = diag.max(axis=1)
    if not np.all((big > np.finfo(dtype).tiny / eps) & (big < np.finfo(dtype).max / (4 * cols))):
        return None  # squares of the entries near underflow (or A = 0), or G V could overflow
    V = omega
    for step in range(n_iter + 1):
        V = np.linalg.qr(_times(G, V) if step == 0 else G @ V)[0]
    if transpose:  # the finish on A's rows, as the direct path
        out = _qr_finish(A, np.linalg.qr(F @ V)[0], k)
        if out is None:
            return None
        U, s, Vt = out
        ok = np.ones(len(A), dtype=bool)
    else:
        H = (_t(V) @ (G @ V)).astype(np.float64)  # V^T A^T A V: Rayleigh-Ritz, l x l
        e, X = np.linalg.eigh(H)
        e, X = e[:, ::-1][:, :k], X[:, :, ::-1][:, :, :k]  # the k largest, descending
        s = np.sqrt(np.maximum(e, 0.0))
        ok = s[:, k - 1] > np.sqrt(eps) * s[:, 0]
        # Columns of A W scaled to unit norm: orthonormal up to the eigenvectors' error ~ eps (s_1 / s_i)^2
        ok &= eps * k * (s[:, 0] / np.where(ok, s[:, k - 1], 1.0)) ** 2 < _ORTHOGONALITY
        W = V.astype(np.float64) @ X  # (b, cols, k), orthonormal
        Ut = (A @ W.astype(dtype)).astype(np.float64) / np.where(ok[:, None], s, 1.0)[:, None, :]
        C = _t(Ut) @ Ut
        C[~ok] = np.eye(k)
        L = np.linalg.cholesky(C)  # Ut = Q L^T: Cholesky QR, Q orthonormal to rounding as Ut nearly is
        Q = Ut @ _t(np.linalg.inv(L))
        P, s, Tt = np.linalg.svd(_t(L) * s[:, None, :])  # A W = Q (L^T S) = (Q P) diag(s) Tt
        U, Vt = Q @ P, Tt @ _t(W)
    ok &= _gram_accurate(s, norm2, eps, rows)
    return U, s, Vt, ok


def stacked_randomized_svd(B: np.ndarray, k: int, l: int, n_iter: int, seeds: list, flip_sign: bool,
                           transpose: bool = False):
    """randomized_svd's default path for a stack of small dense matrices B (b, n, d).

    Returns (U, s, Vt) or None when a matrix needs the one-call path: not finite, rank-deficient
    below k, or scaled so far from 1 that the unscaled products over- or underflow.
    """
    dtype = float_dtype(B.dtype)
    A = _blasable(np.asarray(B, dtype=dtype))
    rows, cols = (A.shape[2], A.shape[1]) if transpose else A.shape[1:]
    l = min(l, cols)
    omega = _starts(seeds, cols, l, dtype)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        gram = gram_route_pays(rows, cols, l, n_iter + 1)  # as InMemory: F^T F once, or F^T (F V) per step
        out = _gram(A, omega, k, n_iter, transpose) if gram else None
        if out is None:
            out = _direct(A, omega, k, n_iter, transpose)
            if out is None:
                return None
            U, s, Vt = out
        else:
            U, s, Vt, ok = out
            redo = np.flatnonzero(~ok)
            if redo.size:  # where the Gram path may fall short of the direct one's accuracy
                part = _direct(A[redo], omega if omega.ndim == 2 else omega[redo], k, n_iter, transpose)
                if part is None:
                    return None
                U[redo], s[redo], Vt[redo] = part
    if flip_sign:  # svd_flip: the largest-magnitude entry of each column of U positive
        peaks = np.take_along_axis(U, np.abs(U).argmax(axis=1)[:, None, :], axis=1)[:, 0, :]  # (b, k)
        signs = peak_signs(peaks)
        U = U * signs[:, None, :]
        Vt = Vt * signs[:, :, None]
    return U.astype(dtype), s.astype(dtype), np.ascontiguousarray(Vt, dtype=dtype)


def stacked_in_parallel(B: np.ndarray, k: int, l: int, n_iter: int, seeds: list, flip_sign: bool,
                        transpose: bool = False, threads=None):
    """``stacked_randomized_svd`` on chunks of the batch, shared out over fastlr's threads (BLAS on one
    thread each: small products do not gain from BLAS threads); None if any chunk needs the one-call path."""
    edges = list(range(0, len(B), _CHUNK)) + [len(B)]
    workers = min(len(edges) - 1, get_num_threads() if threads is None else threads)

    def part(lo, hi):
        return stacked_randomized_svd(B[lo:hi], k, l, n_iter, seeds[lo:hi], flip_sign, transpose)

    with blas_limit(1):
        if workers <= 1:
            parts = [part(lo, hi) for lo, hi in pairwise(edges)]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                parts = list(pool.map(part, edges[:-1], edges[1:]))
    if any(p is None for p in parts):
        return None
    return tuple(np.concatenate(x) for x in zip(*parts))
