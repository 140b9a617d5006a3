"""The dense products' route remembered (``InMemory._route``, ``choice.route_key``) and the BLAS thread check
(``_linalg.blas_call``): each product asks the rule once per width, thread count and state, and every input the rule
reads (the override, the thread count, the ISA cap, the calibration, a pinned level) still changes the route at
the next call. BLAS's own thread count is read at every call, so a count the user set in between is honoured."""

import numpy as np
import pytest
from conftest import require_backend
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _backend, _linalg
from fastlr._matrix import InMemory, calibration, choice, memory


@pytest.fixture
def counted(monkeypatch):
    """Calls of the rule (``use_kernel``) from ``InMemory``, the table's thresholds (no calibration run)."""
    monkeypatch.delenv("FASTLR_PRODUCT_CHOICE", raising=False)
    monkeypatch.setenv("FASTLR_CALIBRATION", "off")
    choice.cache_sizes()  # read once, before any route is remembered (the key holds them)
    # routes of earlier tests' operands of the same shape left out
    monkeypatch.setattr(choice, "routes", {}, raising=False)
    monkeypatch.setattr(memory, "routes", choice.routes, raising=False)
    calls = []
    real = memory.use_kernel
    monkeypatch.setattr(memory, "use_kernel", lambda *a, **k: calls.append(a[:2]) or real(*a, **k))
    return calls


def test_the_rule_runs_once_per_width_and_state(counted, monkeypatch):
    """Repeated products of one width ask ``use_kernel`` once; a new width, kind or operand of another shape asks
    again; the route (kernel or BLAS) is the rule's throughout."""
    monkeypatch.setattr(choice, "_level", "x86-64-v3")
    rng = np.random.default_rng(0)
    A = rng.standard_normal((300, 200))
    op = InMemory(A)
    V = rng.standard_normal((200, 4))
    with fastlr.thread_limit(1):
        for _ in range(3):
            np.testing.assert_allclose(op.times(V), A @ V, rtol=1e-12, atol=1e-12)
        assert counted.count(("matmul", 4)) == 1
        op.times(V[:, :3])
        op.rtimes(rng.standard_normal((300, 4)))
        op.rtimes(rng.standard_normal((300, 4)))
        assert counted.count(("matmul", 3)) == 1 and counted.count(("rmatmul", 4)) == 1
        InMemory(A[:, :150]).times(V[:150])  # another shape: its own route
        assert counted.count(("matmul", 4)) == 2
        assert op._kernel_for("matmul", 4) == choice.use_kernel("matmul", 4, A.dtype, "C", factor_rows=200,
                                                                 matrix_bytes=A.nbytes)


def test_the_override_and_the_thread_count_change_the_route(counted, monkeypatch):
    """FASTLR_PRODUCT_CHOICE set or changed between two products, and another thread count, reach the next call."""
    monkeypatch.setattr(choice, "_level", "x86-64-v3")
    op = InMemory(np.ones((300, 200)))
    with fastlr.thread_limit(1):
        assert op._kernel_for("matmul", 4) and op._kernel_for("matmul", 4)
        monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "blas")
        assert not op._kernel_for("matmul", 4)
        monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "kernel")
        assert op._kernel_for("matmul", 1)
        monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "fast")
        with pytest.raises(ValueError, match="FASTLR_PRODUCT_CHOICE"):
            op.times(np.ones((200, 4)))
        monkeypatch.delenv("FASTLR_PRODUCT_CHOICE")
        assert not op._kernel_for("matmul", 1)
    assert counted.count(("matmul", 4)) == 3
    with fastlr.thread_limit(2):
        op._kernel_for("matmul", 4)
    assert counted.count(("matmul", 4)) == 4


def test_the_isa_cap_pinned_level_and_calibration_change_the_route(counted, monkeypatch):
    """The ISA cap (``_core._cap_isa``), a level pinned by hand, the cache sizes and a calibration reset reach the
    next product after a remembered one."""
    core = _backend.get_backend(require_backend("cpp"))
    if core.build_info().get("isa") not in choice.LEVELS:
        pytest.skip("a build without run-time dispatch has one level")
    op = InMemory(np.ones((300, 200)))
    previous = core._cap_isa(1)
    try:
        with fastlr.thread_limit(1):
            assert op._kernel_for("gram", 8)  # x86-64-v3: the kernel below 40 columns
            core._cap_isa(0)
            assert not op._kernel_for("gram", 8)  # baseline runs BLAS
            core._cap_isa(1)
            assert op._kernel_for("gram", 8)
            monkeypatch.setattr(choice, "_level", "baseline")
            assert not op._kernel_for("gram", 8)
            monkeypatch.setattr(choice, "_level", None)
            assert op._kernel_for("gram", 8)
            sizes = choice.cache_sizes()
            monkeypatch.setattr(choice, "_cache_sizes", (1 << 10, 1 << 12))  # V (200 x 8 float64) past both
            assert not op._kernel_for("gram", 8)
            monkeypatch.setattr(choice, "_cache_sizes", sizes)
            asked = len(counted)
            calibration.reset()
            op._kernel_for("gram", 8)
            assert len(counted) == asked + 1
    finally:
        core._cap_isa(previous)


