"""fastlr.scw and LowRank against scipy.linalg.svd on low-rank-plus-noise matrices."""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

import fastlr
from fastlr._matrix import InMemory
from fastlr.scw import scw_factors

SPECTRA = {
    "flat": lambda r: np.ones(r),
    "harmonic": lambda r: 1.0 / np.arange(1, r + 1),
    "geometric": lambda r: 0.7 ** np.arange(r),
}


def lowrank_plus_noise(n, d, spectrum, rank=12, noise=1e-3, seed=0, dtype=np.float64):
    """U diag(spectrum) V^T with orthonormal U, V, plus Gaussian noise of Frobenius norm ~ noise * sqrt(n d) / sqrt(n)."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, rank)))[0]
    V = np.linalg.qr(rng.standard_normal((d, rank)))[0]
    A = (U * SPECTRA[spectrum](rank)) @ V.T + noise / np.sqrt(n) * rng.standard_normal((n, d))
    return A.astype(dtype)


def optimal_error(A, k):
    s = scipy.linalg.svdvals(np.asarray(A.toarray() if sp.issparse(A) else A, dtype=np.float64))
    return float(np.sqrt(np.sum(s[k:] ** 2))), s


def assert_svd_contract(U, s, Vt, n, d, k, dtype):
    assert U.shape == (n, k) and s.shape == (k,) and Vt.shape == (k, d)
    assert U.dtype == s.dtype == Vt.dtype == dtype
    assert U.flags.c_contiguous and Vt.flags.c_contiguous
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(U.T.astype(np.float64) @ U, np.eye(k), atol=tol)
    np.testing.assert_allclose(Vt.astype(np.float64) @ Vt.T, np.eye(k), atol=tol)
    assert np.all(np.isfinite(s)) and np.all(s >= 0) and np.all(np.diff(s) <= 0)
    rows = np.argmax(np.abs(U), axis=0)
    assert np.all(U[rows, np.arange(k)] > 0)  # svd_flip's sign convention


def as_kind(A, kind):
    return {"C": np.ascontiguousarray, "F": np.asfortranarray, "csr": sp.csr_array, "csc": sp.csc_matrix}[kind](A)


@pytest.mark.parametrize("spectrum", sorted(SPECTRA))
@pytest.mark.parametrize("kind", ["C", "F", "csr"])
def test_scw_matches_svd(dtype, spectrum, kind):
    n, d, k = 400, 90, 6
    A = lowrank_plus_noise(n, d, spectrum, dtype=dtype, seed=3)
    opt, svals = optimal_error(A, k)
    lr = fastlr.scw(as_kind(A, kind), fastlr.CountSketch(60, n, seed=1), k, n_iter=2)
    assert_svd_contract(*lr, n, d, k, dtype)
    rtol = 1e-4 if dtype == np.float32 else 1e-6
    np.testing.assert_allclose(lr.s, svals[:k], rtol=rtol, atol=rtol * svals[0])
    # the leading singular subspaces agree wherever the spectrum has a gap after k
    if spectrum == "geometric":
        Vexact = scipy.linalg.svd(A.astype(np.float64))[2][:k]
        cosines = scipy.linalg.svdvals(Vexact @ lr.Vt.T.astype(np.float64))
        assert cosines.min() > 1 - 1e-3
    assert lr.error(A) <= opt * (1 + 1e-3)


@pytest.mark.parametrize("seed", range(5))
def test_scw_error_bound_without_power_iterations(seed):
    """SCW's (1 + eps) guarantee: m = O(k^2 / eps) CountSketch rows (Clarkson-Woodruff), eps = 1/2."""
    n, d, k = 600, 120, 4
    A = lowrank_plus_noise(n, d, "harmonic", rank=30, noise=0.3, seed=seed)
    opt, _ = optimal_error(A, k)
    m = 4 * k * k
    err = fastlr.scw(A, fastlr.CountSketch(m, n, seed=seed), k).error(A)
    assert opt < err <= 1.5 * opt
    # a Gaussian sketch needs only O(k / eps) rows
    err_gauss = fastlr.scw(A, fastlr.GaussianSketch(8 * k, n, seed=seed), k).error(A)
    assert opt < err_gauss <= 1.5 * opt


