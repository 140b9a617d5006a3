"""Learned positions (Li, Lin, Liu, Vakilian and Woodruff, ICLR 2023): ridge leverage scores, inner-product buckets (Alg. 3) and the greedy search (Alg. 2)."""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse as sp

from .._gradients import TrainingMatrix, loss_and_grad
from .._safeguards import spread
from .._validation import (
    UINT64_MAX,
    check_bool,
    check_choice,
    check_int,
    is_sparse,
)
from ..datasets import spectral_norm
from ..heavy_rows import HeavyRowSketch
from ..sketch import CountSketch, StackedSketch, guarded_by_random, keeps_reference
from . import _common
from ._common import (
    COMBINE,
    GUARDS,
    WORSE_ON_TRAIN,
    _blas_threads,
    _bucket_values,
    _check_matrices,
    _check_seconds,
    _check_sizes,
    _one_matrix_guard,
    _random_beats,
    _random_instead,
    _Rows,
    _scales,
    _text_like_instead,
    _top_left,
    check_heavy_rows,
    heavy_rows_rule,
    with_heavy_rows,
)

# --------------------------------------------------------------------------- ridge leverage scores


def _ridge_scores(rows: _Rows, k: int, seed: int) -> np.ndarray:
    energy = rows.sqnorms()
    total = float(energy.sum())
    full = rows.n <= _common._FULL_SCORES
    r = rows.n if full else min(rows.n, 4 * k + 10)
    w, U = rows.top_eig(r, seed=seed, dense=full)
    lam = max(total - float(w[:k].sum()), 0.0) / k
    if lam <= 0:  # rank <= k: the ridge scores are the plain leverage scores of the rank-k column space
        lam = 1e-12 * max(total, 1e-300)
    tau = (U**2) @ (w / (w + lam))
    if r < rows.n:  # the tail directions: sigma^2 / (sigma^2 + lam) <= sigma^2 / lam
        tau += np.maximum(energy - (U**2) @ w, 0.0) / lam
    return np.maximum(tau, 0.0)


def ridge_leverage_scores(train, k: int, *, combine: str = "concat", seed: int = 0) -> np.ndarray:
    """Rank-k ridge leverage scores of the rows of the training matrices.

    ``tau_i = c_i^T (C^T C + lam I)^+ c_i`` for the rows ``c_i`` of the matrices
    side by side (``combine="concat"``) or of their average (``"mean"``), each
    matrix scaled to sigma_1 = 1, with ``lam = ||C - C_k||_F^2 / k``
    (Cohen, Musco and Musco, "Input sparsity time low-rank approximation via
    ridge leverage score sampling", SODA 2017). They sum to at most about 2k.

    Parameters
    ----------
    train : iterable of 2-D arrays or scipy.sparse matrices, one shape (n x d)
    k : int
        Target rank, >= 1.
    combine : {"concat", "mean"}, default "concat"
    seed : int, default 0
        Seeds the subspace iteration used when n > 4096.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    mats = _check_matrices(train)
    k = check_int(k, "k", minimum=1, maximum=mats[0].shape[0])
    check_choice(combine, "combine", COMBINE)
    seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX)
    with _blas_threads(mats):
        return _ridge_scores(_Rows(mats, combine), k, seed)


def sampling_sketch(scores, m: int, *, seed: int = 0) -> CountSketch:
    """A row-sampling sketch as a CountSketch: m rows drawn without replacement with
    probabilities proportional to ``scores``, row j of S picking its row i with weight
    ``1 / sqrt(m p_i)``; the columns of unsampled rows are zero (value 0 in row 0).

    With ridge leverage scores this is the sampler Li et al. (ICLR 2023, Thm 5.1)
    stack below a learned sketch for a worst-case guarantee.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or len(scores) == 0:
        raise ValueError(f"scores: expected a non-empty 1-D array, got shape {scores.shape}")
    if not np.isfinite(scores).all() or (scores < 0).any():
        raise ValueError("scores: must be finite and >= 0")
    n = len(scores)
    m = check_int(m, "m", minimum=1, maximum=n)
    seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX)
    rng = np.random.default_rng(seed)
    picked = _sample(scores, m, rng)
    p = _probabilities(scores)
    rows = np.zeros(n, dtype=np.int64)
    values = np.zeros(n)
    rows[picked] = np.arange(m)
    values[picked] = 1.0 / np.sqrt(m * np.maximum(p[picked], 1e-300))
    return CountSketch.from_arrays(rows, values, m)


def _probabilities(scores: np.ndarray) -> np.ndarray:
    total = scores.sum()
    if total <= 0:
        return np.full(len(scores), 1.0 / len(scores))
    return scores / total


