// The dense row pass of the one-pass products (products.hpp): row-major or
// column-major A through the register tiles of products_simd.hpp, with the
// tile routine picked for this CPU's ISA.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "fastlr/common.hpp"
#include "fastlr/products_simd.hpp"

namespace fastlr {

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
  index_t group_rows;  // kPower: rows whose forward half runs before their backward half (R: one tile)
  bool prefetch;       // row-major A: prefetch the next tile's rows (see dense_row_pass)
};

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

/// Row bytes under which the AVX-512 tiles prefetch the next tile's rows of an A past half the L3
/// (dense_row_pass), by the padded width kp: half-vector tiles (float32 up to 8 columns, float64 up to 4)
/// 4 KiB (5760 x 1080 float32, 4320-byte rows, ran A @ V 1.16-1.20x slower with it), up to 16 columns
/// 16 KiB (float64 8640- and 16000-byte rows 0.85-0.96x the time), wider 8 KiB (past it, -3% to +3%).
inline index_t avx512_prefetch_rows_below(index_t kp, int lanes) {
  return kp < lanes ? 4096 : kp <= 16 ? 16384 : 8192;
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
// buf: scratch of 2 * max(p.group_rows, scratch_rows(R)) * kp entries + gather_rows * d
// (column-major A only).
// Column-major A is copied a few rows at a time into a row-major buffer, so
// both layouts share the same register tiles (and power_step stays one pass).
// Prefetch: each tile of row-major A prefetches the next tile's rows (AVX-512:
// short rows of large A only; see dense_row_pass).
template <class T, int R, int V, bool Prefetch>
inline void dense_rows(const DensePass<T>& p, index_t gather_rows, index_t b, index_t e, T* Z, T* buf) {
  const index_t d = p.d, k = p.k, kp = p.kp;
  const bool fwd = has_forward(p.pass), bwd = has_backward(p.pass), use_y = backward_uses_y(p.pass);
  const index_t S = std::max<index_t>(p.group_rows, scratch_rows(R));
  T* Yb = buf;
  T* Wb = buf + S * kp;
  T* G = buf + 2 * S * kp;
  // The next full tile's rows of row-major A, to prefetch while this tile runs
  // (column-major A: the gathered rows are already in cache).
  const auto next_rows = [&](index_t i0, index_t rows, index_t g1, const T* Xr, index_t ldx) -> const T* {
    return Prefetch && p.prefetch && !p.col_major && i0 + 2 * rows <= g1 ? Xr + rows * ldx : nullptr;
  };
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
          both_rows<T, RF, V>(Xr, ldx, d, p.Vp, Wb, kp, Yb, Z, next_rows(i0, RF, g1, Xr, ldx));
        } else {
          for (int r = 0; r < rr; ++r) both_rows<T, 1, V>(Xr + r * ldx, ldx, d, p.Vp, Wb + r * kp, kp, Yb + r * kp, Z);
        }
        copy_rows_unpadded(p.Y + i0 * k, k, Yb, kp, rr);
      }
      continue;
    }
    if (p.group_rows > R) {  // row-major A, power pass: the forward half of a group, then its backward half
      for (index_t s0 = g0; s0 < g1; s0 += p.group_rows) {
        const index_t s1 = std::min(g1, s0 + p.group_rows);
        for (index_t i0 = s0; i0 < s1; i0 += R) {
          const int rr = static_cast<int>(std::min<index_t>(R, s1 - i0));
          const T* Xr = X + (i0 - g0) * ldx;
          T* Yr = Yb + (i0 - s0) * kp;
          if (rr == R) {
            forward_rows<T, R, V>(Xr, ldx, d, p.Vp, kp, Yr, next_rows(i0, R, g1, Xr, ldx));
          } else {
            for (int r = 0; r < rr; ++r) forward_rows<T, 1, V>(Xr + r * ldx, ldx, d, p.Vp, kp, Yr + r * kp);
          }
        }
        if (p.Y != nullptr) copy_rows_unpadded(p.Y + s0 * k, k, Yb, kp, static_cast<int>(s1 - s0));
        for (index_t i0 = s0; i0 < s1; i0 += R) {
          const int rr = static_cast<int>(std::min<index_t>(R, s1 - i0));
          const T* Xr = X + (i0 - g0) * ldx;
          const T* Yr = Yb + (i0 - s0) * kp;
          if (rr == R) {
            backward_rows<T, R, V>(Xr, ldx, d, Yr, kp, Z);
          } else {
            for (int r = 0; r < rr; ++r) backward_rows<T, 1, V>(Xr + r * ldx, ldx, d, Yr + r * kp, kp, Z);
          }
        }
      }
      continue;
    }
    for (index_t i0 = g0; i0 < g1; i0 += R) {
      const int rr = static_cast<int>(std::min<index_t>(R, g1 - i0));
      const T* Xr = X + (i0 - g0) * ldx;
      const T* pf = next_rows(i0, R, g1, Xr, ldx);
      if (fwd) {
        if (rr == R) {
          forward_rows<T, R, V>(Xr, ldx, d, p.Vp, kp, Yb, pf);
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
          backward_rows<T, R, V>(Xr, ldx, d, wrows, kp, Z, fwd ? nullptr : pf);
        } else {
          for (int r = 0; r < rr; ++r) backward_rows<T, 1, V>(Xr + r * ldx, ldx, d, wrows + r * kp, kp, Z);
        }
      }
    }
  }
}