def test_lowrank_object():
    A = lowrank_plus_noise(120, 40, "harmonic", seed=2)
    lr = fastlr.scw(A, fastlr.CountSketch(30, 120, seed=0), 5)
    U, s, Vt = lr
    assert lr.shape == (120, 40) and lr.rank == 5 and len(lr) == 3 and lr.dtype == np.float64
    assert lr[0] is U and lr[1] is s and lr[2] is Vt
    np.testing.assert_allclose(lr.to_dense(), (U * s) @ Vt)
    np.testing.assert_allclose(lr.error(A), np.linalg.norm(A - lr.to_dense()), rtol=1e-12)
    np.testing.assert_allclose(lr.error(sp.csr_matrix(A)), lr.error(A), rtol=1e-12)
    assert "rank=5" in repr(lr)
    with pytest.raises(ValueError, match="A: expected shape"):
        lr.error(A[:, :10])
    with pytest.raises(ValueError, match="inconsistent shapes"):
        fastlr.LowRank(U, s[:3], Vt)


def test_error_is_accurate_when_nearly_exact_float32():
    """||A - A_hat|| ~ 1e-6 ||A||: ||A||^2 - ||s||^2 cancels to noise in float32, the chunked residual does not."""
    n, d, k = 3000, 60, 5
    A = lowrank_plus_noise(n, d, "flat", rank=k, noise=1e-6, seed=4, dtype=np.float32)
    lr = fastlr.scw(A, fastlr.CountSketch(20, n, seed=0), k)
    A64 = A.astype(np.float64)
    U, s, Vt = (x.astype(np.float64) for x in lr)
    explicit = np.linalg.norm(A64 - (U * s) @ Vt)  # the exact residual of the stored factors
    np.testing.assert_allclose(lr.error(A), explicit, rtol=1e-6)
    cheap = np.sqrt(abs(np.sum(A * A, dtype=np.float32) - np.sum(lr.s * lr.s, dtype=np.float32)))
    assert abs(cheap - explicit) > 1e-2 * explicit  # the shortcut would have been wrong
    assert explicit < 1e-4 * np.linalg.norm(A64)


@pytest.mark.parametrize("make_sketch", ["countsketch", "gaussian", "stacked"])
def test_sketch_types_and_backends_agree(make_sketch, dtype):
    n, d, k = 300, 50, 4
    A = lowrank_plus_noise(n, d, "geometric", seed=5, dtype=dtype)
    S = {
        "countsketch": lambda: fastlr.CountSketch(24, n, seed=2),
        "gaussian": lambda: fastlr.GaussianSketch(24, n, seed=2),
        "stacked": lambda: fastlr.stack([fastlr.CountSketch(12, n, seed=2), fastlr.CountSketch(12, n, seed=3)]),
    }[make_sketch]()
    results = [fastlr.scw(A, S, k, n_iter=1, backend=b) for b in fastlr.available_backends()]
    tol = 1e-4 if dtype == np.float32 else 1e-9
    for lr in results:
        assert_svd_contract(*lr, n, d, k, dtype)
        np.testing.assert_allclose(lr.s, results[0].s, rtol=tol)
        np.testing.assert_allclose(lr.to_dense(), results[0].to_dense(), atol=tol * results[0].s[0])


