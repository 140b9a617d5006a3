"""The public dense CountSketch call of an older checkout against this one's, interleaved in ONE process.

``CountSketch(m, n, seed) @ A`` (construction included), a prebuilt ``S @ A``, ``S.apply(A)`` and the seeded
kernel alone, next to bench/read_floor.py's floors, three matrices in turn (the L3 keeps none of them from one
call to the next), one thread, each call's CPU time, min and median over rounds in rotating order. The older
checkout runs as a renamed package copy with its own compiled core, so both Python paths and both kernels run
side by side (their S A checked equal to the last bit first):

    git archive <commit> fastlr | tar -x -C /tmp/old && mv /tmp/old/fastlr /tmp/old/fastlr_old
    cp <that commit's _core .so> /tmp/old/fastlr_old/
    sed -i 's/"fastlr\\._/"fastlr_old._/g' /tmp/old/fastlr_old/_backend.py   # its backends load its own modules
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab_countsketch_api.py --old /tmp/old [--isa baseline]
"""

import argparse
import sys

import numpy as np
from threadpoolctl import threadpool_limits

import fastlr
from ab_kernels import interleaved_ms
from read_floor import cpp_reads, floor_calls, rotation

ISA_LEVELS = {"v4": 2, "v3": 1, "baseline": 0}  # _core._cap_isa's levels
CASES = (((5760, 1080), 20), ((100_000, 200), 50))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="folder holding the older checkout as package fastlr_old")
    parser.add_argument("--isa", choices=list(ISA_LEVELS), default="v3")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--orders", default="CF", help="memory orders of A (F: no floor, old against new only)")
    args = parser.parse_args(argv)
    sys.path.insert(0, args.old)
    import fastlr_old  # noqa: E402 (found only once --old is on the path)

    cores = fastlr.get_backend("cpp"), fastlr_old.get_backend("cpp")
    assert cores[0] is not cores[1], "fastlr_old loaded this checkout's core: fix its _backend._MODULES"
    for core in cores:
        core._cap_isa(ISA_LEVELS[args.isa])
    reads = cpp_reads()
    rng = np.random.default_rng(2)
    with fastlr.thread_limit(1), fastlr_old.thread_limit(1), threadpool_limits(1):
        for shape, m in CASES:
            for dtype in (np.float64, np.float32):
                for order in args.orders:
                    D = rotation([np.asarray(rng.standard_normal(shape).astype(dtype), order=order) for _ in range(3)])
                    floors = floor_calls(D, dtype, shape, reads) if order == "C" else {}
                    S_new, S_old = fastlr.CountSketch(m, shape[0], seed=1), fastlr_old.CountSketch(m, shape[0], seed=1)
                    X = D()
                    assert np.array_equal(S_new @ X, S_old @ X)
                    calls = {"new": lambda: fastlr.CountSketch(m, shape[0], seed=1) @ D(),
                             "old": lambda: fastlr_old.CountSketch(m, shape[0], seed=1) @ D(),
                             "new prebuilt": lambda: S_new @ D(), "old prebuilt": lambda: S_old @ D(),
                             "new apply": lambda: S_new.apply(D()), "old apply": lambda: S_old.apply(D()),
                             "new kernel": lambda: cores[0].countsketch_seeded_dense(D(), 1, m, 0), **floors}
                    t = interleaved_ms(calls, args.rounds, rotate=True)
                    best = {k: min(v) for k, v in t.items()}
                    floor = min((best[k] for k in floors), default=float("nan"))
                    print(f"{shape[0]}x{shape[1]} m={m} {dtype.__name__} {order} {args.isa}: floor {floor:.3f} ms"
                          + (f" ({min(floors, key=best.get)})" if floors else "") + "; "
                          + "; ".join(f"{k} {best[k]:.3f} ({best[k] / floor:.3f}x)" for k in calls if k not in floors)
                          + f"; new/old {best['new'] / best['old']:.3f}; medians: "
                          + ", ".join(f"{k} {np.median(t[k]):.3f}" for k in calls), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
