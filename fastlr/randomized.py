"""randomized_svd: a drop-in for ``sklearn.utils.extmath.randomized_svd`` on fastlr's kernels."""

from __future__ import annotations

import numbers

import numpy as np

from ._validation import check_int, is_sparse
from .scw import (
    LAPACK_DRIVERS,
    blas_single_thread,
    check_finite_sketch,
    check_matrix,
    check_rank,
    flip_signs,
    wants_row_blocks,
    scw_factors,
    truncate,
)
from .sketch import CountSketch, GaussianSketch

__all__ = ["randomized_svd"]

SKETCHES = ("countsketch", "gaussian")
_NORMALIZERS = ("auto", "QR", "LU", "none")


def _seed(random_state) -> int:
    """A sketch seed from scikit-learn-style ``random_state`` (never the global np.random)."""
    if random_state is None:
        return int(np.random.default_rng().integers(2**63))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return check_int(random_state, "random_state", minimum=0)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63))
    raise TypeError(
        f"random_state: expected None, a non-negative int, a RandomState or a Generator, got {random_state!r}"
    )


def _choice(value, name, choices):
    if not isinstance(value, (str, bool)) or value not in choices:
        raise ValueError(f"{name}: must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_options(A, n_components, n_oversamples, n_iter, power_iteration_normalizer, transpose, flip_sign,
                  svd_lapack_driver, sketch, random_state):
    """Validate randomized_svd's options for a matrix of A's shape; resolve the "auto" values.

    Returns (k, n_oversamples, n_iter, normalizer, transpose, driver, sketch, seed).
    """
    k = check_rank(n_components, A, "n_components")
    p = check_int(n_oversamples, "n_oversamples", minimum=0)
    if isinstance(n_iter, str) and n_iter == "auto":
        n_iter = 7 if k < 0.1 * min(A.shape) else 4
    else:
        n_iter = check_int(n_iter, "n_iter", minimum=0)
    normalizer = _choice(power_iteration_normalizer, "power_iteration_normalizer", _NORMALIZERS)
    if normalizer == "auto":
        normalizer = "none" if n_iter <= 2 else "LU"
    transpose = _choice(transpose, "transpose", ("auto", True, False))
    if not isinstance(flip_sign, (bool, np.bool_)):
        raise TypeError(f"flip_sign: expected a bool, got {flip_sign!r}")
    driver = _choice(svd_lapack_driver, "svd_lapack_driver", LAPACK_DRIVERS)
    sketch = _choice(sketch, "sketch", SKETCHES)
    seed = _seed(random_state)
    return k, p, n_iter, normalizer, transpose, driver, sketch, seed


