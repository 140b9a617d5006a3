"""The learned-sketch training loss and its two hand-derived gradients.

For one n x d matrix A and a CountSketch S (values v at fixed rows h), the loss
is ``L = ||A - SCW(S, A)||_F`` with ``L^2 = ||A||^2 - F``, where F is the sum of
the k largest eigenvalues of ``K = B^T B``, ``B = A V`` and V spans the row
space of ``M = S A`` (DESIGN.md section 3). The gradient with respect to v is

* ``"exact"``: the closed form of DESIGN.md ("Training loss and its exact
  gradient"), bounded at ties sigma_k = sigma_{k+1};
* ``"power"``: the adjoint of T steps of subspace iteration with QR
  (DESIGN.md "Power-method gradient"), the paper's differentiable SVD.

Both touch A three times: ``S A``, one fused pass for ``B = A V`` and
``H = A^T B``, and the gather-dot ``g_i = <A[i, :], D[h(i), :]>``; everything
else is small dense work on m x d, d x r and r x r matrices, in float64.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ._linalg import peak, power_of_two, sketch_svd
from ._matrix import InMemory

__all__ = ["GRADIENTS", "TrainingMatrix", "loss_and_grad"]

GRADIENTS = ("exact", "power")

#: Relative size of L^2 = ||A||^2 - F below which the loss counts as zero: the
#: subtraction cannot resolve it, and L = 0 is not differentiable (zero gradient).
_ZERO_LOSS = 64.0


class TrainingMatrix(InMemory):
    """A training matrix prepared once for many loss/gradient evaluations: the in-memory
    operand (CSC becomes CSR, the gather-dot's layout), checked finite, with ``||A||_F^2`` in
    float64, and optionally the sketch of fixed rows (the random half of a jointly trained
    mixed sketch), which does not change while training.

    Every use of a training matrix is scale-free (losses and Errs count it at sigma_1 = 1), so a
    matrix whose largest entry lies outside 2^+-(maxexp / 4) of its dtype (float64: ~1e+-77;
    float32: ~4e+-10) is held divided by the power of two nearest that entry (exact; a copy, the
    caller's matrix is untouched): its squares and Gram matrices would over- or underflow."""

    def __init__(self, A, name: str = "A", backend=None):
        super().__init__(A, name=name, backend=backend)
        if self.format == "csc":
            self._set(self.A.tocsr(), name, backend)
        if not self.is_finite():
            raise ValueError(f"{name}: contains NaN or infinity")
        top = peak(self.A.data if self.sparse else self.A)
        limit = 2.0 ** (np.finfo(self.dtype).maxexp // 4)
        if top > limit or 0.0 < top < 1.0 / limit:
            scaled = self.A.astype(np.float64) * (1.0 / power_of_two(top))  # in float64: 1 / c may pass float32
            self._set(scaled.astype(self.dtype).tocsr() if self.sparse else scaled.astype(self.dtype), name, backend)
        self.eps = float(np.finfo(self.dtype).eps)
        self.sqnorm = self.squared_norm()
        self.scale = 1.0  # divide losses and gradients by this (set by the trainer)
        self.fixed_sketch = None


def _top_eigen(K: np.ndarray, k: int):
    """The k largest eigenvalues (descending, clipped at 0) and eigenvectors of symmetric K."""
    lam, Z = np.linalg.eigh(K)
    lam = np.maximum(lam[::-1][:k], 0.0)
    return lam, Z[:, ::-1][:, :k]


def _qr_backward(Q, R, Qbar):
    """Adjoint of the thin QR X = Q R for a loss of Q only: X̄ = [Q̄ - Q copyltu(Q̄^T Q)] R^{-T}."""
    S = Qbar.T @ Q
    sym = np.tril(S) + np.tril(S, -1).T
    rhs = Qbar - Q @ sym
    return scipy.linalg.solve_triangular(R, rhs.T, lower=False).T


def _power_forward(K, X0, iters):
    """T steps of subspace iteration on K from X0; returns F_T = tr(Q^T K Q) and the QR factors."""
    Q, R = np.linalg.qr(X0)
    factors = [(Q, R)]
    for _ in range(iters):
        Q, R = np.linalg.qr(K @ Q)
        factors.append((Q, R))
    return float(np.einsum("ij,ij->", Q, K @ Q)), factors


def _power_backward(K, factors):
    """Adjoint of _power_forward: (K̄, X̄_0) for the output F_T."""
    Q = factors[-1][0]
    Kbar = Q @ Q.T
    Qbar = 2.0 * (K @ Q)
    for t in range(len(factors) - 1, 0, -1):
        Qt, Rt = factors[t]
        Xbar = _qr_backward(Qt, Rt, Qbar)
        Kbar += Xbar @ factors[t - 1][0].T
        Qbar = K @ Xbar
    Q0, R0 = factors[0]
    return Kbar, _qr_backward(Q0, R0, Qbar)


def loss_and_grad(op: TrainingMatrix, backend, k: int, rows, values, m: int, *, gradient: str = "exact",
                  power_iters: int = 0, omega=None, want_grad: bool = True):
    """Loss L = ||A - SCW(S, A)||_F and dL/dvalues for one matrix.

    Parameters
    ----------
    op : TrainingMatrix
        The matrix; ``op.fixed_sketch`` (if set) is stacked below ``S A``.
    backend : {"cpp", "numba", "numpy"} or None
        Kernel backend (None: the current default).
    k : int
        Target rank.
    rows, values : ndarray
        The learned CountSketch (values in ``op.dtype``); m is its number of rows.
    gradient : {"exact", "power"}
    power_iters, omega :
        For ``"power"``: T and the fixed d x k start block Omega.
    want_grad : bool
        False: the loss only (one pass less).

    Returns
    -------
    loss : float
    grad : ndarray of float64, shape (n,), or None
    """
    op = op.with_backend(backend)
    M = op.countsketch(rows, values, m)
    if not np.isfinite(M).all():  # the matrix was checked, so the values overflowed
        raise FloatingPointError("the sketch values overflow (S A is not finite); use a smaller lr")
    if op.fixed_sketch is not None:
        M = np.vstack([M, op.fixed_sketch])
    learned = (rows, m) if want_grad else None
    return _loss_and_grad(op, M, k, learned, gradient=gradient, power_iters=power_iters, omega=omega,
                          want_grad=want_grad)


def _loss_and_grad(op, M, k, learned, *, gradient="exact", power_iters=0, omega=None, want_grad=True):
    eps = op.eps
    U, s, Vt = sketch_svd(M, eps)
    r = s.size
    zero = np.zeros(op.shape[0]) if want_grad else None
    if r == 0:  # S A = 0: SCW returns 0 and no direction of v helps to first order
        return float(np.sqrt(op.sqnorm)), zero
    V = Vt.T
    Vd = np.ascontiguousarray(V, dtype=op.dtype)
    kk = min(k, r)
    power = gradient == "power"
    if power and want_grad:  # the adjoint needs all of H = A^T B: fuse it into B's pass
        B, H = op.power_step(Vd)
        H = np.asarray(H, dtype=np.float64)
    else:
        B = op.matmul(Vd)
    B64 = np.asarray(B, dtype=np.float64)
    K = B64.T @ B64  # r x r, float64
    if power:
        F, factors = _power_forward(K, V.T @ omega[:, :kk], power_iters)
    else:
        lam, Zk = _top_eigen(K, kk)
        F = float(lam.sum())
    L2 = op.sqnorm - F
    if L2 <= _ZERO_LOSS * eps * op.sqnorm:
        return float(np.sqrt(max(L2, 0.0))), zero
    loss = float(np.sqrt(L2))
    if not want_grad:
        return loss, None
    rows, m = learned
    E = U[:m] / s  # learned rows of U_M Sigma_M^{-1}
    if power:
        Kbar, X0bar = _power_backward(K, factors)
        R = X0bar @ omega[:, :kk].T + (Kbar + Kbar.T) @ H.T  # V̄^T, r x d
        R -= (R @ V) @ Vt
        D = E @ R
    else:
        W = B @ Zk.astype(op.dtype)  # n x k', = A V Z_k
        C = np.asarray(op.rmatmul(W), dtype=np.float64).T  # (A^T W)^T, k' x d, one pass
        # R = C (I - V V^T) = C - lam Y^T (C V = lam Z_k^T exactly); projecting C itself also
        # removes the in-span rounding of the float32 pass.
        R = C - (C @ V) @ Vt
        D = (2.0 * E @ Zk) @ R
    g = op.gather_dot(rows, np.ascontiguousarray(D, dtype=op.dtype))
    return loss, np.asarray(g, dtype=np.float64) / (-2.0 * loss)
