"""StreamingSVD: a rank-k approximation from ONE pass over data seen once.

The method of Tropp, Yurtsever, Udell and Cevher (SISC 2019; "Practical sketching algorithms",
SIMAX 2017). For an n x d matrix A arriving as blocks of consecutive rows, keep three linear
sketches

* range sketch     ``Y = A Omega``            (n x s; Omega d x s)
* co-range sketch  ``X = Upsilon A``          (s x d; Upsilon s x n)
* core sketch      ``Z = Phi A Psi^T``        (c x c; Phi c x n, Psi c x d)

Each is a sum (X, Z) or a stack (Y) of per-block terms, so a block is sketched when it arrives
and then dropped. Reconstruction: ``Q = orth(Y)``, ``P = orth(X^T)``,
``C = (Phi Q)^+ Z ((Psi P)^+)^T`` (two small least-squares problems), ``A ~ Q C P^T``, and the
rank-k truncation ``U = Q U_C[:, :k]``, ``s = sigma_C[:k]``, ``Vt = (P V_C[:, :k])^T``.

Test matrices on the row side (Upsilon, Phi) never exist whole: the columns belonging to rows
``start .. stop-1`` are generated from the seed and the row offset alone (a counter-based
CountSketch hash, or seeded Gaussian tiles of ``_TILE_ROWS`` rows), so n need not be known in
advance and any split of the rows into blocks gives the same sketches. Column-side test
matrices (Omega, Psi) are made once d is known (at the first block).

Memory: ``Y`` (n s) + ``X`` (s d) + ``Z`` (c^2) + the column-side test matrices (O(d s) for
sparse sign ones, O(d (s + c)) for Gaussian ones, plus at most 4 Gaussian row tiles of
``_TILE_ROWS x c``): O((n + d) s + c^2), with c = O(s). Sparse blocks stay sparse (every product
with a block goes through the matrix layer's kernels).

Sizes. The defaults are the paper's "natural" choice s = 4k + 1, c = 2s + 1. The core's error
factor is 1 + s / (c - s - 1) (2 at c = 2s + 1), so when n and d are much larger than s a larger
core is cheap and clearly more accurate (bench/README.md: c = 4s + 1 lowers the error ratio on
noisy data from about 1.6 to 1.25 for c^2 more memory).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ._linalg import blas_single_thread, complete, flip_signs
from ._matrix import InMemory, block_rows_for, is_dask_array, operand, row_blocks
from ._threads import thread_limit
from ._validation import (
    check_int,
    check_random_state,
    dtype_for,
    float_dtype,
    is_sparse,
    random_seed,
)
from .lowrank import LowRank
from .sketch import countsketch_hash

__all__ = ["StreamingSVD"]

SKETCHES = ("countsketch", "gaussian")

#: Nonzeros per column of the sparse sign test matrices (sketch="countsketch"): each test matrix
#: stacks this many CountSketches (the block construction of a sparse sign matrix), so a few
#: heavy rows or columns of A hashed to one bucket do not lose a direction. TYUC 2019 suggest
#: zeta = min(size, 8); see bench/README.md for what 1, 2, 4 and 8 cost and gain here.
SPARSE_SIGN_NNZ = 4

#: Rows of a Gaussian row-side tile: tile t of a seed is always the same, so any block split
#: gives the same test matrix.
_TILE_ROWS = 1024

#: Stored entries per row block when ``fit`` reads a sparse matrix.
_SPARSE_BLOCK_NNZ = 1 << 22

#: Rows of Q per block when Phi Q is formed at ``result()`` (bounded temporaries).
_RESULT_BLOCK_ROWS = 1 << 15

# Streams of the seed: one per test matrix.
_UPSILON, _OMEGA, _PHI, _PSI = range(4)


def default_sizes(k: int, range_size=None, core_size=None) -> tuple[int, int]:
    """(range_size, core_size) with TYUC's "natural" rule as defaults: ``s = 4k + 1`` and
    ``c = 2s + 1`` (Tropp, Yurtsever, Udell, Cevher, SISC 2019, their "natural" parameters; their error
    bound is ``(1 + eta)`` times the best range-finder bound with ``eta = s / (c - s - 1)``, so
    ``c = 2s + 1`` gives eta = 1, and ``s = 4k + 1`` puts the range finder within a factor
    ``1 + k / (s - k - 1) ~ 4/3`` of the optimal rank-k error)."""
    k = check_int(k, "k", minimum=1)
    if range_size is not None:
        range_size = check_int(range_size, "range_size", minimum=1)
        if range_size < k:
            raise ValueError(f"range_size: must be >= k = {k}, got {range_size}")
    if core_size is not None:
        core_size = check_int(core_size, "core_size", minimum=1)
        if core_size < (k if range_size is None else range_size):
            need = "k" if range_size is None else "range_size"
            raise ValueError(f"core_size: must be >= {need} = {k if range_size is None else range_size}, "
                             f"got {core_size}")
    if range_size is None:
        range_size = 4 * k + 1 if core_size is None else max(k, min(4 * k + 1, (core_size - 1) // 2))
    if core_size is None:
        core_size = 2 * range_size + 1
    return range_size, core_size


def _layer_sizes(m: int) -> list[int]:
    """Rows of each CountSketch of an m-row sparse sign matrix (block construction)."""
    z = min(SPARSE_SIGN_NNZ, m)
    return [m // z + (1 if j < m % z else 0) for j in range(z)]


class _TestMatrices:
    """The four test matrices of one stream: seeds, sizes, dtype and the column-side matrices
    (made for d columns). Immutable after construction, so dask tasks may share it."""

    def __init__(self, kind: str, seed: int, s: int, c: int, d: int, dtype):
        self.kind, self.seed, self.s, self.c, self.d = kind, seed, s, c, d
        self.dtype = np.dtype(dtype)
        sizes = {_UPSILON: s, _OMEGA: s, _PHI: c, _PSI: c}
        if kind == "countsketch":
            # per stream and layer: (uint64 seed of countsketch_hash, rows m_j)
            self.layers = {which: [(self._subseed(which, j), mj) for j, mj in enumerate(_layer_sizes(m))]
                           for which, m in sizes.items()}
            self.omega = self._hashed(_OMEGA, 0, d)  # Omega^T (s x d) and Psi (c x d), as layers
            self.psi = self._hashed(_PSI, 0, d)
            # Omega as a dense d x s matrix too: for dense blocks, A_b Omega by one product with it
            # (the one-pass kernel or BLAS) beats zeta CountSketches over the columns of A_b.
            self.omega_dense = np.zeros((d, s), dtype=self.dtype)
            offset = 0
            for rows, values, mj in self.omega:
                np.add.at(self.omega_dense, (np.arange(d), rows + offset), values)
                offset += mj
        else:
            rng = np.random.default_rng([seed, _OMEGA])
            self.omega = np.ascontiguousarray(rng.standard_normal((d, s)), dtype=self.dtype)  # Omega (d x s)
            rng = np.random.default_rng([seed, _PSI])
            self.psi = rng.standard_normal((c, d))  # Psi (c x d), float64: it multiplies small sketches

    @property
    def nbytes(self) -> int:
        """Bytes of the column-side test matrices."""
        total = 0
        for part in (self.omega, self.psi, getattr(self, "omega_dense", None)):
            if isinstance(part, np.ndarray):
                total += part.nbytes
            elif part is not None:
                total += sum(rows.nbytes + values.nbytes for rows, values, _ in part)
        return total

    def _subseed(self, which: int, layer: int) -> int:
        return int(np.random.SeedSequence([self.seed, which, layer]).generate_state(1, np.uint64)[0])

    def _hashed(self, which: int, start: int, stop: int):
        """[(rows, values, m_j)] of columns start .. stop-1 of a sparse sign test matrix."""
        out = []
        for seed, mj in self.layers[which]:
            rows, signs = countsketch_hash(seed, mj, start, stop)
            out.append((rows, signs.astype(self.dtype), mj))
        return out

    def _gaussian(self, which: int, start: int, stop: int, cache) -> np.ndarray:
        """Columns start .. stop-1 of a Gaussian row-side test matrix (m x (stop - start))."""
        m = self.s if which == _UPSILON else self.c
        parts = []
        for t in range(start // _TILE_ROWS, -(-stop // _TILE_ROWS)):
            key = (which, t)
            tile = None if cache is None else cache.get(key)
            if tile is None:
                tile = np.random.default_rng([self.seed, which, t]).standard_normal((_TILE_ROWS, m))
                if cache is not None:
                    if len(cache) >= 4:  # the last tile or two of each stream is all a stream reuses
                        cache.clear()
                    cache[key] = tile
            lo, hi = max(start, t * _TILE_ROWS), min(stop, (t + 1) * _TILE_ROWS)
            parts.append(tile[lo - t * _TILE_ROWS:hi - t * _TILE_ROWS])
        G = parts[0] if len(parts) == 1 else np.vstack(parts)
        return np.ascontiguousarray(G.T, dtype=self.dtype)

    # ----------------------------------------------------------------- products

    def left(self, which: int, op, start: int, cache=None) -> np.ndarray:
        """(Upsilon or Phi)[:, start:start+b] @ op for a block operand op of b rows (m x d)."""
        stop = start + op.shape[0]
        if self.kind == "countsketch":
            parts = [op.countsketch(rows, values, mj) for rows, values, mj in self._hashed(which, start, stop)]
            return parts[0] if len(parts) == 1 else np.vstack(parts)
        return op.dense_sketch(self._gaussian(which, start, stop, cache))

    def range_of(self, op) -> np.ndarray:
        """op @ Omega (b x s) for a block operand op."""
        if self.kind == "countsketch" and not op.sparse:
            return op.times(self.omega_dense)
        if self.kind == "countsketch":
            opT = op.T  # Omega^T op^T, one CountSketch per layer over op's columns: O(zeta nnz)
            parts = [opT.countsketch(rows, values, mj) for rows, values, mj in self.omega]
            return np.ascontiguousarray((parts[0] if len(parts) == 1 else np.vstack(parts)).T)
        return op.times(self.omega)

    def psi_of(self, W: np.ndarray) -> np.ndarray:
        """Psi @ W for a d x p float64 W (c x p)."""
        if self.kind == "countsketch":
            op = InMemory.wrap(np.ascontiguousarray(W, dtype=np.float64), name="W")
            parts = [op.countsketch(rows, values.astype(np.float64), mj) for rows, values, mj in self.psi]
            return parts[0] if len(parts) == 1 else np.vstack(parts)
        return self.psi @ W

    def phi_times(self, op, start: int) -> np.ndarray:
        """Phi[:, start:start+b] @ Q_b in float64 for a float64 block operand of Q (at ``result()``):
        the same test matrix as the data saw (Gaussian entries rounded to ``dtype`` as they were)."""
        stop = start + op.shape[0]
        if self.kind == "countsketch":
            parts = [op.countsketch(rows, values.astype(np.float64), mj)
                     for rows, values, mj in self._hashed(_PHI, start, stop)]
            return parts[0] if len(parts) == 1 else np.vstack(parts)
        return op.dense_sketch(self._gaussian(_PHI, start, stop, None).astype(np.float64))

    def sketch_block(self, op, start: int, cache=None):
        """(Y_b, X_b, Z_b) of a block operand whose first row is row ``start`` of A; refused
        (ValueError naming op.name) when not finite."""
        X_b = op.checked_sketch(self.left(_UPSILON, op, start, cache))
        W_b = op.checked_sketch(self.left(_PHI, op, start, cache))
        Y_b = self.range_of(op)
        if not np.isfinite(Y_b).all():  # X_b is finite, so only an overflow gets here
            raise ValueError(f"{op.name}: contains NaN or infinity (or overflows), so A @ Omega is not finite")
        Z_b = self.psi_of(np.asarray(W_b, dtype=np.float64).T).T  # (Phi_b A_b) Psi^T
        return Y_b, np.asarray(X_b, dtype=np.float64), Z_b


def _dask_block(A_b, start, plan, backend):
    with thread_limit(1):
        op = InMemory(A_b, name="A", backend=backend)
        return plan.sketch_block(op, start)


def _add(a, b):
    return a + b


def _tree_sum(items):
    import dask

    items = list(items)
    while len(items) > 1:
        pairs = [dask.delayed(_add)(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        items = pairs + (items[-1:] if len(items) % 2 else [])
    return items[0]


class StreamingSVD:
    """Rank-k SVD from a single pass over a stream of row blocks (data seen once).

    The one-pass sketch-and-solve method of Tropp, Yurtsever, Udell and Cevher: a range sketch
    ``Y = A Omega``, a co-range sketch ``X = Upsilon A`` and a core sketch ``Z = Phi A Psi^T``,
    updated block by block; ``result()`` reconstructs ``A ~ Q C P^T`` (QR of Y and X^T, least
    squares for the core C) and truncates it to rank k. Unlike ``randomized_svd`` (two or more
    passes), A is read once, in any split into blocks of consecutive rows, and the number of rows
    need not be known in advance.

    Parameters
    ----------
    k : int
        Rank of the result, >= 1.
    range_size : int, optional
        Columns s of the range and co-range sketches, ``k <= s`` (default ``4k + 1``, or
        ``min(4k + 1, (core_size - 1) // 2)`` when only core_size is given).
    core_size : int, optional
        Size c of the core sketch, ``s <= c`` (default ``2s + 1``). The defaults are the
        "natural" parameters of the paper: ``c = 2s + 1`` makes the core's
        error factor ``1 + s / (c - s - 1)`` equal to 2 in the worst case (bound on the expected
        squared error), ``s = 4k + 1`` puts the range finder within ``4/3`` of the optimal.
    sketch : {"countsketch", "gaussian"}, default "countsketch"
        Test matrices. "countsketch": sparse sign matrices with ``SPARSE_SIGN_NNZ`` nonzeros per
        column (stacked CountSketches from a counter-based hash; O(nnz) per block on fastlr's
        kernels). "gaussian": dense Gaussian test matrices (BLAS; row-side columns drawn from
        seeded tiles of rows).
    random_state : None, int, numpy RandomState or Generator
        Seed of the test matrices, drawn when the first block arrives (``fit`` draws anew).
    dtype : {None, float32, float64}
        Precision of the block sketches (None: the first block's; float32 stays float32, other
        types compute in float64). The sketches are accumulated and the reconstruction is done
        in float64; the result has this dtype.
    backend : {"cpp", "numba", "numpy"}, optional
        Kernel backend; None uses the current default.

    Attributes
    ----------
    n_rows_ : int
        Rows seen so far.
    n_features_ : int
        Columns d (fixed by the first block).
    range_size_, core_size_ : int
        The sketch sizes in use.

    Notes
    -----
    Memory: ``Y`` (n x s), ``X`` (s x d, float64), ``Z`` (c x c, float64) and the column-side
    test matrices: O((n + d) s + c^2) (Gaussian: plus O(d c) for Psi); ``nbytes`` reports it.
    When n and d are much larger than s, a larger ``core_size`` (e.g. ``4 s + 1``) costs little
    memory and makes the result clearly more accurate on noisy data (the core's error factor
    ``1 + s / (c - s - 1)`` drops from 2 to 4/3).

    Time per block of b rows and nnz_b stored entries: "countsketch", O(zeta nnz_b) for X and Z
    (zeta CountSketches each) and for Y of a sparse block, O(b d s) for Y of a dense block (one
    product with the d x s matrix Omega, faster than zeta strided passes); "gaussian",
    O(nnz_b (s + c)). ``result()``: O((n + d) s^2 + c s^2).

    References
    ----------
    J. A. Tropp, A. Yurtsever, M. Udell and V. Cevher, "Streaming low-rank matrix approximation
    with an application to scientific simulation", SIAM J. Sci. Comput. 41(4), 2019; and
    "Practical sketching algorithms for low-rank matrix approximation", SIAM J. Matrix Anal.
    Appl. 38(4), 2017.

    Examples
    --------
    >>> import numpy as np, fastlr
    >>> A = np.random.default_rng(0).standard_normal((1000, 40))
    >>> est = fastlr.StreamingSVD(5, random_state=0)
    >>> for start in range(0, 1000, 300):
    ...     _ = est.partial_fit(A[start:start + 300])
    >>> U, s, Vt = est.result()
    >>> U.shape, s.shape, Vt.shape
    ((1000, 5), (5,), (5, 40))
    """

    def __init__(self, k, *, range_size=None, core_size=None, sketch="countsketch", random_state=None,
                 dtype=None, backend=None):
        self.k = k
        self.range_size = range_size
        self.core_size = core_size
        self.sketch = sketch
        self.random_state = random_state
        self.dtype = dtype
        self.backend = backend
        self._check_params()
        self._reset()

    # ----------------------------------------------------------------- state

    def _check_params(self):
        self.range_size_, self.core_size_ = default_sizes(self.k, self.range_size, self.core_size)
        self.k_ = int(self.k)
        if not isinstance(self.sketch, str) or self.sketch not in SKETCHES:
            raise ValueError(f"sketch: must be one of {', '.join(map(repr, SKETCHES))}, got {self.sketch!r}")
        check_random_state(self.random_state)
        if self.dtype is not None:
            try:
                dtype = np.dtype(self.dtype)
            except TypeError:
                raise TypeError(f"dtype: expected None, float32 or float64, got {self.dtype!r}") from None
            if dtype not in (np.float32, np.float64):
                raise ValueError(f"dtype: expected None, float32 or float64, got {self.dtype!r}")

    def _reset(self):
        self._plan = None
        self._Y = []
        self._X = None
        self._Z = None
        self._cache = {}
        self.n_rows_ = 0
        self.n_features_ = None

    def _start(self, d: int, dtype):
        """Fix d, dtype and the seed at the first block."""
        self._check_params()
        dtype = np.dtype(self.dtype) if self.dtype is not None else float_dtype(dtype)
        seed = random_seed(self.random_state)
        self._plan = _TestMatrices(self.sketch, seed, self.range_size_, self.core_size_, d, dtype)
        self._X = np.zeros((self.range_size_, d))
        self._Z = np.zeros((self.core_size_, self.core_size_))
        self.n_features_ = d
        self.dtype_ = dtype

    def _check_columns(self, shape, name):
        if len(shape) != 2:
            raise ValueError(f"{name}: expected a 2-D block of rows, got shape {shape}")
        if shape[1] == 0:
            raise ValueError(f"{name}: expected at least one column, got shape {shape}")
        if self.n_features_ is not None and shape[1] != self.n_features_:
            raise ValueError(f"{name}: expected {self.n_features_} columns (fixed by the first block), "
                             f"got shape {shape}")

    def _add(self, Y_b, X_b, Z_b):
        self._Y.append(Y_b)
        self._X += X_b
        self._Z += Z_b
        self.n_rows_ += Y_b.shape[0]

    def _block(self, block, name):
        """Sketch one in-memory block of rows (at row n_rows_) and add it."""
        op = InMemory(block, name=name, backend=self.backend)
        self._check_columns(op.shape, name)
        if self._plan is None:
            self._start(op.shape[1], op.dtype)
        if op.dtype != self._plan.dtype:
            op = InMemory(op.A.astype(self._plan.dtype), name=name, backend=self.backend)
        if op.shape[0] == 0:
            return
        with blas_single_thread():
            parts = self._plan.sketch_block(op, self.n_rows_, self._cache)
        self._add(*parts)

    # ----------------------------------------------------------------- public

    def partial_fit(self, rows, y=None):
        """Add a block of consecutive rows (the next rows of A) to the sketches.

        Parameters
        ----------
        rows : array_like or scipy.sparse matrix, shape (b, d)
            Dense (any order; float32 stays float32) or sparse (kept sparse). The first block
            fixes d; an empty block (b = 0) is allowed.
        y : ignored

        Returns
        -------
        self

        Raises
        ------
        ValueError
            rows not 2-D, a column count other than the first block's, NaN or infinity.
        TypeError
            rows not a real numeric matrix.
        """
        self._block(rows, "rows")
        return self

    update = partial_fit

    def fit(self, A, y=None):
        """Sketch all of A in one pass (the previous state is discarded).

        Parameters
        ----------
        A : ndarray, numpy.memmap, scipy.sparse matrix or dask array, shape (n, d)
            In-memory and memory-mapped arrays are read in row blocks (bounded temporaries); a
            row-chunked dask array is sketched a task per chunk (each chunk read once) and the
            per-chunk sketches summed in a tree.

        Returns
        -------
        self
        """
        self._reset()
        if is_dask_array(A):
            self._fit_dask(A)
            return self
        if is_sparse(A) or not isinstance(A, np.ndarray):
            A = operand(A, name="A").A  # converted once (COO and others to CSR, lists to arrays)
        self._check_columns(A.shape, "A")
        if A.shape[0] == 0:
            raise ValueError(f"A: expected at least one row, got shape {A.shape}")
        if is_sparse(A):
            A = A.tocsr()  # row blocks of CSR are views; blocks of about _SPARSE_BLOCK_NNZ entries
            step = max(1, int(A.shape[0] * min(1.0, _SPARSE_BLOCK_NNZ / max(A.nnz, 1))))
        else:
            step = block_rows_for(A)  # about DEFAULT_BLOCK_BYTES as float64
        for start, stop in row_blocks(A.shape[0], step):
            self._block(A[start:stop], "A")
        return self

    def _fit_dask(self, A):
        import dask

        if A.ndim != 2:
            raise ValueError(f"A: expected a 2-D dask array, got ndim={A.ndim} with shape {A.shape}")
        if any(np.isnan(c) for c in A.shape):
            raise ValueError(f"A: has unknown chunk sizes {A.shape}; call A.compute_chunk_sizes() first")
        self._check_columns(A.shape, "A")
        if A.shape[0] == 0:
            raise ValueError(f"A: expected at least one row, got shape {A.shape}")
        dtype = dtype_for(A, "A")
        self._start(A.shape[1], dtype)
        A = A.astype(self._plan.dtype).rechunk({1: -1})
        starts = np.concatenate([[0], np.cumsum(A.chunks[0])[:-1]]).astype(int)
        blocks = A.to_delayed().ravel()
        plan = dask.delayed(self._plan, traverse=False)  # one node of the graph, not a copy per task
        parts = [dask.delayed(_dask_block, nout=3)(b, int(s), plan, self.backend) for b, s in zip(blocks, starts)]
        with blas_single_thread():
            Ys, X, Z = dask.compute([p[0] for p in parts], _tree_sum(p[1] for p in parts),
                                    _tree_sum(p[2] for p in parts))
        self._Y = list(Ys)
        self._X += X
        self._Z += Z
        self.n_rows_ = int(A.shape[0])

    def result(self) -> LowRank:
        """The rank-k approximation from the sketches so far: a LowRank (U, s, Vt).

        U (n x k) and Vt (k x d) have orthonormal columns/rows, s is descending, and the
        largest-magnitude entry of each column of U is positive (svd_flip). k is
        ``min(k, n, d)``. Can be called at any time; more blocks may follow.

        Raises
        ------
        ValueError
            Before any rows were seen.
        """
        if self._plan is None or self.n_rows_ == 0:
            raise ValueError("result: no data yet; call partial_fit(rows) or fit(A) first")
        plan = self._plan
        n, d = self.n_rows_, self.n_features_
        k = min(self.k_, n, d)
        with blas_single_thread():
            Y = np.concatenate(self._Y, axis=0) if len(self._Y) > 1 else self._Y[0]
            self._Y = [Y]
            Q = self._basis(Y)  # n x q
            P = self._basis(self._X.T)  # d x p
            if Q.shape[1] == 0 or P.shape[1] == 0:  # A = 0 (to working precision)
                Uk, sk, Vk = np.zeros((n, 0)), np.zeros(0), np.zeros((d, 0))
            else:
                PhiQ = np.zeros((plan.c, Q.shape[1]))
                for start, stop in row_blocks(n, _RESULT_BLOCK_ROWS):
                    op = InMemory.wrap(np.ascontiguousarray(Q[start:stop]), name="Q", backend=self.backend)
                    PhiQ += plan.phi_times(op, start)
                PsiP = plan.psi_of(P)  # c x p
                C = scipy.linalg.lstsq(PhiQ, self._Z, check_finite=False)[0]  # q x c
                C = scipy.linalg.lstsq(PsiP, C.T, check_finite=False)[0].T  # q x p
                Uc, sc, Vct = scipy.linalg.svd(C, full_matrices=False, check_finite=False)
                Uk, sk, Vk = Q @ Uc[:, :k], sc[:k], P @ Vct[:k].T
            # rank(A) < k: zero singular values, orthonormal vectors completing the others
            s_out = np.concatenate([sk, np.zeros(k - len(sk))])
            U, Vt = flip_signs(complete(Uk, k), complete(Vk, k).T)
        dtype = plan.dtype
        return LowRank(np.ascontiguousarray(U, dtype=dtype), s_out.astype(dtype),
                       np.ascontiguousarray(Vt, dtype=dtype))

    def _basis(self, Y) -> np.ndarray:
        """An orthonormal basis of range(Y) (tall Y, float64), cut at Y's numerical rank: SVQB rounds
        on fastlr's kernels (``_linalg.thin_svd``), several times faster than Householder QR."""
        Y = np.ascontiguousarray(Y, dtype=np.float64)
        U, sv, _ = InMemory.wrap(Y, name="Y", backend=self.backend).thin_svd(Y, Y.shape[1])
        tol = Y.shape[1] * np.finfo(self._plan.dtype).eps * (sv[0] if len(sv) else 0.0)
        return U[:, :int(np.count_nonzero(sv > tol))]

    @property
    def nbytes(self) -> int:
        """Bytes held by the sketches and the column-side test matrices."""
        total = sum(Y.nbytes for Y in self._Y)
        for arr in (self._X, self._Z):
            total += 0 if arr is None else arr.nbytes
        return total + (0 if self._plan is None else self._plan.nbytes)

    def __repr__(self) -> str:
        return (f"StreamingSVD(k={self.k}, range_size={self.range_size_}, core_size={self.core_size_}, "
                f"sketch={self.sketch!r}, rows seen={self.n_rows_})")

