"""fastlr.randomized_svd: scikit-learn's contract, and at least its accuracy."""

import sys

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from test_scw import as_kind, assert_svd_contract, lowrank_plus_noise, optimal_error

import fastlr

extmath = pytest.importorskip("sklearn.utils.extmath")


@pytest.fixture(params=["gram", "passes"])
def power_path(request, monkeypatch):
    """Dense power iterations through A^T A (one SYRK) or as one pass over A per step."""
    monkeypatch.setattr(sys.modules["fastlr._matrix.memory"], "GRAM_WIDTH", 10**9 if request.param == "gram" else 0)
    return request.param


def excess(A, U, s, Vt, opt):
    A = A.toarray() if sp.issparse(A) else A
    return np.linalg.norm(A.astype(np.float64) - (U * s) @ Vt) / opt - 1


@pytest.mark.parametrize("kind", ["C", "F", "csr", "csc"])
@pytest.mark.parametrize("spectrum", ["flat", "harmonic", "geometric"])
def test_contract_and_singular_values(dtype, kind, spectrum, power_path):
    n, d, k = 300, 70, 5
    A = lowrank_plus_noise(n, d, spectrum, dtype=dtype, seed=1)
    _, svals = optimal_error(A, k)
    U, s, Vt = fastlr.randomized_svd(as_kind(A, kind), k, random_state=0)
    assert_svd_contract(U, s, Vt, n, d, k, dtype)
    rtol = 1e-4 if dtype == np.float32 else 1e-7
    np.testing.assert_allclose(s, svals[:k], rtol=rtol, atol=rtol * svals[0])


@pytest.mark.parametrize("n_iter", [0, 1, 2, "auto"])
@pytest.mark.parametrize("spectrum", ["harmonic", "geometric"])
def test_accuracy_matches_sklearn(n_iter, spectrum, dtype, power_path):
    """Excess error (||A - A_hat|| / ||A - A_k|| - 1) no worse than scikit-learn's, over several seeds."""
    n, d, k = 500, 120, 8
    A = lowrank_plus_noise(n, d, spectrum, rank=40, noise=0.05, seed=7, dtype=dtype)
    opt, _ = optimal_error(A, k)
    ours, theirs = [], []
    for seed in range(4):
        ours.append(excess(A, *fastlr.randomized_svd(A, k, n_iter=n_iter, random_state=seed), opt))
        theirs.append(excess(A, *extmath.randomized_svd(A, k, n_iter=n_iter, random_state=seed), opt))
    floor = 1e-5 if dtype == np.float32 else 1e-12  # both at rounding level
    assert np.mean(ours) <= 1.5 * np.mean(theirs) + floor


@pytest.mark.parametrize("layout", ["C", "F"])
def test_gram_and_passes_agree(dtype, layout, monkeypatch):
    """Both ways of running the power steps give the same factors to rounding (subspace iteration:
    the block Krylov finder, which takes over from the passes on such A, is another algorithm)."""
    memory_module = sys.modules["fastlr._matrix.memory"]
    monkeypatch.setattr(sys.modules["fastlr.randomized"], "krylov_applies", lambda *args: False)
    A = lowrank_plus_noise(400, 90, "harmonic", rank=30, noise=0.01, seed=3, dtype=dtype)
    A = np.asfortranarray(A) if layout == "F" else A
    assert memory_module.InMemory(A)._gram_pays(16, 7)
    results = {}
    for width in (10**9, 0):
        monkeypatch.setattr(memory_module, "GRAM_WIDTH", width)
        results[width] = fastlr.randomized_svd(A, 6, n_iter=7, random_state=0)
    (U1, s1, Vt1), (U2, s2, Vt2) = results.values()
    tol = 2e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(s1, s2, rtol=tol)
    np.testing.assert_allclose(U1, U2, atol=tol)
    np.testing.assert_allclose(Vt1, Vt2, atol=tol)


