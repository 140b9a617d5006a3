"""gd_svd: optimizers, masks, mini-batches, the usv parametrization, the final SVD and bad input."""

import numpy as np
import pytest
import scipy.sparse as sp

import fastlr
from fastlr.gd import DivergenceError, GDHistory, gd_svd

OPTIMIZERS = ["scaled", "gd", "momentum", "adam", "sgd"]


def planted(m, n, k, *, spectrum=None, noise=0.0, seed=0, dtype=np.float64):
    """U diag(spectrum) V^T with orthonormal U, V plus Gaussian noise; returns (A, optimal loss)."""
    rng = np.random.default_rng(seed)
    Qu, _ = np.linalg.qr(rng.standard_normal((m, k)))
    Qv, _ = np.linalg.qr(rng.standard_normal((n, k)))
    spectrum = np.linspace(2.0, 1.0, k) if spectrum is None else spectrum
    A = (Qu * spectrum) @ Qv.T + noise * rng.standard_normal((m, n))
    s = np.linalg.svd(A, compute_uv=False)
    return A.astype(dtype), 0.5 * float(np.sum(s[k:] ** 2))


def objective(A, U, s, Vt):
    return 0.5 * float(np.sum((np.asarray(A, dtype=np.float64) - (U * s) @ Vt) ** 2))


def assert_svd(U, s, Vt, k, shape, dtype, atol):
    assert U.shape == (shape[0], k) and s.shape == (k,) and Vt.shape == (k, shape[1])
    assert U.dtype == dtype and s.dtype == dtype and Vt.dtype == dtype
    np.testing.assert_allclose(U.T @ U, np.eye(k), atol=atol)
    np.testing.assert_allclose(Vt @ Vt.T, np.eye(k), atol=atol)
    assert np.all(np.diff(s) <= 0) and s[-1] >= 0


def windows_non_increasing(losses, parts=4, slack=1e-3):
    """'Monotone on average': the mean loss of each quarter of the run is no higher than the previous."""
    losses = np.asarray(losses)
    chunks = [c.mean() for c in np.array_split(losses, parts) if len(c)]
    floor = 1e-12 * losses[0]  # rounding noise once converged
    return all(b <= a * (1 + slack) + floor for a, b in zip(chunks, chunks[1:]))


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("init", ["sketch", "random"])
def test_each_optimizer_reaches_the_optimum(optimizer, init):
    A, best = planted(120, 80, 4, noise=0.01, seed=1)
    U, s, Vt, history = gd_svd(
        A, 4, optimizer=optimizer, init=init, random_state=0, max_iter=600, tol=1e-10, return_history=True
    )
    assert isinstance(history, GDHistory) and history.n_iter == len(history.loss) == len(history.time)
    assert windows_non_increasing(history.loss)
    assert history.loss[-1] < history.loss[0]
    assert objective(A, U, s, Vt) <= best * (1.001 if optimizer != "sgd" else 1.01)
    assert_svd(U, s, Vt, 4, A.shape, np.float64, 1e-10)


def test_default_matches_scipy_svd_on_low_rank_plus_noise():
    A, best = planted(300, 150, 6, spectrum=np.logspace(0, -2, 6), noise=1e-3, seed=2)
    U, s, Vt = gd_svd(A, 6, random_state=0, tol=1e-12)
    Ue, se, Vte = np.linalg.svd(A, full_matrices=False)
    np.testing.assert_allclose(s, se[:6], rtol=1e-7)
    # same singular subspaces: the principal angles are ~0
    np.testing.assert_allclose(np.linalg.svd(Ue[:, :6].T @ U, compute_uv=False), 1, atol=1e-8)
    np.testing.assert_allclose(np.linalg.svd(Vte[:6] @ Vt.T, compute_uv=False), 1, atol=1e-8)
    assert objective(A, U, s, Vt) == pytest.approx(best, rel=1e-9)
    assert_svd(U, s, Vt, 6, A.shape, np.float64, 1e-10)


def test_slowly_decaying_spectrum_converges_to_the_optimum():
    """sigma_i = 1/i: a small gap between sigma_k and sigma_k+1 (the benchmark's hard case)."""
    rng = np.random.default_rng(3)
    Q1, _ = np.linalg.qr(rng.standard_normal((200, 100)))
    Q2, _ = np.linalg.qr(rng.standard_normal((100, 100)))
    sigma = 1 / np.arange(1, 101)
    A = (Q1 * sigma) @ Q2.T
    U, s, Vt = gd_svd(A, 5, random_state=0, tol=1e-12, max_iter=2000)
    np.testing.assert_allclose(s, sigma[:5], rtol=1e-6)


