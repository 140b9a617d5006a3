"""LowRank: a rank-k matrix held as its SVD factors U diag(s) Vt."""

from __future__ import annotations

import numbers
import sys
from typing import NamedTuple

import numpy as np

from ._linalg import blas_single_thread
from ._validation import as_matrix, check_int, dtype_for, is_dask_array, is_sparse

__all__ = ["ErrorEstimate", "LowRank", "chernoff_factor"]

#: Entries of A handled at once by ``LowRank.error`` (float64 work arrays of ~8 MB).
_CHUNK_ENTRIES = 1 << 20


class ErrorEstimate(NamedTuple):
    """The result of :meth:`LowRank.error_estimate` (all Frobenius norms, absolute)."""

    estimate: float  #: sqrt(||R Omega||_F^2 / p): its square is an unbiased estimate of ||R||_F^2
    bound: float  #: an upper bound on ||R||_F that holds with probability >= confidence
    confidence: float  #: the probability that ``bound`` holds
    n_samples: int  #: p, the number of Gaussian probes


def chernoff_factor(n_samples: int, confidence: float) -> float:
    """z in (0, 1) with ``(z e^(1 - z))^(p / 2) = 1 - confidence`` (p = n_samples): then
    ``P(||R Omega||_F^2 / p <= z ||R||_F^2) <= 1 - confidence`` for Gaussian Omega (d x p)."""
    target = 2.0 * np.log1p(-confidence) / n_samples  # log(z) + 1 - z = target < 0, increasing in z on (0, 1)
    lo, hi = 0.0, 1.0
    for _ in range(200):  # bisection in log space: z may be tiny for small p and high confidence
        mid = 0.5 * (lo + hi) if lo > 0.0 else hi * 1e-3 if hi > 1e-300 else 0.5 * hi
        if np.log(mid) + 1.0 - mid < target:
            lo = mid
        else:
            hi = mid
        if lo > 0.0 and hi - lo <= 1e-12 * hi:
            break
    return lo if lo > 0.0 else hi


def _scaled_sum_of_squares(R: np.ndarray) -> tuple[float, float]:
    """(m, sum of (R / m)^2) with m the largest |entry| of R; (0, 0) for R = 0 or empty."""
    m = float(np.max(np.abs(R))) if R.size else 0.0
    if m == 0.0 or not np.isfinite(m):
        return m, 0.0
    R = R / m
    return m, float(np.einsum("ij,ij->", R, R))


class _ScaledNorm:
    """The Frobenius norm of blocks added one at a time, as LAPACK's dlassq: sum of squares of
    block / scale with scale the largest |entry| so far. Plain sums of squares overflow from
    entries near 1e154 and lose everything below 1e-162 (a residual of A ~ 1e-150 near eps)."""

    def __init__(self):
        self.scale, self.ssq = 0.0, 0.0

    def add(self, R: np.ndarray) -> None:
        self.add_scaled(*_scaled_sum_of_squares(R))

    def add_scaled(self, m: float, ssq: float) -> None:
        """Add a block given as its largest |entry| m and the sum of squares of block / m."""
        if not np.isfinite(m):
            self.scale, self.ssq = m, 1.0
            return
        if m == 0.0 or not np.isfinite(self.scale):
            return
        if m > self.scale:
            self.ssq *= (self.scale / m) ** 2
            self.scale = m
        self.ssq += ssq * (m / self.scale) ** 2

    def value(self) -> float:
        return self.scale * float(np.sqrt(self.ssq)) if self.scale else 0.0