template <class T>
using dense_rows_fn = void (*)(const DensePass<T>&, index_t, index_t, index_t, T*, T*);

template <class T>
void dense_rows_generic(const DensePass<T>& p, index_t g, index_t b, index_t e, T* Z, T* buf) {
  dense_rows<T, kTileRows, vector_lanes<T>(kGeneric), true>(p, g, b, e, Z, buf);
}

#if defined(FASTLR_X86_DISPATCH)
template <class T>
__attribute__((target("avx2,fma"), flatten)) void dense_rows_avx2(const DensePass<T>& p, index_t g, index_t b,
                                                                  index_t e, T* Z, T* buf) {
  dense_rows<T, kTileRowsAvx2, vector_lanes<T>(kAvx2), true>(p, g, b, e, Z, buf);
}
// Two instantiations: the prefetching one only where dense_row_pass asks for it (its per-column check
// and counter cost rows of 8 KiB and more 3-7% even with nothing to prefetch).
template <class T, bool Prefetch>
__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma,prefer-vector-width=512"), flatten)) void
dense_rows_avx512(const DensePass<T>& p, index_t g, index_t b, index_t e, T* Z, T* buf) {
  dense_rows<T, kTileRowsAvx512<T>, vector_lanes<T>(kAvx512), Prefetch>(p, g, b, e, Z, buf);
}
#endif

