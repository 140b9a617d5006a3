"""Fuzzing the public entry points: random shapes, dtypes, memory orders, sparse formats and
corrupt sparse structure.

Every example either gives the NumPy reference's result (``backend="numpy"``, or the explicit
product) or raises ValueError/TypeError; any other exception, a wrong result or a crash fails.
A valid input must not raise, and an invalid one must.

The examples run in ONE subprocess (a corrupt index that slipped past the checks could crash the
interpreter; a crash then fails this test instead of killing pytest). CI runs a modest number of
examples; set FASTLR_FUZZ_EXAMPLES (e.g. 10000) for a long run:

    FASTLR_FUZZ_EXAMPLES=10000 python -m pytest tests/test_fuzz.py -q
"""

import json
import os
import sys
import textwrap
import traceback

import numpy as np
import scipy.sparse as sp
from helpers import run_python
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastlr

#: Examples per CI run, and the environment variable that overrides it.
CI_EXAMPLES = 150
EXAMPLES_ENV = "FASTLR_FUZZ_EXAMPLES"

ENTRIES = ("CountSketch", "GaussianSketch", "scw", "randomized_svd", "gd_svd")
DTYPES = ("float32", "float64", "int64", "bool", "complex128", "float16")
LAYOUTS = ("C", "F", "view")
FORMATS = ("dense", "csr", "csc", "coo", "lil", "dok")
CORRUPTIONS = ("none", "index_high", "index_negative", "indptr_decreasing", "indptr_end_short",
               "indptr_end_long", "length_mismatch")


@st.composite
def cases(draw):
    n, d = draw(st.integers(1, 12)), draw(st.integers(0, 12))
    fmt = draw(st.sampled_from(FORMATS))
    dtype = draw(st.sampled_from(DTYPES))
    if fmt != "dense" and dtype == "float16":
        dtype = "float64"  # scipy.sparse has no float16
    corruption = draw(st.sampled_from(CORRUPTIONS)) if fmt in ("csr", "csc", "coo") else "none"
    return dict(
        entry=draw(st.sampled_from(ENTRIES)), n=n, d=d, dtype=dtype,
        layout=draw(st.sampled_from(LAYOUTS)), fmt=fmt, corruption=corruption,
        rank=draw(st.integers(0, 12)), density=draw(st.sampled_from([0.0, 0.3, 1.0])),
        non_finite=draw(st.sampled_from([None] * 8 + [np.nan, np.inf])), k=draw(st.integers(1, 13)),
        m=draw(st.integers(1, 15)), backend=draw(st.sampled_from(fastlr.available_backends())),
        seed=draw(st.integers(0, 2**32 - 1)), where=draw(st.integers(0, 10**6)),
    )