def test_gram_in_row_blocks_on_threads(dtype):
    """The Gram matrix summed over per-thread row blocks equals the one-block product."""
    memory_module = sys.modules["fastlr._matrix.memory"]
    A = lowrank_plus_noise(1200, 50, "harmonic", rank=20, noise=0.01, seed=4, dtype=dtype)
    with fastlr.thread_limit(1):
        G1 = memory_module._gram(A)
    with fastlr.thread_limit(2):
        G2 = memory_module._gram(A)
        U2, s2, Vt2 = fastlr.randomized_svd(A, 5, random_state=0)
    U1, s1, Vt1 = fastlr.randomized_svd(A, 5, random_state=0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(G2, G1, rtol=tol, atol=tol * np.abs(G1).max())
    np.testing.assert_allclose(G1, A.T.astype(np.float64) @ A, rtol=10 * tol, atol=10 * tol * np.abs(G1).max())
    np.testing.assert_allclose(s2, s1, rtol=10 * tol)


def test_same_signs_and_factors_as_sklearn():
    A = lowrank_plus_noise(400, 60, "geometric", seed=2)
    U, s, Vt = fastlr.randomized_svd(A, 6, n_iter=4, random_state=0)
    U2, s2, Vt2 = extmath.randomized_svd(A, 6, n_iter=4, random_state=0)
    np.testing.assert_allclose(s, s2, rtol=1e-9)
    np.testing.assert_allclose(U, U2, atol=1e-7)  # same signs: svd_flip's convention
    np.testing.assert_allclose(Vt, Vt2, atol=1e-7)
    Uf, Vtf = extmath.svd_flip(U.copy(), Vt.copy())
    np.testing.assert_array_equal(Uf, U)
    np.testing.assert_array_equal(Vtf, Vt)


@pytest.mark.parametrize("normalizer", ["auto", "QR", "LU", "none"])
@pytest.mark.parametrize("sketch", ["countsketch", "gaussian"])
def test_options(normalizer, sketch):
    n, d, k = 250, 90, 4
    A = lowrank_plus_noise(n, d, "harmonic", seed=3)
    _, svals = optimal_error(A, k)
    U, s, Vt = fastlr.randomized_svd(A, k, n_iter=3, power_iteration_normalizer=normalizer, sketch=sketch,
                                     random_state=1)
    assert_svd_contract(U, s, Vt, n, d, k, np.float64)
    np.testing.assert_allclose(s, svals[:k], rtol=1e-6)


@pytest.mark.parametrize("driver", ["gesdd", "gesvd"])
@pytest.mark.parametrize("transpose", ["auto", True, False])
def test_transpose_and_driver(transpose, driver):
    A = lowrank_plus_noise(80, 200, "geometric", seed=4)  # wide: sklearn's "auto" would transpose
    expected = scipy.linalg.svd(A)
    U, s, Vt = fastlr.randomized_svd(A, 5, transpose=transpose, svd_lapack_driver=driver, random_state=0)
    assert_svd_contract(U, s, Vt, 80, 200, 5, np.float64)
    np.testing.assert_allclose(s, expected[1][:5], rtol=1e-8)
    np.testing.assert_allclose(np.abs(U.T @ expected[0][:, :5]), np.eye(5), atol=1e-6)


def test_flip_sign_false_is_still_an_svd():
    A = lowrank_plus_noise(150, 40, "harmonic", seed=5)
    U, s, Vt = fastlr.randomized_svd(A, 4, flip_sign=False, random_state=0)
    U2, s2, Vt2 = fastlr.randomized_svd(A, 4, random_state=0)
    np.testing.assert_allclose(s, s2)
    np.testing.assert_allclose((U * s) @ Vt, (U2 * s2) @ Vt2, atol=1e-12)


def test_random_state_forms():
    A = lowrank_plus_noise(120, 30, "harmonic", seed=6)
    a = fastlr.randomized_svd(A, 3, n_iter=0, random_state=5)
    b = fastlr.randomized_svd(A, 3, n_iter=0, random_state=5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    for rs in (None, np.random.RandomState(0), np.random.default_rng(0)):
        assert_svd_contract(*fastlr.randomized_svd(A, 3, random_state=rs), 120, 30, 3, np.float64)
    state = np.random.get_state()[1].copy()
    fastlr.randomized_svd(A, 3, random_state=None)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global np.random untouched
    with pytest.raises(TypeError, match="random_state"):
        fastlr.randomized_svd(A, 3, random_state="seed")
    with pytest.raises(ValueError, match="random_state: must be >= 0"):
        fastlr.randomized_svd(A, 3, random_state=-1)


def test_integer_and_coo_input():
    rng = np.random.default_rng(8)
    A = rng.integers(-3, 4, size=(100, 3)) @ rng.integers(-3, 4, size=(3, 25))  # rank 3, integer
    U, s, Vt = fastlr.randomized_svd(A, 3, random_state=0)
    assert U.dtype == np.float64
    np.testing.assert_allclose(s, scipy.linalg.svdvals(A.astype(float))[:3], rtol=1e-10)
    U2, s2, Vt2 = fastlr.randomized_svd(sp.coo_matrix(A), 3, random_state=0)
    np.testing.assert_allclose(s2, s, rtol=1e-10)


def test_backends_agree(dtype):
    A = lowrank_plus_noise(2000, 50, "harmonic", seed=9, dtype=dtype)  # tall: the SVQB path
    results = [fastlr.randomized_svd(A, 6, n_iter=2, random_state=0, backend=b) for b in fastlr.available_backends()]
    tol = 1e-4 if dtype == np.float32 else 1e-9
    for U, s, Vt in results:
        assert_svd_contract(U, s, Vt, 2000, 50, 6, dtype)
        np.testing.assert_allclose(s, results[0][1], rtol=tol)
        np.testing.assert_allclose(U, results[0][0], atol=tol * 10)


def test_backends_agree_on_the_krylov_finder(dtype, monkeypatch):
    """Tall dense A wide enough for the block Krylov finder: every backend's passes (fused power_pass,
    float32's two-pass steps) give the same factors, and the finder is the one that ran."""
    A = lowrank_plus_noise(800, 600, "harmonic", rank=40, noise=0.01, seed=11, dtype=dtype)
    randomized = sys.modules["fastlr.randomized"]
    krylov_factors, used = randomized.krylov_factors, []
    monkeypatch.setattr(randomized, "krylov_factors", lambda *a: used.append(1) or krylov_factors(*a))
    results = [fastlr.randomized_svd(A, 6, random_state=0, backend=b) for b in fastlr.available_backends()]
    assert len(used) == len(results)
    tol = 1e-4 if dtype == np.float32 else 1e-9
    for U, s, Vt in results:
        assert_svd_contract(U, s, Vt, 800, 600, 6, dtype)
        np.testing.assert_allclose(s, results[0][1], rtol=tol)
        np.testing.assert_allclose(np.abs(U.T.astype(np.float64) @ results[0][0]), np.eye(6), atol=tol * 10)


@pytest.mark.parametrize("rank", [0, 2])
def test_rank_deficient(rank, dtype):
    rng = np.random.default_rng(rank)
    A = (rng.standard_normal((150, rank)) @ rng.standard_normal((rank, 40))).astype(dtype)
    for n_iter in (0, 5):
        U, s, Vt = fastlr.randomized_svd(A, 4, n_iter=n_iter, random_state=0)
        assert_svd_contract(U, s, Vt, 150, 40, 4, dtype)
        assert np.all(s[rank:] == 0) and np.all(s[:rank] > 0)


def test_bad_input():
    A = np.ones((20, 8))
    cases = [
        (dict(n_components=0), ValueError, "n_components: must be >= 1"),
        (dict(n_components=2, n_oversamples=-1), ValueError, "n_oversamples"),
        (dict(n_components=2, n_iter=-2), ValueError, "n_iter"),
        (dict(n_components=2, n_iter="many"), TypeError, "n_iter"),
        (dict(n_components=2, power_iteration_normalizer="qr"), ValueError, "power_iteration_normalizer"),
        (dict(n_components=2, transpose="yes"), ValueError, "transpose"),
        (dict(n_components=2, sketch="srht"), ValueError, "sketch"),
        (dict(n_components=2, svd_lapack_driver="gesvj"), ValueError, "svd_lapack_driver"),
        (dict(n_components=2, flip_sign=None), TypeError, "flip_sign"),
    ]
    for kwargs, err, msg in cases:
        with pytest.raises(err, match=msg):
            fastlr.randomized_svd(A, **kwargs)
    B = A.copy()
    B[3, 3] = np.nan
    with pytest.raises(ValueError, match="A: contains NaN or inf"):
        fastlr.randomized_svd(B, 2)
    with pytest.raises(ValueError, match="A: contains NaN or inf"):
        fastlr.randomized_svd(sp.csr_matrix(B), 2, sketch="gaussian")
    with pytest.raises(ValueError, match="A: expected a 2-D"):
        fastlr.randomized_svd(np.ones(5), 1)
    with pytest.raises(ValueError, match="A: expected a non-empty"):
        fastlr.randomized_svd(np.ones((0, 5)), 1)
    with pytest.raises(TypeError, match="A: complex"):
        fastlr.randomized_svd(A + 1j, 1)


@pytest.mark.parametrize("kind", ["C", "csr"])
@pytest.mark.parametrize("dtype_scale", [(np.float32, 1e18), (np.float32, 1e-18), (np.float64, 1e-200),
                                         (np.float64, 1e200)])
def test_extreme_but_finite_scales(dtype_scale, kind, power_path):
    """Entries near the limits of the dtype give the singular values of the unscaled matrix, scaled."""
    dtype, scale = dtype_scale
    rng = np.random.default_rng(0)
    B = rng.standard_normal((300, 40)) @ np.diag(np.geomspace(1, 1e-2, 40)) @ rng.standard_normal((40, 80))
    exact = np.linalg.svd(B, compute_uv=False)[:5]
    A = as_kind((B * scale).astype(dtype), kind)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    U, s, Vt = fastlr.randomized_svd(A, 5, random_state=0)
    assert s.dtype == dtype and np.isfinite(U).all() and np.isfinite(Vt).all()
    np.testing.assert_allclose(s / scale, exact, rtol=rtol)
    reference = fastlr.scw(B.astype(dtype), fastlr.CountSketch(20, 300, seed=0), 5, n_iter=2).s
    got = fastlr.scw(A, fastlr.CountSketch(20, 300, seed=0), 5, n_iter=2).s
    np.testing.assert_allclose(got / scale, reference, rtol=rtol)


def test_transposed_path_is_as_accurate_as_sklearn_over_seeds():
    """scikit-learn's own test case (make_low_rank_matrix, seed 0, n_iter=3): worst |s - s_exact| over
    100 seeds, transpose=True and False, within scikit-learn's worst (seed 0 alone is one draw)."""
    datasets = pytest.importorskip("sklearn.datasets")
    X = datasets.make_low_rank_matrix(100, 500, effective_rank=4, tail_strength=0.5, random_state=0)
    exact = np.linalg.svd(X, compute_uv=False)[:10]
    for transpose in (False, True):
        ours = max(np.abs(fastlr.randomized_svd(X, 10, n_iter=3, transpose=transpose, random_state=seed)[1]
                          - exact).max() for seed in range(100))
        theirs = max(np.abs(extmath.randomized_svd(X, 10, n_iter=3, transpose=transpose, random_state=seed)[1]
                            - exact).max() for seed in range(100))
        assert ours <= 1.5 * theirs, (transpose, ours, theirs)


def test_n_components_above_min_shape_gives_min_shape_components():
    A = np.random.default_rng(0).standard_normal((20, 8))
    U, s, Vt = fastlr.randomized_svd(A, 12, random_state=0)
    assert U.shape == (20, 8) and s.shape == (8,) and Vt.shape == (8, 8)
    np.testing.assert_allclose(s, np.linalg.svd(A, compute_uv=False), rtol=1e-12)
    assert fastlr.randomized_svd(A.T, 30, random_state=0)[1].shape == (8,)


def test_sklearn_keywords_and_numpy_bools():
    A = np.random.default_rng(0).standard_normal((30, 10))
    expected = fastlr.randomized_svd(A, 3, random_state=0)
    for got in (fastlr.randomized_svd(M=A, n_components=3, random_state=0),
                fastlr.randomized_svd(A=A, n_components=3, random_state=0),
                fastlr.randomized_svd(A, 3, random_state=0, transpose=np.False_, flip_sign=np.True_)):
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)
    with pytest.raises(TypeError, match="twice"):
        fastlr.randomized_svd(A, 3, A=A)
    with pytest.raises(TypeError, match="n_components"):
        fastlr.randomized_svd(A)
    with pytest.raises(ValueError, match="random_state"):
        fastlr.randomized_svd(A, 3, random_state=2**64)
    assert fastlr.randomized_svd(A, 3, n_oversamples=2**63, random_state=0)[1].shape == (3,)


def test_lil_and_dok_give_the_csr_result():
    A = sp.random(200, 50, density=0.1, format="csr", random_state=0)
    expected = fastlr.randomized_svd(A, 4, random_state=0)
    for fmt in ("lil", "dok", "coo", "csc"):
        for g, e in zip(fastlr.randomized_svd(A.asformat(fmt), 4, random_state=0), expected):
            np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("rank", [0, 3, 40])
def test_wide_input_row_space_basis_at_every_rank(sparse, rank):
    """Wide A (transpose="auto") whose row-space basis A^T V is tall enough for the Gram (SVQB)
    orthonormalization: zero, exactly low-rank (rank < k) and full-rank input give orthonormal
    factors, exact singular values where the rank allows, and zeros beyond the rank."""
    rng = np.random.default_rng(rank)
    n, d, k = 40, 6000, 8
    A = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) if rank else np.zeros((n, d))
    if sparse:
        A[:, rng.random(d) < 0.5] = 0.0
        A = sp.csr_matrix(A)
    dense = A.toarray() if sparse else A
    U, s, Vt = fastlr.randomized_svd(A, k, random_state=0)
    np.testing.assert_allclose(U.T @ U, np.eye(k), atol=1e-12)
    np.testing.assert_allclose(Vt @ Vt.T, np.eye(k), atol=1e-12)
    exact = np.linalg.svd(dense, compute_uv=False)[:k]
    if rank <= k:
        np.testing.assert_allclose(s, exact, rtol=1e-10, atol=1e-10 * max(exact[0], 1.0))
        np.testing.assert_allclose((U * s) @ Vt, dense, atol=1e-9 * max(exact[0], 1.0))
    else:
        assert np.all(s <= exact * (1 + 1e-12)) and s[0] >= 0.99 * exact[0]


