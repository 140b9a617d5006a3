"""fastlr.PCA and the implicitly centered operand, against scikit-learn's PCA and NumPy."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.decomposition import PCA as SklearnPCA
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import (
    check_param_validation,
    parametrize_with_checks,
)

import fastlr
from fastlr import PCA
from fastlr._matrix import operand
from fastlr._matrix.centered import Centered


def _data(n=300, d=60, rank=6, offset=3.0, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, rank)) * 0.7 ** np.arange(rank)) @ rng.standard_normal((rank, d))
    X += 1e-2 * rng.standard_normal((n, d)) + offset * rng.standard_normal(d)
    return X.astype(dtype)


def _sparse(n=400, d=80, density=0.1, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed)
    return (X + (X != 0).multiply(rng.standard_normal((n, 4)) @ rng.standard_normal((4, d)))).tocsr()


@parametrize_with_checks([
    PCA(),
    PCA(n_components=2, svd_solver="randomized", random_state=0),
    PCA(n_components=1, svd_solver="arpack", random_state=0),
    PCA(n_components=0.9, svd_solver="randomized", random_state=0),
    PCA(n_components=2, whiten=True, svd_solver="full"),
])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_sklearn_parameter_validation():
    check_param_validation("PCA", PCA())


# --------------------------------------------------------------------------- the centered operand


@pytest.mark.parametrize("kind", ["dense", "fortran", "float32", "csr", "csc"])
def test_centered_operand_products(kind):
    rng = np.random.default_rng(1)
    if kind in ("csr", "csc"):
        X = _sparse().asformat(kind)
        D = X.toarray()
    else:
        D = _data(offset=50.0, dtype=np.float32 if kind == "float32" else np.float64)
        X = np.asfortranarray(D) if kind == "fortran" else D
    D = np.asarray(D, dtype=np.float64)
    before = X.copy()
    op = Centered(operand(X))
    Dc = D - D.mean(axis=0)
    V = rng.standard_normal((D.shape[1], 4)).astype(op.dtype)
    W = rng.standard_normal((D.shape[0], 4)).astype(op.dtype)
    rtol = 1e-4 if op.dtype == np.float32 else 1e-10
    scale = np.linalg.norm(Dc, 2)

    def close(actual, desired, size):
        assert np.abs(np.asarray(actual, dtype=np.float64) - desired).max() <= rtol * size

    np.testing.assert_allclose(op.mu, D.mean(axis=0), rtol=1e-12, atol=1e-12)
    close(op.times(V), Dc @ V, scale * 2 * np.abs(V).max())
    close(op.rtimes(W), Dc.T @ W, scale * 2 * np.abs(W).max())
    for product in (op.gram_product, op.power_product(4, 7), op.for_power_steps().gram_product):
        close(product(V), Dc.T @ (Dc @ V), scale**2 * 2 * np.abs(V).max())
    P, Z = op.power_pass(V)  # the Krylov finder's pass: both halves, centered
    close(P, Dc @ V, scale * 2 * np.abs(V).max())
    close(Z, Dc.T @ (Dc @ V), scale**2 * 2 * np.abs(V).max())
    np.testing.assert_allclose(op.squared_norm(), (Dc**2).sum(), rtol=1e-12)
    for S in (fastlr.CountSketch(20, D.shape[0], seed=2), fastlr.GaussianSketch(20, D.shape[0], seed=2)):
        close(op.sketch(S), S.to_dense() @ Dc, scale * 10)
    # nothing densified or modified
    if sp.issparse(X):
        assert (X != before).nnz == 0
    else:
        np.testing.assert_array_equal(X, before)


def test_centered_operand_given_mean_and_errors():
    X = _data(40, 10)
    mu = np.arange(10.0)
    op = Centered(operand(X), mu)
    np.testing.assert_allclose(op.times(np.eye(10)), X - mu, atol=1e-12)
    np.testing.assert_allclose(op.gram_product(np.eye(10)), (X - mu).T @ (X - mu), rtol=1e-10)
    with pytest.raises(ValueError, match=r"mu: expected shape \(10,\)"):
        Centered(operand(X), np.zeros(3))
    with pytest.raises(ValueError, match=r"mu: contains NaN"):
        Centered(operand(X), np.full(10, np.nan))
    with pytest.raises(TypeError, match=r"op: expected an Operand"):
        Centered(X)
    with pytest.raises(ValueError, match=r"transpose: True is not supported"):
        fastlr.randomized_svd(op, 2, transpose=True)


def test_centered_row_blocks(tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, _data())
    M = np.load(path, mmap_mode="r")
    op = Centered(operand(M, block_rows=50))
    Dc = np.asarray(M) - np.asarray(M).mean(axis=0)
    s = fastlr.randomized_svd(op, 5, random_state=0)[1]
    np.testing.assert_allclose(s, np.linalg.svd(Dc, compute_uv=False)[:5], rtol=1e-8)


# --------------------------------------------------------------------------- against scikit-learn


def _assert_same_pca(ours, theirs, X, rtol=1e-6):
    assert ours.n_components_ == theirs.n_components_
    signs = np.sign(np.sum(ours.components_ * theirs.components_, axis=1))
    np.testing.assert_allclose(ours.components_ * signs[:, None], theirs.components_, atol=rtol * 10)
    np.testing.assert_allclose(ours.explained_variance_, theirs.explained_variance_, rtol=rtol)
    np.testing.assert_allclose(ours.explained_variance_ratio_, theirs.explained_variance_ratio_, rtol=rtol)
    np.testing.assert_allclose(ours.singular_values_, theirs.singular_values_, rtol=rtol)
    np.testing.assert_allclose(ours.mean_, theirs.mean_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.noise_variance_, theirs.noise_variance_, rtol=1e-4)
    assert ours.n_samples_ == theirs.n_samples_ and ours.n_features_in_ == theirs.n_features_in_
    np.testing.assert_allclose(np.abs(ours.transform(X)), np.abs(theirs.transform(X)), atol=rtol * 100)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("solver", ["randomized", "full", "arpack"])
def test_same_as_sklearn_on_dense(seed, solver):
    X = _data(seed=seed)
    whiten = seed == 1
    kw = {"n_components": 5, "svd_solver": solver, "whiten": whiten, "random_state": seed}
    ours, theirs = PCA(**kw).fit(X), SklearnPCA(**kw).fit(X)
    _assert_same_pca(ours, theirs, X)
    np.testing.assert_allclose(np.abs(PCA(**kw).fit_transform(X)), np.abs(theirs.transform(X)), atol=1e-4)
    np.testing.assert_allclose(ours.inverse_transform(ours.transform(X)), theirs.inverse_transform(theirs.transform(X)),
                               atol=1e-6)
    np.testing.assert_allclose(ours.score(X), theirs.score(X), rtol=1e-6)


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.999])
def test_fraction_of_variance_matches_full_sklearn(fraction):
    X = _data(rank=12)
    theirs = SklearnPCA(n_components=fraction, svd_solver="full").fit(X)
    for solver in ("full", "randomized"):
        ours = PCA(n_components=fraction, svd_solver=solver, random_state=0).fit(X)
        _assert_same_pca(ours, theirs, X, rtol=1e-5)
        assert ours.explained_variance_ratio_.sum() >= fraction


def test_sparse_input_matches_dense_sklearn():
    X = _sparse()
    theirs = SklearnPCA(n_components=4, svd_solver="full").fit(X.toarray())
    for solver in ("randomized", "arpack", "auto"):
        ours = PCA(n_components=4, svd_solver=solver, random_state=0, iterated_power=10).fit(X)
        _assert_same_pca(ours, theirs, X.toarray(), rtol=1e-4)
        np.testing.assert_allclose(np.abs(ours.transform(X)), np.abs(theirs.transform(X.toarray())), atol=1e-2)
    frac = PCA(n_components=0.5, svd_solver="randomized", random_state=0).fit(X)
    full = SklearnPCA(n_components=0.5, svd_solver="full").fit(X.toarray())
    assert abs(frac.n_components_ - full.n_components_) <= 1  # flat spectrum: the boundary may move by one


def test_float32_stays_float32():
    X = _data(dtype=np.float32)
    for solver in ("randomized", "full", "arpack"):
        pca = PCA(n_components=3, svd_solver=solver, random_state=0).fit(X)
        for name in ("components_", "explained_variance_", "singular_values_", "mean_"):
            assert getattr(pca, name).dtype == np.float32, (solver, name)
        theirs = SklearnPCA(n_components=3, svd_solver="full").fit(X.astype(np.float64))
        np.testing.assert_allclose(pca.explained_variance_, theirs.explained_variance_, rtol=1e-3)


@pytest.mark.parametrize("shape", [(2, 2), (3, 7), (7, 3), (2, 30)])
def test_tiny_inputs(shape):
    X = np.random.default_rng(0).standard_normal(shape)
    for solver in ("full", "randomized"):
        ours = PCA(svd_solver=solver, random_state=0).fit(X)
        theirs = SklearnPCA(svd_solver=solver, random_state=0).fit(X)
        np.testing.assert_allclose(ours.explained_variance_, theirs.explained_variance_, rtol=1e-6, atol=1e-12)
        assert ours.n_components_ == min(shape)


def test_rank_deficient_and_constant_columns():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 3)) @ rng.standard_normal((3, 20)) + 7.0  # centered rank 3
    X[:, 5] = 2.0
    ours = PCA(n_components=6, svd_solver="randomized", random_state=0).fit(X)
    theirs = SklearnPCA(n_components=6, svd_solver="full").fit(X)
    np.testing.assert_allclose(ours.explained_variance_, theirs.explained_variance_, atol=1e-10 * theirs.explained_variance_[0])
    np.testing.assert_allclose(ours.components_ @ ours.components_.T, np.eye(6), atol=1e-10)
    assert np.isfinite(ours.transform(X)).all()
    const = PCA(n_components=2, svd_solver="randomized", random_state=0).fit(np.ones((10, 4)))
    assert np.all(const.explained_variance_ == 0) and np.all(const.explained_variance_ratio_ == 0)


@pytest.mark.parametrize("params, X, error, match", [
    ({"n_components": 81}, "sparse", ValueError, r"n_components=81 must be between 1 and min\(n_samples, n_features\)=80"),
    ({"n_components": 80, "svd_solver": "arpack"}, "sparse", ValueError, r"n_components=80 must be strictly less"),
    ({"n_components": 0.5, "svd_solver": "arpack"}, "dense", ValueError, r"n_components: a float \(0\.5\) needs"),
    ({"n_components": 61, "svd_solver": "full"}, "dense", ValueError, r"n_components=61 must be between 0 and"),
    ({"svd_solver": "full"}, "sparse", TypeError, r'svd_solver: PCA only support sparse inputs with the "arpack" and "covariance_eigh" solvers, while "full"'),
    ({"svd_solver": "eigh"}, "dense", InvalidParameterError, r"'svd_solver' parameter of PCA"),
    ({"n_components": 1.5}, "dense", InvalidParameterError, r"'n_components' parameter of PCA"),
    ({"n_components": "MLE"}, "dense", InvalidParameterError, r"'n_components' parameter of PCA"),
    ({"n_components": "mle", "svd_solver": "randomized"}, "dense", ValueError,
     r"n_components='mle' cannot be a string with svd_solver='randomized'"),
    ({"n_components": "mle"}, "sparse", ValueError, r"n_components='mle' cannot be a string with svd_solver='arpack'"),
    ({"backend": "gpu"}, "dense", ValueError, r"backend: unknown backend 'gpu'"),
])
def test_bad_parameters(params, X, error, match):
    X = _sparse() if X == "sparse" else _data()
    with pytest.raises(error, match=match):
        PCA(**params).fit(X)


def test_sparse_never_densified(monkeypatch):
    X = _sparse()

    def refuse(*args, **kwargs):
        raise AssertionError("densified")

    monkeypatch.setattr(sp.csr_matrix, "toarray", refuse)
    monkeypatch.setattr(sp.csr_matrix, "todense", refuse)
    pca = PCA(n_components=3, svd_solver="randomized", random_state=0).fit(X)
    assert pca.transform(X).shape == (400, 3)
    assert PCA(n_components=0.3, random_state=0).fit(X).n_components_ >= 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_randomized_pca_on_the_krylov_finder_is_at_least_as_accurate(dtype, monkeypatch):
    """Tall dense data wide enough for the block Krylov finder (fastlr/_krylov.py): PCA takes it
    through the centered operand, and its worst explained variance over 30 seeds is within 1.5x
    scikit-learn's randomized solver's (plus rounding) of the exact one."""
    import sys

    rng = np.random.default_rng(7)
    X = (rng.standard_normal((700, 30)) / np.arange(1, 31)) @ rng.standard_normal((30, 600))
    X = (X + 1e-3 * rng.standard_normal((700, 600)) + 4.0 * rng.standard_normal(600)).astype(dtype)
    exact = SklearnPCA(8, svd_solver="full").fit(X.astype(np.float64)).explained_variance_
    used = []
    randomized = sys.modules["fastlr.randomized"]
    krylov_factors = randomized.krylov_factors
    monkeypatch.setattr(randomized, "krylov_factors", lambda *a: used.append(1) or krylov_factors(*a))

    def worst(make):
        return max(np.max(np.abs(make(seed).fit(X).explained_variance_ / exact - 1)) for seed in range(30))

    ours = worst(lambda seed: PCA(8, svd_solver="randomized", random_state=seed))
    assert used
    theirs = worst(lambda seed: SklearnPCA(8, svd_solver="randomized", random_state=seed))
    floor = 1e-5 if dtype == np.float32 else 1e-12
    assert ours <= 1.5 * theirs + floor, (ours, theirs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("whiten", [False, True])
def test_covariance_eigh_matches_sklearn(dtype, kind, whiten):
    """svd_solver="covariance_eigh" (fastlr's blocked SYRK for dense X; sparse X stays sparse) against
    scikit-learn's, and against the exact SVD of the centered X: every fitted attribute, fit_transform."""
    X = _data(n=600, d=40, dtype=dtype) if kind == "dense" else _sparse(n=600, d=40).astype(dtype)
    kw = {"n_components": 6, "svd_solver": "covariance_eigh", "whiten": whiten}
    ours, theirs = PCA(**kw).fit(X), SklearnPCA(**kw).fit(X)
    rtol = 2e-3 if dtype == np.float32 else 1e-8
    assert ours.components_.dtype == dtype and ours.n_components_ == 6
    Xd = np.asarray(X.toarray() if kind == "sparse" else X, dtype=np.float64)
    s = np.linalg.svd(Xd - Xd.mean(axis=0), compute_uv=False)
    np.testing.assert_allclose(ours.singular_values_, s[:6], rtol=rtol)
    for name in ("singular_values_", "explained_variance_", "explained_variance_ratio_", "mean_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=rtol, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(np.abs(ours.components_ @ theirs.components_.T), np.eye(6), atol=rtol * 10)
    # the variance left out: off by the covariance's rounding (eps * largest eigenvalue) in both
    exact_noise = np.mean(s[6:] ** 2) / (X.shape[0] - 1)
    assert abs(ours.noise_variance_ - exact_noise) <= 3 * abs(theirs.noise_variance_ - exact_noise) + 1e-10
    np.testing.assert_allclose(PCA(**kw).fit_transform(X), theirs.transform(X), rtol=rtol, atol=rtol * 10)


@pytest.mark.parametrize("shape, k", [((600, 40), 5), ((600, 40), 0.8), ((600, 40), "mle"), ((300, 200), 10),
                                      ((300, 200), 190), ((2000, 600), 10), ((2000, 600), 0.5), ((2000, 600), 500),
                                      ((2000, 600), None), ((700, 2000), 10), ((700, 2000), "mle")])
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_auto_solver_is_sklearns(shape, k, kind, monkeypatch):
    """svd_solver="auto" picks the solver scikit-learn's PCA picks (so the default gives its answers);
    for sparse X with a fraction, where scikit-learn has none ("arpack" refuses it), fastlr's randomized one."""
    X = np.random.default_rng(0).standard_normal(shape)
    if kind == "sparse":
        X = sp.csr_matrix(X * (np.random.default_rng(1).random(shape) < 0.05))

    class Chosen(Exception):
        pass

    def stop(self, *args, **kwargs):
        raise Chosen  # scikit-learn has chosen (self._fit_svd_solver); the fit itself is not needed

    monkeypatch.setattr(SklearnPCA, "_fit_full", stop)
    monkeypatch.setattr(SklearnPCA, "_fit_truncated", stop)
    theirs = SklearnPCA(n_components=k)
    with pytest.raises(Chosen):
        theirs.fit(X)
    expected = "randomized" if kind == "sparse" and isinstance(k, float) else theirs._fit_svd_solver
    ours = PCA(n_components=k)
    ours._validate_params()
    assert ours._solver(X, k) == expected


def test_mle_evidence_matches_minkas_formula_as_sklearn_computes_it():
    """fastlr._pca_rank's O(d^2) evidence against scikit-learn's direct O(d^3) sum, on random
    spectra (exponential, two-level, spread over 20 decades, a redundant feature), and the ranks
    PCA(n_components="mle") picks."""
    from sklearn.decomposition._pca import _assess_dimension, _infer_dimension

    from fastlr._pca_rank import evidence, minka_rank

    rng = np.random.default_rng(0)
    for trial in range(120):
        d, n = int(rng.integers(2, 30)), int(rng.integers(30, 2000))
        kind = trial % 4
        if kind == 0:
            lam = rng.exponential(size=d)
        elif kind == 1:
            lam = np.r_[rng.uniform(1, 5, size=rng.integers(1, d + 1)), 0.01 * rng.uniform(0.9, 1.1, size=d)][:d]
        elif kind == 2:
            lam = 10.0 ** rng.uniform(-20, 3, size=d)
        else:
            X = rng.standard_normal((n, d))
            X[:, -1] = X[:, :-1].mean(axis=1) if d > 2 else X[:, -1]
            lam = np.linalg.svd(X - X.mean(axis=0), compute_uv=False) ** 2 / (n - 1)
        lam = np.sort(lam)[::-1]
        ours = evidence(lam, n)
        ref = np.array([-np.inf] + [_assess_dimension(lam, k, n) for k in range(1, d)])
        assert np.array_equal(np.isfinite(ours), np.isfinite(ref))
        finite = np.isfinite(ref)
        np.testing.assert_allclose(ours[finite], ref[finite], rtol=1e-10, atol=1e-8)
        assert minka_rank(lam, n) == _infer_dimension(lam, n)
    X = _data(n=500, d=30, rank=6)
    for solver in ("full", "covariance_eigh", "auto"):
        ours, theirs = PCA("mle", svd_solver=solver).fit(X), SklearnPCA("mle", svd_solver=solver).fit(X)
        assert ours.n_components_ == theirs.n_components_ and 1 <= ours.n_components_ < 30
        _assert_same_pca(ours, theirs, X, rtol=1e-6)


@pytest.mark.parametrize("solver", ["full", "covariance_eigh"])
@pytest.mark.parametrize("dtype, scale", [(np.float32, 1e20), (np.float64, 1e160)])
def test_exact_solvers_refuse_overflowing_variances(solver, dtype, scale):
    """Finite X whose squares overflow: a ValueError naming X (the covariance route returned
    explained variances of 0, "full" inf and n_components_ = 0 with "mle"), for every n_components."""
    X = (np.random.default_rng(0).standard_normal((100, 5)) * scale).astype(dtype)
    for k in (2, 0.5, "mle"):
        with pytest.raises(ValueError, match="^X: its (variances|covariance matrix) overflow"):
            PCA(k, svd_solver=solver).fit(X)
    assert np.isfinite(PCA(2, svd_solver=solver).fit(X / scale).explained_variance_).all()


@pytest.mark.parametrize("solver", ["full", "covariance_eigh"])
def test_constant_data_with_a_fraction_keeps_one_component(solver):
    """No variance at all: scikit-learn keeps one component for any fraction (0 / 0 ratios);
    fastlr kept all of them."""
    X = np.ones((50, 4))
    ours = PCA(0.5, svd_solver=solver).fit(X)
    with np.errstate(invalid="ignore"):  # scikit-learn's 0 / 0
        theirs = SklearnPCA(0.5, svd_solver=solver).fit(X)
    assert ours.n_components_ == theirs.n_components_ == 1
