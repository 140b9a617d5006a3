"""The Numba backend on read-only and memory-mapped inputs: same results, no whole copies.

Numba types a read-only array differently from a writeable one; the kernels' signatures
declare their inputs read-only, so ``np.load(..., mmap_mode="r")`` arrays and
``setflags(write=False)`` views are accepted as they are.
"""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import assert_close, messy_csr

import fastlr
from fastlr._backend import kernel_names
from fastlr._kernels import reference as ref

#: (n, d, k, density): a small problem (one chunk: the serial compilation) and one large enough
#: for two chunks (the parallel compilation) when fastlr may use two or more threads.
SIZES = {"small": (60, 7, 3, 0.3), "large": (4000, 40, 4, 0.5)}
M = 9


@pytest.fixture(scope="module")
def numba_kernels():
    if "numba" not in fastlr.available_backends():
        pytest.skip(f"backend numba unavailable: {fastlr.backend_errors().get('numba')}")
    return fastlr.get_backend("numba")


@pytest.fixture(params=["readonly", "memmap"])
def freeze(request, tmp_path):
    """Turn an input array into a read-only view, or into a read-only np.load(mmap_mode="r") memmap."""
    count = iter(range(10**6))

    def readonly(a):
        view = a.view()
        view.setflags(write=False)
        return view

    def memmap(a):
        path = tmp_path / f"{next(count)}.npy"
        np.save(path, a)
        out = np.load(path, mmap_mode="r")
        assert isinstance(out, np.memmap) and not out.flags.writeable
        return out

    return {"readonly": readonly, "memmap": memmap}[request.param]


def _dense(rng, n, d, dtype, order):
    A = rng.standard_normal((n, d)).astype(dtype)
    return np.asfortranarray(A) if order == "F" else A


def _csr(rng, n, d, density, dtype, index_dtype, fmt="csr"):
    A = messy_csr(n, d, density, rng, dtype=dtype, index_dtype=index_dtype)
    if fmt == "csc":
        A = A.tocsc()
    return A.indptr.astype(index_dtype), A.indices.astype(index_dtype), A.data


def _cases(size, dtype, index_dtype):
    """kernel name -> (arguments, positions of its input arrays), for every numba kernel."""
    n, d, k, density = SIZES[size]
    rng = np.random.default_rng(n + d)
    rows = rng.integers(0, M, n).astype(np.int64)
    values = rng.standard_normal(n).astype(dtype)

    def f(*shape):
        return rng.standard_normal(shape).astype(dtype)

    cases = {}
    for order in ("C", "F"):
        A = _dense(rng, n, d, dtype, order)
        cases[f"countsketch_dense-{order}"] = ((A, rows, values, M), (0, 1, 2))
        cases[f"countsketch_gather_dot-{order}"] = ((A, rows, f(M, d)), (0, 1, 2))
        cases[f"countsketch_seeded_dense-{order}"] = ((A, 7, M, 3), (0,))
        cases[f"countsketch_dense_energy-{order}"] = ((A, rows, values, M), (0, 1, 2))
        cases[f"countsketch_seeded_dense_energy-{order}"] = ((A, 7, M, 3), (0,))
        cases[f"matmul-{order}"] = ((A, f(d, k)), (0, 1))
        cases[f"rmatmul-{order}"] = ((A, f(n, k)), (0, 1))
        cases[f"gd_products-{order}"] = ((A, f(n, k), f(d, k)), (0, 1, 2))
        cases[f"power_step-{order}"] = ((A, f(d, k)), (0, 1))
        cases[f"gram_product-{order}"] = ((A, f(d, k)), (0, 1))
        cases[f"row_squared_norms_dense-{order}"] = ((A,), (0,))
    csr = _csr(rng, n, d, density, dtype, index_dtype)
    csc = _csr(rng, n, d, density, dtype, index_dtype, fmt="csc")
    cases["countsketch_csr"] = ((*csr, rows, values, M, d), (0, 1, 2, 3, 4))
    cases["countsketch_csc"] = ((*csc, rows, values, M, d), (0, 1, 2, 3, 4))
    cases["countsketch_gather_dot_csr"] = ((*csr, rows, f(M, d)), (0, 1, 2, 3, 4))
    cases["countsketch_seeded_csr"] = ((*csr, 7, M, n, d, 3), (0, 1, 2))
    cases["countsketch_seeded_csc"] = ((*csc, 7, M, n, d, 3), (0, 1, 2))
    cases["matmul_csr"] = ((*csr, f(d, k)), (0, 1, 2, 3))
    cases["rmatmul_csr"] = ((*csr, f(n, k), d), (0, 1, 2, 3))
    cases["gd_products_csr"] = ((*csr, f(n, k), f(d, k)), (0, 1, 2, 3, 4))
    cases["power_step_csr"] = ((*csr, f(d, k)), (0, 1, 2, 3))
    cases["gram_product_csr"] = ((*csr, f(d, k)), (0, 1, 2, 3))
    cases["gd_masked_grad"] = ((*csr, f(n, k), f(d, k), 0.1), (0, 1, 2, 3, 4))
    cases["row_squared_norms_csr"] = ((*csr, n), (0, 1, 2))
    cases["row_squared_norms_csc"] = ((*csc, n), (0, 1, 2))
    return cases


def _outputs(result):
    if isinstance(result, tuple):
        return [np.asarray(r) for r in result]
    return [np.asarray(result)]


