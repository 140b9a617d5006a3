// One-pass products of a matrix A (n x d) with thin factors (k columns):
//   matmul       Y = A V                      V: d x k
//   rmatmul      Z = A^T W                    W: n x k
//   gd_products  (A V, A^T U) in one pass     U: n x k, V: d x k
//   power_step   Y = A Q, Z = A^T Y in one pass
// for dense A (row- or column-major) and CSR A. Every kernel is one "row pass":
// for each row a_i, optionally y_i = a_i V (forward) and Z += a_i^T w_i
// (backward), where w_i is a given row or the y_i just computed.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "fastlr/common.hpp"
#include "fastlr/countsketch.hpp"  // sparse error codes, detail::row_span

namespace fastlr {

/// Which halves of the row pass a kernel runs.
enum class RowPass : int {
  kForward = 1,   // Y[i] = a_i V
  kBackward = 2,  // Z += a_i^T W[i]
  kBoth = 3,      // both, W given (gd_products)
  kPower = 7,     // Y[i] = a_i V, then Z += a_i^T Y[i] (power_step)
};

inline bool has_forward(RowPass p) { return (static_cast<int>(p) & 1) != 0; }
inline bool has_backward(RowPass p) { return (static_cast<int>(p) & 2) != 0; }
inline bool backward_uses_y(RowPass p) { return p == RowPass::kPower; }

namespace detail {

/// Everything a dense row pass reads and writes. V and the Z accumulators are
/// padded to kp columns (a multiple of the vector tile width) so the inner
/// loops have compile-time widths; Y and W keep the caller's k columns.
template <class T>
struct DensePass {
  const T* A;
  index_t n, d, ld;
  bool col_major;
  const T* Vp;  // d x kp (forward)
  const T* W;   // n x k  (backward with given rows) or nullptr
  T* Y;         // n x k  (forward output) or nullptr
  index_t k, kp;
  RowPass pass;
};

// A W-wide vector of T (GCC/Clang vector extension): the compiler maps it onto
// the registers of the target ISA (one zmm, two ymm or four xmm for 64 bytes).
template <class T, int W>
struct simd {
#if defined(__GNUC__)
  typedef T type __attribute__((vector_size(W * sizeof(T))));
#endif
};

#if defined(__GNUC__)
template <class T, int W>
inline void load(typename simd<T, W>::type& v, const T* p) {
  std::memcpy(&v, p, sizeof(v));
}
template <class T, int W>
inline void store(T* p, const typename simd<T, W>::type& v) {
  std::memcpy(p, &v, sizeof(v));
}

// A register tile covers NV vectors of L lanes and, when H, one more vector of
// L/2 lanes: float32 k = 20 is one 16-lane + one 8-lane vector (24 columns)
// rather than two 16-lane vectors (32). On CPUs that split 512-bit operations
// into two 256-bit halves (AMD Zen 4) the half vector costs half as much.
template <class T, int L, int NV, int H>
struct Tile {
  using vec = typename simd<T, L>::type;
  using half = typename simd<T, (L > 1 ? L / 2 : 1)>::type;
  static constexpr int HL = L > 1 ? L / 2 : 1;
  vec v[NV];
  half h;
  void zero() {
    for (int q = 0; q < NV; ++q) v[q] = vec{};
    h = half{};
  }
  void load_from(const T* p) {
    for (int q = 0; q < NV; ++q) load<T, L>(v[q], p + q * L);
    if constexpr (H) load<T, HL>(h, p + NV * L);
  }
  void store_to(T* p) const {
    for (int q = 0; q < NV; ++q) store<T, L>(p + q * L, v[q]);
    if constexpr (H) store<T, HL>(p + NV * L, h);
  }
  void fma(T a, const Tile& x) {  // this += a * x
    for (int q = 0; q < NV; ++q) v[q] += a * x.v[q];
    if constexpr (H) h += a * x.h;
  }
};

// Yb[r, tile] = sum_j X[r, j] * Vp[j, tile] for R rows of X (row-major, leading
// dim ldx); the tile starts at column t.
template <class T, int R, int L, int NV, int H>
inline void forward_tile(const T* X, index_t ldx, index_t d, const T* Vp, index_t kp, index_t t, T* Yb) {
  Tile<T, L, NV, H> acc[R];
  for (int r = 0; r < R; ++r) acc[r].zero();
  const T* v = Vp + t;
  for (index_t j = 0; j < d; ++j, v += kp) {
    Tile<T, L, NV, H> vj;
    vj.load_from(v);
    for (int r = 0; r < R; ++r) acc[r].fma(X[r * ldx + j], vj);
  }
  for (int r = 0; r < R; ++r) acc[r].store_to(Yb + r * kp + t);
}

// Z[j, tile] += sum_r X[r, j] * Wb[r, tile] for R rows of X; Z is d x kp.
template <class T, int R, int L, int NV, int H>
inline void backward_tile(const T* X, index_t ldx, index_t d, const T* Wb, index_t kp, index_t t, T* Z) {
  Tile<T, L, NV, H> w[R];
  for (int r = 0; r < R; ++r) w[r].load_from(Wb + r * kp + t);
  T* z = Z + t;
  for (index_t j = 0; j < d; ++j, z += kp) {
    Tile<T, L, NV, H> s;
    s.load_from(z);
    for (int r = 0; r < R; ++r) s.fma(X[r * ldx + j], w[r]);
    s.store_to(z);
  }
}

// Both halves of gd_products for R rows in one sweep over j, each X[r, j]
// loaded once: Yb[r, tile] = X[r, :] Vp[:, tile] and Z[:, tile] += X^T Wb.
template <class T, int R, int L, int NV, int H>
inline void both_tile(const T* X, index_t ldx, index_t d, const T* Vp, const T* Wb, index_t kp, index_t t, T* Yb,
                      T* Z) {
  Tile<T, L, NV, H> acc[R], w[R];
  for (int r = 0; r < R; ++r) {
    acc[r].zero();
    w[r].load_from(Wb + r * kp + t);
  }
  const T* v = Vp + t;
  T* z = Z + t;
  for (index_t j = 0; j < d; ++j, v += kp, z += kp) {
    Tile<T, L, NV, H> vj, s;
    vj.load_from(v);
    s.load_from(z);
    for (int r = 0; r < R; ++r) {
      const T a = X[r * ldx + j];
      acc[r].fma(a, vj);
      s.fma(a, w[r]);
    }
    s.store_to(z);
  }
  for (int r = 0; r < R; ++r) acc[r].store_to(Yb + r * kp + t);
}
#else
template <class T, int R, int L, int NV, int H>
inline void both_tile(const T* X, index_t ldx, index_t d, const T* Vp, const T* Wb, index_t kp, index_t t, T* Yb,
                      T* Z) {
  constexpr int W = L * NV + H * (L > 1 ? L / 2 : 1);
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < W; ++c) Yb[r * kp + t + c] = T(0);
  for (index_t j = 0; j < d; ++j)
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < W; ++c) {
        Yb[r * kp + t + c] += X[r * ldx + j] * Vp[j * kp + t + c];
        Z[j * kp + t + c] += X[r * ldx + j] * Wb[r * kp + t + c];
      }
}

