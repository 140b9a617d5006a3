"""Every CountSketch kernel against the NumPy reference, over backend x dtype x layout."""

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import require_backend
from helpers import assert_close, layouts, messy_csr
from hypothesis import given, settings
from hypothesis import strategies as st

import fastlr
from fastlr._kernels import reference as ref

SHAPES = [(1, 1, 1), (1, 5, 3), (7, 1, 2), (50, 17, 5), (5, 8, 20), (300, 40, 1), (2000, 64, 16)]


def _sketch_arrays(n, m, dtype, seed=0):
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, m, n).astype(np.int64)
    values = rng.standard_normal(n).astype(dtype)
    return rows, values


def test_reference_matches_explicit_matrix():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((40, 7))
    rows, values = _sketch_arrays(40, 6, np.float64)
    S = np.zeros((6, 40))
    S[rows, np.arange(40)] = values
    np.testing.assert_allclose(ref.countsketch_dense(A, rows, values, 6), S @ A, atol=1e-13)
    Acsr = sp.csr_matrix(A * (rng.random(A.shape) < 0.3))
    got = ref.countsketch_csr(Acsr.indptr, Acsr.indices, Acsr.data, rows, values, 6, 7)
    np.testing.assert_allclose(got, S @ Acsr.toarray(), atol=1e-13)
    D = rng.standard_normal((6, 7))
    np.testing.assert_allclose(ref.countsketch_gather_dot(A, rows, D), np.sum(A * D[rows], axis=1))


@pytest.mark.parametrize("n,d,m", SHAPES)
def test_dense(backend, dtype, layout, n, d, m):
    rng = np.random.default_rng(n * 1000 + d)
    A = layouts(rng.standard_normal((n, d)).astype(dtype))[layout]
    if layout == "view":
        A = np.ascontiguousarray(A)  # kernels take C or F order; the Python layer copies views
    rows, values = _sketch_arrays(n, m, dtype)
    kernels = fastlr.get_backend(backend)
    got = kernels.countsketch_dense(A, rows, values, m)
    expected = ref.countsketch_dense(A.astype(np.float64), rows, values.astype(np.float64), m)
    assert got.dtype == dtype and got.shape == (m, d)
    assert_close(got, expected, dtype, scale=np.abs(A).max() * np.sqrt(n))


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n,d,m", [(1, 1, 1), (60, 30, 7), (30, 60, 50), (500, 20, 4)])
def test_sparse(backend, dtype, fmt, index_dtype, n, d, m):
    rng = np.random.default_rng(n + d + m)
    A = messy_csr(n, d, 0.2, rng, dtype=dtype, index_dtype=index_dtype)
    if fmt == "csc":
        A = A.tocsc()
        A.indices = A.indices.astype(index_dtype)
        A.indptr = A.indptr.astype(index_dtype)
    rows, values = _sketch_arrays(n, m, dtype)
    kernels = fastlr.get_backend(backend)
    fn = kernels.countsketch_csr if fmt == "csr" else kernels.countsketch_csc
    got = fn(A.indptr, A.indices, A.data, rows, values, m, d)
    expected = ref.countsketch_dense(A.toarray().astype(np.float64), rows, values.astype(np.float64), m)
    assert got.dtype == dtype and got.shape == (m, d)
    assert_close(got, expected, dtype, scale=max(np.abs(A.data).max(initial=1.0), 1.0) * np.sqrt(n))


def test_messy_csr_has_duplicates_and_empty_rows():
    A = messy_csr(200, 30, 0.05, np.random.default_rng(0))
    assert (np.diff(A.indptr) == 0).any()
    B = A.copy()
    B.sum_duplicates()
    assert B.nnz < A.nnz


@pytest.mark.parametrize("n,d,m", SHAPES)
def test_gather_dot_dense(backend, dtype, layout, n, d, m):
    rng = np.random.default_rng(7 + n)
    A = layouts(rng.standard_normal((n, d)).astype(dtype))[layout]
    if layout == "view":
        A = np.ascontiguousarray(A)
    rows, _ = _sketch_arrays(n, m, dtype)
    D = rng.standard_normal((m, d)).astype(dtype)
    got = fastlr.get_backend(backend).countsketch_gather_dot(A, rows, D)
    expected = np.sum(A.astype(np.float64) * D.astype(np.float64)[rows], axis=1)
    assert got.dtype == dtype and got.shape == (n,)
    assert_close(got, expected, dtype, scale=np.sqrt(d) * 4)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_gather_dot_csr(backend, dtype, index_dtype):
    rng = np.random.default_rng(3)
    A = messy_csr(120, 25, 0.15, rng, dtype=dtype, index_dtype=index_dtype)
    rows, _ = _sketch_arrays(120, 9, dtype)
    D = rng.standard_normal((9, 25)).astype(dtype)
    got = fastlr.get_backend(backend).countsketch_gather_dot_csr(A.indptr, A.indices, A.data, rows, D)
    expected = np.sum(A.toarray().astype(np.float64) * D.astype(np.float64)[rows], axis=1)
    assert got.dtype == dtype
    assert_close(got, expected, dtype, scale=np.sqrt(25) * 4)


