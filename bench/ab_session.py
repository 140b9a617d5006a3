"""A/B of the refactor (issue 12): single-thread timings of scw, randomized_svd, learn_sketch and gd_svd
with whichever fastlr this Python imports; prints one JSON line. To compare two versions, install each
in its own venv and alternate the runs, e.g.

    for r in 1 2 3; do old/bin/python bench/ab_session.py; new/bin/python bench/ab_session.py; done

(minimum per-thread CPU time of a few repeats; OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset here).
"""

import json
import os
import time

for _var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(_var, None)

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import fastlr  # noqa: E402



def best(fn, reps=5):
    """Minimum per-thread CPU time of ``reps`` calls after one warm-up call."""
    fn()
    out = []
    for _ in range(reps):
        start = time.process_time()
        fn()
        out.append(time.process_time() - start)
    return min(out)


def main():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5760, 1080))
    A32 = rng.standard_normal((100000, 500)).astype(np.float32)
    G = rng.standard_normal((2000, 1000)) * (1.0 / np.arange(1, 1001))
    S = fastlr.CountSketch(20, 5760, seed=0)
    train = fastlr.datasets.video(8, seed=0)
    # versions with a hold-out (fastlr >= 0.1 of the fifth session) train on all matrices only with holdout=0
    no_holdout = {"holdout": 0} if "holdout" in fastlr.learn_sketch.__code__.co_varnames else {}
    res = {}
    with threadpool_limits(1), fastlr.thread_limit(1):
        res["scw 5760x1080 m=20 k=10"] = best(lambda: fastlr.scw(A, S, 10))
        res["randomized_svd 5760x1080 k=10"] = best(lambda: fastlr.randomized_svd(A, 10, random_state=0))
        res["randomized_svd 100000x500 f32 k=10"] = best(lambda: fastlr.randomized_svd(A32, 10, random_state=0), 3)
        res["learn_sketch 20 steps (video 480x90)"] = best(
            lambda: fastlr.learn_sketch(train, 20, 10, steps=20, progress=False, **no_holdout), 3)
        res["gd_svd 2000x1000 k=10 20 iters"] = best(
            lambda: fastlr.gd_svd(G, 10, max_iter=20, tol=0.0, random_state=0), 3)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
