// CountSketch S A and A's squared row norms from one pass over a row-major dense A: what
// fastlr.HeavyRowSketch needs of a dense matrix (the norms decide the heavy rows; with none, S A is the base's).
// Two separate passes read A twice (bench/README.md, twenty-second session, HE).
#pragma once

#include "fastlr/countsketch.hpp"
#include "fastlr/row_norms.hpp"

namespace fastlr {

/// countsketch_dense's S A (out, bit for bit) and energy[i] = ||A[i, :]||^2 (double, n; bit for bit
/// row_squared_norms_dense's: the same row_sumsq order per row), both at every thread count. Row-major A: one
/// pass (the bucket passes square each entry as they read it; the others sum a row's squares right after its
/// axpy, from L1/L2); column-major A: the two passes one after the other.
template <class T>
void countsketch_dense_energy(const T* A, index_t n, index_t d, index_t ld, bool col_major, const index_t* rows,
                              const T* values, index_t m, T* out, double* energy, int nthreads) {
  detail::countsketch_dense_src<true>(A, n, d, ld, col_major, detail::ArraySketch<T>{rows, values, m}, m, out,
                                      nthreads, energy);
  if (col_major) row_squared_norms_dense(A, n, d, ld, true, energy, nthreads);
}

/// countsketch_dense_energy for the seeded CountSketch (as countsketch_seeded_dense), bit for bit.
template <class T>
void countsketch_seeded_dense_energy(const T* A, index_t n, index_t d, index_t ld, bool col_major,
                                     std::uint64_t seed, index_t m, index_t start, T* out, double* energy,
                                     int nthreads) {
  detail::countsketch_dense_src<true>(A, n, d, ld, col_major, detail::hash_sketch<T>(seed, m, start), m, out,
                                      nthreads, energy);
  if (col_major) row_squared_norms_dense(A, n, d, ld, true, energy, nthreads);
}

}  // namespace fastlr
