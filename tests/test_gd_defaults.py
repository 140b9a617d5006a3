"""gd_svd with default arguments: the one-pass start, reused products, loss-first evaluations, and
the error over many random states (the benchmark's matrix kinds scaled down, tiny, exactly
low-rank and rank-deficient inputs)."""

import numpy as np
import pytest
import scipy.sparse as sp

import fastlr
from fastlr._matrix import memory
from fastlr.gd import gd_svd, loop, models


def spectrum_matrix(m, n, sigma, seed):
    """Q1 diag(sigma) Q2^T with random orthonormal Q1 (m x r), Q2 (n x r)."""
    rng = np.random.default_rng(seed)
    r = len(sigma)
    Q1, _ = np.linalg.qr(rng.standard_normal((m, r)))
    Q2, _ = np.linalg.qr(rng.standard_normal((n, r)))
    return (Q1 * sigma) @ Q2.T


def low_rank_plus_noise(m, n, rank, noise, seed):
    """Rank-``rank`` Gaussian signal with sigma_1 = 1 plus Gaussian noise of spectral norm ``noise``."""
    rng = np.random.default_rng(seed)
    S = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n))
    N = rng.standard_normal((m, n))
    return S / np.linalg.norm(S, 2) + noise * N / np.linalg.norm(N, 2)


def check_result(A, k, U, s, Vt, slack=1.001):
    """Error at most ``slack`` x the optimal rank-k error (plus rounding of ||A||), an SVD's shapes,
    orthonormal factors and ordered singular values."""
    A = np.asarray(A.toarray() if sp.issparse(A) else A, dtype=np.float64)
    exact = np.linalg.svd(A, compute_uv=False)
    optimal = np.sqrt(np.sum(exact[k:] ** 2))
    err = np.linalg.norm(A - (U * s) @ Vt)
    eps = np.finfo(U.dtype).eps
    assert err <= slack * optimal + 1e3 * eps * np.linalg.norm(A), (err, optimal)
    assert U.shape == (A.shape[0], k) and Vt.shape == (k, A.shape[1]) and s.shape == (k,)
    atol = 1e3 * eps
    np.testing.assert_allclose(U.T @ U, np.eye(k), atol=atol)
    np.testing.assert_allclose(Vt @ Vt.T, np.eye(k), atol=atol)
    assert np.all(np.diff(s) <= 0) and s[-1] >= 0
    return err / optimal if optimal > 1e-8 * np.linalg.norm(A) else 1.0  # exactly rank <= k: the bound above


CASES = {
    # name: (matrix maker taking a seed, k); 20 random states each below
    "inverse_spectrum": (lambda seed: spectrum_matrix(300, 150, 1.0 / np.arange(1, 151), seed), 5),
    "low_rank_noise_10%": (lambda seed: low_rank_plus_noise(300, 150, 5, 0.1, seed), 5),
    "low_rank_noise_1%": (lambda seed: low_rank_plus_noise(300, 150, 5, 0.01, seed), 5),
    "gap_0.5": (lambda seed: spectrum_matrix(300, 150, np.r_[np.ones(5), 0.5 / np.sqrt(np.arange(1, 146))], seed), 5),
    "exactly_rank_3_k5": (lambda seed: spectrum_matrix(200, 100, np.linspace(2, 1, 3), seed), 5),
    "exactly_rank_5_k5": (lambda seed: spectrum_matrix(200, 100, np.linspace(2, 1, 5), seed), 5),
    "exactly_rank_8_k5": (lambda seed: spectrum_matrix(200, 100, np.linspace(2, 1, 8), seed), 5),
}


@pytest.mark.parametrize("case", list(CASES))
def test_defaults_reach_the_optimum_over_many_random_states(case):
    """20 random states x 3 matrices per kind (140 x 3 runs in all): error <= 1.001x optimal."""
    make, k = CASES[case]
    worst = 0.0
    with fastlr.thread_limit(1):
        for matrix_seed in range(3):
            A = make(matrix_seed)
            for seed in range(20):
                U, s, Vt, h = gd_svd(A, k, random_state=seed, return_history=True)
                assert h.converged and h.stop_reason == "tol" and h.n_iter <= 12, (seed, h.n_iter)
                worst = max(worst, check_result(A, k, U, s, Vt))
    assert worst <= 1.001