def test_wide_float32_keeps_a_graded_spectrum():
    """A wide float32 matrix of rank 12 with singular values 1 .. 1e-4: the row-space basis keeps
    every direction (a cut scaled by the long side, 6000 * eps32 = 7e-4, would zero s_10 = 5e-4)."""
    rng = np.random.default_rng(5)
    n, d, k = 40, 6000, 10
    s_true = np.concatenate([np.logspace(0, -4, 12), np.zeros(n - 12)])
    U0 = np.linalg.qr(rng.standard_normal((n, n)))[0]
    V0 = np.linalg.qr(rng.standard_normal((d, n)))[0]
    A = (U0 * s_true) @ V0.T
    for dtype, rtol in ((np.float64, 1e-10), (np.float32, 1e-2)):
        s = fastlr.randomized_svd(A.astype(dtype), k, random_state=0)[1]
        np.testing.assert_allclose(s, s_true[:k], rtol=rtol)


def test_ritz_pairs_need_no_orthonormal_basis():
    """The power steps hand over an LU basis scaled by a power of two: the Ritz values over span(V)
    must not depend on which basis of the span V is."""
    from fastlr._linalg import ritz_pairs

    rng = np.random.default_rng(0)
    A = rng.standard_normal((60, 30)) * np.logspace(0, -3, 30)
    G = A.T @ A
    Q = np.linalg.qr(rng.standard_normal((30, 8)))[0]
    V = Q @ (np.triu(rng.standard_normal((8, 8))) + 3 * np.eye(8)) / 1024
    theta, X = ritz_pairs(V, G @ V)
    np.testing.assert_allclose(theta, np.linalg.eigvalsh(Q.T @ G @ Q), rtol=1e-9)
    np.testing.assert_allclose((V @ X).T @ (V @ X), np.eye(8), atol=1e-9)
    np.testing.assert_allclose((V @ X).T @ G @ (V @ X), np.diag(theta), atol=1e-9 * theta[-1])
    assert ritz_pairs(np.zeros((30, 2)), np.zeros((30, 2))) is None


