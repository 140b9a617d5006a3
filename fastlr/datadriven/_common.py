"""Shared by the data-driven sketches: argument checks, the training matrices as rows, bucket values."""

from __future__ import annotations

import math
import numbers
import warnings
from contextlib import nullcontext

import numpy as np
import scipy.linalg
import scipy.ndimage
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from .._krylov import next_block
from .._safeguards import LearnedSketchWarning, rounding_ties, spread, tie_width
from .._threads import thread_limit
from .._validation import (
    as_matrix,
    check_int,
    is_sparse,
    matrix_list,
    user_stacklevel,
)
from ..datasets import spectral_norm
from ..evaluation import mean_scaled_error
from ..heavy_rows import HeavyRowSketch
from ..sketch import CountSketch, Sketch

#: Row Gram matrices up to this size are formed and factored densely (eigh of
#: 4096 x 4096 takes a few seconds); larger ones go through subspace iteration.
_DENSE_GRAM = 4096
#: Ridge leverage scores of up to this many rows use every eigenpair of the row Gram matrix (exact);
#: above it, the top 4k + 10 from subspace iteration without forming G, and a bound for the rest
#: (positions._ridge_scores). Measured (bench/README.md, seventh session): the same scores within 1%
#: (correlation 1.0000) and the same held-out Err of inner_product_sketch on video, hyperspectral and
#: text (5 seeds), 1.9 -> 0.85 s CPU at 1920 rows and 16.6 -> 3.7 s at 3840 (16 frames); below ~1000
#: rows forming G is as cheap and it is reused by the buckets.
_FULL_SCORES = 1024
_SUBSPACE_ITERS = 8
#: Below this many stored entries per matrix, BLAS runs on one thread (as learn_sketch does): the
#: products take microseconds, less than waking threads, which on a busy machine wait for a core.
_SMALL_MATRIX = 1 << 20
GUARDS = (None, "sampler", "countsketch")
#: Training data whose row energies sit on less than this share of the rows (participation ratio
#: ``(sum e)^2 / (n sum e^2)``) say little about the rows new matrices will use: measured on one
#: matrix, text 0.004-0.013 (a third of the words unused, new topics use others), generated and real
#: images 0.67-0.98 (bench/README.md, eighth session).
SPARSE_ROWS = 0.1
#: Second-difference noise above this share of a matrix's energy: its rows are not an ordered, smooth
#: signal (text: 0.67; images: <= 0.005), so its columns are not smoothed (_smoothing_width).
ROUGH = 0.05
_WIDTHS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0)
#: A sketch built from one matrix must beat, on that matrix, ``CountSketch(m, n, seed)`` and the mean
#: of RIVALS other random CountSketches by MARGIN of their standard deviation (_beats_random): the
#: on-matrix gain of 1Shot1Vec's values is often within the luck of a random draw there, and then says
#: nothing about new matrices (bench/README.md, eighth session: held-out 0.64-1.15 of random on real
#: video at 0-1.5 sd).
RIVALS = 16
MARGIN = 2.0
#: Positions built from one matrix whose buckets hold its energy as if there were fewer than this many buckets of
#: equal energy (_effective_buckets) are not used: nearly all rows summed into one row of S A, by signs and values
#: that only this matrix's rows justify. bench/guard_audit.py's hyperspectral seed 14 (one 96 x 32 band image,
#: m = 10): 70 of 96 rows in one bucket, 1.68 effective buckets, passed the held-out-columns check at 2.48 sd and
#: was 1.21x CountSketch(m, n, seed)'s held-out Err (1.55x the mean random's); over seeds 0-199 of video,
#: hyperspectral and lowrank every other kept sketch has 2.08 or more (video seed 139: 2.08, 0.03x random's), so the
#: bound is thin and measured on that one seed (bench/README.md, nineteenth session).
FEW_BUCKETS = 2.0
COMBINE = ("concat", "mean")



# --------------------------------------------------------------------------- arguments


