"""fastlr's one- to four-column products (``_core.vector_product``, csrc/bindings/products_vector.cpp) against NumPy,
and the route that sends narrow factors to them (``choice.vector_product``: "auto", one thread, x86-64-v3, one column
or fewer than ``VECTOR_COLUMNS``) in place of NumPy's GEMVs, BLAS's GEMMs and the one-pass kernels."""

import functools

import numpy as np
import pytest
from conftest import require_backend

import fastlr
from fastlr import _core
from fastlr._matrix import InMemory, choice, memory

SHAPES = [(7, 5), (13, 17), (64, 33), (3, 1), (1, 9), (0, 4), (4, 0), (101, 203), (9, 8), (16, 4),
          (2500, 7), (5, 2100)]  # the last two: sums over B's rows in chunks of 1024, a partial last one


@pytest.fixture(params=[1, 0], ids=["x86-64-v3", "baseline"])
def isa(request):
    """The AVX2 loops (where this CPU runs them) and the portable ones, through the ISA cap."""
    old = _core._cap_isa(request.param)
    yield request.param
    _core._cap_isa(old)


def is_vector_product(f) -> bool:
    """The route's function is ``_core.vector_product`` (one column: with this machine's ``one_stream`` bound)."""
    return f is _core.vector_product or (isinstance(f, functools.partial) and f.func is _core.vector_product
                                         and set(f.keywords) == {"one_stream"})


def _close(got, want, dtype):
    assert got.dtype == dtype and got.shape == want.shape and got.flags.c_contiguous
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max(initial=0.0))))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_vector_products_match_numpy(isa, dtype, order, k):
    """A V, A.T W, (A V, A.T (A V)) and (A V, A.T U) of C- and F-order A with 1-4 columns, rows and columns off the
    kernels' blocks of 4 and 8 rows and 8 / 4 lanes (the tails), against NumPy in float64."""
    rng = np.random.default_rng(3)
    for shape in SHAPES:
        A = np.asarray(rng.standard_normal(shape), dtype=dtype, order=order)
        n, d = shape
        v, u = rng.standard_normal((d, k)).astype(dtype), rng.standard_normal((n, k)).astype(dtype)
        A64 = A.astype(np.float64)
        _close(_core.vector_product(0, A, v), A64 @ v, dtype)
        _close(_core.vector_product(1, A, u), A64.T @ u, dtype)
        Y, Z = _core.vector_product(2, A, v)
        _close(Y, A64 @ v, dtype)
        _close(Z, A64.T @ (A64 @ v), dtype)
        Y, Z = _core.vector_product(3, A, v, u)
        _close(Y, A64 @ v, dtype)
        _close(Z, A64.T @ u, dtype)


#: Past csrc's kOneStreamBytes (16 MiB): the one-column loops that read A one row at a time. (n, d, dtype): dots of
#: rows with a partial last vector; axpys from 256-byte rows or whole vectors (64 float32, 20 float64 columns); the
#: gd pair from 512-byte rows (150 float32 and 70 float64 columns, partial last vectors); below those the blocks.
ONE_STREAM = [(90_000, 50, np.float32), (70_000, 64, np.float32), (120_000, 20, np.float64),
              (30_000, 150, np.float32), (40_000, 70, np.float64), (240_000, 20, np.float32)]


