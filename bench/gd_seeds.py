"""Problems and baselines for the GD-SVD benchmarks (bench_gd.py, gd_convergence.py).

The "seed" methods re-implement the formulations of the "SVD by gradient descent"
write-ups fastlr's gd_svd replaces (their code is not part of fastlr):

- NumPy GD: U (m x k), sigma (k), V (n x k) from uniform [0, 1) starts, plain
  gradient steps on the mean squared error of U diag(sigma) V^T (the residual is
  formed explicitly, m x n, every iteration).
- PyTorch momentum / Adam: U, d, V from torch.rand, S = diag(d^2),
  loss = mse(U S V^T, A) + mse(U^T U, I) / 100 + mse(V^T V, I) / 100, autograd,
  torch.optim.SGD(momentum=0.9) or torch.optim.Adam. (The write-up penalizes
  V V^T for a square V; with k < n only V^T V can be the identity.)

Each runs for a time budget and returns its loss-vs-time trace, measured as the
error ratio ||A - A_hat||_F / ||A - A_k||_F of its current U diag(sigma) V^T.
"""

from __future__ import annotations

import time

import numpy as np

try:  # optional: the PyTorch seeds are skipped without it
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None


def inverse_spectrum(m=2000, n=1000, seed=0):
    """A = Q1 diag(1/i) Q2^T with random orthonormal Q1, Q2: a slowly decaying spectrum."""
    rng = np.random.default_rng(seed)
    Q1, _ = np.linalg.qr(rng.standard_normal((m, n)))
    Q2, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (Q1 * (1.0 / np.arange(1, n + 1))) @ Q2.T


def low_rank_plus_noise(m=2000, n=1000, rank=10, noise=0.1, seed=0):
    """Rank-``rank`` Gaussian signal with sigma_1 = 1 plus Gaussian noise of spectral norm ``noise``."""
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n))
    N = rng.standard_normal((m, n))
    return G / np.linalg.norm(G, 2) + noise * N / np.linalg.norm(N, 2)


MATRICES = {"inv_spectrum": inverse_spectrum, "lowrank_noise": low_rank_plus_noise}


def optimal_error(A, k):
    """||A - A_k||_F from the exact singular values."""
    s = np.linalg.svd(A, compute_uv=False)
    return float(np.sqrt(np.sum(s[k:] ** 2)))


def error_of(A, U, s, V):
    """||A - U diag(s) V^T||_F computed stably (an explicit residual)."""
    return float(np.linalg.norm(A - (U * s) @ V.T))


def numpy_gd_seed(A, k, *, lr, budget, seed=0, record_every=10, max_iter=None):
    """Plain NumPy GD on (U, sigma, V) with the mean squared error; returns [(seconds, error)]."""
    rng = np.random.default_rng(seed)
    m, n = A.shape
    U, s, V = rng.random((m, k)), rng.random(k), rng.random((n, k))
    scale = 2.0 / (m * n)  # d/dX of mean((X - A)^2)
    trace, start = [], time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging lr ends the run (non-finite error)
        return _numpy_gd_loop(A, U, s, V, lr, scale, budget, record_every, max_iter, trace, start)


def _numpy_gd_loop(A, U, s, V, lr, scale, budget, record_every, max_iter, trace, start):
    it = 0
    while True:
        R = (U * s) @ V.T - A
        if it % record_every == 0:
            elapsed = time.perf_counter() - start
            trace.append((elapsed, float(np.linalg.norm(R))))
            if elapsed > budget or not np.isfinite(trace[-1][1]) or (max_iter is not None and it >= max_iter):
                return trace
        RV = R @ V
        RtU = R.T @ U
        gU, gs, gV = scale * RV * s, scale * np.einsum("ij,ij->j", U, RV), scale * RtU * s
        U -= lr * gU
        s -= lr * gs
        V -= lr * gV
        it += 1


