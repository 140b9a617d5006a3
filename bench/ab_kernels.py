#!/usr/bin/env python
"""A/B of the one-pass product kernels: another build of ``fastlr._core`` against this one.

Both builds run in one process on the same arrays, their rounds interleaved, so machine
drift (5-10% between runs here) cancels out of the ratio. Build the other revision's
extension, e.g.

    git worktree add /tmp/other <rev> && pip wheel --no-build-isolation --no-deps -w /tmp/w /tmp/other
    mkdir -p /tmp/other_core/other && unzip -j /tmp/w/fastlr-*.whl 'fastlr/_core*' -d /tmp/other_core/other

then

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab_kernels.py /tmp/other_core/other/_core*.so
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab_kernels.py OTHER.so --shapes 100000x200,5760x1080 --widths 10,20,50

Prints min-of-rounds milliseconds per kernel and shape, single-threaded (``--threads``).
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import itertools
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from fastlr._caches import read_cache_sizes

CASES = [((5760, 1080), 20), ((5760, 1080), 60), ((100000, 500), 20), ((2000, 1000), 10), ((2000, 1000), 32),
         ((20000, 2000), 10), ((20000, 2000), 32)]
KERNELS = ("power_step", "matmul", "rmatmul", "gd_products")


_loaded = itertools.count()


def load_core(path: str):
    """Import an extension file as a module named ``fastlr_ab_<i>._core`` (``_core``: its init function's
    name). Each call gets a name of its own: under one name a second build would come back as the first."""
    name = f"fastlr_ab_{next(_loaded)}._core"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def cpu_ms(call) -> float:
    """Milliseconds of CPU time the calling thread spends in ``call()`` (robust to other processes' load)."""
    start = time.thread_time()
    call()
    return (time.thread_time() - start) * 1e3


def interleaved_ms(calls: dict, rounds: int, reverse_odd: bool = False, rotate: bool = False) -> dict:
    """Each call's CPU time (ms) in each of ``rounds`` rounds, the calls alternated within every round
    (``reverse_odd``: in reverse order every other round, so neither always runs first; ``rotate``: round i
    starts at the i-th call, so with three or more calls each takes every position in turn)."""
    times = {name: [] for name in calls}
    names = list(calls)
    for i in range(rounds):
        if rotate:
            order = names[i % len(names):] + names[:i % len(names)]
        else:
            order = names[::-1] if reverse_odd and i % 2 else names
        for name in order:
            times[name].append(cpu_ms(calls[name]))
    return times


def interleaved_best_ms(calls: dict, rounds: int, reverse_odd: bool = False, rotate: bool = False) -> dict:
    """Each call's least CPU time (ms) over ``rounds`` rounds (``interleaved_ms``)."""
    return {name: min(t, default=np.inf) for name, t in interleaved_ms(calls, rounds, reverse_odd, rotate).items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("other", help="path of the other build's _core extension file")
    ap.add_argument("--kernels", default=",".join(KERNELS), help="comma-separated kernel names")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--shapes", help="instead of the built-in cases: comma-separated NxD, each at every --widths")
    ap.add_argument("--widths", default="10,20,50", help="factor widths for --shapes")
    args = ap.parse_args(argv)
    other, this = load_core(args.other), fastlr.get_backend("cpp")
    for core in (other, this):
        core.set_num_threads(args.threads)
        core._set_cache_sizes(*read_cache_sizes())  # as fastlr does when it loads its own build
    cases = CASES if not args.shapes else [
        (tuple(int(v) for v in shape.split("x")), int(k)) for shape in args.shapes.split(",") for k in args.widths.split(",")]
    rng = np.random.default_rng(0)
    with threadpool_limits(limits=args.threads):
        for (n, d), k in cases:
            for dtype in (np.float32, np.float64):
                A = rng.standard_normal((n, d)).astype(dtype)
                V = rng.standard_normal((d, k)).astype(dtype)
                W = rng.standard_normal((n, k)).astype(dtype)
                line = f"{n}x{d} {np.dtype(dtype).name} k={k:3d}"
                for name in args.kernels.split(","):
                    call = {"power_step": (A, V), "matmul": (A, V), "rmatmul": (A, W), "gd_products": (A, W, V)}[name]
                    times = {"other": [], "this": []}
                    for _ in range(args.rounds + 1):  # the first round warms up
                        for label, core in (("other", other), ("this", this)):
                            start = time.perf_counter()
                            getattr(core, name)(*call)
                            times[label].append(time.perf_counter() - start)
                    t_other, t_this = min(times["other"][1:]), min(times["this"][1:])
                    line += f" | {name} {t_other * 1e3:.2f} -> {t_this * 1e3:.2f} ms ({t_other / t_this:.2f}x)"
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
