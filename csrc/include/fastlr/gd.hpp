// Gradient-descent factorization kernels: gradients of 1/2 sum over observed
// entries of (u_i . v_j - a_ij)^2, and the fused elementwise optimizer updates.
// The dense products (A V, A^T U) are in products.hpp.
#pragma once

#include <cmath>

#include "fastlr/common.hpp"

namespace fastlr {

/// The elementwise optimizers of optimizer_step.
enum class OptimizerKind : int { kSgd = 0, kMomentum = 1, kNesterov = 2, kAdam = 3 };

/// State buffers each optimizer keeps per parameter entry.
inline int optimizer_state_count(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd: return 0;
    case OptimizerKind::kMomentum:
    case OptimizerKind::kNesterov: return 1;
    case OptimizerKind::kAdam: return 2;
  }
  return 0;
}

/// Hyper-parameters of optimizer_step. `momentum` doubles as Adam's beta1.
struct OptimizerHyper {
  double lr, beta1, beta2, eps, step;
};

}  // namespace fastlr

// The kernels' ISA variants: detail::isa_v4 / isa_v3 / isa_base::gd_masked_grad_impl
// and optimizer_step_impl.
#define FASTLR_ISA_KERNELS "fastlr/gd_kernels.inc"
#include "fastlr/isa_variants.inc"
#undef FASTLR_ISA_KERNELS

namespace fastlr {

/// Gradients of f(U, V) = 1/2 sum_{(i,j) stored} (u_i . v_j - a_ij)^2 + l2/2 (|U|^2 + |V|^2)
/// over the stored entries of a CSR matrix (m x n; duplicates count as separate
/// observations; column indices need not be sorted).
/// U: m x k, V: n x k, GU: m x k, GV: n x k, all row-major; GU and GV are overwritten.
/// Returns f, accumulated in double.
/// Threads: row chunks balanced by nonzeros, fixed by the problem; each row of GU
/// has one owner, GV goes to per-chunk n x k accumulators summed in chunk order,
/// so GV and f are bit-identical at every thread count (but for a GV too wide for
/// its nonzeros, one chunk, on several threads: then a chunk a thread).
template <class T, class I>
double gd_masked_grad(const I* indptr, const I* indices, const T* data, index_t nnz, index_t m, index_t n,
                      index_t k, const T* U, const T* V, T l2, T* GU, T* GV, int nthreads) {
  require(static_cast<index_t>(indptr[0]) == 0 && static_cast<index_t>(indptr[m]) == nnz,
          "A: sparse indptr must start at 0 and end at nnz (the length of indices and data)");
  const int want = useful_threads(nthreads, (nnz + m) * std::max<index_t>(k, 1), 65536);
  // Row chunks fixed by the problem (nnz, n, k), not the thread count, so G_V and f are bit-identical at
  // every thread count (gd_masked_grad_impl; tests/test_thread_invariance.py): chunks of at least
  // kNnzPerGvRow nonzeros per row of G_V (one thread adds a chunk's n x k sum, and zeroes it), up to 4
  // and 32 MiB of accumulators. One chunk (G_V wide for the nonzeros) on several threads falls back
  // to a chunk a thread, whose sums depend on the thread count. Zen 2, one thread, float64 k = 32:
  // 64 a row and up to 8 chunks cost 100000 x 5000 at 10^6 nonzeros (3 chunks) 2-4%; 256 and 4:
  // 1M x 500 at 500k (3 chunks) -0.7 to +0.2% (bench/README.md, eighteenth session, HD).
  constexpr index_t kNnzPerGvRow = 256;
  const index_t gv_bytes = std::max<index_t>(n * k * index_t(sizeof(T)), 1);
  int chunks = static_cast<int>(std::max<index_t>(
      1, std::min<index_t>({nnz / (kNnzPerGvRow * std::max<index_t>(n, 1)), 4, (index_t(32) << 20) / gv_bytes})));
  if (chunks == 1) chunks = want;
  const size_t slices = want == 1 ? (chunks > 1 ? 1 : 0) : static_cast<size_t>(chunks - 1);
  std::vector<T> work(slices * n * k, T(0));
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
  throw_kernel_error(FASTLR_ISA_CALL(gd_masked_grad_impl, indptr, indices, data, nnz, m, n, k, U, V, l2, GU, GV,
                                     want, chunks, work.data(), partial.data()));
  double loss = 0.0;
  for (double p : partial) loss += p;
  if (l2 != T(0)) {
    double norms = 0.0;
    for (index_t q = 0; q < m * k; ++q) norms += static_cast<double>(U[q]) * U[q];
    for (index_t q = 0; q < n * k; ++q) {
      norms += static_cast<double>(V[q]) * V[q];
      GV[q] += l2 * V[q];
    }
    loss += 0.5 * static_cast<double>(l2) * norms;
  }
  return loss;
}

/// One fused update, in place, of `size` parameters p with gradient g and state buffers
/// state[s * size + i] (s < optimizer_state_count(kind)):
///   sgd:       p -= lr g
///   momentum:  b = beta1 b + g;  p -= lr b                 (heavy ball, PyTorch SGD momentum)
///   nesterov:  b = beta1 b + g;  p -= lr (g + beta1 b)     (PyTorch SGD nesterov=True)
///   adam:      m = beta1 m + (1-beta1) g;  v = beta2 v + (1-beta2) g^2;
///              p -= lr / (1-beta1^t) * m / (sqrt(v) / sqrt(1-beta2^t) + eps),  t = step >= 1
/// Threads: contiguous chunks, no shared writes.
template <class T>
void optimizer_step(T* param, const T* grad, T* state, index_t size, OptimizerKind kind,
                    const OptimizerHyper& h, int nthreads) {
  require(std::isfinite(h.lr) && h.lr >= 0, "lr: must be finite and >= 0");
  const bool adam = kind == OptimizerKind::kAdam;
  if (adam)
    require(h.step >= 1 && h.beta1 >= 0 && h.beta1 < 1 && h.beta2 >= 0 && h.beta2 < 1 && h.eps > 0,
            "hyper: Adam needs step >= 1, 0 <= beta1, beta2 < 1 and eps > 0");
  const T step_size = static_cast<T>(adam ? h.lr / (1.0 - std::pow(h.beta1, h.step)) : h.lr);
  const T inv_sqrt_c2 = static_cast<T>(adam ? 1.0 / std::sqrt(1.0 - std::pow(h.beta2, h.step)) : 1.0);
  FASTLR_ISA_CALL(optimizer_step_impl<T>, param, grad, state, size, kind, static_cast<T>(h.lr),
                  static_cast<T>(h.beta1), static_cast<T>(h.beta2), static_cast<T>(h.eps), step_size, inv_sqrt_c2,
                  useful_threads(nthreads, size, 65536));
}

}  // namespace fastlr
