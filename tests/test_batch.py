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
