"""StreamingSVD (one pass, Tropp-Yurtsever-Udell-Cevher) against NumPy references."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

import fastlr
from fastlr.streaming import _OMEGA, _PHI, _PSI, _UPSILON, StreamingSVD, default_sizes

SKETCHES = ["countsketch", "gaussian"]
#: Relative error of an exact reconstruction (rank(A) <= k), per dtype.
EXACT = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}


def low_rank(n, d, r, rng, dtype=np.float64):
    """An exactly rank-r matrix with distinct, decaying singular values."""
    U = np.linalg.qr(rng.standard_normal((n, r)))[0]
    V = np.linalg.qr(rng.standard_normal((d, r)))[0]
    return ((U * 2.0 ** -np.arange(r)) @ V.T * 10).astype(dtype)


def noisy(n, d, r, rng, noise=0.05):
    return low_rank(n, d, r, rng) + noise * rng.standard_normal((n, d)) / np.sqrt(d)


def blocks(A, edges):
    return [A[a:b] for a, b in itertools.pairwise(edges)]


def streamed(A, edges, **kw):
    est = StreamingSVD(**kw)
    for block in blocks(A, edges):
        est.partial_fit(block)
    return est


def test_is_exported():
    assert fastlr.StreamingSVD is StreamingSVD
    assert "StreamingSVD" in fastlr.__all__


def test_default_sizes_follow_the_papers_rule():
    assert default_sizes(10) == (41, 83)  # s = 4k + 1, c = 2s + 1
    assert default_sizes(3, range_size=5) == (5, 11)
    assert default_sizes(3, core_size=9) == (4, 9)
    est = StreamingSVD(2)
    assert (est.range_size_, est.core_size_) == (9, 19)


@pytest.mark.parametrize("sketch", SKETCHES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_exact_low_rank_is_recovered(sketch, dtype, fmt):
    rng = np.random.default_rng(1)
    A = low_rank(400, 60, 4, rng, dtype)
    X = A if fmt == "dense" else sp.csr_array(A) if fmt == "csr" else sp.csc_array(A)
    lr = streamed(X, [0, 1, 150, 151, 400], k=6, sketch=sketch, random_state=3).result()
    assert isinstance(lr, fastlr.LowRank)
    assert lr.U.shape == (400, 6) and lr.s.shape == (6,) and lr.Vt.shape == (6, 60)
    assert lr.dtype == np.dtype(dtype) and lr.s.dtype == np.dtype(dtype)
    tol = EXACT[np.dtype(dtype)]
    assert lr.error(A) <= tol * np.linalg.norm(A)
    s_ref = np.linalg.svd(A.astype(np.float64), compute_uv=False)
    np.testing.assert_allclose(lr.s[:4], s_ref[:4], rtol=tol * 10)
    assert np.all(lr.s[4:] <= tol * s_ref[0])
    np.testing.assert_allclose(lr.U.T.astype(np.float64) @ lr.U, np.eye(6), atol=tol * 10)
    np.testing.assert_allclose(lr.Vt.astype(np.float64) @ lr.Vt.T, np.eye(6), atol=tol * 10)
    # svd_flip: the largest-magnitude entry of each column of U is positive
    assert np.all(lr.U[np.abs(lr.U).argmax(axis=0), np.arange(6)] > 0)


def reference(est, A):
    """The method in plain NumPy, with the estimator's test matrices formed densely."""
    plan = est._plan
    n, d = A.shape

    def dense(which, m, cols):
        if plan.kind == "gaussian":
            if which == _OMEGA:
                return plan.omega.T.astype(np.float64)
            if which == _PSI:
                return plan.psi
            return plan._gaussian(which, 0, cols, None).astype(np.float64)
        layers = plan._hashed(which, 0, cols)
        out, offset = np.zeros((m, cols)), 0
        for rows, values, mj in layers:
            np.add.at(out, (rows + offset, np.arange(cols)), values)
            offset += mj
        return out

    s, c = plan.s, plan.c
    Upsilon, Omega, Phi, Psi = dense(_UPSILON, s, n), dense(_OMEGA, s, d).T, dense(_PHI, c, n), dense(_PSI, c, d)
    A = np.asarray(A, dtype=np.float64)
    Y, X, Z = A @ Omega, Upsilon @ A, Phi @ A @ Psi.T
    Q, P = np.linalg.qr(Y)[0], np.linalg.qr(X.T)[0]
    C = np.linalg.pinv(Phi @ Q) @ Z @ np.linalg.pinv(Psi @ P).T
    Uc, sc, Vct = np.linalg.svd(C)
    k = est.k_
    return (Q @ Uc[:, :k]) * sc[:k] @ (Vct[:k] @ P.T), sc[:k]


@pytest.mark.parametrize("sketch", SKETCHES)
def test_matches_a_numpy_reference(sketch):
    rng = np.random.default_rng(2)
    A = noisy(300, 50, 5, rng, noise=0.5)
    est = StreamingSVD(4, range_size=9, core_size=20, sketch=sketch, random_state=5).fit(A)
    lr = est.result()
    dense_ref, s_ref = reference(est, A)
    np.testing.assert_allclose(lr.s, s_ref, rtol=1e-10)
    np.testing.assert_allclose(lr.to_dense(), dense_ref, atol=1e-10 * np.abs(dense_ref).max())