def _check_matrices(train, name: str = "train") -> list:
    """The training matrices as kernel-ready matrices of one shape, finite and non-empty."""
    items = matrix_list(train, name)
    out = []
    for i, A in enumerate(items):
        A = as_matrix(A, f"{name}[{i}]")
        if min(A.shape) == 0:
            raise ValueError(f"{name}[{i}]: expected a non-empty matrix, got shape {A.shape}")
        if out and A.shape != out[0].shape:
            raise ValueError(f"{name}[{i}]: has shape {A.shape}, but {name}[0] has shape {out[0].shape}")
        data = A.data if is_sparse(A) else A
        if not np.isfinite(data).all():
            raise ValueError(f"{name}[{i}]: contains NaN or infinity")
        out.append(A.tocsr() if is_sparse(A) else A)
    return out


def _blas_threads(mats: list):
    """One BLAS thread when every matrix is small, else BLAS's own choice."""
    if max(A.nnz if is_sparse(A) else A.size for A in mats) < _SMALL_MATRIX:
        return threadpool_limits(limits=1, user_api="blas")
    return nullcontext()


def _kernel_threads(mats: list):
    """One fastlr kernel thread when every matrix is small (see _blas_threads)."""
    if max(A.nnz if is_sparse(A) else A.size for A in mats) < _SMALL_MATRIX:
        return thread_limit(1)
    return nullcontext()


def _check_sizes(m, k, n: int, *, m_name: str = "m") -> tuple[int, int | None]:
    m = check_int(m, m_name, minimum=1, maximum=n)
    if k is not None:
        k = check_int(k, "k", minimum=1)
        if k > m:
            raise ValueError(f"k: must be <= {m_name} (the sketch size), got k={k} > {m_name}={m}")
    return m, k


def _check_seconds(value, name):
    if value is None:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name}: must be None or a number > 0, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- the training matrices