@pytest.mark.parametrize("shape", [(5, 4), (3, 3), (12, 7), (7, 12), (30, 2), (2, 30), (40, 31)])
def test_defaults_on_tiny_matrices_every_rank(shape):
    """Every k from 1 to min(m, n), 10 random states each: sigma_i = 1/i, the same with a zero row
    and column (rank-deficient), and a Gaussian matrix. The Gaussian matrix's flat spectrum has no
    gap at k, where the defaults' rate extrapolation stops early: up to 1.0036x on 40 x 31 (k = 5),
    the same before and after the one-pass start (bench/README.md, tenth session); it gets 1.005."""
    rng = np.random.default_rng(sum(shape))
    r = min(shape)
    decaying = spectrum_matrix(*shape, 1.0 / np.arange(1, r + 1), sum(shape))
    deficient = decaying.copy()
    deficient[0] = 0
    deficient[:, -1] = 0
    gaussian = rng.standard_normal(shape)
    for A, slack in ((decaying, 1.001), (deficient, 1.001), (gaussian, 1.005)):
        for k in range(1, r + 1):
            for seed in range(10):
                check_result(A, k, *gd_svd(A, k, random_state=seed), slack=slack)


@pytest.mark.parametrize("form", ["F", "csr", "float32"])
def test_defaults_in_other_forms(form):
    A = low_rank_plus_noise(300, 150, 5, 0.1, 7)
    X = {"F": np.asfortranarray(A), "csr": sp.csr_matrix(A), "float32": A.astype(np.float32)}[form]
    for seed in range(10):
        U, s, Vt = gd_svd(X, 5, random_state=seed)
        assert U.dtype == (np.float32 if form == "float32" else np.float64)
        check_result(X, 5, U, s, Vt, slack=1.001 if form != "float32" else 1.002)


def _sketch_start_counting_two_pass(A, k=5):
    """``models.sketch_start(A, k)`` and the calls it made to the two-pass start."""
    calls = []
    original = models._two_pass_start
    try:
        models._two_pass_start = lambda *a: calls.append(1) or original(*a)
        return models.sketch_start(A, k, np.random.default_rng(0), None), calls
    finally:
        models._two_pass_start = original


def test_one_pass_start_fits_u_and_gives_a_v():
    """The one-pass start: U is the least-squares fit for V (its gradient is zero), MV is A @ V, and
    the energy is that of the rank-k truncation of the range finder's Q Q^T A."""
    A = low_rank_plus_noise(300, 150, 5, 0.1, 3)
    (U, V, MV, energy), calls = _sketch_start_counting_two_pass(A)
    assert not calls  # a clear gap: the one-pass start served
    np.testing.assert_allclose(MV, A @ V, atol=1e-12)
    np.testing.assert_allclose(U @ (V.T @ V), A @ V, atol=1e-12)  # grad_U = U V^T V - A V = 0
    # the range finder's Q Q^T A, recomputed with an explicit QR of Z = A G, has the same top-k energy
    rng = np.random.default_rng(0)
    G = np.random.default_rng(int(rng.integers(2**62))).standard_normal((150, 15))
    Q, _ = np.linalg.qr(A @ G)
    s = np.linalg.svd(Q.T @ A, compute_uv=False)
    assert energy == pytest.approx(np.sum(s[:5] ** 2), rel=1e-10)
    # and the row space of V is that truncation's
    _, _, Wt = np.linalg.svd(Q.T @ A)
    np.testing.assert_allclose(np.linalg.svd(Wt[:5] @ np.linalg.qr(V)[0], compute_uv=False), 1, atol=1e-8)


@pytest.mark.parametrize("kind", ["inverse_spectrum", "exactly_rank_3_k5"])
def test_no_clear_gap_or_low_rank_takes_the_two_pass_start(kind):
    A = CASES[kind][0](0)
    (U, V, MV, energy), calls = _sketch_start_counting_two_pass(A)
    assert calls and energy is None
    np.testing.assert_allclose(MV, A @ V, atol=1e-12)
    np.testing.assert_allclose(U @ (V.T @ V), A @ V, atol=1e-12)


