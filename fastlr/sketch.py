"""Sketching operators: CountSketch, GaussianSketch and stacks of them.

A sketch is an m x n linear map S applied to an n x d matrix A as ``S @ A``
(or ``S.apply(A)``). The *distribution* (m, n, seed) is separate from the
sampled operator (``rows``, ``values``), so a sketch can also be built from
trained values (learned sketches).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._backend import get_backend
from ._outofcore import apply_by_row_blocks, wants_row_blocks
from ._validation import INT64_MAX, UINT64_MAX, as_matrix, check_int, check_sparse, float_dtype, is_sparse, real_array

__all__ = ["Sketch", "CountSketch", "GaussianSketch", "StackedSketch", "stack", "countsketch_hash"]

#: Largest CountSketch size the hash supports: multiply-shift maps 32 hash bits onto [0, m).
MAX_HASH_ROWS = 2**32


def countsketch_hash(seed: int, m: int, start: int, stop: int, *, backend=None) -> tuple[np.ndarray, np.ndarray]:
    """Rows and signs of CountSketch columns ``start .. stop-1`` for ``seed``.

    A counter-based generator: column i's hash depends only on (seed, i), so
    the sketch is the same in every backend, at every thread count, and for
    any split of the columns into chunks. Computed by the backend's kernel
    (``backend``: {"cpp", "numba", "numpy"}, None for the current default).

    Returns
    -------
    rows : int64 array, entries in [0, m)
    signs : float64 array of +1/-1
    """
    seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX)
    m = check_int(m, "m", minimum=1, maximum=MAX_HASH_ROWS)
    start = check_int(start, "start", minimum=0, maximum=INT64_MAX)
    stop = check_int(stop, "stop", minimum=start, maximum=INT64_MAX)
    return get_backend(backend).countsketch_hash(seed, m, start, stop)


class Sketch:
    """Base class of sketching operators: an m x n linear map."""

    shape: tuple[int, int]

    @property
    def m(self) -> int:
        """Number of rows of the sketch (the sketch size)."""
        return self.shape[0]

    @property
    def n(self) -> int:
        """Number of columns: the row count of the matrices it sketches."""
        return self.shape[1]

    def apply(self, A, *, backend=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def __matmul__(self, A):
        return self.apply(A)

    def to_dense(self) -> np.ndarray:
        """The sketch as a dense m x n float64 array."""
        return self.apply(np.eye(self.n))

    def _check_rows_of(self, A) -> None:
        if A.shape[0] != self.n:
            raise ValueError(
                f"A: has {A.shape[0]} rows but the sketch is {self.m} x {self.n} (it needs {self.n} rows)"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(m={self.m}, n={self.n})"


def _checked_output(SA: np.ndarray) -> np.ndarray:
    # S A is small (m x d): checking it is cheap, and it is non-finite exactly
    # when A holds NaN/inf (or the sum overflows), which would otherwise pass silently.
    if not np.isfinite(SA).all():
        raise ValueError("A: contains NaN or infinity (or overflows), so S @ A is not finite")
    return SA


class CountSketch(Sketch):
    """A CountSketch: an m x n sparse matrix with one nonzero per column.

    ``S[rows[i], i] = values[i]``; ``S @ A`` adds ``values[i] * A[i, :]`` into
    row ``rows[i]`` of the result, in one pass over A (O(nnz(A)) for sparse A).

    Parameters
    ----------
    m : int
        Sketch size (rows of S), 1 <= m <= 2**32.
    n : int
        Rows of the matrices to sketch (columns of S), 1 <= n < 2**63.
    seed : int, default 0
        Seed of the counter-based hash, 0 <= seed < 2**64; the same
        (m, n, seed) gives the same sketch everywhere.

    Attributes
    ----------
    rows : ndarray of int64, shape (n,)
        Row of S holding column i's nonzero.
    values : ndarray of float64, shape (n,)
        The nonzero values (+/-1 for a random sketch; trained for a learned one).

    Examples
    --------
    >>> import numpy as np, fastlr
    >>> S = fastlr.CountSketch(20, 1000, seed=0)
    >>> (S @ np.ones((1000, 3))).shape
    (20, 3)

    References
    ----------
    Clarkson and Woodruff, "Low rank approximation and regression in input
    sparsity time", STOC 2013.
    """

    def __init__(self, m: int, n: int, seed: int = 0):
        m = check_int(m, "m", minimum=1, maximum=MAX_HASH_ROWS)
        n = check_int(n, "n", minimum=1, maximum=INT64_MAX)
        seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX)
        rows, values = countsketch_hash(seed, m, 0, n)
        self._init(m, rows, values, owned=True)
        self.seed = seed

    def _init(self, m: int, rows: np.ndarray, values: np.ndarray, owned: bool = False) -> None:
        """owned: ``values`` are fresh finite float64 of shape (n,) (the hash's +-1), kept as they
        are instead of being copied and checked by the ``values`` setter (an O(n) pass each)."""
        self.shape = (m, len(rows))
        self.rows = rows
        self.seed = None
        if owned:
            self._values, self._values_f32 = values, None
        else:
            self.values = values

    @classmethod
    def from_arrays(cls, rows, values, m: int) -> "CountSketch":
        """A CountSketch with given ``rows`` (ints in [0, m)) and ``values``."""
        m = check_int(m, "m", minimum=1, maximum=INT64_MAX)
        rows = np.asarray(rows)
        values = np.asarray(values)
        if rows.ndim != 1 or len(rows) < 1:
            raise ValueError(f"rows: expected a non-empty 1-D array, got shape {rows.shape}")
        if rows.dtype.kind not in "iu":
            raise TypeError(f"rows: expected integers, got dtype {rows.dtype}")
        if rows.min() < 0 or rows.max() >= m:
            raise ValueError(f"rows: entries must lie in [0, {m}), found [{rows.min()}, {rows.max()}]")
        if values.shape != rows.shape:
            raise ValueError(f"values: expected shape {rows.shape} (like rows), got {values.shape}")
        self = cls.__new__(cls)
        self._init(m, rows.astype(np.int64, copy=True), values)
        return self

    @property
    def values(self) -> np.ndarray:
        return self._values

    @values.setter
    def values(self, values) -> None:
        values = real_array(values, "values")
        values = np.array(values, dtype=np.float64, copy=True)
        if values.shape != (self.n,):
            raise ValueError(f"values: expected shape ({self.n},), got {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError("values: must be finite")
        self._values = values
        self._values_f32 = None

    def _values_as(self, dtype: np.dtype) -> np.ndarray:
        if dtype == np.float64:
            return self._values
        if self._values_f32 is None:
            self._values_f32 = self._values.astype(np.float32)
        return self._values_f32

    def apply(self, A, *, backend=None) -> np.ndarray:
        """S @ A as a dense m x d array.

        Parameters
        ----------
        A : array_like or scipy.sparse matrix, shape (n, d)
            Dense input of any memory order (a non-contiguous view is copied
            once), or sparse CSR/CSC (other formats are converted to CSR).
            float32 stays float32; other real dtypes compute in float64.
            A row-chunked ``dask.array.Array`` gives a lazy dask result; an
            ``np.memmap`` is read in row blocks (bounded memory).
        backend : {"cpp", "numba", "numpy"}, optional
            Kernel backend; None uses the current default.

        Returns
        -------
        SA : ndarray, shape (m, d)

        Raises
        ------
        ValueError
            If A has the wrong number of rows or holds NaN/inf.
        TypeError
            If A is not a real numeric matrix.
        """
        if wants_row_blocks(A):  # a dask array (lazy result) or a memmap: see _dask.py, _outofcore.py
            return apply_by_row_blocks(self, A, backend=backend)
        A = as_matrix(A)
        self._check_rows_of(A)
        kernels = get_backend(backend)
        values = self._values_as(A.dtype)
        if not is_sparse(A):
            SA = kernels.countsketch_dense(A, self.rows, values, self.m)
        else:
            indptr, indices, data = (np.ascontiguousarray(x) for x in (A.indptr, A.indices, A.data))
            fn = kernels.countsketch_csr if A.format == "csr" else kernels.countsketch_csc
            SA = fn(indptr, indices, data, self.rows, values, self.m, A.shape[1])
        return _checked_output(SA)

    def gather_dot(self, A, D, *, backend=None) -> np.ndarray:
        """g[i] = <A[i, :], D[rows[i], :]>: the gradient of <D, S A> with respect to ``values``."""
        A = as_matrix(A)
        self._check_rows_of(A)
        D = np.ascontiguousarray(real_array(D, "D"), dtype=A.dtype)
        if D.shape != (self.m, A.shape[1]):
            raise ValueError(f"D: expected shape {(self.m, A.shape[1])}, got {D.shape}")
        if not np.isfinite(D).all():
            raise ValueError("D: contains NaN or infinity")
        kernels = get_backend(backend)
        if not is_sparse(A):
            g = kernels.countsketch_gather_dot(A, self.rows, D)
        else:
            A = A.tocsr()
            g = kernels.countsketch_gather_dot_csr(A.indptr, A.indices, A.data, self.rows, D)
        if not np.isfinite(g).all():  # n values: cheap; with D finite, only NaN/inf in A (or overflow) does this
            raise ValueError("A: contains NaN or infinity (or overflows), so the gather-dot is not finite")
        return g

    def save(self, path) -> None:
        """Write the sketch to ``path`` as an .npz file (no pickle); read it with ``fastlr.load_sketch``."""
        from .learn import save_sketch  # the file format lives with load_sketch

        save_sketch(self, path)

    def to_scipy(self) -> sp.csr_array:
        """The sketch as a scipy CSR array (m x n)."""
        return sp.csr_array((self.values, (self.rows, np.arange(self.n))), shape=self.shape)

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape)
        out[self.rows, np.arange(self.n)] = self.values
        return out

    @property
    def T(self) -> "_TransposedCountSketch":
        """S^T, for products ``S.T @ Y`` (n x p from an m x p Y) in O(n p)."""
        return _TransposedCountSketch(self)

    def __repr__(self) -> str:
        seed = "" if self.seed is None else f", seed={self.seed}"
        return f"{type(self).__name__}(m={self.m}, n={self.n}{seed})"


class _TransposedCountSketch:
    def __init__(self, S: CountSketch):
        self.S = S
        self.shape = (S.n, S.m)

    def __matmul__(self, Y) -> np.ndarray:
        if is_sparse(Y):
            Y = check_sparse(Y, "Y")  # scipy's compiled product trusts Y's indices
            if Y.shape[0] != self.S.m:
                raise ValueError(f"Y: expected {self.S.m} rows (the sketch's m), got shape {Y.shape}")
            return self.S.to_scipy().T @ Y
        Y = real_array(Y, "Y")
        if Y.ndim not in (1, 2) or Y.shape[0] != self.S.m:
            raise ValueError(f"Y: expected {self.S.m} rows (the sketch's m), got shape {Y.shape}")
        dtype = float_dtype(Y.dtype)
        values = self.S._values_as(dtype)
        scale = values if Y.ndim == 1 else values[:, None]
        return scale * Y.astype(dtype, copy=False)[self.S.rows]


class GaussianSketch(Sketch):
    """A dense Gaussian sketch: i.i.d. N(0, 1/m) entries ("Dense Random" in the paper).

    Parameters
    ----------
    m, n : int
        Shape of the sketch, both >= 1 (and < 2**63).
    seed : int, default 0
        Seed of NumPy's default generator, 0 <= seed < 2**64.
    """

    def __init__(self, m: int, n: int, seed: int = 0):
        m = check_int(m, "m", minimum=1, maximum=INT64_MAX)
        n = check_int(n, "n", minimum=1, maximum=INT64_MAX)
        self.seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX)
        self.shape = (m, n)
        self.matrix = np.random.default_rng(self.seed).standard_normal((m, n)) / np.sqrt(m)
        self._matrix_f32 = None

    def apply(self, A, *, backend=None) -> np.ndarray:
        """S @ A as a dense m x d array (BLAS; ``backend`` is accepted for uniformity)."""
        A = as_matrix(A)
        self._check_rows_of(A)
        if A.dtype == np.float32:
            if self._matrix_f32 is None:
                self._matrix_f32 = self.matrix.astype(np.float32)
            G = self._matrix_f32
        else:
            G = self.matrix
        SA = np.asarray((A.T @ G.T).T) if is_sparse(A) else G @ A
        return _checked_output(np.ascontiguousarray(SA))

    def to_dense(self) -> np.ndarray:
        return self.matrix.copy()

    def __repr__(self) -> str:
        return f"GaussianSketch(m={self.m}, n={self.n}, seed={self.seed})"


class StackedSketch(Sketch):
    """Sketches stacked vertically: ``[S1; S2; ...] @ A`` (mixed sketches).

    Parameters
    ----------
    sketches : iterable of Sketch
        At least one sketch; all with the same n.

    Raises
    ------
    ValueError
        If ``sketches`` is empty or the sketches differ in n.
    TypeError
        If an item is not a fastlr sketch.
    """

    def __init__(self, sketches):
        wrong = f"sketches: expected an iterable of fastlr sketches, got {type(sketches).__name__}"
        if isinstance(sketches, (Sketch, str, bytes)):
            raise TypeError(wrong)
        try:
            sketches = list(sketches)
        except TypeError:
            raise TypeError(wrong) from None
        if not sketches:
            raise ValueError("sketches: expected at least one sketch")
        for i, s in enumerate(sketches):
            if not isinstance(s, Sketch):
                raise TypeError(f"sketches[{i}]: expected a fastlr sketch, got {type(s).__name__}")
            if s.n != sketches[0].n:
                raise ValueError(f"sketches[{i}]: has n={s.n}, but sketches[0] has n={sketches[0].n}")
        self.sketches = sketches
        self.shape = (sum(s.m for s in self.sketches), self.sketches[0].n)

    def apply(self, A, *, backend=None) -> np.ndarray:
        A = as_matrix(A)
        self._check_rows_of(A)
        return np.vstack([s.apply(A, backend=backend) for s in self.sketches])

    def __repr__(self) -> str:
        return f"StackedSketch({self.sketches!r})"


def stack(sketches) -> StackedSketch:
    """Stack sketches with the same n vertically (e.g. a learned and a random CountSketch)."""
    return StackedSketch(sketches)
