"""The Operand interface and what every storage shares."""

from __future__ import annotations

import copy
import functools
from typing import Callable, NamedTuple

import numpy as np

from .._backend import get_backend
from .._linalg import normalize, truncate
from ..lowrank import LowRank

__all__ = ["Operand", "PowerSteps", "as_operand"]


class PowerSteps(NamedTuple):
    """The products of one run of power iterations on an operand (``Operand.power_steps``).

    ``step``: ``V -> A^T A V``, the cheapest way for the run (one pass per step, or products with
    the Gram matrix). ``last``: the product for float32's last step(s), ``A^T W`` with W = ``A V``
    normalized first (None: ``step`` serves). ``k``: the rank asked for, which the Ritz test of
    ``scw.power_iterations`` checks. ``tail``: ``V -> V_k`` (d x k) or None, the last steps as a
    Rayleigh-Ritz step on ``[V, A^T A V]`` where that is cheap and serves
    (``InMemory._gram_ritz_tail``); None where it does not apply.
    """

    step: Callable[[np.ndarray], np.ndarray]
    last: Callable[[np.ndarray], np.ndarray] | None
    k: int
    tail: Callable[[np.ndarray], np.ndarray | None] | None = None

class Operand:
    """A matrix A (n x d) that fastlr makes passes over.

    Attributes: ``shape``, ``dtype`` (float32 or float64, the dtype A computes
    in), ``backend`` (kernel backend name, None for the current default),
    ``name`` (for error messages), ``sparse``.

    Pass methods (each one pass over A; factors must be C-contiguous in
    ``dtype`` unless said otherwise): ``countsketch``, ``dense_sketch``,
    ``times`` (``A V``), ``rtimes`` (``A^T W``), ``gram_product``, and the
    algorithm-level ``sketch``, ``power_product``, ``thin_svd``, ``truncate``,
    ``result``. In-memory operands add the fused and gather kernels
    (``power_step``, ``gd_products``, ``gather_dot``, ...).
    """

    shape: tuple[int, int]
    dtype: np.dtype
    backend = None
    name = "A"
    sparse = False
    transposable = False  #: ``T`` works (in memory); row-blocked storage reads rows only
    split_last_step = False  #: ``last_power_step`` runs as two passes (``times``/``rtimes`` in memory)

    @property
    def kernels(self):
        return get_backend(self.backend)

    def with_backend(self, backend) -> "Operand":
        """This operand with another kernel backend (a shallow copy)."""
        if backend == self.backend:
            return self
        other = copy.copy(self)
        other.backend = backend
        return other

    def check_nonempty(self) -> "Operand":
        if self.shape[0] == 0 or self.shape[1] == 0:
            raise ValueError(f"{self.name}: expected a non-empty matrix, got shape {self.shape}")
        return self

    # ----------------------------------------------------------------- statistics (one pass each)

    def column_sums(self) -> np.ndarray:  # pragma: no cover - abstract
        """``A^T 1`` (d,) in float64."""
        raise NotImplementedError

    def centered_squared_norm(self, mu) -> float:  # pragma: no cover - abstract
        """``||A - 1 mu^T||_F^2`` in float64, without the cancellation of ``||A||^2 - ...``."""
        raise NotImplementedError

    def squared_norm(self) -> float:
        """``||A||_F^2`` in float64."""
        return self.centered_squared_norm(np.zeros(self.shape[1]))

    def row_squared_norms(self) -> np.ndarray:
        """``||A[i, :]||^2`` for every row (n,) in float64, in one pass over A (``fastlr.heavy_rows``)."""
        raise TypeError(f"{self.name}: row norms (heavy rows) are not available for {type(self).__name__} matrices")

    # ----------------------------------------------------------------- sketches

    def sketch(self, S) -> np.ndarray:
        """``S @ A`` (m x d ndarray) for any fastlr sketch, leaf by leaf (``S.parts()``); refused when
        not finite."""
        parts = [np.asarray(leaf.sketch_of(self)) for leaf in S.parts()]
        return self.checked_sketch(parts[0] if len(parts) == 1 else np.vstack(parts))

    def apply_sketch(self, S):
        """``S @ A`` as ``Sketch.apply`` returns it (dask operands: a lazy dask array)."""
        return self.sketch(S)

    def checked_sketch(self, SA: np.ndarray) -> np.ndarray:
        # S A is small (m x d): checking it is cheap, and it is non-finite exactly
        # when A holds NaN/inf (or the sum overflows), which would otherwise pass silently.
        if not np.isfinite(SA).all():
            raise ValueError(f"{self.name}: contains NaN or infinity (or overflows), so S @ A is not finite")
        return SA

    def countsketch(self, rows, values, m: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def countsketch_seeded(self, seed: int, m: int, start: int = 0):
        """S A for the seeded CountSketch (``sketch.countsketch_hash``), A's rows being the sketch's
        columns ``start .. start + n - 1``; here by building the columns' rows and signs first."""
        rows, signs = self.kernels.countsketch_hash(seed, m, start, start + self.shape[0])
        return self.countsketch(rows, signs.astype(self.dtype, copy=False), m)

    def countsketch_with_norms(self, rows, values, m: int):
        """``(countsketch(rows, values, m), row_squared_norms())`` from one pass over A where the operand has such
        a pass (a dense in-memory A), else None: what ``fastlr.HeavyRowSketch`` reads of A."""
        return None

    def countsketch_seeded_with_norms(self, seed: int, m: int):
        """``countsketch_with_norms`` for the seeded CountSketch (``countsketch_seeded(seed, m)``), or None."""
        return None

    def dense_sketch(self, G):  # pragma: no cover - abstract
        raise NotImplementedError

    # ----------------------------------------------------------------- products

    def times(self, V):  # pragma: no cover - abstract
        raise NotImplementedError

    def gram_product(self, V) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def power_product(self, r: int, n_iter: int):
        """``V -> A^T A V`` for r-column V, the cheapest way for n_iter steps: here one pass per step."""
        return self.gram_product

    def power_steps(self, r: int, n_iter: int, k: int | None = None) -> PowerSteps:
        """The products for ``n_iter`` power steps with r-column V, for a rank-k result (k: r by default)."""
        k = r if k is None else k
        return PowerSteps(self.power_product(r, n_iter), self.last_power_step(k), k)

    def last_power_step(self, k: int):
        """The product for the last power step (None: the fused ``power_product`` serves, as for
        row blocks and dask).

        The fused ``A^T (A V)`` rounds to about eps * sigma_1^2 * |V| in every direction, which
        swamps the directions below sqrt(eps) * sigma_1: 3e-4 in float32, where a 1000:1 spectrum
        lost its smallest components (100x scikit-learn's error); 1.5e-8 in float64, where it adds
        about eps * sigma_1^2 / sigma_k to the error (an exactly rank-10 float64 matrix with
        sigma_10 = 1e-6 sigma_1: 1e-10 relative, 10^4 times scikit-learn's). The last step
        instead forms ``A^T W`` with W = ``A V`` normalized first, whose rounding is
        eps * sigma_1 * |W|, as in scikit-learn's alternating steps (float64 takes it only where
        the Ritz test says the fused rounding shows: ``scw.power_iterations``). ``k``: the rank
        asked for.
        """
        if not self.split_last_step:
            return None
        return functools.partial(self.normalized_power_step, k=k)

    def normalized_power_step(self, V, k: int):
        """``A^T W``, W the LU basis of ``A V``: two passes (in-memory storage)."""
        return self.normalized_power_pass(V)[1]

    def normalized_power_pass(self, V) -> tuple[np.ndarray, np.ndarray]:
        """``(A V, A^T W)``, W the LU basis of ``A V``: two passes (in-memory storage). span(A^T W) =
        span(A^T A V), rounded to eps * sigma_1 * |W| instead of the fused product's eps * sigma_1^2."""
        P = self.times(V)
        return P, self.rtimes(np.ascontiguousarray(normalize(P, "LU"), dtype=self.dtype))

    def for_power_steps(self) -> "Operand":
        """The operand power steps should run on (in memory: CSC becomes CSR, one pass instead of two)."""
        return self

    @property
    def T(self) -> "Operand":
        raise ValueError(f"transpose: True is not supported for row-blocked (dask or memory-mapped) {self.name}")

    # ----------------------------------------------------------------- results

    def thin_svd(self, B, k: int, driver: str = "gesdd"):  # pragma: no cover - abstract
        """Thin SVD (UB[:, :k], sB, X) of B = ``self.times(V)``."""
        raise NotImplementedError

    def truncate(self, f, k: int, *, flip_sign: bool):
        """(U, s, Vt) of rank k from SCW factors ``f`` (``_linalg.truncate``)."""
        return truncate(f, k, self.dtype, flip_sign=flip_sign)

    @staticmethod
    def result(U, s, Vt) -> LowRank:
        return LowRank(U, s, Vt)

    def residual_norm(self, approximation: LowRank) -> float:
        """``||A - approximation||_F`` formed explicitly (``LowRank.error``: one pass over A)."""
        return approximation.error(self.A)


def as_operand(op: Operand, *, backend=None, block_rows=None) -> Operand:
    """An existing operand with ``backend`` set (``block_rows`` cannot change after construction)."""
    if block_rows is not None:
        raise ValueError("block_rows: cannot be given with an operand (it was set when the operand was made)")
    return op.with_backend(backend)

