// A@V at 20 padded columns on AVX2 (products_dense.hpp's dense_row_pass picks it): its own
// translation unit, so the flattened dense_rows_avx2 that serves every other width keeps its code.
#include "fastlr/products_dense.hpp"

namespace fastlr::detail {

#if defined(FASTLR_X86_DISPATCH)
// Rows [b, e) of a forward pass over row-major A with kp == 20, in groups of 12 rows.
// float64: columns 0-11 in 4-row tiles of 3 vectors, 12-19 in 6-row tiles of 2 vectors (2.5 FMA
// cycles per row and column of A, against 3 for the 8 + 8 + 4 sweeps of 6-row tiles: each sweep
// costs at least a broadcast per row and column). float32: one sweep of 4-row tiles of 2.5
// vectors (1.5 cycles, against 2 for 16 + 4).
template <class T>
__attribute__((target("avx2,fma"), flatten)) static void forward20(const DensePass<T>& p, index_t b, index_t e,
                                                                   T* buf) {
  constexpr int L = vector_lanes<T>(kAvx2);
  constexpr index_t G = kSplitRows;
  const index_t d = p.d, k = p.k, kp = p.kp, ldx = p.ld;
  T* Yb = buf;
  for (index_t i0 = b; i0 < e; i0 += G) {
    const int rr = static_cast<int>(std::min<index_t>(G, e - i0));
    const T* Xr = p.A + i0 * ldx;
    if (rr == G) {
      const T* pf = p.prefetch && i0 + 2 * G <= e ? Xr + G * ldx : nullptr;
      for (int q = 0; q < 3; ++q) {
        const T* pq = pf != nullptr ? pf + 4 * q * ldx : nullptr;
        if constexpr (sizeof(T) == 8) {
          forward_tile<T, 4, L, 3, 0>(Xr + 4 * q * ldx, ldx, d, p.Vp, kp, 0, Yb + 4 * q * kp, pq);
        } else {
          forward_tile<T, 4, L, 2, 1>(Xr + 4 * q * ldx, ldx, d, p.Vp, kp, 0, Yb + 4 * q * kp, pq);
        }
      }
      if constexpr (sizeof(T) == 8) {
        for (int q = 0; q < 2; ++q)
          forward_tile<T, 6, L, 2, 0>(Xr + 6 * q * ldx, ldx, d, p.Vp, kp, 12, Yb + 6 * q * kp, nullptr);
      }
    } else {
      for (int r = 0; r < rr; ++r) forward_rows<T, 1, L>(Xr + r * ldx, ldx, d, p.Vp, kp, Yb + r * kp);
    }
    copy_rows_unpadded(p.Y + i0 * k, k, Yb, kp, rr);
  }
}

// Plain entry points (a declaration without the target attribute would name another function version).
void dense_forward20_avx2(const DensePass<float>& p, index_t, index_t b, index_t e, float*, float* buf) {
  forward20<float>(p, b, e, buf);
}
void dense_forward20_avx2(const DensePass<double>& p, index_t, index_t b, index_t e, double*, double* buf) {
  forward20<double>(p, b, e, buf);
}
#endif

}  // namespace fastlr::detail
