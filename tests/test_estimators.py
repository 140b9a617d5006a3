"""fastlr.TruncatedSVD: scikit-learn's estimator contract, and agreement with sklearn's TruncatedSVD."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification
from sklearn.decomposition import TruncatedSVD as SklearnTruncatedSVD
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError, StrOptions
from sklearn.utils.estimator_checks import check_param_validation, parametrize_with_checks

import fastlr
from fastlr import TruncatedSVD


@parametrize_with_checks([
    TruncatedSVD(),
    TruncatedSVD(algorithm="countsketch"),
    TruncatedSVD(algorithm="gaussian", n_iter=2),
    TruncatedSVD(algorithm="gd", gd_options={"max_iter": 200}),
])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_sklearn_parameter_validation():
    # scikit-learn's own check (not among parametrize_with_checks' checks): every parameter is declared in
    # _parameter_constraints and a bad value raises InvalidParameterError with scikit-learn's message.
    check_param_validation("TruncatedSVD", TruncatedSVD())


def test_same_parameters_and_defaults_as_sklearn():
    ours, theirs = TruncatedSVD().get_params(), SklearnTruncatedSVD().get_params()
    assert {name: ours[name] for name in theirs} == theirs
    for name, constraints in SklearnTruncatedSVD._parameter_constraints.items():  # ours may only add values
        for their_constraint, our_constraint in zip(constraints, TruncatedSVD._parameter_constraints[name],
                                                    strict=False):
            if isinstance(their_constraint, StrOptions):
                assert their_constraint.options <= our_constraint.options, name
            else:
                assert str(our_constraint) == str(their_constraint), name


def _data(n=400, d=50, rank=8, dtype=np.float64, seed=0, sparse=False):
    """Low rank with a geometric spectrum plus noise; sparse: a product of sparse factors (still low rank)."""
    rng = np.random.default_rng(seed)
    if sparse:
        P = sp.random(n, rank, density=0.3, random_state=seed) @ sp.diags(0.6 ** np.arange(rank))
        Q = sp.random(rank, d, density=0.3, random_state=seed + 1)
        X = sp.csr_matrix(P @ Q)
        X.data += 1e-3 * rng.standard_normal(X.nnz)
        return X.astype(dtype)
    X = (rng.standard_normal((n, rank)) * 0.6 ** np.arange(rank)) @ rng.standard_normal((rank, d))
    X += 1e-3 * rng.standard_normal((n, d))
    return X.astype(dtype)


ATTRIBUTES = ["singular_values_", "components_", "explained_variance_", "explained_variance_ratio_"]


@pytest.mark.parametrize("algorithm", ["randomized", "countsketch", "gaussian"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_matches_sklearn_randomized(algorithm, sparse, dtype):
    X = _data(dtype=dtype, sparse=sparse)
    ours = TruncatedSVD(5, algorithm=algorithm, random_state=0)
    theirs = SklearnTruncatedSVD(5, algorithm="randomized", random_state=0)
    tol = 1e-4 if dtype == np.float32 else 1e-8
    X_ours = _assert_same_fit(ours, theirs, X, tol, dtype)
    np.testing.assert_allclose(ours.transform(X), X_ours, rtol=0, atol=tol * np.abs(X_ours).max())


def _assert_same_fit(ours, theirs, X, tol, dtype):
    """Fit both on X: the same fitted attributes and transformed X, in dtype; returns ours."""
    X_ours, X_theirs = ours.fit_transform(X), theirs.fit_transform(X)
    for name in ATTRIBUTES:
        got, expected = getattr(ours, name), getattr(theirs, name)
        assert got.dtype == dtype, name
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * np.abs(expected).max(), err_msg=name)
    assert X_ours.dtype == dtype
    np.testing.assert_allclose(X_ours, X_theirs, rtol=0, atol=tol * np.abs(X_theirs).max())
    return X_ours


@pytest.mark.parametrize("tol", [0.0, 1e-10])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_arpack_matches_sklearn(tol, sparse, dtype):
    X = _data(dtype=dtype, sparse=sparse)
    ours = TruncatedSVD(5, algorithm="arpack", tol=tol, random_state=0)
    theirs = SklearnTruncatedSVD(5, algorithm="arpack", tol=tol, random_state=0)
    # The same computation (ARPACK's rounding still varies from call to call with memory alignment).
    _assert_same_fit(ours, theirs, X, 1e-5 if dtype == np.float32 else 1e-10, dtype)


def test_integer_input_becomes_float64():
    X = np.round(10 * _data(100, 20)).astype(np.int64)
    svd = TruncatedSVD(3, random_state=0)
    X_new = svd.fit_transform(X)
    assert X_new.dtype == svd.components_.dtype == np.float64
    np.testing.assert_allclose(svd.singular_values_, np.linalg.svd(X.astype(float), compute_uv=False)[:3],
                               rtol=1e-6)


def test_more_components_than_samples_are_zero_padded():
    X = _data(8, 30)
    svd = TruncatedSVD(12, random_state=0).fit(X)
    assert svd.components_.shape == (12, 30)
    np.testing.assert_allclose(svd.components_ @ svd.components_.T, np.eye(12), atol=1e-10)
    np.testing.assert_allclose(svd.singular_values_[:8], np.linalg.svd(X, compute_uv=False), rtol=1e-8)
    np.testing.assert_array_equal(svd.singular_values_[8:], 0)


def test_gd_matches_the_exact_svd():
    X = _data(300, 30)
    svd = TruncatedSVD(4, algorithm="gd", random_state=0).fit(X)
    np.testing.assert_allclose(svd.singular_values_, np.linalg.svd(X, compute_uv=False)[:4], rtol=1e-6)


def test_learned_sketch():
    train = [_data(300, 40, seed=s) for s in range(6)]
    X = _data(300, 40, seed=10)
    S = fastlr.learn_sketch(train, 8, 4, steps=30, progress=False)
    svd = TruncatedSVD(4, algorithm="learned", sketch=S).fit(X)
    best = np.linalg.svd(X, compute_uv=False)
    optimal = np.sqrt(np.sum(best[4:] ** 2))
    residual = np.linalg.norm(X - svd.inverse_transform(svd.transform(X)))
    assert residual < 1.5 * optimal
    np.testing.assert_allclose(svd.components_ @ svd.components_.T, np.eye(4), atol=1e-10)
    with pytest.raises(ValueError, match=r"sketch: is 8 x 300, so it needs X with 300 rows"):
        TruncatedSVD(4, algorithm="learned", sketch=S).fit(X[:200])
    with pytest.raises(TypeError, match=r"sketch: algorithm='learned' needs a fastlr sketch"):
        TruncatedSVD(4, algorithm="learned").fit(X)


def test_inverse_transform_recovers_low_rank_data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((100, 3)) @ rng.standard_normal((3, 20))
    svd = TruncatedSVD(3, random_state=0)
    np.testing.assert_allclose(svd.inverse_transform(svd.fit_transform(X)), X, atol=1e-10 * np.abs(X).max())
    assert list(svd.get_feature_names_out()) == ["truncatedsvd0", "truncatedsvd1", "truncatedsvd2"]


def test_rank_deficient_input_gives_zero_trailing_components():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 2)) @ rng.standard_normal((2, 12))
    svd = TruncatedSVD(5, random_state=0).fit(X)
    np.testing.assert_allclose(svd.components_ @ svd.components_.T, np.eye(5), atol=1e-10)
    np.testing.assert_allclose(svd.singular_values_[2:], 0, atol=1e-10 * svd.singular_values_[0])
    np.testing.assert_allclose(svd.explained_variance_ratio_.sum(), 1, rtol=1e-10)


def test_dense_csr_and_csc_agree():
    X = _data(sparse=True)
    results = [TruncatedSVD(4, random_state=1).fit(A).components_ for A in (X, X.tocsc(), X.toarray())]
    for got in results[1:]:
        np.testing.assert_allclose(got, results[0], atol=1e-10)


def test_random_state_makes_fits_reproducible():
    X = _data()
    fits = [TruncatedSVD(3, n_iter=0, random_state=rs).fit(X).components_
            for rs in (7, 7, np.random.RandomState(7))]
    np.testing.assert_array_equal(fits[0], fits[1])
    np.testing.assert_array_equal(fits[0], fits[2])


def test_pipeline_and_grid_search():
    # 30 redundant features: the informative directions carry most of the variance, so the SVD keeps them.
    X, y = make_classification(n_samples=300, n_features=40, n_informative=5, n_redundant=30, random_state=0)
    pipe = Pipeline([("svd", TruncatedSVD(random_state=0)), ("clf", LogisticRegression())])
    grid = GridSearchCV(pipe, {"svd__n_components": [1, 10], "svd__algorithm": ["countsketch", "gaussian"]}, cv=3)
    grid.fit(X, y)
    assert grid.best_params_["svd__n_components"] == 10  # one component cannot carry 5 informative features
    assert grid.best_score_ > 0.8
    # Both algorithms give the same cross-validated scores (the same components up to rounding).
    scores = grid.cv_results_["mean_test_score"].reshape(2, 2)
    np.testing.assert_allclose(scores[0], scores[1])
    assert grid.predict(X).shape == (300,)
    assert grid.best_estimator_.named_steps["svd"].components_.shape == (10, 40)


# Parameters scikit-learn declares are validated as scikit-learn does (InvalidParameterError, a ValueError
# and a TypeError, with its message); X-dependent and fastlr-only ones by fastlr, naming the argument.
@pytest.mark.parametrize("params, error, match", [
    ({"n_components": 51}, ValueError, r"n_components: must be between 1 and n_features=50, got 51"),
    ({"n_components": 0}, InvalidParameterError, r"'n_components' parameter of TruncatedSVD must be an int in the "
                                                 r"range \[1, inf\) or a float in the range \(0\.0, 1\.0\)\. "
                                                 r"Got 0 instead"),
    ({"n_components": 1.0}, InvalidParameterError, r"'n_components' parameter .* Got 1\.0 instead"),
    ({"n_components": 0.9, "algorithm": "gd"}, ValueError, r"n_components: a float \(0\.9\) needs "
                                                           r"algorithm='randomized', not 'gd'"),
    ({"n_components": 1 - 1e-16}, ValueError, r"n_components: 0\.9999999999999999 leaves a residual below"),
    ({"n_components": 1 - 1e-15}, ValueError, r"n_components: 0\.999999999999999 leaves a residual below"),
    ({"n_components": 2.5}, InvalidParameterError, r"'n_components' parameter .* Got 2\.5 instead"),
    ({"algorithm": "svd"}, InvalidParameterError, r"'algorithm' parameter of TruncatedSVD must be a str among"),
    ({"n_iter": -1}, InvalidParameterError, r"'n_iter' parameter of TruncatedSVD must be an int in the range "
                                            r"\[0, inf\) or a str among \{'auto'\}\. Got -1 instead"),
    ({"n_oversamples": 0}, InvalidParameterError, r"'n_oversamples' parameter .* range \[1, inf\)\. Got 0"),
    ({"power_iteration_normalizer": "qr"}, InvalidParameterError, r"'power_iteration_normalizer' parameter"),
    ({"tol": -1.0}, InvalidParameterError, r"'tol' parameter of TruncatedSVD must be a float in the range"),
    ({"algorithm": "arpack", "n_components": 50}, ValueError, r"`k` must be an integer satisfying `0 < k < min"),
    ({"gd_options": {"max_iter": 10}}, ValueError, r"gd_options: only used with algorithm='gd', not 'randomized'"),
    ({"gd_options": [10]}, InvalidParameterError, r"'gd_options' parameter of TruncatedSVD must be"),
    ({"algorithm": "gd", "gd_options": {"k": 3}}, ValueError, r"gd_options: k are set by TruncatedSVD"),
    ({"algorithm": "gd", "gd_options": {"max_iters": 3}}, TypeError, r"max_iters"),
    ({"sketch": fastlr.CountSketch(10, 400)}, ValueError, r"sketch: only used with algorithm='learned'"),
    ({"algorithm": "learned", "sketch": fastlr.CountSketch(1, 400)}, ValueError, r"sketch: has m=1 rows"),
    ({"backend": "gpu"}, ValueError, r"backend: unknown backend 'gpu'"),
    ({"backend": "gpu", "algorithm": "arpack"}, ValueError, r"backend: unknown backend 'gpu'"),
])
def test_bad_parameters_raise_at_fit(params, error, match):
    svd = TruncatedSVD(**params)
    with pytest.raises(error, match=match):
        svd.fit(_data())
