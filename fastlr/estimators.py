"""scikit-learn estimators: ``TruncatedSVD`` backed by fastlr's sketched and GD SVDs.

Importing this module imports scikit-learn (``fastlr.TruncatedSVD`` loads it
on first use, so ``import fastlr`` stays light).
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.extmath import safe_sparse_dot, svd_flip
from sklearn.utils.sparsefuncs import mean_variance_axis
from sklearn.utils.validation import check_is_fitted, validate_data


__all__ = ["TruncatedSVD"]

ALGORITHMS = ("countsketch", "gaussian", "learned", "gd")


class TruncatedSVD(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Dimensionality reduction by a truncated SVD computed with fastlr.

    A drop-in for :class:`sklearn.decomposition.TruncatedSVD`: the same fitted
    attributes and transform, on dense or sparse (CSR/CSC) input, without
    centering the data (so it works on sparse matrices, e.g. LSA on term
    counts). float32 input stays float32.

    Parameters
    ----------
    n_components : int, default 2
        Number of components, 1 <= n_components <= n_features.
    algorithm : {"countsketch", "gaussian", "learned", "gd"}, default "countsketch"
        ``"countsketch"``: randomized SVD whose range finder is a CountSketch
        (one pass over X per power iteration, O(nnz(X))); ``"gaussian"``: the
        classic Gaussian range finder (Halko et al.); ``"learned"``: the
        sketched SVD (SCW) with the learned sketch given as ``sketch``;
        ``"gd"``: gradient descent on a rank-k factorization (ScaledGD).
    sketch : fastlr sketch, optional
        For ``algorithm="learned"``: a sketch with ``sketch.n == n_samples``
        (e.g. from :func:`fastlr.learn_sketch` or :func:`fastlr.load_sketch`).
    n_oversamples : int, default 10
        Extra sketch rows beyond n_components (``"countsketch"``, ``"gaussian"``).
    n_iter : int or "auto", default "auto"
        Power iterations for the sketching algorithms ("auto": 7 when
        n_components < 0.1 min(X.shape), else 4, like scikit-learn; 0 for
        ``"learned"``, whose sketch is trained to need none). For ``"gd"``
        the maximum number of iterations ("auto": gd_svd's default).
    random_state : int, RandomState instance or None, default None
        Seeds the random sketch or the starting point; an int makes ``fit``
        reproducible.
    backend : {"cpp", "numba", "numpy"}, optional
        fastlr kernel backend; None uses the current default.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The right singular vectors (rows), signs fixed as scikit-learn does.
    singular_values_ : ndarray of shape (n_components,)
    explained_variance_ : ndarray of shape (n_components,)
        Variance of each column of the transformed training data.
    explained_variance_ratio_ : ndarray of shape (n_components,)
        ``explained_variance_`` over the total variance of the training data.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X has string column names (e.g. a pandas DataFrame).

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

    def __init__(self, n_components=2, *, algorithm="countsketch", sketch=None, n_oversamples=10, n_iter="auto",
                 random_state=None, backend=None):
        self.n_components = n_components
        self.algorithm = algorithm
        self.sketch = sketch
        self.n_oversamples = n_oversamples
        self.n_iter = n_iter
        self.random_state = random_state
        self.backend = backend

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ------------------------------------------------------------------ checks

    def _check_params(self, X) -> int:
        k = self.n_components
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"n_components: expected an integer, got {k!r}")
        if not 1 <= k <= X.shape[1]:
            raise ValueError(f"n_components: must be between 1 and n_features={X.shape[1]}, got {k}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm: expected one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        p = self.n_oversamples
        if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 0:
            raise ValueError(f"n_oversamples: expected an integer >= 0, got {p!r}")
        it = self.n_iter
        if not (isinstance(it, str) and it == "auto") and (
            isinstance(it, bool) or not isinstance(it, numbers.Integral) or it < 0
        ):
            raise ValueError(f"n_iter: expected 'auto' or an integer >= 0, got {it!r}")
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
        return int(k)

    def _n_iter(self, X, k: int):
        if self.n_iter != "auto":
            return int(self.n_iter)
        if self.algorithm == "learned":
            return 0
        if self.algorithm == "gd":
            return None
        return 7 if k < 0.1 * min(X.shape) else 4

    # ------------------------------------------------------------------ fit

    def _decompose(self, X, k: int):
        import fastlr

        n_iter = self._n_iter(X, k)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        if self.algorithm == "gd":
            options = {} if n_iter is None else {"max_iter": max(n_iter, 1)}
            return fastlr.gd_svd(X, k, random_state=seed, backend=self.backend, **options)
        if self.algorithm == "learned":
            lr = fastlr.scw(X, self.sketch, k, n_iter=n_iter, backend=self.backend)
            return lr.U, lr.s, lr.Vt
        return fastlr.randomized_svd(X, k, n_oversamples=self.n_oversamples, n_iter=n_iter, sketch=self.algorithm,
                                     random_state=seed, backend=self.backend)

    def fit(self, X, y=None):
        """Fit the model on X (n_samples x n_features, dense or sparse); returns self."""
        self.fit_transform(X)
        return self

    def fit_transform(self, X, y=None):
        """Fit the model on X and return X projected on the components (n_samples x n_components)."""
        X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32],
                          ensure_min_features=2)
        k = self._check_params(X)
        U, s, Vt = self._decompose(X, k)
        U, Vt = svd_flip(np.asarray(U), np.asarray(Vt), u_based_decision=False)
        Vt, s = _complete(Vt.astype(X.dtype, copy=False), np.asarray(s, dtype=X.dtype), k)
        self.components_ = Vt
        self.singular_values_ = s
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
        """Project X on the components: ``X @ components_.T`` (n_samples x n_components)."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32], reset=False)
        return np.asarray(safe_sparse_dot(X, self.components_.T))

    def inverse_transform(self, X):
        """Map transformed data back: ``X @ components_`` (n_samples x n_features)."""
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
    d = Vt.shape[1]
    # An orthonormal basis of the complement of Vt's rows: the trailing vectors of a full QR.
    Q = np.linalg.qr(np.concatenate([Vt.T, np.eye(d, dtype=Vt.dtype)], axis=1))[0]
    extra = Q[:, r:k].T
    return np.concatenate([Vt, extra]), np.concatenate([s, np.zeros(k - r, dtype=s.dtype)])
