"""The GD kernels (gd_masked_grad, optimizer_step) against the NumPy reference, every backend."""

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import RTOL, assert_close, layouts, messy_csr

import fastlr
from fastlr._kernels import reference as ref
from fastlr._kernels.reference.gd import OPTIMIZER_STATES
from fastlr.gd.optim import STATE_SIZES

KINDS = list(OPTIMIZER_STATES)


def _factors(m, n, k, dtype, rng):
    return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((n, k)).astype(dtype)


def _explicit(A, U, V, l2):
    """Gradient and loss written out with the dense mask of A's stored entries (duplicates summed)."""
    A = sp.csr_matrix(A, dtype=np.float64)
    counts = sp.csr_matrix((np.ones_like(A.data), A.indices, A.indptr), shape=A.shape).toarray()
    U, V = U.astype(np.float64), V.astype(np.float64)
    # a duplicated entry (i, j) stored c times with values a_1..a_c contributes sum_t (x - a_t)^2
    X = U @ V.T
    R = counts * X - A.toarray()  # sum_t (x - a_t)
    sq = np.zeros(A.shape)
    coo = A.tocoo()
    np.add.at(sq, (coo.row, coo.col), (X[coo.row, coo.col] - coo.data) ** 2)
    loss = 0.5 * sq.sum() + 0.5 * l2 * ((U**2).sum() + (V**2).sum())
    return R @ V + l2 * U, R.T @ U + l2 * V, loss


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_reference_masked_grad_matches_explicit(l2):
    rng = np.random.default_rng(0)
    A = messy_csr(40, 30, 0.2, rng)
    U, V = _factors(40, 30, 4, np.float64, rng)
    GU, GV, loss = ref.gd_masked_grad(A.indptr, A.indices, A.data, U, V, l2)
    eGU, eGV, eloss = _explicit(A, U, V, l2)
    np.testing.assert_allclose(GU, eGU, atol=1e-12)
    np.testing.assert_allclose(GV, eGV, atol=1e-12)
    assert loss == pytest.approx(eloss, rel=1e-13)


