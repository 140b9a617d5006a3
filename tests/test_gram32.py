"""float64 power steps on the Gram matrix formed in float32 (fastlr/_matrix/memory.py ``_Gram32Steps``):
taken where intended, and as accurate as the float64 Gram route it replaces (``GRAM32_MIN_WORK`` = inf),
switching to float64's Gram matrix where float32's rounding could show."""

import numpy as np
import pytest
import scipy.sparse as sp

import fastlr
from fastlr._matrix import memory


def _spectrum(n, d, s, seed):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, len(s))))[0]
    V = np.linalg.qr(rng.standard_normal((d, len(s))))[0]
    return (U * s) @ V.T


def _excess(A, k, U, s, Vt):
    opt = np.sqrt(np.sum(np.linalg.svd(A, compute_uv=False)[k:] ** 2))
    return (np.linalg.norm(A - (U * s) @ Vt) - opt) / np.linalg.norm(A)


@pytest.fixture
def record(monkeypatch):
    """(made, switched): _Gram32Steps made, and the step at which each switched to float64's G."""
    made, switched = [], []
    init, switch = memory._Gram32Steps.__init__, memory._Gram32Steps._switch

    def new_init(self, *a):
        made.append(1)
        init(self, *a)

    monkeypatch.setattr(memory._Gram32Steps, "__init__", new_init)
    monkeypatch.setattr(memory._Gram32Steps, "_switch", lambda self, V: switched.append(self.calls) or switch(self, V))
    return made, switched


def _old(monkeypatch, *a, **kw):
    with monkeypatch.context() as m:
        m.setattr(memory, "GRAM32_MIN_WORK", float("inf"))
        return fastlr.randomized_svd(*a, **kw)


def test_taken_for_float64_k50_1000x900(record):
    made, switched = record
    A = _spectrum(1000, 900, 1.0 / np.arange(1.0, 901.0), 0)
    fastlr.randomized_svd(A, 50, random_state=0)
    assert made and not switched  # 1/i converges slowly: G32's rounding stays far below what is left


@pytest.mark.parametrize("kind", ["float32", "csr", "small"])
def test_not_taken(kind, record):
    made, _ = record
    A = _spectrum(1000, 900, 1.0 / np.arange(1.0, 901.0), 1)
    if kind == "float32":
        A = A.astype(np.float32)
    elif kind == "csr":
        A = sp.csr_matrix(np.where(np.abs(A) > 0.02, A, 0.0))
    else:
        A = A[:300, :200]  # n d^2 below GRAM32_MIN_WORK
    fastlr.randomized_svd(A, 50 if kind != "small" else 10, random_state=0)
    assert not made


@pytest.mark.parametrize("spectrum", ["1/i", "1e4:1", "cluster at k"])
def test_as_accurate_as_float64_gram(spectrum, record, monkeypatch):
    """1000 x 900, k = 50: excess error within 0.1% of the float64 route's, two seeds."""
    made, _ = record
    i = np.arange(1.0, 901.0)
    s = {"1/i": 1 / i, "1e4:1": np.geomspace(1, 1e-4, 900),
         "cluster at k": np.where(i < 50, 1.0, np.where(i <= 65, 0.5, 0.05))}[spectrum]
    A = _spectrum(1000, 900, s, 10)
    opt = np.sqrt(np.sum(s[50:] ** 2))  # A's singular values are s (orthonormal factors)
    norm = np.linalg.norm(A)
    for seed in range(2):
        U, s1, Vt = fastlr.randomized_svd(A, 50, random_state=seed)
        new = (np.linalg.norm(A - (U * s1) @ Vt) - opt) / norm
        U, s1, Vt = _old(monkeypatch, A, 50, random_state=seed)
        old = (np.linalg.norm(A - (U * s1) @ Vt) - opt) / norm
        assert new <= old * 1.001 + 1e-14, (new, old)
    assert made


def test_switches_where_float32_rounding_would_show(record, monkeypatch):
    """1/i^2 at 4000 x 300, k = 10: subspace iteration converges to 2e-17, below G32's rounding (a test on
    G32's share of the rank-k error alone kept it, at 2.6e-11 excess); the switch restores float64's."""
    made, switched = record
    s = 1.0 / np.arange(1.0, 301.0) ** 2
    A = _spectrum(4000, 300, s, 2)
    opt, norm = np.sqrt(np.sum(s[10:] ** 2)), np.linalg.norm(A)
    U, s1, Vt = fastlr.randomized_svd(A, 10, random_state=0)
    new = (np.linalg.norm(A - (U * s1) @ Vt) - opt) / norm
    U, s1, Vt = _old(monkeypatch, A, 10, random_state=0)
    old = (np.linalg.norm(A - (U * s1) @ Vt) - opt) / norm
    assert made and switched
    assert new <= 1e-14 and new <= 10 * old + 1e-15, (new, old)


