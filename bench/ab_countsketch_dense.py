"""Dense CountSketch S @ A against the memory floor, with an interleaved A/B of two builds.

One process, one thread, each call's CPU time (``time.thread_time``), min over interleaved
rounds. Columns: an older compiled ``_core`` (``--old``: a copy of its .so, loaded under its own
path) and this checkout's (or ``--new``: another copy), the seeded kernel (hash + apply) and the materialized one, the public
``CountSketch(m, n, seed) @ A``, SciPy's ``clarkson_woodruff_transform``, and two floors: NumPy's
``A.sum()`` (pairwise, what bench/new_user_figures.py uses) and a tight read of A (a C++ loop with
four vectorized partial sums, compiled here with g++ when it is available, else Numba's fastmath sum).
Both builds' results are checked equal to the last bit first. Before each call a 64 MB write evicts A
from the caches (5760 x 1080 float32 is 25 MB: it would otherwise stay in the 32 MB L3 from one call to
the next, and the previous call's dtype and size would decide how much of it does).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab_countsketch_dense.py --old /tmp/old/_core.so
    ... --isa baseline   # both builds' kernels capped at that level
"""

import argparse
import ctypes
import os
import shutil
import subprocess
import tempfile
import time

import numba as nb
import numpy as np
from scipy.linalg import clarkson_woodruff_transform
from threadpoolctl import threadpool_limits

import fastlr
from fastlr import _core
from ab_kernels import load_core  # another build's extension (bench/ is the script's folder)

READ_CPP = r"""
#include <cstddef>
template <class T> static T rd(const T* a, std::size_t n) {
  T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  std::size_t i = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
  for (i = 0; i < n / 4 * 4; i += 4) { s0 += a[i]; s1 += a[i + 1]; s2 += a[i + 2]; s3 += a[i + 3]; }
  for (; i < n; ++i) s0 += a[i];
  return s0 + s1 + s2 + s3;
}
extern "C" double read_f64(const double* a, std::size_t n) { return rd(a, n); }
extern "C" float read_f32(const float* a, std::size_t n) { return rd(a, n); }
"""


def _cpp_read():
    """{dtype: read(A)} from a g++-compiled tight loop (-O3 -march=native), or None without g++."""
    if shutil.which("g++") is None:
        return None
    folder = tempfile.mkdtemp()
    src, lib = os.path.join(folder, "read.cpp"), os.path.join(folder, "read.so")
    with open(src, "w") as f:
        f.write(READ_CPP)
    subprocess.run(["g++", "-O3", "-march=native", "-fopenmp-simd", "-shared", "-fPIC", src, "-o", lib], check=True)
    so = ctypes.CDLL(lib)
    so.read_f64.restype, so.read_f32.restype = ctypes.c_double, ctypes.c_float
    for fn in (so.read_f64, so.read_f32):
        fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return {np.dtype(np.float64): lambda A: so.read_f64(A.ctypes.data, A.size),
            np.dtype(np.float32): lambda A: so.read_f32(A.ctypes.data, A.size)}


@nb.njit(cache=True, fastmath=True)  # fastmath: a vectorized sum, one thread
def _numba_read(a):
    s = a[0] * 0
    for x in a:
        s += x
    return s


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


def _row(A, m, new, old, cpp_read, rounds, flush):
    """One table row: every call on A, interleaved, after checking the builds agree bit for bit."""
    n, d = A.shape
    rows, signs = new.countsketch_hash(1, m, 0, n)
    values = signs.astype(A.dtype)
    new_seeded = new.countsketch_seeded_dense(A, 1, m)
    assert np.array_equal(new.countsketch_dense(A, rows, values, m), new_seeded)
    flat = A.reshape(-1)
    calls = {"new_seeded": lambda: new.countsketch_seeded_dense(A, 1, m),
             "new_mat": lambda: new.countsketch_dense(A, rows, values, m),
             "api": lambda: fastlr.CountSketch(m, n, seed=1) @ A,
             "scipy": lambda: clarkson_woodruff_transform(A, m, seed=1),
             "sum": lambda: A.sum(),
             "read": (lambda: cpp_read[A.dtype](A)) if cpp_read else (lambda: _numba_read(flat))}
    if old is not None:
        assert np.array_equal(old.countsketch_seeded_dense(A, 1, m), new_seeded)
        calls["old_seeded"] = lambda: old.countsketch_seeded_dense(A, 1, m)
        calls["old_mat"] = lambda: old.countsketch_dense(A, rows, values, m)
    t = _best(calls, rounds, flush)
    nan = float("nan")
    cells = [f"{n}x{d} ({m})", A.dtype.name, t.get("old_seeded", nan), t["new_seeded"],
             t["new_seeded"] / t.get("old_seeded", nan), t.get("old_mat", nan), t["new_mat"], t["api"], t["scipy"],
             t["sum"], t["read"], t["api"] / t["sum"], t["api"] / t["read"]]
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
    cpp_read = _cpp_read()
    rng = np.random.default_rng(2)
    head = ["A (m)", "dtype", "old seeded", "new seeded", "new / old", "old materialized", "new materialized",
            "new API", "scipy cwt", "A.sum()", "tight read", "API / A.sum()", "API / tight read"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    with fastlr.thread_limit(1), threadpool_limits(1):
        for (n, d), m in (((5760, 1080), 20), ((100_000, 200), 50)):
            for dtype in (np.float64, np.float32):
                _row(rng.standard_normal((n, d)).astype(dtype), m, new, old, cpp_read, args.rounds, not args.no_flush)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