def test_blas_call_reads_the_count_the_user_set(monkeypatch):
    """``blas_call`` reads each library's count at every call: a count set with threadpoolctl between two products
    is seen, and the BLAS route limits BLAS to fastlr's one thread for the call and gives the user's count back."""
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "blas")  # one column on one thread: else fastlr's vector products
    with _linalg.blas_limit(1):
        pass
    libraries = [lib for lib, _ in _linalg._controller]
    if not libraries:
        pytest.skip("no BLAS library found")
    rng = np.random.default_rng(0)
    A, V = rng.standard_normal((300, 200)), rng.standard_normal((200, 1))  # BLAS's GEMV
    op = InMemory(A)
    seen = []
    real = _linalg.blas_product

    def record(M, F, swapped):
        seen.append([lib.num_threads for lib in libraries])
        return real(M, F, swapped)

    with fastlr.thread_limit(1):
        for n in (1, 2, 1):
            with threadpool_limits(n, user_api="blas"):
                counts = lambda: [lib.num_threads for lib in libraries]  # noqa: E731
                assert _linalg.blas_call(n, counts) == [n] * len(libraries)
                assert _linalg.blas_call(n + 1, counts) == [n + 1] * len(libraries)
                memory.blas_product, saved = record, memory.blas_product
                try:
                    np.testing.assert_allclose(op.times(V), A @ V, rtol=1e-12, atol=1e-12)
                finally:
                    memory.blas_product = saved
                assert seen[-1] == [1] * len(libraries)  # fastlr's one thread inside the call
                assert all(lib.num_threads == n for lib in libraries)  # the user's count after it


def test_openblas_count_read_without_ctypes_calls():
    """OpenBLAS's pthreads build exports its thread count (``blas_cpu_number``): ``_thread_getter`` reads it
    (no foreign call), and it agrees with threadpoolctl's count at 1 and 2."""
    with _linalg.blas_limit(1):
        pass
    openblas = [(lib, get) for lib, get in _linalg._controller
                if lib.internal_api == "openblas" and lib.threading_layer == "pthreads"]
    if not openblas:
        pytest.skip("no OpenBLAS pthreads build loaded")
    for n in (1, 2):
        with threadpool_limits(n, user_api="blas"):
            for lib, get in openblas:
                assert get() == lib.num_threads == n
                counter = _linalg._counter(lib, lib._get_symbol("openblas_get_num_threads"))
                assert counter is not None and counter() == n


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blas_route_is_blas_times_bit_for_bit(monkeypatch, order, dtype):
    """The remembered layouts (``blas_swapped`` of ``blas_swap``) give what ``blas_times`` with ``blas_swap``'s
    layout gives, bit for bit, for every product on the BLAS route; an operand of the same shape in the other order
    keys its own route."""
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "blas")
    rng = np.random.default_rng(3)
    A = np.asarray(rng.standard_normal((260, 130)).astype(dtype), order=order)
    op, other = InMemory(A), InMemory(np.asarray(A, order="F" if order == "C" else "C"))
    with fastlr.thread_limit(1), threadpool_limits(1, user_api="blas"):  # one BLAS count for both sides
        _products_match(op, other, A, dtype, rng)


def _products_match(op, other, A, dtype, rng):
    for columns in (1, 8, 9, 60):
        V, W = rng.standard_normal((130, columns)).astype(dtype), rng.standard_normal((260, columns)).astype(dtype)
        av = _linalg.blas_times(A, V, choice.blas_swap(dtype, columns, 130))
        atw = _linalg.blas_times(A.T, W, choice.blas_swap(dtype, columns, 260))
        for operand in (op, other, op):
            M = operand.A
            assert np.array_equal(operand.times(V), _linalg.blas_times(M, V, choice.blas_swap(dtype, columns, 130)))
            assert np.array_equal(operand.rtimes(W),
                                  _linalg.blas_times(M.T, W, choice.blas_swap(dtype, columns, 260)))
        assert np.array_equal(op.times(V), av) and np.array_equal(op.rtimes(W), atw)
        P, Z = op.power_pass(V)
        assert np.array_equal(P, av)
        assert np.array_equal(Z, _linalg.blas_times(A.T, av, choice.blas_swap(dtype, columns, 260)))
        assert np.array_equal(op.gram_product(V), Z)
        got = op.gd_products(W, V)
        assert np.array_equal(got[0], av) and np.array_equal(got[1], atw)
