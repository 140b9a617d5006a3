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
    """A ~ U V^T.

    Full-batch evaluations reuse a product with A whose factor has not changed since it was
    computed (``A V`` after a step that left V as it was, ``A^T U`` likewise): the loss then
    costs no pass and the gradients half of one. The start leaves U the least-squares fit for V
    (``fitted``), so U's first gradient is zero up to rounding; it is set to exactly zero and the
    first step, on V alone, is the full ScaledGD step (lr 1 with ``lr=None``: the exact minimizer
    along it, which makes V the least-squares fit for U). The second step then moves U alone
    (V's gradient is zero the same way), at the usual step size. Measured on 2000 x 1000, k = 10
    (bench/README.md, tenth session): sigma_i = 1/i stops after 3-4 evaluations instead of 4-5
    with a lower worst error, rank 10 plus noise after 3 with a 15x smaller excess error, and
    the evaluations cost one thin product each (``A V`` or ``A^T U``) instead of a fused pass.
    """

    def __init__(self, U, V, options, problem, AV=None, fitted=False):
        self.U, self.V = U, V
        self.params = [U, V]
        self.options = options
        self.problem = problem
        self._products = {}  # "AV" / "ATU": (copy of the factor it was computed from, the product)
        self._remember(AV, None)
        self._fitted = "U" if fitted and not options.l2 else None  # this factor's gradient is zero
        self._alone = None  # the factor the coming step moves alone (the other's gradient is zero)
        self._full_steps = 1  # full steps left (the first step after the start's fit)

    def full_step(self) -> bool:
        """Whether the coming step, on one factor alone, is the full ScaledGD step (the exact
        minimizer along it); after it that factor is the least-squares fit for the other."""
        if self._alone is None or self._full_steps <= 0:
            return False
        self._full_steps -= 1
        self._fitted = self._alone
        return True

    def factors(self):
        return self.U, self.V

    def _remember(self, AV, ATU):
        if AV is not None:
            self._products["AV"] = (self.V.copy(), AV)
        if ATU is not None:
            self._products["ATU"] = (self.U.copy(), ATU)

    def _known(self, name, X):
        entry = self._products.get(name)
        return entry[1] if entry is not None and np.array_equal(entry[0], X) else None

    def evaluate(self, batch, loss_first=False):
        """(loss, gradients per parameter, the problem's Evaluation). Full batch: with
        ``loss_first``, or when a product is known, only the loss is sure to be computed (at most
        one product); a gradient left None comes from :meth:`gradients`, which the caller skips
        when the loss ends the run."""
        if batch is not None:
            ev = self.problem.evaluate(self.U, self.V, batch, self.options.l2)
            return ev.loss, [ev.GU, ev.GV], ev
        ev = self.problem.evaluate(self.U, self.V, None, self.options.l2, AV=self._known("AV", self.V),
                                   ATU=self._known("ATU", self.U), loss_first=loss_first)
        # a fitted factor's gradient is zero up to rounding; exactly zero keeps that factor, and so
        # its product with A, as they are for the next evaluation
        if self._fitted == "U":
            ev.GU = np.zeros_like(self.U)
        elif self._fitted == "V":
            ev.GV = np.zeros_like(self.V)
        self._alone = {"U": "V", "V": "U"}.get(self._fitted)
        self._fitted = None
        self._remember(ev.P, ev.Q)
        return ev.loss, [ev.GU, ev.GV], ev

    def gradients(self, ev):
        """The gradients of an evaluation that left one out (computed now: one product)."""
        self.problem.complete(self.U, self.V, ev, self.options.l2)
        self._remember(ev.P, ev.Q)
        return [ev.GU, ev.GV]

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

    def evaluate(self, batch, loss_first=False):
        """(loss with the penalties, gradients for U, s, V, the problem's Evaluation); always
        complete (``loss_first`` is accepted for UV's interface)."""
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
#: The one-pass start serves where its Ritz values show a gap ``S_(k+1) / S_k <= GAP``; else the
#: two-pass start (see ``sketch_start``).
GAP = 0.5


