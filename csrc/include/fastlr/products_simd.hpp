// ISA and SIMD building blocks of the one-pass products (products.hpp): which
// halves of a row pass run (RowPass), vector types and register tiles per ISA
// level (the level, within the cap, is common.hpp's cpu_level), and the padded,
// cache-aligned buffers and fixed-order reduction that the dense and CSR passes share.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "fastlr/common.hpp"

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

// Prefetch into L2 the rows of the next tile (pf, R rows, leading dim ldx; none
// when pf is null) while this tile sweeps its own: a few rows streamed from memory
// at once outrun the hardware prefetcher. Called once per column j, it asks for
// column j of P rows in turn, P rows apart (P <= one cache line of entries), so
// every line of every row is asked for one tile ahead.
template <class T, int R>
struct RowPrefetch {
  static constexpr int kLineElems = static_cast<int>(64 / sizeof(T));
  static constexpr int NP = (R + kLineElems - 1) / kLineElems;  // prefetches per column
  static constexpr int P = (R + NP - 1) / NP;                     // rows between them
  const T* pf;
  index_t ldx;
  int r = 0;
  void operator()(index_t j) {
    if (pf == nullptr) return;
    for (int q = 0; q < NP; ++q)
      if (r + q * P < R) __builtin_prefetch(pf + (r + q * P) * ldx + j, 0, 2);
    r = r + 1 == P ? 0 : r + 1;
  }
};

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
    if constexpr (H && L * sizeof(T) == 32) {
      // AVX2: the half vector takes the low half of the full one's broadcast
      // (GCC otherwise broadcasts a from memory twice: load-port bound).
      const vec b = a - vec{};  // a splat (a - 0 is a, signed zeros included)
      half bh;
      std::memcpy(&bh, &b, sizeof(bh));
      for (int q = 0; q < NV; ++q) v[q] += b * x.v[q];
      h += bh * x.h;
    } else {
      for (int q = 0; q < NV; ++q) v[q] += a * x.v[q];
      if constexpr (H) h += a * x.h;
    }
  }
};

// Yb[r, tile] = sum_j X[r, j] * Vp[j, tile] for R rows of X (row-major, leading
// dim ldx); the tile starts at column t. Resume: Yb[r, tile] += the sum, its
// accumulators continued from Yb (the same additions in the same order as one
// sweep over both spans of j: products_split_depth.cpp's depth blocks).
template <class T, int R, int L, int NV, int H, bool Resume = false>
inline void forward_tile(const T* X, index_t ldx, index_t d, const T* Vp, index_t kp, index_t t, T* Yb,
                         const T* pf) {
  Tile<T, L, NV, H> acc[R];
  for (int r = 0; r < R; ++r) {
    if constexpr (Resume) {
      acc[r].load_from(Yb + r * kp + t);
    } else {
      acc[r].zero();
    }
  }
  const T* v = Vp + t;
  RowPrefetch<T, R> next{pf, ldx};
  for (index_t j = 0; j < d; ++j, v += kp) {
    next(j);
    Tile<T, L, NV, H> vj;
    vj.load_from(v);
    for (int r = 0; r < R; ++r) acc[r].fma(X[r * ldx + j], vj);
  }
  for (int r = 0; r < R; ++r) acc[r].store_to(Yb + r * kp + t);
}

