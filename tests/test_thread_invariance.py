"""The kernels' results (C++ and Numba) do not depend on the thread count: bit-identical at 1, 2, 3 and 4 threads.

Every reduction over rows (A^T W, A^T (A V), gd_products's A^T U, the masked gradients' G_V, S A) sums
fixed blocks of the problem, each from zero, and adds them in block order; the thread count only decides
who computes which block. Shapes are large enough for several blocks and several threads
(``useful_threads``), at the widths of the different tiles (split_width, padded, unpadded).
"""

import numpy as np
import pytest
import scipy.sparse as sp

import fastlr

THREADS = (1, 2, 3, 4)


@pytest.fixture(scope="module", params=["cpp", "numba"])
def core(request):
    """The compiled kernels, and the Numba backend's (the same contract; its thread count is capped at
    NUMBA_NUM_THREADS, so on a two-core machine 3 and 4 threads run as 2)."""
    if request.param == "numba":
        pytest.importorskip("numba")
    return fastlr.get_backend(request.param)


def _at_threads(call):
    """call() at each of THREADS threads (fastlr.thread_limit), as a list of tuples of arrays."""
    out = []
    for t in THREADS:
        with fastlr.thread_limit(t):
            r = call()
        out.append(tuple(np.asarray(x) for x in (r if isinstance(r, tuple) else (r,))))
    return out


def _assert_identical(results):
    first = results[0]
    for t, r in zip(THREADS[1:], results[1:]):
        for a, b in zip(first, r):
            assert a.dtype == b.dtype and a.shape == b.shape
            bad = np.count_nonzero(a != b)
            assert bad == 0, f"{t} threads: {bad} of {a.size} entries differ from one thread's"


def _dense(dtype, order, n=5000, d=150, seed=0):
    rng = np.random.default_rng(seed)
    return np.asarray(rng.standard_normal((n, d)), dtype=dtype, order=order)