@pytest.mark.parametrize("ratio", [10.0, 80.0, 300.0, 700.0, 3e4])
def test_float32_gram_last_step_decides_on_the_span_not_the_basis(ratio, monkeypatch):
    """After the Gram route, float32's last step returns G V, takes one fused pass or two passes,
    by the Ritz values over span(V): the same for any basis of that span."""
    from fastlr._matrix import InMemory

    rng = np.random.default_rng(1)
    n, d, l, k = 400, 60, 12, 6
    s = np.geomspace(1.0, 1.0 / ratio, k)  # exactly rank k, plus noise
    A = (np.linalg.qr(rng.standard_normal((n, k)))[0] * s) @ np.linalg.qr(rng.standard_normal((d, k)))[0].T
    A = (A + 1e-6 * rng.standard_normal((n, d))).astype(np.float32)
    op = InMemory(A)
    steps = op.power_steps(l, 8, k)
    assert steps.last is not None and steps.k == k
    taken = []
    fused = op.gram_product
    monkeypatch.setattr(op, "gram_product", lambda V: (taken.append("fused"), fused(V))[1])
    two = op.normalized_power_step
    monkeypatch.setattr(op, "normalized_power_step", lambda V, k: (taken.append("two"), two(V, k))[1])
    G = A.astype(np.float64).T @ A
    V = np.linalg.qr(rng.standard_normal((d, l)))[0]
    for _ in range(3):  # near the top of the spectrum, as the last step sees V
        V = np.linalg.qr(G @ V)[0]
    T = np.triu(rng.standard_normal((l, l))) + 3 * np.eye(l)  # condition 8, as the LU bases' 10-20
    decisions = []
    for basis in (V, V @ T / 64):
        taken.clear()
        steps.last(np.ascontiguousarray(basis, dtype=np.float32))
        decisions.append(tuple(taken) or ("G V",))
    assert decisions[0] == decisions[1], decisions


