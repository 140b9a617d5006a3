"""Batches: randomized_svd / scw of a 3-D array or a list of matrices, against one call per matrix."""

import sys

import numpy as np
import pytest
import scipy.sparse as sp

import fastlr


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    B = rng.standard_normal((6, 120, 30)) * np.logspace(0, -3, 30)  # decaying spectra
    return B


@pytest.mark.parametrize("threads", [1, 2])
def test_randomized_svd_batch_equals_one_call_per_matrix(batch, threads):
    with fastlr.thread_limit(threads):
        U, s, Vt = fastlr.randomized_svd(batch, 5, random_state=3)
    assert U.shape == (6, 120, 5) and s.shape == (6, 5) and Vt.shape == (6, 5, 30)
    for i, A in enumerate(batch):
        u, t, vt = fastlr.randomized_svd(A, 5, random_state=3)
        np.testing.assert_allclose(s[i], t, rtol=1e-12)
        np.testing.assert_allclose(U[i], u, atol=1e-10)
        np.testing.assert_allclose(Vt[i], vt, atol=1e-10)
        np.testing.assert_allclose(t, np.linalg.svd(A, compute_uv=False)[:5], rtol=1e-6)


def test_lists_of_dense_and_sparse_matrices_and_float32(batch):
    items = [sp.csr_matrix(A) for A in batch[:3]] + [A.astype(np.float32) for A in batch[3:]]
    U, s, Vt = fastlr.randomized_svd(items, 4, random_state=0)
    assert U.shape == (6, 120, 4)
    for i, A in enumerate(batch):
        np.testing.assert_allclose(s[i], np.linalg.svd(A, compute_uv=False)[:4], rtol=1e-4)


def test_scw_batch(batch):
    S = fastlr.CountSketch(15, 120, seed=2)
    U, s, Vt = fastlr.scw(list(batch), S, 4, n_iter=1)
    for i, A in enumerate(batch):
        one = fastlr.scw(A, S, 4, n_iter=1)
        np.testing.assert_allclose(s[i], one.s, rtol=1e-12)
        np.testing.assert_allclose(U[i], one.U, atol=1e-10)


def test_random_state_per_matrix(batch):
    a = fastlr.randomized_svd(batch, 3, n_iter=0, random_state=np.random.RandomState(5))
    b = fastlr.randomized_svd(batch, 3, n_iter=0, random_state=np.random.RandomState(5))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)  # seeds drawn in order: reproducible


def test_a_list_of_lists_is_one_matrix():
    U, s, Vt = fastlr.randomized_svd([[3.0, 0.0], [0.0, 1.0]], 1, random_state=0)
    assert U.shape == (2, 1) and np.isclose(s[0], 3.0)


def test_bad_batches_name_the_matrix(batch):
    with pytest.raises(ValueError, match=r"A\[1\]: has shape \(120, 20\), but A\[0\] has shape \(120, 30\)"):
        fastlr.randomized_svd([batch[0], batch[1][:, :20]], 3)
    bad = batch.copy()
    bad[2, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"A\[2\]: contains NaN"):
        fastlr.randomized_svd(bad, 3)
    with pytest.raises(ValueError, match=r"A\[0\]: .*k"):
        fastlr.scw(batch, fastlr.CountSketch(15, 120), 40)
    with pytest.raises(ValueError, match="empty batch"):
        fastlr.randomized_svd(np.zeros((0, 5, 5)), 2)
    np.testing.assert_array_equal(np.isnan(bad).sum(), 1)  # inputs untouched


