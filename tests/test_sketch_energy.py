"""S A and A's squared row norms from one pass (``countsketch_(seeded_)dense_energy``, HeavyRowSketch on dense A):
each backend's fused call against its own two calls (bit for bit) and the NumPy reference, and HeavyRowSketch's
results through it against the two-pass route."""

import numpy as np
import pytest

import fastlr
from fastlr._kernels import reference as ref
from fastlr._matrix import InMemory
from fastlr.heavy_rows import HeavyRowSketch

# (n, d, m): narrow rows (run and scatter paths), wide rows in column strips (768 B - 12 KiB with over 8 KiB of
# accumulator: countsketch_strips), rows over 12 KiB (the bucket passes, float32 and float64), m above the bucket
# passes' limit, single rows, columns and buckets, empty A
CASES = [(1, 1, 1), (7, 3, 2), (300, 8, 5), (1030, 61, 7), (517, 37, 1), (129, 200, 9), (261, 300, 20),
         (1029, 520, 17), (90, 1, 3), (5, 400, 1300), (0, 5, 3), (6, 0, 2), (1, 700, 4), (70, 3200, 6)]


def _matrix(n, d, dtype, order, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d)) * rng.uniform(0.1, 10, (n, 1))
    return np.asarray(A, dtype=dtype, order=order)


def _arrays(n, m, dtype, seed, runs):
    rng = np.random.default_rng(seed + 1)
    rows = rng.integers(0, m, n).astype(np.int64)
    return np.sort(rows) if runs else rows, rng.standard_normal(n).astype(dtype)


def _both(kernels, A, m, sketch):
    """(fused, (S A, norms) of the two separate calls) for the array (rows, values) or seeded (seed) sketch."""
    if isinstance(sketch, int):
        return (kernels.countsketch_seeded_dense_energy(A, sketch, m),
                (kernels.countsketch_seeded_dense(A, sketch, m), kernels.row_squared_norms_dense(A)))
    return (kernels.countsketch_dense_energy(A, *sketch, m),
            (kernels.countsketch_dense(A, *sketch, m), kernels.row_squared_norms_dense(A)))


def _assert_same(fused, separate):
    (SA, energy), (SA2, energy2) = fused, separate
    assert SA.dtype == SA2.dtype and energy.dtype == np.float64 and energy.shape == energy2.shape
    np.testing.assert_array_equal(SA, SA2)
    np.testing.assert_array_equal(energy, energy2)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("n,d,m", CASES)
@pytest.mark.parametrize("kind", ["seeded", "arrays", "runs"])
def test_fused_equals_the_two_calls_and_the_reference(backend, dtype, order, n, d, m, kind):
    A = _matrix(n, d, dtype, order, n + 7 * d + m)
    sketch = 11 if kind == "seeded" else _arrays(n, m, dtype, n + d, kind == "runs")
    fused, separate = _both(fastlr.get_backend(backend), A, m, sketch)
    _assert_same(fused, separate)
    expected = _both(ref, A, m, sketch)[1]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fused[0], expected[0], rtol=tol, atol=tol * max(1.0, np.abs(A).max(initial=0) * 10))
    np.testing.assert_allclose(fused[1], expected[1], rtol=1e-13, atol=0)


@pytest.mark.parametrize("threads", [1, 2])
def test_every_thread_count_gives_the_same_bits(dtype, threads):
    kernels = fastlr.get_backend(fastlr.available_backends()[0])
    A = _matrix(40000, 24, dtype, "C", 3)  # several row chunks
    with fastlr.thread_limit(threads):
        fused = kernels.countsketch_seeded_dense_energy(A, 5, 13)
    with fastlr.thread_limit(1):
        _assert_same(fused, (kernels.countsketch_seeded_dense(A, 5, 13), kernels.row_squared_norms_dense(A)))