template <class T, int R, int L, int NV, int H>
inline void forward_tile(const T* X, index_t ldx, index_t d, const T* Vp, index_t kp, index_t t, T* Yb) {
  constexpr int W = L * NV + H * (L > 1 ? L / 2 : 1);
  T acc[R][W] = {};
  const T* v = Vp + t;
  for (index_t j = 0; j < d; ++j, v += kp)
    for (int r = 0; r < R; ++r)
      for (int w = 0; w < W; ++w) acc[r][w] += X[r * ldx + j] * v[w];
  for (int r = 0; r < R; ++r)
    for (int w = 0; w < W; ++w) Yb[r * kp + t + w] = acc[r][w];
}

template <class T, int R, int L, int NV, int H>
inline void backward_tile(const T* X, index_t ldx, index_t d, const T* Wb, index_t kp, index_t t, T* Z) {
  constexpr int W = L * NV + H * (L > 1 ? L / 2 : 1);
  for (index_t j = 0; j < d; ++j)
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < W; ++c) Z[j * kp + t + c] += X[r * ldx + j] * Wb[r * kp + t + c];
}
#endif

// f(lanes, vectors, half, t) over the columns [0, kp) in tiles of two V-lane
// vectors, then one tile of what is left: one vector, one and a half, or half
// of one (kp is a multiple of V/2): no padding beyond half a vector, and never
// more than one sweep for the remainder.
template <int V, class F>
inline void for_each_tile(index_t kp, F&& f) {
  using full = std::integral_constant<int, V>;
  using one = std::integral_constant<int, 1>;
  using none = std::integral_constant<int, 0>;
  index_t t = 0;
  for (; t + 2 * V <= kp; t += 2 * V) f(full{}, std::integral_constant<int, 2>{}, none{}, t);
  const index_t rest = kp - t;
  if (rest == 0) return;
  if (rest == V) {
    f(full{}, one{}, none{}, t);
  } else if (rest > V) {
    f(full{}, one{}, one{}, t);
  } else {
    f(std::integral_constant<int, (V > 1 ? V / 2 : 1)>{}, one{}, none{}, t);
  }
}

