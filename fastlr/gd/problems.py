"""The data term of gd_svd: its loss and gradients over all entries of A or the observed ones.

Every product with A goes through the matrix layer (``fastlr._matrix.InMemory``): one fused
pass ``(A V, A^T U)`` per dense evaluation, one pass over the observed entries when masked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .._linalg import peak, power_of_two
from .._matrix import InMemory
from .._validation import as_matrix, check_sparse, is_sparse

__all__ = ["DenseProblem", "Evaluation", "MaskedProblem", "dot64", "make_problem"]


def dot64(X, Y) -> float:
    """sum(X * Y) accumulated in float64."""
    if X.dtype != np.float64:
        X, Y = X.astype(np.float64), Y.astype(np.float64)
    return float(np.vdot(X, Y))


@dataclass
class Evaluation:
    """Loss and gradients of the data term at (U, V), with what the optimizers reuse."""

    loss: float
    GU: np.ndarray | None  # None: left out (its product was not computed), for ``complete``
    GV: np.ndarray | None
    UtU: np.ndarray  # of the U the gradient was taken at (a scaled estimate for row batches)
    VtV: np.ndarray
    row_scale: float  # full-data U-gradient sum ~ row_scale * GU summed over rows
    unit_grams: tuple = ()  # usv: U^T U and V^T V of the unit factors, for the step size
    P: np.ndarray | None = None  # full batch: A @ V and A.T @ U as far as computed
    Q: np.ndarray | None = None


class DenseProblem:
    """All entries of A (dense, or sparse with its zeros counted).

    ``A`` is kernel-ready (``as_matrix``'s output; CSR when sparse) and finite.
    """

    curvature = 1.0

    def __init__(self, A, backend, norm2=None):
        self.A = A
        self.op = InMemory.wrap(A, backend=backend)
        self.shape = A.shape
        self.dtype = A.dtype
        self.backend = backend
        self._row_norms2 = None
        self.norm2 = self.op.squared_norm() if norm2 is None else norm2  # ||A||^2 in float64
        self.n_samples = self.shape[0]
        # the loss is computed as |A|^2/2 - <U, AV> + <U^T U, V^T V>/2: changes below this are rounding
        self.loss_floor = 16 * np.finfo(self.dtype).eps * max(self.norm2, np.finfo(np.float64).tiny)

    @property
    def row_norms2(self) -> np.ndarray:
        """Squared norms of A's rows (float64), for row mini-batches; computed at first use."""
        if self._row_norms2 is None:
            A = self.A
            if is_sparse(A):
                if not A.has_canonical_format:  # duplicates add up before squaring (as in the products)
                    A = A.copy()
                    A.sum_duplicates()
                data = A.data.astype(np.float64)
                rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
                self._row_norms2 = np.bincount(rows, weights=data * data, minlength=A.shape[0])
            else:
                self._row_norms2 = np.einsum("ij,ij->i", A, A, dtype=np.float64)
        return self._row_norms2

    def spectral_matrix(self):
        return self.A

    def evaluate(self, U, V, batch, l2, AV=None, ATU=None, loss_first=False) -> Evaluation:
        """Loss and gradients at (U, V): exact for ``batch=None``, else unbiased estimates from the
        rows ``batch`` (U's other rows get no gradient: a block step). Full batch: ``AV`` / ``ATU``
        are ``A @ V`` / ``A.T @ U`` when the caller has them; the loss needs one of the two (no pass
        when one is given, ``A @ V`` with ``loss_first``), and a gradient whose product is missing
        is left None for :meth:`complete`. Otherwise one fused pass gives both."""
        VtV = V.T @ V
        P = Q = None
        if batch is None:
            UtU = U.T @ U
            P, Q = AV, ATU
            if P is None and Q is None:
                P, Q = (self.op.times(V), None) if loss_first else self.op.gd_products(U, V)
            inner = dot64(U, P) if P is not None else dot64(V, Q)  # <U, A V> = <A^T U, V>
            loss = 0.5 * self.norm2 - inner + 0.5 * dot64(UtU, VtV)
            GU = None if P is None else _full_gradient(U, VtV, P, l2)
            GV = None if Q is None else _full_gradient(V, UtU, Q, l2)
            scale = 1.0
        else:
            UB = U[batch]
            PB, QB = InMemory.wrap(self.A[batch], backend=self.backend).gd_products(UB, V)
            UtU_B = UB.T @ UB
            scale = self.shape[0] / len(batch)
            loss = scale * (0.5 * self.row_norms2[batch].sum() - dot64(UB, PB) + 0.5 * dot64(UtU_B, VtV))
            GU = np.zeros_like(U)
            GU[batch] = UB @ VtV - PB
            GV = V @ UtU_B - QB
            GV *= scale
            UtU = UtU_B * U.dtype.type(scale)
            if l2:
                GU += _rows_l2(U, batch, l2)
                GV += V.dtype.type(l2) * V
        if l2:
            loss += 0.5 * l2 * (dot64(U, U) + dot64(V, V))
        return Evaluation(loss, GU, GV, UtU, VtV, scale, P=P, Q=Q)

    def complete(self, U, V, ev, l2) -> None:
        """Fill in the gradient a full-batch evaluation at (U, V) left out (one product)."""
        if ev.GU is None:
            ev.P = self.op.times(V)
            ev.GU = _full_gradient(U, ev.VtV, ev.P, l2)
        if ev.GV is None:
            ev.Q = self.op.rtimes(U)
            ev.GV = _full_gradient(V, ev.UtU, ev.Q, l2)


def _full_gradient(X, other_gram, product, l2):
    """The full-batch gradient of one factor: ``X (Y^T Y) - (A Y or A^T Y)`` plus ``l2 X`` (Y the other factor)."""
    G = X @ other_gram - product
    if l2:
        G += X.dtype.type(l2) * X
    return G


def _rows_l2(U, batch, l2):
    """l2 U on the sampled rows only (the block step of row mini-batches); returned as an addend."""
    add = np.zeros_like(U)
    add[batch] = U.dtype.type(l2) * U[batch]
    return add


def _csr(shape, indptr, indices, data):
    """A CSR matrix on these arrays as they are (int64 indices kept: scipy would narrow them)."""
    M = sp.csr_matrix((data, indices, indptr), shape=shape)
    M.indptr, M.indices = indptr, indices
    return M


class MaskedProblem:
    """Observed entries only, stored as CSR (indices int64, one entry per observation)."""

    def __init__(self, shape, indptr, indices, data, backend):
        self.shape = shape
        self.indptr, self.indices, self.data = indptr, indices, data
        self.observed = InMemory.wrap(_csr(shape, indptr, indices, data), name="observed entries", backend=backend)
        self.dtype = data.dtype
        self.backend = backend
        self.nnz = len(data)
        self.n_samples = self.nnz
        self.curvature = self.nnz / (shape[0] * shape[1])  # observed fraction p
        self.norm2 = float(np.dot(data.astype(np.float64), data.astype(np.float64)))
        # residuals are computed directly: rounding makes each about eps |a_ij|
        self.loss_floor = 16 * np.finfo(self.dtype).eps ** 2 * max(self.norm2, np.finfo(np.float64).tiny)
        self._entry_rows = None

    def spectral_matrix(self):
        """The observed entries over p: an unbiased estimate of A (the usual spectral start)."""
        return sp.csr_matrix((self.data / self.dtype.type(self.curvature), self.indices, self.indptr), shape=self.shape)

    def evaluate(self, U, V, batch, l2, AV=None, ATU=None, loss_first=False) -> Evaluation:
        """Loss and gradients over the observed entries (``batch=None``) or unbiased estimates of
        them from the entries ``batch`` (one pass gives the loss and both gradients: ``AV``,
        ``ATU`` and ``loss_first`` are accepted for the common interface and unused)."""
        if batch is None:
            GU, GV, loss = self.observed.masked_gradients(U, V, l2)
        else:
            if self._entry_rows is None:
                self._entry_rows = np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))
            frac = len(batch) / self.nnz
            indptr = np.zeros(self.shape[0] + 1, dtype=np.int64)
            np.cumsum(np.bincount(self._entry_rows[batch], minlength=self.shape[0]), out=indptr[1:])
            sample = _csr(self.shape, indptr, self.indices[batch], self.data[batch])
            GU, GV, loss = InMemory.wrap(sample, backend=self.backend).masked_gradients(U, V, l2 * frac)
            GU *= U.dtype.type(1 / frac)
            GV *= V.dtype.type(1 / frac)
            loss /= frac
        return Evaluation(loss, GU, GV, U.T @ U, V.T @ V, 1.0)

    def complete(self, U, V, ev, l2) -> None:
        """Nothing to do: evaluations always hold both gradients."""


