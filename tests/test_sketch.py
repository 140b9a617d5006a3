"""The public sketch operators: CountSketch, GaussianSketch, stack."""

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import require_backend
from helpers import assert_close, layouts, messy_csr

import fastlr
from fastlr._matrix import memory
from fastlr.sketch import countsketch_hash


def test_hash_is_counter_based():
    rows, signs = countsketch_hash(3, 17, 0, 1000)
    rows_tail, signs_tail = countsketch_hash(3, 17, 600, 1000)
    np.testing.assert_array_equal(rows[600:], rows_tail)
    np.testing.assert_array_equal(signs[600:], signs_tail)
    small = fastlr.CountSketch(17, 250, seed=3)
    np.testing.assert_array_equal(small.rows, rows[:250])
    np.testing.assert_array_equal(small.values, signs[:250])
    other = fastlr.CountSketch(17, 1000, seed=4)
    assert (other.rows != rows).mean() > 0.8


def test_hash_distribution():
    m, n = 20, 200_000
    S = fastlr.CountSketch(m, n, seed=0)
    assert S.rows.dtype == np.int64 and S.rows.min() >= 0 and S.rows.max() < m
    assert set(np.unique(S.values)) == {-1.0, 1.0}
    counts = np.bincount(S.rows, minlength=m)
    chi2 = ((counts - n / m) ** 2 / (n / m)).sum()
    assert chi2 < 60  # 19 degrees of freedom: p < 1e-5 beyond this
    assert abs(S.values.mean()) < 0.01
    # signs independent of rows: each row's sign balance is near zero
    per_row = np.bincount(S.rows, weights=S.values, minlength=m) / counts
    assert np.abs(per_row).max() < 0.05


def test_same_sketch_across_backends(dtype):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((3000, 40)).astype(dtype)
    S = fastlr.CountSketch(25, 3000, seed=9)
    expected = S.to_scipy() @ A.astype(np.float64)
    for name in fastlr.available_backends():
        assert_close(S.apply(A, backend=name), expected, dtype, scale=np.sqrt(3000) * 4)


def test_apply_layouts_and_dtypes(backend, dtype):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((200, 30)).astype(dtype)
    S = fastlr.CountSketch(10, 200, seed=1)
    expected = S.to_dense() @ base.astype(np.float64)
    for name, A in layouts(base).items():
        got = S @ A if backend == fastlr.current_backend() else S.apply(A, backend=backend)
        assert got.dtype == dtype, name
        assert got.flags.c_contiguous
        assert_close(got, expected, dtype, scale=np.sqrt(200) * 4)


@pytest.mark.parametrize("in_dtype", [np.int32, np.int64, np.float16, bool, np.uint8])
def test_other_real_dtypes_compute_in_float64(in_dtype):
    A = (np.arange(60).reshape(20, 3) % 3).astype(in_dtype)
    S = fastlr.CountSketch(4, 20)
    got = S @ A
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, S.to_dense() @ A.astype(np.float64))


def test_list_input():
    S = fastlr.CountSketch(2, 3)
    np.testing.assert_allclose(S @ [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], S.to_dense() @ np.arange(1.0, 7).reshape(3, 2))


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "lil"])
def test_sparse_formats(backend, dtype, fmt):
    rng = np.random.default_rng(2)
    A = messy_csr(300, 40, 0.1, rng, dtype=dtype).asformat(fmt)
    S = fastlr.CountSketch(12, 300, seed=2)
    got = S.apply(A, backend=backend)
    assert got.dtype == dtype and got.shape == (12, 40)
    assert_close(got, S.to_dense() @ A.toarray().astype(np.float64), dtype, scale=10.0)


def test_sparse_array_and_int64_indptr():
    A = sp.csr_array(np.eye(5))
    A.indptr = A.indptr.astype(np.int64)  # indices stay int32: mixed index dtypes
    S = fastlr.CountSketch(3, 5, seed=0)
    np.testing.assert_allclose(S @ A, S.to_dense())


