"""gd_svd's passes take their thread count from the one rule of the matrix layer (``_matrix.threads_for``):
short passes run on one thread, whichever backend, and no BLAS call of a small problem wakes OpenBLAS's
workers (a BLAS call on two threads left OpenBLAS's worker spinning through a whole 2000 x 1000 run)."""

import types

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController, threadpool_limits

import fastlr
from fastlr._matrix import InMemory, memory
from fastlr.gd.optim import ElementwiseOptimizer


def _blas_threads() -> int:
    return max((c.num_threads for c in ThreadpoolController().select(user_api="blas").lib_controllers), default=0)


@pytest.mark.parametrize("masked", [False, True])
def test_gd_svd_of_a_small_matrix_calls_blas_dot_on_one_thread(masked, monkeypatch):
    """The squared norm of A (a dense A's in InMemory.squared_norm, the observed entries' in MaskedProblem)
    is a BLAS dot; gd_svd ran it on the user's BLAS thread count before its other BLAS calls went to one."""
    if not ThreadpoolController().select(user_api="blas").lib_controllers:
        pytest.skip("no BLAS library found by threadpoolctl")
    rng = np.random.default_rng(0)
    A = rng.standard_normal((300, 10)) @ rng.standard_normal((10, 200))
    mask = rng.random(A.shape) < 0.5 if masked else None
    seen = []
    dot = np.dot
    monkeypatch.setattr(np, "dot", lambda *a, **k: seen.append(_blas_threads()) or dot(*a, **k))
    with threadpool_limits(limits=2, user_api="blas"), fastlr.thread_limit(2):
        if _blas_threads() < 2:
            pytest.skip("BLAS does not take two threads here")
        fastlr.gd_svd(A, 5, mask=mask, random_state=0, max_iter=3)
    assert seen and max(seen) == 1


def test_optimizer_steps_take_the_passes_thread_rule(monkeypatch):
    """An optimizer step is a memory-bound pass over its parameter: STREAM_ENTRY_WORK multiply-adds an entry
    against SMALL_WORK, on one thread below it (the kernels' own rule, 65536 entries a thread, gave a 20000 x 10
    parameter two; 0.55 ms at one thread on a Zen 2)."""
    seen = []
    kernels = types.SimpleNamespace(optimizer_step=lambda *a: seen.append(fastlr.get_num_threads()))
    params = [np.zeros((20000, 10)), np.zeros((1000, 10))]
    assert memory.STREAM_ENTRY_WORK * params[0].size < memory.SMALL_WORK
    opt = ElementwiseOptimizer("adam", params, kernels)
    with fastlr.thread_limit(2):
        opt.step([np.ones((20000, 10)), np.ones((1000, 10))], 0.1)
        monkeypatch.setattr(memory, "SMALL_WORK", 0)
        opt.step([np.ones((20000, 10)), np.ones((1000, 10))], 0.1)
    assert seen == [1, 1, 2, 2]


def test_masked_gradients_take_the_passes_thread_rule(monkeypatch):
    """The masked gradients' pass gathers V's rows for each observed entry: SPARSE_ENTRY_WORK multiply-adds per
    nonzero and row against SMALL_WORK, as a gathering product (2000 observed entries ran on two threads)."""
    M = sp.random(100, 80, density=0.25, format="csr", random_state=np.random.default_rng(0))
    op = InMemory(M)
    seen = []
    monkeypatch.setattr(op.kernels, "gd_masked_grad", lambda *a: seen.append(fastlr.get_num_threads()))
    U, V = np.ones((100, 4)), np.ones((80, 4))
    assert memory.SPARSE_ENTRY_WORK * (M.nnz + 100) * 4 < memory.SMALL_WORK
    with fastlr.thread_limit(2):
        op.masked_gradients(U, V, 0.0)
        monkeypatch.setattr(memory, "SMALL_WORK", 0)
        op.masked_gradients(U, V, 0.0)
    assert seen == [1, 2]


@pytest.mark.parametrize("sparse", [False, True])
def test_squared_norm_gives_each_blas_dot_the_rule_of_its_own_size(sparse, monkeypatch):
    """A dense A's squared norm is one BLAS dot per block of _BLOCK_ENTRIES entries: each short, on one thread
    however large A (two threads per block waited for OpenBLAS's worker, 100000 x 500 took 15x one's time
    beside busy processes); a sparse A's one dot over all its nonzeros, on fastlr's threads when that is long."""
    if not ThreadpoolController().select(user_api="blas").lib_controllers:
        pytest.skip("no BLAS library found by threadpoolctl")
    rng = np.random.default_rng(0)
    A = sp.random(300, 200, density=0.5, format="csr", random_state=rng) if sparse else rng.standard_normal((300, 200))
    monkeypatch.setattr(memory, "SMALL_WORK", memory.STREAM_ENTRY_WORK * 1000)
    monkeypatch.setattr(memory, "_BLOCK_ENTRIES", 512)
    seen = []
    squared_norm = InMemory._squared_norm

    def record(self):
        seen.append(_blas_threads())
        return squared_norm(self)

    monkeypatch.setattr(InMemory, "_squared_norm", record)
    with threadpool_limits(limits=2, user_api="blas"), fastlr.thread_limit(2):
        if _blas_threads() < 2:
            pytest.skip("BLAS does not take two threads here")
        total = InMemory(A).squared_norm()
    expected = float(np.sum(A.data**2)) if sparse else float(np.sum(A**2))
    assert total == pytest.approx(expected, rel=1e-12)
    assert seen == [2 if sparse else 1]
