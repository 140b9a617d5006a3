"""Dense CountSketch S @ A when consecutive rows of A share a bucket, with an interleaved A/B of two builds.

Buckets: ``random`` (uniform, what a seeded sketch gives), ``runs8`` (runs of 8 consecutive rows per
bucket, random bucket per run) and ``sorted`` (the random buckets sorted: n / m rows per run, what
refined inner-product positions look like on video). One process, each call's CPU time
(``time.thread_time`` at one thread, ``time.process_time`` at two, or with ``--wall``
``time.perf_counter``), min over interleaved rounds, both builds' results checked equal to the last bit
first. A is not evicted between calls (the kernels are
compared with each other, not against the memory floor; see ab_countsketch_dense.py for that).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab_countsketch_runs.py --old /tmp/hk/old_core.so \
        --new /tmp/hk/new_core.so

Each build is imported under a module name of its own (``ab_kernels.load_core``).
"""

import argparse
import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from fastlr import _core

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab_kernels import load_core  # noqa: E402 (another build's extension; bench/ is the script's folder)


def _buckets(kind, n, m, rng):
    if kind == "random":
        return rng.integers(0, m, n)
    if kind == "runs8":
        return np.repeat(rng.integers(0, m, (n + 7) // 8), 8)[:n]
    return np.sort(rng.integers(0, m, n))


def _best(calls, rounds, clock):
    best = {name: float("inf") for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            t0 = clock()
            call()
            best[name] = min(best[name], clock() - t0)
    return {name: 1e3 * t for name, t in best.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", help="path of an older build's _core .so (a copy), for the A/B columns")
    parser.add_argument("--new", help="path of the new build's _core .so (a copy; default: fastlr's own)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--isa", type=int, nargs="+", default=[2, 1, 0])
    parser.add_argument("--shapes", nargs="+", default=["100000x500:50", "5760x1080:20"])
    parser.add_argument("--kinds", nargs="+", default=["random", "runs8", "sorted"])
    parser.add_argument("--orders", default="CF")
    parser.add_argument("--wall", action="store_true", help="wall-clock time (time.perf_counter) at every thread count")
    args = parser.parse_args(argv)
    cores = {"new": load_core(args.new) if args.new else _core}
    if args.old:
        cores["old"] = load_core(args.old)
    rng = np.random.default_rng(3)
    head = ["A (m)", "dtype", "order", "isa", "thr"]
    for kind in args.kinds:
        head += [f"{kind} old", f"{kind} new"] if args.old else [f"{kind}"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head), flush=True)
    with threadpool_limits(1):
        for shape in args.shapes:
            nd, m = shape.split(":")
            n, d = map(int, nd.split("x"))
            m = int(m)
            base = rng.standard_normal((n, d))
            sketches = {kind: _buckets(kind, n, m, rng).astype(np.int64) for kind in args.kinds}
            signs = rng.choice([-1.0, 1.0], n)
            for dtype in (np.float64, np.float32):
                C = base.astype(dtype)
                for order in args.orders:
                    A = C if order == "C" else np.asfortranarray(C)
                    values = signs.astype(dtype)
                    for isa in args.isa:
                        for threads in args.threads:
                            for core in cores.values():
                                core._cap_isa(isa)
                                core.set_num_threads(threads)
                            calls = {}
                            for kind, rows in sketches.items():
                                want = cores["new"].countsketch_dense(A, rows, values, m)
                                for name, core in cores.items():
                                    assert np.array_equal(core.countsketch_dense(A, rows, values, m), want)
                                    calls[(kind, name)] = (lambda c=core, r=rows: c.countsketch_dense(A, r, values, m))
                            clock = time.thread_time if threads == 1 else time.process_time
                            clock = time.perf_counter if args.wall else clock
                            t = _best(calls, args.rounds, clock)
                            cells = [f"{n}x{d} ({m})", np.dtype(dtype).name, order, str(isa), str(threads)]
                            for kind in args.kinds:
                                cells += [f"{t[(kind, name)]:.2f}" for name in ("old", "new") if name in cores]
                            print("| " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