@pytest.mark.parametrize("size", ["small", "large"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_every_kernel_on_readonly_inputs(numba_kernels, freeze, size, dtype):
    index_dtype = np.int32 if dtype == np.float32 else np.int64
    cases = _cases(size, dtype, index_dtype)
    # optimizer_step: its own test below; countsketch_hash takes no input arrays
    assert {name.split("-")[0] for name in cases} | {"optimizer_step", "countsketch_hash"} == set(kernel_names())
    for name, (args, inputs) in cases.items():
        frozen = [freeze(a) if i in inputs else a for i, a in enumerate(args)]
        assert all(not frozen[i].flags.writeable for i in inputs)
        kernel = name.split("-")[0]
        got = _outputs(getattr(numba_kernels, kernel)(*frozen))
        writeable = _outputs(getattr(numba_kernels, kernel)(*args))
        expected = _outputs(getattr(ref, kernel)(*args))
        for g, w, e in zip(got, writeable, expected):
            # The same compiled code as for writeable inputs, bit for bit; and the reference's result.
            np.testing.assert_array_equal(g, w, err_msg=name)
            assert_close(g, e, dtype, scale=max(np.abs(e).max(initial=0.0), 1.0) * 10)


@pytest.mark.parametrize("kind", ["sgd", "momentum", "nesterov", "adam"])
def test_optimizer_step_on_a_readonly_gradient(numba_kernels, freeze, kind):
    rng = np.random.default_rng(0)
    states = {"sgd": 0, "momentum": 1, "nesterov": 1, "adam": 2}[kind]
    param, grad = rng.standard_normal((2, 4000, 40))
    state = np.abs(rng.standard_normal((states, 4000, 40)))
    hyper = (0.1, 0.9, 0.999, 1e-8, 3)
    p_ref, s_ref = param.copy(), state.copy()
    ref.optimizer_step(p_ref, grad, s_ref, kind, hyper)
    numba_kernels.optimizer_step(param, freeze(grad), state, kind, hyper)
    np.testing.assert_allclose(param, p_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state, s_ref, rtol=1e-12, atol=1e-14)


def _frozen_sparse(A, freeze):
    A = A.tocsr()
    return sp.csr_matrix((freeze(A.data), freeze(A.indices), freeze(A.indptr)), shape=A.shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_public_entry_points_on_readonly_inputs(numba_kernels, freeze, dtype):
    rng = np.random.default_rng(1)
    n, d, k = 300, 40, 3
    A = ((rng.standard_normal((n, k)) @ rng.standard_normal((k, d))) + 0.01 * rng.standard_normal((n, d)))
    A = A.astype(dtype)
    A_csr = sp.csr_matrix(A * (rng.random(A.shape) < 0.3))
    S = fastlr.CountSketch(20, n, seed=0)
    frozen, frozen_csr = freeze(A), _frozen_sparse(A_csr, freeze)
    assert not frozen.flags.writeable and not frozen_csr.data.flags.writeable

    assert_close(S.apply(frozen, backend="numba"), S.apply(A, backend="numpy"), dtype)
    assert_close(S.apply(frozen_csr, backend="numba"), S.apply(A_csr, backend="numpy"), dtype)

    got = fastlr.randomized_svd(frozen, k, random_state=0, backend="numba")
    expected = fastlr.randomized_svd(A, k, random_state=0, backend="numpy")
    assert_close(np.asarray(got[0]) * got[1] @ got[2], expected[0] * expected[1] @ expected[2], dtype)

    got = fastlr.scw(frozen, S, k, backend="numba").to_dense()
    assert_close(got, fastlr.scw(A, S, k, backend="numpy").to_dense(), dtype)

    got = fastlr.scw(frozen_csr, S, k, backend="numba").to_dense()
    assert_close(got, fastlr.scw(A_csr, S, k, backend="numpy").to_dense(), dtype)

    kw = dict(max_iter=30, random_state=0)
    U, s, Vt = fastlr.gd_svd(frozen, k, backend="numba", **kw)
    U0, s0, Vt0 = fastlr.gd_svd(A, k, backend="numpy", **kw)
    assert_close((U * s) @ Vt, (U0 * s0) @ Vt0, dtype, scale=np.abs(A).max() * 10)
    U, s, Vt = fastlr.gd_svd(frozen_csr, k, mask="nonzero", backend="numba", **kw)
    U0, s0, Vt0 = fastlr.gd_svd(A_csr, k, mask="nonzero", backend="numpy", **kw)
    assert_close((U * s) @ Vt, (U0 * s0) @ Vt0, dtype, scale=np.abs(A).max() * 10)


def test_readonly_inputs_are_not_copied_whole(numba_kernels, tmp_path):
    n, d, m = 20000, 100, 50  # 16 MB of float64
    rng = np.random.default_rng(2)
    A = rng.standard_normal((n, d))
    np.save(tmp_path / "A.npy", A)
    mapped = np.load(tmp_path / "A.npy", mmap_mode="r")
    frozen = A.view()
    frozen.setflags(write=False)
    kernels = numba_kernels
    S = fastlr.CountSketch(m, n, seed=0)
    rows, values = S.rows, S.values.astype(np.float64)
    expected = ref.countsketch_dense(A, rows, values, m)
    for B in (mapped, frozen, np.asfortranarray(frozen)):
        kernels.countsketch_dense(B, rows, values, m)  # compile (or load) outside the measurement
        tracemalloc.start()
        try:
            got = kernels.countsketch_dense(B, rows, values, m)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < A.nbytes / 8, f"peak {peak} bytes for a {A.nbytes}-byte input"
        assert_close(got, expected, np.float64)
    tracemalloc.start()
    try:
        got = S.apply(mapped, backend="numba")  # the public path: memmaps are read in row blocks
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < A.nbytes / 2, f"peak {peak} bytes for a {A.nbytes}-byte input"
    assert_close(got, expected, np.float64)
