"""Property-based tests (hypothesis) of the algorithms against scipy.linalg.svd and the explicit
matrix, on small matrices: shapes 1..12 x 1..12, rank-deficient and exactly low-rank, float32 and
float64, C and F order, dense and CSR."""

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastlr

#: Tolerances relative to ||A||_2: rounding of the dtype times a modest factor for these sizes.
TOL = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-10}


@st.composite
def matrices(draw, max_rank=None):
    n, d = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    rank = draw(st.integers(0, min(n, d) if max_rank is None else min(n, d, max_rank)))
    dtype = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    kind = draw(st.sampled_from(["C", "F", "csr"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # singular values spread over two decades: exactly rank `rank`, well separated from zero
    X = scipy.linalg.qr(rng.standard_normal((n, n)))[0][:, :rank]
    Y = scipy.linalg.qr(rng.standard_normal((d, d)))[0][:, :rank]
    s = np.sort(10 ** rng.uniform(-1, 1, rank))[::-1]
    A = ((X * s) @ Y.T).astype(dtype)
    M = {"C": np.ascontiguousarray(A), "F": np.asfortranarray(A), "csr": sp.csr_matrix(A)}[kind]
    return M, A.astype(np.float64), rank, dtype, seed


def _orthonormal(Q, dtype):
    Q = np.asarray(Q, dtype=np.float64)
    return np.abs(Q.T @ Q - np.eye(Q.shape[1])).max() <= 50 * np.finfo(dtype).eps * max(Q.shape)


def _check_svd(U, s, Vt, A64, k, dtype):
    n, d = A64.shape
    assert U.shape == (n, k) and s.shape == (k,) and Vt.shape == (k, d)
    assert U.dtype == s.dtype == Vt.dtype == dtype
    assert _orthonormal(U, dtype) and _orthonormal(Vt.T, dtype)
    assert np.all(np.diff(s) <= 0) and np.all(s >= 0)


@settings(max_examples=60, deadline=None)
@given(data=matrices(), n_iter=st.integers(2, 4), extra=st.integers(0, 3))
def test_randomized_svd_recovers_exact_singular_values(data, n_iter, extra):
    M, A64, rank, dtype, seed = data
    exact = scipy.linalg.svd(A64, compute_uv=False)
    k = min(max(rank, 1) + extra, min(A64.shape))
    U, s, Vt = fastlr.randomized_svd(M, k, n_iter=n_iter, random_state=seed % 1000)
    _check_svd(U, s, Vt, A64, k, dtype)
    scale = max(exact[0], 1e-300)
    np.testing.assert_allclose(s, exact[:k], rtol=0, atol=TOL[dtype] * scale)
    np.testing.assert_allclose((U.astype(float) * s) @ Vt, A64, rtol=0, atol=10 * TOL[dtype] * scale)


@settings(max_examples=60, deadline=None)
@given(data=matrices(), k=st.integers(1, 12), m_extra=st.integers(0, 6), n_iter=st.integers(0, 2),
       sketch=st.sampled_from(["count", "gauss"]))
def test_scw_error_never_below_optimal(data, k, m_extra, n_iter, sketch):
    M, A64, rank, dtype, seed = data
    n, d = A64.shape
    k = min(k, n, d)
    S = (fastlr.CountSketch if sketch == "count" else fastlr.GaussianSketch)(k + m_extra, n, seed=seed)
    lr = fastlr.scw(M, S, k, n_iter=n_iter)
    _check_svd(*lr, A64, k, dtype)
    exact = scipy.linalg.svd(A64, compute_uv=False)
    optimal = np.sqrt(np.sum(exact[k:] ** 2))
    scale = max(exact[0], 1e-300)
    error = np.linalg.norm(A64 - lr.to_dense().astype(float))
    assert error >= optimal - TOL[dtype] * scale * np.sqrt(k), (error, optimal)
    assert np.all(lr.s <= exact[:k] + TOL[dtype] * scale)  # Ritz values never exceed the true ones
    np.testing.assert_allclose(lr.error(M), error, rtol=0, atol=TOL[dtype] * scale * 10)
    if rank <= k and sketch == "gauss" and k + m_extra >= rank:  # exactly low rank, a subspace embedding
        assert error <= 10 * TOL[dtype] * scale


@settings(max_examples=60, deadline=None)
@given(data=matrices(), m=st.integers(1, 15), backend=st.sampled_from(["cpp", "numba", "numpy"]))
def test_countsketch_apply_is_the_explicit_product(data, m, backend):
    if backend not in fastlr.available_backends():
        return
    M, A64, rank, dtype, seed = data
    S = fastlr.CountSketch(m, A64.shape[0], seed=seed)
    got = S.apply(M, backend=backend)
    assert got.dtype == dtype and got.shape == (m, A64.shape[1])
    A_in = np.asarray(M.toarray() if sp.issparse(M) else M, dtype=np.float64)
    expected = S.to_dense() @ A_in
    np.testing.assert_allclose(got, expected, rtol=0, atol=4 * np.finfo(dtype).eps * max(np.abs(A_in).max(), 1e-300)
                               * A64.shape[0])
    np.testing.assert_array_equal(S.to_scipy().toarray(), S.to_dense())


@settings(max_examples=40, deadline=None)
@given(data=matrices(), k=st.integers(1, 4))
def test_gd_svd_singular_values_close_to_exact(data, k):
    """With init="random"; the default init="sketch" can start at a saddle point (next test).
    k <= rank(A): with k above the rank (an over-parametrized factorization) ScaledGD slows down
    (measured: sigma_1 still off by 0.3-0.7% after 500 iterations)."""
    M, A64, rank, dtype, seed = data
    assume(rank >= 1)
    k = min(k, rank)
    exact = scipy.linalg.svd(A64, compute_uv=False)
    # well-conditioned for the rate: a gap sigma_k - sigma_{k+1} of at least 5% of sigma_1
    # (measured: sigma_2 close to sigma_1 left sigma_1 off by 0.14% after 500 iterations)
    assume(k == len(exact) or exact[k - 1] - exact[k] >= 0.05 * exact[0])
    U, s, Vt = fastlr.gd_svd(M, k, max_iter=500, tol=0.0, init="random", random_state=seed % 1000)
    _check_svd(U, s, Vt, A64, k, dtype)
    scale = max(exact[0], 1e-300)
    # singular values spread over two decades with random gaps: ScaledGD converges at a rate set by
    # the gap sigma_k - sigma_{k+1}; at these sizes 500 iterations reach 1e-3 relative to sigma_1
    np.testing.assert_allclose(s, exact[:k], rtol=0, atol=max(1e-3, 10 * TOL[dtype]) * scale)


def test_gd_svd_default_init_recovers_every_component():
    A = np.array([[0.7411335, -0.53077763], [0.78877795, -0.37240872]])  # found by the property above
    s = fastlr.gd_svd(A, 2, max_iter=500, tol=0.0, random_state=1)[1]
    np.testing.assert_allclose(s, scipy.linalg.svd(A, compute_uv=False), rtol=1e-6)
