"""Sketching operators: CountSketch, GaussianSketch and stacks of them.

A sketch is an m x n linear map S applied to an n x d matrix A as ``S @ A``
(or ``S.apply(A)``). The *distribution* (m, n, seed) is separate from the
sampled operator (``rows``, ``values``), so a sketch can also be built from
trained values (learned sketches).

Every sketch is a vertical stack of leaves (``parts()``): CountSketches and
dense sketches. A leaf applies itself to an operand of the matrix layer
(``sketch_of(op)``: ``op.countsketch`` or ``op.dense_sketch``), so any sketch
runs on every storage the matrix layer has (in memory, row blocks, dask).
"""

from __future__ import annotations

import copy
import functools
import inspect

import numpy as np
import scipy.sparse as sp

from ._backend import get_backend
from ._matrix import InMemory, operand, seeded_countsketch
from ._validation import INT64_MAX, UINT64_MAX, check_int, check_sparse, float_dtype, is_sparse, real_array
from .sketch_file import save_sketch

__all__ = ["Sketch", "CountSketch", "DenseSketch", "GaussianSketch", "StackedSketch", "stack", "countsketch_hash",
           "guarded_by_random", "keeps_reference"]

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
    """Base class of sketching operators: an m x n linear map.

    Attributes
    ----------
    reference : CountSketch or None
        A random CountSketch of the same shape that ``fastlr.scw`` also runs
        (``guard=True``), returning the more accurate result on each matrix:
        ``learn_sketch`` and the data-driven sketches set it to the
        ``CountSketch(m, n, seed)`` they start from, so they are never worse
        than it. None (the default): S alone. Only ``fastlr.scw`` (and
        ``sketch_error``, which judges scw's result) use it; ``S @ A`` and
        every other use of the sketch apply S alone.
    """

    shape: tuple[int, int]
    _reference = None

    @property
    def reference(self):
        return self._reference

    @reference.setter
    def reference(self, R) -> None:
        if R is not None:
            if not isinstance(R, Sketch):
                raise TypeError(f"reference: expected a fastlr sketch or None, got {type(R).__name__}")
            if tuple(R.shape) != tuple(self.shape):
                raise ValueError(f"reference: has shape {tuple(R.shape)}, but the sketch is {self.m} x {self.n}")
        self._reference = R

    @property
    def m(self) -> int:
        """Number of rows of the sketch (the sketch size)."""
        return self.shape[0]

    @property
    def n(self) -> int:
        """Number of columns: the row count of the matrices it sketches."""
        return self.shape[1]

    def parts(self) -> list:
        """The leaves (CountSketches and dense sketches) this sketch stacks vertically."""
        return [self]

    def sketch_of(self, op):  # pragma: no cover - abstract
        """``S @ A`` for a leaf S and an operand of the matrix layer."""
        raise NotImplementedError

    def apply(self, A, *, backend=None):
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
        SA : ndarray, shape (m, d) (a lazy dask array for dask input)

        Raises
        ------
        ValueError
            If A has the wrong number of rows or holds NaN/inf.
        TypeError
            If A is not a real numeric matrix.
        """
        op = operand(A, backend=backend)
        self._check_rows_of(op)
        return op.apply_sketch(self)

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
        self.seed = check_int(seed, "seed", minimum=0, maximum=UINT64_MAX)
        # Nothing of size n yet: S @ A hashes each column inside the kernel's pass over A, and
        # ``rows`` / ``values`` are built from the same hash the first time they are asked for.
        self.shape = (m, n)
        self._rows = self._values = self._values_f32 = None

    def _init(self, m: int, rows: np.ndarray, values: np.ndarray) -> None:
        self.shape = (m, len(rows))
        self._rows = rows
        self.seed = None
        self.values = values

    def _materialize(self) -> None:
        """rows and values of a seeded sketch from its hash (fresh +-1 values: kept without a copy)."""
        rows, values = countsketch_hash(self.seed, self.m, 0, self.n)
        self._rows, self._values, self._values_f32 = rows, values, None

    @property
    def rows(self) -> np.ndarray:
        if self._rows is None:
            self._materialize()
        return self._rows

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

    @classmethod
    def _owning(cls, rows: np.ndarray, values: np.ndarray, m: int) -> "CountSketch":
        """A CountSketch holding ``rows`` and ``values`` themselves: ``from_arrays`` without its checks and
        copies, for arrays fastlr has just built (int64 rows in [0, m), finite float64 values, owned by no one
        else). HeavyRowSketch builds one per matrix: the checks and copies took 4.6 ms at n = 10^6."""
        self = cls.__new__(cls)
        self.shape = (m, len(rows))
        self.seed = None
        self._rows, self._values, self._values_f32 = rows, values, None
        return self

    @property
    def values(self) -> np.ndarray:
        if self._rows is None:
            self._materialize()
        return self._values

    @values.setter
    def values(self, values) -> None:
        values = real_array(values, "values")
        values = np.array(values, dtype=np.float64, copy=True)
        if values.shape != (self.n,):
            raise ValueError(f"values: expected shape ({self.n},), got {values.shape}")
        if not np.isfinite(values).all():
            raise ValueError("values: must be finite")
        if self._rows is None:
            self._materialize()
        self._values = values
        self._values_f32 = None

    def _values_as(self, dtype: np.dtype) -> np.ndarray:
        if dtype == np.float64:
            return self.values
        if self._values_f32 is None:
            self._values_f32 = self.values.astype(np.float32)
        return self._values_f32

    def apply(self, A, *, backend=None):
        # A seeded sketch and a plain ndarray (the common call) take one call of the compiled core; anything
        # it declines (seeded_countsketch: None) takes the general path, with the same result or error.
        if self._rows is None:
            SA = seeded_countsketch(A, self.seed, self.shape[0], self.shape[1], backend)
            if SA is not None:
                return SA
        return Sketch.apply(self, A, backend=backend)

    apply.__doc__ = Sketch.apply.__doc__

    def sketch_of(self, op):
        if self._rows is None:  # seeded and never materialized: hash inside the kernel's pass
            return op.countsketch_seeded(self.seed, self.m)
        return op.countsketch(self.rows, self._values_as(op.dtype), self.m)

    def sketch_with_norms_of(self, op):
        """``(sketch_of(op), op.row_squared_norms())`` from one pass over A where the operand has one, else None
        (``fastlr.HeavyRowSketch``: the base's S A is its result when no row of A is heavy)."""
        if self._rows is None:
            return op.countsketch_seeded_with_norms(self.seed, self.m)
        return op.countsketch_with_norms(self.rows, self._values_as(op.dtype), self.m)

    def gather_dot(self, A, D, *, backend=None) -> np.ndarray:
        """g[i] = <A[i, :], D[rows[i], :]>: the gradient of <D, S A> with respect to ``values``."""
        op = InMemory(A, backend=backend)
        self._check_rows_of(op)
        D = np.ascontiguousarray(real_array(D, "D"), dtype=op.dtype)
        if D.shape != (self.m, op.shape[1]):
            raise ValueError(f"D: expected shape {(self.m, op.shape[1])}, got {D.shape}")
        if not np.isfinite(D).all():
            raise ValueError("D: contains NaN or infinity")
        g = op.gather_dot(self.rows, D)
        if not np.isfinite(g).all():  # n values: cheap; with D finite, only NaN/inf in A (or overflow) does this
            raise ValueError("A: contains NaN or infinity (or overflows), so the gather-dot is not finite")
        return g

    def save(self, path) -> None:
        """Write the sketch to ``path`` as an .npz file (no pickle); read it with ``fastlr.load_sketch``."""
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


class DenseSketch(Sketch):
    """A sketch given by a dense m x n matrix (e.g. ``fastlr.datadriven.subspace_sketch``; a
    GaussianSketch is one with random entries).

    Parameters
    ----------
    matrix : array_like, shape (m, n)
        Finite real values; stored as float64 (a float32 copy is made once for
        float32 inputs).
    """

    def __init__(self, matrix):
        M = np.asarray(matrix)
        if M.dtype.kind not in "biuf":
            raise TypeError(f"matrix: expected a real numeric array, got dtype {M.dtype}")
        if M.ndim != 2 or min(M.shape) < 1:
            raise ValueError(f"matrix: expected a non-empty 2-D array, got shape {M.shape}")
        M = np.array(M, dtype=np.float64, order="C", copy=True)
        if not np.isfinite(M).all():
            raise ValueError("matrix: must be finite")
        self.matrix = M
        self.shape = M.shape
        self._matrix_f32 = None

    def sketch_of(self, op):
        """``S @ A`` by BLAS (the operand's ``dense_sketch``): ``S.apply(A)``, ``S @ A`` and
        ``fastlr.scw`` reach it for dense, scipy.sparse, memory-mapped and dask matrices."""
        if op.dtype != np.float32:
            return op.dense_sketch(self.matrix)
        if self._matrix_f32 is None:
            self._matrix_f32 = self.matrix.astype(np.float32)
        return op.dense_sketch(self._matrix_f32)

    def to_dense(self) -> np.ndarray:
        return self.matrix.copy()

    def __repr__(self) -> str:
        return f"DenseSketch(m={self.m}, n={self.n})"


class GaussianSketch(DenseSketch):
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

    def parts(self) -> list:
        return [leaf for s in self.sketches for leaf in s.parts()]

    def __repr__(self) -> str:
        return f"StackedSketch({self.sketches!r})"


def stack(sketches) -> StackedSketch:
    """Stack sketches with the same n vertically (e.g. a learned and a random CountSketch)."""
    return StackedSketch(sketches)


def _with_reference(S: Sketch, R: Sketch | None, given) -> Sketch:
    """S with ``reference = R``; a shallow copy when S is one of the caller's arguments (never modified)."""
    if any(S is a for a in given):
        S = copy.copy(S)
    S.reference = R
    return S


def guarded_by_random(builder):
    """Decorator of the functions that build a learned or data-driven sketch from a ``seed``: the sketch they
    return carries ``reference = CountSketch(S.m, S.n, seed)``, the random sketch they start from, so that
    ``fastlr.scw`` (``guard=True``) never does worse than it on any matrix. Not when the result is that random
    sketch itself."""
    signature = inspect.signature(builder)

    @functools.wraps(builder)
    def build(*args, **kwargs):
        S = builder(*args, **kwargs)
        arguments = signature.bind(*args, **kwargs)
        arguments.apply_defaults()
        seed = int(arguments.arguments["seed"])  # the builder has validated it
        if type(S) is CountSketch and S.seed == seed:  # the random CountSketch(m, n, seed) itself
            return S
        return _with_reference(S, CountSketch(S.m, S.n, seed=seed), arguments.arguments.values())

    return build


def keeps_reference(refiner):
    """Decorator of the functions that improve a given sketch ``S``: what they return keeps S's reference (or
    has none when S has none)."""
    signature = inspect.signature(refiner)

    @functools.wraps(refiner)
    def refine(*args, **kwargs):
        out = refiner(*args, **kwargs)
        arguments = signature.bind(*args, **kwargs)
        reference = arguments.arguments["S"].reference
        if reference is None or out.reference is reference:
            return out
        return _with_reference(out, reference, arguments.arguments.values())

    return refine
