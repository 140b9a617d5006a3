#!/usr/bin/env python
"""The fused CountSketch-and-row-norms pass (``countsketch_seeded_dense_energy``, HeavyRowSketch on dense A) over
the plain pass, for one or more builds of the compiled core: one thread, CPU ms, min over interleaved rounds, at
each ISA level (x86-64-v4, v3, baseline; a level above the CPU's runs its best). bench/README.md, 22nd session.

    python bench/sketch_energy_ab.py new=/path/to/_core.so old=/path/to/other/_core.so --rounds 21
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from ab_kernels import interleaved_ms, load_core
from threadpoolctl import threadpool_limits


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs="+", help="name=path of a _core extension with countsketch_seeded_dense_energy")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--shape", type=int, nargs=2, default=[5760, 1080])
    ap.add_argument("--m", type=int, default=20)
    args = ap.parse_args(argv)
    cores = {name: load_core(path) for name, path in (b.split("=", 1) for b in args.builds)}
    first = next(iter(cores.values()))
    for core in cores.values():
        core.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"load {os.getloadavg()}")
    for level, name in ((2, "x86-64-v4"), (1, "x86-64-v3"), (0, "baseline")):
        for core in cores.values():
            core._cap_isa(level)
        for dtype in (np.float64, np.float32):
            A = rng.standard_normal(args.shape).astype(dtype)
            calls = {"plain": lambda: first.countsketch_seeded_dense(A, 0, args.m)}
            calls.update({key: (lambda c=core: c.countsketch_seeded_dense_energy(A, 0, args.m))
                          for key, core in cores.items()})
            with threadpool_limits(1):
                times = interleaved_ms(calls, args.rounds, rotate=True)
            best = {key: min(v) for key, v in times.items()}
            print(f"{name} {np.dtype(dtype).name}: plain {best['plain']:.3f} ms; fused / plain "
                  + ", ".join(f"{key} {best[key] / best['plain']:.3f}" for key in cores))
    print(f"load {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
