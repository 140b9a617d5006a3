"""CPU time of the compiled core's busy-thread check (csrc/bindings/busy_threads.cpp): one look at
/proc/self/task (the listing, then one stat file per thread that is neither the caller nor one of fastlr's
OpenMP workers), against the number of other threads in the process (extra ones sleep on an Event). CPU time
of the calling thread, min over interleaved rounds (ab_kernels.interleaved_best_ms).

    python bench/busy_check_cost.py 5
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import threading

import numpy as np

import fastlr

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from ab_kernels import interleaved_best_ms  # noqa: E402

CHECKS = 1000


def check_cost_us(core, rounds: int) -> dict:
    """Microseconds of CPU a check takes (and a bare call into the core, for scale), per call."""
    calls = {"check": lambda: [core._busy_threads(2) for _ in range(CHECKS)],
             "bare call into _core": lambda: [core.get_num_threads() for _ in range(CHECKS)]}
    return {k: ms * 1e3 / CHECKS for k, ms in interleaved_best_ms(calls, rounds, reverse_odd=True).items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rounds", type=int)
    args = ap.parse_args(argv)
    core = fastlr.get_backend("cpp")
    fastlr.set_num_threads(2)
    core.matmul(np.ones((4000, 100)), np.ones((100, 4)))  # start fastlr's OpenMP worker
    for extra in (0, 8, 32):
        release = threading.Event()
        sleepers = [threading.Thread(target=release.wait) for _ in range(extra)]
        for t in sleepers:
            t.start()
        try:
            threads = len(list(pathlib.Path("/proc/self/task").iterdir()))
            cost = check_cost_us(core, args.rounds)
        finally:
            release.set()
            for t in sleepers:
                t.join()
        print(f"{threads} threads in the process: check {cost['check']:.2f} us CPU, "
              f"bare call {cost['bare call into _core']:.2f} us")
    # A 2-thread call's CPU time on the calling thread swings with how many row blocks the worker took, so
    # the check is weighed against the calls it runs for instead: estimated at >= 200x its modelled cost.
    print(f"the check runs for calls estimated at >= {core.build_info()['busy_check_min_call_ms']:.2f} ms at one "
          "thread (plus 0.4 ms a thread other than the caller and fastlr's workers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