template <class T, int R, int V>
inline void forward_rows(const T* X, index_t ldx, index_t d, const T* Vp, index_t kp, T* Yb) {
  for_each_tile<V>(kp, [&](auto lanes, auto nv, auto h, index_t t) {
    forward_tile<T, R, decltype(lanes)::value, decltype(nv)::value, decltype(h)::value>(X, ldx, d, Vp, kp, t, Yb);
  });
}

template <class T, int R, int V>
inline void backward_rows(const T* X, index_t ldx, index_t d, const T* Wb, index_t kp, T* Z) {
  for_each_tile<V>(kp, [&](auto lanes, auto nv, auto h, index_t t) {
    backward_tile<T, R, decltype(lanes)::value, decltype(nv)::value, decltype(h)::value>(X, ldx, d, Wb, kp, t, Z);
  });
}

template <class T, int R, int V>
inline void both_rows(const T* X, index_t ldx, index_t d, const T* Vp, const T* Wb, index_t kp, T* Yb, T* Z) {
  for_each_tile<V>(kp, [&](auto lanes, auto nv, auto h, index_t t) {
    both_tile<T, R, decltype(lanes)::value, decltype(nv)::value, decltype(h)::value>(X, ldx, d, Vp, Wb, kp, t, Yb,
                                                                                     Z);
  });
}

// G (rows x d, row-major) = the rows x d block of a column-major matrix at A
// (leading dim ld), in 8-column strips so reads and writes both stream.
template <class T>
inline void transpose_rows(const T* A, index_t ld, index_t rows, index_t d, T* G) {
  constexpr index_t S = 8;
  index_t j0 = 0;
  for (; j0 + S <= d; j0 += S)
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < S; ++c) G[r * d + j0 + c] = A[r + (j0 + c) * ld];
  for (index_t r = 0; r < rows; ++r)
    for (index_t j = j0; j < d; ++j) G[r * d + j] = A[r + j * ld];
}

/// Rows per fused gd_products tile (2 * kFusedRows * NV accumulators, plus as
/// many W vectors: within AVX-512's 32 registers for NV = 2).
constexpr int kFusedRows = 6;

/// Rows of the Y and W scratch blocks a dense pass with R-row tiles needs.
constexpr int scratch_rows(int R) { return R > kFusedRows ? R : kFusedRows; }

// dst[r, :] = src[r, :k] zero-padded to kp columns, for `rows` rows.
template <class T>
inline void copy_rows_padded(T* dst, index_t kp, const T* src, index_t k, int rows) {
  for (int r = 0; r < rows; ++r) {
    std::memcpy(dst + r * kp, src + r * k, sizeof(T) * k);
    std::fill(dst + r * kp + k, dst + (r + 1) * kp, T(0));
  }
}

// dst[r, :k] = src[r, :k] from rows of kp entries, for `rows` rows.
template <class T>
inline void copy_rows_unpadded(T* dst, index_t k, const T* src, index_t kp, int rows) {
  for (int r = 0; r < rows; ++r) std::memcpy(dst + r * k, src + r * kp, sizeof(T) * k);
}