@pytest.mark.parametrize("shape", ONE_STREAM, ids=lambda s: f"{s[0]}x{s[1]}-{np.dtype(s[2]).name}")
def test_one_column_products_of_large_a_match_numpy(isa, shape):
    """One column, C-order A of 16 MiB and more (csrc reads such A one row at a time; ``one_stream=False``, as the
    calibration may decide: in blocks of rows), every kind, against NumPy in float64."""
    n, d, dtype = shape
    assert n * d * np.dtype(dtype).itemsize >= 16 << 20
    rng = np.random.default_rng(9)
    A = rng.standard_normal((n, d)).astype(dtype)
    v, u = rng.standard_normal((d, 1)).astype(dtype), rng.standard_normal((n, 1)).astype(dtype)
    A64 = A.astype(np.float64)
    Av = A64 @ v
    for stream in (True, False):
        _close(_core.vector_product(0, A, v, one_stream=stream), Av, dtype)
        _close(_core.vector_product(1, A, u, one_stream=stream), A64.T @ u, dtype)
        Y, Z = _core.vector_product(2, A, v, one_stream=stream)
        _close(Y, Av, dtype)
        _close(Z, A64.T @ Av, dtype)
        Y, Z = _core.vector_product(3, A, v, u, one_stream=stream)
        _close(Y, Av, dtype)
        _close(Z, A64.T @ u, dtype)


@pytest.mark.parametrize("k", [1, 3])
def test_vector_products_sum_tall_float32_like_numpy(isa, k):
    """A.T w and the gram / gd pairs of a tall float32 A (400000 rows, mean 3: the sums grow) within NumPy's own
    float32 rounding: summed down all rows in one run, they were 5-15x NumPy's error (1e-5 relative)."""
    rng = np.random.default_rng(5)
    A = (rng.standard_normal((400_000, 4)) + 3).astype(np.float32)
    v = (rng.standard_normal((4, k)) + 1).astype(np.float32)
    u = (rng.standard_normal((400_000, k)) + 1).astype(np.float32)
    A64 = A.astype(np.float64)

    def rel(got, want):
        return np.abs(got - want).max() / np.abs(want).max()

    ours = [_core.vector_product(1, A, u), _core.vector_product(2, A, v)[1], _core.vector_product(3, A, v, u)[1]]
    numpy = [A.T @ u, A.T @ (A @ v), A.T @ u]
    exact = [A64.T @ u, A64.T @ (A64 @ v), A64.T @ u]
    for got, np32, want in zip(ours, numpy, exact):
        assert rel(got, want) <= max(2 * rel(np32, want), 2e-6)


def test_vector_product_factors_are_converted_and_checked():
    """A factor of another dtype or not contiguous is converted (as ``np.ascontiguousarray(V, A's dtype)``); a wrong
    row count, more than one column or a 1-D factor raise ValueError."""
    rng = np.random.default_rng(4)
    A = rng.standard_normal((30, 20)).astype(np.float32)
    V3 = rng.standard_normal((20, 3))
    v = V3[:, 1:2]  # float64, strided
    want = A @ v.astype(np.float32)
    np.testing.assert_array_equal(_core.vector_product(0, A, v), _core.vector_product(0, A, np.ascontiguousarray(
        v, dtype=np.float32)))
    _close(_core.vector_product(0, A, v), want.astype(np.float64).astype(np.float32), np.float32)
    for bad in (np.ones((21, 1), np.float32), np.ones((20, 5), np.float32), np.ones(20, np.float32)):
        with pytest.raises(ValueError):
            _core.vector_product(0, A, bad)
    for u in (np.ones((29, 1), np.float32), np.ones((30, 2), np.float32)):  # U's rows, U's columns (V's)
        with pytest.raises(ValueError):
            _core.vector_product(3, A, np.ones((20, 1), np.float32), u)
    with pytest.raises(ValueError):
        _core.vector_product(4, A, np.ones((20, 1), np.float32))
    with pytest.raises(TypeError):
        _core.vector_product(0, A.astype(np.int64), np.ones((20, 1)))


@pytest.fixture
def v3(monkeypatch):
    """The x86-64-v3 rule (pinned), "auto", the table's thresholds, no routes remembered from earlier tests."""
    require_backend("cpp")
    monkeypatch.delenv("FASTLR_PRODUCT_CHOICE", raising=False)
    monkeypatch.setenv("FASTLR_CALIBRATION", "off")
    monkeypatch.setattr(choice, "_level", "x86-64-v3")
    monkeypatch.setattr(choice, "routes", {}, raising=False)
    monkeypatch.setattr(memory, "routes", choice.routes, raising=False)