@pytest.mark.parametrize("layout", ["C", "F", "csr", "csc", "coo"])
def test_input_formats_agree(layout, backend):
    A, _ = planted(60, 40, 3, noise=0.05, seed=4)
    dense = gd_svd(A, 3, random_state=0, tol=1e-12, backend=backend)
    X = {"C": np.ascontiguousarray(A), "F": np.asfortranarray(A)}.get(layout)
    if X is None:
        X = getattr(sp.csr_matrix(A), "to" + layout)()
    got = gd_svd(X, 3, random_state=0, tol=1e-12, backend=backend)
    for a, b in zip(dense, got):
        np.testing.assert_allclose(a, b, atol=1e-7)


def test_float32_stays_float32(fast_backend):
    A, best = planted(100, 70, 3, noise=0.01, seed=5, dtype=np.float32)
    U, s, Vt = gd_svd(A, 3, random_state=0, backend=fast_backend)
    assert_svd(U, s, Vt, 3, A.shape, np.float32, 1e-5)
    assert objective(A, U, s, Vt) <= best * 1.001


def test_seeded_runs_repeat_and_inputs_are_unchanged():
    A, _ = planted(50, 30, 2, noise=0.1, seed=6)
    before = A.copy()
    first = gd_svd(A, 2, init="random", random_state=7, max_iter=20, tol=0)
    second = gd_svd(A, 2, init="random", random_state=np.random.default_rng(7), max_iter=20, tol=0)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(A, before)
    # a legacy RandomState seeds the run as randomized_svd's random_state does
    third = gd_svd(A, 2, init="random", random_state=np.random.RandomState(7), max_iter=20, tol=0)
    fourth = gd_svd(A, 2, init="random", random_state=np.random.RandomState(7), max_iter=20, tol=0)
    for a, b in zip(third, fourth):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------- masks


def completion_problem(m=150, n=100, k=3, frac=0.3, seed=8):
    rng = np.random.default_rng(seed)
    L = rng.standard_normal((m, k)) @ rng.standard_normal((k, n))
    mask = rng.random((m, n)) < frac
    return L, mask


@pytest.mark.parametrize("form", ["bool", "sparse", "nonzero"])
def test_masked_completion_recovers_a_planted_matrix(backend, form):
    L, mask = completion_problem()
    A = np.where(mask, L, np.nan)
    if form == "sparse":
        mask_arg = sp.csr_matrix(mask)
    elif form == "nonzero":
        A = sp.csr_matrix(np.where(mask, L, 0.0))
        mask_arg = "nonzero"
    else:
        mask_arg = mask
    U, s, Vt = gd_svd(A, 3, mask=mask_arg, random_state=0, tol=1e-12, max_iter=2000, backend=backend)
    err = np.linalg.norm((U * s) @ Vt - L) / np.linalg.norm(L)
    assert err < 1e-6  # the unobserved 70% of the entries too
    assert_svd(U, s, Vt, 3, L.shape, np.float64, 1e-10)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_completes_a_matrix(optimizer):
    L, mask = completion_problem(100, 80, 2, 0.5, seed=9)
    U, s, Vt, h = gd_svd(
        np.where(mask, L, 0.0), 2, mask=mask, optimizer=optimizer, random_state=0, max_iter=1500, tol=1e-12,
        return_history=True,
    )
    assert windows_non_increasing(h.loss)
    err = np.linalg.norm((U * s) @ Vt - L) / np.linalg.norm(L)
    assert err < (1e-3 if optimizer in ("scaled", "gd", "momentum") else 2e-2)


def test_masked_completion_with_noise_and_l2_beats_the_noise_level():
    L, mask = completion_problem(200, 150, 3, 0.25, seed=10)
    rng = np.random.default_rng(0)
    noise = 0.1
    A = np.where(mask, L + noise * rng.standard_normal(L.shape), np.nan)
    U, s, Vt = gd_svd(A, 3, mask=mask, l2=0.5, random_state=0)
    rmse = np.sqrt(np.mean(((U * s) @ Vt - L)[~mask] ** 2))
    assert rmse < noise  # denoised, on entries never seen