@pytest.mark.parametrize("sketch", SKETCHES)
def test_block_sizes_do_not_matter(sketch):
    rng = np.random.default_rng(3)
    A = noisy(5000, 40, 6, rng)  # more rows than a Gaussian tile: blocks cross tile borders
    one = StreamingSVD(5, sketch=sketch, random_state=11).fit(A).result()
    many = streamed(A, [0, 1, 2, 999, 4096, 4097, 4500, 5000], k=5, sketch=sketch, random_state=11).result()
    for x, y in zip(one, many):
        np.testing.assert_allclose(x, y, atol=1e-10 * np.abs(x).max())
    mixed = StreamingSVD(5, sketch=sketch, random_state=11)
    for i, block in enumerate(blocks(A, [0, 1000, 2500, 5000])):  # dense and sparse blocks mixed
        mixed.partial_fit(sp.csr_array(block) if i % 2 else block)
    for x, y in zip(one, mixed.result()):
        np.testing.assert_allclose(x, y, atol=1e-10 * np.abs(x).max())


@pytest.mark.parametrize("sketch", SKETCHES)
def test_deterministic_by_seed(sketch):
    rng = np.random.default_rng(4)
    A = noisy(500, 30, 4, rng, noise=1.0)
    a = StreamingSVD(3, sketch=sketch, random_state=7).fit(A).result()
    b = StreamingSVD(3, sketch=sketch, random_state=7).fit(A).result()
    c = StreamingSVD(3, sketch=sketch, random_state=8).fit(A).result()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(a.to_dense(), c.to_dense())
    gen = StreamingSVD(3, sketch=sketch, random_state=np.random.default_rng(0)).fit(A).result()
    assert gen.U.shape == (500, 3)


def test_fit_resets_and_partial_fit_continues():
    rng = np.random.default_rng(5)
    A = noisy(600, 30, 3, rng)
    est = StreamingSVD(3, random_state=1)
    est.fit(A)
    est.fit(A)  # not added twice
    assert est.n_rows_ == 600 and est.n_features_ == 30
    first = est.result()
    np.testing.assert_allclose(first.to_dense(), StreamingSVD(3, random_state=1).fit(A).result().to_dense())
    est.partial_fit(A[:100])  # more rows after a result
    assert est.result().shape == (700, 30)


def test_pickle_resumes_a_stream_and_update_is_partial_fit():
    import pickle

    rng = np.random.default_rng(13)
    A = noisy(900, 20, 3, rng)
    est = StreamingSVD(3, sketch="gaussian", random_state=1).update(A[:400])
    est = pickle.loads(pickle.dumps(est))
    est.update(A[400:])
    ref = StreamingSVD(3, sketch="gaussian", random_state=1).fit(A).result()
    for x, y in zip(ref, est.result()):
        np.testing.assert_allclose(x, y, atol=1e-10 * np.abs(x).max())


def test_dtype():
    rng = np.random.default_rng(6)
    A = low_rank(200, 30, 3, rng)
    assert StreamingSVD(3, random_state=0).fit(A.astype(np.float32)).result().dtype == np.float32
    assert StreamingSVD(3, random_state=0, dtype=np.float64).fit(A.astype(np.float32)).result().dtype == np.float64
    assert StreamingSVD(3, random_state=0, dtype="float32").fit(A).result().dtype == np.float32
    assert StreamingSVD(3, random_state=0).fit(A.astype(np.int64)).result().dtype == np.float64
    est = StreamingSVD(3, random_state=0)
    est.partial_fit(A[:100].astype(np.float32))
    est.partial_fit(A[100:])  # later blocks compute in the first block's dtype
    assert est.result().dtype == np.float32


def test_dask_and_memmap_input(tmp_path):
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(7)
    A = noisy(2000, 25, 4, rng)
    for sketch in SKETCHES:
        ref = StreamingSVD(4, sketch=sketch, random_state=2).fit(A).result()
        got = StreamingSVD(4, sketch=sketch, random_state=2).fit(da.from_array(A, chunks=(300, 10))).result()
        for x, y in zip(ref, got):
            np.testing.assert_allclose(x, y, atol=1e-10 * np.abs(x).max())
    path = tmp_path / "A.npy"
    np.save(path, A)
    mm = np.load(path, mmap_mode="r")
    got = StreamingSVD(4, random_state=2).fit(mm).result()
    ref = StreamingSVD(4, random_state=2).fit(A).result()
    for x, y in zip(ref, got):
        np.testing.assert_allclose(x, y, atol=1e-10 * np.abs(x).max())
    with pytest.raises(ValueError, match="NaN or inf"):
        bad = A.copy()
        bad[1500, 3] = np.nan
        StreamingSVD(4, random_state=2).fit(da.from_array(bad, chunks=(300, 25)))