def test_bad_rows_raise(backend):
    kernels = fastlr.get_backend(backend)
    A = np.ones((4, 3))
    values = np.ones(4)
    for bad in ([0, 1, 2, 3], [0, -1, 0, 0]):
        with pytest.raises(ValueError, match="rows"):
            kernels.countsketch_dense(A, np.array(bad, dtype=np.int64), values, 3)
        with pytest.raises(ValueError, match="rows"):
            kernels.countsketch_dense(np.asfortranarray(A), np.array(bad, dtype=np.int64), values, 3)
        with pytest.raises(ValueError, match="rows"):
            kernels.countsketch_gather_dot(A, np.array(bad, dtype=np.int64), np.ones((3, 3)))


def test_bad_sparse_structure_raises(backend):
    kernels = fastlr.get_backend(backend)
    rows = np.zeros(3, dtype=np.int64)
    values = np.ones(3)
    data = np.ones(3)
    good_ptr = np.array([0, 1, 2, 3], dtype=np.int64)
    with pytest.raises(ValueError, match="index"):
        kernels.countsketch_csr(good_ptr, np.array([0, 5, 1], dtype=np.int64), data, rows, values, 2, 4)
    with pytest.raises(ValueError, match="index"):
        kernels.countsketch_csc(
            np.array([0, 1, 2, 3, 3], dtype=np.int64), np.array([0, 7, 1], dtype=np.int64), data, rows, values, 2, 4
        )
    with pytest.raises(ValueError, match="indptr"):
        kernels.countsketch_csr(np.array([0, 2, 1, 3], dtype=np.int64), np.zeros(3, np.int64), data, rows, values, 2, 4)
    with pytest.raises(ValueError, match="indptr"):
        kernels.countsketch_csr(np.array([0, 1, 2, 9], dtype=np.int64), np.zeros(3, np.int64), data, rows, values, 2, 4)
    with pytest.raises(ValueError, match="index"):
        kernels.countsketch_gather_dot_csr(good_ptr, np.array([0, 4, 1], dtype=np.int64), data, rows, np.ones((1, 4)))


@pytest.mark.parametrize("kind", ["C", "F", "csr", "csc"])
@pytest.mark.parametrize("n,d,m", [(6000, 50, 13), (3000, 200, 2), (20000, 40, 1), (4000, 33, 60)])
def test_thread_counts_give_bit_identical_sketches(fast_backend, kind, dtype, n, d, m):
    """S @ A is the same to the last bit at every thread count (README's promise): each
    output entry is summed in increasing row order by one thread."""
    rng = np.random.default_rng(11)
    dense = rng.standard_normal((n, d)).astype(dtype)
    A = {"C": dense, "F": np.asfortranarray(dense)}.get(kind)
    if A is None:
        A = sp.random(n, d, density=0.3, format=kind, random_state=rng, dtype=dtype)
    S = fastlr.CountSketch(m, n, seed=5)
    results = {}
    for threads in (1, 2, 3, 4):
        with fastlr.thread_limit(threads):
            results[threads] = S.apply(A, backend=fast_backend)
    for threads in (2, 3, 4):
        np.testing.assert_array_equal(results[threads], results[1])
    assert_close(results[1], S.apply(A, backend="numpy"), dtype)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 40),
    d=st.integers(0, 12),
    m=st.integers(1, 50),
    order=st.sampled_from("CF"),
    single=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_dense_shapes_property(n, d, m, order, single, seed):
    dtype = np.float32 if single else np.float64
    A = np.random.default_rng(seed % 1000).standard_normal((n, d)).astype(dtype, order=order)
    S = fastlr.CountSketch(m, n, seed=seed)
    expected = S.to_dense() @ A.astype(np.float64)
    for name in fastlr.available_backends():
        got = S.apply(A, backend=name)
        assert got.dtype == dtype and got.shape == (m, d)
        assert_close(got, expected, dtype, scale=max(np.abs(A).max(initial=0), 1.0) * n)


def test_unpickled_arrays_are_accepted(backend):
    """Arrays that crossed a pickle (dask workers, joblib) carry equal but distinct dtype objects."""
    import pickle

    rng = np.random.default_rng(0)
    A = pickle.loads(pickle.dumps(rng.standard_normal((30, 4))))
    rows = pickle.loads(pickle.dumps(rng.integers(0, 3, 30).astype(np.int64)))
    values = pickle.loads(pickle.dumps(np.ones(30)))
    Acsr = pickle.loads(pickle.dumps(sp.csr_matrix(A)))
    kernels = fastlr.get_backend(backend)
    expected = ref.countsketch_dense(A, rows, values, 3)
    np.testing.assert_allclose(kernels.countsketch_dense(A, rows, values, 3), expected, atol=1e-12)
    got = kernels.countsketch_csr(Acsr.indptr, Acsr.indices, Acsr.data, rows, values, 3, 4)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_wrong_dtypes_are_rejected_by_name():
    kernels = fastlr.get_backend("cpp")
    A = np.ones((4, 3))
    rows = np.zeros(4, dtype=np.int64)
    with pytest.raises(TypeError, match="A: dtype must be float32 or float64, got int64"):
        kernels.countsketch_dense(A.astype(np.int64), rows, np.ones(4), 2)
    with pytest.raises(ValueError, match="rows: expected dtype int64, got int32"):
        kernels.countsketch_dense(A, rows.astype(np.int32), np.ones(4), 2)
    with pytest.raises(ValueError, match="values: expected dtype float64, got float32"):
        kernels.countsketch_dense(A, rows, np.ones(4, dtype=np.float32), 2)
    with pytest.raises(TypeError, match="A: dtype must be float32 or float64, got >f8"):
        kernels.countsketch_dense(A.astype(">f8"), rows, np.ones(4), 2)
    # the public operator converts byte order (and every other real dtype) explicitly
    S = fastlr.CountSketch(2, 4)
    np.testing.assert_allclose(S @ A.astype(">f8"), S @ A)