#if defined(FASTLR_X86_DISPATCH)
/// Rows per group of dense_forward_split_avx2 and dense_split_avx2 (products_split.cpp): three 4-row
/// tiles, two 6-row ones.
constexpr index_t kSplitRows = 12;
/// The padded widths products_split.cpp serves at AVX2 (row-major A), the same for every pass: A @ V
/// (kForward, dense_forward_split_avx2), and A.T @ W (kBackward), A.T (A V) (kPower) and gd_products's
/// pair (kBoth; dense_split_avx2), whose backward half sweeps as the forward one does. (The backward
/// half at 28 float32 columns, 24 | 4, measured slower than dense_rows's 16 + 12: A.T @ W 5760 x 1080,
/// one thread, 6.7 against 6.3 ms. kBoth at these widths runs its halves one after the other in
/// dense_rows too.)
template <class T>
constexpr bool split_width(index_t kp) {
  return sizeof(T) == 8 ? (kp == 10 || kp == 12 || kp == 18 || kp == 20) : (kp == 20 || kp == 24 || kp == 36 || kp == 40);
}
/// AVX2, row-major A: padded widths whose pass runs in depth blocks (dense_depth_avx2, products_split_depth.cpp)
/// when the d x kp factor (V, or the accumulator Z) passes L2 (depth_blocked): past one two-vector tile,
/// outside split_width (whose tiles keep their own loop). Zen 2, one thread, 1080 x 5760 (V 5760 x kp):
/// every pass at float64 13-16 and 21-64 columns and float32 25-32 and 48-64 1.05-1.45x faster than
/// dense_rows's sweeps, A @ V 21-30 float64 1.3-1.7x; 5760 x 1080 float64 61-128 columns 1.1-1.3x
/// (bench/README.md, nineteenth session, HK).
template <class T>
constexpr bool depth_width(index_t kp) {
  return (sizeof(T) == 8 ? kp > 8 : kp > 16) && !split_width<T>(kp);
}
/// Rows per group of a depth-blocked pass: each depth block of the factor is read into L2 once a group.
constexpr index_t kDepthGroupRows = 48;
/// Whether a pass at kp padded columns over d columns of A runs in depth blocks: the factor past L2.
template <class T>
inline bool depth_blocked(index_t d, index_t kp) {
  return depth_width<T>(kp) && d * kp * index_t(sizeof(T)) > cache_l2_bytes().load(std::memory_order_relaxed);
}
void dense_depth_avx2(const DensePass<float>& p, index_t g, index_t b, index_t e, float* Z, float* buf);
void dense_depth_avx2(const DensePass<double>& p, index_t g, index_t b, index_t e, double* Z, double* buf);
void dense_forward_split_avx2(const DensePass<float>& p, index_t g, index_t b, index_t e, float* Z, float* buf);
void dense_forward_split_avx2(const DensePass<double>& p, index_t g, index_t b, index_t e, double* Z, double* buf);
void dense_split_avx2(const DensePass<float>& p, index_t g, index_t b, index_t e, float* Z, float* buf);
void dense_split_avx2(const DensePass<double>& p, index_t g, index_t b, index_t e, double* Z, double* buf);
#endif

template <class T>
dense_rows_fn<T> pick_dense_rows(cpu_level_t level, int& rows_per_tile) {
#if defined(FASTLR_X86_DISPATCH)
  if (level == kAvx512) { rows_per_tile = kTileRowsAvx512<T>; return &dense_rows_avx512<T, false>; }
  if (level == kAvx2) { rows_per_tile = kTileRowsAvx2; return &dense_rows_avx2<T>; }
#endif
  (void)level;
  rows_per_tile = kTileRows;
  return &dense_rows_generic<T>;
}

}  // namespace detail

/// The row pass `pass` over a dense n x d matrix A.
/// Layout: A row-major (A[i*ld + j]) or, when col_major, column-major (A[i + j*ld]).
/// V: d x k row-major (forward). W: n x k row-major (backward unless kPower).
/// Y: n x k row-major output (forward), Z: d x k row-major output (backward);
/// both caller-allocated and overwritten. Y may be null for kPower (Z alone).
/// Threads: contiguous row blocks, taken in turn; each block accumulates Z in
/// its own d x k buffer, summed in block order. The blocks are fixed by the
/// problem, not the thread count, so results are bit-identical at every thread count. Column-major A is transposed a few rows at a time into
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
  auto rows_fn = detail::pick_dense_rows<T>(level, R);
  // Columns padded to half vectors (the tiles take one and a half in one sweep).
  const int lanes = detail::vector_lanes<T>(level);
  index_t kp = detail::round_up(k, std::max(1, lanes / 2));