def test_blas_limit_leaves_libraries_at_the_limit_alone(monkeypatch):
    """``_linalg.blas_limit`` sets only the BLAS libraries not already at the limit (OpenBLAS's next
    call after a redundant ``set_num_threads`` ran 0.12-0.3 ms slower: a 10 ms sgemm run by ``times``);
    the others are set inside the block and restored after it."""
    from threadpoolctl import threadpool_limits

    from fastlr import _linalg

    with _linalg.blas_limit(1):
        pass
    libraries = [lib for lib, _ in _linalg._controller]
    assert libraries, "no BLAS library found"
    calls = []
    for lib in libraries:
        monkeypatch.setattr(lib, "set_num_threads", lambda n, f=lib.set_num_threads: calls.append(n) or f(n))
    rng = np.random.default_rng(0)
    A, V = rng.standard_normal((300, 200)), rng.standard_normal((200, 20))
    with threadpool_limits(1, user_api="blas"):
        with _linalg.blas_limit(1):
            np.testing.assert_allclose(fastlr._matrix.InMemory(A).times(V), A @ V, rtol=1e-12, atol=1e-12)
        assert calls == []
        with _linalg.blas_limit(2):
            assert all(lib.num_threads == 2 for lib in libraries)
        assert all(lib.num_threads == 1 for lib in libraries)
    assert calls == [2] * len(libraries) + [1] * len(libraries)