// Rows [b, e) of a dense pass. Z: this thread's d x kp accumulator (backward).
// buf: scratch of 2 * scratch_rows(R) * kp entries + gather_rows * d (column-major A only).
// Column-major A is copied a few rows at a time into a row-major buffer, so
// both layouts share the same register tiles (and power_step stays one pass).
template <class T, int R, int V>
inline void dense_rows(const DensePass<T>& p, index_t gather_rows, index_t b, index_t e, T* Z, T* buf) {
  const index_t d = p.d, k = p.k, kp = p.kp;
  const bool fwd = has_forward(p.pass), bwd = has_backward(p.pass), use_y = backward_uses_y(p.pass);
  T* Yb = buf;
  T* Wb = buf + scratch_rows(R) * kp;
  T* G = buf + 2 * scratch_rows(R) * kp;
  for (index_t g0 = b; g0 < e; g0 += gather_rows) {
    const index_t g1 = std::min(e, g0 + gather_rows);
    const T* X;
    index_t ldx;
    if (p.col_major) {
      transpose_rows(p.A + g0, p.ld, g1 - g0, d, G);
      X = G;
      ldx = d;
    } else {
      X = p.A + g0 * p.ld;
      ldx = p.ld;
    }
    // W given and k within one two-vector tile: both halves in one sweep of each
    // row of A (wider k would sweep the rows once per column tile: the separate
    // halves with their taller tiles measured as fast or faster there).
    if (p.pass == RowPass::kBoth && kp <= 2 * V) {
      constexpr int RF = R >= 8 ? kFusedRows : 2;  // AVX2 and baseline: 16 vector registers
      for (index_t i0 = g0; i0 < g1; i0 += RF) {
        const int rr = static_cast<int>(std::min<index_t>(RF, g1 - i0));
        const T* Xr = X + (i0 - g0) * ldx;
        copy_rows_padded(Wb, kp, p.W + i0 * k, k, rr);
        if (rr == RF) {
          both_rows<T, RF, V>(Xr, ldx, d, p.Vp, Wb, kp, Yb, Z);
        } else {
          for (int r = 0; r < rr; ++r) both_rows<T, 1, V>(Xr + r * ldx, ldx, d, p.Vp, Wb + r * kp, kp, Yb + r * kp, Z);
        }
        copy_rows_unpadded(p.Y + i0 * k, k, Yb, kp, rr);
      }
      continue;
    }
    for (index_t i0 = g0; i0 < g1; i0 += R) {
      const int rr = static_cast<int>(std::min<index_t>(R, g1 - i0));
      const T* Xr = X + (i0 - g0) * ldx;
      if (fwd) {
        if (rr == R) {
          forward_rows<T, R, V>(Xr, ldx, d, p.Vp, kp, Yb);
        } else {
          for (int r = 0; r < rr; ++r) forward_rows<T, 1, V>(Xr + r * ldx, ldx, d, p.Vp, kp, Yb + r * kp);
        }
        if (p.Y != nullptr) copy_rows_unpadded(p.Y + i0 * k, k, Yb, kp, rr);
      }
      if (bwd) {
        const T* wrows = Yb;
        if (!use_y) {
          copy_rows_padded(Wb, kp, p.W + i0 * k, k, rr);
          wrows = Wb;
        }
        if (rr == R) {
          backward_rows<T, R, V>(Xr, ldx, d, wrows, kp, Z);
        } else {
          for (int r = 0; r < rr; ++r) backward_rows<T, 1, V>(Xr + r * ldx, ldx, d, wrows + r * kp, kp, Z);
        }
      }
    }
  }
}

using cpu_level_t = int;
constexpr cpu_level_t kGeneric = kIsaBaseline, kAvx2 = kIsaAvx2, kAvx512 = kIsaAvx512;

/// Cap on the ISA level of the product tiles (tests set it to run the AVX2 and
/// baseline tiles on an AVX-512 machine; target_clones kernels are unaffected).
inline std::atomic<int>& isa_cap() {
  static std::atomic<int> cap{kIsaAvx512};
  return cap;
}

