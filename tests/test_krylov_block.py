"""The block Krylov finder's block width at x86-64-v3 (fastlr/_krylov.py ``krylov_block``): where l
leaves a half-vector tail past one register tile of the fused kernel (float32 l = 17-20), blocks of
one tile (16 columns) and one block more; the result at least as accurate as the l-wide blocks and
as scikit-learn's, and the float32 kernels' column sums in runs (products_simd.hpp ``kSumRows32``)."""

import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastlr
from fastlr._matrix import InMemory

krylov = sys.modules["fastlr._krylov"]
extmath = pytest.importorskip("sklearn.utils.extmath")


@pytest.fixture
def v3():
    """Kernels capped at x86-64-v3 (skipped on a CPU without AVX2)."""
    core = pytest.importorskip("fastlr._core")
    previous = core._cap_isa(1)
    try:
        if core.build_info()["kernel_isa"] != "x86-64-v3":
            pytest.skip("no x86-64-v3 kernels on this CPU or build")
        yield core
    finally:
        core._cap_isa(previous)


def _spectrum_matrix(n, d, s, seed=0):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, s.size)))[0]
    V = np.linalg.qr(rng.standard_normal((d, s.size)))[0]
    return (U * s) @ V.T


def test_block_values(v3):
    A = np.zeros((3000, 1000), dtype=np.float32)
    op = InMemory(A)
    assert krylov.krylov_block(op, 10, 20, 7) == (16, 5)  # the default k = 10: 16-column blocks, one more
    assert krylov.krylov_block(op, 8, 18, 4) == (16, 4)
    assert krylov.krylov_block(op, 10, 24, 7) == (24, 4)  # a full vector past the tile: no tail to save
    assert krylov.krylov_block(op, 13, 20, 7) == (20, 4)  # 16 keeps less than half of the oversampling
    assert krylov.krylov_block(op, 30, 40, 7) == (40, 4)  # past one tile: the saving is smaller than a block
    assert krylov.krylov_block(InMemory(A.astype(np.float64)), 10, 20, 7) == (20, 4)  # float64: a full-vector tail


def test_block_kept_at_baseline():
    core = pytest.importorskip("fastlr._core")
    previous = core._cap_isa(0)
    try:
        assert krylov.krylov_block(InMemory(np.zeros((3000, 1000), dtype=np.float32)), 10, 20, 7) == (20, 4)
    finally:
        core._cap_isa(previous)


def _excess(A64, k, factors):
    U, s, Vt = (np.asarray(x, dtype=np.float64) for x in factors)
    opt = np.sqrt(np.sum(np.linalg.svd(A64, compute_uv=False)[k:] ** 2))
    return (np.linalg.norm(A64 - (U * s) @ Vt) - opt) / np.linalg.norm(A64)


@pytest.mark.parametrize("spectrum", ["1/sqrt(i)", "1e4:1"])
def test_narrow_blocks_as_accurate(v3, monkeypatch, spectrum):
    """float32 1500 x 800, k = 10 (n_iter 7: the Krylov finder): the passes run 16 columns wide, and
    the worst excess error over 4 seeds is at most the 20-wide blocks' and scikit-learn's."""
    i = np.arange(1, 801.0)
    s = 1 / np.sqrt(i) if spectrum == "1/sqrt(i)" else np.geomspace(1, 1e-4, i.size)
    A = _spectrum_matrix(1500, 800, s).astype(np.float32)
    A64 = A.astype(np.float64)
    widths = []
    power_pass = InMemory.power_pass
    monkeypatch.setattr(InMemory, "power_pass", lambda self, V: widths.append(V.shape[1]) or power_pass(self, V))
    with fastlr.thread_limit(1), threadpool_limits(1):
        new = max(_excess(A64, 10, fastlr.randomized_svd(A, 10, random_state=seed)) for seed in range(4))
        assert widths == [16] * 5 * 4
        monkeypatch.setattr(krylov, "krylov_block", lambda op, k, l, n_iter: (l, krylov.krylov_depth(n_iter)))
        old = max(_excess(A64, 10, fastlr.randomized_svd(A, 10, random_state=seed)) for seed in range(4))
        assert widths[20:] == [20] * 4 * 4
        sk = max(_excess(A64, 10, extmath.randomized_svd(A, 10, random_state=seed)) for seed in range(4))
    assert new <= old and new <= sk, (new, old, sk)


def test_float32_column_sums_in_runs(v3):
    """A^T W at one thread over 6000 rows of entries near 1: one float32 accumulator per column rounds
    like eps * n (a running sum near 6000 has ulps of 5e-4); runs of 1024 rows added up keep the
    relative error near eps * 1024. The sequential float32 sums miss the bound."""
    rng = np.random.default_rng(3)
    n, d, k = 6000, 24, 20
    A = (1.0 + 0.25 * rng.random((n, d))).astype(np.float32)
    W = (1.0 + 0.25 * rng.random((n, k))).astype(np.float32)
    exact = A.astype(np.float64).T @ W.astype(np.float64)
    bound = 1.5e-6
    sequential = np.cumsum(A[:, :, None] * W[:, None, :], axis=0, dtype=np.float32)[-1]  # one running sum each
    assert np.max(np.abs(sequential / exact - 1)) > bound  # 3.5e-6 (the kernels: 7e-7)
    previous = v3.get_num_threads()
    try:
        v3.set_num_threads(1)
        Z = v3.rmatmul(A, W)
        _, Z2 = v3.power_step(A, np.ones((d, 1), dtype=np.float32))
    finally:
        v3.set_num_threads(previous)
    assert np.max(np.abs(Z / exact - 1)) <= bound
    exact2 = A.astype(np.float64).T @ A.astype(np.float64).sum(axis=1, keepdims=True)
    assert np.max(np.abs(Z2 / exact2 - 1)) <= bound
