"""Heavy rows at apply time: a CountSketch that gives each matrix's heaviest rows a bucket of their own.

A CountSketch hashes rows without looking at them, so on term-document matrices (Zipfian words) a few heavy
rows share buckets and their sum is what the sketch sees. A learned sketch can only learn the words its training
matrices made heavy; the words of *new* topics are unknown until the matrix is seen (issue 15, bench/README.md,
fifth to eighth sessions). Their row norms cost one O(nnz) pass over A besides the sketch's own, so
:class:`HeavyRowSketch` reads them at apply time: the rows whose squared norm is at least ``threshold`` times the
mean bucket energy ``||A||_F^2 / m`` (at most ``max_rows``, heaviest first) each get a reserved bucket alone
(``S A`` holds them exactly), and the sketch's other rows keep their buckets and values, those that hashed into a
reserved bucket being hashed again into the others. The idea is length-squared (norm) sampling's (Frieze, Kannan
and Vempala, "Fast Monte-Carlo algorithms for finding low-rank approximations", JACM 2004; Drineas, Kannan and
Mahoney, 2006): rows with a large share of ``||A||_F^2`` matter most, and a sketch that keeps them exactly loses
nothing on them. On matrices without such rows (pixels, bands, incoherent data) the sketch is the plain one.
"""

from __future__ import annotations

import numpy as np

from ._matrix import operand
from ._validation import UINT64_MAX, check_int
from .sketch import CountSketch, Sketch, StackedSketch, countsketch_hash
from .sketch_file import save_sketch

__all__ = ["HeavyRowSketch", "heavy_rows"]

#: Leaves' rows kept per HeavyRowSketch for given numbers of reserved buckets (n int64 entries each).
_KEPT_RESERVATIONS = 4


def heavy_rows(energy: np.ndarray, m: int, threshold: float, max_rows: int) -> np.ndarray:
    """Indices of the rows with ``energy >= threshold * energy.sum() / m``, heaviest first (ties: lower index),
    at most ``max_rows`` of them (empty for a zero matrix)."""
    total = float(energy.sum())
    bar = threshold * total / m
    # no row at the bar (most dense data): one pass and no index array (n = 10^6: 0.9 -> 0.4 ms)
    if total <= 0.0 or max_rows == 0 or float(energy.max(initial=0.0)) < bar:
        return np.zeros(0, dtype=np.int64)
    # at most m / threshold rows can reach the bar (their energies add up to <= total): sort only those, O(n)
    above = np.flatnonzero(energy >= bar)
    order = above[np.argsort(-energy[above], kind="stable")]
    return order[:max_rows].astype(np.int64)


