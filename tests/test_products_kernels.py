"""The one-pass product kernels and the matrix layer's products (fastlr._matrix.InMemory) against NumPy/SciPy."""

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import assert_close, layouts, messy_csr

import fastlr
from fastlr._matrix import InMemory
from fastlr._kernels import reference as ref

# (n, d, k): tiny, one row/column, wider than tall, k beyond one vector tile, and
# n not a multiple of the kernels' register tiles.
SHAPES = [(1, 1, 1), (1, 7, 3), (9, 1, 2), (50, 17, 5), (6, 40, 9), (203, 33, 17), (1500, 64, 20)]


def _dense_inputs(n, d, k, dtype, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d)).astype(dtype)
    V = rng.standard_normal((d, k)).astype(dtype)
    U = rng.standard_normal((n, k)).astype(dtype)
    return A, U, V


def _expected(A, U, V):
    """(A V, A^T U, A^T A V) in float64."""
    A, U, V = (np.asarray(x, dtype=np.float64) for x in (A, U, V))
    return A @ V, A.T @ U, A.T @ (A @ V)


def _check(got, expected, dtype, scale):
    assert got.dtype == dtype
    assert_close(got, expected, dtype, scale=scale)


def _check_dense_kernels(kernels, A, U, V, dtype):
    """matmul, rmatmul, gd_products, power_step and gram_product of ``kernels`` on dense A against float64 NumPy."""
    n, d = A.shape
    AV, ATU, ATAV = _expected(A, U, V)
    scale = np.sqrt(d) * 4  # |entries| of a length-d dot product of N(0, 1) rows
    _check(kernels.matmul(A, V), AV, dtype, scale)
    _check(kernels.rmatmul(A, U), ATU, dtype, np.sqrt(n) * 4)
    Y, Z = kernels.gd_products(A, U, V)
    _check(Y, AV, dtype, scale)
    _check(Z, ATU, dtype, np.sqrt(n) * 4)
    Y, Z = kernels.power_step(A, V)
    _check(Y, AV, dtype, scale)
    _check(Z, ATAV, dtype, np.abs(ATAV).max() + np.sqrt(n * d) * d)
    _check(kernels.gram_product(A, V), ATAV, dtype, np.abs(ATAV).max() + np.sqrt(n * d) * d)


@pytest.mark.parametrize("n,d,k", SHAPES)
@pytest.mark.parametrize("order", ["C", "F"])
def test_dense_kernels(backend, dtype, order, n, d, k):
    A, U, V = _dense_inputs(n, d, k, dtype, seed=n * 31 + d + k)
    _check_dense_kernels(fastlr.get_backend(backend), layouts(A)[order], U, V, dtype)


@pytest.mark.parametrize("level", [0, 1, 2], ids=["baseline", "avx2", "avx512"])
def test_dense_tiles_at_every_isa_level(dtype, level):
    """The register tiles of each ISA level (capped; levels above the CPU's run its best)."""
    core = pytest.importorskip("fastlr._core")
    previous = core._cap_isa(level)
    try:
        # Row counts around the tile heights (4 baseline, 6 AVX2, 8/12 AVX-512): exact
        # multiples, fewer rows than one tile, and every remainder; widths of half,
        # one, one and a half and several vectors of each dtype and ISA. The last
        # shape's V and Z pass kGroupBytes (products_simd.hpp): AVX2 and baseline
        # power steps run it in row groups of 48, here one group and 5 rows more. 5000 columns: F order
        # gathers a cache line's rows per column, more than the 256 KiB bound allows (dense_row_pass).
        tiles = [(37, 50, 10), (29, 31, 33), (64, 16, 60), (12, 9, 12), (17, 23, 7), (5, 40, 4), (47, 13, 2),
                 (6, 3, 20), (71, 11, 24), (25, 8, 6), (53, 1600, 64), (37, 5000, 5)]
        for order in ("C", "F"):
            for n, d, k in SHAPES + tiles:
                A, U, V = _dense_inputs(n, d, k, dtype, seed=n + 7 * d + k)
                _check_dense_kernels(core, layouts(A)[order], U, V, dtype)
    finally:
        core._cap_isa(previous)


def _random_pass(rng, n, d, k, dtype):
    """Random A (n x d), V (d x k) and W (n x k); NumPy's (A V, A^T W, A^T A V); and the scale of A^T A V's
    rounding (``_check``'s bound)."""
    A = rng.standard_normal((n, d)).astype(dtype)
    V = rng.standard_normal((d, k)).astype(dtype)
    W = rng.standard_normal((n, k)).astype(dtype)
    expected = _expected(A, W, V)
    return A, V, W, expected, np.abs(expected[2]).max() + np.sqrt(n * d) * d


