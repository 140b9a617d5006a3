"""gd_svd's parametrizations of the rank-k approximation, their start and the final SVD.

- ``UV``: A ~ U V^T (ScaledGD's model, the default);
- ``USV``: A ~ U diag(s) V^T with an orthonormality penalty (the "SVD by gradient descent"
  write-ups' model).

Each holds its parameters (C-contiguous arrays the optimizers update in place) and gives the
loss, gradients, step-size bound and, for UV, ScaledGD's preconditioned directions.
"""

from __future__ import annotations

import numpy as np

from .._linalg import flip_signs
from .._matrix import InMemory
from .problems import dot64

__all__ = ["USV", "UV", "initial_factors", "polish"]


def _norm2(G) -> float:
    """Spectral norm of a small symmetric PSD matrix."""
    return float(np.linalg.eigvalsh(G.astype(np.float64))[-1]) if G.size else 0.0


class UV:
    """A ~ U V^T."""

    def __init__(self, U, V, options, problem, AV=None):
        self.U, self.V = U, V
        self.params = [U, V]
        self.options = options
        self.problem = problem
        self._AV = AV  # A @ V of the start, when the start computed it

    def factors(self):
        return self.U, self.V

    def evaluate(self, batch):
        """(loss, gradients per parameter, the problem's Evaluation)."""
        AV, self._AV = (self._AV, None) if batch is None else (None, None)
        ev = self.problem.evaluate(self.U, self.V, batch, self.options.l2, AV=AV)
        return ev.loss, [ev.GU, ev.GV], ev

    def scaled_directions(self, grads, ev):
        """ScaledGD: each gradient times the inverse of the other factor's (damped) Gram matrix."""
        c = self.problem.curvature
        out = []
        for G, gram in ((grads[0], ev.VtV), (grads[1], ev.UtU)):
            P = c * gram.astype(np.float64)
            P[np.diag_indices_from(P)] += self.options.l2 + 1e-10 * max(np.trace(P) / len(P), 1e-300)
            out.append(G @ np.linalg.inv(P).astype(G.dtype))
        return out

    def lipschitz(self, ev) -> float:
        """Curvature bound for plain gradient steps on (U, V)."""
        return self.problem.curvature * (_norm2(ev.UtU) + _norm2(ev.VtV)) + self.options.l2


class USV:
    """A ~ U diag(s) V^T with the penalty ortho/2 (|U^T U - I|^2 + |V^T V - I|^2)."""

    def __init__(self, U, V, options, problem):
        # split the balanced start U V^T into unit columns and their scales
        nu, nv = np.linalg.norm(U, axis=0), np.linalg.norm(V, axis=0)
        nu[nu == 0] = 1
        nv[nv == 0] = 1
        self.U = np.ascontiguousarray(U / nu, dtype=U.dtype)
        self.V = np.ascontiguousarray(V / nv, dtype=V.dtype)
        self.s = np.ascontiguousarray(nu * nv, dtype=U.dtype)
        self.params = [self.U, self.s, self.V]
        self.options = options
        self.problem = problem
        k = len(self.s)
        frob2 = problem.norm2 / problem.curvature
        self.ortho = options.ortho_penalty if options.ortho_penalty is not None else frob2 / (30 * k * k)

    def factors(self):
        return self.U * self.s, self.V

    def evaluate(self, batch):
        """(loss with the penalties, gradients for U, s, V, the problem's Evaluation)."""
        U, s, V = self.U, self.s, self.V
        ev = self.problem.evaluate(U * s, V, batch, 0.0)
        GU = ev.GU * s
        Gs = np.einsum("ij,ij->j", U, ev.GU) * U.dtype.type(ev.row_scale)
        GV = ev.GV
        loss = ev.loss
        eye = np.eye(len(s), dtype=U.dtype)
        UtU, VtV = U.T @ U, V.T @ V
        if self.ortho:
            mu = U.dtype.type(self.ortho)
            DU, DV = UtU - eye, VtV - eye
            loss += 0.5 * self.ortho * (dot64(DU, DU) + dot64(DV, DV))
            GU += 2 * mu * (U @ DU)
            GV += 2 * mu * (V @ DV)
        l2 = self.options.l2
        if l2:
            loss += 0.5 * l2 * (dot64(U, U) + dot64(s, s) + dot64(V, V))
            GU += U.dtype.type(l2) * U
            Gs += U.dtype.type(l2) * s
            GV += V.dtype.type(l2) * V
        ev.unit_grams = (UtU, VtV)
        return loss, [GU, Gs, GV], ev

    def lipschitz(self, ev) -> float:
        """Curvature bound for plain gradient steps on (U, s, V) with the penalty."""
        UtU, VtV = ev.unit_grams
        nu, nv = _norm2(UtU), _norm2(VtV)
        smax2 = float(np.max(self.s.astype(np.float64) ** 2)) if len(self.s) else 0.0
        data = self.problem.curvature * (smax2 * (nu + nv) + nu * nv)
        return data + self.ortho * (6 * max(nu, nv) + 2) + self.options.l2



