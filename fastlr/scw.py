"""The sketched SVD of Sarlos and Clarkson-Woodruff (SCW), with optional power iterations.

``M = S A`` (m x d); compact SVD of M cut at its numerical rank r, giving an
orthonormal V (d x r); optionally ``n_iter`` power steps replace V by an
orthonormal basis of ``(A^T A)^q V``; ``B = A V`` (n x r) and its thin SVD
``B = U_B diag(s_B) X^T``; the rank-k result is ``U = U_B[:, :k]``,
``s = s_B[:k]``, ``Vt = (V X[:, :k])^T``. The products with A run on the
one-pass kernels of ``fastlr._ops``; everything else is small dense work.
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from . import _ops
from ._linalg import (
    blas_limit,
    blas_single_thread,
    normalize,
    orthonormal,
    peak,
    power_of_two,
    sketch_svd,
    thin_svd,
    truncate,
)
from ._threads import get_num_threads
from ._validation import as_matrix, check_bool, check_int, is_sparse
from .lowrank import LowRank

__all__ = ["SCWFactors", "scw", "scw_factors", "sketch_svd"]

#: Factors at least this wide go to BLAS: its GEMM beats the one-pass kernels
#: there (measured on 5760 x 1080: kernels win up to ~100 columns, BLAS at 200).
_BLAS_MIN_COLUMNS = 128

#: Power steps go through the Gram matrix A^T A (one BLAS SYRK, n d^2 flops)
#: instead of n_iter passes of A^T (A V) (4 n d r flops each) when
#: d <= _GRAM_WIDTH * r * n_iter: SYRK runs near the CPU's peak, the thin
#: one-pass kernels at 45-80% of it (measured on 5760 x 1080 and 100000 x 500).
_GRAM_WIDTH = 4


def _dense_product(A, V, transpose: bool, backend):
    """``A @ V`` (or ``A.T @ V``) for dense A: one-pass kernel for thin V, BLAS GEMM
    with fastlr's thread count for wide V."""
    if is_sparse(A) or V.shape[1] < _BLAS_MIN_COLUMNS:
        return _ops.rmatmul(A, V, backend=backend) if transpose else _ops.matmul(A, V, backend=backend)
    V = np.ascontiguousarray(V, dtype=A.dtype)
    with blas_limit(get_num_threads()):
        return np.ascontiguousarray(A.T @ V if transpose else A @ V)


def _thin_svd(B: np.ndarray, k: int, driver: str = "gesdd", backend=None):
    """``_linalg.thin_svd`` of a tall B with its products on fastlr's kernels (``_dense_product``)."""
    return thin_svd(B, k, functools.partial(_dense_product, backend=backend), driver)


class SCWFactors(NamedTuple):
    """Intermediates of the SCW forward pass (``scw_factors``).

    Small factors are float64; ``V`` and ``B`` have A's float dtype.
    """

    UM: np.ndarray  #: (m, r) left singular vectors of M = S A above the rank cut
    sM: np.ndarray  #: (r,) singular values of M
    V: np.ndarray  #: (d, r) orthonormal basis B is built from (M's right singular vectors unless n_iter > 0)
    B: np.ndarray  #: (n, r) A @ V
    UB: np.ndarray  #: (n, min(k, r)) leading left singular vectors of B
    sB: np.ndarray  #: (r,) singular values of B, descending
    X: np.ndarray  #: (r, r) right singular vectors of B as columns: B X[:, i] = sB[i] UB[:, i]


def scw_factors(A, SA, k: int, *, n_iter: int = 0, power_iteration_normalizer: str = "QR",
                lapack_driver: str = "gesdd", backend=None) -> SCWFactors:
    """The SCW forward pass from a given sketch ``SA = S @ A``, with its intermediates.

    Arguments are not validated here (``scw`` does that); A must already be
    kernel-ready (``_validation.as_matrix``). Reused by the learned-sketch code.

    Parameters
    ----------
    A : ndarray or scipy.sparse CSR/CSC, shape (n, d)
    SA : ndarray, shape (m, d)
    k : int
        Number of left singular vectors of B to form.
    n_iter : int
        Power steps ``V <- orth(A^T A V)``, each one pass over A.
    power_iteration_normalizer : {"QR", "LU", "none"}
        How V is renormalized between power steps (the last is always QR).
    lapack_driver : {"gesdd", "gesvd"}
        LAPACK driver for the small SVDs.
    backend : str, optional
        Kernel backend for the products with A.

    Returns
    -------
    SCWFactors
    """
    UM, sM, V = sketch_basis(SA, n_iter, power_iteration_normalizer, A.dtype,
                             lambda r, steps: power_product(A, r, steps, backend))
    return basis_factors(A, V, k, lapack_driver, backend, UM, sM)