class _Rows:
    """The training matrices (each scaled to sigma_1 = 1) seen through their rows.

    Everything the position and value choices need is a block of the row Gram
    matrix ``G = sum_t A_t A_t^T / s_t^2`` (``s_t`` = sigma_1 of ``A_t``) or
    its leading eigenvectors; ``combine="mean"`` uses the rows of the averaged
    matrix ``mean_t A_t / s_t`` instead (Li et al.'s choice).
    """

    def __init__(self, mats: list, combine: str = "concat"):
        scales = [spectral_norm(A) for A in mats]
        weights = [1.0 / s if s > 0 else 1.0 for s in scales]
        if combine == "mean":
            acc = sum(w * (A.toarray() if is_sparse(A) else A.astype(np.float64)) for w, A in zip(weights, mats))
            self.mats, self.weights = [np.asarray(acc, dtype=np.float64) / len(mats)], [1.0]
        else:
            self.mats, self.weights = mats, weights
        self.n = mats[0].shape[0]
        self._gram = None
        self._sq = None
        self._factor = None

    def block(self, I, J=None) -> np.ndarray:
        """``G[I, J]`` as a dense float64 array (I, J index arrays, J=None: all rows)."""
        if self._gram is not None:  # formed once already (ridge scores): slicing it is n/|I| times cheaper
            return self._gram[np.ix_(I, np.arange(self.n) if J is None else J)]
        out = None
        for w, A in zip(self.weights, self.mats):
            AI = A[I]
            AJ = A if J is None else A[J]
            P = AI @ AJ.T
            P = (P.toarray() if sp.issparse(P) else np.asarray(P)).astype(np.float64, copy=False) * (w * w)
            out = P if out is None else out + P
        return out

    def gram(self) -> np.ndarray:
        if self._gram is None:
            self._gram = self.block(np.arange(self.n))
        return self._gram

    def sqnorms(self) -> np.ndarray:
        """Diagonal of G: each row's energy summed over the training matrices."""
        if self._sq is not None:
            return self._sq
        out = np.zeros(self.n)
        for w, A in zip(self.weights, self.mats):
            out += (w * w) * _row_energy(A)
        self._sq = out
        return out

    def gram_times(self, X: np.ndarray, I=None) -> np.ndarray:
        """``G[I, I] @ X`` without forming G (I=None: all rows)."""
        out = np.zeros_like(X, dtype=np.float64)
        for w, A in zip(self.weights, self.mats):
            AI = A if I is None else A[I]
            Y = AI.T @ X.astype(AI.dtype, copy=False)
            out += (w * w) * np.asarray(AI @ Y, dtype=np.float64)
        return out

    def top_eig(self, r: int, I=None, seed: int = 0, dense: bool | None = None,
                krylov: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Leading r eigenpairs (descending) of ``G[I, I]``: dense eigh when small (or ``dense=True``),
        else (or ``dense=False``) without forming G: ``_SUBSPACE_ITERS`` steps of subspace iteration on r + 10
        columns, or with ``krylov=q``, block Krylov iteration, q passes (_krylov_space)."""
        size = self.n if I is None else len(I)
        r = min(r, size)
        if dense if dense is not None else size <= _DENSE_GRAM:
            if I is not None and self._gram is None and r <= self._columns() < size and not self._sparse():
                return self._top_eig_by_columns(r, I)
            G = self.gram() if I is None else self.block(I, I)
            w, U = scipy.linalg.eigh(G, subset_by_index=[size - r, size - 1])
            return np.maximum(w[::-1], 0.0), U[:, ::-1]
        rng = np.random.default_rng(seed)
        # Oversampling: 10 columns for subspace iteration; 5 per block for Krylov iteration, whose space grows
        # by a block per pass (bench/README.md, fifteenth session: 5 passes of r + 5 as accurate as 9 of r + 10)
        Q = np.linalg.qr(rng.standard_normal((size, min(size, r + (5 if krylov else 10)))))[0]
        if krylov:
            Q, GQ = self._krylov_space(Q, krylov, I)
        else:
            for _ in range(_SUBSPACE_ITERS):
                Q = np.linalg.qr(self.gram_times(Q, I))[0]
            GQ = self.gram_times(Q, I)
        T = Q.T @ GQ
        w, Z = np.linalg.eigh((T + T.T) / 2)
        order = np.argsort(w)[::-1]
        w, U = np.maximum(w[order], 0.0), Q @ Z[:, order]
        if I is None:  # every Ritz pair, oversampling included: G's low-rank factor (factor())
            self._factor = U * np.sqrt(w)
        return w[:r], U[:, :r]

    def _krylov_space(self, X: np.ndarray, passes: int, I=None) -> tuple[np.ndarray, np.ndarray]:
        """(K, G K): K an orthonormal basis of the block Krylov space ``[X, G X, ..., G^(passes-1) X]`` (X
        orthonormal), orthonormalized block by block (_krylov.next_block: blocks that the space no longer
        grows by are dropped), and G K from the same ``passes`` passes over the matrices (gram_times), where
        subspace iteration keeps only its last block. For the same passes its Ritz vectors are far closer to
        G's (C. Musco and C. Musco, NeurIPS 2015; bench/README.md, fifteenth session: the whitened top-15 of
        bigbuckbunny's 50 frames as close in 5 passes as in subspace iteration's 9)."""
        blocks, products = [X], []
        eps = max(float(np.finfo(A.dtype).eps) for A in self.mats)  # the products' rounding
        for step in range(passes):
            products.append(self.gram_times(blocks[-1], I))
            if step + 1 == passes:
                break
            nxt = next_block(np.hstack(blocks), products[-1], eps)
            if nxt is None:  # G's range is exhausted
                break
            blocks.append(nxt)
        return np.hstack(blocks), np.hstack(products)

    def factor(self) -> np.ndarray | None:
        """L (n x R) with ``G ~ L L^T``: the Ritz pairs (all R of them) of the last ``top_eig`` of all rows by
        subspace or Krylov iteration, ``U diag(sqrt(w))``; None when there was none (G small enough to form instead)."""
        return self._factor

    def _columns(self) -> int:
        return sum(A.shape[1] for A in self.mats)

    def _sparse(self) -> bool:
        # Sparse rows orthogonal to a bucket's direction come out exactly 0 from C v but ~1e-17 from G's
        # eigenvectors, and _bucket_values treats exact zeros apart: sparse matrices keep the G path.
        return any(is_sparse(A) for A in self.mats)

    def _top_eig_by_columns(self, r: int, I) -> tuple[np.ndarray, np.ndarray]:
        """``top_eig`` of ``G[I, I] = C C^T`` (C = the rows I of the weighted matrices side by side) when C has
        fewer columns than rows: from the smaller ``C^T C`` (same nonzero eigenvalues; eigenvectors ``C v /
        sqrt(w)``). An eigendecomposition of |I|^3 flops becomes one of D^3 (D the columns): inner-product
        buckets of a tall matrix hold hundreds of rows of a few hundred columns."""
        C = np.hstack([w * (A[I].toarray() if is_sparse(A) else np.asarray(A[I], dtype=np.float64)) for w, A in
                       zip(self.weights, self.mats)])
        D = C.shape[1]
        r = min(r, D)
        w, V = scipy.linalg.eigh(C.T @ C, subset_by_index=[D - r, D - 1])
        w, V = np.maximum(w[::-1], 0.0), V[:, ::-1]
        U = C @ V
        U /= np.where(w > 0, np.sqrt(w), 1.0)
        return w, U


def _row_energy(A) -> np.ndarray:
    """Each row's squared norm, float64."""
    sq = A.multiply(A).sum(axis=1) if is_sparse(A) else np.einsum("ij,ij->i", A, A, dtype=np.float64)
    return np.asarray(sq, dtype=np.float64).ravel()


