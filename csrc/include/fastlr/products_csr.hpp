// The CSR row pass of the one-pass products (products.hpp): indices validated
// once per thread's rows in a flat vectorized pass, then compile-time-width rows
// up to 256 bytes of columns (128 at baseline) and, past them, blocks of that width
// plus a compile-time tail (A^T W alone: a walk over Z's whole rows).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

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
// The baseline (SSE2) variant runs 16-byte vectors (VB): GCC splits a 32-byte
// vector there through the stack (the tiles ran 4x slower than at AVX2).
template <class T, int VB = 32>
constexpr index_t csr_lanes() { return VB / index_t(sizeof(T)); }
// Widest k on the compile-time rows (csr_rows_fixed): 256 bytes, eight AVX2
// vectors (float64 k <= 32, float32 k <= 64), and 128 bytes, eight SSE2 vectors, at
// baseline (float64 k <= 16, float32 k <= 32; sixteen SSE2 vectors ran the baseline
// A^T (A V) at float64 k = 20-32 1.2-1.4x slower than the tiles). The tiles walk a
// row's nonzeros forward then backward once per 128-byte tile: on short rows the fused
// pass cost more than the two passes it replaces (50000 x 50000 CSR, 5 nonzeros a row,
// float64 k = 17 A^T (A V): 9.4 ms against A V 2.2 + A^T W 3.4; compile-time rows 5.4).
// 256-byte rows, A^T (A V) at x86-64-v4 over that matrix: float64 k = 17-32 10.5-15.8
// -> 4.7-13.0 ms (SciPy 8.7-19.5), float32 k = 33-64 9.9-18.5 -> 6.0-12.8 (SciPy 9.2-26.3).
template <class T, int VB>
constexpr index_t csr_fixed_max() { return (VB == 32 ? 256 : 128) / index_t(sizeof(T)); }
// Vectors per tile of the scalar fallback's tiles (compilers without vector
// extensions): 4. (The vector tiles this sized, replaced by csr_rows_blocks: eight
// SSE2 vectors in one chain ran the baseline A V at k = 24-64 1.1-1.5x slower.)
constexpr int kCsrTileVectors = 4;

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

// Narrow factors (k <= csr_narrow_max, 32 bytes of columns) padded to 1, 2, 4 or 8
// lanes: the Vtail/Z padding of csr_padded, and the scalar fallback below for
// compilers without vector extensions.
template <class T>
constexpr index_t csr_narrow_max() { return 32 / index_t(sizeof(T)); }

template <int K>
constexpr index_t csr_narrow_pad() { return K <= 1 ? 1 : K <= 2 ? 2 : K <= 4 ? 4 : 8; }

template <class T, int P>
struct narrow_vec {
#if defined(__GNUC__)
  using type = std::conditional_t<P == 1, T, typename simd<T, P>::type>;
#endif
};

// Rows of K <= csr_fixed_max columns (L lanes of a VB-byte vector), K known at
// compile time: H = (K - 1) / L whole vectors, then a tail of R = K - H L lanes in
// a P-lane vector (P: R rounded up to a power of two; a scalar for P = 1). The
// row's y is stored and W's row loaded by fixed-size copies (inline moves; a
// runtime-size memcpy was a library call per row), and when Z itself accumulates
// (zs == K) its row's tail moves as exact power-of-two pieces at fixed offsets
// (4 + 1 lanes for R = 5), so a row that comes back is reloaded at the widths it
// was stored and store forwarding holds (a K-lane move of a P-lane vector ran 10x
// slower; the tiles' half vector then lanes one by one: float32 1M x 500 CSC A V,
// k = 14 22.6 ms against 14.7 at k = 16). The forward sum runs in C independent
// accumulators on rows of 8 or more nonzeros on average (one accumulator waits an
// FMA latency per nonzero).
// Measured single thread (Zen 4, AVX2 code; bench/sparse_products.py, bench/README.md
// "Tenth session: sparse products at every ISA level"), against the runtime-width
// tiles this replaced from k = 5 (float64) / 9 (float32) on: 100000 x 5000 CSR with 5
// nonzeros a row, float64 A V at k = 5-6 1.86 -> 1.32-1.43 ms (SciPy 1.7-1.8), A^T W at
// k = 12 2.88 -> 2.06 ms (SciPy 2.6); 1M x 500 CSC with 500k nonzeros (A V scatters into
// the 1M x k output itself), float64 k = 5 / 7 14.6 / 19.0 -> 12.3 / 12.5 ms (SciPy
// 12.1-16.8 across runs). Earlier (k <= 4) with the flat index check: float64 20000 x
// 2000 with 400k nonzeros, A V at k = 1-4: 1.45-1.48 -> 0.87-1.01 ns per nonzero; 1M x
// 500 with 500k nonzeros: 9.1-9.5 -> 6.0-6.4 ms.
template <int R>
constexpr int csr_piece() { return R >= 8 ? 8 : R >= 4 ? 4 : R >= 2 ? 2 : 1; }