def sketch_basis(SA: np.ndarray, n_iter: int, normalizer: str, dtype, product_for):
    """(UM, sM, V) from a sketch ``S A``: its SVD cut at the numerical rank r, and V (d x r, in
    ``dtype``) its right singular vectors after ``n_iter`` power steps, on any storage of A:
    ``product_for(r, steps)`` returns ``V -> A^T A V`` (``power_product`` in memory, a pass
    over the blocks for row-blocked A). The sketch's sigma_1 sets the steps' scale."""
    UM, sM, VtM = sketch_svd(SA, np.finfo(dtype).eps)
    V = np.ascontiguousarray(VtM.T, dtype=dtype)
    if V.shape[1] > 0 and n_iter > 0:
        V = power_iterations(V, n_iter, normalizer, product_for(V.shape[1], n_iter), dtype, sigma=sM[0])
    return UM, sM, V


def basis_factors(A, V: np.ndarray, k: int, lapack_driver: str = "gesdd", backend=None, UM=None,
                  sM=None) -> SCWFactors:
    """SCW's last steps from an orthonormal basis V (d x r): ``B = A V`` and its thin SVD.

    ``UM``, ``sM`` (the sketch's factors, kept for the gradients) default to empty.
    """
    B = _dense_product(A, V, False, backend)
    UB, sB, X = _thin_svd(B, k, lapack_driver, backend)
    if UM is None:
        UM, sM = np.zeros((0, 0)), np.zeros(0)
    return SCWFactors(UM, sM, V, B, UB, sB, X)


def sketch_sigma(SA: np.ndarray) -> float:
    """sigma_1 of a sketch S A (an estimate of sigma_1(A)'s magnitude); 0.0 when S A is zero."""
    s = sketch_svd(SA, 0.0)[1]
    return float(s[0]) if s.size else 0.0


def gaussian_range(product, d: int, l: int, n_iter: int, normalizer: str, seed: int, dtype,
                   estimate_sigma) -> np.ndarray:
    """Orthonormal V (d x min(l, d)) spanning ``(A^T A)^(n_iter + 1) Omega``, Omega a d x l Gaussian.

    The range finder of scikit-learn's randomized_svd moved to the row space:
    its basis Q of ``A (A^T A)^q Omega`` gives ``Q Q^T A``; the basis here
    spans ``A^T Q`` (q = n_iter), and ``A V V^T`` is the best approximation of
    A whose rows lie in that span, which the rows of ``Q Q^T A`` do: at least
    as accurate, from n_iter + 1 passes over A instead of 2 n_iter + 1. A
    Gaussian start loses no direction
    whatever A's shape, rank or sparsity (a CountSketch with l = k + p rows
    can: two heavy rows in one bucket). ``product`` is ``V -> A^T A V``
    (``power_product``); ``estimate_sigma()`` gives a scale only when A's
    entries are so large or small that the unscaled first step over- or
    underflows (``power_iterations``).
    """
    omega = np.random.default_rng(seed).standard_normal((d, min(l, d)))
    return power_iterations(np.ascontiguousarray(omega, dtype=dtype), n_iter + 1, normalizer, product, dtype,
                            estimate_sigma=estimate_sigma)


def _gram_pays(A, r: int, n_iter: int) -> bool:
    """Whether n_iter power steps with r columns are cheaper through A^T A."""
    n, d = A.shape
    return not is_sparse(A) and n_iter >= 2 and d <= n and d <= _GRAM_WIDTH * r * n_iter


#: Rows of A per SYRK call in ``_gram``: about this many flops each (~0.2 s), so
#: Ctrl-C is honoured between calls, and at least _GRAM_MIN_ROWS rows so each
#: call still runs near BLAS's peak.
_GRAM_BLOCK_FLOPS = 8e9
_GRAM_MIN_ROWS = 256