@pytest.mark.parametrize("rank", [0, 1, 3])
@pytest.mark.parametrize("kind", ["C", "csr"])
def test_rank_deficient(rank, kind, dtype):
    n, d, k = 200, 40, 5
    rng = np.random.default_rng(rank)
    A = (rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d))).astype(dtype)
    for n_iter in (0, 2):
        lr = fastlr.scw(as_kind(A, kind), fastlr.CountSketch(15, n, seed=0), k, n_iter=n_iter)
        assert_svd_contract(*lr, n, d, k, dtype)
        assert np.all(lr.s[rank:] == 0)
        assert np.all(lr.s[:rank] > 0)
        assert lr.error(A) <= 1e-4 * max(np.linalg.norm(A), 1.0)


def test_inputs_not_modified():
    A = lowrank_plus_noise(100, 30, "harmonic", seed=1)
    S = fastlr.CountSketch(12, 100, seed=0)
    A0, values0 = A.copy(), S.values.copy()
    fastlr.scw(np.asfortranarray(A), S, 3, n_iter=1)
    Asp = sp.csr_matrix(A)
    data0 = Asp.data.copy()
    fastlr.scw(Asp, S, 3)
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(S.values, values0)
    np.testing.assert_array_equal(Asp.data, data0)


def test_bad_input():
    A = np.ones((20, 8))
    S = fastlr.CountSketch(6, 20, seed=0)
    for k, err, msg in [(0, ValueError, "k: must be >= 1"), (9, ValueError, "k: must be <= min"),
                        (2.5, TypeError, "k: expected an integer"), (True, TypeError, "k:")]:
        with pytest.raises(err, match=msg):
            fastlr.scw(A, S, k)
    with pytest.raises(ValueError, match="S: has n=21"):
        fastlr.scw(A, fastlr.CountSketch(6, 21), 2)
    with pytest.raises(ValueError, match="S: has m=3 rows, fewer than k=4"):
        fastlr.scw(A, fastlr.CountSketch(3, 20), 4)
    with pytest.raises(TypeError, match="S: expected a fastlr sketch"):
        fastlr.scw(A, np.ones((6, 20)), 2)
    with pytest.raises(ValueError, match="n_iter: must be >= 0"):
        fastlr.scw(A, S, 2, n_iter=-1)
    for bad in (np.nan, np.inf, -np.inf):
        B = A.copy()
        B[7, 3] = bad
        with pytest.raises(ValueError, match="A: contains NaN or inf"):
            fastlr.scw(B, S, 2)
        with pytest.raises(ValueError, match="A: contains NaN or inf"):
            fastlr.scw(sp.csr_matrix(B), S, 2)
    with pytest.raises(ValueError, match="A: expected a 2-D"):
        fastlr.scw(np.ones(20), S, 1)
    with pytest.raises(ValueError, match="A: expected a non-empty matrix"):
        fastlr.scw(np.ones((20, 0)), S, 1)
    with pytest.raises(TypeError, match="A: complex"):
        fastlr.scw(A.astype(complex), S, 1)
    with pytest.raises(TypeError, match="A:"):
        fastlr.scw(A.astype(object), S, 1)
    with pytest.raises(TypeError, match="A:"):
        fastlr.scw("matrix", S, 1)


def test_scw_factors_intermediates():
    n, d, k = 250, 30, 4
    A = lowrank_plus_noise(n, d, "harmonic", seed=6)
    S = fastlr.CountSketch(10, n, seed=0)
    SA = S @ A
    f = scw_factors(A, SA, k)
    r = f.V.shape[1]
    np.testing.assert_allclose((f.UM * f.sM) @ f.V.T, SA, atol=1e-12)
    np.testing.assert_allclose(f.B, A @ f.V, atol=1e-12)
    np.testing.assert_allclose(f.B @ f.X[:, :k], f.UB * f.sB[:k], atol=1e-12)
    assert f.sB.shape == (r,) and f.X.shape == (r, r)