def test_reference_masked_grad_is_the_derivative_of_the_loss():
    """Central differences of the returned loss agree with the returned gradient."""
    rng = np.random.default_rng(1)
    A = messy_csr(12, 9, 0.4, rng)
    U, V = _factors(12, 9, 3, np.float64, rng)
    GU, GV, _ = ref.gd_masked_grad(A.indptr, A.indices, A.data, U, V, 0.2)
    h = 1e-6
    for X, G in ((U, GU), (V, GV)):
        for idx in [(0, 0), (5, 2), (X.shape[0] - 1, 1)]:
            old = X[idx]
            X[idx] = old + h
            up = ref.gd_masked_grad(A.indptr, A.indices, A.data, U, V, 0.2)[2]
            X[idx] = old - h
            down = ref.gd_masked_grad(A.indptr, A.indices, A.data, U, V, 0.2)[2]
            X[idx] = old
            assert (up - down) / (2 * h) == pytest.approx(G[idx], rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize(
    "m,n,k,density", [(1, 1, 1, 1.0), (7, 3, 2, 0.5), (60, 45, 5, 0.2), (300, 120, 16, 0.05), (2000, 50, 3, 0.3)]
)
def test_masked_grad(backend, dtype, index_dtype, m, n, k, density):
    rng = np.random.default_rng(m + n + k)
    A = messy_csr(m, n, density, rng, dtype=dtype, index_dtype=index_dtype)
    U, V = _factors(m, n, k, dtype, rng)
    l2 = 0.25
    GU, GV, loss = fastlr.get_backend(backend).gd_masked_grad(A.indptr, A.indices, A.data, U, V, l2)
    eGU, eGV, eloss = ref.gd_masked_grad(
        A.indptr.astype(np.int64), A.indices.astype(np.int64), A.data.astype(np.float64),
        U.astype(np.float64), V.astype(np.float64), l2,
    )
    assert GU.dtype == dtype and GV.dtype == dtype and isinstance(loss, float)
    assert GU.shape == (m, k) and GV.shape == (n, k)
    # each gradient entry sums about nnz/rows terms of size |r| |v|
    scale = (np.abs(eGU).max() + np.abs(eGV).max()) * max(1.0, np.sqrt(A.nnz / max(min(m, n), 1)))
    assert_close(GU, eGU, dtype, scale=scale)
    assert_close(GV, eGV, dtype, scale=scale)
    assert loss == pytest.approx(eloss, rel=RTOL[dtype] * 10 * np.sqrt(A.nnz + 1))


def test_masked_grad_full_pattern_equals_dense_formula(backend, dtype, layout):
    """With every entry observed the masked gradient is U (V^T V) - A V (and V (U^T U) - A^T U)."""
    rng = np.random.default_rng(3)
    A = layouts(rng.standard_normal((50, 35)).astype(dtype))[layout]
    U, V = _factors(50, 35, 6, dtype, rng)
    csr = sp.csr_matrix(np.where(A == 0, 1e-3, A).astype(dtype))  # keep every entry stored
    assert csr.nnz == A.size
    GU, GV, loss = fastlr.get_backend(backend).gd_masked_grad(csr.indptr, csr.indices, csr.data, U, V, 0.0)
    D = csr.toarray().astype(np.float64)
    U64, V64 = U.astype(np.float64), V.astype(np.float64)
    assert_close(GU, U64 @ (V64.T @ V64) - D @ V64, dtype, scale=100.0)
    assert_close(GV, V64 @ (U64.T @ U64) - D.T @ U64, dtype, scale=100.0)
    assert loss == pytest.approx(0.5 * np.sum((D - U64 @ V64.T) ** 2), rel=1e-4 if dtype == np.float32 else 1e-12)


def test_masked_grad_empty_pattern_and_empty_rows(backend):
    U, V = _factors(4, 3, 2, np.float64, np.random.default_rng(0))
    indptr = np.zeros(5, dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    GU, GV, loss = fastlr.get_backend(backend).gd_masked_grad(indptr, empty, np.zeros(0), U, V, 0.5)
    np.testing.assert_allclose(GU, 0.5 * U, rtol=1e-15)
    np.testing.assert_allclose(GV, 0.5 * V, rtol=1e-15)
    assert loss == pytest.approx(0.25 * (np.sum(U**2) + np.sum(V**2)), rel=1e-14)


def test_masked_grad_inputs_unchanged(backend):
    rng = np.random.default_rng(4)
    A = messy_csr(30, 20, 0.3, rng)
    U, V = _factors(30, 20, 3, np.float64, rng)
    copies = [x.copy() for x in (A.indptr, A.indices, A.data, U, V)]
    fastlr.get_backend(backend).gd_masked_grad(A.indptr, A.indices, A.data, U, V, 0.1)
    for before, after in zip(copies, (A.indptr, A.indices, A.data, U, V)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda a: a.update(indices=np.where(a["indices"] == a["indices"][0], 99, a["indices"])), "index"),
        (lambda a: a.update(indptr=a["indptr"][::-1].copy()), "indptr"),
        (lambda a: a.update(V=a["V"][:, :2].copy()), "V|columns"),
        (lambda a: a.update(l2=-1.0), "l2"),
    ],
)
def test_masked_grad_rejects_bad_input(backend, change, match):
    rng = np.random.default_rng(5)
    A = messy_csr(10, 8, 0.4, rng, index_dtype=np.int64)
    U, V = _factors(10, 8, 3, np.float64, rng)
    args = dict(indptr=A.indptr, indices=A.indices.copy(), data=A.data, U=U, V=V, l2=0.0)
    change(args)
    with pytest.raises(ValueError, match=match):
        fastlr.get_backend(backend).gd_masked_grad(**args)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(1,), (7,), (40, 3), (3000, 32)])