def _gram(A: np.ndarray) -> np.ndarray:
    """A^T A for dense A: SYRK over row blocks, summed, on fastlr's threads.

    BLAS runs on one thread and fastlr runs contiguous row ranges in parallel
    itself, so no BLAS thread pool spins against fastlr's OpenMP team
    (measured: a 2-thread OpenBLAS SYRK ran slower than 1 thread right after the
    kernels). Each range is a loop of SYRK calls of about _GRAM_BLOCK_FLOPS, so
    an interrupt stops the work within one call (a single SYRK of a
    20000 x 5000 matrix took 14-55 s to notice Ctrl-C). Over- and underflow are
    left for ``power_product`` to check.
    """
    n, d = A.shape
    step = max(_GRAM_MIN_ROWS, int(_GRAM_BLOCK_FLOPS // max(d * d, 1)))
    threads = min(get_num_threads(), max(1, n // _GRAM_MIN_ROWS))
    edges = np.linspace(0, n, threads + 1).astype(int)
    stop = threading.Event()

    def gram(lo: int, hi: int):
        G = None
        for b in range(lo, hi, step):
            if stop.is_set():
                return None
            block = _syrk(A[b:min(b + step, hi)])
            if G is None:
                G = block
            else:
                with np.errstate(over="ignore"):
                    G += block
        return G

    with blas_limit(1):
        if threads == 1:
            return gram(0, n)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = [pool.submit(gram, lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]
            try:
                parts = [f.result() for f in futures]
            except BaseException:  # KeyboardInterrupt: the other ranges stop at their next block
                stop.set()
                raise
    G = parts[0]
    with np.errstate(over="ignore"):
        for part in parts[1:]:
            G += part
    return G


def _syrk(X: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", under="ignore"):  # per thread; checked by power_product
        return X.T @ X  # NumPy calls SYRK for a matrix times its own transpose (and releases the GIL)


def power_product(A, r: int, n_iter: int, backend):
    """``V -> A^T A V`` for in-memory A and r-column V, the cheapest way for n_iter steps.

    Either one pass over A per step (the fused kernel, or two BLAS products for
    wide V) or, for narrow dense A, the Gram matrix ``G = A^T A`` (SYRK, computed
    here once) and products with G. Both round alike: a product with A^T A
    carries an error of order eps * ||A||^2 * ||V|| whichever way it is grouped.
    G is not used when it over- or underflows (entries of A near the limits of
    its dtype): the passes then run on a rescaled V (``power_iterations``).
    Runs under ``blas_single_thread``.
    """
    if _gram_pays(A, r, n_iter):
        G = _gram(A)
        if _representable(G, A.dtype):
            return lambda V: G @ V  # d x d times d x r: small next to the Gram matrix
    if is_sparse(A) or r < _BLAS_MIN_COLUMNS:
        return lambda V: _ops.gram_product(A, V, backend=backend)
    return lambda V: _dense_product(A, _dense_product(A, V, False, backend), True, backend)


def _representable(Z: np.ndarray, dtype) -> bool:
    """Z is finite and its largest entry is above sqrt(tiny): products formed without scaling
    neither overflowed nor lost precision to underflow."""
    z = peak(Z)
    return bool(np.isfinite(z)) and z >= np.sqrt(np.finfo(dtype).tiny)


def power_iterations(V: np.ndarray, n_iter: int, normalizer: str, product, dtype, *, sigma=None,
                     estimate_sigma=None) -> np.ndarray:
    """``n_iter`` steps ``V <- orth(product(V))`` (``normalizer`` between steps, QR
    after the last), V kept C-contiguous in ``dtype``. ``product(V)`` is A^T A V,
    computed in memory (``power_product``) or over row blocks (``_rowblocks``).

    Each product is taken of ``V / c``, c a power of two near sigma_1(A), so that
    ``A V / c`` and ``A^T A V / c`` stay near 1 and sigma_1(A) in magnitude:
    nothing over- or underflows for entries near 1e+-200 (float64) or 1e18
    (float32), and the scaling is exact. ``sigma`` estimates sigma_1(A) (from a
    sketch of A); without it the first step runs unscaled and, only when that
    over- or underflows, ``estimate_sigma()`` supplies the scale. c follows the
    growth observed at each step.

    Raises
    ------
    ValueError
        When a product is not finite (A holds NaN or inf).
    """
    c = power_of_two(sigma) if sigma else 1.0
    for step in range(n_iter):
        Z = product(np.ascontiguousarray(V / c, dtype=dtype))
        if step == 0 and sigma is None and estimate_sigma is not None and not _representable(Z, dtype):
            c = power_of_two(estimate_sigma())
            Z = product(np.ascontiguousarray(V / c, dtype=dtype))
        z, v = peak(Z), peak(V)
        if not np.isfinite(z):
            raise ValueError("A: contains NaN or infinity (or overflows), so A^T A V is not finite")
        if z > 0.0 and v > 0.0:  # Z ~ sigma^2 |V| / c; in logarithms, as z * c may underflow
            c = float(np.ldexp(1.0, int(np.round((np.log2(z) + np.log2(c) - np.log2(v)) / 2))))
        V = orthonormal(Z) if step == n_iter - 1 else normalize(Z, normalizer)
        V = np.ascontiguousarray(V, dtype=dtype)
    return V


def check_matrix(A, name: str = "A"):
    """A kernel-ready, non-empty matrix (as_matrix plus an emptiness check)."""
    A = as_matrix(A, name)
    if A.shape[0] == 0 or A.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty matrix, got shape {A.shape}")
    return A


def check_rank(k, A, name: str = "k") -> int:
    k = check_int(k, name, minimum=1)
    if k > min(A.shape):
        raise ValueError(f"{name}: must be <= min(A.shape) = {min(A.shape)}, got {k}")
    return k


def check_finite_sketch(SA: np.ndarray, name: str = "A") -> None:
    """NaN/inf anywhere in A reaches S A (0 * inf and 0 * NaN are NaN): checking S A is enough."""
    if not np.isfinite(SA).all():
        raise ValueError(f"{name}: contains NaN or infinity (or overflows), so its sketch is not finite")


def check_scw_args(A, S, k, n_iter) -> tuple[int, int]:
    """Validate scw's k, n_iter and sketch S against A (anything with a 2-D ``shape``)."""
    k = check_rank(k, A)
    n_iter = check_int(n_iter, "n_iter", minimum=0)
    if not (hasattr(S, "shape") and hasattr(S, "apply")):
        raise TypeError(f"S: expected a fastlr sketch (CountSketch, GaussianSketch, ...), got {type(S).__name__}")
    m, n = S.shape
    if n != A.shape[0]:
        raise ValueError(f"S: has n={n} columns but A has {A.shape[0]} rows; they must match")
    if m < k:
        raise ValueError(f"S: has m={m} rows, fewer than k={k}; the sketch must have at least k rows")
    return k, n_iter


def wants_row_blocks(A) -> bool:
    from ._outofcore import wants_row_blocks as wants  # late: _outofcore builds on this module

    return wants(A)


def scw(A, S, k: int, *, n_iter: int = 0, check_finite: bool = True, backend=None) -> LowRank:
    """Rank-k approximation of A from the sketch ``S @ A`` (Sarlos; Clarkson-Woodruff).

    Parameters
    ----------
    A : array_like or scipy.sparse matrix, shape (n, d)
        Dense (any memory order) or sparse; float32 stays float32, other real
        dtypes compute in float64.
    S : fastlr sketch, shape (m, n)
        Any fastlr sketch (``CountSketch``, ``GaussianSketch``, stacked,
        learned) with ``S.n == n`` and ``S.m >= k``.
    k : int
        Target rank, ``1 <= k <= min(n, d)``.
    n_iter : int, default 0
        Power iterations ``V <- orth(A^T A V)`` (one pass over A each) before B.
    check_finite : bool, default True
        Raise ValueError when A holds NaN or inf. The check runs on S A (where
        any NaN/inf of A shows up: 0 * NaN and 0 * inf are NaN), so it costs
        O(m d), not a pass over A. False skips it; fastlr's own sketches still
        refuse a non-finite S A when they compute it.
    backend : {"cpp", "numba", "numpy"}, optional
        Kernel backend; None uses the current default.

    Returns
    -------
    LowRank
        ``U`` (n x k) and ``Vt`` (k x d) orthonormal, ``s`` descending, signs
        as scikit-learn's ``svd_flip`` (largest |entry| of each column of U
        positive). When rank(A) < k the trailing singular values are 0.

    Raises
    ------
    ValueError
        Bad k or n_iter, S of the wrong shape, empty A, NaN/inf in A.
    TypeError
        A not a real numeric matrix, S not a sketch.

    References
    ----------
    T. Sarlos, "Improved approximation algorithms for large matrices via random
    projections", FOCS 2006. K. Clarkson and D. Woodruff, "Low rank
    approximation and regression in input sparsity time", STOC 2013.

    Examples
    --------
    >>> import numpy as np, fastlr
    >>> A = np.random.default_rng(0).standard_normal((500, 40))
    >>> U, s, Vt = fastlr.scw(A, fastlr.CountSketch(40, 500, seed=0), 10)
    >>> U.shape, s.shape, Vt.shape
    ((500, 10), (10,), (10, 40))
    """
    check_finite = check_bool(check_finite, "check_finite")
    if wants_row_blocks(A):  # dask arrays and memory maps: passes over row blocks
        from . import _rowblocks

        return _rowblocks.scw(A, S, k, n_iter=n_iter, check_finite=check_finite, backend=backend)
    A = check_matrix(A)
    k, n_iter = check_scw_args(A, S, k, n_iter)
    if is_sparse(A) and A.format == "csc" and n_iter > 0:
        A = A.tocsr()  # power steps are one pass over CSR, two over CSC
    SA = np.asarray(S.apply(A, backend=backend))
    if check_finite:
        check_finite_sketch(SA)
    with blas_single_thread():
        f = scw_factors(A, SA, k, n_iter=n_iter, backend=backend)
        return LowRank(*truncate(f, k, A.dtype))
