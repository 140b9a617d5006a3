"""Gradient-descent SVD: factor A ~ U V^T by first-order optimization, then polish into an SVD.

Useful where a direct SVD is awkward: matrices with missing entries (matrix
completion), sparse data fitted only on its nonzeros, or when a warm start is
at hand. Each full-batch iteration makes ONE pass over A (``A V`` and
``A^T U`` together) or over its observed entries; every other step works on
the small factors.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ._matrix import InMemory
from ._backend import get_backend
from ._linalg import flip_signs, peak, power_of_two
from ._optim import ElementwiseOptimizer, LrController
from ._validation import as_matrix, check_bool, check_int, check_sparse, is_sparse
from .randomized import randomized_svd

__all__ = ["DivergenceError", "GDHistory", "OPTIMIZERS", "gd_svd"]

#: The optimizers of :func:`gd_svd`.
OPTIMIZERS = ("scaled", "gd", "momentum", "adam", "sgd")
_PARAMETRIZATIONS = ("uv", "usv")
_INITS = ("random", "sketch")
#: ScaledGD's default step: the largest for which Tong, Ma and Chi (2021) prove linear convergence.
_SCALED_LR = 2 / 3
#: With a mask the preconditioner p V^T V only estimates each row's curvature; steps above ~0.55
#: diverged on 5%-observed 1000 x 1000 rank-10 completion (the step Tong et al. use there is 0.5).
_SCALED_MASKED_LR = 0.5
#: Default Adam step, relative to the RMS of the initial factors.
_ADAM_RELATIVE_LR = 0.1
#: A loss this many times the starting one means the iteration diverges.
_BLOWUP = 1e8


class DivergenceError(FloatingPointError):
    """gd_svd's loss became infinite, NaN or exploded: the step size is too large."""


@dataclass
class GDHistory:
    """What a :func:`gd_svd` run did.

    Attributes
    ----------
    loss : ndarray
        Objective at each iteration (a mini-batch estimate when ``batch_size`` is set).
    time : ndarray
        Seconds since the start of the run (including initialization) when each loss was computed.
    n_iter : int
        Iterations run.
    converged : bool
        Whether the run stopped because the relative change of the loss fell below ``tol``.
    lr : float
        The step size of the last iteration.
    init_time : float
        Seconds spent on the initialization.
    stop_reason : str
        ``"tol"``, ``"max_iter"`` or ``"callback"``.
    """

    loss: np.ndarray = field(repr=False)
    time: np.ndarray = field(repr=False)
    n_iter: int = 0
    converged: bool = False
    lr: float = float("nan")
    init_time: float = 0.0
    stop_reason: str = ""