def make_problem(A, mask, backend):
    """The problem for A (and mask), with ``.scale``: A's entries were divided by it (see _scale)."""
    A = as_matrix(A)
    if A.shape[0] < 1 or A.shape[1] < 1:
        raise ValueError(f"A: expected a non-empty matrix, got shape {A.shape}")
    if mask is None:
        if is_sparse(A) and A.format != "csr":
            A = A.tocsr()
        op = InMemory.wrap(A, backend=backend)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow: entries near the limits, rescaled below
            norm2 = op.squared_norm()
        c = 1.0
        if not _safe_scale(norm2, A.shape, A.dtype):  # NaN, inf, or entries near the dtype's limits
            top = peak(A.data if is_sparse(A) else A)
            if not np.isfinite(top):
                hint = "" if is_sparse(A) else " (e.g. mask=~np.isnan(A))"
                raise ValueError(f"A: contains NaN or infinity; pass mask=...{hint} to fit only the observed "
                                 f"entries")
            c = _scale(top, A.dtype)
        if c != 1.0:
            A = _divided(A, c)
            norm2 = None
        problem = DenseProblem(A, backend, norm2)
    else:
        indptr, indices = _mask_pattern(mask, A)
        data = _observed_values(A, indptr, indices)
        if not np.isfinite(data).all():
            raise ValueError("A: contains NaN or infinity in observed entries (those selected by mask)")
        _check_coverage(A.shape, indptr, indices)
        c = _scale(peak(data), data.dtype)
        problem = MaskedProblem(A.shape, indptr, indices, np.ascontiguousarray(data / c if c != 1.0 else data),
                                backend)
    problem.scale = c
    return problem


