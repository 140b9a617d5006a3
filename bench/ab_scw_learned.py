"""scw(A, S, 10) per bikes test frame, S learned (inner_product_sketch, 12 train frames) or random: CPU time.

One thread, min over 5 rounds of the mean over the test frames; also S @ A alone. For an A/B of two builds,
run it once per build with that build's _core in place (one process each), e.g.

    SO=$(python -c "import fastlr._core as c; print(c.__file__)")
    cp /tmp/hk/old_core.so $SO; OPENBLAS_NUM_THREADS=1 python bench/ab_scw_learned.py old
    cp /tmp/hk/new_core.so $SO; OPENBLAS_NUM_THREADS=1 python bench/ab_scw_learned.py new
"""
import glob
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits
import fastlr
from fastlr import datadriven as dd
folder = sys.argv[2] if len(sys.argv) > 2 else "/tmp/real_video/bikes"
train = [np.load(f) for f in sorted(glob.glob(f"{folder}/train/*.npy"))]
test = [np.load(f) for f in sorted(glob.glob(f"{folder}/test/*.npy"))]
few = [train[i] for i in np.unique(np.linspace(0, len(train) - 1, 12).round().astype(int))]
with fastlr.thread_limit(1), threadpool_limits(1):
    S = dd.inner_product_sketch(few, 20, 10, seed=0)
    R = fastlr.CountSketch(20, train[0].shape[0], seed=0)
    out = {}
    for _ in range(5):
        for name, sk in (("learned", S), ("random", R)):
            t0 = time.thread_time()
            for A in test:
                fastlr.scw(A, sk, 10)
            out[name] = min(out.get(name, 1e9), (time.thread_time() - t0) / len(test))
        for name, sk in (("learned S@A", S), ("random S@A", R)):
            t0 = time.thread_time()
            for A in test:
                sk @ A
            out[name] = min(out.get(name, 1e9), (time.thread_time() - t0) / len(test))
print(sys.argv[1], len(test), "frames,", " ".join(f"{k} {1e3 * v:.3f} ms" for k, v in out.items()))