def gd_svd(
    A,
    k,
    *,
    optimizer=None,
    lr=None,
    max_iter=1000,
    tol=1e-6,
    batch_size=None,
    mask=None,
    l2=0.0,
    init="sketch",
    parametrization="uv",
    ortho_penalty=None,
    optimizer_options=None,
    random_state=None,
    progress=False,
    callback=None,
    return_history=False,
    backend=None,
):
    """Rank-k SVD of A by gradient descent on a factorization, over all or only observed entries.

    Minimizes ``f(U, V) = 1/2 ||A - U V^T||_F^2 + l2/2 (||U||_F^2 + ||V||_F^2)``,
    with the squared error summed over the observed entries only when ``mask``
    is given (matrix completion), then turns the factors into an exact SVD of
    ``U V^T`` (QR of both factors and an SVD of the small core).

    Parameters
    ----------
    A : array_like or scipy.sparse matrix, shape (m, n)
        Dense (any memory order) or sparse. float32 stays float32; other real
        dtypes compute in float64. Without ``mask`` every entry counts (a sparse
        A's zeros too) and A must be finite; with a mask only observed entries
        are read and must be finite (NaN may mark the missing ones).
    k : int
        Rank, ``1 <= k <= min(m, n)``.
    optimizer : {"scaled", "gd", "momentum", "adam", "sgd"}, optional
        ``"scaled"`` (the default for ``parametrization="uv"``) is ScaledGD:
        ``U -= lr * grad_U (c V^T V + l2 I)^{-1}`` and likewise for V, with
        ``c`` = 1, or the observed fraction of entries when masked; its
        convergence does not depend on the condition number. ``"gd"``: plain
        gradient steps; ``"momentum"``: Nesterov momentum (heavy ball with
        ``optimizer_options={"nesterov": False}``); ``"adam"`` (the default for
        ``parametrization="usv"``); ``"sgd"``: plain steps on mini-batches.
    lr : float, optional
        Step size. For ``"scaled"`` a dimensionless factor (default 2/3, 0.5 with a mask). For
        the others the absolute step: by default ``1/L`` with ``L`` estimated
        from the Gram matrices every iteration (``"gd"``, ``"momentum"``,
        ``"sgd"``) or 10% of the factors' RMS (``"adam"``). With ``lr=None`` the
        step is also halved whenever a full-batch step of a monotone method
        (scaled, gd) raises the loss (that step is undone) or the loss stops
        improving (momentum, adam, mini-batches); a given ``lr`` stays fixed.
    max_iter : int, default 1000
        Maximum number of iterations (mini-batch steps when ``batch_size`` is set).
    tol : float, default 1e-6
        Stop when the relative change of the loss between iterations (between
        epoch means with mini-batches) is at most ``tol``. 0 runs ``max_iter``.
    batch_size : int, optional
        Mini-batch size: rows of A per step (dense objective: the sampled rows
        of U take exact block-gradient steps and V an unbiased estimate) or
        observed entries per step (masked: unbiased estimates for both).
        Default: full batches, except ``"sgd"`` which uses ``max(1, m // 10)``
        rows or ``max(1, nnz // 10)`` entries.
    mask : array_like of bool, scipy.sparse matrix or "nonzero", optional
        Observed entries: a boolean (m, n) array, a sparse matrix whose nonzero
        entries are the observed ones, or ``"nonzero"`` for the nonzero entries
        of A (e.g. ratings in a sparse matrix). Every row and column needs at
        least one observed entry.
    l2 : float, default 0.0
        Ridge penalty on the factors (on U, s and V for ``"usv"``).
    init : {"sketch", "random"}, default "sketch"
        ``"sketch"``: a spectral start from a CountSketch range finder (of
        ``A``, or of the observed entries divided by the observed fraction when
        masked; one pass for the sketch, one for the projection). ``"random"``:
        a Gaussian V and the U that fits it best (one pass), balanced.
    parametrization : {"uv", "usv"}, default "uv"
        ``"usv"`` optimizes ``U diag(s) V^T`` with the orthonormality penalty
        ``ortho_penalty/2 (||U^T U - I||^2 + ||V^T V - I||^2)``: the formulation
        of the "SVD by gradient descent" write-ups (NumPy GD and PyTorch
        momentum / Adam on U, Sigma, V), whose minimizer is the same SVD.
        Supports the optimizers "gd", "momentum", "adam" and "sgd".
    ortho_penalty : float, optional
        Weight of the orthonormality penalty (``"usv"`` only). Default
        ``||A||_F^2 / (30 k^2)``, the write-ups' weighting (mean-squared errors,
        penalties divided by 100) for a matrix of uniform [0, 1) entries.
    optimizer_options : dict, optional
        ``momentum`` (0.9), ``nesterov`` (True), ``betas`` ((0.9, 0.999)), ``eps`` (1e-8).
    random_state : int, numpy.random.Generator or None
        Seed of the initialization and of the mini-batch sampling.
    progress : bool, default False
        Show a tqdm progress bar with the loss.
    callback : callable, optional
        ``callback(iteration, loss)`` after each loss evaluation; returning
        True stops the run.
    return_history : bool, default False
        Also return a :class:`GDHistory` (loss and time per iteration).
    backend : {"cpp", "numba", "numpy"}, optional
        Kernel backend; None uses the current default.

    Returns
    -------
    U : ndarray, shape (m, k)
        Orthonormal columns.
    s : ndarray, shape (k,)
        Singular values of ``U diag(s) Vt``, descending.
    Vt : ndarray, shape (k, n)
        Orthonormal rows.
    history : GDHistory
        Only with ``return_history=True``.

    Raises
    ------
    ValueError
        On a bad argument (the message names it), NaN/inf in the entries used,
        or a mask leaving some row or column unobserved.
    TypeError
        On an argument of the wrong type.
    DivergenceError
        When the loss becomes NaN/inf or explodes; pass a smaller ``lr``.

    Examples
    --------
    >>> import numpy as np, fastlr
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((200, 5)) @ rng.standard_normal((5, 100))
    >>> U, s, Vt = fastlr.gd_svd(A, 5, random_state=0)
    >>> bool(np.allclose(U * s @ Vt, A, atol=1e-6 * np.abs(A).max()))
    True

    Matrix completion from 30% of the entries:

    >>> mask = rng.random(A.shape) < 0.3
    >>> U, s, Vt = fastlr.gd_svd(np.where(mask, A, np.nan), 5, mask=mask, random_state=0)
    >>> bool(np.abs(U * s @ Vt - A).max() < 1e-3 * np.abs(A).max())
    True

    Notes
    -----
    Entries so large or small that the loss (about ||A||^2) would over- or
    underflow (max |A| beyond 2^+-256 in float64, 2^+-32 in float32) are first
    divided by a power of two near max |A| (exact; a copy of A) and ``s`` is
    scaled back; the history's losses are then those of the scaled matrix.

    References
    ----------
    Tong, Ma and Chi, "Accelerating ill-conditioned low-rank matrix estimation
    via scaled gradient descent", JMLR 22(150), 2021.
    Koren, Bell and Volinsky, "Matrix factorization techniques for recommender
    systems", Computer 42(8), 2009.
    """
    args = _check_args(
        k, optimizer, lr, max_iter, tol, batch_size, l2, init, parametrization, ortho_penalty,
        optimizer_options, progress, callback,
    )
    return_history = check_bool(return_history, "return_history")
    kernels = get_backend(backend)
    rng = _rng(random_state)
    start = time.perf_counter()
    problem = _make_problem(A, mask, kernels, backend)
    m, n = problem.shape
    if args.k > min(m, n):
        raise ValueError(f"k: must be <= min(m, n) = {min(m, n)} for A of shape {(m, n)}, got {args.k}")
    if args.batch_size is None and args.optimizer == "sgd":
        args.batch_size = max(1, problem.n_samples // 10)
    # The passes over A run on fastlr's threads; between them BLAS only sees k-column factors.
    # A multi-threaded BLAS there gains nothing and its waiting threads compete with the
    # kernels' (10x slower iterations measured on 2 cores), so it gets one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        U, V = _initial_factors(problem, args.k, args.init, rng, backend)
        model = (_UV if args.parametrization == "uv" else _USV)(U, V, args, problem)
        init_time = time.perf_counter() - start
        history = _run(model, problem, args, kernels, rng, start)
        history.init_time = init_time
        U, s, Vt = _polish(*model.factors())
    if problem.scale != 1.0:
        s = (s * problem.scale).astype(s.dtype)
    return (U, s, Vt, history) if return_history else (U, s, Vt)


# ----------------------------------------------------------------------------------------------
# arguments


@dataclass
class _Args:
    k: int
    optimizer: str
    lr: float | None
    max_iter: int
    tol: float
    batch_size: int | None
    l2: float
    init: str
    parametrization: str
    ortho_penalty: float | None
    momentum: float
    nesterov: bool
    betas: tuple
    eps: float
    progress: bool
    callback: object


def _check_float(value, name, *, minimum=0.0, strict=False, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < minimum or (strict and value <= minimum):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise ValueError(f"{name}: must be finite and {bound}, got {value}")
    return value


def _rng(random_state) -> np.random.Generator:
    """NumPy's generator for ``random_state`` (None, an int >= 0, a Generator, SeedSequence, ...)."""
    if isinstance(random_state, (bool, np.bool_)):
        raise TypeError(f"random_state: expected None, a non-negative int or a numpy Generator, got {random_state!r}")
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError) as exc:  # NumPy's messages do not say which argument was wrong
        raise type(exc)(f"random_state: expected None, a non-negative int or a numpy Generator, "
                        f"got {random_state!r} ({exc})") from None


def _check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: unknown value {value!r}; choose one of {', '.join(map(repr, choices))}")
    return value


def _check_args(k, optimizer, lr, max_iter, tol, batch_size, l2, init, parametrization, ortho_penalty,
                optimizer_options, progress, callback) -> _Args:
    k = check_int(k, "k", minimum=1)
    parametrization = _check_choice(parametrization, "parametrization", _PARAMETRIZATIONS)
    if optimizer is None:
        optimizer = "scaled" if parametrization == "uv" else "adam"
    optimizer = _check_choice(optimizer, "optimizer", OPTIMIZERS)
    if optimizer == "scaled" and parametrization == "usv":
        raise ValueError(
            "optimizer: 'scaled' (ScaledGD) works on the 'uv' parametrization; with parametrization='usv' "
            "choose 'gd', 'momentum', 'adam' or 'sgd'"
        )
    if ortho_penalty is not None and parametrization != "usv":
        raise ValueError("ortho_penalty: only used with parametrization='usv'")
    if optimizer_options is not None and not isinstance(optimizer_options, Mapping):
        raise TypeError(f"optimizer_options: expected a dict, got {type(optimizer_options).__name__}")
    options = dict(optimizer_options or {})
    unknown = set(options) - {"momentum", "nesterov", "betas", "eps"}
    if unknown:
        raise ValueError(f"optimizer_options: unknown keys {sorted(unknown)}; use momentum, nesterov, betas, eps")
    momentum = _check_float(options.get("momentum", 0.9), "optimizer_options['momentum']")
    betas = tuple(options.get("betas", (0.9, 0.999)))
    if len(betas) != 2:
        raise ValueError(f"optimizer_options['betas']: expected (beta1, beta2), got {betas!r}")
    betas = tuple(_check_float(b, "optimizer_options['betas']") for b in betas)
    if momentum >= 1 or max(betas) >= 1:
        raise ValueError("optimizer_options: momentum and betas must be < 1")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback: expected a callable, got {type(callback).__name__}")
    return _Args(
        k=k,
        optimizer=optimizer,
        lr=_check_float(lr, "lr", strict=True, allow_none=True),
        max_iter=check_int(max_iter, "max_iter", minimum=1),
        tol=_check_float(tol, "tol"),
        batch_size=None if batch_size is None else check_int(batch_size, "batch_size", minimum=1),
        l2=_check_float(l2, "l2"),
        init=_check_choice(init, "init", _INITS),
        parametrization=parametrization,
        ortho_penalty=_check_float(ortho_penalty, "ortho_penalty", allow_none=True),
        momentum=momentum,
        nesterov=bool(options.get("nesterov", True)),
        betas=betas,
        eps=_check_float(options.get("eps", 1e-8), "optimizer_options['eps']", strict=True),
        progress=check_bool(progress, "progress"),
        callback=callback,
    )


# ----------------------------------------------------------------------------------------------
# objectives: the data term's loss and gradients, over all entries or the observed ones


def _dot64(X, Y) -> float:
    """sum(X * Y) accumulated in float64."""
    if X.dtype != np.float64:
        X, Y = X.astype(np.float64), Y.astype(np.float64)
    return float(np.vdot(X, Y))


@dataclass
class _Eval:
    loss: float
    GU: np.ndarray
    GV: np.ndarray
    UtU: np.ndarray  # of the U the gradient was taken at (a scaled estimate for row batches)
    VtV: np.ndarray
    row_scale: float  # full-data U-gradient sum ~ row_scale * GU summed over rows
    unit_grams: tuple = ()  # usv: U^T U and V^T V of the unit factors, for the step size


class _DenseProblem:
    """All entries of A (dense, or sparse with its zeros counted)."""

    curvature = 1.0

    def __init__(self, A, backend):
        self.A = A
        self.shape = A.shape
        self.dtype = A.dtype
        self.backend = backend
        if is_sparse(A):
            data = A.data.astype(np.float64)
            if not np.isfinite(data).all():
                raise ValueError("A: contains NaN or infinity; pass mask=... to fit only the observed entries")
            rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
            self.row_norms2 = np.bincount(rows, weights=data * data, minlength=A.shape[0])
        else:
            if not np.isfinite(A).all():
                raise ValueError(
                    "A: contains NaN or infinity; pass mask=... (e.g. mask=~np.isnan(A)) to fit only "
                    "the observed entries"
                )
            self.row_norms2 = np.einsum("ij,ij->i", A, A, dtype=np.float64)
        self.norm2 = float(self.row_norms2.sum())
        self.n_samples = self.shape[0]
        # the loss is computed as |A|^2/2 - <U, AV> + <U^T U, V^T V>/2: changes below this are rounding
        self.loss_floor = 16 * np.finfo(self.dtype).eps * max(self.norm2, np.finfo(np.float64).tiny)

    def spectral_matrix(self):
        return self.A

    def evaluate(self, U, V, batch, l2) -> _Eval:
        VtV = V.T @ V
        if batch is None:
            P, Q = InMemory.wrap(self.A, backend=self.backend).gd_products(U, V)
            UtU = U.T @ U
            loss = 0.5 * self.norm2 - _dot64(U, P) + 0.5 * _dot64(UtU, VtV)
            GU = U @ VtV - P
            GV = V @ UtU - Q
            scale = 1.0
        else:
            UB = U[batch]
            P, Q = InMemory(self.A[batch], backend=self.backend).gd_products(UB, V)
            UtU_B = UB.T @ UB
            scale = self.shape[0] / len(batch)
            loss = scale * (0.5 * self.row_norms2[batch].sum() - _dot64(UB, P) + 0.5 * _dot64(UtU_B, VtV))
            GU = np.zeros_like(U)
            GU[batch] = UB @ VtV - P
            GV = V @ UtU_B - Q
            GV *= scale
            UtU = UtU_B * U.dtype.type(scale)
        if l2:
            GU += U.dtype.type(l2) * U if batch is None else _rows_l2(U, batch, l2)
            GV += V.dtype.type(l2) * V
            loss += 0.5 * l2 * (_dot64(U, U) + _dot64(V, V))
        return _Eval(loss, GU, GV, UtU, VtV, scale)


def _rows_l2(U, batch, l2):
    """l2 U on the sampled rows only (the block step of row mini-batches); returned as an addend."""
    add = np.zeros_like(U)
    add[batch] = U.dtype.type(l2) * U[batch]
    return add


class _MaskedProblem:
    """Observed entries only, stored as CSR (indices int64, one entry per observation)."""

    def __init__(self, shape, indptr, indices, data, kernels):
        self.shape = shape
        self.indptr, self.indices, self.data = indptr, indices, data
        self.dtype = data.dtype
        self.kernels = kernels
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

    def evaluate(self, U, V, batch, l2) -> _Eval:
        if batch is None:
            GU, GV, loss = self.kernels.gd_masked_grad(self.indptr, self.indices, self.data, U, V, l2)
        else:
            if self._entry_rows is None:
                self._entry_rows = np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))
            frac = len(batch) / self.nnz
            indptr = np.zeros(self.shape[0] + 1, dtype=np.int64)
            np.cumsum(np.bincount(self._entry_rows[batch], minlength=self.shape[0]), out=indptr[1:])
            GU, GV, loss = self.kernels.gd_masked_grad(
                indptr, self.indices[batch], self.data[batch], U, V, l2 * frac
            )
            GU *= U.dtype.type(1 / frac)
            GV *= V.dtype.type(1 / frac)
            loss /= frac
        return _Eval(loss, GU, GV, U.T @ U, V.T @ V, 1.0)


