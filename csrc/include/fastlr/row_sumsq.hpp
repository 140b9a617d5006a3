// One row's squared norm in double, in the fixed order every fastlr kernel that reports row energies uses
// (row_norms.hpp's dense and long CSR rows, countsketch.hpp's passes that also return the norms): shared, so
// those norms agree bit for bit. FASTLR_INLINE: each ISA variant compiles it for its own target.
#pragma once

#include "fastlr/common.hpp"

namespace fastlr {
namespace detail {

constexpr int kRowLanes = 8;  // partial sums of a row (row_sumsq's fixed tree is for 8)

// row_sumsq's lane sums s[0, kRowLanes) combined (its fixed tree), then t + the squares of x[j, d) in order.
FASTLR_INLINE double lane_tree(const double* s) {
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

template <class T>
FASTLR_INLINE double tail_sumsq(const T* __restrict x, index_t j, index_t d, double t) {
  for (; j < d; ++j) {
    const double v = static_cast<double>(x[j]);
    t += v * v;
  }
  return t;
}

// The squares of x[0, d) summed in double: kRowLanes partial sums (lane p takes the entries j = p mod
// kRowLanes of the whole groups), combined in a fixed tree, then the tail in order. Float32 entries are
// squared exactly in double (24-bit mantissas), so only the additions round.
template <class T>
FASTLR_INLINE double row_sumsq(const T* __restrict x, index_t d) {
  double s[kRowLanes] = {0};
  index_t j = 0;
  for (; j + kRowLanes <= d; j += kRowLanes)
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp simd
#endif
    for (int p = 0; p < kRowLanes; ++p) {
      const double v = static_cast<double>(x[j + p]);
      s[p] += v * v;
    }
  return tail_sumsq(x, j, d, lane_tree(s));
}

// row_sumsq of four rows ld apart at once, each row's sum exactly row_sumsq's: four streams of A (Zen 2 reads a row-major
// A at ~23 GB/s through four and ~17 through one, bench/README.md, twentieth session) and four independent
// chains of additions (one row's lanes fill one AVX-512 vector: its sums wait on each other's latency).
template <class T>
FASTLR_INLINE void rows4_sumsq(const T* __restrict a, index_t d, index_t ld, double* __restrict out) {
  const T* __restrict a0 = a;
  const T* __restrict a1 = a + ld;
  const T* __restrict a2 = a + 2 * ld;
  const T* __restrict a3 = a + 3 * ld;
  double s0[kRowLanes] = {0}, s1[kRowLanes] = {0}, s2[kRowLanes] = {0}, s3[kRowLanes] = {0};
  index_t j = 0;
  for (; j + kRowLanes <= d; j += kRowLanes)
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp simd
#endif
    for (int p = 0; p < kRowLanes; ++p) {
      const double v0 = static_cast<double>(a0[j + p]), v1 = static_cast<double>(a1[j + p]);
      const double v2 = static_cast<double>(a2[j + p]), v3 = static_cast<double>(a3[j + p]);
      s0[p] += v0 * v0;
      s1[p] += v1 * v1;
      s2[p] += v2 * v2;
      s3[p] += v3 * v3;
    }
  double* s[4] = {s0, s1, s2, s3};
  const T* rows[4] = {a0, a1, a2, a3};
  for (int q = 0; q < 4; ++q) out[q] = tail_sumsq(rows[q], j, d, lane_tree(s[q]));
}

// out[i] = row_sumsq of rows i = 0 .. k - 1 of A (row stride ld), four at a time (rows4_sumsq).
template <class T>
FASTLR_INLINE void rows_sumsq(const T* A, index_t k, index_t d, index_t ld, double* out) {
  index_t i = 0;
  for (; i + 4 <= k; i += 4) rows4_sumsq<T>(A + i * ld, d, ld, out + i);
  for (; i < k; ++i) out[i] = row_sumsq<T>(A + i * ld, d);
}

}  // namespace detail
}  // namespace fastlr