def _top_vector(rows: _Rows, I: np.ndarray, seed: int) -> np.ndarray:
    """Top eigenvector of ``G[I, I]`` (the bucket's top left singular vector)."""
    if len(I) == 1:
        return np.ones(1)
    w, U = rows.top_eig(1, I, seed)
    u = U[:, 0]
    if w[0] <= 0 or not np.isfinite(u).all():
        return np.zeros(len(I))
    return u


def _top_left(X: np.ndarray) -> np.ndarray:
    """Top left singular vector of a small dense block, unnormalized (zeros when the block is zero): the top
    eigenvector of the smaller of its Gram matrices (``X z`` for z that of ``X^T X``), 4-5x faster than an SVD
    of a bucket's 192 x 100 block of G's factor; squaring the spectrum costs accuracy only between nearly equal top singular values,
    where either vector keeps nearly the same energy."""
    n, r = X.shape
    small = X @ X.T if n <= r else X.T @ X
    w, z = scipy.linalg.eigh(small, subset_by_index=[len(small) - 1, len(small) - 1])
    if not w[0] > 0:
        return np.zeros(n)
    return z[:, 0] if n <= r else X @ z[:, 0]


def _bucket_values(rows: _Rows, h: np.ndarray, m: int, fallback: np.ndarray, seed: int, top=None) -> np.ndarray:
    """Per bucket j: the top left singular vector of the bucket's rows, sign: largest entry positive, scaled to
    RMS 1 (the scale of +-1 values, where learn_sketch's step sizes work). Rows without energy in the training
    data (and buckets without any) keep ``fallback`` (+-1) times the bucket's RMS, so a test matrix's new rows
    still count. ``top(I, j)``: that vector for bucket j's rows I with energy (any scale; zeros: none), by
    default the exact one from ``G[I, I]`` (_top_vector)."""
    top = top or (lambda I, j: _top_vector(rows, I, seed + j))
    values = np.array(fallback, dtype=np.float64)
    order = np.argsort(h, kind="stable")
    bounds = np.searchsorted(h[order], np.arange(m + 1))
    energy = rows.sqnorms()
    for j in range(m):
        I = order[bounds[j] : bounds[j + 1]]
        if len(I) == 0:
            continue
        live = I[energy[I] > 0]
        if len(live) == 0:
            continue
        u = np.array(top(live, j), dtype=np.float64)
        if not np.any(u) or not np.isfinite(u).all():
            continue
        u *= math.copysign(math.sqrt(len(live)) / np.linalg.norm(u), u[np.argmax(np.abs(u))])
        values[live] = u
        dead = I[energy[I] <= 0]
        values[dead] = np.sign(fallback[dead])
        tiny = live[u == 0]
        values[tiny] = np.sign(fallback[tiny])  # orthogonal to the bucket's direction: keep the row
    return values