def test_transpose_and_scipy():
    rng = np.random.default_rng(3)
    S = fastlr.CountSketch(6, 50, seed=3)
    dense = S.to_dense()
    assert S.to_scipy().shape == (6, 50)
    np.testing.assert_array_equal(S.to_scipy().toarray(), dense)
    Y = rng.standard_normal((6, 4))
    np.testing.assert_allclose(S.T @ Y, dense.T @ Y)
    np.testing.assert_allclose(S.T @ Y[:, 0], dense.T @ Y[:, 0])
    assert (S.T @ Y.astype(np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match="Y"):
        S.T @ np.ones((5, 2))


def test_from_arrays_and_values():
    S = fastlr.CountSketch.from_arrays([0, 2, 1, 2], [0.5, -2.0, 1.0, 3.0], m=3)
    A = np.arange(8.0).reshape(4, 2)
    expected = np.array([[0.0, 0.5], [4.0, 5.0], [-2.0 * 2 + 3 * 6, -2.0 * 3 + 3 * 7]])
    np.testing.assert_allclose(S @ A, expected)
    np.testing.assert_allclose(S @ A.astype(np.float32), expected)
    S.values = np.ones(4)  # the float32 cache must follow new values
    np.testing.assert_allclose(S @ A.astype(np.float32), S.to_dense() @ A)
    with pytest.raises(ValueError, match="values"):
        S.values = np.ones(3)
    with pytest.raises(ValueError, match="values"):
        S.values = [1.0, np.nan, 1.0, 1.0]
    with pytest.raises(ValueError, match="rows"):
        fastlr.CountSketch.from_arrays([0, 3], [1.0, 1.0], m=3)


@pytest.mark.parametrize(
    "args,exc,match",
    [
        ((0, 10), ValueError, "m: must be >= 1, got 0"),
        ((5, 0), ValueError, "n: must be >= 1, got 0"),
        ((2.5, 10), TypeError, "m: expected an integer"),
        ((5, 10, -1), ValueError, "seed"),
        ((True, 10), TypeError, "m"),
    ],
)
def test_bad_constructor_arguments(args, exc, match):
    with pytest.raises(exc, match=match):
        fastlr.CountSketch(*args)
    if len(args) == 2:
        with pytest.raises(exc, match=match):
            fastlr.GaussianSketch(*args)


@pytest.mark.parametrize(
    "A,exc,match",
    [
        (np.ones((9, 3)), ValueError, "A: has 9 rows but the sketch is 4 x 10"),
        (np.ones(10), ValueError, "A: expected a 2-D array, got ndim=1"),
        (np.ones((10, 2, 2)), ValueError, "ndim=3"),
        (np.ones((10, 2), dtype=complex), TypeError, "A: complex"),
        (np.array([[object()]] * 10), TypeError, "A: dtype object"),
        ("abc", TypeError, "A: expected a 2-D array"),
        (None, TypeError, "A: expected a 2-D array"),
        (sp.csr_matrix(np.ones((10, 2), dtype=complex)), TypeError, "A: complex"),
        (sp.csr_matrix(np.ones((3, 2))), ValueError, "has 3 rows"),
    ],
)
def test_bad_input(backend, A, exc, match):
    S = fastlr.CountSketch(4, 10)
    with pytest.raises(exc, match=match):
        S.apply(A, backend=backend)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kind", ["C", "F", "csr", "csc"])
def test_non_finite_input_raises(backend, bad, kind):
    A = np.ones((10, 3))
    A[4, 1] = bad
    A = {"C": A, "F": np.asfortranarray(A), "csr": sp.csr_matrix(A), "csc": sp.csc_matrix(A)}[kind]
    for S in (fastlr.CountSketch(4, 10), fastlr.GaussianSketch(4, 10)):
        with pytest.raises(ValueError, match="NaN or infinity"):
            S.apply(A, backend=backend)


def test_inputs_not_modified(backend):
    rng = np.random.default_rng(4)
    A = rng.standard_normal((50, 6))
    A_sparse = sp.csr_matrix(A * (A > 0.5))
    before, before_sparse = A.copy(), A_sparse.copy()
    S = fastlr.CountSketch(5, 50)
    rows, values = S.rows.copy(), S.values.copy()
    S.apply(A, backend=backend)
    S.apply(A_sparse, backend=backend)
    S.gather_dot(A, np.ones((5, 6)), backend=backend)
    np.testing.assert_array_equal(A, before)
    assert (A_sparse != before_sparse).nnz == 0
    np.testing.assert_array_equal(S.rows, rows)
    np.testing.assert_array_equal(S.values, values)


def test_gather_dot_is_gradient_of_sketch(backend):
    """<D, S A> is linear in the values with gradient g: check against the definition."""
    rng = np.random.default_rng(5)
    A = rng.standard_normal((80, 7))
    D = rng.standard_normal((6, 7))
    S = fastlr.CountSketch(6, 80, seed=1)
    g = S.gather_dot(A, D, backend=backend)
    np.testing.assert_allclose(g @ S.values, np.sum(D * (S @ A)), rtol=1e-12)
    g_sparse = S.gather_dot(sp.csc_matrix(A), D, backend=backend)
    np.testing.assert_allclose(g_sparse, g, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="D: expected shape"):
        S.gather_dot(A, np.ones((6, 6)), backend=backend)


def test_gaussian_sketch(dtype):
    G = fastlr.GaussianSketch(200, 300, seed=1)
    M = G.to_dense()
    assert M.shape == (200, 300)
    assert abs(M.var() * 200 - 1) < 0.02
    np.testing.assert_array_equal(fastlr.GaussianSketch(200, 300, seed=1).to_dense(), M)
    A = np.random.default_rng(0).standard_normal((300, 5)).astype(dtype)
    out = G @ A
    assert out.dtype == dtype
    assert_close(out, M @ A.astype(np.float64), dtype, scale=50.0)
    assert_close(G @ sp.csr_matrix(A), out, dtype, scale=50.0)


def test_stack():
    S1, S2 = fastlr.CountSketch(3, 40, seed=1), fastlr.GaussianSketch(2, 40, seed=2)
    St = fastlr.stack([S1, S2])
    assert St.shape == (5, 40)
    A = np.random.default_rng(0).standard_normal((40, 4))
    np.testing.assert_allclose(St @ A, np.vstack([S1 @ A, S2 @ A]))
    np.testing.assert_allclose(St.to_dense(), np.vstack([S1.to_dense(), S2.to_dense()]))
    with pytest.raises(ValueError, match=r"sketches\[1\]: has n=41"):
        fastlr.stack([S1, fastlr.CountSketch(3, 41)])
    with pytest.raises(ValueError, match="at least one"):
        fastlr.stack([])
    with pytest.raises(TypeError, match=r"sketches\[0\]"):
        fastlr.stack([np.eye(3)])


def test_repr():
    assert repr(fastlr.CountSketch(3, 7, seed=2)) == "CountSketch(m=3, n=7, seed=2)"
    assert "GaussianSketch(m=3, n=7" in repr(fastlr.GaussianSketch(3, 7))


def test_seeded_sketch_of_an_ndarray_is_one_core_call(monkeypatch, dtype):
    """``CountSketch(m, n, seed) @ A`` and ``S.apply(A)`` for a plain float ndarray build no operand (the Python
    work would run with the caches the pass has flushed) and give the general path's S A bit for bit."""
    require_backend("cpp")
    rng = np.random.default_rng(5)
    cases = [np.asarray(rng.standard_normal((300, 40)).astype(dtype), order=o) for o in "CF"]
    S = fastlr.CountSketch(7, 300, seed=11)
    expected = [memory.InMemory(A).sketch(S) for A in cases]
    before = [A.copy() for A in cases]

    def refuse(*args, **kwargs):
        raise AssertionError("the general path ran")

    monkeypatch.setattr(memory.InMemory, "_set", refuse)
    for A, want, copy in zip(cases, expected, before):
        for got in (fastlr.CountSketch(7, 300, seed=11) @ A, S.apply(A), S.apply(A, backend="cpp")):
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(A, copy)
    assert S._rows is None  # nothing of size n was built


@pytest.mark.parametrize("make", [
    lambda A: A.astype(np.int32), lambda A: A[:, ::2], lambda A: A.astype(">f8"), lambda A: A.tolist(),
    lambda A: np.ma.masked_array(A), lambda A: sp.csr_matrix(A),
])
def test_seeded_sketch_of_other_input_takes_the_general_path(backend, make):
    """Input the one-call path declines (other dtypes, views, byte order, lists, subclasses, sparse) and other
    backends give the general path's result."""
    A = make(np.arange(120.0).reshape(20, 6) % 7 - 3)
    S = fastlr.CountSketch(4, 20, seed=2)
    expected = S.to_dense() @ np.asarray(sp.csr_matrix(A).toarray() if sp.issparse(A) else A, dtype=np.float64)
    np.testing.assert_allclose(S.apply(A, backend=backend), expected, rtol=1e-12, atol=1e-12)


def test_seeded_sketch_with_numba_uses_numba(monkeypatch):
    """backend="numba" (or a numba default) never reaches the compiled core's one-call path."""
    require_backend("numba")
    core = fastlr.get_backend(require_backend("cpp"))

    def refuse(*args, **kwargs):
        raise AssertionError("the C++ core ran")

    monkeypatch.setattr(core, "countsketch_seeded_dense_finite", refuse)
    monkeypatch.setattr(core, "countsketch_seeded_dense", refuse)
    A = np.random.default_rng(1).standard_normal((50, 4))
    S = fastlr.CountSketch(3, 50, seed=4)
    expected = S.to_dense() @ A
    np.testing.assert_allclose(S.apply(A, backend="numba"), expected, rtol=1e-12, atol=1e-12)
    with fastlr.use_backend("numba"):
        np.testing.assert_allclose(fastlr.CountSketch(3, 50, seed=4) @ A, expected, rtol=1e-12, atol=1e-12)