@pytest.mark.parametrize(
    "spectrum",
    [np.logspace(0, -15, 30), np.logspace(0, -6, 30), np.r_[np.ones(5), np.zeros(25)], np.r_[1.0, np.full(29, 1e-9)]],
    ids=["graded-1e-15", "graded-1e-6", "rank5", "gap-1e-9"],
)
def test_thin_svd_tall_path_matches_lapack(spectrum):
    """Tall B takes the two-round SVQB route: backward stable like LAPACK's SVD."""
    rng = np.random.default_rng(0)
    n, r = 2000, 30
    B = (np.linalg.qr(rng.standard_normal((n, r)))[0] * spectrum) @ np.linalg.qr(rng.standard_normal((r, r)))[0]
    U, s, X = InMemory(B).thin_svd(B, r)
    np.testing.assert_allclose(s, scipy.linalg.svdvals(B), rtol=0, atol=1e-14)
    np.testing.assert_allclose((U * s) @ X.T, B, rtol=0, atol=1e-14)
    np.testing.assert_allclose(X.T @ X, np.eye(r), atol=1e-13)
    resolved = s > r * np.finfo(float).eps * s[0]  # columns scw keeps
    Uk = U[:, resolved]
    np.testing.assert_allclose(Uk.T @ Uk, np.eye(Uk.shape[1]), atol=1e-10)


@pytest.mark.parametrize("scale", [1.0, 1e-200, 2.0 ** -262, 2.0 ** -240, 1e-150, 1e150, 2.0 ** 240, 2.0 ** 262, 1e200])
def test_thin_svd_scales_b_only_when_its_gram_matrix_leaves_range(scale, monkeypatch):
    """B's power-of-two scaling (a pass over B for max |B|) runs only when the diagonal of B^T B leaves
    2^+-500 (here sigma_1 = 1: B^T B's largest entry is about scale^2); either way the factors are
    LAPACK's, to rounding, for entries near 1e+-200."""
    from fastlr import _linalg

    peaks = []
    monkeypatch.setattr(_linalg, "peak", lambda X: peaks.append(1) or float(np.max(np.abs(X))))
    rng = np.random.default_rng(3)
    n, r = 1000, 12
    B = (np.linalg.qr(rng.standard_normal((n, r)))[0] * np.geomspace(1, 1e-6, r)
         @ np.linalg.qr(rng.standard_normal((r, r)))[0]) * scale
    U, s, X = InMemory(B).thin_svd(B, r)
    assert len(peaks) == (0 if 2.0 ** -250 <= scale <= 2.0 ** 250 else 1)
    np.testing.assert_allclose(s / scale, scipy.linalg.svdvals(B / scale), rtol=0, atol=1e-14)
    np.testing.assert_allclose(U.T @ U, np.eye(r), atol=1e-12)
    np.testing.assert_allclose((U * (s / scale)) @ X.T, B / scale, rtol=0, atol=1e-14)


def test_column_peak_signs_follow_svd_flip():
    """The sign of each column's first largest-magnitude entry (svd_flip's argmax of |U|), from
    blocked column maxima and minima: ties of +m and -m take the first, zero columns +1, and
    any layout or row count (not a multiple of the blocks)."""
    from fastlr._linalg import column_peak_signs, flip_signs

    def expected(U):
        peaks = U[np.argmax(np.abs(U), axis=0), np.arange(U.shape[1])]
        return np.where(peaks < 0, -1.0, 1.0)

    rng = np.random.default_rng(0)
    for n, k in [(5760, 10), (5761, 10), (7, 3), (100, 1), (1000, 600), (51, 10), (103, 10)]:
        U = rng.standard_normal((n, k))
        for layout in (U, np.asfortranarray(U), U[::-1], U[:, ::2]):
            np.testing.assert_array_equal(column_peak_signs(layout), expected(layout))
    U = rng.uniform(-0.5, 0.5, (700, 5))
    U[[40, 600], 0] = [-2.0, 2.0]  # tie, the negative first
    U[[30, 650], 1] = [2.0, -2.0]  # tie, the positive first
    U[:, 2] = 0.0
    U[[10, 500], 3] = [-2.0, -2.0]  # the same entry twice
    np.testing.assert_array_equal(column_peak_signs(U), [-1.0, 1.0, 1.0, -1.0, expected(U)[4]])
    Uf, Vf = flip_signs(U, np.eye(5))
    np.testing.assert_array_equal(Uf, U * expected(U))
    np.testing.assert_array_equal(Vf, np.diag(expected(U)))
    assert column_peak_signs(np.zeros((4, 0))).shape == (0,)


