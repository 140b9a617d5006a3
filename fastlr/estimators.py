"""scikit-learn estimators: ``TruncatedSVD`` backed by fastlr's sketched and GD SVDs.

Importing this module imports scikit-learn (``fastlr.TruncatedSVD`` loads it
on first use, so ``import fastlr`` stays light).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._arpack import _init_arpack_v0
from sklearn.utils._param_validation import Interval, RealNotInt, StrOptions
from sklearn.utils.extmath import safe_sparse_dot, svd_flip
from sklearn.utils.sparsefuncs import mean_variance_axis
from sklearn.utils.validation import check_is_fitted, validate_data

from ._backend import _check_name as _check_backend_name
from ._linalg import complete
from ._validation import check_sparse
from .pca import PCA
from .tolerance import accuracy_floor, svd_to_tolerance


__all__ = ["PCA", "TruncatedSVD"]

# scikit-learn's two solvers, then fastlr's own.
ALGORITHMS = ("randomized", "arpack", "countsketch", "gaussian", "learned", "gd")


class TruncatedSVD(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Dimensionality reduction by a truncated SVD computed with fastlr.

    A drop-in for :class:`sklearn.decomposition.TruncatedSVD`: the same
    parameters, defaults, validation and fitted attributes, on dense or sparse
    input, without centering the data (so it works on sparse matrices, e.g.
    LSA on term counts). float32 input stays float32; other input (integers,
    booleans) is converted to float64. fastlr's own solvers are extra values
    of ``algorithm``.

    Parameters
    ----------
    n_components : int or float in (0, 1), default 2
        A float f (a fastlr extension, ``algorithm="randomized"`` only) keeps
        the fewest components whose squared singular values sum to at least
        ``f * ||X||_F^2``: the fraction f of the *uncentered* second moment
        ("variance about the origin"; TruncatedSVD does not center, so this is
        not the fraction of the variance about the mean that
        ``explained_variance_ratio_`` reports). Computed by
        :func:`fastlr.svd_to_tolerance` with ``tol = sqrt(1 - f)`` (relative
        Frobenius error), ``n_iter`` power iterations per block ("auto": 2).
        An int is the number of components, ``1 <= n_components <= n_features`` (strictly
        less than ``min(X.shape)`` for ``"arpack"``). Beyond the rank of X the
        trailing components are orthonormal directions with singular value 0.
    algorithm : {"randomized", "arpack", "countsketch", "gaussian", "learned", "gd"}, \
default "randomized"
        ``"randomized"``: :func:`fastlr.randomized_svd` with its default first
        pass (scikit-learn's solver, on fastlr's kernels); ``"arpack"``:
        :func:`scipy.sparse.linalg.svds` as scikit-learn calls it (start
        vector from ``random_state``, tolerance ``tol``);
        ``"countsketch"``: randomized SVD whose first pass is a CountSketch
        (one O(nnz(X)) pass); ``"gaussian"``: the classic Gaussian range
        finder (Halko et al.); ``"learned"``: the sketched SVD (SCW) with the
        learned sketch given as ``sketch``; ``"gd"``: gradient descent on a
        rank-k factorization (ScaledGD, :func:`fastlr.gd_svd`).
    n_iter : int or "auto", default 5
        Power iterations of the sketching solvers ("randomized",
        "countsketch", "gaussian", "learned"). "auto" (a fastlr extension):
        7 when ``n_components < 0.1 min(X.shape)``, else 4, and 0 for
        "learned". Pass ``n_iter=0`` with "learned" for the one-pass sketched
        SVD the sketch was trained for. Not used by "arpack" and "gd".
    n_oversamples : int, default 10
        Extra sketch rows beyond n_components ("randomized", "countsketch",
        "gaussian"), >= 1 as in scikit-learn.
    power_iteration_normalizer : {"auto", "QR", "LU", "none"}, default "auto"
        Renormalization between power iterations ("randomized",
        "countsketch", "gaussian"); see :func:`fastlr.randomized_svd`.
    random_state : int, RandomState instance or None, default None
        Seeds the random sketch, ARPACK's start vector or GD's starting
        point; an int makes ``fit`` reproducible.
    tol : float, default 0.0
        Tolerance for ARPACK (0: machine precision). Only used by "arpack".
    sketch : fastlr sketch, optional
        For ``algorithm="learned"``: a sketch with ``sketch.n == n_samples``
        (e.g. from :func:`fastlr.learn_sketch` or :func:`fastlr.load_sketch`).
    gd_options : dict, optional
        For ``algorithm="gd"``: keyword arguments of :func:`fastlr.gd_svd`,
        e.g. ``{"max_iter": 200, "tol": 1e-8, "optimizer": "adam"}`` (None:
        its defaults).
    backend : {"cpp", "numba", "numpy"}, optional
        fastlr kernel backend; None uses the current default. Not used by
        "arpack".

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The right singular vectors (rows), signs fixed as scikit-learn does
        (``svd_flip(..., u_based_decision=False)``).
    explained_variance_ : ndarray of shape (n_components,)
        Variance of each column of the transformed training data.
    explained_variance_ratio_ : ndarray of shape (n_components,)
        ``explained_variance_`` over the total variance of the training data
        (0 when that total is 0).
    singular_values_ : ndarray of shape (n_components,)
        The singular values, descending.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during ``fit``; only when X has string
        column names (e.g. a pandas DataFrame).

    See Also
    --------
    sklearn.decomposition.TruncatedSVD : the estimator this one replaces.
    fastlr.randomized_svd, fastlr.scw, fastlr.gd_svd : the solvers.

    Examples
    --------
    >>> import numpy as np, fastlr
    >>> X = np.random.default_rng(0).standard_normal((100, 20))
    >>> svd = fastlr.TruncatedSVD(n_components=3, random_state=0).fit(X)
    >>> svd.transform(X).shape
    (100, 3)

    References
    ----------
    Halko, Martinsson and Tropp, "Finding structure with randomness", SIAM
    Review 2011. Clarkson and Woodruff, "Low rank approximation and regression
    in input sparsity time", STOC 2013. Indyk, Vakilian and Yuan,
    "Learning-based low-rank approximations", NeurIPS 2019.
    """

    # scikit-learn's declarations for its parameters (so validation and its error messages are the
    # same), widened only by fastlr's extra values; fastlr validates sketch and backend itself.
    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), Interval(RealNotInt, 0, 1, closed="neither")],
        "algorithm": [StrOptions(set(ALGORITHMS))],
        "n_iter": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "n_oversamples": [Interval(Integral, 1, None, closed="left")],
        "power_iteration_normalizer": [StrOptions({"auto", "QR", "LU", "none"})],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "sketch": "no_validation",
        "gd_options": [dict, None],
        "backend": "no_validation",
    }

    def __init__(self, n_components=2, *, algorithm="randomized", n_iter=5, n_oversamples=10,
                 power_iteration_normalizer="auto", random_state=None, tol=0.0, sketch=None, gd_options=None,
                 backend=None):
        self.n_components = n_components
        self.algorithm = algorithm
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.power_iteration_normalizer = power_iteration_normalizer
        self.random_state = random_state
        self.tol = tol
        self.sketch = sketch
        self.gd_options = gd_options
        self.backend = backend

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ------------------------------------------------------------------ checks

    def _check_params(self, X) -> int:
        """Checks that depend on X, or on fastlr-only parameters (the rest: _parameter_constraints)."""
        if not isinstance(self.n_components, Integral):  # a fraction in (0, 1)
            fraction = float(self.n_components)
            if self.algorithm != "randomized":
                raise ValueError(f"n_components: a float ({fraction}) needs algorithm='randomized', "
                                 f"not {self.algorithm!r}")
            if np.sqrt(1.0 - fraction) < accuracy_floor(X.dtype):
                raise ValueError(f"n_components: {fraction} leaves a residual below the accuracy of "
                                 f"{X.dtype.name} X; use an int")
            return fraction
        k = int(self.n_components)
        if k > X.shape[1]:
            raise ValueError(f"n_components: must be between 1 and n_features={X.shape[1]}, got {k}")
        if self.algorithm == "learned":
            from .sketch import Sketch

            if not isinstance(self.sketch, Sketch):
                raise TypeError(
                    f"sketch: algorithm='learned' needs a fastlr sketch (fastlr.load_sketch / learn_sketch), "
                    f"got {type(self.sketch).__name__}"
                )
            if self.sketch.n != X.shape[0]:
                raise ValueError(
                    f"sketch: is {self.sketch.m} x {self.sketch.n}, so it needs X with {self.sketch.n} rows "
                    f"(samples), got {X.shape[0]}"
                )
            if self.sketch.m < k:
                raise ValueError(f"sketch: has m={self.sketch.m} rows, fewer than n_components={k}")
        elif self.sketch is not None:
            raise ValueError(f"sketch: only used with algorithm='learned', not {self.algorithm!r}")
        if self.gd_options is not None:
            if self.algorithm != "gd":
                raise ValueError(f"gd_options: only used with algorithm='gd', not {self.algorithm!r}")
            reserved = sorted({"A", "k", "random_state", "backend"} & set(self.gd_options))
            if reserved:
                raise ValueError(f"gd_options: {', '.join(reserved)} are set by TruncatedSVD, not in gd_options")
        if self.backend is not None:
            _check_backend_name(self.backend)
        return k

    # ------------------------------------------------------------------ fit

    def _decompose(self, X, k: int, random_state):
        """(U, s, Vt) of rank min(k, min(X.shape)); signs not yet fixed."""
        import fastlr

        if isinstance(k, float):  # a fraction of ||X||_F^2: the rank chosen by accuracy
            n_iter = 2 if self.n_iter == "auto" else int(self.n_iter)
            return svd_to_tolerance(X, float(np.sqrt(1.0 - k)), n_iter=n_iter, random_state=random_state,
                                    backend=self.backend)
        k = min(k, min(X.shape))  # more components than the rank allows: zero-padded by _complete
        if self.algorithm == "arpack":
            v0 = _init_arpack_v0(min(X.shape), random_state)
            U, s, Vt = svds(X, k=k, tol=self.tol, v0=v0)
            # svds returns ascending singular values: reverse to scikit-learn's order.
            return U[:, ::-1], s[::-1], Vt[::-1]
        if self.algorithm == "gd":
            seed = int(random_state.randint(np.iinfo(np.int32).max))
            return fastlr.gd_svd(X, k, random_state=seed, backend=self.backend, **(self.gd_options or {}))
        if self.algorithm == "learned":
            n_iter = 0 if self.n_iter == "auto" else int(self.n_iter)
            lr = fastlr.scw(X, self.sketch, k, n_iter=n_iter, backend=self.backend)
            return lr.U, lr.s, lr.Vt
        options = {} if self.algorithm == "randomized" else {"sketch": self.algorithm}
        return fastlr.randomized_svd(X, k, n_oversamples=self.n_oversamples, n_iter=self.n_iter,
                                     power_iteration_normalizer=self.power_iteration_normalizer,
                                     flip_sign=False, random_state=random_state, backend=self.backend, **options)

    def fit(self, X, y=None):
        """Fit the model on X (n_samples x n_features, dense or sparse); returns self.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (CSR and CSC are used as they are; other sparse
            formats are converted to CSR).
        y : None
            Ignored.

        Returns
        -------
        self : TruncatedSVD
        """
        self.fit_transform(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit the model on X and return X projected on the components.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : None
            Ignored.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
            Always dense; float32 for float32 X, else float64.
        """
        X = _checked_structure(X)
        X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32],
                          ensure_min_features=2)
        k = self._check_params(X)
        U, s, Vt = self._decompose(X, k, check_random_state(self.random_state))
        U, Vt = svd_flip(np.asarray(U), np.asarray(Vt), u_based_decision=False)
        if isinstance(k, float):
            k = Vt.shape[0]
        r = Vt.shape[0]
        Vt, s = _complete(Vt.astype(X.dtype, copy=False), np.asarray(s, dtype=X.dtype), k)
        self.components_ = Vt
        self.singular_values_ = s
        if self.algorithm == "arpack" and self.tol == 0:
            # As scikit-learn: ARPACK at machine precision gives X V = U diag(s) (no extra pass).
            X_new = np.zeros((X.shape[0], k), dtype=X.dtype)
            X_new[:, :r] = (U * s[:r]).astype(X.dtype, copy=False)
        else:
            X_new = np.asarray(safe_sparse_dot(X, Vt.T))
        self.explained_variance_ = np.var(X_new, axis=0)
        if sp.issparse(X):
            full_var = mean_variance_axis(X, axis=0)[1].sum()
        else:
            full_var = np.var(X, axis=0).sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = self.explained_variance_ / full_var
        self.explained_variance_ratio_ = np.where(full_var > 0, ratio, 0).astype(X.dtype)
        return X_new

    def transform(self, X):
        """Project X on the components: ``X @ components_.T``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components)
        """
        check_is_fitted(self)
        X = _checked_structure(X)
        X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32], reset=False)
        return np.asarray(safe_sparse_dot(X, self.components_.T))

    def inverse_transform(self, X):
        """Map transformed data back: ``X @ components_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.components_.shape[0]:
            raise ValueError(f"X: expected shape (n_samples, {self.components_.shape[0]}), got {X.shape}")
        return X @ self.components_

    @property
    def _n_features_out(self):
        return self.components_.shape[0]


def _complete(Vt: np.ndarray, s: np.ndarray, k: int):
    """Pad a rank-deficient result to k orthonormal components (singular value 0)."""
    r = Vt.shape[0]
    if r >= k:
        return Vt[:k], s[:k]
    # Orthonormal rows completing Vt's (``_linalg.complete``: O(d k) memory, whatever d is).
    extra = np.ascontiguousarray(complete(Vt.T, k)[:, r:].T, dtype=Vt.dtype)
    return np.concatenate([Vt, extra]), np.concatenate([s, np.zeros(k - r, dtype=s.dtype)])


def _checked_structure(X):
    """Sparse X with its index structure checked (scipy's conversions in validate_data trust it)."""
    return check_sparse(X, "X") if sp.issparse(X) else X
