"""GD-SVD: the fused one-pass products, time to a near-optimal rank-10 SVD, and matrix completion.

- ``test_gd_products``: fastlr's ``gd_products`` (A V and A^T U in one pass over A) vs NumPy's
  ``A @ V`` plus ``A.T @ U``, single thread, float64/float32, C-ordered A.
- ``test_time_to_target``: seconds until ``||A - A_hat||_F <= 1.001 ||A - A_k||_F`` on 2000 x 1000
  matrices (sigma_i = 1/i; low rank plus noise), k = 10: fastlr's default gd_svd (stopped by a
  callback the moment its loss is there; and with default arguments, stopped by its own rule)
  vs ``scipy.sparse.linalg.svds`` (exact). ``gd_convergence.py --defaults`` times the defaults
  against svds interleaved in one process, with the worst error over many seeds.
- ``test_iteration``: one iteration of the write-ups' formulations (NumPy GD, PyTorch Adam with
  orthonormality penalties) vs fastlr on the same U, sigma, V formulation (parametrization="usv").
- ``test_completion``: planted rank-10 1000 x 1000, 5% observed with noise: fastlr until its test
  RMSE reaches surprise.SVD's final one vs surprise.SVD's fit (skipped without scikit-surprise).

Loss-vs-time curves, the seeds' best error in the same time and the write-ups' small examples:
``python bench/gd_convergence.py`` (writes bench/gd_loss_vs_time.png).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest bench/bench_gd.py --benchmark-only
"""

import os
import sys

import numpy as np
import pytest
import scipy.sparse.linalg as sla
from threadpoolctl import threadpool_limits

import fastlr
from fastlr._matrix import InMemory

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gd_seeds  # noqa: E402

PRODUCT_SHAPES = {"2000x1000": (2000, 1000), "20000x2000": (20000, 2000)}
K = 10
_cache = {}


def _cached(key, make):
    if key not in _cache:
        _cache[key] = make()
    return _cache[key]


@pytest.fixture
def single_thread():
    with fastlr.thread_limit(1), threadpool_limits(limits=1):
        yield 1


@pytest.mark.parametrize("impl", ["fastlr", "numpy"])
@pytest.mark.parametrize("k", [10, 32])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", list(PRODUCT_SHAPES))
def test_gd_products(benchmark, single_thread, impl, k, dtype, shape):
    m, n = PRODUCT_SHAPES[shape]
    A = _cached(("A", shape, dtype), lambda: np.random.default_rng(0).standard_normal((m, n)).astype(dtype))
    rng = np.random.default_rng(1)
    U = rng.standard_normal((m, k)).astype(dtype)
    V = rng.standard_normal((n, k)).astype(dtype)
    benchmark.group = f"gd_products {shape} k={k} {dtype} 1 thread"
    if impl == "fastlr":
        AV, ATU = benchmark(InMemory(A).gd_products, U, V)
    else:
        AV, ATU = benchmark(lambda: (A @ V, A.T @ U))
    tol = 1e-3 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(AV, A.astype(np.float64) @ V, rtol=tol, atol=tol * np.sqrt(n))


def _problem(name):
    def make():
        A = gd_seeds.MATRICES[name]()
        return A, gd_seeds.optimal_error(A, K)

    return _cached(("problem", name), make)


@pytest.mark.parametrize("method", ["fastlr", "fastlr-defaults", "svds"])
@pytest.mark.parametrize("matrix", list(gd_seeds.MATRICES))
def test_time_to_target(benchmark, threads, method, matrix):
    """"fastlr" stops by a callback at the target; "fastlr-defaults" is ``gd_svd(A, 10)`` as a user
    calls it (its own stopping rule)."""
    A, optimal = _problem(matrix)
    target_loss = 0.5 * (1.001 * optimal) ** 2  # gd_svd's loss is half the squared error
    benchmark.group = f"time to 1.001x optimal, {matrix} 2000x1000 k=10, {threads} threads"
    if method == "svds":
        U, s, Vt = benchmark.pedantic(lambda: sla.svds(A, K, random_state=0), rounds=5, warmup_rounds=1)
        iterations = None
    elif method == "fastlr-defaults":
        runs = []

        def run():
            out = fastlr.gd_svd(A, K, random_state=len(runs), return_history=True)
            runs.append(out[3].n_iter)
            return out

        U, s, Vt, _ = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
        iterations = runs[-1]
    else:
        runs = []

        def run():
            out = fastlr.gd_svd(A, K, random_state=len(runs), return_history=True,
                                callback=lambda it, loss: loss <= target_loss)
            runs.append(out[3].n_iter)
            return out

        U, s, Vt, _ = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
        iterations = runs[-1]
    ratio = gd_seeds.error_of(A, U, s, Vt.T) / optimal
    benchmark.extra_info.update(error_ratio=ratio, iterations=iterations)
    assert ratio <= 1.001 + 1e-9