/// The widest vector ISA this CPU runs (common.hpp's detection), within the cap.
inline cpu_level_t cpu_level() { return std::min(cpu_isa_level(), isa_cap().load(std::memory_order_relaxed)); }

// Lanes of one vector register per ISA; register tiles are R rows x up to
// two vectors of accumulators.
template <class T>
constexpr int vector_lanes(cpu_level_t level) {
  return static_cast<int>((level == kAvx512 ? 64 : level == kAvx2 ? 32 : 16) / sizeof(T));
}
constexpr int kTileRows = 4;
// AVX-512: 12 rows (24 accumulators) for float64 (1.05-1.1x over 8 at k = 32
// and 60); 8 for float32, where 12 measured 0.86-1.10x of 8 by shape.
template <class T>
constexpr int kTileRowsAvx512 = sizeof(T) == 4 ? 8 : 12;

template <class T>
using dense_rows_fn = void (*)(const DensePass<T>&, index_t, index_t, index_t, T*, T*);

template <class T>
void dense_rows_generic(const DensePass<T>& p, index_t g, index_t b, index_t e, T* Z, T* buf) {
  dense_rows<T, kTileRows, vector_lanes<T>(kGeneric)>(p, g, b, e, Z, buf);
}

#if defined(FASTLR_X86_DISPATCH)
template <class T>
__attribute__((target("avx2,fma"), flatten)) void dense_rows_avx2(const DensePass<T>& p, index_t g, index_t b,
                                                                  index_t e, T* Z, T* buf) {
  dense_rows<T, kTileRows, vector_lanes<T>(kAvx2)>(p, g, b, e, Z, buf);
}
template <class T>
__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma,prefer-vector-width=512"), flatten)) void
dense_rows_avx512(const DensePass<T>& p, index_t g, index_t b, index_t e, T* Z, T* buf) {
  dense_rows<T, kTileRowsAvx512<T>, vector_lanes<T>(kAvx512)>(p, g, b, e, Z, buf);
}
#endif

template <class T>
dense_rows_fn<T> pick_dense_rows(cpu_level_t level, int& rows_per_tile) {
#if defined(FASTLR_X86_DISPATCH)
  if (level == kAvx512) { rows_per_tile = kTileRowsAvx512<T>; return &dense_rows_avx512<T>; }
  if (level == kAvx2) { rows_per_tile = kTileRows; return &dense_rows_avx2<T>; }
#endif
  (void)level;
  rows_per_tile = kTileRows;
  return &dense_rows_generic<T>;
}

// out[j, :k] = sum_t acc[t][j, :k] for rows [b, e) of the d x kp accumulators
// (`size` entries apart), in a fixed order.
template <class T>
inline void reduce_padded(T* out, index_t k, const T* acc, index_t kp, index_t size, int nacc, index_t b, index_t e) {
  for (index_t j = b; j < e; ++j) {
    T* __restrict o = out + j * k;
    const T* __restrict src = acc + j * kp;
    for (index_t c = 0; c < k; ++c) o[c] = src[c];
    for (int s = 1; s < nacc; ++s) {
      const T* __restrict a = acc + static_cast<index_t>(s) * size + j * kp;
      for (index_t c = 0; c < k; ++c) o[c] += a[c];
    }
  }
}

inline index_t round_up(index_t x, index_t m) { return (x + m - 1) / m * m; }

constexpr index_t kLine = 64;  // bytes in a cache line (and in an AVX-512 vector)

inline bool cache_aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % kLine == 0; }

/// n zero-initialized entries starting on a cache-line boundary.
template <class T>
struct AlignedBuffer {
  std::vector<T> storage;
  T* data = nullptr;
  void assign(index_t n) {
    const index_t slack = kLine / index_t(sizeof(T));
    storage.assign(static_cast<size_t>(n + slack), T(0));
    const auto misalign = reinterpret_cast<std::uintptr_t>(storage.data()) % kLine;
    data = storage.data() + (misalign == 0 ? 0 : (kLine - misalign) / sizeof(T));
  }
};

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
// or a CountSketchError (never throws: it runs under a target attribute).
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