@pytest.mark.parametrize("seed,m,start,stop", [(3, 17, 0, 1000), (2**64 - 1, 2**32, 5, 20005), (0, 1, 0, 10),
                                               (123, 50, 10**12, 10**12 + 1000), (7, 4, 0, 0), (9, 6, 0, 300000)])
def test_hash_kernels_equal_the_reference(fast_backend, seed, m, start, stop):
    """countsketch_hash in C++ and Numba gives the reference's rows and signs exactly, at any thread count."""
    expected = ref.countsketch_hash(seed, m, start, stop)
    kernels = fastlr.get_backend(fast_backend)
    for threads in (1, 2):
        with fastlr.thread_limit(threads):
            rows, signs = kernels.countsketch_hash(seed, m, start, stop)
        assert rows.dtype == np.int64 and signs.dtype == np.float64
        np.testing.assert_array_equal(rows, expected[0])
        np.testing.assert_array_equal(signs, expected[1])
    if stop > start:
        assert expected[0].min() >= 0 and expected[0].max() < m and set(np.unique(expected[1])) <= {-1.0, 1.0}


def test_hash_kernels_reject_bad_m(backend):
    kernels = fastlr.get_backend(backend)
    for m in (0, 2**32 + 1):
        with pytest.raises(ValueError, match="m"):
            kernels.countsketch_hash(0, m, 0, 10)


# Seeded kernels: S @ A with each column's (row, sign) hashed on the fly from (seed, column).

SEEDED_SHAPES = [(1, 1, 1), (7, 3, 2), (257, 5, 3), (1000, 9, 50), (5000, 40, 7), (20001, 3, 11), (70001, 2, 4)]


def _seeded_input(kind, n, d, dtype, rng, index_dtype=np.int32):
    if kind in ("C", "F"):
        return np.asarray(rng.standard_normal((n, d)).astype(dtype), order=kind)
    A = messy_csr(n, d, min(0.3, 3.0 / max(d, 1)), rng, dtype=dtype, index_dtype=index_dtype)  # empty rows
    if kind == "csc":
        A = A.tocsc()
        A.indices, A.indptr = A.indices.astype(index_dtype), A.indptr.astype(index_dtype)
    return A


def _seeded_apply(kernels, kind, A, seed, m, start):
    n, d = A.shape
    if kind in ("C", "F"):
        return kernels.countsketch_seeded_dense(A, seed, m, start)
    fn = kernels.countsketch_seeded_csr if kind == "csr" else kernels.countsketch_seeded_csc
    return fn(A.indptr, A.indices, A.data, seed, m, n, d, start)


def _materialized_apply(kernels, kind, A, rows, values, m):
    if kind in ("C", "F"):
        return kernels.countsketch_dense(A, rows, values, m)
    fn = kernels.countsketch_csr if kind == "csr" else kernels.countsketch_csc
    return fn(A.indptr, A.indices, A.data, rows, values, m, A.shape[1])


@pytest.mark.parametrize("kind", ["C", "F", "csr", "csc"])
@pytest.mark.parametrize("n,d,m", SEEDED_SHAPES)
@pytest.mark.parametrize("seed,start", [(0, 0), (2**64 - 1, 12345)])
def test_seeded_equals_hash_then_apply(backend, dtype, kind, n, d, m, seed, start):
    """The seeded kernels give exactly the materialized sketch's S @ A (same backend), and the reference's."""
    rng = np.random.default_rng(n + d)
    A = _seeded_input(kind, n, d, dtype, rng)
    kernels = fastlr.get_backend(backend)
    got = _seeded_apply(kernels, kind, A, seed, m, start)
    rows, signs = ref.countsketch_hash(seed, m, start, start + n)
    assert got.dtype == dtype and got.shape == (m, d)
    np.testing.assert_array_equal(got, _materialized_apply(kernels, kind, A, rows, signs.astype(dtype), m))
    dense = A if kind in ("C", "F") else A.toarray()
    expected = ref.countsketch_dense(np.ascontiguousarray(dense, dtype=np.float64), rows, signs, m)
    assert_close(got, expected, dtype, scale=max(np.abs(dense).max(initial=1.0), 1.0) * np.sqrt(n))