template <class T, int K, int VB>
struct CsrFixedRow {
  static constexpr int L = VB / static_cast<int>(sizeof(T));
  static constexpr int H = (K - 1) / L;
  static constexpr int R = K - H * L;
  static constexpr int P = static_cast<int>(csr_narrow_pad<R>());
  static constexpr int HA = H > 0 ? H : 1;  // array extent (H may be 0)
  // Chains while the accumulators fit the 16 vector registers with the loads.
  static constexpr int C = H + 1 <= 2 ? 4 : H + 1 <= 4 ? 2 : 1;
};

#if defined(__GNUC__)
// z[Off, Off + R) += x * w[Off, Off + R) in power-of-two pieces (w: a P-lane vector
// or scalar holding the tail; Off counts lanes from the tail's start).
template <class T, int Off, int R, class TV>
inline void csr_tail_axpy(T* __restrict z, T x, const TV& w) {
  if constexpr (R > 0) {
    constexpr int N = csr_piece<R>();
    if constexpr (N == 1) {
      T wl;
      std::memcpy(&wl, reinterpret_cast<const char*>(&w) + Off * sizeof(T), sizeof(T));
      z[Off] += x * wl;
    } else {
      using pv = typename simd<T, N>::type;
      pv a, wp;
      std::memcpy(&wp, reinterpret_cast<const char*>(&w) + Off * sizeof(T), sizeof(pv));
      std::memcpy(&a, z + Off, sizeof(pv));
      a += x * wp;
      std::memcpy(z + Off, &a, sizeof(pv));
    }
    csr_tail_axpy<T, Off + N, R - N>(z, x, w);
  }
}

// Row i of a CSR pass over columns [t, t + K) of rows of ks columns (ks = K for the
// compile-time rows; ks = k for the blocks of csr_rows_blocks). Z's rows start at
// Z + j * zs + t; chains: the forward sum may run C accumulators.
template <class T, class I, int K, int VB>
__attribute__((always_inline)) inline void csr_row_fixed(const CsrPass<T, I>& p, index_t i, index_t t, index_t ks,
                                                         bool chains, T* __restrict Z) {
  using F = CsrFixedRow<T, K, VB>;
  constexpr int L = F::L, H = F::H, R = F::R, P = F::P, C = F::C;
  using vec = typename simd<T, L>::type;
  using tvec = typename narrow_vec<T, P>::type;
  const I* __restrict indices = p.indices;
  const T* __restrict data = p.data;
  const T* __restrict V = p.V + t;
  const T* __restrict Vtail = p.Vtail + t;
  const index_t vsafe = p.vsafe, zs = p.zs;
  auto vrow = [&](index_t j) { return j < vsafe ? V + j * ks : Vtail + (j - vsafe) * ks; };
  const bool direct = zs == ks && P != R;  // Z itself, its rows' tails in exact pieces
  const bool fwd = has_forward(p.pass), bwd = has_backward(p.pass), with_y = backward_uses_y(p.pass);
  const index_t s = static_cast<index_t>(p.indptr[i]), f = static_cast<index_t>(p.indptr[i + 1]);
  vec w[F::HA];
  tvec wt = tvec{};
  for (int h = 0; h < H; ++h) w[h] = vec{};
  if (fwd) {
    vec acc[C][F::HA];
    tvec tacc[C];
    for (int c = 0; c < C; ++c) {
      for (int h = 0; h < H; ++h) acc[c][h] = vec{};
      tacc[c] = tvec{};
    }
    auto add = [&](int c, index_t q) {
      const T* v = vrow(static_cast<index_t>(indices[q]));
      const T x = data[q];
      for (int h = 0; h < H; ++h) {
        vec a;
        std::memcpy(&a, v + h * L, sizeof(vec));
        acc[c][h] += x * a;
      }
      tvec a;
      std::memcpy(&a, v + H * L, sizeof(tvec));
      tacc[c] += x * a;
    };
    index_t q = s;
    if (chains) {
      for (; q + C <= f; q += C)
        for (int c = 0; c < C; ++c) add(c, q + c);
    }
    for (; q < f; ++q) add(0, q);
    for (int c = 1; c < C; ++c) {
      for (int h = 0; h < H; ++h) acc[0][h] += acc[c][h];
      tacc[0] += tacc[c];
    }
    for (int h = 0; h < H; ++h) w[h] = acc[0][h];
    wt = tacc[0];
    if (p.Y != nullptr) {
      T* y = p.Y + i * ks + t;
      for (int h = 0; h < H; ++h) std::memcpy(y + h * L, &w[h], sizeof(vec));
      std::memcpy(y + H * L, &wt, sizeof(T) * R);
    }
  }
  if (!bwd) return;
  if (!with_y) {
    const T* src = p.W + i * ks + t;
    for (int h = 0; h < H; ++h) std::memcpy(&w[h], src + h * L, sizeof(vec));
    wt = tvec{};
    std::memcpy(&wt, src + H * L, sizeof(T) * R);
  }
  for (index_t q = s; q < f; ++q) {
    T* z = Z + static_cast<index_t>(indices[q]) * zs + t;
    const T x = data[q];
    for (int h = 0; h < H; ++h) {
      vec a;
      std::memcpy(&a, z + h * L, sizeof(vec));
      a += x * w[h];
      std::memcpy(z + h * L, &a, sizeof(vec));
    }
    if (direct) {
      csr_tail_axpy<T, 0, R>(z + H * L, x, wt);
    } else {
      tvec a;
      std::memcpy(&a, z + H * L, sizeof(tvec));
      a += x * wt;
      std::memcpy(z + H * L, &a, sizeof(tvec));
    }
  }
}

