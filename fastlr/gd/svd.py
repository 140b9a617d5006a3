"""gd_svd: the public entry point of the gradient-descent SVD."""

from __future__ import annotations

import time

import numpy as np

from .._backend import get_backend
from .._linalg import blas_single_thread
from .._validation import check_bool, random_generator
from .loop import run
from .models import USV, UV, initial_factors, polish
from .options import OPTIMIZERS, check_options
from .problems import make_problem

__all__ = ["EPOCH_TOL", "OPTIMIZERS", "TOL", "gd_svd"]

#: Default ``tol`` of full-batch runs: the extrapolated remaining decrease of the loss, relative to
#: the loss (see ``loop.StoppingRule``).
TOL = 5e-4
#: Default ``tol`` with mini-batches: the relative change between epoch means.
EPOCH_TOL = 1e-6


def gd_svd(
    A,
    k,
    *,
    optimizer=None,
    lr=None,
    max_iter=1000,
    tol=None,
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
        Step size. For ``"scaled"`` a dimensionless factor (default 2/3, 0.5 with a mask;
        without a mask, ``lr=None`` makes the first step after the sketch start, which moves V
        alone because the start fits U to V, the full step 1: the exact minimizer along it). For
        the others the absolute step: by default ``1/L`` with ``L`` estimated
        from the Gram matrices every iteration (``"gd"``, ``"momentum"``,
        ``"sgd"``) or 10% of the factors' RMS (``"adam"``). With ``lr=None`` the
        step is also halved whenever a full-batch step of a monotone method
        (scaled, gd) raises the loss (that step is undone) or the loss stops
        improving (momentum, adam, mini-batches); a given ``lr`` stays fixed.
    max_iter : int, default 1000
        Maximum number of iterations (mini-batch steps when ``batch_size`` is set).
    tol : float, optional
        Stopping tolerance, relative to the loss. Full batches: stop when the
        loss's remaining decrease, extrapolated from its last two decreases (a
        linear rate ``r`` leaves ``d r / (1 - r)`` after a decrease ``d``; at
        least ``d``), is at most ``tol`` times the loss. Default 5e-4: about
        1.00025x the optimal Frobenius error of ``U V^T`` or better (at least two
        steps run, or one after a one-pass sketch start, whose own first estimate
        counts; 2-4 iterations on 2000 x 1000 matrices with sigma_i = 1/i or rank
        10 plus noise, worst error ratio 1.0004 over 100 runs each; spectra without
        a gap at k, e.g. Gaussian matrices, can end up to ~1.004x). With
        mini-batches: stop when consecutive epoch means differ by at most ``tol``
        relatively (default 1e-6). 0 runs ``max_iter``.
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
        least one observed entry. When A is a ``numpy.ma.MaskedArray`` with masked
        entries and no mask is given, the unmasked entries are the observed ones.
    l2 : float, default 0.0
        Ridge penalty on the factors (on U, s and V for ``"usv"``).
    init : {"sketch", "random"}, default "sketch"
        ``"sketch"``: a spectral start from a Gaussian range finder with 3k
        columns (of ``A``, or of the observed entries divided by the observed
        fraction when masked): one fused pass ``(A G, A^T A G)`` and the rank-k
        truncation of the range finder's approximation, with U then fitted to
        its V by a thin pass ``A V`` (about 3 iterations' time); where the
        sketch's Ritz values show no clear gap after the k-th (or A has
        numerical rank below 3k), a projection on the ``A^T A G`` basis instead
        (a pass with 3k columns: about 4 iterations' time). ``"random"``: a
        Gaussian V and the U that fits it best (one pass), balanced.
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
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator
        Seed of the initialization and of the mini-batch sampling (a Generator
        is drawn from directly; None: fresh OS entropy).
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
    options = check_options(
        k, optimizer, lr, max_iter, tol, batch_size, l2, init, parametrization, ortho_penalty,
        optimizer_options, progress, callback,
    )
    return_history = check_bool(return_history, "return_history")
    kernels = get_backend(backend)
    rng = random_generator(random_state)
    start = time.perf_counter()
    if isinstance(A, np.ma.MaskedArray) and mask is None and np.ma.getmaskarray(A).any():
        # A masked array's masked entries are its missing ones.
        mask = ~np.ma.getmaskarray(A)
        A = A.filled(np.nan if A.dtype.kind == "f" else 0)
    # ||A||^2 too: a BLAS dot on two threads left OpenBLAS's worker spinning through the whole run (23-30 ms
    # of CPU in a 25-60 ms run on 2000 x 1000); InMemory.squared_norm takes fastlr's threads by the passes' rule
    with blas_single_thread():
        problem = make_problem(A, mask, backend)
    m, n = problem.shape
    if options.k > min(m, n):
        raise ValueError(f"k: must be <= min(m, n) = {min(m, n)} for A of shape {(m, n)}, got {options.k}")
    if options.batch_size is None and options.optimizer == "sgd":
        options.batch_size = max(1, problem.n_samples // 10)
    if options.tol is None:
        full_batch = options.batch_size is None or options.batch_size >= problem.n_samples
        options.tol = TOL if full_batch else EPOCH_TOL
    # The passes over A run on fastlr's threads; between them BLAS only sees k-column factors.
    # A multi-threaded BLAS there gains nothing and its waiting threads compete with the
    # kernels' (10x slower iterations measured on 2 cores), so it gets one thread.
    with blas_single_thread():
        # the one-pass start serves the uv model, whose first steps use what it gives; usv keeps
        # the two-pass start it was tuned with (Adam on usv ended above its start loss on a test
        # matrix from the one-pass start)
        uv = options.parametrization == "uv"
        U, V, AV, prior = initial_factors(problem, options.k, options.init, rng, backend, one_pass=uv)
        if uv:
            model = UV(U, V, options, problem, AV=AV, fitted=AV is not None)
        else:
            model = USV(U, V, options, problem)
        if not uv or options.l2:  # the start's loss leaves out the l2 and usv penalties
            prior = None
        init_time = time.perf_counter() - start
        history = run(model, problem, options, kernels, rng, start, prior)
        history.init_time = init_time
        U, s, Vt = polish(*model.factors())
    if problem.scale != 1.0:
        s = (s * problem.scale).astype(s.dtype)
    return (U, s, Vt, history) if return_history else (U, s, Vt)
