"""svd_to_tolerance (randQB_EI), LowRank.error_estimate and TruncatedSVD(n_components=float), against NumPy."""

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

import fastlr
from fastlr import svd_to_tolerance
from fastlr.lowrank import chernoff_factor
from fastlr.tolerance import accuracy_floor


def _decaying(n=300, d=120, rate=0.8, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    r = min(n, d)
    Q1 = np.linalg.qr(rng.standard_normal((n, r)))[0]
    Q2 = np.linalg.qr(rng.standard_normal((d, r)))[0]
    return ((Q1 * rate ** np.arange(r)) @ Q2.T).astype(dtype)


def _optimal_rank(A, tol):
    """Smallest k with ||A - A_k||_F <= tol ||A||_F (exact SVD)."""
    s2 = np.linalg.svd(np.asarray(A, dtype=np.float64), compute_uv=False) ** 2
    tails = np.append(np.cumsum(s2[::-1])[::-1][1:], 0.0)  # tails[k - 1] = error^2 of rank k
    return int(np.flatnonzero(tails <= tol**2 * s2.sum())[0]) + 1


def _rel_error(A, U, s, Vt):
    D = A.toarray() if sp.issparse(A) else np.asarray(A, dtype=np.float64)
    return np.linalg.norm(D - (U.astype(np.float64) * s) @ Vt) / np.linalg.norm(D)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tol", [0.3, 1e-2, 1e-6])
def test_smallest_rank_meeting_tol(tol, seed):
    A = _decaying(seed=seed)
    U, s, Vt = svd_to_tolerance(A, tol, random_state=seed)
    assert _rel_error(A, U, s, Vt) <= tol
    assert len(s) == _optimal_rank(A, tol)
    k = len(s)
    np.testing.assert_allclose(U.T @ U, np.eye(k), atol=1e-10)
    np.testing.assert_allclose(Vt @ Vt.T, np.eye(k), atol=1e-10)
    np.testing.assert_allclose(s, np.linalg.svd(A, compute_uv=False)[:k], rtol=1e-6, atol=tol * s[0])
    assert np.all(np.diff(s) <= 0)
    # svd_flip's convention: the largest |entry| of each column of U is positive
    assert np.all(U[np.argmax(np.abs(U), axis=0), np.arange(k)] > 0)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_and_block_sizes(fmt):
    rng = np.random.default_rng(3)
    X = sp.random(400, 150, density=0.05, format=fmt, random_state=3)
    X = X + (X != 0).multiply(rng.standard_normal((400, 6)) @ rng.standard_normal((6, 150)))
    X = X.asformat(fmt)
    for block_size in (1, 7, 64):
        U, s, Vt = svd_to_tolerance(X, 0.5, block_size=block_size, random_state=0)
        assert _rel_error(X, U, s, Vt) <= 0.5
        assert len(s) <= _optimal_rank(X.toarray(), 0.5) + 2  # near-optimal on a flat spectrum


def test_float32_and_row_blocks(tmp_path):
    A = _decaying(dtype=np.float32, rate=0.7)
    U, s, Vt = svd_to_tolerance(A, 1e-2, random_state=0)
    assert U.dtype == s.dtype == Vt.dtype == np.float32
    assert _rel_error(A, U, s, Vt) <= 1e-2 and len(s) == _optimal_rank(A, 1e-2)
    path = tmp_path / "A.npy"
    np.save(path, _decaying())
    M = np.load(path, mmap_mode="r")
    U, s, Vt = svd_to_tolerance(M, 1e-3, block_rows=64, random_state=0)
    assert _rel_error(np.asarray(M), U, s, Vt) <= 1e-3 and len(s) == _optimal_rank(M, 1e-3)


def test_rank_deficient_zero_and_tiny():
    A = _decaying()[:, :5] @ np.random.default_rng(0).standard_normal((5, 40))  # rank 5
    U, s, Vt = svd_to_tolerance(A, 1e-6, random_state=0)
    assert len(s) == 5 and _rel_error(A, U, s, Vt) <= 1e-6
    U, s, Vt = svd_to_tolerance(np.zeros((30, 20)), 0.1)
    assert (U.shape, s.shape, Vt.shape) == ((30, 1), (1,), (1, 20)) and s[0] == 0
    np.testing.assert_allclose(np.linalg.norm(U), 1.0)
    U, s, Vt = svd_to_tolerance(np.array([[3.0]]), 0.5)
    assert s.tolist() == [3.0]


def test_max_rank_not_reached_warns():
    A = _decaying(rate=0.95)
    with pytest.warns(RuntimeWarning, match=r"tol=1e-05 not reached with max_rank=10; relative error"):
        s = svd_to_tolerance(A, 1e-5, max_rank=10, random_state=0)[1]
    assert len(s) == 10


def test_same_seed_same_result():
    A = _decaying()
    a = svd_to_tolerance(A, 1e-3, random_state=5)
    b = svd_to_tolerance(A, 1e-3, random_state=np.random.default_rng(5))
    c = svd_to_tolerance(A, 1e-3, random_state=5)
    for x, y in zip(a, c):
        np.testing.assert_array_equal(x, y)
    assert len(b[1]) == len(a[1])


@pytest.mark.parametrize("kwargs, error, match", [
    ({"tol": 0.0}, ValueError, r"tol: must be in \(0, 1\)"),
    ({"tol": 1.0}, ValueError, r"tol: must be in \(0, 1\)"),
    ({"tol": "0.1"}, TypeError, r"tol: expected a float"),
    ({"tol": 1e-9}, ValueError, r"tol: 1e-09 is below the accuracy of the error indicator for float64"),
    ({"tol": 0.1, "max_rank": 0}, ValueError, r"max_rank: must be >= 1"),
    ({"tol": 0.1, "block_size": 0}, ValueError, r"block_size: must be >= 1"),
    ({"tol": 0.1, "n_iter": -1}, ValueError, r"n_iter: must be >= 0"),
    ({"tol": 0.1, "n_iter": 1.5}, TypeError, r"n_iter: expected an integer"),
    ({"tol": 0.1, "random_state": "x"}, TypeError, r"random_state"),
    ({"tol": 0.1, "svd_lapack_driver": "x"}, ValueError, r"svd_lapack_driver"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        svd_to_tolerance(_decaying(30, 20), **kwargs)


def test_bad_matrices():
    with pytest.raises(ValueError, match=r"A: expected a non-empty matrix"):
        svd_to_tolerance(np.zeros((0, 3)), 0.1)
    with pytest.raises(ValueError, match=r"A: contains NaN or infinity"):
        svd_to_tolerance(np.array([[1.0, np.nan], [0.0, 1.0]]), 0.1)
    with pytest.raises(ValueError, match=r"tol: .* float32"):
        svd_to_tolerance(np.ones((4, 4), dtype=np.float32), 1e-4)
    assert accuracy_floor(np.float32) > 1e-3 > accuracy_floor(np.float64) * 1e4


# --------------------------------------------------------------------------- LowRank.error_estimate


def test_chernoff_factor_solves_its_equation():
    for p in (1, 3, 10, 50):
        for c in (0.5, 0.99, 1 - 1e-9):
            z = chernoff_factor(p, c)
            assert 0 < z < 1
            np.testing.assert_allclose((z * np.exp(1 - z)) ** (p / 2), 1 - c, rtol=1e-8)


@pytest.mark.parametrize("sparse", [False, True])
def test_error_estimate_against_exact_error(sparse):
    rng = np.random.default_rng(0)
    A = sp.random(300, 80, density=0.1, format="csr", random_state=0) if sparse else rng.standard_normal((300, 80))
    lr = fastlr.LowRank(*fastlr.randomized_svd(A, 10, random_state=0))
    exact = lr.error(A)
    estimates = [lr.error_estimate(A, n_samples=10, random_state=seed) for seed in range(200)]
    # the square is unbiased: its mean over 200 draws is within a few standard errors of ||R||_F^2
    np.testing.assert_allclose(np.mean([e.estimate**2 for e in estimates]), exact**2, rtol=0.05)
    misses = sum(exact > e.bound for e in estimates)
    assert misses <= 6  # P(miss) <= 1% per draw: at most 6 in 200 except with probability < 0.5%
    e = estimates[0]
    assert e.confidence == 0.99 and e.n_samples == 10 and e.bound > e.estimate


def test_error_estimate_worst_case_rank_one_residual():
    # A rank-one residual is the bound's worst case: the miss rate must still stay below 1 - confidence.
    rng = np.random.default_rng(1)
    u, v = rng.standard_normal(200), rng.standard_normal(50)
    A = np.outer(u, v)
    lr = fastlr.LowRank(np.zeros((200, 1)), np.zeros(1), np.eye(1, 50))
    exact = lr.error(A)
    misses = sum(exact > lr.error_estimate(A, n_samples=5, confidence=0.9, random_state=s).bound for s in range(500))
    assert misses <= 50 + 20


def test_error_estimate_bad_arguments():
    A = np.ones((5, 4))
    lr = fastlr.LowRank(np.ones((5, 1)) / np.sqrt(5), np.ones(1), np.ones((1, 4)) / 2)
    with pytest.raises(ValueError, match=r"A: expected shape \(5, 4\)"):
        lr.error_estimate(np.ones((4, 4)))
    with pytest.raises(ValueError, match=r"n_samples: must be >= 1"):
        lr.error_estimate(A, n_samples=0)
    with pytest.raises(ValueError, match=r"confidence: must be a float in \(0, 1\)"):
        lr.error_estimate(A, confidence=1.0)
    with pytest.raises(TypeError, match=r"random_state"):
        lr.error_estimate(A, random_state="x")
    with pytest.raises(ValueError, match=r"A: contains NaN"):
        lr.error_estimate(np.full((5, 4), np.nan))
    assert lr.error_estimate(A, random_state=np.random.RandomState(0)).estimate >= 0


# --------------------------------------------------------------------------- TruncatedSVD(n_components=float)


@pytest.mark.parametrize("sparse", [False, True])
def test_truncated_svd_fraction_of_squared_norm(sparse):
    A = _decaying(rate=0.85)
    X = sp.csr_matrix(A) if sparse else A
    svd = fastlr.TruncatedSVD(n_components=0.99, random_state=0).fit(X)
    s2 = np.linalg.svd(A, compute_uv=False) ** 2
    k = svd.components_.shape[0]
    assert k == int(np.searchsorted(np.cumsum(s2) / s2.sum(), 0.99)) + 1
    assert (svd.singular_values_**2).sum() >= 0.99 * s2.sum()
    assert svd.transform(X).shape == (A.shape[0], k)


def test_dask_and_centered_operands():
    da = pytest.importorskip("dask.array")
    from fastlr._matrix import operand
    from fastlr._matrix.centered import Centered

    A = _decaying(200, 60, rate=0.6) + 5.0
    U, s, Vt = svd_to_tolerance(da.from_array(A, chunks=(50, 60)), 1e-3, random_state=0)
    assert _rel_error(A, np.asarray(U), s, Vt) <= 1e-3 and len(s) == _optimal_rank(A, 1e-3)
    Ac = A - A.mean(axis=0)
    U, s, Vt = svd_to_tolerance(Centered(operand(sp.csr_matrix(A))), 1e-2, random_state=0)
    assert _rel_error(Ac, U, s, Vt) <= 1e-2 and len(s) == _optimal_rank(Ac, 1e-2)


@pytest.mark.parametrize("scale", [1e-170, 1e-150, 1e150, 1e160])
def test_error_and_estimate_at_extreme_scales(scale):
    """LowRank.error and error_estimate summed plain squares: 0 for entries near 1e-170 (every square
    underflowed), inf / a NaN-or-infinity ValueError for finite entries near 1e160 (overflow)."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((60, 5)) @ rng.standard_normal((5, 30)) + 1e-3 * rng.standard_normal((60, 30))
    U, s, Vt = np.linalg.svd(base, full_matrices=False)
    lr = fastlr.LowRank(U[:, :3], s[:3] * scale, Vt[:3])
    exact = np.linalg.norm(base - (U[:, :3] * s[:3]) @ Vt[:3])
    A = base * scale
    assert lr.error(A) / scale == pytest.approx(exact, rel=1e-12)
    assert lr.error(sp.csr_matrix(A)) / scale == pytest.approx(exact, rel=1e-12)
    # a dask array, chunk by chunk: each chunk's scaled sum of squares (plain squares: 0 or inf)
    assert lr.error(da.from_array(A, chunks=(25, 30))) / scale == pytest.approx(exact, rel=1e-12)
    unit = fastlr.LowRank(U[:, :3], s[:3], Vt[:3]).error_estimate(base, random_state=0).estimate
    assert lr.error_estimate(A, random_state=0).estimate / scale == pytest.approx(unit, rel=1e-10)


@pytest.mark.parametrize("scale", [1e-160, 1e-170])
def test_entries_whose_squares_underflow_are_refused(scale):
    """Entries near 1e-170: ||A||_F^2 underflowed to 0 and one component came back with a relative
    error of 0.54 for tol=0.05, silently. Now a ValueError naming A; 1e-150 still works."""
    rng = np.random.default_rng(0)
    base = (rng.standard_normal((60, 5)) * np.geomspace(1, 1e-2, 5)) @ rng.standard_normal((5, 30))
    with pytest.raises(ValueError, match="A: its entries are so small"):
        svd_to_tolerance(base * scale, 0.05, random_state=0)
    U, s, Vt = svd_to_tolerance(base * 1e-150, 0.05, random_state=0)
    assert np.linalg.norm(base - (U * (s / 1e-150)) @ Vt) <= 0.05 * np.linalg.norm(base)


@pytest.mark.parametrize("level, order, dtype, kernel", [
    ("baseline", "C", np.float64, False),  # baseline kernels ran at 0.4-0.5x BLAS: BLAS at every width
    ("x86-64-v4", "F", np.float32, False),  # float32 F-order A^T A V: BLAS (the kernel ties or loses)
    ("x86-64-v4", "C", np.float32, True),  # 16 columns, C order: the kernel
])
def test_gram_products_follow_the_product_choice(level, order, dtype, kernel, monkeypatch):
    """The tolerance SVD's ``A^T A X`` (``InMemory.gram_product``, as for centered, blocked and dask operands)
    runs on the one-pass kernel only where the product choice says it beats BLAS; before, dense A always ran
    the kernel. Results equal to rounding either way."""
    from fastlr._matrix import InMemory, choice

    monkeypatch.setattr(choice, "_level", level)
    rng = np.random.default_rng(4)
    A = (rng.standard_normal((300, 12)) @ rng.standard_normal((12, 80)) + 1e-3 * rng.standard_normal((300, 80)))
    A = np.asarray(A, dtype=dtype, order=order)
    op = InMemory(A)
    calls = []
    real = op.kernels.gram_product
    monkeypatch.setattr(op.kernels, "gram_product", lambda M, V: calls.append(V.shape) or real(M, V))
    V = rng.standard_normal((80, 16)).astype(dtype)
    ref = A.astype(np.float64).T @ (A.astype(np.float64) @ V.astype(np.float64))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(op.gram_product(V), ref, rtol=0, atol=tol * np.abs(ref).max())
    assert bool(calls) == kernel
    calls.clear()
    U, s, Vt = svd_to_tolerance(A, 0.05, random_state=0)
    assert bool(calls) == kernel
    assert np.linalg.norm(A - (U * s) @ Vt) <= 0.05 * np.linalg.norm(A) * (1 + 1e-4)