def test_seeded_int64_indices_and_empty_matrices(backend):
    kernels = fastlr.get_backend(backend)
    rng = np.random.default_rng(4)
    A = _seeded_input("csr", 3000, 20, np.float64, rng, index_dtype=np.int64)
    rows, signs = ref.countsketch_hash(9, 6, 0, 3000)
    np.testing.assert_array_equal(_seeded_apply(kernels, "csr", A, 9, 6, 0),
                                  kernels.countsketch_csr(A.indptr, A.indices, A.data, rows, signs, 6, 20))
    empty = sp.csr_matrix((500, 4))  # no nonzeros at all
    assert not _seeded_apply(kernels, "csr", empty, 1, 3, 0).any()
    assert not _seeded_apply(kernels, "csc", empty.tocsc(), 1, 3, 0).any()
    assert kernels.countsketch_seeded_dense(np.ones((0, 5)), 1, 3).shape == (3, 5)
    assert kernels.countsketch_seeded_dense(np.ones((5, 0)), 1, 3).shape == (3, 0)


@pytest.mark.parametrize("kind", ["C", "F", "csr", "csc"])
@pytest.mark.parametrize("n,d,m", [(6000, 50, 13), (20000, 40, 1), (100003, 12, 60)])
def test_seeded_thread_counts_give_bit_identical_sketches(fast_backend, kind, dtype, n, d, m):
    rng = np.random.default_rng(12)
    A = _seeded_input(kind, n, d, dtype, rng)
    kernels = fastlr.get_backend(fast_backend)
    results = {}
    for threads in (1, 2):
        with fastlr.thread_limit(threads):
            results[threads] = _seeded_apply(kernels, kind, A, 5, m, 0)
    np.testing.assert_array_equal(results[2], results[1])
    rows, signs = ref.countsketch_hash(5, m, 0, n)
    np.testing.assert_array_equal(results[1], _materialized_apply(kernels, kind, A, rows, signs.astype(dtype), m))


def test_seeded_bad_arguments_raise(backend):
    kernels = fastlr.get_backend(backend)
    A = np.ones((4, 3))
    for m in (0, 2**32 + 1):
        with pytest.raises(ValueError, match="m"):
            kernels.countsketch_seeded_dense(A, 0, m)
    with pytest.raises(ValueError, match="start"):
        kernels.countsketch_seeded_dense(A, 0, 2, -1)
    data = np.ones(3)
    with pytest.raises(ValueError, match="index"):
        kernels.countsketch_seeded_csr(np.array([0, 1, 2, 3]), np.array([0, 5, 1]), data, 0, 2, 3, 4)
    with pytest.raises(ValueError, match="index"):
        kernels.countsketch_seeded_csc(np.array([0, 1, 2, 3, 3]), np.array([0, 7, 1]), data, 0, 2, 3, 4)
    with pytest.raises(ValueError, match="indptr"):
        kernels.countsketch_seeded_csr(np.array([0, 2, 1, 3]), np.zeros(3, np.int64), data, 0, 2, 3, 4)
    with pytest.raises(ValueError, match="indptr"):
        kernels.countsketch_seeded_csr(np.array([0, 1, 2, 9]), np.zeros(3, np.int64), data, 0, 2, 3, 4)


def test_python_error_codes_mirror_the_compiled_ones():
    """fastlr/_kernels/_errors.py copies KernelError (csrc/include/fastlr/common.hpp): same codes, same messages."""
    import re
    from pathlib import Path

    from fastlr._kernels import _errors

    header = Path(fastlr.__file__).parent.parent / "csrc" / "include" / "fastlr" / "common.hpp"
    if not header.exists():
        pytest.skip("no source tree")
    text = header.read_text(encoding="utf-8")
    codes = dict(re.findall(r"\bk(Bad\w+) = (\d+)", re.search(r"enum KernelError[^}]*}", text).group(0)))
    messages = dict(re.findall(r"case k(Bad\w+):\s*throw std::invalid_argument\(\"([^\"]+)\"\)", text))
    python = {"BadRow": _errors.BAD_ROW, "BadIndex": _errors.BAD_INDEX, "BadIndptr": _errors.BAD_INDPTR}
    assert {name: int(code) for name, code in codes.items()} == python
    assert {python[name]: message for name, message in messages.items()} == _errors._MESSAGES


