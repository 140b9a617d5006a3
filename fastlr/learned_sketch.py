"""Learned sketches: the CountSketch with trained values that :func:`fastlr.learn_sketch` returns.

``LearnedSketch`` is a CountSketch (usable everywhere a sketch is) that also
carries what training recorded; a *mixed* one stacks fixed random rows below
the learned ones. ``S.save(path)`` writes any CountSketch to an .npz file (see
``fastlr.sketch_file``) and :func:`load_sketch` reads it back, without pickle.
This module belongs to the sketch layer: it imports no algorithm.
"""

from __future__ import annotations

import json

import numpy as np

from ._safeguards import Validation
from ._validation import check_int
from .heavy_rows import HeavyRowSketch
from .sketch import MAX_HASH_ROWS, CountSketch, stack
from .sketch_file import FORMAT, VERSION, read_sketch_arrays

__all__ = ["HISTORY_DTYPE", "MIXED", "LearnedSketch", "load_sketch"]

#: How the rows of a mixed sketch are trained: None (not mixed), "joint" or "separate".
MIXED = (None, "joint", "separate")

#: One row of ``LearnedSketch.history``.
HISTORY_DTYPE = np.dtype(
    [("step", np.int64), ("train_loss", np.float64), ("val_err", np.float64), ("seconds", np.float64)]
)


class LearnedSketch(CountSketch):
    """A CountSketch with trained values, returned by :func:`learn_sketch`.

    Usable everywhere a sketch is (``S @ A``, ``fastlr.scw(A, S, k)``, ...).
    A *mixed* sketch (``mixed="joint"`` or ``"separate"``) is the learned
    CountSketch stacked on a fixed random one: ``rows`` and ``values`` are the
    learned rows ``0 .. m_learned-1``, ``fixed`` holds the random rows below
    them, and ``apply``, ``to_dense``, ``to_scipy`` and ``T`` act on the whole
    m x n operator.

    Attributes
    ----------
    history : ndarray with fields step, train_loss, val_err, seconds
        One row per training step: the batch's mean loss ``||A - SCW(S, A)||_F``
        (each A scaled to sigma_1 = 1; for ``"separate"`` the learned part
        alone), the validation Err (NaN where not evaluated; step 0 is the
        random start) and the training seconds so far (evaluation excluded).
    k : int
        The rank the sketch was trained for.
    mixed : None, "joint" or "separate"
    fixed : CountSketch or None
        The random rows of a mixed sketch.
    validation : Validation or None
        How the sketch was validated while training (the validation set, the
        random start's and the returned sketch's validation Err, the step
        returned, why training stopped); None when training had no validation
        matrices (``holdout=0`` without ``val``, or a single training matrix).
    fallback : bool
        True when the learned values did not beat the random start on
        validation and the random start was returned instead (a
        :class:`fastlr.LearnedSketchWarning` was emitted).
    """

    def __init__(self, rows, values, m_learned: int, *, k: int, fixed: CountSketch | None = None,
                 mixed: str | None = None, history=None, validation: Validation | None = None):
        learned = CountSketch.from_arrays(rows, values, m_learned)  # validates rows and values
        self._init(learned.m, learned.rows, learned.values)
        self.k = check_int(k, "k", minimum=1)
        if (fixed is None) != (mixed is None):
            raise ValueError("fixed: a mixed sketch needs its fixed part, and only a mixed one has one")
        if fixed is not None and fixed.n != self.n:
            raise ValueError(f"fixed: has n={fixed.n}, but the learned part has n={self.n}")
        self.fixed = fixed
        self.mixed = mixed
        if fixed is not None:
            self.shape = (m_learned + fixed.m, self.n)
        self.history = np.zeros(0, HISTORY_DTYPE) if history is None else np.asarray(history, HISTORY_DTYPE)
        self.validation = validation

    @property
    def fallback(self) -> bool:
        """True when validation found no step better than the random start, which was returned."""
        return self.validation is not None and self.validation.fallback

    @property
    def m_learned(self) -> int:
        """Rows with trained values (all of them unless mixed)."""
        return self.shape[0] - (self.fixed.m if self.fixed is not None else 0)

    def learned_part(self) -> CountSketch:
        """The trained rows alone, as a plain CountSketch."""
        return CountSketch.from_arrays(self.rows, self.values, self.m_learned)

    def _operator(self):
        return None if self.fixed is None else stack([self.learned_part(), self.fixed])

    def parts(self) -> list:
        """The leaves this sketch stacks: itself, or the learned rows and the fixed random rows."""
        return [self] if self.fixed is None else [self.learned_part(), self.fixed]

    def apply(self, A, *, backend=None) -> np.ndarray:
        if self.fixed is None:
            return super().apply(A, backend=backend)
        return self._operator().apply(A, backend=backend)

    def gather_dot(self, A, D, *, backend=None) -> np.ndarray:
        """g[i] = <A[i, :], D[rows[i], :]>: the gradient of <D, S A> with respect to ``values``.

        For a mixed sketch D may have m_learned rows or all m (the fixed rows are ignored).
        """
        if self.fixed is not None and np.shape(D)[0] == self.m:
            D = np.asarray(D)[: self.m_learned]
        return (self.learned_part() if self.fixed is not None else super()).gather_dot(A, D, backend=backend)

    def to_dense(self) -> np.ndarray:
        if self.fixed is None:
            return super().to_dense()
        return np.vstack([self.learned_part().to_dense(), self.fixed.to_dense()])

    def to_scipy(self):
        if self.fixed is None:
            return super().to_scipy()
        import scipy.sparse as sp

        return sp.csr_array(sp.vstack([self.learned_part().to_scipy(), self.fixed.to_scipy()]))

    @property
    def T(self):
        if self.fixed is None:
            return super().T
        return _StackedTranspose(self.learned_part(), self.fixed)

    def __repr__(self) -> str:
        mixed = "" if self.mixed is None else f", mixed={self.mixed!r}"
        return f"LearnedSketch(m={self.m}, n={self.n}, k={self.k}{mixed}, steps={len(self.history)})"


