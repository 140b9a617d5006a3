"""dask.array inputs, on the local scheduler and on a real dask.distributed LocalCluster."""

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster, get_task_stream

import fastlr
from helpers import assert_close


@pytest.fixture(scope="module")
def client():
    """Two worker processes with one thread each, started once for this module."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster, set_as_default=False) as c:
            yield c


def _matrix(n, d, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


@pytest.mark.parametrize("chunks", [(250, -1), (333, 7), (-1, -1), (97, 1)])
def test_countsketch_of_dask_array_equals_in_memory(chunks, dtype, backend):
    A = _matrix(1000, 19, dtype)
    S = fastlr.CountSketch(13, 1000, seed=4)
    SA = S.apply(da.from_array(A, chunks=chunks), backend=backend)
    assert isinstance(SA, da.Array)  # lazy until computed
    assert SA.shape == (13, 19) and SA.dtype == dtype
    result = SA.compute(scheduler="threads")
    assert result.dtype == dtype
    assert_close(result, S.apply(A, backend=backend), dtype, scale=np.abs(A).max() * np.sqrt(1000))


def test_matmul_operator_and_integer_input():
    A = np.arange(600, dtype=np.int64).reshape(200, 3) % 7
    S = fastlr.CountSketch(5, 200, seed=1)
    np.testing.assert_allclose((S @ da.from_array(A, chunks=(64, 3))).compute(), S @ A, rtol=0, atol=1e-12)


def test_learned_values_are_used():
    A = _matrix(300, 4, np.float64)
    S = fastlr.CountSketch(6, 300, seed=2)
    S.values = np.random.default_rng(5).uniform(-2, 2, 300)  # trained values, not +/-1
    result = (S @ da.from_array(A, chunks=(70, 4))).compute()
    np.testing.assert_allclose(result, S.to_dense() @ A, rtol=1e-12, atol=1e-12)


def test_bad_dask_inputs_raise_clear_errors():
    S = fastlr.CountSketch(4, 100)
    with pytest.raises(ValueError, match=r"A: has 99 rows"):
        S @ da.zeros((99, 3), chunks=10)
    with pytest.raises(ValueError, match=r"A: expected a 2-D dask array"):
        S @ da.zeros(100, chunks=10)
    with pytest.raises(TypeError, match=r"A: complex"):
        S @ da.zeros((100, 3), chunks=10, dtype=np.complex128)
    unknown = da.zeros((100, 3), chunks=10)
    unknown = unknown[unknown[:, 0] == 0]  # boolean indexing: unknown row chunk sizes
    with pytest.raises(ValueError, match=r"unknown chunk sizes"):
        S @ unknown
    bad = da.from_array(np.full((100, 3), np.nan), chunks=50)
    with pytest.raises(ValueError, match=r"NaN"):
        (S @ bad).compute(scheduler="sync")


def test_countsketch_on_local_cluster_equals_in_memory(client):
    A = _matrix(4000, 30, np.float64, seed=1)
    S = fastlr.CountSketch(20, 4000, seed=7)
    Ad = da.from_array(A, chunks=(500, 30))
    with get_task_stream(client) as tasks:
        result = client.compute(S @ Ad).result()
    # The 8 row blocks were sketched on the two worker processes, not in this process.
    assert len(tasks.data) >= 8
    assert len({t["worker"] for t in tasks.data}) == 2
    np.testing.assert_allclose(result, S @ A, rtol=0, atol=1e-12 * np.abs(A).max() * 4000)


def test_dask_config_scheduler_is_respected():
    A = _matrix(500, 5, np.float32)
    S = fastlr.CountSketch(8, 500, seed=0)
    with dask.config.set(scheduler="sync"):
        result = (S @ da.from_array(A, chunks=(128, 5))).compute()
    assert_close(result, S @ A, np.float32, scale=np.abs(A).max() * np.sqrt(500))
