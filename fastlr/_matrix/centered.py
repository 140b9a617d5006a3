"""Column-centered matrices ``A - 1 mu^T`` as operands, without forming them.

Every pass of ``Centered(op, mu)`` is a pass of ``op`` (A) plus small dense
corrections, so a sparse CSR A stays sparse and memory stays
O(nnz + (n + d) r) (the r-column factors):

* ``S (A - 1 mu^T) = S A - (S 1) mu^T``: ``S 1`` of a CountSketch is a bincount
  of its values by row, of a dense G its row sums;
* ``(A - 1 mu^T) V = A V - 1 (mu^T V)`` and ``(A - 1 mu^T)^T W = A^T W - mu (1^T W)``;
* ``(A - 1 mu^T)^T (A - 1 mu^T) V = A^T A V - c (mu^T V) - mu (c^T V) + n mu (mu^T V)``
  with ``c = A^T 1`` (the column sums; ``c = n mu`` for the column mean, and the
  correction is ``- n mu mu^T V``): one fused pass over A.

Accuracy. The fused Gram product subtracts ``n mu mu^T V`` from ``A^T A V``: it
loses a factor ``kappa = (||A_c||_F^2 + n ||mu||^2) / ||A_c||_F^2`` (``A_c`` the
centered matrix), i.e. eps * kappa relative to ``||A_c||^2``. It is used only
while ``eps(dtype) * kappa <= 1e-10`` (float64 data whose mean is at most ~1e3
times its spread); otherwise, on in-memory input, the product is taken in two
passes, ``A^T Y - mu (1^T Y)`` of ``Y = A V - 1 (mu^T V)``, which loses only
``sqrt(kappa)`` (as any implicit centering does, scikit-learn's included). For
float32 that is always the two-pass form. On narrow dense A the power steps use
the centered Gram matrix, formed exactly from centered row blocks.
"""

from __future__ import annotations

import copy

import numpy as np

from .._linalg import blas_limit
from .._threads import get_num_threads
from .._validation import real_array
from .base import Operand
from .memory import _BLOCK_ENTRIES, InMemory, representable

__all__ = ["Centered"]

#: The fused Gram product (one pass) is used while eps(dtype) * kappa stays below this.
_FUSED_GRAM_LOSS = 1e-10