def _make_problem(A, mask, kernels, backend):
    """The problem for A (and mask), with ``.scale``: A's entries were divided by it (see _scale)."""
    A = as_matrix(A)
    if A.shape[0] < 1 or A.shape[1] < 1:
        raise ValueError(f"A: expected a non-empty matrix, got shape {A.shape}")
    if mask is None:
        if is_sparse(A) and A.format != "csr":
            A = A.tocsr()
        c = _scale(A.data if is_sparse(A) else A)
        if c != 1.0:
            A = _divided(A, c)
        problem = _DenseProblem(A, backend)
    else:
        indptr, indices = _mask_pattern(mask, A)
        data = _observed_values(A, indptr, indices)
        if not np.isfinite(data).all():
            raise ValueError("A: contains NaN or infinity in observed entries (those selected by mask)")
        _check_coverage(A.shape, indptr, indices)
        c = _scale(data)
        problem = _MaskedProblem(A.shape, indptr, indices, np.ascontiguousarray(data / c if c != 1.0 else data),
                                 kernels)
    problem.scale = c
    return problem


def _scale(values) -> float:
    """1.0, or a power of two near max |A| when A's entries are so large or small that the
    loss (~ ||A||^2) and the products U V^T V (~ sigma^1.5) would over- or underflow: beyond
    2^+-256 in float64 (about 1e+-77), 2^+-32 in float32 (about 4e9 and 2e-10)."""
    limit = 256 if values.dtype == np.float64 else 32
    c = power_of_two(peak(values))
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