def test_optimizer_step(backend, dtype, kind, shape):
    rng = np.random.default_rng(len(shape) + shape[0])
    kernels = fastlr.get_backend(backend)
    p = rng.standard_normal(shape).astype(dtype)
    state = np.zeros((OPTIMIZER_STATES[kind],) + shape, dtype=dtype)
    expected_p = p.astype(np.float64)
    expected_state = state.astype(np.float64)
    for step in range(1, 6):
        g = rng.standard_normal(shape).astype(dtype)
        hyper = (0.05, 0.9, 0.99, 1e-8, step)
        kernels.optimizer_step(p, g, state, kind, hyper)
        ref.optimizer_step(expected_p, g.astype(np.float64), expected_state, kind, hyper)
    assert p.dtype == dtype and state.dtype == dtype
    assert_close(p, expected_p, dtype, scale=np.abs(expected_p).max() * 10)
    assert_close(state, expected_state, dtype, scale=np.abs(expected_state).max(initial=1.0) * 10)


def test_optimizer_step_formulas():
    """Hand-computed single steps of each optimizer (the reference itself)."""
    g = np.array([2.0, -1.0])
    for kind, state0, p_after, state_after in [
        ("sgd", np.zeros((0, 2)), [1 - 0.2, 1 + 0.1], np.zeros((0, 2))),
        ("momentum", np.array([[1.0, 1.0]]), [1 - 0.1 * 2.5, 1 - 0.1 * (-0.5)], [[2.5, -0.5]]),
        ("nesterov", np.array([[1.0, 1.0]]), [1 - 0.1 * (2 + 0.5 * 2.5), 1 - 0.1 * (-1 + 0.5 * -0.5)], [[2.5, -0.5]]),
        # first Adam step moves every coordinate by lr against the sign of its gradient
        ("adam", np.zeros((2, 2)), [1 - 0.1, 1 + 0.1], [[0.5 * 2, 0.5 * -1], [0.25 * 4, 0.25 * 1]]),
    ]:
        for backend in fastlr.available_backends():
            p = np.ones(2)
            state = state0.copy()
            fastlr.get_backend(backend).optimizer_step(p, g, state, kind, (0.1, 0.5, 0.75, 1e-12, 1))
            np.testing.assert_allclose(p, p_after, rtol=1e-10, err_msg=f"{kind} {backend}")
            np.testing.assert_allclose(state, state_after, rtol=1e-10, err_msg=f"{kind} {backend}")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(kind="rmsprop"), "kind"),
        (dict(hyper=(0.1, 0.9)), "hyper"),
        (dict(hyper=(float("nan"), 0.9, 0.999, 1e-8, 1)), "lr"),
        (dict(hyper=(0.1, 0.9, 0.999, 1e-8, 0)), "step"),
        (dict(grad=np.zeros(3)), "grad"),
        (dict(state=np.zeros((1, 4))), "state"),
    ],
)
def test_optimizer_step_rejects_bad_input(backend, kwargs, match):
    args = dict(param=np.ones(4), grad=np.ones(4), state=np.zeros((2, 4)), kind="adam",
                hyper=(0.1, 0.9, 0.999, 1e-8, 1))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fastlr.get_backend(backend).optimizer_step(**args)


def test_optimizer_state_sizes_agree_with_the_kernels(backend):
    """gd's optimizer keeps the state sizes of its update rules; the kernels (leaves, importing no
    algorithm) keep their own copy: the tables agree and every backend takes states of that size."""
    assert STATE_SIZES == OPTIMIZER_STATES
    kernels = fastlr.get_backend(backend)
    for kind, size in STATE_SIZES.items():
        param = np.zeros((3, 2))
        kernels.optimizer_step(param, np.ones_like(param), np.zeros((size, 3, 2)), kind, (0.1, 0.9, 0.999, 1e-8, 1))
        assert np.all(param < 0), kind


# Every ISA variant of the compiled kernels (x86-64-v4, x86-64-v3, baseline), chosen by _core._cap_isa
# (conftest's isa_level). The baseline has no fused multiply-add, so there the kernels equal NumPy doing
# their operations in their order, in their dtype, to the last bit: run the v3/v4 code instead (a cap
# that does not reach the kernel) and the fused multiply-adds round differently.


