"""svd_to_tolerance: the rank chosen by accuracy (blocked randomized QB with an error indicator).

Yu, Gu and Li's randQB_EI, run on the row space as the rest of fastlr is:
an orthonormal V (d x l) grows by blocks of b columns, each an orthonormal
basis of ``P (A^T A)^(q+1) P Omega_i`` (``P = I - V V^T``, Omega_i Gaussian:
the residual ``A P``'s row space, q power iterations); ``B_i = A V_i``; and the
error indicator ``E = ||A||_F^2 - sum_i ||B_i||_F^2`` equals
``||A - A V V^T||_F^2`` exactly (V orthonormal). Blocks are added until
``E <= tol^2 ||A||_F^2``; the thin SVD of ``B = A V`` then gives the smallest
rank k with ``E + sum_(i>k) sigma_i(B)^2 <= tol^2 ||A||_F^2``: that is the
Frobenius error of the returned rank-k approximation ``A V X_k X_k^T V^T``.
Every pass over A is a call to an operand of the matrix layer (``gram_product``
and ``times``), so dense, sparse, memory-mapped, dask and centered input all work.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from ._linalg import LAPACK_DRIVERS, blas_single_thread, orthonormal, power_of_two
from ._matrix import operand
from ._validation import check_choice, check_int, random_seed
from .scw import SCWFactors

__all__ = ["accuracy_floor", "svd_to_tolerance"]

#: tol below sqrt(FLOOR_FACTOR * eps) is refused: the indicator's rounding error (a few
#: eps * ||A||^2, from B = A V in A's dtype) would be of the size of tol^2 ||A||^2.
FLOOR_FACTOR = 20.0


def accuracy_floor(dtype) -> float:
    """The smallest ``tol`` :func:`svd_to_tolerance` accepts for A of this float dtype:
    ``sqrt(20 eps)``, about 6.7e-08 for float64 and 1.5e-03 for float32."""
    return float(np.sqrt(FLOOR_FACTOR * np.finfo(dtype).eps))


def _check_tol(tol, dtype) -> float:
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise TypeError(f"tol: expected a float in (0, 1), got {tol!r}")
    tol = float(tol)
    if not 0.0 < tol < 1.0:
        raise ValueError(f"tol: must be in (0, 1) (the relative Frobenius error), got {tol!r}")
    floor = accuracy_floor(dtype)
    if tol < floor:
        raise ValueError(
            f"tol: {tol:.3g} is below the accuracy of the error indicator for {np.dtype(dtype).name} A "
            f"(tol >= {floor:.2g}; ||A||^2 - ||B||^2 is lost to rounding below it); "
            f"use fastlr.randomized_svd with a fixed rank instead"
        )
    return tol


#: The indicator needs ||A||_F^2 >= n d tiny: each square of an entry below sqrt(tiny) (1.5e-154
#: in float64) is subnormal, off by up to eps * tiny, and n d of those must stay below eps ||A||_F^2.
_TINY = float(np.finfo(np.float64).tiny)


def _refuse_tiny(name: str, total: float):
    raise ValueError(f"{name}: its entries are so small that their squares underflow float64 "
                     f"(||A||_F^2 = {total:.3g}), so the error indicator cannot be formed; divide A by a "
                     f"power of two near its largest entry (the rank chosen is the same)")


def _squares(B) -> float:
    """``||B||_F^2`` in float64 (B an ndarray or a dask array)."""
    if isinstance(B, np.ndarray):
        B = B.astype(np.float64, copy=False)
        return float(np.einsum("ij,ij->", B, B))
    return float((B.astype(np.float64) ** 2).sum())


def _project_out(Z: np.ndarray, V) -> np.ndarray:
    """``(I - V V^T) Z`` in float64 (V: the columns found so far, or None)."""
    if V is None:
        return Z
    V64 = V.astype(np.float64, copy=False)
    return Z - V64 @ (V64.T @ Z)


def svd_to_tolerance(A, tol, *, max_rank=None, block_size=16, n_iter=2, random_state=None,
                     svd_lapack_driver="gesdd", backend=None, block_rows=None):
    """Truncated SVD of the smallest rank whose relative Frobenius error is at most ``tol``.

    The rank k is the smallest for which the returned approximation satisfies
    ``||A - U diag(s) Vt||_F <= tol * ||A||_F`` (the rank is chosen by accuracy,
    not given). Computed by the blocked randomized QB with error indicator
    (randQB_EI of Yu, Gu and Li), on the row space: blocks of ``block_size``
    orthonormal directions of the residual's row space are added (each
    ``n_iter + 1`` passes ``A^T A X`` and one pass ``A V_i``) until
    ``||A||_F^2 - ||A V||_F^2 <= tol^2 ||A||_F^2``; the SVD of ``A V`` then
    picks k. k is minimal for the subspace found; with power iterations that
    subspace is close to the dominant one, so k is the optimal rank (that of the
    exact truncated SVD) or slightly above it.

    Parameters
    ----------
    A : array_like, scipy.sparse matrix, np.memmap, dask array or fastlr Operand, shape (n, d)
        As for :func:`fastlr.randomized_svd` (float32 stays float32).
    tol : float in (0, 1)
        Relative Frobenius error. Must be at least :func:`accuracy_floor` of
        A's dtype (``sqrt(20 eps)``: 6.7e-08 for float64, 1.5e-03 for float32).
    max_rank : int, optional
        At most this many components (default ``min(n, d)``). When tol is not
        reached within it, ``max_rank`` components are returned with a
        ``RuntimeWarning`` giving the error reached.
    block_size : int, default 16
        Columns added per block (b). Larger blocks run the kernels faster but may
        overshoot the needed rank by up to b - 1 columns of work.
    n_iter : int, default 2
        Power iterations per block (q).
    random_state : None, int, RandomState or Generator
        Seeds the Gaussian test matrices.
    svd_lapack_driver : {"gesdd", "gesvd"}, default "gesdd"
    backend : {"cpp", "numba", "numpy"}, optional
    block_rows : int, optional
        Rows per block for numpy arrays / memmaps read in row blocks.

    Returns
    -------
    U : ndarray, shape (n, k)
    s : ndarray, shape (k,)
        Descending.
    Vt : ndarray, shape (k, d)
        Signs as scikit-learn's ``svd_flip`` (largest |entry| of each column of
        U positive). k >= 1 (a zero A gives one component with s = 0).

    Raises
    ------
    ValueError
        tol outside (0, 1) or below the accuracy floor, bad max_rank,
        block_size or n_iter, empty A, NaN/inf in A.
    TypeError
        Arguments of the wrong type.

    Notes
    -----
    The indicator is accumulated in float64 from ``||A||_F^2`` (one extra pass)
    and ``||A V_i||_F^2``. It cancels as E gets small: B = A V carries A's
    rounding, so E is known to a few ``eps * ||A||_F^2``; tol below
    ``sqrt(20 eps)`` is therefore refused rather than silently unreliable (the
    paper's caveat: the indicator is trustworthy only above about
    ``sqrt(eps) ||A||_F``). The final error ``E + sum_(i>k) sigma_i^2`` adds the
    tail from B's SVD in float64, which does not cancel further.

    References
    ----------
    W. Yu, Y. Gu and Y. Li, "Efficient randomized algorithms for the
    fixed-precision low-rank matrix approximation", SIAM J. Matrix Anal. Appl.
    39(3), 2018 (Algorithm 4, randQB_EI).

    Examples
    --------
    >>> import numpy as np, fastlr
    >>> rng = np.random.default_rng(0)
    >>> A = (rng.standard_normal((300, 20)) * 0.5 ** np.arange(20)) @ rng.standard_normal((20, 100))
    >>> U, s, Vt = fastlr.svd_to_tolerance(A, 1e-3, random_state=0)
    >>> np.linalg.norm(A - (U * s) @ Vt) <= 1e-3 * np.linalg.norm(A)
    True
    """
    op = operand(A, backend=backend, block_rows=block_rows).check_nonempty()
    n, d = op.shape
    tol = _check_tol(tol, op.dtype)
    limit = min(n, d)
    max_rank = limit if max_rank is None else min(check_int(max_rank, "max_rank", minimum=1), limit)
    b = check_int(block_size, "block_size", minimum=1)
    n_iter = check_int(n_iter, "n_iter", minimum=0)
    driver = check_choice(svd_lapack_driver, "svd_lapack_driver", LAPACK_DRIVERS)
    rng = np.random.default_rng(random_seed(random_state))

    op = op.for_power_steps()
    total = op.squared_norm()
    if not np.isfinite(total):
        raise ValueError(f"{op.name}: contains NaN or infinity (or its squared norm overflows float64: "
                         f"divide A by a power of two near its largest entry; the rank chosen is the same)")
    if 0.0 < total < n * d * _TINY:
        _refuse_tiny(op.name, total)
    target = tol * tol * total
    # Products are taken of X / c, c a power of two near ||A||_F: A^T A X / c stays near ||A||_F.
    c = power_of_two(np.sqrt(total)) if total > 0 else 1.0
    dtype = op.dtype

    V, blocks, E = None, [], total
    with blas_single_thread():
        while V is None or (E > target and V.shape[1] < max_rank):  # at least one block
            width = min(b, max_rank - (0 if V is None else V.shape[1]))
            Z = rng.standard_normal((d, width))
            for _ in range(n_iter + 1):
                Z = _project_out(Z, V)
                Z = op.gram_product(np.ascontiguousarray(Z / c, dtype=dtype))
                Z = np.asarray(Z, dtype=np.float64)
                if not np.isfinite(Z).all():
                    raise ValueError(f"{op.name}: contains NaN or infinity, so A^T A X is not finite")
                Z = orthonormal(_project_out(Z, V))
            Vi = orthonormal(_project_out(Z, V))  # re-orthogonalized: V's columns stay orthonormal
            Vi = np.ascontiguousarray(Vi, dtype=dtype)
            Bi = op.times(Vi)
            E -= _squares(Bi)
            blocks.append(Bi)
            V = Vi if V is None else np.hstack([V, Vi])
        B = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
        if total == 0.0 and np.any(B):  # entries below 1e-162: every square underflowed to zero
            _refuse_tiny(op.name, total)
        UB, sB, X = op.thin_svd(B, V.shape[1], driver)
        sB64 = np.asarray(sB, dtype=np.float64)
        tails = np.concatenate([np.cumsum((sB64 ** 2)[::-1])[::-1], [0.0]])  # tails[k] = sum_(i>=k) s_i^2
        # The error of rank k: E (outside V's span) plus B's tail beyond k.
        errors = max(E, 0.0) + tails[1:]
        hits = np.flatnonzero(errors <= target)
        if hits.size:
            k = int(hits[0]) + 1
        else:
            k = V.shape[1]
            warnings.warn(
                f"svd_to_tolerance: tol={tol:.3g} not reached with max_rank={max_rank}; "
                f"relative error {np.sqrt(max(errors[-1], 0.0) / total):.3g}",
                RuntimeWarning, stacklevel=2,
            )
        f = SCWFactors(np.zeros((0, 0)), np.zeros(0), V, B, UB[:, :k], sB, X)
        return op.truncate(f, k, flip_sign=True)