def test_every_isa_level(isa_level, dtype):
    core = fastlr.get_backend("cpp")
    for n, d, m in [(1030, 61, 7), (261, 300, 20), (1029, 520, 17), (600, 1080, 20), (300, 800, 1300)]:
        A = _matrix(n, d, dtype, "C", n + d)
        for sketch in (3, _arrays(n, m, dtype, d, False), _arrays(n, m, dtype, d, True)):
            _assert_same(*_both(core, A, m, sketch))
            assert core._last_kernel_isa() == isa_level


def test_huge_and_non_finite_rows_as_the_two_calls(backend):
    """Rows whose squares overflow (norm inf, S A finite), an inf and a NaN: the fused call gives what the
    separate calls give."""
    A = _matrix(200, 300, np.float64, "C", 1)
    A[3] *= 1e160
    A[50, 7] = np.inf
    A[120, 299] = np.nan
    for sketch in (2, _arrays(200, 6, np.float64, 0, False)):
        fused, separate = _both(fastlr.get_backend(backend), A, 6, sketch)
        assert np.isinf(fused[1][3]) and np.isinf(fused[1][50]) and np.isnan(fused[1][120])
        _assert_same(fused, separate)


def test_rows_out_of_range_are_refused(backend):
    A = _matrix(10, 300, np.float64, "C", 2)
    rows, values = _arrays(10, 4, np.float64, 0, False)
    rows[6] = 4
    with pytest.raises(ValueError):
        fastlr.get_backend(backend).countsketch_dense_energy(A, rows, values, 4)


# ------------------------------------------------------------------------------------------------ HeavyRowSketch


def _two_pass(H, A, backend):
    """HeavyRowSketch's result through the route of before: the norms' pass, then the adapted sketch's."""
    op = InMemory(A, backend=backend)
    return op.apply_sketch(H.adapted_to(op.row_squared_norms()))


def _bases(n):
    rng = np.random.default_rng(1)
    learned = fastlr.CountSketch.from_arrays(rng.integers(0, 12, n), rng.standard_normal(n), 12)
    return {"seeded": fastlr.CountSketch(12, n, seed=3), "learned": learned,
            "stacked": fastlr.stack([fastlr.CountSketch(6, n, seed=0), learned, fastlr.CountSketch(5, n, seed=1)])}


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("heavy", [False, True])
@pytest.mark.parametrize("base", ["seeded", "learned", "stacked"])
def test_heavy_row_sketch_as_two_passes(backend, dtype, order, heavy, base):
    n = 400
    A = _matrix(n, 300, dtype, order, 5)
    if heavy:
        A[[9, 200]] *= 30.0
    H = HeavyRowSketch(_bases(n)[base])
    assert (len(H.heavy(InMemory(A).row_squared_norms())) > 0) == heavy
    np.testing.assert_array_equal(H.apply(A, backend=backend), _two_pass(H, A, backend))


def test_dense_input_reads_the_norms_from_the_sketchs_pass(monkeypatch):
    """No separate norm pass on dense in-memory A without heavy rows (the fused call gives them); sparse A and
    A with heavy rows still get the same result as before."""
    A = _matrix(300, 200, np.float64, "C", 8)
    H = HeavyRowSketch(fastlr.CountSketch(10, 300, seed=1))
    expected = _two_pass(H, A, None)

    def refused(self):
        raise AssertionError("a separate pass for the row norms")

    monkeypatch.setattr(InMemory, "row_squared_norms", refused)
    np.testing.assert_array_equal(H @ A, expected)
    np.testing.assert_array_equal(fastlr.scw(A, H, 5).U, fastlr.scw(A, H.base, 5).U)


def test_non_finite_input_is_refused_as_before(backend):
    A = _matrix(100, 40, np.float64, "C", 9)
    A[17, 3] = np.nan
    H = HeavyRowSketch(fastlr.CountSketch(8, 100, seed=0))
    with pytest.raises(ValueError, match="contains NaN or infinity"):
        H.apply(A, backend=backend)
    A[17, 3] = 1e300  # finite A whose row's square overflows (norm inf: the row is heavy, alone in S A)
    np.testing.assert_array_equal(H.apply(A, backend=backend), _two_pass(H, A, backend))