@pytest.mark.parametrize("n_iter", [0, 1])
def test_wide_sketch_takes_the_blas_path(n_iter, dtype):
    """r >= 128 sketch rows: products go to BLAS GEMM, SVQB included (n > 16 r); same contract."""
    n, d, k = 2500, 140, 6
    A = lowrank_plus_noise(n, d, "geometric", seed=8, dtype=dtype)
    _, svals = optimal_error(A, k)
    lr = fastlr.scw(A, fastlr.CountSketch(130, n, seed=0), k, n_iter=n_iter)
    assert_svd_contract(*lr, n, d, k, dtype)
    rtol = 1e-4 if dtype == np.float32 else (1e-5 if n_iter == 0 else 1e-8)  # no power step: sketching error
    np.testing.assert_allclose(lr.s, svals[:k], rtol=rtol)


def test_public_functions_take_dask_arrays_and_memmaps(tmp_path):
    """fastlr.scw / fastlr.randomized_svd route dask arrays and memory maps to the row-block passes."""
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(3)
    A = rng.standard_normal((600, 8)) @ rng.standard_normal((8, 30)) + 1e-3 * rng.standard_normal((600, 30))
    np.save(tmp_path / "A.npy", A)
    mapped = np.load(tmp_path / "A.npy", mmap_mode="r")
    S = fastlr.CountSketch(20, 600, seed=1)
    expected = fastlr.scw(A, S, 5)
    for source in (da.from_array(A, chunks=(150, 30)), mapped):
        U, s, Vt = fastlr.scw(source, S, 5)
        np.testing.assert_allclose(s, expected.s, rtol=1e-10)
        np.testing.assert_allclose(np.asarray(U) * s @ Vt, expected.to_dense(), atol=1e-9)
        U2, s2, Vt2 = fastlr.randomized_svd(source, 5, random_state=0)
        U1, s1, Vt1 = fastlr.randomized_svd(A, 5, random_state=0)
        np.testing.assert_allclose(s2, s1, rtol=1e-10)
        np.testing.assert_allclose(np.abs(np.asarray(U2).T @ U1), np.eye(5), atol=1e-8)
    with pytest.raises(ValueError, match="S: has n=599"):
        fastlr.scw(da.from_array(A, chunks=(150, 30)), fastlr.CountSketch(20, 599), 5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scw_keeps_small_real_directions_of_a_wide_sketch(dtype):
    """A 300 x 20000 matrix of rank 12, singular values 1 .. 1e-3: the sketch's rank cut must not
    grow with the long side (NumPy's max(m, d) * eps rule cut float32 sketches at 2.4e-3 * sigma_1,
    dropping real directions and giving 100x the optimal error)."""
    rng = np.random.default_rng(7)
    n, d, r = 300, 20000, 12
    s_true = np.logspace(0, -3, r)
    U0 = np.linalg.qr(rng.standard_normal((n, r)))[0]
    V0 = np.linalg.qr(rng.standard_normal((d, r)))[0]
    A = ((U0 * s_true) @ V0.T).astype(dtype)
    lr = fastlr.scw(A, fastlr.CountSketch(30, n, seed=1), r)
    np.testing.assert_allclose(lr.s, s_true, rtol=1e-3 if dtype == np.float32 else 1e-10)
    assert lr.error(A) <= (1e-5 if dtype == np.float32 else 1e-12) * np.linalg.norm(s_true)