@pytest.mark.parametrize("impl", ["numpy-seed", "torch-adam-seed", "fastlr-usv-adam", "fastlr-scaled"])
def test_iteration(benchmark, threads, impl):
    """Seconds per iteration of the same U, sigma, V formulation (and of fastlr's default)."""
    A, _ = _problem("inv_spectrum")
    benchmark.group = f"one iteration, 2000x1000 k=10, {threads} threads"
    iterations = 20
    if impl == "numpy-seed":
        run = lambda: gd_seeds.numpy_gd_seed(A, K, lr=1.0, budget=np.inf, record_every=iterations, max_iter=iterations)
    elif impl == "torch-adam-seed":
        if gd_seeds.torch is None:
            pytest.skip("torch is not installed")
        run = lambda: gd_seeds.torch_seed(A, K, optimizer="adam", lr=1e-3, budget=np.inf, record_every=iterations,
                                         threads=threads, max_iter=iterations)
    else:
        kwargs = dict(parametrization="usv", optimizer="adam") if impl == "fastlr-usv-adam" else {}
        run = lambda: fastlr.gd_svd(A, K, max_iter=iterations, tol=0, random_state=0, **kwargs)
    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    benchmark.extra_info["iterations_per_round"] = iterations


#: surprise.SVD settings: its defaults (which barely learn on this data) and a tuned run
SURPRISE = {"default": {}, "tuned": dict(lr_all=0.02, n_epochs=100)}


@pytest.fixture(scope="module")
def completion():
    return gd_seeds.completion_problem(1000, 1000)


@pytest.mark.parametrize("method", ["fastlr", "surprise"])
@pytest.mark.parametrize("baseline", list(SURPRISE))
def test_completion(benchmark, threads, completion, baseline, method):
    surprise = pytest.importorskip("surprise")
    A, mask, rows, cols, values = completion
    trainset = _cached("trainset", lambda: gd_seeds.surprise_trainset(A))
    make = lambda: surprise.SVD(n_factors=K, random_state=0, **SURPRISE[baseline])
    target = _cached(("surprise", baseline), lambda: gd_seeds.surprise_rmse(make().fit(trainset), trainset, rows, cols,
                                                                          values))
    benchmark.group = (f"completion 1000x1000 5% observed, to surprise.SVD ({baseline})'s final RMSE {target:.4f}, "
                       f"{threads} threads")
    if method == "surprise":  # single-threaded Cython whatever `threads` says
        algo = benchmark.pedantic(lambda: make().fit(trainset), rounds=3)
        rmse = gd_seeds.surprise_rmse(algo, trainset, rows, cols, values)
    else:
        # the first iteration count whose test RMSE reaches surprise's (found once, outside the timing)
        iters = _cached(("fastlr-iters", baseline), lambda: _iterations_to(A, mask, rows, cols, values, target))
        U, s, Vt = benchmark.pedantic(
            lambda: fastlr.gd_svd(A, K, mask=mask, random_state=0, max_iter=iters, tol=0), rounds=3, warmup_rounds=1
        )
        rmse = gd_seeds.completion_rmse(U, s, Vt, rows, cols, values)
        benchmark.extra_info["iterations"] = iters
    benchmark.extra_info["test_rmse"] = rmse
    assert rmse <= target + 1e-12


def _iterations_to(A, mask, rows, cols, values, target):
    for iters in range(1, 500):
        U, s, Vt = fastlr.gd_svd(A, K, mask=mask, random_state=0, max_iter=iters, tol=0)
        if gd_seeds.completion_rmse(U, s, Vt, rows, cols, values) <= target:
            return iters
    raise AssertionError("fastlr never reached surprise's RMSE")