class Centered(Operand):
    """``A - 1 mu^T`` (n x d) for an operand A, never formed.

    Parameters
    ----------
    op : Operand
        A (any storage: ``InMemory``, ``RowBlocks``, ``DaskRows``).
    mu : array_like of shape (d,), optional
        The row subtracted from every row of A. Default: A's column mean
        (one pass over A).

    Attributes
    ----------
    inner : Operand
        A.
    mu : ndarray (d,), float64
    inner_sums : ndarray (d,), float64
        ``A^T 1`` (one pass over A, computed once on first use).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, fastlr
    >>> from fastlr._matrix import operand
    >>> from fastlr._matrix.centered import Centered
    >>> X = sp.random(200, 30, density=0.1, format="csr", random_state=0)
    >>> U, s, Vt = fastlr.randomized_svd(Centered(operand(X)), 5, random_state=0)
    """

    def __init__(self, op: Operand, mu=None):
        if not isinstance(op, Operand):
            raise TypeError(f"op: expected an Operand (fastlr._matrix.operand(A)), got {type(op).__name__}")
        self.inner = op
        self.shape = op.shape
        self.dtype = op.dtype
        self.backend = op.backend
        self.name = op.name
        self.sparse = op.sparse
        self._sums = None
        self._norm = None
        if mu is None:
            op.check_nonempty()
            self._sums = op.column_sums()
            mu = self._sums / op.shape[0]
        mu = real_array(mu, "mu")
        if mu.shape != (op.shape[1],):
            raise ValueError(f"mu: expected shape ({op.shape[1]},) (one entry per column of {op.name}), "
                             f"got {mu.shape}")
        mu = mu.astype(np.float64)
        if not np.isfinite(mu).all():
            raise ValueError("mu: contains NaN or infinity")
        self.mu = mu

    def __repr__(self) -> str:
        return f"Centered({self.inner!r})"

    def with_backend(self, backend) -> Centered:
        if backend == self.backend:
            return self
        other = copy.copy(self)
        other.inner = self.inner.with_backend(backend)
        other.backend = backend
        return other

    def _with_inner(self, inner: Operand) -> Centered:
        if inner is self.inner:
            return self
        other = copy.copy(self)
        other.inner = inner
        return other

    @property
    def split_last_step(self) -> bool:
        return self.inner.split_last_step  # rtimes needs an in-memory A

    # ----------------------------------------------------------------- statistics

    @property
    def inner_sums(self) -> np.ndarray:
        """``A^T 1`` of the uncentered A in float64 (computed once)."""
        if self._sums is None:
            self._sums = self.inner.column_sums()
        return self._sums

    def column_sums(self) -> np.ndarray:
        """``(A - 1 mu^T)^T 1``."""
        return self.inner_sums - self.shape[0] * self.mu

    def centered_squared_norm(self, mu) -> float:
        return self.inner.centered_squared_norm(self.mu + mu)

    def squared_norm(self) -> float:
        """``||A - 1 mu^T||_F^2`` in float64, computed without cancellation (one pass, then cached)."""
        if self._norm is None:
            self._norm = self.inner.centered_squared_norm(self.mu)
        return self._norm

    def _fused_ok(self) -> bool:
        """Whether the one-pass Gram product (``A^T A V`` minus rank-2 corrections) is accurate enough."""
        centered = self.squared_norm()
        offset = self.shape[0] * float(self.mu @ self.mu)
        if offset == 0.0:
            return True
        if centered == 0.0:
            return False
        return np.finfo(self.dtype).eps * (centered + offset) / centered <= _FUSED_GRAM_LOSS

    # ----------------------------------------------------------------- sketches

    def _cast(self, X):
        return np.asarray(X, dtype=self.dtype)

    def countsketch(self, rows, values, m: int):
        S1 = np.bincount(rows, weights=np.asarray(values, dtype=np.float64), minlength=m)
        return self.inner.countsketch(rows, values, m) - self._cast(np.outer(S1, self.mu))

    def dense_sketch(self, G):
        G1 = np.asarray(G, dtype=np.float64).sum(axis=1)
        return self.inner.dense_sketch(G) - self._cast(np.outer(G1, self.mu))

    # ----------------------------------------------------------------- products

    def times(self, V):
        """``(A - 1 mu^T) V``."""
        muV = self._cast(self.mu @ np.asarray(V, dtype=np.float64))
        return self.inner.times(V) - muV[None, :]

    def rtimes(self, W):
        """``(A - 1 mu^T)^T W`` (in-memory A)."""
        W1 = np.asarray(W, dtype=np.float64).sum(axis=0)
        return self.inner.rtimes(W) - self._cast(np.outer(self.mu, W1))

    def gram_product(self, V) -> np.ndarray:
        """``(A - 1 mu^T)^T (A - 1 mu^T) V``: one fused pass when accurate enough, else two passes
        (see the module's notes)."""
        if not self._fused_ok() and isinstance(self.inner, InMemory):
            return self.rtimes(self.times(V))
        return self.inner.gram_product(V) - self._gram_correction(V)

    def power_pass(self, V) -> tuple[np.ndarray, np.ndarray]:
        """``(A_c V, A_c^T A_c V)`` (in-memory A): one fused pass with the rank-2 corrections, or two
        passes when those are not accurate enough (see ``gram_product``)."""
        if not self._fused_ok():
            P = self.times(V)
            return P, self.rtimes(P)
        P, Z = self.inner.power_pass(V)
        muV = self._cast(self.mu @ np.asarray(V, dtype=np.float64))
        return P - muV[None, :], Z - self._gram_correction(V)

    def _gram_correction(self, V) -> np.ndarray:
        """``A^T A V - A_c^T A_c V = c (mu^T V) + mu (c - n mu)^T V`` (c = A^T 1), in A's dtype."""
        V64 = np.asarray(V, dtype=np.float64)
        mu, c, n = self.mu, self.inner_sums, self.shape[0]
        muV, cV = mu @ V64, c @ V64
        return self._cast(np.outer(c, muV) + np.outer(mu, cV - n * muV))

    def power_product(self, r: int, n_iter: int):
        """``V -> A_c^T A_c V``; on narrow dense A, through the centered Gram matrix (formed exactly)."""
        inner = self.inner
        if isinstance(inner, InMemory) and inner._gram_pays(r, n_iter):
            G = self._centered_gram()
            if representable(G, self.dtype):
                G = G.astype(self.dtype)
                return lambda V: G @ V
        return self.gram_product

    def _centered_gram(self) -> np.ndarray:
        A, mu = self.inner.A, self.mu
        d = A.shape[1]
        G = np.zeros((d, d))
        rows = max(256, _BLOCK_ENTRIES // max(1, d))
        with blas_limit(get_num_threads()), np.errstate(over="ignore", under="ignore", invalid="ignore"):
            for start in range(0, A.shape[0], rows):
                X = np.asarray(A[start:start + rows], dtype=np.float64) - mu
                G += X.T @ X
        return G

    def for_power_steps(self) -> Centered:
        return self._with_inner(self.inner.for_power_steps())

    @property
    def T(self):
        raise ValueError(f"transpose: True is not supported for a centered {self.name}")

    # ----------------------------------------------------------------- results

    def thin_svd(self, B, k: int, driver: str = "gesdd"):
        return self.inner.thin_svd(B, k, driver)

    def truncate(self, f, k: int, *, flip_sign: bool):
        return self.inner.truncate(f, k, flip_sign=flip_sign)

    def result(self, U, s, Vt):
        return self.inner.result(U, s, Vt)
