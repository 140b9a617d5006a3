"""2 threads vs 1 right after a multi-threaded BLAS call (OpenBLAS's workers still spinning) and on a
quiet machine, wall clock, min over rounds, for every kind of call bench/new_user_figures.py times
(randomized_svd, scw, the dense products, CountSketch dense and CSR with its construction, gd_svd with
defaults) and the sparse passes of ``InMemory``. Prints one line per call and a JSON dict
{"<call>|<blas or quiet>|<threads>": ms}.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/threads_after_blas.py 6
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/threads_after_blas.py 6 --only randomized_svd csr

``--only``: calls whose label contains any of these words. ``--busy``: another process spins on one core
throughout (a host or neighbour holding a core; libgomp's idle workers spinning beside it cost the main
thread its share). Run it under two builds' Pythons alternately to compare them (bench/README.md, sixth
session, lead). ``--check-ab``: each 2-thread call runs with the compiled core's busy-thread check off and on,
alternated (one thread once), keys "<call>|<blas or quiet>|2|check on" / "check off"; without it the check
keeps its setting (on unless FASTLR_BUSY_CHECK=0). ``--kernels``: the checked compiled kernels called directly
(``kernel_cases``) instead:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/threads_after_blas.py 6 --check-ab
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/threads_after_blas.py 12 --check-ab --kernels
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from fastlr._matrix import InMemory

# fastlr's kernels (and with them libgomp, idle workers sleeping after GOMP_SPIN_COUNT pauses) load before
# gd_seeds imports torch: torch's libgomp, loaded first, would serve fastlr too with libgomp's own spin (~11 ms)
fastlr.get_backend("cpp")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import gd_seeds  # noqa: E402
from sparse_products import random_sparse  # noqa: E402


def cases() -> list:
    """(label, call) for every row; the data are built once."""
    rng = np.random.default_rng(0)
    core = fastlr.get_backend("cpp")
    out = []
    A64 = rng.standard_normal((5760, 1080))
    A32 = A64.astype(np.float32)
    for name in ("gram_product",):
        for n, d in ((5760, 1080), (100000, 500)):
            A = A32 if n == 5760 else rng.standard_normal((n, d)).astype(np.float32)
            V = rng.standard_normal((d, 20)).astype(np.float32)
            out.append((f"{name} {n}x{d} l=20 f32", (lambda f, A, V: lambda: f(A, V))(getattr(core, name), A, V)))
    for A, tag in ((A64, "f64"), (A32, "f32")):
        op = InMemory(A)
        for l in (10, 60):
            V = rng.standard_normal((1080, l)).astype(A.dtype)
            out.append((f"InMemory(dense 5760x1080).times l={l} {tag}", (lambda op, V: lambda: op.times(V))(op, V)))
        for k in (10, 50):
            out.append((f"randomized_svd 5760x1080 k={k} {tag}",
                        (lambda A, k: lambda: fastlr.randomized_svd(A, k, random_state=0))(A, k)))
        W = np.ascontiguousarray(A.T)
        out.append((f"randomized_svd 1080x5760 k=10 {tag}", (lambda W: lambda: fastlr.randomized_svd(W, 10, random_state=0))(W)))
        out.append((f"scw 5760x1080 m=20 k=10 {tag}",
                    (lambda A: lambda: fastlr.scw(A, fastlr.CountSketch(20, 5760, seed=1), 10))(A)))
        out.append((f"CountSketch(20, 5760, seed) @ dense 5760x1080 {tag}",
                    (lambda A: lambda: fastlr.CountSketch(20, 5760, seed=1) @ A)(A)))
    T64 = rng.standard_normal((100000, 500))
    for A, tag in ((T64, "f64"), (T64.astype(np.float32), "f32")):
        out.append((f"randomized_svd 100000x500 k=10 {tag}", (lambda A: lambda: fastlr.randomized_svd(A, 10, random_state=0))(A)))
    D = rng.standard_normal((100000, 200))
    out.append(("CountSketch(50, 100000, seed) @ dense 100000x200 f64", lambda: fastlr.CountSketch(50, 100000, seed=1) @ D))
    G = gd_seeds.inverse_spectrum()
    out.append(("gd_svd(A, 10) defaults 2000x1000", lambda: fastlr.gd_svd(G, 10, random_state=0)))
    C = random_sparse(1_000_000, 500, 500_000, np.float64, np.random.default_rng(2))
    out.append(("CountSketch(50, 10**6, seed) @ csr 1Mx500, construction included",
                lambda: fastlr.CountSketch(50, 1_000_000, seed=1) @ C))
    opC = InMemory(C)
    V16 = rng.standard_normal((500, 16))
    out.append(("InMemory(csr 1Mx500 0.5/row).times l=16", lambda: opC.times(V16)))
    S = random_sparse(100000, 5000, 1_000_000, np.float64, np.random.default_rng(1))
    opS = InMemory(S)
    SV, SW = rng.standard_normal((5000, 8)), rng.standard_normal((100000, 8))
    out.append(("InMemory(csr 100000x5000 0.2%).times l=8", lambda: opS.times(SV)))
    out.append(("InMemory(csr 100000x5000 0.2%).rtimes l=8", lambda: opS.rtimes(SW)))
    out.append(("InMemory(csr 100000x5000 0.2%).gram_product l=8", lambda: opS.gram_product(SV)))
    return out


def kernel_cases() -> list:
    """(label, call) of the compiled kernels the busy-thread check may give fewer threads, called directly
    (``--kernels``): which of them a spinning OpenBLAS worker slows at two threads."""
    rng = np.random.default_rng(0)
    core = fastlr.get_backend("cpp")
    A32 = rng.standard_normal((5760, 1080)).astype(np.float32)
    A64 = A32.astype(np.float64)
    T = rng.standard_normal((100000, 200))
    S = random_sparse(100000, 5000, 1_000_000, np.float64, np.random.default_rng(1))
    C = random_sparse(1_000_000, 500, 500_000, np.float64, np.random.default_rng(2))
    V, SV, CV = rng.standard_normal((1080, 10)), rng.standard_normal((5000, 8)), rng.standard_normal((500, 16))
    P, grad, state = rng.standard_normal((1000, 1000)), rng.standard_normal((1000, 1000)), np.zeros((2, 1000, 1000))
    return [
        ("matmul 5760x1080 k=10 f32", lambda: core.matmul(A32, V.astype(np.float32))),
        ("matmul 5760x1080 k=10 f64", lambda: core.matmul(A64, V)),
        ("countsketch_seeded_dense m=20 5760x1080 f32", lambda: core.countsketch_seeded_dense(A32, 1, 20)),
        ("countsketch_seeded_dense m=20 5760x1080 f64", lambda: core.countsketch_seeded_dense(A64, 1, 20)),
        ("countsketch_seeded_dense m=50 100000x200 f64", lambda: core.countsketch_seeded_dense(T, 1, 50)),
        ("matmul_csr 100000x5000 nnz=1e6 k=8", lambda: core.matmul_csr(S.indptr, S.indices, S.data, SV)),
        ("matmul_csr 1Mx500 nnz=5e5 k=16", lambda: core.matmul_csr(C.indptr, C.indices, C.data, CV)),
        ("countsketch_seeded_csr m=50 100000x5000 nnz=1e6",
         lambda: core.countsketch_seeded_csr(S.indptr, S.indices, S.data, 1, 50, *S.shape)),
        ("countsketch_seeded_csr m=50 1Mx500 nnz=5e5",
         lambda: core.countsketch_seeded_csr(C.indptr, C.indices, C.data, 1, 50, *C.shape)),
        ("optimizer_step adam 1000x1000", lambda: core.optimizer_step(P, grad, state, "adam", (1e-12, 0.9, 0.99, 1e-8, 1.0))),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rounds", type=int)
    ap.add_argument("--only", nargs="*", default=[], help="calls whose label contains any of these words")
    ap.add_argument("--busy", action="store_true", help="another process spins on a core throughout")
    ap.add_argument("--check-ab", action="store_true", help="2 threads with the busy-thread check off and on")
    ap.add_argument("--kernels", action="store_true", help="the checked kernels called directly instead of the calls")
    args = ap.parse_args(argv)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        return _run(args)
    finally:
        if busy is not None:
            busy.kill()


def _variants(check_ab: bool) -> list:
    """(threads, busy-thread check on, off, or None: as set) of one call in one round."""
    return [(1, None), (2, False), (2, True)] if check_ab else [(1, None), (2, None)]


def _key(label: str, before: str, threads: int, check) -> str:
    return f"{label}|{before}|{threads}" + ("" if check is None else f"|check {'on' if check else 'off'}")


def _run(args) -> int:
    G = np.random.default_rng(0).standard_normal((400, 400))
    core = fastlr.get_backend("cpp")
    setting = core.build_info()["busy_check"]
    rows = kernel_cases() if args.kernels else cases()
    calls = [(label, call) for label, call in rows if not args.only or any(w in label for w in args.only)]
    res: dict = {}
    for r in range(args.rounds + 1):  # round 0 warms up (calibration, page faults, Numba)
        for before in ("blas", "quiet"):
            for label, call in calls:
                variants = _variants(args.check_ab)
                for t, check in (variants if r % 2 == 0 else variants[::-1]):
                    fastlr.set_num_threads(t)
                    core._set_busy_check(setting if check is None else check)
                    with threadpool_limits(limits=t, user_api="blas"):
                        if before == "blas":
                            with threadpool_limits(limits=2, user_api="blas"):
                                G @ G
                        else:
                            time.sleep(0.05)
                        w = time.perf_counter()
                        call()
                        w = time.perf_counter() - w
                    if r > 0:
                        res.setdefault(_key(label, before, t, check), []).append(w * 1e3)
    core._set_busy_check(setting)
    best = {k: min(v) for k, v in res.items()}
    twos = [c for t, c in _variants(args.check_ab) if t == 2]
    heads = [f"{'after BLAS' if b == 'blas' else 'quiet'}{'' if c is None else ', check ' + ('on' if c else 'off')}"
             for b in ("blas", "quiet") for c in twos]
    print(f"busy-thread check as set: {'on' if setting else 'off'}")
    print("| call | " + " | ".join(f"{h}: 1 / 2 threads, ms, 2/1" for h in heads) + " |")
    print("|---" * (len(heads) + 1) + "|")
    for label, _ in calls:
        cells = []
        for before in ("blas", "quiet"):
            one = best[_key(label, before, 1, None)]
            for check in twos:
                two = best[_key(label, before, 2, check)]
                cells.append(f"{one:.2f} / {two:.2f}, {two / one:.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(json.dumps(best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
