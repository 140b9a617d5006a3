// The CSR row pass of the one-pass products (products.hpp): sparse rows
// gathered through 32-byte vector tiles, indices validated while streaming.
#pragma once

#include <algorithm>
#include <cstring>

#include "fastlr/common.hpp"
#include "fastlr/countsketch.hpp"  // detail::row_span
#include "fastlr/products_simd.hpp"

namespace fastlr {

namespace detail {

/// Everything a CSR row pass reads and writes (V and Z padded to kp columns).
template <class T, class I>
struct CsrPass {
  const I* indptr;
  const I* indices;
  const T* data;
  index_t nnz, d;
  const T* Vp;  // d x kp (forward)
  const T* W;   // n x k (backward with given rows) or nullptr
  T* Y;         // n x k (forward output) or nullptr when not wanted
  index_t k, kp;
  RowPass pass;
};

// The CSR pass works in 32-byte vectors whatever the ISA: it is bound by
// gathering rows of V and Z (L1/L2 latency), not by FMA width, and a smaller
// padding keeps V and Z in L2 (float32 k = 20: 24 columns, not 32).
// Measured on 2M nonzeros, k = 20 float32: 2.3x faster than a scalar loop
// over a runtime k; padding to 64-byte vectors was 1.4x slower than 32.
template <class T>
constexpr index_t csr_lanes() { return 32 / index_t(sizeof(T)); }
constexpr int kCsrTileVectors = 4;  // columns per register tile: 4 vectors (32 float32, 16 float64)

#if defined(__GNUC__)
// Row i of a CSR pass, columns [t, t + NV * L) (padded): y = a_i V[:, tile]
// (stored to Y when wanted), then Z[:, tile] += a_i^T (y or W[i, tile]).
template <class T, class I, int NV>
inline void csr_row_tile(const CsrPass<T, I>& p, index_t i, index_t s, index_t f, index_t t, T* __restrict Z) {
  constexpr int L = static_cast<int>(csr_lanes<T>());
  using vec = typename simd<T, L>::type;
  const index_t kp = p.kp, cols = std::min<index_t>(NV * L, p.k - t);
  vec w[NV];
  for (int u = 0; u < NV; ++u) w[u] = vec{};
  if (has_forward(p.pass)) {
    for (index_t q = s; q < f; ++q) {
      const T x = p.data[q];
      const T* v = p.Vp + static_cast<index_t>(p.indices[q]) * kp + t;
      for (int u = 0; u < NV; ++u) {
        vec a;
        load<T, L>(a, v + u * L);
        w[u] += x * a;
      }
    }
    if (p.Y != nullptr) {
      alignas(64) T tmp[NV * L];
      for (int u = 0; u < NV; ++u) store<T, L>(tmp + u * L, w[u]);
      std::memcpy(p.Y + i * p.k + t, tmp, sizeof(T) * cols);
    }
  }
  if (!has_backward(p.pass)) return;
  if (!backward_uses_y(p.pass)) {
    alignas(64) T tmp[NV * L] = {};
    std::memcpy(tmp, p.W + i * p.k + t, sizeof(T) * cols);
    for (int u = 0; u < NV; ++u) load<T, L>(w[u], tmp + u * L);
  }
  for (index_t q = s; q < f; ++q) {
    const T x = p.data[q];
    T* z = Z + static_cast<index_t>(p.indices[q]) * kp + t;
    for (int u = 0; u < NV; ++u) {
      vec a;
      load<T, L>(a, z + u * L);
      a += x * w[u];
      store<T, L>(z + u * L, a);
    }
  }
}
#else
template <class T, class I, int NV>
inline void csr_row_tile(const CsrPass<T, I>& p, index_t i, index_t s, index_t f, index_t t, T* __restrict Z) {
  constexpr int W = NV * static_cast<int>(csr_lanes<T>());
  const index_t kp = p.kp, cols = std::min<index_t>(W, p.k - t);
  T w[W] = {};
  if (has_forward(p.pass)) {
    for (index_t q = s; q < f; ++q) {
      const T* v = p.Vp + static_cast<index_t>(p.indices[q]) * kp + t;
      for (int c = 0; c < W; ++c) w[c] += p.data[q] * v[c];
    }
    if (p.Y != nullptr) std::memcpy(p.Y + i * p.k + t, w, sizeof(T) * cols);
  }
  if (!has_backward(p.pass)) return;
  if (!backward_uses_y(p.pass)) {
    std::fill(w, w + W, T(0));
    std::memcpy(w, p.W + i * p.k + t, sizeof(T) * cols);
  }
  for (index_t q = s; q < f; ++q) {
    T* z = Z + static_cast<index_t>(p.indices[q]) * kp + t;
    for (int c = 0; c < W; ++c) z[c] += p.data[q] * w[c];
  }
}
#endif

// Rows [b, e) of a CSR pass into this thread's d x kp accumulator Z. Returns 0
// or a KernelError (never throws: it runs under a target attribute).
template <class T, class I>
inline int csr_rows(const CsrPass<T, I>& p, index_t b, index_t e, T* Z) {
  constexpr index_t L = csr_lanes<T>();
  for (index_t i = b; i < e; ++i) {
    index_t s, f;
    if (!row_span(p.indptr, i, p.nnz, s, f)) return kBadIndptr;
    for (index_t q = s; q < f; ++q)
      if (!in_range(static_cast<index_t>(p.indices[q]), p.d)) return kBadIndex;
    for (index_t t = 0; t < p.kp; t += kCsrTileVectors * L) {
      switch (std::min<index_t>(kCsrTileVectors, (p.kp - t) / L)) {
        case 1: csr_row_tile<T, I, 1>(p, i, s, f, t, Z); break;
        case 2: csr_row_tile<T, I, 2>(p, i, s, f, t, Z); break;
        case 3: csr_row_tile<T, I, 3>(p, i, s, f, t, Z); break;
        default: csr_row_tile<T, I, 4>(p, i, s, f, t, Z); break;
      }
    }
  }
  return 0;
}

template <class T, class I>
using csr_rows_fn = int (*)(const CsrPass<T, I>&, index_t, index_t, T*);

template <class T, class I>
int csr_rows_generic(const CsrPass<T, I>& p, index_t b, index_t e, T* Z) {
  return csr_rows<T, I>(p, b, e, Z);
}

#if defined(FASTLR_X86_DISPATCH)
template <class T, class I>
__attribute__((target("avx2,fma"), flatten)) int csr_rows_avx2(const CsrPass<T, I>& p, index_t b, index_t e, T* Z) {
  return csr_rows<T, I>(p, b, e, Z);
}
#endif

// AVX2 code for AVX-512 CPUs too (32-byte vectors, see csr_lanes).
template <class T, class I>
csr_rows_fn<T, I> pick_csr_rows(cpu_level_t level) {
#if defined(FASTLR_X86_DISPATCH)
  if (level >= kAvx2) return &csr_rows_avx2<T, I>;
#endif
  (void)level;
  return &csr_rows_generic<T, I>;
}


}  // namespace detail

/// The row pass `pass` over a CSR matrix A (n x d; duplicates are summed,
/// column indices need not be sorted). V, W, Y, Z as in dense_row_pass; Y may
/// be null for kPower (Z = A^T A V without writing A V: a 16 MB stream for
/// the 2M-nonzero benchmark matrix, as much as A itself).
/// Threads: row chunks balanced by nonzeros, per-thread d x kp accumulators
/// for Z summed in a fixed order (deterministic for a given thread count).
template <class T, class I>
void csr_row_pass(RowPass pass, const I* indptr, const I* indices, const T* data, index_t nnz, index_t n,
                  index_t d, const T* V, const T* W, index_t k, T* Y, T* Z, int nthreads) {
  require(static_cast<index_t>(indptr[0]) == 0 && static_cast<index_t>(indptr[n]) == nnz,
          "A: sparse indptr must start at 0 and end at nnz (the length of indices and data)");
  const bool fwd = has_forward(pass), bwd = has_backward(pass);
  if (k == 0) return;
  const index_t kp = detail::round_up(k, detail::csr_lanes<T>());
  detail::AlignedBuffer<T> Vp;
  if (fwd) {
    Vp.assign(d * kp);
    for (index_t j = 0; j < d; ++j) std::memcpy(Vp.data + j * kp, V + j * k, sizeof(T) * k);
  }
  const index_t per_entry = (fwd ? 1 : 0) + (bwd ? 1 : 0);
  const int want = useful_threads(nthreads, (nnz * per_entry * k + n * k) / 8);
  const index_t zsize = bwd ? detail::round_up(d * kp, detail::kLine / index_t(sizeof(T))) : 0;
  detail::AlignedBuffer<T> zacc;
  zacc.assign(static_cast<size_t>(want) * zsize);
  const detail::CsrPass<T, I> p{indptr, indices, data, nnz, d, Vp.data, W, Y, k, kp, pass};
  const auto rows_fn = detail::pick_csr_rows<T, I>(detail::cpu_level());
  ErrorFlag err;
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel num_threads(want)
#endif
  {
    const int parts = want > 1 ? omp_threads_in_team() : 1;
    const int t = thread_id();
    index_t b, e;
    nnz_chunk_range(indptr, n, parts, t, b, e);
    const int code = rows_fn(p, b, e, zacc.data + t * zsize);
    if (code != 0) err.set(code);
    if (bwd) {
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp barrier
#endif
      index_t jb, je;
      chunk_range(d, parts, t, jb, je);
      detail::reduce_padded(Z, k, zacc.data, kp, zsize, parts, jb, je);
    }
  }
  throw_kernel_error(err.code);
}

}  // namespace fastlr
