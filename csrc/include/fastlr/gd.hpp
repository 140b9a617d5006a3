// Gradient-descent factorization kernels: gradients of 1/2 sum over observed
// entries of (u_i . v_j - a_ij)^2, and the fused elementwise optimizer updates.
// The dense products (A V, A^T U) are in products.hpp.
#pragma once

#include <cmath>

#include "fastlr/common.hpp"

namespace fastlr {

namespace detail {

// Multiversioned bodies (see countsketch.hpp): no exceptions, no allocation; they return an
// error code and work in caller-provided buffers.

// work: (want - 1) * n * k zeroed accumulators; partial: want losses.
template <class T, class I>
FASTLR_MULTIVERSION int gd_masked_grad_impl(const I* indptr, const I* indices, const T* data, index_t nnz,
                                            index_t m, index_t n, index_t k, const T* U, const T* V, T l2, T* GU,
                                            T* GV, int want, T* work, double* partial) {
  const index_t size = n * k;
  std::fill(GV, GV + size, T(0));
  ErrorFlag err;
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel num_threads(want)
#endif
  {
    const int parts = want > 1 ? omp_threads_in_team() : 1;
    const int t = thread_id();
    index_t b, e;
    nnz_chunk_range(indptr, m, parts, t, b, e);
    T* __restrict gv = t == 0 ? GV : work + (t - 1) * size;
    double loss = 0.0;
    for (index_t i = b; i < e; ++i) {
      const index_t s = static_cast<index_t>(indptr[i]);
      const index_t f = static_cast<index_t>(indptr[i + 1]);
      if (s > f || s < 0 || f > nnz) { err.set(kBadIndptr); break; }
      const T* __restrict u = U + i * k;
      T* __restrict gu = GU + i * k;
      for (index_t l = 0; l < k; ++l) gu[l] = l2 * u[l];
      bool ok = true;
      for (index_t p = s; p < f; ++p) {
        const index_t j = static_cast<index_t>(indices[p]);
        if (!in_range(j, n)) { ok = false; break; }
        const T* __restrict v = V + j * k;
        T r = -data[p];
        for (index_t l = 0; l < k; ++l) r += u[l] * v[l];
        loss += static_cast<double>(r) * static_cast<double>(r);
        T* __restrict g = gv + j * k;
        for (index_t l = 0; l < k; ++l) {
          gu[l] += r * v[l];
          g[l] += r * u[l];
        }
      }
      if (!ok) { err.set(kBadIndex); break; }
    }
    partial[t] = 0.5 * loss;
    if (parts > 1) {
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp barrier
#endif
      reduce_slices(GV, work, size, parts - 1, parts, t);
    }
  }
  return err.code;
}

}  // namespace detail

/// Gradients of f(U, V) = 1/2 sum_{(i,j) stored} (u_i . v_j - a_ij)^2 + l2/2 (|U|^2 + |V|^2)
/// over the stored entries of a CSR matrix (m x n; duplicates count as separate
/// observations; column indices need not be sorted).
/// U: m x k, V: n x k, GU: m x k, GV: n x k, all row-major; GU and GV are overwritten.
/// Returns f, accumulated in double.
/// Threads: row chunks balanced by nonzeros; each row of GU has one owner, GV
/// goes to per-thread n x k accumulators summed in a fixed order, so the result
/// is deterministic for a given thread count.
template <class T, class I>
double gd_masked_grad(const I* indptr, const I* indices, const T* data, index_t nnz, index_t m, index_t n,
                      index_t k, const T* U, const T* V, T l2, T* GU, T* GV, int nthreads) {
  require(static_cast<index_t>(indptr[0]) == 0 && static_cast<index_t>(indptr[m]) == nnz,
          "A: sparse indptr must start at 0 and end at nnz (the length of indices and data)");
  const int want = useful_threads(nthreads, (nnz + m) * std::max<index_t>(k, 1), 65536);
  std::vector<T> work(want > 1 ? static_cast<size_t>(want - 1) * n * k : 0, T(0));
  std::vector<double> partial(static_cast<size_t>(want), 0.0);
  throw_kernel_error(detail::gd_masked_grad_impl(indptr, indices, data, nnz, m, n, k, U, V, l2, GU, GV, want,
                                             work.data(), partial.data()));
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

namespace detail {

template <class T>
FASTLR_MULTIVERSION void optimizer_step_impl(T* param, const T* grad, T* state, index_t size, OptimizerKind kind,
                                             T lr, T b1, T b2, T eps, T step_size, T inv_sqrt_c2, int want) {
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel num_threads(want)
#endif
  {
    const int parts = want > 1 ? omp_threads_in_team() : 1;
    index_t b, e;
    chunk_range(size, parts, thread_id(), b, e);
    T* __restrict p = param;
    const T* __restrict g = grad;
    switch (kind) {
      case OptimizerKind::kSgd:
        for (index_t i = b; i < e; ++i) p[i] -= lr * g[i];
        break;
      case OptimizerKind::kMomentum: {
        T* __restrict buf = state;
        for (index_t i = b; i < e; ++i) {
          buf[i] = b1 * buf[i] + g[i];
          p[i] -= lr * buf[i];
        }
        break;
      }
      case OptimizerKind::kNesterov: {
        T* __restrict buf = state;
        for (index_t i = b; i < e; ++i) {
          buf[i] = b1 * buf[i] + g[i];
          p[i] -= lr * (g[i] + b1 * buf[i]);
        }
        break;
      }
      case OptimizerKind::kAdam: {
        T* __restrict m1 = state;
        T* __restrict m2 = state + size;
        const T c1 = T(1) - b1, c2 = T(1) - b2;
        for (index_t i = b; i < e; ++i) {
          m1[i] = b1 * m1[i] + c1 * g[i];
          m2[i] = b2 * m2[i] + c2 * g[i] * g[i];
          p[i] -= step_size * m1[i] / (std::sqrt(m2[i]) * inv_sqrt_c2 + eps);
        }
        break;
      }
    }
  }
}

}  // namespace detail

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
  detail::optimizer_step_impl<T>(param, grad, state, size, kind, static_cast<T>(h.lr), static_cast<T>(h.beta1),
                                 static_cast<T>(h.beta2), static_cast<T>(h.eps), step_size, inv_sqrt_c2,
                                 useful_threads(nthreads, size, 65536));
}

}  // namespace fastlr