#if defined(FASTLR_X86_DISPATCH)
  // AVX2, row-major A, A.T @ W and A.T (A V): a last tile of one and a half vectors (float32 12, 28,
  // 44 padded columns; float64 6, 14, 22) swept slower than one of two on Zen 2, so those widths pad
  // to whole vectors (one thread, A.T @ W 5760 x 1080 float32: 6.4 ms at 28 columns against 5.5 at
  // 32, 3.1 at 12 against 3.0 at 16; float64 6.6 at 14 against 5.9 at 16; bench/README.md,
  // sixteenth session, HB). A.T (A V) and gd_products's pair only past one tile: the power pass's
  // forward half made float64 6 columns 4% slower padded (5.5 against 5.3 ms), float32 12 no faster.
  // A @ V too, float64 past 16 padded columns and any dtype past one tile where the factor passes L2
  // (depth_blocked): one thread, A @ V float64 5760 x 1080 at 22, 30, 38 and 46 padded columns 8.2, 12.5,
  // 15.6 and 19.5 ms, padded 7.9, 9.9, 12.8 and 16.3 (14: 5.4 either way); 1080 x 5760 in depth blocks
  // float64 8.3 and 12.5 ms at 22 and 30 against 7.2 and 9.5 padded, float32 28 and 44 5.2 and 7.7 against
  // 4.8 and 6.9; float32 28 within L2 (5760 x 1080) no faster padded (bench/README.md, nineteenth session, HK).
  if (level == detail::kAvx2 && !col_major && kp % (2 * lanes) == lanes + lanes / 2 &&
      (pass == RowPass::kBackward || (pass != RowPass::kForward && kp > 2 * lanes) ||
       (kp > 2 * lanes && ((sizeof(T) == 8 && kp > 16) || detail::depth_blocked<T>(d, kp + lanes / 2)))))
    kp += lanes / 2;
  // AVX2, row-major A, float64: a last half vector after whole two-vector tiles (26, 34 padded columns,
  // outside split_width) swept as slow as more columns: 5760 x 1080 at 33 columns, one thread, A.T @ W
  // 16.1 ms against 13.6 at 35-36, A.T (A V) 31.1 against 26.9, A @ V 14.4 against 11.8 (0.81-1.00x
  // BLAS, where 35-36 won 1.08-1.31x; bench/README.md, seventeenth session, HP). Those pad to a whole vector.
  if (level == detail::kAvx2 && !col_major && sizeof(T) == 8 && kp > 2 * lanes && kp % (2 * lanes) == lanes / 2 &&
      !detail::split_width<T>(kp))
    kp += lanes / 2;
  // AVX2, row-major A at the widths of split_width: tiles of their own (products_split.cpp;
  // bench/README.md, fifteenth and sixteenth sessions); every other width and pass keeps dense_rows_avx2.
  if (level == detail::kAvx2 && !col_major && detail::split_width<T>(kp)) {
    rows_fn = pass == RowPass::kForward ? detail::dense_rows_fn<T>(&detail::dense_forward_split_avx2)
                                        : detail::dense_rows_fn<T>(&detail::dense_split_avx2);
    R = static_cast<int>(detail::kSplitRows);
  }
  // AVX2, row-major A, the factor past L2 at the widths of depth_width: depth blocks (products_split_depth.cpp).
  const bool deep = level == detail::kAvx2 && !col_major && detail::depth_blocked<T>(d, kp);
  if (deep) rows_fn = detail::dense_rows_fn<T>(&detail::dense_depth_avx2);
#else
  constexpr bool deep = false;
