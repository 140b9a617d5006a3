"""LowRank: a rank-k matrix held as its SVD factors U diag(s) Vt."""

from __future__ import annotations

import numpy as np

from ._validation import as_matrix, is_sparse

__all__ = ["LowRank"]

#: Entries of A handled at once by ``LowRank.error`` (float64 work arrays of ~8 MB).
_CHUNK_ENTRIES = 1 << 20


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
        A : array_like or scipy.sparse matrix, shape (n, d)

        Returns
        -------
        float
        """
        A = as_matrix(A)
        if A.shape != self.shape:
            raise ValueError(f"A: expected shape {self.shape} (the approximation's), got {A.shape}")
        if is_sparse(A) and A.format != "csr":
            A = A.tocsr()
        Us = self.U.astype(np.float64) * self.s.astype(np.float64)
        Vt = self.Vt.astype(np.float64)
        rows = max(1, _CHUNK_ENTRIES // max(1, A.shape[1]))
        total = 0.0
        for start in range(0, A.shape[0], rows):
            stop = min(start + rows, A.shape[0])
            block = A[start:stop]
            block = block.toarray() if is_sparse(block) else block
            R = np.asarray(block, dtype=np.float64) - Us[start:stop] @ Vt
            total += float(np.einsum("ij,ij->", R, R))
        if not np.isfinite(total) and not np.isfinite(A.data if is_sparse(A) else A).all():
            raise ValueError("A: contains NaN or infinity")  # checked only then: no extra pass otherwise
        return float(np.sqrt(total))

    def __repr__(self) -> str:
        return f"LowRank(shape={self.shape}, rank={self.rank}, dtype={self.dtype})"