@pytest.mark.parametrize("level", [1, 2], ids=["avx2", "avx512"])
def test_dense_forward_split_widths(dtype, level):
    """``A @ V`` at the AVX2 widths with tiles of their own (products_split.cpp: float64 9-12 and 17-20,
    float32 17-24 and 33-40 columns; groups of 12 rows in 4-row tiles, then 6-row ones for the last
    columns) and their neighbours: every row remainder, groups with and without the next group's
    prefetch, rows 4 KiB apart (no prefetch), and 2-3 threads (row blocks of whole groups)."""
    core = pytest.importorskip("fastlr._core")
    previous, threads = core._cap_isa(level), core.get_num_threads()
    try:
        rng = np.random.default_rng(11)
        aliased = 4096 // np.dtype(dtype).itemsize
        shapes = [(1, 9), (11, 30), (12, 30), (13, 5), (23, 30), (24, 41), (25, 41), (36, 7), (131, 64),
                  (50, aliased), (29, 2 * aliased)]
        widths = [8, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 32, 33, 36, 37, 40, 41]
        for n, d in shapes:
            for k in widths:
                A = rng.standard_normal((n, d)).astype(dtype)
                V = rng.standard_normal((d, k)).astype(dtype)
                for t in (1, 2, 3) if n >= 24 else (1,):
                    core.set_num_threads(t)
                    _check(core.matmul(A, V), A.astype(np.float64) @ V, dtype, np.sqrt(d) * 4)
    finally:
        core._cap_isa(previous)
        core.set_num_threads(threads)


@pytest.mark.parametrize("level", [1, 2], ids=["avx2", "avx512"])
def test_dense_backward_split_widths(dtype, level):
    """``A.T @ W``, ``A.T (A V)`` (gram_product, power_step) and gd_products at the AVX2 widths with tiles of their
    own (products_split.cpp: float64 9-12 and 17-20, float32 17-24 and 33-40 columns; groups of 12 rows,
    4-row tiles, then 6-row ones for the last columns) and their neighbours: every row remainder, rows
    4 KiB apart (no prefetch), a V and Z past kGroupBytes (power pass in row groups of 48), and 2-3
    threads (row blocks of whole groups; float32 sums of kSumRows32 rows on 1100 rows). float64 25-26, 33-34 and
    41-42 columns: a last half vector padded to a whole one at AVX2 (products_dense.hpp), A @ V too."""
    core = pytest.importorskip("fastlr._core")
    previous, threads = core._cap_isa(level), core.get_num_threads()
    try:
        rng = np.random.default_rng(12)
        aliased = 4096 // np.dtype(dtype).itemsize
        shapes = [(1, 9), (11, 30), (12, 30), (13, 5), (23, 30), (24, 41), (25, 41), (36, 7), (131, 64),
                  (50, aliased), (29, 2 * aliased), (61, 3000), (1100, 16)]
        widths = [8, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 28, 32, 33, 34, 36, 37, 40, 41, 42]
        for n, d in shapes:
            for k in widths:
                A, V, W, (AV, ATW, ATAV), big = _random_pass(rng, n, d, k, dtype)
                for t in (1, 2, 3) if n >= 24 else (1,):
                    core.set_num_threads(t)
                    Z1 = core.rmatmul(A, W)
                    _check(Z1, ATW, dtype, np.sqrt(n) * 4)
                    _check(core.matmul(A, V), AV, dtype, np.sqrt(d) * 4)
                    np.testing.assert_array_equal(core.rmatmul(A, W), Z1)  # the same bits at a thread count
                    _check(core.gram_product(A, V), ATAV, dtype, big)
                    Y, Z = core.gd_products(A, W, V)
                    _check(Y, AV, dtype, np.sqrt(d) * 4)
                    _check(Z, ATW, dtype, np.sqrt(n) * 4)
                    Y, Z = core.power_step(A, V)
                    _check(Y, AV, dtype, np.sqrt(d) * 4)
                    _check(Z, ATAV, dtype, big)
                    if t == 1:
                        Y1 = Y
                    np.testing.assert_array_equal(Y, Y1)  # A V row by row: the same bits at any thread count
    finally:
        core._cap_isa(previous)
        core.set_num_threads(threads)