def _row_share(rows: _Rows) -> float:
    """Participation ratio of the training data's row energies: the share of rows in use (1: all alike)."""
    e = rows.sqnorms()
    total = float(e.sum())
    return total * total / (len(e) * float(e @ e)) if total > 0 else 0.0


def few_rows(mats: list, rows: _Rows | None = None) -> str | None:
    """Why the training matrices' rows say little about new matrices' (None: nothing says so): their energy sits on
    under SPARSE_ROWS of their rows (term-document counts). ``rows``: their _Rows when already built (no second
    spectral-norm pass)."""
    if rows is None:
        with _blas_threads(mats):
            share = _row_share(_Rows(mats))
    else:
        share = _row_share(rows)
    if share < SPARSE_ROWS:
        return f"the training matrices' energy sits on few rows ({share:.1%} of them < {SPARSE_ROWS:.0%}: counts)"
    return None


# --------------------------------------------------------------------------- heavy rows on counts

#: HeavyRowSketch's threshold on training data whose energy sits on few rows (counts). Measured (bench/README.md,
#: twenty-first session; text and text-topic of bench/guard_audit.py, seeds 0-49 then 50-99, m, k = 10, 5 / 6, 5 /
#: 5, 5 / 4, 2): 0.5 kept every learned, mixed and random sketch below random's held-out Err, the class default 1.5
#: left up to 11 seeds in 50 above it at m <= 6 (few rows reach 1.5 ||A||_F^2 / m when m is small), 1.0 up to 8.
COUNTS_THRESHOLD = 0.5


def check_heavy_rows(heavy_rows):
    """``heavy_rows`` ("auto", True or False), or a ValueError."""
    if not (heavy_rows is True or heavy_rows is False or (isinstance(heavy_rows, str) and heavy_rows == "auto")):
        raise ValueError(f"heavy_rows: expected 'auto', True or False, got {heavy_rows!r}")
    return heavy_rows


def heavy_rows_rule(heavy_rows, mats: list, rows: _Rows | None = None) -> tuple[str, float | None] | None:
    """``(reason, threshold)`` when a sketch built from the training matrices ``mats`` goes out wrapped in a
    HeavyRowSketch (threshold None: the class default), None when it is returned plain: learn_sketch's and the
    data-driven sketches' ``heavy_rows`` option, decided here only.

    ``"auto"`` asks the training data the first question the data-driven sketches ask before trusting them
    (few_rows, half of ``fewshot.rows_not_shared``): is their energy on few rows (term-document counts), whose
    heavy rows new matrices (new topics) change? Not the other half (rows used unlike each other,
    ``rows_used_unlike``): it also holds for independent random low-rank matrices, where no row reaches the
    threshold and the wrapper would only cost the row-norm pass, ``to_dense`` and dask's laziness. Frames, bands
    and low-rank data: the plain sketch (bench/README.md, twenty-first session). True: wrapped always (at
    COUNTS_THRESHOLD on counts, else the class default); False: never.
    """
    if heavy_rows is False or (heavy_rows == "auto" and not mats):
        return None
    if mats and (why := few_rows(mats, rows)):
        return f"heavy_rows={heavy_rows!r}: {why}", COUNTS_THRESHOLD
    return ("heavy_rows=True", None) if heavy_rows is True else None