def test_reused_products_and_loss_first_change_no_result(monkeypatch):
    """Reusing A V / A^T U of an unchanged factor and computing the loss before the gradients
    change the iterates only by rounding: the same run with every product recomputed by the
    fused pass agrees."""
    results = {}
    for mode in ("default", "plain"):
        with monkeypatch.context() as mp:
            if mode == "plain":
                mp.setattr(models.UV, "_known", lambda self, name, X: None)
                mp.setattr(loop.StoppingRule, "may_stop_next", lambda self: False)
            for case in ("inverse_spectrum", "low_rank_noise_10%"):
                A = CASES[case][0](1)
                results[mode, case] = gd_svd(A, 5, random_state=3, tol=1e-8, return_history=True)
    for case in ("inverse_spectrum", "low_rank_noise_10%"):
        (U, s, Vt, h), (U2, s2, Vt2, h2) = results["default", case], results["plain", case]
        assert h.n_iter == h2.n_iter
        np.testing.assert_allclose(h.loss, h2.loss, rtol=1e-9)
        np.testing.assert_allclose(s, s2, rtol=1e-9)
        np.testing.assert_allclose(np.abs(U.T @ U2), np.eye(5), atol=1e-7)
        np.testing.assert_allclose(np.abs(Vt @ Vt2.T), np.eye(5), atol=1e-7)


def test_defaults_take_few_passes_over_a(monkeypatch):
    """Low rank plus 1% noise: the start's fused pass and thin product, then one thin product per
    loss (the reused products make the losses free or half a pass)."""
    counts = {}
    for name in ("power_step", "gram_product", "matmul", "rmatmul", "gd_products"):
        original = getattr(memory.InMemory, name)
        monkeypatch.setattr(memory.InMemory, name, (lambda f, nm: lambda self, *a: (
            counts.__setitem__(nm, counts.get(nm, 0) + 1), f(self, *a))[1])(original, name))
    A = low_rank_plus_noise(300, 150, 5, 0.01, 2)
    U, s, Vt, h = gd_svd(A, 5, random_state=0, return_history=True)
    check_result(A, 5, U, s, Vt)
    assert counts.pop("power_step") == 1 and "gram_product" not in counts
    thin = counts.get("matmul", 0) + counts.get("rmatmul", 0) + 2 * counts.get("gd_products", 0)
    assert thin <= h.n_iter + 1, (counts, h.n_iter)


def test_prior_loss_lets_the_rule_stop_after_one_step():
    """The one-pass start's loss before its least-squares fit is the stopping rule's first loss: on
    nearly exact low-rank data the run stops at its second evaluation, at the optimum."""
    A = low_rank_plus_noise(300, 150, 5, 0.001, 4)
    U, s, Vt, h = gd_svd(A, 5, random_state=0, return_history=True)
    assert h.n_iter == 2 and h.stop_reason == "tol"
    assert check_result(A, 5, U, s, Vt) <= 1.0001


def test_first_step_makes_v_the_least_squares_fit():
    """With lr=None the first step moves V alone, by the full step: after it U V^T is A projected
    on U's columns (U V^T = U (U^T U)^{-1} U^T A), which the final SVD keeps."""
    for case in ("inverse_spectrum", "low_rank_noise_10%"):
        A = CASES[case][0](2)
        U, s, Vt = gd_svd(A, 5, random_state=1, max_iter=1, tol=0)
        np.testing.assert_allclose((U * s) @ Vt, U @ (U.T @ A), atol=1e-12)
        # a given lr keeps its step: not the projection
        U, s, Vt = gd_svd(A, 5, random_state=1, max_iter=1, tol=0, lr=2 / 3)
        assert np.abs((U * s) @ Vt - U @ (U.T @ A)).max() > 1e-6


def test_l2_keeps_its_optimum():
    """With l2 the start's fit and loss leave the penalty out, so neither the zero first gradient,
    the full first step nor the start's loss applies; the run still reaches the penalized optimum:
    singular values sigma_i - l2 (the minimizer of 1/2 |A - U V^T|^2 + l2/2 (|U|^2 + |V|^2))."""
    A = low_rank_plus_noise(300, 150, 5, 0.1, 5)
    sigma = np.linalg.svd(A, compute_uv=False)
    U, s, Vt, h = gd_svd(A, 5, l2=0.05, random_state=0, tol=1e-12, return_history=True)
    np.testing.assert_allclose(s, sigma[:5] - 0.05, rtol=1e-6)
    assert h.stop_reason == "tol"
    best = 0.5 * (5 * 0.05**2 + np.sum(sigma[5:] ** 2)) + 0.05 * np.sum(sigma[:5] - 0.05)
    for seed in range(10):  # defaults: the penalized objective of the balanced factors within 5e-4
        U, s, Vt = gd_svd(A, 5, l2=0.05, random_state=seed)
        objective = 0.5 * np.linalg.norm(A - (U * s) @ Vt) ** 2 + 0.05 * np.sum(s)
        assert best <= objective <= best * (1 + 5e-4)