def test_dense_depth_blocks(dtype):
    """Every pass over row-major A at x86-64-v3 with the d x k factor (V, or the accumulator Z) past L2 runs
    in depth blocks of A's columns and groups of 48 rows (products_split_depth.cpp's depth_rows; not at the
    split_width widths). Told an L2 of 4 KiB or 64 KiB (_set_cache_sizes: blocks of 8-16 columns, or about
    a hundred, with a shorter last one), each pass returns the bits it returns beside a 1 GiB L2 (dense_rows's
    sweeps: the same additions in the same order) and NumPy's values; row counts below a tile, between
    groups, and several groups; 1-3 threads."""
    core = pytest.importorskip("fastlr._core")
    from fastlr._matrix.choice import cache_sizes

    fastlr.get_backend("cpp")
    previous, threads = core._cap_isa(1), core.get_num_threads()
    rng = np.random.default_rng(13)
    try:
        shapes = [(5, 301), (47, 37), (53, 301), (101, 1000), (1100, 64)]
        widths = [9, 13, 14, 16, 17, 21, 22, 25, 26, 28, 29, 30, 31, 33, 41, 47, 60]
        for n, d in shapes:
            for k in widths:
                A, V, W, (AV, ATW, ATAV), big = _random_pass(rng, n, d, k, dtype)
                for t in (1, 2, 3) if n >= 24 else (1,):
                    core.set_num_threads(t)
                    runs = []
                    for l2 in (1 << 30, 1 << 16, 1 << 12):
                        core._set_cache_sizes(l2, 1 << 30)
                        runs.append((core.matmul(A, V), core.rmatmul(A, W), core.gram_product(A, V),
                                     *core.gd_products(A, W, V), *core.power_step(A, V)))
                    for run in runs[1:]:
                        for got, want in zip(run, runs[0]):
                            np.testing.assert_array_equal(got, want)
                    Y, Z, G, Yg, Zg, Yp, Zp = runs[-1]
                    for got, want, scale in ((Y, AV, np.sqrt(d) * 4), (Z, ATW, np.sqrt(n) * 4), (G, ATAV, big),
                                             (Yg, AV, np.sqrt(d) * 4), (Zg, ATW, np.sqrt(n) * 4),
                                             (Yp, AV, np.sqrt(d) * 4), (Zp, ATAV, big)):
                        _check(got, want, dtype, scale)
    finally:
        core._set_cache_sizes(*cache_sizes())
        core._cap_isa(previous)
        core.set_num_threads(threads)


def _check_csr_kernels(kernels, A, U, V, dtype):
    """The CSR kernels of ``kernels`` against float64 NumPy."""
    arrays = (A.indptr, A.indices, A.data)
    A64, U64, V64 = A.astype(np.float64), U.astype(np.float64), V.astype(np.float64)
    AV, ATU = A64 @ V64, A64.T @ U64
    ATAV = A64.T @ AV
    scale = 4 * np.sqrt(max(A.nnz, 1))
    _check(kernels.matmul_csr(*arrays, V), AV, dtype, scale)
    _check(kernels.rmatmul_csr(*arrays, U, A.shape[1]), ATU, dtype, scale)
    Y, Z = kernels.gd_products_csr(*arrays, U, V)
    _check(Y, AV, dtype, scale)
    _check(Z, ATU, dtype, scale)
    Y, Z = kernels.power_step_csr(*arrays, V)
    _check(Y, AV, dtype, scale)
    _check(Z, ATAV, dtype, np.abs(ATAV).max() + scale)
    _check(kernels.gram_product_csr(*arrays, V), ATAV, dtype, np.abs(ATAV).max() + scale)


# k: one vector, several, one register tile (32 float32 / 16 float64 columns) and more.
CSR_SHAPES = [(1, 1, 1), (60, 30, 7), (30, 60, 20), (500, 20, 3), (40, 25, 37), (33, 70, 64)]


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n,d,k", CSR_SHAPES)
def test_csr_kernels(backend, dtype, index_dtype, n, d, k):
    rng = np.random.default_rng(n + d + k)
    A = messy_csr(n, d, 0.2, rng, dtype=dtype, index_dtype=index_dtype)  # duplicates, empty rows
    _, U, V = _dense_inputs(n, d, k, dtype, seed=k)
    _check_csr_kernels(fastlr.get_backend(backend), A, U, V, dtype)


@pytest.mark.parametrize("level", [0, 1, 2], ids=["baseline", "avx2", "avx512"])
def test_csr_kernels_at_every_isa_level(dtype, level):
    core = pytest.importorskip("fastlr._core")
    previous = core._cap_isa(level)
    try:
        for n, d, k in CSR_SHAPES + [(200, 90, 50), (7, 3, 100)]:
            rng = np.random.default_rng(3 * n + d + k)
            A = messy_csr(n, d, 0.3, rng, dtype=dtype, index_dtype=np.int32)
            _, U, V = _dense_inputs(n, d, k, dtype, seed=k + 1)
            _check_csr_kernels(core, A, U, V, dtype)
    finally:
        core._cap_isa(previous)


def _csr_with_empty_columns(n, d, density, rng, dtype, index_dtype, empty=2):
    """messy_csr over the first d - empty columns: the last ``empty`` columns hold no nonzeros."""
    M = messy_csr(n, max(d - empty, 1), density, rng, dtype=dtype, index_dtype=index_dtype)
    return sp.csr_matrix((M.data, M.indices, M.indptr), shape=(n, d))


