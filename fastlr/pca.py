"""PCA: scikit-learn's estimator whose randomized solver centers implicitly (sparse stays sparse).

Importing this module imports scikit-learn (``fastlr.PCA`` loads it on first use).
"""

from __future__ import annotations

from math import log, sqrt
from numbers import Integral

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, svds
from sklearn.base import _fit_context
from sklearn.decomposition._base import _BasePCA
from sklearn.utils import check_random_state
from sklearn.utils._arpack import _init_arpack_v0
from sklearn.utils._param_validation import Interval, RealNotInt, StrOptions
from sklearn.utils.extmath import fast_logdet, svd_flip
from sklearn.utils.validation import check_is_fitted, validate_data

from ._backend import _check_name as _check_backend_name
from ._matrix import operand
from ._matrix.centered import Centered
from ._matrix.memory import _gram
from ._pca_rank import minka_rank
from ._validation import check_sparse
from .randomized import randomized_svd
from .tolerance import accuracy_floor, svd_to_tolerance

__all__ = ["PCA", "fast_solver"]


def _is_fraction(k) -> bool:
    """n_components given as a fraction of the variance (a float in (0, 1), NumPy floats included)."""
    return k is not None and not isinstance(k, (Integral, str))


def fast_solver(X, n_components) -> str:
    """The solver of fastlr's own front ends (``fastlr pca``): "randomized" (sparse X stays sparse;
    a fraction picks the rank by accuracy) unless X is small or most components are wanted,
    where "full" is as fast. ``svd_solver="auto"`` instead follows scikit-learn's choice, for the
    same answers as scikit-learn's PCA."""
    k = n_components
    if k == "mle":
        return "full"
    if sp.issparse(X) or (max(X.shape) > 500 and (_is_fraction(k) or (k is not None and 1 <= k < 0.8 * min(X.shape)))):
        return "randomized"
    return "full"


SOLVERS = ("auto", "full", "covariance_eigh", "randomized", "arpack")


