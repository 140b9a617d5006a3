"""Loss-vs-time of fastlr.gd_svd against the "SVD by gradient descent" write-ups and svds.

Prints markdown tables for bench/README.md and writes bench/gd_loss_vs_time.png:

1. 2000 x 1000, k = 10 (sigma_i = 1/i; low rank plus noise): error ratio ||A - A_hat|| / ||A - A_k||
   against seconds for fastlr (every optimizer, default settings), the write-ups' NumPy GD and
   PyTorch momentum / Adam (best of a small learning-rate grid; PyTorch only when installed),
   and scipy.sparse.linalg.svds; the seeds' best error within fastlr's time to 1.001x.
2. Seed parity: the write-ups' own examples (a 5x4 and a 3x3 uniform random matrix, full rank)
   and the 2000 x 1000 case, with fastlr's parametrization="usv" (the same U, sigma, V model
   with orthonormality penalties) and the same optimizers.
3. Matrix completion: test RMSE against seconds, fastlr vs surprise.SVD (when installed).

4. ``--defaults``: ``gd_svd(A, 10)`` with DEFAULT arguments against ``svds(A, 10)``, one thread,
   interleaved rounds in one process (minimum times and their ratio), the worst error ratio over
   random states and matrix seeds, iterations, and the cost of an iteration against one
   ``gd_products`` pass. Only this table is printed with ``--defaults``.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gd_convergence.py [--budget 10] [--large]
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gd_convergence.py --defaults [--rounds 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import scipy.sparse.linalg as sla

import fastlr
from fastlr._matrix import InMemory

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gd_seeds  # noqa: E402

K = 10
HERE = os.path.dirname(os.path.abspath(__file__))


def fastlr_trace(A, optimal, **kwargs):
    """(seconds, error ratio) per iteration. The dense loss is half the squared error; for
    parametrization="usv" it also holds the orthonormality penalty, so that ratio is an upper bound."""
    *_, h = fastlr.gd_svd(A, K, return_history=True, random_state=0, **kwargs)
    err = np.sqrt(np.maximum(2 * h.loss, 0))
    return list(zip(h.time, err / optimal)), h


def time_to(trace, ratio):
    for t, r in trace:
        if r <= ratio:
            return t
    return float("inf")


def best_seed(run, grid, optimal, budget):
    """The learning rate of the grid whose run ends lowest; its trace as (seconds, ratio)."""
    best = None
    for lr in grid:
        trace = [(t, e / optimal) for t, e in run(lr, budget)]
        final = min(r for _, r in trace if np.isfinite(r)) if any(np.isfinite(r) for _, r in trace) else np.inf
        if best is None or final < best[0]:
            best = (final, lr, trace)
    return best


def convergence(budget, threads):
    results = {}
    for name, make in gd_seeds.MATRICES.items():
        A = make()
        optimal = gd_seeds.optimal_error(A, K)
        runs = {}
        t = time.perf_counter()
        sla.svds(A, K, random_state=0)
        svds_time = min(time.perf_counter() - t, _timed(lambda: sla.svds(A, K, random_state=0)))
        for opt in ["scaled", "gd", "momentum", "adam"]:
            fastlr.gd_svd(A, K, max_iter=2, optimizer=opt)  # warm up
            runs[f"fastlr {opt}"], _ = fastlr_trace(A, optimal, optimizer=opt, tol=1e-9, max_iter=2000)
        runs["fastlr usv adam (seed model)"], _ = fastlr_trace(A, optimal, parametrization="usv", optimizer="adam",
                                                               tol=1e-9, max_iter=3000)
        seeds = {
            "NumPy GD seed": (lambda lr, b: gd_seeds.numpy_gd_seed(A, K, lr=lr, budget=b), [0.3, 1.0, 3.0]),
        }
        if gd_seeds.torch is not None:
            seeds["PyTorch momentum seed"] = (
                lambda lr, b: gd_seeds.torch_seed(A, K, optimizer="momentum", lr=lr, budget=b, threads=threads),
                [0.03, 0.1, 0.3],
            )
            seeds["PyTorch Adam seed"] = (
                lambda lr, b: gd_seeds.torch_seed(A, K, optimizer="adam", lr=lr, budget=b, threads=threads),
                [1e-3, 1e-2, 3e-2, 0.1],
            )
        seed_lrs = {}
        for label, (run, grid) in seeds.items():
            _, lr, trace = best_seed(run, grid, optimal, budget)
            runs[label] = trace
            seed_lrs[label] = lr
        results[name] = dict(runs=runs, svds=svds_time, optimal=optimal, seed_lrs=seed_lrs)
    return results


def _timed(f, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def print_convergence(results, budget):
    print(f"\n### Time to 1.001x the optimal rank-{K} error, 2000 x 1000\n")
    print("| matrix | method | time to 1.001x (s) | error ratio at fastlr's time | best ratio in run |")
    print("|---|---|---|---|---|")
    for name, res in results.items():
        t_fast = time_to(res["runs"]["fastlr scaled"], 1.001)
        print(f"| {name} | scipy svds (exact) | {res['svds']:.4f} | | 1 |")
        for label, trace in res["runs"].items():
            lr = res["seed_lrs"].get(label)
            extra = f" (lr {lr:g})" if lr is not None else ""
            at = gd_seeds.best_ratio_until([(t, r) for t, r in trace], 1.0, t_fast)
            best = min((r for _, r in trace if np.isfinite(r)), default=np.inf)
            print(f"| {name} | {label}{extra} | {time_to(trace, 1.001):.4f} | {at:.4g} | {best:.6g} |")
    print(f"\nSeeds ran for {budget:g} s each (best learning rate of the grid); inf = never reached.")


def plot(results, completion_curves, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = len(results) + (1 if completion_curves else 0)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4))
    for ax, (name, res) in zip(axes, results.items()):
        for label, trace in res["runs"].items():
            t = np.array([p[0] for p in trace])
            r = np.array([p[1] for p in trace])
            ok = np.isfinite(r) & (t > 0)
            ax.plot(t[ok], np.maximum(r[ok] - 1, 1e-12), label=label, lw=1.2,
                    ls="-" if label.startswith("fastlr") else "--")
        ax.plot([res["svds"]], [1e-12], "k*", ms=10, label="scipy svds (exact)")
        ax.axhline(1e-3, color="grey", lw=0.6, ls=":")
        ax.set(xscale="log", yscale="log", xlabel="seconds", ylabel="error / optimal - 1",
               title=f"{name}, 2000x1000, k={K}", ylim=(1e-12, 1e3))
    axes[0].legend(fontsize=6, loc="lower left")
    if completion_curves:
        ax = axes[-1]
        for label, pts in completion_curves.items():
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, label=label)
        ax.set(xscale="log", yscale="log", xlabel="seconds", ylabel="test RMSE",
               title="completion 1000x1000, 5% observed")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    print(f"\nwrote {path}")


def seed_parity(threads):
    print("\n### Seed parity: the write-ups' examples, same U, sigma, V model\n")
    print("| matrix | method | iterations | seconds | max |s - s_exact| / s_1 | ||A - U S V^T|| / ||A|| |")
    print("|---|---|---|---|---|---|")
    cases = []
    if gd_seeds.torch is not None:
        torch = gd_seeds.torch
        torch.manual_seed(314)
        cases.append(("5x4", torch.rand(5, 4).numpy().astype(np.float64)))
        cases.append(("3x3", torch.rand(3, 3).numpy().astype(np.float64)))
    else:
        rng = np.random.default_rng(314)
        cases += [("5x4", rng.random((5, 4))), ("3x3", rng.random((3, 3)))]
    for name, M in cases:
        k = min(M.shape)
        exact = np.linalg.svd(M, compute_uv=False)
        rows = []
        if gd_seeds.torch is not None:
            for label, opt, lr in [("PyTorch Adam seed, 20000 it.", "adam", 1e-3),
                                   ("PyTorch momentum seed, 20000 it.", "momentum", 0.9)]:
                s, err, secs = _torch_small(M, k, opt, lr, threads)
                rows.append((label, 20000, secs, np.abs(s - exact).max() / exact[0], err))
        # at full rank fastlr's start (a least-squares step from a random V) is already exact; rank 2
        # shows the optimizers at work on the same formulation (error relative to the best rank 2)
        for rank in (k, 2):
            best = np.sqrt(np.sum(exact[rank:] ** 2)) / np.linalg.norm(M)
            for label, kw in [("fastlr usv adam", dict(optimizer="adam")),
                              ("fastlr usv momentum (heavy ball)", dict(optimizer="momentum",
                                                                         optimizer_options={"nesterov": False})),
                              ("fastlr usv gd", dict(optimizer="gd"))]:
                t = time.perf_counter()
                U, s, Vt, h = fastlr.gd_svd(M, rank, parametrization="usv", init="random", random_state=0,
                                            tol=1e-14, max_iter=20000, return_history=True, **kw)
                secs = time.perf_counter() - t
                err = np.linalg.norm(M - (U * s) @ Vt) / np.linalg.norm(M)
                suffix = "" if rank == k else f", rank 2 (best error {best:.3f})"
                rows.append((label + suffix, h.n_iter, secs, np.abs(s - exact[:rank]).max() / exact[0], err))
        for label, it, secs, ds, err in rows:
            print(f"| {name} | {label} | {it} | {secs:.3f} | {ds:.1e} | {err:.1e} |")


def _torch_small(M, k, optimizer, lr, threads):
    """The write-ups' loop on a small matrix: full-rank U, d, V, 20000 steps."""
    torch = gd_seeds.torch
    trace, (U, d, V) = gd_seeds.torch_seed(M, k, optimizer=optimizer, lr=lr, budget=np.inf, threads=threads,
                                           max_iter=20000, record_every=20000, return_factors=True)
    X = torch.as_tensor(M, dtype=torch.float32)
    with torch.no_grad():
        s = np.sort((d * d).numpy().astype(np.float64))[::-1]
        err = float(torch.linalg.norm((U * (d * d)) @ V.T - X) / torch.linalg.norm(X))
    return s, err, trace[-1][0]