def test_blas_thread_getters_read_what_threadpoolctl_reads():
    """``_linalg.blas_limit`` reads each library's thread count through ``_thread_getter`` (OpenBLAS's own
    getter, without threadpoolctl's Python frames): the same count as threadpoolctl's property, at 1 and 2."""
    from threadpoolctl import threadpool_limits

    from fastlr import _linalg

    with _linalg.blas_limit(1):
        pass
    assert _linalg._controller, "no BLAS library found"
    for n in (1, 2):
        with threadpool_limits(n, user_api="blas"):
            for lib, threads in _linalg._controller:
                assert threads() == lib.num_threads == n


def test_blas_thread_getter_falls_back_to_threadpoolctl():
    """A library other than OpenBLAS's pthreads build (or a threadpoolctl without ``_get_symbol``) is read through
    threadpoolctl's ``num_threads`` property."""
    from fastlr import _linalg

    class Lib:
        internal_api, threading_layer, num_threads = "mkl", "intel", 3

    assert _linalg._thread_getter(Lib())() == 3

    class Old:
        internal_api, threading_layer, num_threads = "openblas", "pthreads", 2

    assert _linalg._thread_getter(Old())() == 2


class _Recorded(np.ndarray):
    """An ndarray that records whether it took part in a product as the left or the right factor."""

    log: list = []

    def __matmul__(self, other):
        _Recorded.log.append("left")
        return np.asarray(self) @ np.asarray(other)

    def __rmatmul__(self, other):
        _Recorded.log.append("right")
        return np.asarray(other) @ np.asarray(self)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blas_products_take_the_faster_layout(dtype, monkeypatch):
    """Dense BLAS products (``times``/``rtimes``/two-pass steps where the kernel does not run): ``A.T @ W``
    of C-order A (and ``A @ V`` of F-order A: float64, or a sum over the long side) go in as
    ``(W.T @ A).T``, which OpenBLAS runs faster (5760 x 1080 by 60 columns, 1 thread: 8.5 vs 10.4 ms
    float32, 18.0 vs 25.9 ms float64), ``A @ V`` of C-order A as it is; every result C order and equal
    to NumPy's to rounding."""
    from fastlr._linalg import blas_times
    from fastlr._matrix import InMemory

    rng = np.random.default_rng(11)
    A = rng.standard_normal((300, 70)).astype(dtype)
    V = rng.standard_normal((70, 45)).astype(dtype).view(_Recorded)
    W = rng.standard_normal((300, 45)).astype(dtype).view(_Recorded)
    _Recorded.log = []
    blas_times(A, V)
    assert _Recorded.log == ["right"]  # A @ V
    _Recorded.log = []
    blas_times(A.T, W)
    assert _Recorded.log == ["left"]  # W.T @ A: the sum over A's long side
    _Recorded.log = []
    blas_times(np.asfortranarray(A), V)  # the sum over the short side: float64 only
    assert _Recorded.log == (["left"] if dtype == np.float64 else ["right"])
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "blas")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    V, W = np.asarray(V), np.asarray(W)
    A64, V64, W64 = A.astype(np.float64), V.astype(np.float64), W.astype(np.float64)
    for M, M64 in ((A, A64), (np.asfortranarray(A), A64)):
        op = InMemory(M)
        for got, ref in ((op.times(V), A64 @ V64), (op.rtimes(W), A64.T @ W64), (op.T.times(W), A64.T @ W64),
                         (op.power_pass(V)[1], A64.T @ (A64 @ V64))):
            assert got.dtype == dtype and got.flags.c_contiguous
            np.testing.assert_allclose(got, ref, rtol=0, atol=tol * np.abs(ref).max())
