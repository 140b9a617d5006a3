// Squared row norms ||A[i, :]||^2 of dense (row- or column-major, float32/float64) and compressed sparse A,
// accumulated and returned in double: the row energies fastlr.HeavyRowSketch reads at apply time, in one pass
// over A (bench/README.md, twenty-first session, HN).
#pragma once

#include <cstring>
#include <type_traits>

#include "fastlr/common.hpp"
#include "fastlr/row_sumsq.hpp"

namespace fastlr {
namespace detail {

constexpr index_t kRowBlockRows = 256;  // rows of a row-major A per scheduled block
constexpr index_t kColBlockRows = 2048; // rows of a column-major A per block: 16 KB of sums, in L1
constexpr index_t kCsrLongRow = 16;     // CSR rows with at least this many entries take row_sumsq

}  // namespace detail
}  // namespace fastlr

// The kernels' ISA variants: detail::isa_v4 / isa_v3 / isa_base::row_sumsq_*_impl.
#define FASTLR_ISA_KERNELS "fastlr/row_norms_kernels.inc"
#include "fastlr/isa_variants.inc"
#undef FASTLR_ISA_KERNELS

namespace fastlr {

/// out[i] = ||A[i, :]||^2 (double) for a dense n x d A, row-major (A[i*ld + j]) or, when col_major,
/// column-major (A[i + j*ld]). Each row's sum is one thread's, in an order fixed by d (row-major: eight
/// partial sums over groups of eight entries, a fixed tree, the tail in order; column-major: the columns in
/// order), so out is bit-identical at every thread count. Threads: static blocks of rows.
template <class T>
void row_squared_norms_dense(const T* A, index_t n, index_t d, index_t ld, bool col_major, double* out,
                             int nthreads) {
  const int want = useful_threads(nthreads, n * d, 65536);
  throw_kernel_error(col_major ? FASTLR_ISA_CALL(row_sumsq_dense_cols_impl<T>, A, n, d, ld, out, want)
                               : FASTLR_ISA_CALL(row_sumsq_dense_rows_impl<T>, A, n, d, ld, out, want));
}

/// out[i] = the sum of the squares of row i's stored entries (double) for a CSR A with n rows (stored
/// duplicates are squared apart: sum them first). A row of kCsrLongRow entries or more is summed as a dense
/// row; a shorter one in four partial sums over its groups of four entries, the tail in order: bit-identical
/// at every thread count. Threads: row chunks balanced by nonzeros.
template <class T, class I>
void row_squared_norms_csr(const I* indptr, const T* data, index_t nnz, index_t n, double* out, int nthreads) {
  detail::check_indptr_ends(indptr, n, nnz);
  const int want = useful_threads(nthreads, nnz + n, 65536);
  throw_kernel_error(FASTLR_ISA_CALL(row_sumsq_csr_impl, indptr, data, nnz, n, out, want));
}

/// out[i] for a CSC A (n x d; indptr has d + 1 entries, indices are row indices): the squares added into
/// their rows entry by entry in storage order, on one thread (a scatter into n sums; CSC A is rare here).
template <class T, class I>
void row_squared_norms_csc(const I* indptr, const I* indices, const T* data, index_t nnz, index_t n, index_t d,
                           double* out) {
  detail::check_indptr_ends(indptr, d, nnz);
  throw_kernel_error(FASTLR_ISA_CALL(row_sumsq_csc_impl, indptr, indices, data, nnz, n, d, out));
}

}  // namespace fastlr
