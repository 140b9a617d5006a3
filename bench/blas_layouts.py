"""``A.T @ W`` of C-order A by BLAS in NumPy's layout (``A.T @ W``) and in fastlr's (``(W.T @ A).T``, what
``_linalg.blas_times`` runs for float64 and for float32 summing over A's long side), per width. One thread, CPU time
of this thread, min over rounds with the order alternating; "np/alt" > 1: fastlr's layout faster.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/blas_layouts.py ROUNDS WIDTHS [SHAPES]
    e.g. ... 9 20,33,40,44,48,52,54,56,58,60,62,64,66,68,72 5760x1080
"""

import os
import sys

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab_kernels import interleaved_ms  # noqa: E402


def main(argv):
    rounds, widths = int(argv[0]), [int(x) for x in argv[1].split(",")]
    shapes = [tuple(int(v) for v in s.split("x")) for s in (argv[2] if len(argv) > 2 else "5760x1080").split(",")]
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for n, d in shapes:
            A64 = rng.standard_normal((n, d))
            for dt in (np.float64, np.float32):
                A = A64.astype(dt)
                for w in widths:
                    W = rng.standard_normal((n, w)).astype(dt)
                    calls = {"np": lambda: A.T @ W, "alt": lambda: np.ascontiguousarray((W.T @ A).T)}  # noqa: B023
                    times = interleaved_ms(calls, rounds, reverse_odd=True)
                    m = {k: min(v) for k, v in times.items()}
                    paired = np.median(np.array(times["np"]) / np.array(times["alt"]))
                    print(f"{n}x{d} {np.dtype(dt).name} l={w}: np {m['np']:.2f} alt {m['alt']:.2f} ms; "
                          f"np/alt {m['np'] / m['alt']:.3f} (median of paired rounds {paired:.3f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