def randomized_svd(A, n_components, *, n_oversamples=10, n_iter="auto", power_iteration_normalizer="auto",
                   transpose="auto", flip_sign=True, random_state=None, svd_lapack_driver="gesdd",
                   sketch="countsketch", check_finite=True, backend=None):
    """Truncated SVD by randomized subspace iteration, with scikit-learn's interface.

    Same parameters, defaults and return contract as
    ``sklearn.utils.extmath.randomized_svd``. The range finder works on the row
    space: it starts from a CountSketch ``M = S A`` (one O(nnz) pass instead of
    a Gaussian GEMM), so V0 spans ``A^T S^T``; each power iteration
    ``Z = A^T (A V)`` is ONE pass over A (fused kernel), renormalized on the
    small d x l side; the result is the SVD of ``B = A V``. At equal ``n_iter``
    the subspace is ``range(A^T (A A^T)^q S^T)``, the same polynomial degree as
    scikit-learn's ``range(A (A^T A)^q Omega)``, from half the passes over A.

    Parameters
    ----------
    A : array_like or scipy.sparse matrix, shape (n, d)
        Dense (any memory order) or sparse (CSR is best; other formats are
        converted). float32 stays float32; other real dtypes compute in float64.
    n_components : int
        Number of singular triplets, ``1 <= n_components <= min(n, d)``.
    n_oversamples : int, default 10
        Extra sketch rows: the subspace has ``l = n_components + n_oversamples`` columns.
    n_iter : int or "auto", default "auto"
        Power iterations; "auto" is 7 when ``n_components < 0.1 * min(A.shape)``, else 4.
    power_iteration_normalizer : {"auto", "QR", "LU", "none"}, default "auto"
        Renormalization between power iterations ("auto": "none" if n_iter <= 2, else "LU").
        It acts on d x l matrices, so even "QR" is cheap.
    transpose : bool or "auto", default "auto"
        Run on ``A.T`` and transpose the result back. fastlr's passes cost the
        same either way, so "auto" means False.
    flip_sign : bool, default True
        Make the largest-magnitude entry of each left singular vector positive
        (scikit-learn's ``svd_flip`` convention).
    random_state : None, int, numpy RandomState or Generator, default None
        Seed of the sketch. None draws fresh entropy (never the global np.random).
    svd_lapack_driver : {"gesdd", "gesvd"}, default "gesdd"
        LAPACK driver for the small SVDs.
    sketch : {"countsketch", "gaussian"}, default "countsketch"
        Operator of the first pass ("gaussian": a dense Gaussian sketch, one GEMM).
    check_finite : bool, default True
        Raise ValueError when A holds NaN or inf (checked on the sketch S A, so
        it costs no extra pass over A). False skips the check here; fastlr's
        sketch operators still refuse a non-finite S A.
    backend : {"cpp", "numba", "numpy"}, optional
        Kernel backend; None uses the current default.

    Returns
    -------
    U : ndarray, shape (n, n_components)
    s : ndarray, shape (n_components,)
        Descending; zero beyond the numerical rank of A.
    Vt : ndarray, shape (n_components, d)

    Raises
    ------
    ValueError
        Bad sizes or options, empty A, NaN/inf in A.
    TypeError
        A not a real numeric matrix; random_state of an unknown type.

    References
    ----------
    N. Halko, P.-G. Martinsson and J. Tropp, "Finding structure with randomness",
    SIAM Review 53(2), 2011. K. Clarkson and D. Woodruff, "Low rank approximation
    and regression in input sparsity time", STOC 2013.

    Examples
    --------
    >>> import numpy as np, fastlr
    >>> A = np.random.default_rng(0).standard_normal((300, 80))
    >>> U, s, Vt = fastlr.randomized_svd(A, 5, random_state=0)
    >>> U.shape, s.shape, Vt.shape
    ((300, 5), (5,), (5, 80))
    """
    if wants_row_blocks(A):  # dask arrays and memory maps: passes over row blocks
        from . import _rowblocks

        return _rowblocks.randomized_svd(
            A, n_components, n_oversamples=n_oversamples, n_iter=n_iter,
            power_iteration_normalizer=power_iteration_normalizer, transpose=transpose, flip_sign=flip_sign,
            random_state=random_state, svd_lapack_driver=svd_lapack_driver, sketch=sketch,
            check_finite=check_finite, backend=backend)
    A = check_matrix(A)
    k, p, n_iter, normalizer, transpose, driver, sketch, seed = check_options(
        A, n_components, n_oversamples, n_iter, power_iteration_normalizer, transpose, flip_sign,
        svd_lapack_driver, sketch, random_state)

    if transpose is True:
        A = A.T
    if is_sparse(A) and A.format == "csc" and n_iter > 0:
        A = A.tocsr()  # power steps are one pass over CSR, two over CSC
    sketch_type = CountSketch if sketch == "countsketch" else GaussianSketch
    SA = np.asarray(sketch_type(k + p, A.shape[0], seed=seed).apply(A, backend=backend))
    if check_finite:
        check_finite_sketch(SA)
    with blas_single_thread():
        f = scw_factors(A, SA, k, n_iter=n_iter, power_iteration_normalizer=normalizer, lapack_driver=driver,
                        backend=backend)
        U, s, Vt = truncate(f, k, A.dtype, flip_sign=False)
        if transpose is True:
            U, Vt = Vt.T, U.T
        if flip_sign:
            U, Vt = flip_signs(U, Vt)
    return np.ascontiguousarray(U), s, np.ascontiguousarray(Vt)
