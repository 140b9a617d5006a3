"""The learned-sketch loss and its hand-derived gradients (fastlr._gradients).

Both gradients are checked against finite differences of their own forward in
float64, against each other, at ties and zero loss, in float32, and across backends.
"""

import numpy as np
import pytest
import scipy.sparse as sp

import fastlr
from fastlr._gradients import TrainingMatrix, loss_and_grad
from fastlr.sketch import countsketch_hash
from helpers import messy_csr

REF = "numpy"


def problem(seed, *, sparse=False, n=48, d=20, m=8, rank=6, dtype=np.float64):
    """A near-low-rank matrix with a slowly decaying tail, and a CountSketch with non-unit values."""
    rng = np.random.default_rng(seed)
    if sparse:
        A = messy_csr(n, d, 0.35, rng)
    else:
        A = (rng.standard_normal((n, rank)) * 0.7 ** np.arange(rank)) @ rng.standard_normal((rank, d))
        A += 0.1 * rng.standard_normal((n, d))
    rows, signs = countsketch_hash(seed, m, 0, n)
    values = signs * rng.uniform(0.5, 1.5, n)
    return TrainingMatrix(A.astype(dtype)), rows, values, m


def loss_fn(op, rows, m, k, **kw):
    return lambda v: loss_and_grad(op, REF, k, rows, v.astype(op.dtype), m, want_grad=False, **kw)[0]


def finite_differences(f, v, h=1e-4):
    """Fourth-order central differences, coordinate by coordinate (truncation error O(h^4))."""
    g = np.empty_like(v)
    for i in range(v.size):
        e = np.zeros_like(v)
        e[i] = h
        g[i] = (-f(v + 2 * e) + 8 * f(v + e) - 8 * f(v - e) + f(v - 2 * e)) / (12 * h)
    return g


def rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def with_fixed_rows(op, seed, m_fixed=4):
    """Make op a jointly trained mixed sketch: a fixed random CountSketch stacked below."""
    op.fixed_sketch = fastlr.CountSketch(m_fixed, op.shape[0], seed=seed + 100).apply(op.A, backend="numpy")
    return op


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("mixed", [False, True], ids=["plain", "mixed"])
def test_exact_gradient_matches_finite_differences(seed, sparse, mixed):
    op, rows, v, m = problem(seed, sparse=sparse)
    if mixed:
        with_fixed_rows(op, seed)
    k = 3 + seed
    loss, g = loss_and_grad(op, REF, k, rows, v, m)
    assert loss > 0 and np.isfinite(g).all() and np.abs(g).max() > 0
    assert rel_err(g, finite_differences(loss_fn(op, rows, m, k), v)) <= 1e-6


@pytest.mark.parametrize("iters", [0, 1, 4])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_power_gradient_matches_finite_differences_of_its_forward(iters, sparse):
    op, rows, v, m = problem(3, sparse=sparse)
    with_fixed_rows(op, 3)
    k = 4
    omega = np.random.default_rng(0).standard_normal((op.shape[1], k))
    kw = dict(gradient="power", power_iters=iters, omega=omega)
    loss, g = loss_and_grad(op, REF, k, rows, v, m, **kw)
    exact_loss = loss_and_grad(op, REF, k, rows, v, m, want_grad=False)[0]
    assert loss >= exact_loss - 1e-12  # T steps capture at most the top-k energy (Ky Fan)
    assert rel_err(g, finite_differences(loss_fn(op, rows, m, k, **kw), v)) <= 1e-6