def _masked_grad_in_kernel_order(indptr, indices, data, U, V, l2):
    """gd_masked_grad's operations at one thread in its order and dtype (numpy scalars keep the dtype)."""
    t = data.dtype.type
    GU, GV, loss = t(l2) * U, np.zeros_like(V), 0.0
    for i in range(len(U)):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            r = -data[p]
            for q in range(U.shape[1]):
                r = r + U[i, q] * V[j, q]
            loss += float(r) * float(r)
            GU[i] += r * V[j]
            GV[j] += r * U[i]
    loss = 0.0 + 0.5 * loss
    norms = 0.0
    for x in np.concatenate([U.ravel(), V.ravel()]):
        norms += float(x) * float(x)
    GV += t(l2) * V
    return GU, GV, loss + 0.5 * float(t(l2)) * norms


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_masked_grad_at_every_isa_level(isa_level, dtype, index_dtype):
    core = fastlr.get_backend("cpp")
    for m, n, k in [(1, 1, 1), (40, 30, 5), (25, 60, 16), (12, 9, 33)]:
        rng = np.random.default_rng(m * n + k)
        A = messy_csr(m, n, 0.3, rng, dtype=dtype, index_dtype=index_dtype)
        U, V = _factors(m, n, k, dtype, rng)
        l2 = 0.25  # a float32 too: the kernel rounds l2 to A's dtype
        with fastlr.thread_limit(1):
            GU, GV, loss = core.gd_masked_grad(A.indptr, A.indices, A.data, U, V, l2)
        assert core._last_kernel_isa() == isa_level
        if isa_level == 0:
            eGU, eGV, eloss = _masked_grad_in_kernel_order(A.indptr, A.indices, A.data, U, V, l2)
            np.testing.assert_array_equal(GU, eGU)
            np.testing.assert_array_equal(GV, eGV)
            assert loss == eloss
        eGU, eGV, eloss = _explicit(A, U, V, l2)
        scale = (np.abs(eGU).max() + np.abs(eGV).max()) * max(1.0, np.sqrt(A.nnz / max(min(m, n), 1)))
        assert_close(GU, eGU, dtype, scale=scale)
        assert_close(GV, eGV, dtype, scale=scale)
        assert loss == pytest.approx(eloss, rel=RTOL[dtype] * 10 * np.sqrt(A.nnz + 1))


@pytest.mark.parametrize("kind", KINDS)
def test_optimizer_step_at_every_isa_level(isa_level, dtype, kind):
    """Five steps on 2100 entries (several vectors of every ISA and a remainder) against the reference: bit
    for bit in the baseline variant (the reference does the kernel's operations in its order and dtype)."""
    core = fastlr.get_backend("cpp")
    rng = np.random.default_rng(len(kind))
    p = rng.standard_normal((300, 7)).astype(dtype)
    state = np.zeros((OPTIMIZER_STATES[kind],) + p.shape, dtype=dtype)
    same_p, same_state = p.copy(), state.copy()  # the reference in the kernel's dtype
    wide_p, wide_state = p.astype(np.float64), state.astype(np.float64)
    for step in range(1, 6):
        g = rng.standard_normal(p.shape).astype(dtype)
        hyper = (0.05, 0.9, 0.99, 1e-8, step)
        core.optimizer_step(p, g, state, kind, hyper)
        assert core._last_kernel_isa() == isa_level
        ref.optimizer_step(same_p, g, same_state, kind, hyper)
        ref.optimizer_step(wide_p, g.astype(np.float64), wide_state, kind, hyper)
    if isa_level == 0:
        np.testing.assert_array_equal(p, same_p)
        np.testing.assert_array_equal(state, same_state)
    assert_close(p, wide_p, dtype, scale=np.abs(wide_p).max() * 10)
    assert_close(state, wide_state, dtype, scale=np.abs(wide_state).max(initial=1.0) * 10)
