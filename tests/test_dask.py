"""dask.array inputs, on the local scheduler and on a real dask.distributed LocalCluster."""

from collections import Counter

import dask
import dask.array as da
import dask.bag as db
import numpy as np
import pytest
from dask.utils import key_split
from distributed import Client, LocalCluster, get_task_stream

import fastlr

from helpers import assert_close, run_python


@pytest.fixture(scope="module")
def client():
    """Two worker processes with one thread each, started once for this module."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        with Client(cluster, set_as_default=False) as c:
            yield c


def _matrix(n, d, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


def _lowrank(n, d, dtype=np.float64, rank=8, seed=0):
    """Low rank with a geometric spectrum plus noise: well-separated singular vectors."""
    rng = np.random.default_rng(seed)
    A = (rng.standard_normal((n, rank)) * 0.6 ** np.arange(rank)) @ rng.standard_normal((rank, d))
    return (A + 1e-4 * rng.standard_normal((n, d))).astype(dtype)


def _assert_same_svd(dask_result, reference, dtype):
    U, s, Vt = dask_result
    assert isinstance(U, da.Array) and isinstance(s, np.ndarray) and isinstance(Vt, np.ndarray)
    U = U.compute()
    assert U.dtype == s.dtype == Vt.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(s, reference[1], rtol=tol, atol=tol * reference[1][0])
    np.testing.assert_allclose(U, reference[0], rtol=0, atol=tol)
    np.testing.assert_allclose(Vt, reference[2], rtol=0, atol=tol)


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


@pytest.mark.parametrize("chunks", [(300, -1), (450, 17), (97, -1)])
def test_scw_of_dask_array_equals_in_memory(chunks, dtype):
    A = _lowrank(1500, 40, dtype)
    S = fastlr.CountSketch(20, 1500, seed=2)
    with dask.config.set(scheduler="threads"):
        result = fastlr.scw(da.from_array(A, chunks=chunks), S, 5, n_iter=1)
    _assert_same_svd(result, fastlr.scw(A, S, 5, n_iter=1), dtype)


@pytest.mark.parametrize("sketch", ["countsketch", "gaussian"])
@pytest.mark.parametrize("n_iter", [0, 3])
def test_randomized_svd_of_dask_array_equals_in_memory(sketch, n_iter, dtype):
    A = _lowrank(1200, 30, dtype, seed=1)
    options = dict(n_iter=n_iter, sketch=sketch, random_state=3)
    with dask.config.set(scheduler="threads"):
        result = fastlr.randomized_svd(da.from_array(A, chunks=(250, 30)), 6, **options)
    _assert_same_svd(result, fastlr.randomized_svd(A, 6, **options), dtype)


def test_learned_mixed_and_stacked_sketches_on_dask():
    A = _lowrank(800, 25, seed=4)
    train = [_lowrank(800, 25, seed=s) for s in range(5, 8)]
    mixed = fastlr.learn_sketch(train, 12, 4, steps=5, mixed="joint", holdout=0, progress=False)
    stacked = fastlr.stack([fastlr.CountSketch(6, 800, seed=1), fastlr.GaussianSketch(6, 800, seed=2)])
    with dask.config.set(scheduler="threads"):
        for S in (mixed, stacked):
            result = fastlr.scw(da.from_array(A, chunks=(200, 25)), S, 4)
            _assert_same_svd(result, fastlr.scw(A, S, 4), np.float64)


def test_rank_deficient_dask_input_gives_orthonormal_factors():
    exact = np.random.default_rng(1).standard_normal((600, 3)) @ np.random.default_rng(2).standard_normal((3, 20))
    with dask.config.set(scheduler="threads"):
        U, s, Vt = fastlr.randomized_svd(da.from_array(exact, chunks=(150, 20)), 6, random_state=0)
    U = U.compute()
    np.testing.assert_allclose(s, fastlr.randomized_svd(exact, 6, random_state=0)[1], atol=1e-9 * s[0])
    assert np.all(s[3:] == 0)
    np.testing.assert_allclose(U.T @ U, np.eye(6), atol=1e-10)
    np.testing.assert_allclose(Vt @ Vt.T, np.eye(6), atol=1e-10)
    np.testing.assert_allclose((U * s) @ Vt, exact, atol=1e-9 * np.abs(exact).max())


def test_bad_row_blocked_arguments():
    Ad = da.zeros((100, 5), chunks=20)
    with pytest.raises(ValueError, match=r"transpose: True is not supported"):
        fastlr.randomized_svd(Ad, 2, transpose=True)
    with pytest.raises(ValueError, match=r"block_rows: not used for dask arrays"):
        fastlr.scw(Ad, fastlr.CountSketch(4, 100), 2, block_rows=10)
    with pytest.raises(ValueError, match=r"S: has n=99 columns but A has 100 rows"):
        fastlr.scw(Ad, fastlr.CountSketch(4, 99), 2)
    with pytest.raises(ValueError, match=r"k: must be <= min"):
        fastlr.scw(Ad, fastlr.CountSketch(8, 100), 6)
    with pytest.raises(ValueError, match=r"NaN"):
        fastlr.scw(da.full((100, 5), np.nan, chunks=20), fastlr.CountSketch(4, 100), 2)


def test_randomized_svd_on_local_cluster_equals_in_memory(client):
    A = _lowrank(6000, 50, seed=5)
    Ad = da.from_array(A, chunks=(750, 50))
    with client.as_current(), get_task_stream(client) as tasks:
        U, s, Vt = fastlr.randomized_svd(Ad, 8, n_iter=2, random_state=0)
        assert U.chunks[0] == Ad.chunks[0]  # U is distributed like A's rows
        result = (client.compute(U).result(), s, Vt)
    assert len({t["worker"] for t in tasks.data}) == 2
    reference = fastlr.randomized_svd(A, 8, n_iter=2, random_state=0)
    for got, expected in zip(result, reference):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * np.abs(expected).max())


# --------------------------------------------------------------------------- learn_sketch


def _saved(folder, matrices):
    paths = []
    for i, A in enumerate(matrices):
        paths.append(str(folder / f"{i:02d}.npy"))
        np.save(paths[-1], A)
    return paths


def _assert_same_training(got, expected, rtol=1e-10):
    assert type(got) is type(expected)  # heavy_rows="auto": both wrapped (text) or neither
    if isinstance(got, fastlr.HeavyRowSketch):
        got, expected = got.base, expected.base
    np.testing.assert_array_equal(got.rows, expected.rows)
    np.testing.assert_array_equal(got.history["step"], expected.history["step"])
    for field in ("train_loss", "val_err"):  # NaN where the other has NaN (step 0, unevaluated steps)
        np.testing.assert_allclose(got.history[field], expected.history[field], rtol=rtol, atol=1e-14)
    np.testing.assert_allclose(got.values, expected.values, rtol=rtol, atol=1e-14)
    assert got.mixed == expected.mixed and got.shape == expected.shape


def test_learn_sketch_on_local_cluster_equals_in_memory(client, tmp_path):
    data = fastlr.datasets.lowrank(8, shape=(400, 30), rank=6, seed=2)
    paths = _saved(tmp_path, data[:6])
    options = dict(m=10, k=3, steps=8, batch_size=3, val=data[6:], eval_every=4, progress=False)
    with client.as_current():
        with get_task_stream(client) as tasks:
            from_loaders = fastlr.learn_sketch([dask.delayed(np.load)(p) for p in paths], mixed="joint", **options)
        from_bag = fastlr.learn_sketch(db.from_sequence(paths, npartitions=2).map(np.load), **options)
    _assert_same_training(from_loaders, fastlr.learn_sketch(data[:6], mixed="joint", **options))
    _assert_same_training(from_bag, fastlr.learn_sketch(data[:6], **options))
    # Each file was read once, on a worker; the 8 steps x 3 matrices, and the shift guard's row
    # energies (one task per training matrix), ran where the matrices live.
    names = Counter(key_split(t["key"]) for t in tasks.data)
    assert names["load"] == 6 and names["learn_sketch_load"] == 6
    assert names["learn_sketch_gradient"] == 8 * 3 + 6
    workers = {t["worker"] for t in tasks.data if key_split(t["key"]) == "learn_sketch_gradient"}
    assert len(workers) == 2


def test_learn_sketch_from_a_bag_on_the_local_scheduler():
    text = fastlr.datasets.text(8, n_terms=300, n_docs=30, seed=4)  # sparse
    options = dict(m=8, k=3, steps=6, gradient="power", power_iters=4, progress=False)
    with dask.config.set(scheduler="threads"):
        got = fastlr.learn_sketch(db.from_sequence(text[:5], npartitions=3), val=db.from_sequence(text[5:]),
                                  **options)
    _assert_same_training(got, fastlr.learn_sketch(text[:5], val=text[5:], **options))


def test_learn_sketch_bad_dask_training_data():
    ones = dask.delayed(np.ones)
    kw = dict(steps=1, progress=False)
    with dask.config.set(scheduler="sync"):
        with pytest.raises(ValueError, match=r"train\[2\]: has shape \(50, 5\), but train\[0\] has shape \(50, 6\)"):
            fastlr.learn_sketch([ones((50, 6)), ones((50, 6)), ones((50, 5))], 4, 2, **kw)
        with pytest.raises(ValueError, match=r"train\[1\]: contains NaN"):
            fastlr.learn_sketch(db.from_sequence([np.ones((50, 6)), np.full((50, 6), np.nan)]), 4, 2, **kw)
        with pytest.raises(ValueError, match=r"train\[0\]: expected a 2-D array"):
            fastlr.learn_sketch([ones(50)], 4, 2, **kw)
        with pytest.raises(ValueError, match=r"train: is empty"):
            fastlr.learn_sketch(db.from_sequence([], npartitions=1), 4, 2, **kw)
        with pytest.raises(ValueError, match=r"k: must be <= min\(n, d\) = 3"):
            fastlr.learn_sketch([ones((50, 3))], 6, 4, **kw)
        with pytest.raises(ValueError, match=r"val\[0\]: has shape \(40, 6\)"):
            fastlr.learn_sketch([ones((50, 6))], 4, 2, val=[ones((40, 6))], **kw)


def test_learn_sketch_from_delayed_loaders_without_dask_bag_imported():
    # Only dask.delayed is loaded in a fresh interpreter: the bag check must not need dask.bag.
    code = ("import sys, numpy as np, dask, fastlr\n"
            "A = [dask.delayed(np.random.default_rng(i).standard_normal)((60, 8)) for i in range(3)]\n"
            "S = fastlr.learn_sketch(A, 4, 2, steps=2, progress=False)\n"
            "print('dask.bag' in sys.modules, S.shape)\n")
    out = run_python(code)  # outside the source tree: the installed fastlr, with its compiled core
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "(4,", "60)"]


def test_every_sketch_type_stays_lazy_on_dask(monkeypatch):
    """S @ dask_array is a lazy dask array for every sketch type (CountSketch seeded and from arrays,
    Gaussian, dense, stacked, mixed learned): nothing gathers A while the product is built."""
    A = _lowrank(600, 12, seed=9)
    train = [_lowrank(600, 12, seed=s) for s in (10, 11)]
    mixed = fastlr.learn_sketch(train, 8, 3, steps=2, mixed="joint", holdout=0, progress=False)
    sketches = {
        "seeded": fastlr.CountSketch(6, 600, seed=1),
        "arrays": fastlr.CountSketch.from_arrays(np.arange(600) % 6, np.linspace(-1, 1, 600), 6),
        "gaussian": fastlr.GaussianSketch(5, 600, seed=2),
        "dense": fastlr.DenseSketch(np.random.default_rng(3).standard_normal((4, 600))),
        "stacked": fastlr.stack([fastlr.CountSketch(3, 600, seed=4), fastlr.GaussianSketch(3, 600, seed=5)]),
        "mixed": mixed,
    }
    Ad = da.from_array(A, chunks=(150, 12))

    def gathered(*args, **kwargs):
        raise AssertionError("the dask array was gathered into memory")

    lazy = {}
    with monkeypatch.context() as m:
        m.setattr(da.Array, "__array__", gathered)
        m.setattr(da.Array, "compute", gathered)
        for name, S in sketches.items():
            lazy[name] = S @ Ad
            assert isinstance(lazy[name], da.Array), name
    with dask.config.set(scheduler="sync"):
        for name, S in sketches.items():
            np.testing.assert_allclose(lazy[name].compute(), S @ A, rtol=1e-10, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_lowrank_error_of_a_dask_array_reads_it_chunk_by_chunk(dtype, monkeypatch):
    """LowRank.error / error_estimate on a dask array: the same numbers as on the array in memory,
    A never gathered (``__array__`` raises), whether U is an ndarray or fastlr's dask U."""
    A = (_lowrank(900, 30, seed=12) * 50).astype(dtype)
    Ad = da.from_array(A, chunks=(200, 15))
    in_memory = fastlr.LowRank(*fastlr.randomized_svd(A, 4, random_state=0))
    from_dask = fastlr.scw(Ad, fastlr.CountSketch(12, 900, seed=1), 4)
    assert isinstance(from_dask, fastlr.LowRank) and isinstance(from_dask.U, da.Array)

    def gathered(*args, **kwargs):
        raise AssertionError("the dask array was gathered into memory")

    monkeypatch.setattr(da.Array, "__array__", gathered)
    for lr in (in_memory, from_dask):
        rtol = 1e-5 if dtype == np.float32 else 1e-10
        assert lr.error(Ad) == pytest.approx(lr.error(A), rel=rtol)
        estimate = lr.error_estimate(Ad, random_state=3)
        assert estimate.estimate == pytest.approx(lr.error_estimate(A, random_state=3).estimate, rel=rtol)
        assert 0.2 * lr.error(A) < estimate.estimate < estimate.bound
    bad = Ad.copy()
    bad[5, 5] = np.nan if dtype != np.int64 else 0
    if dtype != np.int64:
        with pytest.raises(ValueError, match="^A: contains NaN"):
            in_memory.error(bad)
    with pytest.raises(ValueError, match=r"^A: expected shape \(900, 30\)"):
        in_memory.error(Ad[:10])