class PCA(_BasePCA):
    """Principal component analysis; the randomized solver never centers (or densifies) X.

    A drop-in for :class:`sklearn.decomposition.PCA` (same parameters,
    defaults, fitted attributes, ``transform``, ``inverse_transform``,
    ``score``) whose ``"randomized"`` solver is :func:`fastlr.randomized_svd`
    on the implicitly centered ``X - 1 mean_^T`` (``fastlr._matrix.centered``):
    every pass is a pass over X plus rank-one corrections, so a sparse CSR X
    stays sparse and memory stays O(nnz + (n_samples + n_features) k).
    ``n_components`` in (0, 1) with the randomized solver picks the number of
    components by accuracy (:func:`fastlr.svd_to_tolerance` on the centered
    operand) instead of computing a full SVD.

    Parameters
    ----------
    n_components : int, float in (0, 1), "mle" or None, default None
        int: number of components (``0 <= k <= min(X.shape)`` for "full" and
        "covariance_eigh", ``>= 1`` for "randomized", ``< min(X.shape)`` for
        "arpack"). float: keep the fewest components whose explained variance
        ratios sum to at least this ("full", "covariance_eigh" and
        "randomized"). "mle": Minka's choice of the dimension ("full" and
        "covariance_eigh"; ``n_samples >= n_features``). None: ``min(X.shape)``
        (minus one for "arpack").
    copy : bool, default True
        Only used by "full" on dense X: False centers X in place.
    whiten : bool, default False
        ``transform`` divides the projections by ``sqrt(explained_variance_)``.
    svd_solver : {"auto", "full", "covariance_eigh", "randomized", "arpack"}, default "auto"
        As in scikit-learn. "full": LAPACK SVD of the centered dense X (sparse X:
        TypeError). "covariance_eigh": eigendecomposition of the covariance
        matrix ``X^T X - n mean mean^T`` (dense X: fastlr's blocked SYRK; sparse
        X stays sparse); exact, and fast for tall X with few features.
        "randomized": fastlr's randomized SVD of the implicitly centered X
        (dense or sparse: unlike scikit-learn's, it takes sparse X).
        "arpack": :func:`scipy.sparse.linalg.svds` on the implicitly centered X.
        "auto": scikit-learn's choice, so that results agree with its PCA:
        sparse X -> "arpack" ("randomized" for a float ``n_components``, which
        "arpack" does not take); dense X with ``n_features <= 1000`` and
        ``n_samples >= 10 n_features`` -> "covariance_eigh"; ``max(X.shape)
        <= 500`` or "mle" -> "full"; ``1 <= n_components < 0.8 min(X.shape)``
        -> "randomized"; else "full". Name "randomized" for the fastest
        approximate answer on large X.
    tol : float, default 0.0
        ARPACK's tolerance ("arpack" only).
    iterated_power : int or "auto", default "auto"
        Power iterations of "randomized" (see :func:`fastlr.randomized_svd`);
        with a float ``n_components``, "auto" means 2 per block.
    n_oversamples : int, default 10
        Extra columns of the randomized range finder (``>= 1``).
    power_iteration_normalizer : {"auto", "QR", "LU", "none"}, default "auto"
    random_state : int, RandomState instance or None, default None
    backend : {"cpp", "numba", "numpy"}, optional
        fastlr kernel backend ("randomized" and "arpack"); None: the default.

    Attributes
    ----------
    components_ : ndarray of shape (n_components_, n_features)
        Principal axes (rows), signs as scikit-learn's (``svd_flip`` with
        ``u_based_decision=False``).
    explained_variance_ : ndarray of shape (n_components_,)
        ``singular_values_**2 / (n_samples - 1)``.
    explained_variance_ratio_ : ndarray of shape (n_components_,)
        Over the total variance ``||X - 1 mean_^T||_F^2 / (n_samples - 1)``
        (computed exactly, in float64, without densifying).
    singular_values_ : ndarray of shape (n_components_,)
    mean_ : ndarray of shape (n_features,)
    n_components_ : int
    n_samples_ : int
    noise_variance_ : float
        Mean of the variances not kept (probabilistic PCA's sigma^2).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when X has string column names.

    See Also
    --------
    sklearn.decomposition.PCA : the estimator this one replaces.
    fastlr.TruncatedSVD : no centering.

    References
    ----------
    Halko, Martinsson and Tropp, "Finding structure with randomness", SIAM
    Review 2011. Yu, Gu and Li, "Efficient randomized algorithms for the
    fixed-precision low-rank matrix approximation", SIMAX 2018.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, fastlr
    >>> X = sp.random(1000, 200, density=0.05, format="csr", random_state=0)
    >>> pca = fastlr.PCA(n_components=5, random_state=0).fit(X)
    >>> pca.transform(X).shape
    (1000, 5)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 0, None, closed="left"),
                         Interval(RealNotInt, 0, 1, closed="neither"), StrOptions({"mle"}), None],
        "copy": ["boolean"],
        "whiten": ["boolean"],
        "svd_solver": [StrOptions(set(SOLVERS))],
        "tol": [Interval(RealNotInt, 0, None, closed="left")],
        "iterated_power": [StrOptions({"auto"}), Interval(Integral, 0, None, closed="left")],
        "n_oversamples": [Interval(Integral, 1, None, closed="left")],
        "power_iteration_normalizer": [StrOptions({"auto", "QR", "LU", "none"})],
        "random_state": ["random_state"],
        "backend": "no_validation",
    }

    def __init__(self, n_components=None, *, copy=True, whiten=False, svd_solver="auto", tol=0.0,
                 iterated_power="auto", n_oversamples=10, power_iteration_normalizer="auto", random_state=None,
                 backend=None):
        self.n_components = n_components
        self.copy = copy
        self.whiten = whiten
        self.svd_solver = svd_solver
        self.tol = tol
        self.iterated_power = iterated_power
        self.n_oversamples = n_oversamples
        self.power_iteration_normalizer = power_iteration_normalizer
        self.random_state = random_state
        self.backend = backend

    fast_solver = staticmethod(fast_solver)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.sparse = self.svd_solver in ("auto", "covariance_eigh", "randomized", "arpack")
        return tags

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model on X (dense or sparse CSR/CSC); returns self."""
        self._fit(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit the model on X and return its projection on the components (n_samples x n_components_)."""
        U, s, X = self._fit(X)
        if U is None:  # covariance_eigh: no left vectors at fit time
            return self.transform(X)
        U = U[:, :self.n_components_]
        if self.whiten:
            return U * sqrt(X.shape[0] - 1)
        return U * s[:self.n_components_]

    def _solver(self, X, k) -> str:
        """scikit-learn's choice for "auto" (fastlr's randomized solver where scikit-learn has none:
        sparse X with a fraction)."""
        solver = self.svd_solver
        if sp.issparse(X) and solver == "full":
            raise TypeError('svd_solver: PCA only support sparse inputs with the "arpack" and "covariance_eigh" '
                            'solvers, while "full" was passed (it centers a dense copy of X); fastlr\'s '
                            '"randomized" takes sparse X too')
        if solver != "auto":
            return solver
        n, d = X.shape
        if sp.issparse(X):
            return "randomized" if _is_fraction(k) else "arpack"
        if d <= 1000 and n >= 10 * d:
            return "covariance_eigh"
        if max(n, d) <= 500 or k == "mle":
            return "full"
        if not _is_fraction(k) and k is not None and 1 <= k < 0.8 * min(n, d):
            return "randomized"
        return "full"

    def _fit(self, X):
        if sp.issparse(X):
            X = check_sparse(X, "X")
        X = validate_data(self, X, dtype=[np.float64, np.float32], accept_sparse=("csr", "csc"), ensure_2d=True,
                          copy=False, ensure_min_samples=2)
        if self.backend is not None:
            _check_backend_name(self.backend)
        n, d = X.shape
        k = float(self.n_components) if _is_fraction(self.n_components) else self.n_components
        solver = self._solver(X, k)
        if k is None:
            k = min(n, d) - 1 if solver == "arpack" else min(n, d)
        self._fit_svd_solver = solver
        if solver in ("full", "covariance_eigh"):
            return self._fit_full(X, k, solver)
        return self._fit_truncated(X, k, solver)

    def _fit_full(self, X, k, solver):
        """The exact solvers: every component, then n_components of them (an int, a fraction, "mle")."""
        n, d = X.shape
        if k == "mle":
            if n < d:
                raise ValueError("n_components='mle' is only supported if n_samples >= n_features "
                                 f"(got n_samples={n}, n_features={d})")
        elif not isinstance(k, float) and not 0 <= k <= min(n, d):
            raise ValueError(f"n_components={k} must be between 0 and min(n_samples, n_features)={min(n, d)} "
                             f"with svd_solver={solver!r}")
        self.mean_ = np.asarray(X.mean(axis=0), dtype=X.dtype).reshape(-1)
        if solver == "full":
            Xc = X.copy() if self.copy else X
            Xc -= self.mean_
            U, s, Vt = scipy.linalg.svd(Xc, full_matrices=False, check_finite=False)
            U, Vt = svd_flip(U, Vt, u_based_decision=False)
            with np.errstate(over="ignore"):  # checked below
                ev = s**2 / (n - 1)
        else:
            U, (s, Vt, ev) = None, _covariance_eigh(X, self.mean_)
        if not np.isfinite(ev).all():  # finite X whose squares overflow: no silent inf or garbage
            hint = " or pass float64" if X.dtype == np.float32 else ""
            raise ValueError(f"X: its variances overflow {X.dtype.name} (largest |entry| "
                             f"{float(abs(X).max()):.3g}); scale X down{hint}")
        total = ev.sum()
        ratio = ev / total if total > 0 else np.zeros_like(ev)
        if k == "mle":
            k = minka_rank(ev, n)
        elif isinstance(k, float):
            # no variance at all (constant X): one component, as scikit-learn (its ratios are 0 / 0)
            k = int(np.searchsorted(np.cumsum(ratio), k, side="right") + 1) if total > 0 else 1
            k = min(k, len(s))
        self.noise_variance_ = float(ev[k:].mean()) if k < min(n, d) else 0.0
        self._set(Vt[:k], s[:k], ev[:k], ratio[:k], n, k)
        return U, s, X

    def _fit_truncated(self, X, k, solver):
        n, d = X.shape
        if k == "mle":
            raise ValueError(f"n_components='mle' cannot be a string with svd_solver={solver!r}: use "
                             "svd_solver='full' or 'covariance_eigh'")
        if isinstance(k, float):
            if solver != "randomized":
                raise ValueError(f"n_components: a float ({k}) needs svd_solver='randomized', 'full' or 'auto', "
                                 f"not {solver!r}")
        elif not 1 <= k <= min(n, d):
            raise ValueError(f"n_components={k} must be between 1 and min(n_samples, n_features)={min(n, d)} with "
                             f"svd_solver={solver!r}")
        elif solver == "arpack" and k == min(n, d):
            raise ValueError(f"n_components={k} must be strictly less than min(n_samples, n_features)={min(n, d)} "
                             f"with svd_solver='arpack' (n_samples={n}, n_features={d})")
        random_state = check_random_state(self.random_state)
        op = Centered(operand(X, name="X", backend=self.backend))
        self.mean_ = op.mu.astype(X.dtype)
        if solver == "arpack":
            U, s, Vt = svds(_linear_operator(op), k=k, tol=self.tol, v0=_init_arpack_v0(min(n, d), random_state))
            U, s, Vt = U[:, ::-1], s[::-1], Vt[::-1]
        elif isinstance(k, float):
            tol = sqrt(1.0 - k)
            if tol < accuracy_floor(X.dtype):
                raise ValueError(f"n_components: {k} leaves a residual variance below the accuracy of "
                                 f"{X.dtype.name} X; use an int or svd_solver='full'")
            n_iter = 2 if self.iterated_power == "auto" else self.iterated_power
            U, s, Vt = svd_to_tolerance(op, tol, n_iter=n_iter, random_state=random_state)
            k = len(s)
        else:
            U, s, Vt = randomized_svd(op, k, n_oversamples=self.n_oversamples, n_iter=self.iterated_power,
                                      power_iteration_normalizer=self.power_iteration_normalizer, flip_sign=False,
                                      random_state=random_state)
        U, Vt = svd_flip(np.asarray(U), np.asarray(Vt), u_based_decision=False)
        s = np.asarray(s)
        total = op.squared_norm() / (n - 1)
        ev = s.astype(np.float64) ** 2 / (n - 1)
        ratio = ev / total if total > 0 else np.zeros_like(ev)
        if k < min(n, d):
            self.noise_variance_ = max(total - float(ev.sum()), 0.0) / (min(n, d) - k)
        else:
            self.noise_variance_ = 0.0
        self._set(Vt, s, ev, ratio, n, k)
        return U, s, X

    def _set(self, Vt, s, ev, ratio, n, k):
        dtype = self.mean_.dtype
        self.n_samples_ = n
        self.n_components_ = int(k)
        self.components_ = np.ascontiguousarray(Vt, dtype=dtype)
        self.singular_values_ = np.array(s, dtype=dtype)
        self.explained_variance_ = np.array(ev, dtype=dtype)
        self.explained_variance_ratio_ = np.array(ratio, dtype=dtype)
        self.noise_variance_ = dtype.type(self.noise_variance_)

    # ------------------------------------------------------------------ likelihood

    def score_samples(self, X):
        """Log-likelihood of each sample under the probabilistic PCA model (as scikit-learn's)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        Xr = X - self.mean_
        precision = self.get_precision()
        log_like = -0.5 * np.sum(Xr * (Xr @ precision), axis=1)
        log_like -= 0.5 * (X.shape[1] * log(2.0 * np.pi) - fast_logdet(precision))
        return log_like

    def score(self, X, y=None):
        """Average log-likelihood of the samples."""
        return float(np.mean(self.score_samples(X)))


def _covariance_eigh(X, mean: np.ndarray):
    """(singular values, Vt, explained variances) of the centered X from its covariance matrix
    ``(X^T X - n mean mean^T) / (n - 1)`` (X's dtype, as scikit-learn's "covariance_eigh"), every
    component, descending, signs as ``svd_flip(u_based_decision=False)``. Dense X: fastlr's
    blocked SYRK (``_matrix.memory._gram``); sparse X stays sparse."""
    n = X.shape[0]
    C = (X.T @ X).toarray() if sp.issparse(X) else _gram(np.asarray(X))
    with np.errstate(over="ignore", invalid="ignore"):  # checked below
        C = np.asarray(C, dtype=X.dtype)
        C -= n * np.outer(mean, mean).astype(X.dtype)
        C /= n - 1
    if not np.isfinite(C).all():  # X^T X overflowed: eigh would return garbage, not an error
        raise ValueError(f"X: its covariance matrix overflows {X.dtype.name} (largest |entry| "
                         f"{float(abs(X).max()):.3g}); scale X down, or use svd_solver='full'")
    ev, V = scipy.linalg.eigh(C, check_finite=False)
    ev, Vt = np.maximum(ev[::-1], 0.0), np.ascontiguousarray(V[:, ::-1].T)  # rounding may leave ev < 0
    _, Vt = svd_flip(None, Vt, u_based_decision=False)
    return np.sqrt(ev * (n - 1)), Vt, ev


def _linear_operator(op: Centered) -> LinearOperator:
    """The centered matrix as a SciPy LinearOperator (for ARPACK), its products on fastlr's kernels."""
    def matmat(V):
        return op.times(np.ascontiguousarray(V.reshape(op.shape[1], -1), dtype=op.dtype))

    def rmatmat(W):
        return op.rtimes(np.ascontiguousarray(W.reshape(op.shape[0], -1), dtype=op.dtype))

    return LinearOperator(op.shape, matvec=lambda v: matmat(v).ravel(), rmatvec=lambda w: rmatmat(w).ravel(),
                          matmat=matmat, rmatmat=rmatmat, dtype=op.dtype)