#endif
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
  // Column-major A: gather enough rows to read whole cache lines of each column (at least one line),
  // keeping the buffer within L2 where it can. With fewer rows than a line (tile rows, as the L2 bound
  // gave past 4096 float64 columns), each gather read part of d lines that the factor's sweep evicted
  // before the next gather came back for the rest: 1080 x 5760 float64 A.T (A V) ran 0.61-0.76x NumPy at
  // 2-16 columns, 1.14-1.18x at 2-8 with whole lines (Zen 2, one thread; bench/README.md, nineteenth
  // session, lead).
  index_t gather_rows = n;
  if (col_major) {
    const index_t line_rows = detail::kLine / index_t(sizeof(T));
    gather_rows = std::max<index_t>(line_rows, std::min<index_t>(64, (index_t(1) << 18) / (d * index_t(sizeof(T)))));
    gather_rows = detail::round_up(gather_rows, R);
  }
  // 16-register ISAs, row-major A, power pass with V and Z together beyond L2: groups of rows.
  const bool grouped = level != detail::kAvx512 && !col_major && pass == RowPass::kPower &&
                       2 * d * kp * index_t(sizeof(T)) > detail::kGroupBytes;
  const index_t group_rows = deep      ? detail::kDepthGroupRows
                             : grouped ? detail::round_up(detail::kGroupRows, R)
                                       : R;
  const index_t per_row = (fwd ? 1 : 0) + (bwd ? 1 : 0);
  const int want = useful_threads(nthreads, n * d * per_row * kp / 8);
  // Per-block accumulators on cache-line boundaries; one thread with unpadded
  // columns and an aligned Z accumulates straight into Z (no buffer, no reduction).
  const index_t zsize = bwd ? detail::round_up(d * kp, detail::kLine / index_t(sizeof(T))) : 0;
  // float32: two-level sums of the backward half (detail::kSumRows32), in runs of whole tiles
  const index_t unit = col_major ? gather_rows : R;
  const index_t sum_rows = detail::round_up(detail::kSumRows32, unit);
  // Row blocks, taken in turn by the threads (schedule(dynamic)) rather than one equal share each, so
  // a thread slowed down by another process on its core (OpenBLAS's workers spin for a while after a
  // multi-threaded BLAS call) hands its remaining blocks to the others.
  // With a backward half, each block sums its rows into a Z of its own from zero and the block sums
  // are added in block order. The blocks are fixed by the problem (detail::fixed_block_rows: n, the
  // tile rows, d x kp), never by the thread count, and one thread adds the same block sums in the
  // same order (block 0 in Z, each later one in `next`, then added), so Z is bit-identical at every
  // thread count (tests/test_thread_invariance.py). float32's blocks are whole runs of sum_rows rows:
  // its one-thread sums are its two-level sums of before, unchanged. (With kBlocksPerThread blocks
  // a thread, 1 thread and 2 differed in Z's last bits, and so did randomized_svd's factors.)
  // Without one (A @ V), rows are independent: kBlocksPerThread blocks a thread.
  // Too few rows for the fixed blocks to share out (the first holds over 3/4 of the rows: float64 under
  // 1536 rows, float32 under ~1365) on several threads: blocks by the thread count, as without a backward
  // half, so a second thread still helps; there the sums follow the thread count (README). The fixed
  // blocks had 1080 x 5760's A^T W / A^T (A V) at l = 20 and randomized_svd k = 10 on two threads take
  // 0.96-1.02x one thread's time, against 0.60-0.83x with blocks by the thread count (Zen 2, quiet,
  // median of 12; bench/README.md, eighteenth session, lead).
  index_t nblk = 1, blk = n;
  if (bwd) {
    blk = detail::fixed_block_rows(n, unit, sizeof(T) == 4 ? sum_rows : 0, zsize * index_t(sizeof(T)));
    nblk = (n + blk - 1) / blk;
  }
  if (want > 1 && 4 * blk > 3 * n) {
    nblk = detail::row_blocks(want, detail::kBlocksPerThread, zsize * index_t(sizeof(T)));
    blk = detail::round_up((n + nblk - 1) / nblk, unit);
    nblk = (n + blk - 1) / blk;
  }
  const bool serial = want == 1;
  const bool direct = bwd && serial && kp == k && detail::cache_aligned(Z);
  const bool chunked = bwd && sizeof(T) == 4 && blk > sum_rows;
  // Accumulators: one a block on several threads; on one, Z itself (direct) or one buffer, and `next`
  // for the blocks after the first (allocated with the thread's scratch, below).
  detail::AlignedBuffer<T> zacc;
  zacc.assign(direct ? 0 : static_cast<size_t>(serial ? 1 : nblk) * zsize);
  if (direct) std::fill(Z, Z + d * k, T(0));
  T* acc = direct ? Z : zacc.data;
  // No prefetch of the next tile's rows when A's rows lie a multiple of 4 KiB apart: every row of
  // both tiles then maps to the same L1 set, and the prefetched rows evict the ones being swept.
  // Zen 2 (x86-64-v3, 32 KiB 8-way L1), single thread, A @ V and A.T (A V), l = 10-40, without
  // prefetch: float32 11718 x 1024 and 5859 x 2048 1.1-1.9x faster (kernel 0.5-0.95x BLAS with it
  // on 5760 x 1024), float64 1024 and 2048 columns 1.0-1.3x; 512-column float32 rows (2 KiB)
  // and non-aliasing strides lost 0-30% without it (bench/README.md, fourteenth session, H1).
  // AVX-512 only for short rows (avx512_prefetch_rows_below) of an A past half the L3 (Zen 4, A from memory):
  // there the kernels ran up to 3x faster with it (an 8- or 12-row tile's rows are as many short streams,
  // which the hardware prefetcher serves poorly); longer rows lost up to 3% (the seventh session's 1-4%), and
  // A within half the L3 up to 1.5x on two threads (bench/README.md, twenty-fourth session). Elsewhere the
  // plain tiles.
  const bool prefetch = (ld * index_t(sizeof(T))) % 4096 != 0 &&
                        (level != detail::kAvx512 ||
                         (d * index_t(sizeof(T)) < detail::avx512_prefetch_rows_below(kp, lanes) &&
                          2 * n * ld * index_t(sizeof(T)) > detail::cache_l3_bytes().load(std::memory_order_relaxed)));