def sketch_start(M, k, rng, backend, one_pass=True):
    """Balanced factors ``(U, V, MV, energy)`` (float64) of a rank-k SVD estimate of M from a
    Gaussian range finder without power iterations (the GD iterations play that part): U is the
    least-squares fit for V, ``MV = M V``, and ``energy`` is ``||M||_F^2 - 2 loss`` of an earlier
    estimate the start passed through (None when there is none).

    One fused pass gives ``Z = M G`` and ``Y = M^T Z`` for an n x l Gaussian G. With
    ``Z^T Z = W diag(lam) W^T``, ``Q = Z W lam^(-1/2)`` is an orthonormal basis of Z and
    ``C^T = M^T Q = Y W lam^(-1/2)`` is known without another pass: the top-k eigenpairs
    ``(S^2, X)`` of ``C C^T`` (l x l) give the rank-k truncation of ``Q Q^T M``, whose row basis
    ``V = C^T X / sqrt(S)`` is the start's V (``energy = sum S^2``); one thin pass ``M V`` fits U.
    Where the Ritz values ``S`` show no clear gap after the k-th (``S_(k+1) > GAP S_k``) that
    basis is too rough (sigma_i = 1/i on 2000 x 1000, k = 10: 4-37 iterations instead of 4-5), and
    where Z is ill-conditioned (M of numerical rank below l, e.g. exactly low-rank: dividing by
    ``lam^(1/2)`` would amplify Y's rounding) the start takes a second pass instead
    (``_two_pass_start``, from the same Y).

    Measured on 2000 x 1000 float64 matrices, k = 10, default tol, 1 thread (bench/README.md,
    tenth session): rank 10 plus noise (Ritz gap 0.01-0.15) starts in 7 thin passes (products
    with 10 columns) instead of 9 with the same error after the first GD step; the gap rule sends
    sigma_i = 1/i (Ritz gap 0.78-0.98) and other slowly decaying spectra to the two-pass start,
    which costs 9 as before (the one-pass start there: 4-37 iterations instead of 4-5; a 2k-wide
    one-pass sketch: 3.9 instead of 3 on rank 10 plus 10% noise). A Gaussian start, unlike a
    CountSketch one, cannot merge two rows of M into one bucket and start a component at
    U[:, j] = V[:, j] = 0, a stationary point GD never leaves. ``one_pass=False``: always the
    two-pass start.
    """
    m, n = M.shape
    op = InMemory(M, backend=backend)
    l = min(max(START_WIDTH * k, k + 10), m, n)
    G = np.random.default_rng(int(rng.integers(2**62))).standard_normal((n, l))  # rng: one draw
    Z, Y = op.power_pass(G)  # the fused kernel or two BLAS products, whichever is faster here
    Z, Y = Z.astype(np.float64, copy=False), Y.astype(np.float64, copy=False)
    lam, W = np.linalg.eigh(Z.T @ Z)
    if not lam[0] > np.sqrt(np.finfo(op.dtype).eps) * lam[-1]:
        return _two_pass_start(op, Y, k)
    Ct = Y @ (W / np.sqrt(lam))  # M^T Q
    mu, X = np.linalg.eigh(Ct.T @ Ct)
    mu, X = mu[::-1], X[:, ::-1]
    if not one_pass or not mu[k - 1] > 0 or (l > k and not mu[k] <= GAP**2 * mu[k - 1]):
        return _two_pass_start(op, Y, k)
    V = Ct @ (X[:, :k] / mu[:k] ** 0.25)  # C^T X / sqrt(S)
    B = op.times(V).astype(np.float64)
    U = B @ np.linalg.inv(V.T @ V)
    return U, V, B, float(np.sum(mu[:k]))


def _two_pass_start(op, Y, k):
    """``sketch_start`` from the basis ``V_l = qr(Y)`` of ``Y = M^T M G`` and a second pass
    ``B = M V_l``: the rank-k truncation of ``M V_l V_l^T`` from the top-k eigenpairs
    ``(s^2, X)`` of ``B^T B``, ``U = B X / sqrt(s)``, ``V = V_l X sqrt(s)`` (U fits V: V_l is
    orthonormal); then ``M V = B X sqrt(s)``. Stable for any M (``B^T B``'s eigenvalues lose
    accuracy below eps s_1^2, which only makes such components of the start rough; GD refines
    them).

    Measured on 2000 x 1000 matrices, k = 10, default tol (before the one-pass start): the row
    basis from ``M^T M G`` rather than ``M G`` (half a power iteration) cut ScaledGD's iterations
    on sigma_i = 1/i from 4-37 to 3-5; l = 3k rather than 2k from 8-25 to 3-5; fitting the start
    on the top 2k of the 3k directions (a cheaper second pass) cost 0.7 iterations there and
    raised the worst error ratio over 200 runs from 1.00042 to 1.00072."""
    V = np.linalg.qr(Y)[0]
    B = op.times(V).astype(np.float64)
    lam, X = np.linalg.eigh(B.T @ B)
    X = X[:, ::-1][:, :k]
    root = np.maximum(lam[::-1][:k], 0.0) ** 0.25  # sqrt(s)
    BX = B @ X
    return BX / np.where(root > 0, root, 1.0), (V @ X) * root, BX * root, None


def initial_factors(problem, k, init, rng, backend, one_pass=True):
    """Starting factors ``(U, V, AV, prior)``, C-contiguous in the problem's dtype: ``U V^T`` is
    the sketched rank-k SVD of A (``"sketch"``) or A projected on a random subspace
    (``"random"``). With the sketch start of all entries U is the least-squares fit for V,
    ``AV = A @ V`` (it saves half of the first iteration's pass) and ``prior`` is the loss of the
    estimate the start improved on, or None; else both are None. ``one_pass``: see
    ``sketch_start``."""
    n = problem.shape[1]
    dtype = problem.dtype
    AV = prior = None
    if init == "sketch":
        M = problem.spectral_matrix()
        U, V, MV, energy = sketch_start(M, k, rng, backend, one_pass)
        if M is getattr(problem, "A", None):
            AV = np.ascontiguousarray(MV, dtype=dtype)
            prior = None if energy is None else 0.5 * max(problem.norm2 - energy, 0.0)
    else:
        # A Gaussian V and the least-squares U for it (half a step of alternating least squares):
        # a start whose product U V^T is a projection of A, never far larger than A in any
        # direction, so ScaledGD's first steps cannot overshoot (they can from independent
        # random factors, whose product is tiny along A's top directions).
        M = problem.spectral_matrix()
        V = rng.standard_normal((n, k))
        U = InMemory(M, backend=backend).times(V).astype(np.float64) @ np.linalg.inv(V.T @ V)
        Us, s, Vt = polish(U, V)
        root = np.sqrt(s)
        U, V = Us * root, Vt.T * root
    return np.ascontiguousarray(U, dtype=dtype), np.ascontiguousarray(V, dtype=dtype), AV, prior


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