class HeavyRowSketch(Sketch):
    """A CountSketch (or a stack of them) whose buckets adapt to the matrix it sketches: heavy rows alone.

    For each matrix A it sketches (``S @ A``, ``fastlr.scw``, ``fastlr.sketch_error``, ...), the rows i with
    ``||A_i||^2 >= threshold * ||A||_F^2 / m`` (at most ``max_rows``, heaviest first) each go alone into one of the
    last buckets of the base sketch (value 1); the base's other rows keep their buckets and values, and those whose
    bucket was reserved are hashed again (seeded, ``countsketch_hash(seed + j, m_j - h_j)`` for leaf j) into the
    leaf's unreserved buckets. A stack (a mixed learned sketch) reserves buckets leaf by leaf, each heavy row in one
    leaf only (zero in the others). Same m as the base: a fair replacement at equal sketch size. ``adapted(A)``
    returns the plain sketch used for A.

    ``fastlr.learn_sketch`` returns its LearnedSketch wrapped in one on text-like training data (``heavy_rows="auto"``;
    ``reason`` says why), and so do the data-driven sketches (``fastlr.datadriven``: there the random
    ``CountSketch(m, n, seed)`` they fall back to); ``history``, ``validation``, ``fallback``, ``mixed`` and ``k`` are
    the base's, and ``reference`` (``fastlr.scw``'s guard) is that of the sketch given.

    Measured (bench/README.md, twentieth session; m = 20, k = 10, 100 seeds; held-out Err over that of
    ``CountSketch(m, n, seed)``, mean [worst]): on term-document matrices of topics the training set never saw,
    a learned sketch 0.81 [1.15] -> 0.40 [0.59] wrapped, ``mixed="joint"`` 0.66 [0.86] -> 0.39 [0.58], the random
    CountSketch itself 1 -> 0.52 [0.66]; video and hyperspectral frames have no heavy row (unchanged).

    Cost: A's row norms (the backend's ``row_squared_norms`` kernel: O(nnz) sparse, O(n d) dense) besides the
    sketch's own pass. One thread, CPU time of scw with it over the plain scw's (bench/README.md, twenty-first
    session): 1.03-1.05 on a 1M x 500 CSR (500k nnz; 1.04-1.09 with heavy rows), 1.05-1.11 on 20000 x 1000
    topic-shifted text, 1.03-1.05 on the demo's video frames. On a dense in-memory A the compiled core sums the
    norms in the base's pass over A (each row's squares while it is read, bit for bit the norm kernel's), whose
    S A is the result when no row is heavy (twenty-second session, dense 5760 x 1080 without heavy rows, three runs
    at load 4-4.7 on 2 cores): 1.02-1.08 float64 and 1.04-1.15 float32 at x86-64-v4 and v3, 1.04-1.07 and
    1.09-1.17 at the baseline ISA, against 1.18-1.30 with the separate norm pass. With heavy rows the adapted
    sketch takes a second pass; the Numba and NumPy backends and a column-major A read A twice. Dask input is
    computed (not lazy).

    **S is no longer oblivious**: its positions depend on A. What still holds for a random base
    ``CountSketch(m, n, seed)``: given which rows are heavy, the other rows are sketched by a CountSketch with
    ``m - h`` rows whose hash does not depend on A (a row's bucket is its own hash, or its second hash when that
    bucket is reserved: uniform over the ``m - h`` others), and the ``h`` heavy rows are exact. Clarkson and
    Woodruff's subspace-embedding and approximate-product bounds for ``S A`` hold therefore with ``m - h`` rows in
    place of ``m`` (the exact block adds no error), so the worst-case guarantee is that of a CountSketch with
    ``m - max_rows`` rows. A learned base has no worst-case guarantee either way.

    Parameters
    ----------
    base : CountSketch, LearnedSketch, a stack of CountSketches or a HeavyRowSketch
        The sketch to adapt (every leaf of ``base.parts()`` a CountSketch). A HeavyRowSketch (what
        ``learn_sketch`` returns on term-document counts) is unwrapped: its base gets this rule instead.
    threshold : float, default 1.5
        A row is heavy when its squared norm is at least this many times ``||A||_F^2 / m`` (> 0). At 1.5 no
        row of the video, hyperspectral, low-rank or 12 x 6 families of bench/guard_audit.py qualifies (100
        seeds: every sketch unchanged), while term-document matrices have 3-5 such rows; 1.0 and 0.5 isolate
        more on text (lower Err there) but changed the 12 x 6 family's sketches, worse on 3-23 of 100 seeds.
    max_rows : int, optional
        At most this many rows are isolated; default ``m // 2``. Each leaf keeps at least one hashed bucket, so
        ``0 <= max_rows <= m - (number of leaves)``. For ``scw`` at rank k, ``m - max_rows >= k`` keeps a
        CountSketch of at least k rows for the rest (the default does for ``m >= 2 k``).
    seed : int, default 0
        Seed of the second hash (rows moved out of reserved buckets).

    Raises
    ------
    TypeError
        If ``base`` is not a fastlr sketch made of CountSketches.
    ValueError
        If ``threshold`` is not a finite number > 0, or ``max_rows`` or ``seed`` is out of range.

    Examples
    --------
    >>> import fastlr
    >>> A = fastlr.datasets.text(1, n_terms=600, n_docs=30, seed=1)[0]
    >>> S = fastlr.HeavyRowSketch(fastlr.CountSketch(10, 600, seed=0))
    >>> fastlr.scw(A, S, 5).U.shape
    (600, 5)
    """

    def __init__(self, base, threshold: float = 1.5, max_rows: int | None = None, seed: int = 0):
        given = base
        if isinstance(base, HeavyRowSketch):  # learn_sketch's result on counts: this rule replaces its rule
            base = base.base
        if not isinstance(base, Sketch) or not all(isinstance(leaf, CountSketch) for leaf in base.parts()):
            raise TypeError(f"base: expected a CountSketch or a stack of CountSketches, got {base!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
                or not np.isfinite(threshold) or threshold <= 0:
            raise ValueError(f"threshold: expected a finite number > 0, got {threshold!r}")
        self.base = base
        self.leaves = list(base.parts())
        self.shape = base.shape
        most = self.m - len(self.leaves)
        self.max_rows = check_int(self.m // 2 if max_rows is None else max_rows, "max_rows", minimum=0,
                                  maximum=most)
        self.threshold = float(threshold)
        self.seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX)
        self.reference = given.reference  # a learned sketch's guard (fastlr.scw) stays with it
        self._reserving = {}  # (leaf, reserved buckets) -> the leaf's rows (_rows_reserving)

    @property
    def k(self):
        """The base's training rank (a LearnedSketch's ``k``), None for a random base."""
        return getattr(self.base, "k", None)

    def heavy(self, energy: np.ndarray) -> np.ndarray:
        """The rows isolated for a matrix with these squared row norms, heaviest first."""
        return heavy_rows(np.asarray(energy, dtype=np.float64), self.m, self.threshold, self.max_rows)

    def _rows_reserving(self, j: int, h: int) -> np.ndarray:
        """Leaf j's rows with its last h buckets reserved: the rows hashed there moved to their second hash
        (``countsketch_hash(seed + j, m_j - h)``). It depends on the base alone, so the last few are kept: a
        new copy of a leaf's rows with a boolean mask took most of ``adapted_to``'s 17 ms at n = 10^6."""
        key = (j, h)
        rows = self._reserving.get(key)
        if rows is None:
            leaf = self.leaves[j]
            free = leaf.m - h
            rows = np.array(leaf.rows, dtype=np.int64)
            moved = np.flatnonzero(rows >= free)  # the last h buckets are fixed, so independent of the hash
            rows[moved] = countsketch_hash((self.seed + j) % (UINT64_MAX + 1), free, 0, self.n)[0][moved]
            # batches apply one sketch from several threads: list() and pop(..., None) stay safe (no lock,
            # so the sketch still pickles)
            for oldest in list(self._reserving)[:max(0, len(self._reserving) - _KEPT_RESERVATIONS + 1)]:
                self._reserving.pop(oldest, None)
            self._reserving[key] = rows
        return rows

    def rebased(self, base) -> HeavyRowSketch:
        """This rule (threshold, max_rows, seed and reason) on another base: what ``fastlr.datadriven``'s
        ``refine_values`` and ``greedy_positions`` return for a wrapped S (they work on its base)."""
        H = HeavyRowSketch(base, threshold=self.threshold, max_rows=self.max_rows, seed=self.seed)
        H.reason = self.reason
        return H

    def adapted_to(self, energy: np.ndarray) -> Sketch:
        """The plain sketch for a matrix with these squared row norms (the base itself when no row is heavy)."""
        energy = np.asarray(energy, dtype=np.float64)
        if energy.shape != (self.n,):
            raise ValueError(f"energy: expected shape ({self.n},), got {energy.shape}")
        heavy = self.heavy(energy)
        if len(heavy) == 0:
            return self.base
        if len(self.leaves) == 1:  # one leaf holds them all
            leaf, h = self.leaves[0], len(heavy)
            rows = self._rows_reserving(0, h).copy()
            values = np.array(leaf.values, dtype=np.float64)
            rows[heavy] = np.arange(leaf.m - h, leaf.m)
            values[heavy] = 1.0
            return CountSketch._owning(rows, values, leaf.m)
        # each heavy row to the leaf with the most unreserved buckets left
        reserved = [0] * len(self.leaves)
        owner = np.empty(len(heavy), dtype=np.int64)
        for t in range(len(heavy)):
            j = int(np.argmax([leaf.m - r for leaf, r in zip(self.leaves, reserved)]))
            owner[t] = j
            reserved[j] += 1
        out = []
        for j, leaf in enumerate(self.leaves):
            h = reserved[j]
            rows = self._rows_reserving(j, h).copy() if h else np.array(leaf.rows, dtype=np.int64)
            values = np.array(leaf.values, dtype=np.float64)
            if h:
                mine = heavy[owner == j]
                rows[mine] = leaf.m - h + np.arange(h)
                values[mine] = 1.0
            values[heavy[owner != j]] = 0.0  # alone in another leaf's bucket: counted once
            out.append(CountSketch._owning(rows, values, leaf.m))
        return StackedSketch(out)

    def adapted(self, A) -> Sketch:
        """The plain sketch this sketch applies to A (a CountSketch or a stack of them)."""
        op = operand(A)
        self._check_rows_of(op)
        return self.adapted_to(op.row_squared_norms())

    def sketch_of(self, op):
        # Dense in-memory A: the first leaf's S A and the row norms from one pass (sketch_with_norms_of). With no
        # heavy row the adapted sketch is the base, and that S A (the other leaves' stacked after it, as
        # op.sketch stacks them) is its S A; else the adapted sketch takes a second pass.
        fused = self.leaves[0].sketch_with_norms_of(op)
        if fused is None:  # the adapted sketch through the operand's own route (leaves stacked; dask: one graph)
            return op.apply_sketch(self.adapted_to(op.row_squared_norms()))
        first, energy = fused
        adapted = self.adapted_to(energy)
        if adapted is not self.base:
            return op.apply_sketch(adapted)
        if len(self.leaves) == 1:
            return first  # (op.sketch checks it, as it checks the base's)
        return np.vstack([first] + [np.asarray(leaf.sketch_of(op)) for leaf in self.leaves[1:]])

    def to_dense(self) -> np.ndarray:
        raise TypeError("HeavyRowSketch: its buckets depend on the matrix; use S.adapted(A).to_dense() (the sketch "
                        "applied to A), or S.base.to_dense() for the sketch without the heavy-row rule")

    def save(self, path) -> None:
        """Write the sketch (its base and its rule) to ``path`` as an .npz file (no pickle); read it with
        ``fastlr.load_sketch``. The base must be a CountSketch or a LearnedSketch (a plain stack cannot be saved)."""
        save_sketch(self, path)

    def __repr__(self) -> str:
        return (f"HeavyRowSketch({self.base!r}, threshold={self.threshold}, max_rows={self.max_rows}, "
                f"seed={self.seed})")

    # ------------------------------------------------------------------ a learned base's record, read through

    #: Why ``fastlr.learn_sketch`` (or a ``fastlr.datadriven`` sketch) attached the rule to the sketch it built
    #: (``heavy_rows="auto"``: what it saw in the training matrices; True: asked for); None for a sketch wrapped by
    #: hand or loaded from a file.
    reason = None

    @property
    def history(self):
        """The base's training record (a LearnedSketch's ``history``), None for a random base."""
        return getattr(self.base, "history", None)

    @property
    def validation(self):
        """The base's ``validation`` (what learn_sketch's hold-out decided), None for a random base."""
        return getattr(self.base, "validation", None)

    @property
    def fallback(self) -> bool:
        """True when the base is learn_sketch's random start, returned because learning did not beat it."""
        return bool(getattr(self.base, "fallback", False))

    @property
    def mixed(self):
        """The base's ``mixed`` (None, "joint" or "separate"), None for a random base."""
        return getattr(self.base, "mixed", None)
