"""The block Krylov range finder of randomized_svd's default path on in-memory tall matrices.

Subspace iteration keeps only its last block, ``(A^T A)^q Omega``; block Krylov iteration keeps
them all, ``K = [Omega, G Omega, ..., G^q Omega]`` (G = A^T A, orthonormalized block by block),
and takes the best rank-k approximation with rows in span(K) (Rayleigh-Ritz on ``A K``). The
space holds every polynomial of degree <= q in G, Chebyshev's among them, so it needs about the
square root of subspace iteration's steps for the same accuracy (C. Musco and C. Musco,
"Randomized block Krylov methods for stronger and faster approximate singular value
decomposition", NeurIPS 2015). Each step is one pass over A that returns ``A V`` and
``A^T A V`` together (``InMemory.power_pass``); the ``A V`` are the columns of ``A K``, so the
Rayleigh-Ritz step needs one more pass, for the last block only: ``2 q + 1`` passes of width l
where scikit-learn's n_iter steps take ``2 n_iter + 2``. ``krylov_depth`` maps n_iter to q.

Steps are fused unless the Ritz values at the end say that their rounding shows; then the space
is built again in two-pass steps, ``A V`` then ``A^T W`` with W the LU basis of ``A V``
(``Operand.normalized_power_pass``): the fused ``A^T (A V)`` rounds to eps * sigma_1^2, which
hides directions below sqrt(eps) * sigma_1 (3e-4 in float32; see ``Operand.last_power_step``).
float32 took the two-pass steps always until the eighth session; the test is the same as
float64's (``memory.rounding_shows`` with float32's eps: 1e4:1 spectra are built again).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

from ._linalg import normalize, orthonormal, peak, power_of_two
from ._matrix import InMemory
from ._matrix.choice import NARROW_LEVELS, decided
from ._matrix.centered import Centered
from ._matrix.memory import representable, ritz_tail, rounding_shows
from .scw import SCWFactors

__all__ = ["krylov_applies", "krylov_block", "krylov_depth", "krylov_factors", "narrow_blocks_miss", "next_block"]

_EPS64 = float(np.finfo(np.float64).eps)


def krylov_depth(n_iter: int) -> int:
    """Krylov blocks beyond the start for scikit-learn's ``n_iter``: the smaller of
    ``(n_iter + 3) // 2`` and ``ceil(sqrt(2 n_iter + 2))`` (0 -> 1, 1 -> 2, 2 -> 2, 4 -> 3,
    7 -> 4, 15 -> 6): the depth at which the space is at least as good as subspace iteration's on
    every tested spectrum (worst of 20-100 seeds, 1/i, 1/sqrt(i), 1/i^0.2, 0.9^i, 1e4:1, clusters
    and gaps at k; bench/README.md, seventh session). n_iter = 0 gives [Omega, G Omega], which holds
    the one step of the subspace path.

    Not shallower with little oversampling (k = 50, l = 60): one block less passed on 1/i spectra
    (700 x 600, 1000 x 900) but lost to scikit-learn on flat ones, 1.55x on sigma_i falling 10:1 over
    900 (1000 x 900) and 1.22x on 1e4:1 over 1800 (2400 x 1800), worst of 4 seeds (eighth session).
    """
    return min((n_iter + 3) // 2, math.ceil(math.sqrt(2 * n_iter + 2)))


#: Bytes of the dense kernel's register tile row at x86-64-v3: two 256-bit vectors
#: (products_simd.hpp), 16 float32 or 8 float64 columns in one sweep of A's rows.
_V3_TILE_BYTES = 64
#: Columns in whole tiles of either dtype (one float32 tile, two float64 ones): l = 17-20 adds a sweep
#: of one vector or less (float32 half vectors, float64 one vector; fused ``A^T (A V)`` on 5760 x 1080
#: float64: 10.3 ms at 16 columns, 14.8 at 20; fifteenth session).
_V3_WHOLE_TILES = 16


def _narrow_tile(op) -> int | None:
    """Columns of one 64-byte block (x86-64-v3's fused-kernel register tile) where the narrow-block rules may
    apply: dense in-memory A where this machine's calibration chose them (``choice.decided``; where nothing was
    measured, at ``choice.NARROW_LEVELS``; BLAS passes' cost does not step; PCA's centred operand keeps its l-wide
    blocks); else None."""
    if type(op) is not InMemory or op.sparse or not decided("narrow", NARROW_LEVELS):
        return None
    return _V3_TILE_BYTES // np.dtype(op.dtype).itemsize


def _narrow_depth(q: int, l: int, tile: int) -> int:
    """Depth of the tile-wide Krylov space standing in for an l-wide one of depth q: one block more
    for each tile's worth of l past the first (``ceil(l / tile) - 1``), so the space reaches about l
    columns one block after the start, with q blocks beyond that for the polynomials' degree."""
    return q + -(-l // tile) - 1


def krylov_block(op, k: int, l: int, n_iter: int) -> tuple[int, int]:
    """(b, q): the block width and the depth of the Krylov space; (l, ``krylov_depth(n_iter)``) but
    where narrower blocks, deeper, are both cheaper and at least as accurate.

    At x86-64-v3 the fused kernel swept A's rows once per 16 float32 columns, and a remainder of a
    quarter of that (l = 17-20) took one more sweep on half vectors, load-bound on the broadcasts
    of A's entries: ``A^T (A V)`` on 5760 x 1080 float32 took 5.3 ms at 16 columns and 9.3 ms at
    20 (an AVX2 Zen 2; 10.0 at 32; 7.4 at 20 since the sixteenth session's one-sweep split tiles, after
    which the rule still saves 5-6% at float32 k = 10 and ~4% at float64 k = 10). There, blocks of b = 16 columns with one Krylov block more
    (2 q + 3 passes of 16 columns where 2 q + 1 took 20: 29 against 42 ms at k = 10, n_iter = 7)
    gave a space of about the same size ((q + 2) b = 96 against 100) holding polynomials of one
    degree higher, as accurate or more on every spectrum tried, up to float32's rounding floor
    (bench/krylov_block_ab.py; bench/README.md, fifteenth session). Only for dense in-memory A on the
    fused kernel at x86-64-v3 (and v4: ``_narrow_tile``) and when b keeps at least half of the oversampling
    l - k. float64 the same way, 16 columns being two of its tiles (5760 x 1080, k = 10: 71.7 against 81.9 ms, worst excess of 3
    seeds 3.1e-14 against 1.5e-12; sixteenth session).

    float32 A on the Gram route (``krylov_applies``: where the narrow passes cost well under the
    SYRK of A^T A) takes tile-wide blocks whatever l is, ``_narrow_depth`` deep (k = 50, l = 60,
    n_iter = 7: 8 blocks of 16, a 128-column space of degree 7; bench/README.md, sixteenth session).
    """
    q = krylov_depth(n_iter)
    tile = _narrow_tile(op)
    if tile is None or not op._kernel_for("gram", tile):  # BLAS's cost does not step so
        return l, q
    if op.dtype == np.float32 and op._gram_pays(l, n_iter):
        depth = _narrow_depth(q, l, tile) + 2
        return (tile, depth) if _narrow_pays(op.shape[1], l, tile, depth) else (l, q)
    b = _V3_WHOLE_TILES
    if not b < l <= b + b // 4 or 2 * (b - k) < l - k or not op._kernel_for("gram", l):
        return l, q
    return b, _narrow_depth(q, l, b)


def _narrow_pays(d: int, l: int, b: int, q: int, share: float | None = None) -> bool:
    """Whether b-wide blocks, q beyond the start, cost less than the Gram route on float32 A with d
    columns: the passes and the Rayleigh-Ritz step, counted in multiply-adds per row of A,
    ``(2 q + 1) b d + (b (q + 1))^2``, under NARROW_SHARE of the route's SYRK and final ``A V``,
    ``d^2 / 2 + l d`` (5760 x 1080, k = 50: a share of 0.55 took 0.74 of the time); ``share``: another
    share than NARROW_SHARE."""
    share = NARROW_SHARE if share is None else share
    return (2 * q + 1) * b * d + (b * (q + 1)) ** 2 <= share * (d * d / 2 + l * d)


#: The narrow finder's share of the Gram route's count under which it replaces it (see ``_narrow_pays``).
NARROW_SHARE = 0.6


def krylov_applies(op, l: int, n_iter: int) -> bool:
    """Whether the Krylov finder serves (l columns per block): in-memory tall A where it
    costs less than the power steps it replaces, counted in multiply-adds per row of A, with its
    Rayleigh-Ritz step on the n x l (q + 1) ``A K`` (about (l (q + 1))^2: on sparse A with a few
    entries per row that step cost 2.5-3.7x the passes saved). Against the Gram route (narrow dense
    A: one SYRK, d^2 / 2, then small d x d products) by the same count in float64 only (100000 x 500,
    k = 10: 568 vs 601 ms; 5760 x 1080, k = 50 keeps the Gram route: 203 vs 190 ms at q = 4). float32
    keeps the Gram route there: its Krylov space was as fast at v4 (98 vs 111 ms at k = 50, q = 3) but not at v3, and a
    1e4:1 spectrum at k = 50 came out 1.3e-6 off at every depth, fused or two-pass (the Gram route
    1.5e-8, scikit-learn 5e-9; the Rayleigh-Ritz step on float32's n x l (q + 1) A K), bench/README.md,
    eighth session. Since the sixteenth session float32 leaves it at x86-64-v3 (and v4) where 16-column blocks
    pay (``krylov_block``; their result checked in ``krylov_factors``)."""
    memory = op.inner if isinstance(op, Centered) else op  # PCA's centered A: the same passes
    if type(memory) is not InMemory or l >= op.shape[1]:
        return False
    n, d = op.shape
    q = krylov_depth(n_iter)
    rayleigh_ritz = (l * (q + 1)) ** 2
    if memory._gram_pays(l, n_iter):
        if op.dtype == np.float32:  # narrow blocks where they pay (krylov_block)
            return krylov_block(op, l, l, n_iter)[0] < l
        return op.dtype == np.float64 and (2 * q + 1) * d * l + rayleigh_ritz < d * d / 2 + d * l
    row_entries = memory.parts[2].size / max(n, 1) if memory.sparse else d
    saved = 2 * (n_iter + 1 - q)  # passes of width l subspace iteration takes beyond Krylov's
    return saved > 0 and row_entries * l * saved >= 4 * rayleigh_ritz


def krylov_factors(op: InMemory | Centered, k: int, l: int, n_iter: int, seed: int, driver: str):
    """SCW factors (``scw.SCWFactors``) of the Rayleigh-Ritz step on the block Krylov space of A.

    Steps are fused; when the Ritz values at the end say their rounding (eps * sigma_1^2) could
    show in the rank-k error (``memory.rounding_shows``: wanted directions near sqrt(eps) sigma_1,
    exactly low-rank input), the space is built again with two-pass steps.
    None when a product is not finite or its scale leaves the dtype's comfortable range (entries
    near the limits of the dtype, A = 0, NaN or inf): the caller's power iterations rescale, and
    raise for NaN/inf. None too where float32's narrow blocks stand in for the Gram route and their
    result is refused (``_NarrowWatch``): the Gram route then runs as before.
    """
    b, q = krylov_block(op, k, l, n_iter)
    # float32's narrow blocks in place of the Gram route: watched, deepened or refused (_NarrowWatch)
    tested = b < l and op.dtype == np.float32 and op._gram_pays(l, n_iter)
    watch = (lambda: _NarrowWatch(k, b, q, _narrow_cap(op.shape[1], l, b, q), op.dtype)) if tested else (lambda: None)
    out = _krylov(op, k, b, q, seed, driver, False, watch())
    # (a refusal at depth q or deeper comes with its Ritz values: the two-pass space may be kept)
    if out is not None and out[1].size and rounding_shows(out[1], k, op.shape[1], op.dtype,
                                                          tail2=seen_tail2(out[1], k, op.dtype) if tested else None):
        out = _krylov(op, k, b, q, seed, driver, True, watch())  # two-pass steps (Operand.normalized_power_pass)
    return None if out is None else out[0]


def _narrow_cap(d: int, l: int, b: int, q: int) -> int:
    """The deepest the narrow blocks may go when the Ritz sums at depth q say one or more blocks
    would converge them (``_NarrowWatch``): while their count stays under NARROW_CAP_SHARE of the Gram
    route's (``_narrow_pays``; 5760 x 1080, k = 50: 12 against 9)."""
    cap = q
    while _narrow_pays(d, l, b, cap + 1, NARROW_CAP_SHARE):
        cap += 1
    return cap


#: The narrow finder's share of the Gram route's count up to which a deeper space may be built (``_narrow_cap``).
NARROW_CAP_SHARE = 0.75
#: The depth at which the narrow blocks' Ritz values are first checked for a multiple top (``_NarrowWatch``).
NARROW_EARLY_DEPTH = 3
#: The estimated relative excess, continued geometrically to the cap, under which a deeper space is built.
NARROW_PROMISE = 1e-3
#: The depth at which the narrow blocks' Ritz sums are first read, and the continued excess past which they stop.
NARROW_MID_DEPTH = 6
NARROW_MID_PROMISE = 7e-3


class _NarrowWatch:
    """The verdict on float32's narrow blocks (b columns, q beyond the start) as they are built: the top-k
    Ritz values of each nested space, read off leading blocks of the Rayleigh-Ritz Gram matrix ``H``.
    A refused space costs its blocks and then the Gram route, so the verdicts come as early as the Ritz
    values allow (seventeenth session; the sixteenth's built every space to q and then refused it:
    5760 x 1080 k = 50 on 10:1 geometric took 197 ms against the Gram route's 112).

    - At depth NARROW_EARLY_DEPTH (3), NARROW_MID_DEPTH (6) and each depth from q on: refused where
      ``narrow_blocks_miss`` (a multiple top that b-wide blocks cannot hold; 49 or 50 equal values at
      the top showed from the second block on).
    - At NARROW_MID_DEPTH: refused where the estimated excess (``narrow_excess``, Ritz sums of depths
      4-6) continued at its rate to the cap is above NARROW_MID_PROMISE: 10:1 geometric over 1000-1080
      gave 1.3e-2 to 3.1e-2 (5 seeds, 3000 x 1000 and 5760 x 1080), the spectra that converge by the
      cap at most 3.2e-3 (1e4:1; 1/i^0.2 8.4e-4; 1/sqrt(i) 1e-4). A speed rule only: a wrong call
      either way leaves the result as accurate (the Gram route's, or the narrow blocks' tested at q).
    - At depth q and deeper: kept where converged (``narrow_excess`` at most NARROW_EXCESS); else one
      block more while the estimated excess continued to ``cap`` (``_narrow_cap``) is under
      NARROW_PROMISE (1/i^0.2, 1e4:1 and some seeds of 1/sqrt(i) need 1-3 blocks more); else refused.
    """

    def __init__(self, k: int, b: int, q: int, cap: int, dtype):
        self.k, self.b, self.q, self.cap, self.dtype = k, b, q, cap, dtype
        self.ends = []  # columns of the space at each depth (a block may come out narrower)
        self.sums = {}  # depth -> top-k Ritz sum of the space of that depth
        self.theta = np.zeros(0)  # the last Ritz values computed (ascending)
        self.pairs = None  # (theta, X) of the last verdict's H, for the Rayleigh-Ritz step

    def _sum(self, H: np.ndarray, depth: int, vectors: bool = False) -> float:
        """The top-k Ritz sum at ``depth``, from H's leading block (H: the space's at that depth or deeper);
        ``vectors``: H's eigenvectors too (``pairs``)."""
        if depth not in self.sums:
            m = self.ends[depth]
            if vectors and m == H.shape[0]:
                self.pairs = theta, _ = np.linalg.eigh(H)
            else:
                theta = np.linalg.eigvalsh(H[:m, :m])
            if m == H.shape[0]:
                self.theta = theta
            self.sums[depth] = float(np.sum(theta[-min(self.k, theta.size):]))
        return self.sums[depth]

    def early_due(self, depth: int) -> bool:
        """Whether an early check runs at this depth (before q)."""
        return depth in (NARROW_EARLY_DEPTH, NARROW_MID_DEPTH) and depth < self.q

    def early(self, H: np.ndarray, depth: int) -> bool:
        """Whether to go on building (False: refused); H is the space's, ``depth`` blocks beyond the start:
        no multiple top, and at NARROW_MID_DEPTH an estimated excess that, continued at its rate to the
        cap, comes under NARROW_MID_PROMISE."""
        sums = [self._sum(H, j) if depth == NARROW_MID_DEPTH else None for j in (depth - 2, depth - 1)]
        sums.append(self._sum(H, depth))
        if narrow_blocks_miss(self.theta, self.k, self.b):
            return False
        if depth != NARROW_MID_DEPTH:
            return True
        excess, rho = narrow_excess(self.theta, sums, self.k, self.dtype)
        return excess * rho ** (self.cap - depth) <= NARROW_MID_PROMISE

    def verdict(self, H: np.ndarray, depth: int, exhausted: bool):
        """True: kept; False: refused; None: one block more. H: the space's at ``depth``."""
        sums = [self._sum(H, j, j == depth) if j >= 0 else None for j in (depth - 2, depth - 1, depth)]
        theta = self.theta
        if narrow_blocks_miss(theta, self.k, self.b):
            return False
        if None in sums:  # an exhausted space before three depths were seen: not tested
            return False
        excess, rho = narrow_excess(theta, sums, self.k, self.dtype)
        if excess <= NARROW_EXCESS:
            return True
        if exhausted or depth >= self.cap or excess * rho ** (self.cap - depth) > NARROW_PROMISE:
            return False
        return None


#: The largest estimated relative excess (``narrow_excess``) at which narrow blocks' result stands.
NARROW_EXCESS = 1e-4


def narrow_excess(theta: np.ndarray, sums, k: int, dtype) -> tuple[float, float]:
    """(the excess left, the growth's rate rho), estimated from the top-k Ritz sums of the nested spaces
    of the last three depths (``sums``, s0 <= s1 <= s2) as the last growth g = s2 - s1 continued
    geometrically (rate rho = g / (s1 - s0), at most 0.9), relative to twice the rank-k error squared
    seen in the space (the Ritz values past the k largest, which understate it); inf where the sums
    shrink by more than ``H``'s rounding (not trusted).

    The Ritz values are those of ``H = B^T B``, B = A K in float32 and H in float64: rounded to about
    eps * sigma_1 * sigma_i, not to the fused pass's eps * sigma_1^2, so the error seen counts every Ritz
    value past k above B's rounding (``theta.size * eps^2 * theta_1``). Until the seventeenth session it
    counted only those above 10 r eps theta_1, as ``rounding_shows`` does: steep spectra (1/i^1.5, 0.9^i,
    exp(-sqrt i) at k = 50) then had no error to speak of and were refused, though their narrow result was
    the most accurate of the three (3000 x 1000: 3.5e-09, 5.7e-09, 7.9e-09 against the Gram route's
    3.8e-06, 1.2e-07, 1.6e-06 and scikit-learn's 2.3e-05, 2.2e-08, 3.4e-08). Growth below H's rounding
    (about k eps64 theta_1 in a sum) counts as none."""
    s0, s1, s2 = sums
    g, g0 = s2 - s1, s1 - s0
    top = float(theta[-1]) if theta.size else 0.0
    noise = 64.0 * k * _EPS64 * top
    if not (g >= -noise and g0 >= -noise):
        return np.inf, 0.9
    g, g0 = max(g, 0.0), max(g0, 0.0)
    tail2 = seen_tail2(theta, k, dtype)
    rho = min(g / g0, 0.9) if g0 > 0.0 else 0.0
    left = g * rho / (1.0 - rho)
    if left <= 0.0:
        return 0.0, rho
    return (left / (2.0 * tail2) if tail2 > 0.0 else np.inf), rho


def seen_tail2(theta: np.ndarray, k: int, dtype) -> float:
    """The squared rank-k error seen in the Ritz values of ``H = (A K)^T (A K)`` (ascending): those past
    the k largest above B's rounding, ``theta.size * eps^2 * theta_1`` (``narrow_excess``)."""
    if not theta.size:
        return 0.0
    eps = float(np.finfo(dtype).eps)
    past = theta[: max(theta.size - k, 0)]
    return float(np.sum(past[past > theta.size * eps * eps * float(theta[-1])]))


#: Relative spread of b Ritz values (of A^T A) within which ``narrow_blocks_miss`` calls them one cluster.
CLUSTER_SPREAD = 1e-2


def narrow_blocks_miss(theta: np.ndarray, k: int, b: int) -> bool:
    """Whether b-wide blocks may have missed directions of the top k: b of the top k Ritz values
    (ascending theta) within CLUSTER_SPREAD of each other. A Krylov space of b-column blocks holds at
    most b directions of an eigenvalue of A^T A of higher multiplicity (every block's part in that
    eigenspace is the first block's), and little more of a tight cluster, which its polynomials
    cannot split; the l-wide space of the caller's steps holds l of them (exactly rank-50 A with equal
    singular values, k = 50: the 16-wide space found 16, and the Ritz values showed them as 16 equal)."""
    desc = theta[::-1][:k]
    if desc.size < b:
        return False
    head, run_end = desc[: desc.size - b + 1], desc[b - 1:]
    return bool(np.any((head > 0.0) & (run_end >= (1.0 - CLUSTER_SPREAD) * head)))


def _krylov(op: InMemory | Centered, k: int, l: int, q: int, seed: int, driver: str, careful: bool,
            watch: "_NarrowWatch | None" = None):
    """(factors, Ritz values of A^T A over the space, ascending), or None (see krylov_factors):
    blocks of l columns, q beyond the start (``krylov_block``). With ``watch`` (float32's narrow blocks)
    the depth is the watch's: refused early, kept at q or deeper, or refused (factors None).

    ``A K`` is filled in place block by block (n x l (q + 1); ``krylov_applies`` keeps it a fraction
    of A: (l (q + 1))^2 <= d l (passes saved) / 4). Under a watch it is float64 and column-major (the
    verdicts' leading blocks of ``H = B^T B`` are filled in when a verdict is due, the new columns in one
    product: float32's B squared is representable in float64 unscaled), and blocks past q take ``A V``
    then ``A^T (A V)`` (the second product only if a block more is wanted)."""
    n, d = op.shape
    dtype = op.dtype
    eps = float(np.finfo(dtype).eps)
    depth_max = q if watch is None else watch.cap
    V = orthonormal(np.random.default_rng(seed).standard_normal((d, l)))
    K = np.empty((d, l * (depth_max + 1)))  # the blocks so far, float64, filled in place (no copy a step)
    if watch is None:
        B = np.empty((n, l * (depth_max + 1)), dtype=dtype)
    else:  # column-major: the blocks past the verdict's depth never touched (rows of all 13 cost 2-3% at k = 50)
        B = np.empty((n, l * (depth_max + 1)), order="F")
    H = None if watch is None else np.empty((B.shape[1], B.shape[1]))
    filled = 0
    ready = 0  # columns of H filled in
    depth = 0  # blocks beyond the start whose A V is in B
    kept = watch is None

    def add(Vd, P):
        nonlocal filled
        K[:, filled:filled + P.shape[1]] = Vd
        B[:, filled:filled + P.shape[1]] = P
        filled += P.shape[1]
        if watch is not None:
            watch.ends.append(filled)

    def gram():
        """H = B^T B so far: its new columns only, in one product (16-column ones took 2.5x the time)."""
        nonlocal ready
        H[:filled, ready:filled] = B[:, :filled].T @ B[:, ready:filled]
        H[ready:filled, :ready] = H[:ready, ready:filled].T
        ready = filled
        return H[:filled, :filled]

    while True:
        Vd = np.ascontiguousarray(V, dtype=dtype)
        if depth < q:
            # careful: A V, then A^T W with W its LU basis (two passes, rounded to eps * sigma_1)
            P, Z = op.normalized_power_pass(Vd) if careful else op.power_pass(Vd)
            if not (representable(Z, dtype) and representable(P, dtype)):
                return None
            add(Vd, P)
            if watch is not None and watch.early_due(depth) and not watch.early(gram(), depth):
                return None, np.zeros(0)
            del P
            V = next_block(K[:, :filled], Z.astype(np.float64), eps)
            depth += 1
            if V is None:  # the space is exhausted: A has rank below its dimension
                break
            continue
        P = op.times(Vd)  # the last block's A V (Rayleigh-Ritz), and the next block's start if one is wanted
        if not representable(P, dtype):
            return None
        add(Vd, P)
        if watch is None:
            V = None
            break
        kept = watch.verdict(gram(), depth, False)
        if kept is not None:
            if not kept:
                return None, watch.theta
            break
        W = normalize(P, "LU") if careful else P
        Z = op.rtimes(np.ascontiguousarray(W, dtype=dtype))
        if not representable(Z, dtype):
            return None
        V = next_block(K[:, :filled], Z.astype(np.float64), eps)
        depth += 1
        if V is None:
            break
    if not kept and V is None:  # exhausted before the watch's verdict at depth q or deeper
        kept = watch.verdict(gram(), depth - 1, True)
        if not kept:
            return None, watch.theta
    K = np.ascontiguousarray(K[:, :filled], dtype=dtype)
    B = B[:, :filled]
    if watch is not None:  # every block's A V was checked representable; float32's squares are in float64's range
        H = gram()
        pairs = watch.pairs if watch.pairs is not None and watch.pairs[0].size == H.shape[0] else None
        return _rayleigh_ritz(op, K, B, k, driver, H, pairs)
    if not np.isfinite(peak(B)):
        return None
    return _rayleigh_ritz(op, K, B, k, driver)


def _rayleigh_ritz(op: InMemory | Centered, K: np.ndarray, B: np.ndarray, k: int, driver: str, H=None, pairs=None):
    """SCW factors of ``B = A K`` cut to its top k right singular vectors first, and the Ritz values
    of A^T A over span(K) (ascending). B is the caller's and is scaled in place; ``H``: ``B^T B`` when
    the caller has it (float64 B of float32 entries, used unscaled: its squares cannot over- or underflow),
    ``pairs`` its eigenpairs when the caller has them.

    K has l (q + 1) columns, k of which matter: the eigenvectors X_k of ``B^T B`` (float64) give
    them, and the thin SVD of the n x k ``B X_k`` the factors, exact to rounding (a thin SVD of all
    of B took two SVQB rounds over n x l (q + 1)); where their tilt could show
    (``_gram_tilt_negligible``), the thin SVD of all of B.
    """
    if H is None:
        # float64 and scaled by a power of two (exact) so that B^T B stays representable
        B = B.astype(np.float64) if B.dtype != np.float64 else B
        c = 1.0 / power_of_two(peak(B))
        B *= c
        times = InMemory.wrap(B, name="B", backend=op.backend).times
        H = InMemory.wrap(B, name="B", backend=op.backend).rtimes(B)
        H = (H + H.T) / 2
    else:  # B: the caller's columns of a wider array (not kernel-ready): BLAS takes its strides
        c = 1.0
        times = B.__matmul__
    theta, X = np.linalg.eigh(H) if pairs is None else pairs
    r = min(k, B.shape[1])
    if not _gram_tilt_negligible(theta, r, op.dtype):  # the thin SVD of all of B, exact to rounding
        B = np.ascontiguousarray(B)
        UB, sB, XB = op.thin_svd(B, r, driver)
        return SCWFactors(np.zeros((0, 0)), np.zeros(0), K, B / c, UB, sB / c, XB), theta / (c * c)
    Xk = np.ascontiguousarray(X[:, ::-1][:, :r])
    V = np.ascontiguousarray(K.astype(np.float64) @ Xk, dtype=op.dtype)  # the top-k rows' basis, in span(K)
    W = times(Xk) / c  # = A V
    UB, sB, Y = op.thin_svd(W, r, driver)
    return SCWFactors(np.zeros((0, 0)), np.zeros(0), V, W, UB, sB, Y), theta / (c * c)


def _gram_tilt_negligible(theta: np.ndarray, k: int, dtype) -> bool:
    """Whether B^T B's rounding (eps * theta_1, float64) tilts its k-th eigenvector, by about
    eps * theta_1 / (theta_k - theta_(k+1)), too little to show: that tilt adds about
    sqrt(theta_k) times it to the error (first order where the rank-k error is 0: an exactly
    rank-10 float64 matrix with sigma_10 = 1e-6 sigma_1 came out 2e-10 off), against 1e-2 of the
    rank-k error in the space (its Ritz values above B^T B's rounding) or of A's own rounding."""
    eps64 = float(np.finfo(np.float64).eps)
    desc = theta[::-1]
    top = float(desc[0])
    if not top > 0.0:
        return False
    gap = float(desc[k - 1] - desc[k]) if k < desc.size else float(desc[k - 1])
    tilt = eps64 * top / gap if gap > 0.0 else np.inf
    error = ritz_tail(theta, k, eps64)
    floor = float(np.finfo(dtype).eps) * np.sqrt(top)
    return np.sqrt(max(float(desc[k - 1]), 0.0)) * tilt <= 1e-2 * max(error, floor)


def next_block(K: np.ndarray, Z: np.ndarray, eps: float):
    """The orthonormal basis of Z's part outside span(K) (K orthonormal): block Gram-Schmidt,
    twice (once loses orthogonality when Z lies mostly in span(K)), then Householder QR; columns
    whose part outside is below Z's rounding (singular values of R) are dropped. None when none
    is left. One more Gram-Schmidt pass only where the QR basis measurably leans into span(K)
    (Q = Z R^-1 scales Z's rounding by 1 / sigma_min(Z): Z nearly in span(K)); an SVD of the
    d x l Z and that pass every time cost 4 of the 9 ms per block at d = 1080, l = 60."""
    scale = float(np.linalg.norm(Z))
    if not scale > 0.0:
        return None
    for _ in range(2):
        Z = Z - K @ (K.T @ Z)
    Q, R = scipy.linalg.qr(Z, mode="economic", overwrite_a=True, check_finite=False)
    U, s, _ = np.linalg.svd(R)
    keep = int(np.count_nonzero(s > Z.shape[1] * eps * scale))
    if keep == 0:
        return None
    if keep < Q.shape[1]:
        Q = Q @ U[:, :keep]
    C = K.T @ Q
    if float(np.abs(C).max()) <= np.sqrt(Q.shape[0]) * _EPS64:  # K, Z and Q are float64
        return Q
    return orthonormal(Q - K @ C)
