"""The CountSketch and gd kernels at each ISA level (``_core._cap_isa``), and an A/B against another build.

One process, one thread, each call's CPU time (``time.thread_time``), min over interleaved rounds: this
build's kernels capped at x86-64-v4, x86-64-v3 and the baseline, and (``--old``: a copy of another
build's ``_core`` .so, e.g. one whose kernels were target_clones chosen by the loader) that build's
uncapped kernels, checked equal to this build's v4 results to the last bit first.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab_isa_kernels.py --old /tmp/old/_core.so
"""

import argparse
import time

import numpy as np
import scipy.sparse as sp
from ab_kernels import load_core  # another build's extension (bench/ is the script's folder)

import fastlr
from fastlr import _core

LEVELS = ((2, "v4"), (1, "v3"), (0, "baseline"))


def _cases(rng):
    """(label, call(core) -> result) for each kernel and shape."""
    n, d, nnz = 1_000_000, 500, 500_000
    A = sp.csr_matrix((rng.standard_normal(nnz), (rng.integers(0, n, nnz), rng.integers(0, d, nnz))), shape=(n, d))
    csr = (A.indptr, A.indices, A.data)
    yield "seeded CSR 10^6x500, 500k nnz (m=50)", lambda c: c.countsketch_seeded_csr(*csr, 1, 50, n, d)
    for (rows, cols), m in (((5760, 1080), 20), ((100_000, 200), 50)):
        for dtype in (np.float64, np.float32):
            D = rng.standard_normal((rows, cols)).astype(dtype)
            yield (f"seeded dense {rows}x{cols} {dtype.__name__} (m={m})",
                   lambda c, D=D, m=m: c.countsketch_seeded_dense(D, 1, m))
    G = sp.random(20_000, 5_000, density=0.01, format="csr", random_state=rng)
    U, V = rng.standard_normal((20_000, 10)), rng.standard_normal((5_000, 10))
    yield "gd_masked_grad 20000x5000, 1M nnz, k=10", lambda c: c.gd_masked_grad(G.indptr, G.indices, G.data, U, V, 0.1)
    p0, g = rng.standard_normal(1_000_000), rng.standard_normal(1_000_000)

    def adam(c):
        p, state = p0.copy(), np.zeros((2, p0.size))
        c.optimizer_step(p, g, state, "adam", (0.01, 0.9, 0.999, 1e-8, 3))
        return p

    yield "optimizer_step adam 10^6 (with a copy of p)", adam


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", help="path of another build's _core .so (a copy), for the A/B column")
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args(argv)
    old = load_core(args.old) if args.old else None
    head = ["kernel", "v4 ms", "v3 ms", "baseline ms", "v3 / v4", "baseline / v4"]
    if old is not None:
        head += ["other build ms", "v4 / other"]
        old.set_num_threads(1)
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    previous = _core._cap_isa(2)
    try:
        with fastlr.thread_limit(1):
            for label, call in _cases(np.random.default_rng(3)):
                _core._cap_isa(2)
                if old is not None:  # the same sums in the same order: equal to the last bit
                    new_out, old_out = call(_core), call(old)
                    for a, b in zip(*(x if isinstance(x, tuple) else (x,) for x in (new_out, old_out))):
                        assert np.array_equal(a, b), label
                best = {}
                for _ in range(args.rounds):
                    for level, name in LEVELS:
                        _core._cap_isa(level)
                        t0 = time.thread_time()
                        call(_core)
                        best[name] = min(best.get(name, np.inf), time.thread_time() - t0)
                    if old is not None:
                        t0 = time.thread_time()
                        call(old)
                        best["old"] = min(best.get("old", np.inf), time.thread_time() - t0)
                ms = {k: 1e3 * v for k, v in best.items()}
                cells = [label, ms["v4"], ms["v3"], ms["baseline"], ms["v3"] / ms["v4"], ms["baseline"] / ms["v4"]]
                if old is not None:
                    cells += [ms["old"], ms["v4"] / ms["old"]]
                print("| " + " | ".join(c if isinstance(c, str) else f"{c:.2f}" for c in cells) + " |", flush=True)
    finally:
        _core._cap_isa(previous)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
