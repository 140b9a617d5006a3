"""The sketched SVD of Sarlos and Clarkson-Woodruff (SCW), with optional power iterations.

``M = S A`` (m x d); compact SVD of M cut at its numerical rank r, giving an
orthonormal V (d x r); optionally ``n_iter`` power steps replace V by an
orthonormal basis of ``(A^T A)^q V``; ``B = A V`` (n x r) and its thin SVD
``B = U_B diag(s_B) X^T``; the rank-k result is ``U = U_B[:, :k]``,
``s = s_B[:k]``, ``Vt = (V X[:, :k])^T``. Every pass over A is a call to an
operand of the matrix layer (``fastlr._matrix``), so the same code runs on
in-memory, memory-mapped and dask input; everything else is small dense work.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from ._linalg import blas_single_thread, normalize, orthonormal, peak, power_of_two, ritz_pairs, sketch_svd
from ._matrix import Operand, operand
from ._matrix.base import PowerSteps
from ._matrix.memory import representable, rounding_shows
from .batch import is_batch, run_batch
from ._validation import check_bool, check_int
from .lowrank import LowRank

__all__ = ["SCWFactors", "scw", "scw_factors", "sketch_svd"]


class SCWFactors(NamedTuple):
    """Intermediates of the SCW forward pass (``scw_factors``).

    Small factors are float64; ``V`` and ``B`` have A's float dtype.
    """

    UM: np.ndarray  #: (m, r) left singular vectors of M = S A above the rank cut
    sM: np.ndarray  #: (r,) singular values of M
    V: np.ndarray  #: (d, r) orthonormal basis B is built from (M's right singular vectors unless n_iter > 0)
    B: np.ndarray  #: (n, r) A @ V
    UB: np.ndarray  #: (n, min(k, r)) leading left singular vectors of B
    sB: np.ndarray  #: (r,) singular values of B, descending
    X: np.ndarray  #: (r, r) right singular vectors of B as columns: B X[:, i] = sB[i] UB[:, i]


def scw_factors(A, SA, k: int, *, n_iter: int = 0, power_iteration_normalizer: str = "QR",
                lapack_driver: str = "gesdd", backend=None) -> SCWFactors:
    """The SCW forward pass from a given sketch ``SA = S @ A``, with its intermediates.

    Arguments are not validated here (``scw`` does that).

    Parameters
    ----------
    A : Operand, or a matrix ``_matrix.operand`` accepts, shape (n, d)
    SA : ndarray, shape (m, d)
    k : int
        Number of left singular vectors of B to form.
    n_iter : int
        Power steps ``V <- orth(A^T A V)``, each one pass over A.
    power_iteration_normalizer : {"QR", "LU", "none"}
        How V is renormalized between power steps (the last is always QR).
    lapack_driver : {"gesdd", "gesvd"}
        LAPACK driver for the small SVDs.
    backend : str, optional
        Kernel backend for the products with A (when A is not an Operand already).

    Returns
    -------
    SCWFactors
    """
    op = operand(A, backend=backend)
    UM, sM, V = sketch_basis(SA, n_iter, power_iteration_normalizer, op.dtype,
                             functools.partial(op.power_steps, k=k))
    return basis_factors(op, V, k, lapack_driver, UM, sM)


def sketch_basis(SA: np.ndarray, n_iter: int, normalizer: str, dtype, steps_for):
    """(UM, sM, V) from a sketch ``S A``: its SVD cut at the numerical rank r, and V (d x r, in
    ``dtype``) its right singular vectors after ``n_iter`` power steps: ``steps_for(r, n_iter)``
    returns their products (an operand's ``power_steps``, k bound). The sketch's sigma_1 sets the
    steps' scale."""
    # Cut at min(m, d) * eps: rounding in an m x d sketch perturbs its singular values by about
    # eps * ||S A||_F <= sqrt(m) eps sigma_1. NumPy's max(m, d) rule grows with the long side and
    # dropped real directions (float32, d = 100,000: everything below 1.2% of sigma_1). Extra basis
    # directions never make SCW's best rank-k approximation in span(V) worse.
    UM, sM, VtM = sketch_svd(SA, np.finfo(dtype).eps, min(SA.shape))
    V = np.ascontiguousarray(VtM.T, dtype=dtype)
    if V.shape[1] > 0 and n_iter > 0:
        V = power_iterations(V, n_iter, normalizer, steps_for(V.shape[1], n_iter), dtype, sigma=sM[0])
    return UM, sM, V


def basis_factors(op: Operand, V: np.ndarray, k: int, lapack_driver: str = "gesdd", UM=None,
                  sM=None) -> SCWFactors:
    """SCW's last steps from an orthonormal basis V (d x r): ``B = A V`` and its thin SVD.

    ``UM``, ``sM`` (the sketch's factors, kept for the gradients) default to empty.
    """
    B = op.times(V)
    UB, sB, X = op.thin_svd(B, k, lapack_driver)
    if UM is None:
        UM, sM = np.zeros((0, 0)), np.zeros(0)
    return SCWFactors(UM, sM, V, B, UB, sB, X)


def guarded_factors(op: Operand, SA: np.ndarray, RA: np.ndarray, k: int, n_iter: int) -> list[SCWFactors]:
    """SCW's factors from the sketch ``S A`` and from its reference's ``R A``: the more accurate on A alone, or
    both (S's first) when their errors are too close to tell apart without forming them.

    SCW's error is ``||A - [A V]_k V^T||_F^2 = ||A||_F^2 - ||[A V]_k||_F^2`` (V orthonormal), so of two bases
    the one whose ``B = A V`` has the larger top-k energy (the sum of B's k largest squared singular values)
    gives the smaller error, with no further pass over A. The energies are only as accurate as B, to about eps
    times ``||A||_F^2``: two errors below about ``sqrt(eps) ||A||_F`` (a nearly low-rank A) can differ many times
    over with energies equal to rounding, so within ``_TIE`` eps both are returned for the caller to form the
    errors explicitly (``Operand.residual_norm``). Energies are compared scaled by the larger sigma_1: their
    squares would over- or underflow for entries beyond 1e+-154 (1e+-19 in float32).
    """
    steps_for = functools.partial(op.power_steps, k=k)
    UM, sM, V = sketch_basis(SA, n_iter, "QR", op.dtype, steps_for)
    W = sketch_basis(RA, n_iter, "QR", op.dtype, steps_for)[2]
    fV, fW = basis_factors(op, V, k, UM=UM, sM=sM), basis_factors(op, W, k)
    eV, eW = _top_energies(fV.sB, fW.sB, k)
    tie = _TIE * float(np.finfo(op.dtype).eps) * max(eV, eW)
    if eW - eV > tie:
        return [fW]
    if eV - eW > tie:
        return [fV]
    return [fV, fW]


#: Top-k energies within this many eps (relative) are a tie to ``guarded_factors``: B's rounding moved them by
#: at most 16 eps (float64) and 0.3 eps (float32) relative to the explicit errors on nearly low-rank A from 300 x 30
#: to 20000 x 100 and 3000 x 3000 (bench/README.md, twenty-fourth session, HA).
_TIE = 64


def _top_energies(sV: np.ndarray, sW: np.ndarray, k: int) -> tuple[float, float]:
    """``||[B]_k||_F^2`` of two B's from their singular values (descending), both divided by the larger sigma_1^2."""
    top = max(float(sV[0]) if sV.size else 0.0, float(sW[0]) if sW.size else 0.0)
    if top == 0.0:
        return 0.0, 0.0
    return tuple(float(np.sum((np.asarray(s[:k], dtype=np.float64) / top) ** 2)) for s in (sV, sW))


def sketch_sigma(SA: np.ndarray) -> float:
    """sigma_1 of a sketch S A (an estimate of sigma_1(A)'s magnitude); 0.0 when S A is zero."""
    s = sketch_svd(SA, 0.0)[1]
    return float(s[0]) if s.size else 0.0


def gaussian_range(steps: PowerSteps, d: int, l: int, n_iter: int, normalizer: str, seed: int, dtype,
                   estimate_sigma) -> np.ndarray:
    """Orthonormal V (d x min(l, d)) spanning ``(A^T A)^(n_iter + 1) Omega``, Omega a d x l Gaussian.

    The range finder of scikit-learn's randomized_svd moved to the row space:
    its basis Q of ``A (A^T A)^q Omega`` gives ``Q Q^T A``; the basis here
    spans ``A^T Q`` (q = n_iter), and ``A V V^T`` is the best approximation of
    A whose rows lie in that span, which the rows of ``Q Q^T A`` do: at least
    as accurate, from n_iter + 1 passes over A instead of 2 n_iter + 1. A
    Gaussian start loses no direction
    whatever A's shape, rank or sparsity (a CountSketch with l = k + p rows
    can: two heavy rows in one bucket). ``steps``: the products (an operand's
    ``power_steps``); ``estimate_sigma()`` gives a scale only when A's
    entries are so large or small that the unscaled first step over- or
    underflows (``power_iterations``).
    """
    omega = np.random.default_rng(seed).standard_normal((d, min(l, d)))
    return power_iterations(np.ascontiguousarray(omega, dtype=dtype), n_iter + 1, normalizer, steps, dtype,
                            estimate_sigma=estimate_sigma, tail=True)


def power_iterations(V: np.ndarray, n_iter: int, normalizer: str, steps: PowerSteps, dtype, *, sigma=None,
                     estimate_sigma=None, tail: bool = False) -> np.ndarray:
    """``n_iter`` steps ``V <- orth(A^T A V)`` (``normalizer`` between steps, QR
    after the last), V kept C-contiguous in ``dtype``. ``steps.step(V)`` is A^T A V
    (an operand's ``power_steps``); the last step uses ``steps.last`` instead when given
    (``A^T W``, W = ``A V`` normalized: ``Operand.last_power_step``), so the final basis is
    accurate to eps * sigma_1 rather than the fused product's eps * sigma_1^2. When the second
    step's Ritz values put sigma_k (k = ``steps.k``) below 2 sqrt(eps) sigma_1, where the fused
    product cannot see direction k at all, the remaining steps use ``steps.last`` too.

    Each product is taken of ``V / c``, c a power of two near sigma_1(A), so that
    ``A V / c`` and ``A^T A V / c`` stay near 1 and sigma_1(A) in magnitude:
    nothing over- or underflows for entries near 1e+-200 (float64) or 1e18
    (float32), and the scaling is exact. ``sigma`` estimates sigma_1(A) (from a
    sketch of A); without it the first step runs unscaled and, only when that
    over- or underflows, ``estimate_sigma()`` supplies the scale. c follows the
    growth observed at each step.

    ``tail``: where ``steps.tail`` is given (the float32 Gram route) and n_iter >= 5, the last three
    steps become its Rayleigh-Ritz step on ``[V, A^T A V]`` (two products) when it serves, and the
    result is the d x k basis it returns (fewer columns than V: callers that take it finish on it).

    Raises
    ------
    ValueError
        When a product is not finite (A holds NaN or inf).
    """
    c = power_of_two(sigma) if sigma else 1.0
    split = False  # every remaining step through steps.last
    # float32: the last step always through steps.last; float64 only where the fused product's
    # rounding could show in the error (the Ritz test on the step before: memory.rounding_shows).
    careful = dtype == np.float32
    tail_at = n_iter - 3 if tail and steps.tail is not None and n_iter >= 5 and normalizer in ("LU", "QR") else -1
    for step in range(n_iter):
        if step == tail_at and not split:
            Vk = steps.tail(V)
            if Vk is not None:
                return Vk
        final = step == n_iter - 1
        fused = steps.last is None or not ((final and careful) or split)
        step_product = steps.step if fused else steps.last
        Vc = np.ascontiguousarray(V / c, dtype=dtype)
        Z = step_product(Vc)
        if step == 0 and sigma is None and estimate_sigma is not None and not representable(Z, dtype):
            c = power_of_two(estimate_sigma())
            Vc = np.ascontiguousarray(V / c, dtype=dtype)
            Z = step_product(Vc)
        z, v = peak(Z), peak(V)
        if not np.isfinite(z):
            raise ValueError("A: contains NaN or infinity (or overflows), so A^T A V is not finite")
        if fused and z > 0.0 and v > 0.0:  # Z ~ sigma^2 |V| / c; in logarithms, as z * c may underflow
            c = float(np.ldexp(1.0, int(np.round((np.log2(z) + np.log2(c) - np.log2(v)) / 2))))
        tests = fused and steps.last is not None
        test_split = tests and step == min(1, n_iter - 2)  # once, after the second step
        test_careful = tests and not careful and (step == n_iter - 2 or n_iter == 1)
        if test_split or test_careful:
            ritz = ritz_pairs(Vc, Z, relative=True, values_only=True)  # one eigenproblem for both tests
            theta = None if ritz is None else ritz[0]  # None: Vc numerically rank-deficient, stay careful
            if test_split:
                split = _below_fused_rounding(theta, steps.k, dtype)
            if test_careful:
                careful = theta is None or rounding_shows(theta, steps.k, Vc.shape[0], dtype)
                if careful and final:  # a single step: nothing told beforehand, so it is redone
                    Z = steps.last(Vc)
        # The step before the tail orthonormalizes (the tail's first block) in place of LU
        V = orthonormal(Z) if final or step == tail_at - 1 else normalize(Z, normalizer)
        V = np.ascontiguousarray(V, dtype=dtype)
    return V


def _below_fused_rounding(theta, k: int, dtype) -> bool:
    """Whether the k-th of the Ritz values theta (ascending, up to a positive factor) of a fused
    step ``Z = A^T A Vc`` over span(Vc) lies below 4 eps times the first: sigma_k < 2 sqrt(eps)
    sigma_1, under the fused product's rounding. True for theta None (Vc rank-deficient)."""
    if theta is None:
        return True
    theta = theta[::-1]
    k = min(k, theta.size)
    return bool(theta[0] > 0.0 and theta[k - 1] < 4 * np.finfo(dtype).eps * theta[0])


def check_rank(k, A, name: str = "k") -> int:
    k = check_int(k, name, minimum=1)
    if k > min(A.shape):
        raise ValueError(f"{name}: must be <= min(A.shape) = {min(A.shape)}, got {k}")
    return k


def check_scw_args(A, S, k, n_iter) -> tuple[int, int]:
    """Validate scw's k, n_iter and sketch S against A (anything with a 2-D ``shape``)."""
    k = check_rank(k, A)
    n_iter = check_int(n_iter, "n_iter", minimum=0)
    if not (hasattr(S, "shape") and hasattr(S, "parts")):
        raise TypeError(f"S: expected a fastlr sketch (CountSketch, GaussianSketch, ...), got {type(S).__name__}")
    m, n = S.shape
    if n != A.shape[0]:
        raise ValueError(f"S: has n={n} columns but A has {A.shape[0]} rows; they must match")
    if m < k:
        raise ValueError(f"S: has m={m} rows, fewer than k={k}; the sketch must have at least k rows")
    return k, n_iter


def scw(A, S, k: int, *, n_iter: int = 0, check_finite: bool = True, backend=None, block_rows=None,
        guard: bool = True) -> LowRank:
    """Rank-k approximation of A from the sketch ``S @ A`` (Sarlos; Clarkson-Woodruff).

    Parameters
    ----------
    A : array_like or scipy.sparse matrix, shape (n, d)
        Dense (any memory order) or sparse; float32 stays float32, other real
        dtypes compute in float64. A ``np.memmap`` is read in row blocks
        (bounded memory); a row-chunked dask array is processed a task per
        block (U comes back as a persisted dask array). A 3-D array or a list
        of matrices of one shape is a batch: factored side by side, returned
        as stacked ``(U, s, Vt)`` arrays (see ``fastlr.randomized_svd``).
    S : fastlr sketch, shape (m, n)
        Any fastlr sketch (``CountSketch``, ``GaussianSketch``, stacked,
        learned) with ``S.n == n`` and ``S.m >= k``.
    k : int
        Target rank, ``1 <= k <= min(n, d)``.
    n_iter : int, default 0
        Power iterations ``V <- orth(A^T A V)`` (one pass over A each) before B.
    check_finite : bool, default True
        Accepted for SciPy compatibility; NaN or inf in A always raise
        ValueError. The check runs on S A (where any NaN/inf of A shows up:
        0 * NaN and 0 * inf are NaN), so it costs O(m d), not a pass over A,
        and there is nothing to save by skipping it.
    backend : {"cpp", "numba", "numpy"}, optional
        Kernel backend; None uses the current default.
    block_rows : int, optional
        Rows per block for a numpy array or memmap read in row blocks
        (given: any ndarray is read that way; default for a memmap: blocks of
        about 64 MiB as float64). Not used for dask arrays (their chunks are
        the blocks).
    guard : bool, default True
        When S carries a ``reference`` (the random ``CountSketch(m, n, seed)``
        that ``learn_sketch`` and the data-driven sketches start from), also
        run SCW with the reference and return the more accurate of the two
        results on this A, so a learned sketch is never worse than that random
        one on any matrix. The choice usually needs no extra pass to judge it
        (the errors follow from the top-k energies of ``A V``): it costs one
        more sketch pass and a second product with A, about twice S's time
        (bench/README.md). Where the energies tie to rounding (both errors
        below about sqrt(eps) ||A||_F, a nearly low-rank A) the two errors
        are formed explicitly, one more pass over A each. False: S alone.
        Ignored for a sketch without a reference.

    Returns
    -------
    LowRank
        ``U`` (n x k) and ``Vt`` (k x d) orthonormal, ``s`` descending, signs
        as scikit-learn's ``svd_flip`` (largest |entry| of each column of U
        positive). When rank(A) < k the trailing singular values are 0.

    Raises
    ------
    ValueError
        Bad k or n_iter, S of the wrong shape, empty A, NaN/inf in A.
    TypeError
        A not a real numeric matrix, S not a sketch.

    References
    ----------
    T. Sarlos, "Improved approximation algorithms for large matrices via random
    projections", FOCS 2006. K. Clarkson and D. Woodruff, "Low rank
    approximation and regression in input sparsity time", STOC 2013.

    Examples
    --------
    >>> import numpy as np, fastlr
    >>> A = np.random.default_rng(0).standard_normal((500, 40))
    >>> U, s, Vt = fastlr.scw(A, fastlr.CountSketch(40, 500, seed=0), 10)
    >>> U.shape, s.shape, Vt.shape
    ((500, 10), (10,), (10, 40))
    """
    if is_batch(A):  # many matrices of one shape: side by side, stacked factors (see randomized_svd)
        return run_batch(lambda X, _: scw(X, S, k, n_iter=n_iter, check_finite=check_finite, backend=backend,
                                          block_rows=block_rows, guard=guard), A)
    check_bool(check_finite, "check_finite")
    check_bool(guard, "guard")
    op = operand(A, backend=backend, block_rows=block_rows).check_nonempty()
    k, n_iter = check_scw_args(op, S, k, n_iter)
    if n_iter > 0:
        op = op.for_power_steps()
    SA = op.sketch(S)  # refused when not finite
    reference = S.reference if guard else None
    RA = None if reference is None else op.sketch(reference)
    if RA is not None and np.array_equal(RA, SA):  # e.g. a learned sketch that fell back to its random start:
        RA = None  # the same result, and no tie to judge by the explicit errors (two more passes over A)
    with blas_single_thread():
        factors = [scw_factors(op, SA, k, n_iter=n_iter)] if RA is None else guarded_factors(op, SA, RA, k, n_iter)
        results = [op.result(*op.truncate(f, k, flip_sign=True)) for f in factors]
    # Two: a tie of the energies; their errors formed explicitly decide (min keeps S's on an exact tie)
    return results[0] if len(results) == 1 else min(results, key=op.residual_norm)