def test_stacked_path_is_taken_and_falls_back_where_needed(batch, monkeypatch):
    from fastlr import batch as batch_module

    calls = []
    original = batch_module.stacked_in_parallel
    monkeypatch.setattr(sys.modules["fastlr.randomized"], "stacked_in_parallel",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    wide = np.ascontiguousarray(batch.transpose(0, 2, 1))  # 30 x 120: the transposed finder
    U, s, Vt = fastlr.randomized_svd(wide, 4, random_state=1)
    assert calls, "the stacked path was not used"
    for i, A in enumerate(wide):
        u, t, vt = fastlr.randomized_svd(A, 4, random_state=1)
        np.testing.assert_allclose(s[i], t, rtol=1e-10)
        np.testing.assert_allclose(np.abs(U[i].T @ u), np.eye(4), atol=1e-8)
    # rank 2 < k = 4: the one-call path completes the trailing vectors (s = 0, U orthonormal)
    low = np.stack([np.outer(np.arange(1, 41), np.ones(12)) + np.outer(np.ones(40), np.arange(12)) * i
                    for i in range(1, 4)])
    U, s, Vt = fastlr.randomized_svd(low, 4, random_state=0)
    assert np.all(s[:, 2:] == 0)
    for u in U:
        np.testing.assert_allclose(u.T @ u, np.eye(4), atol=1e-12)


# The stacked path against NumPy's SVD and scikit-learn's randomized_svd (fastlr._batch_small).

def _stack(kind, dtype, order, rng, b=8, n=60, d=24):
    """b matrices of one kind: decaying spectra, exactly low rank, rank-deficient below k, badly
    scaled columns, nearly low rank (rank 6 + noise 1e-6: where the Gram rounding would show)."""
    out = np.empty((b, n, d))
    for i in range(b):
        U = np.linalg.qr(rng.standard_normal((n, d)))[0]
        V = np.linalg.qr(rng.standard_normal((d, d)))[0]
        if kind == "decaying":
            s = 1.0 / np.arange(1, d + 1)
        elif kind in ("low_rank", "nearly_low_rank"):
            s = np.where(np.arange(d) < 6, np.logspace(0, -2, 6).tolist() + [0.0] * (d - 6), 0.0)
        elif kind == "deficient":
            s = np.where(np.arange(d) < 3, 1.0, 0.0)
        else:  # badly scaled: columns over 10 orders of magnitude
            s = np.ones(d)
        out[i] = (U * s) @ V.T
        if kind == "scaled":
            out[i] = rng.standard_normal((n, d)) * np.logspace(-5, 5, d)
        if kind == "nearly_low_rank":
            out[i] += 1e-6 * rng.standard_normal((n, d))
    out = out.astype(dtype)
    return np.asfortranarray(out) if order == "F" else out


def _errors(B, U, s, Vt):
    """||A - U S V^T||_F per matrix, in float64."""
    B = B.astype(np.float64)
    return np.array([np.linalg.norm(A - (u.astype(np.float64) * t) @ vt.astype(np.float64))
                     for A, u, t, vt in zip(B, U, s, Vt)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("kind", ["decaying", "low_rank", "nearly_low_rank", "deficient", "scaled"])
def test_stacked_path_against_numpy_svd(kind, dtype, order):
    B = _stack(kind, dtype, order, np.random.default_rng(7))
    k = 5
    U, s, Vt = fastlr.randomized_svd(B, k, random_state=0)
    assert U.dtype == s.dtype == Vt.dtype == dtype
    assert U.shape == (8, 60, k) and s.shape == (8, k) and Vt.shape == (8, k, 24)
    eps = np.finfo(dtype).eps
    for i, A in enumerate(B.astype(np.float64)):
        exact = np.linalg.svd(A, compute_uv=False)
        tol = 50 * eps * exact[0]
        np.testing.assert_allclose(s[i], exact[:k], rtol=1e-3 if kind == "decaying" else 0, atol=tol)
        np.testing.assert_allclose(U[i].T.astype(np.float64) @ U[i], np.eye(k), atol=50 * eps)
        np.testing.assert_allclose(Vt[i].astype(np.float64) @ Vt[i].T, np.eye(k), atol=50 * eps)
        assert np.all(np.abs(U[i]).argmax(axis=0) == np.abs(U[i] * (U[i] > 0)).argmax(axis=0))  # svd_flip
    opt = np.array([np.sqrt(np.sum(np.linalg.svd(A, compute_uv=False)[k:] ** 2)) for A in B.astype(np.float64)])
    norms = np.linalg.norm(B.astype(np.float64), axis=(1, 2))
    assert np.all(_errors(B, U, s, Vt) <= opt * (1 + 1e-3) + 50 * eps * norms)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["decaying", "low_rank", "nearly_low_rank"])
def test_stacked_path_no_less_accurate_than_sklearn(kind, dtype):
    """Worst error over 120 matrices (err / optimal rank-k error; for exactly low rank, err / ||A||)
    no worse than scikit-learn's randomized_svd on the same matrices."""
    sk_rsvd = pytest.importorskip("sklearn.utils.extmath").randomized_svd
    B = _stack(kind, dtype, "C", np.random.default_rng(11), b=120)
    k = 6
    U, s, Vt = fastlr.randomized_svd(B, k, random_state=0)
    ours = _errors(B, U, s, Vt)
    theirs = _errors(B, *map(np.stack, zip(*[sk_rsvd(A, k, random_state=0) for A in B])))
    scale = np.array([np.linalg.norm(A.astype(np.float64)) if kind == "low_rank"
                      else np.sqrt(np.sum(np.linalg.svd(A.astype(np.float64), compute_uv=False)[k:] ** 2))
                      for A in B])
    if kind == "low_rank":  # both at rounding level: within a small factor of each other's worst
        assert (ours / scale).max() <= 2 * (theirs / scale).max()
    else:
        assert (ours / scale).max() <= (theirs / scale).max() * (1 + 1e-9)


def test_gram_rounding_guard_redoes_nearly_low_rank_matrices(monkeypatch):
    """Nearly low-rank matrices (s_1 / s_k = 100, noise 1e-6) in float32: the Gram path's basis is
    off by ~ eps (s_1 / s_k)^2, which shows in the error; the guard sends them to the direct path."""
    from fastlr import _batch_small

    B = _stack("nearly_low_rank", np.float32, "C", np.random.default_rng(3), b=6)
    redone = []
    direct = _batch_small._direct
    monkeypatch.setattr(_batch_small, "_direct", lambda A, *a: redone.append(len(A)) or direct(A, *a))
    U, s, Vt = fastlr.randomized_svd(B, 6, random_state=0)
    assert redone == [6]
    opt = np.array([np.sqrt(np.sum(np.linalg.svd(A.astype(np.float64), compute_uv=False)[6:] ** 2)) for A in B])
    assert np.all(_errors(B, U, s, Vt) <= 1.0001 * opt)  # scikit-learn: 1.00017 on these
    # without the guard (every result kept) the Gram rounding shows in the error
    monkeypatch.setattr(_batch_small, "_gram_accurate", lambda s, *a: np.ones(len(s), dtype=bool))
    monkeypatch.setattr(_batch_small, "_direct", lambda A, *a: pytest.fail("redone"))
    U, s, Vt = fastlr.randomized_svd(B, 6, random_state=0)
    assert np.any(_errors(B, U, s, Vt) > 1.002 * opt)


def test_stacked_path_tiny_matrices_and_list_input():
    rng = np.random.default_rng(2)
    for shape, k in [((5, 1, 1), 1), ((4, 3, 2), 2), ((3, 7, 4), 3), ((3, 4, 7), 3)]:
        B = rng.standard_normal(shape)
        U, s, Vt = fastlr.randomized_svd(B, k, random_state=0)
        for i, A in enumerate(B):
            np.testing.assert_allclose(s[i], np.linalg.svd(A, compute_uv=False)[:k], rtol=1e-10)
            np.testing.assert_allclose((U[i] * s[i]) @ Vt[i], A if k == min(shape[1:]) else (U[i] * s[i]) @ Vt[i])
    B = rng.standard_normal((70, 50, 12))  # > one chunk of 64: the chunks are put back in order
    stacked = fastlr.randomized_svd(B, 4, random_state=np.random.RandomState(1))
    listed = fastlr.randomized_svd(list(B), 4, random_state=np.random.RandomState(1))
    for x, y in zip(stacked, listed):
        np.testing.assert_allclose(x, y, atol=1e-10)
