"""The memory floor of a call that reads a dense A once: the fastest of several single reads of A.

NumPy's ``A.sum()`` is no floor on Zen 2 (one thread, 5760 x 1080 float64: 2.9-3.1 ms where OpenBLAS's GEMV
reads A in 2.1-2.3): its pairwise sum reads one stream at a time, and one stream of a row-major A runs at
~17 GB/s where four rows read at once run at ~23 (bench/README.md, twentieth session). The floor is the
fastest of ``A.sum()``, ``A @ ones`` and ``ones @ A`` (OpenBLAS's GEMV, four rows or columns at a time) and,
with g++, a C++ loop over A in memory order and one over four rows at a time (both -O3 -march=native).
On narrow rows (100000 x 200) GEMV is slow and the memory-order loop is the fastest.
"""

import ctypes
import os
import shutil
import subprocess
import tempfile

import numpy as np

READ_CPP = r"""
#include <cstddef>
// A in memory order, 16 partial sums (two or four vectors: enough independent adds in flight).
template <class T> static T rd(const T* a, std::size_t n) {
  T s[16] = {0};
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16)
#pragma omp simd
    for (int p = 0; p < 16; ++p) s[p] += a[i + p];
  T t = 0;
  for (; i < n; ++i) t += a[i];
  for (T x : s) t += x;
  return t;
}
// Rows i .. i + 3 of a row-major n x d A at once, 16 columns at a time: four streams.
template <class T> static T rd4(const T* a, std::size_t n, std::size_t d) {
  T s[16] = {0};
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const T* a0 = a + i * d;
    const T* a1 = a0 + d;
    const T* a2 = a1 + d;
    const T* a3 = a2 + d;
    std::size_t c = 0;
    for (; c + 16 <= d; c += 16)
#pragma omp simd
      for (int p = 0; p < 16; ++p) s[p] += (a0[c + p] + a1[c + p]) + (a2[c + p] + a3[c + p]);
    for (; c < d; ++c) s[0] += (a0[c] + a1[c]) + (a2[c] + a3[c]);
  }
  T t = rd(a + i * d, (n - i) * d);
  for (T x : s) t += x;
  return t;
}
extern "C" double read_f64(const double* a, std::size_t n) { return rd(a, n); }
extern "C" float read_f32(const float* a, std::size_t n) { return rd(a, n); }
extern "C" double read4_f64(const double* a, std::size_t n, std::size_t d) { return rd4(a, n, d); }
extern "C" float read4_f32(const float* a, std::size_t n, std::size_t d) { return rd4(a, n, d); }
"""


def cpp_reads():
    """{dtype: (read(A), read4(A))} from g++-compiled loops (A C-contiguous), or None without g++."""
    if shutil.which("g++") is None:
        return None
    folder = tempfile.mkdtemp()
    src, lib = os.path.join(folder, "read.cpp"), os.path.join(folder, "read.so")
    with open(src, "w") as f:
        f.write(READ_CPP)
    subprocess.run(["g++", "-O3", "-march=native", "-fopenmp-simd", "-shared", "-fPIC", src, "-o", lib], check=True)
    so = ctypes.CDLL(lib)
    so.read_f64.restype, so.read_f32.restype = ctypes.c_double, ctypes.c_float
    so.read4_f64.restype, so.read4_f32.restype = ctypes.c_double, ctypes.c_float
    for fn in (so.read_f64, so.read_f32):
        fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    for fn in (so.read4_f64, so.read4_f32):
        fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
    out = {}
    for dtype, read, read4 in ((np.float64, so.read_f64, so.read4_f64), (np.float32, so.read_f32, so.read4_f32)):
        out[np.dtype(dtype)] = (lambda A, read=read: read(A.ctypes.data, A.size),
                                lambda A, read4=read4: read4(A.ctypes.data, A.shape[0], A.shape[1]))
    return out


def floor_calls(matrix, dtype, shape, reads=None):
    """{name: call} of the single reads of A, each call on ``matrix()`` (a function: the benchmarks pass one
    that rotates among several matrices, so that no call finds A in the L3 the previous call left it in).
    reads: cpp_reads()'s result, or None for the NumPy/OpenBLAS reads alone."""
    n, d = shape
    ones_d, ones_n = np.ones(d, dtype), np.ones(n, dtype)
    calls = {"A.sum()": lambda: matrix().sum(), "A @ ones": lambda: matrix() @ ones_d,
             "ones @ A": lambda: ones_n @ matrix()}
    if reads is not None:
        read, read4 = reads[np.dtype(dtype)]
        calls["C++ read"] = lambda: read(matrix())
        calls["C++ 4-row read"] = lambda: read4(matrix())
    return calls


def rotation(matrices):
    """A function returning the next of ``matrices`` at each call, in turn."""
    state = {"i": -1}

    def matrix():
        state["i"] = (state["i"] + 1) % len(matrices)
        return matrices[state["i"]]

    return matrix