def _products(op, V, W):
    return {"times": op.times(V), "rtimes": op.rtimes(W), "power": op.power_pass(V), "gram": op.gram_product(V),
            "gd": op.gd_products(W, V)}


@pytest.mark.parametrize("dtype, order, k", [(np.float32, "C", 1), (np.float32, "F", 1), (np.float64, "C", 1),
                                             (np.float64, "F", 1), (np.float32, "C", 2), (np.float32, "C", 3),
                                             (np.float32, "C", 4), (np.float64, "C", 2), (np.float32, "F", 3),
                                             (np.float64, "F", 4)])
def test_narrow_factors_run_the_vector_products(v3, monkeypatch, dtype, order, k):
    """At x86-64-v3 on one thread, every dense product of one column, and of A with 2 to ``VECTOR_COLUMNS`` - 1
    columns, runs ``_core.vector_product`` (neither BLAS nor the one-pass kernels are called)
    and agrees with NumPy's expression."""
    rng = np.random.default_rng(5)
    A = np.asarray(rng.standard_normal((90, 70)), dtype=dtype, order=order)
    V, W = rng.standard_normal((70, k)), rng.standard_normal((90, k))
    op = InMemory(A)

    def no_blas(*args):
        raise AssertionError("BLAS route taken")

    monkeypatch.setattr(memory, "blas_call", no_blas)
    monkeypatch.setattr(memory.InMemory, "kernels", property(no_blas))
    with fastlr.thread_limit(1):
        got = _products(op, V, W)
        for kind in ("matmul", "rmatmul", "gram", "gd"):
            assert is_vector_product(op._route(kind, k, 1)[3])
    A64, V32, W32 = A.astype(np.float64), V.astype(dtype), W.astype(dtype)
    _close(got["times"], A64 @ V32, dtype)
    _close(got["rtimes"], A64.T @ W32, dtype)
    _close(got["power"][0], A64 @ V32, dtype)
    _close(got["power"][1], A64.T @ (A64 @ V32), dtype)
    _close(got["gram"], A64.T @ (A64 @ V32), dtype)
    _close(got["gd"][0], A64 @ V32, dtype)
    _close(got["gd"][1], A64.T @ W32, dtype)


