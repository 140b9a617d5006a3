"""Dense CountSketch S @ A against the memory floor, with an interleaved A/B of two builds.

One process, one thread, each call's CPU time (``time.thread_time``), min over interleaved
rounds. Columns: an older compiled ``_core`` (``--old``: a copy of its .so, loaded under its own
path) and this checkout's (or ``--new``: another copy), the seeded kernel (hash + apply) and the materialized one, the public
``CountSketch(m, n, seed) @ A``, SciPy's ``clarkson_woodruff_transform``, NumPy's ``A.sum()`` (the floor of
the tables before the twentieth session) and the memory floor: the fastest single read of A
(bench/read_floor.py: A.sum(), A @ ones, ones @ A and, with g++, C++ loops in memory order and over four rows
at once).
Both builds' results are checked equal to the last bit first. Before each call a 64 MB write evicts A
from the caches (5760 x 1080 float32 is 25 MB: it would otherwise stay in the 32 MB L3 from one call to
the next, and the previous call's dtype and size would decide how much of it does).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab_countsketch_dense.py --old /tmp/old/_core.so
    ... --isa baseline   # both builds' kernels capped at that level
"""

import argparse
import time

import numpy as np
from scipy.linalg import clarkson_woodruff_transform
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _core
from ab_kernels import load_core  # another build's extension (bench/ is the script's folder)
from read_floor import cpp_reads, floor_calls

ISA_LEVELS = {"v4": 2, "v3": 1, "baseline": 0}  # _core._cap_isa's levels
_SCRATCH = np.zeros(2**23)  # 64 MB, twice the L3 here: filled before each call


def _best(calls, rounds, flush=True):
    best = {name: float("inf") for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            if flush:  # every call finds A in memory, not in the L3 the previous call left it in
                _SCRATCH.fill(1.0)
            t0 = time.thread_time()
            call()
            best[name] = min(best[name], time.thread_time() - t0)
    return {name: 1e3 * t for name, t in best.items()}


def _row(A, m, new, old, reads, rounds, flush):
    """One table row: every call on A, interleaved, after checking the builds agree bit for bit."""
    n, d = A.shape
    rows, signs = new.countsketch_hash(1, m, 0, n)
    values = signs.astype(A.dtype)
    new_seeded = new.countsketch_seeded_dense(A, 1, m)
    assert np.array_equal(new.countsketch_dense(A, rows, values, m), new_seeded)
    floors = floor_calls(lambda: A, A.dtype, A.shape, reads)
    calls = {"new_seeded": lambda: new.countsketch_seeded_dense(A, 1, m),
             "new_mat": lambda: new.countsketch_dense(A, rows, values, m),
             "api": lambda: fastlr.CountSketch(m, n, seed=1) @ A,
             "scipy": lambda: clarkson_woodruff_transform(A, m, seed=1),
             **floors}
    if old is not None:
        assert np.array_equal(old.countsketch_seeded_dense(A, 1, m), new_seeded)
        calls["old_seeded"] = lambda: old.countsketch_seeded_dense(A, 1, m)
        calls["old_mat"] = lambda: old.countsketch_dense(A, rows, values, m)
    t = _best(calls, rounds, flush)
    floor = min(t[name] for name in floors)
    nan = float("nan")
    cells = [f"{n}x{d} ({m})", A.dtype.name, t.get("old_seeded", nan), t["new_seeded"],
             t["new_seeded"] / t.get("old_seeded", nan), t.get("old_mat", nan), t["new_mat"], t["api"], t["scipy"],
             t["A.sum()"], floor, min(floors, key=t.get), t["api"] / t["A.sum()"], t["api"] / floor]
    print("| " + " | ".join(c if isinstance(c, str) else f"{c:.2f}" for c in cells) + " |", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", help="path of an older build's _core .so (a copy), for the A/B columns")
    parser.add_argument("--new", help="path of the new build's _core .so (default: fastlr's own)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--no-flush", action="store_true", help="skip the 64 MB write that evicts A before each call")
    parser.add_argument("--isa", choices=list(ISA_LEVELS), help="cap both builds' kernels at this level (_cap_isa)")
    args = parser.parse_args(argv)
    old = load_core(args.old) if args.old else None
    new = load_core(args.new) if args.new else _core
    for core in (new, old) if old is not None else (new,):
        core.set_num_threads(1)
        if args.isa:
            core._cap_isa(ISA_LEVELS[args.isa])
    print(f"kernels run {new.build_info()['kernel_isa']}" + (f" (old: {old.build_info()['kernel_isa']})" if old else ""))
    reads = cpp_reads()
    rng = np.random.default_rng(2)
    head = ["A (m)", "dtype", "old seeded", "new seeded", "new / old", "old materialized", "new materialized",
            "new API", "scipy cwt", "A.sum()", "floor", "fastest read", "API / A.sum()", "API / floor"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    with fastlr.thread_limit(1), threadpool_limits(1):
        for (n, d), m in (((5760, 1080), 20), ((100_000, 200), 50)):
            for dtype in (np.float64, np.float32):
                _row(rng.standard_normal((n, d)).astype(dtype), m, new, old, reads, args.rounds, not args.no_flush)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