def test_masked_kernels_agree_across_backends():
    L, mask = completion_problem(80, 60, 2, 0.4, seed=11)
    results = [
        gd_svd(np.where(mask, L, 0.0), 2, mask=mask, random_state=0, max_iter=15, tol=0, backend=b)
        for b in fastlr.available_backends()
    ]
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(a, b, atol=1e-9)


def test_all_entries_of_a_sparse_matrix_count_without_a_mask():
    A = sp.random(80, 50, density=0.2, random_state=np.random.default_rng(12), format="csr")
    U, s, Vt = gd_svd(A, 4, random_state=0, tol=1e-12, max_iter=3000)
    np.testing.assert_allclose(s, np.linalg.svd(A.toarray(), compute_uv=False)[:4], rtol=1e-5)


# ---------------------------------------------------------------------------------------------- batches


def test_row_batches_on_dense_data():
    A, best = planted(200, 60, 3, noise=0.01, seed=13)
    for optimizer in ("scaled", "sgd", "adam"):
        U, s, Vt, h = gd_svd(
            A, 3, optimizer=optimizer, batch_size=25, random_state=0, max_iter=2000, tol=1e-9, return_history=True
        )
        assert windows_non_increasing(h.loss, slack=0.05)
        assert objective(A, U, s, Vt) <= best * 1.02, optimizer


def test_entry_batches_on_masked_data():
    L, mask = completion_problem(100, 80, 2, 0.5, seed=14)
    U, s, Vt = gd_svd(
        np.where(mask, L, 0.0), 2, mask=mask, optimizer="sgd", batch_size=500, random_state=0, max_iter=3000
    )
    assert np.linalg.norm((U * s) @ Vt - L) / np.linalg.norm(L) < 0.05


# ---------------------------------------------------------------------------------------------- usv


@pytest.mark.parametrize("optimizer", ["gd", "momentum", "adam", "sgd"])
def test_usv_parametrization_reaches_the_same_svd(optimizer):
    A, best = planted(60, 40, 3, noise=0.01, seed=15)
    U, s, Vt, h = gd_svd(
        A, 3, parametrization="usv", optimizer=optimizer, random_state=0, max_iter=3000, tol=1e-10,
        return_history=True,
    )
    if optimizer != "sgd":  # sgd's history holds mini-batch losses: from a near-optimal start their
        assert h.loss[-1] < h.loss[0]  # first and last entries differ by noise (the bound below is the test)
    assert objective(A, U, s, Vt) <= best * (1.001 if optimizer != "sgd" else 1.02)
    assert_svd(U, s, Vt, 3, A.shape, np.float64, 1e-10)


def test_usv_on_the_write_ups_small_examples():
    """The 5x4 and 3x3 uniform random matrices of the write-ups, at full rank (an exact fit) and rank 2."""
    rng = np.random.default_rng(314)
    for shape in [(5, 4), (3, 3)]:
        M = rng.random(shape)
        exact = np.linalg.svd(M, compute_uv=False)
        for k in (min(shape), 2):
            for optimizer in ("gd", "momentum", "adam"):
                U, s, Vt = gd_svd(M, k, parametrization="usv", optimizer=optimizer, init="random", random_state=0,
                                  max_iter=5000, tol=1e-12)
                np.testing.assert_allclose(s, exact[:k], rtol=1e-4, err_msg=f"{shape} {k} {optimizer}")
                assert objective(M, U, s, Vt) <= 0.5 * np.sum(exact[k:] ** 2) * (1 + 1e-4) + 1e-12


def test_usv_penalty_makes_factors_orthonormal_before_the_polish():
    from fastlr.gd import svd as svd_module

    A, _ = planted(50, 30, 3, noise=0.0, seed=16)
    captured = {}
    real_polish = svd_module.polish

    def spy(U, V):
        captured["UV"] = (U.copy(), V.copy())
        return real_polish(U, V)

    svd_module.polish = spy
    try:
        gd_svd(A, 3, parametrization="usv", optimizer="gd", ortho_penalty=5.0, random_state=0, max_iter=3000,
               tol=1e-13)
    finally:
        svd_module.polish = real_polish
    Us, V = captured["UV"]
    s = np.linalg.norm(Us, axis=0)
    np.testing.assert_allclose((Us / s).T @ (Us / s), np.eye(3), atol=1e-4)
    np.testing.assert_allclose(V.T @ V, np.eye(3), atol=1e-4)


# ---------------------------------------------------------------------------------------------- control