# Every width of the compile-time rows (csr_rows_fixed: float64 k <= 32, float32 k <= 64 at
# x86-64-v3/v4, 16 / 32 at baseline; whole vectors plus a tail of each length) and the first
# widths of the tiles after them.
def _narrow_widths(dtype):
    return range(1, 256 // np.dtype(dtype).itemsize + 3)


@pytest.mark.parametrize("level", [0, 1, 2], ids=["baseline", "avx2", "avx512"])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_csr_narrow_widths(dtype, index_dtype, level):
    """The compile-time CSR rows at every width: short rows (one accumulator chain), long rows (two/four),
    empty rows and columns, and d of 1-3 rows (V's last rows come from the padded copy)."""
    core = pytest.importorskip("fastlr._core")
    previous = core._cap_product_isa(level)
    try:
        rng = np.random.default_rng(11 + level)
        for k in _narrow_widths(dtype):
            for n, d, density in [(300, 40, 0.02), (60, 40, 0.5), (25, 3, 0.6), (30, 2, 0.5), (20, 1, 0.7)]:
                A = _csr_with_empty_columns(n, d, density, rng, dtype, index_dtype, empty=min(2, d - 1))
                _, U, V = _dense_inputs(n, d, k, dtype, seed=k + n)
                _check_csr_kernels(core, A, U, V, dtype)
            S = sp.csr_matrix((7, 5), dtype=dtype)  # no nonzeros at all
            arrays = (S.indptr.astype(index_dtype), S.indices.astype(index_dtype), S.data)
            _, U, V = _dense_inputs(7, 5, k, dtype, seed=k)
            np.testing.assert_array_equal(core.matmul_csr(*arrays, V), np.zeros((7, k)))
            np.testing.assert_array_equal(core.rmatmul_csr(*arrays, U, 5), np.zeros((5, k)))
            np.testing.assert_array_equal(core.gram_product_csr(*arrays, V), np.zeros((5, k)))
    finally:
        core._cap_product_isa(previous)


def test_csr_narrow_widths_two_threads(dtype):
    """Per-thread accumulators (two threads) and Z accumulated in place (one thread) agree with NumPy."""
    core = pytest.importorskip("fastlr._core")
    rng = np.random.default_rng(4)
    A = _csr_with_empty_columns(20000, 40, 0.25, rng, dtype, np.int32)
    previous = core.get_num_threads()
    try:
        for threads in (1, 2):
            core.set_num_threads(threads)
            for k in (1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 23, 31, 32, 33, 39, 63, 64, 65):
                _, U, V = _dense_inputs(20000, 40, k, dtype, seed=k)
                _check_csr_kernels(core, A, U, V, dtype)
    finally:
        core.set_num_threads(previous)


def test_csr_row_blocks_at_several_threads(dtype):
    """Several threads take CSR row blocks (balanced by nonzeros) in turn, each block with its own Z
    accumulator: every row counted once, and the same bits on every call at a given thread count."""
    core = pytest.importorskip("fastlr._core")
    rng = np.random.default_rng(6)
    A = _csr_with_empty_columns(30011, 50, 0.2, rng, dtype, np.int64)
    arrays = (A.indptr, A.indices, A.data)
    previous = core.get_num_threads()
    try:
        for threads in (2, 3, 4):
            core.set_num_threads(threads)
            _, U, V = _dense_inputs(30011, 50, 9, dtype, seed=threads)
            calls = lambda: [core.matmul_csr(*arrays, V), core.rmatmul_csr(*arrays, U, 50),  # noqa: E731
                             core.gram_product_csr(*arrays, V), *core.power_step_csr(*arrays, V),
                             *core.gd_products_csr(*arrays, U, V)]
            for a, b in zip(calls(), calls()):
                np.testing.assert_array_equal(a, b)
            _check_csr_kernels(core, A, U, V, dtype)
    finally:
        core.set_num_threads(previous)


def test_csr_kernels_without_columns_at_two_threads():
    """A CSR matrix with no columns, rows enough for two threads: the passes with a backward half have an empty
    Z for each row block (a block count that divided by Z's size raised SIGFPE here), and return empty products."""
    core = pytest.importorskip("fastlr._core")
    n, k = 4_000_000, 16
    arrays = (np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))
    previous = core.get_num_threads()
    try:
        core.set_num_threads(2)
        np.testing.assert_array_equal(core.matmul_csr(*arrays, np.ones((0, k))), np.zeros((n, k)))
        assert core.rmatmul_csr(*arrays, np.ones((n, k)), 0).shape == (0, k)
        assert core.gram_product_csr(*arrays, np.ones((0, k))).shape == (0, k)
        Y, Z = core.gd_products_csr(*arrays, np.ones((n, k)), np.ones((0, k)))
        np.testing.assert_array_equal(Y, np.zeros((n, k)))
        assert Z.shape == (0, k)
    finally:
        core.set_num_threads(previous)