#if defined(FASTLR_X86_DISPATCH)
  if (level == detail::kAvx512 && prefetch && !col_major) rows_fn = &detail::dense_rows_avx512<T, true>;
#endif
  const detail::DensePass<T> p{A, n, d, ld, col_major, Vsrc, W, Y, k, kp, pass, group_rows, prefetch};
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp parallel num_threads(want)
#endif
  {
    const int parts = want > 1 ? omp_threads_in_team() : 1;
    const int t = thread_id();
    const index_t scratch = std::max<index_t>(group_rows, detail::scratch_rows(R));
    std::vector<T> buf(static_cast<size_t>(2 * scratch * kp + (col_major ? gather_rows * d : 0)));
    detail::AlignedBuffer<T> part;  // float32: the sum of one run of kSumRows32 rows (see there)
    if (chunked) part.allocate(d * kp);
    // One thread: the sum of one block after the first. Allocated here, after buf, where the float32
    // runs' buffer was before blocks were fixed: placed after Vp and zacc, Zen 2 ran the float32 power
    // pass at l = 10 4.5% slower (5760 x 1080, one thread; the same sums).
    detail::AlignedBuffer<T> next;  // zeroed here, and again as each block's sum is added to acc
    if (bwd && serial && nblk > 1) next.assign(d * kp);
#if defined(FASTLR_HAVE_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
    for (index_t i = 0; i < nblk; ++i) {
      const index_t b = i * blk, e = std::min(n, (i + 1) * blk);
      const bool later = bwd && serial && i > 0;  // one thread: a block after the first, summed in `next`
      T* const Zi = serial ? (later ? next.data : acc) : acc + i * zsize;
      if (!chunked || e - b <= sum_rows) {
        rows_fn(p, gather_rows, b, e, Zi, buf.data());
      } else {
        rows_fn(p, gather_rows, b, b + sum_rows, Zi, buf.data());  // Zi starts at zero
        for (index_t s0 = b + sum_rows; s0 < e; s0 += sum_rows) {
          std::fill(part.data, part.data + d * kp, T(0));
          rows_fn(p, gather_rows, s0, std::min(e, s0 + sum_rows), part.data, buf.data());
          T* __restrict z = Zi;
          const T* __restrict q = part.data;
          for (index_t j = 0; j < d * kp; ++j) z[j] += q[j];
        }
      }
      if (later) {  // add and zero in one sweep (a separate zeroing sweep cost more at float64 l = 40)
        T* __restrict z = acc;
        T* __restrict q = next.data;
        for (index_t j = 0; j < d * kp; ++j) {
          z[j] += q[j];
          q[j] = T(0);
        }
      }
    }
    if (bwd && !direct) {  // (the loop above ends with a barrier)
      index_t jb, je;
      chunk_range(d, parts, t, jb, je);
      detail::reduce_padded(Z, k, zacc.data, kp, zsize, static_cast<int>(serial ? 1 : nblk), jb, je);
    }
  }
}

}  // namespace fastlr