@pytest.mark.parametrize("case", ["inverse_spectrum", "low_rank_plus_noise"])
def test_defaults_stop_early_near_the_optimum(case):
    """With default arguments gd_svd stops by its tol rule within a few iterations, and over many
    random states the error is never above 1.001x the optimal rank-k error (the benchmark's two
    cases, scaled down: sigma_i = 1/i, and rank 5 plus noise)."""
    rng = np.random.default_rng(24)
    m, n, k = 400, 200, 5
    if case == "inverse_spectrum":
        Q1, _ = np.linalg.qr(rng.standard_normal((m, n)))
        Q2, _ = np.linalg.qr(rng.standard_normal((n, n)))
        A = (Q1 / np.arange(1, n + 1)) @ Q2.T
    else:
        A, _ = planted(m, n, k, spectrum=np.linspace(1.0, 0.5, k), noise=0.1 / np.sqrt(m), seed=25)
    optimal = np.sqrt(np.sum(np.linalg.svd(A, compute_uv=False)[k:] ** 2))
    worst = 0.0
    with fastlr.thread_limit(1):  # a few ms per run; a busy machine cannot stall a second thread
        for seed in range(20):
            U, s, Vt, h = gd_svd(A, k, random_state=seed, return_history=True)
            assert h.converged and h.stop_reason == "tol" and 3 <= h.n_iter <= 12, (seed, h.n_iter)
            worst = max(worst, np.linalg.norm(A - (U * s) @ Vt) / optimal)
    assert worst <= 1.001


def test_callback_sees_every_iteration_and_can_stop():
    A, _ = planted(40, 30, 2, noise=0.1, seed=17)
    seen = []
    U, s, Vt, h = gd_svd(
        A, 2, random_state=0, tol=0, max_iter=50, return_history=True,
        callback=lambda it, loss: seen.append((it, loss)) or it == 9,
    )
    assert [it for it, _ in seen] == list(range(10))
    np.testing.assert_array_equal([loss for _, loss in seen], h.loss)
    assert h.n_iter == 10 and h.stop_reason == "callback" and not h.converged
    assert np.all(np.diff(h.time) >= 0) and h.time[0] >= h.init_time


def test_tol_stops_early_and_max_iter_caps(capsys):
    A, _ = planted(40, 30, 2, noise=0.1, seed=18)
    *_, h = gd_svd(A, 2, random_state=0, tol=1e-3, return_history=True)
    assert h.converged and h.stop_reason == "tol" and h.n_iter < 50
    *_, h = gd_svd(A, 2, random_state=0, tol=0, max_iter=7, return_history=True, progress=True)
    assert h.n_iter == 7 and h.stop_reason == "max_iter" and not h.converged
    assert "gd_svd" in capsys.readouterr().err  # the tqdm bar


def test_divergence_raises_and_suggests_a_smaller_lr():
    A, _ = planted(40, 30, 2, noise=0.1, seed=19)
    with pytest.raises(DivergenceError, match="smaller lr"):
        gd_svd(A, 2, optimizer="gd", lr=50.0, random_state=0, max_iter=500)


@pytest.mark.parametrize("optimizer", ["gd", "momentum"])
def test_lr_none_adapts_where_a_fixed_lr_diverges(optimizer):
    """From the random start on a matrix with a large sigma_1, lr=None converges; lr 10x too long diverges."""
    A, best = planted(60, 40, 3, spectrum=np.array([30.0, 2.0, 1.0]), noise=0.05, seed=20)
    U, s, Vt = gd_svd(A, 3, optimizer=optimizer, init="random", random_state=0, max_iter=3000, tol=1e-12)
    assert objective(A, U, s, Vt) <= best * 1.001
    with pytest.raises(DivergenceError, match="smaller lr"):
        gd_svd(A, 3, optimizer=optimizer, lr=10 / 30.0, init="random", random_state=0, max_iter=3000)


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(k=0), ValueError, "k"),
        (dict(k=31), ValueError, "k: must be <= min"),
        (dict(k=2.0), TypeError, "k"),
        (dict(optimizer="lbfgs"), ValueError, "optimizer"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(lr=-1.0), ValueError, "lr"),
        (dict(lr="fast"), TypeError, "lr"),
        (dict(max_iter=0), ValueError, "max_iter"),
        (dict(tol=-1.0), ValueError, "tol"),
        (dict(tol=float("nan")), ValueError, "tol"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(l2=-0.1), ValueError, "l2"),
        (dict(init="svd"), ValueError, "init"),
        (dict(parametrization="uvw"), ValueError, "parametrization"),
        (dict(ortho_penalty=1.0), ValueError, "ortho_penalty"),
        (dict(parametrization="usv", optimizer="scaled"), ValueError, "optimizer"),
        (dict(optimizer_options={"beta": 0.9}), ValueError, "optimizer_options"),
        (dict(optimizer_options={"momentum": 1.5}), ValueError, "momentum"),
        (dict(callback=3), TypeError, "callback"),
        (dict(mask=np.ones((40, 31), dtype=bool)), ValueError, "mask: expected shape"),
        (dict(mask=np.ones((40, 30))), TypeError, "mask"),
        (dict(mask="observed"), ValueError, "mask"),
        (dict(backend="fortran"), ValueError, "backend"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, exc, match):
    A, _ = planted(40, 30, 2, seed=21)
    args = dict(k=2)
    args.update(kwargs)
    k = args.pop("k")
    with pytest.raises(exc, match=match):
        gd_svd(A, k, **args)


