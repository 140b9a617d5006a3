"""2 threads vs 1 after an idle pause, for the busy-thread check's cold-pool rule (csrc/bindings/busy_threads.cpp):
``countsketch_seeded_dense`` m = 20 on a 5760 x 1080 array (the kernel under ``CountSketch(20, 5760, seed) @ A``)
called right after a call of the same variant (pause 0) or after sleeping ``pause`` ms, at 1 and 2 threads, wall
clock, min and median over rounds; with ``--old PATH`` another build's ``_core`` .so (bench/ab_kernels.py
``load_core``) runs beside this one, the four variants interleaved and their order rotated every round. The last
column is the thread count the 2-thread calls of this build were given (mean). bench/README.md, twenty-second
session (HT).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/cold_pool.py 12 --pauses 0 2 5 10 20 30 50 \\
        --old /tmp/old/_core.cpython-311-x86_64-linux-gnu.so
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from ab_kernels import load_core  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rounds", type=int)
    ap.add_argument("--pauses", type=float, nargs="+", default=[0, 5, 20, 50], help="ms")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--old", help="another build's _core .so to run beside this one")
    args = ap.parse_args(argv)
    cores = {"this": fastlr.get_backend("cpp")}
    if args.old:
        cores["old"] = load_core(args.old)
    A = np.random.default_rng(0).standard_normal((5760, 1080)).astype(args.dtype)
    variants = [(name, t) for name in cores for t in (1, 2)]
    res: dict = {}
    used: dict = {}
    with threadpool_limits(limits=1, user_api="blas"):
        for r in range(args.rounds + 1):  # round 0 warms up
            for p in args.pauses:
                for name, t in variants[r % len(variants):] + variants[:r % len(variants)]:
                    core = cores[name]
                    core.set_num_threads(t)
                    if p == 0:
                        core.countsketch_seeded_dense(A, 1, 20)
                    else:
                        time.sleep(p / 1e3)
                    w = time.perf_counter()
                    core.countsketch_seeded_dense(A, 1, 20)
                    w = time.perf_counter() - w
                    if r:
                        res.setdefault((p, name, t), []).append(w * 1e3)
                        used.setdefault((p, name, t), []).append(core._last_call_threads())
    heads = " | ".join(f"{name}: 1 / 2 threads, ms, min (median) | {name} 2/1" for name in cores)
    print(f"| pause ms | {heads} | {next(iter(cores))} 2-thread calls' threads |")
    print("|---" * (2 * len(cores) + 2) + "|")
    for p in args.pauses:
        cells = []
        for name in cores:
            one, two = res[p, name, 1], res[p, name, 2]
            cells.append(f"{min(one):.3f} ({np.median(one):.2f}) / {min(two):.3f} ({np.median(two):.2f}) | "
                         f"{min(two) / min(one):.2f}")
        print(f"| {p:g} | " + " | ".join(cells) + f" | {np.mean(used[p, 'this', 2]):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