def test_power_gradient_converges_to_exact():
    op, rows, v, m = problem(4)
    k = 3
    _, exact = loss_and_grad(op, REF, k, rows, v, m)
    omega = np.random.default_rng(1).standard_normal((op.shape[1], k))
    errors = [
        rel_err(loss_and_grad(op, REF, k, rows, v, m, gradient="power", power_iters=t, omega=omega)[1], exact)
        for t in (1, 4, 16, 64, 256)
    ]
    assert errors[0] > 1e-3  # a short iteration is a different function
    assert all(b <= a * 1.01 for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-9


def tied_problem():
    """A = diag(C, C) with the same sketch on both halves: every singular value of B is doubled,
    so sigma_k = sigma_{k+1} for odd k."""
    rng = np.random.default_rng(5)
    C = rng.standard_normal((30, 12)) * 0.8 ** np.arange(12)
    A = sp.block_diag([C, C]).toarray()
    half_rows, signs = countsketch_hash(7, 4, 0, 30)
    values_half = signs * rng.uniform(0.5, 1.5, 30)
    rows = np.concatenate([half_rows, half_rows + 4])
    values = np.concatenate([values_half, values_half])
    return TrainingMatrix(A), rows, values, 8


def test_ties_give_finite_gradients():
    op, rows, v, m = tied_problem()
    U, s, Vt = np.linalg.svd(op.with_backend(REF).countsketch(rows, v, m), full_matrices=False)
    B = op.A @ Vt.T
    sb = np.linalg.svd(B, compute_uv=False)
    k = 3
    assert abs(sb[k - 1] - sb[k]) <= 1e-10 * sb[0]  # the tie is really there
    omega = np.random.default_rng(2).standard_normal((op.shape[1], k))
    _, g_untied = loss_and_grad(op, REF, k + 1, rows, v, m)
    for kw in ({}, dict(gradient="power", power_iters=20, omega=omega)):
        loss, g = loss_and_grad(op, REF, k, rows, v, m, **kw)
        assert np.isfinite(loss) and np.isfinite(g).all()
        assert np.linalg.norm(g) < 10 * np.linalg.norm(g_untied)


def test_tie_gradient_is_a_one_sided_derivative():
    # At a tie F = sum of the top-k eigenvalues has directional derivatives; the
    # formula picks one eigenbasis, and along -g the loss still decreases.
    op, rows, v, m = tied_problem()
    k = 3
    f = loss_fn(op, rows, m, k)
    loss, g = loss_and_grad(op, REF, k, rows, v, m)
    step = 1e-4 / np.linalg.norm(g)
    assert f(v - step * g) < loss


def test_zero_loss_gives_zero_gradient_not_nan():
    rng = np.random.default_rng(6)
    A = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 15))  # rank 3 <= k: SCW recovers A exactly
    rows, values = countsketch_hash(0, 6, 0, 40)
    omega = rng.standard_normal((15, 4))
    for kw in ({}, dict(gradient="power", power_iters=5, omega=omega)):
        loss, g = loss_and_grad(TrainingMatrix(A), REF, 4, rows, values, 6, **kw)
        assert loss < 1e-6 * np.linalg.norm(A)
        assert np.array_equal(g, np.zeros(40))
    loss, g = loss_and_grad(TrainingMatrix(np.zeros((40, 15))), REF, 4, rows, values, 6)
    assert loss == 0.0 and np.array_equal(g, np.zeros(40))


def test_gradient_is_orthogonal_to_each_rows_values():
    # Scaling the values of one row of S scales one row of S A and leaves the
    # SCW output unchanged, so sum_{i in row j} v_i g_i = 0 for every row j.
    op, rows, v, m = problem(8)
    _, g = loss_and_grad(op, REF, 4, rows, v, m)
    per_row = np.bincount(rows, weights=v * g, minlength=m)
    assert np.abs(per_row).max() <= 1e-12 * np.abs(v * g).max() * len(v)
    shared = np.bincount(rows, minlength=m) >= 2  # a row with one nonzero has nothing to trade off
    assert np.bincount(rows, weights=np.abs(v * g), minlength=m)[shared].min() > 0


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_float32_gradient_close_to_float64(sparse):
    op64, rows, v, m = problem(9, sparse=sparse, n=300, d=60, m=12)
    A32 = op64.A.astype(np.float32)
    op32 = TrainingMatrix(A32)
    k = 5
    l64, g64 = loss_and_grad(op64, REF, k, rows, v, m)
    l32, g32 = loss_and_grad(op32, REF, k, rows, v.astype(np.float32), m)
    assert abs(l32 - l64) <= 1e-5 * l64
    assert rel_err(g32, g64) <= 1e-4


@pytest.mark.parametrize("gradient", ["exact", "power"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_every_backend_gives_the_same_gradient(fast_backend, dtype, gradient, sparse):
    op, rows, v, m = problem(10, sparse=sparse, n=500, d=40, m=10, dtype=dtype)
    with_fixed_rows(op, 10)
    k = 4
    kw = dict(gradient=gradient, power_iters=6, omega=np.random.default_rng(3).standard_normal((40, k)))
    values = v.astype(dtype)
    l_ref, g_ref = loss_and_grad(op, REF, k, rows, values, m, **kw)
    l, g = loss_and_grad(op, fast_backend, k, rows, values, m, **kw)
    tol = 1e-10 if dtype == np.float64 else 2e-3
    assert abs(l - l_ref) <= tol * l_ref
    assert rel_err(g, g_ref) <= tol
