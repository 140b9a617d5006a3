"""gd_svd(A, 10) with defaults on 2000 x 1000 (sigma_i = 1/i) at 1 and 2 threads: wall clock and CPU time by
kind of thread (the caller, OpenBLAS's workers, OpenMP's workers; /proc/self/task/*/schedstat), median over
rounds, after 0.3 s of sleep (no worker still spinning) or right after a 2-thread BLAS call. CPU time by thread
does not depend on the machine's load the way wall clock does. With the LD_PRELOAD shim bench/gompcount.c, also
the parallel regions of one call by team size.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gd_thread_cpu.py 8
    gcc -O2 -shared -fPIC -fopenmp -o /tmp/gompcount.so bench/gompcount.c -ldl
    GOMP_SPINCOUNT=1000 LD_PRELOAD=/tmp/gompcount.so python bench/gd_thread_cpu.py 1

Linux only (/proc). bench/README.md, seventeenth session (HT).
"""
from __future__ import annotations

import ctypes
import os
import pathlib
import sys
import threading
import time

import numpy as np

BLAS_THREADS = set(os.listdir("/proc/self/task"))  # the caller and OpenBLAS's workers, started with NumPy
from threadpoolctl import threadpool_limits  # noqa: E402

import fastlr  # noqa: E402
from fastlr import _backend  # noqa: E402

fastlr.get_backend("cpp")  # libgomp with fastlr's idle spin, before gd_seeds imports torch (and its libgomp)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import gd_seeds  # noqa: E402


def _on_cpu() -> dict:
    out = {}
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/schedstat") as f:
                out[task] = int(f.read().split()[0]) / 1e6
        except OSError:  # the thread ended
            pass
    return out


def main(rounds: int) -> None:
    shim = ctypes.CDLL(None)
    regions = hasattr(shim, "gompcount_enable")
    A = gd_seeds.inverse_spectrum()
    G = np.random.default_rng(0).standard_normal((400, 400))
    caller = str(threading.get_native_id())
    res: dict = {}
    for r in range(rounds + 1):  # round 0 warms up
        for before in ("quiet", "blas"):
            for t in ((1, 2) if r % 2 == 0 else (2, 1)):
                fastlr.set_num_threads(t)
                with threadpool_limits(limits=t, user_api="blas"):
                    time.sleep(0.3)
                    if before == "blas":
                        with threadpool_limits(limits=2, user_api="blas"):
                            G @ G
                    if regions and r == 1:
                        shim.gompcount_reset()
                        shim.gompcount_enable(1)
                    s0, w = _on_cpu(), time.perf_counter()
                    fastlr.gd_svd(A, 10, random_state=0)
                    w, s1 = (time.perf_counter() - w) * 1e3, _on_cpu()
                    if regions and r == 1:
                        shim.gompcount_enable(0)
                        print(f"parallel regions, {before}, {t} thread(s):", flush=True)
                        shim.gompcount_dump()
                cpu = {"caller": 0.0, "blas": 0.0, "omp": 0.0}
                for task, ms in s1.items():
                    kind = "caller" if task == caller else "blas" if task in BLAS_THREADS else "omp"
                    cpu[kind] += ms - s0.get(task, 0.0)
                if r:
                    res.setdefault((before, t), []).append((w, cpu["caller"], cpu["blas"], cpu["omp"]))
    print(f"fastlr {fastlr.__file__}; idle OpenMP threads: {_backend.omp_wait()}")
    print(f"| before the call | threads | wall | CPU caller | CPU OpenBLAS workers | CPU OpenMP workers |  (ms, median of {rounds})")
    print("|---|---|---|---|---|---|")
    for (before, t), rows in sorted(res.items(), key=lambda kv: (kv[0][0] != "quiet", kv[0][1])):
        med = np.median(np.array(rows), axis=0)
        print(f"| {before} | {t} | {med[0]:.1f} | {med[1]:.1f} | {med[2]:.1f} | {med[3]:.1f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