def test_vector_route_follows_the_rule(v3, monkeypatch):
    """BLAS (or the kernel) instead where the rule says: two threads, from ``VECTOR_COLUMNS`` columns on,
    FASTLR_PRODUCT_CHOICE=blas or kernel, the baseline level; each reaches the next call (the route memo)."""
    op = InMemory(np.ones((40, 30)))
    assert op._route("matmul", 1, 1)[3] is not None and op._route("matmul", 2, 1)[3] is not None
    assert op._route("matmul", 1, 2)[3] is None  # BLAS's GEMV on fastlr's two threads
    assert op._route("matmul", 3, 1)[0]  # float64 from 3 columns: the kernel
    op32 = InMemory(np.ones((40, 30), np.float32))
    assert op32._route("gram", 4, 1)[3] is not None and op32._route("gram", 5, 1)[0]
    opf = InMemory(np.ones((40, 30), order="F"))
    assert opf._route("gram", 4, 1)[3] is not None and opf._route("gram", 5, 1)[3] is None
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "blas")
    assert op._route("gram", 1, 1)[::3] == (False, None)  # BLAS
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "kernel")
    assert op._route("gram", 1, 1) == (True, None, None, None)
    monkeypatch.delenv("FASTLR_PRODUCT_CHOICE")
    assert op._route("gram", 1, 1)[3] is not None
    monkeypatch.setattr(choice, "_level", "baseline")
    assert op._route("gram", 1, 1)[3] is None
    assert choice.vector_product(1, 1, "baseline") is None and choice.vector_product(1, 1, "x86-64-v3") is not None
    assert choice.vector_product(1, 1, "x86-64-v4") is not None
    with fastlr.thread_limit(2):  # the BLAS route, as before
        np.testing.assert_allclose(op.times(np.ones((30, 1))), np.full((40, 1), 30.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_one_column_products_run_the_vector_products_at_v4(v3, monkeypatch, dtype, order):
    """At x86-64-v4 (``VECTOR_LEVELS``), one thread, every one-column product runs ``_core.vector_product``: the
    ``A.T (A v)`` / power pass and gd pair (one read of A, not BLAS's two GEMVs) and ``A @ v`` and ``A.T @ w`` alone
    (HZ's rule kept those on GEMV), each agreeing with NumPy; on two threads and from two columns on none do (BLAS, the
    one-pass kernels)."""
    monkeypatch.setattr(choice, "_level", "x86-64-v4")
    rng = np.random.default_rng(6)
    A = np.asarray(rng.standard_normal((90, 70)), dtype=dtype, order=order)
    V, W = rng.standard_normal((70, 1)), rng.standard_normal((90, 1))
    op = InMemory(A)
    for kind in ("matmul", "rmatmul", "gram", "gd"):
        assert is_vector_product(op._route(kind, 1, 1)[3])
        assert op._route(kind, 1, 2)[3] is None
    assert op._route("gd", 2, 1)[3] is None and op._route("matmul", 2, 1)[3] is None

    def no_blas(*args):
        raise AssertionError("BLAS route taken")

    monkeypatch.setattr(memory, "blas_call", no_blas)
    with fastlr.thread_limit(1):
        got = {"power": op.power_pass(V), "gram": op.gram_product(V), "gd": op.gd_products(W, V),
               "times": op.times(V), "rtimes": op.rtimes(W)}
    A64, V32, W32 = A.astype(np.float64), V.astype(dtype), W.astype(dtype)
    _close(got["power"][0], A64 @ V32, dtype)
    _close(got["power"][1], A64.T @ (A64 @ V32), dtype)
    _close(got["gram"], A64.T @ (A64 @ V32), dtype)
    _close(got["gd"][0], A64 @ V32, dtype)
    _close(got["gd"][1], A64.T @ W32, dtype)
    _close(got["times"], A64 @ V32, dtype)
    _close(got["rtimes"], A64.T @ W32, dtype)
    assert choice.vector_product(1, 1, "baseline") is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_one_column_blas_route_is_numpys_gemv(v3, monkeypatch, dtype, order):
    """Where a one-column ``A @ v`` / ``A.T @ w`` runs BLAS (two threads), the route takes NumPy's layout (no swap:
    the swapped layout is the same GEMV, bit for bit, with three views more) and returns NumPy's own result, bit for
    bit, C-contiguous; wider factors keep BLAS's layout rule."""
    monkeypatch.setattr(choice, "_level", "x86-64-v4")
    rng = np.random.default_rng(8)
    A = np.asarray(rng.standard_normal((300, 70)), dtype=dtype, order=order)
    V, W = rng.standard_normal((70, 1)).astype(dtype), rng.standard_normal((300, 1)).astype(dtype)
    op = InMemory(A)
    for kind in ("matmul", "rmatmul"):
        assert op._route(kind, 1, 2) == (False, False, False, None)
        with fastlr.thread_limit(2):
            got = op.times(V) if kind == "matmul" else op.rtimes(W)
        assert got.flags.c_contiguous and got.dtype == dtype
        np.testing.assert_array_equal(got, A @ V if kind == "matmul" else A.T @ W)
    # BLAS's own rule past the kernels' widths (``blas_swapped``): tall C-order A's A.T @ W swapped, F-order A's A @ V
    # in float64 only
    wide = op._route("rmatmul", 200, 2)[2] if order == "C" else op._route("matmul", 200, 2)[1]
    assert wide == (order == "C" or dtype == np.float64)