def completion(large):
    print("\n### Matrix completion: test RMSE against seconds\n")
    try:
        import surprise
    except ImportError:
        print("scikit-surprise is not installed: fastlr only")
        surprise = None
    curves = {}
    shapes = [(1000, 1000)] + ([(20000, 5000)] if large else [])
    print("| matrix | method | seconds | test RMSE |")
    print("|---|---|---|---|")
    for m, n in shapes:
        A, mask, rows, cols, values = gd_seeds.completion_problem(m, n)
        pts = []
        fastlr.gd_svd(A, K, mask=mask, max_iter=2)  # warm up
        for iters in [5, 10, 20, 30, 40, 60, 100]:
            t = time.perf_counter()
            U, s, Vt = fastlr.gd_svd(A, K, mask=mask, random_state=0, max_iter=iters, tol=0)
            pts.append((time.perf_counter() - t, gd_seeds.completion_rmse(U, s, Vt, rows, cols, values)))
            print(f"| {m}x{n} | fastlr scaled, {iters} it. | {pts[-1][0]:.3f} | {pts[-1][1]:.4f} |")
        if (m, n) == (1000, 1000):
            curves["fastlr"] = pts
        if surprise is None:
            continue
        trainset = gd_seeds.surprise_trainset(A)
        for label, kw, epochs in [("surprise.SVD default", {}, [5, 10, 20]),
                                  ("surprise.SVD lr 0.02", dict(lr_all=0.02), [10, 20, 50, 100])]:
            spts = []
            for ep in epochs:
                t = time.perf_counter()
                algo = surprise.SVD(n_factors=K, n_epochs=ep, random_state=0, **kw).fit(trainset)
                spts.append((time.perf_counter() - t, gd_seeds.surprise_rmse(algo, trainset, rows, cols, values)))
                print(f"| {m}x{n} | {label}, {ep} epochs | {spts[-1][0]:.3f} | {spts[-1][1]:.4f} |")
            if (m, n) == (1000, 1000):
                curves[label] = spts
    return curves