// Rows of a few nonzeros run one chain: the unrolled loop's exit mispredicts
// there, and the latency it hides is short.
template <class T, class I>
inline bool csr_chains(const CsrPass<T, I>& p, index_t b, index_t e) {
  return b < e && static_cast<index_t>(p.indptr[e]) - static_cast<index_t>(p.indptr[b]) >= 8 * (e - b);
}

template <class T, class I, int K, int VB>
inline void csr_rows_fixed(const CsrPass<T, I>& p, index_t b, index_t e, T* __restrict Z) {
  const bool chains = csr_chains(p, b, e);
  for (index_t i = b; i < e; ++i) csr_row_fixed<T, I, K, VB>(p, i, 0, K, chains, Z);
}

// Rows of k > csr_fixed_max columns (KF), the fused and forward passes: each row
// walked as blocks of KF columns, then its last R = k - (k - 1) / KF * KF columns
// (1..KF) by their own compile-time row, so a row's nonzeros are read once per
// KF-column block (float64 k = 33: 32 + 1, two walks; the runtime-width tiles of
// four vectors this replaced walked it three times, 16 + 16 + 1 lanes, and at
// baseline five). The compile-time rows stay on constant strides for k <= KF (a
// runtime stride ran them 10-25% slower at k = 1-5). Measured single thread
// (bench/README.md "Twelfth session: sparse rows past the compile-time widths
// (HT)"), A^T (A V), tiles -> blocks, ms: 50000 x 50000 CSR, 20 nonzeros a row,
// float64 k = 33 74.2 -> 60.0 (x86-64-v4), 111.8 -> 95.0 (baseline); float32 k = 65
// 54.3 -> 45.2 (v4); 1M x 500 with 500k nonzeros, float64 k = 33 21.5 -> 15.7 (v4),
// 28.8 -> 18.0 (baseline).
// Columns [0, last) of row i in blocks of csr_fixed_max columns: one function per
// dtype, index type and vector width, called once a row by every tail width's
// csr_rows_blocks (inlined there, the KF-column body came back KF times).
template <class T, class I, int VB>
__attribute__((noinline)) void csr_row_full_blocks(const CsrPass<T, I>& p, index_t i, index_t last, bool chains,
                                                   T* __restrict Z) {
  constexpr index_t KF = csr_fixed_max<T, VB>();
  for (index_t t = 0; t < last; t += KF) csr_row_fixed<T, I, KF, VB>(p, i, t, p.k, chains, Z);
}

#if defined(FASTLR_X86_DISPATCH)
template <class T, class I>
__attribute__((target("avx2,fma"), noinline)) void csr_row_full_blocks_avx2(const CsrPass<T, I>& p, index_t i,
                                                                            index_t last, bool chains,
                                                                            T* __restrict Z) {
  constexpr index_t KF = csr_fixed_max<T, 32>();
  for (index_t t = 0; t < last; t += KF) csr_row_fixed<T, I, KF, 32>(p, i, t, p.k, chains, Z);
}
#endif

