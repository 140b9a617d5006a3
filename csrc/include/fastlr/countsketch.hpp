// CountSketch kernels: S A and the gradient's gather-dot, for dense and
// compressed sparse A. S is m x n with one nonzero per column: S[rows[i], i] = values[i].
#pragma once

#include "fastlr/common.hpp"

namespace fastlr {

/// Reasons a CountSketch kernel rejects its input (see ErrorFlag).
enum CountSketchError : int { kBadRow = 1, kBadIndex = 2, kBadIndptr = 3 };

inline void throw_countsketch_error(int code) {
  switch (code) {
    case 0: return;
    case kBadRow: throw std::invalid_argument("rows: every entry must lie in [0, m)");
    case kBadIndex: throw std::invalid_argument("A: a sparse column/row index lies outside the matrix");
    case kBadIndptr:
      throw std::invalid_argument("A: sparse indptr must start at 0, be non-decreasing and end at nnz");
    default: throw std::invalid_argument("CountSketch kernel: invalid input");
  }
}

namespace detail {

// out[rows[i], :] += values[i] * A[i, :] for rows b..e of a row-major A.
template <class T>
inline int countsketch_rows(const T* A, index_t b, index_t e, index_t d, index_t ld,
                            const index_t* rows, const T* values, index_t m, T* out) {
  for (index_t i = b; i < e; ++i) {
    const index_t r = rows[i];
    if (!in_range(r, m)) return kBadRow;
    const T v = values[i];
    const T* __restrict a = A + i * ld;
    T* __restrict o = out + r * d;
    for (index_t j = 0; j < d; ++j) o[j] += v * a[j];
  }
  return 0;
}

// out[:, j] for columns jb..je of a column-major A, four columns per sweep so
// rows/values are read once per four columns of A.
template <class T>
inline int countsketch_cols(const T* A, index_t n, index_t jb, index_t je, index_t d, index_t ld,
                            const index_t* rows, const T* values, index_t m, T* out, T* buf) {
  for (index_t j0 = jb; j0 < je; j0 += 4) {
    const int w = static_cast<int>(std::min<index_t>(4, je - j0));
    std::fill(buf, buf + 4 * m, T(0));
    T* b0 = buf;
    T* b1 = b0 + m;
    T* b2 = b1 + m;
    T* b3 = b2 + m;
    const T* a0 = A + j0 * ld;
    if (w == 4) {
      const T* a1 = a0 + ld;
      const T* a2 = a1 + ld;
      const T* a3 = a2 + ld;
      for (index_t i = 0; i < n; ++i) {
        const index_t r = rows[i];
        if (!in_range(r, m)) return kBadRow;
        const T v = values[i];
        b0[r] += v * a0[i];
        b1[r] += v * a1[i];
        b2[r] += v * a2[i];
        b3[r] += v * a3[i];
      }
    } else {
      for (int c = 0; c < w; ++c) {
        const T* a = a0 + c * ld;
        T* bc = b0 + c * m;
        for (index_t i = 0; i < n; ++i) {
          const index_t r = rows[i];
          if (!in_range(r, m)) return kBadRow;
          bc[r] += values[i] * a[i];
        }
      }
    }
    for (index_t r = 0; r < m; ++r)
      for (int c = 0; c < w; ++c) out[r * d + j0 + c] = buf[c * m + r];
  }
  return 0;
}

// <a, x> with a vectorized reduction (the explicit reduction licenses the
// reassociation that -O3 alone may not do for floating point).
template <class T>
inline T dot(const T* __restrict a, const T* __restrict x, index_t d) {
  T s = 0;
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp simd reduction(+ : s)
#endif
  for (index_t j = 0; j < d; ++j) s += a[j] * x[j];
  return s;
}

template <class I>
inline bool row_span(const I* indptr, index_t i, index_t nnz, index_t& s, index_t& e) {
  s = static_cast<index_t>(indptr[i]);
  e = static_cast<index_t>(indptr[i + 1]);
  return s <= e && s >= 0 && e <= nnz;
}

}  // namespace detail

namespace detail {

// The multiversioned bodies below never throw and never allocate (GCC's
// target_clones cannot propagate exceptions): they return an error code and
// work in caller-provided buffers. The public wrappers after them validate,
// allocate and throw.

template <class T>
FASTLR_MULTIVERSION int countsketch_dense_impl(const T* A, index_t n, index_t d, index_t ld, bool col_major,
                                               const index_t* rows, const T* values, index_t m, T* out,
                                               int want, int chunks, T* work) {
  std::fill(out, out + m * d, T(0));
  ErrorFlag err;
  if (col_major) {  // work: want * 4 * m
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel num_threads(want)
#endif
    {
      const int t = thread_id();
      index_t jb, je;
      chunk_range(d, omp_threads_in_team(), t, jb, je);
      if (int c = countsketch_cols(A, n, jb, je, d, ld, rows, values, m, out, work + t * 4 * m)) err.set(c);
    }
    return err.code;
  }
  // Row-major: `chunks` contiguous row ranges (a function of n and m, never of the
  // thread count), each summed into its own accumulator, then added in chunk order:
  // S A is bit-identical at every thread count. work: (chunks - 1) * size, zeroed.
  const index_t size = m * d;
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel num_threads(want)
#endif
  {
    const int parts = omp_threads_in_team();
    const int t = thread_id();
    index_t cb, ce;
    chunk_range(chunks, parts, t, cb, ce);
    for (index_t c = cb; c < ce; ++c) {
      index_t b, e;
      chunk_range(n, chunks, static_cast<int>(c), b, e);
      T* o = c == 0 ? out : work + (c - 1) * size;
      if (int code = countsketch_rows(A, b, e, d, ld, rows, values, m, o)) err.set(code);
    }
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp barrier
#endif
    reduce_slices(out, work, size, chunks - 1, parts, t);
  }
  return err.code;
}

template <class T, class I>
FASTLR_MULTIVERSION int countsketch_csr_impl(const I* indptr, const I* indices, const T* data, index_t nnz,
                                             index_t n, index_t d, const index_t* rows, const T* values,
                                             index_t m, T* out, int want, int chunks, T* work) {
  std::fill(out, out + m * d, T(0));
  const index_t size = m * d;  // work: (chunks - 1) * size, zeroed
  ErrorFlag err;
  // `chunks` row ranges balanced by nonzeros, fixed for a given matrix and m, summed
  // in chunk order (as countsketch_dense_impl): bit-identical at every thread count.
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel num_threads(want)
#endif
  {
    const int parts = omp_threads_in_team();
    const int t = thread_id();
    index_t cb, ce;
    chunk_range(chunks, parts, t, cb, ce);
    for (index_t chunk = cb; chunk < ce; ++chunk) {
    index_t b, e;
    nnz_chunk_range(indptr, n, chunks, static_cast<int>(chunk), b, e);
    T* __restrict o = chunk == 0 ? out : work + (chunk - 1) * size;
    for (index_t i = b; i < e; ++i) {
      index_t s, f;
      if (!row_span(indptr, i, nnz, s, f)) { err.set(kBadIndptr); break; }
      if (s == f) continue;
      const index_t r = rows[i];
      if (!in_range(r, m)) { err.set(kBadRow); break; }
      const T v = values[i];
      T* orow = o + r * d;
      for (index_t p = s; p < f; ++p) {
        const index_t c = static_cast<index_t>(indices[p]);
        if (!in_range(c, d)) { err.set(kBadIndex); break; }
        orow[c] += v * data[p];
      }
    }
    }
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp barrier
#endif
    reduce_slices(out, work, size, chunks - 1, parts, t);
  }
  return err.code;
}

template <class T, class I>
FASTLR_MULTIVERSION int countsketch_csc_impl(const I* indptr, const I* indices, const T* data, index_t nnz,
                                             index_t n, index_t d, const index_t* rows, const T* values,
                                             index_t m, T* out, int want, T* work) {
  std::fill(out, out + m * d, T(0));
  ErrorFlag err;  // work: want * m
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel num_threads(want)
#endif
  {
    const int t = thread_id();
    index_t jb, je;
    nnz_chunk_range(indptr, d, omp_threads_in_team(), t, jb, je);
    T* buf = work + t * m;
    for (index_t j = jb; j < je; ++j) {
      index_t s, f;
      if (!row_span(indptr, j, nnz, s, f)) { err.set(kBadIndptr); break; }
      if (s == f) continue;
      std::fill(buf, buf + m, T(0));
      bool ok = true;
      for (index_t p = s; p < f; ++p) {
        const index_t i = static_cast<index_t>(indices[p]);
        if (!in_range(i, n)) { err.set(kBadIndex); ok = false; break; }
        const index_t r = rows[i];
        if (!in_range(r, m)) { err.set(kBadRow); ok = false; break; }
        buf[r] += values[i] * data[p];
      }
      if (!ok) break;
      for (index_t r = 0; r < m; ++r) out[r * d + j] = buf[r];
    }
  }
  return err.code;
}

// Dt: D transposed (d x m) when A is column-major, so column sweeps gather contiguously.
template <class T>
FASTLR_MULTIVERSION int gather_dot_impl(const T* A, index_t n, index_t d, index_t ld, bool col_major,
                                        const index_t* rows, const T* D, const T* Dt, index_t m, T* g,
                                        int want) {
  ErrorFlag err;
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel num_threads(want)
#endif
  {
    index_t b, e;
    chunk_range(n, omp_threads_in_team(), thread_id(), b, e);
    bool ok = true;
    for (index_t i = b; i < e; ++i)
      if (!in_range(rows[i], m)) { err.set(kBadRow); ok = false; break; }
    if (ok && !col_major) {
      for (index_t i = b; i < e; ++i) {
        const T* __restrict a = A + i * ld;
        const T* __restrict x = D + rows[i] * d;
        g[i] = dot(a, x, d);
      }
    } else if (ok) {
      for (index_t i = b; i < e; ++i) g[i] = T(0);
      for (index_t j = 0; j < d; ++j) {
        const T* __restrict a = A + j * ld;
        const T* __restrict x = Dt + j * m;
        for (index_t i = b; i < e; ++i) g[i] += a[i] * x[rows[i]];
      }
    }
  }
  return err.code;
}

template <class T, class I>
FASTLR_MULTIVERSION int gather_dot_csr_impl(const I* indptr, const I* indices, const T* data, index_t nnz,
                                            index_t n, index_t d, const index_t* rows, const T* D, index_t m,
                                            T* g, int want) {
  ErrorFlag err;
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel num_threads(want)
#endif
  {
    index_t b, e;
    nnz_chunk_range(indptr, n, omp_threads_in_team(), thread_id(), b, e);
    for (index_t i = b; i < e; ++i) {
      index_t s, f;
      if (!row_span(indptr, i, nnz, s, f)) { err.set(kBadIndptr); break; }
      g[i] = T(0);
      if (s == f) continue;
      const index_t r = rows[i];
      if (!in_range(r, m)) { err.set(kBadRow); break; }
      const T* x = D + r * d;
      T acc = 0;
      bool ok = true;
      for (index_t p = s; p < f; ++p) {
        const index_t c = static_cast<index_t>(indices[p]);
        if (!in_range(c, d)) { ok = false; break; }
        acc += data[p] * x[c];
      }
      if (!ok) { err.set(kBadIndex); break; }
      g[i] = acc;
    }
  }
  return err.code;
}

/// SplitMix64's finalizer (Steele, Lea and Flood, 2014): a bijective 64-bit mixer.
inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

FASTLR_MULTIVERSION inline void countsketch_hash_impl(std::uint64_t key, std::uint64_t m, std::uint64_t start,
                                                      index_t count, index_t* rows, double* signs, int want) {
  constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel for num_threads(want) schedule(static)
#endif
  for (index_t i = 0; i < count; ++i) {
    const std::uint64_t z = mix64(key + (start + static_cast<std::uint64_t>(i) + 1) * kGolden);
    rows[i] = static_cast<index_t>(((z >> 32) * m) >> 32);
    signs[i] = (z & 1) ? -1.0 : 1.0;
  }
}

template <class I>
inline void check_indptr_ends(const I* indptr, index_t outer, index_t nnz) {
  require(static_cast<index_t>(indptr[0]) == 0 && static_cast<index_t>(indptr[outer]) == nnz,
          "A: sparse indptr must start at 0 and end at nnz (the length of indices and data)");
}

}  // namespace detail

/// CountSketch columns start .. start + count - 1 for `seed`: rows[i] in [0, m) and
/// signs[i] = +-1 from a counter-based hash of (seed, start + i), the same values as
/// fastlr._kernels.reference.countsketch_hash (z = mix64(mix64(seed) + (column + 1) *
/// golden); row = Lemire's multiply-shift of z's top 32 bits onto [0, m); sign = z's
/// lowest bit), so the sketch is the same for every backend, thread count and split
/// of the columns. Requires 1 <= m <= 2^32. Threads: static chunks of the columns.
inline void countsketch_hash(std::uint64_t seed, index_t m, index_t start, index_t count, index_t* rows,
                             double* signs, int nthreads) {
  require(m >= 1 && m <= (index_t(1) << 32), "m: must lie in [1, 2**32]");
  require(start >= 0 && count >= 0, "start and count must be >= 0");
  detail::countsketch_hash_impl(detail::mix64(seed), static_cast<std::uint64_t>(m),
                                static_cast<std::uint64_t>(start), count, rows, signs,
                                useful_threads(nthreads, count / 4));
}

/// S A for a dense n x d matrix A.
/// Layout: row-major (A[i*ld + j]) or, when col_major, column-major (A[i + j*ld]).
/// out: m x d row-major, caller-allocated, overwritten.
/// Threads: row-major A is split into sum_chunks(...) contiguous row chunks
/// (fixed by the problem, not the thread count) with m x d accumulators added
/// in chunk order; column-major A is split into column chunks (each output
/// column has one owner, no reduction). Either way S A is bit-identical at
/// every thread count.
/// Throws std::invalid_argument when a row index lies outside [0, m).
template <class T>
void countsketch_dense(const T* A, index_t n, index_t d, index_t ld, bool col_major, const index_t* rows,
                       const T* values, index_t m, T* out, int nthreads) {
  const int chunks = col_major ? 1 : sum_chunks(n, n * d, m * d);
  const int want = std::min(useful_threads(nthreads, n * d), col_major ? nthreads : chunks);
  std::vector<T> work(col_major ? static_cast<size_t>(want) * 4 * m : static_cast<size_t>(chunks - 1) * m * d);
  throw_countsketch_error(
      detail::countsketch_dense_impl(A, n, d, ld, col_major, rows, values, m, out, want, chunks, work.data()));
}

/// S A for a CSR matrix A (n x d, nnz stored entries in indices/data;
/// duplicates are summed, column indices need not be sorted).
/// out: m x d row-major, overwritten.
/// Threads: sum_chunks(...) row chunks balanced by nonzeros (fixed by the
/// problem, not the thread count), accumulators added in chunk order:
/// bit-identical at every thread count.
template <class T, class I>
void countsketch_csr(const I* indptr, const I* indices, const T* data, index_t nnz, index_t n, index_t d,
                     const index_t* rows, const T* values, index_t m, T* out, int nthreads) {
  detail::check_indptr_ends(indptr, n, nnz);
  const int chunks = sum_chunks(n, nnz + n, m * d);
  const int want = std::min(useful_threads(nthreads, nnz + n / 4), chunks);
  std::vector<T> work(static_cast<size_t>(chunks - 1) * m * d);
  throw_countsketch_error(detail::countsketch_csr_impl(indptr, indices, data, nnz, n, d, rows, values, m, out,
                                                       want, chunks, work.data()));
}

/// S A for a CSC matrix A (n x d; indptr has d + 1 entries, indices are row
/// indices). out: m x d row-major, overwritten.
/// Threads: column chunks balanced by nonzeros; each output column has one owner.
template <class T, class I>
void countsketch_csc(const I* indptr, const I* indices, const T* data, index_t nnz, index_t n, index_t d,
                     const index_t* rows, const T* values, index_t m, T* out, int nthreads) {
  detail::check_indptr_ends(indptr, d, nnz);
  const int want = useful_threads(nthreads, nnz + d * m / 4);
  std::vector<T> work(static_cast<size_t>(want) * m);
  throw_countsketch_error(
      detail::countsketch_csc_impl(indptr, indices, data, nnz, n, d, rows, values, m, out, want, work.data()));
}

/// g[i] = <A[i, :], D[rows[i], :]> for dense A (n x d, row- or column-major as in
/// countsketch_dense) and row-major D (m x d): the backward pass of S A with
/// respect to the sketch values. Threads: row chunks, no shared writes.
template <class T>
void countsketch_gather_dot(const T* A, index_t n, index_t d, index_t ld, bool col_major, const index_t* rows,
                            const T* D, index_t m, T* g, int nthreads) {
  const int want = useful_threads(nthreads, n * d);
  std::vector<T> Dt;
  if (col_major) {
    Dt.resize(static_cast<size_t>(m * d));
    for (index_t r = 0; r < m; ++r)
      for (index_t j = 0; j < d; ++j) Dt[j * m + r] = D[r * d + j];
  }
  throw_countsketch_error(detail::gather_dot_impl(A, n, d, ld, col_major, rows, D, Dt.data(), m, g, want));
}

/// g[i] = <A[i, :], D[rows[i], :]> for CSR A (n x d); D row-major m x d.
/// Threads: row chunks balanced by nonzeros.
template <class T, class I>
void countsketch_gather_dot_csr(const I* indptr, const I* indices, const T* data, index_t nnz, index_t n,
                                index_t d, const index_t* rows, const T* D, index_t m, T* g, int nthreads) {
  detail::check_indptr_ends(indptr, n, nnz);
  const int want = useful_threads(nthreads, nnz + n / 4);
  throw_countsketch_error(detail::gather_dot_csr_impl(indptr, indices, data, nnz, n, d, rows, D, m, g, want));
}

}  // namespace fastlr