class LowRank:
    """A low-rank matrix ``U @ diag(s) @ Vt`` in SVD form.

    Unpacks like the tuple ``(U, s, Vt)``. U (n x k) and Vt (k x d) have
    orthonormal columns/rows and s (k,) is non-negative and descending when
    produced by fastlr (``scw``).

    Parameters
    ----------
    U : ndarray, shape (n, k)
    s : ndarray, shape (k,)
    Vt : ndarray, shape (k, d)

    Examples
    --------
    >>> import numpy as np, fastlr
    >>> A = np.random.default_rng(0).standard_normal((100, 30))
    >>> lr = fastlr.scw(A, fastlr.CountSketch(20, 100, seed=1), 5)
    >>> U, s, Vt = lr
    >>> lr.shape, lr.rank
    ((100, 30), 5)
    """

    __slots__ = ("U", "s", "Vt")

    def __init__(self, U, s, Vt):
        U, s, Vt = np.asarray(U), np.asarray(s), np.asarray(Vt)
        if U.ndim != 2 or s.ndim != 1 or Vt.ndim != 2:
            raise ValueError(f"U, s, Vt: expected 2-D, 1-D, 2-D arrays, got ndim {U.ndim}, {s.ndim}, {Vt.ndim}")
        if not (U.shape[1] == s.shape[0] == Vt.shape[0]):
            raise ValueError(f"U, s, Vt: inconsistent shapes {U.shape}, {s.shape}, {Vt.shape}")
        self.U, self.s, self.Vt = U, s, Vt

    def __iter__(self):
        return iter((self.U, self.s, self.Vt))

    def __len__(self) -> int:
        return 3

    def __getitem__(self, i):
        return (self.U, self.s, self.Vt)[i]

    @property
    def shape(self) -> tuple[int, int]:
        """Shape (n, d) of the matrix it represents."""
        return (self.U.shape[0], self.Vt.shape[1])

    @property
    def rank(self) -> int:
        """Number of components k (trailing singular values may be zero for rank-deficient input)."""
        return int(self.s.shape[0])

    @property
    def dtype(self) -> np.dtype:
        return self.U.dtype

    def to_dense(self) -> np.ndarray:
        """The n x d matrix ``U @ diag(s) @ Vt``."""
        return (self.U * self.s) @ self.Vt

    def error(self, A) -> float:
        """Frobenius norm ``||A - U diag(s) Vt||_F``, computed explicitly in float64.

        The residual is formed a block of rows at a time (memory stays bounded)
        and never via ``||A||^2 - ||s||^2``, which cancels when the
        approximation is nearly exact, above all in float32.

        Parameters
        ----------
        A : array_like, scipy.sparse matrix or dask array, shape (n, d)
            A dask array is read chunk by chunk where its chunks live, never gathered.

        Returns
        -------
        float
        """
        if is_dask_array(A):
            return self._dask_error(A)
        A = as_matrix(A)
        if A.shape != self.shape:
            raise ValueError(f"A: expected shape {self.shape} (the approximation's), got {A.shape}")
        if is_sparse(A) and A.format != "csr":
            A = A.tocsr()
        Us = self.U.astype(np.float64) * self.s.astype(np.float64)
        Vt = self.Vt.astype(np.float64)
        rows = max(1, _CHUNK_ENTRIES // max(1, A.shape[1]))
        norm = _ScaledNorm()
        for start in range(0, A.shape[0], rows):
            stop = min(start + rows, A.shape[0])
            block = A[start:stop]
            block = block.toarray() if is_sparse(block) else block
            norm.add(np.asarray(block, dtype=np.float64) - Us[start:stop] @ Vt)
        total = norm.value()
        if not np.isfinite(total) and not np.isfinite(A.data if is_sparse(A) else A).all():
            raise ValueError("A: contains NaN or infinity")  # checked only then: no extra pass otherwise
        return total

    def _dask_error(self, A) -> float:
        if A.ndim != 2 or tuple(A.shape) != self.shape:
            raise ValueError(f"A: expected shape {self.shape} (the approximation's), got {tuple(A.shape)}")
        A = A.astype(np.float64).rechunk({1: -1})
        Us = _row_chunked(self.U, A.chunks[0]).astype(np.float64) * self.s.astype(np.float64)
        R = A - Us @ np.asarray(self.Vt, dtype=np.float64)  # a task per row chunk
        import dask

        with blas_single_thread():  # tasks run side by side
            # each chunk's (largest |entry|, scaled sum of squares), combined as _ScaledNorm does:
            # plain squares overflow from entries near 1e154 and vanish below 1e-162
            parts = dask.compute(*[dask.delayed(_scaled_sum_of_squares)(block)
                                   for block in R.to_delayed().ravel()])
        norm = _ScaledNorm()
        for scale, ssq in parts:
            norm.add_scaled(scale, ssq)
        total = norm.value()
        if not np.isfinite(total):
            raise ValueError("A: contains NaN or infinity (or the residual overflows)")
        return total

    def error_estimate(self, A, *, n_samples: int = 10, confidence: float = 0.99,
                       random_state=None) -> ErrorEstimate:
        """A randomized estimate of ``||A - U diag(s) Vt||_F`` from one pass over A, with a bound.

        With a Gaussian d x p matrix Omega (p = ``n_samples``) and the residual
        ``R = A - U diag(s) Vt``, ``R Omega = A Omega - U (s * (Vt Omega))`` takes
        one pass over A (a product with p columns) and O((n + d) k p) more work;
        ``||R Omega||_F^2 / p`` is an unbiased estimate of ``||R||_F^2`` (Hutchinson;
        Girard). Unlike :meth:`error`, nothing of size n x d is formed, so this
        is the check to use on large sparse A.

        Confidence: writing ``||R Omega||_F^2 = sum_j sigma_j(R)^2 X_j`` with X_j
        independent chi-square(p) variables, the Chernoff bound and
        ``prod_j (1 + 2 theta w_j) >= 1 + 2 theta`` (w_j = sigma_j^2 / ||R||_F^2,
        summing to 1) give, for every R and every z in (0, 1),
        ``P(||R Omega||_F^2 / p <= z ||R||_F^2) <= (z e^(1 - z))^(p / 2)``: the
        rank-one worst case. ``bound = estimate / sqrt(z)`` with z solving
        ``(z e^(1 - z))^(p / 2) = 1 - confidence``; it also bounds the spectral
        norm ``||R||_2 <= ||R||_F``. For p = 10 and confidence 0.99 the bound is
        2.4 times the estimate; for p = 30, 1.6 times. The bound is for the random
        probes only: rounding in ``A Omega`` (A's dtype) limits both numbers to
        about ``eps * ||A||_F``.

        Parameters
        ----------
        A : array_like or scipy.sparse matrix, shape (n, d)
            The matrix approximated (or a fastlr operand: anything with ``times``).
        n_samples : int, default 10
            Number of Gaussian probes p, >= 1.
        confidence : float in (0, 1), default 0.99
            Probability with which ``bound`` holds.
        random_state : None, int, numpy Generator or RandomState
            Seeds the probes (never the global np.random).

        Returns
        -------
        ErrorEstimate
            ``(estimate, bound, confidence, n_samples)``.

        Raises
        ------
        ValueError
            A of the wrong shape, NaN/inf in A, bad n_samples or confidence.

        References
        ----------
        M. Hutchinson, "A stochastic estimator of the trace of the influence
        matrix for Laplacian smoothing splines", 1990. S. Gratton and D.
        Titley-Peloquin, "Improved bounds for small-sample estimation", SIAM J.
        Matrix Anal. Appl. 39(2), 2018 (the rank-one worst case).

        Examples
        --------
        >>> import numpy as np, fastlr
        >>> A = np.random.default_rng(0).standard_normal((200, 50))
        >>> lr = fastlr.LowRank(*fastlr.randomized_svd(A, 10, random_state=0))
        >>> est = lr.error_estimate(A, n_samples=20, random_state=0)
        >>> est.estimate <= lr.error(A) * 1.5 and lr.error(A) <= est.bound
        True
        """
        p = check_int(n_samples, "n_samples", minimum=1)
        if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) \
                or not 0.0 < float(confidence) < 1.0:
            raise ValueError(f"confidence: must be a float in (0, 1), got {confidence!r}")
        confidence = float(confidence)
        if isinstance(random_state, np.random.RandomState):
            random_state = int(random_state.randint(0, 2**31 - 1))
        try:
            rng = np.random.default_rng(random_state)
        except (TypeError, ValueError):
            raise TypeError(f"random_state: expected None, an int, a Generator or a RandomState, "
                            f"got {random_state!r}") from None
        times = getattr(A, "times", None)
        if times is None and is_dask_array(A):
            dtype = dtype_for(A, "A")
            times = _dask_times(A.astype(dtype))
        elif times is None:
            A = as_matrix(A)
            dtype = A.dtype
        else:
            dtype = A.dtype
        if tuple(A.shape) != self.shape:
            raise ValueError(f"A: expected shape {self.shape} (the approximation's), got {tuple(A.shape)}")
        omega = rng.standard_normal((self.shape[1], p))
        AO = times(np.ascontiguousarray(omega, dtype=dtype)) if times is not None else A @ omega.astype(dtype)
        R = np.asarray(AO, dtype=np.float64)
        fitted = self.U @ (self.s.astype(np.float64)[:, None] * (self.Vt.astype(np.float64) @ omega))
        R -= fitted.compute() if is_dask_array(fitted) else fitted  # a dask U stays put
        norm = _ScaledNorm()
        norm.add(R)
        if not np.isfinite(norm.value()):
            raise ValueError("A: contains NaN or infinity (or the residual overflows)")
        estimate = norm.value() / float(np.sqrt(p))
        return ErrorEstimate(estimate, estimate / float(np.sqrt(chernoff_factor(p, confidence))), confidence, p)

    def __repr__(self) -> str:
        return f"LowRank(shape={self.shape}, rank={self.rank}, dtype={self.dtype})"


def _row_chunked(U, chunks):
    """U (ndarray or dask array, n x k) as a dask array with the row chunks ``chunks``."""
    da = sys.modules["dask.array"]
    U = U if isinstance(U, da.Array) else da.from_array(np.asarray(U), chunks=(chunks, -1))
    return U.rechunk((chunks, -1))


def _dask_times(A):
    """``Omega -> A @ Omega`` for a dask array A, computed chunk by chunk (A is never gathered)."""
    def times(omega):
        with blas_single_thread():
            return (A @ omega).compute()
    return times