#: The matrices of the defaults table: the benchmark's two, and rank 10 with 1% noise.
DEFAULT_CASES = {
    "inv_spectrum": gd_seeds.inverse_spectrum,
    "lowrank_noise (10%)": gd_seeds.low_rank_plus_noise,
    "lowrank_noise (1%)": lambda seed=0: gd_seeds.low_rank_plus_noise(noise=0.01, seed=seed),
}


def defaults(rounds, seeds, matrix_seeds):
    """gd_svd with default arguments vs svds, one thread (call under thread limits of 1)."""
    print(f"\n### gd_svd(A, {K}) with default arguments vs svds(A, {K}), 2000 x 1000, 1 thread\n")
    print("| matrix | gd_svd min (ms) | svds min (ms) | gd / svds (ratio of minima) | median of per-round ratios "
          "| iterations | worst error ratio (runs) | iteration / gd_products pass |")
    print("|---|---|---|---|---|---|---|---|")
    for name, make in DEFAULT_CASES.items():
        A = make()
        op = InMemory(A)
        rng = np.random.default_rng(1)
        U0, V0 = rng.standard_normal((A.shape[0], K)), rng.standard_normal((A.shape[1], K))
        for _ in range(2):  # warm up
            fastlr.gd_svd(A, K)
            sla.svds(A, K, random_state=0)
        t_gd, t_svds, t_pass, per_iter, ratios, its = [], [], [], [], [], []
        for r in range(rounds):  # interleaved: whatever else runs on the machine hits both alike
            t = time.perf_counter()
            *_, h = fastlr.gd_svd(A, K, random_state=r, return_history=True)
            t_gd.append(time.perf_counter() - t)
            t = time.perf_counter()
            sla.svds(A, K, random_state=r)
            t_svds.append(time.perf_counter() - t)
            t = time.perf_counter()
            op.gd_products(U0, V0)
            t_pass.append(time.perf_counter() - t)
            ratios.append(t_gd[-1] / t_svds[-1])
            its.append(h.n_iter)
            if h.n_iter > 1:
                per_iter.append(np.min(np.diff(h.time)))
        worst = 0.0
        runs = 0
        for ms in range(matrix_seeds):
            B = make(seed=ms)
            optimal = gd_seeds.optimal_error(B, K)
            for r in range(seeds):
                U, s, Vt = fastlr.gd_svd(B, K, random_state=r)
                worst = max(worst, gd_seeds.error_of(B, U, s, Vt.T) / optimal)
                runs += 1
        print(f"| {name} | {min(t_gd) * 1e3:.1f} | {min(t_svds) * 1e3:.1f} | {min(t_gd) / min(t_svds):.2f} "
              f"| {np.median(ratios):.2f} | {min(its)}-{max(its)} | {worst:.7f} ({runs}) "
              f"| {min(per_iter) / min(t_pass):.2f} ({min(per_iter) * 1e3:.2f} / {min(t_pass) * 1e3:.2f} ms) |",
              flush=True)
    print(f"\n{rounds} interleaved rounds per matrix; error ratios over random_state 0..{seeds - 1} on "
          f"{matrix_seeds} matrix seeds. An iteration's time is the smallest gap between consecutive losses.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=10.0, help="seconds per seed run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--large", action="store_true", help="also complete a 20000 x 5000 matrix")
    parser.add_argument("--out", default=os.path.join(HERE, "gd_loss_vs_time.png"))
    parser.add_argument("--defaults", action="store_true", help="only the default-arguments table, 1 thread")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved timing rounds (--defaults)")
    parser.add_argument("--seeds", type=int, default=20, help="random states per matrix (--defaults)")
    parser.add_argument("--matrix-seeds", type=int, default=3, help="matrices per case (--defaults)")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    if args.defaults:
        with fastlr.thread_limit(1), threadpool_limits(limits=1):
            defaults(args.rounds, args.seeds, args.matrix_seeds)
        return
    fastlr.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        results = convergence(args.budget, args.threads)
        print_convergence(results, args.budget)
        seed_parity(args.threads)
        curves = completion(args.large)
    plot(results, curves, args.out)


if __name__ == "__main__":
    main()