def _check_accumulating_products(core, A, k, dtype, rng):
    """``_check_csr_kernels`` with random U and V, the reference from sparse float64 products (A is too
    wide to densify cheaply)."""
    U = rng.standard_normal((A.shape[0], k)).astype(dtype)
    V = rng.standard_normal((A.shape[1], k)).astype(dtype)
    _check_csr_kernels(core, A, U, V, dtype)


@pytest.mark.parametrize("level", [0, 1, 2], ids=["baseline", "avx2", "avx512"])
def test_csr_wide_accumulator_in_place(dtype, level):
    """d so large that the padded d x kp accumulator passes 8 MiB: one thread accumulates in Z
    itself, k columns a row (the compile-time rows' tails in power-of-two pieces, the tiles'
    last vector one by one)."""
    core = pytest.importorskip("fastlr._core")
    previous = core._cap_product_isa(level)
    try:
        rng = np.random.default_rng(21 + level)
        n = 40
        for k in (3, 5, 7, 12, 15, 17, 23, 35, 39, 63):
            # d k entries just past 8 MiB (kp >= k): a fixed d = 600000 held ~1 GB at k = 39, the suite's peak
            d = min(600_000, int(1.1 * (8 << 20) / (k * np.dtype(dtype).itemsize)) + 1)
            A = _csr_with_empty_columns(n, d, 2e-4 * 600_000 / d, rng, dtype, np.int32)  # ~4800 + duplicates
            _check_accumulating_products(core, A, k, dtype, rng)
    finally:
        core._cap_product_isa(previous)


@pytest.mark.parametrize("level", [0, 1, 2], ids=["baseline", "avx2", "avx512"])
def test_csr_one_piece_tail_in_place(dtype, level):
    """A padded d x kp accumulator of 2-8 MiB: one thread accumulates in Z itself when Z's row
    tail moves as one piece (e.g. float64 k = 5, 9, 17, 18, 33, 34; float32 k = 9, 10, 12, 17, 33, 65,
    68 at x86-64-v3/v4), in the padded buffer otherwise (k = 3, 7, 19, ...); random rows with
    empty ones."""
    core = pytest.importorskip("fastlr._core")
    previous = core._cap_product_isa(level)
    try:
        rng = np.random.default_rng(31 + level)
        n = 60
        for k in (3, 5, 7, 9, 10, 12, 17, 18, 19, 33, 34, 65, 68):
            d = int(3 * (1 << 20) / (k * np.dtype(dtype).itemsize))  # padded 3-6 MiB
            A = _csr_with_empty_columns(n, d, 3000 / (n * d), rng, dtype, np.int32)
            _check_accumulating_products(core, A, k, dtype, rng)
    finally:
        core._cap_product_isa(previous)