class _StackedTranspose:
    def __init__(self, top: CountSketch, bottom: CountSketch):
        self.top, self.bottom = top, bottom
        self.shape = (top.n, top.m + bottom.m)

    def __matmul__(self, Y):
        Y = np.asarray(Y)
        if Y.ndim not in (1, 2) or Y.shape[0] != self.shape[1]:
            raise ValueError(f"Y: expected {self.shape[1]} rows (the sketch's m), got shape {Y.shape}")
        return self.top.T @ Y[: self.top.m] + self.bottom.T @ Y[self.top.m :]


def load_sketch(path) -> CountSketch:
    """Read a sketch written by ``S.save(path)`` (``path``: a file name or a binary file object).

    Returns
    -------
    CountSketch, LearnedSketch, or a HeavyRowSketch of one of them

    Raises
    ------
    ValueError
        If the file is corrupted, truncated, not a fastlr sketch, of an unknown
        version, or its arrays do not fit together.
    """
    z = read_sketch_arrays(path)

    def get(name, kind="", ndim=0):
        if name not in z:
            raise ValueError(f"path: {path} is not a fastlr sketch file (no {name!r} entry)")
        a = z[name]
        if a.ndim != ndim or (kind and a.dtype.kind not in kind):
            raise ValueError(f"path: {path} has a malformed {name!r} entry (dtype {a.dtype}, shape {a.shape})")
        return a if ndim else a[()]

    if "format" not in z or str(z["format"]) != FORMAT:
        raise ValueError(f"path: {path} is not a fastlr sketch file")
    version = int(get("version", "iu"))
    if version != VERSION:
        raise ValueError(f"path: {path} has format version {version}; this fastlr reads version {VERSION}")
    kind = str(get("kind", "U"))
    heavy = kind == "heavy"  # a HeavyRowSketch: its base's entries, and its rule
    if heavy:
        kind = str(get("base_kind", "U"))
    if kind not in ("countsketch", "learned"):
        raise ValueError(f"path: {path} holds an unknown sketch kind {kind!r}")

    def countsketch(prefix):
        m, rows, values = int(get(prefix + "m", "iu")), get(prefix + "rows", "iu", 1), get(prefix + "values", "f", 1)
        if m < 1 or len(rows) == 0:
            raise ValueError(f"path: {path} holds an empty sketch (m={m}, n={len(rows)})")
        if m > MAX_HASH_ROWS:  # as for CountSketch(m, n): S @ A would be m x d
            raise ValueError(f"path: {path} holds a sketch of m={m} rows; at most {MAX_HASH_ROWS} are supported")
        if len(values) != len(rows):
            raise ValueError(f"path: {path} is inconsistent: {len(rows)} rows but {len(values)} values")
        if rows.min() < 0 or rows.max() >= m:
            raise ValueError(f"path: {path} is inconsistent: row indices outside [0, {m})")
        if not np.isfinite(values).all():
            raise ValueError(f"path: {path} holds non-finite values")
        return CountSketch.from_arrays(rows, values, m)

    def with_heavy_rows(base):
        threshold, max_rows = float(get("heavy_threshold", "f")), int(get("heavy_max_rows", "iu"))
        seed = int(get("heavy_seed", "iu"))
        try:
            return HeavyRowSketch(base, threshold=threshold, max_rows=max_rows, seed=seed)
        except ValueError as exc:  # e.g. max_rows past what the base allows
            raise ValueError(f"path: {path} holds a malformed heavy-row rule ({exc})") from None

    def seed_of(name):  # a seed entry: -1 for none (sketch_file._seed_entry)
        seed = int(get(name, "iu"))
        return None if seed < 0 else seed

    def with_reference(out):
        if any(name.startswith("reference_") for name in z):  # all four entries, or the file is malformed
            R = countsketch("reference_")
            if R.shape != out.shape:
                raise ValueError(f"path: {path} is inconsistent: the reference is {R.m} x {R.n}, the sketch "
                                 f"{out.m} x {out.n}")
            R.seed = seed_of("reference_seed")
            out.reference = R
        return out

    S = countsketch("")
    seed = seed_of("seed")
    if kind == "countsketch":
        S.seed = seed
        return with_reference(with_heavy_rows(S) if heavy else S)
    mixed = str(get("mixed", "U")) or None
    if mixed not in MIXED:
        raise ValueError(f"path: {path} holds an unknown mixed value {mixed!r}")
    fixed = countsketch("fixed_") if mixed is not None else None
    if fixed is not None and fixed.n != S.n:
        raise ValueError(f"path: {path} is inconsistent: the fixed part has n={fixed.n}, the learned part {S.n}")
    history = get("history", "V", 1)
    if history.dtype != HISTORY_DTYPE:
        raise ValueError(f"path: {path} has a malformed 'history' entry (dtype {history.dtype})")
    validation = None
    if "validation" in z:  # written since issue 15
        try:
            validation = Validation(**json.loads(str(get("validation", "U"))))
        except (TypeError, ValueError):
            raise ValueError(f"path: {path} has a malformed 'validation' entry") from None
    out = LearnedSketch(S.rows, S.values, S.m, k=int(get("k", "iu")), fixed=fixed, mixed=mixed, history=history,
                        validation=validation)
    out.seed = seed
    return with_reference(with_heavy_rows(out) if heavy else out)