def make_input(c):
    """The case's matrix, and whether it is valid input (a real dtype, finite, intact structure)."""
    rng = np.random.default_rng(c["seed"])
    n, d = c["n"], c["d"]
    r = min(c["rank"], n, d)
    dense = rng.standard_normal((n, r)) @ rng.standard_normal((r, d)) if r else np.zeros((n, d))
    dense *= rng.random((n, d)) < c["density"] if c["density"] < 1 else 1
    if c["non_finite"] is not None and dense.size:
        dense[np.unravel_index(c["where"] % dense.size, dense.shape)] = c["non_finite"]
    dtype = np.dtype(c["dtype"])
    if dtype == np.bool_:
        dense = dense != 0  # NaN != 0 is True: the non-finite value disappears
    elif dtype.kind in "iu":
        dense = np.where(np.isfinite(dense), np.round(dense * 3), 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        dense = dense.astype(dtype)
    finite = bool(np.isfinite(dense.astype(np.complex128)).all()) if dense.size else True
    valid = finite and dtype.kind != "c"
    if c["fmt"] == "dense":
        big = np.zeros((2 * n, 3 * d), dtype=dtype)
        big[::2, ::3] = dense
        A = {"C": np.ascontiguousarray(dense), "F": np.asfortranarray(dense), "view": big[::2, ::3]}[c["layout"]]
        return A, dense, valid
    A = sp.coo_matrix(dense)  # stores the nonzeros (and NaN/inf)
    if c["fmt"] in ("lil", "dok"):
        return A.asformat(c["fmt"]), dense, valid
    A = A.asformat(c["fmt"])
    broken = corrupt(A, c["corruption"], c["where"])
    if broken:
        return A, dense, False
    dense = A.toarray()  # what A now holds (a shortened indptr leaves spare capacity, maybe the NaN)
    return A, dense, dtype.kind != "c" and bool(np.isfinite(dense).all())


def corrupt(A, how, where):
    """Break A's index structure in place; whether it really is broken (an empty matrix can't be)."""
    if how == "none":
        return False
    nnz = A.nnz
    if A.format == "coo":
        if how in ("index_high", "index_negative") and nnz:
            A.row[where % nnz] = A.shape[0] + where % 3 if how == "index_high" else -1 - where % 3
            return True
        if how == "length_mismatch" and nnz:
            A.data = A.data[:-1].copy()
            return True
        return False
    if how in ("index_high", "index_negative") and nnz:
        minor = A.shape[1] if A.format == "csr" else A.shape[0]
        A.indices[where % nnz] = minor + where % 3 if how == "index_high" else -1 - where % 3
        return True
    if how == "indptr_decreasing" and nnz and len(A.indptr) > 2:
        i = 1 + where % (len(A.indptr) - 2)
        A.indptr[i] = A.indptr[-1] + 1  # above the next entry (and above nnz)
        return True
    if how == "indptr_end_short" and nnz:
        if A.indptr[-2] <= nnz - 1:  # the last entry becomes spare capacity: valid for scipy, and for fastlr
            A.indptr[-1] = nnz - 1
            return False
        A.indptr[-1] = A.indptr[-2] - 1  # below the previous row's end: decreasing
        return True
    if how == "indptr_end_long":
        A.indptr[-1] = nnz + 1 + where % 5
        return True
    if how == "length_mismatch" and nnz:
        A.data = A.data[:-1].copy()
        return True
    return False


def _tol(dtype):
    return 1e-3 if np.dtype(dtype) == np.float32 else 1e-9


def run_case(c):
    """None when the case behaves, else a description of what went wrong."""
    A, dense, valid = make_input(c)
    n, d, k, backend = c["n"], c["d"], c["k"], c["backend"]
    entry = c["entry"]
    S = fastlr.CountSketch(max(c["m"], k), n, seed=c["seed"])
    calls = {
        "CountSketch": lambda: S.apply(A, backend=backend),
        "GaussianSketch": lambda: fastlr.GaussianSketch(c["m"], n, seed=c["seed"]).apply(A, backend=backend),
        "scw": lambda: fastlr.scw(A, S, k, n_iter=c["seed"] % 3, backend=backend),
        "randomized_svd": lambda: fastlr.randomized_svd(A, k, random_state=c["seed"], backend=backend),
        "gd_svd": lambda: fastlr.gd_svd(A, k, max_iter=30, random_state=c["seed"], backend=backend),
    }
    expect_ok = valid and (entry in ("CountSketch", "GaussianSketch") or (
        d > 0 and (entry == "randomized_svd" or k <= min(n, d))))
    try:
        result = calls[entry]()
    except (ValueError, TypeError) as exc:
        if expect_ok:
            return f"valid input refused: {type(exc).__name__}: {exc}"
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    if not expect_ok:
        return f"invalid input accepted (returned {type(result).__name__})"
    return check_result(c, entry, result, A, dense, S)


def check_result(c, entry, result, A, dense, S):
    A64 = np.asarray(dense, dtype=np.float64)
    work = np.float32 if np.dtype(c["dtype"]) == np.float32 else np.float64
    tol = _tol(work)
    scale = max(np.linalg.norm(A64), 1e-300)
    if entry in ("CountSketch", "GaussianSketch"):
        G = S.to_dense() if entry == "CountSketch" else fastlr.GaussianSketch(c["m"], c["n"], seed=c["seed"]).matrix
        expected = G @ A64
        if result.dtype != work or result.shape != expected.shape:
            return f"dtype/shape {result.dtype} {result.shape}, expected {np.dtype(work)} {expected.shape}"
        bound = tol * max(np.abs(G).sum(axis=1).max(initial=0) * np.abs(A64).max(initial=0), 1e-300)
        if np.abs(result - expected).max(initial=0) > bound:
            return f"S @ A off by {np.abs(result - expected).max()} (bound {bound})"
        return None
    U, s, Vt = result
    kk = U.shape[1]
    if U.dtype != work or s.dtype != work or Vt.dtype != work:
        return f"dtypes {U.dtype} {s.dtype} {Vt.dtype}, expected {np.dtype(work)}"
    if U.shape != (c["n"], kk) or Vt.shape != (kk, c["d"]) or kk != min(c["k"], c["n"], c["d"]):
        return f"shapes {U.shape} {s.shape} {Vt.shape}"
    if not (np.isfinite(U).all() and np.isfinite(s).all() and np.isfinite(Vt).all()):
        return "non-finite output"
    ortho = 50 * tol if work == np.float32 else 1e-6
    U64, Vt64 = U.astype(np.float64), Vt.astype(np.float64)
    if max(np.abs(U64.T @ U64 - np.eye(kk)).max(), np.abs(Vt64 @ Vt64.T - np.eye(kk)).max()) > ortho:
        return "U or Vt not orthonormal"
    if np.any(np.diff(s.astype(float)) > tol * scale) or s.min() < 0:
        return f"s not descending / negative: {s}"
    exact = np.linalg.svd(A64, compute_uv=False)
    if np.any(s > exact[:kk] + 10 * tol * scale) and entry != "gd_svd":
        return f"s above the exact singular values: {s} vs {exact[:kk]}"
    error = np.linalg.norm(A64 - (U.astype(float) * s) @ Vt)
    optimal = np.sqrt(np.sum(exact[kk:] ** 2))
    if error < optimal - 10 * tol * scale:
        return f"error {error} below the optimum {optimal}"
    if error > scale * (1 + 10 * tol):
        return f"error {error} above ||A|| {scale}"
    if entry != "gd_svd":  # deterministic given the seed: the NumPy reference agrees
        ref = fastlr.randomized_svd(A, c["k"], random_state=c["seed"], backend="numpy") if entry == "randomized_svd" \
            else fastlr.scw(A, S, c["k"], n_iter=c["seed"] % 3, backend="numpy")
        ref_error = np.linalg.norm(A64 - (ref[0].astype(float) * ref[1]) @ ref[2])
        if abs(error - ref_error) > (1e-2 if work == np.float32 else 1e-6) * scale:
            return f"error {error} differs from the NumPy backend's {ref_error}"
    return None


def fuzz(max_examples: int) -> list:
    """Run the fuzzer; the failing cases (at most 20), each with what went wrong."""
    failures = []
    counts = [0]

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=max_examples <= CI_EXAMPLES,
              suppress_health_check=list(HealthCheck))
    @given(cases())
    def check(c):
        counts[0] += 1
        problem = run_case(c)
        if problem is not None and len(failures) < 20:
            failures.append({**{key: (repr(v) if isinstance(v, float) else v) for key, v in c.items()},
                             "problem": problem})

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # casting warnings of the fuzzed dtypes are not the point
        check()
    assert counts[0] >= min(max_examples, 100), counts  # hypothesis really ran the examples
    return failures


def test_fuzz_public_entry_points():
    examples = int(os.environ.get(EXAMPLES_ENV, CI_EXAMPLES))
    here = os.path.dirname(os.path.abspath(__file__))
    code = textwrap.dedent(f'''
        import json, sys
        sys.path.insert(0, {here!r})
        import test_fuzz
        print(json.dumps(test_fuzz.fuzz({examples})))
    ''')
    out = run_python(code)
    # a negative return code is death by a signal: the crash this test is about
    assert out.returncode == 0, (out.returncode, out.stdout[-2000:], out.stderr[-4000:])
    failures = json.loads(out.stdout.strip().splitlines()[-1])
    assert not failures, json.dumps(failures, indent=1)[:8000]


if __name__ == "__main__":  # python tests/test_fuzz.py 10000
    print(json.dumps(fuzz(int(sys.argv[1]) if len(sys.argv) > 1 else CI_EXAMPLES), indent=1))
