"""dask: CountSketch S @ A and randomized_svd on a LocalCluster vs in memory, for a matrix that fits.

The overhead of going through dask is the difference between the "dask-cluster"
(2 worker processes, 1 thread each, the row blocks already persisted on the
workers) or "dask-threads" (dask's local threaded scheduler) rows and the
"in-memory" row (2 threads, fastlr and BLAS) of the same group.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest bench/bench_dask.py --benchmark-only
"""

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster, wait
from threadpoolctl import threadpool_limits

import fastlr


N, D, CHUNK_ROWS = 400_000, 100, 50_000  # 320 MB of float64 in 8 row blocks
M, K = 40, 10
MODES = ["in-memory", "dask-threads", "dask-cluster"]


def _block(i, Q):
    """Row block i of the test matrix: low rank (shared Q) plus noise, the same wherever it is made."""
    rng = np.random.default_rng(i)
    return rng.standard_normal((CHUNK_ROWS, K)) @ Q + 0.01 * rng.standard_normal((CHUNK_ROWS, D))


_Q = np.random.default_rng(12345).standard_normal((K, D)) / np.arange(1, K + 1)[:, None]


@pytest.fixture(scope="module")
def A():
    return np.concatenate([_block(i, _Q) for i in range(N // CHUNK_ROWS)])


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster, set_as_default=False) as c:
            yield c


@pytest.fixture(scope="module")
def on_cluster(client):
    """A's row blocks generated and held on the workers, as data loaded on a cluster would be."""
    blocks = [da.from_delayed(dask.delayed(_block)(i, _Q), shape=(CHUNK_ROWS, D), dtype=np.float64)
              for i in range(N // CHUNK_ROWS)]
    Ad = client.persist(da.concatenate(blocks))
    with client.as_current():
        wait(Ad)
    return Ad


def _run(mode, A, on_cluster, client, fn):
    """A no-argument callable computing fn(A) in memory, on dask's threads, or on the cluster."""
    if mode == "in-memory":
        return lambda: fn(A)
    if mode == "dask-threads":
        Ad = da.from_array(A, chunks=(CHUNK_ROWS, D))  # made once, outside the timing

        def threads():
            with dask.config.set(scheduler="threads"):
                return dask.compute(fn(Ad))[0]
        return threads

    def cluster():
        with client.as_current():  # every compute inside fn runs on the cluster too
            return dask.compute(fn(on_cluster))[0]
    return cluster


@pytest.mark.parametrize("mode", MODES)
def test_countsketch(benchmark, mode, A, on_cluster, client):
    S = fastlr.CountSketch(M, N, seed=0)
    benchmark.group = f"countsketch {N}x{D} m={M}"
    with threadpool_limits(limits=2):
        fastlr.set_num_threads(2)
        SA = benchmark.pedantic(_run(mode, A, on_cluster, client, lambda X: S @ X), rounds=5, warmup_rounds=1)
    np.testing.assert_allclose(SA, S @ A, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("mode", MODES)
def test_randomized_svd(benchmark, mode, A, on_cluster, client):
    benchmark.group = f"randomized_svd {N}x{D} k={K} n_iter=2"

    def svd(X):
        return fastlr.randomized_svd(X, K, n_iter=2, random_state=0)

    with threadpool_limits(limits=2):
        fastlr.set_num_threads(2)
        U, s, Vt = benchmark.pedantic(_run(mode, A, on_cluster, client, svd), rounds=3, warmup_rounds=1)
    s_ref = fastlr.randomized_svd(A, K, n_iter=2, random_state=0)[1]
    np.testing.assert_allclose(s, s_ref, rtol=1e-8)