# ----------------------------------------------------------------------------------------------
# the start


#: Columns of the sketch start, per component: l = START_WIDTH * k (at least k + 10, at most
#: min(m, n)).
START_WIDTH = 3


def sketch_start(M, k, rng, backend):
    """Balanced factors ``(U, V, AV)`` (float64) of a rank-k SVD estimate of M from a Gaussian
    range finder without power iterations (the GD iterations play that part), and ``AV = M V``.

    ``Y = M^T M G`` for an n x l Gaussian G (one fused pass), ``V_l = qr(Y)``, ``B = M V_l``
    (one pass), and the top-k eigenpairs ``(s^2, X)`` of ``B^T B``: ``M V_l V_l^T`` has the
    rank-k truncation ``(B X) (V_l X)^T``, split evenly as ``U = B X / sqrt(s)``,
    ``V = V_l X sqrt(s)``; then ``M V = B X sqrt(s)`` exactly, free for the first iteration.
    (``B^T B``'s eigenvalues lose accuracy below eps s_1^2, which only makes such components of
    the start rough; GD refines them.)

    Measured on 2000 x 1000 matrices, k = 10, default tol: the row basis from ``M^T M G``
    rather than ``M G`` (half a power iteration) cut ScaledGD's iterations on sigma_i = 1/i from
    4-37 to 3-5; l = 3k rather than 2k from 8-25 to 3-5; fitting the start on the top 2k of the
    3k directions (a cheaper second pass) cost 0.7 iterations there and raised the worst error
    ratio over 200 runs from 1.00042 to 1.00072 (rank 10 plus noise: 3 iterations in every
    variant). A Gaussian start, unlike a CountSketch one, cannot merge two rows of M into one
    bucket and start a component at U[:, j] = V[:, j] = 0, a stationary point GD never leaves.
    """
    m, n = M.shape
    op = InMemory(M, backend=backend)
    l = min(max(START_WIDTH * k, k + 10), m, n)
    G = np.random.default_rng(int(rng.integers(2**62))).standard_normal((n, l))  # rng: one draw
    V = np.linalg.qr(op.gram_product(G).astype(np.float64))[0]
    B = op.matmul(V).astype(np.float64)
    lam, X = np.linalg.eigh(B.T @ B)
    X = X[:, ::-1][:, :k]
    root = np.maximum(lam[::-1][:k], 0.0) ** 0.25  # sqrt(s)
    BX = B @ X
    return BX / np.where(root > 0, root, 1.0), (V @ X) * root, BX * root


def initial_factors(problem, k, init, rng, backend):
    """Balanced starting factors ``(U, V, AV)``, C-contiguous in the problem's dtype: ``U V^T`` is
    the sketched rank-k SVD of A (``"sketch"``) or A projected on a random subspace
    (``"random"``). ``AV`` is ``A @ V`` when the start gives it for free (the sketch start of
    all entries: it saves half of the first iteration's pass), else None."""
    n = problem.shape[1]
    dtype = problem.dtype
    AV = None
    if init == "sketch":
        M = problem.spectral_matrix()
        U, V, MV = sketch_start(M, k, rng, backend)
        if M is getattr(problem, "A", None):
            AV = np.ascontiguousarray(MV, dtype=dtype)
    else:
        # A Gaussian V and the least-squares U for it (half a step of alternating least squares):
        # a start whose product U V^T is a projection of A, never far larger than A in any
        # direction, so ScaledGD's first steps cannot overshoot (they can from independent
        # random factors, whose product is tiny along A's top directions).
        M = problem.spectral_matrix()
        V = rng.standard_normal((n, k))
        U = InMemory(M, backend=backend).matmul(V).astype(np.float64) @ np.linalg.inv(V.T @ V)
        Us, s, Vt = polish(U, V)
        root = np.sqrt(s)
        U, V = Us * root, Vt.T * root
    return np.ascontiguousarray(U, dtype=dtype), np.ascontiguousarray(V, dtype=dtype), AV


# ----------------------------------------------------------------------------------------------
# the final SVD


def polish(U, V):
    """Exact SVD of U V^T: Q_u R_u = U, Q_v R_v = V, X S Y^T = R_u R_v^T; signs made deterministic."""
    Qu, Ru = np.linalg.qr(U)
    Qv, Rv = np.linalg.qr(V)
    X, s, Yt = np.linalg.svd(Ru @ Rv.T)
    U_out, Vt_out = flip_signs(Qu @ X, Yt @ Qv.T)
    dtype = U.dtype
    return (
        np.ascontiguousarray(U_out, dtype=dtype),
        s.astype(dtype),
        np.ascontiguousarray(Vt_out, dtype=dtype),
    )