def with_heavy_rows(S: Sketch, rule: tuple[str, float | None] | None) -> Sketch:
    """S, or S wrapped in ``HeavyRowSketch`` by ``rule`` (heavy_rows_rule; its reason recorded on it; at most m // 2
    rows, and m - leaves: a mixed m = 2 sketch keeps one hashed bucket per half). S itself when it has a dense leaf
    (subspace_sketch's, hybrid_sketch's): HeavyRowSketch reserves buckets of CountSketches."""
    if rule is None or not all(isinstance(leaf, CountSketch) for leaf in S.parts()):
        return S
    reason, threshold = rule
    options = {} if threshold is None else {"threshold": threshold}
    H = HeavyRowSketch(S, max_rows=min(S.m // 2, S.m - len(S.parts())), **options)
    H.reason = reason
    return H


def _smoothing_width(A) -> float:
    """Gaussian width (in rows) for smoothing a matrix's columns along the row index, 0 for none.

    The noise variance is estimated from second differences along the rows (``A[i-1] - 2 A[i] +
    A[i+1]``: 6 nu^2 for white noise, little else for smooth columns); a matrix whose estimate is
    over ``ROUGH`` of its energy has no row order to exploit (sparse matrices: none either). The
    width is the largest of ``_WIDTHS`` whose smoothing changes A by at most twice the noise (the noise
    removed plus as much bias again: Morozov's discrepancy principle with tau = 2).
    """
    if is_sparse(A) or A.shape[0] < 3:
        return 0.0
    A = np.asarray(A, dtype=np.float64)
    nu2 = float(np.mean((A[:-2] - 2 * A[1:-1] + A[2:]) ** 2)) / 6
    if not nu2 > 0 or nu2 > ROUGH * float(np.mean(A * A)):
        return 0.0
    width = 0.0
    for w in _WIDTHS:
        if float(np.mean((A - _smooth(A, w)) ** 2)) > 2 * nu2:
            break
        width = w
    return width


def _smooth(A, width: float) -> np.ndarray:
    """A's columns smoothed along the rows by a Gaussian of ``width`` rows (edges: nearest row)."""
    return scipy.ndimage.gaussian_filter1d(np.asarray(A, dtype=np.float64), width, axis=0, mode="nearest")


def _scales(mats: list) -> list[float]:
    """sigma_1 of each matrix (1 for a zero matrix): what _scaled_error divides by."""
    return [s1 if (s1 := spectral_norm(A)) > 0 else 1.0 for A in mats]


def _scaled_error(S, mats: list, k: int, scales: list[float] | None = None) -> float:
    """Mean ||A - SCW(S, A)||_F over the matrices, each scaled to sigma_1 = 1 (``scales``: their
    ``_scales``, when several sketches are compared on the same matrices). S: a sketch, or a list of
    sketches, one per matrix (each judged on its own: held-out parts)."""
    return mean_scaled_error(S, mats, k, _scales(mats) if scales is None else scales)


def _rival_seeds(seed: int) -> list[int]:
    """The seeds of the guard's other random CountSketches (deterministic in seed)."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(RIVALS, np.uint64)]


def _beats_random(S, mats: list, k: int, seed: int) -> bool:
    """Whether S's SCW error on ``mats`` (_scaled_error; S may be one sketch per matrix) is below
    ``CountSketch(m, n, seed)``'s and below the mean of RIVALS other random CountSketches' by MARGIN of
    their standard deviation, each by more than a TIE."""
    m, n = (S[0] if isinstance(S, list) else S).shape
    scales = _scales(mats)  # once for the 18 sketches compared
    ties = rounding_ties([A.dtype for A in mats])  # rounding, not a gain
    err = _scaled_error(S, mats, k, scales)
    if not _below(err, _scaled_error(CountSketch(m, n, seed=seed), mats, k, scales), ties):
        return False
    rivals = np.array([_scaled_error(CountSketch(m, n, seed=s), mats, k, scales) for s in _rival_seeds(seed)])
    return _below(err, rivals.mean() - MARGIN * rivals.std(), ties)


def _below(err: float, bound: float, ties: tuple[float, float]) -> bool:
    """err < bound by more than a rounding tie at the bound's scale."""
    return bool(err < bound - tie_width(ties, bound))


def _random_beats(S, mats: list, k: int, seed: int) -> bool:
    """Whether ``CountSketch(m, n, seed)`` has a lower mean scaled SCW error (_scaled_error) than S on up to JUDGES
    of the training matrices (spread), by more than a rounding tie: S is then worse than the random sketch the user
    had on the very data it was built from, and nothing says it is better on new matrices."""
    m, n = S.shape
    judges = [mats[i] for i in spread(len(mats))]
    scales = _scales(judges)
    random = _scaled_error(CountSketch(m, n, seed=seed), judges, k, scales)
    return _below(random, _scaled_error(S, judges, k, scales), rounding_ties([A.dtype for A in judges]))


def _halves(A) -> list:
    """A's columns in two contiguous halves (neighbouring columns of images and signals are alike: interleaved
    halves would be near copies of each other, not held-out data)."""
    h = A.shape[1] // 2
    return [A[:, :h], A[:, h:]]


def _one_matrix_guard(name: str, build, mats: list, m: int, k: int, seed: int, *, held_out: bool = False):
    """``build(mats)`` (a function: training matrices -> the data-driven sketch), unless it is built from one matrix
    and does not beat random CountSketches (_beats_random): on that matrix, or, with ``held_out``, on held-out data
    instead - the sketch built from each half of the matrix's columns (_halves), judged on the other half; that
    check runs first, so a sketch that falls back is never built from the whole matrix. With ``held_out``, positions
    (a CountSketch) built from the whole matrix must also spread its energy over FEW_BUCKETS buckets or more
    (_effective_buckets). Else ``CountSketch(m, n, seed)`` with a LearnedSketchWarning (_random_instead)."""
    n = mats[0].shape[0]
    if len(mats) != 1:
        return build(mats)
    if held_out and mats[0].shape[1] >= 2:
        parts = _halves(mats[0])
        if not _beats_random([build([parts[1]]), build([parts[0]])], parts, k, seed):
            return _random_instead(name, NOT_HELD_OUT, m, n, seed)
        S = build(mats)
        if type(S) is CountSketch and _effective_buckets(S, mats[0]) < FEW_BUCKETS:
            return _random_instead(name, ONE_BUCKET, m, n, seed)
        return S
    S = build(mats)
    if not _beats_random(S, mats, k, seed):
        return _random_instead(name, NOT_BETTER, m, n, seed)
    return S


def _effective_buckets(S: CountSketch, A) -> float:
    """How many buckets of S hold A's row energy, as a count of equally filled ones: the participation ratio
    ``(sum e_j)^2 / sum e_j^2`` of the energies ``e_j`` of A's rows in each bucket (m when all are equal, 1 when one
    bucket holds everything)."""
    e = np.bincount(S.rows, weights=_row_energy(A), minlength=S.m)
    total = float(e.sum())
    return total * total / float(e @ e) if total > 0 else float(S.m)


def _text_like_instead(name: str, rows: _Rows, m: int, seed: int) -> CountSketch | None:
    """``CountSketch(m, n, seed)`` with a LearnedSketchWarning when the training data use few of their rows
    (_row_share below SPARSE_ROWS: term-document counts, whose heavy rows change with the topic), else None."""
    if _row_share(rows) < SPARSE_ROWS:
        return _random_instead(name, TEXT_LIKE, m, rows.n, seed)
    return None


def _random_instead(name: str, why: str, m: int, n: int, seed: int) -> CountSketch:
    """``CountSketch(m, n, seed)``, with a LearnedSketchWarning (at the user's call) saying why the data-driven
    sketch was not used."""
    warnings.warn(f"{name}: {why}; returning the random CountSketch(m, n, seed)", LearnedSketchWarning,
                  stacklevel=user_stacklevel())
    return CountSketch(m, n, seed=seed)


#: _random_instead's reasons.
TEXT_LIKE = ("the training matrices use few of their rows (term-document counts?), which says little "
             "about new matrices' rows")
NOT_BETTER = ("from one matrix it does not beat random CountSketches there by twice their spread, so "
              "nothing says it will on new matrices")
WORSE_ON_TRAIN = "CountSketch(m, n, seed) has a lower error on the training matrices"
ONE_BUCKET = (f"from one matrix, its positions put that matrix's energy in fewer than {FEW_BUCKETS:g} buckets' worth "
              "(nearly all rows summed into one row of S A), which new matrices' rows need not justify")
NOT_HELD_OUT = ("from one matrix, built from either half of its columns it does not beat random CountSketches on the "
                "other half by twice their spread: it fits that matrix, not new ones")
