#!/usr/bin/env python
"""One-column products, one build of the core against another: ``_core.vector_product`` kinds 1 (``A.T @ w``) and 0
(``A @ v``) on C-order A, three matrices in turn, rounds interleaved (min), NumPy's GEMV beside, one thread.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ROUNDS=15 python bench/vector_rows_ab.py OLD_CORE.so NEW_CORE.so 2,1 \\
        100000x200,1000000x20,200000x64,50000x500,5760x1080

Levels: 2 = x86-64-v4, 1 = v3, 0 = baseline. ``diff``: the largest difference between the two builds' results over
the largest entry (0 where both run the same loop).
"""

import os
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab_kernels import load_core  # noqa: E402

SHAPES = "100000x200,100000x100,200000x64,50000x500,5760x1080,1000000x20"


def main(argv) -> int:
    old, new = load_core(argv[1]), load_core(argv[2])
    levels = [int(x) for x in (argv[3] if len(argv) > 3 else "2").split(",")]
    shapes = [tuple(int(x) for x in s.split("x")) for s in (argv[4] if len(argv) > 4 else SHAPES).split(",")]
    rounds = int(os.environ.get("ROUNDS", 11))
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for level in levels:
            old._cap_isa(level)
            new._cap_isa(level)
            for shape in shapes:
                for dtype in (np.float32, np.float64):
                    mats = [rng.standard_normal(shape).astype(dtype) for _ in range(3)]
                    w = rng.standard_normal((shape[0], 1)).astype(dtype)
                    v = rng.standard_normal((shape[1], 1)).astype(dtype)
                    for kind, F in ((1, w), (0, v)):
                        times = {"old": [], "new": [], "numpy": []}
                        for r in range(rounds):
                            for j, (name, core) in enumerate((("old", old), ("new", new))):
                                A = mats[(r + j) % 3]
                                start = time.perf_counter()
                                core.vector_product(kind, A, F)
                                times[name].append(time.perf_counter() - start)
                            A = mats[(r + 2) % 3]
                            start = time.perf_counter()
                            _ = A.T @ w[:, 0] if kind == 1 else A @ v[:, 0]
                            times["numpy"].append(time.perf_counter() - start)
                        a, b = old.vector_product(kind, mats[0], F), new.vector_product(kind, mats[0], F)
                        diff = float(np.abs(a - b).max() / np.abs(a).max())
                        t = {name: 1e3 * min(x) for name, x in times.items()}
                        print(f"level {level} {shape[0]}x{shape[1]} {np.dtype(dtype).name} "
                              f"{'A.T @ w' if kind == 1 else 'A @ v'}: old {t['old']:.2f} new {t['new']:.2f} ms "
                              f"({t['new'] / t['old']:.2f}x); NumPy {t['numpy']:.2f} (NumPy / new "
                              f"{t['numpy'] / t['new']:.2f}); diff {diff:.1e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