@pytest.mark.parametrize("d", [8, 16, 13, 40, 75])  # 75: wide rows (the prefetching scatter) in float32 too
def test_dense_cpp_equals_numba_at_every_alignment_of_a(dtype, d):
    """The C++ row-major kernel aligns its accumulator stores to cache lines (lined up with A when A's
    rows are whole cache lines apart) and sums its row chunks in one reused accumulator at one thread:
    wherever A starts within a cache line, at 1 or 2 threads, S @ A equals Numba's (the same chunks,
    summed in the same order) to the last bit."""
    cpp, numba = fastlr.get_backend(require_backend("cpp")), fastlr.get_backend(require_backend("numba"))
    n, m = 5000, 7  # 4 row chunks
    itemsize = np.dtype(dtype).itemsize
    buf = np.random.default_rng(d).standard_normal(n * d + 64).astype(dtype)
    for k in range(64 // itemsize):
        A = buf[k : k + n * d].reshape(n, d)
        want = numba.countsketch_seeded_dense(A, 5, m)
        rows, signs = ref.countsketch_hash(5, m, 0, n)
        for threads in (1, 2):
            with fastlr.thread_limit(threads):
                np.testing.assert_array_equal(cpp.countsketch_seeded_dense(A, 5, m), want)
                np.testing.assert_array_equal(cpp.countsketch_dense(A, rows, signs.astype(dtype), m), want)


# Every ISA variant of the compiled kernels (x86-64-v4, x86-64-v3, baseline), chosen by _core._cap_isa.
# The baseline has no fused multiply-add, so there each kernel that sums in a fixed order equals the
# NumPy reference computed in A's dtype (np.add.at: the same products, added in the same order) to the
# last bit, with values that are not +-1: run the v3/v4 code instead (a cap that does not reach the
# kernel) and the fused v * a + o rounds differently.


def _isa_sparse(fmt, n, d, dtype, index_dtype, rng):
    A = messy_csr(n, d, 0.2, rng, dtype=dtype, index_dtype=index_dtype)  # duplicates, empty rows
    if fmt == "csc":
        A = A.tocsc()
        A.indices, A.indptr = A.indices.astype(index_dtype), A.indptr.astype(index_dtype)
    return A


# n < 2048: one row chunk (sum_chunks), so the kernel's order of additions is np.add.at's.
# (700, 75, 9): rows over 256 bytes in float32 too (300 and 600 bytes, not whole lines): the prefetching scatter
# (countsketch_rows' wide rows) with a scalar head and tail in both dtypes.
# (1100, 800, 7) and (1100, 520, 1030): rows of 2-12 KB (3200 and 6400 bytes; 2080 and 4160) with over 8 KiB of
# accumulator: column strips (countsketch_strips, dense_strip_bytes) where the bucket pass took them before.
# (1100, 3100, 7) and (1100, 3100, 1030): rows over 12 KiB (12400 and 24800 bytes), two blocks of
# countsketch_rows_by_bucket (dense_bucket_row_bytes): bucket by bucket, eight then four rows of a bucket at once
# and the rest four at a time (m = 7), and in row order four at a time (m = 1030, over kBucketMaxRows; at the
# baseline, whose bucket pass needs 8 m <= 1024, the one-row scatter).
ISA_SHAPES = [(1, 1, 1), (50, 17, 5), (300, 40, 3), (1500, 64, 20), (2000, 33, 7), (700, 75, 9), (1100, 800, 7),
              (1100, 520, 1030), (1100, 3100, 7), (1100, 3100, 1030)]


def test_countsketch_kernels_at_every_isa_level(isa_level, dtype):
    core = fastlr.get_backend("cpp")
    exact = isa_level == 0

    def check(got, in_dtype, in_float64, scale):
        assert core._last_kernel_isa() == isa_level  # the variant that ran follows the cap
        assert got.dtype == dtype
        if exact:
            np.testing.assert_array_equal(got, in_dtype)
        assert_close(got, in_float64, dtype, scale=scale)

    with fastlr.thread_limit(1):
        for n, d, m in ISA_SHAPES:
            rng = np.random.default_rng(n + 3 * d + m)
            rows, values = _sketch_arrays(n, m, dtype, seed=n)
            A = rng.standard_normal((n, d)).astype(dtype)
            scale = np.abs(A).max() * np.sqrt(n) * 4
            for order in ("C", "F"):
                check(core.countsketch_dense(layouts(A)[order], rows, values, m),
                      ref.countsketch_dense(A, rows, values, m),
                      ref.countsketch_dense(A.astype(np.float64), rows, values.astype(np.float64), m), scale)
            D = rng.standard_normal((m, d)).astype(dtype)
            g64 = np.sum(A.astype(np.float64) * D.astype(np.float64)[rows], axis=1)
            for order in ("C", "F"):  # a vectorized dot: its order of additions is the ISA's own
                got = core.countsketch_gather_dot(layouts(A)[order], rows, D)
                assert core._last_kernel_isa() == isa_level
                assert_close(got, g64, dtype, scale=np.sqrt(d) * 4)
            for fmt in ("csr", "csc"):
                for index_dtype in (np.int32, np.int64):
                    S = _isa_sparse(fmt, n, d, dtype, index_dtype, rng)
                    fn, reference = ((core.countsketch_csr, ref.countsketch_csr) if fmt == "csr" else
                                     (core.countsketch_csc, ref.countsketch_csc))
                    arrays = (S.indptr, S.indices, S.data)
                    check(fn(*arrays, rows, values, m, d), reference(*arrays, rows, values, m, d),
                          ref.countsketch_dense(S.toarray().astype(np.float64), rows, values.astype(np.float64), m),
                          max(np.abs(S.data).max(initial=1.0), 1.0) * np.sqrt(n) * 4)
            Scsr = _isa_sparse("csr", n, d, dtype, np.int32, rng)
            arrays = (Scsr.indptr, Scsr.indices, Scsr.data)
            check(core.countsketch_gather_dot_csr(*arrays, rows, D), ref.countsketch_gather_dot_csr(*arrays, rows, D),
                  np.sum(Scsr.toarray().astype(np.float64) * D.astype(np.float64)[rows], axis=1), np.sqrt(d) * 4)
            # the seeded kernels equal the materialized hash sketch, bit for bit, in every variant
            hrows, signs = core.countsketch_hash(11, m, 3, 3 + n)
            assert core._last_kernel_isa() == isa_level
            expected = ref.countsketch_hash(11, m, 3, 3 + n)
            np.testing.assert_array_equal(hrows, expected[0])
            np.testing.assert_array_equal(signs, expected[1])
            for kind, M in (("C", A), ("F", np.asfortranarray(A)), ("csr", Scsr), ("csc", Scsr.tocsc())):
                got = _seeded_apply(core, kind, M, 11, m, 3)
                assert core._last_kernel_isa() == isa_level
                np.testing.assert_array_equal(got, _materialized_apply(core, kind, M, hrows, signs.astype(dtype), m))


# Row-major rows of 768 bytes and more (below the bucket pass's dense_bucket_row_bytes) with an m x d
# accumulator over 8 KiB go through countsketch_strips: 384-byte column strips of 16-row blocks. (600, 200, 50):
# 800 and 1600-byte rows; (1100, 300, 20): 1200 bytes (float64's 2400 only at the baseline); (700, 425, 9):
# a part-line tail, float32 only; (2000, 208, 12): rows of whole lines, so the accumulator's rows start where
# A's do and the first strip takes an unaligned head (A shifted 1 and 3 entries into its buffer).
STRIP_SHAPES = [(600, 200, 50), (1100, 300, 20), (700, 425, 9), (2000, 208, 12)]


def test_column_strips_add_each_bucket_in_row_order(isa_level, dtype):
    """Rows of one bucket add in row order whatever the strips: with values +-1 (v * a exact, so an FMA rounds as
    an add) the kernel equals np.add.at in A's dtype to the last bit at every ISA level (n <= 2000: one chunk)."""
    core = fastlr.get_backend("cpp")
    with fastlr.thread_limit(1):
        for n, d, m in STRIP_SHAPES:
            rng = np.random.default_rng(n + d + m)
            buffer = rng.standard_normal(n * d + 4).astype(dtype)
            rows = rng.integers(0, m, n).astype(np.int64)
            values = rng.choice([-1.0, 1.0], n).astype(dtype)
            hrows, signs = core.countsketch_hash(5, m, 0, n)
            for shift in (0, 1, 3):
                A = buffer[shift:shift + n * d].reshape(n, d)
                np.testing.assert_array_equal(core.countsketch_dense(A, rows, values, m),
                                              ref.countsketch_dense(A, rows, values, m))
                assert core._last_kernel_isa() == isa_level
                np.testing.assert_array_equal(core.countsketch_seeded_dense(A, 5, m),
                                              ref.countsketch_dense(A, hrows, signs.astype(dtype), m))


@pytest.mark.parametrize("kind", ["C", "F", "csr", "csc"])
def test_isa_variants_are_bit_identical_at_every_thread_count(isa_level, dtype, kind):
    """Several row chunks (n = 6000): each variant's S @ A is the same at 1 and 2 threads, and close to NumPy's."""
    core = fastlr.get_backend("cpp")
    rng = np.random.default_rng(21)
    n, d, m = 6000, 50, 13
    A = _seeded_input(kind, n, d, dtype, rng)
    rows, values = _sketch_arrays(n, m, dtype, seed=5)
    with fastlr.thread_limit(1):
        one = _materialized_apply(core, kind, A, rows, values, m)
    with fastlr.thread_limit(2):
        two = _materialized_apply(core, kind, A, rows, values, m)
    assert core._last_kernel_isa() == isa_level
    np.testing.assert_array_equal(one, two)
    dense = A if kind in ("C", "F") else A.toarray()
    expected = ref.countsketch_dense(np.ascontiguousarray(dense, dtype=np.float64), rows, values.astype(np.float64), m)
    assert_close(one, expected, dtype, scale=max(np.abs(dense).max(initial=1.0), 1.0) * np.sqrt(n) * 4)


def test_isa_cap_reaches_the_countsketch_kernels():
    """Capped at x86-64-v3 on a CPU that has it, the CountSketch runs the v3 variant, which fuses v * a + o
    into one FMA (GCC and Clang contract it at -O3): S @ A then differs from the baseline's in the last
    bits, which the baseline variant (no FMA) gives exactly."""
    core = fastlr.get_backend(require_backend("cpp"))
    if not core.build_info()["dispatch_targets"]:
        pytest.skip("a build without run-time dispatch compiles one variant")
    rng = np.random.default_rng(8)
    A = rng.standard_normal((1500, 64))
    rows, values = _sketch_arrays(1500, 20, np.float64, seed=9)
    previous = core._cap_isa(0)
    try:
        with fastlr.thread_limit(1):
            baseline = core.countsketch_dense(A, rows, values, 20)
            assert core._last_kernel_isa() == 0
            core._cap_isa(1)
            if core._kernel_isa() < 1:
                pytest.skip("this CPU has no x86-64-v3 (AVX2/FMA)")
            v3 = core.countsketch_dense(A, rows, values, 20)
            assert core._last_kernel_isa() == 1
    finally:
        core._cap_isa(previous)
    np.testing.assert_array_equal(baseline, ref.countsketch_dense(A, rows, values, 20))
    assert not np.array_equal(v3, baseline)
    np.testing.assert_allclose(v3, baseline, rtol=0, atol=1e-12 * np.abs(baseline).max())


def test_cap_isa_names_and_info(capsys):
    """_cap_product_isa is the former name of _cap_isa; the build info and `fastlr info` report the capped level."""
    core = fastlr.get_backend(require_backend("cpp"))
    previous = core._cap_isa(0)
    try:
        assert core._cap_product_isa(1) == 0
        assert core._cap_isa(1) == 1
        info = core.build_info()
        names = ["baseline", "x86-64-v3", "x86-64-v4"]
        if info["isa"] in names:  # run-time dispatch: the CPU's level, and the level within the cap
            assert info["kernel_isa"] == names[min(names.index(info["isa"]), 1)]
        with pytest.raises(ValueError, match="level"):
            core._cap_isa(3)
        from fastlr.cli import main

        if info["kernel_isa"] != info["isa"]:
            capsys.readouterr()
            assert main(["info"]) == 0
            assert f"vector ISA {info['isa']} (kernels capped at {info['kernel_isa']})" in capsys.readouterr().out
    finally:
        core._cap_isa(previous)


# Buckets with runs of equal rows (learned sketches sort similar rows into one bucket): the column-major
# kernel sums each run in registers, the row-major one adds row by row; the same additions in the same order.
def _run_buckets(kind, n, m, rng):
    if kind == "sorted":  # n / m rows per run
        return np.sort(rng.integers(0, m, n))
    if kind == "one":  # every row in one bucket
        return np.full(n, m - 1)
    if kind == "mixed":  # random, runs of 3, one run across the 256-row segments, random again
        q = n // 4
        runs = np.repeat(rng.integers(0, m, (q + 2) // 3), 3)[:q]
        return np.concatenate([rng.integers(0, m, q), runs, np.full(q, m // 2), rng.integers(0, m, n - 3 * q)])
    lengths = rng.integers(1, 40, n)  # runs of 1-39 rows, neighbouring runs may share a bucket
    return np.repeat(rng.integers(0, m, n), lengths)[:n]


RUN_KINDS = ["sorted", "one", "mixed", "ragged"]
RUN_SHAPES = [(1, 3, 1), (7, 5, 1), (2000, 9, 1), (2000, 13, 6), (1500, 4, 50), (1024, 1, 3)]


@pytest.mark.parametrize("kind", RUN_KINDS)
@pytest.mark.parametrize("n,d,m", RUN_SHAPES)
def test_runs_of_equal_buckets_match_the_reference(isa_level, dtype, kind, n, d, m):
    """Long same-bucket runs, C and F order, 1 and 2 threads: S @ A is the same at both thread counts, equals
    NumPy's np.add.at in A's dtype to the last bit at the baseline (no FMA; n <= 2000 is one row chunk) and is
    close to the float64 reference at every level."""
    core = fastlr.get_backend("cpp")
    rng = np.random.default_rng(n + 7 * d + m)
    rows = _run_buckets(kind, n, m, rng).astype(np.int64)
    values = rng.standard_normal(n).astype(dtype)
    A = rng.standard_normal((n, d)).astype(dtype)
    exact = ref.countsketch_dense(A, rows, values, m)
    expected = ref.countsketch_dense(A.astype(np.float64), rows, values.astype(np.float64), m)
    for order in ("C", "F"):
        got = {}
        for threads in (1, 2):
            with fastlr.thread_limit(threads):
                got[threads] = core.countsketch_dense(layouts(A)[order], rows, values, m)
            assert core._last_kernel_isa() == isa_level
        np.testing.assert_array_equal(got[2], got[1])
        if isa_level == 0:
            np.testing.assert_array_equal(got[1], exact)
        assert_close(got[1], expected, dtype, scale=np.abs(A).max() * np.sqrt(n) * 4)


@pytest.mark.parametrize("kind", RUN_KINDS)
def test_runs_of_equal_buckets_every_backend(fast_backend, dtype, kind):
    """The same inputs through every fast backend and the public operator, several row chunks (n = 9000),
    C and F order: close to the float64 reference, and the same at 1 and 2 threads. Numba's column-major
    kernel (no FMA) sums each entry in row order: it equals np.add.at in A's dtype to the last bit."""
    rng = np.random.default_rng(3)
    n, d, m = 9000, 11, 8
    rows = _run_buckets(kind, n, m, rng).astype(np.int64)
    values = rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 2.0, n)
    A = rng.standard_normal((n, d)).astype(dtype)
    expected = ref.countsketch_dense(A.astype(np.float64), rows, values, m)
    S = fastlr.CountSketch.from_arrays(rows, values, m)
    for order in ("C", "F"):
        M = layouts(A)[order]
        with fastlr.thread_limit(1):
            one = S.apply(M, backend=fast_backend)
        with fastlr.thread_limit(2):
            two = S.apply(M, backend=fast_backend)
        np.testing.assert_array_equal(two, one)
        assert_close(one, expected, dtype, scale=np.abs(A).max() * np.sqrt(n) * 4)
        if fast_backend == "numba" and order == "F":
            np.testing.assert_array_equal(one, ref.countsketch_dense(A, rows, values.astype(dtype), m))


@pytest.mark.parametrize("order", ["C", "F"])
def test_seeded_m1_is_one_run(isa_level, dtype, order):
    """m = 1: every row in bucket 0, one run past the seeded kernel's 65536-row hash blocks. The seeded and
    the materialized apply agree to the last bit at 1 and 2 threads, and equal np.add.at at the baseline."""
    core = fastlr.get_backend("cpp")
    rng = np.random.default_rng(5)
    n, d = 70_000, 3
    A = np.asarray(rng.standard_normal((n, d)).astype(dtype), order=order)
    rows, signs = ref.countsketch_hash(9, 1, 0, n)
    values = signs.astype(dtype)
    assert not rows.any()
    results = []
    for threads in (1, 2):
        with fastlr.thread_limit(threads):
            results.append(core.countsketch_seeded_dense(A, 9, 1))
            results.append(core.countsketch_dense(A, rows, values, 1))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    if isa_level == 0 and order == "F":  # one column sweep in row order (C order sums row chunks)
        np.testing.assert_array_equal(results[0], ref.countsketch_dense(np.ascontiguousarray(A), rows, values, 1))
    expected = ref.countsketch_dense(A.astype(np.float64), rows, signs, 1)
    assert_close(results[0], expected, dtype, scale=np.sqrt(n) * 4)


@pytest.mark.parametrize("kind", RUN_KINDS)
@pytest.mark.parametrize("n,d,m", [(1000, 9, 1), (1000, 13, 6), (700, 4, 50), (1000, 1, 3), (5, 6, 2)])
def test_runs_sum_as_the_scatter_does(isa_level, dtype, kind, n, d, m):
    """At every ISA level (v3/v4 fuse v * a + o, so np.add.at is no reference there), S @ A with same-bucket
    runs equals, to the last bit, S' @ A' where a zero row in an extra bucket follows every row: A' has no
    runs, so the kernel takes its plain scatter, and the zero rows add exact zeros to a bucket left out.
    2n <= 2047 rows: one row chunk either way."""
    core = fastlr.get_backend("cpp")
    rng = np.random.default_rng(n + d + m)
    rows = _run_buckets(kind, n, m, rng).astype(np.int64)
    values = rng.standard_normal(n).astype(dtype)
    A = rng.standard_normal((n, d)).astype(dtype)
    A2 = np.zeros((2 * n, d), dtype)
    A2[::2] = A
    rows2 = np.full(2 * n, m, np.int64)
    rows2[::2] = rows
    values2 = np.ones(2 * n, dtype)
    values2[::2] = values
    for order in ("C", "F"):
        for threads in (1, 2):
            with fastlr.thread_limit(threads):
                got = core.countsketch_dense(layouts(A)[order], rows, values, m)
                scattered = core.countsketch_dense(layouts(A2)[order], rows2, values2, m + 1)
            assert core._last_kernel_isa() == isa_level
            np.testing.assert_array_equal(got, scattered[:m])
            assert not scattered[m].any()


@pytest.mark.parametrize("kind", ["C", "F"])
@pytest.mark.parametrize("n,d,m", [(7, 3, 2), (1000, 9, 50), (1100, 800, 7), (4100, 530, 20)])
def test_seeded_dense_finite_is_the_seeded_kernel(dtype, kind, n, d, m):
    """The core's one-step public call gives countsketch_seeded_dense's S A bit for bit (one-row, four-row and
    bucket paths), at every thread count."""
    core = fastlr.get_backend(require_backend("cpp"))
    A = _seeded_input(kind, n, d, dtype, np.random.default_rng(n + d))
    for threads in (1, 2):
        with fastlr.thread_limit(threads):
            got = core.countsketch_seeded_dense_finite(A, 3, m)
            np.testing.assert_array_equal(got, core.countsketch_seeded_dense(A, 3, m, 0))
            np.testing.assert_array_equal(core.countsketch_seeded_dense_finite(A, 3, m, 17),
                                          core.countsketch_seeded_dense(A, 3, m, 17))
    assert got.dtype == dtype and got.flags.c_contiguous


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (12, 20), (36, 36)])  # the last: S A's final entry (past 8-wide sums)
def test_seeded_dense_finite_declines_non_finite(dtype, bad, where):
    core = fastlr.get_backend(require_backend("cpp"))
    A = np.ones((37, 37), dtype=dtype)
    A[where] = bad
    for seed in range(4):  # some seeds put the bad row in S A's last row
        assert core.countsketch_seeded_dense_finite(A, seed, 3) is None
    with np.errstate(over="ignore"):
        huge = np.full((40, 3), np.finfo(dtype).max, dtype=dtype)  # S A overflows
    assert core.countsketch_seeded_dense_finite(huge, 0, 1) is None


def test_seeded_dense_finite_declines_what_the_kernel_refuses():
    """None (not an error) where countsketch_seeded_dense would raise: the caller's general path converts or names
    the error."""
    core = fastlr.get_backend(require_backend("cpp"))
    A = np.random.default_rng(0).standard_normal((30, 8))
    for bad in (A.astype(np.int64), A.astype(np.float16), A[:, ::2], A.astype(">f8"), A[:, 0], A[None],
                A.astype(complex)):
        assert core.countsketch_seeded_dense_finite(bad, 1, 4) is None, bad.dtype
    with pytest.raises(ValueError, match="m"):
        core.countsketch_seeded_dense_finite(A, 0, 0)