def _block_widths(dtype):
    """k around each block boundary past the compile-time rows: KF = 128 bytes of columns at
    baseline, 256 at x86-64-v3/v4; csr_rows_blocks walks KF-column blocks then a compile-time
    tail of 1..KF columns (k = m KF - 1, m KF, m KF + 1 for m = 1, 2, 3, and a mid-block tail)."""
    widths = set()
    for kf in (128 // np.dtype(dtype).itemsize, 256 // np.dtype(dtype).itemsize):
        for m in (1, 2, 3):
            widths.update({m * kf - 1, m * kf, m * kf + 1})
        widths.add(kf + kf // 2 + 3)
    return sorted(widths)


@pytest.mark.parametrize("level", [0, 1, 2], ids=["baseline", "avx2", "avx512"])
def test_csr_block_widths(dtype, level):
    """The CSR passes past the compile-time rows (KF-column blocks plus a compile-time tail) at
    every width around a block boundary: short and long rows, empty rows and columns, d of 3
    (V's last rows from the padded copy), int32 and int64 indices."""
    core = pytest.importorskip("fastlr._core")
    previous = core._cap_product_isa(level)
    try:
        rng = np.random.default_rng(41 + level)
        for k in _block_widths(dtype):
            for n, d, density, index_dtype in [(200, 50, 0.03, np.int32), (40, 30, 0.5, np.int64),
                                               (25, 3, 0.6, np.int32)]:
                A = _csr_with_empty_columns(n, d, density, rng, dtype, index_dtype, empty=min(2, d - 1))
                _, U, V = _dense_inputs(n, d, k, dtype, seed=k + n)
                _check_csr_kernels(core, A, U, V, dtype)
    finally:
        core._cap_product_isa(previous)


@pytest.mark.parametrize("level", [0, 1, 2], ids=["baseline", "avx2", "avx512"])
def test_csr_split_passes(dtype, level):
    """A^T (A V), and (A V, A^T U), with V of 3 L3 / 16 or L3 / 4 (baseline / x86-64-v3+; 3-4 MiB on a
    16 MiB L3, 6-8 on 32 MiB) to 24 MiB and 4 or more nonzeros a row run as a forward pass then a backward pass over each thread's rows (csr_split_passes;
    here V of 10 MiB): power_step, gram_product and gd_products against SciPy in float64, one and two
    threads, widths on and past the compile-time rows."""
    core = pytest.importorskip("fastlr._core")
    previous = core._cap_product_isa(level)
    threads = core.get_num_threads()
    try:
        rng = np.random.default_rng(51 + level)
        size = np.dtype(dtype).itemsize
        for k in ((16, 17, 33, 50) if size == 8 else (31, 33, 65, 100)):
            d = int(10 * (1 << 20) / (k * size))  # V of 10 MiB
            n, per_row = 300, 7
            rows = np.repeat(np.arange(n), per_row)
            cols = rng.integers(0, d, n * per_row)
            A = sp.csr_matrix((rng.standard_normal(n * per_row), (rows, cols)), shape=(n, d)).astype(dtype)
            V = rng.standard_normal((d, k)).astype(dtype)
            U = rng.standard_normal((n, k)).astype(dtype)
            A64 = A.astype(np.float64)
            AV = A64 @ V.astype(np.float64)
            ATAV = A64.T @ AV
            ATU = A64.T @ U.astype(np.float64)
            scale = np.abs(ATAV).max() + 4 * np.sqrt(A.nnz)
            arrays = (A.indptr, A.indices, A.data)
            for t in (1, 2):
                core.set_num_threads(t)
                Y, Z = core.power_step_csr(*arrays, V)
                _check(Y, AV, dtype, 4 * np.sqrt(A.nnz))
                _check(Z, ATAV, dtype, scale)
                _check(core.gram_product_csr(*arrays, V), ATAV, dtype, scale)
                Y, Z = core.gd_products_csr(*arrays, U, V)
                _check(Y, AV, dtype, 4 * np.sqrt(A.nnz))
                _check(Z, ATU, dtype, 4 * np.sqrt(A.nnz))
    finally:
        core.set_num_threads(threads)
        core._cap_product_isa(previous)


@pytest.mark.parametrize("level", [0, 1, 2], ids=["baseline", "avx2", "avx512"])
def test_csr_bounds_follow_the_cache_sizes(dtype, level):
    """The CSR kernels' size bounds scale with the L3 size fastlr passes in (_set_cache_sizes, from
    _caches.read_cache_sizes() when the backend loads): told an L3 of 4 V bytes, A^T (A V) and (A V, A^T U)
    over rows of 4+ nonzeros run split (V from L3 / 4, 3 L3 / 16 at baseline), told L3 = 8 V bytes fused,
    and the padded Z buffer gives way to Z itself from L3 / 4; every path against SciPy, one and two
    threads."""
    core = pytest.importorskip("fastlr._core")
    from fastlr._matrix.choice import cache_sizes

    fastlr.get_backend("cpp")
    assert core._set_cache_sizes(*cache_sizes()) == cache_sizes()  # the backend set this CPU's sizes
    previous, threads = core._cap_product_isa(level), core.get_num_threads()
    rng = np.random.default_rng(61 + level)
    try:
        for k, per_row in ((3, 6), (6, 4), (8, 6), (17, 4), (40, 6)):  # the kernel splits from 4 a row
            n, d = 400, 900
            rows = np.repeat(np.arange(n), per_row)
            cols = np.concatenate([rng.choice(d, per_row, replace=False) for _ in range(n)])
            A = sp.csr_matrix((rng.standard_normal(n * per_row), (rows, cols)), shape=(n, d)).astype(dtype)
            assert A.nnz == per_row * n
            vbytes = d * k * np.dtype(dtype).itemsize
            U = rng.standard_normal((n, k)).astype(dtype)
            V = rng.standard_normal((d, k)).astype(dtype)
            # fused (V under L3 / 4), split, fused with the padded Z buffer, split with Z itself
            for l3 in (8 * vbytes, 4 * vbytes, 64 * vbytes, 1):
                core._set_cache_sizes(1 << 16, l3)
                for t in (1, 2):
                    core.set_num_threads(t)
                    _check_csr_kernels(core, A, U, V, dtype)
    finally:
        core._set_cache_sizes(*cache_sizes())
        core.set_num_threads(threads)
        core._cap_product_isa(previous)
    with pytest.raises(ValueError, match="positive"):
        core._set_cache_sizes(0, 1 << 20)


def test_csr_bad_indices_with_narrow_widths():
    """The flat index check rejects a negative or too large column index at every narrow width."""
    core = pytest.importorskip("fastlr._core")
    indptr = np.array([0, 2, 3], dtype=np.int32)
    for bad in (-1, 4):
        for index_dtype in (np.int32, np.int64):
            indices = np.array([0, bad, 1], dtype=index_dtype)
            data = np.ones(3)
            for k in (1, 3, 4, 9):
                with pytest.raises(ValueError):
                    core.matmul_csr(indptr.astype(index_dtype), indices, data, np.ones((4, k)))
                with pytest.raises(ValueError):
                    core.rmatmul_csr(indptr.astype(index_dtype), indices, data, np.ones((2, k)), 4)


@pytest.mark.parametrize("n,d,k", [(0, 5, 3), (5, 0, 3), (5, 4, 0)])
def test_empty_dimensions(backend, n, d, k):
    A, U, V = _dense_inputs(n, d, k, np.float64, seed=0)
    kernels = fastlr.get_backend(backend)
    assert kernels.matmul(A, V).shape == (n, k)
    Y, Z = kernels.power_step(A, V)
    assert Y.shape == (n, k) and Z.shape == (d, k)
    np.testing.assert_array_equal(Z, np.zeros((d, k)))
    np.testing.assert_array_equal(kernels.gram_product(A, V), np.zeros((d, k)))
    S = sp.csr_matrix((n, d))
    Y, Z = kernels.gd_products_csr(S.indptr, S.indices.astype(np.int32), S.data, U, V)
    np.testing.assert_array_equal(Y, np.zeros((n, k)))
    np.testing.assert_array_equal(Z, np.zeros((d, k)))
    np.testing.assert_array_equal(kernels.gram_product_csr(S.indptr, S.indices.astype(np.int32), S.data, V),
                                  np.zeros((d, k)))


def test_reference_matches_scipy_with_duplicates():
    rng = np.random.default_rng(5)
    A = messy_csr(40, 12, 0.3, rng)
    V = rng.standard_normal((12, 4))
    W = rng.standard_normal((40, 4))
    arrays = (A.indptr, A.indices, A.data)
    np.testing.assert_allclose(ref.matmul_csr(*arrays, V), A @ V, atol=1e-12)
    np.testing.assert_allclose(ref.rmatmul_csr(*arrays, W, 12), A.T @ W, atol=1e-12)


@pytest.mark.parametrize("kind", ["C", "F", "view", "csr", "csc", "coo", "int"])
def test_in_memory_products(backend, dtype, kind):
    rng = np.random.default_rng(17)
    n, d, k = 120, 35, 6
    dense = rng.standard_normal((n, d)) * (rng.random((n, d)) < 0.4)
    if kind in ("csr", "csc", "coo"):
        A = sp.coo_array(dense.astype(dtype)).asformat(kind)
    elif kind == "int":
        A = np.rint(dense * 3).astype(np.int64)
        dense = A.astype(np.float64)
    else:
        A = layouts(dense.astype(dtype))[kind]
    out_dtype = np.dtype(np.float64) if kind == "int" else dtype
    V = rng.standard_normal((d, k))  # float64 and C order: the wrappers cast to A's dtype
    U = np.asfortranarray(rng.standard_normal((n, k)))
    AV, ATU, ATAV = _expected(dense, U, V)
    scale = 4 * np.sqrt(d) * 3
    _check(InMemory(A, backend=backend).matmul(V), AV, out_dtype, scale)
    _check(InMemory(A, backend=backend).rmatmul(U), ATU, out_dtype, 4 * np.sqrt(n) * 3)
    Y, Z = InMemory(A, backend=backend).gd_products(U, V)
    _check(Y, AV, out_dtype, scale)
    _check(Z, ATU, out_dtype, 4 * np.sqrt(n) * 3)
    Y, Z = InMemory(A, backend=backend).power_step(V)
    _check(Y, AV, out_dtype, scale)
    _check(Z, ATAV, out_dtype, np.abs(ATAV).max())
    _check(InMemory(A, backend=backend).gram_product(V), ATAV, out_dtype, np.abs(ATAV).max())


def test_products_do_not_modify_inputs(backend):
    rng = np.random.default_rng(2)
    A = rng.standard_normal((30, 8)).astype(np.float32)
    Q = rng.standard_normal((8, 3))
    A0, Q0 = A.copy(), Q.copy()
    InMemory(A, backend=backend).power_step(Q)
    InMemory(sp.csc_array(A), backend=backend).gd_products(rng.standard_normal((30, 3)), Q)
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(Q, Q0)


@pytest.mark.parametrize("kind", ["C", "F", "csr"])
def test_thread_counts_agree_and_repeat(fast_backend, kind):
    rng = np.random.default_rng(11)
    n, d, k = 4000, 60, 12
    dense = rng.standard_normal((n, d))
    A = {"C": dense, "F": np.asfortranarray(dense)}.get(kind)
    if A is None:
        A = sp.random(n, d, density=0.3, format="csr", random_state=rng)
    Q = rng.standard_normal((d, k))
    U = rng.standard_normal((n, k))
    results = {}
    for threads in (1, 2):
        with fastlr.thread_limit(threads):
            first = InMemory(A, backend=fast_backend).power_step(Q) + InMemory(A, backend=fast_backend).gd_products(U, Q)
            again = InMemory(A, backend=fast_backend).power_step(Q) + InMemory(A, backend=fast_backend).gd_products(U, Q)
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)  # deterministic for a given thread count
        results[threads] = first
    expected = InMemory(A, backend="numpy").power_step(Q) + InMemory(A, backend="numpy").gd_products(U, Q)
    for one, two, ref_value in zip(results[1], results[2], expected):
        scale = np.abs(ref_value).max()
        np.testing.assert_allclose(one, two, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(one, ref_value, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("order", ["C", "F"])
def test_dense_row_blocks_at_several_threads(order):
    """Several threads take the dense rows in blocks, each block with its own accumulator: every
    row counted once, and the same bits on every call at a given thread count."""
    core = pytest.importorskip("fastlr._core")
    rng = np.random.default_rng(5)
    n, d, k = 1003, 70, 9  # n a multiple of no tile height or block count; k padded
    A = layouts(rng.standard_normal((n, d)))[order]
    V, U = rng.standard_normal((d, k)), rng.standard_normal((n, k))
    previous = core.get_num_threads()
    try:
        for threads in (2, 3, 4):
            core.set_num_threads(threads)
            first = [core.matmul(A, V), core.rmatmul(A, U), *core.power_step(A, V), *core.gd_products(A, U, V)]
            again = [core.matmul(A, V), core.rmatmul(A, U), *core.power_step(A, V), *core.gd_products(A, U, V)]
            for a, b in zip(first, again):
                np.testing.assert_array_equal(a, b)
            _check_dense_kernels(core, A, U, V, np.float64)
    finally:
        core.set_num_threads(previous)


def test_bad_factor_shapes_and_dtypes(backend):
    kernels = fastlr.get_backend(backend)
    A = np.ones((5, 4))
    with pytest.raises(ValueError, match="V: expected 4 rows"):
        kernels.matmul(A, np.ones((3, 2)))
    with pytest.raises(ValueError, match="W: expected 5 rows"):
        kernels.rmatmul(A, np.ones((4, 2)))
    with pytest.raises(ValueError, match="U: expected 2 columns"):
        kernels.gd_products(A, np.ones((5, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="Q: expected dtype"):
        kernels.power_step(A, np.ones((4, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="V: array must be C-contiguous"):
        kernels.matmul(A, np.asfortranarray(np.ones((4, 2))))
    with pytest.raises(TypeError, match="A"):
        kernels.matmul(np.ones((5, 4), dtype=np.int64), np.ones((4, 2)))
    with pytest.raises(ValueError, match="V: expected a 2-D array"):
        InMemory(A, backend=backend).matmul(np.ones(4))
    with pytest.raises(TypeError, match="V: expected a real numeric"):
        InMemory(A, backend=backend).matmul(np.ones((4, 2), dtype=complex))
    with pytest.raises(ValueError, match="V: expected 4 rows"):
        InMemory(sp.csc_array(A), backend=backend).matmul(np.ones((3, 2)))


def test_bad_sparse_structure_raises(backend):
    kernels = fastlr.get_backend(backend)
    data = np.ones(3)
    good_ptr = np.array([0, 1, 2, 3], dtype=np.int64)
    bad_cols = np.array([0, 5, 1], dtype=np.int64)
    V = np.ones((4, 2))
    W = np.ones((3, 2))
    with pytest.raises(ValueError, match="index"):
        kernels.matmul_csr(good_ptr, bad_cols, data, V)
    with pytest.raises(ValueError, match="index"):
        kernels.rmatmul_csr(good_ptr, bad_cols, data, W, 4)
    with pytest.raises(ValueError, match="index"):
        kernels.power_step_csr(good_ptr, np.array([0, -1, 1], dtype=np.int64), data, V)
    with pytest.raises(ValueError, match="indptr"):
        kernels.gd_products_csr(np.array([0, 2, 1, 3], dtype=np.int64), np.zeros(3, np.int64), data, W, V)
    with pytest.raises(ValueError, match="indptr"):
        kernels.matmul_csr(np.array([0, 1, 2, 9], dtype=np.int64), np.zeros(3, np.int64), data, V)
    with pytest.raises(ValueError, match="d: must be >= 0"):
        kernels.rmatmul_csr(good_ptr, np.zeros(3, np.int64), data, W, -1)