def _csr(dtype, n=20000, d=300, per_row=6, seed=1):
    """n x d CSR with 0 to 2 per_row nonzeros a row (rows of unequal length, some empty)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 2 * per_row + 1, n)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    indices = rng.integers(0, d, indptr[-1]).astype(np.int32)
    data = rng.standard_normal(indptr[-1]).astype(dtype)
    return sp.csr_matrix((data, indices, indptr), shape=(n, d))


def _dense_calls(core, A, V, W) -> dict:
    """The dense passes by name, each a call of no arguments."""
    return {
        "power_step": lambda: core.power_step(A, V),
        "gram_product": lambda: core.gram_product(A, V),
        "rmatmul": lambda: core.rmatmul(A, W),
        "matmul": lambda: core.matmul(A, V),
        "gd_products": lambda: core.gd_products(A, W, V),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("k", [3, 10, 20])
@pytest.mark.parametrize("kernel", ["power_step", "gram_product", "rmatmul", "matmul", "gd_products"])
def test_dense_products_are_thread_count_invariant(core, kernel, k, order, dtype):
    A = _dense(dtype, order)
    rng = np.random.default_rng(2)
    V = rng.standard_normal((A.shape[1], k)).astype(dtype)
    W = rng.standard_normal((A.shape[0], k)).astype(dtype)
    calls = _dense_calls(core, A, V, W)
    _assert_identical(_at_threads(calls[kernel]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [13, 28])
@pytest.mark.parametrize("kernel", ["power_step", "gram_product", "rmatmul", "matmul", "gd_products"])
def test_dense_depth_blocks_are_thread_count_invariant(kernel, k, dtype):
    """The same at x86-64-v3 with the factor past L2 (told an L2 of 16 KiB): row-major A's passes in depth
    blocks of A's columns (products_split_depth.cpp's depth_rows), over the same fixed row blocks."""
    core = pytest.importorskip("fastlr._core")
    from fastlr._matrix.choice import cache_sizes

    fastlr.get_backend("cpp")
    A = _dense(dtype, "C")
    rng = np.random.default_rng(3)
    V = rng.standard_normal((A.shape[1], k)).astype(dtype)
    W = rng.standard_normal((A.shape[0], k)).astype(dtype)
    calls = _dense_calls(core, A, V, W)
    previous = core._cap_isa(1)
    core._set_cache_sizes(1 << 14, 1 << 30)
    try:
        _assert_identical(_at_threads(calls[kernel]))
    finally:
        core._set_cache_sizes(*cache_sizes())
        core._cap_isa(previous)


#: The sparse kernels that still split by thread (deterministic for a given thread count), by backend module.
_CSR_BY_THREADS = {
    "_core": ("rmatmul_csr", "gd_products_csr"),
    "numba": ("rmatmul_csr", "gd_products_csr", "power_step_csr", "gram_product_csr", "gd_masked_grad"),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [3, 8, 20])
@pytest.mark.parametrize("kernel", ["power_step_csr", "gram_product_csr", "rmatmul_csr", "matmul_csr",
                                    "gd_products_csr", "gd_masked_grad"])
def test_csr_kernels_are_thread_count_invariant(core, kernel, k, dtype):
    if kernel in _CSR_BY_THREADS[core.__name__.split(".")[-1]]:
        pytest.skip("still sums a chunk a thread: fixed chunks cost 1.1-2.8% at one thread (bench/README.md, "
                    "eighteenth session, HD)")
    # The masked gradients fix their chunks from 512 observed entries per column of A on (gd.hpp).
    A = _csr(dtype, d=100 if kernel == "gd_masked_grad" else 300)
    n, d = A.shape
    rng = np.random.default_rng(3)
    V = rng.standard_normal((d, k)).astype(dtype)
    W = rng.standard_normal((n, k)).astype(dtype)
    csr = (A.indptr, A.indices, A.data)
    calls = {
        "power_step_csr": lambda: core.power_step_csr(*csr, V),
        "gram_product_csr": lambda: core.gram_product_csr(*csr, V),
        "rmatmul_csr": lambda: core.rmatmul_csr(*csr, W, d),
        "matmul_csr": lambda: core.matmul_csr(*csr, V),
        "gd_products_csr": lambda: core.gd_products_csr(*csr, W, V),
        "gd_masked_grad": lambda: core.gd_masked_grad(*csr, W, V, 0.1),
    }
    _assert_identical(_at_threads(calls[kernel]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [20, 1100])
def test_dense_countsketch_of_wide_rows_is_thread_count_invariant(core, m, dtype):
    """Rows over 12 KiB (the C++ kernel's bucket-by-bucket pass; over 1024 rows of S it keeps row order):
    2 row chunks of 2100 x 3100 at m = 20 (1 at m = 1100), blocks of 1024 rows and a last partial one."""
    A = _dense(dtype, "C", n=2100, d=3100)
    rng = np.random.default_rng(5)
    rows = rng.integers(0, m, A.shape[0]).astype(np.int64)
    values = rng.choice([-1.0, 1.0], A.shape[0]).astype(dtype)
    _assert_identical(_at_threads(lambda: core.countsketch_dense(A, rows, values, m)))
    _assert_identical(_at_threads(lambda: core.countsketch_seeded_dense(A, 7, m)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_countsketch_in_column_strips_is_thread_count_invariant(core, dtype):
    """800 and 1600-byte rows with a 40-80 KB accumulator (the C++ kernel's column strips): 4 row chunks of
    5000 x 200 at m = 50, strip blocks of 16 rows ending mid-block."""
    A = _dense(dtype, "C", n=5000, d=200)
    rng = np.random.default_rng(6)
    rows = rng.integers(0, 50, A.shape[0]).astype(np.int64)
    values = rng.standard_normal(A.shape[0]).astype(dtype)
    _assert_identical(_at_threads(lambda: core.countsketch_dense(A, rows, values, 50)))
    _assert_identical(_at_threads(lambda: core.countsketch_seeded_dense(A, 7, 50)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C", "F", "csr", "csc"])
@pytest.mark.parametrize("kernel", ["countsketch", "seeded", "gather_dot"])
def test_countsketch_is_thread_count_invariant(core, kernel, layout, dtype):
    """S A (given and seeded S) and the gathered dots of the learned sketches' gradients."""
    m = 200
    if layout in ("C", "F"):
        A = _dense(dtype, layout, n=20000, d=100)
    else:
        A = _csr(dtype, n=40000, d=300)
        A = A if layout == "csr" else sp.csc_matrix(A)
    n, d = A.shape
    rng = np.random.default_rng(4)
    rows = rng.integers(0, m, n).astype(np.int64)
    values = rng.choice([-1.0, 1.0], n).astype(dtype)
    dense = layout in ("C", "F")
    parts = () if dense else (A.indptr, A.indices, A.data)
    if kernel == "countsketch":
        fn = {"csr": core.countsketch_csr, "csc": core.countsketch_csc}.get(layout)
        call = (lambda: core.countsketch_dense(A, rows, values, m)) if dense else (
            lambda: fn(*parts, rows, values, m, d))
    elif kernel == "seeded":
        fn = {"csr": core.countsketch_seeded_csr, "csc": core.countsketch_seeded_csc}.get(layout)
        call = (lambda: core.countsketch_seeded_dense(A, 7, m)) if dense else (lambda: fn(*parts, 7, m, n, d))
    else:
        if layout == "csc":
            pytest.skip("no gathered dots over CSC A")
        D = rng.standard_normal((m, d)).astype(dtype)
        call = (lambda: core.countsketch_gather_dot(A, rows, D)) if dense else (
            lambda: core.countsketch_gather_dot_csr(*parts, rows, D))
    _assert_identical(_at_threads(call))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["C", "F", "csr", "csc"])
def test_row_squared_norms_are_thread_count_invariant(core, layout, dtype):
    """HeavyRowSketch's pass: each row's sum in an order fixed by the row alone."""
    if layout in ("csr", "csc"):
        A = _csr(dtype) if layout == "csr" else _csr(dtype).tocsc()
        fn = getattr(core, f"row_squared_norms_{layout}")
        results = _at_threads(lambda: fn(A.indptr, A.indices, A.data, A.shape[0]))
    else:
        A = _dense(dtype, layout, n=20000, d=37)
        results = _at_threads(lambda: core.row_squared_norms_dense(A))
    _assert_identical(results)
