"""The ``fastlr`` command line.

Subcommands: ``info`` (version, backends, build, threads) and ``demo``.
User mistakes print one line on stderr and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np

from . import __version__
from ._backend import BACKENDS, available_backends, backend_errors, current_backend, get_backend, set_backend
from ._threads import get_num_threads, set_num_threads


class UserError(Exception):
    """A mistake in the command's arguments or data: reported in one line."""


def _info(args) -> dict:
    info = {
        "fastlr": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "default_backend": current_backend(),
        "available_backends": available_backends(),
        "unavailable_backends": backend_errors(),
        "threads": get_num_threads(),
    }
    try:
        info["build"] = get_backend("cpp").build_info()
    except ImportError as exc:
        info["build"] = f"unavailable ({exc})"
    return info


def cmd_info(args) -> int:
    info = _info(args)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"fastlr {info['fastlr']} (Python {info['python']}, NumPy {info['numpy']})")
    for name in BACKENDS:
        if name in info["available_backends"]:
            mark = " (default)" if name == info["default_backend"] else ""
            print(f"  backend {name:6s} available{mark}")
        else:
            print(f"  backend {name:6s} unavailable: {info['unavailable_backends'].get(name, '?')}")
    build = info["build"]
    if isinstance(build, dict):
        print(f"  build: {build['compiler']}, flags '{build['flags']}', OpenMP {'on' if build['openmp'] else 'off'}")
    else:
        print(f"  build: {build}")
    print(f"  threads: {info['threads']}")
    return 0


def _best_time(fn, repeat: int = 5) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cmd_demo(args) -> int:
    """Sketch generated low-rank-plus-noise matrices with every backend and SciPy."""
    import scipy.linalg

    from .sketch import CountSketch

    rng = np.random.default_rng(0)
    shapes = [(5760, 1080, 20), (20000, 500, 40)] if not args.quick else [(2000, 300, 20)]
    rows = []
    for n, d, m in shapes:
        A = (rng.standard_normal((n, 10)) * (1.0 / np.arange(1, 11))) @ rng.standard_normal((10, d))
        A += 1e-3 * rng.standard_normal((n, d))
        S = CountSketch(m, n, seed=0)
        reference = S.apply(A, backend="numpy")
        for name in available_backends():
            if name == "numpy":
                continue
            t = _best_time(lambda: S.apply(A, backend=name))
            err = np.abs(S.apply(A, backend=name) - reference).max() / np.abs(reference).max()
            rows.append((f"{n}x{d}", m, f"fastlr {name}", t, err))
        t = _best_time(lambda: scipy.linalg.clarkson_woodruff_transform(A, m, seed=0), repeat=3)
        rows.append((f"{n}x{d}", m, "scipy clarkson_woodruff_transform", t, float("nan")))
    print(f"CountSketch S @ A, best of 5, {get_num_threads()} thread(s)")
    print(f"{'matrix':>11} {'m':>4}  {'method':36} {'ms':>9}  {'max rel diff vs NumPy ref':>26}")
    for shape, m, method, t, err in rows:
        diff = "" if np.isnan(err) else f"{err:.1e}"
        print(f"{shape:>11} {m:>4}  {method:36} {1e3 * t:9.2f}  {diff:>26}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastlr", description="Fast low-rank matrix approximation.")
    parser.add_argument("--version", action="version", version=f"fastlr {__version__}")
    parser.add_argument("--threads", type=int, default=None, help="threads for fastlr's kernels")
    parser.add_argument("--backend", choices=BACKENDS, default=None, help="kernel backend")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="version, backends, build and threads")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="run the demonstration on built-in generated data")
    p.add_argument("--quick", action="store_true", help="a smaller, faster run")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.threads is not None:
            set_num_threads(args.threads)
        if args.backend is not None:
            set_backend(args.backend)
        return args.func(args)
    except (UserError, ValueError, TypeError, ImportError, OSError) as exc:
        print(f"fastlr: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
