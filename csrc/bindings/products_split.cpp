// Row passes over row-major A at a few padded widths on AVX2 (products_dense.hpp's dense_row_pass
// picks them: split_width): its own translation unit, so the flattened dense_rows_avx2 that serves
// every other width and pass keeps its code (a branch inside it moved the code of every width by
// 3-10%: fourteenth session, H1).
#include "fastlr/products_dense.hpp"

namespace fastlr::detail {

#if defined(FASTLR_X86_DISPATCH)
namespace {

// On Zen 2 a sweep of a 6-row tile over a row block costs at least one broadcast per row and column
// of A whatever its width (float32 A @ V 5760 x 1080: 2.4 ms at 8 columns, 2.6 at 16; A.T @ W: 2.8
// and 3.0), and each 256-bit FMA half a cycle. The dense_rows tiles take 8 (float64) or 16 (float32)
// columns a sweep, so a last sweep over a few columns pays the full broadcast cost. Here the first
// columns go in 4-row tiles of 3 or 2.5 vectors (12 accumulators, or 12 W vectors backward; 3 V or
// Z vectors and the broadcast: all 16 ymm registers), the rest (if any) in 6-row tiles of up to 2
// vectors. Cycles per row and column of A, against dense_rows's sweeps (columns of each sweep in
// brackets):
//   float64 10, 12 = 10 or 12 | -                   1.5 against 2   [8 + 2 or 4]
//   float64 18, 20 = 12 | 6 or 8                    2.5 against 3   [8 + 8 + 2 or 4]
//   float32 20, 24 = 20 or 24 | -                   1.5 against 2   [16 + 4 or 8]
//   float32 36, 40 = 24 | 12 or 16                  2.5 against 3   [16 + 16 + 4 or 8]
// Forward (A @ V), measured 5760 x 1080, one thread: 1.09-1.37x faster at every width they serve
// (bench/README.md, fifteenth session, HS); the other widths gain nothing by this count (float64 14:
// 12 | 2 is 2.5 against 8 + 6's 2; float64 22-32 and float32 28-32 tie). Backward (A.T @ W), one
// thread: 5760 x 1080 float32 17-24 columns 5.2-5.3 -> 4.3-4.4 ms, 33-40 7.9-8.4 -> 7.0-7.8, float64
// 9-12 and 17-20 1.1-1.25x faster; A.T (A V) and gd_products 1.1-1.3x (bench/README.md, sixteenth
// session, HB). A 4-row sweep costs about 1.45x a 6-row one there (4.3 ms at 20-24 columns against
// 3.0 at 16), so the float32 28 split (24 | 4) lost to 16 + 12 (6.7 against 6.3 ms).
template <class T, int KP>
struct Split {
  static constexpr int L = vector_lanes<T>(kAvx2);
  // Columns [0, C1) in 4-row tiles of NV1 vectors (+ half: H1); the rest in 6-row tiles of NV2
  // vectors of L2 lanes (+ half: H2): a half vector alone is one vector of L / 2 lanes.
  static constexpr int NV1 = KP >= 3 * L ? 3 : 2;
  static constexpr int H1 = KP >= 3 * L ? 0 : (KP >= 2 * L + L / 2 ? 1 : 0);
  static constexpr int C1 = NV1 * L + H1 * (L / 2);
  static constexpr int REST = KP - C1;
  static constexpr int L2 = REST > 0 && REST < L ? L / 2 : L;
  static constexpr int NV2 = REST < L ? 1 : REST / L, H2 = REST > L && REST % L != 0 ? 1 : 0;
  static_assert(REST >= 0 && REST <= 2 * L && (REST == 0 || NV2 * L2 + H2 * (L / 2) == REST),
                "KP: not a width of this split");
};

// The forward half of one full group (kSplitRows rows at Xr) into Yb (KP columns a row).
template <class T, int KP>
inline void forward_group(const T* Xr, index_t ldx, index_t d, const T* Vp, T* Yb, const T* pf) {
  using S = Split<T, KP>;
  for (int q = 0; q < 3; ++q)
    forward_tile<T, 4, S::L, S::NV1, S::H1>(Xr + 4 * q * ldx, ldx, d, Vp, KP, 0, Yb + 4 * q * KP,
                                            pf != nullptr ? pf + 4 * q * ldx : nullptr);
  if constexpr (S::REST > 0) {
    for (int q = 0; q < 2; ++q)
      forward_tile<T, 6, S::L2, S::NV2, S::H2>(Xr + 6 * q * ldx, ldx, d, Vp, KP, S::C1, Yb + 6 * q * KP, nullptr);
  }
}

// The backward half of one full group: Z (d x KP) += Xr^T Wb.
template <class T, int KP>
inline void backward_group(const T* Xr, index_t ldx, index_t d, const T* Wb, T* Z, const T* pf) {
  using S = Split<T, KP>;
  for (int q = 0; q < 3; ++q)
    backward_tile<T, 4, S::L, S::NV1, S::H1>(Xr + 4 * q * ldx, ldx, d, Wb + 4 * q * KP, KP, 0, Z,
                                             pf != nullptr ? pf + 4 * q * ldx : nullptr);
  if constexpr (S::REST > 0) {
    for (int q = 0; q < 2; ++q)
      backward_tile<T, 6, S::L2, S::NV2, S::H2>(Xr + 6 * q * ldx, ldx, d, Wb + 6 * q * KP, KP, S::C1, Z, nullptr);
  }
}

// Rows [b, e) of a forward pass (A @ V) over row-major A with KP padded columns, in groups of
// kSplitRows rows (split_rows's loop without the backward half: the forward pass through split_rows
// measured 8-9% slower at float32 20 and 24 columns, the same tiles).
template <class T, int KP>
__attribute__((target("avx2,fma"), flatten)) void forward_split(const DensePass<T>& p, index_t b, index_t e, T* buf) {
  constexpr int L = vector_lanes<T>(kAvx2);
  constexpr index_t G = kSplitRows;
  const index_t d = p.d, k = p.k, ldx = p.ld;
  T* Yb = buf;
  for (index_t i0 = b; i0 < e; i0 += G) {
    const int rr = static_cast<int>(std::min<index_t>(G, e - i0));
    const T* Xr = p.A + i0 * ldx;
    if (rr == G) {
      const T* pf = p.prefetch && i0 + 2 * G <= e ? Xr + G * ldx : nullptr;  // the next group's rows
      forward_group<T, KP>(Xr, ldx, d, p.Vp, Yb, pf);
    } else {
      for (int r = 0; r < rr; ++r) forward_rows<T, 1, L>(Xr + r * ldx, ldx, d, p.Vp, KP, Yb + r * KP);
    }
    copy_rows_unpadded(p.Y + i0 * k, k, Yb, KP, rr);
  }
}

// Rows [b, e) of a backward (A.T @ W), power (A.T (A V)) or both (A V and A.T W) pass over row-major A
// with KP padded columns, in groups of kSplitRows rows (the power pass: the forward half of
// p.group_rows rows, then their backward half; dense_rows's order). Rows short of a group run one
// at a time on dense_rows's tiles. Z: this block's d x KP accumulator; buf as for dense_rows.
template <class T, int KP>
__attribute__((target("avx2,fma"), flatten)) void split_rows(const DensePass<T>& p, index_t b, index_t e, T* Z,
                                                             T* buf) {
  constexpr int L = vector_lanes<T>(kAvx2);
  constexpr index_t G = kSplitRows;
  const bool fwd = has_forward(p.pass), bwd = has_backward(p.pass), use_y = backward_uses_y(p.pass);
  const index_t d = p.d, k = p.k, ldx = p.ld;
  const index_t S = std::max(p.group_rows, G);
  T* Yb = buf;
  T* Wb = buf + S * KP;
  for (index_t s0 = b; s0 < e; s0 += S) {
    const index_t s1 = std::min(e, s0 + S);
    if (fwd) {
      for (index_t i0 = s0; i0 < s1; i0 += G) {
        const int rr = static_cast<int>(std::min<index_t>(G, s1 - i0));
        const T* Xr = p.A + i0 * ldx;
        T* Yr = Yb + (i0 - s0) * KP;
        if (rr == G) {
          const T* pf = p.prefetch && i0 + 2 * G <= e ? Xr + G * ldx : nullptr;  // the next group's rows
          forward_group<T, KP>(Xr, ldx, d, p.Vp, Yr, pf);
        } else {
          for (int r = 0; r < rr; ++r) forward_rows<T, 1, L>(Xr + r * ldx, ldx, d, p.Vp, KP, Yr + r * KP);
        }
      }
      if (p.Y != nullptr) copy_rows_unpadded(p.Y + s0 * k, k, Yb, KP, static_cast<int>(s1 - s0));
    }
    if (bwd) {
      const T* wrows = Yb;
      if (!use_y) {
        copy_rows_padded(Wb, KP, p.W + s0 * k, k, static_cast<int>(s1 - s0));
        wrows = Wb;
      }
      for (index_t i0 = s0; i0 < s1; i0 += G) {
        const int rr = static_cast<int>(std::min<index_t>(G, s1 - i0));
        const T* Xr = p.A + i0 * ldx;
        const T* Wr = wrows + (i0 - s0) * KP;
        if (rr == G) {
          // the forward half (if any) prefetched these rows already
          const T* pf = !fwd && p.prefetch && i0 + 2 * G <= e ? Xr + G * ldx : nullptr;
          backward_group<T, KP>(Xr, ldx, d, Wr, Z, pf);
        } else {
          for (int r = 0; r < rr; ++r) backward_rows<T, 1, L>(Xr + r * ldx, ldx, d, Wr + r * KP, KP, Z);
        }
      }
    }
  }
}

}  // namespace

// Plain entry points (a declaration without the target attribute would name another function version).
void dense_forward_split_avx2(const DensePass<float>& p, index_t, index_t b, index_t e, float*, float* buf) {
  switch (p.kp) {
    case 20: forward_split<float, 20>(p, b, e, buf); break;
    case 24: forward_split<float, 24>(p, b, e, buf); break;
    case 36: forward_split<float, 36>(p, b, e, buf); break;
    default: forward_split<float, 40>(p, b, e, buf); break;
  }
}
void dense_forward_split_avx2(const DensePass<double>& p, index_t, index_t b, index_t e, double*, double* buf) {
  switch (p.kp) {
    case 10: forward_split<double, 10>(p, b, e, buf); break;
    case 12: forward_split<double, 12>(p, b, e, buf); break;
    case 18: forward_split<double, 18>(p, b, e, buf); break;
    default: forward_split<double, 20>(p, b, e, buf); break;
  }
}
void dense_split_avx2(const DensePass<float>& p, index_t, index_t b, index_t e, float* Z, float* buf) {
  switch (p.kp) {
    case 20: split_rows<float, 20>(p, b, e, Z, buf); break;
    case 24: split_rows<float, 24>(p, b, e, Z, buf); break;
    case 36: split_rows<float, 36>(p, b, e, Z, buf); break;
    default: split_rows<float, 40>(p, b, e, Z, buf); break;
  }
}
void dense_split_avx2(const DensePass<double>& p, index_t, index_t b, index_t e, double* Z, double* buf) {
  switch (p.kp) {
    case 10: split_rows<double, 10>(p, b, e, Z, buf); break;
    case 12: split_rows<double, 12>(p, b, e, Z, buf); break;
    case 18: split_rows<double, 18>(p, b, e, Z, buf); break;
    default: split_rows<double, 20>(p, b, e, Z, buf); break;
  }
}
#endif

}  // namespace fastlr::detail
