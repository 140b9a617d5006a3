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
from ._validation import check_sparse
from .randomized import randomized_svd
from .tolerance import accuracy_floor, svd_to_tolerance

__all__ = ["PCA"]


def _is_fraction(k) -> bool:
    """n_components given as a fraction of the variance (a float in (0, 1), NumPy floats included)."""
    return k is not None and not isinstance(k, Integral)

SOLVERS = ("auto", "full", "randomized", "arpack")


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
    n_components : int, float in (0, 1) or None, default None
        int: number of components (``0 <= k <= min(X.shape)`` for "full",
        ``>= 1`` for "randomized", ``< min(X.shape)`` for "arpack").
        float: keep the fewest components whose explained variance ratios sum
        to at least this ("full" and "randomized"). None: ``min(X.shape)``
        (minus one for "arpack").
    copy : bool, default True
        Only used by "full" on dense X: False centers X in place.
    whiten : bool, default False
        ``transform`` divides the projections by ``sqrt(explained_variance_)``.
    svd_solver : {"auto", "full", "randomized", "arpack"}, default "auto"
        As in scikit-learn. "full": LAPACK SVD of the centered dense X (sparse X:
        TypeError, as scikit-learn). "randomized": fastlr's randomized SVD of
        the implicitly centered X. "arpack": :func:`scipy.sparse.linalg.svds`
        on the implicitly centered X. "auto": "randomized" for sparse X; for
        dense X, "full" when ``max(X.shape) <= 500``, "randomized" when
        ``n_components`` is a float or ``1 <= n_components < 0.8 min(X.shape)``,
        else "full". (scikit-learn's "covariance_eigh" is not offered.)
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
                         Interval(RealNotInt, 0, 1, closed="neither"), None],
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.sparse = self.svd_solver in ("auto", "randomized", "arpack")
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
        U = U[:, :self.n_components_]
        if self.whiten:
            return U * sqrt(X.shape[0] - 1)
        return U * s[:self.n_components_]

    def _solver(self, X, k) -> str:
        solver = self.svd_solver
        if sp.issparse(X) and solver == "full":
            raise TypeError("svd_solver: 'full' needs dense X (it centers a copy of X); use 'randomized' "
                            "or 'arpack', which center sparse X implicitly")
        if solver != "auto":
            return solver
        if sp.issparse(X):
            return "randomized"
        if max(X.shape) <= 500:
            return "full"
        if _is_fraction(k) or 1 <= k < 0.8 * min(X.shape):
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
        if solver == "full":
            return self._fit_full(X, k)
        return self._fit_truncated(X, k, solver)

    def _fit_full(self, X, k):
        n, d = X.shape
        if not isinstance(k, float) and not 0 <= k <= min(n, d):
            raise ValueError(f"n_components: must be between 0 and min(n_samples, n_features)={min(n, d)} "
                             f"with svd_solver='full', got {k}")
        self.mean_ = X.mean(axis=0)
        Xc = X.copy() if self.copy else X
        Xc -= self.mean_
        U, s, Vt = scipy.linalg.svd(Xc, full_matrices=False, check_finite=False)
        U, Vt = svd_flip(U, Vt, u_based_decision=False)
        ev = s**2 / (n - 1)
        total = ev.sum()
        ratio = ev / total if total > 0 else np.zeros_like(ev)
        if isinstance(k, float):
            k = int(np.searchsorted(np.cumsum(ratio), k, side="right") + 1)
            k = min(k, len(s))
        self.noise_variance_ = float(ev[k:].mean()) if k < min(n, d) else 0.0
        self._set(Vt[:k], s[:k], ev[:k], ratio[:k], n, k)
        return U, s, X

    def _fit_truncated(self, X, k, solver):
        n, d = X.shape
        if isinstance(k, float):
            if solver != "randomized":
                raise ValueError(f"n_components: a float ({k}) needs svd_solver='randomized', 'full' or 'auto', "
                                 f"not {solver!r}")
        elif not 1 <= k <= min(n, d):
            raise ValueError(f"n_components: must be between 1 and min(n_samples, n_features)={min(n, d)} with "
                             f"svd_solver={solver!r}, got {k}")
        elif solver == "arpack" and k == min(n, d):
            raise ValueError(f"n_components: must be strictly less than min(n_samples, n_features)={min(n, d)} "
                             f"with svd_solver='arpack', got {k} (n_samples={n}, n_features={d})")
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


def _linear_operator(op: Centered) -> LinearOperator:
    """The centered matrix as a SciPy LinearOperator (for ARPACK), its products on fastlr's kernels."""
    def matmat(V):
        return op.times(np.ascontiguousarray(V.reshape(op.shape[1], -1), dtype=op.dtype))

    def rmatmat(W):
        return op.rtimes(np.ascontiguousarray(W.reshape(op.shape[0], -1), dtype=op.dtype))

    return LinearOperator(op.shape, matvec=lambda v: matmat(v).ravel(), rmatvec=lambda w: rmatmat(w).ravel(),
                          matmat=matmat, rmatmat=rmatmat, dtype=op.dtype)