@pytest.mark.parametrize("case", ["exact_rank8", "rank_deficient", "tiny", "steep_1e8"])
def test_small_inputs_forced(case, record, monkeypatch):
    """With GRAM32_MIN_WORK = 0 every float64 Gram-route input takes it: exactly low-rank input stays
    exact to rounding, rank-deficient and tiny ones match the float64 route and NumPy's SVD."""
    monkeypatch.setattr(memory, "GRAM32_MIN_WORK", 0)
    made, _ = record
    rng = np.random.default_rng(3)
    if case == "exact_rank8":
        A, k = (rng.standard_normal((200, 8)) * np.geomspace(1, 1e-3, 8)) @ rng.standard_normal((8, 60)), 8
    elif case == "rank_deficient":
        A, k = rng.standard_normal((150, 20)) @ rng.standard_normal((20, 40)), 30
    elif case == "tiny":
        A, k = rng.standard_normal((9, 6)), 3
    else:
        A, k = _spectrum(300, 80, np.geomspace(1, 1e-8, 10), 4), 10
        A = A + 1e-10 / np.sqrt(80) * rng.standard_normal((300, 80))
    for seed in range(5):
        U, s, Vt = fastlr.randomized_svd(A, k, random_state=seed)
        new = _excess(A, k, U, s, Vt)
        old = _excess(A, k, *_old(monkeypatch, A, k, random_state=seed))
        assert new <= max(old * 1.01, 1e-13), (case, seed, new, old)
        ref = np.linalg.svd(A, compute_uv=False)[:k]
        np.testing.assert_allclose(s, ref, rtol=1e-9, atol=1e-12 * ref[0])
        np.testing.assert_allclose(U.T @ U, np.eye(k), atol=1e-10)
    assert made


@pytest.mark.parametrize("scale", [1e30, 1e-30])
def test_out_of_float32_range_uses_float64(scale, record, monkeypatch):
    """Entries whose Gram matrix over- or underflows float32 fall back to the float64 Gram route."""
    monkeypatch.setattr(memory, "GRAM32_MIN_WORK", 0)
    made, _ = record
    A = _spectrum(400, 100, 1.0 / np.arange(1.0, 101.0), 5) * scale
    U, s, Vt = fastlr.randomized_svd(A, 10, random_state=0)
    assert not made
    np.testing.assert_allclose(s, np.linalg.svd(A, compute_uv=False)[:10], rtol=1e-6)


def test_nan_raises(monkeypatch):
    monkeypatch.setattr(memory, "GRAM32_MIN_WORK", 0)
    A = _spectrum(400, 100, 1.0 / np.arange(1.0, 101.0), 6)
    A[3, 4] = np.nan
    with pytest.raises(ValueError):
        fastlr.randomized_svd(A, 10, random_state=0)


@pytest.mark.parametrize("route", ["gram32", "float64", "float32"])
def test_gram_products_follow_the_product_choice(route, monkeypatch):
    """The Gram route's products G V (every step, the tested last step, the catch-up after a switch)
    go through ``times``, so the product choice runs them on the one-pass kernel where it beats BLAS
    (1080 x 1080 by 60 columns at x86-64-v4: 1.30 vs 1.58 ms float32, 2.61 vs 3.91 ms float64), on one
    thread whatever fastlr's count (G is small and in cache; a parallel region a step waited for its
    second thread on a busy machine)."""
    from fastlr._matrix import InMemory
    from fastlr._threads import get_num_threads

    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "kernel")
    monkeypatch.setattr(memory, "GRAM32_MIN_WORK", 0 if route == "gram32" else float("inf"))
    monkeypatch.setattr(memory, "SMALL_WORK", 0)  # so that only the one-thread rule keeps G V on one thread
    dtype = np.float32 if route == "float32" else np.float64
    rng = np.random.default_rng(7)
    A = (_spectrum(500, 120, 1.0 / np.arange(1.0, 121.0), 7) + 1e-3 * rng.standard_normal((500, 120))).astype(dtype)
    op = InMemory(A)
    kernels = op.kernels
    calls = []
    matmul = kernels.matmul
    monkeypatch.setattr(kernels, "matmul", lambda X, V: calls.append((X.shape, get_num_threads())) or matmul(X, V))
    steps = op.power_steps(20, 7, 10)
    V = rng.standard_normal((120, 20)).astype(dtype)
    G = A.astype(np.float64).T @ A.astype(np.float64)
    for step in (steps.step, steps.step, steps.step):
        with fastlr.thread_limit(2):
            Z = step(V)
        assert Z.dtype == dtype and Z.shape == V.shape
        ref = G @ V.astype(np.float64)
        tol = 1e-5 if dtype == np.float32 else (1e-6 if route == "gram32" else 1e-12)  # G32: float32's rounding
        np.testing.assert_allclose(Z, ref, rtol=0, atol=tol * np.abs(ref).max())
        V = np.linalg.qr(Z)[0].astype(dtype)
    assert calls and all(call == ((120, 120), 1) for call in calls)  # G (d x d) on one thread, not A
    U, s, Vt = fastlr.randomized_svd(A, 10, random_state=0)
    monkeypatch.setenv("FASTLR_PRODUCT_CHOICE", "blas")  # the same steps on BLAS: equal to rounding
    U2, s2, Vt2 = fastlr.randomized_svd(A, 10, random_state=0)
    np.testing.assert_allclose(s, s2, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert abs(_excess(A, 10, U, s, Vt) - _excess(A, 10, U2, s2, Vt2)) <= (1e-6 if dtype == np.float32 else 1e-12)