template <class T, class I, int R, int VB>
inline void csr_rows_blocks(const CsrPass<T, I>& p, index_t b, index_t e, T* __restrict Z) {
  const bool chains = csr_chains(p, b, e);
  const index_t last = p.k - R;
  for (index_t i = b; i < e; ++i) {
#if defined(FASTLR_X86_DISPATCH)
    if constexpr (VB == 32) {
      csr_row_full_blocks_avx2<T, I>(p, i, last, chains, Z);
    } else {
      csr_row_full_blocks<T, I, VB>(p, i, last, chains, Z);
    }
#else
    csr_row_full_blocks<T, I, VB>(p, i, last, chains, Z);
#endif
    csr_row_fixed<T, I, R, VB>(p, i, last, p.k, chains, Z);
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

template <class T, class I, int NV, int VB>
inline void csr_row_tile(const CsrPass<T, I>& p, index_t i, index_t s, index_t f, index_t t, T* __restrict Z) {
  constexpr int W = NV * static_cast<int>(csr_lanes<T, VB>());
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
// 8 MiB there was a quarter of Zen 4's 32 MiB L3: the bound is L3 / 4 (csr_packed_bytes).
inline index_t csr_packed_bytes() { return cache_l3_bytes().load(std::memory_order_relaxed) / 4; }
// The same for k whose Z row tail moves as one piece (csr_tail_one_piece): past L2.
constexpr index_t kCsrOnePieceBytes = index_t(2) << 20;
// Row blocks per thread of a CSR pass with a backward half (each block sums into a d x k Z of its
// own, added in block order): 2, where the dense passes take kBlocksPerThread (4). Zen 2, two
// threads, 100000 x 5000 A^T (A V) at 0.2%, k = 8: 4 blocks a thread 0.60-0.67x one thread's time,
// 1 block 0.46-0.73x; passes without one (A @ V) take kBlocksPerThread.
constexpr index_t kCsrBlocksPerThread = 2;

// Row blocks (balanced by nonzeros) of a CSR A^T (A V) pass, fixed by the problem (nnz, d, the
// accumulator bytes) rather than the thread count, so it is bit-identical at every thread count
// (csr_row_pass). Each block sums into a Z of its own from zero, which one thread
// then adds to the first block's: blocks of at least kCsrNnzPerAccRow nonzeros per row of Z keep that
// zeroing and adding small beside the block's scatter into Z; up to kCsrFixedBlocks of them
// (kCsrBlocksPerThread on 2 threads) and kBlockAccBytes of accumulators. 1: a Z too wide for its
// nonzeros (csr_row_pass then falls back to blocks by the thread count).
constexpr index_t kCsrNnzPerAccRow = 64;
constexpr index_t kCsrFixedBlocks = 4;
inline index_t csr_fixed_blocks(index_t nnz, index_t d, index_t zbytes) {
  index_t most = std::min<index_t>(kCsrFixedBlocks, zbytes > 0 ? kBlockAccBytes / zbytes : kCsrFixedBlocks);
  return std::max<index_t>(1, std::min<index_t>(most, nnz / (kCsrNnzPerAccRow * std::max<index_t>(d, 1))));
}

// The padded width of V and Z for k columns (csr_row_pass and csr_rows agree on it).
template <class T>
inline index_t csr_padded(index_t k) {
  if (k <= csr_narrow_max<T>()) return k <= 1 ? 1 : k <= 2 ? 2 : k <= 4 ? 4 : 8;
  return round_up(k, csr_lanes<T>());
}

#if defined(__GNUC__)
// z[0, r) += x * w[0, r) for a runtime r < L (the same r on every row, so each
// piece keeps its width and offset and store forwarding holds).
template <class T, int L, class TV>
inline void csr_tail_axpy_rt(T* __restrict z, T x, const TV& w, index_t r) {
  switch (r) {
    case 1: csr_tail_axpy<T, 0, 1>(z, x, w); break;
    case 2: if constexpr (L > 2) csr_tail_axpy<T, 0, 2>(z, x, w); break;
    case 3: if constexpr (L > 3) csr_tail_axpy<T, 0, 3>(z, x, w); break;
    case 4: if constexpr (L > 4) csr_tail_axpy<T, 0, 4>(z, x, w); break;
    case 5: if constexpr (L > 5) csr_tail_axpy<T, 0, 5>(z, x, w); break;
    case 6: if constexpr (L > 6) csr_tail_axpy<T, 0, 6>(z, x, w); break;
    case 7: if constexpr (L > 7) csr_tail_axpy<T, 0, 7>(z, x, w); break;
    default: break;
  }
}

// A^T W alone (W given) over k > csr_fixed_max columns: each nonzero updates its
// whole Z row front to back, W's row read from L1 vector by vector, as SciPy's
// loop does, rather than one 128-byte tile of every Z row per pass over the row's
// nonzeros. Once Z outgrows L2 (100000 x 5000 CSR, 5 nonzeros a row, Z 5000 x k)
// the tiles came back to each Z row k / 16 times: float32 k = 64 7.8 -> 5.3 ms,
// float64 k = 48 8.8 -> 6.5 ms (SciPy 6.4 / 8.5-9.3).
template <class T, class I, int VB>
inline void csr_rows_backward(const CsrPass<T, I>& p, index_t b, index_t e, T* __restrict Z) {
  constexpr int L = static_cast<int>(csr_lanes<T, VB>());
  using vec = typename simd<T, L>::type;
  const I* __restrict indices = p.indices;
  const T* __restrict data = p.data;
  const index_t k = p.k, zs = p.zs, kv = k / L * L, rem = k - kv;
  for (index_t i = b; i < e; ++i) {
    const index_t s = static_cast<index_t>(p.indptr[i]), f = static_cast<index_t>(p.indptr[i + 1]);
    const T* __restrict w = p.W + i * k;
    vec wt = vec{};
    for (int c = 0; c < L; ++c)  // fixed count: no memcpy call
      if (c < rem) wt[c] = w[kv + c];
    for (index_t q = s; q < f; ++q) {
      const T x = data[q];
      T* __restrict z = Z + static_cast<index_t>(indices[q]) * zs;
      for (index_t c = 0; c < kv; c += L) {
        vec a, wv;
        load<T, L>(a, z + c);
        load<T, L>(wv, w + c);
        a += x * wv;
        store<T, L>(z + c, a);
      }
      if (rem == 0) continue;
      if (zs != k) {  // padded accumulator: a whole vector
        vec a;
        load<T, L>(a, z + kv);
        a += x * wt;
        store<T, L>(z + kv, a);
      } else {
        csr_tail_axpy_rt<T, L>(z + kv, x, wt, rem);
      }
    }
  }
}

#endif

// Rows [b, e) of a CSR pass past the compile-time widths: with vector extensions
// only A^T W alone comes here (csr_rows_backward; the other passes run
// csr_rows_blocks); without them the scalar tiles, k > csr_narrow_max.
template <class T, class I, int VB>
inline void csr_rows_tiles(const CsrPass<T, I>& p, index_t b, index_t e, T* Z) {
#if defined(__GNUC__)
  csr_rows_backward<T, I, VB>(p, b, e, Z);
#else
  constexpr index_t L = csr_lanes<T, VB>();
  for (index_t i = b; i < e; ++i) {
    const index_t s = static_cast<index_t>(p.indptr[i]), f = static_cast<index_t>(p.indptr[i + 1]);
    for (index_t t = 0; t < p.kp; t += kCsrTileVectors * L) {
      switch (std::min<index_t>(kCsrTileVectors, (p.kp - t) / L)) {
        case 1: csr_row_tile<T, I, 1, VB>(p, i, s, f, t, Z); break;
        case 2: csr_row_tile<T, I, 2, VB>(p, i, s, f, t, Z); break;
        case 3: csr_row_tile<T, I, 3, VB>(p, i, s, f, t, Z); break;
        default: csr_row_tile<T, I, 4, VB>(p, i, s, f, t, Z); break;
      }
    }
  }
#endif
}

// Rows [b, e) of a CSR pass into this thread's d x kp accumulator Z: for K > 0
// the compile-time row of K = k columns (k <= csr_fixed_max; without vector
// extensions the narrow loop for k <= csr_narrow_max), for K < 0 the blocks of
// wider k with a compile-time tail of -K columns (csr_rows_blocks), for K = 0
// csr_rows_tiles (A^T W alone past csr_fixed_max). Returns 0 or a
// KernelError (never throws: it runs under a target attribute).
template <class T, class I, int K, int VB>
inline int csr_rows(const CsrPass<T, I>& p, index_t b, index_t e, T* Z) {
  if (const int code = csr_check_rows(p, b, e)) return code;
#if defined(__GNUC__)
  if constexpr (K > 0 && K <= csr_fixed_max<T, VB>()) {
    csr_rows_fixed<T, I, K, VB>(p, b, e, Z);
  } else if constexpr (K < 0) {
    csr_rows_blocks<T, I, -K, VB>(p, b, e, Z);
  } else {
    csr_rows_tiles<T, I, VB>(p, b, e, Z);
  }
#else
  if constexpr (K > 0 && K <= csr_narrow_max<T>()) {
    csr_rows_narrow<T, I, K>(p, b, e, Z);
  } else {
    csr_rows_tiles<T, I, VB>(p, b, e, Z);
  }
#endif
  return 0;
}

template <class T, class I>
using csr_rows_fn = int (*)(const CsrPass<T, I>&, index_t, index_t, T*);

template <class T, class I, int K>
int csr_rows_generic(const CsrPass<T, I>& p, index_t b, index_t e, T* Z) {
  return csr_rows<T, I, K, 16>(p, b, e, Z);
}

// One function per K, picked once per pass (pick_csr_rows): no switch over k
// per row, and each width's loop is compiled on its own.
#if defined(FASTLR_X86_DISPATCH)
template <class T, class I, int K>
__attribute__((target("avx2,fma"), flatten)) int csr_rows_avx2(const CsrPass<T, I>& p, index_t b, index_t e, T* Z) {
  return csr_rows<T, I, K, 32>(p, b, e, Z);
}
#endif

// The function of K = S * (j + 1) for the j with j + 1 == m (S = 1: compile-time
// rows of m columns; S = -1: blocks with an m-column tail) at VB-byte vectors.
template <class T, class I, int VB, int S, int... J>
csr_rows_fn<T, I> pick_csr_rows_in(index_t m, std::integer_sequence<int, J...>) {
  csr_rows_fn<T, I> fn = nullptr;
#if defined(FASTLR_X86_DISPATCH)
  if constexpr (VB == 32) {
    ((fn = m == J + 1 ? &csr_rows_avx2<T, I, S * (J + 1)> : fn), ...);
    return fn;
  }
#endif
  ((fn = m == J + 1 ? &csr_rows_generic<T, I, S * (J + 1)> : fn), ...);
  return fn;
}

// The row function for k columns at level: the compile-time row up to
// csr_fixed_max columns (KF), past it the KF-column blocks with a compile-time
// tail (csr_rows_blocks), or for A^T W alone the Z-row walk of csr_rows_backward.
// AVX2 code (32-byte vectors, see csr_lanes) for AVX-512 CPUs too.
template <class T, class I, int VB>
csr_rows_fn<T, I> pick_csr_rows_vb(index_t k, RowPass pass) {
  constexpr int kf = static_cast<int>(csr_fixed_max<T, VB>());
  if (k >= 1 && k <= kf) return pick_csr_rows_in<T, I, VB, 1>(k, std::make_integer_sequence<int, kf>{});
#if defined(__GNUC__)
  if (k > kf && pass != RowPass::kBackward)
    return pick_csr_rows_in<T, I, VB, -1>((k - 1) % kf + 1, std::make_integer_sequence<int, kf>{});
#endif
  (void)pass;
#if defined(FASTLR_X86_DISPATCH)
  if constexpr (VB == 32) return &csr_rows_avx2<T, I, 0>;
#endif
  return &csr_rows_generic<T, I, 0>;
}

template <class T, class I>
csr_rows_fn<T, I> pick_csr_rows(cpu_level_t level, index_t k, RowPass pass) {
#if defined(FASTLR_X86_DISPATCH)
  if (level >= kAvx2) return pick_csr_rows_vb<T, I, 32>(k, pass);
#endif
  (void)level;
  return pick_csr_rows_vb<T, I, 16>(k, pass);
}

// Whether Z's row tail moves as one piece when Z itself accumulates at level:
// the last R = 1, 2, 4 or 8 lanes of the compile-time rows and of csr_rows_blocks'
// tails, csr_rows_backward's k % L lanes.
// One thread then accumulates in Z from kCsrOnePieceBytes of padded buffer on
// (csr_row_pass): the buffer's page faults and reduction cost more than a one-piece
// tail (below, with Z within L2, the two ran alike: 100000 x 5000 CSR). Measured single
// thread (x86-64-v4, bench/README.md "Eleventh session: wide sparse passes"), CSC A @ V
// (Z = A's n x k rows): 50000 x 5000 with 2 nonzeros a row, float64 k = 17 1.90 -> 0.77 ms,
// float32 k = 33 1.66 -> 0.76 (SciPy 0.97 / 0.96); 50000 x 50000 with 5 a row, float64 k = 17
// 5.32 -> 2.53 (SciPy 2.64). Tails of two or three pieces stay padded: float64 k = 19
// (2 + 1) A^T (A V) over 50000 x 50000 CSR 8.6 -> 10.2 ms in Z, float32 k = 7 (4 + 2 + 1)
// over 100000 x 5000 1.84 -> 2.25.
template <class T>
inline bool csr_tail_one_piece(cpu_level_t level, index_t k) {
  index_t vb = 16;
#if defined(FASTLR_X86_DISPATCH)
  if (level >= kAvx2) vb = 32;
#endif
  (void)level;
  const index_t L = vb / index_t(sizeof(T));
#if defined(__GNUC__)
  // The compile-time rows' and blocks' last R = k - (k - 1) / L * L lanes (1..L;
  // csr_rows_blocks' KF is a multiple of L), and csr_rows_backward's k % L (L: none).
  const index_t r = k - (k - 1) / L * L;
  return (r & (r - 1)) == 0;
#else
  (void)k, (void)L;
  return true;  // the scalar loops move Z's k columns one by one
#endif
}

// A^T (A V) as two passes over a thread's rows, A V into Y then A^T Y, rather than
// one fused walk per row (and (A V, A^T U) likewise: A V, then A^T U), when V (d x k)
// takes L3 / 4 (3 L3 / 16 at baseline) to kCsrSplitMax bytes and A has
// 4 or more nonzeros a row. The fused walk
// keeps V's and Z's rows (2 d k values) in the cache at once; past L2 that footprint,
// not the walk, set its time, while each pass alone reuses one d x k array and Y
// streams (2 n k values, written then read in order). Measured single thread (Zen 4:
// 1 MiB L2, 32 MiB L3; bench/README.md "Twelfth session: sparse rows past the
// compile-time widths (HT)"), fused -> split, ms: 50000 x 50000 CSR, 20 nonzeros a row,
// float64 k = 33 A^T (A V) 46.4 -> 26.6 (x86-64-v4; SciPy 40.6), 68.6 -> 33.8 (baseline;
// SciPy 36.6), k = 16 (6.1 MiB) 21.1 -> 12.2 (v4), 53.8 -> 19.9 (baseline); 5 a row, k
// = 24 9.0 -> 7.3 (v4); 200000 x 200000, 5 a row, k = 8 24.6 -> 19.6 (v4). It lost with
// V of 3 MiB (k = 8 on 50000 x 50000) at every level, and from 6 to 8 MiB at x86-64-v4
// with 5 a row (k = 16: 3.5 -> 4.6 ms), past 24 MiB (200000 x 200000, k = 24: 70 -> 95)
// and with 2 nonzeros a row or d <= 5000 (the Y stream: 1M x 500, k = 33: 15.7 -> 158).
// (A V, A^T U) under the same bound, fused -> split (bench/README.md "Thirteenth session:
// issue 13's figures, CSR gd_products in two passes"): 50000 x 50000, 20 a row, float64
// k = 33 62.9 -> 47.9 (v4), 103.4 -> 63.3 (baseline), k = 16 at baseline 51.1 -> 21.0.
// The lower bound scales with this CPU's L3 (cache_l3_bytes): L3 / 4 (3 L3 / 16 at baseline for rows of
// V past 32 bytes), 8 (6) MiB on Zen 4's 32 MiB. On a Zen 2 (512 KiB L2, 16 MiB L3; bench/README.md "Fourteenth session: the
// sparse products on an AVX2 Zen 2") the fused walk lost from 4.6 MB at 20 a row (50000 x 50000 float64
// k = 12 A^T (A V) at x86-64-v3, fused / split 16.0 / 10.2 ms, baseline 26.8 / 14.4, SciPy 16.7), as
// from 8 MiB on Zen 4. The upper bound did not follow L3: split won up to 24 MiB there too (200000 x
// 200000, 5.1 a row, float64 k = 16, 24.4 MB: v3 45.2 -> 44.1 ms, baseline 70.2 -> 64.5) and lost
// from 30 MB (k = 20: 56.8 -> 59.3, 92.5 -> 99.5).
constexpr index_t kCsrSplitMax = index_t(24) << 20;

// Both split from 4 nonzeros a row (Zen 4's bound was 5): on the Zen 2 the fused (A V, A^T U) lost to
// SciPy's two products at 4.99 a row (80000 x 40000 float64 k = 24 / 33 at x86-64-v3: 17.0 / 32.7 ms,
// SciPy 16.1 / 25.5; split 10.0 / 20.0), and at 4.5 a row the split A^T (A V) beat the fused one in 93
// of 106 rows within the band (v3 and baseline, float32 / float64, V of 3.1-18.9 MB: up to 1.57x). It
// lost most (0.75x) at baseline near 3 MiB over rows of at most 32 bytes (150000 x 150000 float64 k = 3,
// float32 k = 6), which start at L3 / 4 there as at the AVX2 levels.
template <class T>
inline bool csr_split_passes(cpu_level_t level, index_t n, index_t d, index_t k, index_t nnz) {
  const index_t l3 = cache_l3_bytes().load(std::memory_order_relaxed);
  index_t lo = k * index_t(sizeof(T)) <= 32 ? l3 / 4 : 3 * l3 / 16;
#if defined(FASTLR_X86_DISPATCH)
  if (level >= kAvx2) lo = l3 / 4;
#endif
  (void)level;
  const index_t vbytes = d * k * index_t(sizeof(T));
  return nnz >= 4 * n && vbytes >= lo && vbytes <= kCsrSplitMax;
}

}  // namespace detail

/// The row pass `pass` over a CSR matrix A (n x d; duplicates are summed,
/// column indices need not be sorted). V, W, Y, Z as in dense_row_pass; Y may
/// be null for kPower (Z = A^T A V without writing A V: a 16 MB stream for
/// the 2M-nonzero benchmark matrix, as much as A itself).
/// Threads: row blocks balanced by nonzeros, per-block d x kp accumulators for
/// Z summed in block order. For kPower the blocks are fixed by the problem, so
/// Z is bit-identical at every thread count, but for a Z too wide for its
/// nonzeros (csr_fixed_blocks gives 1) on several threads; kBackward and kBoth
/// split by the thread count (deterministic for a given one).
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
  // One thread: Z itself accumulates when k needs no padding, when the padded
  // d x kp buffer passes csr_packed_bytes() (its page faults and copy then cost more
  // than moving Z's last lanes one by one; d is A's row count for CSC input), or
  // passes kCsrOnePieceBytes when Z's row tail moves as one piece.
  const detail::cpu_level_t level = detail::cpu_level();
  const index_t padded_bytes = d * kp * index_t(sizeof(T));
  const bool direct = bwd && want == 1 &&
                      (kp == k || padded_bytes >= detail::csr_packed_bytes() ||
                       (padded_bytes >= detail::kCsrOnePieceBytes && detail::csr_tail_one_piece<T>(level, k)));
  const index_t zsize = bwd && !direct ? detail::round_up(d * kp, detail::kLine / index_t(sizeof(T))) : 0;
  // Several threads take row blocks (balanced by nonzeros) in turn, each block with its own Z
  // accumulator, summed in block order (the dense passes' scheme, dense_row_pass): a thread slowed
  // by another process on its core hands its remaining blocks to the others. With one block per
  // thread, 100000 x 5000 A @ V (0.2%, k = 8) on two threads took 0.53-0.66x one thread's time in six
  // runs and 1.92x in another on an idle 2-vCPU KVM guest (bench/README.md, fifteenth session).
  // A^T (A V): the blocks are fixed by the problem (csr_fixed_blocks), not by the thread count, and
  // one thread adds the same block sums in the same order (block 0 in Z, each later one in `next`,
  // then added): Z is bit-identical at every thread count (tests/test_thread_invariance.py). A Z too
  // wide for its nonzeros (one fixed block) on several threads falls back to blocks by the thread
  // count, whose sums depend on it: one block would leave the other threads idle. A^T W and
  // gd_products's pair keep blocks by the thread count: fixed blocks cost A^T W 1.5-2.8% at one thread
  // (Zen 2, 1M x 500 at 500k nonzeros, float32 and float64 l = 8 and 20, the split into blocks itself
  // rather than adding them; A^T (A V) -2 to +1%; bench/README.md, eighteenth session, HD).
  const index_t zstride = direct ? k : kp;
  const index_t zbytes = detail::round_up(d * kp, detail::kLine / index_t(sizeof(T))) * index_t(sizeof(T));
  index_t nblk = pass == RowPass::kPower ? detail::csr_fixed_blocks(nnz, d, zbytes) : 1;
  const bool fixed = pass == RowPass::kPower && (nblk > 1 || want == 1);
  if (!fixed)
    nblk = detail::row_blocks(want, bwd ? detail::kCsrBlocksPerThread : detail::kBlocksPerThread,
                              zsize * index_t(sizeof(T)));
  const bool serial = want == 1;
  detail::AlignedBuffer<T> zacc, next;
  zacc.assign(static_cast<size_t>(serial ? 1 : nblk) * zsize);
  if (bwd && serial && nblk > 1) next.assign(d * zstride);  // zeroed again as each block's sum is added
  if (direct) std::fill(Z, Z + d * k, T(0));
  T* const acc = direct ? Z : zacc.data;
  const detail::CsrPass<T, I> p{indptr, indices, data, nnz, d, V, Vtail.data, vsafe, W, Y, k, kp, direct ? k : kp, pass};
  const auto rows_fn = detail::pick_csr_rows<T, I>(level, k, pass);
  // A^T (A V) and (A V, A^T U) over V of L3 / 4 to kCsrSplitMax bytes: each thread's rows
  // forward into Y (the output, or a buffer), then backward from Y or U (csr_split_passes).
  const bool split = (pass == RowPass::kPower || pass == RowPass::kBoth) &&
                     detail::csr_split_passes<T>(level, n, d, k, nnz);
  detail::AlignedBuffer<T> ysplit;
  if (split && Y == nullptr) ysplit.allocate(n * k);
  detail::CsrPass<T, I> pf = p, pb = p;
  pf.pass = RowPass::kForward;
  pf.Y = Y != nullptr ? Y : ysplit.data;
  pb.pass = RowPass::kBackward;
  if (pass == RowPass::kPower) pb.W = pf.Y;  // kBoth: A^T U, U given
  const auto fwd_fn = detail::pick_csr_rows<T, I>(level, k, RowPass::kForward);
  const auto bwd_fn = detail::pick_csr_rows<T, I>(level, k, RowPass::kBackward);
  ErrorFlag err;
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel num_threads(want)
#endif
  {
    const int parts = want > 1 ? omp_threads_in_team() : 1;
    const int t = thread_id();
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
    for (index_t i = 0; i < nblk; ++i) {
      index_t b, e;
      nnz_chunk_range(indptr, n, static_cast<int>(nblk), static_cast<int>(i), b, e);
      const bool later = bwd && serial && i > 0;  // one thread: a block after the first, summed in `next`
      T* const Zi = serial ? (later ? next.data : acc) : zacc.data + i * zsize;
      int code;
      if (split) {
        code = fwd_fn(pf, b, e, nullptr);
        if (code == 0) code = bwd_fn(pb, b, e, Zi);
      } else {
        code = rows_fn(p, b, e, Zi);
      }
      if (code != 0) err.set(code);
      if (later) {
        T* __restrict z = acc;
        T* __restrict q = next.data;
        for (index_t j = 0; j < d * zstride; ++j) {
          z[j] += q[j];
          q[j] = T(0);
        }
      }
    }  // (ends with a barrier)
    if (bwd && !direct) {
      index_t jb, je;
      chunk_range(d, parts, t, jb, je);
      detail::reduce_padded(Z, k, zacc.data, kp, zsize, static_cast<int>(serial ? 1 : nblk), jb, je);
    }
  }
  throw_kernel_error(err.code);
}

}  // namespace fastlr