def torch_seed(A, k, *, optimizer, lr, budget, seed=314, record_every=10, threads=None, max_iter=None,
               return_factors=False):
    """The PyTorch write-ups: (U, d, V), S = diag(d^2), mse + orthonormality penalties / 100.

    Returns the trace [(seconds, ||U diag(d^2) V^T - A||_F), ...], and with
    ``return_factors`` also the final (U, d, V) tensors.
    """
    if torch is None:
        raise ImportError("torch is not installed")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    M = torch.as_tensor(A, dtype=torch.float32)
    m, n = A.shape
    U = torch.rand(m, k, requires_grad=True)
    d = torch.rand(k, requires_grad=True)
    V = torch.rand(n, k, requires_grad=True)
    eye = torch.eye(k)
    params = [U, d, V]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9) if optimizer == "momentum" else torch.optim.Adam(params, lr=lr)
    trace, start, it = [], time.perf_counter(), 0
    while True:
        opt.zero_grad()
        Y = (U * (d * d)) @ V.T
        loss = ((Y - M) ** 2).mean() + ((U.T @ U - eye) ** 2).mean() / 100 + ((V.T @ V - eye) ** 2).mean() / 100
        if it % record_every == 0:
            elapsed = time.perf_counter() - start
            with torch.no_grad():
                trace.append((elapsed, float(torch.linalg.norm(Y - M))))
            if elapsed > budget or not np.isfinite(trace[-1][1]) or (max_iter is not None and it >= max_iter):
                return (trace, (U, d, V)) if return_factors else trace
        loss.backward()
        opt.step()
        it += 1


def best_ratio_until(trace, optimal, seconds):
    """Lowest error / optimal error a trace reached within ``seconds`` (inf if none recorded)."""
    errs = [e for t, e in trace if t <= seconds and np.isfinite(e)]
    return min(errs) / optimal if errs else float("inf")


# --------------------------------------------------------------------------------------- completion


def completion_problem(m, n, k=10, frac=0.05, noise=0.1, test_entries=200_000, seed=0):
    """Planted rank-k matrix (entries ~ N(0, 1)), ``frac`` of its entries observed with noise.

    Returns (train CSR with the observed values, mask CSR, test rows, test cols, test values).
    """
    rng = np.random.default_rng(seed)
    Ut, Vt = rng.standard_normal((m, k)), rng.standard_normal((n, k))
    n_train = int(frac * m * n)
    n_test = min(n_train // 5, test_entries)
    flat = np.unique(rng.integers(0, m * n, int((n_train + n_test) * 1.1)))
    rng.shuffle(flat)
    train, test = flat[:n_train], flat[n_train : n_train + n_test]

    def values(ix):
        r, c = np.divmod(ix, n)
        return r, c, np.einsum("ij,ij->i", Ut[r], Vt[c]) / np.sqrt(k) + noise * rng.standard_normal(len(ix))

    import scipy.sparse as sp

    r, c, v = values(train)
    A = sp.csr_matrix((v, (r, c)), shape=(m, n))
    mask = sp.csr_matrix((np.ones_like(v), (r, c)), shape=(m, n))
    rt, ct, vt = values(test)
    return A, mask, rt, ct, vt


def completion_rmse(U, s, Vt, rows, cols, values):
    pred = np.einsum("ij,ij->i", (U * s)[rows], Vt.T[cols])
    return float(np.sqrt(np.mean((pred - values) ** 2)))


def surprise_trainset(A):
    """A surprise Trainset holding the stored entries of CSR A (users = rows, items = columns)."""
    from surprise import Trainset

    coo = A.tocoo()
    ur, ir = {}, {}
    for u, i, r in zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist()):
        ur.setdefault(u, []).append((i, r))
        ir.setdefault(i, []).append((u, r))
    m, n = A.shape
    return Trainset(ur, ir, m, n, A.nnz, (float(coo.data.min()), float(coo.data.max())),
                    {u: u for u in range(m)}, {i: i for i in range(n)})


def surprise_rmse(algo, trainset, rows, cols, values):
    """Test RMSE of a fitted surprise SVD (its biased prediction, without clipping)."""
    pred = np.einsum("ij,ij->i", algo.pu[rows], algo.qi[cols])
    if algo.biased:
        pred = pred + trainset.global_mean + algo.bu[rows] + algo.bi[cols]
    return float(np.sqrt(np.mean((pred - values) ** 2)))
