#!/usr/bin/env python
"""fastlr's sparse products against the SciPy expressions they replace (issue 13).

For each sparse A (CSR and CSC as the user passes them, float32/float64) and factor width k,
times, in one process with the rounds interleaved:

* ``kernel vN``: the compiled one-pass kernel InMemory would run (CSC through the CSR kernels
  of A^T; CSC gram / power as two passes), at each ISA cap (``_core._cap_product_isa``);
* ``scipy``: the SciPy expression it replaces (``A @ V``, ``A.T @ W``, ``A.T @ (A @ V)``,
  ``(A @ V, A.T @ (A @ V))``);
* ``fastlr``: fastlr's routed entry point (``times``, ``rtimes``, ``gram_product``,
  ``power_pass``), which picks the kernel or SciPy; the ratio scipy / fastlr is that of the
  kernel column at each level where the route is the kernel, 1 where it is SciPy.

Single thread (fastlr and BLAS pools); each call's CPU time in the calling thread
(``time.thread_time``), min over the rounds after a warm-up round:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/sparse_products.py --rounds 5 --runs 3

The calls run in a fresh random order each round (a call's time depends on the one before it). With ``--runs R`` each row is timed in R
blocks of interleaved rounds (each a min); a row
counts as slower at a level when fastlr loses to SciPy in every block (``slower`` column,
levels listed), and the table shows the block of the median ratio. Prints a markdown table of
ms per call and scipy / fastlr (< 1, in bold: fastlr slower), then the slower rows per level.
With ``--route-only`` the fastlr entry point is not timed (the kernel or SciPy column stands in).
The route is asked at each level (``use_sparse_kernel`` depends on the ISA level): the route
column reads "kernel" or "scipy" when every level agrees, else one letter a level (k / s, in
``--isa`` order). ``--json FILE`` appends one line a row with every block's kernel and SciPy
times and the routes, for checking a rule against rows it was not run with.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

import fastlr
from fastlr._matrix.memory import InMemory

#: (name, n, d, nnz)
MATRICES = {
    "20000x2000@1%": (20000, 2000, 400_000),
    "1Mx500@500k": (1_000_000, 500, 500_000),
    "100000x5000@0.1%": (100_000, 5000, 500_000),
}
#: Neighbours of issue 13's sparse rows (not run by default; ``--matrices neighbours`` runs all):
#: square and wide matrices with 2-50 nonzeros a row, whose d x k or n x k factors pass L2.
NEIGHBOURS = {
    "50000x50000@5/row": (50_000, 50_000, 250_000),
    "50000x50000@2/row": (50_000, 50_000, 100_000),
    "50000x50000@20/row": (50_000, 50_000, 1_000_000),
    "50000x5000@2/row": (50_000, 5000, 100_000),
    "200000x200000@5/row": (200_000, 200_000, 1_000_000),
    "200000x5000@10/row": (200_000, 5000, 2_000_000),
    "5000x200000@50/row": (5000, 200_000, 250_000),
}
WIDTHS = [1, 2, 3, 4, 6, 8, 12, 16, 32, 64]
PRODUCTS = ("matmul", "rmatmul", "gram", "power")
LEVELS = {2: "v4", 1: "v3", 0: "base"}


def random_sparse(n, d, nnz, dtype, rng):
    """Uniformly scattered nonzeros (duplicates summed), standard normal values."""
    rows = rng.integers(0, n, nnz)
    cols = rng.integers(0, d, nnz)
    vals = rng.standard_normal(nnz)
    A = sp.coo_matrix((vals, (rows, cols)), shape=(n, d)).tocsr()
    A.sum_duplicates()
    return A.astype(dtype)


def kernel_call(core, A, name, V, W):
    """The compiled kernel InMemory routes the product to (see memory.py)."""
    parts = (np.ascontiguousarray(A.indptr), np.ascontiguousarray(A.indices), np.ascontiguousarray(A.data))
    n, d = A.shape
    if A.format == "csr":
        mm = lambda X: core.matmul_csr(*parts, X)  # noqa: E731
        rm = lambda X: core.rmatmul_csr(*parts, X, d)  # noqa: E731
        if name == "gram":
            return lambda: core.gram_product_csr(*parts, V)
        if name == "power":
            return lambda: core.power_step_csr(*parts, V)
    else:  # CSC A: the CSR arrays of A^T
        mm = lambda X: core.rmatmul_csr(*parts, X, n)  # noqa: E731
        rm = lambda X: core.matmul_csr(*parts, X)  # noqa: E731
        if name == "gram":
            return lambda: rm(mm(V))
        if name == "power":
            return lambda: (lambda Y: (Y, rm(Y)))(mm(V))
    return (lambda: mm(V)) if name == "matmul" else (lambda: rm(W))


def scipy_call(A, name, V, W):
    if name == "matmul":
        return lambda: A @ V
    if name == "rmatmul":
        return lambda: A.T @ W
    if name == "gram":
        return lambda: A.T @ (A @ V)
    return lambda: (lambda Y: (Y, A.T @ Y))(A @ V)


def routed_call(op, name, V, W):
    if name == "matmul":
        return lambda: op.times(V)
    if name == "rmatmul":
        return lambda: op.rtimes(W)
    if name == "gram":
        return lambda: op.gram_product(V)
    return lambda: op.power_pass(V)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=1, help="blocks of interleaved rounds per row")
    ap.add_argument("--matrices", default=",".join(MATRICES),
                    help="names from MATRICES or NEIGHBOURS, 'neighbours' (all of them) or NxD@NNZ "
                         "(e.g. 400000x500@1200000)")
    ap.add_argument("--widths", default=",".join(map(str, WIDTHS)))
    ap.add_argument("--products", default=",".join(PRODUCTS))
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--formats", default="csr,csc")
    ap.add_argument("--isa", default="2,1,0", help="ISA caps (2 v4, 1 v3, 0 baseline)")
    ap.add_argument("--route-only", action="store_true",
                    help="do not time the entry point: fastlr = the routed kernel or SciPy column")
    ap.add_argument("--json", default=None, help="append each row's blocks and routes to this file (JSON lines)")
    args = ap.parse_args(argv)
    clock = time.thread_time
    core = fastlr.get_backend("cpp")
    fastlr.set_num_threads(1)
    levels = [int(x) for x in args.isa.split(",")]
    cpu = [line for line in open("/proc/cpuinfo") if line.startswith("model name")][0].split(":")[1].strip()
    print(f"# CPU {cpu}; fastlr ISA {core.build_info().get('isa')}; 1 thread; thread_time min of "
          f"{args.rounds} interleaved rounds, {args.runs} run(s)", flush=True)
    kcols = " | ".join(f"kernel {LEVELS[lv]}" for lv in levels)
    rcols = " | ".join(f"scipy/fastlr {LEVELS[lv]}" for lv in levels)
    print(f"| A | dtype | fmt | k | product | {kcols} | scipy | route | {rcols} | slower |")
    print("|" + "---|" * (7 + 2 * len(levels)))
    slower = {lv: [] for lv in levels}
    total = 0
    rng = np.random.default_rng(0)
    shuffle = np.random.default_rng(1)  # the calls' order in each round
    try:
        with threadpool_limits(limits=1):
            names = [m for name in args.matrices.split(",")
                     for m in (NEIGHBOURS if name == "neighbours" else [name])]
            for mname in names:
                if mname in MATRICES or mname in NEIGHBOURS:
                    n, d, nnz = {**MATRICES, **NEIGHBOURS}[mname]
                else:
                    shape, nnz = mname.split("@")
                    n, d = map(int, shape.split("x"))
                    nnz = int(nnz)
                for dtype in args.dtypes.split(","):
                    A0 = random_sparse(n, d, nnz, dtype, rng)
                    for fmt in args.formats.split(","):
                        A = A0 if fmt == "csr" else A0.tocsc()
                        op = InMemory(A)
                        for k in map(int, args.widths.split(",")):
                            V = rng.standard_normal((d, k)).astype(dtype)
                            W = rng.standard_normal((n, k)).astype(dtype)
                            for name in args.products.split(","):
                                kind = "gram" if name in ("gram", "power") else name
                                routes = {}
                                for lv in levels:  # the rule depends on the ISA level
                                    core._cap_isa(lv)
                                    routes[lv] = "kernel" if op._kernel_for(kind, k) else "scipy"
                                core._cap_isa(max(levels))
                                route = (routes[levels[0]] if len(set(routes.values())) == 1 else
                                         "/".join(routes[lv][0] for lv in levels))
                                calls = {("k", lv): kernel_call(core, A, name, V, W) for lv in levels}
                                calls["scipy"] = scipy_call(A, name, V, W)
                                if not args.route_only:
                                    calls.update({("f", lv): routed_call(op, name, V, W) for lv in levels})
                                runs = []
                                for _ in range(args.runs):
                                    t = {key: [] for key in calls}
                                    order = list(calls.items())
                                    for r in range(args.rounds + 1):  # the first round warms up
                                        # a fresh order each round: a call's time depends on the
                                        # call before it (the caches and the allocator it leaves),
                                        # and a rotation keeps each call's predecessor (the first
                                        # level's kernel ran after SciPy in most rounds, 10-30%
                                        # slower on 6 MiB padded buffers: the v3/v4 gap of HT2)
                                        for q in shuffle.permutation(len(order)):
                                            key, fn = order[q]
                                            core._cap_isa(key[1] if isinstance(key, tuple) else max(levels))
                                            s = clock()
                                            fn()
                                            t[key].append(clock() - s)
                                    m = {key: min(v[1:]) * 1e3 for key, v in t.items()}
                                    for lv in levels:
                                        if args.route_only:
                                            m["f", lv] = m["k", lv] if routes[lv] == "kernel" else m["scipy"]
                                        m["r", lv] = m["scipy"] / m["f", lv]
                                    runs.append(m)
                                lost = [lv for lv in levels
                                        if routes[lv] == "kernel" and all(m["r", lv] < 1 for m in runs)]
                                if args.json:
                                    with open(args.json, "a") as f:
                                        f.write(json.dumps({
                                            "matrix": mname, "n": n, "d": d, "nnz": int(A.nnz), "dtype": dtype,
                                            "fmt": fmt, "k": k, "product": name,
                                            "route": {LEVELS[lv]: routes[lv] for lv in levels},
                                            "kernel": {LEVELS[lv]: [m["k", lv] for m in runs] for lv in levels},
                                            "scipy": [m["scipy"] for m in runs]}) + "\n")
                                for lv in lost:
                                    slower[lv].append(f"{mname} {dtype} {fmt} k={k} {name}")
                                total += 1
                                m = sorted(runs, key=lambda m: m["r", levels[0]])[len(runs) // 2]
                                row = " | ".join(f"{m['k', lv]:.3f}" for lv in levels)
                                row += f" | {m['scipy']:.3f} | {route} | "
                                row += " | ".join(("**%.2f**" if m["r", lv] < 0.95 else "%.2f") % m["r", lv]
                                                  for lv in levels)
                                row += " | " + (",".join(LEVELS[lv] for lv in lost) or "-")
                                print(f"| {mname} | {dtype} | {fmt} | {k} | {name} | {row} |", flush=True)
    finally:
        core._cap_isa(2)
    for lv in levels:
        print(f"\n# {LEVELS[lv]}: {len(slower[lv])} of {total} rows slower than SciPy in all {args.runs} run(s)")
        for r in slower[lv]:
            print(f"#   {r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
