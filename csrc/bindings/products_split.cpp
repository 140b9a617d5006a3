// A @ V at a few padded widths on AVX2 (products_dense.hpp's dense_row_pass picks it: split_width):
// its own translation unit, so the flattened dense_rows_avx2 that serves every other width and pass
// keeps its code (a branch inside it moved the code of every width by 3-10%: fourteenth session, H1).
#include "fastlr/products_dense.hpp"

namespace fastlr::detail {

#if defined(FASTLR_X86_DISPATCH)
namespace {

// Rows [b, e) of a forward pass over row-major A with KP padded columns, in groups of kSplitRows.
// On Zen 2 a sweep of a 6-row tile over a row block costs at least one broadcast per row and column
// of A whatever its width (float32 A @ V 5760 x 1080: 2.4 ms at 8 columns, 2.6 at 16), and each
// 256-bit FMA half a cycle. The dense_rows tiles take 8 (float64) or 16 (float32) columns a sweep,
// so a last sweep over a few columns pays the full broadcast cost. Here the first columns go in
// 4-row tiles of 3 or 2.5 vectors (12 accumulators, 3 V vectors and the broadcast: all 16 ymm
// registers), the rest (if any) in 6-row tiles of up to 2 vectors. Cycles per row and column of A,
// against dense_rows's sweeps (columns of each sweep in brackets):
//   float64 10, 12 = 10 or 12 | -                   1.5 against 2   [8 + 2 or 4]
//   float64 18, 20 = 12 | 6 or 8                    2.5 against 3   [8 + 8 + 2 or 4]
//   float32 20, 24 = 20 or 24 | -                   1.5 against 2   [16 + 4 or 8]
//   float32 36, 40 = 24 | 12 or 16                  2.5 against 3   [16 + 16 + 4 or 8]
// Measured 5760 x 1080, one thread: 1.09-1.37x faster at every width they serve (bench/README.md,
// fifteenth session, HS); the other widths gain nothing by this count (float64 14: 12 | 2 is 2.5
// against 8 + 6's 2; float64 22-32 and float32 28-32 tie).
template <class T, int KP>
__attribute__((target("avx2,fma"), flatten)) void forward_split(const DensePass<T>& p, index_t b, index_t e, T* buf) {
  constexpr int L = vector_lanes<T>(kAvx2);
  constexpr index_t G = kSplitRows;
  // Columns [0, C1) in 4-row tiles of NV1 vectors (+ half: H1); the rest in 6-row tiles (NV2, H2).
  constexpr int NV1 = KP >= 3 * L ? 3 : 2;
  constexpr int H1 = KP >= 3 * L ? 0 : (KP >= 2 * L + L / 2 ? 1 : 0);
  constexpr int C1 = NV1 * L + H1 * (L / 2);
  constexpr int REST = KP - C1;
  constexpr int NV2 = REST / L, H2 = (REST % L) != 0 ? 1 : 0;
  static_assert(REST >= 0 && NV2 * L + H2 * (L / 2) == REST, "KP: not a width of this split");
  const index_t d = p.d, k = p.k, ldx = p.ld;
  T* Yb = buf;
  for (index_t i0 = b; i0 < e; i0 += G) {
    const int rr = static_cast<int>(std::min<index_t>(G, e - i0));
    const T* Xr = p.A + i0 * ldx;
    if (rr == G) {
      const T* pf = p.prefetch && i0 + 2 * G <= e ? Xr + G * ldx : nullptr;  // the next group's rows
      for (int q = 0; q < 3; ++q)
        forward_tile<T, 4, L, NV1, H1>(Xr + 4 * q * ldx, ldx, d, p.Vp, KP, 0, Yb + 4 * q * KP,
                                       pf != nullptr ? pf + 4 * q * ldx : nullptr);
      if constexpr (REST > 0) {
        for (int q = 0; q < 2; ++q)
          forward_tile<T, 6, L, NV2, H2>(Xr + 6 * q * ldx, ldx, d, p.Vp, KP, C1, Yb + 6 * q * KP, nullptr);
      }
    } else {
      for (int r = 0; r < rr; ++r) forward_rows<T, 1, L>(Xr + r * ldx, ldx, d, p.Vp, KP, Yb + r * KP);
    }
    copy_rows_unpadded(p.Y + i0 * k, k, Yb, KP, rr);
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
#endif

}  // namespace fastlr::detail