def test_backends_agree():
    rng = np.random.default_rng(8)
    A = noisy(300, 20, 3, rng)
    ref = StreamingSVD(3, random_state=4, backend="numpy").fit(A).result()
    for backend in fastlr.available_backends():
        got = StreamingSVD(3, random_state=4, backend=backend).fit(sp.csr_array(A)).result()
        np.testing.assert_allclose(got.to_dense(), ref.to_dense(), atol=1e-10)


def test_accuracy_near_optimal_on_low_rank_plus_noise():
    rng = np.random.default_rng(9)
    A = noisy(800, 120, 8, rng, noise=0.2)
    k = 8
    s = np.linalg.svd(A, compute_uv=False)
    best = np.sqrt((s[k:] ** 2).sum())
    for sketch in SKETCHES:
        with fastlr.thread_limit(1):  # many small fits: no thread team to wake on a busy machine
            worst = max(StreamingSVD(k, sketch=sketch, random_state=seed).fit(A).result().error(A)
                        for seed in range(4))
        assert worst <= 2.0 * best  # TYUC's bound with the default sizes: sqrt(2 * 4/3) ~ 1.63 in expectation


def test_coherent_matrix_is_not_lost():
    # a few large entries in distinct rows and columns: a 1-nonzero CountSketch would often hash two
    # of them to one bucket; the sparse sign test matrices keep all of them
    rng = np.random.default_rng(10)
    A = 1e-3 * rng.standard_normal((1000, 200))
    A[rng.choice(1000, 6, replace=False), rng.choice(200, 6, replace=False)] = np.arange(1, 7)
    s = np.linalg.svd(A, compute_uv=False)
    best = np.sqrt((s[6:] ** 2).sum())
    with fastlr.thread_limit(1):
        for seed in range(8):
            assert StreamingSVD(6, random_state=seed).fit(A).result().error(A) <= 2.0 * best


def test_small_shapes():
    rng = np.random.default_rng(11)
    A = rng.standard_normal((3, 5))
    lr = StreamingSVD(4, random_state=0).fit(A).result()  # k capped at min(n, d)
    assert lr.rank == 3
    assert lr.error(A) <= 1e-12 * np.linalg.norm(A)
    est = StreamingSVD(2, random_state=0)
    est.partial_fit(np.zeros((0, 5)))  # an empty block is allowed (it fixes d)
    with pytest.raises(ValueError, match="no data yet"):
        est.result()
    est.partial_fit(np.zeros((4, 5)))
    lr = est.result()  # the zero matrix: s = 0, factors still orthonormal
    np.testing.assert_array_equal(lr.s, 0)
    np.testing.assert_allclose(lr.U.T @ lr.U, np.eye(2), atol=1e-12)


def test_memory_is_bounded_by_the_sketches():
    rng = np.random.default_rng(12)
    A = rng.standard_normal((3000, 50))
    est = StreamingSVD(5, random_state=0).fit(A)
    s, c = est.range_size_, est.core_size_
    assert est.nbytes <= 8 * ((3000 + 3 * 50) * s + c * c) + 16 * 4 * 50 * 2
    assert est.nbytes < A.nbytes / 2


@pytest.mark.parametrize("kwargs, error, match", [
    ({"k": 0}, ValueError, "k: must be >= 1"),
    ({"k": 2.5}, TypeError, "k: expected an integer"),
    ({"k": 3, "range_size": 2}, ValueError, "range_size: must be >= k"),
    ({"k": 3, "range_size": 5, "core_size": 4}, ValueError, "core_size: must be >= range_size"),
    ({"k": 3, "core_size": 2}, ValueError, "core_size: must be >= k"),
    ({"k": 3, "sketch": "sparse"}, ValueError, "sketch: must be one of"),
    ({"k": 3, "dtype": np.int32}, ValueError, "dtype:"),
    ({"k": 3, "random_state": "seed"}, TypeError, "random_state"),
])
def test_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        StreamingSVD(**kwargs)


def test_bad_blocks():
    est = StreamingSVD(2, random_state=0)
    with pytest.raises(ValueError, match="no data yet"):
        est.result()
    with pytest.raises(ValueError, match="rows: expected a 2-D"):
        est.partial_fit(np.ones(5))
    with pytest.raises(TypeError, match="rows"):
        est.partial_fit(np.ones((2, 2), dtype=complex))
    est.partial_fit(np.ones((3, 4)))
    with pytest.raises(ValueError, match="rows: expected 4 columns"):
        est.partial_fit(np.ones((3, 5)))
    for bad in (np.nan, np.inf, -np.inf):
        block = np.ones((3, 4))
        block[1, 2] = bad
        with pytest.raises(ValueError, match="rows: contains NaN or inf"):
            est.partial_fit(block)
        with pytest.raises(ValueError, match="rows: contains NaN or inf"):
            est.partial_fit(sp.csr_array(block))
    assert est.n_rows_ == 3  # refused blocks leave the sketches as they were
    with pytest.raises(ValueError, match="A: expected at least one row"):
        StreamingSVD(2).fit(np.ones((0, 3)))
    with pytest.raises(ValueError, match="A: expected at least one column"):
        StreamingSVD(2).fit(np.ones((3, 0)))