def _safe_scale(norm2: float, shape, dtype) -> bool:
    """Whether ||A||^2 = norm2 (float64) proves A finite with max |A| inside [2^-limit, 2^limit]
    (see _scale), so that no rescaling is needed: max |A| lies between sqrt(norm2 / size) and
    sqrt(norm2). Saves the pass for max |A| on ordinary data; a 0 matrix is not proven safe."""
    limit = 256 if dtype == np.float64 else 32
    return bool(np.isfinite(norm2)) and norm2 < 4.0**limit and norm2 / (shape[0] * shape[1]) > 4.0**-limit


def _scale(top: float, dtype) -> float:
    """1.0, or a power of two near ``top`` = max |A| when A's entries are so large or small that
    the loss (~ ||A||^2) and the products U V^T V (~ sigma^1.5) would over- or underflow: beyond
    2^+-256 in float64 (about 1e+-77), 2^+-32 in float32 (about 4e9 and 2e-10)."""
    limit = 256 if dtype == np.float64 else 32
    c = power_of_two(top)
    return c if c > 2.0**limit or c < 2.0**-limit else 1.0


def _divided(A, c: float):
    """A / c as a new matrix of A's kind (c a power of two: exact); the caller's A is untouched."""
    if is_sparse(A):
        A = A.copy()
        A.data /= c
        return A
    return np.multiply(A, 1.0 / c, order="K", dtype=A.dtype)


def _mask_pattern(mask, A):
    """CSR structure (indptr, indices as int64, sorted, no duplicates) of the observed entries."""
    if isinstance(mask, str):
        if mask != "nonzero":
            raise ValueError(f"mask: unknown value {mask!r}; pass 'nonzero', a boolean array or a sparse matrix")
        if is_sparse(A):
            pattern = sp.csr_matrix(A, copy=True)
            pattern.sum_duplicates()
            pattern.data = pattern.data != 0  # NaN counts as nonzero (and is rejected later)
            pattern.eliminate_zeros()
        else:
            pattern = sp.csr_matrix(A != 0)
    elif sp.issparse(mask):
        if mask.shape != A.shape:
            raise ValueError(f"mask: expected shape {A.shape} (A's), got {mask.shape}")
        mask = check_sparse(mask, "mask")  # before scipy's compiled conversions read its indices
        pattern = sp.csr_matrix(mask, copy=True)
        pattern.sum_duplicates()
        pattern.data = pattern.data != 0
        pattern.eliminate_zeros()
    else:
        mask_arr = np.asarray(mask)
        if mask_arr.dtype != np.bool_:
            raise TypeError(f"mask: expected a boolean array, a sparse matrix or 'nonzero', got dtype {mask_arr.dtype}")
        if mask_arr.shape != A.shape:
            raise ValueError(f"mask: expected shape {A.shape} (A's), got {mask_arr.shape}")
        pattern = sp.csr_matrix(mask_arr)
    pattern.sort_indices()
    return pattern.indptr.astype(np.int64), pattern.indices.astype(np.int64)


def _observed_values(A, indptr, indices):
    rows = np.repeat(np.arange(A.shape[0], dtype=np.int64), np.diff(indptr))
    if is_sparse(A):
        A = A.tocsr()
        return np.asarray(A[rows, indices], dtype=A.dtype).ravel()
    return A[rows, indices]


def _check_coverage(shape, indptr, indices):
    """Every row and column needs an observed entry, or its factor row is undetermined."""
    for axis, counts in (("row", np.diff(indptr)), ("column", np.bincount(indices, minlength=shape[1]))):
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
            raise ValueError(
                f"mask: {axis} {empty[0]}{more} has no observed entries, so its factor cannot be fitted; "
                f"drop it or observe at least one entry"
            )
