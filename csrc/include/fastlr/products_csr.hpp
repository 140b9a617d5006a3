// The CSR row pass of the one-pass products (products.hpp): indices validated
// once per thread's rows in a flat vectorized pass, then compile-time-width loops
// for narrow factors (up to 32 bytes of columns) and 32-byte vector tiles beyond.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "fastlr/common.hpp"
#include "fastlr/countsketch.hpp"  // detail::row_span
#include "fastlr/products_simd.hpp"

namespace fastlr {

namespace detail {

/// Everything a CSR row pass reads and writes (Z padded to kp columns). V is
/// read in place at stride k, kp lanes a row: a load runs kp - k lanes into the
/// next row (lanes never stored; Z's padding columns are dropped), so only the
/// last rows, whose loads would pass V's end, come from a padded copy (Vtail).
template <class T, class I>
struct CsrPass {
  const I* indptr;
  const I* indices;
  const T* data;
  index_t nnz, d;
  const T* V;      // d x k (forward)
  const T* Vtail;  // rows [vsafe, d) of V at stride k, then kp zeros
  index_t vsafe;
  const T* W;   // n x k (backward with given rows) or nullptr
  T* Y;         // n x k (forward output) or nullptr when not wanted
  index_t k, kp;
  index_t zs;  // Z's row stride: kp (per-thread padded accumulators) or k (Z itself)
  RowPass pass;
  const T* vrow(index_t j) const { return j < vsafe ? V + j * k : Vtail + (j - vsafe) * k; }
};

// The CSR pass works in 32-byte vectors whatever the ISA: it is bound by
// gathering rows of V and Z (L1/L2 latency), not by FMA width, and a smaller
// padding keeps V and Z in L2 (float32 k = 20: 24 columns, not 32).
// Measured on 2M nonzeros, k = 20 float32: 2.3x faster than a scalar loop
// over a runtime k; padding to 64-byte vectors was 1.4x slower than 32.
template <class T>
constexpr index_t csr_lanes() { return 32 / index_t(sizeof(T)); }
constexpr int kCsrTileVectors = 4;  // columns per register tile: 4 vectors (32 float32, 16 float64)

// Rows [b, e) of a CSR pass: row_span of each row, then every column index of
// the rows in one flat, branch-free loop, so the products below run unchecked.
template <class T, class I>
inline int csr_check_rows(const CsrPass<T, I>& p, index_t b, index_t e) {
  const I* __restrict ptr = p.indptr;
  const index_t qb = static_cast<index_t>(ptr[b]), qe = static_cast<index_t>(ptr[e]);
  if (qb < 0 || qe > p.nnz) return kBadIndptr;
  unsigned down = 0;  // nondecreasing indptr keeps every row inside [qb, qe]
  for (index_t i = b; i < e; ++i) down |= static_cast<unsigned>(ptr[i + 1] < ptr[i]);
  if (down != 0) return kBadIndptr;
  if (qb == qe) return 0;
  // One unsigned max (a negative index becomes huge) vectorizes; an and-ed range
  // test did not, and took ~40% of A V's time at k = 1.
  using U = std::make_unsigned_t<I>;
  const I* __restrict idx = p.indices;
  U hi = 0;
  for (index_t q = qb; q < qe; ++q) hi = std::max(hi, static_cast<U>(idx[q]));
  const auto limit = std::min(static_cast<std::uint64_t>(p.d),
                              static_cast<std::uint64_t>(std::numeric_limits<I>::max()) + 1);
  return static_cast<std::uint64_t>(hi) < limit ? 0 : kBadIndex;
}

// Narrow factors (k <= csr_narrow_max): the row vector is K columns known at compile
// time, padded to P = 1, 2, 4 or 8 lanes (a scalar for K = 1), so the row's y is
// stored and W's row loaded by a fixed-size copy (inline moves; the runtime-size
// memcpy of the old tiles was a library call per row), and the forward sum runs
// in kCsrChains independent accumulators on rows of 8 or more nonzeros on average
// (one accumulator waits an FMA latency per nonzero). With the flat index check:
// measured single thread (Zen 4, AVX2 code), float64 20000 x 2000 with 400k
// nonzeros, A V at k = 1-4: 1.45-1.48 -> 0.87-1.01 ns per nonzero; 1M x 500
// with 500k nonzeros (half a nonzero per row): 9.1-9.5 -> 6.0-6.4 ms.
// Up to 32 bytes of columns (float64 k <= 4, float32 k <= 8): a 64-byte float64
// row vector split into two AVX2 halves ran 3x slower than the tiles.
template <class T>
constexpr index_t csr_narrow_max() { return 32 / index_t(sizeof(T)); }
constexpr int kCsrChains = 4;  // the sum below adds four

template <int K>
constexpr index_t csr_narrow_pad() { return K <= 1 ? 1 : K <= 2 ? 2 : K <= 4 ? 4 : 8; }

template <class T, int P>
struct narrow_vec {
#if defined(__GNUC__)
  using type = std::conditional_t<P == 1, T, typename simd<T, P>::type>;
#endif
};

#if defined(__GNUC__)
template <class T, class I, int K>
inline void csr_rows_narrow(const CsrPass<T, I>& p, index_t b, index_t e, T* __restrict Z) {
  constexpr int P = static_cast<int>(csr_narrow_pad<K>());
  using vec = typename narrow_vec<T, P>::type;
  const I* __restrict indices = p.indices;
  const T* __restrict data = p.data;
  const T* __restrict V = p.V;
  const T* __restrict Vtail = p.Vtail;
  const index_t vsafe = p.vsafe;
  auto vrow = [&](index_t j) { return j < vsafe ? V + j * K : Vtail + (j - vsafe) * K; };
  const bool packed = P != K && p.zs == K;
  const bool fwd = has_forward(p.pass), bwd = has_backward(p.pass), with_y = backward_uses_y(p.pass);
  // Rows of a few nonzeros run one chain: the unrolled loop's exit mispredicts
  // there, and the latency it hides is short.
  const bool chains = b < e && static_cast<index_t>(p.indptr[e]) - static_cast<index_t>(p.indptr[b]) >= 8 * (e - b);
  for (index_t i = b; i < e; ++i) {
    const index_t s = static_cast<index_t>(p.indptr[i]), f = static_cast<index_t>(p.indptr[i + 1]);
    vec w = vec{};
    if (fwd) {
      vec acc[kCsrChains];
      for (int c = 0; c < kCsrChains; ++c) acc[c] = vec{};
      index_t q = s;
      if (chains) {
        for (; q + kCsrChains <= f; q += kCsrChains)
          for (int c = 0; c < kCsrChains; ++c) {
            vec a;
            std::memcpy(&a, vrow(static_cast<index_t>(indices[q + c])), sizeof(vec));
            acc[c] += data[q + c] * a;
          }
      }
      for (; q < f; ++q) {
        vec a;
        std::memcpy(&a, vrow(static_cast<index_t>(indices[q])), sizeof(vec));
        acc[0] += data[q] * a;
      }
      w = (acc[0] + acc[1]) + (acc[2] + acc[3]);
      if (p.Y != nullptr) std::memcpy(p.Y + i * K, &w, sizeof(T) * K);
    }
    if (!bwd) continue;
    if (!with_y) {
      w = vec{};
      std::memcpy(&w, p.W + i * K, sizeof(T) * K);
    }
    if (packed) {  // Z itself, K columns a row, lane by lane (a K-lane vector move
                   // stalls store forwarding when a row comes back: 10x slower)
      T wl[P];
      std::memcpy(wl, &w, sizeof(vec));
      for (index_t q = s; q < f; ++q) {
        T* z = Z + static_cast<index_t>(indices[q]) * K;
        for (int c = 0; c < K; ++c) z[c] += data[q] * wl[c];
      }
      continue;
    }
    for (index_t q = s; q < f; ++q) {
      T* z = Z + static_cast<index_t>(indices[q]) * P;
      vec a;
      std::memcpy(&a, z, sizeof(vec));
      a += data[q] * w;
      std::memcpy(z, &a, sizeof(vec));
    }
  }
}

// Row i of a CSR pass, columns [t, t + NV * L) (padded): y = a_i V[:, tile]
// (stored to Y when wanted), then Z[:, tile] += a_i^T (y or W[i, tile]).
// The forward sum alternates two accumulator sets (two FMA chains per vector).
// Y and W rows move as whole vectors, the last partial one lane by lane.
template <class T, class I, int NV>
inline void csr_row_tile(const CsrPass<T, I>& p, index_t i, index_t s, index_t f, index_t t, T* __restrict Z) {
  constexpr int L = static_cast<int>(csr_lanes<T>());
  using vec = typename simd<T, L>::type;
  const index_t kp = p.kp, cols = std::min<index_t>(NV * L, p.k - t);
  vec w[NV];
  for (int u = 0; u < NV; ++u) w[u] = vec{};
  if (has_forward(p.pass)) {
    vec w2[NV];
    for (int u = 0; u < NV; ++u) w2[u] = vec{};
    index_t q = s;
    for (; q + 2 <= f; q += 2) {
      const T x0 = p.data[q], x1 = p.data[q + 1];
      const T* v0 = p.vrow(static_cast<index_t>(p.indices[q])) + t;
      const T* v1 = p.vrow(static_cast<index_t>(p.indices[q + 1])) + t;
      for (int u = 0; u < NV; ++u) {
        vec a0, a1;
        load<T, L>(a0, v0 + u * L);
        load<T, L>(a1, v1 + u * L);
        w[u] += x0 * a0;
        w2[u] += x1 * a1;
      }
    }
    if (q < f) {
      const T x = p.data[q];
      const T* v = p.vrow(static_cast<index_t>(p.indices[q])) + t;
      for (int u = 0; u < NV; ++u) {
        vec a;
        load<T, L>(a, v + u * L);
        w[u] += x * a;
      }
    }
    for (int u = 0; u < NV; ++u) w[u] += w2[u];
    if (p.Y != nullptr) {
      T* y = p.Y + i * p.k + t;
      for (int u = 0; u < NV; ++u) {
        if ((u + 1) * L <= cols) {
          store<T, L>(y + u * L, w[u]);
        } else {
          for (int c = 0; c < L; ++c)  // fixed count: no memcpy call (as for W below)
            if (u * L + c < cols) y[u * L + c] = w[u][c];
          break;
        }
      }
    }
  }
  if (!has_backward(p.pass)) return;
  if (!backward_uses_y(p.pass)) {
    const T* src = p.W + i * p.k + t;
    for (int u = 0; u < NV; ++u) {
      if ((u + 1) * L <= cols) {
        load<T, L>(w[u], src + u * L);
      } else {  // a fixed-count loop: GCC turned a runtime-count copy into a memcpy call
        w[u] = vec{};
        for (int c = 0; c < L; ++c)
          if (u * L + c < cols) w[u][c] = src[u * L + c];
      }
    }
  }
  const index_t zs = p.zs;
  for (index_t q = s; q < f; ++q) {
    const T x = p.data[q];
    T* z = Z + static_cast<index_t>(p.indices[q]) * zs + t;
    for (int u = 0; u < NV; ++u) {
      if ((u + 1) * L <= cols || zs == kp) {
        vec a;
        load<T, L>(a, z + u * L);
        a += x * w[u];
        store<T, L>(z + u * L, a);
      } else {  // Z itself: the row's last lanes, a half vector then one by one
        // (each piece moved at one width and offset, so store forwarding holds
        // when a row comes back)
        index_t c = u * L;
        if constexpr (L >= 4) {
          using half = typename simd<T, L / 2>::type;
          if (cols - c >= L / 2) {
            half a, h;
            load<T, L / 2>(a, z + c);
            std::memcpy(&h, &w[u], sizeof(h));
            a += x * h;
            store<T, L / 2>(z + c, a);
            c += L / 2;
          }
        }
        for (; c < cols; ++c) z[c] += x * w[u][c - u * L];
        break;
      }
    }
  }
}
#else
template <class T, class I, int K>
inline void csr_rows_narrow(const CsrPass<T, I>& p, index_t b, index_t e, T* Z) {
  constexpr index_t P = csr_narrow_pad<K>();
  for (index_t i = b; i < e; ++i) {
    const index_t s = static_cast<index_t>(p.indptr[i]), f = static_cast<index_t>(p.indptr[i + 1]);
    T w[P] = {};
    if (has_forward(p.pass)) {
      for (index_t q = s; q < f; ++q) {
        const T* v = p.vrow(static_cast<index_t>(p.indices[q]));
        for (index_t c = 0; c < P; ++c) w[c] += p.data[q] * v[c];
      }
      if (p.Y != nullptr) std::memcpy(p.Y + i * K, w, sizeof(T) * K);
    }
    if (!has_backward(p.pass)) continue;
    if (!backward_uses_y(p.pass)) {
      std::fill(w, w + P, T(0));
      std::memcpy(w, p.W + i * K, sizeof(T) * K);
    }
    for (index_t q = s; q < f; ++q) {
      T* z = Z + static_cast<index_t>(p.indices[q]) * p.zs;
      for (index_t c = 0; c < std::min<index_t>(P, p.zs); ++c) z[c] += p.data[q] * w[c];
    }
  }
}

template <class T, class I, int NV>
inline void csr_row_tile(const CsrPass<T, I>& p, index_t i, index_t s, index_t f, index_t t, T* __restrict Z) {
  constexpr int W = NV * static_cast<int>(csr_lanes<T>());
  const index_t kp = p.kp, cols = std::min<index_t>(W, p.k - t);
  T w[W] = {};
  if (has_forward(p.pass)) {
    for (index_t q = s; q < f; ++q) {
      const T* v = p.vrow(static_cast<index_t>(p.indices[q])) + t;
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
    T* z = Z + static_cast<index_t>(p.indices[q]) * p.zs + t;
    for (int c = 0; c < (p.zs == kp ? W : cols); ++c) z[c] += p.data[q] * w[c];
  }
}
#endif

// Padded Z accumulators from this size on give way to Z itself at one thread
// (csr_row_pass). Measured single thread, float64, 500-row CSR, 500k nonzeros,
// A^T W: d = 100k (k = 3: 3.2 MB; k = 6: 6.4 MB) padded 0.77 / 1.18 ms, in Z
// 0.92 / 1.83 ms; d = 400k, k = 3 (12.8 MB): padded 2.35, in Z 1.31 ms;
// d = 1M, k = 6 (64 MB): padded 44.7, in Z 11.5 ms.
constexpr index_t kCsrPackedBytes = index_t(8) << 20;

// The padded width of V and Z for k columns (csr_row_pass and csr_rows agree on it).
template <class T>
inline index_t csr_padded(index_t k) {
  if (k <= csr_narrow_max<T>()) return k <= 1 ? 1 : k <= 2 ? 2 : k <= 4 ? 4 : 8;
  return round_up(k, csr_lanes<T>());
}

// Rows [b, e) of a CSR pass over the general tiles (k > csr_narrow_max).
template <class T, class I>
inline void csr_rows_tiles(const CsrPass<T, I>& p, index_t b, index_t e, T* Z) {
  constexpr index_t L = csr_lanes<T>();
  for (index_t i = b; i < e; ++i) {
    const index_t s = static_cast<index_t>(p.indptr[i]), f = static_cast<index_t>(p.indptr[i + 1]);
    for (index_t t = 0; t < p.kp; t += kCsrTileVectors * L) {
      switch (std::min<index_t>(kCsrTileVectors, (p.kp - t) / L)) {
        case 1: csr_row_tile<T, I, 1>(p, i, s, f, t, Z); break;
        case 2: csr_row_tile<T, I, 2>(p, i, s, f, t, Z); break;
        case 3: csr_row_tile<T, I, 3>(p, i, s, f, t, Z); break;
        default: csr_row_tile<T, I, 4>(p, i, s, f, t, Z); break;
      }
    }
  }
}

// Rows [b, e) of a CSR pass into this thread's d x kp accumulator Z: the
// narrow loop for K = k <= csr_narrow_max, the tiles for K = 0. Returns 0 or a
// KernelError (never throws: it runs under a target attribute).
template <class T, class I, int K>
inline int csr_rows(const CsrPass<T, I>& p, index_t b, index_t e, T* Z) {
  if (const int code = csr_check_rows(p, b, e)) return code;
  if constexpr (K > 0) {
    csr_rows_narrow<T, I, K>(p, b, e, Z);
  } else {
    csr_rows_tiles<T, I>(p, b, e, Z);
  }
  return 0;
}

template <class T, class I>
using csr_rows_fn = int (*)(const CsrPass<T, I>&, index_t, index_t, T*);

template <class T, class I, int K>
int csr_rows_generic(const CsrPass<T, I>& p, index_t b, index_t e, T* Z) {
  return csr_rows<T, I, K>(p, b, e, Z);
}

// One function per K, picked once per pass (pick_csr_rows): no switch over k
// per row, and each width's loop is compiled on its own.
#if defined(FASTLR_X86_DISPATCH)
template <class T, class I, int K>
__attribute__((target("avx2,fma"), flatten)) int csr_rows_avx2(const CsrPass<T, I>& p, index_t b, index_t e, T* Z) {
  return csr_rows<T, I, K>(p, b, e, Z);
}
#endif

template <class T, class I, int K>
csr_rows_fn<T, I> pick_csr_rows_k(cpu_level_t level) {
#if defined(FASTLR_X86_DISPATCH)
  if (level >= kAvx2) return &csr_rows_avx2<T, I, K>;
#endif
  (void)level;
  return &csr_rows_generic<T, I, K>;
}

// AVX2 code for AVX-512 CPUs too (32-byte vectors, see csr_lanes).
template <class T, class I>
csr_rows_fn<T, I> pick_csr_rows(cpu_level_t level, index_t k) {
  switch (k) {
    case 1: return pick_csr_rows_k<T, I, 1>(level);
    case 2: return pick_csr_rows_k<T, I, 2>(level);
    case 3: return pick_csr_rows_k<T, I, 3>(level);
    case 4: return pick_csr_rows_k<T, I, 4>(level);
    default: break;
  }
  if constexpr (csr_narrow_max<T>() == 8) {
    switch (k) {
      case 5: return pick_csr_rows_k<T, I, 5>(level);
      case 6: return pick_csr_rows_k<T, I, 6>(level);
      case 7: return pick_csr_rows_k<T, I, 7>(level);
      case 8: return pick_csr_rows_k<T, I, 8>(level);
      default: break;
    }
  }
  return pick_csr_rows_k<T, I, 0>(level);
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
  const index_t kp = detail::csr_padded<T>(k);
  // V in place but for its last rows (CsrPass); a padded d x kp copy of V cost a
  // page-faulting allocation, 35 of the 43 ms of a float64 k = 6 pass with d = 1M.
  index_t vsafe = d;
  detail::AlignedBuffer<T> Vtail;
  if (fwd) {
    vsafe = std::max<index_t>(0, d - (kp - k + k - 1) / k);
    Vtail.assign((d - vsafe) * k + kp);
    if (d > vsafe) std::memcpy(Vtail.data, V + vsafe * k, sizeof(T) * (d - vsafe) * k);
  }
  const index_t per_entry = (fwd ? 1 : 0) + (bwd ? 1 : 0);
  const int want = useful_threads(nthreads, (nnz * per_entry * k + n * k) / 8);
  // One thread: Z itself accumulates when k needs no padding, or when the padded
  // d x kp buffer passes kCsrPackedBytes (its page faults and copy then cost more
  // than moving Z's last lanes one by one; d is A's row count for CSC input).
  const bool direct = bwd && want == 1 &&
                      (kp == k || d * kp * index_t(sizeof(T)) >= detail::kCsrPackedBytes);
  const index_t zsize = bwd && !direct ? detail::round_up(d * kp, detail::kLine / index_t(sizeof(T))) : 0;
  detail::AlignedBuffer<T> zacc;
  zacc.assign(static_cast<size_t>(want) * zsize);
  if (direct) std::fill(Z, Z + d * k, T(0));
  const detail::CsrPass<T, I> p{indptr, indices, data, nnz, d, V, Vtail.data, vsafe, W, Y, k, kp, direct ? k : kp, pass};
  const auto rows_fn = detail::pick_csr_rows<T, I>(detail::cpu_level(), k);
  ErrorFlag err;
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel num_threads(want)
#endif
  {
    const int parts = want > 1 ? omp_threads_in_team() : 1;
    const int t = thread_id();
    index_t b, e;
    nnz_chunk_range(indptr, n, parts, t, b, e);
    const int code = rows_fn(p, b, e, direct ? Z : zacc.data + t * zsize);
    if (code != 0) err.set(code);
    if (bwd && !direct) {
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