def _sample(scores: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """m distinct indices, drawn with probabilities proportional to scores (uniform among the
    zero-score ones when fewer than m have a positive score)."""
    p = _probabilities(scores)
    positive = np.flatnonzero(p > 0)
    if len(positive) >= m:
        return rng.choice(len(p), size=m, replace=False, p=p)
    rest = rng.permutation(np.flatnonzero(p <= 0))[: m - len(positive)]
    return np.concatenate([positive, rest])



# --------------------------------------------------------------------------- inner-product positions

#: _power_values stops when every bucket's relative eigen-residual at a step's start is at most VALUE_TOL (the
#: energy those values keep is then within about VALUE_TOL^2 of the top eigenvalue's, for a bucket whose top
#: eigenvalue stands apart; the values returned are one step further), or after VALUE_STEPS steps.
VALUE_TOL = 1e-2
VALUE_STEPS = 10
#: Passes over the training matrices of the block Krylov eigensolve behind ``subspace=r`` (G not formed).
WHITEN_PASSES = 5


def _inner_product_positions(rows: _Rows, scores: np.ndarray, m: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(h, signs): m centres sampled by ``scores`` (ridge leverage scores); every row to the centre of
    largest |cosine|, sign = sign of the inner product (+1 for a zero one)."""
    centres = _sample(scores, m, rng)
    X = rows.block(np.arange(rows.n), centres)  # n x m inner products <c_i, c_centre>
    norms = np.sqrt(np.maximum(np.diag(X[centres]), 0.0))
    cos = X / np.where(norms > 0, norms, 1.0)
    h = np.argmax(np.abs(cos), axis=1).astype(np.int64)
    h[centres] = np.arange(m)  # a centre is its own bucket (duplicate rows could tie)
    signs = np.sign(X[np.arange(rows.n), h])
    return h, np.where(signs == 0, 1.0, signs)


def _centre_products(rows: _Rows, h: np.ndarray, v: np.ndarray, m: int) -> np.ndarray:
    """n x m inner products of every row with each bucket's unit centre, the centre of bucket j being
    ``sum_{i in j} v_i c_i`` normalized (c_i: row i of the weighted matrices side by side): ``C (S C)^T``
    (_sketch_products) over the norms of ``S C``'s rows, no Gram matrix."""
    X, norms = _sketch_products(rows, h, v, m)
    return X / np.where(norms > 0, norms, 1.0)


def _sketch_products(rows: _Rows, h: np.ndarray, v: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(``C (S C)^T``, n x m, and the norms of the m rows of ``S C``) for the CountSketch S = (h, v), C the
    weighted matrices side by side: two products per matrix (fastlr's CountSketch kernel, then BLAS or SciPy).

    Both products run in the matrix's dtype, float32 frames in float32 (as _Rows' products): upcasting a
    frame to float64 for every product cost more than the products. The n x m result and the norms add up
    in float64. Per row, the float32 rounding of an inner product of D terms is about ``sqrt(D) 6e-8`` of
    ``|c_i| |centre|``, far below the gaps that decide an argmax on real data (bikes: the same positions as
    in float64, bench/README.md, eleventh session)."""
    S = CountSketch.from_arrays(h, v, m)  # refined buckets hold runs of consecutive rows: the kernel sums a run at once
    X = np.zeros((rows.n, m))
    norms = np.zeros(m)
    for w, A in zip(rows.weights, rows.mats):
        Ct = S @ A  # m x d, dense, in A's dtype (float32 stays float32)
        Ct *= w
        norms += np.einsum("ij,ij->i", Ct, Ct, dtype=np.float64)
        P = A @ Ct.T
        X += w * (P.toarray() if sp.issparse(P) else np.asarray(P))
    return X, np.sqrt(norms)


def _power_values(rows: _Rows, h: np.ndarray, v: np.ndarray, m: int) -> np.ndarray:
    """Power steps ``v_j <- G[j, j] v_j`` on every bucket j at once from the values v (``S C`` then each row's
    product with its own bucket's row of it: one _sketch_products, two products per matrix, per step), until
    every bucket's relative eigen-residual ``||G_jj v_j - rho_j v_j|| / (rho_j ||v_j||)`` (rho_j the Rayleigh
    quotient) at the step's start is at most VALUE_TOL, or VALUE_STEPS steps. Converges to the buckets' top
    eigenvectors (1Shot1Vec's values) from any start not orthogonal to them; a good start (values from G's
    low-rank factor, _Rows.factor) takes one or two steps. Returns the last v, unit on every bucket."""
    n = len(h)
    v = np.array(v, dtype=np.float64)
    for _ in range(VALUE_STEPS):
        X, norms = _sketch_products(rows, h, v, m)
        y = X[np.arange(n), h]
        vv = np.bincount(h, v * v, m)
        rho = norms**2 / np.where(vv > 0, vv, 1.0)
        residual = np.bincount(h, (y - rho[h] * v) ** 2, m)
        size = np.sqrt(np.bincount(h, y * y, m))
        v = y / np.where(size > 0, size, 1.0)[h]  # unit per bucket: no overflow over many steps
        if np.all(residual <= (VALUE_TOL * rho) ** 2 * vv):
            break
    return v


def _refine_buckets(rows: _Rows, h: np.ndarray, signs: np.ndarray, m: int, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd iterations of signed spherical clustering (k-subspace clustering with lines) from the buckets (h, signs).

    Each iteration takes every bucket's centre (the signed, weighted sum of its rows: one power step
    towards the bucket's top right singular vector, from the values of the previous iteration), then
    moves every row to the centre of largest |inner product|, with its value that inner product. Both
    steps raise the energy the centres capture, ``sum_i <c_i, centre_{h_i}>^2``. A bucket left empty takes
    the row the centres explain worst (largest energy off its centre) from a bucket of two or more.
    Stops after ``iters`` iterations or when no row moves."""
    return _lloyd(lambda h, v: _centre_products(rows, h, v, m), rows.sqnorms(), h,
                  np.asarray(signs, dtype=np.float64), m, iters)


def _lloyd(centre_products, energy: np.ndarray, h: np.ndarray, v: np.ndarray, m: int,
           iters: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``iters`` Lloyd iterations of signed spherical clustering from buckets h and values v:
    ``centre_products(h, v)`` gives the n x m inner products of the rows with the buckets' unit
    centres; each row moves to the centre of largest |inner product|, value that inner product; a
    bucket left empty takes the worst-fit row (largest ``energy - v^2``) of a bucket of two or more.
    Stops early when no row moves. Returns (h, signs of v)."""
    for _ in range(iters):
        X = centre_products(h, v)
        new = np.argmax(np.abs(X), axis=1).astype(np.int64)
        v = X[np.arange(len(new)), new]
        counts = np.bincount(new, minlength=m)
        if (counts == 0).any():
            misfit = energy - v * v
            for j in np.flatnonzero(counts == 0):
                donors = np.flatnonzero(counts[new] >= 2)
                i = donors[np.argmax(misfit[donors])]
                counts[new[i]] -= 1
                counts[j] += 1
                new[i], v[i], misfit[i] = j, 1.0, 0.0
        moved = bool(np.any(new != h))
        h = new
        if not moved:
            break
    return h, np.where(v < 0, -1.0, 1.0)


def _whitened_rows(rows: _Rows, r: int, seed: int) -> np.ndarray:
    """U_r: the top-r eigenvectors of the row Gram matrix (left singular vectors of the training matrices side by
    side), directions with (numerically) no energy dropped. Row i's squared norm is its rank-r leverage score."""
    w, U = rows.top_eig(r, seed=seed, dense=rows.n <= _common._FULL_SCORES, krylov=WHITEN_PASSES)
    return U[:, w > 1e-12 * max(float(w[0]), 1e-300)]


def _subspace_positions(F: np.ndarray, m: int, rng, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """(h, signs) by signed spherical clustering of the rows of F (n x r, dense): m centres drawn by the rows'
    squared norms, every row to the centre of largest |cosine|, then ``_lloyd`` with each bucket's centre the
    value-weighted sum of its rows of F."""
    n = len(F)
    energy = np.einsum("ij,ij->i", F, F)
    centres = _sample(energy, m, rng)
    norms = np.linalg.norm(F[centres], axis=1)
    X = F @ (F[centres] / np.where(norms > 0, norms, 1.0)[:, None]).T
    h = np.argmax(np.abs(X), axis=1).astype(np.int64)
    h[centres] = np.arange(m)
    v = X[np.arange(n), h]

    def centre_products(h, v):
        C = np.zeros((m, F.shape[1]))
        np.add.at(C, h, v[:, None] * F)
        norms = np.linalg.norm(C, axis=1)
        return F @ (C / np.where(norms > 0, norms, 1.0)[:, None]).T

    return _lloyd(centre_products, energy, h, v, m, iters)


@guarded_by_random
def inner_product_sketch(train, m: int, k: int, *, values: str = "svd", combine: str = "concat",
                         guard: str | None = None, trials: int = 1, refine: int = 10,
                         subspace: int | None = None, seed: int = 0,
                         heavy_rows="auto") -> CountSketch | StackedSketch | HeavyRowSketch:
    """A CountSketch with data-driven positions: Li et al.'s inner-product algorithm.

    1. Sample m rows (the bucket centres) by the rank-k ridge leverage scores of
       the training matrices side by side (each scaled to sigma_1 = 1).
    2. Every other row goes to the centre it is most parallel to (largest
       ``|<c_i, c_centre>| / ||c_centre||``: parallel rows add up in ``S A``
       instead of cancelling).
    3. Values: ``"svd"`` - each bucket's values are the top left singular vector
       of its rows of all training matrices side by side (the unit vector u
       maximizing ``sum_t ||u^T A_t[bucket]||^2``, the energy the sketch row
       keeps; Indyk, Wagner and Woodruff's 1Shot1Vec rule), scaled to RMS 1;
       ``"sign"`` - +-1, the sign of the inner product with the centre.
       Above 1024 rows (the row Gram matrix G is not formed) the trials are
       ranked with those vectors computed from G's low-rank factor (the Ritz
       pairs of the eigensolve behind the scores or ``subspace``; no pass over
       the matrices), and the kept sketch's are refined by power steps on all
       buckets at once (one pass over the matrices each) until each bucket's
       relative eigen-residual is below 1e-2 (see Notes).

    Parameters
    ----------
    train : iterable of 2-D arrays or scipy.sparse matrices, one shape (n x d)
    m : int
        Sketch size, ``k <= m <= n`` (with ``guard``, the rows of both parts together).
    k : int
        Target rank (sets the ridge of the leverage scores).
    values : {"svd", "sign"}, default "svd"
    combine : {"concat", "mean"}, default "concat"
        Rows of the matrices side by side (the sum of their Gram matrices;
        independent of each matrix's column order), or of their average (the
        paper's choice; right only when columns correspond across matrices).
    guard : {None, "sampler", "countsketch"}
        Stack the m // 2 data-driven rows on m - m // 2 rows that keep a
        worst-case guarantee: a ridge-leverage row sampler (Li et al., Thm 5.1)
        or a random CountSketch (seed + 1), as learn_sketch's mixed sketches.
        When ``CountSketch(m, n, seed)`` has the lower error on (up to 8 of)
        the training matrices, that is returned instead, with a
        ``fastlr.LearnedSketchWarning`` (m = 4 on 12 x 6 matrices: the stack
        was up to 42.7x its held-out Err; bench/README.md, sixteenth session).
    trials : int, default 1
        Draw this many sets of centres and keep the sketch with the lowest
        training loss (mean ``||A - SCW(S, A)||_F`` over 8 training
        matrices evenly spread over ``train``, each scaled to sigma_1 = 1;
        computed as ``||A||_F^2`` minus the top-k energy of ``A V``, V spanning
        the rows of ``S A``): the sampling is random, and its spread is large.
    refine : int, default 10
        Lloyd iterations on the buckets of every draw before the values (0:
        none, the paper's algorithm as published): signed spherical
        clustering of the rows (k-subspace clustering with lines). Each iteration takes every bucket's centre,
        the sum of its rows weighted by their values (one power step towards
        the bucket's top singular vector, i.e. its 1Shot1Vec values), and
        moves every row to the centre of largest ``|inner product|`` (sign
        matched, value that inner product); both steps raise the energy the
        centres keep, ``sum_i <c_i, centre_{h(i)}>^2``, energetic rows
        counting most. A bucket left empty takes the row its centre explains
        worst (largest energy off it) from a bucket of two or more. Stops
        early when no row moves. Each iteration costs two products with the
        training matrices (``S C`` and ``C (S C)^T``). 10 iterations lowered
        held-out Err on every family measured (see Notes).
    subspace : int or None, default None
        r: cluster the rows *whitened* in the training matrices' top-r
        left singular subspace instead of the full rows: the rows of U_r
        (the top-r eigenvectors of ``sum_t A_t A_t^T / s_t^2``, of the
        averaged matrix's Gram matrix with ``combine="mean"``; row i's
        squared norm is its rank-r leverage score), the spectral-clustering
        recipe (Ng, Jordan and Weiss, NIPS 2001) with that Gram matrix as
        affinity. The centres are drawn by those leverage scores (not the
        ridge scores) and the ``refine`` Lloyd iterations run on U_r (n x r,
        no pass over the matrices; the cost is one top-r eigensolve: above 1024
        rows block Krylov iteration, 5 passes over the matrices). SCW's
        error depends on how well ``S U_k`` is conditioned (every one of the
        top directions kept, not only the most energetic), which is what
        the whitening weighs equally; the energy-weighted full-row clustering
        spends the buckets on the first few directions. Values as above.
        Meant as a start for ``learn_sketch(init=...)``; see Notes.
        ``learn_sketch(init="inner_product")`` uses ``subspace=min(2 * k,
        m)`` from two or more matrices. None here by default: alone (without
        trained values) and on generated video the full rows do better, and
        from one matrix the whitened buckets fail the held-out-columns check
        more often (bench/README.md, thirteenth session).

    heavy_rows : "auto", True or False, default "auto"
        As ``fastlr.learn_sketch``'s: ``"auto"`` returns the sketch wrapped in
        ``fastlr.HeavyRowSketch`` (each matrix's heaviest rows get a bucket of
        their own when it is applied; threshold 0.5, at most m // 2 rows) when
        the matrices' energy sits on few rows (term-document counts, where the
        sketch is the random ``CountSketch(m, n, seed)``, see Notes): 0.18 of
        its held-out Err on average (bench/guard_audit.py, text and text-topic,
        m = 10, k = 5, 100 seeds: 0.176 [worst 0.306], 0.178 [0.329]);
        elsewhere the plain sketch (bit for bit). True: always wrapped
        (threshold 1.5 on other data); False: never.

    Returns
    -------
    CountSketch, or StackedSketch with ``guard``; the random CountSketch(m, n, seed) on a fallback; a
    HeavyRowSketch of it when ``heavy_rows`` says so

    Raises
    ------
    ValueError
        If an argument is out of range (``heavy_rows`` not "auto", True or False, ...).

    Notes
    -----
    Measured (bench/README.md, m = 20, k = 10): on the video and hyperspectral
    generators the positions alone (``trials=8``) beat a random CountSketch 5-11x and, with
    their values then trained (``refine_values``), learn_sketch's values-only
    training by 20-68%. On text-like data, where each matrix uses a different
    few of many topics, the buckets group co-occurring rows (one topic each)
    and are worse than random positions (held-out Err 0.8-2.6x random's from
    one matrix, 1.55-1.84x on average; 1.3-3.5x from all 36 of a family;
    eighth session). Such data - row energies on under a tenth of the rows
    (``hybrid_sketch``'s test) - therefore get the random
    ``CountSketch(m, n, seed)`` instead, with a ``fastlr.LearnedSketchWarning``;
    ``greedy_positions`` from it is the data-driven alternative there (0.74-1.00
    of random's Err on text, 5 s).
    From a single training matrix the sketch must also generalize within it:
    built the same way from each contiguous half of the matrix's columns, it
    must beat, by mean rank-k SCW error on the other half (each half scaled to
    sigma_1 = 1), ``CountSketch(m, n, seed)`` and the mean of 16 other random
    CountSketches by twice their standard deviation (``one_shot_sketch``'s
    guard, on held-out columns), else that random CountSketch is returned
    (with the warning). The same guard on the training matrix itself cannot
    see over-fitting: positions always fit the matrix they came from (the first
    frame of a real video, bikes, passed it by 3-7 sd and was 0.73-1.52x
    random's Err on later frames). Measured (bench/README.md, ninth session;
    one matrix, 14 families x 8 seeds): held-out Err at most random's in every
    case (was up to 1.52x); the first bikes frame now falls back in 7 of 8
    seeds (the kept one: 0.86x); the gain is kept on hyperspectral, the real
    frames' other cases and bigbuckbunny (0.1-0.4x random's), and lost where
    the halves of a small matrix differ (generated video: 1 of 8 seeds; its
    600 x 60 shift variant: 4 of 8, mean 0.16 -> 0.57). Contiguous halves,
    not interleaved columns: neighbouring columns of an image are near copies.
    A check, not a guarantee: judged on frames of another scene (a 120 x 24
    generated video, 6 seeds) it still kept positions 1.12x and 1.31x random's.
    It costs two builds on half the columns and 36 SCW errors on them (the
    on-matrix check's 18 on the whole matrix are no longer computed): 1.5x the
    CPU time from a 3840 x 720 frame (0.60 -> 0.91 s; 8 trials 1.39 -> 2.43 s).
    Positions that pass it are also returned only when the matrix's row energy
    fills at least 2 buckets' worth (the participation ratio of the buckets'
    energies): one 96 x 32 hyperspectral band with 70 of its 96 rows in one
    bucket (1.68) passed the halves check at 2.48 sd and was 1.21x random's
    Err on other bands (bench/guard_audit.py seed 14; every other kept sketch
    in 200 seeds of video, hyperspectral and lowrank had 2.08 or more: a thin
    bound, bench/README.md, nineteenth session).
    ``hybrid_sketch`` from one matrix stayed below random on every image family
    measured (first bikes frame: 0.65 of random's Err on average).

    The centres are rows drawn by leverage, and which draw generalizes is luck
    (real video, bikes: 94 frames, 31 later frames held out, m = 20, k = 10,
    ``trials=8``, 8 seeds: 0.17-0.38 of random's held-out Err). ``refine=10``
    moves the centres to where the rows are (bench/README.md, eleventh
    session): 0.271 -> 0.166 of random's Err on average, worst seed 0.380 ->
    0.195, against 0.285 (worst 0.359) for learn_sketch's values-only
    training (values trained from the refined start: 0.166, no change); from
    16 of the frames, 1 trial: 0.209 (worst 0.258) in 0.5 s CPU, from 12: 0.193
    (worst 0.251) in 0.4 s, against 4.5-7.9 s for values-only. bigbuckbunny
    (3840 x 720, 2 seeds): 0.087 -> 0.057 (values-only 0.048). Generated
    video / video-time / hyperspectral (bench/learn_shift.py's families, 5
    seeds): 0.115 / 0.132 / 0.210 ->
    0.088 / 0.079 / 0.185 from all training matrices, 0.653 / 0.152 / 0.322
    -> 0.281 / 0.096 / 0.303 from one (the held-out guard still applies; text
    still falls back). On by default for that; its cost: ``trials=8`` took
    5.4 -> 10.3 s CPU on bikes, 21 -> 34 s on bigbuckbunny (two passes over
    the matrices per iteration, per trial); ``refine=0`` gives the paper's
    positions.

    ``subspace=r`` (bench/README.md, twelfth session;
    bench/learn_real_positions.py): on bigbuckbunny, where learn_sketch's
    values-only training beat the full-row refined start (8 seeds, 16 later
    frames held out), ``learn_sketch(init=inner_product_sketch(train, 20,
    10, subspace=20, refine=30))`` reached 0.036 of random's held-out Err on
    average (worst seed 0.042) against 0.047 (worst 0.058) for values-only,
    lower on every seed (by 12-37%), in about values-only's CPU time (the
    positions: 5 s of it); ``subspace=15``: 0.035 (worst 0.043); with
    ``subspace=15, trials=8`` (refine 10; thirteenth session) 0.033 (worst
    0.037): 31% below values-only on average, 36% on the worst seed, in
    values-only's CPU time (28 s). One trial's positions alone are not
    enough (0.053-0.068); 8 trials' are 0.046 (worst 0.052). r matters (4 seeds, with
    values): r = 10 / 15 / 20 / 25 / 30 / 40 gave 0.040 / 0.035 / 0.037 /
    0.044 / 0.051 / 0.054; about k to 2k. On bikes the positions alone do
    it: ``subspace=20`` from 12 frames spread over the 94, 0.175 (worst
    0.195, 8 seeds) in 0.2-0.3 s CPU, against values-only's 0.285 (worst
    0.359) in 5-9 s.

    Above 1024 rows (bench/README.md, fifteenth session): the trials' values
    from G's low-rank factor rank them as the exact ones do (same kept trial
    on the 3 seeds checked, 1 - cos < 1e-5 per bucket), one power step (the start's
    residual below 1e-2) brings the kept sketch's values within 1e-4 of the
    exact ones, and the block Krylov eigensolve finds the whitened subspace as
    accurately in 5 passes as subspace iteration in 9. bigbuckbunny,
    ``subspace=15, trials=8``, 8 seeds: 16.1 -> 2.5 s CPU (values-only: 29.7
    s), held-out Err 0.0458 -> 0.0453 (worst 0.0518 -> 0.0494); per seed
    the same or lower except +0.00001 on one.

    References
    ----------
    Y. Li, H. Lin, S. Liu, A. Vakilian, D. P. Woodruff, "Learning the Positions
    in CountSketch", ICLR 2023 (Algorithm 3 and Theorem 5.1).
    P. Indyk, T. Wagner, D. P. Woodruff, "Few-Shot Data-Driven Algorithms for
    Low Rank Approximation", NeurIPS 2021.
    A. Y. Ng, M. I. Jordan, Y. Weiss, "On Spectral Clustering: Analysis and an
    Algorithm", NIPS 2001 (``subspace``).
    """
    mats = _check_matrices(train)
    n = mats[0].shape[0]
    m, k = _check_sizes(m, k, n)
    check_choice(values, "values", ("svd", "sign"))
    check_choice(combine, "combine", COMBINE)
    check_choice(guard, "guard", GUARDS)
    trials = check_int(trials, "trials", minimum=1)
    refine = check_int(refine, "refine", minimum=0)
    subspace = None if subspace is None else check_int(subspace, "subspace", minimum=1)
    seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX - 1)
    if guard is not None and m < 2:
        raise ValueError(f"m: a guarded sketch needs m >= 2 (half data-driven, half guard), got {m}")
    heavy_rows = check_heavy_rows(heavy_rows)
    with _blas_threads(mats):
        rows = _Rows(mats)
        rule = heavy_rows_rule(heavy_rows, mats, rows)
        if (S := _text_like_instead("inner_product_sketch", rows, m, seed)) is not None:
            return with_heavy_rows(S, rule)

        def build(parts):
            part_rows = rows if parts is mats and combine == "concat" else _Rows(parts, combine)
            return _inner_product(parts, part_rows, m, k, values=values, guard=guard, trials=trials,
                                  refine=refine, subspace=subspace, seed=seed)

        S = _one_matrix_guard("inner_product_sketch", build, mats, m, k, seed, held_out=True)
        # A guarded sketch is m // 2 data-driven rows on m - m // 2 of a sampler or another random draw: at small m
        # the user's own random CountSketch(m, n, seed), all m rows random, can be the better sketch, and was
        # (12 x 6 matrices, m = 4: up to 42.7x its held-out Err; bench/README.md, sixteenth session).
        if guard is not None and type(S) is not CountSketch and _random_beats(S, mats, k, seed):
            S = _random_instead("inner_product_sketch", WORSE_ON_TRAIN, m, n, seed)
        return with_heavy_rows(S, rule)


def _inner_product(mats: list, rows: _Rows, m: int, k: int, *, values: str = "svd", guard: str | None = None,
                   trials: int = 1, refine: int = 0, subspace: int | None = None,
                   seed: int = 0) -> CountSketch | StackedSketch:
    """inner_product_sketch without its checks and fallbacks (hybrid_sketch's sparse part)."""
    n = rows.n
    m_data = m if guard is None else m // 2
    F = None if subspace is None else _whitened_rows(rows, subspace, seed)
    scores = _ridge_scores(rows, min(k, m_data), seed) if F is None else None
    # G too large to form: the trials' values come from its low-rank factor (the Ritz pairs of the eigensolve
    # above), the winner's are then refined by power steps (_power_values).
    factor = rows.factor() if values == "svd" else None
    rng = np.random.default_rng(seed)
    judges = _Judges(mats, rows, min(k, m_data)) if trials > 1 else None
    best = math.inf
    for _ in range(trials):
        if F is not None:
            h, signs = _subspace_positions(F, m_data, rng, refine)
        else:
            h, signs = _inner_product_positions(rows, scores, m_data, rng)
            if refine:
                h, signs = _refine_buckets(rows, h, signs, m_data, refine)
        if values == "sign":
            vals = signs
        elif factor is None:
            vals = _bucket_values(rows, h, m_data, signs, seed)
        else:
            vals = _bucket_values(rows, h, m_data, signs, seed, top=lambda I, j: _top_left(factor[I]))
        candidate = CountSketch.from_arrays(h, vals, m_data)
        loss = judges.loss(candidate) if judges is not None else 0.0
        if loss < best:
            best, S, fallback = loss, candidate, signs
    if factor is not None:
        power = _power_values(rows, S.rows, S.values, m_data)
        S = CountSketch.from_arrays(S.rows, _bucket_values(rows, S.rows, m_data, fallback, seed,
                                                           top=lambda I, j: power[I]), m_data)
    if guard is None:
        return S
    if guard == "countsketch":
        return StackedSketch([S, CountSketch(m - m_data, n, seed=seed + 1)])
    return StackedSketch([S, sampling_sketch(_ridge_scores(rows, k, seed), m - m_data, seed=seed + 1)])



class _Judges:
    """What ranks inner_product_sketch's trials: up to 8 training matrices spread over train (the first 8 of a
    time-ordered set are the ones furthest from what comes next: on real video they picked worse positions),
    prepared once. ``loss(S)``: the mean ``||A - SCW(S, A)||_F / sigma_1(A)``, from ``||A||_F^2`` minus the top-k
    energy of ``A V`` (V spanning the rows of S A): the learned-sketch training loss (_gradients.loss_and_grad,
    without its gradient), S A, one product ``A V`` and small problems per matrix, no residual formed. The guards'
    ``evaluation.mean_scaled_error`` (the same quantity, residual formed) took 2.6x (8 video frames 9600 x 40),
    3.6x (4000 x 300) and 13x (sparse text 16000 x 60) this CPU time per trial (bench/README.md, seventeenth
    session). Here trials are only ranked against each other, never against random by a rounding tie: where this
    route's rounding (~1e-8 of ||A||) decides, every trial is exact, and which one wins does not matter."""

    def __init__(self, mats: list, rows: _Rows, k: int):
        picks = spread(len(mats))
        self.ops = [TrainingMatrix(mats[i]) for i in picks]
        # The rows' weights are 1 / sigma_1 of these very matrices (side by side): no second eigensolve.
        same = rows.mats is mats
        self.scales = [1.0 / rows.weights[i] for i in picks] if same else _scales([mats[i] for i in picks])
        self.k = k

    def loss(self, S: CountSketch) -> float:
        return sum(loss_and_grad(op, None, self.k, S.rows, S.values.astype(op.dtype), S.m, want_grad=False)[0] / s1
                   for op, s1 in zip(self.ops, self.scales)) / len(self.ops)


# --------------------------------------------------------------------------- greedy positions


class _GreedyLoss:
    """Mean over training matrices of ||A - SCW(S, A)||_F (A scaled to sigma_1 = 1) for many
    candidate sketches at once, from the d x d Gram matrices ``K = A^T A``:
    ``||A - SCW||^2 = ||A||^2 - sum of the top k eigenvalues of V^T K V``, V the row space of S A."""

    def __init__(self, mats: list, k: int):
        self.k = k
        self.dense = []
        self.K = []
        self.sq = []
        for A in mats:
            s1 = spectral_norm(A)
            s1 = s1 if s1 > 0 else 1.0
            D = (A.toarray() if is_sparse(A) else np.asarray(A)).astype(np.float64) / s1
            self.dense.append(D)
            self.K.append(D.T @ D)
            self.sq.append(float(np.sum(D * D)))
        self.K = np.stack(self.K)  # N x d x d
        self.sq = np.array(self.sq)

    def sketches(self, rows, values, m) -> np.ndarray:
        """S A_t for all t: N x m x d."""
        out = np.zeros((len(self.dense), m, self.dense[0].shape[1]))
        for t, D in enumerate(self.dense):
            np.add.at(out[t], rows, values[:, None] * D)
        return out

    def losses(self, M: np.ndarray) -> np.ndarray:
        """M: (..., N, m, d) sketched matrices -> (...) mean loss."""
        _, s, Vt = np.linalg.svd(M, full_matrices=False)
        tol = np.max(M.shape[-2:]) * np.finfo(np.float64).eps * s[..., :1]
        Vt = Vt * (s > tol)[..., None]
        T = np.einsum("...id,...de,...je->...ij", Vt, self.K, Vt, optimize=True)
        w = np.linalg.eigvalsh(T)[..., ::-1][..., : self.k]
        err2 = np.maximum(self.sq - w.sum(axis=-1), 0.0)
        return np.sqrt(err2).mean(axis=-1)

    def moves(self, B: np.ndarray, a: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Mean loss of every candidate ``M_c = B + weights[c] e_{targets[c]} a^T`` (for each matrix t:
        B[t] is m x d, a[t] a row of length d) without an SVD of any m x d candidate.

        With ``B = U diag(s) V^T`` (one SVD per matrix) and ``z`` the unit part of a orthogonal to
        V's columns, every candidate is ``M_c = R_c [V z]^T``, where R_c (m x (r + 1)) is
        ``[U diag(s), 0]`` plus ``weights[c] [V^T a, z^T a]`` in row ``targets[c]``: its row space is
        ``[V z] Y_c`` with Y_c from the SVD of the small R_c, and the top-k energy of A V_c is that
        of ``Y_c^T ([V z]^T K [V z]) Y_c``.
        """
        U, s, Vt = np.linalg.svd(B, full_matrices=False)  # N x m x r, N x r, N x r x d
        eps = np.finfo(np.float64).eps
        keep = s > max(B.shape[-2:]) * eps * s[:, :1]
        s = s * keep
        V = np.swapaxes(Vt, -1, -2) * keep[:, None, :]  # N x d x r, dropped directions zeroed
        Va = np.einsum("tdr,td->tr", V, a)
        perp = a - np.einsum("tdr,tr->td", V, Va)
        norm = np.linalg.norm(perp, axis=1)
        live = norm > 1e3 * eps * np.maximum(np.linalg.norm(a, axis=1), 1e-300)
        z = perp * np.where(live, 1.0 / np.where(live, norm, 1.0), 0.0)[:, None]
        Z = np.concatenate([V, z[:, :, None]], axis=2)  # N x d x (r + 1)
        H = np.swapaxes(Z, -1, -2) @ (self.K @ Z)  # N x (r + 1) x (r + 1)
        H = (H + np.swapaxes(H, -1, -2)) / 2
        g = np.concatenate([Va, (norm * live)[:, None]], axis=1)  # N x (r + 1)
        R0 = np.concatenate([U * s[:, None, :], np.zeros(U.shape[:2] + (1,))], axis=2)  # N x m x (r + 1)
        R = np.repeat(R0[None], len(targets), axis=0)
        R[np.arange(len(targets)), :, targets, :] += weights[:, None, None] * g[None]
        # Row space of R_c: eigenvectors of R_c^T R_c (an SVD of each small R_c costs 5x more in
        # LAPACK call overhead); directions below sqrt(eps) sigma_1 are lost in the squares, where SCW
        # keeps those above max(m, d) eps sigma_1: the loss of a (near) rank-deficient candidate is
        # overestimated, never underestimated. greedy_positions checks its result exactly.
        e, Y = np.linalg.eigh(np.swapaxes(R, -1, -2) @ R)
        Y = Y * (e > 1e3 * eps * e[..., -1:])[..., None, :]
        T = np.swapaxes(Y, -1, -2) @ H[None] @ Y
        w = np.linalg.eigvalsh(T)[..., ::-1][..., : self.k]
        err2 = np.maximum(self.sq - w.sum(axis=-1), 0.0)
        return np.sqrt(err2).mean(axis=-1)


@keeps_reference
def greedy_positions(train, S: CountSketch, k: int, *, max_time: float | None = 10.0,
                     max_columns: int | None = None, candidates: int | None = None, passes: int = 1,
                     signs: bool = True) -> CountSketch | HeavyRowSketch:
    """Improve a CountSketch's positions greedily (Li et al., ICLR 2023, Algorithm 2).

    Columns are visited in order of their rows' training energy (largest
    first); column i is moved to the row (and, with ``signs``, the sign) among
    the candidates that gives the lowest mean training loss
    ``||A - SCW(S, A)||_F`` (each A scaled to sigma_1 = 1), keeping |value|;
    it stays where it is unless a move lowers the loss. A move changes two rows
    of every ``S A_t`` (a rank-1 update), and every candidate's loss comes from
    one SVD of the m x d ``S A_t`` without column i, the d x d Gram matrix
    ``A_t^T A_t`` and small (m x m) problems: no pass over A and no m x d SVD
    per candidate. The search stops after ``max_time`` seconds, ``max_columns``
    columns or ``passes`` passes over all columns, whichever comes first.

    Parameters
    ----------
    train : iterable of 2-D arrays or scipy.sparse matrices
        Densified, with a d x d Gram matrix each: cost and memory grow with
        their number; a few (e.g. 8) are usually enough.
    S : CountSketch, or a HeavyRowSketch of one
        The start (e.g. ``inner_product_sketch(...)`` or ``CountSketch(m, n)``).
    k : int
        Target rank, ``1 <= k <= min(m, n, d)``.
    max_time : float or None, default 10.0
        Seconds (None: no limit).
    max_columns : int or None
        Columns to visit in all (None: no limit).
    candidates : int or None
        Rows to try per column: the ``candidates`` rows of ``S A_t`` most
        parallel to the column's rows (summed over t), plus its current row;
        None tries all m rows.
    passes : int, default 1
        Passes over all columns.
    signs : bool, default True
        Also try the opposite sign at every row.

    Returns
    -------
    CountSketch (new; S is not modified). Its training loss is never higher
    than S's (checked with exact SVDs at the end). For a HeavyRowSketch S
    (what the data-driven sketches return on counts, ``heavy_rows``): its
    base's positions are improved and the result wrapped by the same rule.

    References
    ----------
    Y. Li, H. Lin, S. Liu, A. Vakilian, D. P. Woodruff, "Learning the Positions
    in CountSketch", ICLR 2023.
    """
    if isinstance(S, HeavyRowSketch):
        return S.rebased(greedy_positions(train, S.base, k, max_time=max_time, max_columns=max_columns,
                                          candidates=candidates, passes=passes, signs=signs))
    if not isinstance(S, CountSketch) or type(S).apply is not CountSketch.apply:
        raise TypeError(f"S: expected a plain CountSketch, got {type(S).__name__}")
    mats = _check_matrices(train)
    n = mats[0].shape[0]
    if n != S.n:
        raise ValueError(f"train: matrices have {n} rows but S is {S.m} x {S.n}")
    k = check_int(k, "k", minimum=1, maximum=min(S.m, *mats[0].shape))
    budget = _check_seconds(max_time, "max_time")
    max_columns = math.inf if max_columns is None else check_int(max_columns, "max_columns", minimum=0)
    m = S.m
    candidates = m if candidates is None else min(m, check_int(candidates, "candidates", minimum=1))
    passes = check_int(passes, "passes", minimum=1)
    signs = check_bool(signs, "signs")
    with _blas_threads(mats):
        start = time.perf_counter()
        loss = _GreedyLoss(mats, k)
        rows, values = S.rows.copy(), S.values.copy()
        M = loss.sketches(rows, values, m)  # N x m x d
        first = best = float(loss.losses(M))
        energy = sum(np.einsum("ij,ij->i", D, D) for D in loss.dense)
        order = np.argsort(-energy, kind="stable")
        visited = 0
        for _ in range(passes):
            moved = False
            for i in order:
                if visited >= max_columns or time.perf_counter() - start > budget:
                    break
                visited += 1
                v = abs(values[i]) or 1.0
                a = np.stack([D[i] for D in loss.dense])  # N x d
                B = M.copy()
                B[:, rows[i]] -= values[i] * a
                if candidates < m:
                    norms = np.linalg.norm(B, axis=2)  # N x m
                    cos = np.abs(np.einsum("tmd,td->tm", B, a)) / np.where(norms > 0, norms, 1.0)
                    targets = np.union1d(np.argsort(-cos.sum(axis=0), kind="stable")[:candidates], rows[i])
                else:
                    targets = np.arange(m)
                targets = np.tile(targets, 2) if signs else targets
                weights = np.repeat([v, -v] if signs else [v], len(targets) // (2 if signs else 1))
                trial = loss.moves(B, a, targets, weights)
                j = int(np.argmin(trial))
                if trial[j] < best * (1 - 1e-9) and (targets[j] != rows[i] or weights[j] != values[i]):
                    best, moved = float(trial[j]), True
                    rows[i], values[i] = targets[j], weights[j]
                    B[:, targets[j]] += weights[j] * a
                    M = B
            if not moved:
                break
        if float(loss.losses(M)) > first:  # the small-problem losses can only err near rank deficiency
            return CountSketch.from_arrays(S.rows, S.values, m)
        return CountSketch.from_arrays(rows, values, m)
