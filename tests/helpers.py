"""Helpers shared by the tests: tolerances, layouts and messy sparse inputs."""

import os
import subprocess
import sys
import tempfile

import numpy as np
import scipy.sparse as sp

ALL_BACKENDS = ("cpp", "numba", "numpy")
FAST_BACKENDS = ("cpp", "numba")

#: Relative tolerances for comparing a backend with the NumPy reference.
RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}


def layouts(A):
    """The same matrix C-ordered, F-ordered and as a non-contiguous view."""
    big = np.zeros((A.shape[0] * 2, A.shape[1] * 3), dtype=A.dtype)
    big[::2, ::3] = A
    return {"C": np.ascontiguousarray(A), "F": np.asfortranarray(A), "view": big[::2, ::3]}


def assert_close(actual, expected, dtype, scale=None):
    """Compare with a tolerance relative to the magnitude of ``expected`` (or ``scale``)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(np.abs(expected).max(initial=0.0), 1e-30) if scale is None else scale
    np.testing.assert_allclose(actual, expected, rtol=0, atol=RTOL[np.dtype(dtype)] * scale * 10)


def messy_csr(n, d, density, rng, dtype=np.float64, index_dtype=np.int32):
    """A CSR matrix with unsorted column indices, duplicate entries and empty rows."""
    A = sp.random(n, d, density=density, format="coo", random_state=rng, dtype=np.float64)
    rows = np.concatenate([A.row, A.row[: len(A.row) // 3]])  # duplicates
    cols = np.concatenate([A.col, A.col[: len(A.col) // 3]])
    vals = np.concatenate([A.data, rng.standard_normal(len(A.row) // 3)])
    order = rng.permutation(len(rows))  # unsorted within rows after the stable sort below
    rows, cols, vals = rows[order], cols[order], vals[order]
    by_row = np.argsort(rows, kind="stable")
    indptr = np.zeros(n + 1, dtype=index_dtype)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    M = sp.csr_matrix(
        (vals[by_row].astype(dtype), cols[by_row].astype(index_dtype), indptr), shape=(n, d)
    )
    return M


#: Subprocesses get this long before they count as hung: a hang guard, not a speed test.
SUBPROCESS_TIMEOUT = 900


def subprocess_env(**env):
    """os.environ without FASTLR_BACKEND, updated with ``env``."""
    full = {k: v for k, v in os.environ.items() if k != "FASTLR_BACKEND"}
    full.update(env)
    return full


def run_outside_tree(args, *, env=None, timeout=SUBPROCESS_TIMEOUT):
    """Run ``args`` (a list) in a fresh empty directory and capture its output as text.

    ``python -c`` and ``python -m`` put the working directory first on sys.path, and a
    checkout's fastlr/ has no compiled core under a normal (non-editable) install, so a
    test run from the checkout would silently test the Numba fallback instead.
    """
    with tempfile.TemporaryDirectory() as cwd:
        return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)


def run_python(code, *, timeout=SUBPROCESS_TIMEOUT, **env):
    """``python -c code`` outside the source tree, FASTLR_BACKEND unset unless given in ``env``."""
    return run_outside_tree([sys.executable, "-c", code], env=subprocess_env(**env), timeout=timeout)


def run_many_outside_tree(arg_lists, *, env=None, timeout=SUBPROCESS_TIMEOUT):
    """Start several commands at once, each in its own empty directory; their CompletedProcesses."""
    with tempfile.TemporaryDirectory() as root:
        procs = []
        for i, args in enumerate(arg_lists):
            cwd = os.path.join(root, str(i))
            os.mkdir(cwd)
            procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          env=env, cwd=cwd))
        results = []
        try:
            for p in procs:
                out, err = p.communicate(timeout=timeout)
                results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.communicate()
        return results
