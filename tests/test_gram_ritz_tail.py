"""The float32 Gram route's Rayleigh-Ritz tail (``InMemory._gram_ritz_tail``) and the one-round SVQB of
float32 B (``_linalg.thin_svd``): taken where they serve, refused where G's rounding could show, and at
least as accurate as the steps they replace and as scikit-learn."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _linalg
from fastlr._linalg import thin_svd
from fastlr._matrix import memory
from fastlr._matrix.memory import InMemory

extmath = pytest.importorskip("sklearn.utils.extmath")


def _spectrum_matrix(n, d, s, seed):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, s.size)))[0]
    V = np.linalg.qr(rng.standard_normal((d, s.size)))[0]
    return ((U * s) @ V.T).astype(np.float32)


def _excess(A, k, U, s, Vt):
    A64 = A.astype(np.float64)
    opt = np.sqrt(np.sum(np.linalg.svd(A64, compute_uv=False)[k:] ** 2))
    return np.linalg.norm(A64 - (U.astype(np.float64) * s) @ Vt.astype(np.float64)) / opt - 1


@pytest.fixture
def tail_calls(monkeypatch):
    """The tail's results (None: refused), call by call."""
    results = []
    original = InMemory._gram_ritz_tail

    def recording(self, V, G, k):
        out = original(self, V, G, k)
        results.append(out)
        return out

    monkeypatch.setattr(InMemory, "_gram_ritz_tail", recording)
    return results


def _svd(A, k, seed, tail=True, **kw):
    old = memory._GRAM_RITZ_TAIL
    memory._GRAM_RITZ_TAIL = tail
    try:
        with threadpool_limits(1):
            return fastlr.randomized_svd(A, k, random_state=seed, **kw)
    finally:
        memory._GRAM_RITZ_TAIL = old


@pytest.mark.parametrize("spectrum", ["inverse", "sqrt", "linear10"])
def test_tail_taken_and_more_accurate(spectrum, tail_calls):
    d, k = 300, 20
    i = np.arange(1, d + 1)
    s = {"inverse": 1.0 / i, "sqrt": i ** -0.5, "linear10": np.linspace(1.0, 0.1, d)}[spectrum]
    A = _spectrum_matrix(1200, d, s, 1)
    worst = {"tail": 0.0, "steps": 0.0, "sklearn": 0.0}
    for seed in range(4):
        U, sv, Vt = _svd(A, k, seed)
        assert tail_calls[-1] is not None and tail_calls[-1].shape == (d, k)
        assert U.dtype == np.float32 and U.shape == (1200, k) and Vt.shape == (k, d)
        np.testing.assert_allclose(U.T.astype(np.float64) @ U, np.eye(k), atol=2e-6)
        np.testing.assert_allclose(Vt.astype(np.float64) @ Vt.T, np.eye(k), atol=2e-6)
        if spectrum != "linear10":  # a flat spectrum's values come out low by ~1% with any finder
            np.testing.assert_allclose(sv, s[:k], rtol=1e-4)
        worst["tail"] = max(worst["tail"], _excess(A, k, U, sv, Vt))
        worst["steps"] = max(worst["steps"], _excess(A, k, *_svd(A, k, seed, tail=False)))
        with threadpool_limits(1):
            worst["sklearn"] = max(worst["sklearn"], _excess(A, k, *extmath.randomized_svd(A, k, random_state=seed)))
    assert worst["tail"] <= worst["sklearn"]
    assert worst["tail"] <= 1.05 * worst["steps"] + 1e-6


def test_tail_at_a_tie():
    """sigma_20 = sigma_21 (k = 20): the Ritz vectors may mix the two at no cost; the values stay exact."""
    s = np.geomspace(1.0, 1e-2, 25)
    s[20] = s[19]
    A = _spectrum_matrix(1200, 300, s, 2)
    U, sv, Vt = _svd(A, 20, 0)
    np.testing.assert_allclose(sv, s[:20], rtol=1e-4)
    with threadpool_limits(1):
        assert _excess(A, 20, U, sv, Vt) <= max(_excess(A, 20, *extmath.randomized_svd(A, 20, random_state=0)), 1e-5)


def test_tail_refused_on_exactly_low_rank(tail_calls):
    """Exactly rank 20 = k, sigma_20 = 1e-3 sigma_1 (above the fused steps' limit, so they run): no tail
    to hide G's rounding, which is refused; the remaining steps finish exact to rounding."""
    A = _spectrum_matrix(1200, 300, np.geomspace(1.0, 1e-3, 20), 7)
    U, sv, Vt = _svd(A, 20, 0)
    assert tail_calls and all(out is None for out in tail_calls)
    err = np.linalg.norm(A.astype(np.float64) - (U.astype(np.float64) * sv) @ Vt) / np.linalg.norm(A)
    assert err < 2e-6
    np.testing.assert_allclose(sv, np.geomspace(1.0, 1e-3, 20), rtol=1e-4)


def test_tail_not_asked_for_float64_or_few_steps(tail_calls):
    d = 300
    A = _spectrum_matrix(1200, d, 1.0 / np.arange(1, d + 1), 3)
    _svd(A.astype(np.float64), 20, 0)
    _svd(A, 20, 0, n_iter=2)  # three steps: nothing to replace
    assert tail_calls == []


def test_tail_same_as_steps_where_refused(monkeypatch):
    """A refused tail leaves the remaining steps as they were: the same factors as without it."""
    d = 300
    A = _spectrum_matrix(1200, d, 1.0 / np.arange(1, d + 1), 4)
    monkeypatch.setattr(InMemory, "_gram_ritz_tail", lambda self, V, G, k: None)
    U1, s1, Vt1 = _svd(A, 20, 5)
    U0, s0, Vt0 = _svd(A, 20, 5, tail=False)
    # the step before the tail orthonormalizes by QR instead of LU (same span): equal to rounding
    np.testing.assert_allclose(s1, s0, rtol=1e-5)
    np.testing.assert_allclose(np.abs(U1.T.astype(np.float64) @ U0), np.eye(20), atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thin_svd_of_graded_b(dtype, monkeypatch):
    """float32 B stops after one SVQB round where that is orthonormal far past float32's rounding;
    both dtypes give NumPy's singular values and orthonormal U."""
    rng = np.random.default_rng(6)
    n, r = 3000, 40
    B = (np.linalg.qr(rng.standard_normal((n, r)))[0] * np.geomspace(1, 1e-2, r)
         @ np.linalg.qr(rng.standard_normal((r, r)))[0]).astype(dtype)
    rounds = []

    def gram(X):  # one Gram matrix per SVQB round
        rounds.append(1)
        return X.T @ X

    monkeypatch.setattr(_linalg, "gram", gram)
    U, s, X = thin_svd(B, r, lambda X, Y: X @ Y)
    assert len(rounds) == (1 if dtype == np.float32 else 2)
    np.testing.assert_allclose(s, np.linalg.svd(B.astype(np.float64), compute_uv=False), rtol=1e-5)
    np.testing.assert_allclose(U.T @ U, np.eye(r), atol=1e-9)
    np.testing.assert_allclose((U * s) @ X.T, B, atol=1e-6 * float(np.abs(B).max()))