# ----------------------------------------------------------------------------------------------
# initialization


def _range_finder_svd(M, k, rng, backend):
    """Top-k SVD estimate of M from fastlr.randomized_svd's default (Gaussian) range finder with
    no power iterations (the GD iterations play that part): one fused pass for the basis, one for
    the projection, about the cost of two GD iterations.

    The basis has 3k columns (at least k + 10): on 2000 x 1000 matrices with sigma_i = 1/i a
    wider start cut ScaledGD's iterations to 1.001x the optimal error from 20-30 to 4-8. A
    CountSketch start (cheaper by one pass) could merge two rows of M into one bucket and start
    a component at U[:, j] = V[:, j] = 0, a stationary point GD never leaves.
    """
    U, s, Vt = randomized_svd(M, k, n_oversamples=max(10, 2 * k), n_iter=0,
                              random_state=int(rng.integers(2**62)), backend=backend)
    return U, s, Vt.T


def _initial_factors(problem, k, init, rng, backend):
    m, n = problem.shape
    dtype = problem.dtype
    if init == "sketch":
        Us, s, Vs = _range_finder_svd(problem.spectral_matrix(), k, rng, backend)
        root = np.sqrt(s)
        U, V = Us * root, Vs * root
    else:
        # A Gaussian V and the least-squares U for it (half a step of alternating least squares):
        # a start whose product U V^T is a projection of A, never far larger than A in any
        # direction, so ScaledGD's first steps cannot overshoot (they can from independent
        # random factors, whose product is tiny along A's top directions).
        M = problem.spectral_matrix()
        V = rng.standard_normal((n, k))
        U = InMemory(M, backend=backend).matmul(V).astype(np.float64) @ np.linalg.inv(V.T @ V)
        Us, s, Vt = _polish(U, V)
        root = np.sqrt(s)
        U, V = Us * root, Vt.T * root
    return np.ascontiguousarray(U, dtype=dtype), np.ascontiguousarray(V, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# parametrizations: parameters, loss and gradients, preconditioning and default step sizes


def _norm2(G) -> float:
    """Spectral norm of a small symmetric PSD matrix."""
    return float(np.linalg.eigvalsh(G.astype(np.float64))[-1]) if G.size else 0.0


class _UV:
    """A ~ U V^T."""

    def __init__(self, U, V, args, problem):
        self.U, self.V = U, V
        self.params = [U, V]
        self.args = args
        self.problem = problem

    def factors(self):
        return self.U, self.V

    def evaluate(self, batch):
        ev = self.problem.evaluate(self.U, self.V, batch, self.args.l2)
        return ev.loss, [ev.GU, ev.GV], ev

    def scaled_directions(self, grads, ev):
        """ScaledGD: each gradient times the inverse of the other factor's (damped) Gram matrix."""
        c = self.problem.curvature
        out = []
        for G, gram in ((grads[0], ev.VtV), (grads[1], ev.UtU)):
            P = c * gram.astype(np.float64)
            P[np.diag_indices_from(P)] += self.args.l2 + 1e-10 * max(np.trace(P) / len(P), 1e-300)
            out.append(G @ np.linalg.inv(P).astype(G.dtype))
        return out

    def lipschitz(self, ev) -> float:
        """Curvature bound for plain gradient steps on (U, V)."""
        return self.problem.curvature * (_norm2(ev.UtU) + _norm2(ev.VtV)) + self.args.l2


class _USV:
    """A ~ U diag(s) V^T with the penalty ortho/2 (|U^T U - I|^2 + |V^T V - I|^2)."""

    def __init__(self, U, V, args, problem):
        # split the balanced start U V^T into unit columns and their scales
        nu, nv = np.linalg.norm(U, axis=0), np.linalg.norm(V, axis=0)
        nu[nu == 0] = 1
        nv[nv == 0] = 1
        self.U = np.ascontiguousarray(U / nu, dtype=U.dtype)
        self.V = np.ascontiguousarray(V / nv, dtype=V.dtype)
        self.s = np.ascontiguousarray(nu * nv, dtype=U.dtype)
        self.params = [self.U, self.s, self.V]
        self.args = args
        self.problem = problem
        k = len(self.s)
        frob2 = problem.norm2 / problem.curvature
        self.ortho = args.ortho_penalty if args.ortho_penalty is not None else frob2 / (30 * k * k)

    def factors(self):
        return self.U * self.s, self.V

    def evaluate(self, batch):
        U, s, V = self.U, self.s, self.V
        Us = U * s
        ev = self.problem.evaluate(Us, V, batch, 0.0)
        GU = ev.GU * s
        Gs = np.einsum("ij,ij->j", U, ev.GU) * U.dtype.type(ev.row_scale)
        GV = ev.GV
        loss = ev.loss
        eye = np.eye(len(s), dtype=U.dtype)
        UtU, VtV = U.T @ U, V.T @ V
        if self.ortho:
            mu = U.dtype.type(self.ortho)
            DU, DV = UtU - eye, VtV - eye
            loss += 0.5 * self.ortho * (_dot64(DU, DU) + _dot64(DV, DV))
            GU += 2 * mu * (U @ DU)
            GV += 2 * mu * (V @ DV)
        l2 = self.args.l2
        if l2:
            loss += 0.5 * l2 * (_dot64(U, U) + _dot64(s, s) + _dot64(V, V))
            GU += U.dtype.type(l2) * U
            Gs += U.dtype.type(l2) * s
            GV += V.dtype.type(l2) * V
        ev.unit_grams = (UtU, VtV)
        return loss, [GU, Gs, GV], ev

    def lipschitz(self, ev) -> float:
        UtU, VtV = ev.unit_grams
        nu, nv = _norm2(UtU), _norm2(VtV)
        smax2 = float(np.max(self.s.astype(np.float64) ** 2)) if len(self.s) else 0.0
        data = self.problem.curvature * (smax2 * (nu + nv) + nu * nv)
        return data + self.ortho * (6 * max(nu, nv) + 2) + self.args.l2


# ----------------------------------------------------------------------------------------------
# the iteration


class _Batches:
    """Mini-batches sampled without replacement, a new permutation every epoch."""

    def __init__(self, total, size, rng):
        self.total, self.rng = total, rng
        self.size = None if size is None or size >= total else size
        self.pos = total
        self.perm = None

    def next(self):
        """(indices or None for the full batch, whether this batch ends an epoch)."""
        if self.size is None:
            return None, True
        if self.pos >= self.total:
            self.perm = self.rng.permutation(self.total)
            self.pos = 0
        batch = np.sort(self.perm[self.pos : self.pos + self.size])
        self.pos += self.size
        return batch, self.pos >= self.total


def _optimizer_kind(args):
    if args.optimizer in ("scaled", "gd", "sgd"):
        return "sgd"
    if args.optimizer == "momentum":
        return "nesterov" if args.nesterov else "momentum"
    return "adam"


def _lr_mode(args, full_batch):
    if args.lr is not None:
        return "fixed"
    if full_batch and args.optimizer in ("scaled", "gd"):
        return "backtrack"
    return "plateau"


def _run(model, problem, args, kernels, rng, start) -> GDHistory:
    batches = _Batches(problem.n_samples, args.batch_size, rng)
    full_batch = batches.size is None
    opt = ElementwiseOptimizer(
        _optimizer_kind(args), model.params, kernels, momentum=args.momentum, betas=args.betas, eps=args.eps
    )
    control = LrController(_lr_mode(args, full_batch))
    adam_lr = [_ADAM_RELATIVE_LR * max(float(np.sqrt(np.mean(p.astype(np.float64) ** 2))), 1e-30) for p in model.params]
    losses, times = [], []
    history = GDHistory(loss=np.empty(0), time=np.empty(0), stop_reason="max_iter")
    first_loss = None
    previous = math.inf  # loss of the last accepted iterate
    epoch_sum, epoch_count, previous_epoch = 0.0, 0, math.inf
    saved = None  # (optimizer snapshot, evaluation) of the last accepted iterate, for backtracking
    bar = tqdm(total=args.max_iter, desc="gd_svd", disable=not args.progress, leave=False)
    try:
        for it in range(args.max_iter):
            batch, epoch_end = batches.next()
            loss, grads, ev = model.evaluate(batch)
            losses.append(loss)
            times.append(time.perf_counter() - start)
            if first_loss is None:
                first_loss = max(loss, 0.5 * problem.norm2, np.finfo(np.float64).tiny)
            if not math.isfinite(loss) or loss > _BLOWUP * first_loss:
                raise DivergenceError(
                    f"gd_svd diverged: the loss became {loss:.3g} at iteration {it} with optimizer="
                    f"{args.optimizer!r} and lr={_describe_lr(args, history.lr)}; pass a smaller lr"
                    + (f" (e.g. lr={history.lr / 10:.3g})" if math.isfinite(history.lr) else "")
                    + " or lr=None"
                )
            history.n_iter = it + 1
            if args.progress and (it % 10 == 0 or it == args.max_iter - 1):
                bar.set_postfix(loss=f"{loss:.6g}", refresh=False)
            bar.update(1)
            if args.callback is not None and args.callback(it, loss):
                history.stop_reason = "callback"
                break
            if saved is not None and control.reject(previous, loss, problem.loss_floor):
                opt.restore(saved[0])  # undo the step that raised the loss; retry from there, shorter
                loss, grads, ev = saved[1]
            elif full_batch:
                if loss <= problem.loss_floor:  # an exact fit, to rounding: nothing left to optimize
                    history.converged, history.stop_reason = True, "tol"
                    break
                if math.isfinite(previous) and abs(previous - loss) <= args.tol * max(previous, problem.loss_floor):
                    history.converged, history.stop_reason = True, "tol"
                    break
                previous = loss
                control.observe(loss)
            else:
                epoch_sum, epoch_count = epoch_sum + loss, epoch_count + 1
                if epoch_end:
                    mean = epoch_sum / epoch_count
                    if math.isfinite(previous_epoch) and abs(previous_epoch - mean) <= args.tol * max(
                        previous_epoch, problem.loss_floor
                    ):
                        history.converged, history.stop_reason = True, "tol"
                        break
                    previous_epoch, epoch_sum, epoch_count = mean, 0.0, 0
                    control.observe(mean)
            if control.mode == "backtrack":
                saved = (opt.snapshot(), (loss, grads, ev))
            lr = _step_size(model, args, ev, adam_lr)
            lr = [x * control.factor for x in lr] if isinstance(lr, list) else lr * control.factor
            history.lr = lr[0] if isinstance(lr, list) else lr
            if args.optimizer == "scaled":
                grads = model.scaled_directions(grads, ev)
            opt.step(grads, lr)
    finally:
        bar.close()
    history.loss = np.asarray(losses)
    history.time = np.asarray(times)
    return history


def _step_size(model, args, ev, adam_lr):
    if args.optimizer == "scaled":
        if args.lr is not None:
            return args.lr
        return _SCALED_MASKED_LR if isinstance(model.problem, _MaskedProblem) else _SCALED_LR
    if args.lr is not None:
        return args.lr
    if args.optimizer == "adam":
        return list(adam_lr)
    return 1.0 / max(model.lipschitz(ev), 1e-300)


def _describe_lr(args, last):
    if args.lr is not None:
        return f"{args.lr:g}"
    return f"None (last step {last:.3g})" if math.isfinite(last) else "None"


# ----------------------------------------------------------------------------------------------
# the final SVD


def _polish(U, V):
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