// Z[j, tile] += sum_r X[r, j] * Wb[r, tile] for R rows of X; Z is d x kp.
template <class T, int R, int L, int NV, int H>
inline void backward_tile(const T* X, index_t ldx, index_t d, const T* Wb, index_t kp, index_t t, T* Z,
                          const T* pf) {
  Tile<T, L, NV, H> w[R];
  for (int r = 0; r < R; ++r) w[r].load_from(Wb + r * kp + t);
  T* z = Z + t;
  RowPrefetch<T, R> next{pf, ldx};
  for (index_t j = 0; j < d; ++j, z += kp) {
    next(j);
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
                      T* Z, const T* pf) {
  Tile<T, L, NV, H> acc[R], w[R];
  for (int r = 0; r < R; ++r) {
    acc[r].zero();
    w[r].load_from(Wb + r * kp + t);
  }
  const T* v = Vp + t;
  T* z = Z + t;
  RowPrefetch<T, R> next{pf, ldx};
  for (index_t j = 0; j < d; ++j, v += kp, z += kp) {
    next(j);
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
                      T* Z, const T* pf) {
  (void)pf;
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

template <class T, int R, int L, int NV, int H, bool Resume = false>
inline void forward_tile(const T* X, index_t ldx, index_t d, const T* Vp, index_t kp, index_t t, T* Yb,
                         const T* pf) {
  (void)pf;
  constexpr int W = L * NV + H * (L > 1 ? L / 2 : 1);
  T acc[R][W] = {};
  if constexpr (Resume)
    for (int r = 0; r < R; ++r)
      for (int w = 0; w < W; ++w) acc[r][w] = Yb[r * kp + t + w];
  const T* v = Vp + t;
  for (index_t j = 0; j < d; ++j, v += kp)
    for (int r = 0; r < R; ++r)
      for (int w = 0; w < W; ++w) acc[r][w] += X[r * ldx + j] * v[w];
  for (int r = 0; r < R; ++r)
    for (int w = 0; w < W; ++w) Yb[r * kp + t + w] = acc[r][w];
}

template <class T, int R, int L, int NV, int H>
inline void backward_tile(const T* X, index_t ldx, index_t d, const T* Wb, index_t kp, index_t t, T* Z,
                          const T* pf) {
  (void)pf;
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

template <class T, int R, int V, bool Resume = false>
inline void forward_rows(const T* X, index_t ldx, index_t d, const T* Vp, index_t kp, T* Yb,
                         const T* pf = nullptr) {
  for_each_tile<V>(kp, [&](auto lanes, auto nv, auto h, index_t t) {
    forward_tile<T, R, decltype(lanes)::value, decltype(nv)::value, decltype(h)::value, Resume>(
        X, ldx, d, Vp, kp, t, Yb, t == 0 ? pf : nullptr);
  });
}

template <class T, int R, int V>
inline void backward_rows(const T* X, index_t ldx, index_t d, const T* Wb, index_t kp, T* Z,
                          const T* pf = nullptr) {
  for_each_tile<V>(kp, [&](auto lanes, auto nv, auto h, index_t t) {
    backward_tile<T, R, decltype(lanes)::value, decltype(nv)::value, decltype(h)::value>(X, ldx, d, Wb, kp, t, Z,
                                                                                         t == 0 ? pf : nullptr);
  });
}

template <class T, int R, int V>
inline void both_rows(const T* X, index_t ldx, index_t d, const T* Vp, const T* Wb, index_t kp, T* Yb, T* Z,
                      const T* pf = nullptr) {
  for_each_tile<V>(kp, [&](auto lanes, auto nv, auto h, index_t t) {
    both_tile<T, R, decltype(lanes)::value, decltype(nv)::value, decltype(h)::value>(X, ldx, d, Vp, Wb, kp, t, Yb,
                                                                                     Z, t == 0 ? pf : nullptr);
  });
}

using cpu_level_t = int;
constexpr cpu_level_t kGeneric = kIsaBaseline, kAvx2 = kIsaAvx2, kAvx512 = kIsaAvx512;

// Lanes of one vector register per ISA; register tiles are R rows x up to
// two vectors of accumulators.
template <class T>
constexpr int vector_lanes(cpu_level_t level) {
  return static_cast<int>((level == kAvx512 ? 64 : level == kAvx2 ? 32 : 16) / sizeof(T));
}
constexpr int kTileRows = 4;  // baseline (SSE2, 16 registers): 8 accumulators
// AVX2 (16 ymm registers): 6 rows x 2 vectors = 12 accumulators + 2 V vectors + 1
// broadcast. Measured single thread (Zen 4 capped at x86-64-v3, 5760 x 1080,
// l = 10-60): 1.05-1.35x faster than 4 rows; 5 rows, 7 rows (spills), 4 rows x 3
// vectors, 3 x 4 and 8 x 1 were slower or no better.
constexpr int kTileRowsAvx2 = 6;
// AVX-512: 12 rows (24 accumulators) for float64 (1.05-1.1x over 8 at k = 32
// and 60); 8 for float32, where 12 measured 0.86-1.10x of 8 by shape.
template <class T>
constexpr int kTileRowsAvx512 = sizeof(T) == 4 ? 8 : 12;

// AVX2 and baseline, row-major A: when V and the Z accumulator together pass
// kGroupBytes (the V x tile sweeps of the forward half and the Z ones of the
// backward half then evict each other from L2), the forward half runs for a group
// of kGroupRows rows before their backward half (dense_rows). Measured single
// thread, Zen 4 (1 MB L2) capped at x86-64-v3, gram_product 5760 x 1080 float64
// l = 60 (V + Z 1 MB): 1.10x; l = 32 (0.55 MB): 1.01x; l = 20 (0.35 MB): 0.96x.
constexpr index_t kGroupBytes = index_t(768) << 10;
constexpr index_t kGroupRows = 48;

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

// Dense and CSR passes at several threads: row blocks per thread, and a cap on the
// bytes of their Z accumulators (wider Z: fewer blocks, at least one per thread).
constexpr index_t kBlocksPerThread = 4;
constexpr index_t kBlockAccBytes = index_t(1) << 23;

// Row blocks a pass on `want` threads hands out in turn: per_thread a thread, but
// when each block has a Z accumulator of zbytes (0: none), no more than
// kBlockAccBytes of them in all, and at least one a thread. One block on one thread.
inline index_t row_blocks(int want, index_t per_thread, index_t zbytes) {
  if (want <= 1) return 1;
  const index_t most = zbytes > 0 ? std::max<index_t>(want, kBlockAccBytes / zbytes) : per_thread * want;
  return std::min<index_t>(per_thread * want, most);
}

// Row blocks of a dense pass with a backward half (dense_row_pass), each summing its rows into a Z
// of its own from zero, the blocks' sums added in block order. A function of the problem only (n, the
// tile rows, the accumulator size), never of the thread count, so A^T W and A^T (A V) are
// bit-identical at every thread count. At most kMaxFixedBlocks and kBlockAccBytes of accumulators
// (but kMinFixedBlocks when n has the rows for them, so a wide Z still spreads over threads).
// float32 (run_rows > 0): blocks of whole runs of run_rows rows (its two-level sums, kSumRows32), a run
// a block up to kMaxFixedBlocks runs: one thread adds the same sums as before the blocks were fixed.
// float64 (run_rows 0): n / kFixedBlockRows blocks (to the nearest: 2000 rows make two, not one
// that would leave a second thread idle), rounded down to a multiple of kMinFixedBlocks from 4 on
// (even shares for 2 and 4 threads), of whole tiles (`unit` rows). One thread adds a block's d x k
// sum for each block after the first: Zen 2, one thread, 5760 x 1080 float64 (4 blocks) A^T W and
// A^T (A V) at l = 10-60 cost 0-0.7% at load 4-5 (0-2.8% at load 6-11), 100000 x 500 0-0.6%
// (bench/README.md, eighteenth session, HD).
constexpr index_t kMaxFixedBlocks = 16;
constexpr index_t kMinFixedBlocks = 4;
constexpr index_t kFixedBlockRows = 1024;
inline index_t fixed_block_rows(index_t n, index_t unit, index_t run_rows, index_t zbytes) {
  index_t most = zbytes > 0 ? kBlockAccBytes / zbytes : kMaxFixedBlocks;
  most = std::max<index_t>(kMinFixedBlocks, std::min<index_t>(most, kMaxFixedBlocks));
  if (run_rows > 0) return round_up(std::max<index_t>(run_rows, (n + most - 1) / most), run_rows);
  index_t count = std::min<index_t>(most, std::max<index_t>(1, (n + kFixedBlockRows / 2) / kFixedBlockRows));
  if (count > kMinFixedBlocks) count -= count % kMinFixedBlocks;
  return round_up(std::max<index_t>(1, (n + count - 1) / count), unit);
}

// float32 backward passes (Z += A^T W) sum at most kSumRows32 rows into one
// accumulator, then add it to the block's (two-level summation): one float32
// accumulator over all n rows rounds like eps * sqrt(n), which showed in
// randomized_svd's excess error at one thread (5760 x 1080, k = 10, worst of 3
// seeds: 3.67e-10 against scikit-learn's 3.40e-10; 3.28e-10 in runs of 1024
// rows, as with two threads' 8 block sums; the exact SVD of the float32 matrix:
// 3.25e-10). Cost at one thread on Zen 2 (x86-64-v3, 5760 x 1080): A^T W
// 0-1%, gd_products 0-3%, power_step 0-5% (runs of 512: up to 6%).
// float64 is unchanged.
constexpr index_t kSumRows32 = 1024;

}  // namespace detail

}  // namespace fastlr