def test_unobserved_rows_and_columns_are_named():
    A, _ = planted(40, 30, 2, seed=22)
    mask = np.ones(A.shape, dtype=bool)
    mask[17] = False
    with pytest.raises(ValueError, match="mask: row 17 has no observed entries"):
        gd_svd(A, 2, mask=mask)
    mask = np.ones(A.shape, dtype=bool)
    mask[:, [4, 9]] = False
    with pytest.raises(ValueError, match=r"mask: column 4 \(and 1 more\) has no observed"):
        gd_svd(A, 2, mask=sp.csr_matrix(mask))
    with pytest.raises(ValueError, match="row 0"):
        gd_svd(A, 2, mask=np.zeros(A.shape, dtype=bool))


def test_nan_is_rejected_only_where_it_is_used():
    A, _ = planted(40, 30, 2, seed=23)
    A[3, 4] = np.nan
    with pytest.raises(ValueError, match="A: contains NaN.*mask"):
        gd_svd(A, 2)
    mask = np.ones(A.shape, dtype=bool)
    with pytest.raises(ValueError, match="A: contains NaN or infinity in observed entries"):
        gd_svd(A, 2, mask=mask)
    mask[3, 4] = False
    U, s, Vt = gd_svd(A, 2, mask=mask, random_state=0)
    assert np.isfinite(U).all() and np.isfinite(s).all() and np.isfinite(Vt).all()
    with pytest.raises(ValueError, match="A: contains NaN"):
        gd_svd(sp.csr_matrix(np.where(np.isnan(A), np.inf, A)), 2)


def test_bad_matrices():
    with pytest.raises(TypeError, match="A"):
        gd_svd(np.ones((5, 4), dtype=complex), 2)
    with pytest.raises(ValueError, match="A"):
        gd_svd(np.ones(5), 1)
    with pytest.raises(ValueError, match="A"):
        gd_svd(np.ones((0, 4)), 1)


@pytest.mark.parametrize("kind", ["dense", "csr", "mask"])
@pytest.mark.parametrize("dtype_scale", [(np.float32, 1e18), (np.float32, 1e-18), (np.float64, 1e-200),
                                         (np.float64, 1e200)])
def test_extreme_but_finite_scales(dtype_scale, kind):
    """Entries near the limits of the dtype: the singular values of the unscaled matrix, scaled (the
    loss ~ ||A||^2 would over- or underflow without gd_svd's power-of-two rescaling)."""
    dtype, scale = dtype_scale
    rng = np.random.default_rng(0)
    B = rng.standard_normal((300, 40)) @ np.diag(np.geomspace(1, 1e-2, 40)) @ rng.standard_normal((40, 80))
    exact = np.linalg.svd(B, compute_uv=False)[:5]
    A = (B * scale).astype(dtype)
    original = A.copy()
    options = {}
    if kind == "csr":
        A = sp.csr_matrix(A)
    elif kind == "mask":
        options["mask"] = np.ones(A.shape, bool)
    U, s, Vt = gd_svd(A, 5, random_state=0, tol=1e-10, **options)  # singular values to 1e-6: a tight tol
    assert s.dtype == dtype and np.isfinite(U).all() and np.isfinite(Vt).all()
    np.testing.assert_allclose(s / scale, exact, rtol=1e-5 if dtype == np.float32 else 1e-6)
    np.testing.assert_array_equal(A.toarray() if kind == "csr" else A, original)  # the caller's A untouched