/// The row pass `pass` over a dense n x d matrix A.
/// Layout: A row-major (A[i*ld + j]) or, when col_major, column-major (A[i + j*ld]).
/// V: d x k row-major (forward). W: n x k row-major (backward unless kPower).
/// Y: n x k row-major output (forward), Z: d x k row-major output (backward);
/// both caller-allocated and overwritten. Y may be null for kPower (Z alone).
/// Threads: contiguous row chunks; each thread accumulates Z in its own
/// d x k buffer, summed in a fixed order, so results are deterministic for a
/// given thread count. Column-major A is transposed a few rows at a time into
/// a cache-sized buffer, so power_step is one pass over A in either layout.
template <class T>
void dense_row_pass(RowPass pass, const T* A, index_t n, index_t d, index_t ld, bool col_major, const T* V,
                    const T* W, index_t k, T* Y, T* Z, int nthreads) {
  const bool fwd = has_forward(pass), bwd = has_backward(pass);
  if (k == 0) return;
  if (d == 0 || n == 0) {
    if (fwd && Y != nullptr) std::fill(Y, Y + n * k, T(0));
    if (bwd) std::fill(Z, Z + d * k, T(0));
    return;
  }
  const detail::cpu_level_t level = detail::cpu_level();
  int R = 0;
  const auto rows_fn = detail::pick_dense_rows<T>(level, R);
  // Columns padded to half vectors (the tiles take one and a half in one sweep).
  const int lanes = detail::vector_lanes<T>(level);
  const index_t kp = detail::round_up(k, std::max(1, lanes / 2));
  // V, padded to kp columns, on a cache-line boundary (every vector load of a
  // row then stays within one line: 6-7% faster than a misaligned V). V itself
  // when it already is.
  const T* Vsrc = V;
  detail::AlignedBuffer<T> Vp;
  if (fwd && (kp != k || !detail::cache_aligned(V))) {
    Vp.assign(d * kp);
    for (index_t j = 0; j < d; ++j) std::memcpy(Vp.data + j * kp, V + j * k, sizeof(T) * k);
    Vsrc = Vp.data;
  }
  // Column-major A: gather enough rows to read whole cache lines of each column,
  // but keep the buffer within L2.
  index_t gather_rows = n;
  if (col_major) {
    gather_rows = std::max<index_t>(R, std::min<index_t>(64, (index_t(1) << 18) / (d * index_t(sizeof(T)))));
    gather_rows = detail::round_up(gather_rows, R);
  }
  const index_t per_row = (fwd ? 1 : 0) + (bwd ? 1 : 0);
  const int want = useful_threads(nthreads, n * d * per_row * kp / 8);
  // Per-thread accumulators on cache-line boundaries; one thread with unpadded
  // columns and an aligned Z accumulates straight into Z (no buffer, no reduction).
  const index_t zsize = bwd ? detail::round_up(d * kp, detail::kLine / index_t(sizeof(T))) : 0;
  const bool direct = bwd && want == 1 && kp == k && detail::cache_aligned(Z);
  detail::AlignedBuffer<T> zacc;
  zacc.assign(direct ? 0 : static_cast<size_t>(want) * zsize);
  if (direct) std::fill(Z, Z + d * k, T(0));
  T* acc = direct ? Z : zacc.data;
  const detail::DensePass<T> p{A, n, d, ld, col_major, Vsrc, W, Y, k, kp, pass};
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel num_threads(want)
#endif
  {
    const int parts = want > 1 ? omp_threads_in_team() : 1;
    const int t = thread_id();
    index_t b, e;
    chunk_range(n, parts, t, b, e);
    std::vector<T> buf(static_cast<size_t>(2 * detail::scratch_rows(R) * kp + (col_major ? gather_rows * d : 0)));
    rows_fn(p, gather_rows, b, e, acc + t * zsize, buf.data());
    if (bwd && !direct) {
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp barrier
#endif
      index_t jb, je;
      chunk_range(d, parts, t, jb, je);
      detail::reduce_padded(Z, k, zacc.data, kp, zsize, parts, jb, je);
    }
  }
}

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
  throw_countsketch_error(err.code);
}

}  // namespace fastlr
